//! `report <sweep>`: tables and comparisons of a sweep from the run store (or, while a sweep
//! holds the store, from the snapshot its coordinator keeps). `--sweeps a,b` reports the runs
//! of several sweeps as one (a run named by two of them counted once), with the first one's
//! declarations.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;
use t4v_report::{Declaration, RunData, TableSpec};
use t4v_store::{Store, SweepRecord};

#[derive(clap::Args)]
pub struct ReportArgs {
    /// The sweep to report.
    #[arg(required_unless_present = "sweeps")]
    pub sweep: Option<String>,
    /// Several sweeps reported as one: their runs (each once, in the sweeps' order) under the
    /// first one's declarations.
    #[arg(long, value_delimiter = ',', conflicts_with = "sweep")]
    pub sweeps: Vec<String>,
    /// Output folder (default: `<results>/reports/<sweep>/`, `<a>+<b>/` for several).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Output formats.
    #[arg(long, value_delimiter = ',', default_value = "md,tex,csv,svg,png,pdf,html",
          value_parser = clap::builder::PossibleValuesParser::new(t4v_report::FORMATS))]
    pub format: Vec<String>,
    /// A table instead of the script's declarations, as `key=value` pairs separated by `;`:
    /// `rows=classifier.init;cols=data.shots;metric=test/top1;policy=best;kind=train`
    /// (`metrics=a,b` for several metrics; `precision=2`). Repeatable.
    #[arg(long)]
    pub table: Vec<String>,
}

/// A `--table` argument as a table declaration.
fn parse_table(text: &str, n: usize) -> Result<TableSpec> {
    let mut m = serde_json::Map::new();
    m.insert("name".into(), format!("table-{n}").into());
    for part in text.split(';').filter(|p| !p.trim().is_empty()) {
        let (k, v) = part
            .split_once('=')
            .with_context(|| format!("--table `{text}`: `{part}` is not key=value"))?;
        let (k, v) = (k.trim(), v.trim());
        let value: Value = match k {
            "rows" | "cols" | "metrics" => {
                Value::from(v.split(',').map(str::trim).collect::<Vec<_>>())
            }
            "precision" => Value::from(
                v.parse::<u64>()
                    .with_context(|| format!("--table: precision `{v}` is not a number"))?,
            ),
            "policy" => match v.strip_prefix("epoch:") {
                Some(e) => serde_json::json!({ "epoch": e.parse::<u64>()
                    .with_context(|| format!("--table: `{v}`: epoch:N"))? }),
                None => Value::from(v),
            },
            _ => Value::from(v),
        };
        m.insert(k.into(), value);
    }
    m.insert("type".into(), "table".into());
    match Declaration::from_json(&Value::Object(m)).with_context(|| format!("--table `{text}`"))? {
        Declaration::Table(t) => Ok(t),
        _ => unreachable!("type is table"),
    }
}

/// The sweep and its runs (in sweep order, with their series) from the store.
fn from_store(store: &Store, sweep: &str) -> Result<(SweepRecord, Vec<RunData>)> {
    let record = store
        .sweep(sweep)?
        .with_context(|| format!("no sweep `{sweep}` in the store"))?;
    let mut runs = Vec::with_capacity(record.runs.len());
    for id in &record.runs {
        if let Some(r) = store.run(id)? {
            runs.push(RunData {
                series: store.metrics(id)?,
                provenance: store.attempts(id)?.pop().map(|a| a.provenance),
                record: r,
            });
        }
    }
    Ok((record, runs))
}

pub fn run(results: &Path, args: &ReportArgs) -> Result<()> {
    let store = crate::listing::open(results, "reporting")?;
    let names: Vec<String> = args.sweep.iter().chain(&args.sweeps).cloned().collect();
    let Some(first) = names.first() else {
        anyhow::bail!("name a sweep (or several: --sweeps a,b)");
    };
    let (record, mut runs) = from_store(&store, first)?;
    for other in &names[1..] {
        let (_, more) = from_store(&store, other)?;
        for r in more {
            if !runs.iter().any(|x| x.record.id == r.record.id) {
                runs.push(r);
            }
        }
    }
    let name = names.join("+");
    let declarations: Vec<Declaration> = if args.table.is_empty() {
        record
            .reports
            .iter()
            .enumerate()
            .map(|(i, d)| {
                Declaration::from_json(d)
                    .with_context(|| format!("sweep `{first}`: report declaration {}", i + 1))
            })
            .collect::<Result<_>>()?
    } else {
        args.table
            .iter()
            .enumerate()
            .map(|(i, t)| parse_table(t, i + 1).map(Declaration::Table))
            .collect::<Result<_>>()?
    };
    let mut report = t4v_report::build(&name, &runs, &declarations)?;
    report.script = Some((record.script_path.clone(), record.script.clone()));
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| results.join("reports").join(&name));
    let formats: Vec<&str> = args.format.iter().map(String::as_str).collect();
    let written = report.write(&out, &formats)?;
    for t in &report.tables {
        println!("{}", t4v_report::render::markdown(t));
    }
    for c in &report.comparisons {
        println!("{}", t4v_report::render::comparison_markdown(c));
    }
    let n = |s: t4v_store::RunStatus| runs.iter().filter(|r| r.record.status == s).count();
    eprintln!(
        "{} runs ({} done, {} failed, {} pending or running); wrote {} files to {}",
        runs.len(),
        n(t4v_store::RunStatus::Done),
        n(t4v_store::RunStatus::Failed),
        n(t4v_store::RunStatus::Pending) + n(t4v_store::RunStatus::Running),
        written.len(),
        out.display()
    );
    Ok(())
}
