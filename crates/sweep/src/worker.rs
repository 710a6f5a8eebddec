//! The worker side: a process that executes one run and reports on stdout.

use std::path::Path;

use t4v_core::{Event, Job, Registry, Reporter};

/// Reads the job file, executes its run kind, and returns the process exit code. Panics are not
/// caught: they end the process (code 101) and the coordinator records them from stderr.
pub fn run(job_file: &Path, registry: &Registry) -> i32 {
    let mut reporter = Reporter::stdout();
    let job: Job = match std::fs::read(job_file)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(j) => j,
        Err(e) => {
            reporter.emit(&Event::Failed {
                reason: format!("cannot read job {}: {e}", job_file.display()),
            });
            return 2;
        }
    };
    reporter.emit(&Event::Started {
        pid: std::process::id(),
    });
    let Some(kind) = registry.run_kind(&job.spec.kind) else {
        reporter.emit(&Event::Failed {
            reason: format!("this build has no run kind `{}`", job.spec.kind),
        });
        return 2;
    };
    match kind.execute(&job, &mut reporter) {
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
