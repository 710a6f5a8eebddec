//! Properties of the run identity and of the script engine under hostile input:
//! - a run's id is invariant under key order, number spelling and defaults written out, and
//!   changes with any value that is not a default;
//! - random and mutated scripts give a result or an error at `file:line:column`, never a crash
//!   of the host.
//!
//! `PROPTEST_CASES` sets the number of cases.

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use t4v_core::{Registry, RunKind, RunSpec};
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

/// A field a spec may set: its path, the values drawn for it, and its default.
struct Field {
    path: &'static [&'static str],
    values: fn() -> Vec<Value>,
}

const FIELDS: &[Field] = &[
    Field {
        path: &["optim", "lr"],
        values: || vec![json!(1e-5), json!(5e-5), json!(1e-4)],
    },
    Field {
        path: &["optim", "epochs"],
        values: || vec![json!(5), json!(30), json!(40)],
    },
    Field {
        path: &["model", "frames"],
        values: || vec![json!(8), json!(16), json!(32)],
    },
    Field {
        path: &["data", "shots"],
        values: || vec![json!(0), json!(2), json!(16)],
    },
    Field {
        path: &["params", "epochs"],
        values: || vec![json!(1), json!(3), json!(7)],
    },
    Field {
        path: &["params", "difficulty"],
        values: || vec![json!(1.0), json!(2.0), json!(2.5)],
    },
    Field {
        path: &["params", "outcome"],
        values: || vec![json!("succeed"), json!("fail")],
    },
];

fn set(spec: &mut Map<String, Value>, path: &[&str], v: Value) {
    let mut m = spec;
    for k in &path[..path.len() - 1] {
        m = m
            .entry(k.to_string())
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .unwrap();
    }
    m.insert(path[path.len() - 1].to_string(), v);
}

/// The spec's JSON with its keys in reverse order and its numbers spelt otherwise (`3` as
/// `3.0`, `5e-5` as `0.000050`), as a script or file may write it.
fn respelt(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let items: Vec<String> = m
                .iter()
                .rev()
                .map(|(k, v)| format!("{}: {}", Value::from(k.as_str()), respelt(v)))
                .collect();
            format!("{{ {} }}", items.join(" , "))
        }
        Value::Number(n) => match (n.as_u64(), n.as_f64()) {
            (Some(_), _) => n.to_string(),
            (None, Some(f)) if f.fract() == 0.0 => format!("{f:.1}"),
            (None, Some(f)) => format!("{f:.9}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

fn id_of(v: &Value) -> String {
    RunSpec::resolve(v, &REG)
        .unwrap_or_else(|e| panic!("{v}: {e}"))
        .id(&REG)
        .to_string()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(t4v_fault::cases(128)))]

    #[test]
    fn a_run_id_ignores_spelling_order_and_written_out_defaults(
        picks in prop::collection::vec((0..FIELDS.len(), 0..3usize), 0..6),
        seed in 0u64..4,
        defaults in prop::collection::vec(0..FIELDS.len(), 0..4),
    ) {
        let mut spec = Map::new();
        spec.insert("kind".into(), json!("selftest"));
        spec.insert("seed".into(), json!(seed));
        for (f, i) in &picks {
            let values = (FIELDS[*f].values)();
            set(&mut spec, FIELDS[*f].path, values[i % values.len()].clone());
        }
        let spec = Value::Object(spec);
        let id = id_of(&spec);
        // Respelt and reordered.
        let text = respelt(&spec);
        let again: Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(id_of(&again), id.clone(), "{}", text);
        // Defaults written out: every field the spec leaves alone, at its resolved value.
        let full = serde_json::to_value(RunSpec::resolve(&spec, &REG).unwrap()).unwrap();
        let mut explicit = spec.as_object().unwrap().clone();
        for f in &defaults {
            let path = FIELDS[*f].path;
            let mut v = &full;
            for k in path {
                v = &v[*k];
            }
            let mut given = &spec;
            for k in path {
                given = &given[*k];
            }
            if given.is_null() && !v.is_null() {
                set(&mut explicit, path, v.clone());
            }
        }
        prop_assert_eq!(id_of(&Value::Object(explicit)), id.clone());
        // Any value that is not a default makes another run.
        let mut other = spec.as_object().unwrap().clone();
        set(&mut other, &["params", "epochs"], json!(spec["params"]["epochs"].as_u64().unwrap_or(3) + 100));
        prop_assert_ne!(id_of(&Value::Object(other)), id);
        t4v_fault::tally(
            "Hostile input",
            "run identity: specs respelt, reordered, defaults written out, one value changed",
            t4v_fault::cases(128),
            "the same id for the same run; another id for another value",
        );
    }
}

/// A valid script, mutated below.
const SCRIPT: &str = r#"let s = sweep("props");
s.seeds([0, 1]);
let base = #{ kind: "selftest", params: #{ epochs: 2 } };
let a = s.add(grid(base, #{ "params.difficulty": [1.0, 2.0] }));
let c = base; c.needs = #{ input: a };
s.add(zip(c, #{ "params.epochs": [3, 4] }));
s.table(#{ name: "t", rows: ["params.difficulty"], metric: "val/top1" });
"#;

/// Evaluates a script on this thread, catching a panic of the engine or the host.
fn evaluate_caught(src: &str) -> Result<Result<usize, String>, String> {
    let src = src.to_string();
    std::panic::catch_unwind(move || {
        evaluate("t.rhai", &src, &REG)
            .map(|d| d.runs.len())
            .map_err(|e| e.to_string())
    })
    .map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

fn assert_located(
    src: &str,
    r: Result<Result<usize, String>, String>,
) -> Result<(), TestCaseError> {
    match r {
        Err(panic) => Err(TestCaseError::fail(format!(
            "the host panicked ({panic}) on:\n{src}"
        ))),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => {
            // `t.rhai:<line>:<column>: message`
            let mut parts = e.splitn(4, ':');
            let (file, line, col) = (parts.next(), parts.next(), parts.next());
            prop_assert_eq!(file, Some("t.rhai"), "{}", e);
            prop_assert!(line.is_some_and(|l| l.parse::<usize>().is_ok()), "{}", e);
            prop_assert!(col.is_some_and(|c| c.parse::<usize>().is_ok()), "{}", e);
            Ok(())
        }
    }
}

/// Tokens scripts are made of (no loops: a script that runs for ever stops at the operation
/// limit, which takes long in a debug build).
const TOKENS: &[&str] = &[
    "let ",
    "s",
    "=",
    "sweep(\"x\")",
    ";",
    "\n",
    ".add(",
    ")",
    "(",
    "#{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "kind",
    "\"selftest\"",
    "params",
    "epochs",
    "3",
    "2.5",
    "-1",
    "\"",
    "grid(",
    "zip(",
    "preset(",
    "\"paper\"",
    "seeds(",
    "needs",
    "a",
    "b",
    ".",
    "+",
    "if ",
    "else ",
    "{",
    "true",
    "fn f(x) ",
    "f(",
    "table(",
    "x",
    "1e400",
    "\"params.epochs\"",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(t4v_fault::cases(256)))]

    #[test]
    fn mutated_scripts_evaluate_or_fail_at_a_position(
        edits in prop::collection::vec((any::<usize>(), 0..3u8, 0..TOKENS.len()), 1..6),
    ) {
        let mut src = SCRIPT.to_string();
        for (at, op, tok) in edits {
            let i = src.char_indices().map(|(i, _)| i).nth(at % src.chars().count().max(1)).unwrap_or(0);
            match op {
                0 => src.insert_str(i, TOKENS[tok]),
                1 => {
                    let end = src[i..].char_indices().nth(TOKENS[tok].len()).map_or(src.len(), |(j, _)| i + j);
                    src.replace_range(i..end, "");
                }
                _ => {
                    let end = src[i..].char_indices().nth(1).map_or(src.len(), |(j, _)| i + j);
                    src.replace_range(i..end, TOKENS[tok]);
                }
            }
        }
        assert_located(&src, evaluate_caught(&src))?;
        t4v_fault::tally(
            "Hostile input",
            "sweep scripts (Rhai), a valid one mutated",
            t4v_fault::cases(256),
            "a plan or an error at file:line:column; no crash of the host",
        );
    }

    #[test]
    fn random_scripts_evaluate_or_fail_at_a_position(
        toks in prop::collection::vec(0..TOKENS.len(), 0..40),
    ) {
        let src: String = toks.iter().map(|&t| TOKENS[t]).collect();
        assert_located(&src, evaluate_caught(&src))?;
        t4v_fault::tally(
            "Hostile input",
            "sweep scripts (Rhai), random tokens",
            t4v_fault::cases(256),
            "a plan or an error at file:line:column; no crash of the host",
        );
    }
}

#[test]
fn the_unmutated_script_plans_its_runs() {
    assert_eq!(evaluate_caught(SCRIPT), Ok(Ok(8)));
}
