//! The sweep script API: axes, seeds, dependencies, de-duplication, errors and the sandbox.

use t4v_core::{Registry, RunKind};
use t4v_sweep::script::evaluate;
use t4v_sweep::selftest::Selftest;

static KINDS: &[&dyn RunKind] = &[&Selftest];
const REG: Registry = Registry {
    run_kinds: KINDS,
    encoders: &[],
    heads: &[],
    inits: &[],
    datasets: &[],
};

fn eval(src: &str) -> Result<t4v_sweep::SweepDef, String> {
    evaluate("t.rhai", src, &REG).map_err(|e| e.to_string())
}

#[test]
fn grid_zip_and_seeds_expand() {
    let d = eval(
        r#"let s = sweep("x");
        s.seeds([0, 1]);
        let b = #{ kind: "selftest" };
        s.add(grid(b, #{ "params.epochs": [1, 2, 3], "params.difficulty": [0.5, 1.0] }));
        s.add(zip(b, #{ "params.epochs": [7, 8], "params.sleep_ms": [1, 2] }));"#,
    )
    .unwrap();
    assert_eq!(d.name, "x");
    assert_eq!(d.runs.len(), 3 * 2 * 2 + 2 * 2);
    let zipped: Vec<(u64, u64)> = d.runs[12..]
        .iter()
        .map(|r| {
            (
                r.spec.params["epochs"].as_u64().unwrap(),
                r.spec.params["sleep_ms"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(zipped, vec![(7, 1), (7, 1), (8, 2), (8, 2)]);
    assert_eq!(d.runs[12].spec.seed, 0);
    assert_eq!(d.runs[13].spec.seed, 1);
    assert_eq!(d.runs[12].setting, d.runs[13].setting);
}

#[test]
fn identical_specs_are_one_run_and_spelling_does_not_matter() {
    let d = eval(
        r#"let s = sweep("x");
        s.add(#{ kind: "selftest", params: #{ epochs: 3, difficulty: 2 } });
        s.add(#{ params: #{ difficulty: 2.0, epochs: 3, outcome: "succeed" }, kind: "selftest", optim: #{ lr: 0.00005 } });
        let p = preset("paper"); p.kind = "selftest"; p.params = #{ epochs: 3, difficulty: 2.0 };
        s.add(p);"#,
    )
    .unwrap();
    assert_eq!(d.runs.len(), 1);
}

#[test]
fn dependencies_match_seeds() {
    let d = eval(
        r#"let s = sweep("x");
        s.seeds([0, 1]);
        let a = s.add(#{ kind: "selftest" });
        s.add(#{ kind: "selftest", params: #{ epochs: 2 }, needs: #{ input: a } });
        s.seeds([1]);
        let one = s.add(#{ kind: "selftest", params: #{ epochs: 9 } });
        s.seeds([0, 1]);
        s.add(#{ kind: "selftest", params: #{ epochs: 4 }, needs: #{ input: one } });"#,
    )
    .unwrap();
    let (a0, a1) = (&d.runs[0], &d.runs[1]);
    assert_eq!(d.runs[2].needs()["input"], a0.id);
    assert_eq!(d.runs[3].needs()["input"], a1.id);
    assert_eq!(d.runs[5].needs()["input"], d.runs[4].id);
    assert_eq!(d.runs[6].needs()["input"], d.runs[4].id);
    let err = eval(
        r#"let s = sweep("x");
        s.seeds([0, 1]);
        let a = s.add(#{ kind: "selftest" });
        s.seeds([2]);
        s.add(#{ kind: "selftest", needs: #{ input: a } });"#,
    )
    .unwrap_err();
    assert_eq!(
        err,
        "t.rhai:5:11: field `needs.input`: the dependency has no run with seed 2"
    );
}

#[test]
fn errors_name_file_line_column_and_field() {
    let cases = [
        (
            "let s = sweep(\"x\");\ns.add(#{ kind: \"selftest\", optim: #{ lr: \"fast\" } });",
            "t.rhai:2:3: field `optim.lr`: invalid type: string \"fast\", expected f64",
        ),
        (
            "let s = sweep(\"x\");\n\n  s.add(#{ kind: \"trian\" });",
            "t.rhai:3:5: field `kind`: unknown run kind `trian` (known: selftest)",
        ),
        (
            "let s = sweep(\"x\");\ns.add(#{ kind: \"selftest\", params: #{ outcome: \"explode\" } });",
            "t.rhai:2:3: field `params.outcome`: `explode` is not one of succeed, fail, panic, abort, nan, hang",
        ),
        (
            "let s = sweep(\"x\");\ns.add(#{ kind: \"selftest\", seed: 3 });",
            "t.rhai:2:3: field `seed`: seeds are a reserved axis: set them with `s.seeds([...])`",
        ),
        (
            "let s = sweep(\"x\");\ns.add(grid(#{}, #{ seed: [1, 2] }));",
            "t.rhai:2:7: `seed` is a reserved axis: set seeds with `s.seeds([...])`",
        ),
        (
            "let s = sweep(\"x\");\ns.add(#{ kind: \"selftest\" }",
            "t.rhai:2:",
        ),
        ("let x = 1;", "t.rhai:1:1: the script defines no sweep"),
        ("let s = sweep(\"x\");\nimport \"os\" as os;", "t.rhai:2:"),
        ("let s = sweep(\"x\");\neval(\"1\");", "t.rhai:2:"),
        (
            "let s = sweep(\"x\");\nlet t = sweep(\"y\");",
            "t.rhai:2:9: a script defines one sweep",
        ),
        (
            "let s = sweep(\"x\");\nlet i = 0; loop { i += 1; }",
            "t.rhai:2:",
        ),
        (
            "let s = sweep(\"x\");\ns.add(zip(#{}, #{ a: [1, 2], b: [1] }));",
            "t.rhai:2:7: zip: axis",
        ),
    ];
    for (src, want) in cases {
        let got = eval(src).map(|_| "ok".to_string()).unwrap_or_else(|e| e);
        assert!(
            got.starts_with(want),
            "script {src:?}\n got: {got}\nwant: {want}"
        );
    }
}

#[test]
fn functions_in_scripts_report_the_failing_add() {
    let err = eval(
        "let s = sweep(\"x\");\nfn bad(s) {\n    s.add(#{ kind: \"selftest\", params: #{ epochs: -1 } });\n}\nbad(s);",
    )
    .unwrap_err();
    assert!(
        err.starts_with("t.rhai:3:7: field `params.epochs`"),
        "{err}"
    );
}

#[test]
fn script_arguments_are_typed_by_their_default_and_checked() {
    let src = r#"let s = sweep("x");
        let n = arg("epochs", 3);
        let tiny = arg("tiny", false);
        s.add(#{ kind: "selftest", params: #{ epochs: if tiny { 1 } else { n } } });"#;
    let run = |args: &[(&str, &str)]| {
        let args = args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        t4v_sweep::script::evaluate_with("t.rhai", src, &REG, &args).map_err(|e| e.to_string())
    };
    let epochs = |d: t4v_sweep::SweepDef| d.runs[0].spec.params["epochs"].clone();
    assert_eq!(epochs(run(&[]).unwrap()), 3);
    assert_eq!(epochs(run(&[("epochs", "7")]).unwrap()), 7);
    assert_eq!(
        epochs(run(&[("epochs", "7"), ("tiny", "true")]).unwrap()),
        1
    );
    let e = run(&[("epochs", "many")]).unwrap_err();
    assert!(e.contains("--set epochs=many: expected an integer"), "{e}");
    let e = run(&[("epohcs", "2")]).unwrap_err();
    assert!(
        e.contains("--set epohcs: the script reads no such argument (it reads: epochs, tiny)"),
        "{e}"
    );
}

/// A sweep past the run limit stops with an error naming it, before the specs are built: a
/// 3,000 × 3,000 grid (9 million specs, tens of GB if built), and an `add` that crosses the
/// limit through its seeds.
#[test]
fn sweeps_past_the_run_limit_stop_before_building_them() {
    let started = std::time::Instant::now();
    let e = eval(
        r#"let s = sweep("x");
        let a = []; for i in 0..3000 { a.push(i); }
        s.add(grid(#{ kind: "selftest" }, #{ "params.epochs": a, "params.difficulty": a }));"#,
    )
    .unwrap_err();
    assert!(
        e.starts_with("t.rhai:3:")
            && e.contains(
                "grid: 3000 × 3000 = 9000000 specs, more than a sweep may hold (100000 runs)"
            ),
        "{e}"
    );
    let grid_s = started.elapsed().as_secs_f64();
    let e = eval(
        r#"let s = sweep("x");
        let seeds = []; for i in 0..100001 { seeds.push(i); }
        s.seeds(seeds);
        s.add(#{ kind: "selftest" });"#,
    )
    .unwrap_err();
    assert!(
        e.starts_with("t.rhai:4:") && e.contains("the sweep would hold more than 100000 runs"),
        "{e}"
    );
    // A figure, not an assertion: how long the refusal took here.
    t4v_fault::record(
        "Oversized sweeps",
        "a 3,000 × 3,000 grid; 100,001 seeds of one spec",
        2,
        &format!(
            "the limit's error at the script line before any spec is built (the grid's in {grid_s:.2} s)"
        ),
    );
}
