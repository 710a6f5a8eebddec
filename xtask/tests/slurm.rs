//! End to end against a real Slurm (`.ci/slurm up`; CI starts one): the `xtask` binary that
//! `cargo test` built submits its runs as job arrays and follows them through `scontrol` and
//! the event files its workers write.
//!
//! Without a reachable Slurm controller each test says so and returns, unless
//! `T4V_REQUIRE_SLURM=1` (CI) makes that a failure. The tests take turns: they share the
//! cluster's two CPUs.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::sweeps::*;
use serde_json::Value;

static CLUSTER: Mutex<()> = Mutex::new(());

/// The cluster to ourselves, or `None` (said on stderr) where there is no Slurm.
fn slurm() -> Option<MutexGuard<'static, ()>> {
    let up = Command::new("scontrol")
        .arg("ping")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("UP"));
    if !up {
        let why = "no Slurm controller answers `scontrol ping` (start one: `.ci/slurm up` and \
                   `eval \"$(.ci/slurm env)\"`)";
        if std::env::var_os("T4V_REQUIRE_SLURM").is_some_and(|v| v == "1") {
            panic!("T4V_REQUIRE_SLURM=1 but {why}");
        }
        eprintln!("skipped: {why}");
        return None;
    }
    Some(CLUSTER.lock().unwrap_or_else(|e| e.into_inner()))
}

const SLURM: [&str; 2] = ["--executor", "slurm"];

fn with<'a>(head: &[&'a str], tail: &[&'a str]) -> Vec<&'a str> {
    head.iter().chain(tail).copied().collect()
}

/// Every task line the sweep's submissions hold: how often each run was handed to Slurm.
fn submitted(env: &Env) -> Vec<String> {
    let dir = env.results().join("slurm");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries {
        let list = e.unwrap().path().join("tasks");
        for line in std::fs::read_to_string(&list).unwrap_or_default().lines() {
            out.push(line.rsplit('\t').next().unwrap().to_string());
        }
    }
    out
}

fn job_id(r: &Value) -> String {
    let a = r["attempts"].as_array().unwrap().last().unwrap();
    assert_eq!(a["job"]["executor"], "slurm", "{a}");
    a["job"]["id"].as_str().unwrap().to_string()
}

/// `runs --json` (which records what Slurm finished) until `done` holds, or panics after `secs`.
fn wait_for(env: &Env, secs: u64, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let runs = env.runs();
        if done(&runs) {
            return runs;
        }
        assert!(
            Instant::now() < deadline,
            "{what} within {secs} s: {runs:#?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn by_epochs(runs: &[Value], epochs: u64) -> &Value {
    runs.iter()
        .find(|r| r["spec"]["params"]["epochs"] == epochs)
        .unwrap()
}

#[test]
fn the_selftest_sweep_through_slurm_ends_as_through_local_workers() {
    let Some(_cluster) = slurm() else { return };
    let env = Env::new();
    let script = repo().join("experiments/selftest.rhai");
    let script = script.to_str().unwrap();
    let out = env.ok(&with(&["sweep", script, "--jobs", "2"], &SLURM));
    assert!(out.contains("24 succeeded, 4 failed"), "{out}");
    check_selftest(&env);
    let runs = env.runs();
    let ids: HashSet<String> = runs.iter().map(job_id).collect();
    assert_eq!(ids.len(), 28, "one Slurm task per run");
    // Each worker reported through its attempt's event file.
    for r in &runs {
        let dir = env.results().join("runs").join(r["id"].as_str().unwrap());
        assert!(
            dir.join("attempt-1.events.jsonl").is_file(),
            "{}",
            dir.display()
        );
        // The node that ran it, as its worker said.
        assert!(r["attempts"][0]["node"].is_string(), "{r}");
        assert!(r["attempts"][0]["pid"].is_u64(), "{r}");
    }
    assert_eq!(submitted(&env).len(), 28);
    // A rerun submits nothing.
    let out = env.ok(&with(&["sweep", script], &SLURM));
    assert!(out.contains("0 succeeded, 0 failed"), "{out}");
    assert_eq!(submitted(&env).len(), 28);
}

#[test]
fn a_coordinator_killed_with_tasks_queued_and_running_is_followed_again_not_resubmitted() {
    let Some(_cluster) = slurm() else { return };
    let env = Env::new();
    let script = env.script(
        "k.rhai",
        r#"let s = sweep("kill");
        s.seeds([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let first = s.add(#{ kind: "selftest", params: #{ sleep_ms: 700, epochs: 7 } });
        s.seeds([0, 1]);
        s.add(#{ kind: "selftest", params: #{ sleep_ms: 100, epochs: 2 }, needs: #{ input: first } });"#,
    );
    let script = script.to_str().unwrap();
    let mut child = env
        .cmd(&with(&["sweep", script, "--jobs", "2"], &SLURM))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill -9 once some runs have finished and others are queued behind the throttle.
    env.wait_for_results(3, 90);
    kill9(child.id());
    child.wait().unwrap();
    let at_kill = submitted(&env).len();
    assert!(at_kill >= 10, "{at_kill} runs submitted before the kill");

    let out = env.ok(&with(&["sweep", script, "--jobs", "2"], &SLURM));
    assert!(out.contains("still queued or running"), "{out}");
    assert!(!out.contains("left running by a coordinator"), "{out}");
    let runs = env.runs();
    assert_eq!(runs.len(), 12);
    for r in &runs {
        assert_eq!(r["status"], "done", "{r}");
        assert_eq!(successes(r), 1, "a run succeeded twice: {r}");
        assert_eq!(
            r["attempts"].as_array().unwrap().len(),
            1,
            "the tasks outlived their coordinator: nothing is interrupted or redone: {r}"
        );
    }
    let subs = submitted(&env);
    assert_eq!(subs.len(), 12, "a run was submitted twice: {subs:?}");
    assert_eq!(subs.iter().collect::<HashSet<_>>().len(), 12);
}

#[test]
fn detach_then_runs_records_what_ended_and_scancel_is_a_cancelled_attempt() {
    let Some(_cluster) = slurm() else { return };
    let env = Env::new();
    let script = env.script(
        "d.rhai",
        r#"let s = sweep("detach");
        let a = s.add(#{ kind: "selftest", params: #{ sleep_ms: 200, epochs: 2 } });
        s.add(#{ kind: "selftest", params: #{ sleep_ms: 200, epochs: 3 }, needs: #{ input: a } });
        s.add(#{ kind: "selftest", params: #{ outcome: "hang", epochs: 1, sleep_ms: 0 } });"#,
    );
    let script = script.to_str().unwrap();
    let t = Instant::now();
    let out = env.ok(&with(&["sweep", script, "--jobs", "2", "--detach"], &SLURM));
    assert!(t.elapsed() < Duration::from_secs(20), "--detach waited");
    assert!(
        out.contains("detached: 2 run(s) queued or running"),
        "{out}"
    );
    assert!(out.contains("1 waiting for them"), "{out}");

    // `runs` records the finished one; the consumer waits for a coordinator to submit it.
    let runs = wait_for(&env, 60, "the first run done", |r| {
        by_epochs(r, 2)["status"] == "done"
    });
    assert_eq!(by_epochs(&runs, 3)["status"], "pending");
    assert_eq!(by_epochs(&runs, 1)["status"], "running");

    // scancel of the hanging task: a failed attempt with Slurm's reason.
    let hang = job_id(by_epochs(&runs, 1));
    let o = Command::new("scancel").arg(&hang).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let runs = wait_for(&env, 60, "the cancelled run failed", |r| {
        by_epochs(r, 1)["status"] == "failed"
    });
    let reason = by_epochs(&runs, 1)["reason"].as_str().unwrap();
    assert!(reason.starts_with("CANCELLED"), "{reason}");

    // `sweep` again submits only the consumer, and follows it to the end.
    let out = env.ok(&with(&["sweep", script], &SLURM));
    assert!(out.contains("1 succeeded, 0 failed"), "{out}");
    let runs = env.runs();
    assert_eq!(by_epochs(&runs, 3)["status"], "done");
    assert_eq!(submitted(&env).len(), 3);
    assert!(
        runs.iter()
            .all(|r| r["attempts"].as_array().unwrap().len() == 1)
    );
}

/// SIGINT of a sweep running through Slurm leaves its tasks there (they outlive any coordinator)
/// and exits 130, saying how to follow or stop them; the next `sweep` follows them to the end
/// without submitting anything again.
#[test]
fn sigint_of_a_slurm_sweep_leaves_its_tasks_running_and_the_next_sweep_follows_them() {
    let Some(_cluster) = slurm() else { return };
    let env = Env::new();
    let script = env.script(
        "i.rhai",
        r#"let s = sweep("ctrl-c");
        s.seeds([0, 1]);
        s.add(#{ kind: "selftest", params: #{ sleep_ms: 6000, epochs: 4 } });"#,
    );
    let script = script.to_str().unwrap();
    let child = env
        .cmd(&with(&["sweep", script, "--jobs", "2"], &SLURM))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while submitted(&env).len() < 2 {
        assert!(Instant::now() < deadline, "nothing submitted");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(
        err.contains(
            "SIGINT: leaving 2 run(s) at Slurm (`sweep` again follows them, `cancel` stops them)"
        ),
        "{err}"
    );
    let out = env.ok(&with(&["sweep", script, "--jobs", "2"], &SLURM));
    assert!(out.contains("still queued or running"), "{out}");
    let runs = env.runs();
    assert_eq!(runs.len(), 2);
    for r in &runs {
        assert_eq!(r["status"], "done", "{r}");
        assert_eq!(r["attempts"].as_array().unwrap().len(), 1, "{r}");
    }
    assert_eq!(submitted(&env).len(), 2, "nothing submitted twice");
    t4v_fault::record(
        "Signals",
        "SIGINT of a sweep running through Slurm (2 tasks at the cluster)",
        1,
        "exit 130, the tasks left running at Slurm; the next sweep followed them to the end, one attempt each, nothing resubmitted",
    );
}

#[test]
fn cancel_stops_a_sweeps_tasks_and_leaves_its_runs_pending() {
    let Some(_cluster) = slurm() else { return };
    let env = Env::new();
    let script = env.script(
        "c.rhai",
        r#"let s = sweep("stop-me");
        s.seeds([0, 1, 2]);
        s.add(#{ kind: "selftest", params: #{ outcome: "hang", epochs: 1, sleep_ms: 0 } });"#,
    );
    let script = script.to_str().unwrap();
    env.ok(&with(&["sweep", script, "--jobs", "2", "--detach"], &SLURM));
    let runs = env.runs();
    let jobs: Vec<String> = runs.iter().map(job_id).collect();
    let out = env.ok(&["cancel", "stop-me"]);
    assert!(out.contains("cancelled 3 run(s)"), "{out}");
    for r in env.runs() {
        assert_eq!(r["status"], "pending", "{r}");
        let a = &r["attempts"][0];
        assert_eq!(a["outcome"], "interrupted");
        assert_eq!(a["reason"], "cancelled with `xtask cancel`");
    }
    // Slurm let them go: none is queued or running any more.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let q = Command::new("squeue")
            .args(["-h", "-r", "-t", "PD,R,CG", "-o", "%i"])
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&q.stdout).to_string();
        if !jobs.iter().any(|j| listed.lines().any(|l| l.trim() == j)) {
            break;
        }
        assert!(Instant::now() < deadline, "still queued: {listed}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_timeout_becomes_slurms_time_limit_and_a_timeout_attempt() {
    let Some(_cluster) = slurm() else { return };
    let env = Env::new();
    let script = env.script(
        "t.rhai",
        r#"let s = sweep("late");
        s.add(#{ kind: "selftest", params: #{ outcome: "hang", epochs: 1, sleep_ms: 0 } });"#,
    );
    // Slurm counts time limits in whole minutes: one second becomes one minute.
    let out = env.ok(&with(
        &["sweep", script.to_str().unwrap(), "--timeout", "1"],
        &SLURM,
    ));
    assert!(out.contains("0 succeeded, 1 failed"), "{out}");
    let r = &env.runs()[0];
    let reason = r["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("TIMEOUT: past its Slurm time limit of 00:01:00"),
        "{reason}"
    );
    let tail = r["attempts"][0]["stderr_tail"].as_array().unwrap();
    assert!(
        tail.iter()
            .any(|l| l.as_str().unwrap().contains("DUE TO TIME LIMIT")),
        "Slurm's own message is kept: {tail:?}"
    );
}

#[test]
fn a_gpu_request_the_cluster_cannot_meet_is_refused_at_submit() {
    let Some(_cluster) = slurm() else { return };
    let env = Env::new();
    let script = env.script(
        "g.rhai",
        r#"let s = sweep("gpu");
        s.add(#{ kind: "selftest", params: #{ sleep_ms: 10, epochs: 1 } });"#,
    );
    let o = env.run(&with(
        &[
            "sweep",
            script.to_str().unwrap(),
            "--slurm-gpus-per-run",
            "1",
        ],
        &SLURM,
    ));
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("Slurm refused the submission")
            && err.contains("--gres=gpu:1")
            && err.contains("Requested node configuration is not available"),
        "{err}"
    );
    assert!(env.runs().is_empty(), "nothing is stored");
    assert!(submitted(&env).is_empty());

    // A config file in the results folder is read, and a wrong key is named with it.
    std::fs::write(
        env.results().join("slurm.toml"),
        "partition = \"nowhere\"\n",
    )
    .unwrap();
    let o = env.run(&with(&["sweep", script.to_str().unwrap()], &SLURM));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("--partition=nowhere"),
        "{err}"
    );
    std::fs::write(env.results().join("slurm.toml"), "partitio = \"debug\"\n").unwrap();
    let o = env.run(&with(&["sweep", script.to_str().unwrap()], &SLURM));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("slurm.toml") && err.contains("partitio"),
        "{err}"
    );
    std::fs::write(env.results().join("slurm.toml"), "partition = \"debug\"\n").unwrap();
    let out = env.ok(&with(&["sweep", script.to_str().unwrap()], &SLURM));
    assert!(out.contains("1 succeeded"), "{out}");
}

/// The report files of a sweep's report: name → contents.
fn report(results: &Path, out: &Path) -> Vec<(String, String)> {
    let o = Command::new(bin())
        .arg("--results")
        .arg(results)
        .args(["report", "quickstart", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut files: Vec<(String, String)> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x == "md" || x == "csv" || x == "tex")
        })
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn the_tiny_quickstart_through_slurm_gives_the_local_tables() {
    let Some(_cluster) = slurm() else { return };
    let d = tempfile::tempdir().unwrap();
    let script: PathBuf = repo().join("experiments/quickstart.rhai");
    let script = script.to_str().unwrap();
    let mut tables = Vec::new();
    for executor in ["local", "slurm"] {
        let results = d.path().join(executor);
        let o = Command::new(bin())
            .arg("--results")
            .arg(&results)
            .args(["sweep", script, "--set", "tiny=true", "--jobs", "2"])
            .args(["--executor", executor])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status.success() && err.contains(" 0 failed"),
            "{executor}: {err}"
        );
        tables.push(report(
            &results,
            &d.path().join(format!("{executor}-report")),
        ));
    }
    assert!(tables[0].len() >= 10, "{:?}", tables[0]);
    assert_eq!(tables[0], tables[1]);
}

#[test]
fn a_requeued_train_task_resumes_from_its_checkpoint_in_the_same_attempt() {
    let Some(_cluster) = slurm() else { return };
    let env = Env::new();
    let model = common::model_dir(env.results().parent().unwrap());
    let script = env.script(
        "r.rhai",
        &format!(
            r#"let s = sweep("requeue");
            s.add(#{{ kind: "train",
                model: #{{ backbone: "{}", frames: 4, input_size: 32 }},
                data: #{{ dataset: "synthetic" }},
                optim: #{{ lr: 1e-3, epochs: 3, warmup_epochs: 1, batch_size: 32 }} }});"#,
            model.display()
        ),
    );
    let script = script.to_str().unwrap();
    env.ok(&with(&["sweep", script, "--detach"], &SLURM));
    let state = common::first_checkpoint(&env.results(), 300);
    // What a preemption with PreemptMode=REQUEUE does: the task is stopped and queued again.
    let job = job_id(&env.runs()[0]);
    let o = Command::new("scontrol")
        .args(["requeue", &job])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let at_requeue = saved["epoch"].as_u64().unwrap();
    assert!((1..3).contains(&at_requeue), "{saved}");

    let out = env.ok(&with(&["sweep", script], &SLURM));
    assert!(out.contains("1 succeeded, 0 failed"), "{out}");
    let r = &env.runs()[0];
    let attempts = r["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "the same attempt went on: {r}");
    let tail: Vec<&str> = attempts[0]["stderr_tail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(tail.contains(&"[slurm] requeued (restart 1)"), "{tail:?}");
    assert!(
        tail.iter()
            .any(|l| l.contains("resuming from the checkpoint after epoch")),
        "{tail:?}"
    );
    let o = env.run(&["show", r["id"].as_str().unwrap(), "--json"]);
    let show: Value = serde_json::from_slice(&o.stdout).unwrap();
    let loss = show["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["split"] == "train" && s["name"] == "loss")
        .unwrap_or_else(|| panic!("no train/loss in {show}"));
    assert_eq!(
        loss["steps"],
        serde_json::json!([1, 2, 3]),
        "every epoch once"
    );
}
