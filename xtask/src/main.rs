//! `cargo xtask`: the text4vis-rs command line.

mod backend;
mod clip_cmd;
mod data_cmd;
mod listing;
mod prepare_cmd;
mod registry;
mod reliability;
mod report_cmd;
mod sweep_cmd;
mod test_cmd;

use std::path::PathBuf;

use anyhow::{Context, Result};

/// mimalloc: clips and batches are large, short-lived buffers; the system allocator maps and
/// unmaps them on every batch (a quarter of the loader's time in page faults).
#[global_allocator]
static ALLOC: t4v_bench::Counting<mimalloc::MiMalloc> =
    t4v_bench::Counting::new(mimalloc::MiMalloc);

unsafe extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_purge_delay` in the mimalloc that `libmimalloc-sys` bundles (its `mimalloc.h`).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// Keeps freed memory in the process instead of handing it back to the OS 10 ms later: a
/// training step frees and reallocates the same hundreds of megabytes of activations and
/// gradients, and taking them fresh from the OS each time (page faults, zeroed pages) cost a
/// quarter of a ViT-B/16 step on the CPU (0.188 → 0.246 clips/s). Like PyTorch's caching
/// allocator, the process keeps its peak.
fn keep_freed_memory() {
    // SAFETY: plain C calls into the linked mimalloc; the option is an integer setting.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "xtask",
    version,
    about = "text4vis-rs: sweeps of video-recognition experiments, their runs and results"
)]
struct Cli {
    /// Results folder: the run store, run folders, caches and reports.
    #[arg(long, global = true, env = "T4V_RESULTS", default_value = "results")]
    results: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a sweep script: plan its runs, skip finished ones, execute the rest in workers.
    Sweep(sweep_cmd::SweepArgs),
    /// List runs.
    Runs {
        /// Only runs of this sweep.
        #[arg(long)]
        sweep: Option<String>,
        /// Only runs with this status (pending, running, done, failed).
        #[arg(long)]
        status: Option<t4v_store::RunStatus>,
        /// A JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one run: spec, attempts, metric series, artefacts.
    Show {
        /// A run id or a unique prefix of one.
        run: String,
        #[arg(long)]
        json: bool,
    },
    /// List the run kinds and plugins specs can name.
    Plugins {
        #[arg(long)]
        json: bool,
    },
    /// Tables (Markdown, LaTeX, CSV) and paired comparisons of a sweep's runs.
    Report(report_cmd::ReportArgs),
    /// Write the whole store as JSON lines.
    Export {
        /// Output file (default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Read an export (`export --out FILE`) into the store.
    Import {
        /// A file written by `export`.
        file: PathBuf,
    },
    /// Download a CLIP checkpoint (config, weights, tokenizer) into the Hugging Face cache.
    Fetch {
        /// A Hugging Face model id, e.g. `openai/clip-vit-base-patch32`.
        model: String,
    },
    /// Check a dataset: classes, videos per split, missing or unreadable media.
    Data(data_cmd::DataArgs),
    /// Extract a downloaded dataset's videos into the reference's frame folders (resized,
    /// resampled, JPEG), with its list files, label CSV and a manifest; resumable.
    Prepare(prepare_cmd::PrepareArgs),
    /// Embed texts and/or images with a CLIP checkpoint into a safetensors file.
    Embed(clip_cmd::EmbedArgs),
    /// Benchmarks against their peers (PyTorch, scikit-learn, PIL), measured in the same
    /// command (BENCHMARKS.md keeps the figures). All when no name is given.
    Bench {
        /// Which benchmark.
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(
            t4v_bench::BENCHES.iter().map(|b| clap::builder::PossibleValue::new(b.name).help(b.about))
        ))]
        name: Option<String>,
        /// Runs in the engine benchmark's sweep.
        #[arg(long, default_value_t = 10_000)]
        runs: usize,
    },
    /// Run the fault-injection and hostile-input tests and write RELIABILITY.md from the
    /// figures they record (a source checkout with its toolchain).
    Reliability {
        /// Trials of every randomised test (kills, damaged bytes, property cases); default:
        /// the suite's own counts.
        #[arg(long)]
        trials: Option<u64>,
        /// Where to write (default: RELIABILITY.md at the workspace root).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Stop a sweep's runs at Slurm (`scancel`) and record them as interrupted: the next
    /// `sweep` runs them again.
    Cancel {
        /// The sweep's name.
        sweep: String,
    },
    /// The test suite on a fresh machine: installs (or names) the system packages and weights
    /// it needs, starts a single-node Slurm, sets the tests' variables, runs `cargo test`
    /// (`cargo xtask-test`, a debug build, the same profile as the suite).
    Test(test_cmd::TestArgs),
    /// Execute one run (started by the sweep coordinator; not for direct use).
    #[command(hide = true)]
    Worker {
        job: PathBuf,
        /// Where events go: `stdout` (a pipe to the coordinator) or `file` (the attempt's
        /// event file in its run folder, for a batch system's task).
        #[arg(long, default_value = "stdout", value_parser = ["stdout", "file"])]
        events: String,
    },
}

fn main() -> Result<()> {
    keep_freed_memory();
    let cli = Cli::parse();
    let results = cli.results.clone();
    run(cli).map_err(|e| out_of_space(e, &results))
}

/// An error caused by a full disk says so, with where and what to do: what the store holds
/// stays (it writes whole records or none), and the next `sweep` recovers the runs left running.
fn out_of_space(e: anyhow::Error, results: &std::path::Path) -> anyhow::Error {
    let full = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::StorageFull)
            || c.to_string().contains("No space left on device")
    });
    if !full {
        return e;
    }
    e.context(format!(
        "out of space under {}: free some (or move the results folder to a bigger disk, with \
         --results there) and run the command again; what the store holds is kept, and the runs \
         this left running are recorded interrupted and run again",
        results.display()
    ))
}

fn run(cli: Cli) -> Result<()> {
    let registry = registry::REGISTRY;
    match cli.command {
        Cmd::Worker { job, events } => {
            let events = match events.as_str() {
                "file" => t4v_sweep::worker::Events::File,
                _ => t4v_sweep::worker::Events::Stdout,
            };
            std::process::exit(t4v_sweep::worker::run(&job, &registry, events))
        }
        Cmd::Reliability { trials, out } => {
            reliability::run(trials, &out.unwrap_or_else(reliability::default_out))
        }
        Cmd::Cancel { sweep } => listing::cancel(&cli.results, &sweep),
        Cmd::Sweep(args) => {
            let code = sweep_cmd::run(&cli.results, &args, &registry)?;
            std::process::exit(code)
        }
        Cmd::Runs {
            sweep,
            status,
            json,
        } => listing::runs(&cli.results, sweep.as_deref(), status, json),
        Cmd::Show { run, json } => listing::show(&cli.results, &run, json),
        Cmd::Plugins { json } => listing::plugins(&registry, json),
        Cmd::Report(args) => report_cmd::run(&cli.results, &args),
        Cmd::Export { out } => listing::export(&cli.results, out.as_deref()),
        Cmd::Import { file } => listing::import(&cli.results, &file),
        Cmd::Fetch { model } => clip_cmd::fetch(&model),
        Cmd::Embed(args) => clip_cmd::embed(&args),
        Cmd::Data(args) => data_cmd::run(&args, &registry),
        Cmd::Prepare(args) => prepare_cmd::run(&args, &registry),
        Cmd::Test(args) => test_cmd::run(&args),
        Cmd::Bench { name, runs } => t4v_bench::run(
            name.as_deref(),
            runs,
            &registry,
            t4v_bench::Driver {
                cli: std::env::current_exe().context("locating the xtask binary")?,
                memory: &ALLOC,
                cuda: backend::check("cuda").is_ok(),
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    unsafe extern "C" {
        fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
    }

    #[test]
    fn freed_memory_stays_with_the_process() {
        super::keep_freed_memory();
        // SAFETY: a plain C call into the linked mimalloc.
        assert_eq!(unsafe { mi_option_get(super::MI_OPTION_PURGE_DELAY) }, -1);
    }
}
