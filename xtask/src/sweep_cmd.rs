//! `sweep <script>`: evaluate, plan, register, execute.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use t4v_core::{Provenance, Registry};
use t4v_store::Store;
use t4v_sweep::{Plan, SweepOptions, WorkerCommand};

use crate::backend;

#[derive(Args)]
pub struct SweepArgs {
    /// The sweep script (`experiments/<name>.rhai`).
    pub script: PathBuf,
    /// Runs executed at once.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// GPUs to lease, --devices-per-run per run (`0,1,2,3`); caps --jobs at their number.
    #[arg(long, value_delimiter = ',')]
    pub devices: Vec<String>,
    /// Data-parallel peers per run: each training run (`train`, `probe`, `pretrain`) splits
    /// every micro-batch over that many GPUs (from --devices) or, on the CPU, compute threads,
    /// and sums their gradients; the result is one device's at the same global batch.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub devices_per_run: u32,
    /// Compute backend of the runs.
    #[arg(long, default_value = "cpu", value_parser = clap::builder::PossibleValuesParser::new(backend::BACKENDS))]
    pub backend: String,
    /// Print the plan (new, done, failed, blocked) and run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Run failed runs again.
    #[arg(long)]
    pub retry_failed: bool,
    /// Run again the done runs whose dataset changed since they read it (annotations, media
    /// count or sizes), and what needs them.
    #[arg(long)]
    pub rerun_changed: bool,
    /// Stop the sweep at the first failed run.
    #[arg(long)]
    pub fail_fast: bool,
    /// Wall-clock limit per run, in seconds.
    #[arg(long)]
    pub timeout: Option<f64>,
    /// A script argument, read in the script with `arg("name", default)` (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
    pub set: Vec<(String, String)>,
    /// Where runs execute: `local` worker processes, or `slurm` job arrays (one task per run;
    /// options from `<results>/slurm.toml` and the `--slurm-*` flags).
    #[arg(long, default_value = "local", value_parser = ["local", "slurm"])]
    pub executor: String,
    /// Hand the runs that are ready to Slurm and return; `sweep` again (or `runs`, `report`)
    /// records what ended and follows the rest.
    #[arg(long)]
    pub detach: bool,
    #[command(flatten)]
    pub slurm: SlurmArgs,
}

/// Slurm options on the command line; each overrides its key in `<results>/slurm.toml`.
#[derive(Args, Default)]
#[command(next_help_heading = "Slurm (--executor slurm)")]
pub struct SlurmArgs {
    /// `--partition` of every task.
    #[arg(long, value_name = "NAME")]
    pub slurm_partition: Option<String>,
    /// `--account` to charge.
    #[arg(long, value_name = "NAME")]
    pub slurm_account: Option<String>,
    /// `--qos` of every task.
    #[arg(long, value_name = "NAME")]
    pub slurm_qos: Option<String>,
    /// `--time` of every task (Slurm's formats); --timeout overrides it.
    #[arg(long, value_name = "TIME")]
    pub slurm_time: Option<String>,
    /// `--mem` of every task (`64G`).
    #[arg(long, value_name = "SIZE")]
    pub slurm_mem: Option<String>,
    /// `--cpus-per-task` (default: a CPU run's data-parallel peers).
    #[arg(long, value_name = "N")]
    pub slurm_cpus_per_task: Option<u32>,
    /// GPUs per task, `--gres=gpu:N` (default: the run's devices with --backend cuda).
    #[arg(long, value_name = "N")]
    pub slurm_gpus_per_run: Option<u32>,
    /// GPU type in the request, `--gres=gpu:TYPE:N`.
    #[arg(long, value_name = "TYPE")]
    pub slurm_gpu_type: Option<String>,
    /// A further `sbatch` argument (repeatable): `--sbatch-arg=--constraint=a100`.
    #[arg(long = "sbatch-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub sbatch_args: Vec<String>,
}

impl SlurmArgs {
    fn config(&self) -> t4v_sweep::slurm::SlurmConfig {
        t4v_sweep::slurm::SlurmConfig {
            partition: self.slurm_partition.clone(),
            account: self.slurm_account.clone(),
            qos: self.slurm_qos.clone(),
            time: self.slurm_time.clone(),
            mem: self.slurm_mem.clone(),
            cpus_per_task: self.slurm_cpus_per_task,
            gpus_per_run: self.slurm_gpus_per_run,
            gpu_type: self.slurm_gpu_type.clone(),
            sbatch_args: self.sbatch_args.clone(),
        }
    }
}

/// [`sync_slurm`] for commands that read the store: where Slurm cannot be asked (no client on
/// this machine, the controller down) they show what the store holds, with a warning.
pub fn sync_slurm_or_warn(store: &Store, results: &Path) {
    if let Err(e) = sync_slurm(store, results) {
        eprintln!("warning: {e:#}; showing the store as it was");
    }
}

/// Records what Slurm tasks did since a coordinator last looked (the store must be held);
/// returns the attempts still queued or running. Says what it recorded on stderr.
pub fn sync_slurm(store: &Store, results: &Path) -> Result<Vec<t4v_sweep::slurm::Attached>> {
    let synced = t4v_sweep::slurm::sync(store, &std::path::absolute(results)?)
        .context("following the runs at Slurm")?;
    if !synced.concluded.is_empty() {
        let ok = synced
            .concluded
            .iter()
            .filter(|(_, o, _)| *o == t4v_store::AttemptOutcome::Succeeded)
            .count();
        eprintln!(
            "slurm: {} run(s) ended since a coordinator last looked ({ok} succeeded)",
            synced.concluded.len()
        );
        for (id, o, r) in &synced.concluded {
            if let Some(r) = r
                .as_ref()
                .filter(|_| *o != t4v_store::AttemptOutcome::Succeeded)
            {
                eprintln!("  {id}: {r}");
            }
        }
    }
    if !synced.attached.is_empty() {
        eprintln!(
            "slurm: {} run(s) still queued or running",
            synced.attached.len()
        );
    }
    Ok(synced.attached)
}

pub fn store_dir(results: &Path) -> PathBuf {
    results.join("store")
}

pub fn versions() -> std::collections::BTreeMap<String, String> {
    let mut v: std::collections::BTreeMap<String, String> = env!("T4V_VERSIONS")
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.insert("text4vis-rs".into(), env!("CARGO_PKG_VERSION").into());
    v
}

/// Returns the process exit code: 0 when the sweep ran to its end (failed runs are reported,
/// not fatal), 1 when --fail-fast stopped it, 130 or 143 when SIGINT or SIGTERM did.
pub fn run(results: &Path, args: &SweepArgs, registry: &Registry) -> Result<i32> {
    let file = args.script.display().to_string();
    let source = std::fs::read_to_string(&args.script)
        .with_context(|| format!("reading sweep script {file}"))?;
    let def = t4v_sweep::script::evaluate_with(
        &file,
        &source,
        registry,
        &args.set.iter().cloned().collect(),
    )?;
    for (i, d) in def.reports.iter().enumerate() {
        t4v_report::Declaration::from_json(d).with_context(|| {
            format!(
                "{file}: report declaration {} (`{}`)",
                i + 1,
                d.get("name").and_then(|n| n.as_str()).unwrap_or("unnamed")
            )
        })?;
    }
    let slurm = args.executor == "slurm";
    if args.detach && !slurm {
        anyhow::bail!("--detach needs --executor slurm (local workers end with their coordinator)");
    }
    // A Slurm coordinator (a login node) needs a CUDA build, not a GPU of its own.
    backend::check_for(&args.backend, !slurm)?;
    let gpus = if args.backend == "cpu" {
        0
    } else if args.devices.is_empty() {
        1
    } else {
        args.devices.len()
    };
    let too_big = t4v_sweep::unplaceable(&def, gpus, args.devices_per_run as usize);
    if let Some((id, n)) = too_big.first() {
        anyhow::bail!(
            "run {id} takes {n} GPUs (model.devices or --devices-per-run) but {}{}",
            if args.devices.is_empty() {
                "no --devices are listed (one GPU)".to_string()
            } else {
                format!("--devices lists {}", args.devices.len())
            },
            if too_big.len() > 1 {
                format!(" ({} more runs like it)", too_big.len() - 1)
            } else {
                String::new()
            }
        );
    }
    let dir = store_dir(results);

    if args.dry_run {
        let store = if dir.exists() {
            Some(Store::open(&dir)?)
        } else {
            None
        };
        let mut plan = Plan::new(&def, store.as_ref(), args.retry_failed)?;
        if let Some(store) = &store {
            plan.data_changed = data_changed(store, &def, &plan)?;
        }
        print!("{}", plan.changes(&def));
        print!("{}", plan.render(&def));
        say_changed(&plan, false, &mut std::io::stdout())?;
        return Ok(0);
    }

    let executor = if slurm {
        let cfg = t4v_sweep::slurm::SlurmConfig::load(results)?.overridden_by(args.slurm.config());
        t4v_sweep::ExecutorChoice::Slurm(cfg)
    } else {
        t4v_sweep::ExecutorChoice::Local
    };

    let store = Store::open(&dir)?;
    let attached = sync_slurm(&store, results)?;
    if !slurm && !attached.is_empty() {
        anyhow::bail!(
            "{} run(s) of earlier sweeps are still queued or running at Slurm; follow them with \
             `--executor slurm`, or stop them with `cargo xtask cancel <sweep>`",
            attached.len()
        );
    }
    let interrupted = store.recover_interrupted()?;
    if !interrupted.is_empty() {
        eprintln!(
            "{} run(s) were left running by a coordinator that stopped; they run again: {}",
            interrupted.len(),
            interrupted
                .iter()
                .map(|i| i.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut plan = Plan::new(&def, Some(&store), args.retry_failed)?;
    let changed = data_changed(&store, &def, &plan)?;
    if args.rerun_changed && !changed.is_empty() {
        for id in &changed {
            store.reopen(id, "its dataset changed since it ran (--rerun-changed)")?;
        }
        plan = Plan::new(&def, Some(&store), args.retry_failed)?;
    }
    plan.data_changed = changed;
    say_changed(&plan, args.rerun_changed, &mut std::io::stderr())?;
    eprint!("{}", plan.changes(&def));
    eprintln!("sweep `{}`: {}", def.name, plan.summary());

    let workdir = args
        .script
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let opts = SweepOptions {
        jobs: args.jobs,
        devices: args.devices.clone(),
        devices_per_run: args.devices_per_run as usize,
        backend: args.backend.clone(),
        timeout: args.timeout.map(Duration::from_secs_f64),
        fail_fast: args.fail_fast,
        results_dir: std::path::absolute(results).context("resolving --results")?,
        worker: WorkerCommand {
            program: std::env::current_exe().context("locating the xtask binary for workers")?,
            args: vec!["worker".into()],
        },
        provenance: Provenance::collect(workdir, &args.backend, versions()),
        snapshot: Some(crate::listing::snapshot_path(results)),
        executor,
        detach: args.detach,
    };
    // What Slurm would refuse (GPUs the cluster lacks, an unknown partition) is refused here,
    // before the sweep is recorded or anything submitted.
    if let t4v_sweep::ExecutorChoice::Slurm(cfg) = &opts.executor {
        let to_run: Vec<&t4v_sweep::PlannedRun> = def
            .runs
            .iter()
            .zip(&plan.states)
            .filter(|(_, s)| s.runs())
            .map(|(r, _)| r)
            .collect();
        t4v_sweep::slurm::validate(cfg, &opts, &to_run)
            .map_err(|(id, e)| anyhow::anyhow!("run {id}: {e}"))?;
    }
    t4v_sweep::plan::register(&store, &def, plan.previous.as_ref())?;
    t4v_sweep::interrupt::install();
    let out = t4v_sweep::scheduler::execute_with(&store, &def, &plan, &opts, attached)?;
    let skipped = plan.states.iter().filter(|s| !s.runs()).count();
    eprintln!(
        "sweep `{}` finished in {}: {} succeeded, {} failed, {} blocked, {} skipped (done or failed before){}",
        def.name,
        t4v_sweep::progress::fmt_duration(out.elapsed),
        out.succeeded,
        out.failed.len(),
        out.blocked.len(),
        skipped
            - plan
                .states
                .iter()
                .filter(|s| **s == t4v_sweep::PlanState::Blocked)
                .count(),
        if out.stopped > 0 {
            format!(", {} stopped", out.stopped)
        } else {
            String::new()
        }
    );
    for (id, reason) in &out.failed {
        eprintln!("  failed {id}: {reason}");
    }
    if args.detach {
        eprintln!(
            "detached: {} run(s) queued or running at Slurm{}; `cargo xtask sweep {} --executor \
             slurm` (or `runs`, `report`) records what ended, `cargo xtask cancel {}` stops them",
            out.detached,
            if out.waiting > 0 {
                format!(
                    ", {} waiting for them (a later `sweep` submits those)",
                    out.waiting
                )
            } else {
                String::new()
            },
            args.script.display(),
            def.name
        );
    }
    let failed_before = plan
        .states
        .iter()
        .filter(|s| **s == t4v_sweep::PlanState::Failed)
        .count();
    if failed_before > 0 {
        eprintln!(
            "  {failed_before} run(s) failed in an earlier sweep; --retry-failed runs them again"
        );
    }
    Ok(if let Some(sig) = out.signal {
        128 + sig
    } else if args.fail_fast && !out.failed.is_empty() {
        1
    } else {
        0
    })
}

/// The done runs whose data changed since they read it ([`t4v_sweep::plan::data_changed`]), the
/// current fingerprints taken once per dataset and split.
fn data_changed(
    store: &Store,
    def: &t4v_sweep::SweepDef,
    plan: &Plan,
) -> Result<Vec<t4v_core::RunId>> {
    let mut now: std::collections::HashMap<(String, u32), Option<String>> = Default::default();
    Ok(t4v_sweep::plan::data_changed(store, def, plan, |run| {
        let key = (run.spec.data.dataset.clone(), run.spec.data.split);
        now.entry(key.clone())
            .or_insert_with(|| {
                t4v_datasets::open_named(&key.0, key.1)
                    .ok()
                    .and_then(|d| d.fingerprint())
            })
            .clone()
    })?)
}

fn say_changed(plan: &Plan, rerun: bool, out: &mut dyn std::io::Write) -> Result<()> {
    if plan.data_changed.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = plan.data_changed.iter().map(|i| i.as_str()).collect();
    writeln!(
        out,
        "{} done run(s) read data that has changed since (or need such a run): {}{}",
        ids.len(),
        ids.join(", "),
        if rerun {
            "; they run again (--rerun-changed)"
        } else {
            "; --rerun-changed runs them again"
        }
    )?;
    Ok(())
}

fn parse_set(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{s}`: expected NAME=VALUE"))
}
