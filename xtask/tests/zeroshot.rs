//! A `features` run feeding a `zero-shot` run (needs), on the synthetic world with a tiny
//! full-vocabulary CLIP: the metrics are reported and consistent, and the half-class protocol
//! gives one top-1 per draw.

use std::process::Command;

mod common;
use common::model_dir;

#[test]
fn zero_shot_on_cached_features() {
    let d = tempfile::tempdir().unwrap();
    let model = model_dir(d.path());
    let script = d.path().join("z.rhai");
    std::fs::write(
        &script,
        format!(
            r#"let s = sweep("z");
            let base = #{{ model: #{{ backbone: "{}", frames: 3, input_size: 32 }}, data: #{{ dataset: "synthetic" }} }};
            let f = base; f.kind = "features"; f.params = #{{ split: "test", per_class: 2 }};
            let feats = s.add(f);
            let z = base; z.kind = "zero-shot"; z.params = #{{ half_class_draws: 10 }}; z.needs = #{{ features: feats }};
            s.add(z);"#,
            model.display()
        ),
    )
    .unwrap();
    let results = d.path().join("results");
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("--results")
        .arg(&results)
        .arg("sweep")
        .arg(&script)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && err.contains("2 succeeded, 0 failed"),
        "{err}"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("--results")
        .arg(&results)
        .args(["runs", "--json"])
        .output()
        .unwrap();
    let runs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let z = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "zero-shot")
        .unwrap();
    let m = &z["metrics"];
    let (t1, t5, mca) = (
        m["test/top1"].as_f64().unwrap(),
        m["test/top5"].as_f64().unwrap(),
        m["test/mean_class_acc"].as_f64().unwrap(),
    );
    assert!(
        (0.0..=100.0).contains(&t1) && t5 >= t1 && t5 <= 100.0,
        "{m}"
    );
    assert!(
        (mca - t1).abs() < 1e-9,
        "balanced classes: mean class accuracy = top-1 ({m})"
    );
    assert!(m["half/top1_mean"].is_number() && m["half/top1_std"].as_f64().unwrap() >= 0.0);
    let show = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("--results")
        .arg(&results)
        .args(["show", z["id"].as_str().unwrap(), "--json"])
        .output()
        .unwrap();
    let show: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    let half = show["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["split"] == "half")
        .unwrap();
    assert_eq!(half["steps"].as_array().unwrap().len(), 10);
}
