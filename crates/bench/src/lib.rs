//! Benchmarks, printed one line per measurement; [`BENCHES`] lists them (it is what the
//! command line's `bench --help` shows and what `bench` with no name runs, in order). Compute
//! benchmarks measure their peer — PyTorch 2.x from PyPI (`T4V_PYTHON`, default
//! `/opt/t4v-ref/bin/python`) — in the same command, over several rounds (`T4V_BENCH_ROUNDS`,
//! default 5), and print the median with the range. Peer scripts are in `peers/`.
//!
//! Errors go straight to the person running the benchmark, so this harness uses `anyhow` like
//! the command line that drives it.

pub mod alloc;
mod cluster;
mod compute;
mod frames;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use t4v_core::Registry;
use t4v_store::Store;
use t4v_sweep::Plan;

pub use alloc::{Counting, Memory};

/// What the command line running the benchmarks provides: itself (whole-command benchmarks
/// run it: sweeps, `prepare`, `report`), its allocator's counters (peak memory of a step) and
/// whether CUDA can run here.
pub struct Driver {
    pub cli: PathBuf,
    pub memory: &'static dyn Memory,
    pub cuda: bool,
}

/// Set once by [`run`]; a process runs benchmarks for one command line.
static DRIVER: OnceLock<Driver> = OnceLock::new();

fn driver() -> &'static Driver {
    DRIVER.get().expect("benchmarks run through t4v_bench::run")
}

fn cli() -> PathBuf {
    driver().cli.clone()
}

fn memory() -> &'static dyn Memory {
    driver().memory
}

#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn cuda() -> bool {
    driver().cuda
}

/// Writes f32 tensors (name → shape, values) as safetensors.
fn write_f32(
    path: &std::path::Path,
    tensors: &BTreeMap<String, (Vec<usize>, Vec<f32>)>,
) -> Result<()> {
    let raw = tensors
        .iter()
        .map(|(k, (shape, data))| {
            let t = t4v_clip::weights::RawTensor {
                shape: shape.clone(),
                data: data.clone(),
            };
            (k.clone(), t)
        })
        .collect();
    t4v_clip::weights::Export { tensors: raw }.write(path)?;
    Ok(())
}

/// A benchmark: its name on the command line, what it measures, and its body.
pub struct Bench {
    pub name: &'static str,
    pub about: &'static str,
    run: fn(&Ctx) -> Result<()>,
}

/// What benchmark bodies are given.
pub struct Ctx<'a> {
    /// Runs in the engine and report benchmarks' sweeps.
    pub runs: usize,
    pub registry: &'a Registry,
}

pub static BENCHES: &[Bench] = &[
    Bench {
        name: "engine",
        about: "planning a sweep of --runs runs, registering it, the resume check against a store that holds it, and `runs --json` over it",
        run: |c| engine(c.runs, c.registry),
    },
    Bench {
        name: "gemm",
        about: "the matrix products of the models' layers: the fused kernels' split products, the gemm crate's own threading (flex's matmul), and PyTorch's (MKL)",
        run: |_| compute::gemm(),
    },
    Bench {
        name: "clip",
        about: "the CLIP image tower (ViT-B/32, random weights, batch 8, 224²): fused, decomposed (the path before fusion), PyTorch",
        run: |_| compute::clip(),
    },
    Bench {
        name: "train",
        about: "the ViT-B/16 8-frame training step (forward, backward, AdamW) against PyTorch, with and without gradient checkpointing (peak memory), and the tiny configuration's loss on every backend of the build (CPU against CUDA)",
        run: |_| compute::train(),
    },
    Bench {
        name: "pretrain",
        about: "the quickstart's pretraining step (96 caption/video pairs, a 64-wide CLIP) on 1 and 2 data-parallel peers against PyTorch",
        run: |_| compute::pretrain(),
    },
    Bench {
        name: "data",
        about: "training clips from JPEG folders against a PIL pipeline",
        run: |_| data(),
    },
    Bench {
        name: "lda",
        about: "the LDA init's fit at K400 scale (N = 24,000, D = 512, C = 400) against scikit-learn",
        run: |_| lda(),
    },
    Bench {
        name: "probe",
        about: "sweeps of `probe` runs (6 inits × 3 seeds) on cached synthetic features through the command line; one run's training against PyTorch",
        run: |_| probe(),
    },
    Bench {
        name: "report",
        about: "the tables of a sweep of --runs runs with 30-epoch series, whole command",
        run: |c| report(c.runs),
    },
    Bench {
        name: "quickstart",
        about: "the whole quickstart (`sweep experiments/quickstart.rhai --jobs 2`) in a temporary results folder, and its report",
        run: |_| compute::quickstart(),
    },
    Bench {
        name: "prepare",
        about: "`prepare`'s frame extraction (UCF-101-like AVI and Kinetics-like MP4 clips, shorter side 256, every frame) against the ffmpeg command line per video, as many at once as cores",
        run: |_| frames::prepare(),
    },
    Bench {
        name: "slurm",
        about: "the selftest sweep (28 runs, --jobs 2) through local workers and through the Slurm that SLURM_CONF names (`.ci/slurm up`): wall time and per-run overhead",
        run: |_| cluster::slurm(),
    },
];

/// Runs the benchmark `name`, or all of them, for the command line `driver` describes.
pub fn run(name: Option<&str>, runs: usize, registry: &Registry, driver: Driver) -> Result<()> {
    if DRIVER.set(driver).is_err() {
        anyhow::bail!("benchmarks already ran in this process");
    }
    let ctx = Ctx { runs, registry };
    for b in BENCHES.iter().filter(|b| name.is_none_or(|n| n == b.name)) {
        (b.run)(&ctx)?;
    }
    Ok(())
}

/// The median and range of a set of measurements.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    pub fn of(values: &[f64]) -> Stats {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Stats {
            median,
            min: v[0],
            max: v[n - 1],
        }
    }

    /// `median (min–max)` with `digits` decimals.
    pub fn show(&self, digits: usize) -> String {
        format!(
            "{:.d$} ({:.d$}–{:.d$})",
            self.median,
            self.min,
            self.max,
            d = digits
        )
    }
}

/// Rounds of a measured benchmark.
fn rounds() -> usize {
    env_number("T4V_BENCH_ROUNDS", 5).max(1)
}

/// The cores of this machine.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The workspace root, where fixtures and peer scripts are read: the folder the binary was
/// built in, or — for a binary carried to another machine (a GPU host) — the current folder.
pub fn repo() -> std::path::PathBuf {
    let built = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if built.join("crates/bench/peers").is_dir() {
        built
    } else {
        std::env::current_dir().unwrap_or(built)
    }
}

fn python() -> String {
    std::env::var("T4V_PYTHON").unwrap_or_else(|_| {
        if std::path::Path::new("/opt/t4v-ref/bin/python").exists() {
            "/opt/t4v-ref/bin/python".into()
        } else {
            "python3".into()
        }
    })
}

/// Runs a Python peer script; its one line of JSON, or `None` (said on stdout) when the peer
/// cannot run here.
fn peer(cmd: &mut std::process::Command, what: &str) -> Result<Option<serde_json::Value>> {
    match cmd.output() {
        Ok(o) if o.status.success() => Ok(Some(
            serde_json::from_slice(&o.stdout)
                .with_context(|| format!("reading the {what} peer's output"))?,
        )),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            println!(
                "  {what} peer not available: {}",
                err.lines().last().unwrap_or("")
            );
            Ok(None)
        }
        Err(e) => {
            println!("  {what} peer not available: {e}");
            Ok(None)
        }
    }
}

/// A number from the environment (benchmark sizes), or `default`.
fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn engine(n: usize, registry: &Registry) -> Result<()> {
    let side = (n as f64).sqrt().ceil() as usize;
    let script = format!(
        "let s = sweep(\"bench\");\nlet base = #{{ kind: \"selftest\" }};\n\
         let d = []; for i in 0..{side} {{ d.push(1.0 + i.to_float() / 1000.0); }}\n\
         let e = []; for i in 0..{side} {{ e.push(i + 1); }}\n\
         let all = grid(base, #{{ \"params.difficulty\": d, \"params.epochs\": e }});\n\
         s.add(all.extract(0, {n}));\n"
    );
    let tmp = tempfile::tempdir()?;
    let live = crate::memory().live();
    crate::memory().reset_peak();
    let t = Instant::now();
    let def = t4v_sweep::script::evaluate("bench.rhai", &script, registry)?;
    let eval = t.elapsed();
    let plan = Plan::new(&def, None, false)?;
    let plan_fresh = t.elapsed();
    // What the limit on a sweep's runs (`script::MAX_RUNS`) bounds: memory per planned run.
    let held = crate::memory().live().saturating_sub(live);
    let peak = crate::memory().peak().saturating_sub(live);
    println!(
        "sweep of {} runs: evaluate script {:.3}s, evaluate + plan (empty store) {:.3}s; memory {:.1} KB per run held by the plan, {:.1} KB per run at the peak (limit {} runs)",
        def.runs.len(),
        eval.as_secs_f64(),
        plan_fresh.as_secs_f64(),
        held as f64 / def.runs.len() as f64 / 1e3,
        peak as f64 / def.runs.len() as f64 / 1e3,
        t4v_sweep::script::MAX_RUNS
    );
    anyhow::ensure!(plan.to_run() == def.runs.len());

    let store_dir = tmp.path().join("store");
    let store = Store::open(&store_dir)?;
    let t = Instant::now();
    t4v_sweep::plan::register(&store, &def, None)?;
    println!(
        "register {} runs in the store: {:.3}s",
        def.runs.len(),
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let def2 = t4v_sweep::script::evaluate("bench.rhai", &script, registry)?;
    store.recover_interrupted()?;
    let plan2 = Plan::new(&def2, Some(&store), false)?;
    println!(
        "resume check (evaluate + recover + plan against the store): {:.3}s — {}",
        t.elapsed().as_secs_f64(),
        plan2.summary()
    );
    drop(store);

    let exe = crate::cli();
    let t = Instant::now();
    let out = std::process::Command::new(&exe)
        .args(["--results"])
        .arg(tmp.path())
        .args(["runs", "--json"])
        .output()
        .context("running `runs --json`")?;
    let took = t.elapsed();
    anyhow::ensure!(
        out.status.success(),
        "runs --json failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    println!(
        "`runs --json` over {} runs (whole process): {:.3}s, {:.1} MB of JSON",
        v.as_array().map(|a| a.len()).unwrap_or(0),
        took.as_secs_f64(),
        out.stdout.len() as f64 / 1e6
    );
    Ok(())
}

/// Training clips per second from JPEG frame folders (256×340, 32 frames each): 8 frames,
/// TSN sampling, resize 256, Inception crop to 224, flip, grayscale, CLIP normalisation; the
/// loader with one worker per core, against the PIL pipeline of `bench/data_pil.py` in a
/// process pool of the same size.
fn data() -> Result<()> {
    use std::sync::Arc;
    use t4v_video::frames::FramePattern;
    use t4v_video::loader::{FolderSource, LoaderConfig, Mode, OnError, epoch};

    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let (videos, frames) = (48usize, 32usize);
    let tmp = tempfile::tempdir()?;
    let pattern = FramePattern::parse("img_{:05}.jpg")?;
    let mut list = Vec::new();
    for v in 0..videos {
        let dir = tmp.path().join(format!("v{v:03}"));
        std::fs::create_dir_all(&dir)?;
        let combo = t4v_video::synthetic::Combo {
            shape: v % 4,
            colour: v % 6,
            motion: v % 6,
        };
        let drawn = t4v_video::synthetic::render(combo, v as u64, 0, frames, 256);
        for (i, f) in drawn.iter().enumerate() {
            // A camera-like frame: the drawing stretched to 340×256, with texture.
            let img = image::RgbImage::from_fn(340, 256, |x, y| {
                let p = f.get_pixel(x * 256 / 340, y);
                let t = ((x as f32 * 0.07 + i as f32).sin() * 12.0 + (y as f32 * 0.05).cos() * 12.0)
                    as i32;
                image::Rgb(p.0.map(|c| (c as i32 + t).clamp(0, 255) as u8))
            });
            img.save(dir.join(pattern.name(i)))?;
        }
        list.push(t4v_video::Video {
            span: None,
            path: format!("v{v:03}").into(),
            label: v % 4,
            frames: None,
            source: "bench".into(),
            line: v + 1,
        });
    }
    let epochs: u64 = env_number("T4V_BENCH_EPOCHS", 2);
    println!(
        "training clips from JPEG folders ({videos} videos × {frames} frames of 340×256), 8 frames → 224², {threads} workers, {epochs} epochs:"
    );
    let source: Arc<dyn t4v_video::loader::ClipSource> = Arc::new(FolderSource {
        root: tmp.path().into(),
        videos: list,
        pattern,
    });
    let cfg = LoaderConfig {
        batch: 8,
        frames: 8,
        mode: Mode::Train(Default::default()),
        workers: threads,
        prefetch: 16,
        seed: 0,
        shuffle: true,
        drop_last: false,
        on_error: OnError::Fail,
    };
    epoch(source.clone(), cfg.clone(), 99)
        .take(1)
        .for_each(drop); // warm the page cache
    let t = Instant::now();
    let mut clips = 0;
    for e in 0..epochs {
        for b in epoch(source.clone(), cfg.clone(), e) {
            clips += b?.labels.len();
        }
    }
    let ours = clips as f64 / t.elapsed().as_secs_f64();
    let script = repo().join("crates/bench/peers/data_pil.py");
    let mut cmd = std::process::Command::new(python());
    cmd.arg(script)
        .arg(tmp.path())
        .arg(threads.to_string())
        .arg(epochs.to_string());
    match peer(&mut cmd, "Python")? {
        Some(v) => {
            let py = v["clips_per_s"].as_f64().context("clips_per_s")?;
            println!("  PIL + numpy, {threads} processes: {py:.1} clips/s");
            println!(
                "  t4v loader: {ours:.1} clips/s — {:.2}× the Python pipeline",
                ours / py
            );
        }
        None => println!("  t4v loader: {ours:.1} clips/s"),
    }
    Ok(())
}

/// The LDA init at the paper's scale: 60 videos × 400 classes of 512-d features (seeded
/// Gaussian clusters), shrinkage 0.1, against scikit-learn fitting the same data.
fn lda() -> Result<()> {
    let n_class: usize = env_number("T4V_BENCH_LDA_CLASSES", 400);
    let per: usize = 60;
    let d: usize = env_number("T4V_BENCH_LDA_DIM", 512);
    let n = n_class * per;
    let mut rng = t4v_core::SplitMix64::new(7);
    let centres: Vec<f64> = (0..n_class * d).map(|_| 0.5 * rng.normal()).collect();
    let mut x = nalgebra::DMatrix::<f64>::zeros(n, d);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let c = i / per;
        for j in 0..d {
            x[(i, j)] = centres[c * d + j] + rng.normal();
        }
        labels.push(c);
    }
    let repeats: usize = env_number("T4V_BENCH_ITERS", 3);
    println!("LDA fit (lsqr, shrinkage 0.1), N = {n}, D = {d}, C = {n_class}, best of {repeats}:");
    let mut ours = f64::INFINITY;
    let mut fit = None;
    for _ in 0..repeats {
        let t = Instant::now();
        fit = Some(t4v_inits::lda::fit(&x, &labels, n_class, Some(0.1))?);
        ours = ours.min(t.elapsed().as_secs_f64());
    }
    let fit = fit.expect("one repeat");
    let tmp = tempfile::tempdir()?;
    let (fx, fl, fc) = (
        tmp.path().join("x.f64"),
        tmp.path().join("y.i64"),
        tmp.path().join("coef.f64"),
    );
    let mut bytes = Vec::with_capacity(n * d * 8);
    for i in 0..n {
        for j in 0..d {
            bytes.extend(x[(i, j)].to_le_bytes());
        }
    }
    std::fs::write(&fx, bytes)?;
    std::fs::write(
        &fl,
        labels
            .iter()
            .flat_map(|&l| (l as i64).to_le_bytes())
            .collect::<Vec<u8>>(),
    )?;
    let script = repo().join("crates/bench/peers/lda_sklearn.py");
    let mut cmd = std::process::Command::new(python());
    cmd.env_remove("OPENBLAS_CORETYPE")
        .env_remove("OPENBLAS_L2_SIZE")
        .arg(script)
        .args([&fx, &fl])
        .args([
            n.to_string(),
            d.to_string(),
            "0.1".into(),
            repeats.to_string(),
        ])
        .arg(&fc);
    match peer(&mut cmd, "scikit-learn")? {
        Some(v) => {
            let theirs = v["seconds"].as_f64().context("seconds")?;
            let coef: Vec<f64> = std::fs::read(&fc)?
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect();
            let scale = coef.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            let diff = (0..n_class * d)
                .map(|k| (fit.coef[(k / d, k % d)] - coef[k]).abs())
                .fold(0.0f64, f64::max);
            println!(
                "  scikit-learn {} (numpy {}): {theirs:.2} s",
                v["sklearn"].as_str().unwrap_or("?"),
                v["numpy"].as_str().unwrap_or("?")
            );
            println!(
                "  t4v lda::fit (nalgebra): {ours:.2} s — {:.2}× scikit-learn's time; coefficients agree to {diff:.1e} (max |coef| {scale:.2})",
                ours / theirs
            );
        }
        None => println!("  t4v lda::fit (nalgebra): {ours:.2} s"),
    }
    Ok(())
}

/// A tiny CLIP with a 64-wide embedding (so 48 classes fit orthogonal rows): the tiny-a fixture
/// with new random projections, CLIP's full vocabulary and the real tokenizer.
fn probe_model(dir: &std::path::Path) -> Result<()> {
    use safetensors::{Dtype, SafeTensors};
    let fixtures = repo().join("crates/clip/fixtures");
    std::fs::create_dir_all(dir)?;
    let bytes = std::fs::read(fixtures.join("tiny-a/model.safetensors"))?;
    let st = SafeTensors::deserialize(&bytes)?;
    let mut rng = t4v_core::SplitMix64::new(64);
    let mut out: BTreeMap<String, (Vec<usize>, Vec<f32>)> = BTreeMap::new();
    for (name, view) in st.tensors() {
        anyhow::ensure!(view.dtype() == Dtype::F32, "{name} is not f32");
        let mut shape = view.shape().to_vec();
        let mut data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        if name.ends_with("projection.weight") {
            shape[0] = 64;
            data = (0..shape[0] * shape[1])
                .map(|_| 0.1 * rng.normal() as f32)
                .collect();
        } else if name == "text_model.embeddings.token_embedding.weight" {
            let more = (49408 - shape[0]) * shape[1];
            data.extend((0..more).map(|_| 0.02 * rng.normal() as f32));
            shape[0] = 49408;
        }
        out.insert(name, (shape, data));
    }
    write_f32(&dir.join("model.safetensors"), &out)?;
    let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        fixtures.join("tiny-a/config.json"),
    )?)?;
    cfg["projection_dim"] = 64.into();
    cfg["text_config"]["vocab_size"] = 49408.into();
    cfg["text_config"]["projection_dim"] = 64.into();
    cfg["vision_config"]["projection_dim"] = 64.into();
    std::fs::write(dir.join("config.json"), cfg.to_string())?;
    std::fs::copy(
        fixtures.join("tokenizer/tokenizer.json"),
        dir.join("tokenizer.json"),
    )?;
    Ok(())
}

/// A `probe` sweep over the six classifier inits × 3 seeds with the paper's recipe (30 epochs,
/// batch 256, Transf head), on cached features of the synthetic world (1,152 training and 384
/// test videos × 8 frames), timed as the whole `xtask sweep` command.
fn probe() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let model = tmp.path().join("model");
    probe_model(&model)?;
    let bert = repo().join("crates/bert/fixtures/tiny-bert");
    let features = format!(
        r#"let s = sweep("bench-probe");
        s.seeds([1, 2, 3]);
        let base = #{{ model: #{{ backbone: "{}", frames: 8, input_size: 32 }}, data: #{{ dataset: "synthetic" }} }};
        let f = base; f.kind = "features"; f.params = #{{ split: "train" }};
        let train = s.add(f);
        let g = base; g.kind = "features"; g.params = #{{ split: "test" }};
        let test = s.add(g);
        "#,
        model.display()
    );
    // The paper's head (Transf, W frozen), and a linear probe (mean pooling, W trained from
    // its init).
    let probes = |head: &str, frozen: bool, every: u32| {
        format!(
            r#"{features}
        let p = base; p.kind = "probe"; p.needs = #{{ features: train, test: test }};
        p.model.temporal_head = "{head}";
        p["eval"] = #{{ every: {every} }};
        p.classifier = #{{ text_model: "{}", frozen: {frozen} }};
        s.add(grid(p, #{{ "classifier.init": ["random", "orthogonal", "lda", "class-mean", "text", "text-bert"] }}));
        "#,
            bert.display()
        )
    };
    let exe = crate::cli();
    let jobs = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let sweep = |name: &str, text: &str| -> Result<f64> {
        let script = tmp.path().join(name);
        std::fs::write(&script, text)?;
        let t = Instant::now();
        let o = std::process::Command::new(&exe)
            .arg("--results")
            .arg(tmp.path().join("results"))
            .arg("sweep")
            .arg(&script)
            .args(["--jobs", &jobs.to_string()])
            .output()
            .context("running the sweep")?;
        let took = t.elapsed().as_secs_f64();
        let err = String::from_utf8_lossy(&o.stderr);
        anyhow::ensure!(
            o.status.success(),
            "sweep failed: {}",
            err.lines().rev().take(5).collect::<Vec<_>>().join(" / ")
        );
        Ok(took)
    };
    println!(
        "probe sweeps: 6 inits × 3 seeds, 30 epochs, batch 256, embeddings of width 64, `--jobs {jobs}`:"
    );
    let fe = sweep("features.rhai", &features)?;
    println!(
        "  features of 1,152 + 384 synthetic videos × 8 frames (once; the other seeds hit the cache): {fe:.1} s"
    );
    for (name, head, frozen, every) in [
        (
            "linear probe (mean pooling, W trained from its init), validation every epoch",
            "mean",
            false,
            1,
        ),
        (
            "the paper's head (Transf, W frozen), validation every epoch",
            "transf",
            true,
            1,
        ),
        (
            "the paper's head (Transf, W frozen), validation every 5 epochs",
            "transf",
            true,
            5,
        ),
    ] {
        let took = sweep(
            &format!("probes-{head}-{every}.rhai"),
            &probes(head, frozen, every),
        )?;
        println!(
            "  {name}: 18 runs in {took:.1} s ({:.2} s/run), whole `xtask sweep`",
            took / 18.0
        );
    }
    let mut cmd = std::process::Command::new(python());
    cmd.env("OMP_NUM_THREADS", "1")
        .arg(repo().join("crates/bench/peers/probe_torch.py"))
        .args(["1", &rounds().min(3).to_string()]);
    if let Some(v) = peer(&mut cmd, "PyTorch")? {
        let s = compute::peer_stats(&v, "s_per_run")?;
        println!(
            "  PyTorch {}: one run of the paper's head (validation every epoch) in one process on 1 thread (as each of the {jobs} workers computes): {} s, so 18 runs on {jobs} cores ≈ {:.1} s",
            v["torch"].as_str().unwrap_or("?"),
            s.show(2),
            18.0 * s.median / jobs as f64
        );
    }
    Ok(())
}

/// `report` over a sweep of N runs (40 × 50 settings × 5 seeds at 10,000) each with two
/// 30-epoch series: the store is filled through `import` (an export's format), then the
/// `report` command makes a table whose cells read the best epoch of every run.
fn report(n: usize) -> Result<()> {
    use std::fmt::Write as _;
    let tmp = tempfile::tempdir()?;
    let (seeds, cols) = (5usize, 50usize);
    let rows = n.div_ceil(seeds * cols);
    let mut ids = Vec::new();
    let mut lines = String::new();
    let mut k = 0u64;
    'outer: for r in 0..rows {
        for c in 0..cols {
            for seed in 0..seeds {
                if ids.len() == n {
                    break 'outer;
                }
                k += 1;
                let id = format!("{k:016x}");
                let spec = serde_json::json!({"kind": "selftest", "seed": seed,
                    "params": {"difficulty": 1.0 + r as f64 / 10.0, "sleep_ms": c}});
                let mut run = serde_json::json!({
                    "type": "run", "id": id, "setting": format!("{:016x}", r * cols + c),
                    "kind": "selftest", "spec": spec, "canonical": spec, "status": "done",
                    "sweeps": ["bench-report"], "attempts": 1, "created_ms": 0, "updated_ms": 0,
                    "summary": {}});
                let mut loss = Vec::new();
                let mut top1 = Vec::new();
                for e in 0..30 {
                    let x = (e + 1) as f64 / 30.0;
                    loss.push(2.0 / (1.0 + 3.0 * x) + 0.01 * seed as f64);
                    top1.push(100.0 * x / (1.0 + r as f64 / 40.0) - 0.1 * c as f64 + seed as f64);
                }
                run["summary"] = serde_json::json!({"train/loss": loss[29], "val/top1": top1[29]});
                writeln!(lines, "{run}")?;
                for (name, split, v) in [("loss", "train", &loss), ("top1", "val", &top1)] {
                    let series = serde_json::json!({"type": "series", "run": id, "split": split,
                        "name": name, "steps": (1..=30).collect::<Vec<u64>>(), "values": v});
                    writeln!(lines, "{series}")?;
                }
                ids.push(id);
            }
        }
    }
    let sweep = serde_json::json!({"type": "sweep", "name": "bench-report", "script_path": "bench",
        "script": "", "script_hash": "h", "runs": ids, "reports": [], "created_ms": 0,
        "updated_ms": 0, "revision": 1});
    let text = format!("{sweep}\n{lines}");
    let results = tmp.path().join("results");
    let t = Instant::now();
    {
        let store = Store::open(&results.join("store"))?;
        store.import_jsonl(text.as_bytes())?;
    }
    println!(
        "report of a sweep of {} runs × 2 series of 30 epochs ({:.1} MB export, imported in {:.2}s):",
        ids.len(),
        text.len() as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let exe = crate::cli();
    for (what, table) in [
        (
            "summary",
            "rows=params.difficulty;cols=params.sleep_ms;metric=val/top1",
        ),
        (
            "best epoch",
            "rows=params.difficulty;cols=params.sleep_ms;metric=val/top1;policy=best",
        ),
    ] {
        let mut best = f64::INFINITY;
        for _ in 0..env_number("T4V_BENCH_ITERS", 3) {
            let t = Instant::now();
            let o = std::process::Command::new(&exe)
                .arg("--results")
                .arg(&results)
                .args([
                    "report",
                    "bench-report",
                    "--format",
                    "md,tex,csv",
                    "--table",
                    table,
                ])
                .output()?;
            anyhow::ensure!(
                o.status.success(),
                "report failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "  `xtask report` (tables: md, tex, csv; {rows} × {cols} cells of {seeds} seeds, cells from the {what}), whole process: {best:.3}s"
        );
    }
    Ok(())
}
