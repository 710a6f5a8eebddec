//! `eval`: a trained checkpoint on a dataset's evaluation split, single- or multi-view
//! (`eval.crops` × `eval.clips`, view embeddings averaged before the classifier). The
//! architecture and weights come from the checkpoint of the `train` run it needs; its own spec
//! gives the data, `model.frames` and the views. With `reinit`, W is recomputed from its own
//! `classifier` spec for its dataset's classes: a trained model evaluated zero-shot on other
//! classes, as the paper does with its K400 model.

use burn::module::Param;
use burn::tensor::Tensor;
use t4v_clip::ClipModel;
use t4v_core::{
    Family, Job, ParamDef, ParamType, PluginInfo, Registry, Reporter, RunError, RunKind, RunSpec,
    VideoEncoder,
};
use t4v_fused::{FusedAutodiffBackend, FusedBackend};

use super::{
    Body, PRETRAINED, eval_split, fail, model_dir, on_backend, open_dataset, report_scores,
};
use crate::classifier::CosineClassifier;
use crate::encoder::ClipVideoEncoder;
use crate::fit::{self, LoopState};
use crate::init::{classifier_weights, text_tower};
use crate::model::VideoClassifier;

pub struct EvalRun;

static EVAL: PluginInfo = PluginInfo {
    name: "eval",
    summary: "evaluate a train run's checkpoint, single- or multi-view (eval.crops × eval.clips)",
    params: &[
        ParamDef {
            name: "checkpoint",
            ty: ParamType::Str,
            default: "\"best\"",
            doc: "which checkpoint of the train run: best (by validation top-1) or last",
        },
        ParamDef {
            name: "reinit",
            ty: ParamType::Bool,
            default: "false",
            doc: "recompute W from this spec's classifier for this dataset's classes (cross-dataset zero-shot)",
        },
        ParamDef {
            name: "batch",
            ty: ParamType::Int,
            default: "8",
            doc: "videos per forward pass (each with crops × clips views)",
        },
        ParamDef {
            name: "split",
            ty: ParamType::Str,
            default: "\"\"",
            doc: "the split to evaluate (default: the dataset's val or test split; `full`: every video, the zero-shot protocols)",
        },
        ParamDef {
            name: "half_class_draws",
            ty: ParamType::Int,
            default: "0",
            doc: "draws of the half-class zero-shot protocol (10 in the paper; 0 = full classes only)",
        },
    ],
};

impl RunKind for EvalRun {
    fn info(&self) -> &'static PluginInfo {
        &EVAL
    }

    fn uses(&self) -> &'static [Family] {
        // The init re-initialises W when `params.reinit` is set.
        &[Family::Dataset, Family::ClassifierInit]
    }

    fn needs(&self) -> &'static [&'static str] {
        &["train", PRETRAINED]
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

impl Body for EvalRun {
    fn run<B: FusedAutodiffBackend>(
        &self,
        job: &Job,
        registry: &Registry,
        reporter: &mut Reporter,
        device: &B::Device,
    ) -> Result<(), RunError> {
        eval::<B::InnerBackend>(job, registry, reporter, device)
    }
}

/// A `train` run's checkpoint folder: the model as trained, the run's spec and loop state.
pub(crate) fn load_checkpoint<B: FusedBackend>(
    registry: &Registry,
    dir: &std::path::Path,
    device: &B::Device,
) -> Result<(VideoClassifier<B>, RunSpec, LoopState), RunError> {
    // A damaged checkpoint is never evaluated.
    fit::verify(dir).map_err(fail)?;
    let trained: RunSpec = fit::read_json(dir, "spec.json").map_err(fail)?;
    let state: LoopState = fit::read_json(dir, "state.json").map_err(fail)?;
    // The architecture of the checkpoint, then its weights.
    let (clip, _) =
        ClipModel::<B>::load(&model_dir(&trained.model.backbone)?, device).map_err(fail)?;
    let d = clip.embed_dim();
    let head = crate::temporal::find(registry, &trained.model.temporal_head).map_err(fail)?;
    let encoder = ClipVideoEncoder::new(clip, head, trained.seed);
    let skeleton = VideoClassifier {
        encoder,
        classifier: CosineClassifier::new(
            Tensor::zeros(state.classifier_shape, device),
            d,
            trained.classifier.frozen,
            Tensor::zeros([1], device),
        ),
    };
    let model = fit::load_model(dir, skeleton, device).map_err(fail)?;
    Ok((model, trained, state))
}

fn eval<B: FusedBackend>(
    job: &Job,
    registry: &Registry,
    reporter: &mut Reporter,
    device: &B::Device,
) -> Result<(), RunError> {
    let spec = &job.spec;
    let need = job
        .needs
        .get("train")
        .ok_or_else(|| fail("needs a `train` run (needs: #{ train: ... })"))?;
    let which = job.param_str("checkpoint")?;
    if !["best", "last"].contains(&which) {
        return Err(fail(format!(
            "params.checkpoint `{which}`: expected best or last"
        )));
    }
    let wanted = need.run_dir.join("checkpoint").join(which);
    let dir = fit::existing(&wanted)
        .ok_or_else(|| fail(format!("no checkpoint at {}", wanted.display())))?;
    let (mut model, trained, state) = load_checkpoint::<B>(registry, &dir, device)?;
    let d = model.encoder.embed_dim();
    reporter.log(format!(
        "checkpoint {} (epoch {}, validation top-1 {:?})",
        dir.display(),
        state.epoch,
        state.best_top1
    ));

    let dataset = open_dataset(spec, reporter)?;
    let classes = dataset.class_names().to_vec();
    if job.param("reinit")?.as_bool() == Some(true) {
        let clip = text_tower::<B>(registry, spec, &trained.model.backbone, device)?;
        let w = classifier_weights(registry, spec, &classes, d, clip.as_ref(), None, device)?;
        if w.dims()[1] != state.classifier_shape[1] {
            return Err(fail(format!(
                "params.reinit: classifier.init `{}` gives width {}, the checkpoint's classifier has {}",
                spec.classifier.init,
                w.dims()[1],
                state.classifier_shape[1]
            )));
        }
        model.classifier.weight = Param::from_tensor(w);
    } else if classes.len() != state.classifier_shape[0] {
        return Err(fail(format!(
            "the checkpoint classifies {} classes, {} has {}; set params.reinit to evaluate on other classes",
            state.classifier_shape[0],
            spec.data.dataset,
            classes.len()
        )));
    }

    let split = match job.param_str("split")? {
        "" => eval_split(dataset.as_ref())?,
        s => s.to_string(),
    };
    let videos = t4v_datasets::videos(dataset.as_ref(), &split).map_err(fail)?;
    let source = t4v_datasets::source_of(dataset.as_ref(), videos).map_err(fail)?;
    let mut view_spec = spec.clone();
    view_spec.model.input_size = trained.model.input_size;
    let batch = job.param_u64("batch")?.max(1) as usize;
    let (scores, labels, skipped) = super::score_multi_view(
        |x| model.encoder.forward(x),
        &model.classifier,
        source.as_ref(),
        &view_spec,
        batch,
        device,
        |done, n| reporter.progress(done as u64, n as u64),
    )?;
    super::report_skipped(job, reporter, "test", &skipped)?;
    report_scores(
        reporter,
        "test",
        &scores,
        &labels,
        &classes,
        dataset.metrics(),
        &job.run_dir.join("per_class.csv"),
    )?;
    reporter.summary("test/views", (spec.eval.crops * spec.eval.clips) as f64);
    super::half_classes(
        reporter,
        &scores,
        &labels,
        classes.len(),
        job.param_u64("half_class_draws")? as u32,
    );
    Ok(())
}
