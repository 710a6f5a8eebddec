//! `data <dataset>`: is the dataset wired right? Classes, videos per split, and the media that
//! are missing or unreadable.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use t4v_core::{DataOptions, Registry};

/// Which dataset, and where: `data` and `prepare` take it alike.
#[derive(Args)]
pub struct DatasetArgs {
    /// Dataset plugin (`cargo xtask plugins` lists them).
    pub dataset: String,
    /// The dataset's folder (default: $T4V_DATA_<NAME>, else $T4V_DATA/<name>).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// A list file of the reference (`path [frames] label`) instead of the official annotations.
    #[arg(long, requires = "labels")]
    pub list: Option<PathBuf>,
    /// The label CSV (`id,name`) of --list.
    #[arg(long)]
    pub labels: Option<PathBuf>,
}

impl DatasetArgs {
    /// The dataset's folder, or an error saying how to give it.
    pub fn root(&self) -> Result<PathBuf> {
        t4v_datasets::default_root(&self.dataset, self.root.as_deref()).with_context(|| {
            format!(
                "where is dataset {}? pass --root, or set T4V_DATA (or T4V_DATA_{})",
                self.dataset,
                self.dataset.to_uppercase()
            )
        })
    }
}

#[derive(Args)]
pub struct DataArgs {
    #[command(flatten)]
    pub which: DatasetArgs,
    /// Official split (1–3) of UCF-101 and HMDB-51.
    #[arg(long, default_value_t = 1)]
    pub split: u32,
    /// Frame file names, e.g. `img_{:05}.jpg` (default: the dataset's convention).
    #[arg(long)]
    pub frame_pattern: Option<String>,
    /// Read the annotations only; do not look at the media.
    #[arg(long)]
    pub annotations_only: bool,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &DataArgs, registry: &Registry) -> Result<()> {
    let which = &args.which;
    let plugin = registry.dataset(&which.dataset).with_context(|| {
        let known: Vec<&str> = registry.datasets.iter().map(|d| d.info().name).collect();
        format!(
            "unknown dataset `{}` (known: {})",
            which.dataset,
            known.join(", ")
        )
    })?;
    // A list read for its annotations alone needs no dataset folder.
    let lists_only = which.list.is_some() && args.annotations_only;
    let root = if !plugin.needs_root() {
        PathBuf::new()
    } else if lists_only {
        t4v_datasets::default_root(&which.dataset, which.root.as_deref()).unwrap_or_default()
    } else {
        let root = which.root()?;
        if !root.exists() && which.list.is_none() {
            bail!("dataset {} not found at {}", which.dataset, root.display());
        }
        root
    };
    let opts = DataOptions {
        root,
        list: which.list.clone(),
        labels: which.labels.clone(),
        split: args.split,
        frame_pattern: args.frame_pattern.clone(),
    };
    let ds = plugin
        .open(&opts)
        .with_context(|| format!("reading dataset {}", which.dataset))?;
    let layout = ds.layout();
    if layout.found.is_none() && !args.annotations_only {
        bail!(
            "dataset {}: no media found under {}; looked for {}",
            which.dataset,
            opts.root.display(),
            layout
                .looked
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut splits = serde_json::Map::new();
    let mut problems = Vec::new();
    for s in ds.splits() {
        splits.insert(s.clone(), ds.videos(&s)?.len().into());
        // `full` repeats the official splits' videos: their media are checked once, there.
        if !args.annotations_only && s != t4v_datasets::FULL {
            problems.extend(
                t4v_datasets::check::media(ds.as_ref(), &s)?
                    .into_iter()
                    .map(|p| (s.clone(), p)),
            );
        }
    }
    let classes = ds.class_names().len();
    if args.json {
        let v = serde_json::json!({
            "dataset": which.dataset,
            "classes": classes,
            "class_names": ds.class_names(),
            "splits": splits,
            "media": ds.media(),
            "layout": layout.found,
            "metrics": ds.metrics(),
            "zero_shot_half_classes": { "draws": t4v_video::protocol::HALF_CLASS_DRAWS, "classes_per_draw": classes / 2 },
            "problems": problems.iter().map(|(s, p)| serde_json::json!({"split": s, "file": p.file, "line": p.line, "reason": p.reason})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "{}: {classes} classes ({}, ...)",
        which.dataset,
        ds.class_names()
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (s, n) in &splits {
        println!("  {s:<6} {n} videos");
    }
    if let Some(found) = &layout.found {
        println!("  layout: {found}");
    }
    println!(
        "  zero-shot half-class protocol: {} draws of {} classes",
        t4v_video::protocol::HALF_CLASS_DRAWS,
        classes / 2
    );
    if args.annotations_only {
        println!("  media not checked (--annotations-only)");
    } else if problems.is_empty() {
        println!("  media: every video present and readable");
    } else {
        println!("  media: {} problem(s)", problems.len());
        for (s, p) in problems.iter().take(20) {
            println!("    {s} #{}: {}: {}", p.line, p.file.display(), p.reason);
        }
        if problems.len() > 20 {
            println!(
                "    ... and {} more (--json lists all)",
                problems.len() - 20
            );
        }
    }
    Ok(())
}
