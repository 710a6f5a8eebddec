//! The CLIP tokenizer (`tokenizer.json` through the `tokenizers` crate), context-padded ids, and
//! prompt templates.

use std::path::Path;

use crate::ClipError;

/// The default prompt of the reference (`'a video of a person {}.'`).
pub const DEFAULT_TEMPLATE: &str = "a video of a person {}.";

/// The reference's 28-template ensemble (present but commented out in its code): 4 prefixes ×
/// 7 forms.
pub fn ensemble_templates() -> Vec<String> {
    let prefixes = [
        "a photo of",
        "a video of",
        "a example of",
        "a demonstration of",
    ];
    let forms = [
        "{}",
        "a person {}",
        "a person using {}",
        "a person doing {}",
        "a person during {}",
        "a person performing {}",
        "a person practicing {}",
    ];
    prefixes
        .iter()
        .flat_map(|p| forms.iter().map(move |f| format!("{p} {f}")))
        .collect()
}

pub struct ClipTokenizer {
    inner: tokenizers::Tokenizer,
    context: usize,
    eot: i64,
}

impl ClipTokenizer {
    /// Loads `tokenizer.json`; ids are padded or truncated to `context` (77 for CLIP).
    pub fn from_file(path: &Path, context: usize) -> Result<Self, ClipError> {
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| ClipError::Tokenizer {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let eot = inner
            .token_to_id("<|endoftext|>")
            .ok_or_else(|| ClipError::Tokenizer {
                path: path.to_path_buf(),
                message: "no `<|endoftext|>` token in the vocabulary".into(),
            })? as i64;
        Ok(Self {
            inner,
            context,
            eot,
        })
    }

    pub fn context(&self) -> usize {
        self.context
    }

    /// Ids with start/end tokens and no padding, as OpenAI's tokenizer gives them.
    pub fn ids(&self, text: &str) -> Result<Vec<i64>, ClipError> {
        let enc = self
            .inner
            .encode(text, true)
            .map_err(|e| ClipError::Tokenizer {
                path: "tokenizer.json".into(),
                message: format!("encoding {text:?}: {e}"),
            })?;
        Ok(enc.get_ids().iter().map(|&i| i as i64).collect())
    }

    /// Ids padded with 0 to the context length, as `clip.tokenize(truncate=True)`: a text too
    /// long keeps its first tokens and ends with the end-of-text token.
    pub fn encode(&self, text: &str) -> Result<Vec<i64>, ClipError> {
        let mut ids = self.ids(text)?;
        if ids.len() > self.context {
            ids.truncate(self.context);
            ids[self.context - 1] = self.eot;
        }
        ids.resize(self.context, 0);
        Ok(ids)
    }

    pub fn encode_batch(&self, texts: &[String]) -> Result<Vec<Vec<i64>>, ClipError> {
        texts.iter().map(|t| self.encode(t)).collect()
    }
}
