//! The coordinator: starts one worker process per run (the command line itself in worker
//! mode), reads its JSON-line events, and is the only writer of the store.
//!
//! Each worker runs in its own process group and dies with the coordinator (Linux
//! `PR_SET_PDEATHSIG`), so a killed sweep leaves no orphans; the runs it had in flight are
//! found `running` at the next start and re-run.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use t4v_core::{Event, Job, NeededRun, Provenance, RunId};
use t4v_store::{Attempt, AttemptOutcome, ExitInfo, RunStatus, Store, StoreError};

use crate::plan::{Plan, PlanState};
use crate::progress::Progress;
use crate::script::SweepDef;

/// Lines of a worker's stderr kept with a failed attempt.
pub const STDERR_TAIL: usize = 50;

/// How to start a worker: `program args... <job.json>`.
#[derive(Clone, Debug)]
pub struct WorkerCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct SweepOptions {
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
    pub elapsed: Duration,
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
}

enum Msg {
    Stdout(RunId, String),
    Stderr(RunId, String),
    Closed(RunId),
}

struct Worker {
    child: Child,
    attempt: u32,
    started: Instant,
    devices: Vec<String>,
    /// Cores leased to it (its compute threads).
    cores: usize,
    open_streams: u8,
    exit: Option<ExitStatus>,
    finished: bool,
    failed_reason: Option<String>,
    kill_reason: Option<(AttemptOutcome, String)>,
    stderr_tail: VecDeque<String>,
    stderr_log: Option<std::fs::File>,
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> SchedulerError {
    let context = context.into();
    move |source| SchedulerError::Io { context, source }
}

/// The folder of a run: `results/runs/<id>/`.
pub fn run_dir(results: &Path, id: &RunId) -> PathBuf {
    results.join("runs").join(id.as_str())
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        _ => "signal",
    }
}

/// The panic message in a Rust stderr, if any.
fn panic_message(tail: &VecDeque<String>) -> Option<String> {
    let i = tail.iter().position(|l| l.contains("panicked at"))?;
    let line = &tail[i];
    let mut msg = line[line.find("panicked at").expect("found")..]
        .trim()
        .to_string();
    if let Some(next) = tail.get(i + 1).filter(|l| !l.starts_with("note:")) {
        msg = format!("{msg} {}", next.trim());
    }
    Some(msg)
}

/// Runs what the plan says should run. The sweep must already be registered in the store.
pub fn execute(
    store: &Store,
    def: &SweepDef,
    plan: &Plan,
    opts: &SweepOptions,
) -> Result<SweepOutcome, SchedulerError> {
    // With GPUs, a run also waits for as many free ones as it takes.
    let slots = if opts.devices.is_empty() {
        opts.jobs.max(1)
    } else {
        opts.jobs.max(1).min(opts.devices.len())
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut free_devices: VecDeque<String> = opts.devices.iter().cloned().collect();
    let owner = format!(
        "{}:{}:{}",
        opts.provenance.host,
        std::process::id(),
        t4v_store::now_ms()
    );

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
    let mut outcome = SweepOutcome::default();
    let mut progress = Progress::new(waiting.len(), slots);
    let (tx, rx): (Sender<Msg>, Receiver<Msg>) = mpsc::channel();
    let mut running: HashMap<RunId, Worker> = HashMap::new();
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
        // Start what can start. The cores not leased to running workers are shared among
        // the runs that start now: a run that starts alone (the quickstart's pretraining)
        // computes on every free core.
        let ready = |i: usize| def.runs[i].needs().values().all(|d| done.contains(d));
        let mut starting = waiting
            .iter()
            .filter(|&&i| ready(i))
            .count()
            .min(slots.saturating_sub(running.len()));
        while !stopping && running.len() < slots {
            let ready = waiting.iter().position(|&i| ready(i));
            let Some(pos) = ready else { break };
            let peers = peers_of(&def.runs[waiting[pos]], opts);
            if !opts.devices.is_empty() && free_devices.len() < peers {
                break; // its GPUs are still leased to running runs
            }
            let i = waiting.remove(pos);
            let run = &def.runs[i];
            let devices: Vec<String> = if opts.devices.is_empty() {
                Vec::new()
            } else {
                free_devices.drain(..peers).collect()
            };
            let leased: usize = running.values().map(|w| w.cores).sum();
            let lease = (cores.saturating_sub(leased) / starting.max(1)).max(1);
            starting = starting.saturating_sub(1);
            match start(store, run, devices.clone(), lease, &owner, opts, &tx) {
                Ok(w) => {
                    progress.started(run.id.as_str(), &run.label());
                    running.insert(run.id.clone(), w);
                }
                Err(StartError::AlreadyRunning) => {
                    free_devices.extend(devices);
                    progress.println(&format!(
                        "skip   {}: already claimed by another coordinator",
                        run.id
                    ));
                }
                Err(StartError::Other(e)) => return Err(e),
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
        if running.is_empty() && (waiting.is_empty() || stopping) {
            break;
        }
        if running.is_empty() {
            // Nothing can start: the remaining runs wait on runs outside this plan.
            for i in waiting.drain(..) {
                outcome.blocked.push(def.runs[i].id.clone());
            }
            break;
        }

        snapshot(&mut progress, false, &mut changed);
        // Wait for events.
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(msg) => handle(store, &mut running, &mut progress, msg)?,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                unreachable!("the coordinator holds a sender")
            }
        }
        while let Ok(msg) = rx.try_recv() {
            handle(store, &mut running, &mut progress, msg)?;
        }

        // Timeouts, exits.
        let ids: Vec<RunId> = running.keys().cloned().collect();
        for id in ids {
            let w = running.get_mut(&id).expect("present");
            if let (Some(limit), None) = (opts.timeout, &w.kill_reason)
                && w.started.elapsed() > limit
            {
                kill(
                    w,
                    AttemptOutcome::Failed,
                    format!("timed out after {}", crate::progress::fmt_duration(limit)),
                );
            }
            if w.exit.is_none() {
                w.exit = w
                    .child
                    .try_wait()
                    .map_err(io(format!("waiting for the worker of {id}")))?;
            }
            if w.exit.is_some() && w.open_streams == 0 {
                let w = running.remove(&id).expect("present");
                free_devices.extend(w.devices.iter().cloned());
                let (result, reason) = conclude(store, &id, w, &mut progress)?;
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
                            for w in running.values_mut() {
                                kill(
                                    w,
                                    AttemptOutcome::Interrupted,
                                    "stopped by --fail-fast after another run failed".into(),
                                );
                            }
                        }
                    }
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
fn peers_of(run: &crate::PlannedRun, opts: &SweepOptions) -> usize {
    peers_or(run, opts.devices_per_run)
}

/// `model.devices` of a run, or `per_run` where the spec leaves it at 0.
fn peers_or(run: &crate::PlannedRun, per_run: usize) -> usize {
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

enum StartError {
    AlreadyRunning,
    Other(SchedulerError),
}

impl From<SchedulerError> for StartError {
    fn from(e: SchedulerError) -> Self {
        StartError::Other(e)
    }
}

#[allow(clippy::too_many_arguments)]
fn start(
    store: &Store,
    run: &crate::PlannedRun,
    devices: Vec<String>,
    cores: usize,
    owner: &str,
    opts: &SweepOptions,
    tx: &Sender<Msg>,
) -> Result<Worker, StartError> {
    let mut provenance = opts.provenance.clone();
    let device = (!devices.is_empty()).then(|| devices.join(","));
    provenance.device = device.clone();
    let attempt = match store.claim(&run.id, owner, Attempt::starting(provenance)) {
        Ok(n) => n,
        Err(StoreError::NotClaimable { .. }) => return Err(StartError::AlreadyRunning),
        Err(e) => return Err(StartError::Other(e.into())),
    };
    let dir = run_dir(&opts.results_dir, &run.id);
    std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
    let mut needs = BTreeMap::new();
    for (role, dep) in run.needs() {
        let rec = store
            .run(dep)
            .map_err(SchedulerError::from)?
            .filter(|r| r.status == RunStatus::Done);
        let rec = rec.ok_or_else(|| SchedulerError::Store(StoreError::NoRun(dep.to_string())))?;
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
        attempt,
        spec: run.spec.clone(),
        run_dir: dir.clone(),
        results_dir: opts.results_dir.clone(),
        needs,
        backend: opts.backend.clone(),
        peers: peers_of(run, opts),
    };
    let job_file = dir.join(format!("job-{attempt}.json"));
    std::fs::write(
        &job_file,
        serde_json::to_vec_pretty(&job).expect("jobs serialise"),
    )
    .map_err(io(format!("writing {}", job_file.display())))?;
    let stderr_path = dir.join(format!("attempt-{attempt}.stderr.log"));
    let stderr_log = std::fs::File::create(&stderr_path).ok();

    let mut cmd = Command::new(&opts.worker.program);
    cmd.args(&opts.worker.args)
        .arg(&job_file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("T4V_RUN_ID", run.id.as_str())
        .process_group(0);
    if let Some(d) = &device {
        cmd.env("CUDA_VISIBLE_DEVICES", d);
    }
    // Concurrent workers share the cores instead of each starting one compute thread per core
    // (oversubscription costs ~15 % on small tensor ops): each computes on the cores leased
    // to it; a user's own setting wins.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        cmd.env("RAYON_NUM_THREADS", cores.to_string());
    }
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let reason = format!("cannot start worker {}: {e}", opts.worker.program.display());
            store
                .finish(
                    &run.id,
                    attempt,
                    AttemptOutcome::Failed,
                    None,
                    Some(reason.clone()),
                    vec![],
                )
                .map_err(SchedulerError::from)?;
            return Err(StartError::Other(SchedulerError::Io {
                context: reason,
                source: e,
            }));
        }
    };
    let out = child.stdout.take().expect("piped");
    let err = child.stderr.take().expect("piped");
    for (stream, is_err) in [
        (Box::new(out) as Box<dyn std::io::Read + Send>, false),
        (Box::new(err), true),
    ] {
        let tx = tx.clone();
        let id = run.id.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                let msg = if is_err {
                    Msg::Stderr(id.clone(), line)
                } else {
                    Msg::Stdout(id.clone(), line)
                };
                if tx.send(msg).is_err() {
                    return;
                }
            }
            let _ = tx.send(Msg::Closed(id));
        });
    }
    Ok(Worker {
        child,
        attempt,
        started: Instant::now(),
        devices,
        cores,
        open_streams: 2,
        exit: None,
        finished: false,
        failed_reason: None,
        kill_reason: None,
        stderr_tail: VecDeque::new(),
        stderr_log,
    })
}

fn kill(w: &mut Worker, outcome: AttemptOutcome, reason: String) {
    if w.kill_reason.is_none() && w.exit.is_none() {
        w.kill_reason = Some((outcome, reason));
        // The whole process group: a run may have started helpers.
        unsafe {
            libc::kill(-(w.child.id() as i32), libc::SIGKILL);
        }
    }
}

fn push_tail(w: &mut Worker, line: String) {
    if let Some(f) = &mut w.stderr_log {
        let _ = writeln!(f, "{line}");
    }
    if w.stderr_tail.len() == STDERR_TAIL {
        w.stderr_tail.pop_front();
    }
    w.stderr_tail.push_back(line);
}

fn handle(
    store: &Store,
    running: &mut HashMap<RunId, Worker>,
    progress: &mut Progress,
    msg: Msg,
) -> Result<(), StoreError> {
    match msg {
        Msg::Closed(id) => {
            if let Some(w) = running.get_mut(&id) {
                w.open_streams -= 1;
            }
        }
        Msg::Stderr(id, line) => {
            if let Some(w) = running.get_mut(&id) {
                push_tail(w, line);
            }
        }
        Msg::Stdout(id, line) => {
            let Some(w) = running.get_mut(&id) else {
                return Ok(());
            };
            let event: Event = match serde_json::from_str(&line) {
                Ok(e) => e,
                Err(_) => {
                    push_tail(w, format!("[stdout] {line}"));
                    return Ok(());
                }
            };
            if event.non_finite_loss() {
                if let Event::Metric {
                    split,
                    name,
                    step,
                    value,
                    ..
                } = &event
                {
                    store.append_metric(&id, split, name, *step, *value)?;
                    kill(
                        w,
                        AttemptOutcome::Failed,
                        format!("non-finite loss: {split}/{name} = {value} at step {step}"),
                    );
                }
                return Ok(());
            }
            match event {
                Event::Metric {
                    split,
                    name,
                    step,
                    value,
                } => {
                    store.append_metric(&id, &split, &name, step, value)?;
                    store.set_summary(&id, &format!("{split}/{name}"), value)?;
                }
                Event::Summary { name, value } => store.set_summary(&id, &name, value)?,
                Event::Artefact { name, path } => store.add_artefact(&id, &name, &path)?,
                Event::Failed { reason } => w.failed_reason = Some(reason),
                Event::Finished => w.finished = true,
                Event::Log { message } => push_tail(w, format!("[log] {message}")),
                Event::Progress { done, total } => progress.run_progress(id.as_str(), done, total),
                Event::Started { .. } => {}
            }
        }
    }
    Ok(())
}

/// Records how an attempt ended.
fn conclude(
    store: &Store,
    id: &RunId,
    w: Worker,
    progress: &mut Progress,
) -> Result<(AttemptOutcome, Option<String>), StoreError> {
    let status = w.exit.expect("exited");
    let exit = ExitInfo {
        code: status.code(),
        signal: status.signal(),
    };
    let (outcome, reason) = if let Some((o, r)) = w.kill_reason.clone() {
        (o, Some(r))
    } else if status.success() && w.finished {
        (AttemptOutcome::Succeeded, None)
    } else if status.success() {
        (
            AttemptOutcome::Failed,
            Some("the worker exited without reporting completion".into()),
        )
    } else if let Some(r) = w.failed_reason.clone() {
        (AttemptOutcome::Failed, Some(r))
    } else if let Some(p) = panic_message(&w.stderr_tail) {
        (
            AttemptOutcome::Failed,
            Some(match status.signal() {
                Some(s) => format!("{p} (then killed by {} {s})", signal_name(s)),
                None => p,
            }),
        )
    } else if let Some(s) = status.signal() {
        (
            AttemptOutcome::Failed,
            Some(format!("killed by {} ({s})", signal_name(s))),
        )
    } else {
        (
            AttemptOutcome::Failed,
            Some(format!("exited with code {}", status.code().unwrap_or(-1))),
        )
    };
    store.finish(
        id,
        w.attempt,
        outcome,
        Some(exit),
        reason.clone(),
        w.stderr_tail.into_iter().collect(),
    )?;
    match outcome {
        AttemptOutcome::Interrupted => progress.stopped(id.as_str()),
        o => progress.finished(
            id.as_str(),
            o == AttemptOutcome::Succeeded,
            w.started.elapsed(),
            reason.as_deref(),
        ),
    }
    Ok((outcome, reason))
}
