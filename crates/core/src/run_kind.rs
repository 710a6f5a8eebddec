//! Run kinds: what a worker process does with one run (`selftest`, and later `train`, `eval`,
//! `zero-shot`, `features`, `probe`, `pretrain`). The scheduler only knows this trait.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::Reporter;
use crate::registry::{Family, PluginInfo, Registry};
use crate::spec::{RunId, RunSpec};

/// A kind of run, executed inside a worker process.
pub trait RunKind: Sync {
    /// Name, summary and the kind-specific parameters accepted under `params` in a spec.
    fn info(&self) -> &'static PluginInfo;

    /// The plugin families whose names this kind reads from the spec; only those are checked
    /// against the registry, so a `selftest` run does not need a dataset plugin.
    fn uses(&self) -> &'static [Family] {
        &[]
    }

    /// Names of the artefact-producing runs this kind may consume (`needs: #{features: id}`).
    fn needs(&self) -> &'static [&'static str] {
        &[]
    }

    /// Does the run. The plugins its spec names are found in `registry` (the one its spec was
    /// resolved against). Metrics, artefacts and progress go through `reporter`; an `Err` is
    /// recorded as the attempt's failure reason.
    fn execute(
        &self,
        job: &Job,
        registry: &Registry,
        reporter: &mut Reporter,
    ) -> Result<(), RunError>;
}

/// Everything a worker is told about the run it executes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Job {
    pub id: RunId,
    /// 1-based attempt number; a re-attempt may resume from checkpoints in `run_dir`.
    pub attempt: u32,
    pub spec: RunSpec,
    /// The run's own folder (`results/runs/<id>/`): checkpoints, logs, artefacts.
    pub run_dir: PathBuf,
    /// The results root, for shared caches (`results/cache/`).
    pub results_dir: PathBuf,
    /// The finished runs this one consumes, by the name the spec gave them.
    pub needs: BTreeMap<String, NeededRun>,
    /// The compute backend chosen for the sweep (`cpu`, `cuda`).
    pub backend: String,
    /// Data-parallel peers of the run (`--devices-per-run`): its leased GPUs on CUDA, compute
    /// threads on the CPU. Training kinds split every micro-batch over them.
    #[serde(default = "one")]
    pub peers: usize,
}

fn one() -> usize {
    1
}

/// A finished dependency: where its files are.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NeededRun {
    pub id: RunId,
    pub run_dir: PathBuf,
    pub artefacts: BTreeMap<String, PathBuf>,
}

impl Job {
    /// A kind parameter; specs are resolved before they reach a worker, so every declared
    /// parameter is present.
    pub fn param(&self, name: &str) -> Result<&Value, RunError> {
        self.spec
            .params
            .get(name)
            .ok_or_else(|| RunError::Failed(format!("parameter `params.{name}` is missing")))
    }

    pub fn param_u64(&self, name: &str) -> Result<u64, RunError> {
        self.param(name)?
            .as_u64()
            .ok_or_else(|| RunError::Failed(format!("parameter `params.{name}` is not an integer")))
    }

    pub fn param_f64(&self, name: &str) -> Result<f64, RunError> {
        self.param(name)?
            .as_f64()
            .ok_or_else(|| RunError::Failed(format!("parameter `params.{name}` is not a number")))
    }

    pub fn param_str(&self, name: &str) -> Result<&str, RunError> {
        self.param(name)?
            .as_str()
            .ok_or_else(|| RunError::Failed(format!("parameter `params.{name}` is not a string")))
    }
}

/// Why a run failed, as the worker reports it.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Failed(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}
