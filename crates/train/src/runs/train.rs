//! `train`: the paper's recipe end to end — CLIP frames → temporal head → cosine classifier
//! with W from the spec's init, cross-entropy, AdamW on two groups, warm-up + cosine schedule,
//! gradient accumulation to the global batch, validation every `eval.every` epochs, checkpoints
//! `last` (with the optimiser; also every `checkpoint_every` optimiser steps, with the loader's
//! position) and `best` (by validation top-1), and resumption from `last` when a run is
//! attempted again — mid-epoch too, on the same samples in the same order.

use std::path::Path;
use std::sync::Arc;
use t4v_fused::{FusedAutodiffBackend, FusedBackend};

use burn::module::AutodiffModule;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Tensor, TensorData};
use t4v_clip::ClipModel;
use t4v_core::{
    Family, Job, ParamDef, ParamType, PluginInfo, Registry, Reporter, RunError, RunKind, RunSpec,
    VideoEncoder,
};
use t4v_video::Video;
use t4v_video::augment::TrainAugment;
use t4v_video::loader::{LoaderConfig, Mode, epoch_from};

use super::{
    Body, PRETRAINED, eval_loader, eval_split, fail, model_dir, on_backend, open_dataset,
    optional_features, report_scores, score_single_view, workers,
};
use crate::classifier::CosineClassifier;
use crate::encoder::ClipVideoEncoder;
use crate::fit::{self, Fitter, LoopState};
use crate::history::History;
use crate::init::{classifier_weights, text_tower};
use crate::model::VideoClassifier;
use crate::parallel::{Replicas, peer_threads};
use crate::schedule::{Stepper, WarmupCosine};

pub struct TrainRun;

static TRAIN: PluginInfo = PluginInfo {
    name: "train",
    summary: "train the video classifier with the reference recipe (general or few-shot), checkpointed and resumable",
    params: &[
        ParamDef {
            name: "micro_batch",
            ty: ParamType::Int,
            default: "32",
            doc: "clips per forward pass; optim.batch_size is reached by gradient accumulation",
        },
        ParamDef {
            name: "eval_batch",
            ty: ParamType::Int,
            default: "32",
            doc: "clips per forward pass when validating",
        },
        ParamDef {
            name: "checkpoint_every",
            ty: ParamType::Int,
            default: "250",
            doc: "optimiser steps between checkpoints within an epoch (0: at epoch ends only); a re-attempt continues after the latest, with the same sample order (a K400 epoch of the reference has 940 steps)",
        },
    ],
};

impl RunKind for TrainRun {
    fn info(&self) -> &'static PluginInfo {
        &TRAIN
    }

    fn uses(&self) -> &'static [Family] {
        &[
            Family::Dataset,
            Family::ClassifierInit,
            Family::Encoder,
            Family::TemporalHead,
        ]
    }

    fn needs(&self) -> &'static [&'static str] {
        &["features", "init", PRETRAINED]
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

impl Body for TrainRun {
    fn run<B: FusedAutodiffBackend>(
        &self,
        job: &Job,
        registry: &Registry,
        reporter: &mut Reporter,
        device: &B::Device,
    ) -> Result<(), RunError> {
        train::<B>(job, registry, reporter, device)
    }
}

/// The rows of a training split (given by their labels) that a spec's protocol trains on, and
/// how many times an epoch repeats them: every row once (`general`), or K per class drawn with
/// the run's seed, repeated ⌊N / (K·C)⌋ times so an epoch has about the split's length
/// (`few-shot`, as the reference does). Train runs pick videos with it, probe runs cached rows.
pub(crate) fn protocol_rows(
    spec: &RunSpec,
    labels: &[usize],
    classes: usize,
) -> Result<(Vec<usize>, usize), RunError> {
    let n = labels.len();
    match (spec.data.protocol.as_str(), spec.data.shots) {
        ("general", 0) => Ok(((0..n).collect(), 1)),
        ("general" | "few-shot", k) if k > 0 => {
            let rows: Vec<Video> = labels
                .iter()
                .enumerate()
                .map(|(i, &label)| Video {
                    span: None,
                    path: Default::default(),
                    label,
                    frames: None,
                    source: "<train>".into(),
                    line: i,
                })
                .collect();
            let subset =
                t4v_video::protocol::few_shot(&rows, classes, k as usize, spec.seed as u32)
                    .map_err(fail)?;
            let repeat = (n / subset.len().max(1)).max(1);
            Ok((subset.into_iter().map(|v| v.line).collect(), repeat))
        }
        ("few-shot", _) => Err(fail("data.protocol `few-shot` needs data.shots > 0")),
        (p, _) => Err(fail(format!(
            "data.protocol `{p}`: train and probe runs are `general` or `few-shot` (zero-shot runs are `zero-shot` or `eval`)"
        ))),
    }
}

/// The training videos of a spec's protocol, an epoch's worth ([`protocol_rows`]).
fn training_videos(
    spec: &RunSpec,
    dataset: &dyn t4v_core::Dataset,
) -> Result<Vec<Video>, RunError> {
    let all = t4v_datasets::videos(dataset, "train").map_err(fail)?;
    let labels: Vec<usize> = all.iter().map(|v| v.label).collect();
    let (rows, repeat) = protocol_rows(spec, &labels, dataset.class_names().len())?;
    Ok((0..repeat)
        .flat_map(|_| rows.iter().map(|&r| all[r].clone()))
        .collect())
}

/// Builds the classifier of a spec: the CLIP image tower, the temporal head, and W from the init.
pub(crate) fn build<B: FusedBackend>(
    registry: &Registry,
    spec: &RunSpec,
    classes: &[String],
    features: Option<&crate::cache::Features>,
    device: &B::Device,
) -> Result<VideoClassifier<B>, RunError> {
    let (clip, w) = match text_tower::<B>(registry, spec, &spec.model.backbone, device)? {
        Some(clip) => {
            super::check_input_size(spec, &clip.config)?;
            let d = clip.model.embed_dim();
            let w = classifier_weights(registry, spec, classes, d, Some(&clip), features, device)?;
            (clip.model, w)
        }
        None => {
            let (clip, config) =
                ClipModel::<B>::load(&model_dir(&spec.model.backbone)?, device).map_err(fail)?;
            super::check_input_size(spec, &config)?;
            let d = clip.embed_dim();
            let w = classifier_weights(registry, spec, classes, d, None, features, device)?;
            (clip, w)
        }
    };
    let d = clip.embed_dim();
    let logit_scale = clip.logit_scale.val();
    let head = crate::temporal::find(registry, &spec.model.temporal_head).map_err(fail)?;
    let encoder = ClipVideoEncoder::new(clip, head, spec.seed);
    Ok(VideoClassifier {
        classifier: CosineClassifier::new(w, d, spec.classifier.frozen, logit_scale),
        encoder,
    })
}

fn train<B: FusedAutodiffBackend>(
    job: &Job,
    registry: &Registry,
    reporter: &mut Reporter,
    device: &B::Device,
) -> Result<(), RunError> {
    let spec = &job.spec;
    let dataset = open_dataset(spec, reporter)?;
    let classes = dataset.class_names().to_vec();
    let micro = job.param_u64("micro_batch")? as usize;
    let eval_batch = job.param_u64("eval_batch")?.max(1) as usize;
    let global = spec.optim.batch_size as usize;
    if micro == 0 || global == 0 || !global.is_multiple_of(micro) {
        return Err(fail(format!(
            "optim.batch_size {global} is not a positive multiple of params.micro_batch {micro}"
        )));
    }
    let accumulation = global / micro;
    let checkpoint_every = job.param_u64("checkpoint_every")? as usize;
    let train_videos = training_videos(spec, dataset.as_ref())?;
    let iters = train_videos.len() / micro;
    if iters == 0 {
        return Err(fail(format!(
            "{} training videos do not make one micro-batch of {micro}",
            train_videos.len()
        )));
    }
    let val_split = eval_split(dataset.as_ref())?;
    let val_videos = t4v_datasets::videos(dataset.as_ref(), &val_split).map_err(fail)?;
    let train_source = t4v_datasets::source_of(dataset.as_ref(), train_videos).map_err(fail)?;
    let val_source = t4v_datasets::source_of(dataset.as_ref(), val_videos).map_err(fail)?;

    let ckpt = job.run_dir.join("checkpoint");
    let (last_dir, best_dir) = (ckpt.join("last"), ckpt.join("best"));
    let features = optional_features(job, "features")?;
    let mut model = build::<B>(registry, spec, &classes, features.as_ref(), device)?;
    let mut state = LoopState {
        classifier_shape: model.classifier.weight.dims(),
        ..Default::default()
    };
    let peers = job.peers.max(1);
    if micro < peers {
        return Err(fail(format!(
            "params.micro_batch {micro} is smaller than the {peers} data-parallel peers"
        )));
    }
    // Resuming: every peer loads the same checkpoint — never a damaged one: that is said and
    // the run starts afresh.
    let mut resume = None;
    let mut history = History::default();
    if let Some(r) = super::resume_from(&last_dir, model.clone(), device, reporter) {
        (model, state, history, resume) = (r.model, r.state, r.history, Some(r.dir));
        let (at, within) = if state.iteration == 0 {
            (format!("after epoch {}", state.epoch), String::new())
        } else {
            (
                format!(
                    "after step {} of epoch {}",
                    state.iteration.div_ceil(accumulation),
                    state.epoch + 1
                ),
                format!("iteration {} of {iters}, ", state.iteration),
            )
        };
        reporter.log(format!(
            "resuming from the checkpoint {at} ({within}attempt {})",
            job.attempt
        ));
    }
    if resume.is_none()
        && let Some(init) = job.needs.get("init")
    {
        model = init_from(registry, model, &init.run_dir, spec, device)?;
        reporter.log(format!(
            "visual encoder, temporal head and logit scale from run {}",
            init.id
        ));
    }
    let mut replicas = Replicas::new(peers, peer_threads(peers), model, device, |m, d| {
        let f = Fitter::new(&spec.optim, accumulation, m);
        match &resume {
            Some(dir) => f.load(dir, d).map_err(fail),
            None => Ok(f),
        }
    })?;
    if peers > 1 {
        reporter.log(format!(
            "data-parallel over {peers} peers ({} on each)",
            if job.backend == "cpu" {
                format!("{} compute thread(s)", peer_threads(peers))
            } else {
                "one GPU".to_string()
            }
        ));
    }

    let size = spec.model.input_size;
    let train_cfg = LoaderConfig {
        batch: micro,
        frames: spec.model.frames as usize,
        mode: Mode::Train(TrainAugment {
            resize: super::eval_resize(size),
            size,
            ..Default::default()
        }),
        workers: workers(),
        prefetch: 2 * micro,
        seed: spec.seed,
        shuffle: true,
        drop_last: true,
        on_error: super::on_error(spec),
    };
    let epochs = spec.optim.epochs;
    let mut stepper = Stepper::new(
        WarmupCosine {
            total_epochs: epochs as f64,
            warmup_epochs: spec.optim.warmup_epochs as f64,
            final_factor: 0.0,
        },
        iters,
        spec.optim.lr_update_every as usize,
    );
    let total = (epochs as usize * iters) as u64;
    let every = spec.eval.every.max(1);
    // Optimiser steps: one per `accumulation` micro-batches, the last of an epoch flushed.
    let steps_per_epoch = iters.div_ceil(accumulation);
    let first_step = state.epoch as usize * steps_per_epoch + state.iteration / accumulation;
    for e in state.epoch..epochs {
        let (mut sum, mut count) = (state.loss_sum, state.loss_count);
        let first = state.iteration;
        // The schedule's factor as the iterations before `first` left it.
        let mut factor = (0..first)
            .map(|i| stepper.at(e as usize, i))
            .last()
            .unwrap_or(0.0);
        let mut batches = epoch_from(
            Arc::clone(&train_source),
            train_cfg.clone(),
            e as u64,
            state.position,
        );
        batches.skipped = std::mem::take(&mut state.skipped);
        let mut step_loss = (0.0f64, 0usize);
        let mut i = first;
        // Not a `for`: a checkpoint reads the loader's position between batches.
        while let Some(b) = batches.next() {
            let b = b.map_err(fail)?;
            factor = stepper.at(e as usize, i);
            let per = b.shape[1..].iter().product::<usize>();
            let values = replicas.step(b.labels.len(), factor, i + 1 == iters, &|m, ctx| {
                let rows = ctx.loss_rows();
                let mut shape = b.shape;
                shape[0] = rows.len();
                let x = Tensor::<B, 5>::from_data(
                    TensorData::new(b.pixels[rows.start * per..rows.end * per].to_vec(), shape),
                    ctx.device,
                );
                let y = crate::fit::targets::<B>(&b.labels[rows], ctx.device);
                let ce = CrossEntropyLossConfig::new().init(ctx.device);
                Ok(ce.forward(m.forward_train(x), y) * ctx.weight())
            })?;
            let value: f64 = values.iter().sum();
            if !value.is_finite() {
                reporter.metric("train", "loss", e as u64 + 1, value);
                return Err(fail(format!(
                    "non-finite loss: train/loss = {value} at epoch {}, iteration {i}",
                    e + 1
                )));
            }
            sum += value;
            count += 1;
            step_loss = (step_loss.0 + value, step_loss.1 + 1);
            reporter.progress((e as usize * iters + i + 1) as u64, total);
            i += 1;
            if i.is_multiple_of(accumulation) || i == iters {
                // An optimiser step: its loss (the mean of its micro-batches) is a point of
                // `train/step_loss`, and every `checkpoint_every` steps within the epoch a
                // checkpoint holds where the epoch is.
                let step = i.div_ceil(accumulation);
                history.metric(
                    reporter,
                    "train",
                    "step_loss",
                    (e as usize * steps_per_epoch + step) as u64,
                    step_loss.0 / step_loss.1 as f64,
                );
                step_loss = (0.0, 0);
                if checkpoint_every > 0
                    && step.is_multiple_of(checkpoint_every)
                    && i < iters
                    && i.is_multiple_of(accumulation)
                {
                    state.iteration = i;
                    state.position = batches.position();
                    state.loss_sum = sum;
                    state.loss_count = count;
                    state.skipped = batches.skipped.clone();
                    fit::save_checkpoint(
                        &last_dir,
                        replicas.model(),
                        spec,
                        (&state, &history),
                        Some(replicas.fitter()),
                    )
                    .map_err(fail)?;
                }
            }
        }
        super::report_skipped(job, reporter, "train", &batches.skipped)?;
        let epoch_no = e + 1;
        let mean = sum / count.max(1) as f64;
        history.metric(reporter, "train", "loss", epoch_no as u64, mean);
        let lr = spec.optim.lr * factor;
        history.metric(reporter, "train", "lr", epoch_no as u64, lr);
        state.end_epoch(epoch_no);
        if epoch_no.is_multiple_of(every) || epoch_no == epochs {
            let acc = validate::<B::InnerBackend>(
                job,
                &replicas.model().valid(),
                Arc::clone(&val_source),
                eval_loader(spec, eval_batch),
                device,
                reporter,
                &classes,
                dataset.metrics(),
                &job.run_dir.join("per_class.csv"),
            )?;
            history.metric(reporter, "val", "top1", epoch_no as u64, acc);
            if state.best_top1.is_none_or(|b| acc > b) {
                state.best_top1 = Some(acc);
                state.best_epoch = Some(epoch_no);
                fit::save_checkpoint(&best_dir, replicas.model(), spec, (&state, &history), None)
                    .map_err(fail)?;
            }
        }
        fit::save_checkpoint(
            &last_dir,
            replicas.model(),
            spec,
            (&state, &history),
            Some(replicas.fitter()),
        )
        .map_err(fail)?;
    }
    let all_steps = epochs as usize * steps_per_epoch;
    reporter.log(format!(
        "this attempt trained optimiser steps {} to {all_steps} of {all_steps}",
        first_step + 1
    ));
    let model = replicas.finish()?;
    super::write_classifier(job, reporter, model.classifier.weight.val(), &classes)?;
    reporter.artefact("checkpoint", &best_dir.to_string_lossy());
    reporter.artefact("last", &last_dir.to_string_lossy());
    if let (Some(b), Some(e)) = (state.best_top1, state.best_epoch) {
        reporter.summary("best/top1", b);
        reporter.summary("best/epoch", e as f64);
    }
    Ok(())
}

/// Starts from another `train` run's last checkpoint (the reference fine-tunes UCF-101, HMDB-51
/// and ActivityNet from its K400 model): its visual encoder, temporal head and logit scale; W
/// stays this run's, for this run's classes.
fn init_from<B: FusedAutodiffBackend>(
    registry: &Registry,
    mut model: VideoClassifier<B>,
    run_dir: &Path,
    spec: &RunSpec,
    device: &B::Device,
) -> Result<VideoClassifier<B>, RunError> {
    let wanted = run_dir.join("checkpoint").join("last");
    let dir = fit::existing(&wanted)
        .ok_or_else(|| fail(format!("needs.init: no checkpoint at {}", wanted.display())))?;
    let (loaded, from, _) = super::eval::load_checkpoint::<B>(registry, &dir, device)?;
    if from.model.backbone != spec.model.backbone
        || from.model.temporal_head != spec.model.temporal_head
    {
        return Err(fail(format!(
            "needs.init: the checkpoint is {} with a `{}` head, this run is {} with `{}`",
            from.model.backbone,
            from.model.temporal_head,
            spec.model.backbone,
            spec.model.temporal_head
        )));
    }
    model.encoder = loaded.encoder;
    model.classifier.logit_scale = loaded.classifier.logit_scale;
    Ok(model)
}

/// Single-view validation: reports `val/*` summaries and the per-class artefact; returns top-1.
#[allow(clippy::too_many_arguments)]
fn validate<B: FusedBackend>(
    job: &Job,
    model: &VideoClassifier<B>,
    source: Arc<dyn t4v_video::loader::ClipSource>,
    cfg: LoaderConfig,
    device: &B::Device,
    reporter: &mut Reporter,
    classes: &[String],
    metrics: &[t4v_core::plugin::Metric],
    per_class: &Path,
) -> Result<f64, RunError> {
    let (scores, labels, skipped) = score_single_view(
        |x| model.encoder.forward(x),
        &model.classifier,
        source,
        cfg,
        device,
        |_, _| {},
    )?;
    super::report_skipped(job, reporter, "val", &skipped)?;
    let acc = report_scores(
        reporter, "val", &scores, &labels, classes, metrics, per_class,
    )?;
    Ok(acc.top1)
}
