//! The extension points of a run: video encoders, temporal heads, classifier inits, datasets.
//! Each family is a list of plain types implementing its trait, in the registry
//! (`crate::registry`): the list is how specs name them and what each declares it [`Need`]s.
//!
//! The model traits are generic over burn's `Backend`, so one implementation serves the CPU
//! backend, CUDA and their autodiff wrappers; classifier inits compute on [`Host`].

use std::path::PathBuf;

use burn::module::ParamId;
use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

/// Turns clips into video embeddings: a per-frame image encoder followed by a temporal head.
///
/// The split into `frame_features` and `temporal` exists so frozen per-frame features can be
/// cached once and reused by every run that only trains what comes after them.
pub trait VideoEncoder<B: Backend>: Send {
    /// Width D of the video embedding.
    fn embed_dim(&self) -> usize;

    /// Frames `[B, T, 3, H, W]` (normalised pixels) → per-frame embeddings `[B, T, D]`.
    fn frame_features(&self, frames: Tensor<B, 5>) -> Tensor<B, 3>;

    /// Per-frame embeddings `[B, T, D]` → video embeddings `[B, D]` (not normalised).
    fn temporal(&self, frame_features: Tensor<B, 3>) -> Tensor<B, 2>;

    /// Frames `[B, T, 3, H, W]` → video embeddings `[B, D]`.
    fn forward(&self, frames: Tensor<B, 5>) -> Tensor<B, 2> {
        self.temporal(self.frame_features(frames))
    }

    /// Which parameters belong to the pretrained backbone (trained at `lr × clip_ratio`, with
    /// the logit scale) and which to the newly initialised head (trained at `lr`).
    fn param_groups(&self) -> ParamGroups;
}

/// Parameter ids by optimiser group.
#[derive(Clone, Debug, Default)]
pub struct ParamGroups {
    pub backbone: Vec<ParamId>,
    pub head: Vec<ParamId>,
}

/// Encodes class-name prompts for text-based classifier inits.
pub trait TextEncoder<B: Backend> {
    /// Width of the text embedding.
    fn embed_dim(&self) -> usize;
    /// Prompts → embeddings `[N, P]` (not normalised).
    fn encode(&self, prompts: &[String]) -> Result<Tensor<B, 2>, PluginError>;
}

/// The backend classifier inits compute on: W is a small matrix made once per run, so inits
/// work on the CPU whatever the run's device, and a run moves W to its device. One fixed
/// backend keeps [`ClassifierInit`] object-safe, so the inits are a plain list of `&dyn`.
pub type Host = burn::backend::Flex;

/// Something a plugin needs from the run beyond its spec. Run kinds read a plugin's needs and
/// supply them; `plugins` prints them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Need {
    /// The CLIP checkpoint `model.backbone` names (its image tower).
    Clip,
    /// The text tower of that CLIP checkpoint, with its tokenizer.
    ClipText,
    /// The BERT-family sentence encoder `classifier.text_model` names.
    SentenceEncoder,
    /// Frozen training features: a `features` run the spec names in `needs.features`.
    Features,
    /// The dataset's folder on disk (`--data`, or `data.root` in the user's configuration).
    DataFolder,
}

impl Need {
    pub const ALL: [Need; 5] = [
        Need::Clip,
        Need::ClipText,
        Need::SentenceEncoder,
        Need::Features,
        Need::DataFolder,
    ];

    /// Its name in `plugins` output (`clip-text`).
    pub fn name(self) -> &'static str {
        match self {
            Need::Clip => "clip",
            Need::ClipText => "clip-text",
            Need::SentenceEncoder => "sentence-encoder",
            Need::Features => "features",
            Need::DataFolder => "data-folder",
        }
    }

    /// What it is, for `plugins` and error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Need::Clip => "the CLIP checkpoint model.backbone names",
            Need::ClipText => "the text tower (and tokenizer) of that CLIP checkpoint",
            Need::SentenceEncoder => "the BERT-family sentence encoder classifier.text_model names",
            Need::Features => "frozen training features (needs.features: a `features` run)",
            Need::DataFolder => "the dataset's folder on disk",
        }
    }
}

/// What a classifier init may draw on. What a plugin does not declare in
/// [`ClassifierInit::needs`] is `None`.
pub struct InitInputs<'a> {
    /// Class names in label order, as prompts see them.
    pub class_names: &'a [String],
    /// Width D of the video embedding that W must match (or be projected to).
    pub embed_dim: usize,
    /// The text encoder the init's needs name ([`Need::ClipText`] or
    /// [`Need::SentenceEncoder`]).
    pub text: Option<&'a dyn TextEncoder<Host>>,
    /// Prompt templates (`{}` stands for the class name) for text inits; several are an
    /// ensemble.
    pub templates: &'a [String],
    /// Frozen video features `[N, D]` of training videos with their labels ([`Need::Features`]).
    pub features: Option<(Tensor<Host, 2>, Vec<usize>)>,
    /// The run's seed, for random inits.
    pub seed: u64,
    /// `classifier.shrinkage` of the spec (LDA's covariance shrinkage).
    pub shrinkage: f64,
}

/// Fills the `{}` of a prompt template with a class name (`None` when it has no `{}`).
pub fn fill_template(template: &str, name: &str) -> Option<String> {
    template
        .contains("{}")
        .then(|| template.replacen("{}", name, 1))
}

/// Produces the classifier matrix W `[C, D']` from prior knowledge (`D'` may differ from D, e.g.
/// for BERT inits; the classifier then learns a projection). Listed in the registry; a run
/// builds W through the init its spec names and supplies what [`Self::needs`] declares.
pub trait ClassifierInit: Sync {
    /// Name (`classifier.init`), summary and parameters.
    fn info(&self) -> &'static crate::registry::PluginInfo;
    /// What the run must supply in [`InitInputs`].
    fn needs(&self) -> &'static [Need] {
        &[]
    }
    fn init(&self, inputs: &InitInputs<'_>) -> Result<Tensor<Host, 2>, PluginError>;
}

/// Builds a run's video encoder; listed in the registry (`model.encoder`). The encoders are
/// burn modules the train crate defines, so this is their descriptor: name, parameters, needs.
pub trait EncoderPlugin: Sync {
    fn info(&self) -> &'static crate::registry::PluginInfo;
    fn needs(&self) -> &'static [Need] {
        &[]
    }
}

/// The temporal transformer a head is built from: `blocks` pre-LN blocks over time (frame
/// position embeddings first, the input added back after them), then the mean over time.
/// No blocks is plain mean pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct HeadLayout {
    pub blocks: usize,
    /// Attention heads per block.
    pub heads: usize,
    /// MLP width as a multiple of the embedding width.
    pub mlp_ratio: usize,
}

/// A temporal head (`model.temporal_head`): `[B, T, D]` frame embeddings → `[B, D]`. burn
/// modules are concrete types, so a head is described by the layout of the temporal
/// transformer the model builds for it; a head with new kinds of layers needs those layers in
/// the train crate's `temporal` module.
pub trait TemporalHeadPlugin: Sync {
    fn info(&self) -> &'static crate::registry::PluginInfo;
    fn needs(&self) -> &'static [Need] {
        &[]
    }
    /// The layout for embeddings of width `width`.
    fn layout(&self, width: usize) -> HeadLayout;
}

/// One video of a dataset split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VideoItem {
    /// A frame folder or a video file.
    pub path: PathBuf,
    pub label: usize,
    /// Frame count when the annotations give it (frame folders are counted when read).
    pub frames: Option<u32>,
    /// Seconds of the video file this instance covers (ActivityNet's training segments).
    pub span: Option<[f64; 2]>,
}

/// The metric a protocol reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    Top1,
    Top5,
    MeanClassAccuracy,
    /// Mean average precision over classes (ActivityNet).
    MeanAp,
}

/// How a dataset's videos are stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Media {
    /// One folder of frames per video under `root`, files named by `pattern` (`img_{:05}.jpg`).
    Frames { root: PathBuf, pattern: String },
    /// One video file per video under `root`.
    Videos { root: PathBuf },
    /// Drawn on demand (the synthetic world); `VideoItem::path` is `<class>/<instance>`.
    /// `trail`: moving shapes leave a fading trail, so single frames show the direction.
    Synthetic {
        seed: u64,
        frames: u32,
        size: u32,
        #[serde(default)]
        trail: bool,
    },
}

/// Where a dataset's media were found: which layout, or the places looked in vain.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MediaLayout {
    /// What was found (`UCF-101/: video files as the official archive unpacks`).
    pub found: Option<String>,
    /// Where media were looked for, when none was found.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub looked: Vec<PathBuf>,
}

impl MediaLayout {
    pub fn found(what: impl Into<String>) -> Self {
        MediaLayout {
            found: Some(what.into()),
            looked: Vec::new(),
        }
    }

    pub fn not_found(looked: Vec<PathBuf>) -> Self {
        MediaLayout {
            found: None,
            looked,
        }
    }
}

/// Where and how to read a dataset (from the command line or the user's configuration).
#[derive(Clone, Debug, Default)]
pub struct DataOptions {
    /// The dataset's folder.
    pub root: PathBuf,
    /// A list file of the reference (`path [frames] label`) to read instead of the official
    /// annotations, with its label CSV.
    pub list: Option<PathBuf>,
    pub labels: Option<PathBuf>,
    /// Official split (1–3) for UCF-101 and HMDB-51.
    pub split: u32,
    /// Frame file names, overriding the dataset's convention.
    pub frame_pattern: Option<String>,
}

/// A dataset family: opens a dataset from its options. Listed in the registry.
pub trait DatasetPlugin: Sync {
    fn info(&self) -> &'static crate::registry::PluginInfo;
    /// What opening it needs: a folder ([`Need::DataFolder`]) unless drawn on demand.
    fn needs(&self) -> &'static [Need] {
        &[Need::DataFolder]
    }
    /// Does it read a folder? Datasets drawn on demand (the synthetic ones) do not, and are
    /// opened without looking for one.
    fn needs_root(&self) -> bool {
        self.needs().contains(&Need::DataFolder)
    }
    fn open(&self, opts: &DataOptions) -> Result<Box<dyn Dataset>, PluginError>;
    /// How the reference stores this dataset's frames, which `prepare` writes; `None`: it has
    /// no video files to extract (drawn on demand).
    fn frames(&self) -> Option<FrameConvention> {
        None
    }
}

/// A dataset's frame folders as the reference's users extract them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrameConvention {
    /// File names, e.g. `img_{:05}.jpg`.
    pub pattern: &'static str,
    /// The shorter side in pixels.
    pub short_side: u32,
    /// Frames per second (`None`: the video's own).
    pub fps: Option<f64>,
    /// Official splits (1–k) whose annotations name different videos (HMDB-51 leaves some out
    /// of a split): `prepare` extracts the union.
    pub splits: u32,
}

/// A dataset in its official layout (or the reference's list files): classes, splits, protocols.
pub trait Dataset: Send + Sync {
    /// How its videos are stored.
    fn media(&self) -> Media;
    /// Class names in label order.
    fn class_names(&self) -> &[String];
    /// Names of the splits it has (`train`, `val`, `test`, or per official split).
    fn splits(&self) -> Vec<String>;
    /// The videos of one split.
    fn videos(&self, split: &str) -> Result<Vec<VideoItem>, PluginError>;
    /// Metrics of the dataset's protocols, the headline metric first.
    fn metrics(&self) -> &'static [Metric];
    /// Which layout its media were found in (datasets drawn on demand have none to find).
    fn layout(&self) -> MediaLayout {
        MediaLayout::found("drawn on demand")
    }
    /// A cheap fingerprint of what a run reads from it (annotation files, the media's count and
    /// sizes): a run that read other data shows it. `None`: nothing on disk to change.
    fn fingerprint(&self) -> Option<String> {
        None
    }
    /// The frame folder of each video of `split` under a `frames/` root (its annotation path
    /// without a video extension), in `videos` order; `None`: not stored as files.
    fn folders(&self, _split: &str) -> Option<Vec<PathBuf>> {
        None
    }
    /// The annotation files (or folders of them) it was read from.
    fn annotation_files(&self) -> Vec<PathBuf> {
        Vec::new()
    }
}

/// A plugin failure, naming the file, key or shape at fault.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}
