//! Fault-injection points, as SQLite's test builds have: a named place in the code (the middle
//! of a checkpoint or cache write) where a process can be made to die by SIGKILL — the real
//! signal, at a moment no outside timer can hit reliably. Inert unless `T4V_FAULT` names the
//! point; the reliability tests set it.
//!
//! `T4V_FAULT=<point>@<marker>`: the first process of any to reach `<point>` creates the file
//! `<marker>` and kills itself; later processes (the re-attempt) find the marker and go on. A
//! point is reached every time its code runs; `<point>#<n>` fires at its `n`-th reach in a
//! process (1-based).
//!
//! The reliability tests also record here what they did and what held ([`record`], [`tally`]),
//! which `cargo xtask reliability` turns into RELIABILITY.md.

use std::sync::Mutex;

/// Where the reliability tests can kill a worker.
pub const POINTS: &[(&str, &str)] = &[
    (
        "checkpoint.partial",
        "a checkpoint's temporary folder holds the weights but not yet the optimiser state and checksums",
    ),
    (
        "checkpoint.swap",
        "the previous checkpoint is renamed aside and the new one not yet in its place",
    ),
    (
        "cache.partial",
        "a feature cache is written under its temporary name, not yet renamed",
    ),
];

static REACHED: Mutex<Vec<(String, usize)>> = Mutex::new(Vec::new());

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

/// Marks a fault-injection point: kills this process with SIGKILL when `T4V_FAULT` names it.
pub fn point(name: &str) {
    let Ok(spec) = std::env::var("T4V_FAULT") else {
        return;
    };
    let Some((target, marker)) = spec.split_once('@') else {
        return;
    };
    let (target, nth) = match target.split_once('#') {
        Some((t, n)) => (t, n.parse::<usize>().unwrap_or(1)),
        None => (target, 1),
    };
    if target != name {
        return;
    }
    let count = {
        let mut reached = REACHED.lock().unwrap_or_else(|e| e.into_inner());
        match reached.iter_mut().find(|(n, _)| n == name) {
            Some((_, c)) => {
                *c += 1;
                *c
            }
            None => {
                reached.push((name.to_string(), 1));
                1
            }
        }
    };
    if count != nth {
        return;
    }
    // Whoever creates the marker dies; the file says who and where.
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(marker)
        .and_then(|mut f| {
            use std::io::Write;
            writeln!(f, "{name} #{count} pid {}", std::process::id())?;
            f.sync_all()
        });
    if created.is_ok() {
        eprintln!("fault injection: SIGKILL at {name} (reach {count})");
        // SAFETY: kill(2) on our own pid; nothing is borrowed.
        unsafe {
            kill(std::process::id() as i32, 9);
        }
    }
}

/// Appends a reliability test's figures to the file `T4V_RELIABILITY` names, when set (one JSON
/// line: the fault or input class, the case, its trials and what held in them);
/// `cargo xtask reliability` runs the suite with it and writes RELIABILITY.md from the lines.
/// A test records once its assertions have passed, so a line is a pass.
pub fn record(class: &str, case: &str, trials: u64, held: &str) {
    let Ok(path) = std::env::var("T4V_RELIABILITY") else {
        return;
    };
    let line = serde_json::json!({ "class": class, "case": case, "trials": trials, "held": held });
    let r = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| {
            use std::io::Write;
            // One write of one line: concurrent tests' lines do not interleave.
            f.write_all(format!("{line}\n").as_bytes())
        });
    if let Err(e) = r {
        eprintln!("T4V_RELIABILITY {path}: {e}");
    }
}

static TALLIES: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());

/// Counts a passing case of a property test and records the test (see [`record`]) when the
/// `cases`-th one passes — which happens only when every case did.
pub fn tally(class: &str, case: &str, cases: u32, held: &str) {
    let n = {
        let mut t = TALLIES.lock().unwrap_or_else(|e| e.into_inner());
        let key = format!("{class}\u{1f}{case}");
        match t.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                t.push((key, 1));
                1
            }
        }
    };
    if n == u64::from(cases) {
        record(class, case, n, held);
    }
}

/// The number of cases of a property test: `PROPTEST_CASES` when set (a longer soak), else
/// `default`. (`ProptestConfig::with_cases` alone ignores the variable.)
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_point_not_named_is_inert() {
        // The variable is not set in unit tests; reaching a point returns.
        super::point("checkpoint.partial");
        assert!(super::POINTS.iter().any(|(n, _)| *n == "cache.partial"));
    }
}
