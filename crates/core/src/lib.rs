//! The shared vocabulary of text4vis-rs: the plugin traits (video encoders, temporal heads,
//! classifier initialisations, datasets, run kinds), the registry that lists them, the run specification
//! with the paper's defaults and its content-addressed identity, the worker event protocol and
//! run provenance.
//!
//! Nothing here trains or opens files beyond what a trait needs: the heavy lifting lives in the
//! crates that implement these traits.

pub mod event;
pub mod plugin;
pub mod provenance;
pub mod registry;
pub mod rng;
pub mod run_kind;
pub mod spec;

pub use event::{Event, Reporter};
pub use plugin::{
    ClassifierInit, DataOptions, Dataset, DatasetPlugin, EncoderPlugin, FrameConvention,
    HeadLayout, Host, InitInputs, Media, MediaLayout, Need, TemporalHeadPlugin, VideoEncoder,
};
pub use provenance::Provenance;
pub use registry::{Family, ParamDef, ParamType, PluginInfo, Registry};
pub use rng::SplitMix64;
pub use run_kind::{Job, NeededRun, RunError, RunKind};
pub use spec::{Identity, OnError, RunId, RunSpec, SpecError};
