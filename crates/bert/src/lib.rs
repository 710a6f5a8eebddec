//! BERT-family sentence encoders for the `text-bert` classifier init: the paper's "BERT text
//! embeddings of the class names" ablation (REFERENCE.md §1.3). A [`SentenceEncoder`] is a
//! [`BertModel`] with its WordPiece tokenizer and sentence-transformers' mean pooling; it loads
//! the Hugging Face layout (`config.json`, `model.safetensors`, `tokenizer.json`) from a folder or
//! the hub, e.g. `sentence-transformers/all-MiniLM-L6-v2`.

pub mod model;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use t4v_clip::{ClipError, Weights};
use t4v_core::plugin::{PluginError, TextEncoder};

pub use model::{BertConfig, BertModel};

#[derive(Debug, thiserror::Error)]
pub enum BertError {
    #[error(transparent)]
    Load(#[from] ClipError),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
}

/// A sentence encoder: tokenizer, encoder, mean pooling. Embeddings are not normalised
/// (sentence-transformers' `Normalize` module is the caller's L2 normalisation).
pub struct SentenceEncoder<B: Backend> {
    pub model: BertModel<B>,
    pub config: BertConfig,
    tokenizer: tokenizers::Tokenizer,
    tokenizer_path: PathBuf,
    device: B::Device,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, BertError> {
    let text = std::fs::read_to_string(path).map_err(|e| BertError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| BertError::File {
        path: path.to_path_buf(),
        message: format!("line {}, column {}: {e}", e.line(), e.column()),
    })
}

impl<B: Backend> SentenceEncoder<B> {
    /// Loads a model folder or hub id (see `t4v_clip::hub::resolve`: the same three files).
    pub fn load(model: &str, device: &B::Device) -> Result<Self, BertError> {
        let files = t4v_clip::hub::resolve(model)?;
        let config: BertConfig = read_json(&files.config)?;
        let weights = Weights::from_file(&files.weights)?;
        let bert = BertModel::from_weights(&config, weights, device)?;
        // sentence-transformers truncates at `max_seq_length` (256 for all-MiniLM-L6-v2), not at
        // the 128 the tokenizer file asks for; without its config, at the position table.
        #[derive(serde::Deserialize)]
        struct St {
            max_seq_length: usize,
        }
        let st_config = files.dir().join("sentence_bert_config.json");
        let max_len = if st_config.exists() {
            read_json::<St>(&st_config)?.max_seq_length
        } else {
            config.max_position_embeddings
        }
        .min(config.max_position_embeddings);
        let bad = |message: String| BertError::File {
            path: files.tokenizer.clone(),
            message,
        };
        let mut tokenizer =
            tokenizers::Tokenizer::from_file(&files.tokenizer).map_err(|e| bad(e.to_string()))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            model: bert,
            config,
            tokenizer,
            tokenizer_path: files.tokenizer,
            device: device.clone(),
        })
    }
}

impl<B: t4v_fused::FusedBackend> SentenceEncoder<B> {
    /// Sentences → mean-pooled embeddings `[N, D]`. Sentences of equal token length run as one
    /// batch, so no padding (and no attention mask) is ever needed.
    pub fn embed(&self, sentences: &[String]) -> Result<Tensor<B, 2>, BertError> {
        let d = self.model.width();
        let mut by_len: BTreeMap<usize, Vec<(usize, Vec<u32>)>> = BTreeMap::new();
        for (i, s) in sentences.iter().enumerate() {
            let enc = self
                .tokenizer
                .encode(s.as_str(), true)
                .map_err(|e| BertError::File {
                    path: self.tokenizer_path.clone(),
                    message: format!("sentence {i} ({s:?}): {e}"),
                })?;
            let ids = enc.get_ids().to_vec();
            by_len.entry(ids.len()).or_default().push((i, ids));
        }
        let mut rows: Vec<Option<Vec<f32>>> = vec![None; sentences.len()];
        for (len, group) in by_len {
            let n = group.len();
            let flat: Vec<i64> = group
                .iter()
                .flat_map(|(_, ids)| ids.iter().map(|&t| t as i64))
                .collect();
            let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(flat, [n, len]), &self.device);
            let out: Vec<f32> = self
                .model
                .mean_pooled(ids)
                .into_data()
                .convert::<f32>()
                .to_vec()
                .expect("f32 data");
            for (k, (i, _)) in group.iter().enumerate() {
                rows[*i] = Some(out[k * d..(k + 1) * d].to_vec());
            }
        }
        let data: Vec<f32> = rows
            .into_iter()
            .flat_map(|r| r.expect("every row"))
            .collect();
        Ok(Tensor::from_data(
            TensorData::new(data, [sentences.len(), d]),
            &self.device,
        ))
    }
}

impl<B: t4v_fused::FusedBackend> TextEncoder<B> for SentenceEncoder<B> {
    fn embed_dim(&self) -> usize {
        self.model.width()
    }

    fn encode(&self, prompts: &[String]) -> Result<Tensor<B, 2>, PluginError> {
        self.embed(prompts)
            .map_err(|e| PluginError::Invalid(e.to_string()))
    }
}
