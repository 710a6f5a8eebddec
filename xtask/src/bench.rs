//! `bench`: benchmarks, printed one line per measurement.
//!
//! - `engine`: planning a sweep of N runs, registering it, the resume check against a store
//!   that holds it, and `runs --json` over it (the command as a user runs it).
//! - `clip`: the CLIP image tower (ViT-B/32 shapes, random weights, batch 8, 224²) on each CPU
//!   backend of the build, against PyTorch on the same machine and thread count.
//! - `data`: training clips from JPEG folders against a PIL pipeline.
//! - `lda`: the LDA init's fit at K400 scale (N = 24,000, D = 512, C = 400) against
//!   scikit-learn on the same data.
//! - `train`: the training step on every backend of the build — the loss of the tiny synthetic
//!   configuration (CPU against CUDA: the same numbers within a stated tolerance) and the
//!   throughput of a ViT-B/16-sized 8-frame forward/backward/step.
//! - `report`: the tables of a sweep of 10,000 runs with 30-epoch series, whole command.
//! - `probe`: a sweep of `probe` runs (6 inits × 3 seeds) on cached synthetic features, through
//!   the command line as a user runs it.

use std::time::Instant;

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use burn::tensor::{Distribution, Tensor, backend::Backend};
use t4v_clip::{ClipConfig, ClipModel};
use t4v_core::Registry;
use t4v_store::Store;
use t4v_sweep::Plan;

pub const NAMES: &[&str] = &["engine", "clip", "data", "lda", "probe", "report", "train"];

pub fn run(name: Option<&str>, runs: usize, registry: &Registry) -> Result<()> {
    if name.is_none_or(|n| n == "engine") {
        engine(runs, registry)?;
    }
    if name.is_none_or(|n| n == "clip") {
        clip()?;
    }
    if name.is_none_or(|n| n == "data") {
        data()?;
    }
    if name.is_none_or(|n| n == "lda") {
        lda()?;
    }
    if name.is_none_or(|n| n == "probe") {
        probe()?;
    }
    if name.is_none_or(|n| n == "report") {
        report(runs)?;
    }
    if name.is_none_or(|n| n == "train") {
        train()?;
    }
    Ok(())
}

/// Milliseconds per image of the image tower on backend `B`.
fn clip_ms_per_image<B: t4v_fused::FusedBackend>(iters: usize) -> f64 {
    let device = B::Device::default();
    let config = ClipConfig::default();
    let model = ClipModel::<B>::init_random(&config, 0, &device);
    let pixels = Tensor::<B, 4>::random([8, 3, 224, 224], Distribution::Normal(0.0, 1.0), &device);
    let sync = |t: Tensor<B, 2>| t.into_data();
    sync(model.encode_image(pixels.clone())); // warm-up
    let t = Instant::now();
    for _ in 0..iters {
        sync(model.encode_image(pixels.clone()));
    }
    1000.0 * t.elapsed().as_secs_f64() / (iters * 8) as f64
}

/// GFLOP/s of the ViT-B/32 MLP product for a batch of 8 (`[400, 768] · [768, 3072]`), the
/// operation that dominates the image tower.
fn gemm_gflops<B: Backend>() -> f64 {
    let device = B::Device::default();
    let a = Tensor::<B, 2>::random([400, 768], Distribution::Normal(0.0, 1.0), &device);
    let b = Tensor::<B, 2>::random([768, 3072], Distribution::Normal(0.0, 1.0), &device);
    a.clone().matmul(b.clone()).into_data();
    let iters = 20;
    let t = Instant::now();
    for _ in 0..iters {
        a.clone().matmul(b.clone()).into_data();
    }
    2.0 * 400.0 * 768.0 * 3072.0 * iters as f64 / t.elapsed().as_secs_f64() / 1e9
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

fn clip() -> Result<()> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let iters: usize = env_number("T4V_BENCH_ITERS", 3);
    println!(
        "CLIP image tower, ViT-B/32 shapes, random weights, batch 8, 224², fp32, {threads} threads, {iters} iterations:"
    );
    #[allow(unused_mut)]
    let mut results: Vec<(&str, f64, f64)> = vec![(
        "burn flex",
        clip_ms_per_image::<burn::backend::Flex>(iters),
        gemm_gflops::<burn::backend::Flex>(),
    )];
    #[cfg(feature = "ndarray")]
    results.push((
        "burn ndarray",
        clip_ms_per_image::<burn::backend::NdArray>(iters),
        gemm_gflops::<burn::backend::NdArray>(),
    ));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/clip_vision_torch.py");
    // PyTorch splits threads between its own pool (element-wise ops) and OpenBLAS (GEMM);
    // giving both the full count oversubscribes the cores. The peer is the faster of the two
    // ways to use `threads` threads. The machine also pins OpenBLAS to conservative kernels
    // through OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE; a benchmark peer runs with its best
    // kernels, so those are dropped for this command alone.
    let mut torch_ms: Option<f64> = None;
    for (torch_threads, blas_threads) in [(threads, 1), (1, threads)] {
        let mut cmd = std::process::Command::new(python());
        cmd.env_remove("OPENBLAS_CORETYPE")
            .env_remove("OPENBLAS_L2_SIZE")
            .env("OPENBLAS_NUM_THREADS", blas_threads.to_string())
            .env("OMP_NUM_THREADS", torch_threads.to_string())
            .arg(script)
            .arg(torch_threads.to_string())
            .arg(iters.to_string());
        let Some(v) = peer(&mut cmd, "PyTorch")? else {
            break;
        };
        let ms = v["ms_per_image"].as_f64().context("ms_per_image")?;
        println!(
            "  PyTorch {} (transformers CLIPModel), {torch_threads} torch thread(s), {blas_threads} BLAS thread(s): {ms:.1} ms/image",
            v["torch"].as_str().unwrap_or("?")
        );
        torch_ms = Some(torch_ms.map_or(ms, |t: f64| t.min(ms)));
    }
    for (name, ms, gflops) in results {
        match torch_ms {
            Some(t) => println!(
                "  {name}: {ms:.1} ms/image — {:.2}× the best PyTorch time (GEMM 400×768·768×3072: {gflops:.0} GFLOP/s)",
                ms / t
            ),
            None => {
                println!("  {name}: {ms:.1} ms/image (GEMM 400×768·768×3072: {gflops:.0} GFLOP/s)")
            }
        }
    }
    Ok(())
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
    let t = Instant::now();
    let def = t4v_sweep::script::evaluate("bench.rhai", &script, registry)?;
    let eval = t.elapsed();
    let plan = Plan::new(&def, None, false)?;
    let plan_fresh = t.elapsed();
    println!(
        "sweep of {} runs: evaluate script {:.3}s, evaluate + plan (empty store) {:.3}s",
        def.runs.len(),
        eval.as_secs_f64(),
        plan_fresh.as_secs_f64()
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

    let exe = std::env::current_exe()?;
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
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/data_pil.py");
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
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/lda_sklearn.py");
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
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/clip/fixtures");
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
    let raw: BTreeMap<&String, Vec<u8>> = out
        .iter()
        .map(|(k, (_, d))| (k, d.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = out
        .iter()
        .map(|(k, (s, _))| {
            let v = safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), &raw[k])
                .expect("consistent sizes");
            (k.clone(), v)
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors"))?;
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
    let bert =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/bert/fixtures/tiny-bert");
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
    let exe = std::env::current_exe()?;
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
    let exe = std::env::current_exe()?;
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

/// Two training steps of the tiny synthetic configuration (the tiny-a CLIP fixture, Transf head,
/// W drawn with seed 7, one fixed batch of 8 synthetic clips of 4 frames): the loss before and
/// after one AdamW step.
fn tiny_step<B: t4v_fused::FusedAutodiffBackend>(device: &B::Device) -> Result<(f64, f64)> {
    use burn::nn::loss::CrossEntropyLossConfig;
    use burn::tensor::{ElementConversion, TensorData};
    use t4v_train::CosineClassifier;
    use t4v_train::model::VideoClassifier;
    // From the working directory when run from a checkout (or a copy of one on another
    // machine), else from the source tree this binary was built in.
    let rel = std::path::Path::new("crates/clip/fixtures/tiny-a");
    let dir = if rel.exists() {
        rel.to_path_buf()
    } else {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/clip/fixtures/tiny-a")
    };
    let (clip, _) = ClipModel::<B>::load(&dir, device)?;
    let d = clip.embed_dim();
    let w = t4v_inits::to_tensor::<B>(&t4v_inits::random(48, d, 7), device);
    let scale = clip.logit_scale.val();
    let model = VideoClassifier {
        encoder: t4v_train::ClipVideoEncoder::new(clip, "transf", 7).map_err(anyhow::Error::msg)?,
        classifier: CosineClassifier::new(w, d, true, scale),
    };
    let ds = <t4v_datasets::Synthetic as t4v_core::DatasetPlugin>::open(
        &t4v_datasets::Synthetic,
        &Default::default(),
    )?;
    let source = t4v_datasets::source(ds.as_ref(), "train")?;
    let cfg = t4v_video::loader::LoaderConfig {
        batch: 8,
        frames: 4,
        mode: t4v_video::loader::Mode::Eval {
            resize: 37,
            size: 32,
        },
        workers: 1,
        prefetch: 8,
        seed: 3,
        shuffle: true,
        drop_last: true,
        on_error: t4v_video::loader::OnError::Fail,
    };
    let b = t4v_video::loader::epoch(source, cfg, 0)
        .next()
        .context("a batch")??;
    let x = Tensor::<B, 5>::from_data(TensorData::new(b.pixels, b.shape), device);
    let y = t4v_train::fit::targets::<B>(&b.labels, device);
    let ce = CrossEntropyLossConfig::new().init(device);
    let spec = t4v_core::spec::OptimSpec {
        lr: 1e-3,
        clip_ratio: 1.0,
        ..Default::default()
    };
    let mut fitter = t4v_train::fit::Fitter::new(&spec, 1, &model);
    let loss = ce.forward(model.forward_train(x.clone()), y.clone());
    let l0: f64 = loss.clone().into_scalar().elem();
    let model = fitter.backward(model, loss, 1.0, true)?;
    let l1: f64 = ce.forward(model.forward_train(x), y).into_scalar().elem();
    Ok((l0, l1))
}

/// Clips per second of forward + backward + AdamW step of a ViT-B/16-sized video classifier
/// (random weights, 8 frames of 224², Transf head, 400 classes), `batch` clips per step.
fn b16_throughput<B: t4v_fused::FusedAutodiffBackend>(
    device: &B::Device,
    batch: usize,
    steps: usize,
) -> Result<f64> {
    use burn::nn::loss::CrossEntropyLossConfig;
    use burn::tensor::{Int, TensorData};
    use t4v_train::CosineClassifier;
    use t4v_train::model::VideoClassifier;
    let mut config = ClipConfig::default();
    config.vision_config.patch_size = 16;
    let clip = ClipModel::<B>::init_random(&config, 0, device);
    let d = clip.embed_dim();
    let w = t4v_inits::to_tensor::<B>(&t4v_inits::random(400, d, 1), device);
    let scale = clip.logit_scale.val();
    let mut model = VideoClassifier {
        encoder: t4v_train::ClipVideoEncoder::new(clip, "transf", 1).map_err(anyhow::Error::msg)?,
        classifier: CosineClassifier::new(w, d, true, scale),
    };
    let x = Tensor::<B, 5>::random(
        [batch, 8, 3, 224, 224],
        Distribution::Normal(0.0, 1.0),
        device,
    );
    let y = Tensor::<B, 1, Int>::from_data(
        TensorData::new((0..batch as i64).collect::<Vec<_>>(), [batch]),
        device,
    );
    let ce = CrossEntropyLossConfig::new().init(device);
    let spec = t4v_core::spec::OptimSpec::default();
    let mut fitter = t4v_train::fit::Fitter::new(&spec, 1, &model);
    let mut step = |m: VideoClassifier<B>| {
        let loss = ce.forward(m.forward_train(x.clone()), y.clone());
        let m = fitter
            .backward(m, loss.clone(), 1.0, true)
            .expect("one device: no collective");
        loss.into_data();
        m
    };
    model = step(model); // warm-up (and autotuning on CUDA)
    let t = Instant::now();
    for _ in 0..steps {
        model = step(model);
    }
    Ok((batch * steps) as f64 / t.elapsed().as_secs_f64())
}

fn train() -> Result<()> {
    use burn::backend::Autodiff;
    println!("training step, tiny synthetic configuration (loss before / after one AdamW step):");
    let (c0, c1) = tiny_step::<Autodiff<burn::backend::Flex>>(&Default::default())?;
    println!("  cpu (flex, f32): {c0:.7} / {c1:.7}");
    #[cfg(feature = "cuda")]
    if crate::backend::check("cuda").is_ok() {
        let (g0, g1) = tiny_step::<Autodiff<burn::backend::Cuda>>(&Default::default())?;
        let diff = (g0 - c0).abs().max((g1 - c1).abs());
        println!(
            "  cuda (f32): {g0:.7} / {g1:.7} — max |Δ| against the CPU {diff:.2e} ({} the 1e-4 tolerance)",
            if diff <= 1e-4 { "within" } else { "OUTSIDE" }
        );
    }
    let cpu_batch: usize = env_number("T4V_BENCH_B16_BATCH", 1);
    println!("ViT-B/16, 8 frames of 224², Transf head, forward + backward + AdamW step:");
    let steps: usize = env_number("T4V_BENCH_STEPS", 1);
    let cps =
        b16_throughput::<Autodiff<burn::backend::Flex>>(&Default::default(), cpu_batch, steps)?;
    println!("  cpu (flex, f32), batch {cpu_batch}: {cps:.3} clips/s");
    #[cfg(feature = "cuda")]
    if crate::backend::check("cuda").is_ok() {
        for (name, cps) in [
            (
                "f32",
                b16_throughput::<Autodiff<burn::backend::Cuda>>(&Default::default(), 16, 10)?,
            ),
            (
                "bf16",
                b16_throughput::<Autodiff<burn::backend::Cuda<burn::tensor::bf16>>>(
                    &Default::default(),
                    16,
                    10,
                )?,
            ),
        ] {
            println!("  cuda ({name}), batch 16: {cps:.1} clips/s");
        }
    }
    Ok(())
}
