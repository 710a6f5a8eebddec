//! `bench`: the engine at scale. Times planning a sweep of N runs, registering it, the resume
//! check against a store that holds it, and `runs --json` over it (the command as a user runs
//! it). Prints one line per measurement.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use t4v_core::Registry;
use t4v_store::{Store, SweepRecord};
use t4v_sweep::Plan;

pub fn run(_results: &Path, n: usize, registry: &Registry) -> Result<()> {
    let side = (n as f64).sqrt().ceil() as usize;
    let script = format!(
        "let s = sweep(\"bench\");\nlet base = #{{ kind: \"selftest\" }};\n\
         let d = []; for i in 0..{side} {{ d.push(1.0 + i.to_float() / 1000.0); }}\n\
         let e = []; for i in 0..{side} {{ e.push(i + 1); }}\n\
         let all = grid(base, #{{ \"params.difficulty\": d, \"params.epochs\": e }});\n\
         s.add(all.extract(0, {n}));\n"
    );
    let tmp = tempfile::tempdir()?;
    let t = Instant::now();
    let def = t4v_sweep::script::evaluate("bench.rhai", &script, registry)?;
    let eval = t.elapsed();
    let plan = Plan::new(&def, None, false)?;
    let plan_fresh = t.elapsed();
    println!(
        "sweep of {} runs: evaluate script {:.3}s, evaluate + plan (empty store) {:.3}s",
        def.runs.len(),
        eval.as_secs_f64(),
        plan_fresh.as_secs_f64()
    );
    anyhow::ensure!(plan.to_run() == def.runs.len());

    let store_dir = tmp.path().join("store");
    let store = Store::open(&store_dir)?;
    let t = Instant::now();
    let record = SweepRecord {
        name: def.name.clone(),
        script_path: def.script_path.clone(),
        script: def.script.clone(),
        script_hash: def.script_hash.clone(),
        runs: def.runs.iter().map(|r| r.id.clone()).collect(),
        reports: vec![],
        created_ms: 0,
        updated_ms: 0,
        revision: 1,
    };
    let entries: Vec<_> = def
        .runs
        .iter()
        .map(|r| {
            (
                r.id.clone(),
                r.spec_json.clone(),
                r.canonical.clone(),
                r.setting.clone(),
            )
        })
        .collect();
    store.register_sweep(record, &entries)?;
    println!(
        "register {} runs in the store: {:.3}s",
        entries.len(),
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let def2 = t4v_sweep::script::evaluate("bench.rhai", &script, registry)?;
    store.recover_interrupted()?;
    let plan2 = Plan::new(&def2, Some(&store), false)?;
    println!(
        "resume check (evaluate + recover + plan against the store): {:.3}s — {}",
        t.elapsed().as_secs_f64(),
        plan2.summary()
    );
    drop(store);

    let exe = std::env::current_exe()?;
    let t = Instant::now();
    let out = std::process::Command::new(&exe)
        .args(["--results"])
        .arg(tmp.path())
        .args(["runs", "--json"])
        .output()
        .context("running `runs --json`")?;
    let took = t.elapsed();
    anyhow::ensure!(
        out.status.success(),
        "runs --json failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    println!(
        "`runs --json` over {} runs (whole process): {:.3}s, {:.1} MB of JSON",
        v.as_array().map(|a| a.len()).unwrap_or(0),
        took.as_secs_f64(),
        out.stdout.len() as f64 / 1e6
    );
    Ok(())
}
