//! Reports end to end: a sweep of `selftest` runs (deterministic metrics) with a failed seed,
//! tables and a comparison declared in the script, `report` writing Markdown, LaTeX and CSV that
//! must equal the golden files in `tests/golden/` byte for byte. `T4V_BLESS=1` rewrites them.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const SCRIPT: &str = r#"let s = sweep("golden");
s.seeds([0, 1, 2]);
let base = #{ kind: "selftest", params: #{ epochs: 4 } };
s.add(grid(base, #{ "params.difficulty": [1.0, 1.5, 2.0], "params.sleep_ms": [0, 1] }));
// Seed 3: every sleep_ms = 1 setting gets a fourth seed; in one sleep_ms = 0 cell it fails,
// so that cell has 3 of 4 seeds.
s.seeds([3]);
s.add(grid(base, #{ "params.difficulty": [1.0, 1.5, 2.0], "params.sleep_ms": [1] }));
s.add(#{ kind: "selftest", params: #{ epochs: 4, difficulty: 1.0, sleep_ms: 0, outcome: "fail" } });
s.table(#{ name: "main", rows: ["params.difficulty"], cols: ["params.sleep_ms"],
           metric: "val/top1", policy: "best", precision: 2 });
s.table(#{ name: "at-epoch-2", rows: ["params.difficulty"], metrics: ["val/top1", "train/loss"],
           policy: #{ epoch: 2 }, where: #{ "params.sleep_ms": 1 } });
s.compare(#{ name: "easy-vs-hard", metric: "val/top1", a: #{ "params.difficulty": 1.0 },
             b: #{ "params.difficulty": 2.0 }, by: ["params.sleep_ms"] });
s.figure(#{ name: "curves", plot: "curve", metric: "val/top1", group: ["params.difficulty"],
            where: #{ "params.sleep_ms": 1 } });
s.figure(#{ name: "bars", plot: "bars", metric: "test/top1", x: "params.difficulty",
            group: ["params.sleep_ms"] });
"#;

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

#[test]
fn a_sweep_report_matches_the_golden_files() {
    let d = tempfile::tempdir().unwrap();
    let script = d.path().join("golden.rhai");
    std::fs::write(&script, SCRIPT).unwrap();
    let xtask = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .arg("--results")
            .arg(d.path().join("results"))
            .args(args)
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap()
    };
    let o = xtask(&["sweep", script.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("21 succeeded, 1 failed"), "{err}");
    let out = d.path().join("report");
    let o = xtask(&["report", "golden", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("### main"), "{stdout}");
    let bless = std::env::var_os("T4V_BLESS").is_some();
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n != "runs.csv"
                && ![".svg", ".png", ".pdf"].iter().any(|x| n.ends_with(x))
                && n != "index.html"
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "at-epoch-2.csv",
            "at-epoch-2.md",
            "at-epoch-2.tex",
            "easy-vs-hard.csv",
            "easy-vs-hard.md",
            "easy-vs-hard.tex",
            "main.csv",
            "main.md",
            "main.tex",
            "report.md"
        ]
    );
    for n in &names {
        let got = std::fs::read_to_string(out.join(n)).unwrap();
        let want_path = golden().join(n);
        if bless {
            std::fs::create_dir_all(golden()).unwrap();
            std::fs::write(&want_path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&want_path)
            .unwrap_or_else(|e| panic!("{}: {e} (T4V_BLESS=1 writes it)", want_path.display()));
        assert_eq!(got, want, "{n} differs from {}", want_path.display());
    }
    // Figures: SVG, PNG and PDF of each; the curve SVG has one line per difficulty with a point
    // per epoch, its ± std band, and the legend.
    for f in ["curves", "bars"] {
        assert!(out.join(format!("{f}.png")).exists(), "{f}.png");
        let pdf = std::fs::read(out.join(format!("{f}.pdf"))).unwrap();
        assert!(pdf.starts_with(b"%PDF-"), "{f}.pdf");
    }
    let svg = std::fs::read_to_string(out.join("curves.svg")).unwrap();
    let lines: Vec<&str> = svg
        .split("<polyline")
        .skip(1)
        .filter(|p| p.contains("stroke-width=\"2\""))
        .collect();
    let series: Vec<usize> = lines
        .iter()
        .map(|l| {
            let pts = l
                .split("points=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            pts.split_whitespace().count()
        })
        .collect();
    // 3 curves of 4 epochs, and 3 legend strokes of 2 points.
    assert_eq!(series.iter().filter(|&&n| n == 4).count(), 3, "{series:?}");
    assert_eq!(svg.matches("<polygon").count(), 3, "one band per curve");
    for d in ["1.0", "1.5", "2.0"] {
        assert!(
            svg.contains(&format!("params.difficulty={d}")),
            "legend {d}"
        );
    }
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    for needle in [
        "<h2>main</h2>",
        "<img src=\"curves.svg\"",
        "21 done",
        "1 failed",
        "s.figure(",
        // The comparison's adjusted p-values, interval and the line naming the tests.
        "t-test p (Holm)",
        "95% CI",
        "adjusted over the 2 rows by Holm–Bonferroni",
    ] {
        assert!(html.contains(needle), "index.html lacks {needle}");
    }
    check_in_chromium(&out.join("index.html"));
    check_latex(&out, &["main.tex", "at-epoch-2.tex", "easy-vs-hard.tex"]);

    // The runs frame has one line per run with its status.
    let runs = std::fs::read_to_string(out.join("runs.csv")).unwrap();
    assert_eq!(runs.lines().count(), 23, "{runs}");
    assert_eq!(runs.matches(",failed,").count(), 1);

    // A command-line table, and a bad one named by its key.
    let o = xtask(&[
        "report",
        "golden",
        "--out",
        out.to_str().unwrap(),
        "--format",
        "md",
        "--table",
        "rows=params.sleep_ms;metric=test/top1;precision=3",
    ]);
    assert!(o.status.success());
    let md = std::fs::read_to_string(out.join("table-1.md")).unwrap();
    assert!(md.contains("| params.sleep_ms | test/top1 |"), "{md}");
    let o = xtask(&["report", "golden", "--table", "rows=a;metrik=x"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("metrik"), "{err}");
}

/// Compiles the LaTeX tables in an article with booktabs. Runs when `pdflatex` is found
/// (`T4V_PDFLATEX`, or on the PATH; `.ci/run` installs texlive-latex-recommended).
fn check_latex(dir: &Path, tables: &[&str]) {
    let tex = std::env::var_os("T4V_PDFLATEX")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join("pdflatex"))
                    .find(|p| p.exists())
            })
        });
    let Some(tex) = tex else {
        eprintln!("skipped the LaTeX check: no pdflatex (set T4V_PDFLATEX)");
        return;
    };
    let inputs: String = tables.iter().map(|t| format!("\\input{{{t}}}\n")).collect();
    std::fs::write(
        dir.join("doc.tex"),
        format!(
            "\\documentclass{{article}}\n\\usepackage[T1]{{fontenc}}\n\\usepackage{{booktabs}}\n\\begin{{document}}\n{inputs}\\end{{document}}\n"
        ),
    )
    .unwrap();
    let o = Command::new(tex)
        .current_dir(dir)
        .args(["-interaction=nonstopmode", "-halt-on-error", "doc.tex"])
        .output()
        .unwrap();
    assert!(
        o.status.success() && dir.join("doc.pdf").exists(),
        "pdflatex failed:\n{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

/// Renders the page in headless Chromium and checks the screenshot is not blank. Runs when a
/// Chromium is found (`T4V_CHROMIUM`, or `chromium` on the PATH; `.ci/run` installs it).
fn check_in_chromium(page: &Path) {
    let browser = std::env::var_os("T4V_CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join("chromium"))
                    .find(|p| p.exists())
            })
        });
    let Some(browser) = browser else {
        eprintln!("skipped the Chromium check: no chromium (set T4V_CHROMIUM)");
        return;
    };
    let shot = page.with_file_name("screenshot.png");
    let o = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1000,2400",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        shot.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let img = image::open(&shot).unwrap().to_rgb8();
    // Text, tables and the figures make many non-white pixels and several colours.
    let dark = img
        .pixels()
        .filter(|p| p.0.iter().all(|c| *c < 128))
        .count();
    let coloured = img
        .pixels()
        .filter(|p| p.0.iter().max().unwrap() - p.0.iter().min().unwrap() > 80)
        .count();
    assert!(
        dark > 2_000 && coloured > 2_000,
        "the page looks blank: {dark} dark, {coloured} coloured pixels"
    );
}

#[test]
fn a_bad_declaration_stops_the_sweep_before_anything_is_stored() {
    let d = tempfile::tempdir().unwrap();
    let script = d.path().join("bad.rhai");
    std::fs::write(
        &script,
        "let s = sweep(\"bad\");\ns.add(#{ kind: \"selftest\" });\ns.table(#{ name: \"t\", rowz: [\"a\"], metric: \"x\" });\n",
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("--results")
        .arg(d.path().join("results"))
        .args(["sweep", script.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("report declaration 1 (`t`)") && err.contains("rowz"),
        "{err}"
    );
    assert!(!d.path().join("results/store").exists());
}

#[test]
fn a_running_sweep_is_reported_listed_and_shown_from_its_snapshot() {
    let d = tempfile::tempdir().unwrap();
    let script = d.path().join("live.rhai");
    std::fs::write(
        &script,
        r#"let s = sweep("live");
        s.seeds([0, 1]);
        s.add(#{ kind: "selftest", params: #{ epochs: 3 } });
        let slow = #{ kind: "selftest", params: #{ epochs: 3, sleep_ms: 60000, difficulty: 2.0 } };
        s.add(slow);
        s.table(#{ name: "t", rows: ["params.difficulty"], metric: "val/top1" });"#,
    )
    .unwrap();
    let results = d.path().join("results");
    let mut sweep = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("--results")
        .arg(&results)
        .args(["sweep", script.to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the quick runs are done and a snapshot after them exists.
    let snap = results.join("store.snapshot.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&snap).unwrap_or_default();
        if text.matches("\"status\":\"done\"").count() >= 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no snapshot with the quick runs"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let xtask = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .arg("--results")
            .arg(&results)
            .args(args)
            .output()
            .unwrap()
    };
    let o = xtask(&["report", "live", "--format", "md"]);
    // `runs`, `show` and `export` read the same snapshot, and say so.
    let listed = xtask(&["runs", "--json"]);
    let err = String::from_utf8_lossy(&listed.stderr).into_owned();
    let runs: Value = serde_json::from_slice(&listed.stdout).unwrap_or_default();
    let done = runs
        .as_array()
        .and_then(|r| r.iter().find(|r| r["status"] == "done"))
        .and_then(|r| r["id"].as_str())
        .unwrap_or_default()
        .to_string();
    let shown = xtask(&["show", &done]);
    let exported = xtask(&["export"]);
    sweep.kill().unwrap();
    sweep.wait().unwrap();
    assert!(listed.status.success(), "{err}");
    assert!(err.contains("listing runs from its snapshot"), "{err}");
    let runs = runs.as_array().unwrap();
    let status = |s: &str| runs.iter().filter(|r| r["status"] == s).count();
    let statuses: Vec<&Value> = runs.iter().map(|r| &r["status"]).collect();
    // The slow setting's two runs: one running, one waiting for a worker (or both running).
    assert!(
        runs.len() == 4
            && status("done") == 2
            && status("running") >= 1
            && status("running") + status("pending") == 2,
        "{statuses:?}"
    );
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    assert!(String::from_utf8_lossy(&shown.stdout).contains(&format!("run {done}")));
    assert!(String::from_utf8_lossy(&shown.stderr).contains("showing the run from its snapshot"));
    assert!(exported.status.success());
    assert!(String::from_utf8_lossy(&exported.stdout).contains(&done));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("reporting from its snapshot"), "{err}");
    let md = String::from_utf8_lossy(&o.stdout);
    // The done setting has both seeds; the running one is flagged with none.
    assert!(
        md.contains("| 1.0 | **") && md.contains("| 2.0 | — †0/2 |"),
        "{md}"
    );
}

/// `report --sweeps a,b`: one table of the runs of two sweeps, a run both name counted once.
#[test]
fn a_report_of_two_sweeps_counts_their_shared_runs_once() {
    let d = tempfile::tempdir().unwrap();
    let results = d.path().join("results");
    let xtask = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .arg("--results")
            .arg(&results)
            .args(args)
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap()
    };
    // `a`: difficulty 1 on seeds 0, 1; `b`: difficulty 1 on seed 0 (a's run) and 2 on 0, 1.
    for (name, body) in [
        (
            "a",
            r#"let s = sweep("a"); s.seeds([0, 1]);
            s.add(#{ kind: "selftest", params: #{ epochs: 2, difficulty: 1.0 } });"#,
        ),
        (
            "b",
            r#"let s = sweep("b"); s.seeds([0]);
            s.add(#{ kind: "selftest", params: #{ epochs: 2, difficulty: 1.0 } });
            s.seeds([0, 1]);
            s.add(#{ kind: "selftest", params: #{ epochs: 2, difficulty: 2.0 } });"#,
        ),
    ] {
        let p = d.path().join(format!("{name}.rhai"));
        std::fs::write(&p, body).unwrap();
        let o = xtask(&["sweep", p.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let o = xtask(&[
        "report",
        "--sweeps",
        "a,b",
        "--format",
        "md",
        "--table",
        "rows=params.difficulty;metric=val/top1",
    ]);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{err}");
    assert!(err.starts_with("4 runs (4 done"), "{err}");
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("| 1.0") || l.starts_with("| 2.0"))
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(
        rows.iter().all(|r| !r.contains('†')),
        "two seeds in each row: {out}"
    );
    assert!(results.join("reports/a+b/table-1.md").exists());
    let o = xtask(&["report", "a", "--sweeps", "b"]);
    assert!(!o.status.success(), "a sweep and --sweeps together");
}
