//! The plan: what running a sweep now would do, run by run, given the store.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use t4v_core::RunId;
use t4v_store::{RunStatus, Store, StoreError, SweepRecord};

/// Records a sweep and its runs in the store (new runs as `pending`); the revision counts
/// distinct scripts under the name. Returns the previous record.
pub fn register(
    store: &Store,
    def: &SweepDef,
    previous: Option<&SweepRecord>,
) -> Result<Option<SweepRecord>, StoreError> {
    let now = t4v_store::now_ms();
    let record = SweepRecord {
        name: def.name.clone(),
        script_path: def.script_path.clone(),
        script: def.script.clone(),
        script_hash: def.script_hash.clone(),
        runs: def.runs.iter().map(|r| r.id.clone()).collect(),
        reports: def.reports.clone(),
        created_ms: previous.map(|p| p.created_ms).unwrap_or(now),
        updated_ms: now,
        revision: match previous {
            Some(p) if p.script_hash == def.script_hash => p.revision,
            Some(p) => p.revision + 1,
            None => 1,
        },
    };
    let entries: Vec<_> = def
        .runs
        .iter()
        .map(|r| {
            (
                r.id.clone(),
                r.spec_json.clone(),
                r.canonical.clone(),
                r.setting.clone(),
            )
        })
        .collect();
    store.register_sweep(record, &entries)
}

use crate::script::SweepDef;

/// Whether a running run's current attempt is a batch system's task (it outlives coordinators).
fn at_batch_system(store: Option<&Store>, id: &RunId) -> Result<bool, StoreError> {
    let Some(store) = store else { return Ok(false) };
    let Some(n) = store.run(id)?.and_then(|r| r.claim).map(|c| c.attempt) else {
        return Ok(false);
    };
    Ok(store.attempt(id, n)?.is_some_and(|a| a.job.is_some()))
}

/// What the scheduler will do with a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PlanState {
    /// Not in the store yet: will run.
    New,
    /// In the store, never finished: will run.
    Pending,
    /// Left `running` by a coordinator that died: will run again.
    Interrupted,
    /// Queued or running at Slurm under an earlier coordinator: followed, not started again.
    Running,
    /// Failed before; runs again only with `--retry-failed`.
    Failed,
    /// Failed before and `--retry-failed` was given: will run.
    Retry,
    /// Finished: skipped.
    Done,
    /// A dependency failed (and is not retried): cannot run.
    Blocked,
}

impl PlanState {
    pub fn label(self) -> &'static str {
        match self {
            PlanState::New => "new",
            PlanState::Pending => "pending",
            PlanState::Interrupted => "interrupted",
            PlanState::Running => "running",
            PlanState::Failed => "failed",
            PlanState::Retry => "retry",
            PlanState::Done => "done",
            PlanState::Blocked => "blocked",
        }
    }

    /// Will the scheduler start this run?
    pub fn runs(self) -> bool {
        matches!(
            self,
            PlanState::New | PlanState::Pending | PlanState::Interrupted | PlanState::Retry
        )
    }
}

#[derive(Debug)]
pub struct Plan {
    /// In script order (dependencies first).
    pub states: Vec<PlanState>,
    /// Runs the previous script under this name did not list.
    pub added: Vec<RunId>,
    /// Runs the previous script listed and this one does not (they stay in the store).
    pub removed: Vec<RunId>,
    /// The previous record under this name, if any.
    pub previous: Option<SweepRecord>,
    /// Done runs whose dataset changed since they read it, and the done runs that need them
    /// ([`data_changed`]); they stay done unless the user asks (`--rerun-changed`).
    pub data_changed: Vec<RunId>,
}

/// The done runs of `def` whose successful attempt read a dataset whose fingerprint is not
/// `current(run)` now, and, in script order, the done runs that need one of them. `current`
/// is asked only for runs that recorded a fingerprint; `None` (the data cannot be read now)
/// flags nothing.
pub fn data_changed(
    store: &Store,
    def: &SweepDef,
    plan: &Plan,
    mut current: impl FnMut(&crate::PlannedRun) -> Option<String>,
) -> Result<Vec<RunId>, StoreError> {
    let mut changed: Vec<RunId> = Vec::new();
    for (run, state) in def.runs.iter().zip(&plan.states) {
        if *state != PlanState::Done {
            continue;
        }
        let upstream = run.needs().values().any(|d| changed.contains(d));
        let read = store
            .attempts(&run.id)?
            .into_iter()
            .rev()
            .find(|a| a.outcome == t4v_store::AttemptOutcome::Succeeded)
            .and_then(|a| a.data);
        let differs = read.is_some_and(|old| current(run).is_some_and(|now| now != old));
        if upstream || differs {
            changed.push(run.id.clone());
        }
    }
    Ok(changed)
}

impl Plan {
    /// Plans `def` against the store (`None`: an empty store).
    pub fn new(
        def: &SweepDef,
        store: Option<&Store>,
        retry_failed: bool,
    ) -> Result<Plan, StoreError> {
        let previous = match store {
            Some(s) => s.sweep(&def.name)?,
            None => None,
        };
        let mut states = Vec::with_capacity(def.runs.len());
        let mut by_id: HashMap<&RunId, PlanState> = HashMap::with_capacity(def.runs.len());
        for run in &def.runs {
            let stored = match store {
                Some(s) => s.run(&run.id)?.map(|r| r.status),
                None => None,
            };
            let mut state = match stored {
                None => PlanState::New,
                Some(RunStatus::Pending) => PlanState::Pending,
                Some(RunStatus::Running) if at_batch_system(store, &run.id)? => PlanState::Running,
                Some(RunStatus::Running) => PlanState::Interrupted,
                Some(RunStatus::Done) => PlanState::Done,
                Some(RunStatus::Failed) if retry_failed => PlanState::Retry,
                Some(RunStatus::Failed) => PlanState::Failed,
            };
            let dep_blocked = run
                .needs()
                .values()
                .any(|d| matches!(by_id.get(d), Some(PlanState::Failed | PlanState::Blocked)));
            if dep_blocked && state != PlanState::Done {
                state = PlanState::Blocked;
            }
            by_id.insert(&run.id, state);
            states.push(state);
        }
        let (added, removed) = match &previous {
            Some(p) => {
                let old: HashSet<&RunId> = p.runs.iter().collect();
                let new: HashSet<&RunId> = def.runs.iter().map(|r| &r.id).collect();
                (
                    def.runs
                        .iter()
                        .filter(|r| !old.contains(&r.id))
                        .map(|r| r.id.clone())
                        .collect(),
                    p.runs
                        .iter()
                        .filter(|id| !new.contains(id))
                        .cloned()
                        .collect(),
                )
            }
            None => (Vec::new(), Vec::new()),
        };
        Ok(Plan {
            states,
            added,
            removed,
            previous,
            data_changed: Vec::new(),
        })
    }

    pub fn counts(&self) -> BTreeMap<PlanState, usize> {
        let mut c = BTreeMap::new();
        for s in &self.states {
            *c.entry(*s).or_insert(0) += 1;
        }
        c
    }

    pub fn to_run(&self) -> usize {
        self.states.iter().filter(|s| s.runs()).count()
    }

    /// One line of counts: `12 runs: 4 new, 6 done, 2 failed`.
    pub fn summary(&self) -> String {
        let mut s = format!("{} runs:", self.states.len());
        let parts: Vec<String> = self
            .counts()
            .iter()
            .map(|(k, n)| format!(" {n} {}", k.label()))
            .collect();
        s.push_str(&parts.join(","));
        s
    }

    /// The changes against the previous script under the same name, or an empty string.
    pub fn changes(&self, def: &SweepDef) -> String {
        let mut out = String::new();
        let Some(prev) = &self.previous else {
            return out;
        };
        if prev.script_hash == def.script_hash && self.added.is_empty() && self.removed.is_empty() {
            return out;
        }
        let _ = writeln!(
            out,
            "sweep `{}` changed since its last run: {} run(s) added, {} removed",
            def.name,
            self.added.len(),
            self.removed.len()
        );
        let by_id: HashMap<&RunId, &crate::PlannedRun> =
            def.runs.iter().map(|r| (&r.id, r)).collect();
        for id in &self.added {
            let _ = writeln!(
                out,
                "  + {id}  {}",
                by_id.get(id).map(|r| r.label()).unwrap_or_default()
            );
        }
        for id in &self.removed {
            let _ = writeln!(out, "  - {id}  (kept in the store)");
        }
        out
    }

    /// The full plan, one run a line.
    pub fn render(&self, def: &SweepDef) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "sweep `{}` ({}): {}",
            def.name,
            def.script_path,
            self.summary()
        );
        for (run, state) in def.runs.iter().zip(&self.states) {
            let needs: Vec<String> = run
                .needs()
                .iter()
                .map(|(k, v)| format!("{k}←{v}"))
                .collect();
            let label = if self.data_changed.contains(&run.id) {
                format!("{} (data changed)", state.label())
            } else {
                state.label().to_string()
            };
            let _ = writeln!(
                out,
                "  {:<11} {}  {:<9} {}{}",
                label,
                run.id,
                run.spec.kind,
                run.label(),
                if needs.is_empty() {
                    String::new()
                } else {
                    format!("  [needs {}]", needs.join(", "))
                }
            );
        }
        out
    }
}
