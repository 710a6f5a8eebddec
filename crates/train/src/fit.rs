//! One optimisation step of the reference recipe (REFERENCE.md §1.6–1.7): AdamW on two parameter
//! groups (backbone + logit scale at `lr × clip_ratio`, head at `lr`), weight decay on every
//! parameter, the learning rate scaled by the schedule factor, and gradient accumulation
//! (`loss / steps`, an optimiser step every `steps` micro-batches) to reach the global batch.
//! Checkpoints hold the model, the optimiser state and the loop state.

use std::path::{Path, PathBuf};
use t4v_fused::FusedAutodiffBackend;

use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{GradientsAccumulator, GradientsParams, Optimizer};
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};
use t4v_core::plugin::ParamGroups;
use t4v_core::spec::OptimSpec;
use t4v_fused::optim::AdamW;

use crate::history::{self, History};
use crate::model::Grouped;

pub struct Fitter<B: FusedAutodiffBackend, M: AutodiffModule<B>> {
    optim: OptimizerAdaptor<AdamW, M, B>,
    groups: ParamGroups,
    backbone: GradientsAccumulator<M>,
    head: GradientsAccumulator<M>,
    pending: usize,
    /// Micro-batches per optimiser step.
    pub accumulation: usize,
    lr: f64,
    clip_ratio: f64,
    /// This replica's peer in a data-parallel run: gradients are summed over the peers
    /// before each step.
    peer: Option<burn::collective::PeerId>,
}

impl<B: FusedAutodiffBackend, M: AutodiffModule<B> + Grouped> Fitter<B, M> {
    pub fn new(spec: &OptimSpec, accumulation: usize, model: &M) -> Self {
        let optim = adamw(spec).init();
        Self {
            optim,
            groups: model.groups(),
            backbone: GradientsAccumulator::new(),
            head: GradientsAccumulator::new(),
            pending: 0,
            accumulation: accumulation.max(1),
            lr: spec.lr,
            clip_ratio: spec.clip_ratio,
            peer: None,
        }
    }

    /// The optimiser of data-parallel peer `peer`.
    pub fn with_peer(mut self, peer: burn::collective::PeerId) -> Self {
        self.peer = Some(peer);
        self
    }

    /// Backpropagates the loss of one micro-batch (scaled here by `1 / accumulation`) and, every
    /// `accumulation` micro-batches or when `flush`, steps both groups at `factor × lr` (with a
    /// peer: after summing the accumulated gradients over the peers).
    pub fn backward(
        &mut self,
        model: M,
        loss: Tensor<B, 1>,
        factor: f64,
        flush: bool,
    ) -> Result<M, t4v_core::RunError> {
        let loss = if self.accumulation > 1 {
            loss / self.accumulation as f64
        } else {
            loss
        };
        let mut grads = loss.backward();
        let b = GradientsParams::from_params(&mut grads, &model, &self.groups.backbone);
        let h = GradientsParams::from_params(&mut grads, &model, &self.groups.head);
        self.backbone.accumulate(&model, b);
        self.head.accumulate(&model, h);
        self.pending += 1;
        if self.pending < self.accumulation && !flush {
            return Ok(model);
        }
        self.pending = 0;
        let (mut backbone, mut head) = (self.backbone.grads(), self.head.grads());
        if let Some(peer) = self.peer {
            let sum = |g: GradientsParams| {
                g.all_reduce::<B::InnerBackend>(peer, burn::collective::ReduceOperation::Sum)
                    .map_err(|e| {
                        t4v_core::RunError::Failed(format!("summing gradients over peers: {e:?}"))
                    })
            };
            backbone = sum(backbone)?;
            head = sum(head)?;
        }
        let model = self
            .optim
            .step(self.lr * self.clip_ratio * factor, model, backbone);
        Ok(self.optim.step(self.lr * factor, model, head))
    }
}

/// The recipe's AdamW (burn's step and state, fused into one pass per parameter).
pub fn adamw(spec: &OptimSpec) -> AdamW {
    AdamW {
        beta_1: spec.beta1 as f32,
        beta_2: spec.beta2 as f32,
        epsilon: spec.eps as f32,
        weight_decay: spec.weight_decay as f32,
    }
}

/// Class indices as the cross-entropy loss takes them.
pub fn targets<B: t4v_fused::FusedBackend>(
    labels: &[usize],
    device: &B::Device,
) -> Tensor<B, 1, burn::tensor::Int> {
    let data =
        burn::tensor::TensorData::new(labels.iter().map(|&l| l as i64).collect(), [labels.len()]);
    Tensor::from_data(data, device)
}

/// Where a training run is, saved with each checkpoint. (Fields added later default, so older
/// checkpoints still read.)
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoopState {
    /// Epochs completed (the next epoch to run).
    pub epoch: u32,
    /// Best validation top-1 so far and the epoch (1-based) it was reached at.
    pub best_top1: Option<f64>,
    pub best_epoch: Option<u32>,
    /// Width of W (differs from the embedding for BERT inits) and number of classes.
    pub classifier_shape: [usize; 2],
    /// Micro-batches of epoch `epoch` (0-based: the one in progress) trained before this
    /// checkpoint, 0 at an epoch boundary, and the loader's position after them.
    pub iteration: usize,
    pub position: usize,
    /// The epoch's micro-batch losses so far (sum, count), for its mean.
    pub loss_sum: f64,
    pub loss_count: usize,
    /// Samples the epoch skipped so far (`data.on_error: skip`), with the reason.
    pub skipped: Vec<(usize, String)>,
    /// The latest validation top-1 (`pretrain`, which keeps no best checkpoint).
    pub val_top1: Option<f64>,
}

impl LoopState {
    /// Forgets the progress within an epoch (at its end).
    pub fn end_epoch(&mut self, epoch: u32) {
        self.epoch = epoch;
        self.iteration = 0;
        self.position = 0;
        self.loss_sum = 0.0;
        self.loss_count = 0;
        self.skipped.clear();
    }
}

fn recorder() -> NamedMpkFileRecorder<FullPrecisionSettings> {
    NamedMpkFileRecorder::new()
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

fn err(path: &Path, e: impl std::fmt::Display) -> CheckpointError {
    CheckpointError::Invalid {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Saves a model alone (for evaluation) into `dir/model.mpk`, next to `extra` JSON files, writing
/// a temporary folder first and swapping it in, so `dir` is always a whole checkpoint.
pub fn save_model<B: FusedAutodiffBackend, M: AutodiffModule<B>>(
    dir: &Path,
    model: &M,
    extra: &[(&str, serde_json::Value)],
    optim: Option<&Fitter<B, M>>,
) -> Result<(), CheckpointError> {
    let tmp = dir.with_extension("tmp");
    let old = dir.with_extension("old");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| err(&tmp, e))?;
    model
        .clone()
        .save_file(tmp.join("model"), &recorder())
        .map_err(|e| err(&tmp, e))?;
    t4v_fault::point("checkpoint.partial");
    if let Some(f) = optim {
        recorder()
            .record(f.optim.to_record(), tmp.join("optimizer"))
            .map_err(|e| err(&tmp, e))?;
    }
    for (name, value) in extra {
        let p = tmp.join(name);
        std::fs::write(&p, serde_json::to_string_pretty(value).expect("JSON"))
            .map_err(|e| err(&p, e))?;
    }
    // What was written, so a damaged file is never loaded (a flipped byte in a weight still
    // decodes).
    let sums = checksums(&tmp)?;
    let p = tmp.join(CHECKSUMS);
    std::fs::write(&p, serde_json::to_string_pretty(&sums).expect("JSON"))
        .map_err(|e| err(&p, e))?;
    if dir.exists() {
        let _ = std::fs::remove_dir_all(&old);
        std::fs::rename(dir, &old).map_err(|e| err(dir, e))?;
        t4v_fault::point("checkpoint.swap");
    }
    std::fs::rename(&tmp, dir).map_err(|e| err(dir, e))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// A checkpoint's file of checksums: file name → blake3.
const CHECKSUMS: &str = "checksums.json";

fn checksums(dir: &Path) -> Result<std::collections::BTreeMap<String, String>, CheckpointError> {
    let mut out = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(dir).map_err(|e| err(dir, e))? {
        let p = e.map_err(|e| err(dir, e))?.path();
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if name == CHECKSUMS || !p.is_file() {
            continue;
        }
        let bytes = std::fs::read(&p).map_err(|e| err(&p, e))?;
        out.insert(name, blake3::hash(&bytes).to_hex().to_string());
    }
    Ok(out)
}

/// Checks a checkpoint's files against the checksums saved with it: a missing, changed or
/// truncated file is an error naming it. (Checkpoints saved before checksums pass unchecked.)
pub fn verify(dir: &Path) -> Result<(), CheckpointError> {
    let p = dir.join(CHECKSUMS);
    let Ok(text) = std::fs::read_to_string(&p) else {
        return Ok(());
    };
    let want: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&text).map_err(|e| err(&p, e))?;
    let have = checksums(dir)?;
    for (name, sum) in &want {
        match have.get(name) {
            None => return Err(err(&dir.join(name), "missing from the checkpoint")),
            Some(h) if h != sum => {
                return Err(err(
                    &dir.join(name),
                    "its bytes do not match the checksum saved with it (damaged)",
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The checkpoint folder to read: `dir`, or what a crash mid-swap left as `dir.old`.
pub fn existing(dir: &Path) -> Option<PathBuf> {
    let old = dir.with_extension("old");
    [dir.to_path_buf(), old]
        .into_iter()
        .find(|d| d.join("model.mpk").exists())
}

/// A training checkpoint a re-attempt continues from.
pub struct Resumed<M> {
    pub dir: PathBuf,
    pub model: M,
    pub state: LoopState,
    /// The points reported up to it (empty for checkpoints written before they were kept).
    pub history: History,
}

/// The checkpoint a re-attempt continues from: `Ok(None)` when `last` (or what a crash mid-swap
/// left of it) does not exist, the checkpoint when it verifies and loads, and the error naming
/// the damaged file otherwise (the caller says so and starts afresh).
pub fn resume<B: t4v_fused::FusedBackend, M: burn::module::Module<B>>(
    last: &Path,
    model: M,
    device: &B::Device,
) -> Result<Option<Resumed<M>>, CheckpointError> {
    let Some(dir) = existing(last) else {
        return Ok(None);
    };
    verify(&dir)?;
    let model = load_model(&dir, model, device)?;
    let state: LoopState = read_json(&dir, "state.json")?;
    let history = if dir.join(history::FILE).exists() {
        read_json(&dir, history::FILE)?
    } else {
        History::default()
    };
    Ok(Some(Resumed {
        dir,
        model,
        state,
        history,
    }))
}

/// Saves a training checkpoint into `dir` ([`save_model`]): the model, the optimiser when
/// given, the spec, the loop state and the points reported so far.
pub fn save_checkpoint<B: FusedAutodiffBackend, M: AutodiffModule<B>>(
    dir: &Path,
    model: &M,
    spec: &t4v_core::RunSpec,
    (state, history): (&LoopState, &History),
    optim: Option<&Fitter<B, M>>,
) -> Result<(), CheckpointError> {
    save_model(
        dir,
        model,
        &[
            (
                "spec.json",
                serde_json::to_value(spec).expect("specs serialise"),
            ),
            ("state.json", serde_json::json!(state)),
            (history::FILE, history.to_json()),
        ],
        optim,
    )
}

/// Loads `dir/model.mpk` into `model` (whose structure must match).
pub fn load_model<B: t4v_fused::FusedBackend, M: burn::module::Module<B>>(
    dir: &Path,
    model: M,
    device: &B::Device,
) -> Result<M, CheckpointError> {
    model
        .load_file(dir.join("model"), &recorder(), device)
        .map_err(|e| err(&dir.join("model.mpk"), e))
}

/// Reads a JSON file of a checkpoint.
pub fn read_json<T: serde::de::DeserializeOwned>(
    dir: &Path,
    name: &str,
) -> Result<T, CheckpointError> {
    let p = dir.join(name);
    let text = std::fs::read_to_string(&p).map_err(|e| err(&p, e))?;
    serde_json::from_str(&text).map_err(|e| err(&p, e))
}

impl<B: FusedAutodiffBackend, M: AutodiffModule<B>> Fitter<B, M> {
    /// Restores the optimiser state saved with a checkpoint.
    pub fn load(mut self, dir: &Path, device: &B::Device) -> Result<Self, CheckpointError> {
        let p = dir.join("optimizer");
        let record = recorder().load(p.clone(), device).map_err(|e| err(&p, e))?;
        self.optim = self.optim.load_record(record);
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CosineClassifier;
    use crate::model::Probe;
    use crate::temporal::TemporalHead;
    use burn::backend::{Autodiff, Flex};
    use burn::module::Module;
    use burn::nn::loss::CrossEntropyLossConfig;
    use burn::tensor::{Distribution, Int, TensorData};

    type AD = Autodiff<Flex>;

    fn probe(frozen: bool) -> Probe<AD> {
        let device = Default::default();
        let w = Tensor::<AD, 2>::from_data(
            TensorData::new(
                (0..24).map(|i| ((i * 7 % 11) as f32 - 5.0) / 5.0).collect(),
                [3, 8],
            ),
            &device,
        );
        Probe {
            head: TemporalHead::new(&crate::temporal::Transf, 8, 3, &device),
            classifier: CosineClassifier::new(
                w,
                8,
                frozen,
                Tensor::from_data(TensorData::new(vec![1.0f32], [1]), &device),
            ),
        }
    }

    fn loss(m: &Probe<AD>, x: Tensor<AD, 3>, y: &[i64]) -> Tensor<AD, 1> {
        let device = Default::default();
        let y = Tensor::<AD, 1, Int>::from_data(TensorData::new(y.to_vec(), [y.len()]), &device);
        CrossEntropyLossConfig::new()
            .init(&device)
            .forward(m.classifier.forward_train(m.embed(x)), y)
    }

    fn flat(m: &Probe<AD>) -> Vec<f32> {
        let mut out = Vec::new();
        struct All<'a>(&'a mut Vec<f32>);
        impl<B: burn::tensor::backend::Backend> burn::module::ModuleVisitor<B> for All<'_> {
            fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<B, D>>) {
                self.0.extend(
                    p.val()
                        .into_data()
                        .convert::<f32>()
                        .to_vec::<f32>()
                        .unwrap(),
                );
            }
        }
        m.visit(&mut All(&mut out));
        out
    }

    fn spec() -> OptimSpec {
        OptimSpec {
            lr: 1e-2,
            clip_ratio: 0.1,
            weight_decay: 0.2,
            ..Default::default()
        }
    }

    #[test]
    fn two_groups_step_at_their_own_rates() {
        use burn::module::AutodiffModule;
        let device = Default::default();
        let m = probe(true);
        let x = Tensor::<AD, 3>::random([4, 2, 8], Distribution::Normal(0.0, 1.0), &device);
        let mut f = Fitter::new(&spec(), 1, &m);
        let before_scale: f32 = m.classifier.logit_scale.val().into_scalar();
        let before_w = m.classifier.weight.val().valid().into_data();
        let l = loss(&m, x, &[0, 1, 2, 0]);
        let m = f.backward(m, l, 0.5, false).unwrap();
        let after: f32 = m.classifier.logit_scale.val().into_scalar();
        // First AdamW step: p ← p − lr·wd·p − lr·sign(g) (m̂/√v̂ = ±1), at lr = 0.5 × 1e-2 × 0.1.
        let lr = 0.5 * 1e-2 * 0.1;
        let step = (before_scale - after) as f64 - lr * 0.2 * before_scale as f64;
        assert!(
            (step.abs() - lr).abs() < 1e-6 * lr.max(1.0),
            "{step} vs ±{lr}"
        );
        // A frozen W does not move; head weights move by about the head rate (5e-3).
        assert_eq!(m.classifier.weight.val().valid().into_data(), before_w);
    }

    #[test]
    fn accumulation_equals_one_large_batch() {
        // A larger Adam eps keeps near-zero gradients from turning rounding noise into ±lr.
        let spec = || OptimSpec {
            eps: 1e-3,
            ..spec()
        };
        let device = Default::default();
        let x = Tensor::<AD, 3>::random([8, 2, 8], Distribution::Normal(0.0, 1.0), &device);
        let y = [0, 1, 2, 0, 1, 2, 2, 1];
        let whole = {
            let m = probe(false);
            let mut f = Fitter::new(&spec(), 1, &m);
            let l = loss(&m, x.clone(), &y);
            flat(&f.backward(m, l, 1.0, false).unwrap())
        };
        let halves = {
            let m = probe(false);
            let mut f = Fitter::new(&spec(), 2, &m);
            let start = flat(&m);
            let l = loss(&m, x.clone().narrow(0, 0, 4), &y[..4]);
            let m = f.backward(m, l, 1.0, false).unwrap();
            assert_eq!(flat(&m), start, "no step before the last micro-batch");
            let l = loss(&m, x.clone().narrow(0, 4, 4), &y[4..]);
            flat(&f.backward(m, l, 1.0, false).unwrap())
        };
        let diff = whole
            .iter()
            .zip(&halves)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 1e-5, "max |Δ| = {diff}");
    }
}
