//! The Slurm executor's cost: the selftest sweep through local workers and through Slurm.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use super::{Stats, repo, rounds};

/// One selftest sweep in a fresh results folder; its wall time in seconds.
fn selftest(executor: &str, jobs: usize) -> Result<f64> {
    let dir = tempfile::tempdir()?;
    let script = repo().join("experiments/selftest.rhai");
    let t = Instant::now();
    let o = Command::new(crate::cli())
        .arg("--results")
        .arg(dir.path())
        .arg("sweep")
        .arg(&script)
        .args(["--jobs", &jobs.to_string(), "--executor", executor])
        .output()
        .context("running the selftest sweep")?;
    let secs = t.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&o.stderr);
    if !o.status.success() || !err.contains("24 succeeded, 4 failed") {
        bail!("the selftest sweep through {executor} did not end as it should:\n{err}");
    }
    Ok(secs)
}

/// The cluster's scheduler settings, which set how soon a freed slot takes the next task.
fn scheduler_parameters() -> String {
    Command::new("scontrol")
        .args(["show", "config"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("SchedulerParameters"))
                .map(|l| {
                    l.split('=')
                        .skip(1)
                        .collect::<Vec<_>>()
                        .join("=")
                        .trim()
                        .to_string()
                })
        })
        .unwrap_or_else(|| "(unknown)".into())
}

pub fn slurm() -> Result<()> {
    let ping = Command::new("scontrol").arg("ping").output();
    if !ping.is_ok_and(|o| o.status.success()) {
        println!(
            "slurm: no Slurm controller answers `scontrol ping` (`.ci/slurm up`, then \
             `eval \"$(.ci/slurm env)\"`); skipped"
        );
        return Ok(());
    }
    let (runs, jobs) = (28.0, 2);
    let n = rounds();
    let (mut local, mut slurm) = (Vec::new(), Vec::new());
    for _ in 0..n {
        local.push(selftest("local", jobs)?);
        slurm.push(selftest("slurm", jobs)?);
    }
    let (l, s) = (Stats::of(&local), Stats::of(&slurm));
    // Runs go `jobs` at a time: the extra wall time, spread over the runs of one slot, is what
    // each run waits longer to start and be seen ending.
    let extra: Vec<f64> = slurm
        .iter()
        .zip(&local)
        .map(|(s, l)| (s - l) * jobs as f64 / runs)
        .collect();
    println!(
        "slurm: selftest sweep (28 runs, --jobs {jobs}), {n} rounds; SchedulerParameters={}",
        scheduler_parameters()
    );
    println!("  local executor   {} s", l.show(2));
    println!("  slurm executor   {} s", s.show(2));
    println!(
        "  per-run overhead {} s (the extra wall time × jobs / runs)",
        Stats::of(&extra).show(2)
    );
    Ok(())
}
