//! Temporal heads: `[B, T, D]` frame embeddings → `[B, D]` video embeddings.
//!
//! `transf` is the reference's "Transf" head: frame position embeddings (77 rows, the CLIP
//! context length, so T ≤ 77), 6 pre-LN blocks of width D with D/64 heads, QuickGELU MLP 4×,
//! no attention mask, LayerNorm eps 1e-12, then the *outer residual* (the input frame
//! embeddings are added back) and the mean over time. `mean` is plain mean pooling (the
//! reference's few-shot configs).
//!
//! [`HEADS`] lists them for the registry; a head is the [`HeadLayout`] of the temporal
//! transformer built here, so a new head of these blocks is a type and a line in a list.

use std::collections::BTreeMap;
use t4v_fused::FusedBackend;

use burn::module::{Module, Param};
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use t4v_clip::layers::{Dims, EncoderLayer, encoder, tensor2};
use t4v_clip::weights::RawTensor;
use t4v_clip::{Activation, ClipError, Weights};
use t4v_core::{HeadLayout, PluginInfo, Registry, TemporalHeadPlugin};

/// The temporal heads of this crate, as the registry lists them.
pub static HEADS: &[&dyn TemporalHeadPlugin] = &[&Mean, &Transf];

/// `mean`: mean pooling over time, no parameters.
pub struct Mean;
impl TemporalHeadPlugin for Mean {
    fn info(&self) -> &'static PluginInfo {
        static INFO: PluginInfo = PluginInfo {
            name: "mean",
            summary: "the mean over frames, no parameters (the reference's few-shot configs)",
            params: &[],
        };
        &INFO
    }
    fn layout(&self, _width: usize) -> HeadLayout {
        HeadLayout {
            blocks: 0,
            heads: 0,
            mlp_ratio: 0,
        }
    }
}

/// `transf`: the reference's Transf head (6 blocks, D/64 heads, MLP 4×).
pub struct Transf;
impl TemporalHeadPlugin for Transf {
    fn info(&self) -> &'static PluginInfo {
        static INFO: PluginInfo = PluginInfo {
            name: "transf",
            summary: "the reference's Transf head: frame positions, 6 pre-LN blocks of D/64 heads, the frames added back, the mean over time (the paper's default)",
            params: &[],
        };
        &INFO
    }
    fn layout(&self, width: usize) -> HeadLayout {
        let cfg = TemporalConfig::reference(width);
        HeadLayout {
            blocks: cfg.layers,
            heads: cfg.heads,
            mlp_ratio: cfg.mlp_ratio,
        }
    }
}

/// The head a spec names (resolved specs name a listed one).
pub fn find(registry: &Registry, name: &str) -> Result<&'static dyn TemporalHeadPlugin, String> {
    registry.head(name).ok_or_else(|| {
        let known: Vec<&str> = registry.heads.iter().map(|h| h.info().name).collect();
        format!(
            "model.temporal_head `{name}` is not in this build (known: {})",
            known.join(", ")
        )
    })
}

/// Rows of the frame position embedding (the reference sizes it by CLIP's context length).
pub const MAX_FRAMES: usize = 77;

#[derive(Clone, Debug, PartialEq)]
pub struct TemporalConfig {
    /// Embedding width D.
    pub width: usize,
    /// Blocks (6 in the reference).
    pub layers: usize,
    /// Attention heads (D / 64 in the reference).
    pub heads: usize,
    /// MLP width / D (4 in the reference).
    pub mlp_ratio: usize,
    pub eps: f64,
}

impl TemporalConfig {
    /// The reference's head for embeddings of width D.
    pub fn reference(width: usize) -> Self {
        Self {
            width,
            layers: 6,
            heads: (width / 64).max(1),
            mlp_ratio: 4,
            eps: 1e-12,
        }
    }

    /// The transformer of a head's layout (`None`: no blocks, mean pooling).
    pub fn of(layout: &HeadLayout, width: usize) -> Option<Self> {
        (layout.blocks > 0).then(|| Self {
            width,
            layers: layout.blocks,
            heads: layout.heads.max(1),
            mlp_ratio: layout.mlp_ratio.max(1),
            eps: 1e-12,
        })
    }

    fn dims(&self) -> Dims {
        Dims {
            width: self.width,
            mlp: self.mlp_ratio * self.width,
            heads: self.heads,
            layers: self.layers,
            eps: self.eps,
            act: Activation::QuickGelu,
        }
    }
}

#[derive(Module, Debug)]
pub struct TransfHead<B: Backend> {
    pub frame_position_embeddings: Param<Tensor<B, 2>>,
    pub layers: Vec<EncoderLayer<B>>,
}

/// A temporal head: mean pooling, or the Transf head when present.
#[derive(Module, Debug)]
pub struct TemporalHead<B: Backend> {
    pub transf: Option<TransfHead<B>>,
}

/// Names of the head's tensors, in the HF-style naming of the CLIP blocks.
const PREFIX: &str = "temporal";

impl<B: FusedBackend> TransfHead<B> {
    /// Loads from tensors named `temporal.frame_position_embeddings.weight` and
    /// `temporal.encoder.layers.N.…` (the block names of the CLIP towers).
    pub fn from_weights(
        cfg: &TemporalConfig,
        mut w: Weights,
        device: &B::Device,
    ) -> Result<Self, ClipError> {
        let pos = w.take(
            &format!("{PREFIX}.frame_position_embeddings.weight"),
            &[MAX_FRAMES, cfg.width],
        )?;
        let head = Self {
            frame_position_embeddings: Param::from_tensor(tensor2(
                pos.data,
                [MAX_FRAMES, cfg.width],
                device,
            )),
            layers: encoder(&mut w, PREFIX, &cfg.dims(), device)?,
        };
        w.finish()?;
        Ok(head)
    }

    /// The reference's initialisation: Linear and Embedding weights N(0, 0.02), biases 0,
    /// LayerNorm 1 / 0; the attention input projection (PyTorch's fused `in_proj_weight`
    /// `[3D, D]`) keeps PyTorch's default xavier-uniform, U(±√(6 / (D + 3D))).
    pub fn init(cfg: &TemporalConfig, seed: u64, device: &B::Device) -> Self {
        let mut rng = t4v_core::SplitMix64::new(seed ^ 0x7E3A_0AA1);
        let d = cfg.width;
        let m = cfg.mlp_ratio * d;
        let mut t: BTreeMap<String, RawTensor> = BTreeMap::new();
        let mut put = |name: String, shape: Vec<usize>, f: &mut dyn FnMut() -> f32| {
            let n = shape.iter().product();
            t.insert(
                name,
                RawTensor {
                    shape,
                    data: (0..n).map(|_| f()).collect(),
                },
            );
        };
        let bound = (6.0 / (4.0 * d as f64)).sqrt();
        put(
            format!("{PREFIX}.frame_position_embeddings.weight"),
            vec![MAX_FRAMES, d],
            &mut || 0.02 * rng.normal() as f32,
        );
        for i in 0..cfg.layers {
            let p = format!("{PREFIX}.encoder.layers.{i}");
            for ln in ["layer_norm1", "layer_norm2"] {
                put(format!("{p}.{ln}.weight"), vec![d], &mut || 1.0);
                put(format!("{p}.{ln}.bias"), vec![d], &mut || 0.0);
            }
            for q in ["q", "k", "v"] {
                put(
                    format!("{p}.self_attn.{q}_proj.weight"),
                    vec![d, d],
                    &mut || (bound * (2.0 * rng.unit() - 1.0)) as f32,
                );
                put(format!("{p}.self_attn.{q}_proj.bias"), vec![d], &mut || 0.0);
            }
            for (name, out, inp) in [
                ("self_attn.out_proj", d, d),
                ("mlp.fc1", m, d),
                ("mlp.fc2", d, m),
            ] {
                put(format!("{p}.{name}.weight"), vec![out, inp], &mut || {
                    0.02 * rng.normal() as f32
                });
                put(format!("{p}.{name}.bias"), vec![out], &mut || 0.0);
            }
        }
        Self::from_weights(
            cfg,
            Weights::from_tensors("<temporal head initialisation>", t),
            device,
        )
        .expect("the initialisation has every tensor")
    }

    /// `[B, T, D]` → `[B, D]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 2> {
        let [b, t, d] = x.dims();
        assert!(
            t <= MAX_FRAMES,
            "the Transf head takes at most {MAX_FRAMES} frames, got {t}"
        );
        let device = x.device();
        let idx = Tensor::<B, 1, Int>::from_data(
            TensorData::new((0..t as i64).collect::<Vec<_>>(), [t]),
            &device,
        );
        let pos = self
            .frame_position_embeddings
            .val()
            .select(0, idx)
            .unsqueeze::<3>();
        let mut h = x.clone() + pos;
        for layer in &self.layers {
            h = layer.forward(h, None);
        }
        (h + x).mean_dim(1).reshape([b, d])
    }
}

impl<B: FusedBackend> TemporalHead<B> {
    /// A head as its plugin lays it out for width `width`, initialised from `seed`.
    pub fn new(head: &dyn TemporalHeadPlugin, width: usize, seed: u64, device: &B::Device) -> Self {
        TemporalHead {
            transf: TemporalConfig::of(&head.layout(width), width)
                .map(|cfg| TransfHead::init(&cfg, seed, device)),
        }
    }

    /// `[B, T, D]` → `[B, D]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 2> {
        match &self.transf {
            None => {
                let [b, _, d] = x.dims();
                x.mean_dim(1).reshape([b, d])
            }
            Some(h) => h.forward(x),
        }
    }
}
