//! CLIP in burn: the vision and text towers of OpenAI's CLIP, configured from a Hugging Face
//! `config.json`, loaded from `model.safetensors` in Hugging Face or OpenAI naming, with the CLIP
//! tokenizer and prompt templates. Numerically checked against `transformers.CLIPModel`
//! (`tests/parity.rs`).

pub mod config;
pub mod hub;
pub mod layers;
pub mod model;
pub mod text;
pub mod tokenizer;
pub mod vision;
pub mod weights;

use std::path::PathBuf;

use burn::tensor::{Tensor, backend::Backend};

pub use config::{Activation, ClipConfig, TextConfig, VisionConfig};
pub use model::{ClipModel, ids_tensor, normalize};
pub use tokenizer::{ClipTokenizer, DEFAULT_TEMPLATE};
pub use weights::{Naming, Weights};

#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid CLIP config: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Weights { path: PathBuf, message: String },
    #[error("{path}: missing tensor `{name}` (checkpoint read with {naming:?} names)")]
    MissingTensor {
        path: PathBuf,
        name: String,
        naming: Naming,
    },
    #[error("{path}: tensor `{name}` has shape {found:?}, the config needs {expected:?}")]
    ShapeMismatch {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{path}: unexpected tensor(s) the model does not use: {}", names.join(", "))]
    UnexpectedTensors { path: PathBuf, names: Vec<String> },
    #[error("{path}: tokenizer: {message}")]
    Tokenizer { path: PathBuf, message: String },
    #[error(
        "model `{model}` is not in the Hugging Face cache at {cache} (no {file}) and HF_HUB_OFFLINE is set; \
         fetch it first with `cargo xtask fetch {model}` on a machine with access to the hub"
    )]
    NotCached {
        model: String,
        file: String,
        cache: PathBuf,
    },
    #[error("fetching `{model}` from the Hugging Face hub: {message}")]
    Hub { model: String, message: String },
}

impl<B: t4v_fused::FusedBackend> t4v_core::plugin::TextEncoder<B> for Clip<B> {
    fn embed_dim(&self) -> usize {
        self.model.embed_dim()
    }

    fn encode(&self, prompts: &[String]) -> Result<Tensor<B, 2>, t4v_core::plugin::PluginError> {
        self.encode_texts(prompts, false, 256)
            .map_err(|e| t4v_core::plugin::PluginError::Invalid(e.to_string()))
    }
}

/// A CLIP model with its tokenizer: the text encoder the `text` classifier init uses (prompt
/// templates and ensembles live there).
pub struct Clip<B: Backend> {
    pub model: ClipModel<B>,
    pub tokenizer: ClipTokenizer,
    pub config: ClipConfig,
}

impl<B: Backend> Clip<B> {
    /// Loads a model folder or hub id (see [`hub::resolve`]).
    pub fn load(model: &str, device: &B::Device) -> Result<Self, ClipError> {
        let files = hub::resolve(model)?;
        let (model, config) = ClipModel::load(files.dir(), device)?;
        let tokenizer =
            ClipTokenizer::from_file(&files.tokenizer, config.text_config.max_position_embeddings)?;
        Ok(Self {
            model,
            tokenizer,
            config,
        })
    }
}

impl<B: t4v_fused::FusedBackend> Clip<B> {
    /// Texts → projected features `[N, D]`, in batches of `batch`; L2-normalised if `normalized`.
    pub fn encode_texts(
        &self,
        texts: &[String],
        normalized: bool,
        batch: usize,
    ) -> Result<Tensor<B, 2>, ClipError> {
        let device = self.model.logit_scale.device();
        let mut parts = Vec::new();
        for chunk in texts.chunks(batch.max(1)) {
            let ids = self.tokenizer.encode_batch(chunk)?;
            parts.push(self.model.encode_text(ids_tensor::<B>(&ids, &device)));
        }
        if parts.is_empty() {
            return Ok(Tensor::zeros([0, self.model.embed_dim()], &device));
        }
        let x = Tensor::cat(parts, 0);
        Ok(if normalized { normalize(x) } else { x })
    }
}
