//! `probe`: the frozen encoder's cached frame features, and only what comes after them trained
//! (temporal head, classifier projection, logit scale; W too when not frozen) with the
//! reference's optimiser and schedule — seconds per run, for sweeping inits and seeds.

use burn::module::AutodiffModule;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Tensor, TensorData};
use t4v_core::{
    Family, Job, ParamDef, ParamType, PluginInfo, Registry, Reporter, RunError, RunKind,
};
use t4v_fused::{FusedAutodiffBackend, FusedBackend};

use super::{
    Body, PRETRAINED, fail, needed_features, on_backend, open_dataset, report_scores, to_vec,
};
use crate::cache::Features;
use crate::classifier::CosineClassifier;
use crate::fit::Fitter;
use crate::init::{classifier_weights, text_tower};
use crate::metrics::accuracy;
use crate::model::Probe;
use crate::parallel::{Replicas, peer_threads};
use crate::schedule::{Stepper, WarmupCosine};
use crate::temporal::TemporalHead;

pub struct ProbeRun;

static PROBE: PluginInfo = PluginInfo {
    name: "probe",
    summary: "train only the temporal head / classifier on cached frozen features (needs: features = train, test = evaluation)",
    params: &[ParamDef {
        name: "logit_scale",
        ty: ParamType::Float,
        default: "100.0",
        doc: "initial training temperature (OpenAI's CLIP checkpoints carry 100)",
    }],
};

impl RunKind for ProbeRun {
    fn info(&self) -> &'static PluginInfo {
        &PROBE
    }

    fn uses(&self) -> &'static [Family] {
        &[
            Family::Dataset,
            Family::ClassifierInit,
            Family::TemporalHead,
        ]
    }

    fn needs(&self) -> &'static [&'static str] {
        &["features", "test", PRETRAINED]
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

impl Body for ProbeRun {
    fn run<B: FusedAutodiffBackend>(
        &self,
        job: &Job,
        registry: &Registry,
        reporter: &mut Reporter,
        device: &B::Device,
    ) -> Result<(), RunError> {
        probe::<B>(job, registry, reporter, device)
    }
}

/// Rows `idx` of cached features as a `[b, T, D]` tensor, with their labels.
fn gather<B: FusedBackend>(
    f: &Features,
    idx: &[usize],
    device: &B::Device,
) -> (Tensor<B, 3>, Vec<usize>) {
    let rows = subset(f, idx);
    (
        Tensor::from_data(TensorData::new(rows.data, rows.shape), device),
        rows.labels,
    )
}

/// Rows `rows` of cached features.
fn subset(f: &Features, rows: &[usize]) -> Features {
    let [_, t, d] = f.shape;
    let row = t * d;
    Features {
        data: rows
            .iter()
            .flat_map(|&i| f.data[i * row..(i + 1) * row].iter().copied())
            .collect(),
        shape: [rows.len(), t, d],
        labels: rows.iter().map(|&i| f.labels[i]).collect(),
    }
}

/// Evaluation scores of `model` on all of `f`, in batches.
fn scores<B: FusedBackend>(
    model: &Probe<B>,
    f: &Features,
    batch: usize,
    device: &B::Device,
) -> Result<Vec<f32>, RunError> {
    let n = f.shape[0];
    let mut out = Vec::new();
    for start in (0..n).step_by(batch.max(1)) {
        let idx: Vec<usize> = (start..(start + batch).min(n)).collect();
        let (x, _) = gather::<B>(f, &idx, device);
        out.extend(to_vec(model.classifier.forward_eval(model.embed(x)))?);
    }
    Ok(out)
}

fn probe<B: FusedAutodiffBackend>(
    job: &Job,
    registry: &Registry,
    reporter: &mut Reporter,
    device: &B::Device,
) -> Result<(), RunError> {
    let spec = &job.spec;
    let train = needed_features(job, "features")?;
    let test = needed_features(job, "test")?;
    let [_, t, d] = train.shape;
    if test.shape[1..] != train.shape[1..] {
        return Err(fail(format!(
            "train features are [N, {t}, {d}] but test features are {:?}",
            test.shape
        )));
    }
    let dataset = open_dataset(spec, reporter)?;
    let classes = dataset.class_names().to_vec();
    // The protocol's training rows (all, or K per class): the init sees only those.
    let (rows, repeat) = super::train::protocol_rows(spec, &train.labels, classes.len())?;
    let train = subset(&train, &rows);
    let n = train.shape[0] * repeat;
    let w = {
        let inner = device;
        let clip = text_tower::<B::InnerBackend>(registry, spec, &spec.model.backbone, inner)?;
        let w = classifier_weights::<B::InnerBackend>(
            registry,
            spec,
            &classes,
            d,
            clip.as_ref(),
            Some(&train),
            inner,
        )?;
        Tensor::<B, 2>::from_data(w.into_data(), device)
    };
    let scale = job.param_f64("logit_scale")?;
    let model = Probe {
        head: TemporalHead::new(
            crate::temporal::find(registry, &spec.model.temporal_head).map_err(fail)?,
            d,
            spec.seed,
            device,
        ),
        classifier: CosineClassifier::new(
            w,
            d,
            spec.classifier.frozen,
            Tensor::from_data(TensorData::new(vec![scale.ln() as f32], [1]), device),
        ),
    };
    let batch = (spec.optim.batch_size as usize).max(1);
    let iters = n.div_ceil(batch);
    let peers = job.peers.max(1);
    let mut replicas = Replicas::new(peers, peer_threads(peers), model, device, |m, _| {
        Ok(Fitter::new(&spec.optim, 1, m))
    })?;
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
    let every = spec.eval.every.max(1);
    let mut best: Option<f64> = None;
    for e in 0..epochs {
        let mut order: Vec<usize> = (0..n).map(|i| i % train.shape[0]).collect();
        let mut rng = t4v_core::SplitMix64::new(spec.seed ^ (e as u64 + 1).wrapping_mul(0x9E37));
        rng.shuffle(&mut order);
        let mut sum = 0.0;
        for (i, idx) in order.chunks(batch).enumerate() {
            let factor = stepper.at(e as usize, i);
            let values = replicas.step(idx.len(), factor, i + 1 == iters, &|m, ctx| {
                let rows = ctx.loss_rows();
                let (x, labels) = gather::<B>(&train, &idx[rows], ctx.device);
                let y = crate::fit::targets::<B>(&labels, ctx.device);
                let ce = CrossEntropyLossConfig::new().init(ctx.device);
                Ok(ce.forward(m.classifier.forward_train(m.embed(x)), y) * ctx.weight())
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
        }
        let epoch_no = e + 1;
        reporter.metric("train", "loss", epoch_no as u64, sum / iters as f64);
        if epoch_no.is_multiple_of(every) || epoch_no == epochs {
            let s = scores::<B::InnerBackend>(&replicas.model().valid(), &test, batch, device)?;
            let top1 = accuracy(&s, classes.len(), &test.labels).top1;
            reporter.metric("val", "top1", epoch_no as u64, top1);
            best = Some(best.map_or(top1, |b: f64| b.max(top1)));
        }
        reporter.progress(epoch_no as u64, epochs as u64);
    }
    let model = replicas.finish()?;
    let s = scores::<B::InnerBackend>(&model.valid(), &test, batch, device)?;
    super::write_classifier(job, reporter, model.classifier.weight.val(), &classes)?;
    report_scores(
        reporter,
        "test",
        &s,
        &test.labels,
        &classes,
        dataset.metrics(),
        &job.run_dir.join("per_class.csv"),
    )?;
    if let Some(b) = best {
        reporter.summary("best/top1", b);
    }
    Ok(())
}
