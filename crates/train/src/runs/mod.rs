//! Run kinds of the video classifier, and what they share: opening the dataset of a spec,
//! resolving the CLIP checkpoint, the cached features of needed runs, the loader settings of the
//! reference, scoring videos, and the choice of backend and precision.

mod eval;
mod features;
mod pretrain;
mod probe;
mod train;
mod zero_shot;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use t4v_fused::{FusedAutodiffBackend, FusedBackend};

use burn::tensor::{Tensor, TensorData};
use t4v_core::plugin::Metric;
use t4v_core::{Job, Registry, Reporter, RunError, RunSpec};
use t4v_video::loader::{ClipSource, LoaderConfig, Mode, OnError, epoch, multi_view};

pub use eval::EvalRun;
pub use features::FeaturesRun;
pub use pretrain::{CAPTION_TEMPLATES, PretrainRun, SmallClip, contrastive_loss};
pub use probe::ProbeRun;
pub use train::TrainRun;
pub use zero_shot::ZeroShotRun;

use crate::cache::{self, Features};
use crate::classifier::CosineClassifier;
use crate::metrics::{self, Accuracy};

/// The `last` checkpoint a re-attempt continues from ([`crate::fit::resume`]), the points it
/// had reported reported again (the store may have missed the last ones before the attempt
/// died). An unusable checkpoint is said in the log and never loaded: `None`, a fresh start.
pub(crate) fn resume_from<B: FusedBackend, M: burn::module::Module<B>>(
    last: &Path,
    model: M,
    device: &B::Device,
    reporter: &mut Reporter,
) -> Option<crate::fit::Resumed<M>> {
    match crate::fit::resume(last, model, device) {
        Ok(r) => {
            if let Some(r) = &r {
                r.history.replay(reporter);
            }
            r
        }
        Err(e) => {
            reporter.log(format!(
                "not resuming: the checkpoint is unusable ({e}); starting from the beginning"
            ));
            None
        }
    }
}

pub(crate) fn fail(e: impl std::fmt::Display) -> RunError {
    RunError::Failed(e.to_string())
}

/// A run kind's body, generic over the backend (an autodiff backend; bodies that only infer use
/// its inner backend).
pub(crate) trait Body {
    fn run<B: FusedAutodiffBackend>(
        &self,
        job: &Job,
        registry: &Registry,
        reporter: &mut Reporter,
        device: &B::Device,
    ) -> Result<(), RunError>;
}

/// Runs `body` on the backend of the sweep (`--backend`) at the spec's `model.precision`.
pub(crate) fn on_backend(
    body: &impl Body,
    job: &Job,
    registry: &Registry,
    reporter: &mut Reporter,
) -> Result<(), RunError> {
    use burn::backend::Autodiff;
    use burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing;
    let job = &with_pretrained(job)?;
    let precision = job.spec.model.precision.as_str();
    if !["f32", "bf16", "f16"].contains(&precision) {
        return Err(fail(format!(
            "model.precision `{precision}`: expected f32, bf16 or f16"
        )));
    }
    // Gradient checkpointing is burn's balanced strategy: a type parameter of autodiff.
    macro_rules! run {
        ($inner:ty) => {
            if job.spec.model.checkpointing {
                body.run::<Autodiff<$inner, BalancedCheckpointing>>(
                    job,
                    registry,
                    reporter,
                    &Default::default(),
                )
            } else {
                body.run::<Autodiff<$inner>>(job, registry, reporter, &Default::default())
            }
        };
    }
    match (job.backend.as_str(), precision) {
        ("cpu", "f32") => run!(burn::backend::Flex),
        ("cpu", p) => Err(fail(format!(
            "model.precision `{p}`: the CPU backend computes in f32 only (bf16/f16 need --backend cuda)"
        ))),
        #[cfg(feature = "cuda")]
        ("cuda", "f32") => run!(burn::backend::Cuda<f32>),
        #[cfg(feature = "cuda")]
        ("cuda", "bf16") => run!(burn::backend::Cuda<burn::tensor::bf16>),
        #[cfg(feature = "cuda")]
        ("cuda", _) => run!(burn::backend::Cuda<burn::tensor::f16>),
        (b, _) => Err(fail(format!(
            "backend `{b}` is not in this build (CUDA needs `--features cuda`)"
        ))),
    }
}

/// The job with `model.backbone` pointing at the `model` artefact of the `pretrain` run it
/// names as `needs: #{ pretrained: … }`, when it names one: every kind then loads the
/// pretrained folder like any checkpoint. (The run's id is computed before, from the spec as
/// written, so it depends on the pretrain run's id, not on where its files are.)
fn with_pretrained(job: &Job) -> Result<std::borrow::Cow<'_, Job>, RunError> {
    let Some(need) = job.needs.get(PRETRAINED) else {
        return Ok(std::borrow::Cow::Borrowed(job));
    };
    let dir = need.artefacts.get("model").ok_or_else(|| {
        fail(format!(
            "run {} (needs.{PRETRAINED}) reported no `model` artefact",
            need.id
        ))
    })?;
    let mut job = job.clone();
    job.spec.model.backbone = dir.to_string_lossy().into_owned();
    Ok(std::borrow::Cow::Owned(job))
}

/// The name under which runs consume a `pretrain` run's model.
pub const PRETRAINED: &str = "pretrained";

/// The models folder or hub id of a spec, resolved to a folder.
pub(crate) fn model_dir(backbone: &str) -> Result<PathBuf, RunError> {
    let files = t4v_clip::hub::resolve(backbone).map_err(fail)?;
    Ok(files.dir().to_path_buf())
}

/// Checks that the CLIP checkpoint takes the spec's `model.input_size`.
pub(crate) fn check_input_size(
    spec: &RunSpec,
    config: &t4v_clip::ClipConfig,
) -> Result<(), RunError> {
    let (size, side) = (
        spec.model.input_size as usize,
        config.vision_config.image_size,
    );
    if side == size {
        return Ok(());
    }
    Err(fail(format!(
        "model.input_size is {size} but {} takes {side}×{side} images",
        spec.model.backbone
    )))
}

/// The dataset of a spec, from the user's data root (`T4V_DATA`, `T4V_DATA_<NAME>`).
pub(crate) fn open_dataset(
    spec: &RunSpec,
    reporter: &mut Reporter,
) -> Result<Box<dyn t4v_core::Dataset>, RunError> {
    let dataset = t4v_datasets::open_named(&spec.data.dataset, spec.data.split).map_err(fail)?;
    // What the run reads, kept with its attempt: a later sweep sees when the data changed.
    if let Some(fingerprint) = dataset.fingerprint() {
        reporter.emit(&t4v_core::Event::Data { fingerprint });
    }
    Ok(dataset)
}

/// The split a dataset is evaluated on: `val` (Kinetics, ActivityNet) or `test` (UCF, HMDB,
/// synthetic).
pub(crate) fn eval_split(dataset: &dyn t4v_core::Dataset) -> Result<String, RunError> {
    let splits = dataset.splits();
    ["val", "test"]
        .into_iter()
        .find(|s| splits.iter().any(|x| x == s))
        .map(str::to_string)
        .ok_or_else(|| fail(format!("the dataset has no val or test split ({splits:?})")))
}

/// BLAKE3 of the weights file, streamed: checkpoints run to gigabytes and need not sit in
/// memory twice (the model loads them again).
pub(crate) fn weights_hash(dir: &Path) -> Result<String, RunError> {
    let p = dir.join("model.safetensors");
    let io = |source| RunError::Io {
        context: format!("reading {}", p.display()),
        source,
    };
    let file = std::fs::File::open(&p).map_err(io)?;
    let mut h = blake3::Hasher::new();
    h.update_reader(file).map_err(io)?;
    Ok(h.finalize().to_hex()[..24].to_string())
}

/// The cached features a needed run (`needs: #{ name: run }`) produced.
pub(crate) fn needed_features(job: &Job, name: &str) -> Result<Features, RunError> {
    let need = job.needs.get(name).ok_or_else(|| {
        fail(format!(
            "needs a `features` run as `{name}` (needs: #{{ {name}: ... }})"
        ))
    })?;
    let path = need
        .artefacts
        .get("features")
        .ok_or_else(|| fail(format!("run {} reported no `features` artefact", need.id)))?;
    Ok(cache::load(path).map_err(fail)?.1)
}

/// Optional cached features: present when the spec names them.
pub(crate) fn optional_features(job: &Job, name: &str) -> Result<Option<Features>, RunError> {
    if job.needs.contains_key(name) {
        needed_features(job, name).map(Some)
    } else {
        Ok(None)
    }
}

/// The reference's evaluation resize for an input side (256 for 224, 384 for 336).
pub(crate) fn eval_resize(size: u32) -> u32 {
    (size as f64 * 256.0 / 224.0).round() as u32
}

pub(crate) fn workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Single-view evaluation loader settings.
pub(crate) fn eval_loader(spec: &RunSpec, batch: usize) -> LoaderConfig {
    let size = spec.model.input_size;
    LoaderConfig {
        batch,
        frames: spec.model.frames as usize,
        mode: Mode::Eval {
            resize: eval_resize(size),
            size,
        },
        workers: workers(),
        prefetch: 2 * batch,
        seed: spec.seed,
        shuffle: false,
        drop_last: false,
        on_error: on_error(spec),
    }
}

/// The loader's rule for unreadable videos, from `data.on_error`.
pub(crate) fn on_error(spec: &RunSpec) -> OnError {
    match spec.data.on_error {
        t4v_core::OnError::Fail => OnError::Fail,
        t4v_core::OnError::Skip => OnError::Skip,
    }
}

/// Videos of `split` skipped as unreadable (`data.on_error: skip`; position in the split's
/// order, reason): counted as `<split>/skipped` and, when there are any, listed in the run
/// folder as `skipped-<split>.csv`.
pub(crate) fn report_skipped(
    job: &Job,
    reporter: &mut Reporter,
    split: &str,
    skipped: &[(usize, String)],
) -> Result<(), RunError> {
    if job.spec.data.on_error != t4v_core::OnError::Skip {
        return Ok(());
    }
    reporter.summary(&format!("{split}/skipped"), skipped.len() as f64);
    if skipped.is_empty() {
        return Ok(());
    }
    let path = job.run_dir.join(format!("skipped-{split}.csv"));
    let mut text = String::from("position,reason\n");
    for (i, reason) in skipped {
        text.push_str(&format!("{},\"{}\"\n", i + 1, reason.replace('"', "\"\"")));
    }
    std::fs::create_dir_all(&job.run_dir)
        .and_then(|_| std::fs::write(&path, text))
        .map_err(|source| RunError::Io {
            context: format!("writing {}", path.display()),
            source,
        })?;
    reporter.log(format!(
        "{split}: skipped {} unreadable video(s), listed in {}",
        skipped.len(),
        path.display()
    ));
    reporter.artefact(&format!("skipped-{split}"), &path.to_string_lossy());
    Ok(())
}

/// Copies a tensor out as f32.
pub(crate) fn to_vec<B: FusedBackend, const D: usize>(
    t: Tensor<B, D>,
) -> Result<Vec<f32>, RunError> {
    t.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| fail(format!("{e:?}")))
}

/// Scores `[N, C]` of the videos scored, their labels, and the videos skipped as unreadable.
pub(crate) type Scored = (Vec<f32>, Vec<usize>, Vec<(usize, String)>);

/// Evaluation scores `[N, C]` (100 · cos) of every video of `source`, single view, with labels.
pub(crate) fn score_single_view<B: FusedBackend>(
    embed: impl Fn(Tensor<B, 5>) -> Tensor<B, 2>,
    classifier: &CosineClassifier<B>,
    source: Arc<dyn ClipSource>,
    cfg: LoaderConfig,
    device: &B::Device,
    mut progress: impl FnMut(usize, usize),
) -> Result<Scored, RunError> {
    let n = source.len();
    let (mut scores, mut labels) = (Vec::new(), Vec::new());
    let mut batches = epoch(source, cfg, 0);
    while let Some(b) = batches.next() {
        let b = b.map_err(fail)?;
        let x = Tensor::<B, 5>::from_data(TensorData::new(b.pixels, b.shape), device);
        scores.extend(to_vec(classifier.forward_eval(embed(x)))?);
        labels.extend(b.labels);
        progress(labels.len() + batches.skipped.len(), n);
    }
    Ok((scores, labels, std::mem::take(&mut batches.skipped)))
}

/// Multi-view scores: for each video, `clips × crops` views through the encoder, embeddings
/// averaged before the cosine classifier (REFERENCE.md §2).
#[allow(clippy::too_many_arguments)]
pub(crate) fn score_multi_view<B: FusedBackend>(
    embed: impl Fn(Tensor<B, 5>) -> Tensor<B, 2>,
    classifier: &CosineClassifier<B>,
    source: &dyn ClipSource,
    spec: &RunSpec,
    batch: usize,
    device: &B::Device,
    mut progress: impl FnMut(usize, usize),
) -> Result<Scored, RunError> {
    let (t, size) = (spec.model.frames as usize, spec.model.input_size);
    let (clips, crops) = (spec.eval.clips as usize, spec.eval.crops as usize);
    let views = clips * crops;
    let n = source.len();
    let (mut scores, mut labels, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    let mut start = 0;
    while start < n {
        let idx: Vec<usize> = (start..(start + batch.max(1)).min(n)).collect();
        let loaded: Vec<Result<Vec<Vec<f32>>, _>> = std::thread::scope(|s| {
            let handles: Vec<_> = idx
                .iter()
                .map(|&i| {
                    s.spawn(move || multi_view(source, i, t, clips, crops, eval_resize(size), size))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("loader thread"))
                .collect()
        });
        let mut pixels = Vec::new();
        let mut b = 0;
        for (r, &i) in loaded.into_iter().zip(&idx) {
            match r {
                Err(e) if spec.data.on_error == t4v_core::OnError::Skip => {
                    skipped.push((i, e.to_string()));
                    continue;
                }
                r => {
                    for v in r.map_err(fail)? {
                        pixels.extend(v);
                    }
                }
            }
            labels.push(source.label(i));
            b += 1;
        }
        start += idx.len();
        if b == 0 {
            continue;
        }
        let s = size as usize;
        let x = Tensor::<B, 5>::from_data(TensorData::new(pixels, [b * views, t, 3, s, s]), device);
        let e = embed(x);
        let d = e.dims()[1];
        let e = e.reshape([b, views, d]).mean_dim(1).reshape([b, d]);
        scores.extend(to_vec(classifier.forward_eval(e))?);
        progress(start, n);
    }
    Ok((scores, labels, skipped))
}

/// Reports the test metrics of `scores` (and mAP when the dataset's protocol uses it) and
/// writes the per-class artefact. Returns the accuracy.
pub(crate) fn report_scores(
    reporter: &mut Reporter,
    split: &str,
    scores: &[f32],
    labels: &[usize],
    classes: &[String],
    dataset_metrics: &[Metric],
    per_class_path: &Path,
) -> Result<Accuracy, RunError> {
    let c = classes.len();
    let acc = metrics::accuracy(scores, c, labels);
    // Over how many videos: fewer than the split holds when unreadable ones were skipped.
    reporter.summary(&format!("{split}/videos"), labels.len() as f64);
    reporter.summary(&format!("{split}/top1"), acc.top1);
    reporter.summary(&format!("{split}/top5"), acc.top5);
    reporter.summary(&format!("{split}/mean_class_acc"), acc.mean_class);
    if dataset_metrics.contains(&Metric::MeanAp) {
        // The reference's test_anet.py: softmax(100·cos) per video, then torchnet's mAPMeter on
        // the softmax of that (a second softmax).
        let p = metrics::softmax_rows(&metrics::softmax_rows(scores, c), c);
        reporter.summary(&format!("{split}/mAP"), metrics::mean_ap(&p, c, labels));
    }
    metrics::write_per_class(per_class_path, classes, &acc).map_err(|source| RunError::Io {
        context: format!("writing {}", per_class_path.display()),
        source,
    })?;
    reporter.artefact("per_class", &per_class_path.to_string_lossy());
    Ok(acc)
}

/// Writes W `[C, D']` with the class names as the run's `classifier` artefact
/// (`classifier.safetensors`: `weight`, metadata `classes`), which reports draw the class
/// similarity heatmap from.
pub(crate) fn write_classifier<B: FusedBackend>(
    job: &Job,
    reporter: &mut Reporter,
    w: Tensor<B, 2>,
    classes: &[String],
) -> Result<(), RunError> {
    let shape = w.dims();
    let data = to_vec(w)?;
    let bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.to_vec(), &bytes)
            .expect("sizes agree");
    let meta: std::collections::HashMap<String, String> = [(
        "classes".to_string(),
        serde_json::to_string(classes).expect("names serialise"),
    )]
    .into();
    let path = job.run_dir.join("classifier.safetensors");
    safetensors::serialize_to_file([("weight", view)], Some(meta), &path)
        .map_err(|e| fail(format!("writing {}: {e}", path.display())))?;
    reporter.artefact("classifier", &path.to_string_lossy());
    Ok(())
}

/// The half-class protocol over `draws` draws (classes of draw s = numpy's `seed(s);
/// permutation(C)[:C/2]`, videos of those classes, labels re-indexed): a `half/top1` series
/// and its mean and population std (`np.std`) as summaries.
pub(crate) fn half_classes(
    reporter: &mut Reporter,
    scores: &[f32],
    labels: &[usize],
    c: usize,
    draws: u32,
) {
    if draws == 0 {
        return;
    }
    let mut accs = Vec::new();
    for s in 0..draws {
        let keep = t4v_video::protocol::half_classes(c, s);
        let index: std::collections::HashMap<usize, usize> =
            keep.iter().enumerate().map(|(i, k)| (*k, i)).collect();
        let (mut sub, mut sub_labels) = (Vec::new(), Vec::new());
        for (i, &l) in labels.iter().enumerate() {
            if let Some(&nl) = index.get(&l) {
                sub.extend(keep.iter().map(|&k| scores[i * c + k]));
                sub_labels.push(nl);
            }
        }
        let a = metrics::accuracy(&sub, keep.len(), &sub_labels).top1;
        reporter.metric("half", "top1", s as u64, a);
        accs.push(a);
    }
    let mean = accs.iter().sum::<f64>() / accs.len() as f64;
    let std = (accs.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / accs.len() as f64).sqrt();
    reporter.summary("half/top1_mean", mean);
    reporter.summary("half/top1_std", std);
}
