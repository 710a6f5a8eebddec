//! The trained models: the full video classifier (CLIP frames → temporal head → cosine
//! classifier) and the probe (temporal head → cosine classifier on cached frozen features), with
//! the parameter groups of the reference's optimiser.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::tensor::{Tensor, backend::Backend};
use t4v_core::VideoEncoder;
use t4v_core::plugin::ParamGroups;
use t4v_fused::FusedBackend;

use crate::classifier::CosineClassifier;
use crate::encoder::ClipVideoEncoder;
use crate::temporal::TemporalHead;

/// Ids of the float parameters of a module.
pub fn param_ids<B: FusedBackend, M: Module<B>>(module: &M) -> Vec<ParamId> {
    struct Ids(Vec<ParamId>);
    impl<B: Backend> ModuleVisitor<B> for Ids {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.0.push(param.id);
        }
    }
    let mut ids = Ids(Vec::new());
    module.visit(&mut ids);
    ids.0
}

/// Models trained with the two-group recipe: the pretrained part and the logit scale at
/// `lr × clip_ratio`, the new part at `lr`.
pub trait Grouped {
    fn groups(&self) -> ParamGroups;
}

/// The classifier's share of the groups: the logit scale goes with the backbone (the
/// reference's `visual` + `logit_scale` group), W (when trained) and the projection with the head.
fn classifier_groups<B: FusedBackend>(c: &CosineClassifier<B>, groups: &mut ParamGroups) {
    groups.backbone.push(c.logit_scale.id);
    groups.head.push(c.weight.id);
    if let Some(p) = &c.projection {
        groups.head.extend(param_ids(p));
    }
}

#[derive(Module, Debug)]
pub struct VideoClassifier<B: Backend> {
    pub encoder: ClipVideoEncoder<B>,
    pub classifier: CosineClassifier<B>,
}

impl<B: FusedBackend> VideoClassifier<B> {
    /// Frames `[B, T, 3, H, W]` → training logits.
    pub fn forward_train(&self, frames: Tensor<B, 5>) -> Tensor<B, 2> {
        self.classifier.forward_train(self.encoder.forward(frames))
    }
}

impl<B: FusedBackend> Grouped for VideoClassifier<B> {
    fn groups(&self) -> ParamGroups {
        let mut g = self.encoder.param_groups();
        classifier_groups(&self.classifier, &mut g);
        g
    }
}

/// A probe: only what comes after the frozen frame features is trained.
#[derive(Module, Debug)]
pub struct Probe<B: Backend> {
    pub head: TemporalHead<B>,
    pub classifier: CosineClassifier<B>,
}

impl<B: FusedBackend> Probe<B> {
    /// Frame features `[B, T, D]` → video embeddings `[B, D]`.
    pub fn embed(&self, features: Tensor<B, 3>) -> Tensor<B, 2> {
        self.head.forward(features)
    }
}

impl<B: FusedBackend> Grouped for Probe<B> {
    fn groups(&self) -> ParamGroups {
        let mut g = ParamGroups {
            backbone: Vec::new(),
            head: param_ids(&self.head),
        };
        classifier_groups(&self.classifier, &mut g);
        g
    }
}

/// A CLIP pretrained from scratch: every parameter at the recipe's rate (the head group).
impl<B: FusedBackend> Grouped for t4v_clip::ClipModel<B> {
    fn groups(&self) -> ParamGroups {
        ParamGroups {
            backbone: Vec::new(),
            head: param_ids(self),
        }
    }
}
