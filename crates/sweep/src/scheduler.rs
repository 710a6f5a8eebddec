//! The coordinator: hands the runs that are ready to an executor — worker processes of its own
//! ([`crate::local`]) or tasks of a Slurm cluster ([`crate::slurm`]) — applies the events their
//! workers report, and is the only writer of the store.
//!
//! Dependencies stay the coordinator's: a run is handed over once every run it needs is done,
//! so a failed dependency blocks what needs it whatever executes it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use t4v_core::{Job, NeededRun, Provenance, RunId};
use t4v_store::{Attempt, AttemptOutcome, RunStatus, Store, StoreError};

pub use crate::attempt::STDERR_TAIL;
use crate::attempt::{self, Action, AttemptState, End};
use crate::plan::{Plan, PlanState};
use crate::progress::Progress;
use crate::script::{PlannedRun, SweepDef};

/// How to start a worker: `program args... <job.json>`.
#[derive(Clone, Debug)]
pub struct WorkerCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
}

/// Where the runs execute.
#[derive(Clone, Debug, Default)]
pub enum ExecutorChoice {
    /// Worker processes of the coordinator, on this machine.
    #[default]
    Local,
    /// Tasks of Slurm job arrays, on the cluster's nodes.
    Slurm(crate::slurm::SlurmConfig),
}

#[derive(Clone, Debug)]
pub struct SweepOptions {
    /// Runs executed at once (Slurm: the throttle `%N` of each job array).
    pub jobs: usize,
    /// GPUs to lease, `devices_per_run` per running worker, through `CUDA_VISIBLE_DEVICES`.
    pub devices: Vec<String>,
    /// Data-parallel peers of each run: GPUs leased to it, or (CPU) compute threads.
    pub devices_per_run: usize,
    pub backend: String,
    pub timeout: Option<Duration>,
    pub fail_fast: bool,
    pub results_dir: PathBuf,
    pub worker: WorkerCommand,
    /// Provenance recorded with every attempt (device filled per attempt).
    pub provenance: Provenance,
    /// Where to keep a JSON-lines export of the store while the sweep holds it (at the start,
    /// within [`SNAPSHOT_EVERY`] of a run finishing, and at the end), so reports can read the
    /// results of a running sweep.
    pub snapshot: Option<PathBuf>,
    pub executor: ExecutorChoice,
    /// Hand over what is ready and return without following it (Slurm).
    pub detach: bool,
}

/// Least time between two snapshots of the store during a sweep.
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(5);

/// Writes the store's export to `path` atomically (a temporary file renamed over it).
pub fn write_snapshot(store: &Store, path: &std::path::Path) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        store
            .export_jsonl(&mut f)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        std::io::Write::flush(&mut f)?;
    }
    std::fs::rename(&tmp, path)
}

#[derive(Debug, Default)]
pub struct SweepOutcome {
    pub succeeded: usize,
    pub failed: Vec<(RunId, String)>,
    pub blocked: Vec<RunId>,
    /// Runs not started or stopped because of --fail-fast.
    pub stopped: usize,
    /// With --detach: runs left queued or running at the executor.
    pub detached: usize,
    /// With --detach: runs that wait for a dependency still in flight (a later `sweep` hands
    /// them over).
    pub waiting: usize,
    pub elapsed: Duration,
    /// The signal (SIGINT, SIGTERM) that stopped the sweep ([`crate::interrupt`]).
    pub signal: Option<i32>,
}

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Slurm(#[from] crate::slurm::SlurmError),
}

pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> SchedulerError {
    let context = context.into();
    move |source| SchedulerError::Io { context, source }
}

/// The folder of a run: `results/runs/<id>/`.
pub fn run_dir(results: &Path, id: &RunId) -> PathBuf {
    results.join("runs").join(id.as_str())
}

/// What an executor started.
pub(crate) enum Launched {
    Started(RunId, AttemptState),
    /// Another coordinator holds the run.
    Claimed(RunId),
}

/// News from an executor.
pub(crate) enum Update {
    /// A line on the worker's event channel.
    Event(RunId, String),
    Stderr(RunId, String),
    Ended(RunId, End),
    /// Something the user should know that stops nothing (Slurm did not answer once).
    Warning(String),
}

/// Where attempts execute. The coordinator claims nothing itself: an executor claims the runs
/// it starts ([`prepare`]), so what the store says is running is what it has in hand.
pub(crate) trait Executor {
    /// Starts attempts of the first runs of `ready` that fit now.
    fn start(
        &mut self,
        store: &Store,
        ready: &[&PlannedRun],
        progress: &mut Progress,
    ) -> Result<Vec<Launched>, SchedulerError>;
    /// News since the last call, waiting up to `wait` for some.
    fn poll(&mut self, wait: Duration) -> Result<Vec<Update>, SchedulerError>;
    /// Stops an attempt; its end still comes through `poll`.
    fn stop(&mut self, id: &RunId);
    /// Whether the coordinator enforces `--timeout` (the local executor) or the executor has
    /// passed it on (Slurm's `--time`).
    fn coordinator_timeout(&self) -> bool {
        true
    }
}

/// Runs what the plan says should run. The sweep must already be registered in the store.
pub fn execute(
    store: &Store,
    def: &SweepDef,
    plan: &Plan,
    opts: &SweepOptions,
) -> Result<SweepOutcome, SchedulerError> {
    execute_with(store, def, plan, opts, Vec::new())
}

/// [`execute`], following also `attached`: attempts at Slurm that an earlier coordinator
/// handed over and that are still queued or running ([`crate::slurm::sync`]).
pub fn execute_with(
    store: &Store,
    def: &SweepDef,
    plan: &Plan,
    opts: &SweepOptions,
    attached: Vec<crate::slurm::Attached>,
) -> Result<SweepOutcome, SchedulerError> {
    let owner = format!(
        "{}:{}:{}",
        opts.provenance.host,
        std::process::id(),
        t4v_store::now_ms()
    );
    let ours: HashSet<&RunId> = def.runs.iter().map(|r| &r.id).collect();
    let attached: Vec<_> = attached
        .into_iter()
        .filter(|a| ours.contains(&a.id))
        .collect();
    let mut waiting: Vec<usize> = Vec::new();
    let mut done: HashSet<RunId> = HashSet::new();
    let mut failed: HashSet<RunId> = HashSet::new();
    for (i, (run, state)) in def.runs.iter().zip(&plan.states).enumerate() {
        match state {
            s if s.runs() => waiting.push(i),
            PlanState::Done => {
                done.insert(run.id.clone());
            }
            PlanState::Failed | PlanState::Blocked => {
                failed.insert(run.id.clone());
            }
            _ => {}
        }
    }
    let (mut exec, mut tracked): (Box<dyn Executor>, HashMap<RunId, AttemptState>) =
        match &opts.executor {
            ExecutorChoice::Local => (
                Box::new(crate::local::LocalExecutor::new(opts, owner)),
                HashMap::new(),
            ),
            ExecutorChoice::Slurm(cfg) => {
                let (e, t) =
                    crate::slurm::SlurmExecutor::new(cfg.clone(), opts, owner, &def.name, attached);
                (Box::new(e), t)
            }
        };
    let mut outcome = SweepOutcome::default();
    let slots = match &opts.executor {
        ExecutorChoice::Local => crate::local::slots(opts),
        ExecutorChoice::Slurm(_) => opts.jobs.max(1),
    };
    let mut progress = Progress::new(waiting.len() + tracked.len(), slots);
    for id in tracked.keys() {
        let label = def.runs.iter().find(|r| &r.id == id).map(|r| r.label());
        progress.started(id.as_str(), &label.unwrap_or_default());
    }
    let mut stopping = false;
    // Snapshot state: when the last one was written, and whether runs finished since.
    let mut snapshot_at: Option<Instant> = None;
    let mut changed = false;
    let mut snapshot = |progress: &mut Progress, force: bool, changed: &mut bool| {
        if let Some(p) = &opts.snapshot
            && (force || (*changed && snapshot_at.is_none_or(|t| t.elapsed() >= SNAPSHOT_EVERY)))
        {
            if let Err(e) = write_snapshot(store, p) {
                progress.println(&format!("warning: store snapshot {}: {e}", p.display()));
            }
            snapshot_at = Some(Instant::now());
            *changed = false;
        }
    };
    snapshot(&mut progress, true, &mut changed);

    loop {
        // Hand over what is ready, in script order.
        if !stopping {
            let ready: Vec<&PlannedRun> = waiting
                .iter()
                .map(|&i| &def.runs[i])
                .filter(|r| r.needs().values().all(|d| done.contains(d)))
                .collect();
            if !ready.is_empty() {
                for l in exec.start(store, &ready, &mut progress)? {
                    let id = match l {
                        Launched::Started(id, st) => {
                            tracked.insert(id.clone(), st);
                            id
                        }
                        Launched::Claimed(id) => {
                            progress.println(&format!(
                                "skip   {id}: already claimed by another coordinator"
                            ));
                            id
                        }
                    };
                    waiting.retain(|&i| def.runs[i].id != id);
                }
                changed = true;
            }
        }
        // Runs whose dependencies failed will never start.
        let blocked: Vec<usize> = waiting
            .iter()
            .copied()
            .filter(|&i| def.runs[i].needs().values().any(|d| failed.contains(d)))
            .collect();
        for i in blocked {
            waiting.retain(|&w| w != i);
            let id = def.runs[i].id.clone();
            progress.println(&format!("blocked {id}: a dependency failed"));
            progress.blocked();
            failed.insert(id.clone());
            outcome.blocked.push(id);
        }
        if opts.detach {
            outcome.detached = tracked.len();
            outcome.waiting = waiting.len();
            break;
        }
        if tracked.is_empty() && (waiting.is_empty() || stopping) {
            break;
        }
        if tracked.is_empty() {
            // Nothing can start: the remaining runs wait on runs outside this plan.
            for i in waiting.drain(..) {
                outcome.blocked.push(def.runs[i].id.clone());
            }
            break;
        }

        if let Some(sig) = crate::interrupt::received()
            && outcome.signal.is_none()
        {
            outcome.signal = Some(sig);
            stopping = true;
            let name = crate::interrupt::name(sig);
            if matches!(opts.executor, ExecutorChoice::Slurm(_)) {
                // Tasks at Slurm outlive their coordinator: a later `sweep` follows them.
                progress.println(&format!(
                    "{name}: leaving {} run(s) at Slurm (`sweep` again follows them, `cancel` stops them)",
                    tracked.len()
                ));
                outcome.detached = tracked.len();
                break;
            }
            progress.println(&format!(
                "{name}: stopping {} running run(s), recorded as interrupted (again to end at once)",
                tracked.len()
            ));
            for (id, st) in tracked.iter_mut() {
                if st.kill_reason.is_none() {
                    st.kill_reason =
                        Some((AttemptOutcome::Interrupted, format!("stopped by {name}")));
                    exec.stop(id);
                }
            }
        }
        snapshot(&mut progress, false, &mut changed);
        for update in exec.poll(Duration::from_millis(100))? {
            match update {
                Update::Event(id, line) => {
                    let Some(st) = tracked.get_mut(&id) else {
                        continue;
                    };
                    match attempt::ingest(store, &id, st, &line)? {
                        Some(Action::Progress(d, t)) => progress.run_progress(id.as_str(), d, t),
                        Some(Action::Kill(reason)) if st.kill_reason.is_none() => {
                            st.kill_reason = Some((AttemptOutcome::Failed, reason));
                            exec.stop(&id);
                        }
                        _ => {}
                    }
                }
                Update::Warning(message) => progress.println(&format!("warning: {message}")),
                Update::Stderr(id, line) => {
                    if let Some(st) = tracked.get_mut(&id) {
                        st.push_tail(line);
                    }
                }
                Update::Ended(id, end) => {
                    let Some(st) = tracked.remove(&id) else {
                        continue;
                    };
                    let elapsed = st.started.elapsed();
                    let (result, reason) = attempt::conclude(store, &id, st, end)?;
                    match result {
                        AttemptOutcome::Interrupted => progress.stopped(id.as_str()),
                        o => progress.finished(
                            id.as_str(),
                            o == AttemptOutcome::Succeeded,
                            elapsed,
                            reason.as_deref(),
                        ),
                    }
                    changed = true;
                    match result {
                        AttemptOutcome::Succeeded => {
                            outcome.succeeded += 1;
                            done.insert(id);
                        }
                        AttemptOutcome::Interrupted => outcome.stopped += 1,
                        _ => {
                            failed.insert(id.clone());
                            outcome.failed.push((id, reason.unwrap_or_default()));
                            if opts.fail_fast && !stopping {
                                stopping = true;
                                progress.println("--fail-fast: a run failed, stopping the sweep");
                                for (id, st) in tracked.iter_mut() {
                                    if st.kill_reason.is_none() {
                                        st.kill_reason = Some((
                                            AttemptOutcome::Interrupted,
                                            "stopped by --fail-fast after another run failed"
                                                .into(),
                                        ));
                                        exec.stop(id);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        if let Some(limit) = opts.timeout.filter(|_| exec.coordinator_timeout()) {
            for (id, st) in tracked.iter_mut() {
                if st.kill_reason.is_none() && st.started.elapsed() > limit {
                    st.kill_reason = Some((
                        AttemptOutcome::Failed,
                        format!("timed out after {}", crate::progress::fmt_duration(limit)),
                    ));
                    exec.stop(id);
                }
            }
        }
    }
    if stopping {
        outcome.stopped += waiting.len();
    }
    snapshot(&mut progress, true, &mut changed);
    outcome.elapsed = progress.finish();
    store.flush()?;
    Ok(outcome)
}

/// Data-parallel peers of a run: its spec's `model.devices`, else the sweep's default.
pub(crate) fn peers_of(run: &PlannedRun, opts: &SweepOptions) -> usize {
    peers_or(run, opts.devices_per_run)
}

/// `model.devices` of a run, or `per_run` where the spec leaves it at 0.
fn peers_or(run: &PlannedRun, per_run: usize) -> usize {
    match run.spec.model.devices {
        0 => per_run.max(1),
        n => n as usize,
    }
}

/// The runs that ask for more of the sweep's `devices` GPUs than there are (`per_run` by
/// default): they could never start.
pub fn unplaceable(def: &SweepDef, devices: usize, per_run: usize) -> Vec<(RunId, usize)> {
    if devices == 0 {
        return Vec::new();
    }
    def.runs
        .iter()
        .map(|r| (r.id.clone(), peers_or(r, per_run)))
        .filter(|(_, n)| *n > devices)
        .collect()
}

/// An attempt claimed and its job file written, ready for an executor to start.
pub(crate) struct Prepared {
    pub attempt: u32,
    pub job_file: PathBuf,
    pub run_dir: PathBuf,
}

/// Claims a new attempt of `run` (`attempt` as the template: provenance, external job) and
/// writes its job file. `None`: another coordinator holds the run.
pub(crate) fn prepare(
    store: &Store,
    run: &PlannedRun,
    opts: &SweepOptions,
    owner: &str,
    attempt: Attempt,
) -> Result<Option<Prepared>, SchedulerError> {
    let n = match store.claim(&run.id, owner, attempt) {
        Ok(n) => n,
        Err(StoreError::NotClaimable { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let dir = run_dir(&opts.results_dir, &run.id);
    let job_file = attempt::job_file(&dir, n);
    let written = (|| {
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let mut needs = BTreeMap::new();
        for (role, dep) in run.needs() {
            let rec = store
                .run(dep)?
                .filter(|r| r.status == RunStatus::Done)
                .ok_or_else(|| SchedulerError::Store(StoreError::NoRun(dep.to_string())))?;
            needs.insert(
                role.clone(),
                NeededRun {
                    id: dep.clone(),
                    run_dir: run_dir(&opts.results_dir, dep),
                    artefacts: rec
                        .artefacts
                        .iter()
                        .map(|(k, v)| (k.clone(), PathBuf::from(v)))
                        .collect(),
                },
            );
        }
        let job = Job {
            id: run.id.clone(),
            attempt: n,
            spec: run.spec.clone(),
            run_dir: dir.clone(),
            results_dir: opts.results_dir.clone(),
            needs,
            backend: opts.backend.clone(),
            peers: peers_of(run, opts),
        };
        std::fs::write(
            &job_file,
            serde_json::to_vec_pretty(&job).expect("jobs serialise"),
        )
        .map_err(io(format!("writing {}", job_file.display())))
    })();
    if let Err(e) = written {
        unclaim(store, &run.id, n, &e.to_string())?;
        return Err(e);
    }
    Ok(Some(Prepared {
        attempt: n,
        job_file,
        run_dir: dir,
    }))
}

/// Gives back a claimed attempt that never started: the run is pending again.
pub(crate) fn unclaim(store: &Store, id: &RunId, n: u32, reason: &str) -> Result<(), StoreError> {
    store.finish(
        id,
        n,
        AttemptOutcome::Interrupted,
        None,
        Some(format!("not started: {reason}")),
        Vec::new(),
    )
}
