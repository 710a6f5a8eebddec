//! The local executor: one worker process per run (the command line itself in worker mode),
//! its events read from a pipe.
//!
//! Each worker runs in its own process group and dies with the coordinator (Linux
//! `PR_SET_PDEATHSIG`), so a killed sweep leaves no orphans; the runs it had in flight are
//! found `running` at the next start and re-run.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

use t4v_core::RunId;
use t4v_store::{Attempt, AttemptOutcome, Store};

use crate::attempt::{self, AttemptState, End};
use crate::progress::Progress;
use crate::scheduler::{
    Executor, Launched, SchedulerError, SweepOptions, Update, io, peers_of, prepare,
};
use crate::script::PlannedRun;

enum Msg {
    Stdout(RunId, String),
    Stderr(RunId, String),
    Closed(RunId),
}

struct Worker {
    child: Child,
    devices: Vec<String>,
    /// Cores leased to it (its compute threads).
    cores: usize,
    open_streams: u8,
    exit: Option<ExitStatus>,
}

/// Runs at once: `--jobs`, and with GPUs no more than there are.
pub(crate) fn slots(opts: &SweepOptions) -> usize {
    if opts.devices.is_empty() {
        opts.jobs.max(1)
    } else {
        opts.jobs.max(1).min(opts.devices.len())
    }
}

pub(crate) struct LocalExecutor {
    opts: SweepOptions,
    owner: String,
    slots: usize,
    cores: usize,
    free_devices: VecDeque<String>,
    workers: HashMap<RunId, Worker>,
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
}

impl LocalExecutor {
    pub fn new(opts: &SweepOptions, owner: String) -> Self {
        let (tx, rx) = mpsc::channel();
        LocalExecutor {
            slots: slots(opts),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            free_devices: opts.devices.iter().cloned().collect(),
            opts: opts.clone(),
            owner,
            workers: HashMap::new(),
            tx,
            rx,
        }
    }

    fn spawn(
        &mut self,
        store: &Store,
        run: &PlannedRun,
        devices: Vec<String>,
        cores: usize,
    ) -> Result<Option<(Worker, AttemptState)>, SchedulerError> {
        let mut provenance = self.opts.provenance.clone();
        let device = (!devices.is_empty()).then(|| devices.join(","));
        provenance.device = device.clone();
        let Some(p) = prepare(
            store,
            run,
            &self.opts,
            &self.owner,
            Attempt::starting(provenance),
        )?
        else {
            return Ok(None);
        };
        let stderr_log = std::fs::File::create(attempt::stderr_file(&p.run_dir, p.attempt)).ok();
        let mut cmd = Command::new(&self.opts.worker.program);
        cmd.args(&self.opts.worker.args)
            .arg(&p.job_file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("T4V_RUN_ID", run.id.as_str())
            .process_group(0);
        if let Some(d) = &device {
            cmd.env("CUDA_VISIBLE_DEVICES", d);
        }
        // Concurrent workers share the cores instead of each starting one compute thread per
        // core (oversubscription costs ~15 % on small tensor ops): each computes on the cores
        // leased to it; a user's own setting wins.
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
                let program = self.opts.worker.program.display();
                let reason = format!("cannot start worker {program}: {e}");
                store.finish(
                    &run.id,
                    p.attempt,
                    AttemptOutcome::Failed,
                    None,
                    Some(reason.clone()),
                    vec![],
                )?;
                return Err(io(reason)(e));
            }
        };
        let out = child.stdout.take().expect("piped");
        let err = child.stderr.take().expect("piped");
        for (stream, is_err) in [
            (Box::new(out) as Box<dyn std::io::Read + Send>, false),
            (Box::new(err), true),
        ] {
            let tx = self.tx.clone();
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
        let worker = Worker {
            child,
            devices,
            cores,
            open_streams: 2,
            exit: None,
        };
        Ok(Some((worker, AttemptState::new(p.attempt, stderr_log))))
    }

    fn message(&mut self, msg: Msg, out: &mut Vec<Update>) {
        match msg {
            Msg::Closed(id) => {
                if let Some(w) = self.workers.get_mut(&id) {
                    w.open_streams -= 1;
                }
            }
            Msg::Stderr(id, line) => out.push(Update::Stderr(id, line)),
            Msg::Stdout(id, line) => out.push(Update::Event(id, line)),
        }
    }
}

impl Executor for LocalExecutor {
    fn start(
        &mut self,
        store: &Store,
        ready: &[&PlannedRun],
        progress: &mut Progress,
    ) -> Result<Vec<Launched>, SchedulerError> {
        let mut out = Vec::new();
        // The cores not leased to running workers are shared among the runs that start now:
        // a run that starts alone (the quickstart's pretraining) computes on every free core.
        let mut starting = ready
            .len()
            .min(self.slots.saturating_sub(self.workers.len()));
        for run in ready {
            if self.workers.len() >= self.slots {
                break;
            }
            let peers = peers_of(run, &self.opts);
            if !self.opts.devices.is_empty() && self.free_devices.len() < peers {
                break; // its GPUs are still leased to running runs
            }
            let devices: Vec<String> = if self.opts.devices.is_empty() {
                Vec::new()
            } else {
                self.free_devices.drain(..peers).collect()
            };
            let leased: usize = self.workers.values().map(|w| w.cores).sum();
            let lease = (self.cores.saturating_sub(leased) / starting.max(1)).max(1);
            starting = starting.saturating_sub(1);
            match self.spawn(store, run, devices.clone(), lease)? {
                Some((w, st)) => {
                    progress.started(run.id.as_str(), &run.label());
                    self.workers.insert(run.id.clone(), w);
                    out.push(Launched::Started(run.id.clone(), st));
                }
                None => {
                    self.free_devices.extend(devices);
                    out.push(Launched::Claimed(run.id.clone()));
                }
            }
        }
        Ok(out)
    }

    fn poll(&mut self, wait: Duration) -> Result<Vec<Update>, SchedulerError> {
        let mut out = Vec::new();
        match self.rx.recv_timeout(wait) {
            Ok(msg) => self.message(msg, &mut out),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                unreachable!("the executor holds a sender")
            }
        }
        while let Ok(msg) = self.rx.try_recv() {
            self.message(msg, &mut out);
        }
        let ids: Vec<RunId> = self.workers.keys().cloned().collect();
        for id in ids {
            let w = self.workers.get_mut(&id).expect("present");
            if w.exit.is_none() {
                w.exit = w
                    .child
                    .try_wait()
                    .map_err(io(format!("waiting for the worker of {id}")))?;
            }
            // Ended once its pipes are drained: every event it wrote is in `out` before this.
            if let (Some(status), 0) = (w.exit, w.open_streams) {
                let w = self.workers.remove(&id).expect("present");
                self.free_devices.extend(w.devices);
                out.push(Update::Ended(id, End::Exit(status)));
            }
        }
        Ok(out)
    }

    fn stop(&mut self, id: &RunId) {
        if let Some(w) = self.workers.get(id)
            && w.exit.is_none()
        {
            // The whole process group: a run may have started helpers.
            unsafe {
                libc::kill(-(w.child.id() as i32), libc::SIGKILL);
            }
        }
    }
}
