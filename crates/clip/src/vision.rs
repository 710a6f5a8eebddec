//! The CLIP vision transformer: patch embedding (no bias), class token, positional embedding,
//! `ln_pre`, pre-LN blocks, `ln_post` on the class token.

use burn::module::{Module, Param};
use burn::tensor::{Tensor, backend::Backend};

use crate::ClipError;
use crate::config::VisionConfig;
use crate::layers::{
    Dims, EncoderLayer, LayerNorm, encoder, layer_norm, put_encoder, put_layer_norm, tensor1,
    tensor2, transposed,
};
use crate::weights::{Export, Weights};
use t4v_fused::FusedBackend;

#[derive(Module, Debug)]
pub struct VisionTransformer<B: Backend> {
    /// The patch convolution as a matrix `[C·p·p, width]` (a stride-p conv is a matmul).
    pub patch_embedding: Param<Tensor<B, 2>>,
    pub class_embedding: Param<Tensor<B, 1>>,
    pub position_embedding: Param<Tensor<B, 2>>,
    pub pre_layrnorm: LayerNorm<B>,
    pub layers: Vec<EncoderLayer<B>>,
    pub post_layernorm: LayerNorm<B>,
    #[module(skip)]
    pub patch_size: usize,
    #[module(skip)]
    pub image_size: usize,
}

/// Outputs of the vision tower.
pub struct VisionOutput<B: Backend> {
    /// `[N, 1 + g², width]`, after the last block (before `ln_post`).
    pub last_hidden_state: Tensor<B, 3>,
    /// `[N, width]`: `ln_post` of the class token.
    pub pooled: Tensor<B, 2>,
}

impl<B: Backend> VisionTransformer<B> {
    pub(crate) fn load(
        w: &mut Weights,
        c: &VisionConfig,
        device: &B::Device,
    ) -> Result<Self, ClipError> {
        let (d, ch, p) = (c.hidden_size, c.num_channels, c.patch_size);
        let conv = w.take(
            "vision_model.embeddings.patch_embedding.weight",
            &[d, ch, p, p],
        )?;
        let patch = tensor2::<B>(
            transposed(&conv.data, d, ch * p * p),
            [ch * p * p, d],
            device,
        );
        let class = w.take("vision_model.embeddings.class_embedding", &[d])?;
        let pos = w.take(
            "vision_model.embeddings.position_embedding.weight",
            &[c.tokens(), d],
        )?;
        let dims = Dims {
            width: d,
            mlp: c.intermediate_size,
            heads: c.num_attention_heads,
            layers: c.num_hidden_layers,
            eps: c.layer_norm_eps,
            act: c.hidden_act,
        };
        Ok(Self {
            patch_embedding: Param::from_tensor(patch),
            class_embedding: Param::from_tensor(tensor1(class.data, device)),
            position_embedding: Param::from_tensor(tensor2(pos.data, [c.tokens(), d], device)),
            pre_layrnorm: layer_norm(w, "vision_model.pre_layrnorm", d, c.layer_norm_eps, device)?,
            layers: encoder(w, "vision_model", &dims, device)?,
            post_layernorm: layer_norm(
                w,
                "vision_model.post_layernorm",
                d,
                c.layer_norm_eps,
                device,
            )?,
            patch_size: p,
            image_size: c.image_size,
        })
    }

    /// The inverse of `load`: the tower's tensors under their HF names.
    pub fn export(&self, out: &mut Export) {
        let [cpp, d] = self.patch_embedding.dims();
        let p = self.patch_size;
        out.put(
            "vision_model.embeddings.patch_embedding.weight",
            self.patch_embedding.val().transpose(),
            &[d, cpp / (p * p), p, p],
        );
        out.put(
            "vision_model.embeddings.class_embedding",
            self.class_embedding.val(),
            &[d],
        );
        let pos = self.position_embedding.dims();
        out.put(
            "vision_model.embeddings.position_embedding.weight",
            self.position_embedding.val(),
            &pos,
        );
        put_layer_norm(out, "vision_model.pre_layrnorm", &self.pre_layrnorm);
        put_encoder(out, "vision_model", &self.layers);
        put_layer_norm(out, "vision_model.post_layernorm", &self.post_layernorm);
    }
}

impl<B: FusedBackend> VisionTransformer<B> {
    /// `pixels`: `[N, C, H, W]`, normalised, H = W = the configured image size.
    pub fn forward(&self, pixels: Tensor<B, 4>) -> VisionOutput<B> {
        let [n, _, h, w] = pixels.dims();
        assert!(
            h == self.image_size && w == self.image_size,
            "CLIP vision tower: images must be {0}×{0}, got {h}×{w}",
            self.image_size
        );
        let p = self.patch_size;
        let width = self.class_embedding.dims()[0];
        // [N, g², C·p·p]: the conv's receptive fields, one product with the patch weights.
        let patches = t4v_fused::patchify(pixels, p);
        let x = t4v_fused::linear(
            patches,
            self.patch_embedding.val(),
            None,
            t4v_fused::Act::Identity,
        );
        let cls = self
            .class_embedding
            .val()
            .reshape([1, 1, width])
            .expand([n, 1, width]);
        let x = Tensor::cat(vec![cls, x], 1) + self.position_embedding.val().unsqueeze::<3>();
        let mut x = self.pre_layrnorm.forward(x);
        for layer in &self.layers {
            x = layer.forward(x, None);
        }
        let cls = x.clone().narrow(1, 0, 1).reshape([n, width]);
        VisionOutput {
            pooled: self.post_layernorm.forward(cls),
            last_hidden_state: x,
        }
    }
}
