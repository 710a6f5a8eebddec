//! The CLIP video encoder: every frame through the CLIP image tower (B·T images at once), then
//! a temporal head. Implements the core `VideoEncoder` trait.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::nn::Linear;
use burn::tensor::{Tensor, backend::Backend};
use t4v_clip::ClipModel;
use t4v_clip::vision::VisionTransformer;
use t4v_core::plugin::ParamGroups;
use t4v_core::{EncoderPlugin, Need, TemporalHeadPlugin, VideoEncoder};
use t4v_fused::FusedBackend;

use crate::temporal::TemporalHead;

/// The video encoders of this crate, as the registry lists them.
pub static ENCODERS: &[&dyn EncoderPlugin] = &[&Clip];

/// `clip`: [`ClipVideoEncoder`].
pub struct Clip;
impl EncoderPlugin for Clip {
    fn info(&self) -> &'static t4v_core::PluginInfo {
        static INFO: t4v_core::PluginInfo = t4v_core::PluginInfo {
            name: "clip",
            summary: "the CLIP image tower on every frame (model.backbone), then the temporal head model.temporal_head names",
            params: &[],
        };
        &INFO
    }
    fn needs(&self) -> &'static [Need] {
        &[Need::Clip]
    }
}

#[derive(Module, Debug)]
pub struct ClipVideoEncoder<B: Backend> {
    pub vision: VisionTransformer<B>,
    pub visual_projection: Linear<B>,
    pub head: TemporalHead<B>,
}

impl<B: FusedBackend> ClipVideoEncoder<B> {
    /// Takes the image tower of a CLIP model (the text tower is not part of the trained model)
    /// and adds the temporal head `head` lays out.
    pub fn new(clip: ClipModel<B>, head: &dyn TemporalHeadPlugin, seed: u64) -> Self {
        let dim = clip.embed_dim();
        let device = clip.logit_scale.device();
        Self {
            head: TemporalHead::new(head, dim, seed, &device),
            vision: clip.vision,
            visual_projection: clip.visual_projection,
        }
    }
}

/// Collects the ids of float parameters.
struct Ids(Vec<ParamId>);

impl<B: Backend> ModuleVisitor<B> for Ids {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.0.push(param.id);
    }
}

impl<B: FusedBackend> VideoEncoder<B> for ClipVideoEncoder<B> {
    fn embed_dim(&self) -> usize {
        self.visual_projection.weight.dims()[1]
    }

    fn frame_features(&self, frames: Tensor<B, 5>) -> Tensor<B, 3> {
        let [b, t, c, h, w] = frames.dims();
        let x = self.vision.forward(frames.reshape([b * t, c, h, w])).pooled;
        let d = self.embed_dim();
        t4v_clip::layers::apply(&self.visual_projection, x).reshape([b, t, d])
    }

    fn temporal(&self, frame_features: Tensor<B, 3>) -> Tensor<B, 2> {
        self.head.forward(frame_features)
    }

    fn param_groups(&self) -> ParamGroups {
        let mut backbone = Ids(Vec::new());
        self.vision.visit(&mut backbone);
        self.visual_projection.visit(&mut backbone);
        let mut head = Ids(Vec::new());
        self.head.visit(&mut head);
        ParamGroups {
            backbone: backbone.0,
            head: head.0,
        }
    }
}
