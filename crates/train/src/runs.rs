//! Run kinds of the video classifier. So far: `features`, which extracts frozen per-frame
//! features of a dataset split into the feature cache (the artefact LDA and class-mean inits,
//! zero-shot evaluation and probes consume).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::{Tensor, TensorData, backend::Backend};
use serde_json::json;
use t4v_clip::ClipModel;
use t4v_core::{
    DataOptions, Family, Job, ParamDef, ParamType, PluginInfo, Reporter, RunError, RunKind,
    VideoEncoder,
};
use t4v_video::loader::{LoaderConfig, Mode, OnError, epoch};

use crate::cache::{self, Features};
use crate::encoder::ClipVideoEncoder;

fn fail(e: impl std::fmt::Display) -> RunError {
    RunError::Failed(e.to_string())
}

/// `features`: frozen CLIP per-frame features of one split → `results/cache/`.
pub struct FeaturesRun;

static FEATURES: PluginInfo = PluginInfo {
    name: "features",
    summary: "frozen CLIP per-frame features of a dataset split, into the feature cache",
    params: &[
        ParamDef {
            name: "split",
            ty: ParamType::Str,
            default: "\"train\"",
            doc: "the dataset split to extract",
        },
        ParamDef {
            name: "per_class",
            ty: ParamType::Int,
            default: "0",
            doc: "videos per class, drawn with the run's seed (0 = all; LDA in the paper: 60)",
        },
        ParamDef {
            name: "batch",
            ty: ParamType::Int,
            default: "16",
            doc: "clips per forward pass",
        },
    ],
};

/// The models folder or hub id of a spec, resolved to a folder.
fn model_dir(backbone: &str) -> Result<PathBuf, RunError> {
    let files = t4v_clip::hub::resolve(backbone).map_err(fail)?;
    Ok(files.dir().to_path_buf())
}

/// The dataset of a spec, from the user's data root (`T4V_DATA`, `T4V_DATA_<NAME>`).
fn open_dataset(spec: &t4v_core::RunSpec) -> Result<Box<dyn t4v_core::Dataset>, RunError> {
    let name = spec.data.dataset.as_str();
    let plugin = t4v_datasets::DATASETS
        .iter()
        .find(|d| d.info().name == name)
        .ok_or_else(|| fail(format!("no dataset plugin `{name}`")))?;
    let root = if name == "synthetic" {
        PathBuf::new()
    } else {
        let root = t4v_datasets::default_root(name, None).ok_or_else(|| {
            fail(format!(
                "where is dataset {name}? set T4V_DATA (or T4V_DATA_{})",
                name.to_uppercase()
            ))
        })?;
        if !root.exists() {
            return Err(fail(format!(
                "dataset {name} not found at {}",
                root.display()
            )));
        }
        root
    };
    let opts = DataOptions {
        root,
        split: spec.data.split,
        ..Default::default()
    };
    plugin.open(&opts).map_err(fail)
}

/// BLAKE3 of the weights file, streamed: checkpoints run to gigabytes and need not sit in
/// memory twice (the model loads them again).
fn weights_hash(dir: &Path) -> Result<String, RunError> {
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

impl RunKind for FeaturesRun {
    fn info(&self) -> &'static PluginInfo {
        &FEATURES
    }

    fn uses(&self) -> &'static [Family] {
        &[Family::Dataset]
    }

    fn execute(&self, job: &Job, reporter: &mut Reporter) -> Result<(), RunError> {
        match job.backend.as_str() {
            "cpu" => extract::<burn::backend::Flex>(job, reporter, &Default::default()),
            other => Err(fail(format!(
                "the `features` run kind has no `{other}` backend in this build"
            ))),
        }
    }
}

fn extract<B: Backend>(
    job: &Job,
    reporter: &mut Reporter,
    device: &B::Device,
) -> Result<(), RunError> {
    let spec = &job.spec;
    let split = job.param_str("split")?.to_string();
    let per_class = job.param_u64("per_class")? as usize;
    let batch = job.param_u64("batch")?.max(1) as usize;
    let name = spec.data.dataset.as_str();
    let dataset = open_dataset(spec)?;
    let mut videos = t4v_datasets::videos(dataset.as_ref(), &split).map_err(fail)?;
    if per_class > 0 {
        videos = t4v_video::protocol::few_shot(
            &videos,
            dataset.class_names().len(),
            per_class,
            spec.seed as u32,
        )
        .map_err(fail)?;
    }

    let dir = model_dir(&spec.model.backbone)?;
    let size = spec.model.input_size;
    let frames = spec.model.frames as usize;
    let determinants = cache::determinants(&[
        ("weights", json!(weights_hash(&dir)?)),
        ("dataset", json!(name)),
        ("official_split", json!(spec.data.split)),
        ("split", json!(split)),
        ("per_class", json!(per_class)),
        (
            "subset_seed",
            json!(if per_class > 0 { spec.seed } else { 0 }),
        ),
        ("frames", json!(frames)),
        ("sampling", json!("segment-starts")),
        ("input_size", json!(size)),
    ]);
    let cache_dir = job.results_dir.join("cache");
    match cache::read(&cache_dir, &determinants) {
        Ok(Some(f)) => {
            reporter.log(format!("feature cache hit: {} videos", f.shape[0]));
            let p = cache::path(&cache_dir, &determinants);
            reporter.artefact("features", &p.to_string_lossy());
            reporter.summary("features/videos", f.shape[0] as f64);
            return Ok(());
        }
        Ok(None) => {}
        Err(e) => reporter.log(format!("rebuilding the feature cache: {e}")),
    }

    let (clip, config) = ClipModel::<B>::load(&dir, device).map_err(fail)?;
    if config.vision_config.image_size != size as usize {
        return Err(fail(format!(
            "model.input_size is {size} but {} takes {}×{} images",
            spec.model.backbone, config.vision_config.image_size, config.vision_config.image_size
        )));
    }
    let encoder = ClipVideoEncoder::new(clip, "mean", spec.seed).map_err(fail)?;
    let n = videos.len();
    let labels_in_order: Vec<usize> = videos.iter().map(|v| v.label).collect();
    let source = t4v_datasets::source_of(dataset.as_ref(), videos).map_err(fail)?;
    let cfg = LoaderConfig {
        batch,
        frames,
        // The reference's evaluation transform: shorter side 256 for 224 inputs, centre crop.
        mode: Mode::Eval {
            resize: (size as f64 * 256.0 / 224.0).round() as u32,
            size,
        },
        workers: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        prefetch: 2 * batch,
        seed: spec.seed,
        shuffle: false,
        drop_last: false,
        on_error: OnError::Fail,
    };
    let d = encoder.embed_dim();
    let mut data = Vec::with_capacity(n * frames * d);
    let mut labels = Vec::with_capacity(n);
    for b in epoch(Arc::clone(&source), cfg, 0) {
        let b = b.map_err(fail)?;
        let x = Tensor::<B, 5>::from_data(TensorData::new(b.pixels, b.shape), device);
        let f = encoder.frame_features(x);
        data.extend(
            f.into_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .map_err(|e| fail(format!("{e:?}")))?,
        );
        labels.extend(b.labels);
        reporter.progress(labels.len() as u64, n as u64);
    }
    debug_assert_eq!(labels, labels_in_order);
    let features = Features {
        shape: [labels.len(), frames, d],
        data,
        labels,
    };
    let p = cache::write(&cache_dir, &determinants, &features).map_err(fail)?;
    reporter.artefact("features", &p.to_string_lossy());
    reporter.summary("features/videos", features.shape[0] as f64);
    Ok(())
}

/// `zero-shot`: classify cached frozen features against the CLIP text embeddings of the class
/// names, with no training (the video embedding is the mean of the frame features). Reports
/// top-1 / top-5 / mean class accuracy over all classes and, with `half_class_draws`, the
/// half-class protocol (classes of draw s = numpy's `seed(s); permutation(C)[:C/2]`) as
/// mean ± std of top-1.
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
        &[Family::Dataset]
    }

    fn needs(&self) -> &'static [&'static str] {
        &["features"]
    }

    fn execute(&self, job: &Job, reporter: &mut Reporter) -> Result<(), RunError> {
        match job.backend.as_str() {
            "cpu" => zero_shot::<burn::backend::Flex>(job, reporter, &Default::default()),
            other => Err(fail(format!(
                "the `zero-shot` run kind has no `{other}` backend in this build"
            ))),
        }
    }
}

/// Is `label` among the top `k` of `scores`? Ties resolve in favour of the true class (the
/// reference's `topk` leaves their order to the implementation).
fn hit(scores: &[f32], label: usize, k: usize) -> bool {
    let s = scores[label];
    scores.iter().filter(|&&x| x > s).count() < k
}

/// (top-1, top-5, mean class accuracy) in %, over `rows` of `[N, C]` scores.
pub fn accuracy(scores: &[f32], classes: usize, labels: &[usize]) -> (f64, f64, f64) {
    let n = labels.len().max(1) as f64;
    let mut per_class = vec![(0usize, 0usize); classes];
    let (mut t1, mut t5) = (0usize, 0usize);
    for (i, &l) in labels.iter().enumerate() {
        let row = &scores[i * classes..(i + 1) * classes];
        let h1 = hit(row, l, 1);
        t1 += h1 as usize;
        t5 += hit(row, l, 5.min(classes)) as usize;
        per_class[l].0 += h1 as usize;
        per_class[l].1 += 1;
    }
    let seen: Vec<f64> = per_class
        .iter()
        .filter(|c| c.1 > 0)
        .map(|c| c.0 as f64 / c.1 as f64)
        .collect();
    let mca = 100.0 * seen.iter().sum::<f64>() / seen.len().max(1) as f64;
    (100.0 * t1 as f64 / n, 100.0 * t5 as f64 / n, mca)
}

fn zero_shot<B: Backend>(
    job: &Job,
    reporter: &mut Reporter,
    device: &B::Device,
) -> Result<(), RunError> {
    let spec = &job.spec;
    let need = job
        .needs
        .get("features")
        .ok_or_else(|| fail("needs a `features` run (needs: #{ features: ... })"))?;
    let path = need
        .artefacts
        .get("features")
        .ok_or_else(|| fail(format!("run {} reported no `features` artefact", need.id)))?;
    let (_, cached) = cache::load(path).map_err(fail)?;
    let [n, t, d] = cached.shape;
    let (data, labels) = (cached.data, cached.labels);

    let dataset = open_dataset(spec)?;
    let classes = dataset.class_names().to_vec();

    let clip = t4v_clip::Clip::<B>::load(&spec.model.backbone, device).map_err(fail)?;
    let templates = vec![spec.classifier.template.clone()];
    let inputs = t4v_core::plugin::InitInputs::<B> {
        class_names: &classes,
        embed_dim: d,
        text: Some(&clip),
        templates: &templates,
        features: None,
        seed: spec.seed,
        device: device.clone(),
    };
    let w = t4v_core::ClassifierInit::<B>::init(&t4v_inits::Text, &inputs).map_err(fail)?;
    let v = Tensor::<B, 3>::from_data(TensorData::new(data, [n, t, d]), device)
        .mean_dim(1)
        .reshape([n, d]);
    // The evaluation logits of the cosine classifier (100 · cos); no training, so no scale.
    let classifier = crate::CosineClassifier::new(w, d, true, Tensor::zeros([1], device));
    let scores = classifier.forward_eval(v);
    let scores: Vec<f32> = scores
        .into_data()
        .convert::<f32>()
        .to_vec()
        .map_err(|e| fail(format!("{e:?}")))?;
    let c = classes.len();
    let (top1, top5, mca) = accuracy(&scores, c, &labels);
    reporter.summary("test/top1", top1);
    reporter.summary("test/top5", top5);
    reporter.summary("test/mean_class_acc", mca);
    let draws = job.param_u64("half_class_draws")? as u32;
    if draws > 0 {
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
            let (a, _, _) = accuracy(&sub, keep.len(), &sub_labels);
            reporter.metric("half", "top1", s as u64, a);
            accs.push(a);
        }
        let mean = accs.iter().sum::<f64>() / accs.len() as f64;
        let std = (accs.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / accs.len() as f64).sqrt();
        reporter.summary("half/top1_mean", mean);
        reporter.summary("half/top1_std", std);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::accuracy;

    #[test]
    fn top_k_and_mean_class_accuracy() {
        // 3 classes; rows: correct, second-best, worst, correct.
        let scores = [
            0.9, 0.1, 0.0, //
            0.5, 0.4, 0.1, //
            0.1, 0.2, 0.0, //
            0.0, 0.0, 1.0,
        ];
        let (t1, t5, mca) = accuracy(&scores, 3, &[0, 1, 2, 2]);
        assert_eq!(t1, 50.0);
        assert_eq!(t5, 100.0);
        // class 0: 1/1, class 1: 0/1, class 2: 1/2 → mean 50 %.
        assert!((mca - 50.0).abs() < 1e-12);
        let (t1, _, _) = accuracy(&[0.2, 0.2, 0.2], 3, &[1]);
        assert_eq!(t1, 100.0, "ties resolve in favour of the true class");
    }
}
