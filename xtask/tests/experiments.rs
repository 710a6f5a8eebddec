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

/// The README's first command, shrunken (`--set tiny=true`: a one-epoch pretraining of a
/// 16-wide CLIP, 2 seeds, few-shot K = 1, 2): every run kind of the quickstart, its report, and
/// the rerun that finds everything done.
#[test]
fn the_quickstart_runs_end_to_end_and_reruns_for_free() {
    let d = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/quickstart.rhai");
    let script = script.to_str().unwrap();
    let args = ["sweep", script, "--set", "tiny=true", "--jobs", "2"];
    let o = xtask(d.path(), &args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let total = err
        .lines()
        .find_map(|l| l.strip_prefix("sweep `quickstart`: "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("no plan line: {err}"));
    assert!(
        err.contains(&format!("{total} succeeded, 0 failed")),
        "{err}"
    );

    // Rerun: every run is found done, nothing is executed.
    let o = xtask(d.path(), &args);
    let again = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{again}");
    assert!(
        again.contains(&format!(
            "0 succeeded, 0 failed, 0 blocked, {total} skipped"
        )),
        "{again}"
    );

    let out = d.path().join("report");
    let o = xtask(
        d.path(),
        &["report", "quickstart", "--out", out.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in [
        "zero-shot.md",
        "init-general.md",
        "init-first-epoch.md",
        "init-few-shot.md",
        "text-vs-lda.md",
        "accuracy-vs-shots.svg",
        "learning-curves.svg",
        "pretraining.svg",
        "text-classifier-similarity.svg",
        "index.html",
    ] {
        assert!(
            out.join(f).is_file(),
            "{f} missing in {:?}",
            std::fs::read_dir(&out)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect::<Vec<_>>()
        );
    }
    let table = std::fs::read_to_string(out.join("init-general.md")).unwrap();
    for init in ["random", "orthogonal", "lda", "class-mean", "text"] {
        assert!(table.contains(init), "{table}");
    }
    // The pretrained model is a Hugging Face folder.
    let runs = d.path().join("runs");
    let model = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().path().join("model"))
        .find(|p| p.is_dir())
        .expect("a pretrain run folder with its model");
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert!(model.join(f).is_file(), "{f}");
    }
}
