//! `features`: frozen CLIP per-frame features of one split → `results/cache/`.

use std::sync::Arc;
use t4v_fused::{FusedAutodiffBackend, FusedBackend};

use burn::tensor::{Tensor, TensorData};
use serde_json::json;
use t4v_clip::ClipModel;
use t4v_core::{
    Family, Job, ParamDef, ParamType, PluginInfo, Registry, Reporter, RunError, RunKind,
    VideoEncoder,
};
use t4v_video::loader::epoch;

use super::{
    Body, PRETRAINED, eval_loader, fail, model_dir, on_backend, open_dataset, to_vec, weights_hash,
};
use crate::cache::{self, Features};
use crate::encoder::ClipVideoEncoder;

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

impl RunKind for FeaturesRun {
    fn info(&self) -> &'static PluginInfo {
        &FEATURES
    }

    fn uses(&self) -> &'static [Family] {
        &[Family::Dataset]
    }

    fn needs(&self) -> &'static [&'static str] {
        &[PRETRAINED]
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

impl Body for FeaturesRun {
    fn run<B: FusedAutodiffBackend>(
        &self,
        job: &Job,
        _registry: &Registry,
        reporter: &mut Reporter,
        device: &B::Device,
    ) -> Result<(), RunError> {
        extract::<B::InnerBackend>(job, reporter, device)
    }
}

fn extract<B: FusedBackend>(
    job: &Job,
    reporter: &mut Reporter,
    device: &B::Device,
) -> Result<(), RunError> {
    let spec = &job.spec;
    let split = job.param_str("split")?.to_string();
    let per_class = job.param_u64("per_class")? as usize;
    let batch = job.param_u64("batch")?.max(1) as usize;
    let name = spec.data.dataset.as_str();
    let dataset = open_dataset(spec, reporter)?;
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
        ("precision", json!(spec.model.precision)),
        // The data itself: a cache of other annotations or media is another cache.
        ("data", json!(dataset.fingerprint())),
    ]);
    // A cache built without the unreadable videos is not the cache of the whole split.
    let determinants = match spec.data.on_error {
        t4v_core::OnError::Fail => determinants,
        t4v_core::OnError::Skip => {
            let mut d = determinants;
            d["on_error"] = json!("skip");
            d
        }
    };
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
    super::check_input_size(spec, &config)?;
    let encoder = ClipVideoEncoder::new(clip, &crate::temporal::Mean, spec.seed);
    let n = videos.len();
    let source = t4v_datasets::source_of(dataset.as_ref(), videos).map_err(fail)?;
    let d = encoder.embed_dim();
    let mut data = Vec::with_capacity(n * frames * d);
    let mut labels = Vec::with_capacity(n);
    let mut batches = epoch(Arc::clone(&source), eval_loader(spec, batch), 0);
    while let Some(b) = batches.next() {
        let b = b.map_err(fail)?;
        let x = Tensor::<B, 5>::from_data(TensorData::new(b.pixels, b.shape), device);
        data.extend(to_vec(encoder.frame_features(x))?);
        labels.extend(b.labels);
        reporter.progress((labels.len() + batches.skipped.len()) as u64, n as u64);
    }
    super::report_skipped(job, reporter, &split, &batches.skipped)?;
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
