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

fn weights_hash(dir: &Path) -> Result<String, RunError> {
    let p = dir.join("model.safetensors");
    let bytes = std::fs::read(&p).map_err(|source| RunError::Io {
        context: format!("reading {}", p.display()),
        source,
    })?;
    Ok(blake3::hash(&bytes).to_hex()[..24].to_string())
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
    let dataset = plugin.open(&opts).map_err(fail)?;
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
