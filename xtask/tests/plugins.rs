//! Plugins added from outside the crates that define their families: a throwaway classifier
//! init and temporal head, each one type here plus one entry in this test's own registry, run
//! through a probe sweep whose workers are this test binary. Nothing else in the workspace
//! names them, so the run kinds can only have found them through the registry.
//!
//! `harness = false`: the binary is its own sweep worker (`plugins worker <job file>`), as the
//! `xtask` binary is for the command line's registry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use burn::tensor::{Tensor, TensorData};
use t4v_core::plugin::{
    ClassifierInit, HeadLayout, Host, InitInputs, Need, PluginError, TemporalHeadPlugin,
};
use t4v_core::{PluginInfo, Provenance, Registry, RunKind};
use t4v_store::Store;
use t4v_sweep::{ExecutorChoice, Plan, SweepOptions, WorkerCommand};

/// Where the plugins note that they were called (`T4V_PLUGIN_NOTES`), one line per call.
fn note(line: String) {
    if let Some(path) = std::env::var_os("T4V_PLUGIN_NOTES") {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("notes file");
        writeln!(f, "{line}").expect("note written");
    }
}

/// `first-example`: W's row c is the first training feature of class c (a one-shot prototype).
struct FirstExample;

impl ClassifierInit for FirstExample {
    fn info(&self) -> &'static PluginInfo {
        static INFO: PluginInfo = PluginInfo {
            name: "first-example",
            summary: "the first training feature of each class (a test's plugin)",
            params: &[],
        };
        &INFO
    }
    fn needs(&self) -> &'static [Need] {
        &[Need::Features]
    }
    fn init(&self, x: &InitInputs<'_>) -> Result<Tensor<Host, 2>, PluginError> {
        let (f, labels) = x
            .features
            .as_ref()
            .ok_or_else(|| PluginError::Invalid("first-example needs features".into()))?;
        let [n, d] = f.dims();
        let data: Vec<f32> = f.clone().into_data().to_vec().expect("f32 features");
        let mut w = Vec::with_capacity(x.class_names.len() * d);
        for c in 0..x.class_names.len() {
            let i = labels
                .iter()
                .position(|&l| l == c)
                .ok_or_else(|| PluginError::Invalid(format!("class {c} has no feature")))?;
            w.extend_from_slice(&data[i * d..(i + 1) * d]);
        }
        note(format!(
            "init {} classes from {n} features of width {d}",
            x.class_names.len()
        ));
        Ok(Tensor::from_data(
            TensorData::new(w, [x.class_names.len(), d]),
            &Default::default(),
        ))
    }
}

/// `one-block`: one temporal transformer block of two heads with an MLP 2× wide.
struct OneBlock;

impl TemporalHeadPlugin for OneBlock {
    fn info(&self) -> &'static PluginInfo {
        static INFO: PluginInfo = PluginInfo {
            name: "one-block",
            summary: "one temporal block, two heads, MLP 2× (a test's plugin)",
            params: &[],
        };
        &INFO
    }
    fn layout(&self, width: usize) -> HeadLayout {
        note(format!("head of width {width}"));
        HeadLayout {
            blocks: 1,
            heads: 2,
            mlp_ratio: 2,
        }
    }
}

static RUN_KINDS: &[&dyn RunKind] = &[&t4v_train::runs::FeaturesRun, &t4v_train::runs::ProbeRun];

/// The workspace's inits and heads with this test's appended.
fn registry() -> Registry {
    let inits: Vec<&'static dyn ClassifierInit> = t4v_inits::INITS
        .iter()
        .copied()
        .chain([&FirstExample as &dyn ClassifierInit])
        .collect();
    let heads: Vec<&'static dyn TemporalHeadPlugin> = t4v_train::temporal::HEADS
        .iter()
        .copied()
        .chain([&OneBlock as &dyn TemporalHeadPlugin])
        .collect();
    Registry {
        run_kinds: RUN_KINDS,
        encoders: t4v_train::encoder::ENCODERS,
        heads: Vec::leak(heads),
        inits: Vec::leak(inits),
        datasets: t4v_datasets::DATASETS,
    }
}

fn tiny_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/clip/fixtures/tiny-a")
}

/// Features of the synthetic world (train: 4 per class; test: all), and probes over them.
fn script(head: &str, inits: &str) -> String {
    let base = format!(
        r#"#{{ model: #{{ backbone: "{}", frames: 4, input_size: 32 }}, data: #{{ dataset: "synthetic" }} }}"#,
        tiny_model().display()
    );
    r#"let s = sweep("plugins");
    s.seeds([1]);
    let f = BASE; f.kind = "features"; f.params = #{ split: "train", per_class: 4 };
    let train = s.add(f);
    let g = BASE; g.kind = "features"; g.params = #{ split: "test" };
    let test = s.add(g);
    let p = BASE; p.kind = "probe"; p.needs = #{ features: train, test: test };
    p.model.temporal_head = "HEAD";
    p.optim = #{ epochs: 4, warmup_epochs: 1, lr: 1e-2, batch_size: 32 };
    s.add(grid(p, #{ "classifier.init": [INITS] }));"#
        .replace("BASE", &base)
        .replace("HEAD", head)
        .replace("INITS", inits)
}

/// Runs a sweep script with `registry` and this binary as the workers' program.
fn sweep(results: &Path, source: &str) -> Store {
    let registry = registry();
    let def = t4v_sweep::script::evaluate("plugins.rhai", source, &registry).expect("evaluates");
    let store = Store::open(&results.join("store")).expect("store");
    let plan = Plan::new(&def, Some(&store), false).expect("plan");
    let opts = SweepOptions {
        jobs: 2,
        devices: Vec::new(),
        devices_per_run: 1,
        backend: "cpu".into(),
        timeout: Some(Duration::from_secs(600)),
        fail_fast: false,
        results_dir: results.to_path_buf(),
        worker: WorkerCommand {
            program: std::env::current_exe().expect("this test binary"),
            args: vec!["worker".into()],
        },
        provenance: Provenance::collect(results, "cpu", BTreeMap::new()),
        snapshot: None,
        executor: ExecutorChoice::Local,
        detach: false,
    };
    t4v_sweep::plan::register(&store, &def, plan.previous.as_ref()).expect("registered");
    let out = t4v_sweep::scheduler::execute(&store, &def, &plan, &opts).expect("executes");
    assert!(out.failed.is_empty(), "failed runs: {:?}", out.failed);
    store
}

fn a_throwaway_init_and_head_run_in_a_probe_sweep() {
    let tmp = tempfile::tempdir().unwrap();
    let notes = tmp.path().join("notes.txt");
    // SAFETY: set before any thread of this process starts; workers inherit it.
    unsafe { std::env::set_var("T4V_PLUGIN_NOTES", &notes) };
    let results = tmp.path().join("results");
    let store = sweep(
        &results,
        &script("one-block", r#""first-example", "class-mean""#),
    );
    let runs = store.runs().unwrap();
    assert_eq!(runs.len(), 4, "two features runs and two probes");
    let probes: Vec<_> = runs.iter().filter(|r| r.kind == "probe").collect();
    for p in &probes {
        assert_eq!(p.status.to_string(), "done", "{:?}", p.reason);
        assert_eq!(p.spec["model"]["temporal_head"], "one-block");
        let top1 = p.summary["test/top1"];
        assert!((0.0..=100.0).contains(&top1), "test/top1 {top1}");
    }
    let inits: Vec<&str> = probes
        .iter()
        .map(|p| p.spec["classifier"]["init"].as_str().unwrap())
        .collect();
    assert!(inits.contains(&"first-example") && inits.contains(&"class-mean"));
    // The workers called the test's plugins: one init, and a head for each probe, at the
    // tiny model's width (16), from the train features (4 per class of the 48 classes).
    let notes = std::fs::read_to_string(&notes).expect("the plugins were called");
    let lines: Vec<&str> = notes.lines().collect();
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("init ")).count(),
        1,
        "{notes}"
    );
    assert!(
        lines.contains(&"init 48 classes from 192 features of width 16"),
        "{notes}"
    );
    assert_eq!(
        lines.iter().filter(|l| **l == "head of width 16").count(),
        2,
        "{notes}"
    );
}

fn unknown_members_fail_at_evaluation_naming_the_known_ones() {
    let registry = registry();
    let err = t4v_sweep::script::evaluate(
        "plugins.rhai",
        &script("lstm", r#""first-example""#),
        &registry,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("model.temporal_head") && err.contains("lstm"),
        "{err}"
    );
    assert!(err.contains("mean, transf, one-block"), "{err}");
    let err = t4v_sweep::script::evaluate(
        "plugins.rhai",
        &script("mean", r#""second-example""#),
        &registry,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("classifier.init") && err.contains("second-example"),
        "{err}"
    );
    assert!(
        err.contains("text-bert, class-mean, first-example"),
        "{err}"
    );
}

fn the_registry_lists_the_test_plugins_with_their_needs() {
    let v = registry().to_json();
    let heads: Vec<&str> = v["temporal-head"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(heads, ["mean", "transf", "one-block"]);
    let first = v["classifier-init"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "first-example")
        .unwrap();
    assert_eq!(first["needs"][0]["name"], "features");
}

const TESTS: &[(&str, fn())] = &[
    (
        "a_throwaway_init_and_head_run_in_a_probe_sweep",
        a_throwaway_init_and_head_run_in_a_probe_sweep,
    ),
    (
        "unknown_members_fail_at_evaluation_naming_the_known_ones",
        unknown_members_fail_at_evaluation_naming_the_known_ones,
    ),
    (
        "the_registry_lists_the_test_plugins_with_their_needs",
        the_registry_lists_the_test_plugins_with_their_needs,
    ),
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("worker") {
        let job = args.get(2).expect("plugins worker <job file>");
        let code = t4v_sweep::worker::run(
            Path::new(job),
            &registry(),
            t4v_sweep::worker::Events::Stdout,
        );
        std::process::exit(code);
    }
    // Like libtest: names after the binary filter the tests; `--list` lists them.
    let filters: Vec<&String> = args[1..].iter().filter(|a| !a.starts_with('-')).collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in TESTS {
            println!("{name}: test");
        }
        return;
    }
    let chosen: Vec<_> = TESTS
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    println!("\nrunning {} tests", chosen.len());
    let mut failed = Vec::new();
    for (name, test) in &chosen {
        match std::panic::catch_unwind(test) {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(*name);
            }
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        chosen.len() - failed.len(),
        failed.len()
    );
    if !failed.is_empty() {
        std::process::exit(101);
    }
}
