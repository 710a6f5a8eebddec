//! The sweep script engine: sandboxed Rhai with a small API for building named sweeps.
//!
//! ```rhai
//! let s = sweep("classifier-init");          // one named sweep per script
//! s.seeds([0, 1, 2]);                        // the reserved seed axis
//! let base = preset("paper");                // the reference recipe as a map
//! base.kind = "selftest";
//! let pre = s.add(base);                     // one run per seed; returns a handle
//! s.add(grid(base, #{ "params.outcome": ["succeed", "fail"] }));
//! s.add(zip(base, #{ "optim.lr": [1e-5, 5e-5], "optim.epochs": [10, 30] }));
//! base.needs = #{ input: pre };              // a dependency: runs after `pre`
//! s.add(base);
//! ```
//!
//! Scripts have no file system, process or module access, and run under limits on operations,
//! sizes and nesting. Errors report `file:line:column`.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use rhai::{Array, Dynamic, Engine, EvalAltResult, Map, NativeCallContext, Position};
use serde_json::Value;
use t4v_core::{Registry, RunId, RunSpec};

/// A sweep script's result: a named list of resolved, de-duplicated runs.
#[derive(Clone, Debug)]
pub struct SweepDef {
    pub name: String,
    pub script_path: String,
    pub script: String,
    pub script_hash: String,
    /// Runs in the order first added; dependencies always come before their dependents.
    pub runs: Vec<PlannedRun>,
    /// Report declarations (`s.table(#{...})`, `s.compare(#{...})`) as JSON with a `type`
    /// key; the report crate checks and reads them.
    pub reports: Vec<Value>,
}

#[derive(Clone, Debug)]
pub struct PlannedRun {
    pub id: RunId,
    pub setting: RunId,
    pub spec: RunSpec,
    /// The resolved spec as JSON.
    pub spec_json: Value,
    /// The canonical spec (what the id hashes).
    pub canonical: Value,
    /// Script line of the `add` that first produced it.
    pub line: usize,
}

impl PlannedRun {
    /// Dependencies, by role.
    pub fn needs(&self) -> &BTreeMap<String, RunId> {
        &self.spec.needs
    }

    /// A one-line description: the canonical spec without its kind, as `key=value` pairs.
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        flatten("", &self.canonical, &mut parts);
        parts
            .into_iter()
            .filter(|(k, _)| k != "kind")
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// `a.b=c` pairs of a JSON map.
pub fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// A script that cannot be turned into a sweep.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ScriptError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Limits of the sandbox (Rhai counts sizes over nested arrays and maps together). A
/// 10,000-run grid stays well inside them.
const MAX_OPERATIONS: u64 = 200_000_000;
const MAX_ARRAY: usize = 1_000_000;
const MAX_MAP: usize = 1_000_000;
const MAX_STRING: usize = 1 << 20;

/// Most runs one sweep may hold. A planned run keeps its spec, canonical form and id in memory
/// (`bench engine`: 7.6 KB per run held by the plan, 15.6 KB at the peak of evaluating it), so
/// this bounds a sweep's planning near 1.6 GB; a `grid` or `add` past it stops with an error
/// before building the specs.
pub const MAX_RUNS: usize = 100_000;

/// A handle on the runs one `add` produced (one per seed).
#[derive(Clone, Debug)]
pub struct Runs {
    ids: Vec<(RunId, u64)>,
}

#[derive(Default)]
struct Builder {
    name: String,
    seeds: Option<Vec<u64>>,
    runs: Vec<PlannedRun>,
    index: HashMap<RunId, usize>,
    reports: Vec<Value>,
}

/// The script's sweep object.
#[derive(Clone)]
struct SweepHandle(Rc<RefCell<Builder>>);

fn err(msg: impl Into<String>, pos: Position) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(Dynamic::from(msg.into()), pos))
}

fn to_json(d: &Dynamic, pos: Position) -> Result<Value, Box<EvalAltResult>> {
    if let Some(r) = d.clone().try_cast::<Runs>() {
        return match r.ids.as_slice() {
            [(id, _)] => Ok(Value::from(id.to_string())),
            _ => Ok(Value::Array(
                r.ids
                    .iter()
                    .map(|(id, s)| serde_json::json!({"id": id, "seed": s}))
                    .collect(),
            )),
        };
    }
    if d.is_map() {
        let m = d.read_lock::<Map>().expect("a map");
        let mut out = serde_json::Map::new();
        for (k, v) in m.iter() {
            out.insert(k.to_string(), to_json(v, pos)?);
        }
        return Ok(Value::Object(out));
    }
    if d.is_array() {
        let a = d.read_lock::<Array>().expect("an array");
        return a
            .iter()
            .map(|v| to_json(v, pos))
            .collect::<Result<_, _>>()
            .map(Value::Array);
    }
    if d.is_unit() {
        return Ok(Value::Null);
    }
    rhai::serde::from_dynamic::<Value>(d)
        .map_err(|e| err(format!("value {d} cannot be part of a spec: {e}"), pos))
}

/// Sets `path` (dotted) in a map to `value`, creating inner maps.
fn set_path(
    map: &mut Map,
    path: &str,
    value: Dynamic,
    pos: Position,
) -> Result<(), Box<EvalAltResult>> {
    match path.split_once('.') {
        None => {
            map.insert(path.into(), value);
            Ok(())
        }
        Some((head, rest)) => {
            let entry = map
                .entry(head.into())
                .or_insert_with(|| Dynamic::from_map(Map::new()));
            if !entry.is_map() {
                return Err(err(format!("axis `{path}`: `{head}` is not a map"), pos));
            }
            let mut inner = entry.write_lock::<Map>().expect("a map");
            set_path(&mut inner, rest, value, pos)
        }
    }
}

fn axes(axes: &Map, pos: Position) -> Result<Vec<(String, Array)>, Box<EvalAltResult>> {
    axes.iter()
        .map(|(k, v)| {
            if k.as_str() == "seed" {
                return Err(err(
                    "`seed` is a reserved axis: set seeds with `s.seeds([...])`",
                    pos,
                ));
            }
            let arr = v.read_lock::<Array>().map(|a| a.clone()).ok_or_else(|| {
                err(
                    format!(
                        "axis `{k}`: expected an array of values, found {}",
                        v.type_name()
                    ),
                    pos,
                )
            })?;
            if arr.is_empty() {
                return Err(err(format!("axis `{k}` has no values"), pos));
            }
            Ok((k.to_string(), arr))
        })
        .collect()
}

fn grid(ctx: NativeCallContext, base: Map, spec_axes: Map) -> Result<Array, Box<EvalAltResult>> {
    let pos = ctx.call_position();
    let axes = axes(&spec_axes, pos)?;
    let n = axes
        .iter()
        .try_fold(1usize, |n, (_, v)| n.checked_mul(v.len()));
    if n.is_none_or(|n| n > MAX_RUNS) {
        let sizes: Vec<String> = axes.iter().map(|(_, v)| v.len().to_string()).collect();
        return Err(err(
            format!(
                "grid: {} = {} specs, more than a sweep may hold ({MAX_RUNS} runs): use fewer values or several sweeps",
                sizes.join(" × "),
                n.map_or("too many".to_string(), |n| n.to_string())
            ),
            pos,
        ));
    }
    let mut out: Vec<Map> = vec![base];
    for (path, values) in &axes {
        let mut next = Vec::with_capacity(out.len() * values.len());
        for m in &out {
            for v in values {
                let mut m = m.clone();
                set_path(&mut m, path, v.clone(), pos)?;
                next.push(m);
            }
        }
        out = next;
    }
    Ok(out.into_iter().map(Dynamic::from_map).collect())
}

fn zip(ctx: NativeCallContext, base: Map, spec_axes: Map) -> Result<Array, Box<EvalAltResult>> {
    let pos = ctx.call_position();
    let axes = axes(&spec_axes, pos)?;
    let n = axes.first().map(|a| a.1.len()).unwrap_or(1);
    if let Some((k, a)) = axes.iter().find(|a| a.1.len() != n) {
        return Err(err(
            format!(
                "zip: axis `{k}` has {} values, `{}` has {n}",
                a.len(),
                axes[0].0
            ),
            pos,
        ));
    }
    (0..n)
        .map(|i| {
            let mut m = base.clone();
            for (path, values) in &axes {
                set_path(&mut m, path, values[i].clone(), pos)?;
            }
            Ok(Dynamic::from_map(m))
        })
        .collect()
}

/// The named presets: the reference recipe, and its few-shot variant (mean temporal head).
pub const PRESETS: &[(&str, &str)] = &[
    (
        "paper",
        "the reference recipe (REFERENCE.md §1.6–1.7): every RunSpec default",
    ),
    (
        "few-shot",
        "the reference few-shot configs: paper + `mean` temporal head, few-shot protocol",
    ),
];

fn preset(name: &str) -> Option<Value> {
    let mut v = serde_json::to_value(RunSpec::default()).expect("specs serialise");
    let obj = v.as_object_mut().expect("a map");
    obj.remove("seed");
    obj.remove("params");
    obj.remove("needs");
    match name {
        "paper" => Some(v),
        "few-shot" => {
            v["model"]["temporal_head"] = "mean".into();
            v["data"]["protocol"] = "few-shot".into();
            Some(v)
        }
        _ => None,
    }
}

impl SweepHandle {
    fn add(
        &self,
        ctx: &NativeCallContext,
        registry: &Registry,
        spec: Dynamic,
    ) -> Result<Runs, Box<EvalAltResult>> {
        let pos = ctx.call_position();
        if spec.is_array() {
            let items = spec.read_lock::<Array>().expect("an array").clone();
            let mut all = Vec::new();
            for item in items {
                all.extend(self.add(ctx, registry, item)?.ids);
            }
            return Ok(Runs { ids: all });
        }
        if !spec.is_map() {
            return Err(err(
                format!(
                    "add: expected a map or an array of maps, found {}",
                    spec.type_name()
                ),
                pos,
            ));
        }
        let mut json = to_json(&spec, pos)?;
        let obj = json.as_object_mut().expect("a map");
        if obj.contains_key("seed") {
            return Err(err(
                "field `seed`: seeds are a reserved axis: set them with `s.seeds([...])`",
                pos,
            ));
        }
        let needs: BTreeMap<String, Value> = match obj.remove("needs") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(m)) => m.into_iter().collect(),
            Some(other) => {
                return Err(err(
                    format!("field `needs`: expected a map of run handles, found {other}"),
                    pos,
                ));
            }
        };
        let mut b = self.0.borrow_mut();
        let seeds = b.seeds.clone();
        let per_spec = seeds.as_ref().map_or(1, Vec::len);
        if b.runs.len() + per_spec > MAX_RUNS {
            return Err(err(
                format!(
                    "add: the sweep would hold more than {MAX_RUNS} runs: use fewer specs or seeds, or several sweeps"
                ),
                pos,
            ));
        }
        let mut out = Vec::new();
        for seed in seeds
            .clone()
            .map(|s| s.into_iter().map(Some).collect())
            .unwrap_or(vec![None])
        {
            let mut v = json.clone();
            if let Some(seed) = seed {
                v["seed"] = seed.into();
            }
            let mut resolved_needs = serde_json::Map::new();
            for (role, dep) in &needs {
                let id = match dep {
                    Value::String(s) => s.clone(),
                    Value::Array(list) => {
                        let want = seed.unwrap_or(RunSpec::default().seed);
                        list.iter()
                            .find(|d| d["seed"].as_u64() == Some(want))
                            .and_then(|d| d["id"].as_str().map(str::to_string))
                            .ok_or_else(|| err(format!("field `needs.{role}`: the dependency has no run with seed {want}"), pos))?
                    }
                    other => {
                        return Err(err(
                            format!(
                                "field `needs.{role}`: expected a run handle from `add`, found {other}"
                            ),
                            pos,
                        ));
                    }
                };
                let rid: RunId = id
                    .parse()
                    .map_err(|e: String| err(format!("field `needs.{role}`: {e}"), pos))?;
                if !b.index.contains_key(&rid) {
                    return Err(err(
                        format!("field `needs.{role}`: run {rid} is not part of this sweep"),
                        pos,
                    ));
                }
                resolved_needs.insert(role.clone(), Value::from(id));
            }
            if !resolved_needs.is_empty() {
                v["needs"] = Value::Object(resolved_needs);
            }
            let spec = RunSpec::resolve(&v, registry).map_err(|e| err(e.to_string(), pos))?;
            let identity = spec.identity(registry);
            let id = identity.id;
            let run_seed = spec.seed;
            if !b.index.contains_key(&id) {
                let run = PlannedRun {
                    setting: identity.setting,
                    spec_json: serde_json::to_value(&spec).expect("specs serialise"),
                    canonical: identity.canonical,
                    id: id.clone(),
                    spec,
                    line: pos.line().unwrap_or(0),
                };
                let n = b.runs.len();
                b.index.insert(id.clone(), n);
                b.runs.push(run);
            }
            out.push((id, run_seed));
        }
        Ok(Runs { ids: out })
    }
}

/// Evaluates a sweep script. `file` is used in error messages and recorded with the sweep.
pub fn evaluate(file: &str, source: &str, registry: &Registry) -> Result<SweepDef, ScriptError> {
    evaluate_with(file, source, registry, &BTreeMap::new())
}

/// Evaluates a sweep script with arguments (`xtask sweep --set name=value`), which the script
/// reads with `arg("name", default)`; the value is parsed as the default's type. An argument
/// the script never asks for is an error (a typo would otherwise be silently ignored).
pub fn evaluate_with(
    file: &str,
    source: &str,
    registry: &Registry,
    args: &BTreeMap<String, String>,
) -> Result<SweepDef, ScriptError> {
    let registry = *registry;
    let asked: Rc<RefCell<Vec<String>>> = Rc::default();
    let sweeps: Rc<RefCell<Vec<SweepHandle>>> = Rc::default();
    let mut engine = Engine::new();
    engine
        .set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new())
        .set_max_modules(0)
        .set_max_operations(MAX_OPERATIONS)
        .set_max_call_levels(64)
        .set_max_expr_depths(64, 32)
        .set_max_string_size(MAX_STRING)
        .set_max_array_size(MAX_ARRAY)
        .set_max_map_size(MAX_MAP)
        .disable_symbol("eval");
    let file_name = file.to_string();
    engine.on_print(move |s| eprintln!("{file_name}: {s}"));
    let file_name = file.to_string();
    engine.on_debug(move |s, _, pos| eprintln!("{file_name}:{}: {s}", pos.line().unwrap_or(0)));

    engine.register_type_with_name::<SweepHandle>("Sweep");
    engine.register_type_with_name::<Runs>("Runs");
    let list = sweeps.clone();
    engine.register_fn(
        "sweep",
        move |ctx: NativeCallContext, name: &str| -> Result<SweepHandle, Box<EvalAltResult>> {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(err(
                    format!("sweep name `{name}`: use letters, digits, `-`, `_` and `.`"),
                    ctx.call_position(),
                ));
            }
            if let Some(other) = list.borrow().first() {
                return Err(err(
                    format!(
                        "a script defines one sweep; `{}` is already defined",
                        other.0.borrow().name
                    ),
                    ctx.call_position(),
                ));
            }
            let h = SweepHandle(Rc::new(RefCell::new(Builder {
                name: name.into(),
                ..Default::default()
            })));
            list.borrow_mut().push(h.clone());
            Ok(h)
        },
    );
    engine.register_fn(
        "seeds",
        |ctx: NativeCallContext,
         s: &mut SweepHandle,
         seeds: Array|
         -> Result<(), Box<EvalAltResult>> {
            let pos = ctx.call_position();
            let mut out = Vec::new();
            for v in seeds {
                match v.as_int() {
                    Ok(i) if i >= 0 => out.push(i as u64),
                    _ => {
                        return Err(err(
                            format!("seeds: `{v}` is not a non-negative integer"),
                            pos,
                        ));
                    }
                }
            }
            if out.is_empty() {
                return Err(err("seeds: give at least one seed", pos));
            }
            s.0.borrow_mut().seeds = Some(out);
            Ok(())
        },
    );
    engine.register_fn(
        "add",
        move |ctx: NativeCallContext, s: &mut SweepHandle, spec: Dynamic| {
            s.add(&ctx, &registry, spec)
        },
    );
    engine.register_fn("len", |s: &mut SweepHandle| s.0.borrow().runs.len() as i64);
    engine.register_fn("len", |r: &mut Runs| r.ids.len() as i64);
    engine.register_fn("ids", |r: &mut Runs| -> Array {
        r.ids
            .iter()
            .map(|(id, _)| Dynamic::from(id.to_string()))
            .collect()
    });
    engine.register_fn("to_string", |r: &mut Runs| {
        format!(
            "Runs({})",
            r.ids
                .iter()
                .map(|(id, _)| id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    });
    for kind in ["table", "compare", "figure"] {
        engine.register_fn(
            kind,
            move |ctx: NativeCallContext,
                  s: &mut SweepHandle,
                  decl: rhai::Map|
                  -> Result<(), Box<EvalAltResult>> {
                let pos = ctx.call_position();
                let mut v = to_json(&Dynamic::from_map(decl), pos)?;
                let obj = v.as_object_mut().expect("a map");
                if obj.contains_key("type") {
                    return Err(err(format!("{kind}: `type` is set by the function"), pos));
                }
                obj.insert("type".into(), Value::from(kind));
                s.0.borrow_mut().reports.push(v);
                Ok(())
            },
        );
    }
    let given = args.clone();
    let asked_by = asked.clone();
    engine.register_fn(
        "arg",
        move |ctx: NativeCallContext,
              name: &str,
              default: Dynamic|
              -> Result<Dynamic, Box<EvalAltResult>> {
            asked_by.borrow_mut().push(name.to_string());
            let Some(text) = given.get(name) else {
                return Ok(default);
            };
            let bad = |ty: &str| {
                err(
                    format!("--set {name}={text}: expected {ty} (the default is `{default}`)"),
                    ctx.call_position(),
                )
            };
            if default.is_int() {
                text.parse::<i64>()
                    .map(Dynamic::from)
                    .map_err(|_| bad("an integer"))
            } else if default.is_float() {
                text.parse::<f64>()
                    .map(Dynamic::from)
                    .map_err(|_| bad("a number"))
            } else if default.is_bool() {
                text.parse::<bool>()
                    .map(Dynamic::from)
                    .map_err(|_| bad("true or false"))
            } else if default.is_string() {
                Ok(Dynamic::from(text.clone()))
            } else {
                Err(err(
                    format!("arg `{name}`: defaults are integers, numbers, booleans or strings"),
                    ctx.call_position(),
                ))
            }
        },
    );
    engine.register_fn("grid", grid);
    engine.register_fn("zip", zip);
    engine.register_fn(
        "preset",
        |ctx: NativeCallContext, name: &str| -> Result<Dynamic, Box<EvalAltResult>> {
            let v = preset(name).ok_or_else(|| {
                err(
                    format!(
                        "unknown preset `{name}` (known: {})",
                        PRESETS.iter().map(|p| p.0).collect::<Vec<_>>().join(", ")
                    ),
                    ctx.call_position(),
                )
            })?;
            rhai::serde::to_dynamic(v)
        },
    );

    let located = |pos: Position, message: String| ScriptError {
        file: file.to_string(),
        line: pos.line().unwrap_or(0),
        column: pos.position().unwrap_or(0),
        message,
    };
    let ast = engine
        .compile(source)
        .map_err(|e| located(e.position(), e.err_type().to_string()))?;
    engine.run_ast(&ast).map_err(|e| {
        let (pos, message) = innermost(*e);
        located(pos, message)
    })?;
    let asked = asked.borrow();
    if let Some(unused) = args.keys().find(|k| !asked.contains(k)) {
        let known = if asked.is_empty() {
            "none".to_string()
        } else {
            asked.join(", ")
        };
        return Err(located(
            Position::new(1, 1),
            format!("--set {unused}: the script reads no such argument (it reads: {known})"),
        ));
    }
    let sweeps = sweeps.borrow();
    let handle = sweeps.first().ok_or_else(|| {
        located(
            Position::new(1, 1),
            "the script defines no sweep: start it with `let s = sweep(\"name\");`".into(),
        )
    })?;
    let b = handle.0.borrow();
    Ok(SweepDef {
        name: b.name.clone(),
        script_path: file.to_string(),
        script: source.to_string(),
        script_hash: blake3::hash(source.as_bytes()).to_hex().to_string(),
        runs: b.runs.clone(),
        reports: b.reports.clone(),
    })
}

/// The innermost error and its position: a failed `add` inside a function reports the `add`.
fn innermost(mut e: EvalAltResult) -> (Position, String) {
    loop {
        match e {
            EvalAltResult::ErrorInFunctionCall(_, _, inner, _) => e = *inner,
            EvalAltResult::ErrorRuntime(v, pos) => return (pos, v.to_string()),
            mut other => {
                let pos = other.take_position();
                return (pos, other.to_string());
            }
        }
    }
}
