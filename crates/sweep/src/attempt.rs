//! One attempt as the coordinator follows it, whatever executes it: the worker's event lines
//! applied to the store, its stderr tail, and how the attempt's end becomes its outcome.

use std::collections::VecDeque;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Instant;

use t4v_core::{Event, RunId};
use t4v_store::{AttemptOutcome, ExitInfo, Store, StoreError};

/// Lines of a worker's stderr kept with a failed attempt.
pub const STDERR_TAIL: usize = 50;

/// The job file of an attempt: what its worker executes.
pub fn job_file(run_dir: &Path, attempt: u32) -> PathBuf {
    run_dir.join(format!("job-{attempt}.json"))
}

/// The worker's stderr, whole.
pub fn stderr_file(run_dir: &Path, attempt: u32) -> PathBuf {
    run_dir.join(format!("attempt-{attempt}.stderr.log"))
}

/// The event lines of a worker that reports through the file system.
pub fn events_file(run_dir: &Path, attempt: u32) -> PathBuf {
    run_dir.join(format!("attempt-{attempt}.events.jsonl"))
}

/// What the coordinator knows of an attempt in flight.
pub(crate) struct AttemptState {
    pub attempt: u32,
    pub started: Instant,
    pub finished: bool,
    pub failed_reason: Option<String>,
    /// Set when the coordinator stopped the attempt, with the outcome and reason it records.
    pub kill_reason: Option<(AttemptOutcome, String)>,
    pub stderr_tail: VecDeque<String>,
    /// Where stderr lines that arrive through a pipe are kept in full.
    pub stderr_log: Option<std::fs::File>,
}

impl AttemptState {
    pub fn new(attempt: u32, stderr_log: Option<std::fs::File>) -> Self {
        AttemptState {
            attempt,
            started: Instant::now(),
            finished: false,
            failed_reason: None,
            kill_reason: None,
            stderr_tail: VecDeque::new(),
            stderr_log,
        }
    }

    pub fn push_tail(&mut self, line: String) {
        if let Some(f) = &mut self.stderr_log {
            let _ = writeln!(f, "{line}");
        }
        if self.stderr_tail.len() == STDERR_TAIL {
            self.stderr_tail.pop_front();
        }
        self.stderr_tail.push_back(line);
    }
}

/// What an event asks of the coordinator beyond the store.
pub(crate) enum Action {
    Progress(u64, u64),
    /// Stop the worker: the attempt failed for this reason.
    Kill(String),
}

/// Applies one line a worker wrote on its event channel. Lines that are not events go to the
/// stderr tail; applying the same line twice leaves the store as once (a coordinator that
/// re-attaches reads an event file from its start).
pub(crate) fn ingest(
    store: &Store,
    id: &RunId,
    st: &mut AttemptState,
    line: &str,
) -> Result<Option<Action>, StoreError> {
    let event: Event = match serde_json::from_str(line) {
        Ok(e) => e,
        Err(_) => {
            st.push_tail(format!("[stdout] {line}"));
            return Ok(None);
        }
    };
    if event.non_finite_loss() {
        if let Event::Metric {
            split,
            name,
            step,
            value,
        } = &event
        {
            store.append_metric(id, split, name, *step, *value)?;
            return Ok(Some(Action::Kill(format!(
                "non-finite loss: {split}/{name} = {value} at step {step}"
            ))));
        }
        return Ok(None);
    }
    match event {
        Event::Metric {
            split,
            name,
            step,
            value,
        } => {
            store.append_metric(id, &split, &name, step, value)?;
            store.set_summary(id, &format!("{split}/{name}"), value)?;
        }
        Event::Summary { name, value } => store.set_summary(id, &name, value)?,
        Event::Artefact { name, path } => store.add_artefact(id, &name, &path)?,
        Event::Failed { reason } => st.failed_reason = Some(reason),
        Event::Finished => st.finished = true,
        Event::Log { message } => st.push_tail(format!("[log] {message}")),
        Event::Progress { done, total } => return Ok(Some(Action::Progress(done, total))),
        Event::Data { fingerprint } => store.set_attempt_data(id, st.attempt, &fingerprint)?,
        Event::Started { pid, host } => store.set_attempt_worker(id, st.attempt, pid, host)?,
    }
    Ok(None)
}

/// How an attempt's execution ended.
pub(crate) enum End {
    /// A local worker's exit status.
    Exit(ExitStatus),
    /// A batch system's final state of the task (`COMPLETED`, `FAILED`, `TIMEOUT`, …) and its
    /// exit code and signal.
    Batch {
        state: String,
        code: Option<i32>,
        signal: Option<i32>,
        /// The task's time limit, for a TIMEOUT's reason.
        limit: Option<String>,
    },
    /// The task is gone and the batch system no longer says how it ended: judged by its events.
    Forgotten,
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

/// Why a batch system ended a task, for the states that are its doing rather than the worker's.
fn batch_reason(state: &str, limit: Option<&str>) -> Option<String> {
    Some(match state {
        "CANCELLED" => "CANCELLED by Slurm (scancel or an administrator)".to_string(),
        "TIMEOUT" => format!(
            "TIMEOUT: past its Slurm time limit{}",
            limit.map(|l| format!(" of {l}")).unwrap_or_default()
        ),
        "NODE_FAIL" => "NODE_FAIL: its Slurm node failed".to_string(),
        "PREEMPTED" => "PREEMPTED by Slurm (another job took its resources)".to_string(),
        "OUT_OF_MEMORY" => "OUT_OF_MEMORY: past its Slurm memory limit".to_string(),
        "BOOT_FAIL" => "BOOT_FAIL: its Slurm node did not boot".to_string(),
        "DEADLINE" => "DEADLINE: past its Slurm deadline".to_string(),
        _ => return None,
    })
}

/// Records how an attempt ended; returns its outcome and reason.
pub(crate) fn conclude(
    store: &Store,
    id: &RunId,
    st: AttemptState,
    end: End,
) -> Result<(AttemptOutcome, Option<String>), StoreError> {
    let (code, signal, success, imposed) = match &end {
        End::Exit(status) => (status.code(), status.signal(), status.success(), None),
        End::Batch {
            state,
            code,
            signal,
            limit,
        } => (
            *code,
            *signal,
            state == "COMPLETED" && *code == Some(0),
            batch_reason(state, limit.as_deref()),
        ),
        End::Forgotten => (None, None, st.finished, None),
    };
    let (outcome, reason) = if let Some((o, r)) = st.kill_reason.clone() {
        (o, Some(r))
    } else if let Some(r) = imposed {
        (AttemptOutcome::Failed, Some(r))
    } else if success && st.finished {
        (AttemptOutcome::Succeeded, None)
    } else if success {
        (
            AttemptOutcome::Failed,
            Some("the worker exited without reporting completion".into()),
        )
    } else if let Some(r) = st.failed_reason.clone() {
        (AttemptOutcome::Failed, Some(r))
    } else if let Some(p) = panic_message(&st.stderr_tail) {
        (
            AttemptOutcome::Failed,
            Some(match signal {
                Some(s) => format!("{p} (then killed by {} {s})", signal_name(s)),
                None => p,
            }),
        )
    } else if let Some(s) = signal {
        (
            AttemptOutcome::Failed,
            Some(format!("killed by {} ({s})", signal_name(s))),
        )
    } else if let End::Forgotten = end {
        (
            AttemptOutcome::Failed,
            Some(
                "ended while no coordinator followed it, and Slurm no longer knows how \
                 (its events report no completion)"
                    .into(),
            ),
        )
    } else {
        (
            AttemptOutcome::Failed,
            Some(format!("exited with code {}", code.unwrap_or(-1))),
        )
    };
    let exit = match end {
        End::Forgotten => None,
        _ => Some(ExitInfo { code, signal }),
    };
    store.finish(
        id,
        st.attempt,
        outcome,
        exit,
        reason.clone(),
        st.stderr_tail.into_iter().collect(),
    )?;
    Ok((outcome, reason))
}

/// The complete lines appended to an event file since the last read.
pub(crate) struct EventFile {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl EventFile {
    pub fn new(path: PathBuf) -> Self {
        EventFile {
            path,
            offset: 0,
            partial: Vec::new(),
        }
    }

    /// New whole lines (a line still being written waits for its newline); none while the file
    /// does not exist yet.
    pub fn read_lines(&mut self) -> std::io::Result<Vec<String>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        if f.metadata()?.len() <= self.offset {
            return Ok(Vec::new());
        }
        f.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let Some(last) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Ok(Vec::new());
        };
        let rest = self.partial.split_off(last + 1);
        let whole = std::mem::replace(&mut self.partial, rest);
        Ok(String::from_utf8_lossy(&whole)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    }
}

/// The last `n` lines of a text file (none when it does not exist).
pub(crate) fn tail(path: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}
