//! The video classifier of the paper: a per-frame CLIP image encoder, a temporal head, and a
//! cosine classifier whose weights come from prior knowledge (REFERENCE.md §1.2–1.4).
//!
//! So far: the CLIP video encoder, the temporal heads (`mean`, `transf`), the cosine
//! classifier, the learning-rate schedule. Training, evaluation and the feature cache follow.

pub mod cache;
pub mod classifier;
pub mod encoder;
pub mod runs;
pub mod schedule;
pub mod temporal;

pub use classifier::CosineClassifier;
pub use encoder::ClipVideoEncoder;
pub use schedule::{Stepper, WarmupCosine};
pub use temporal::{TemporalConfig, TemporalHead};
