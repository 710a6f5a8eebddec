//! The video classifier of the paper: a per-frame CLIP image encoder, a temporal head, and a
//! cosine classifier whose weights come from prior knowledge (REFERENCE.md §1.2–1.4).
//!
//! Models (`encoder`, `temporal`, `classifier`, `model`), the recipe (`fit`, `schedule`), the
//! classifier init of a run (`init`), metrics, the feature cache, and the run kinds that the
//! sweep engine executes (`runs`: features, zero-shot, train, eval, probe).

pub mod cache;
pub mod classifier;
pub mod encoder;
pub mod fit;
pub mod history;
pub mod init;
pub mod metrics;
pub mod model;
pub mod parallel;
pub mod runs;
pub mod schedule;
pub mod temporal;

pub use classifier::CosineClassifier;
pub use encoder::ClipVideoEncoder;
pub use schedule::{Stepper, WarmupCosine};
pub use temporal::{TemporalConfig, TemporalHead};
