//! `reliability`: runs the fault-injection and hostile-input tests with `T4V_RELIABILITY` set,
//! so each records its figures as it passes (`t4v_fault::record`), and writes
//! RELIABILITY.md from those lines alone — no figure is typed by hand. `--trials N` makes it a
//! longer soak (every randomised test at N trials or cases).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The tests that record figures: a test target of every workspace package that has one
/// (`lib`: the unit tests), and name filters.
const SUITE: &[(&str, &[&str])] = &[
    ("faults", &[]),
    ("props", &[]),
    ("script", &["run_limit"]),
    ("sweep", &["killed_coordinator", "damaged_store", "sigint"]),
    ("slurm", &["sigint"]),
    ("train", &["resume", "damaged", "killed"]),
    ("lib", &["cache::"]),
];

/// The variables that set the randomised tests' trial counts.
const TRIAL_VARS: &[&str] = &["PROPTEST_CASES", "T4V_FAULT_KILLS", "T4V_FAULT_TRIALS"];

/// Order of the classes in the file.
const CLASSES: &[&str] = &[
    "Process killed (SIGKILL)",
    "Signals",
    "Disk full",
    "Damaged files",
    "Hostile input",
    "Oversized sweeps",
];

#[derive(serde::Deserialize)]
struct Line {
    class: String,
    case: String,
    trials: u64,
    held: String,
}

pub fn run(trials: Option<u64>, out: &Path) -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf();
    let lines = std::env::temp_dir().join(format!("t4v-reliability-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&lines);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let started = std::time::Instant::now();
    for (target, filters) in SUITE {
        // The README's features, so the test command's build serves.
        let mut c = Command::new(&cargo);
        c.current_dir(&root).args([
            "test",
            "--workspace",
            "--locked",
            "--features",
            "xtask/video",
        ]);
        if *target == "lib" {
            c.arg("--lib");
        } else {
            c.args(["--test", target]);
        }
        c.arg("--").args(*filters).env("T4V_RELIABILITY", &lines);
        for v in TRIAL_VARS {
            match trials {
                Some(n) => c.env(v, n.to_string()),
                None => c.env_remove(v),
            };
        }
        eprintln!("reliability: tests `{target}` {}", filters.join(" "));
        let status = c
            .status()
            .with_context(|| format!("running {cargo} test"))?;
        if !status.success() {
            bail!(
                "tests `{target}` failed ({status}); {} is left as it was",
                out.display()
            );
        }
    }
    let text = std::fs::read_to_string(&lines).unwrap_or_default();
    let _ = std::fs::remove_file(&lines);
    let mut by_class: BTreeMap<usize, Vec<Line>> = BTreeMap::new();
    for (n, l) in text.lines().enumerate() {
        let line: Line = serde_json::from_str(l)
            .with_context(|| format!("{}:{}: a record", lines.display(), n + 1))?;
        let k = CLASSES
            .iter()
            .position(|c| *c == line.class)
            .unwrap_or(CLASSES.len());
        by_class.entry(k).or_default().push(line);
    }
    if by_class.is_empty() {
        bail!("the tests recorded nothing (is T4V_RELIABILITY reaching them?)");
    }
    let md = markdown(&root, trials, started.elapsed().as_secs(), &mut by_class);
    std::fs::write(out, md).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("reliability: wrote {}", out.display());
    Ok(())
}

fn markdown(
    root: &Path,
    trials: Option<u64>,
    secs: u64,
    by_class: &mut BTreeMap<usize, Vec<Line>>,
) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .current_dir(root)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]);
    let dirty = !git(&["status", "--porcelain", "--untracked-files=no"]).is_empty();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    // The subcommand as run (`cargo xtask …` or a debug build's `cargo run -p xtask …`).
    let command = match trials {
        Some(n) => format!("xtask reliability --trials {n}"),
        None => "xtask reliability".to_string(),
    };
    let mut s = String::new();
    s.push_str("# Reliability\n\n");
    s.push_str(&format!(
        "What the fault-injection and hostile-input tests did and what held, as they recorded it \
         when they passed. Made by `{command}` on {date} at commit {commit}{}, {cpu} ({cores} \
         cores), in {} min; every test of the list in `xtask/src/reliability.rs` passed. Trial \
         counts are {}; a longer soak is `cargo xtask reliability --trials N`.\n\n",
        if dirty {
            " (with uncommitted changes)"
        } else {
            ""
        },
        secs.div_ceil(60),
        match trials {
            Some(n) => format!("{n} for every randomised test"),
            None => "the suite's defaults (those CI runs)".to_string(),
        }
    ));
    let mut total = 0;
    for (k, lines) in by_class.iter_mut() {
        lines.sort_by(|a, b| a.case.cmp(&b.case));
        let class = CLASSES.get(*k).copied().unwrap_or("Other");
        s.push_str(&format!(
            "## {class}\n\n| Fault or input | Trials | What held |\n|---|---:|---|\n"
        ));
        for l in lines.iter() {
            total += l.trials;
            s.push_str(&format!(
                "| {} | {} | {} |\n",
                l.case.replace('|', "\\|"),
                l.trials,
                l.held.replace('|', "\\|")
            ));
        }
        s.push('\n');
    }
    s.push_str(&format!(
        "{total} trials in all. Fault points a worker can be killed at (`T4V_FAULT`): {}.\n",
        t4v_fault::POINTS
            .iter()
            .map(|(n, what)| format!("`{n}` ({what})"))
            .collect::<Vec<_>>()
            .join("; ")
    ));
    s
}

/// Where the file goes by default: the workspace root.
pub fn default_out() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .join("RELIABILITY.md")
}
