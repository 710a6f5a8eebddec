//! Fault injection: a sweep mixing `selftest`, `features`, `probe` and checkpointed `train` runs
//! (the synthetic world, a tiny CLIP) has its coordinator killed with SIGKILL at seeded random
//! moments, each time started again, then is let finish. Every run must end done exactly once
//! (one successful attempt), and the store's export must equal that of the same sweep run
//! without interruption, apart from times, attempts and paths. `T4V_FAULT_KILLS` sets the
//! number of kills (default 20).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

mod common;

/// Writes `dir/<name>.rhai` from `body`, whose `BASE` stands for a spec map of the synthetic
/// world and the tiny model at `model`.
fn write_script(dir: &Path, model: &Path, name: &str, body: &str) -> PathBuf {
    let base = format!(
        r#"#{{ model: #{{ backbone: "{}", frames: 4, input_size: 32 }}, data: #{{ dataset: "synthetic" }} }}"#,
        model.display()
    );
    let p = dir.join(format!("{name}.rhai"));
    std::fs::write(&p, body.replace("BASE", &base)).unwrap();
    p
}

fn script(dir: &Path, model: &Path) -> PathBuf {
    let body = r#"let s = sweep("faults");
        s.seeds([0, 1]);
        s.add(#{ kind: "selftest", params: #{ epochs: 3, sleep_ms: 300 } });
        let f = BASE; f.kind = "features"; f.params = #{ split: "train", per_class: 4 };
        let train = s.add(f);
        let g = BASE; g.kind = "features"; g.params = #{ split: "test" };
        let test = s.add(g);
        let p = BASE; p.kind = "probe"; p.needs = #{ features: train, test: test };
        p.classifier = #{ init: "class-mean" };
        p.optim = #{ epochs: 3, warmup_epochs: 1, lr: 1e-2, batch_size: 32 };
        s.add(p);
        let t = BASE; t.kind = "train";
        t.optim = #{ lr: 1e-3, epochs: 2, warmup_epochs: 1, batch_size: 32 };
        s.add(t);"#;
    write_script(dir, model, "faults", body)
}

fn xtask(results: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.arg("--results")
        .arg(results)
        .args(args)
        .env("RUST_BACKTRACE", "0");
    c
}

/// The export as comparable records: runs (status, summary, artefact names), attempts that
/// succeeded per run, and every series; times, attempt counts, pids and paths left out.
fn export(results: &Path) -> (BTreeMap<String, Value>, BTreeMap<String, usize>) {
    let o = xtask(results, &["export"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut records = BTreeMap::new();
    let mut successes: BTreeMap<String, usize> = BTreeMap::new();
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        match v["type"].as_str().unwrap() {
            "run" => {
                let artefacts: Vec<&String> = v["artefacts"]
                    .as_object()
                    .map(|m| m.keys().collect())
                    .unwrap_or_default();
                records.insert(
                    format!("run {}", v["id"].as_str().unwrap()),
                    serde_json::json!({
                        "status": v["status"], "summary": v["summary"], "artefacts": artefacts,
                        "canonical": v["canonical"],
                    }),
                );
            }
            "attempt" => {
                *successes.entry("(attempts)".into()).or_default() += 1;
                if v["outcome"] == "succeeded" {
                    *successes
                        .entry(v["run"].as_str().unwrap().to_string())
                        .or_default() += 1;
                }
            }
            "series" => {
                records.insert(
                    format!(
                        "series {} {} {}",
                        v["run"].as_str().unwrap(),
                        v["split"].as_str().unwrap(),
                        v["name"].as_str().unwrap()
                    ),
                    serde_json::json!({ "steps": v["steps"], "values": v["values"] }),
                );
            }
            _ => {}
        }
    }
    (records, successes)
}

#[test]
fn a_sweep_killed_at_random_moments_ends_as_an_uninterrupted_one() {
    let d = tempfile::tempdir().unwrap();
    let model = common::model_dir(d.path());
    let script = script(d.path(), &model);
    let script = script.to_str().unwrap();

    let calm = d.path().join("calm");
    let o = xtask(&calm, &["sweep", script]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("10 succeeded, 0 failed"), "{err}");
    let (want, mut once) = export(&calm);
    assert_eq!(once.remove("(attempts)"), Some(10));
    assert!(once.values().all(|n| *n == 1));

    let kills: usize = std::env::var("T4V_FAULT_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let rough = d.path().join("rough");
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut moments = Vec::new();
    for _ in 0..kills {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Between 0.2 s and 3 s after the start: while it plans, claims, runs, records.
        let ms = 200 + seed % 2800;
        moments.push(ms);
        let mut child = xtask(&rough, &["sweep", script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(ms));
        common::sweeps::kill9(child.id());
        child.wait().unwrap();
    }
    let o = xtask(&rough, &["sweep", script]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.contains("0 failed"), "{err}");
    let (got, mut once) = export(&rough);
    // The kills interrupted attempts (which ran again), not only the moments between them.
    let attempts = once.remove("(attempts)").unwrap_or(0);
    assert!(
        attempts > 10,
        "{attempts} attempts: no kill interrupted a run"
    );
    assert_eq!(
        once.len(),
        10,
        "every run succeeded once after kills at {moments:?} ms: {once:?}"
    );
    assert!(
        once.values().all(|n| *n == 1),
        "a run succeeded twice: {once:?}"
    );
    let keys = |m: &BTreeMap<String, Value>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&got), keys(&want));
    for (k, v) in &want {
        assert_eq!(&got[k], v, "{k} after kills at {moments:?} ms");
    }
    t4v_fault::record(
        "Process killed (SIGKILL)",
        "coordinator of a mixed sweep (selftest, features, probe, checkpointed train; 10 runs) killed at seeded moments 0.2–3 s after each start, then started again",
        kills as u64,
        &format!(
            "every run done once with one successful attempt ({} attempts in all); the export equals an uninterrupted sweep's",
            attempts
        ),
    );
}

/// A worker killed with SIGKILL at each fault-injection point of a checkpoint or cache write
/// (`T4V_FAULT`, t4v_fault): the attempt fails, the folder holds what the kill left (a
/// half-written checkpoint folder, the previous one renamed aside, a cache under its temporary
/// name), and `--retry-failed` finishes the run from the last good checkpoint or afresh, never
/// reading the partial files: the export equals that of a sweep without faults.
#[test]
fn a_worker_killed_while_it_writes_a_checkpoint_or_a_cache_loses_nothing() {
    let d = tempfile::tempdir().unwrap();
    let model = common::model_dir(d.path());
    let body = r#"let s = sweep("writes");
        let f = BASE; f.kind = "features"; f.params = #{ split: "train", per_class: 4 };
        s.add(f);
        let t = BASE; t.kind = "train";
        t.optim = #{ lr: 1e-3, epochs: 1, warmup_epochs: 1, batch_size: 32 };
        t.params = #{ checkpoint_every: 4 };
        s.add(t);"#;
    let script = write_script(d.path(), &model, "writes", body);
    let script = script.to_str().unwrap();
    let calm = d.path().join("calm");
    let o = xtask(&calm, &["sweep", script]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (want, _) = export(&calm);

    // (point, reach, what the kill leaves in the train run's checkpoint folder or the cache,
    // what the retried attempt says)
    type Case = (&'static str, u32, fn(&Path) -> bool, &'static str);
    let cases: [Case; 3] = [
        (
            "checkpoint.partial",
            2,
            |ckpt| {
                ckpt.join("last.tmp/model.mpk").exists()
                    && !ckpt.join("last.tmp/checksums.json").exists()
                    && ckpt.join("last/checksums.json").exists()
            },
            "resuming from the checkpoint after step 4 of epoch 1",
        ),
        (
            "checkpoint.swap",
            1,
            |ckpt| !ckpt.join("last").exists() && ckpt.join("last.old/checksums.json").exists(),
            "resuming from the checkpoint after step 4 of epoch 1",
        ),
        (
            "cache.partial",
            1,
            |cache| {
                std::fs::read_dir(cache)
                    .unwrap()
                    .any(|e| e.unwrap().file_name().to_string_lossy().contains(".tmp-"))
            },
            "",
        ),
    ];
    for (point, reach, left, said) in cases {
        let results = d.path().join(point);
        let marker = d.path().join(format!("{point}.fired"));
        let o = xtask(&results, &["sweep", script])
            .env("T4V_FAULT", format!("{point}#{reach}@{}", marker.display()))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(marker.exists(), "{point}: never reached: {err}");
        // (A sweep that ran to its end exits 0; the failed run is in its summary.)
        assert!(
            err.contains("1 failed") && err.contains("killed by SIGKILL (9)"),
            "{point}: {err}"
        );
        let o = xtask(&results, &["runs", "--json"]).output().unwrap();
        let runs: Value = serde_json::from_slice(&o.stdout).unwrap();
        let killed = runs
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["status"] == "failed")
            .unwrap()
            .clone();
        let dir = results.join("runs").join(killed["id"].as_str().unwrap());
        let place = if point.starts_with("cache") {
            results.join("cache")
        } else {
            dir.join("checkpoint")
        };
        assert!(
            left(&place),
            "{point}: the kill left {:?}",
            std::fs::read_dir(&place)
                .map(|d| d.map(|e| e.unwrap().file_name()).collect::<Vec<_>>())
        );

        let o = xtask(&results, &["sweep", script, "--retry-failed"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status.success() && err.contains("1 succeeded, 0 failed"),
            "{point}: {err}"
        );
        let log = std::fs::read_to_string(dir.join("attempt-2.stderr.log")).unwrap();
        assert!(log.contains(said), "{point}: {log}");
        assert!(!left(&place), "{point}: what the kill left is cleared");
        let (got, _) = export(&results);
        assert_eq!(got, want, "{point}: the export of a sweep without faults");
        t4v_fault::record(
            "Process killed (SIGKILL)",
            &format!(
                "worker killed at `{point}`: {}",
                t4v_fault::POINTS
                    .iter()
                    .find(|(n, _)| *n == point)
                    .unwrap()
                    .1
            ),
            1,
            if said.is_empty() {
                "the partial file never read; the retried run rebuilt the cache; the export equals a sweep's without faults"
            } else {
                "the partial checkpoint never loaded; the retry resumed from the previous one (after step 4); the export equals a sweep's without faults"
            },
        );
    }
}

/// The results folder out of space (a 700 KB tmpfs, which the test mounts when it runs as root,
/// as CI does; otherwise it says why it skips): the sweep stops with an error naming the folder
/// and what to do; moved to a bigger disk, the same sweep finishes, every run that should
/// succeed succeeded exactly once, and nothing stored was lost.
#[test]
fn a_full_results_disk_stops_the_sweep_and_nothing_stored_is_lost() {
    let d = tempfile::tempdir().unwrap();
    let small = d.path().join("small");
    std::fs::create_dir_all(&small).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=700k", "tmpfs"])
        .arg(&small)
        .output();
    if !mounted.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: mounting a small tmpfs needs root (CI runs as root)");
        t4v_fault::record(
            "Disk full",
            "results folder on a 700 KB tmpfs",
            0,
            "not run: mounting a tmpfs needs root",
        );
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let unmount = Unmount(small.clone());
    let script = common::sweeps::repo().join("experiments/selftest.rhai");
    let script = script.to_str().unwrap();
    let results = small.join("results");
    let o = xtask(&results, &["sweep", script, "--jobs", "2"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "the sweep fitted in 700 KB: {err}");
    assert!(
        err.contains(&format!("out of space under {}", results.display()))
            && err.contains("run the command again"),
        "{err}"
    );
    let big = d.path().join("big");
    let cp = Command::new("cp")
        .arg("-a")
        .arg(&results)
        .arg(&big)
        .status()
        .unwrap();
    assert!(cp.success());
    drop(unmount);
    // Runs a full disk made fail are failed runs: --retry-failed runs them again.
    let o = xtask(&big, &["sweep", script, "--jobs", "2", "--retry-failed"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let o = xtask(&big, &["runs", "--json"]).output().unwrap();
    let runs: Value = serde_json::from_slice(&o.stdout).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 28);
    let done: Vec<&Value> = runs.iter().filter(|r| r["status"] == "done").collect();
    assert_eq!(done.len(), 24, "{err}");
    for r in done {
        let wins = r["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["outcome"] == "succeeded")
            .count();
        assert_eq!(wins, 1, "{r}");
    }
    t4v_fault::record(
        "Disk full",
        "results folder on a 700 KB tmpfs, the 28-run selftest sweep",
        1,
        "stopped with an error naming the folder and the way on; copied to a bigger disk, --retry-failed finished it: 24 done, each succeeded once, nothing stored lost",
    );
}
