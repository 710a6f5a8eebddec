//! The worker side: a process that executes one run and reports its events on stdout (a
//! child of the coordinator) or in its attempt's event file (a task of a batch system).

use std::path::Path;

use t4v_core::{Event, Job, Registry, Reporter};

/// Where a worker's events go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Events {
    /// Lines on stdout, read through a pipe by the coordinator that started the worker.
    Stdout,
    /// Fsynced lines appended to `<run folder>/attempt-<n>.events.jsonl`, read by whichever
    /// coordinator follows the run (see [`crate::attempt::events_file`]).
    File,
}

/// Reads the job file, executes its run kind, and returns the process exit code. Panics are not
/// caught: they end the process (code 101) and the coordinator records them from stderr.
pub fn run(job_file: &Path, registry: &Registry, events: Events) -> i32 {
    let job: Result<Job, String> = std::fs::read(job_file)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()));
    let mut reporter = match (&job, events) {
        (Ok(job), Events::File) => {
            let path = crate::attempt::events_file(&job.run_dir, job.attempt);
            match Reporter::file(&path) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("cannot open the event file {}: {e}", path.display());
                    return 2;
                }
            }
        }
        _ => Reporter::stdout(),
    };
    let job = match job {
        Ok(j) => j,
        Err(e) => {
            let reason = format!("cannot read job {}: {e}", job_file.display());
            eprintln!("{reason}");
            reporter.emit(&Event::Failed { reason });
            return 2;
        }
    };
    reporter.emit(&Event::Started {
        pid: std::process::id(),
        host: Some(t4v_core::provenance::hostname()),
    });
    let Some(kind) = registry.run_kind(&job.spec.kind) else {
        reporter.emit(&Event::Failed {
            reason: format!("this build has no run kind `{}`", job.spec.kind),
        });
        return 2;
    };
    match kind.execute(&job, registry, &mut reporter) {
        Ok(()) => {
            reporter.emit(&Event::Finished);
            0
        }
        Err(e) => {
            eprintln!("run {} failed: {e}", job.id);
            reporter.emit(&Event::Failed {
                reason: e.to_string(),
            });
            1
        }
    }
}
