//! Compute benchmarks: the models' products, towers and training steps on the CPU (and CUDA in
//! a `--features cuda` build with a driver) against PyTorch in the same command.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing;
use burn::tensor::{Distribution, ElementConversion, Int, Tensor, TensorData};
use serde_json::Value;
use t4v_clip::{ClipConfig, ClipModel};
use t4v_fused::{FusedAutodiffBackend, FusedBackend, Mode, with_mode};
use t4v_train::parallel::Replicas;

use super::{Stats, cores, env_number, peer, python, rounds};

type Cpu = burn::backend::Flex;

fn script(name: &str) -> PathBuf {
    super::repo().join("crates/bench/peers").join(name)
}

/// Runs a PyTorch peer script with `threads` intra-op threads (and as many for MKL/OpenMP).
fn torch(name: &str, threads: usize, args: &[String]) -> Result<Option<Value>> {
    let mut cmd = std::process::Command::new(python());
    cmd.env("OMP_NUM_THREADS", threads.to_string())
        .env("MKL_NUM_THREADS", threads.to_string())
        .arg(script(name))
        .arg(threads.to_string())
        .args(args);
    peer(&mut cmd, "PyTorch")
}

/// The per-round values a peer reports under `key`.
pub fn peer_stats(v: &Value, key: &str) -> Result<Stats> {
    rounds_of(&v[key], key)
}

/// The statistics of one array of per-round values (`what` names it in errors).
fn rounds_of(values: &Value, what: &str) -> Result<Stats> {
    let values: Vec<f64> = values
        .as_array()
        .with_context(|| format!("the peer's `{what}`"))?
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    anyhow::ensure!(!values.is_empty(), "the peer reported no `{what}`");
    Ok(Stats::of(&values))
}

fn torch_version(v: &Value) -> &str {
    v["torch"].as_str().unwrap_or("?")
}

/// Prints the PyTorch peer's `key` (`  PyTorch <version><label>: median (range)`, `digits`
/// decimals) and returns its median; `None` when the peer did not run.
fn peer_median(
    theirs: &Option<Value>,
    key: &str,
    label: &str,
    digits: usize,
) -> Result<Option<f64>> {
    let Some(v) = theirs else { return Ok(None) };
    let s = peer_stats(v, key)?;
    println!("  PyTorch {}{label}: {}", torch_version(v), s.show(digits));
    Ok(Some(s.median))
}

/// The layers' products: `(m, k, n, what)`.
const SHAPES: &[(usize, usize, usize, &str)] = &[
    (400, 768, 2304, "ViT-B/32 ×8 images, Q/K/V"),
    (400, 768, 768, "ViT-B/32 ×8, attention output"),
    (400, 768, 3072, "ViT-B/32 ×8, MLP in"),
    (400, 3072, 768, "ViT-B/32 ×8, MLP out"),
    (1576, 768, 3072, "ViT-B/16 ×8 frames, MLP in"),
    (12480, 64, 256, "quickstart CLIP, MLP in"),
];

pub fn gemm() -> Result<()> {
    use t4v_fused::flex::gemm::{Engine, matmul};
    let r = rounds();
    println!(
        "matrix products of the layers (f32; weights as each holds them: ours dense [in, out], PyTorch's [out, in] read transposed), {} threads, {r} rounds of 10 products, GFLOP/s:",
        cores()
    );
    let shapes: Vec<Vec<usize>> = SHAPES.iter().map(|s| vec![s.0, s.1, s.2]).collect();
    let theirs = torch(
        "gemm_torch.py",
        cores(),
        &[serde_json::to_string(&shapes)?, r.to_string()],
    )?;
    for (i, &(m, k, n, what)) in SHAPES.iter().enumerate() {
        let mut rng = t4v_core::SplitMix64::new(i as u64);
        let a: Vec<f32> = (0..m * k).map(|_| rng.normal() as f32).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.normal() as f32).collect();
        let flops = 2.0 * (m * n * k) as f64;
        let measure = |engine: Engine| {
            std::hint::black_box(matmul(engine, &a, &b, m, k, n, false));
            let rates: Vec<f64> = (0..r)
                .map(|_| {
                    let t = Instant::now();
                    for _ in 0..10 {
                        std::hint::black_box(matmul(engine, &a, &b, m, k, n, false));
                    }
                    10.0 * flops / t.elapsed().as_secs_f64() / 1e9
                })
                .collect();
            Stats::of(&rates)
        };
        let (ours, crate_threads) = (measure(Engine::Split), measure(Engine::GemmCrate));
        let mut peer = String::new();
        if let Some(v) = &theirs {
            let s = rounds_of(&v["gflops"][i], "gflops")?;
            peer += &format!(", PyTorch {} (MKL) {}", torch_version(v), s.show(0));
            // Absent (null) when the peer's Python has no numpy.
            if !v["openblas"].is_null() {
                let s = rounds_of(&v["openblas"][i], "openblas")?;
                peer += &format!(
                    ", OpenBLAS (numpy {}) {}",
                    v["numpy"].as_str().unwrap_or("?"),
                    s.show(0)
                );
            }
        }
        println!(
            "  [{m}, {k}]·[{k}, {n}] ({what}): fused kernels {}, gemm crate's threading {}{peer}",
            ours.show(0),
            crate_threads.show(0)
        );
    }
    Ok(())
}

/// Milliseconds per image of the image tower, one value per round.
fn clip_rounds<B: FusedBackend>(r: usize) -> Vec<f64> {
    let device = B::Device::default();
    let model = ClipModel::<B>::init_random(&ClipConfig::default(), 0, &device);
    let pixels = Tensor::<B, 4>::random([8, 3, 224, 224], Distribution::Normal(0.0, 1.0), &device);
    model.encode_image(pixels.clone()).into_data(); // warm-up
    (0..r)
        .map(|_| {
            let t = Instant::now();
            model.encode_image(pixels.clone()).into_data();
            1000.0 * t.elapsed().as_secs_f64() / 8.0
        })
        .collect()
}

pub fn clip() -> Result<()> {
    let r = rounds();
    println!(
        "CLIP image tower, ViT-B/32, random weights, batch 8, 224², f32, {} threads, {r} rounds, ms/image:",
        cores()
    );
    let theirs = torch("clip_vision_torch.py", cores(), &[r.to_string()])?;
    let torch_ms = peer_median(
        &theirs,
        "ms_per_image",
        &format!(" (transformers CLIPModel, {} threads)", cores()),
        1,
    )?;
    let ratio = |ms: f64| match torch_ms {
        Some(t) => format!(" — {:.2}× PyTorch's time", ms / t),
        None => String::new(),
    };
    for (name, mode) in [
        ("fused (burn flex + t4v-fused)", Mode::Fused),
        (
            "decomposed (burn flex tensor ops, the path before fusion)",
            Mode::Decomposed,
        ),
    ] {
        let s = Stats::of(&with_mode(mode, || clip_rounds::<Cpu>(r)));
        println!("  {name}: {}{}", s.show(1), ratio(s.median));
    }
    #[cfg(feature = "ndarray")]
    {
        let s = Stats::of(&clip_rounds::<burn::backend::NdArray>(r));
        println!("  burn ndarray: {}{}", s.show(1), ratio(s.median));
    }
    Ok(())
}

/// The tiny synthetic configuration — the tiny-a CLIP fixture, Transf head, W drawn with seed
/// 7, one fixed batch of 8 synthetic clips of 4 frames: the loss before and after one AdamW
/// step.
fn tiny_step<B: FusedAutodiffBackend>(device: &B::Device) -> Result<(f64, f64)> {
    use burn::nn::loss::CrossEntropyLossConfig;
    use t4v_train::CosineClassifier;
    use t4v_train::model::VideoClassifier;
    // From the working directory when run from a checkout (or a copy of one on another
    // machine), else from the source tree this binary was built in.
    let rel = std::path::Path::new("crates/clip/fixtures/tiny-a");
    let dir = if rel.exists() {
        rel.to_path_buf()
    } else {
        super::repo().join("crates/clip/fixtures/tiny-a")
    };
    let (clip, _) = ClipModel::<B>::load(&dir, device)?;
    let d = clip.embed_dim();
    let w = t4v_inits::to_tensor::<B>(&t4v_inits::random(48, d, 7), device);
    let scale = clip.logit_scale.val();
    let model = VideoClassifier {
        encoder: t4v_train::ClipVideoEncoder::new(clip, &t4v_train::temporal::Transf, 7),
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

/// A ViT-B/16-sized video classifier (random weights, 8 frames of 224², Transf head, 400
/// classes): seconds of each of `steps` forward + backward + AdamW steps of `batch` clips
/// (after a warm-up), and the peak of live memory over them.
fn b16_steps<B: FusedAutodiffBackend>(
    device: &B::Device,
    batch: usize,
    steps: usize,
) -> Result<(Vec<f64>, usize)> {
    use burn::nn::loss::CrossEntropyLossConfig;
    use t4v_train::CosineClassifier;
    use t4v_train::model::VideoClassifier;
    let mut config = ClipConfig::default();
    config.vision_config.patch_size = 16;
    let clip = ClipModel::<B>::init_random(&config, 0, device);
    let d = clip.embed_dim();
    let w = t4v_inits::to_tensor::<B>(&t4v_inits::random(400, d, 1), device);
    let scale = clip.logit_scale.val();
    let mut model = VideoClassifier {
        encoder: t4v_train::ClipVideoEncoder::new(clip, &t4v_train::temporal::Transf, 1),
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
    let mut step = |m: VideoClassifier<B>| -> Result<VideoClassifier<B>> {
        let loss = ce.forward(m.forward_train(x.clone()), y.clone());
        let m = fitter.backward(m, loss.clone(), 1.0, true)?;
        loss.into_data();
        Ok(m)
    };
    model = step(model)?; // warm-up (and autotuning on CUDA)
    crate::memory().reset_peak();
    let base = crate::memory().live();
    let mut times = Vec::new();
    for _ in 0..steps {
        let t = Instant::now();
        model = step(model)?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok((times, crate::memory().peak().saturating_sub(base)))
}

pub fn train() -> Result<()> {
    println!("training step, tiny synthetic configuration (loss before / after one AdamW step):");
    let (c0, c1) = tiny_step::<Autodiff<Cpu>>(&Default::default())?;
    println!("  cpu (flex, f32): {c0:.7} / {c1:.7}");
    #[cfg(feature = "cuda")]
    if crate::cuda() {
        let (g0, g1) = tiny_step::<Autodiff<burn::backend::Cuda>>(&Default::default())?;
        let diff = (g0 - c0).abs().max((g1 - c1).abs());
        println!(
            "  cuda (f32): {g0:.7} / {g1:.7} — max |Δ| against the CPU {diff:.2e} ({} the 1e-4 tolerance)",
            if diff <= 1e-4 { "within" } else { "OUTSIDE" }
        );
        let (f0, f1) = with_mode(Mode::Decomposed, || {
            tiny_step::<Autodiff<burn::backend::Cuda>>(&Default::default())
        })?;
        println!(
            "  cuda (f32), decomposed: {f0:.7} / {f1:.7} — max |Δ| against the fused {:.2e}",
            (f0 - g0).abs().max((f1 - g1).abs())
        );
    }
    let batch: usize = env_number("T4V_BENCH_B16_BATCH", 1);
    let r = rounds().min(env_number("T4V_BENCH_STEPS", 3));
    println!(
        "ViT-B/16, 8 frames of 224², Transf head, 400 classes, forward + backward + AdamW step, batch {batch}, {} threads, {r} steps after a warm-up, clips/s:",
        cores()
    );
    let theirs = torch(
        "train_step_torch.py",
        cores(),
        &[r.to_string(), batch.to_string(), "8".into()],
    )?;
    let torch_cps = peer_median(&theirs, "clips_per_s", "", 3)?;
    let cps =
        |times: &[f64]| Stats::of(&times.iter().map(|t| batch as f64 / t).collect::<Vec<_>>());
    for (name, mode) in [("fused", Mode::Fused), ("decomposed", Mode::Decomposed)] {
        let (times, peak) = with_mode(mode, || {
            b16_steps::<Autodiff<Cpu>>(&Default::default(), batch, r)
        })?;
        let s = cps(&times);
        println!(
            "  cpu (flex, f32), {name}: {}{} — peak memory of a step {:.2} GB",
            s.show(3),
            torch_cps.map_or(String::new(), |t| format!(
                " — {:.2}× PyTorch's rate",
                s.median / t
            )),
            peak as f64 / 1e9
        );
    }
    let (times, peak) =
        b16_steps::<Autodiff<Cpu, BalancedCheckpointing>>(&Default::default(), batch, r)?;
    println!(
        "  cpu (flex, f32), fused, gradient checkpointing: {} — peak memory of a step {:.2} GB",
        cps(&times).show(3),
        peak as f64 / 1e9
    );
    #[cfg(feature = "cuda")]
    if crate::cuda() {
        cuda_train()?;
    }
    Ok(())
}

/// ViT-B/16 8-frame training on the GPU: f32 and bf16, against PyTorch AMP (bf16).
#[cfg(feature = "cuda")]
fn cuda_train() -> Result<()> {
    let batch: usize = env_number("T4V_BENCH_CUDA_BATCH", 16);
    let steps = 10;
    let theirs = torch(
        "train_step_torch.py",
        cores(),
        &[
            steps.to_string(),
            batch.to_string(),
            "8".into(),
            "cuda".into(),
        ],
    )?;
    if let Some(v) = &theirs {
        println!(
            "  cuda, PyTorch {} AMP (bf16), batch {batch}: {} clips/s, peak memory {:.1} GB",
            torch_version(v),
            peer_stats(v, "clips_per_s")?.show(1),
            v["peak_gb"].as_f64().unwrap_or(f64::NAN)
        );
    }
    for (name, times) in [
        (
            "f32",
            b16_steps::<Autodiff<burn::backend::Cuda>>(&Default::default(), batch, steps)?.0,
        ),
        (
            "bf16",
            b16_steps::<Autodiff<burn::backend::Cuda<burn::tensor::bf16>>>(
                &Default::default(),
                batch,
                steps,
            )?
            .0,
        ),
        (
            "f32, checkpointing",
            b16_steps::<Autodiff<burn::backend::Cuda, BalancedCheckpointing>>(
                &Default::default(),
                batch,
                steps,
            )?
            .0,
        ),
    ] {
        let s = Stats::of(&times.iter().map(|t| batch as f64 / t).collect::<Vec<_>>());
        // MFU: ≈ 3 × the forward FLOPs (a forward and a backward of twice its cost) of 8
        // frames of ViT-B/16 (17.6 GFLOP each) per clip, against the H200's 989 TFLOP/s dense
        // bf16 (the f32 rate on tensor cores, TF32, is half).
        let mfu = s.median * 3.0 * 8.0 * 17.6e9 / 989e12;
        println!(
            "  cuda ({name}), batch {batch}: {} clips/s, MFU {:.1} % of bf16 peak",
            s.show(1),
            100.0 * mfu
        );
    }
    Ok(())
}

/// The quickstart's pretraining model and batch: 96 caption/video pairs of 2 frames of 32².
fn pretrain_setup() -> Result<(ClipConfig, Vec<f32>, Vec<i64>)> {
    let config = t4v_train::runs::SmallClip {
        width: 64,
        layers: 2,
        heads: 4,
        patch: 4,
        embed: 64,
        context: 16,
        vocab: 28,
        image: 32,
    }
    .config()
    .map_err(anyhow::Error::msg)?;
    let mut rng = t4v_core::SplitMix64::new(5);
    let pixels: Vec<f32> = (0..96 * 2 * 3 * 32 * 32)
        .map(|_| rng.normal() as f32)
        .collect();
    // Captions of 3 to 6 words (start 2, words 4..27, end 3, padding 0).
    let ids: Vec<i64> = (0..96)
        .flat_map(|i| {
            let words = 3 + i % 4;
            let mut row = vec![2];
            row.extend((0..words).map(|w| 4 + ((i * 7 + w * 5) % 24) as i64));
            row.push(3);
            row.resize(16, 0);
            row
        })
        .collect();
    Ok((config, pixels, ids))
}

/// Seconds per pretraining step on `peers` peers, one value per round of `steps` steps.
fn pretrain_rounds(peers: usize, threads: usize, r: usize, steps: usize) -> Result<Vec<f64>> {
    type B = Autodiff<Cpu>;
    let (config, pixels, ids) = pretrain_setup()?;
    let device = Default::default();
    let model = ClipModel::<B>::init_random(&config, 0, &device);
    let spec = t4v_core::spec::OptimSpec {
        lr: 2e-3,
        weight_decay: 0.1,
        ..Default::default()
    };
    let mut replicas = Replicas::new(peers, threads, model, &device, |m, _| {
        Ok(t4v_train::fit::Fitter::new(&spec, 1, m))
    })?;
    let per = 2 * 3 * 32 * 32;
    let loss = |m: &ClipModel<B>, ctx: &t4v_train::parallel::PeerCtx<'_, B>| {
        let rows = ctx.rows.clone();
        let x = Tensor::<B, 5>::from_data(
            TensorData::new(
                pixels[rows.start * per..rows.end * per].to_vec(),
                [rows.len(), 2, 3, 32, 32],
            ),
            ctx.device,
        );
        let t = Tensor::<B, 2, Int>::from_data(
            TensorData::new(
                ids[rows.start * 16..rows.end * 16].to_vec(),
                [rows.len(), 16],
            ),
            ctx.device,
        );
        t4v_train::runs::contrastive_loss(m, ctx, x, t, 100f64.ln())
    };
    replicas.step(96, 1.0, true, &loss)?; // warm-up
    let mut out = Vec::new();
    for _ in 0..r {
        let t = Instant::now();
        for _ in 0..steps {
            replicas.step(96, 1.0, true, &loss)?;
        }
        out.push(t.elapsed().as_secs_f64() / steps as f64);
    }
    replicas.finish()?;
    Ok(out)
}

pub fn pretrain() -> Result<()> {
    let (r, steps) = (rounds(), 10);
    let n = cores();
    println!(
        "the quickstart's pretraining step: a CLIP of 2 × 64-wide blocks per tower, 96 caption/video pairs of 2 frames of 32² (65 tokens), symmetric InfoNCE, AdamW; {r} rounds of {steps} steps, ms/step:"
    );
    let dir = tempfile::tempdir()?;
    let (config, _, _) = pretrain_setup()?;
    std::fs::write(
        dir.path().join("config.json"),
        serde_json::to_string_pretty(&config.to_hf_json())?,
    )?;
    let theirs = torch(
        "pretrain_step_torch.py",
        n,
        &[
            dir.path().display().to_string(),
            r.to_string(),
            steps.to_string(),
        ],
    )?;
    let torch_ms = peer_median(&theirs, "ms_per_step", &format!(" ({n} threads)"), 1)?;
    let mut configs = vec![(1, n)];
    if n > 1 {
        configs.push((n, 1));
    }
    for (peers, threads) in configs {
        let ms: Vec<f64> = pretrain_rounds(peers, threads, r, steps)?
            .into_iter()
            .map(|s| 1000.0 * s)
            .collect();
        let s = Stats::of(&ms);
        println!(
            "  t4v, {peers} peer(s) × {threads} thread(s): {}{}",
            s.show(1),
            torch_ms.map_or(String::new(), |t| format!(
                " — {:.2}× PyTorch's time",
                s.median / t
            ))
        );
    }
    Ok(())
}

pub fn quickstart() -> Result<()> {
    let exe = crate::cli();
    let tmp = tempfile::tempdir()?;
    let results = tmp.path().join("results");
    let root = super::repo();
    let t = Instant::now();
    let o = std::process::Command::new(&exe)
        .arg("--results")
        .arg(&results)
        .args(["sweep", "experiments/quickstart.rhai", "--jobs", "2"])
        .current_dir(&root)
        .output()
        .context("running the quickstart")?;
    let took = t.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&o.stderr);
    anyhow::ensure!(
        o.status.success() && err.contains("0 failed"),
        "the quickstart failed: {}",
        err.lines().rev().take(5).collect::<Vec<_>>().join(" / ")
    );
    let runs: Value = serde_json::from_slice(
        &std::process::Command::new(&exe)
            .arg("--results")
            .arg(&results)
            .args(["runs", "--json"])
            .output()?
            .stdout,
    )?;
    let seconds = |kind: &str| -> f64 {
        runs.as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["kind"] == kind)
            .filter_map(|r| r["attempts"].as_array()?.last().cloned())
            .filter_map(|a| Some((a["ended_ms"].as_f64()? - a["started_ms"].as_f64()?) / 1000.0))
            .sum()
    };
    let t = Instant::now();
    let rep = std::process::Command::new(&exe)
        .arg("--results")
        .arg(&results)
        .args(["report", "quickstart"])
        .output()?;
    anyhow::ensure!(rep.status.success(), "the quickstart's report failed");
    println!(
        "the quickstart (`sweep experiments/quickstart.rhai --jobs 2`, {} runs, {} cores): {:.0} s ({}) — pretraining {:.0} s, probes {:.0} s of worker time; `report quickstart` {:.1} s",
        runs.as_array().map_or(0, Vec::len),
        cores(),
        took,
        t4v_sweep::progress::fmt_duration(std::time::Duration::from_secs_f64(took)),
        seconds("pretrain"),
        seconds("probe"),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
