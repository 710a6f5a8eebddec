//! End to end: the `xtask` binary that `cargo test` built, driving sweeps of `selftest` runs.

mod common;

use std::time::Duration;

use common::sweeps::*;
use serde_json::Value;

#[test]
fn the_selftest_sweep_completes_with_reasons_for_requested_failures() {
    let env = Env::new();
    let script = repo().join("experiments/selftest.rhai");
    let out = env.ok(&["sweep", script.to_str().unwrap(), "--jobs", "2"]);
    assert!(out.contains("24 succeeded, 4 failed"), "{out}");
    check_selftest(&env);
    // Rerunning does nothing: every run is done or failed.
    let out = env.ok(&["sweep", script.to_str().unwrap()]);
    assert!(out.contains("0 succeeded, 0 failed"), "{out}");
    assert!(
        env.runs()
            .iter()
            .all(|r| r["attempts"].as_array().unwrap().len() == 1)
    );
    // A dependency ran before its consumer and handed it its artefact.
    let show = env.ok(&[
        "show",
        env.runs()
            .iter()
            .find(|r| r["spec"]["needs"]["input"].is_string())
            .unwrap()["id"]
            .as_str()
            .unwrap(),
    ]);
    assert!(show.contains("[log] read the result of"), "{show}");
}

#[test]
fn a_killed_coordinator_resumes_without_redoing_finished_runs() {
    let env = Env::new();
    let script = env.script(
        "k.rhai",
        r#"let s = sweep("kill");
        s.seeds([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        s.add(#{ kind: "selftest", params: #{ sleep_ms: 700, epochs: 7 } });"#,
    );
    let mut child = env
        .cmd(&["sweep", script.to_str().unwrap(), "--jobs", "2"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until some runs have written their results, then kill -9 in the middle of the sweep.
    env.wait_for_results(3, 60);
    std::thread::sleep(Duration::from_millis(200));
    kill9(child.id());
    child.wait().unwrap();
    // Workers die with their coordinator: no process of this results folder is left.
    std::thread::sleep(Duration::from_millis(300));

    let before = env.runs();
    let done_before: Vec<String> = before
        .iter()
        .filter(|r| r["status"] == "done")
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let running_before = before.iter().filter(|r| r["status"] == "running").count();
    assert!(
        done_before.len() >= 2 && done_before.len() < 10,
        "{} done before the kill",
        done_before.len()
    );
    assert!(running_before >= 1, "the kill should catch runs in flight");

    let out = env.ok(&["sweep", script.to_str().unwrap(), "--jobs", "2"]);
    assert!(
        out.contains("left running by a coordinator that stopped"),
        "{out}"
    );
    let after = env.runs();
    assert_eq!(after.len(), 10);
    for r in &after {
        assert_eq!(r["status"], "done", "{r}");
        assert_eq!(successes(r), 1, "a run succeeded twice: {r}");
        let id = r["id"].as_str().unwrap().to_string();
        if done_before.contains(&id) {
            assert_eq!(
                r["attempts"].as_array().unwrap().len(),
                1,
                "a finished run ran again: {r}"
            );
        }
    }
    let interrupted = after
        .iter()
        .flat_map(|r| r["attempts"].as_array().unwrap().iter())
        .filter(|a| a["outcome"] == "interrupted")
        .count();
    assert_eq!(interrupted, running_before);
    t4v_fault::record(
        "Process killed (SIGKILL)",
        "coordinator of a 10-run selftest sweep (2 at a time) killed mid-sweep, then rerun",
        1,
        "finished runs not run again; runs in flight recorded interrupted and rerun; each done once",
    );
}

#[test]
fn identical_specs_are_one_run_across_scripts_and_sweeps() {
    let env = Env::new();
    let a = env.script(
        "a.rhai",
        r#"let s = sweep("a");
        s.add(#{ kind: "selftest", params: #{ sleep_ms: 10, epochs: 2 } });
        s.add(#{ params: #{ epochs: 2.0, sleep_ms: 10, outcome: "succeed" }, kind: "selftest" });"#,
    );
    let b = env.script(
        "b.rhai",
        r#"let s = sweep("b");
        let p = preset("paper");
        p.kind = "selftest";
        p.params = #{ epochs: 2, sleep_ms: 10 };
        s.add(p);"#,
    );
    assert!(
        env.ok(&["sweep", a.to_str().unwrap()])
            .contains("1 runs: 1 new")
    );
    assert!(
        env.ok(&["sweep", b.to_str().unwrap()])
            .contains("1 runs: 1 done")
    );
    let runs = env.runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["sweeps"], serde_json::json!(["a", "b"]));
    assert_eq!(runs[0]["attempts"].as_array().unwrap().len(), 1);
}

#[test]
fn bad_scripts_name_line_and_field_and_leave_the_store_alone() {
    let env = Env::new();
    let good = env.script("g.rhai", "let s = sweep(\"g\");\ns.add(#{ kind: \"selftest\", params: #{ sleep_ms: 10, epochs: 2 } });\n");
    env.ok(&["sweep", good.to_str().unwrap()]);
    let before = env.export();
    let cases = [
        (
            "let s = sweep(\"g\");\ns.add(#{ kind: \"selftest\", params: #{ sleep_ms: 10, epochs: 2 } });\ns.add(#{ kind: \"selftest\" ",
            ":3:27: Expecting '}'",
        ),
        (
            "let s = sweep(\"g\");\n\ns.add(#{ kind: \"selftest\", optim: #{ lr: \"fast\" } });",
            ":3:3: field `optim.lr`",
        ),
        (
            "let s = sweep(\"g\");\ns.add(#{ kind: \"selfttest\" });",
            ":2:3: field `kind`: unknown run kind `selfttest` (known: selftest, features, zero-shot, train, eval, probe, pretrain)",
        ),
        (
            "let s = sweep(\"g\");\ns.add(#{ kind: \"selftest\", params: #{ epochs: \"two\" } });",
            ":2:3: field `params.epochs`: expected a non-negative integer, found a string",
        ),
        (
            "let s = sweep(\"g\");\ns.add(#{ kind: \"selftest\", data: #{ datset: \"k400\" } });",
            ":2:3: field `data.datset`: unknown field `datset`",
        ),
    ];
    for (src, want) in cases {
        let p = env.script("bad.rhai", src);
        let o = env.run(&["sweep", p.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success());
        assert!(
            err.contains(&format!("bad.rhai{want}")),
            "want {want} in:\n{err}"
        );
        assert_eq!(env.export(), before, "a bad script changed the store");
    }
    let o = env.run(&["sweep", "/nonexistent/x.rhai"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("reading sweep script /nonexistent/x.rhai")
    );
}

#[test]
fn timeouts_retries_fail_fast_dry_runs_and_devices() {
    let env = Env::new();
    let s1 = env.script(
        "f.rhai",
        r#"let s = sweep("f");
        let flaky = s.add(#{ kind: "selftest", params: #{ sleep_ms: 10, epochs: 2, fail_attempts: 1 } });
        s.add(#{ kind: "selftest", params: #{ sleep_ms: 10, epochs: 3 }, needs: #{ input: flaky } });
        s.add(#{ kind: "selftest", params: #{ outcome: "hang", epochs: 1, sleep_ms: 0 } });
        s.add(#{ kind: "selftest", params: #{ sleep_ms: 10, epochs: 4 } });"#,
    );
    let path = s1.to_str().unwrap();
    let plan = env.ok(&["sweep", path, "--dry-run"]);
    assert!(plan.contains("4 runs: 4 new"), "{plan}");
    assert!(
        !env.results().join("store").exists(),
        "--dry-run wrote a store"
    );

    let out = env.ok(&[
        "sweep",
        path,
        "--jobs",
        "2",
        "--timeout",
        "1.5",
        "--devices",
        "3,5",
    ]);
    assert!(out.contains("1 succeeded, 2 failed, 1 blocked"), "{out}");
    let runs = env.runs();
    let reason = |epochs: u64| {
        runs.iter()
            .find(|r| r["spec"]["params"]["epochs"] == epochs)
            .unwrap()["reason"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(reason(1), "timed out after 1.5s");
    assert_eq!(reason(2), "selftest asked to fail attempt 1 of the first 1");
    for r in &runs {
        for a in r["attempts"].as_array().unwrap() {
            let d = a["provenance"]["device"].as_str().unwrap();
            assert!(d == "3" || d == "5", "device {d}");
        }
    }
    let plan = env.ok(&["sweep", path, "--dry-run"]);
    assert!(
        plan.contains("4 runs: 2 failed, 1 done, 1 blocked"),
        "{plan}"
    );
    let plan = env.ok(&["sweep", path, "--dry-run", "--retry-failed"]);
    assert!(
        plan.contains("4 runs: 1 pending, 2 retry, 1 done"),
        "{plan}"
    );

    // Without the flag, failed runs stay failed; with it, the flaky run and its consumer run.
    let s2 = env.script(
        "f2.rhai",
        r#"let s = sweep("f");
        let flaky = s.add(#{ kind: "selftest", params: #{ sleep_ms: 10, epochs: 2, fail_attempts: 1 } });
        s.add(#{ kind: "selftest", params: #{ sleep_ms: 10, epochs: 3 }, needs: #{ input: flaky } });
        s.add(#{ kind: "selftest", params: #{ sleep_ms: 10, epochs: 5 } });"#,
    );
    let out = env.ok(&["sweep", s2.to_str().unwrap(), "--retry-failed"]);
    assert!(out.contains("1 run(s) added, 2 removed"), "{out}");
    assert!(out.contains("3 succeeded, 0 failed"), "{out}");
    let flaky = env
        .runs()
        .into_iter()
        .find(|r| r["spec"]["params"]["epochs"] == 2)
        .unwrap();
    assert_eq!(
        (
            flaky["status"].as_str(),
            flaky["attempts"].as_array().unwrap().len()
        ),
        (Some("done"), 2)
    );
    let hang = env
        .runs()
        .into_iter()
        .find(|r| r["spec"]["params"]["epochs"] == 1)
        .unwrap();
    assert_eq!(
        hang["sweeps"],
        serde_json::json!([]),
        "a removed run keeps its record but not the membership"
    );

    // --fail-fast stops at the first failure and exits non-zero.
    let s3 = env.script(
        "ff.rhai",
        r#"let s = sweep("ff");
        s.add(#{ kind: "selftest", params: #{ outcome: "fail", sleep_ms: 10, epochs: 1 } });
        s.seeds([1, 2, 3, 4]);
        s.add(#{ kind: "selftest", params: #{ sleep_ms: 10, epochs: 1 } });"#,
    );
    let o = env.run(&["sweep", s3.to_str().unwrap(), "--fail-fast"]);
    assert_eq!(o.status.code(), Some(1));
    let ff: Vec<Value> = env
        .runs()
        .into_iter()
        .filter(|r| r["sweeps"] == serde_json::json!(["ff"]))
        .collect();
    assert_eq!(
        ff.iter().filter(|r| r["status"] == "pending").count(),
        4,
        "{ff:?}"
    );
}

#[test]
fn plugins_and_cuda_errors() {
    let env = Env::new();
    let v: Value = serde_json::from_str(&env.ok(&["plugins", "--json"])).unwrap();
    assert_eq!(v["run-kind"][0]["name"], "selftest");
    assert!(
        v["run-kind"][0]["params"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "outcome")
    );
    let text = env.ok(&["plugins"]);
    assert!(text.contains("params.outcome"));
    // Every family, with what each member needs.
    let names = |family: &str| -> Vec<String> {
        v[family]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names("temporal-head"), ["mean", "transf"]);
    assert_eq!(
        names("classifier-init"),
        [
            "random",
            "orthogonal",
            "lda",
            "text",
            "text-bert",
            "class-mean"
        ]
    );
    let needs = |family: &str, name: &str| -> Vec<String> {
        let p = v[family]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap();
        p["needs"]
            .as_array()
            .unwrap_or_else(|| panic!("{family} {name} has no needs: {p}"))
            .iter()
            .map(|n| n["name"].as_str().unwrap().to_string())
            .collect()
    };
    for (init, want) in [
        ("random", vec![]),
        ("orthogonal", vec![]),
        ("lda", vec!["features"]),
        ("text", vec!["clip-text"]),
        ("text-bert", vec!["sentence-encoder"]),
        ("class-mean", vec!["features"]),
    ] {
        assert_eq!(needs("classifier-init", init), want, "{init}");
    }
    assert_eq!(needs("encoder", "clip"), ["clip"]);
    assert_eq!(needs("dataset", "k400"), ["data-folder"]);
    assert!(needs("dataset", "synthetic").is_empty());
    assert!(
        text.contains("temporal heads (model.temporal_head):"),
        "{text}"
    );
    assert!(
        text.contains("needs features (frozen training features"),
        "{text}"
    );
    // An unknown head fails when the script is evaluated, naming the known ones; nothing runs.
    let lstm = env.script(
        "h.rhai",
        "let s = sweep(\"h\");\ns.add(#{ kind: \"train\", model: #{ temporal_head: \"lstm\" } });\n",
    );
    let o = env.run(&["sweep", lstm.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("model.temporal_head")
            && err.contains("`lstm`")
            && err.contains("mean, transf"),
        "{err}"
    );
    assert!(!env.results().join("store").exists(), "{err}");
    let good = env.script(
        "g.rhai",
        "let s = sweep(\"g\");\ns.add(#{ kind: \"selftest\" });\n",
    );
    let o = env.run(&["sweep", good.to_str().unwrap(), "--backend", "cuda"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--backend cuda:"), "{err}");
    assert!(!env.results().join("store").exists());
}

/// A damaged store is refused by every command that reads it (never read as an empty one: a
/// sweep would redo everything), with the way back; importing the sweep's snapshot repairs it,
/// after which the sweep has nothing left to do.
#[test]
fn a_damaged_store_is_refused_and_repaired_from_its_snapshot() {
    let env = Env::new();
    let script = repo().join("experiments/selftest.rhai");
    let script = script.to_str().unwrap();
    let out = env.ok(&["sweep", script, "--jobs", "2"]);
    assert!(out.contains("24 succeeded, 4 failed"), "{out}");
    let store = env.results().join("store");
    // sled's log lost (a bad copy): sled alone reopens it as an empty store.
    std::fs::remove_file(store.join("db")).unwrap();
    for args in [
        vec!["runs"],
        vec!["sweep", script, "--dry-run"],
        vec!["report", "selftest"],
    ] {
        let o = env.run(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} read a damaged store");
        assert!(
            err.contains(&format!("the run store at {} is damaged", store.display()))
                && err.contains("it holds 0 runs")
                && err.contains("but held 28 runs (24 done) in 1 sweeps")
                && err.contains("store.snapshot.jsonl"),
            "{args:?}: {err}"
        );
    }
    let snapshot = env.results().join("store.snapshot.jsonl");
    env.ok(&["import", snapshot.to_str().unwrap()]);
    assert_eq!(env.runs().len(), 28);
    check_selftest(&env);
    let plan = env.ok(&["sweep", script, "--dry-run"]);
    assert!(plan.contains("28 runs: 4 failed, 24 done"), "{plan}");
    let out = env.ok(&["sweep", script]);
    assert!(out.contains("0 succeeded, 0 failed"), "{out}");
    t4v_fault::record(
        "Damaged files",
        "run store's sled log deleted (a bad copy), read by runs, sweep --dry-run, report",
        3,
        "each refused naming the store, its 0 runs against the 28 it held and the snapshot; an import restored all 28, nothing rerun",
    );
}

/// Waits until `n` run folders exist (their workers are being started), then a moment more.
fn wait_for_run_folders(env: &Env, n: usize) {
    let runs = env.results().join("runs");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::fs::read_dir(&runs).map_or(0, |d| d.count()) < n {
        assert!(std::time::Instant::now() < deadline, "no run started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
}

/// SIGINT (Ctrl-C) and SIGTERM stop a sweep: its running attempts are stopped and recorded
/// interrupted (the runs pending again, their workers gone), it exits 128 + the signal; a
/// second signal ends it at once, and the next sweep recovers what it left running.
#[test]
fn sigint_and_sigterm_stop_a_sweep_and_record_its_runs_interrupted() {
    let body = r#"let s = sweep("slow");
        s.seeds([0, 1, 2]);
        s.add(#{ kind: "selftest", params: #{ sleep_ms: 60000 } });"#;
    // A sweep of 3 slow runs, 2 of them started.
    let start = || {
        let env = Env::new();
        let script = env.script("slow.rhai", body);
        let child = env
            .cmd(&["sweep", script.to_str().unwrap(), "--jobs", "2"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_run_folders(&env, 2);
        (env, script, child)
    };
    for (sig, name, code) in [
        (libc::SIGINT, "SIGINT", 130),
        (libc::SIGTERM, "SIGTERM", 143),
    ] {
        let (env, _, child) = start();
        unsafe { libc::kill(child.id() as i32, sig) };
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{name}: {err}");
        assert!(
            err.contains(&format!("{name}: stopping 2 running run(s)")),
            "{name}: {err}"
        );
        let runs = env.runs();
        assert_eq!(runs.len(), 3);
        assert!(runs.iter().all(|r| r["status"] == "pending"), "{runs:?}");
        let tried: Vec<&Value> = runs
            .iter()
            .filter(|r| !r["attempts"].as_array().unwrap().is_empty())
            .collect();
        assert_eq!(tried.len(), 2);
        for r in tried {
            let a = &r["attempts"][0];
            assert_eq!(a["outcome"], "interrupted", "{r}");
            assert_eq!(a["reason"], format!("stopped by {name}"), "{r}");
            let pid = a["pid"].as_i64().unwrap() as i32;
            // The worker is gone (a zombie is reaped by init, or it is no process at all).
            assert!(
                unsafe { libc::kill(pid, 0) } != 0
                    || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                        .is_ok_and(|s| s.contains(") Z ")),
                "worker {pid} still runs"
            );
        }
    }

    // Twice: the coordinator ends at once, recording nothing; the next sweep recovers the runs.
    let (env, script, child) = start();
    // (Two SIGINTs sent at once may merge into one pending signal; SIGTERM after it does not.)
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let o = child.wait_with_output().unwrap();
    // 128 + whichever of the two was handled second.
    assert!(matches!(o.status.code(), Some(130 | 143)), "{:?}", o.status);
    let running = env
        .runs()
        .iter()
        .filter(|r| r["status"] == "running")
        .count();
    assert_eq!(running, 2, "the second Ctrl-C left its runs as they were");
    let o = env.run(&["sweep", script.to_str().unwrap(), "--dry-run"]);
    let plan =
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(plan.contains("2 interrupted"), "{plan}");
    t4v_fault::record(
        "Signals",
        "SIGINT, SIGTERM, then SIGINT + SIGTERM at once, of a sweep with 2 runs in flight",
        3,
        "exit 130 / 143, in-flight runs stopped and recorded interrupted, their workers gone; a second signal ends the sweep at once and the next one recovers its runs",
    );
}
