//! The records kept in the store. All are JSON with `#[serde(default)]` on optional fields, so
//! records written by an older build still read.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use t4v_core::{Provenance, RunId};

/// A named sweep: the script that defined it and the runs it lists.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepRecord {
    pub name: String,
    /// Where the script was read from.
    pub script_path: String,
    pub script: String,
    /// BLAKE3 of the script text (hex).
    pub script_hash: String,
    pub runs: Vec<RunId>,
    /// Report declarations of the script (tables, figures), as JSON.
    #[serde(default)]
    pub reports: Vec<Value>,
    pub created_ms: u64,
    pub updated_ms: u64,
    /// How many distinct scripts have been registered under this name.
    #[serde(default)]
    pub revision: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    Pending,
    Running,
    Done,
    Failed,
}

impl RunStatus {
    pub const ALL: [RunStatus; 4] = [
        RunStatus::Pending,
        RunStatus::Running,
        RunStatus::Done,
        RunStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::Done => "done",
            RunStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for RunStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        RunStatus::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a run status (pending, running, done, failed)"))
    }
}

/// Who holds a running run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    /// The coordinator (host:pid:start) that claimed it.
    pub owner: String,
    pub attempt: u32,
    pub at_ms: u64,
}

/// One run: a resolved spec and its state. Shared by every sweep that lists the same spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: RunId,
    /// The id of the run's setting (spec without seed).
    pub setting: RunId,
    pub kind: String,
    /// The resolved spec, every default written out.
    pub spec: Value,
    /// The canonical spec the id hashes (defaults left out).
    pub canonical: Value,
    pub status: RunStatus,
    /// Why the last attempt failed or was interrupted.
    #[serde(default)]
    pub reason: Option<String>,
    pub sweeps: BTreeSet<String>,
    pub attempts: u32,
    #[serde(default)]
    pub claim: Option<Claim>,
    /// Artefact name → path (relative to the results folder, or absolute).
    #[serde(default)]
    pub artefacts: BTreeMap<String, String>,
    /// Summary values: the last point of each series (`split/name`) and explicit summaries.
    #[serde(default)]
    pub summary: BTreeMap<String, f64>,
    pub created_ms: u64,
    pub updated_ms: u64,
}

impl RunRecord {
    pub fn new(id: RunId, spec: Value, canonical: Value, setting: RunId, now: u64) -> Self {
        let kind = spec
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        RunRecord {
            id,
            setting,
            kind,
            spec,
            canonical,
            status: RunStatus::Pending,
            reason: None,
            sweeps: BTreeSet::new(),
            attempts: 0,
            claim: None,
            artefacts: BTreeMap::new(),
            summary: BTreeMap::new(),
            created_ms: now,
            updated_ms: now,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttemptOutcome {
    Running,
    Succeeded,
    Failed,
    /// The coordinator stopped (or was stopped) before the attempt ended; the run is retried.
    Interrupted,
}

/// How a worker process ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

/// One execution of a run in a worker process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1-based; assigned by the claim.
    pub n: u32,
    pub started_ms: u64,
    #[serde(default)]
    pub ended_ms: Option<u64>,
    pub outcome: AttemptOutcome,
    #[serde(default)]
    pub exit: Option<ExitInfo>,
    #[serde(default)]
    pub reason: Option<String>,
    /// The last lines (at most 50) of the worker's stderr.
    #[serde(default)]
    pub stderr_tail: Vec<String>,
    #[serde(default)]
    pub pid: Option<u32>,
    pub provenance: Provenance,
    /// The cluster job executing it, when a batch system (Slurm) runs it rather than a child
    /// of the coordinator: how a later coordinator finds it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<ExternalJob>,
    /// The machine its worker ran on (a cluster node; the provenance names the coordinator's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The fingerprint of the dataset the attempt read, as its worker reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// An attempt's task in a batch system.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalJob {
    /// The executor (`slurm`).
    pub executor: String,
    /// The submission's job name, unique per submission: finds the job when the coordinator
    /// stopped between submitting and recording its id.
    pub name: String,
    /// The task's index in its job array.
    pub task: u32,
    /// The job array's id, once the batch system has accepted it (task id: `<id>_<task>`).
    #[serde(default)]
    pub id: Option<String>,
}

impl Attempt {
    /// A new attempt about to start; `n` is filled in by the claim.
    pub fn starting(provenance: Provenance) -> Attempt {
        Attempt {
            n: 0,
            started_ms: crate::now_ms(),
            ended_ms: None,
            outcome: AttemptOutcome::Running,
            exit: None,
            reason: None,
            stderr_tail: Vec::new(),
            pid: None,
            provenance,
            job: None,
            node: None,
            data: None,
        }
    }
}
