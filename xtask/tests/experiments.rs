//! Every sweep script in `experiments/` plans (`--dry-run`) on a machine without the datasets,
//! and the paper's scripts, run without their data, fail with a clear "dataset ... not found"
//! and nothing else.

use std::path::{Path, PathBuf};
use std::process::Command;

fn scripts() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
        .collect();
    v.sort();
    v
}

fn xtask(results: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("--results")
        .arg(results)
        .args(args)
        .env("T4V_DATA", "/nonexistent-t4v-data")
        .env("HF_HUB_OFFLINE", "1")
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

#[test]
fn every_script_plans_without_data() {
    let d = tempfile::tempdir().unwrap();
    let all = scripts();
    assert!(all.len() >= 8, "{all:?}");
    for s in &all {
        let o = xtask(d.path(), &["sweep", s.to_str().unwrap(), "--dry-run"]);
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.status.success(), "{}: {out}", s.display());
        assert!(out.contains(" new "), "{}: {out}", s.display());
    }
    assert!(!d.path().join("store").exists(), "--dry-run stores nothing");
}

#[test]
fn a_paper_script_without_its_data_says_where_it_looked() {
    let d = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/temporal_head.rhai");
    let o = xtask(d.path(), &["sweep", script.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("0 succeeded, 4 failed"), "{err}");
    let reasons: Vec<&str> = err
        .lines()
        .filter(|l| l.trim_start().starts_with("failed "))
        .collect();
    assert_eq!(reasons.len(), 4, "{err}");
    for r in reasons {
        assert!(
            r.ends_with("dataset k400 not found at /nonexistent-t4v-data/k400"),
            "{r}"
        );
    }
}
