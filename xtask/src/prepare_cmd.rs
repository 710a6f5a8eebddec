//! `prepare <dataset> --out DST`: a downloaded dataset's videos as the reference's frame folders,
//! list files and label CSV (`t4v_datasets::prepare` does the work; this is its command line and
//! its progress display).

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use t4v_core::Registry;

#[derive(Args)]
pub struct PrepareArgs {
    // The downloaded dataset, in any layout `data` finds.
    #[command(flatten)]
    pub which: crate::data_cmd::DatasetArgs,
    /// Where the frames (`frames/`), lists (`lists/`), annotations and manifest go.
    #[arg(long)]
    pub out: PathBuf,
    /// The shorter side of the frames in pixels (default: the dataset's convention: 320 for
    /// Kinetics, 256 otherwise; 0 keeps the size).
    #[arg(long)]
    pub short_side: Option<u32>,
    /// Frames per second, or `native` (default: 30 for Kinetics, 1 for ActivityNet, native
    /// otherwise, as the reference's frames).
    #[arg(long)]
    pub fps: Option<String>,
    /// JPEG quality, 1–100.
    #[arg(long, default_value_t = 90)]
    pub quality: u8,
    /// Videos extracted at once (default: one per core).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Frame file names (default: the dataset's, e.g. `img_{:05}.jpg` for Kinetics).
    #[arg(long)]
    pub frame_pattern: Option<String>,
}

#[cfg(not(feature = "video"))]
pub fn run(_: &PrepareArgs, _: &Registry) -> Result<()> {
    bail!("prepare decodes videos: rebuild with `--features video` (FFmpeg and libjpeg-turbo)")
}

#[cfg(feature = "video")]
pub fn run(args: &PrepareArgs, registry: &Registry) -> Result<()> {
    use anyhow::Context;
    let which = &args.which;
    use std::io::IsTerminal;
    use std::time::{Duration, Instant};
    use t4v_core::DataOptions;
    use t4v_datasets::prepare::{self, Plan, Tick};

    let plugin = registry
        .dataset(&which.dataset)
        .with_context(|| format!("unknown dataset `{}`", which.dataset))?;
    let conv = plugin.frames().with_context(|| {
        format!(
            "dataset {} is drawn on demand: it has no videos to prepare",
            which.dataset
        )
    })?;
    let root = which.root()?;
    if !root.exists() {
        bail!("dataset {} not found at {}", which.dataset, root.display());
    }
    let fps = match args.fps.as_deref() {
        None => conv.fps,
        Some("native") => None,
        Some(f) => Some(
            f.parse::<f64>()
                .ok()
                .filter(|f| *f > 0.0 && f.is_finite())
                .with_context(|| format!("--fps {f}: a positive number or `native`"))?,
        ),
    };
    if !(1..=100).contains(&args.quality) {
        bail!("--quality {}: JPEG quality is 1–100", args.quality);
    }
    // Every official split's videos (HMDB-51 leaves some out of each), and each split's lists.
    let splits: Vec<u32> = if which.list.is_some() {
        vec![1]
    } else {
        (1..=conv.splits).collect()
    };
    let mut opened = Vec::new();
    for &k in &splits {
        let opts = DataOptions {
            root: root.clone(),
            list: which.list.clone(),
            labels: which.labels.clone(),
            split: k,
            frame_pattern: None,
        };
        let ds = match plugin.open(&opts) {
            Ok(ds) => ds,
            // A copy without the later official splits' files still prepares the first.
            Err(t4v_core::plugin::PluginError::File { path, message })
                if k > 1 && message == "not found" =>
            {
                println!("split {k}: skipped ({} not found)", path.display());
                continue;
            }
            Err(e) => {
                return Err(e).with_context(|| format!("reading dataset {}", which.dataset));
            }
        };
        let layout = ds.layout();
        if layout.found.is_none() {
            bail!(
                "dataset {}: no videos found under {}; looked for {}",
                which.dataset,
                root.display(),
                layout
                    .looked
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let suffix = if conv.splits > 1 && which.list.is_none() {
            format!("_split{k}")
        } else {
            String::new()
        };
        opened.push((suffix, ds));
    }
    let views: Vec<(String, &dyn t4v_core::Dataset)> = opened
        .iter()
        .map(|(s, d)| (s.clone(), d.as_ref()))
        .collect();
    let plan = Plan::of(&root, &views)?;
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let opts = prepare::Options {
        out: args.out.clone(),
        jobs,
        pattern: args
            .frame_pattern
            .clone()
            .unwrap_or_else(|| conv.pattern.to_string()),
        extract: t4v_video::extract::Options {
            short_side: args.short_side.unwrap_or(conv.short_side),
            fps,
            quality: args.quality,
        },
    };
    println!(
        "prepare {}: {} videos → {} frame folders in {} ({}, shorter side {}, {} fps, {jobs} at once)",
        which.dataset,
        plan.jobs.len(),
        plan.folders(),
        args.out.join("frames").display(),
        opts.pattern,
        opts.extract.short_side,
        prepare::fps_name(fps),
    );
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(plan.jobs.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} videos to extract, {msg} (ETA {eta})",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        b
    });
    let mut last = Instant::now();
    let summary = prepare::run(&plan, &opts, |t: &Tick| {
        // Progress and ETA count the videos this run extracts: those found done are no work.
        let (made, todo) = (t.done - t.skipped, t.total - t.skipped);
        let rate = t.frames as f64 / t.elapsed.as_secs_f64().max(1e-3);
        let msg = format!("{} frames/s, {} failed", rate.round(), t.failed);
        if let Some(b) = &bar {
            b.set_length(todo as u64);
            b.set_position(made as u64);
            b.set_message(msg);
        } else if last.elapsed() >= Duration::from_secs(10) || t.done == t.total {
            last = Instant::now();
            let eta =
                (made > 0).then(|| t.elapsed.as_secs_f64() / made as f64 * (todo - made) as f64);
            println!(
                "  {}/{} videos, {msg}{}",
                t.done,
                t.total,
                eta.map_or(String::new(), |s| format!(", about {s:.0} s left"))
            );
        }
    })?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let secs = summary.elapsed.as_secs_f64();
    println!(
        "{} videos extracted, {} already done, {} failed; {} frames in {secs:.1} s ({:.0} frames/s)",
        summary.made,
        summary.skipped,
        summary.failed,
        summary.frames,
        summary.frames as f64 / secs.max(1e-3)
    );
    for f in summary.manifest.failures.iter().take(10) {
        println!("  failed: {}", f.reason);
    }
    if summary.failed > 10 {
        println!(
            "  ... and {} more ({})",
            summary.failed - 10,
            args.out.join(prepare::MANIFEST).display()
        );
    }
    println!(
        "lists: {} and {}; manifest: {}",
        summary
            .manifest
            .lists
            .values()
            .map(|p| args.out.join(p).display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        args.out.join(&summary.manifest.labels).display(),
        args.out.join(prepare::MANIFEST).display()
    );
    let list = match (&which.list, summary.manifest.lists.get("list")) {
        (Some(_), Some(l)) => format!(
            " --list {} --labels {}",
            args.out.join(l).display(),
            args.out.join(&summary.manifest.labels).display()
        ),
        _ => String::new(),
    };
    println!(
        "read it with: cargo xtask data {} --root {}{list}",
        which.dataset,
        args.out.display()
    );
    Ok(())
}
