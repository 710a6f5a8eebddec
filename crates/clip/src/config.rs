//! CLIP configuration, read from a Hugging Face `config.json`. Defaults are those of
//! `transformers.CLIPTextConfig` / `CLIPVisionConfig`, so a config that omits a field (as the
//! released ones do) means what it means to `transformers`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::ClipError;

/// The activation of the MLP blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `x · sigmoid(1.702 x)`, the activation of every released CLIP.
    QuickGelu,
    /// The exact (erf) GELU.
    Gelu,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// The context length (77 for every released CLIP).
    pub max_position_embeddings: usize,
    pub hidden_act: Activation,
    pub layer_norm_eps: f64,
    pub bos_token_id: i64,
    pub pad_token_id: i64,
    /// `2` is the legacy value of OpenAI's released configs and means "pool at the largest id"
    /// (the end-of-text id 49407 is the largest); any other value is the id to pool at.
    pub eos_token_id: i64,
    pub projection_dim: Option<usize>,
}

impl Default for TextConfig {
    fn default() -> Self {
        Self {
            vocab_size: 49408,
            hidden_size: 512,
            intermediate_size: 2048,
            num_hidden_layers: 12,
            num_attention_heads: 8,
            max_position_embeddings: 77,
            hidden_act: Activation::QuickGelu,
            layer_norm_eps: 1e-5,
            bos_token_id: 49406,
            pad_token_id: 1,
            eos_token_id: 49407,
            projection_dim: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VisionConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_channels: usize,
    pub image_size: usize,
    pub patch_size: usize,
    pub hidden_act: Activation,
    pub layer_norm_eps: f64,
    pub projection_dim: Option<usize>,
}

impl Default for VisionConfig {
    fn default() -> Self {
        Self {
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            num_channels: 3,
            image_size: 224,
            patch_size: 32,
            hidden_act: Activation::QuickGelu,
            layer_norm_eps: 1e-5,
            projection_dim: None,
        }
    }
}

impl VisionConfig {
    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Tokens per image: the class token and one per patch.
    pub fn tokens(&self) -> usize {
        self.grid() * self.grid() + 1
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClipConfig {
    pub text_config: TextConfig,
    pub vision_config: VisionConfig,
    /// Width of the joint embedding space (D).
    pub projection_dim: usize,
    pub logit_scale_init_value: f64,
}

impl Default for ClipConfig {
    fn default() -> Self {
        Self {
            text_config: TextConfig::default(),
            vision_config: VisionConfig::default(),
            projection_dim: 512,
            logit_scale_init_value: 2.6592,
        }
    }
}

impl ClipConfig {
    pub fn from_file(path: &Path) -> Result<Self, ClipError> {
        let text = std::fs::read_to_string(path).map_err(|source| ClipError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let cfg: ClipConfig = serde_json::from_str(&text).map_err(|e| ClipError::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        cfg.validate().map_err(|message| ClipError::Config {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(cfg)
    }

    /// The config as `transformers` writes it: this struct's fields plus the model types and
    /// architecture that `CLIPModel.from_pretrained` dispatches on.
    pub fn to_hf_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("configs serialise");
        v["model_type"] = "clip".into();
        v["architectures"] = serde_json::json!(["CLIPModel"]);
        v["text_config"]["model_type"] = "clip_text_model".into();
        v["vision_config"]["model_type"] = "clip_vision_model".into();
        v["torch_dtype"] = "float32".into();
        for tower in ["text_config", "vision_config"] {
            if v[tower]["projection_dim"].is_null() {
                v[tower]["projection_dim"] = self.projection_dim.into();
            }
        }
        v
    }

    /// Checks the constraints the towers rely on.
    pub fn validate(&self) -> Result<(), String> {
        let (t, v) = (&self.text_config, &self.vision_config);
        if t.hidden_size % t.num_attention_heads != 0 {
            return Err(format!(
                "text_config: hidden_size {} is not divisible by num_attention_heads {}",
                t.hidden_size, t.num_attention_heads
            ));
        }
        if v.hidden_size % v.num_attention_heads != 0 {
            return Err(format!(
                "vision_config: hidden_size {} is not divisible by num_attention_heads {}",
                v.hidden_size, v.num_attention_heads
            ));
        }
        if v.patch_size == 0 || v.image_size % v.patch_size != 0 {
            return Err(format!(
                "vision_config: image_size {} is not a multiple of patch_size {}",
                v.image_size, v.patch_size
            ));
        }
        Ok(())
    }
}
