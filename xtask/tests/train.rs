//! The video classifier trained, evaluated, resumed and probed through sweeps, on the synthetic
//! world with a tiny full-vocabulary CLIP (tests/common). Everything is seeded, so the figures
//! asserted here are reproducible; the thresholds still leave wide margins.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

mod common;
use common::model_dir;

struct Env {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    model: PathBuf,
}

impl Env {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let model = model_dir(&dir);
        Self {
            _tmp: tmp,
            dir,
            model,
        }
    }

    fn results(&self) -> PathBuf {
        self.dir.join("results")
    }

    /// A script whose `BASE` stands for a spec map of the synthetic world and tiny model.
    fn script(&self, name: &str, body: &str) -> PathBuf {
        let base = format!(
            r#"#{{ model: #{{ backbone: "{}", frames: 4, input_size: 32 }}, data: #{{ dataset: "synthetic" }} }}"#,
            self.model.display()
        );
        let p = self.dir.join(name);
        std::fs::write(&p, body.replace("BASE", &base)).unwrap();
        p
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
        c.arg("--results")
            .arg(self.results())
            .args(args)
            .env("RUST_BACKTRACE", "0");
        c
    }

    fn sweep(&self, script: &Path) -> String {
        let o = self
            .cmd(&["sweep", script.to_str().unwrap()])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    fn runs(&self) -> Vec<Value> {
        let o = self.cmd(&["runs", "--json"]).output().unwrap();
        serde_json::from_slice::<Value>(&o.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    /// `(steps, values)` of one metric series of a run.
    fn series(&self, id: &str, split: &str, name: &str) -> (Vec<u64>, Vec<f64>) {
        let o = self.cmd(&["show", id, "--json"]).output().unwrap();
        let show: Value = serde_json::from_slice(&o.stdout).unwrap();
        let s = show["series"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["split"] == split && s["name"] == name)
            .unwrap_or_else(|| panic!("no series {split}/{name} in {show}"))
            .clone();
        let steps = s["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        let values = s["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        (steps, values)
    }
}

fn by_kind<'a>(runs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    runs.iter().filter(|r| r["kind"] == kind).collect()
}

fn metric(r: &Value, name: &str) -> f64 {
    r["metrics"][name]
        .as_f64()
        .unwrap_or_else(|| panic!("no metric {name}: {r}"))
}

const CHANCE: f64 = 100.0 / 48.0;

#[test]
fn train_learns_and_its_checkpoints_evaluate_single_and_multi_view() {
    let env = Env::new();
    let script = env.script(
        "t.rhai",
        r#"let s = sweep("t");
        let t = BASE; t.kind = "train"; t.classifier = #{ init: "random" };
        t.optim = #{ lr: 3e-3, clip_ratio: 1.0, epochs: 3, warmup_epochs: 1, batch_size: 32 };
        t.params = #{ micro_batch: 16 };
        let trained = s.add(t);
        let e = BASE; e.kind = "eval"; e.needs = #{ train: trained };
        e.params = #{ checkpoint: "last" };
        s.add(e);
        // `eval` is a Rhai keyword: the field is set with index syntax.
        let m = e; m["eval"] = #{ crops: 3, clips: 2 }; m.params = #{ checkpoint: "best" };
        s.add(m);
        // Zero-shot style: W recomputed from the class names, half-class draws.
        let z = e; z.params = #{ checkpoint: "last", reinit: true, half_class_draws: 4, batch: 32 };
        s.add(z);
        // Fine-tuning from the trained run.
        let ft = t; ft.needs = #{ init: trained };
        ft.optim = #{ lr: 3e-3, clip_ratio: 1.0, epochs: 1, warmup_epochs: 0, batch_size: 32 };
        s.add(ft);"#,
    );
    let out = env.sweep(&script);
    assert!(out.contains("5 succeeded, 0 failed"), "{out}");
    let runs = env.runs();
    let train = by_kind(&runs, "train")
        .into_iter()
        .find(|r| r["spec"]["needs"].as_object().is_none_or(|n| n.is_empty()))
        .unwrap();
    let id = train["id"].as_str().unwrap();
    let (steps, loss) = env.series(id, "train", "loss");
    assert_eq!(steps, [1, 2, 3]);
    assert!(loss[2] < 0.8 * loss[0], "loss does not decrease: {loss:?}");
    let (_, top1) = env.series(id, "val", "top1");
    assert!(
        metric(train, "best/top1") > 2.0 * CHANCE,
        "top-1 {top1:?} not above chance ({CHANCE:.2} %)"
    );
    // The learning rate follows warm-up then cosine: highest after warm-up, ~0 at the end.
    let (_, lr) = env.series(id, "train", "lr");
    assert!(lr[0] > lr[1] && lr[1] > lr[2] && lr[2] < 1e-4, "{lr:?}");

    let run_dir = env.results().join("runs").join(id);
    for f in [
        "last/model.mpk",
        "last/optimizer.mpk",
        "best/model.mpk",
        "best/state.json",
    ] {
        assert!(run_dir.join("checkpoint").join(f).exists(), "{f}");
    }
    let per_class =
        std::fs::read_to_string(train["artefacts"]["per_class"].as_str().unwrap()).unwrap();
    assert_eq!(per_class.lines().count(), 49, "{per_class}");
    assert!(per_class.starts_with("class,name,videos,correct,top1\n0,a red circle moving left,8,"));

    // Single-view evaluation of the last checkpoint reproduces the last validation.
    let evals = by_kind(&runs, "eval");
    let single = evals
        .iter()
        .find(|r| {
            r["spec"]["params"]["checkpoint"] == "last" && r["spec"]["params"]["reinit"] == false
        })
        .unwrap();
    assert_eq!(metric(single, "test/top1"), *top1.last().unwrap());
    assert_eq!(metric(single, "test/views"), 1.0);
    let multi = evals
        .iter()
        .find(|r| r["spec"]["eval"]["crops"] == 3)
        .unwrap();
    assert_eq!(metric(multi, "test/views"), 6.0);
    let t1 = metric(multi, "test/top1");
    assert!(t1 > CHANCE && t1 <= metric(multi, "test/top5"), "{multi}");
    let z = evals
        .iter()
        .find(|r| r["spec"]["params"]["reinit"] == true)
        .unwrap();
    assert!((0.0..=100.0).contains(&metric(z, "half/top1_mean")), "{z}");
    assert!(metric(z, "half/top1_std") >= 0.0);

    let ft = by_kind(&runs, "train")
        .into_iter()
        .find(|r| r["spec"]["needs"]["init"] == train["id"])
        .unwrap();
    let log = std::fs::read_to_string(
        env.results()
            .join("runs")
            .join(ft["id"].as_str().unwrap())
            .join("attempt-1.stderr.log"),
    )
    .unwrap();
    assert!(
        log.contains(&format!(
            "visual encoder, temporal head and logit scale from run {id}"
        )),
        "{log}"
    );
    assert!(metric(ft, "best/top1") > CHANCE, "{ft}");
}

#[test]
fn a_re_attempted_train_run_resumes_from_its_checkpoint() {
    resumes(&[], false);
    t4v_fault::record(
        "Process killed (SIGKILL)",
        "`train` sweep killed after an epoch's checkpoint, then rerun",
        1,
        "resumed after that epoch; every epoch's loss recorded once",
    );
}

/// The checkpoint damaged while no attempt ran (a flipped byte in its weights, which still
/// decode): the next attempt says so and starts from the beginning; every epoch is logged once.
#[test]
fn a_damaged_checkpoint_is_not_loaded_and_the_run_starts_afresh() {
    let log = resumes(&[], true);
    assert!(
        log.contains("not resuming: the checkpoint is unusable")
            && log.contains("model.mpk: its bytes do not match the checksum saved with it"),
        "{log}"
    );
    t4v_fault::record(
        "Damaged files",
        "`train` checkpoint: a flipped byte in model.mpk (which still decodes)",
        1,
        "not loaded: the log names the file and says the run starts afresh; every epoch once",
    );
}

#[test]
fn a_re_attempted_data_parallel_train_run_resumes_from_its_checkpoint() {
    let log = resumes(&["--devices-per-run", "2"], false);
    assert!(log.contains("data-parallel over 2 peers"), "{log}");
    t4v_fault::record(
        "Process killed (SIGKILL)",
        "data-parallel `train` sweep (2 peers) killed after an epoch's checkpoint, then rerun",
        1,
        "every peer resumed from the one checkpoint; every epoch once",
    );
}

/// Kills a `train` sweep (run with `args`) after its first checkpoint (then, with `damage`,
/// flips a byte of its weights), runs it again, checks the run resumed (or started afresh) and
/// logged every epoch once; the second attempt's log.
fn resumes(args: &[&str], damage: bool) -> String {
    let env = Env::new();
    let script = env.script(
        "r.rhai",
        r#"let s = sweep("r");
        let t = BASE; t.kind = "train";
        t.optim = #{ lr: 1e-3, epochs: 3, warmup_epochs: 1, batch_size: 32 };
        s.add(t);"#,
    );
    let mut sweep = vec!["sweep", script.to_str().unwrap()];
    sweep.extend(args);
    // Kill the coordinator (its worker dies with it) once epoch 1 is checkpointed.
    let (state, saved) = kill_when(&env, &sweep, |_| true);
    let at_kill = saved["epoch"].as_u64().unwrap();
    assert!((1..3).contains(&at_kill), "{saved}");
    if damage {
        let weights = state.with_file_name("model.mpk");
        let mut bytes = std::fs::read(&weights).unwrap();
        let n = bytes.len();
        bytes[n / 2] ^= 0x01;
        std::fs::write(&weights, bytes).unwrap();
    }

    let (r, log) = rerun(&env, &sweep);
    assert_eq!(
        log.contains(&format!(
            "resuming from the checkpoint after epoch {at_kill} (attempt 2)"
        )),
        !damage,
        "{log}"
    );
    let (steps, _) = env.series(r["id"].as_str().unwrap(), "train", "loss");
    assert_eq!(steps, [1, 2, 3], "every epoch once");
    let done: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(done["epoch"], 3);
    log
}

/// Kills the sweep that `args` start with SIGKILL once its run's `last` checkpoint satisfies
/// `when` (read as the worker writes it); the checkpoint's `state.json` and the loop state the
/// kill left in it.
fn kill_when(env: &Env, args: &[&str], when: impl Fn(&Value) -> bool) -> (PathBuf, Value) {
    let mut child = env.cmd(args).stderr(Stdio::null()).spawn().unwrap();
    let state = common::first_checkpoint(&env.results(), 300);
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        // A read may meet the folder mid-swap: try again.
        let now = std::fs::read_to_string(&state)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok());
        if now.as_ref().is_some_and(&when) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never reached");
        std::thread::sleep(Duration::from_millis(5));
    }
    unsafe { libc_kill(child.id() as i32, 9) };
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let saved = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    (state, saved)
}

/// Every series of a run (`split/name` → points), read with `show`.
fn all_series(env: &Env, id: &str) -> std::collections::BTreeMap<String, Value> {
    let o = env.cmd(&["show", id, "--json"]).output().unwrap();
    let show: Value = serde_json::from_slice(&o.stdout).unwrap();
    show["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                format!(
                    "{}/{}",
                    s["split"].as_str().unwrap(),
                    s["name"].as_str().unwrap()
                ),
                serde_json::json!({ "steps": s["steps"], "values": s["values"] }),
            )
        })
        .collect()
}

/// The one run of the sweep that `args` start, run again to completion after a kill (its first
/// attempt interrupted, the second succeeded), and the second attempt's log.
fn rerun(env: &Env, args: &[&str]) -> (Value, String) {
    let o = env.cmd(args).output().unwrap();
    let out = String::from_utf8_lossy(&o.stderr);
    assert!(out.contains("1 succeeded, 0 failed"), "{out}");
    let r = env.runs()[0].clone();
    assert_eq!(r["attempts"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(r["attempts"][0]["outcome"], "interrupted");
    let log = std::fs::read_to_string(
        env.results()
            .join("runs")
            .join(r["id"].as_str().unwrap())
            .join("attempt-2.stderr.log"),
    )
    .unwrap();
    (r, log)
}

/// A `train` run killed with SIGKILL in the middle of an epoch continues from its latest step
/// checkpoint on the same samples: every optimiser step's loss (`train/step_loss`), the epochs'
/// losses and the validation series equal those of an uninterrupted run bit for bit, and the
/// second attempt trains only the steps after the checkpoint.
#[test]
fn a_train_run_killed_mid_epoch_resumes_at_its_step_with_the_same_losses() {
    let body = r#"let s = sweep("m");
        let t = BASE; t.kind = "train";
        t.optim = #{ lr: 1e-3, epochs: 2, warmup_epochs: 1, batch_size: 32 };
        t.params = #{ checkpoint_every: 3 };
        s.add(t);"#;
    let whole = Env::new();
    let script = whole.script("m.rhai", body);
    assert!(whole.sweep(&script).contains("1 succeeded, 0 failed"));
    let id = whole.runs()[0]["id"].as_str().unwrap().to_string();
    let expected = all_series(&whole, &id);
    // 1152 training videos in micro-batches of 32: 36 steps an epoch.
    let steps = expected["train/step_loss"]["steps"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(steps, 72, "{}", expected["train/step_loss"]);

    let env = Env::new();
    let script = env.script("m.rhai", body);
    let sweep = ["sweep", script.to_str().unwrap()];
    let (_, saved) = kill_when(&env, &sweep, |s| s["iteration"].as_u64() >= Some(6));
    let (epoch, iteration) = (
        saved["epoch"].as_u64().unwrap(),
        saved["iteration"].as_u64().unwrap(),
    );
    assert!(
        iteration > 0 && iteration % 3 == 0,
        "killed mid-epoch: {saved}"
    );
    // (The two runs' ids differ: the specs name their own copies of the model.)
    let (r, log) = rerun(&env, &sweep);
    assert!(
        log.contains(&format!(
            "resuming from the checkpoint after step {iteration} of epoch {} (iteration {iteration} of 36, attempt 2)",
            epoch + 1
        )),
        "{log}"
    );
    let done = epoch * 36 + iteration;
    assert!(
        log.contains(&format!(
            "this attempt trained optimiser steps {} to 72 of 72",
            done + 1
        )),
        "no step trained twice: {log}"
    );
    let got = all_series(&env, r["id"].as_str().unwrap());
    assert_eq!(got, expected, "the series of an uninterrupted run");
    t4v_fault::record(
        "Process killed (SIGKILL)",
        "`train` sweep killed mid-epoch (checkpoints every 3 of 36 steps), then rerun",
        1,
        &format!(
            "resumed after step {iteration} of epoch {}; the 72 step losses, epoch losses and validation equal an uninterrupted run's bit for bit; no step trained twice",
            epoch + 1
        ),
    );
}

/// `pretrain` checkpoints (every step here) and a re-attempt continues where the killed one
/// stopped: its series and the model it saves equal an uninterrupted run's, byte for byte.
#[test]
fn a_killed_pretrain_run_resumes_to_the_same_model() {
    let body = r#"let s = sweep("p");
        s.add(#{ kind: "pretrain",
            model: #{ frames: 2, input_size: 32 },
            data: #{ dataset: "synthetic-pretrain" },
            optim: #{ epochs: 2, warmup_epochs: 1, lr: 1e-3, batch_size: 16 },
            params: #{ per_class: 2, width: 16, heads: 2, layers: 1, patch: 8, embed_dim: 48,
                       checkpoint_every: 1 } });"#;
    let whole = Env::new();
    let script = whole.script("p.rhai", body);
    assert!(whole.sweep(&script).contains("1 succeeded, 0 failed"));
    let id = whole.runs()[0]["id"].as_str().unwrap().to_string();
    let model = |env: &Env| {
        std::fs::read(
            env.results()
                .join("runs")
                .join(&id)
                .join("model/model.safetensors"),
        )
        .unwrap()
    };

    let env = Env::new();
    let script = env.script("p.rhai", body);
    let sweep = ["sweep", script.to_str().unwrap()];
    let (_, saved) = kill_when(&env, &sweep, |s| {
        s["epoch"].as_u64() == Some(1) || s["iteration"].as_u64() >= Some(2)
    });
    assert!(
        saved["epoch"].as_u64() < Some(2),
        "killed before the end: {saved}"
    );
    let (_, log) = rerun(&env, &sweep);
    assert!(
        log.contains(&format!(
            "resuming from the checkpoint after step {} of epoch {} (attempt 2)",
            saved["iteration"],
            saved["epoch"].as_u64().unwrap() + 1
        )),
        "{log}"
    );
    assert_eq!(all_series(&env, &id), all_series(&whole, &id));
    assert!(model(&env) == model(&whole), "the same weights");
    t4v_fault::record(
        "Process killed (SIGKILL)",
        "`pretrain` sweep killed after a step's checkpoint, then rerun",
        1,
        "resumed at that step; its series equal an uninterrupted run's and its model.safetensors is byte-identical",
    );
}

#[test]
fn probes_over_inits_share_one_features_run_and_nan_stops_a_run() {
    let env = Env::new();
    let bert = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/bert/fixtures/tiny-bert");
    let script = env.script(
        "p.rhai",
        &r#"let s = sweep("p");
        s.seeds([1, 2]);
        let f = BASE; f.kind = "features"; f.params = #{ split: "train", per_class: 4 };
        let train = s.add(f);
        let g = BASE; g.kind = "features"; g.params = #{ split: "test" };
        let test = s.add(g);
        let p = BASE; p.kind = "probe"; p.needs = #{ features: train, test: test };
        p.optim = #{ epochs: 6, warmup_epochs: 1, lr: 1e-2, batch_size: 32 };
        p.classifier = #{ text_model: "BERT" };
        s.add(grid(p, #{ "classifier.init": ["random", "lda", "class-mean", "text", "text-bert"] }));
        let t = BASE; t.kind = "train"; t.needs = #{ features: train };
        t.classifier = #{ init: "lda", shrinkage: 0.5 };
        t.optim = #{ epochs: 1, warmup_epochs: 0, batch_size: 32 };
        s.add(t);
        let bad = t; bad.optim = #{ lr: 1e9, epochs: 2, warmup_epochs: 0, batch_size: 32 };
        bad.classifier = #{ init: "random" }; bad.needs = #{};
        s.add(bad);"#
            .replace("BERT", &bert.display().to_string()),
    );
    let out = env.sweep(&script);
    // 2 seeds × (2 features + 5 probes + 2 trains): the NaN runs fail.
    assert!(out.contains("16 succeeded, 2 failed"), "{out}");
    let runs = env.runs();
    let features = by_kind(&runs, "features");
    assert_eq!(
        features.len(),
        4,
        "one train and one test features run per seed"
    );
    for f in &features {
        assert_eq!(f["attempts"].as_array().unwrap().len(), 1);
    }
    for p in by_kind(&runs, "probe") {
        let t1 = metric(p, "test/top1");
        assert!((0.0..=100.0).contains(&t1), "{p}");
    }
    // Probes whose W comes from visual statistics start far better than a random W.
    let probe = |init: &str, seed: u64| {
        runs.iter()
            .find(|r| {
                r["kind"] == "probe"
                    && r["spec"]["seed"] == seed
                    && r["spec"]["classifier"]["init"] == init
            })
            .unwrap()
    };
    for seed in [1, 2] {
        assert!(metric(probe("lda", seed), "test/top1") > CHANCE);
        assert_eq!(
            probe("text-bert", seed)["status"],
            "done",
            "text-bert through a projection"
        );
    }
    let trains = by_kind(&runs, "train");
    let failed: Vec<_> = trains.iter().filter(|r| r["status"] == "failed").collect();
    assert_eq!(failed.len(), 2);
    for r in failed {
        let reason = r["attempts"][0]["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("non-finite loss: train/loss = "),
            "{reason}"
        );
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}
