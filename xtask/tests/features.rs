//! The `features` run kind through a sweep: frozen CLIP features of the synthetic world land in
//! the feature cache, and a second run with the same determinants reuses them.

use std::path::Path;
use std::process::Command;

fn sweep(results: &Path, script: &Path) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("--results")
        .arg(results)
        .arg("sweep")
        .arg(script)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{text}");
    text
}

#[test]
fn features_of_the_synthetic_world_are_cached() {
    let d = tempfile::tempdir().unwrap();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/clip/fixtures/tiny-a");
    let body = |batch: u32| {
        format!(
            r#"let s = sweep("f");
            s.seeds([3]);
            s.add(#{{ kind: "features", model: #{{ backbone: "{}", frames: 4, input_size: 32 }},
                     data: #{{ dataset: "synthetic" }}, params: #{{ split: "test", per_class: 2, batch: {batch} }} }});"#,
            model.display()
        )
    };
    let script = d.path().join("f.rhai");
    std::fs::write(&script, body(16)).unwrap();
    let out = sweep(&d.path().join("results"), &script);
    assert!(out.contains("1 succeeded, 0 failed"), "{out}");
    let cache: Vec<_> = std::fs::read_dir(d.path().join("results/cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(cache.len(), 1);
    let bytes = std::fs::read(&cache[0]).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("features").unwrap().shape(), &[96, 4, 16]);
    assert_eq!(st.tensor("labels").unwrap().shape(), &[96]);

    // Another run (different batch size: another id) with the same determinants: a cache hit.
    std::fs::write(&script, body(5)).unwrap();
    let out = sweep(&d.path().join("results"), &script);
    assert!(out.contains("1 succeeded, 0 failed"), "{out}");
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("--results")
        .arg(d.path().join("results"))
        .args(["runs", "--json"])
        .output()
        .unwrap();
    let runs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 2);
    for r in runs.as_array().unwrap() {
        assert_eq!(r["metrics"]["features/videos"], 96.0);
        assert_eq!(
            r["artefacts"]["features"].as_str().unwrap(),
            cache[0].to_str().unwrap()
        );
    }
    assert_eq!(
        std::fs::read_dir(d.path().join("results/cache"))
            .unwrap()
            .count(),
        1
    );
    let logs: Vec<String> = std::fs::read_dir(d.path().join("results/runs"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path().join("attempt-1.stderr.log")).unwrap())
        .collect();
    assert_eq!(
        logs.iter()
            .filter(|l| l.contains("[log] feature cache hit: 96 videos"))
            .count(),
        1,
        "{logs:?}"
    );
}
