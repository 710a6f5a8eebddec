//! Model files from a folder or from the Hugging Face hub cache. With `HF_HUB_OFFLINE=1` only
//! the cache is read (hf-hub 0.5 has no offline switch of its own).

use std::path::{Path, PathBuf};

use crate::ClipError;

/// The files a CLIP checkpoint needs.
pub const FILES: &[&str] = &["config.json", "model.safetensors", "tokenizer.json"];

/// Where a model's files are.
#[derive(Clone, Debug)]
pub struct ModelFiles {
    pub config: PathBuf,
    pub weights: PathBuf,
    pub tokenizer: PathBuf,
}

impl ModelFiles {
    /// The folder holding the weights (config and tokenizer sit beside them in both layouts).
    pub fn dir(&self) -> &Path {
        self.weights.parent().unwrap_or(Path::new("."))
    }
}

pub fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .is_ok_and(|v| !v.is_empty() && v != "0" && v.to_lowercase() != "false")
}

/// A local folder in HF layout, or a hub model id (`openai/clip-vit-base-patch32`), fetched into
/// the HF cache unless offline.
pub fn resolve(model: &str) -> Result<ModelFiles, ClipError> {
    let dir = Path::new(model);
    if dir.is_dir() {
        let files = ModelFiles {
            config: dir.join("config.json"),
            weights: dir.join("model.safetensors"),
            tokenizer: dir.join("tokenizer.json"),
        };
        if !files.weights.exists() {
            return Err(ClipError::Io {
                path: files.weights,
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no model.safetensors in the model folder",
                ),
            });
        }
        return Ok(files);
    }
    if offline() {
        from_cache(model)
    } else {
        fetch(model, false)
    }
}

/// Files of a model from the HF cache only.
pub fn from_cache(model: &str) -> Result<ModelFiles, ClipError> {
    let repo = hf_hub::Cache::from_env().model(model.to_string());
    let get = |f: &str| {
        repo.get(f).ok_or_else(|| ClipError::NotCached {
            model: model.to_string(),
            file: f.to_string(),
            cache: hf_hub::Cache::from_env().path().clone(),
        })
    };
    Ok(ModelFiles {
        config: get("config.json")?,
        weights: get("model.safetensors")?,
        tokenizer: get("tokenizer.json")?,
    })
}

/// Downloads a model's files into the HF cache (files already there are not downloaded again).
pub fn fetch(model: &str, progress: bool) -> Result<ModelFiles, ClipError> {
    if offline() {
        return from_cache(model);
    }
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .with_progress(progress)
        .build()
        .map_err(|e| ClipError::Hub {
            model: model.to_string(),
            message: e.to_string(),
        })?;
    let repo = api.model(model.to_string());
    let get = |f: &str| {
        repo.get(f).map_err(|e| ClipError::Hub {
            model: model.to_string(),
            message: format!("{f}: {e}"),
        })
    };
    Ok(ModelFiles {
        config: get("config.json")?,
        weights: get("model.safetensors")?,
        tokenizer: get("tokenizer.json")?,
    })
}
