//! Read-only commands: `runs`, `show`, `plugins`, `export` — and the store as they, and
//! `report`, read it (from the snapshot while a sweep holds it).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use t4v_core::{Family, Registry};
use t4v_store::{RunRecord, RunStatus, Store};

use crate::sweep_cmd::store_dir;

/// The store as the read-only commands see it: the store itself, or — while a sweep's
/// coordinator holds it — a copy read from the snapshot that coordinator keeps beside it.
pub struct ReadStore {
    store: Store,
    _copy: Option<tempfile::TempDir>,
}

impl std::ops::Deref for ReadStore {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

/// Where a coordinator keeps its snapshot of the store.
pub fn snapshot_path(results: &Path) -> std::path::PathBuf {
    results.join("store.snapshot.jsonl")
}

/// Opens the store for `what` (`runs`, `report`, ...): the store, synchronised with Slurm; when
/// a running sweep holds it, its latest snapshot, said on stderr with its age.
pub fn open(results: &Path, what: &str) -> Result<ReadStore> {
    let dir = store_dir(results);
    if !dir.exists() {
        bail!(
            "no run store at {} (run a sweep first, or pass --results)",
            dir.display()
        );
    }
    match Store::open(&dir) {
        Ok(store) => {
            crate::sweep_cmd::sync_slurm_or_warn(&store, results);
            Ok(ReadStore { store, _copy: None })
        }
        Err(t4v_store::StoreError::Locked { .. }) => {
            let snap = snapshot_path(results);
            let age = std::fs::metadata(&snap)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok());
            let Some(age) = age else {
                bail!(
                    "a sweep is running and holds the store {}, and has written no snapshot yet ({})",
                    dir.display(),
                    snap.display()
                );
            };
            eprintln!(
                "a sweep is running and holds the store: {what} from its snapshot {} ({:.0} s old)",
                snap.display(),
                age.as_secs_f64()
            );
            let file = std::fs::File::open(&snap)
                .with_context(|| format!("reading {}", snap.display()))?;
            let tmp = tempfile::tempdir()?;
            let store = Store::open(tmp.path())?;
            store
                .import_jsonl(std::io::BufReader::new(file))
                .with_context(|| format!("reading {}", snap.display()))?;
            Ok(ReadStore {
                store,
                _copy: Some(tmp),
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// `cancel <sweep>`: its runs at Slurm cancelled and recorded interrupted.
pub fn cancel(results: &Path, sweep: &str) -> Result<()> {
    let store = match Store::open(&store_dir(results)) {
        Err(t4v_store::StoreError::Locked { path }) => bail!(
            "a coordinator holds the store {}: stop it (Ctrl-C; its tasks stay at Slurm), \
             then cancel",
            path.display()
        ),
        r => r?,
    };
    let record = store
        .sweep(sweep)?
        .with_context(|| format!("no sweep `{sweep}` in the store"))?;
    let runs: std::collections::HashSet<_> = record.runs.iter().cloned().collect();
    let cancelled = t4v_sweep::slurm::cancel(&store, &std::path::absolute(results)?, &runs)?;
    println!(
        "cancelled {} run(s) of sweep `{sweep}` at Slurm; they are pending again",
        cancelled.len()
    );
    for id in cancelled {
        println!("  {id}");
    }
    Ok(())
}

/// The JSON form of a run for `runs --json` and `show --json`.
pub fn run_json(store: &Store, r: &RunRecord) -> Result<Value> {
    let attempts = store.attempts(&r.id)?;
    Ok(json!({
        "id": r.id,
        "setting": r.setting,
        "kind": r.kind,
        "status": r.status,
        "reason": r.reason,
        "sweeps": r.sweeps,
        "spec": r.spec,
        "canonical": r.canonical,
        "attempts": attempts,
        "metrics": r.summary,
        "artefacts": r.artefacts,
        "created_ms": r.created_ms,
        "updated_ms": r.updated_ms,
    }))
}

fn select(store: &Store, sweep: Option<&str>, status: Option<RunStatus>) -> Result<Vec<RunRecord>> {
    let mut runs = match sweep {
        Some(name) => {
            let s = store
                .sweep(name)?
                .with_context(|| format!("no sweep `{name}` in the store"))?;
            s.runs
                .iter()
                .filter_map(|id| store.run(id).transpose())
                .collect::<Result<Vec<_>, _>>()?
        }
        None => store.runs()?,
    };
    if let Some(st) = status {
        runs.retain(|r| r.status == st);
    }
    Ok(runs)
}

pub fn runs(
    results: &Path,
    sweep: Option<&str>,
    status: Option<RunStatus>,
    json: bool,
) -> Result<()> {
    let store = open(results, "listing runs")?;
    let runs = select(&store, sweep, status)?;
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    if json {
        write!(out, "[")?;
        for (i, r) in runs.iter().enumerate() {
            if i > 0 {
                write!(out, ",")?;
            }
            serde_json::to_writer(&mut out, &run_json(&store, r)?)?;
        }
        writeln!(out, "]")?;
        return Ok(out.flush()?);
    }
    writeln!(
        out,
        "{:<16}  {:<8} {:>3}  {:<9} {:<40} metrics",
        "id", "status", "try", "kind", "spec"
    )?;
    for r in &runs {
        let mut parts = Vec::new();
        t4v_sweep::script::flatten("", &r.canonical, &mut parts);
        let spec: Vec<String> = parts
            .into_iter()
            .filter(|(k, _)| k != "kind")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let metrics: Vec<String> = r
            .summary
            .iter()
            .map(|(k, v)| format!("{k}={v:.4}"))
            .collect();
        writeln!(
            out,
            "{:<16}  {:<8} {:>3}  {:<9} {:<40} {}",
            r.id,
            r.status,
            r.attempts,
            r.kind,
            spec.join(" "),
            metrics.join(" ")
        )?;
        if let (RunStatus::Failed, Some(reason)) = (r.status, &r.reason) {
            writeln!(out, "{:<16}  ↳ {reason}", "")?;
        }
    }
    let count = |s: RunStatus| runs.iter().filter(|r| r.status == s).count();
    writeln!(
        out,
        "{} runs: {} done, {} failed, {} pending, {} running",
        runs.len(),
        count(RunStatus::Done),
        count(RunStatus::Failed),
        count(RunStatus::Pending),
        count(RunStatus::Running)
    )?;
    Ok(out.flush()?)
}

pub fn show(results: &Path, run: &str, json: bool) -> Result<()> {
    let store = open(results, "showing the run")?;
    let r = store.find_run(run)?;
    let series = store.metrics(&r.id)?;
    if json {
        let mut v = run_json(&store, &r)?;
        v["series"] = series
            .iter()
            .map(|((split, name), s)| json!({"split": split, "name": name, "steps": s.steps(), "values": s.values_json()}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("run {}  ({}; setting {})", r.id, r.status, r.setting);
    println!(
        "sweeps: {}",
        r.sweeps.iter().cloned().collect::<Vec<_>>().join(", ")
    );
    if let Some(reason) = &r.reason {
        println!("reason: {reason}");
    }
    println!(
        "spec (non-default fields):\n{}",
        serde_json::to_string_pretty(&r.canonical)?
    );
    for a in store.attempts(&r.id)? {
        let took = a
            .ended_ms
            .map(|e| format!("{:.1}s", (e.saturating_sub(a.started_ms)) as f64 / 1000.0))
            .unwrap_or("-".into());
        let exit = a.exit.as_ref().map(|e| match (e.code, e.signal) {
            (Some(c), _) => format!("exit {c}"),
            (_, Some(s)) => format!("signal {s}"),
            _ => String::new(),
        });
        let slurm = a
            .job
            .as_ref()
            .map(|j| {
                format!(
                    " as Slurm job {}{}",
                    j.id.as_deref().unwrap_or("(not accepted)"),
                    a.node
                        .as_deref()
                        .map(|n| format!(" on node {n}"))
                        .unwrap_or_default()
                )
            })
            .unwrap_or_default();
        println!(
            "attempt {}: {:?} after {took} {} on {}{slurm} (git {}{}){}",
            a.n,
            a.outcome,
            exit.unwrap_or_default(),
            a.provenance.host,
            a.provenance
                .git_commit
                .as_deref()
                .map(|c| &c[..c.len().min(10)])
                .unwrap_or("-"),
            if a.provenance.git_dirty == Some(true) {
                ", dirty"
            } else {
                ""
            },
            a.reason.map(|r| format!(": {r}")).unwrap_or_default()
        );
        for l in &a.stderr_tail {
            println!("    | {l}");
        }
    }
    for ((split, name), s) in &series {
        let fmt = |p: &[(u64, f64)]| {
            p.iter()
                .map(|(st, v)| format!("{st}:{v:.4}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let p = s.points();
        // A per-step series of a long run holds tens of thousands of points: its ends (`--json`
        // has them all).
        if p.len() > 12 {
            println!(
                "series {split}/{name} ({} points): {} … {}",
                p.len(),
                fmt(&p[..4]),
                fmt(&p[p.len() - 4..])
            );
        } else {
            println!("series {split}/{name}: {}", fmt(p));
        }
    }
    for (name, path) in &r.artefacts {
        println!("artefact {name}: {path}");
    }
    Ok(())
}

pub fn plugins(registry: &Registry, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&registry.to_json())?);
        return Ok(());
    }
    for family in Family::ALL {
        let list = registry.family(family);
        println!("{}s ({}):", family.label(), family.spec_field());
        if list.is_empty() {
            println!("  (none in this build yet)");
        }
        for p in list {
            println!("  {:<12} {}", p.name, p.summary);
            let needs = registry.needs(family, p.name);
            if !needs.is_empty() {
                let what: Vec<String> = needs
                    .iter()
                    .map(|n| format!("{} ({})", n.name(), n.describe()))
                    .collect();
                println!("      needs {}", what.join("; "));
            }
            for d in p.params {
                println!(
                    "      params.{:<14} default {:<10} {}",
                    d.name, d.default, d.doc
                );
            }
        }
    }
    println!("presets (preset(\"name\") in scripts):");
    for (name, doc) in t4v_sweep::script::PRESETS {
        println!("  {name:<12} {doc}");
    }
    Ok(())
}

pub fn export(results: &Path, out: Option<&Path>) -> Result<()> {
    let store = open(results, "exporting")?;
    match out {
        Some(p) => {
            let f =
                std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?;
            let mut w = std::io::BufWriter::new(f);
            store.export_jsonl(&mut w)?;
            w.flush()?;
        }
        None => {
            let mut w = std::io::BufWriter::new(std::io::stdout().lock());
            store.export_jsonl(&mut w)?;
            w.flush()?;
        }
    }
    Ok(())
}

/// Reads an export into the store (created if there is none): runs, attempts, series and sweeps
/// replace those with the same keys. A store found damaged is opened all the same: importing
/// its latest snapshot is how it is repaired.
pub fn import(results: &Path, file: &Path) -> Result<()> {
    let dir = store_dir(results);
    let store = Store::open_to_repair(&dir)?;
    let f = std::fs::File::open(file).with_context(|| format!("reading {}", file.display()))?;
    let n = store
        .import_jsonl(std::io::BufReader::new(f))
        .with_context(|| format!("importing {}", file.display()))?;
    eprintln!("imported {n} records into {}", dir.display());
    Ok(())
}
