//! A damaged store is detected, never read as a smaller one: seeded trials flip or cut bytes
//! anywhere in a store's files (sled's log, config and snapshots, and the census beside them),
//! then open it. Each trial must read back exactly the runs it held, or stop with an error that
//! names the store; none may read fewer runs or fewer finished ones (a sweep would redo them).
//! `T4V_FAULT_TRIALS` sets the trial count (default 120; a soak is a bigger number).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::json;
use t4v_core::{Provenance, RunId};
use t4v_store::{Attempt, AttemptOutcome, RunStatus, Store, StoreError, SweepRecord};

/// A small seeded generator (xorshift64*): the trials are the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn id(n: usize) -> RunId {
    format!("{n:016x}").parse().unwrap()
}

/// A store of 40 runs in two sweeps: 24 done (with a metric series), 8 failed, 8 pending.
fn build(dir: &Path) -> BTreeMap<String, RunStatus> {
    let store = Store::open(dir).unwrap();
    for (name, range) in [("a", 0..20), ("b", 20..40)] {
        let runs: Vec<RunId> = range.clone().map(id).collect();
        let entries: Vec<_> = range
            .map(|n| {
                let spec = json!({"kind": "selftest", "params": {"epochs": n}});
                (id(n), spec.clone(), spec, id(1000 + n))
            })
            .collect();
        store
            .register_sweep(
                SweepRecord {
                    name: name.into(),
                    script_path: format!("{name}.rhai"),
                    script: String::new(),
                    script_hash: "h".into(),
                    runs,
                    reports: vec![],
                    created_ms: 0,
                    updated_ms: 0,
                    revision: 1,
                },
                &entries,
            )
            .unwrap();
    }
    for n in 0..32 {
        let a = store
            .claim(&id(n), "test", Attempt::starting(Provenance::default()))
            .unwrap();
        for step in 0..20 {
            store
                .append_metric(&id(n), "train", "loss", step, 1.0 / (step + 1) as f64)
                .unwrap();
        }
        let outcome = if n < 24 {
            AttemptOutcome::Succeeded
        } else {
            AttemptOutcome::Failed
        };
        store
            .finish(&id(n), a, outcome, None, Some("x".into()), vec![])
            .unwrap();
    }
    statuses(&store)
}

fn statuses(store: &Store) -> BTreeMap<String, RunStatus> {
    store
        .runs()
        .unwrap()
        .into_iter()
        .map(|r| (r.id.to_string(), r.status))
        .collect()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let (p, q) = (e.path(), to.join(e.file_name()));
        if p.is_dir() {
            copy(&p, &q);
        } else {
            std::fs::copy(&p, &q).unwrap();
        }
    }
}

#[derive(Debug, Default)]
struct Tally {
    same: usize,
    named: usize,
}

#[test]
fn flipped_or_cut_bytes_are_read_as_before_or_named_never_as_fewer_runs() {
    let d = tempfile::tempdir().unwrap();
    let pristine = d.path().join("pristine");
    let want = build(&pristine);
    assert_eq!(want.values().filter(|s| **s == RunStatus::Done).count(), 24);
    let names: Vec<PathBuf> = files(&pristine)
        .into_iter()
        .map(|p| p.strip_prefix(&pristine).unwrap().to_path_buf())
        .collect();
    assert!(
        names.iter().any(|n| n.ends_with("census.json")),
        "{names:?}"
    );
    let trials: usize = std::env::var("T4V_FAULT_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    let mut rng = Rng(0x05ee_d0ff_a017);
    let mut tally: BTreeMap<String, Tally> = BTreeMap::new();
    for t in 0..trials {
        let dir = d.path().join(format!("trial-{t}"));
        copy(&pristine, &dir);
        let name = &names[rng.below(names.len() as u64) as usize];
        let file = dir.join(name);
        let mut bytes = std::fs::read(&file).unwrap();
        let cut = rng.below(3) == 0;
        let what = if cut {
            let keep = rng.below(bytes.len() as u64) as usize;
            bytes.truncate(keep);
            format!("cut to {keep} bytes")
        } else {
            let n = 1 + rng.below(8) as usize;
            for _ in 0..n {
                if bytes.is_empty() {
                    break;
                }
                let i = rng.below(bytes.len() as u64) as usize;
                bytes[i] ^= 1 << rng.below(8);
            }
            format!("{n} bits flipped")
        };
        std::fs::write(&file, &bytes).unwrap();
        let kind = format!("{} {}", name.display(), if cut { "cut" } else { "flip" });
        let outcome = std::panic::catch_unwind(|| match Store::open(&dir) {
            Ok(store) => store.runs().map(|r| {
                r.into_iter()
                    .map(|r| (r.id.to_string(), r.status))
                    .collect::<BTreeMap<_, _>>()
            }),
            Err(e) => Err(e),
        });
        let entry = tally.entry(kind).or_default();
        match outcome {
            Err(_) => panic!("trial {t}: {} {what}: opening panicked", name.display()),
            Ok(Ok(got)) => {
                assert_eq!(
                    got,
                    want,
                    "trial {t}: {} {what}: read other runs without an error",
                    name.display()
                );
                entry.same += 1;
            }
            Ok(Err(e)) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(&dir.display().to_string())
                        || matches!(e, StoreError::Corrupt { .. } | StoreError::Sled(_)),
                    "trial {t}: {} {what}: an error that does not name the store: {msg}",
                    name.display()
                );
                if let StoreError::Damaged {
                    found, expected, ..
                } = &e
                {
                    assert_ne!(found, expected);
                }
                entry.named += 1;
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    // The counts per file and fault, for RELIABILITY.md.
    for (kind, t) in &tally {
        println!(
            "store fault {kind}: {} read as before, {} named",
            t.same, t.named
        );
    }
    let named: usize = tally.values().map(|t| t.named).sum();
    assert!(named > 0, "no trial damaged anything: {tally:?}");
    for (kind, t) in &tally {
        let (file, how) = kind.rsplit_once(' ').expect("`<file> <cut|flip>`");
        let what = if how == "cut" {
            "cut short"
        } else {
            "1–8 bits flipped"
        };
        t4v_fault::record(
            "Damaged files",
            &format!("run store: {file} {what}"),
            (t.same + t.named) as u64,
            &format!(
                "{} read the same 40 runs, {} stopped with an error naming the store; none read fewer runs or panicked",
                t.same, t.named
            ),
        );
    }
}

/// A damaged store is repaired by importing an export: the census is counted afresh.
#[test]
fn a_damaged_store_is_refused_then_repaired_by_an_import() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("store");
    let want = build(&dir);
    let mut export = Vec::new();
    Store::open(&dir)
        .unwrap()
        .export_jsonl(&mut export)
        .unwrap();
    // The log lost: sled reopens it as an empty store.
    for f in files(&dir) {
        if !f.ends_with("census.json") {
            std::fs::remove_file(f).unwrap();
        }
    }
    let err = Store::open(&dir).err().expect("a damaged store is refused");
    let msg = err.to_string();
    assert!(
        matches!(err, StoreError::Damaged { .. })
            && msg.contains(&dir.display().to_string())
            && msg.contains("it holds 0 runs (0 done) in 0 sweeps, states 00000000, but held 40 runs (24 done) in 2 sweeps")
            && msg.contains("cargo xtask import"),
        "{msg}"
    );
    let store = Store::open_to_repair(&dir).unwrap();
    store
        .import_jsonl(std::io::BufReader::new(&export[..]))
        .unwrap();
    drop(store);
    let store = Store::open(&dir).unwrap();
    assert_eq!(statuses(&store), want);
    t4v_fault::record(
        "Damaged files",
        "run store: every file but its census lost",
        1,
        "refused as damaged (0 runs found, 40 held), naming `cargo xtask import`; the import restored every run",
    );
}
