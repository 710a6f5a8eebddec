//! Slurm's own commands — `sbatch`, `scontrol`, `squeue`, `scancel`, `sacct` — and what their
//! output says. Slurm is the engine; we only submit to it and read what it reports.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use super::SlurmError;

/// One task's state as Slurm reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TaskState {
    /// `PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, `CANCELLED`, `TIMEOUT`, …
    pub state: String,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// `TimeLimit` (`00:01:00`, `UNLIMITED`).
    pub limit: Option<String>,
    /// How often Slurm requeued it (preemption, `scontrol requeue`).
    pub restarts: u32,
}

impl TaskState {
    /// States after which the task never runs again. A requeued task passes through
    /// `REQUEUED`/`PENDING` and runs again under the same id.
    pub fn ended(&self) -> bool {
        matches!(
            self.state.as_str(),
            "COMPLETED"
                | "FAILED"
                | "CANCELLED"
                | "TIMEOUT"
                | "NODE_FAIL"
                | "PREEMPTED"
                | "OUT_OF_MEMORY"
                | "BOOT_FAIL"
                | "DEADLINE"
                | "REVOKED"
                | "SPECIAL_EXIT"
        )
    }
}

/// What Slurm says of a job array.
pub(crate) enum ArrayState {
    /// Its tasks by index. Tasks still pending as a range are listed one by one.
    Known(HashMap<u32, TaskState>),
    /// The controller no longer has the job (ended longer ago than its `MinJobAge`).
    Forgotten,
}

fn run(cmd: &mut Command) -> Result<std::process::Output, SlurmError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.output().map_err(|source| SlurmError::Command {
        command: program,
        source,
    })
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

/// `code:signal` as Slurm writes an exit code.
fn exit_code(v: &str) -> (Option<i32>, Option<i32>) {
    let (c, s) = v.split_once(':').unwrap_or((v, "0"));
    match (c.parse::<i32>().ok(), s.parse::<i32>().unwrap_or(0)) {
        (_, s) if s > 0 => (None, Some(s)),
        (c, _) => (c, None),
    }
}

/// Task indices of `ArrayTaskId` (`3`, `2-5%2`, `1,4,6-8`).
fn task_ids(v: &str) -> Vec<u32> {
    let v = v.split('%').next().unwrap_or_default();
    let mut out = Vec::new();
    for part in v.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<u32>().ok()),
        }
    }
    out
}

/// Parses `scontrol -o show job <array>`: one line per task (pending ones as one range line).
pub(crate) fn parse_show_job(text: &str) -> HashMap<u32, TaskState> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let mut fields: HashMap<&str, &str> = HashMap::new();
        for tok in line.split_whitespace() {
            if let Some((k, v)) = tok.split_once('=') {
                fields.entry(k).or_insert(v);
            }
        }
        let (Some(tasks), Some(state)) = (fields.get("ArrayTaskId"), fields.get("JobState")) else {
            continue;
        };
        let (code, signal) = exit_code(fields.get("ExitCode").copied().unwrap_or("0:0"));
        let st = TaskState {
            state: state.to_string(),
            code,
            signal,
            limit: fields.get("TimeLimit").map(|s| s.to_string()),
            restarts: fields
                .get("Restarts")
                .and_then(|r| r.parse().ok())
                .unwrap_or(0),
        };
        for t in task_ids(tasks) {
            out.insert(t, st.clone());
        }
    }
    out
}

/// Parses `sacct -n -P -X -o JobID,State,ExitCode,Timelimit`: `<array>_<task>|STATE|c:s|limit`.
fn parse_sacct(text: &str, array: &str) -> HashMap<u32, TaskState> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('|').collect();
        if f.len() < 4 {
            continue;
        }
        let Some(task) = f[0]
            .strip_prefix(array)
            .and_then(|r| r.strip_prefix('_'))
            .and_then(|t| t.parse::<u32>().ok())
        else {
            continue;
        };
        let (code, signal) = exit_code(f[2]);
        out.insert(
            task,
            TaskState {
                // `CANCELLED by 1000`
                state: f[1]
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                code,
                signal,
                limit: Some(f[3].to_string()),
                restarts: 0,
            },
        );
    }
    out
}

/// The state of a job array's tasks: from the controller, else from accounting where a
/// cluster keeps it (`sacct` fails without slurmdbd), else [`ArrayState::Forgotten`].
pub(crate) fn query(array: &str) -> Result<ArrayState, SlurmError> {
    let out = run(Command::new("scontrol").args(["-o", "show", "job", array]))?;
    if out.status.success() {
        return Ok(ArrayState::Known(parse_show_job(&String::from_utf8_lossy(
            &out.stdout,
        ))));
    }
    let err = stderr_of(&out);
    if !err.contains("Invalid job id") {
        return Err(SlurmError::Failed {
            command: format!("scontrol show job {array}"),
            stderr: err,
        });
    }
    let acct = Command::new("sacct")
        .args([
            "-n",
            "-P",
            "-X",
            "-j",
            array,
            "-o",
            "JobID,State,ExitCode,Timelimit",
        ])
        .output();
    match acct {
        Ok(o) if o.status.success() => {
            let tasks = parse_sacct(&String::from_utf8_lossy(&o.stdout), array);
            Ok(if tasks.is_empty() {
                ArrayState::Forgotten
            } else {
                ArrayState::Known(tasks)
            })
        }
        _ => Ok(ArrayState::Forgotten),
    }
}

/// Submits a batch script with `args`; returns the job (array) id.
pub(crate) fn submit(args: &[String], script: &Path) -> Result<String, SlurmError> {
    let out = run(Command::new("sbatch")
        .arg("--parsable")
        .args(args)
        .arg(script))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // `--parsable` prints `<id>` or `<id>;<cluster>`.
    let id = text
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    if !out.status.success() || id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(SlurmError::Refused {
            args: args.join(" "),
            stderr: stderr_of(&out),
        });
    }
    Ok(id)
}

/// Asks Slurm whether it would accept a job with `args`, submitting nothing.
pub(crate) fn test_only(args: &[String]) -> Result<(), SlurmError> {
    let out = run(Command::new("sbatch")
        .arg("--test-only")
        .args(args)
        .args(["--wrap", "true"]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(SlurmError::Refused {
            args: args.join(" "),
            stderr: stderr_of(&out),
        })
    }
}

/// Cancels tasks (`<array>_<task>`).
pub(crate) fn cancel(jobs: &[String]) -> Result<(), SlurmError> {
    if jobs.is_empty() {
        return Ok(());
    }
    let out = run(Command::new("scancel").args(jobs))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(SlurmError::Failed {
            command: format!("scancel {}", jobs.join(" ")),
            stderr: stderr_of(&out),
        })
    }
}

/// The array id of the queued or running job named `name`, if the controller has one.
pub(crate) fn find_by_name(name: &str) -> Result<Option<String>, SlurmError> {
    let out = run(Command::new("squeue").args(["-h", "-o", "%F", "--name", name]))?;
    if !out.status.success() {
        return Err(SlurmError::Failed {
            command: format!("squeue --name {name}"),
            stderr: stderr_of(&out),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scontrol_lines_become_task_states() {
        // As Slurm 22.05 prints them (fields after the ones we read cut short).
        let text = "JobId=14 ArrayJobId=11 ArrayTaskId=3-5%2 ArrayTaskThrottle=2 JobName=t4v \
                    JobState=PENDING Reason=JobArrayTaskLimit Requeue=1 Restarts=0 \
                    ExitCode=0:0 TimeLimit=00:01:00 Command=/a b\n\
                    JobId=13 ArrayJobId=11 ArrayTaskId=1 JobState=FAILED Reason=NonZeroExitCode \
                    Restarts=0 ExitCode=3:0 TimeLimit=00:01:00\n\
                    JobId=12 ArrayJobId=11 ArrayTaskId=0 JobState=FAILED Restarts=0 \
                    ExitCode=0:9 TimeLimit=UNLIMITED\n\
                    JobId=11 ArrayJobId=11 ArrayTaskId=2 JobState=RUNNING Restarts=1 \
                    ExitCode=0:0 TimeLimit=00:01:00\n";
        let t = parse_show_job(text);
        assert_eq!(t.len(), 6);
        assert_eq!(t[&0].signal, Some(9));
        assert_eq!(t[&0].code, None);
        assert!(t[&0].ended());
        assert_eq!((t[&1].code, t[&1].signal), (Some(3), None));
        assert_eq!(t[&2].state, "RUNNING");
        assert_eq!(t[&2].restarts, 1);
        assert!(!t[&2].ended());
        for i in 3..=5 {
            assert_eq!(t[&i].state, "PENDING");
        }
        assert_eq!(t[&1].limit.as_deref(), Some("00:01:00"));
        assert_eq!(task_ids("1,4,6-8"), [1, 4, 6, 7, 8]);
    }

    #[test]
    fn sacct_lines_become_task_states() {
        let t = parse_sacct(
            "7_0|COMPLETED|0:0|01:00:00\n7_1|CANCELLED by 0|0:15|01:00:00\n8_0|FAILED|1:0|x\n",
            "7",
        );
        assert_eq!(t.len(), 2);
        assert_eq!(t[&1].state, "CANCELLED");
        assert_eq!(t[&1].signal, Some(15));
        assert_eq!(t[&0].code, Some(0));
    }
}
