//! `zero-shot`: classify cached frozen features against class-name embeddings, with no
//! training (the video embedding is the mean of the frame features). Reports top-1 / top-5 /
//! mean class accuracy over all classes and, with `half_class_draws`, the half-class protocol
//! (classes of draw s = numpy's `seed(s); permutation(C)[:C/2]`) as mean ± std of top-1.

use t4v_core::{
    Family, Job, ParamDef, ParamType, PluginInfo, Registry, Reporter, RunError, RunKind,
};
use t4v_fused::{FusedAutodiffBackend, FusedBackend};

use super::{
    Body, PRETRAINED, fail, needed_features, on_backend, open_dataset, report_scores, to_vec,
};
use crate::classifier::CosineClassifier;
use crate::init::{classifier_weights, text_tower, video_features};

pub struct ZeroShotRun;

static ZERO_SHOT: PluginInfo = PluginInfo {
    name: "zero-shot",
    summary: "zero-shot evaluation of cached features against class-name text embeddings (full and half-class)",
    params: &[ParamDef {
        name: "half_class_draws",
        ty: ParamType::Int,
        default: "0",
        doc: "draws of the half-class protocol (10 in the paper; 0 = full classes only)",
    }],
};

impl RunKind for ZeroShotRun {
    fn info(&self) -> &'static PluginInfo {
        &ZERO_SHOT
    }

    fn uses(&self) -> &'static [Family] {
        &[Family::Dataset, Family::ClassifierInit]
    }

    fn needs(&self) -> &'static [&'static str] {
        &["features", PRETRAINED]
    }

    fn execute(
        &self,
        job: &Job,
        registry: &Registry,
        reporter: &mut Reporter,
    ) -> Result<(), RunError> {
        on_backend(self, job, registry, reporter)
    }
}

impl Body for ZeroShotRun {
    fn run<B: FusedAutodiffBackend>(
        &self,
        job: &Job,
        registry: &Registry,
        reporter: &mut Reporter,
        device: &B::Device,
    ) -> Result<(), RunError> {
        zero_shot::<B::InnerBackend>(job, registry, reporter, device)
    }
}

fn zero_shot<B: FusedBackend>(
    job: &Job,
    registry: &Registry,
    reporter: &mut Reporter,
    device: &B::Device,
) -> Result<(), RunError> {
    let spec = &job.spec;
    let cached = needed_features(job, "features")?;
    let d = cached.shape[2];
    let dataset = open_dataset(spec, reporter)?;
    let classes = dataset.class_names().to_vec();
    let clip = text_tower::<B>(registry, spec, &spec.model.backbone, device)?;
    let w = classifier_weights(registry, spec, &classes, d, clip.as_ref(), None, device)?;
    let (v, labels) = video_features::<B>(&cached, device);
    // The evaluation logits of the cosine classifier (100 · cos); no training, so no scale.
    let classifier = CosineClassifier::new(w, d, true, burn::tensor::Tensor::zeros([1], device));
    if classifier.projection.is_some() {
        return Err(fail(format!(
            "classifier.init `{}` gives class embeddings of another width than the video \
             features ({d}); zero-shot needs a shared space (use `text`)",
            spec.classifier.init
        )));
    }
    let scores = to_vec(classifier.forward_eval(v))?;
    super::write_classifier(job, reporter, classifier.weight.val(), &classes)?;
    report_scores(
        reporter,
        "test",
        &scores,
        &labels,
        &classes,
        dataset.metrics(),
        &job.run_dir.join("per_class.csv"),
    )?;
    super::half_classes(
        reporter,
        &scores,
        &labels,
        classes.len(),
        job.param_u64("half_class_draws")? as u32,
    );
    Ok(())
}
