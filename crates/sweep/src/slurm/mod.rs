//! The Slurm executor: runs that are ready go to Slurm as job arrays, one task per run, each
//! task running the worker on its node with the run's job file in the shared results folder.
//!
//! Workers report through the file system (fsynced event lines, one file per attempt); the
//! coordinator reads them and asks Slurm (`scontrol`) how tasks end. Each attempt keeps its
//! task's id, so the coordinator need not stay up: a later `sweep` (or `runs`, `report`)
//! ingests what ended and follows what is still queued or running ([`sync`]), and a run is
//! never submitted twice.

mod commands;
mod config;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use config::SlurmConfig;
use t4v_core::RunId;
use t4v_store::{Attempt, AttemptOutcome, ExternalJob, Store, StoreError};

use crate::attempt::{self, Action, AttemptState, End, EventFile};
use crate::progress::Progress;
use crate::scheduler::{
    Executor, Launched, SchedulerError, SweepOptions, Update, io, peers_of, prepare, run_dir,
    unclaim,
};
use crate::script::PlannedRun;
use commands::ArrayState;

/// The executor's name in attempts (`Attempt::job`).
pub const EXECUTOR: &str = "slurm";

/// Tasks per job array at most: Slurm's default `MaxArraySize` (1001) allows indices 0–1000; a
/// bigger wave of ready runs goes out as several arrays.
const MAX_ARRAY: usize = 1000;

/// Least time between two questions to the controller about the same arrays; with more than
/// eight arrays in flight it grows with their number (one `scontrol` call per array), so a big
/// sweep does not load a shared controller.
const QUERY_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Config { path: PathBuf, message: String },
    #[error("cannot run `{command}` (is Slurm's client installed and on PATH?): {source}")]
    Command {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed: {stderr}")]
    Failed { command: String, stderr: String },
    #[error("Slurm refused the submission (sbatch {args}): {stderr}")]
    Refused { args: String, stderr: String },
}

/// Where a sweep's submissions live: `results/slurm/<job name>/` (batch script, task list, one
/// log per task for what Slurm itself writes).
pub fn submissions_dir(results: &Path) -> PathBuf {
    results.join("slurm")
}

/// A task handed to Slurm, as the coordinator follows it.
pub(crate) struct Task {
    array: String,
    index: u32,
    run_dir: PathBuf,
    attempt: u32,
    events: EventFile,
    /// Slurm's own output for the task (`slurmstepd` messages, the batch shell).
    log: PathBuf,
    restarts: u32,
}

impl Task {
    fn job_id(&self) -> String {
        format!("{}_{}", self.array, self.index)
    }

    /// What remains to read once the task ended: its last events, then its stderr.
    fn last_words(&mut self, id: &RunId) -> Vec<Update> {
        let mut out: Vec<Update> = self
            .events
            .read_lines()
            .unwrap_or_default()
            .into_iter()
            .map(|l| Update::Event(id.clone(), l))
            .collect();
        let stderr = attempt::stderr_file(&self.run_dir, self.attempt);
        out.extend(
            attempt::tail(&stderr, attempt::STDERR_TAIL)
                .into_iter()
                .chain(
                    attempt::tail(&self.log, 10)
                        .into_iter()
                        .map(|l| format!("[slurm] {l}")),
                )
                .map(|l| Update::Stderr(id.clone(), l)),
        );
        out
    }
}

/// An attempt still queued or running at Slurm, found by [`sync`], for a coordinator to follow.
pub struct Attached {
    pub id: RunId,
    state: AttemptState,
    task: Task,
}

/// What [`sync`] found.
#[derive(Default)]
pub struct Synced {
    /// Attempts that ended since a coordinator last looked, now recorded.
    pub concluded: Vec<(RunId, AttemptOutcome, Option<String>)>,
    /// Attempts still queued or running.
    pub attached: Vec<Attached>,
}

/// The slice of the Slurm request that differs between runs of one sweep.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Request {
    cpus: Option<u32>,
    gpus: u32,
}

fn request(cfg: &SlurmConfig, opts: &SweepOptions, run: &PlannedRun) -> Request {
    let peers = peers_of(run, opts) as u32;
    let cpu = opts.backend == "cpu";
    Request {
        cpus: cfg.cpus_per_task.or((cpu && peers > 1).then_some(peers)),
        gpus: cfg.gpus_per_run.unwrap_or(if cpu { 0 } else { peers }),
    }
}

/// `sbatch --time` for a `--timeout`: whole seconds, rounded up (Slurm enforces whole minutes).
fn slurm_time(limit: Duration) -> String {
    let s = limit.as_secs() + u64::from(limit.subsec_nanos() > 0);
    format!(
        "{}-{:02}:{:02}:{:02}",
        s / 86_400,
        s / 3600 % 24,
        s / 60 % 60,
        s % 60
    )
}

/// The `sbatch` arguments of a request (no array, name or output: those are per submission).
fn request_args(cfg: &SlurmConfig, opts: &SweepOptions, req: &Request) -> Vec<String> {
    let mut a = Vec::new();
    for (flag, v) in [
        ("--partition", &cfg.partition),
        ("--account", &cfg.account),
        ("--qos", &cfg.qos),
        ("--mem", &cfg.mem),
    ] {
        if let Some(v) = v {
            a.push(format!("{flag}={v}"));
        }
    }
    match (opts.timeout, &cfg.time) {
        (Some(t), _) => a.push(format!("--time={}", slurm_time(t))),
        (None, Some(t)) => a.push(format!("--time={t}")),
        (None, None) => {}
    }
    if let Some(c) = req.cpus {
        a.push(format!("--cpus-per-task={c}"));
    }
    if req.gpus > 0 {
        a.push(match &cfg.gpu_type {
            Some(t) => format!("--gres=gpu:{t}:{}", req.gpus),
            None => format!("--gres=gpu:{}", req.gpus),
        });
    }
    a.extend(cfg.sbatch_args.iter().cloned());
    a
}

/// Asks Slurm, submitting nothing, whether it accepts what `runs` will request: a request the
/// cluster cannot meet (GPUs on a partition without them) is refused before anything is stored.
pub fn validate(
    cfg: &SlurmConfig,
    opts: &SweepOptions,
    runs: &[&PlannedRun],
) -> Result<(), (RunId, SlurmError)> {
    let mut seen: HashSet<Request> = HashSet::new();
    for run in runs {
        let req = request(cfg, opts, run);
        if seen.insert(req.clone()) {
            commands::test_only(&request_args(cfg, opts, &req)).map_err(|e| (run.id.clone(), e))?;
        }
    }
    Ok(())
}

/// A string as one word of a POSIX shell.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub struct SlurmExecutor {
    cfg: SlurmConfig,
    opts: SweepOptions,
    owner: String,
    sweep: String,
    submissions: u32,
    tasks: HashMap<RunId, Task>,
    queried: Option<Instant>,
    warned: HashSet<String>,
}

impl SlurmExecutor {
    /// An executor following `attached` from the start; returns their states for the
    /// coordinator.
    pub(crate) fn new(
        cfg: SlurmConfig,
        opts: &SweepOptions,
        owner: String,
        sweep: &str,
        attached: Vec<Attached>,
    ) -> (Self, HashMap<RunId, AttemptState>) {
        let mut tasks = HashMap::new();
        let mut states = HashMap::new();
        for a in attached {
            tasks.insert(a.id.clone(), a.task);
            states.insert(a.id, a.state);
        }
        let exec = SlurmExecutor {
            cfg,
            opts: opts.clone(),
            owner,
            sweep: sweep.to_string(),
            submissions: 0,
            tasks,
            queried: None,
            warned: HashSet::new(),
        };
        (exec, states)
    }

    /// A job name unique to this submission: `t4v-<sweep>-<time>-<n>`.
    fn next_name(&mut self) -> String {
        self.submissions += 1;
        let sweep: String = self
            .sweep
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("t4v-{sweep}-{}-{}", t4v_store::now_ms(), self.submissions)
    }

    /// The batch script every task of a submission runs, and its task list.
    fn write_submission(
        &self,
        dir: &Path,
        name: &str,
        tasks: &[(RunId, PathBuf, PathBuf)],
    ) -> Result<PathBuf, SchedulerError> {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        let list = dir.join("tasks");
        let mut text = String::new();
        for (id, job, err) in tasks {
            text.push_str(&format!("{}\t{}\t{id}\n", job.display(), err.display()));
        }
        std::fs::write(&list, text).map_err(io(format!("writing {}", list.display())))?;
        let mut worker = vec![sh_quote(&self.opts.worker.program.to_string_lossy())];
        worker.extend(self.opts.worker.args.iter().map(|a| sh_quote(a)));
        worker.push("--events file".into());
        let script = format!(
            "#!/bin/sh\n\
             # text4vis-rs, sweep `{sweep}`, submission {name}: array task i runs line i+1 of\n\
             # the task list (job file, stderr file, run id; tab-separated).\n\
             list={list}\n\
             line=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" \"$list\")\n\
             job=$(printf '%s\\n' \"$line\" | cut -f1)\n\
             err=$(printf '%s\\n' \"$line\" | cut -f2)\n\
             if [ -z \"$job\" ]; then\n\
             \x20   echo \"no task $SLURM_ARRAY_TASK_ID in $list\" >&2\n\
             \x20   exit 2\n\
             fi\n\
             T4V_RUN_ID=$(printf '%s\\n' \"$line\" | cut -f3)\n\
             export T4V_RUN_ID\n\
             # One compute thread per CPU Slurm gave the task, unless the user chose.\n\
             RAYON_NUM_THREADS=${{RAYON_NUM_THREADS:-${{SLURM_CPUS_PER_TASK:-1}}}}\n\
             export RAYON_NUM_THREADS\n\
             exec {worker} \"$job\" 2>>\"$err\"\n",
            sweep = self.sweep,
            list = sh_quote(&list.to_string_lossy()),
            worker = worker.join(" "),
        );
        let path = dir.join("batch.sh");
        std::fs::write(&path, script).map_err(io(format!("writing {}", path.display())))?;
        Ok(path)
    }

    /// One job array for runs that ask for the same resources.
    fn submit(
        &mut self,
        store: &Store,
        req: &Request,
        runs: &[&PlannedRun],
        progress: &mut Progress,
        out: &mut Vec<Launched>,
    ) -> Result<(), SchedulerError> {
        let name = self.next_name();
        let dir = submissions_dir(&self.opts.results_dir).join(&name);
        let mut claimed = Vec::new();
        for run in runs {
            let attempt = Attempt {
                job: Some(ExternalJob {
                    executor: EXECUTOR.into(),
                    name: name.clone(),
                    task: claimed.len() as u32,
                    id: None,
                }),
                ..Attempt::starting(self.opts.provenance.clone())
            };
            match prepare(store, run, &self.opts, &self.owner, attempt)? {
                Some(p) => claimed.push((*run, p)),
                None => out.push(Launched::Claimed(run.id.clone())),
            }
        }
        if claimed.is_empty() {
            return Ok(());
        }
        let give_back = |reason: &str| -> Result<(), StoreError> {
            for (run, p) in &claimed {
                unclaim(store, &run.id, p.attempt, reason)?;
            }
            store.flush()
        };
        let list: Vec<(RunId, PathBuf, PathBuf)> = claimed
            .iter()
            .map(|(r, p)| {
                (
                    r.id.clone(),
                    p.job_file.clone(),
                    attempt::stderr_file(&p.run_dir, p.attempt),
                )
            })
            .collect();
        let script = match self.write_submission(&dir, &name, &list) {
            Ok(s) => s,
            Err(e) => {
                give_back(&e.to_string())?;
                return Err(e);
            }
        };
        let mut args = vec![
            format!("--job-name={name}"),
            format!("--array=0-{}%{}", claimed.len() - 1, self.opts.jobs.max(1)),
            format!("--output={}", dir.join("task-%a.log").display()),
            "--open-mode=append".into(),
            // A preempted task goes back to the queue and resumes (train: from its checkpoint).
            "--requeue".into(),
        ];
        args.extend(request_args(&self.cfg, &self.opts, req));
        let array = match commands::submit(&args, &script) {
            Ok(a) => a,
            Err(e) => {
                give_back(&e.to_string())?;
                return Err(e.into());
            }
        };
        for (i, (run, p)) in claimed.into_iter().enumerate() {
            store.set_job_id(&run.id, p.attempt, &format!("{array}_{i}"))?;
            self.tasks.insert(
                run.id.clone(),
                Task {
                    array: array.clone(),
                    index: i as u32,
                    events: EventFile::new(attempt::events_file(&p.run_dir, p.attempt)),
                    run_dir: p.run_dir,
                    attempt: p.attempt,
                    log: dir.join(format!("task-{i}.log")),
                    restarts: 0,
                },
            );
            progress.started(run.id.as_str(), &run.label());
            out.push(Launched::Started(
                run.id.clone(),
                AttemptState::new(p.attempt, None),
            ));
        }
        store.flush()?;
        Ok(())
    }

    fn warn(&mut self, out: &mut Vec<Update>, message: String) {
        if self.warned.insert(message.clone()) {
            out.push(Update::Warning(message));
        }
    }
}

impl Executor for SlurmExecutor {
    fn start(
        &mut self,
        store: &Store,
        ready: &[&PlannedRun],
        progress: &mut Progress,
    ) -> Result<Vec<Launched>, SchedulerError> {
        let mut groups: BTreeMap<Request, Vec<&PlannedRun>> = BTreeMap::new();
        for run in ready {
            groups
                .entry(request(&self.cfg, &self.opts, run))
                .or_default()
                .push(run);
        }
        let mut out = Vec::new();
        for (req, runs) in groups {
            for chunk in runs.chunks(MAX_ARRAY) {
                self.submit(store, &req, chunk, progress, &mut out)?;
            }
        }
        Ok(out)
    }

    fn poll(&mut self, wait: Duration) -> Result<Vec<Update>, SchedulerError> {
        std::thread::sleep(wait);
        let mut out = Vec::new();
        let mut failures = Vec::new();
        for (id, t) in self.tasks.iter_mut() {
            match t.events.read_lines() {
                Ok(lines) => out.extend(lines.into_iter().map(|l| Update::Event(id.clone(), l))),
                Err(e) => failures.push(format!("reading the events of {id}: {e}")),
            }
        }
        for f in failures {
            self.warn(&mut out, f);
        }
        let arrays: HashSet<String> = self.tasks.values().map(|t| t.array.clone()).collect();
        let every = QUERY_EVERY.mul_f64((arrays.len() as f64 / 8.0).max(1.0));
        if self.queried.is_some_and(|q| q.elapsed() < every) || self.tasks.is_empty() {
            return Ok(out);
        }
        self.queried = Some(Instant::now());
        let mut ended: Vec<(RunId, End)> = Vec::new();
        for array in arrays {
            let state = match commands::query(&array) {
                Ok(s) => s,
                Err(e) => {
                    // The controller may be restarting: ask again at the next poll.
                    self.warn(&mut out, format!("Slurm: {e} (asking again)"));
                    continue;
                }
            };
            for (id, t) in self.tasks.iter_mut().filter(|(_, t)| t.array == array) {
                if let ArrayState::Known(states) = &state
                    && let Some(s) = states.get(&t.index)
                    && s.restarts > t.restarts
                {
                    t.restarts = s.restarts;
                    out.push(Update::Stderr(
                        id.clone(),
                        format!("[slurm] requeued (restart {})", s.restarts),
                    ));
                }
                if let Some(end) = end_of(&state, t.index) {
                    ended.push((id.clone(), end));
                }
            }
        }
        for (id, end) in ended {
            let mut t = self.tasks.remove(&id).expect("tracked");
            out.extend(t.last_words(&id));
            out.push(Update::Ended(id, end));
        }
        Ok(out)
    }

    fn stop(&mut self, id: &RunId) {
        if let Some(t) = self.tasks.get(id) {
            // An error means the task ended meanwhile; its end comes through `poll`.
            let _ = commands::cancel(&[t.job_id()]);
        }
    }

    fn coordinator_timeout(&self) -> bool {
        false
    }
}

/// How task `index` of an array ended, if it has: Slurm's final state, or forgotten with its
/// array. A task not listed (yet) has not ended.
fn end_of(array: &ArrayState, index: u32) -> Option<End> {
    match array {
        ArrayState::Forgotten => Some(End::Forgotten),
        ArrayState::Known(tasks) => tasks.get(&index).filter(|s| s.ended()).map(|s| End::Batch {
            state: s.state.clone(),
            code: s.code,
            signal: s.signal,
            limit: s.limit.clone(),
        }),
    }
}

/// Applies what an ended task left and records its end.
fn conclude_task(
    store: &Store,
    id: &RunId,
    mut st: AttemptState,
    mut task: Task,
    end: End,
) -> Result<(AttemptOutcome, Option<String>), SchedulerError> {
    for u in task.last_words(id) {
        match u {
            Update::Event(_, line) => {
                if let Some(Action::Kill(r)) = attempt::ingest(store, id, &mut st, &line)?
                    && st.kill_reason.is_none()
                {
                    st.kill_reason = Some((AttemptOutcome::Failed, r));
                }
            }
            Update::Stderr(_, line) => st.push_tail(line),
            _ => {}
        }
    }
    Ok(attempt::conclude(store, id, st, end)?)
}

/// Brings the store up to date with Slurm: for every attempt a Slurm task executes, applies the
/// events its worker wrote, records the attempts that ended, and returns the ones still queued
/// or running. Needs the store to itself (a coordinator, `runs`, `report`).
pub fn sync(store: &Store, results: &Path) -> Result<Synced, SchedulerError> {
    let mut synced = Synced::default();
    let mut candidates: Vec<Attached> = Vec::new();
    for (id, n) in store.active_attempts()? {
        let Some(job) = store
            .attempt(&id, n)?
            .and_then(|a| a.job)
            .filter(|j| j.executor == EXECUTOR)
        else {
            continue;
        };
        let dir = run_dir(results, &id);
        let array = match job.id.as_deref() {
            Some(j) => j.split('_').next().unwrap_or(j).to_string(),
            // The coordinator stopped between submitting and recording the id: find the job by
            // its submission's name, else it was never accepted.
            None => match commands::find_by_name(&job.name)? {
                Some(a) => {
                    store.set_job_id(&id, n, &format!("{a}_{}", job.task))?;
                    a
                }
                None if attempt::events_file(&dir, n).exists() => String::new(),
                None => {
                    let reason = "its coordinator stopped before Slurm accepted the submission";
                    unclaim(store, &id, n, reason)?;
                    synced
                        .concluded
                        .push((id, AttemptOutcome::Interrupted, Some(reason.into())));
                    continue;
                }
            },
        };
        let mut state = AttemptState::new(n, None);
        let mut events = EventFile::new(attempt::events_file(&dir, n));
        for line in events
            .read_lines()
            .map_err(io(format!("reading the events of {id}")))?
        {
            if let Some(Action::Kill(r)) = attempt::ingest(store, &id, &mut state, &line)?
                && state.kill_reason.is_none()
            {
                state.kill_reason = Some((AttemptOutcome::Failed, r));
            }
        }
        let log = submissions_dir(results)
            .join(&job.name)
            .join(format!("task-{}.log", job.task));
        candidates.push(Attached {
            id,
            state,
            task: Task {
                array,
                index: job.task,
                run_dir: dir,
                attempt: n,
                events,
                log,
                restarts: 0,
            },
        });
    }
    let mut states: HashMap<String, ArrayState> = HashMap::new();
    for c in &candidates {
        if !c.task.array.is_empty() && !states.contains_key(&c.task.array) {
            states.insert(c.task.array.clone(), commands::query(&c.task.array)?);
        }
    }
    for c in candidates {
        // No array: the submission was never found, only its events.
        let end = states
            .get(&c.task.array)
            .map_or(Some(End::Forgotten), |a| end_of(a, c.task.index));
        match end {
            Some(end) => {
                let (o, r) = conclude_task(store, &c.id, c.state, c.task, end)?;
                synced.concluded.push((c.id, o, r));
            }
            None => {
                if c.state.kill_reason.is_some() {
                    // A non-finite loss reported while no coordinator watched.
                    let _ = commands::cancel(&[c.task.job_id()]);
                }
                synced.attached.push(c);
            }
        }
    }
    store.flush()?;
    Ok(synced)
}

/// Cancels the tasks of `runs` at Slurm (`scancel`) and records their attempts as interrupted
/// (the runs are pending again). Returns the runs cancelled.
pub fn cancel(
    store: &Store,
    results: &Path,
    runs: &HashSet<RunId>,
) -> Result<Vec<RunId>, SchedulerError> {
    let synced = sync(store, results)?;
    let targets: Vec<Attached> = synced
        .attached
        .into_iter()
        .filter(|a| runs.contains(&a.id))
        .collect();
    commands::cancel(&targets.iter().map(|a| a.task.job_id()).collect::<Vec<_>>())?;
    let mut out = Vec::new();
    for mut a in targets {
        a.state.kill_reason = Some((
            AttemptOutcome::Interrupted,
            "cancelled with `xtask cancel`".into(),
        ));
        conclude_task(store, &a.id, a.state, a.task, End::Forgotten)?;
        out.push(a.id);
    }
    store.flush()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_become_slurm_times() {
        assert_eq!(slurm_time(Duration::from_secs(5)), "0-00:00:05");
        assert_eq!(slurm_time(Duration::from_secs_f64(59.2)), "0-00:01:00");
        assert_eq!(slurm_time(Duration::from_secs(90_061)), "1-01:01:01");
    }

    #[test]
    fn shell_words_survive_quotes_and_spaces() {
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }
}
