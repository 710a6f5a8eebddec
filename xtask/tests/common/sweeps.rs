//! A results folder and the `xtask` binary that `cargo test` built, for the sweep tests (local
//! and Slurm executors alike).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_xtask")
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn results(&self) -> PathBuf {
        self.dir.path().join("results")
    }

    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.arg("--results")
            .arg(self.results())
            .args(args)
            .env_remove("T4V_RESULTS")
            .env("RUST_BACKTRACE", "0");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "xtask {args:?} failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap() + &String::from_utf8(o.stderr).unwrap()
    }

    pub fn runs(&self) -> Vec<Value> {
        let o = self.run(&["runs", "--json"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<Value>(&o.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    /// Waits until `n` runs have written their `result.json` (selftest), or panics after `secs`.
    pub fn wait_for_results(&self, n: usize, secs: u64) {
        let runs_dir = self.results().join("runs");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let finished = std::fs::read_dir(&runs_dir)
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .filter(|e| e.path().join("result.json").exists())
                        .count()
                })
                .unwrap_or(0);
            if finished >= n {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the sweep made no progress"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    pub fn export(&self) -> String {
        let o = self.run(&["export"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    }
}

pub fn outcome(r: &Value) -> &str {
    r["spec"]["params"]["outcome"].as_str().unwrap()
}

pub fn successes(r: &Value) -> usize {
    r["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["outcome"] == "succeeded")
        .count()
}

/// The selftest sweep's runs as they must end, whatever executed them: 24 done, the four
/// asked to fail failed with their reasons, one attempt each.
pub fn check_selftest(env: &Env) {
    let runs = env.runs();
    assert_eq!(runs.len(), 28);
    for r in &runs {
        let want_fail = outcome(r) != "succeed";
        assert_eq!(
            r["status"],
            if want_fail { "failed" } else { "done" },
            "{r}"
        );
        assert_eq!(r["sweeps"], serde_json::json!(["selftest"]));
        assert_eq!(r["attempts"].as_array().unwrap().len(), 1);
        assert!(r["metrics"]["val/top1"].is_number(), "{r}");
        let reason = r["reason"].as_str().unwrap_or("");
        match outcome(r) {
            "fail" => assert_eq!(reason, "selftest asked to fail"),
            "panic" => assert!(
                reason.contains("panicked at") && reason.contains("selftest asked to panic"),
                "{reason}"
            ),
            "abort" => assert_eq!(reason, "killed by SIGABRT (6)"),
            "nan" => assert_eq!(reason, "non-finite loss: train/loss = NaN at step 2"),
            _ => {
                assert!(r["reason"].is_null());
                assert!(r["metrics"]["test/top1"].is_number());
                assert!(Path::new(r["artefacts"]["result"].as_str().unwrap()).exists());
            }
        }
        if outcome(r) == "panic" {
            let tail = r["attempts"][0]["stderr_tail"].as_array().unwrap();
            assert!(
                tail.iter()
                    .any(|l| l.as_str().unwrap().contains("selftest asked to panic"))
            );
        }
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// kill -9.
pub fn kill9(pid: u32) {
    unsafe { libc_kill(pid as i32, 9) };
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}
