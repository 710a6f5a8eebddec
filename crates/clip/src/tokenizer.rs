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

/// Special tokens of a [`word_level`] tokenizer, by id: padding (0, what [`ClipTokenizer::encode`]
/// pads with), unknown words, start and end of text.
pub const WORD_LEVEL_SPECIALS: [&str; 4] = ["[PAD]", "[UNK]", "<|startoftext|>", "<|endoftext|>"];

/// Builds a tokenizer for a closed vocabulary (the captions of the synthetic world) with the
/// `tokenizers` word-level trainer: lower-cased, split on whitespace and punctuation, each text
/// wrapped in `<|startoftext|> … <|endoftext|>` like CLIP's, words outside the captions read
/// as `[UNK]`. A BPE of 49k merges would be wasted on a vocabulary of a few dozen words.
pub fn word_level(texts: &[String]) -> Result<tokenizers::Tokenizer, String> {
    use tokenizers::models::TrainerWrapper;
    use tokenizers::models::wordlevel::{WordLevel, WordLevelTrainer};
    use tokenizers::normalizers::Lowercase;
    use tokenizers::pre_tokenizers::whitespace::Whitespace;
    use tokenizers::processors::template::TemplateProcessing;

    let e = |e: Box<dyn std::error::Error + Send + Sync>| e.to_string();
    let [_, unk, sot, eot] = WORD_LEVEL_SPECIALS;
    let mut trainer: TrainerWrapper = WordLevelTrainer::builder()
        .show_progress(false)
        .special_tokens(
            WORD_LEVEL_SPECIALS
                .iter()
                .map(|s| tokenizers::AddedToken::from(*s, true))
                .collect(),
        )
        .build()
        .map_err(|x| x.to_string())?
        .into();
    let model = WordLevel::builder()
        .unk_token(unk.into())
        .build()
        .map_err(e)?;
    let mut tk = tokenizers::Tokenizer::new(model);
    tk.with_normalizer(Some(Lowercase));
    tk.with_pre_tokenizer(Some(Whitespace {}));
    tk.train(&mut trainer, texts.iter()).map_err(e)?;
    let id = |t: &str| {
        tk.token_to_id(t)
            .ok_or_else(|| format!("the trained vocabulary lacks `{t}`"))
    };
    let processor = TemplateProcessing::builder()
        .try_single(format!("{sot} $A {eot}"))
        .map_err(|x| x.to_string())?
        .special_tokens(vec![(sot, id(sot)?), (eot, id(eot)?)])
        .build()
        .map_err(|x| x.to_string())?;
    tk.with_post_processor(Some(processor));
    Ok(tk)
}

#[cfg(test)]
mod word_level_tests {
    use super::*;

    #[test]
    fn word_level_tokenizer_wraps_and_knows_its_words() {
        let texts = vec![
            "a red circle moving left".to_string(),
            "a video of a blue square growing.".to_string(),
        ];
        let tk = word_level(&texts).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        tk.save(&path, false).unwrap();
        let clip = ClipTokenizer::from_file(&path, 12).unwrap();
        for (i, s) in WORD_LEVEL_SPECIALS.iter().enumerate() {
            assert_eq!(tk.token_to_id(s), Some(i as u32), "{s}");
        }
        let ids = clip.ids("A Red square moving LEFT.").unwrap();
        assert_eq!(ids.len(), 2 + 6);
        assert_eq!((ids[0], ids[7]), (2, 3));
        assert!(ids[1..7].iter().all(|&i| i > 3), "{ids:?}");
        // A word outside the captions is unknown, not an error.
        assert_eq!(clip.ids("a purple circle").unwrap()[2], 1);
        let padded = clip.encode("a red circle").unwrap();
        assert_eq!(padded.len(), 12);
        assert_eq!(&padded[5..], &[0; 7]);
    }
}
