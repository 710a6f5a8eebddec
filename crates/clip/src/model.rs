//! The two towers, their projections and the logit scale, and the encoding API the rest of the
//! workspace uses.

use std::path::Path;

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

use crate::ClipError;
use crate::config::ClipConfig;
use crate::layers::{apply, linear, put_linear, tensor1};
use crate::text::{TextOutput, TextTransformer};
use crate::vision::{VisionOutput, VisionTransformer};
use crate::weights::{Export, Weights};
use t4v_fused::FusedBackend;

#[derive(Module, Debug)]
pub struct ClipModel<B: Backend> {
    pub vision: VisionTransformer<B>,
    pub text: TextTransformer<B>,
    /// width_v → D, no bias.
    pub visual_projection: Linear<B>,
    /// width_t → D, no bias.
    pub text_projection: Linear<B>,
    /// ln of the logit scale (ln 100 in OpenAI's checkpoints).
    pub logit_scale: Param<Tensor<B, 1>>,
}

impl<B: Backend> ClipModel<B> {
    /// Builds the model from checkpoint tensors; every tensor must be used exactly once.
    pub fn from_weights(
        config: &ClipConfig,
        mut w: Weights,
        device: &B::Device,
    ) -> Result<Self, ClipError> {
        let (t, v, d) = (
            &config.text_config,
            &config.vision_config,
            config.projection_dim,
        );
        let model = Self {
            vision: VisionTransformer::load(&mut w, v, device)?,
            text: TextTransformer::load(&mut w, t, device)?,
            visual_projection: linear(
                &mut w,
                "visual_projection",
                v.hidden_size,
                d,
                false,
                device,
            )?,
            text_projection: linear(&mut w, "text_projection", t.hidden_size, d, false, device)?,
            logit_scale: Param::from_tensor(
                tensor1(w.take("logit_scale", &[])?.data, device).reshape([1]),
            ),
        };
        w.finish()?;
        Ok(model)
    }

    /// A model with fresh random weights (see [`Weights::random`]), for training from scratch
    /// and for benchmarks.
    pub fn init_random(config: &ClipConfig, seed: u64, device: &B::Device) -> Self {
        Self::from_weights(config, Weights::random(seed), device)
            .expect("random weights have every shape")
    }

    /// Loads `model.safetensors` (HF or OpenAI names) with `config.json` from a folder; an
    /// OpenAI checkpoint without a config gets one inferred from its shapes.
    pub fn load(dir: &Path, device: &B::Device) -> Result<(Self, ClipConfig), ClipError> {
        let weights = Weights::from_file(&dir.join("model.safetensors"))?;
        let cfg_path = dir.join("config.json");
        let config = if cfg_path.exists() {
            ClipConfig::from_file(&cfg_path)?
        } else if weights.naming == crate::weights::Naming::OpenAi {
            weights.infer_config()?
        } else {
            return Err(ClipError::Io {
                path: cfg_path,
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no config.json beside the weights",
                ),
            });
        };
        Ok((Self::from_weights(&config, weights, device)?, config))
    }

    /// Every tensor under its HF name: the inverse of [`ClipModel::from_weights`].
    pub fn export(&self) -> Export {
        let mut out = Export::default();
        self.vision.export(&mut out);
        self.text.export(&mut out);
        put_linear(&mut out, "visual_projection", &self.visual_projection);
        put_linear(&mut out, "text_projection", &self.text_projection);
        out.put("logit_scale", self.logit_scale.val(), &[]);
        out
    }

    /// Writes `dir/model.safetensors` and `dir/config.json`: a checkpoint in Hugging Face layout
    /// (with a `tokenizer.json` beside it, a model folder any CLIP plugin loads).
    pub fn save(&self, config: &ClipConfig, dir: &Path) -> Result<(), ClipError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ClipError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        self.export().write(&dir.join("model.safetensors"))?;
        let cfg = dir.join("config.json");
        let text = serde_json::to_string_pretty(&config.to_hf_json()).expect("configs serialise");
        std::fs::write(&cfg, text + "\n").map_err(io(&cfg))
    }

    /// Width D of the joint embedding space.
    pub fn embed_dim(&self) -> usize {
        self.visual_projection.weight.dims()[1]
    }
}

impl<B: FusedBackend> ClipModel<B> {
    pub fn vision_forward(&self, pixels: Tensor<B, 4>) -> VisionOutput<B> {
        self.vision.forward(pixels)
    }

    pub fn text_forward(&self, ids: Tensor<B, 2, Int>) -> TextOutput<B> {
        self.text.forward(ids)
    }

    /// Images `[N, 3, H, W]` (normalised pixels) → projected features `[N, D]`.
    pub fn encode_image(&self, pixels: Tensor<B, 4>) -> Tensor<B, 2> {
        apply(&self.visual_projection, self.vision.forward(pixels).pooled)
    }

    /// Token ids `[N, L]` → projected features `[N, D]`.
    pub fn encode_text(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 2> {
        apply(&self.text_projection, self.text.forward(ids).pooled)
    }

    /// `exp(logit_scale) · norm(image) · norm(text)ᵀ`: `[N_images, N_texts]`.
    pub fn logits_per_image(
        &self,
        image_features: Tensor<B, 2>,
        text_features: Tensor<B, 2>,
    ) -> Tensor<B, 2> {
        let scale = self.logit_scale.val().exp().unsqueeze::<2>();
        normalize(image_features).matmul(normalize(text_features).transpose()) * scale
    }

    /// Encodes in batches of `batch` images, so large sets fit in memory.
    pub fn encode_images_batched(&self, pixels: Tensor<B, 4>, batch: usize) -> Tensor<B, 2> {
        let n = pixels.dims()[0];
        let parts: Vec<Tensor<B, 2>> = (0..n)
            .step_by(batch.max(1))
            .map(|s| self.encode_image(pixels.clone().narrow(0, s, batch.max(1).min(n - s))))
            .collect();
        Tensor::cat(parts, 0)
    }

    /// The model with its text tower frozen: no gradients are tracked for it under autodiff,
    /// as in the paper, where only the visual side is trained.
    pub fn freeze_text(mut self) -> Self {
        self.text = self.text.no_grad();
        self.text_projection = self.text_projection.no_grad();
        self
    }
}

/// L2 normalisation along the last dimension.
pub fn normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x
        .clone()
        .powf_scalar(2.0)
        .sum_dim(1)
        .sqrt()
        .clamp_min(1e-12);
    x / norm
}

/// Token ids as a tensor.
pub fn ids_tensor<B: Backend>(ids: &[Vec<i64>], device: &B::Device) -> Tensor<B, 2, Int> {
    let n = ids.len();
    let l = ids.first().map(|r| r.len()).unwrap_or(0);
    let flat: Vec<i64> = ids.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_data(TensorData::new(flat, [n, l]), device)
}
