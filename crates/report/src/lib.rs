//! Reports from the run store: the runs of a sweep as a polars DataFrame ([`frame`]), tables
//! declared in the sweep script or on the command line ([`table`]), paired comparisons over
//! seeds ([`compare`], [`stats`]), written as Markdown, LaTeX and CSV ([`render`]).

pub mod compare;
pub mod figures;
pub mod frame;
pub mod html;
pub mod pdf;
pub mod reference;
pub mod render;
pub mod stats;
pub mod table;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

pub use compare::{CompareSpec, Comparison};
pub use figures::{Figure, FigureSpec};
pub use frame::{Policy, RunData};
pub use table::{Table, TableSpec};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0}")]
    Spec(String),
    #[error(transparent)]
    Polars(#[from] polars::error::PolarsError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A report declaration, as a sweep script records it (`s.table(...)`, `s.compare(...)`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Declaration {
    Table(TableSpec),
    Compare(CompareSpec),
    Figure(FigureSpec),
}

impl Declaration {
    /// Parses a recorded declaration, naming the key at fault.
    pub fn from_json(v: &Value) -> Result<Declaration, ReportError> {
        serde_path_to_error::deserialize(v).map_err(|e| {
            ReportError::Spec(format!(
                "report declaration, field `{}`: {}",
                e.path(),
                e.inner()
            ))
        })
    }
}

/// Output formats.
pub const FORMATS: &[&str] = &["md", "tex", "csv", "svg", "png", "pdf", "html"];

/// The report of one sweep.
pub struct Report {
    pub sweep: String,
    pub tables: Vec<Table>,
    pub comparisons: Vec<Comparison>,
    pub figures: Vec<Figure>,
    /// The sweep script (path, text), for the HTML page.
    pub script: Option<(String, String)>,
    /// Runs by status, and the distinct provenances of their last attempts with counts.
    pub counts: BTreeMap<String, usize>,
    pub provenance: Vec<(String, usize)>,
    /// Every run: spec fields and the metrics the declarations read.
    pub runs: polars::prelude::DataFrame,
}

/// The default table when a sweep declares none: every varying field as rows, the summary
/// metrics that every done run of the commonest kind has as columns.
pub fn default_tables(runs: &[RunData]) -> Vec<TableSpec> {
    let mut kinds: Vec<(String, usize)> = Vec::new();
    for r in runs {
        match kinds.iter_mut().find(|k| k.0 == r.record.kind) {
            Some(k) => k.1 += 1,
            None => kinds.push((r.record.kind.clone(), 1)),
        }
    }
    kinds
        .into_iter()
        .filter_map(|(kind, _)| {
            let done: Vec<&RunData> = runs
                .iter()
                .filter(|r| r.record.kind == kind && r.record.status == t4v_store::RunStatus::Done)
                .collect();
            let first = done.first()?;
            let metrics: Vec<String> = first
                .record
                .summary
                .keys()
                .filter(|m| done.iter().all(|r| r.record.summary.contains_key(*m)))
                .cloned()
                .collect();
            (!metrics.is_empty()).then(|| TableSpec {
                name: kind.clone(),
                rows: Vec::new(),
                cols: Vec::new(),
                metric: None,
                metrics,
                policy: Policy::Summary,
                kind: Some(kind),
                filter: Default::default(),
                precision: 2,
                reference: false,
            })
        })
        .collect()
}

/// The figures of a sweep without declarations: for each run kind, each per-epoch series its
/// finished runs all have (per-step series such as `train/step_loss` left out) as curves
/// against the epoch, one per setting of the fields that vary among those runs (mean ± std
/// over seeds).
pub fn default_figures(runs: &[RunData]) -> Vec<FigureSpec> {
    let mut kinds: Vec<String> = Vec::new();
    for r in runs {
        if !kinds.contains(&r.record.kind) {
            kinds.push(r.record.kind.clone());
        }
    }
    let mut out = Vec::new();
    for kind in kinds {
        let done: Vec<&RunData> = runs
            .iter()
            .filter(|r| r.record.kind == kind && r.record.status == t4v_store::RunStatus::Done)
            .collect();
        let Some(first) = done.first() else {
            continue;
        };
        let flats: Vec<BTreeMap<String, String>> = done
            .iter()
            .map(|r| frame::flatten(&r.record.spec))
            .collect();
        let group = frame::varying_fields(flats.iter());
        for ((split, name), series) in &first.series {
            let shared = done.iter().all(|r| {
                r.series
                    .get(&(split.clone(), name.clone()))
                    .is_some_and(|s| s.points().len() > 1)
            });
            if !shared || name.contains("step") || series.points().len() < 2 {
                continue;
            }
            let spec = serde_json::json!({
                "name": format!("{kind}-{split}-{name}"),
                "plot": "curve",
                "metric": format!("{split}/{name}"),
                "kind": kind,
                "group": group,
                "title": format!("{kind}: {split}/{name} per epoch"),
            });
            out.push(serde_json::from_value(spec).expect("a curve figure"));
        }
    }
    out
}

/// Builds the report of `runs` (the runs of sweep `sweep`, in sweep order) for `declarations`
/// (the defaults when empty).
pub fn build(
    sweep: &str,
    runs: &[RunData],
    declarations: &[Declaration],
) -> Result<Report, ReportError> {
    let mut tables: Vec<TableSpec> = declarations
        .iter()
        .filter_map(|d| match d {
            Declaration::Table(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    let compares: Vec<&CompareSpec> = declarations
        .iter()
        .filter_map(|d| match d {
            Declaration::Compare(c) => Some(c),
            _ => None,
        })
        .collect();
    let mut figure_specs: Vec<FigureSpec> = declarations
        .iter()
        .filter_map(|d| match d {
            Declaration::Figure(f) => Some(f.clone()),
            _ => None,
        })
        .collect();
    if tables.is_empty() && compares.is_empty() && figure_specs.is_empty() {
        tables = default_tables(runs);
        figure_specs = default_figures(runs);
    }
    // Each table reads its own frame: its kind, its metrics under its policy.
    let mut out_tables = Vec::new();
    for t in &tables {
        let own: Vec<(String, Policy)> = t
            .metric_names()
            .into_iter()
            .map(|m| (m, t.policy.clone()))
            .collect();
        let of_kind: Vec<(&RunData, BTreeMap<String, String>)> = runs
            .iter()
            .filter(|r| t.kind.as_ref().is_none_or(|k| *k == r.record.kind))
            .map(|r| (r, frame::flatten(&r.record.spec)))
            .collect();
        if let Some(f) = t
            .filter
            .keys()
            .find(|f| !of_kind.iter().any(|(_, flat)| flat.contains_key(*f)))
        {
            return Err(ReportError::Spec(format!(
                "no spec field `{f}` in the runs"
            )));
        }
        let auto = frame::varying_fields(of_kind.iter().map(|(_, flat)| flat));
        let selected: Vec<RunData> = of_kind
            .iter()
            .filter(|(r, flat)| frame::selects(None, &t.filter, r, flat))
            .map(|(r, _)| (*r).clone())
            .collect();
        if selected.is_empty() {
            // Declared but nothing ran yet (or a shrunken sweep leaves it out): an empty
            // table that says so, not a failed report.
            out_tables.push(table::Table {
                name: t.name.clone(),
                row_fields: t.rows.clone(),
                col_labels: Vec::new(),
                rows: Vec::new(),
                precision: t.precision,
                caption: "no runs match this table yet".into(),
            });
            continue;
        }
        let df = frame::runs_frame(&selected, &own)?;
        out_tables.push(table::compute(&df, t, &auto)?);
    }
    let comparisons = compares
        .iter()
        .map(|c| compare::compute(runs, c))
        .collect::<Result<_, _>>()?;
    // runs.csv: every summary metric of every run.
    let all: BTreeSet<&String> = runs.iter().flat_map(|r| r.record.summary.keys()).collect();
    let summary_metrics: Vec<(String, Policy)> = all
        .into_iter()
        .map(|m| (m.clone(), Policy::Summary))
        .collect();
    let mut figures: Vec<Figure> = figure_specs
        .iter()
        .map(|f| figures::compute(runs, f))
        .collect::<Result<_, _>>()?;
    figures::assign_colours(&mut figures);
    let mut counts = BTreeMap::new();
    let mut provenance: Vec<(String, usize)> = Vec::new();
    for r in runs {
        *counts
            .entry(r.record.status.as_str().to_string())
            .or_insert(0) += 1;
        if let Some(p) = &r.provenance {
            let line = format!(
                "commit {}{} · {} · {} · backend {}{} · {}",
                p.git_commit.as_deref().unwrap_or("unknown"),
                if p.git_dirty == Some(true) {
                    " (dirty)"
                } else {
                    ""
                },
                p.host,
                p.os,
                p.backend,
                p.device
                    .as_ref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default(),
                p.versions
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            match provenance.iter_mut().find(|x| x.0 == line) {
                Some(x) => x.1 += 1,
                None => provenance.push((line, 1)),
            }
        }
    }
    Ok(Report {
        script: None,
        counts,
        provenance,
        sweep: sweep.to_string(),
        tables: out_tables,
        comparisons,
        figures,
        runs: frame::runs_frame(runs, &summary_metrics)?,
    })
}

impl Report {
    /// Writes `<out>/<table>.{md,tex,csv}`, `<out>/<comparison>.{...}`, `<out>/runs.csv` and
    /// `<out>/report.md` (everything in one page). Returns the files written.
    pub fn write(&self, out: &Path, formats: &[&str]) -> Result<Vec<PathBuf>, ReportError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ReportError::Io { path, source }
        };
        std::fs::create_dir_all(out).map_err(io(out))?;
        let written = std::cell::RefCell::new(Vec::new());
        let put = |name: String, text: String| -> Result<(), ReportError> {
            let p = out.join(name);
            std::fs::write(&p, text).map_err(io(&p))?;
            written.borrow_mut().push(p);
            Ok(())
        };
        let mut page = format!("# Report: sweep `{}`\n\n", self.sweep);
        for t in &self.tables {
            let md = render::markdown(t);
            page += &md;
            page += "\n";
            let stem = file_stem(&t.name);
            if formats.contains(&"md") {
                put(format!("{stem}.md"), md)?;
            }
            if formats.contains(&"tex") {
                put(format!("{stem}.tex"), render::latex(t))?;
            }
            if formats.contains(&"csv") {
                put(
                    format!("{stem}.csv"),
                    render::csv(&mut render::table_frame(t)?)?,
                )?;
            }
        }
        for c in &self.comparisons {
            let md = render::comparison_markdown(c);
            page += &md;
            page += "\n";
            let stem = file_stem(&c.name);
            if formats.contains(&"md") {
                put(format!("{stem}.md"), md)?;
            }
            if formats.contains(&"tex") {
                put(format!("{stem}.tex"), render::comparison_latex(c))?;
            }
            if formats.contains(&"csv") {
                put(
                    format!("{stem}.csv"),
                    render::csv(&mut render::comparison_frame(c)?)?,
                )?;
            }
        }
        for f in &self.figures {
            let stem = file_stem(&f.name);
            if formats.contains(&"svg") || formats.contains(&"html") {
                put(format!("{stem}.svg"), figures::svg(f)?)?;
            }
            if formats.contains(&"png") {
                let p = out.join(format!("{stem}.png"));
                figures::png(f, &p)?;
                written.borrow_mut().push(p);
            }
            if formats.contains(&"pdf") {
                let p = out.join(format!("{stem}.pdf"));
                figures::pdf(f, &p)?;
                written.borrow_mut().push(p);
            }
            page += &format!("![{}]({stem}.svg)\n\n", f.title);
        }
        if formats.contains(&"csv") {
            put("runs.csv".into(), render::csv(&mut self.runs.clone())?)?;
        }
        if formats.contains(&"md") {
            put("report.md".into(), page)?;
        }
        if formats.contains(&"html") {
            put("index.html".into(), html::page(self))?;
        }
        Ok(written.into_inner())
    }
}

/// A file name for a table name.
pub(crate) fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, lr: f64, seed: u64, top1: &[f64]) -> RunData {
        let mut record = t4v_store::RunRecord::new(
            id.parse().unwrap(),
            serde_json::json!({"kind": "train", "seed": seed, "optim": {"lr": lr}}),
            serde_json::json!({}),
            id.parse().unwrap(),
            0,
        );
        record.status = t4v_store::RunStatus::Done;
        let mut series = BTreeMap::new();
        let mut val = t4v_store::Series::default();
        let mut step = t4v_store::Series::default();
        for (e, v) in top1.iter().enumerate() {
            val.insert(e as u64 + 1, *v);
            step.insert(e as u64 * 10 + 1, *v);
            step.insert(e as u64 * 10 + 2, *v);
        }
        series.insert(("val".to_string(), "top1".to_string()), val);
        series.insert(("train".to_string(), "step_loss".to_string()), step);
        RunData {
            record,
            series,
            provenance: None,
        }
    }

    /// Runs shaped like the reference's K400 ViT-B/16 8-frame training (two seeds): a table
    /// with `reference` shows the released log's last-epoch number and Δ; the learning curve
    /// with `reference` carries the log's 30 epochs as a dashed line with its own legend entry.
    #[test]
    fn runs_matching_a_published_row_are_held_against_it() {
        let k400 = |id: &str, seed: u64, last: f64| {
            let mut record = t4v_store::RunRecord::new(
                id.parse().unwrap(),
                serde_json::json!({"kind": "train", "seed": seed,
                    "data": {"dataset": "k400"},
                    "model": {"backbone": "openai/clip-vit-base-patch16", "frames": 8},
                    "eval": {"crops": 1, "clips": 1}}),
                serde_json::json!({}),
                id.parse().unwrap(),
                0,
            );
            record.status = t4v_store::RunStatus::Done;
            let mut val = t4v_store::Series::default();
            for e in 1..=30u64 {
                val.insert(e, last - 30.0 / e as f64 + 1.0);
            }
            let mut series = BTreeMap::new();
            series.insert(("val".to_string(), "top1".to_string()), val);
            RunData {
                record,
                series,
                provenance: None,
            }
        };
        let runs = [
            k400("0123456789abcde0", 0, 80.9),
            k400("0123456789abcde1", 1, 81.1),
        ];
        let decl = |v: serde_json::Value| Declaration::from_json(&v).unwrap();
        let declarations = [
            decl(
                serde_json::json!({"type": "table", "name": "k400", "rows": ["model.backbone"],
                "metric": "val/top1", "policy": "last", "precision": 2, "reference": true}),
            ),
            decl(
                serde_json::json!({"type": "figure", "name": "curves", "plot": "curve",
                "metric": "val/top1", "group": ["model.frames"], "reference": true}),
            ),
        ];
        let report = build("k400", &runs, &declarations).unwrap();
        let md = render::markdown(&report.tables[0]);
        assert!(
            md.contains("| model.backbone | val/top1 | val/top1 (published) | Δ val/top1 |"),
            "{md}"
        );
        // Ours: mean of 80.9 − 1 + 1 and 81.1 (last epoch) = 81.00; published 81.40.
        assert!(
            md.contains("| openai/clip-vit-base-patch16 | **81.00 ± 0.14** | 81.40 | -0.40 |"),
            "{md}"
        );
        assert!(md.contains("Δ = ours − published"), "{md}");
        let fig = &report.figures[0];
        let figures::FigureData::Curves { curves, .. } = &fig.data else {
            panic!("curves")
        };
        assert_eq!(curves[0].reference.len(), 30);
        assert_eq!(curves[0].reference[29], (30.0, 81.397));
        let svg = figures::svg(fig).unwrap();
        assert!(
            svg.contains("model.frames=8 (reference, released log)"),
            "legend"
        );
        // The dashes: many short segments in the curve's colour beside its one line.
        let blue = svg.matches("stroke=\"#1F77B4\"").count();
        assert!(blue > 20, "{blue} strokes of the curve's colour");
        // A run on a backbone the reference did not release has no published row.
        let mut other = k400("0123456789abcde2", 0, 50.0);
        other.record.spec["model"]["backbone"] = "/models/tiny".into();
        let report = build("x", &[other], &declarations[..1]).unwrap();
        let md = render::markdown(&report.tables[0]);
        assert!(!md.contains("published)"), "{md}");
    }

    /// A sweep without declarations gets a learning-curve figure per shared per-epoch series,
    /// grouped by the fields that vary; per-step series are left out.
    #[test]
    fn undeclared_sweeps_get_their_series_as_figures() {
        let runs = [
            run("0123456789abcde0", 1e-3, 0, &[10.0, 20.0, 30.0]),
            run("0123456789abcde1", 1e-3, 1, &[12.0, 22.0, 32.0]),
            run("0123456789abcde2", 1e-4, 0, &[5.0, 8.0, 9.0]),
        ];
        let report = build("s", &runs, &[]).unwrap();
        assert_eq!(report.figures.len(), 1, "{:?}", report.figures);
        let f = &report.figures[0];
        assert_eq!(f.name, "train-val-top1");
        let figures::FigureData::Curves { curves, x_axis, .. } = &f.data else {
            panic!("curves")
        };
        assert_eq!(*x_axis, figures::XAxis::Integer);
        let labels: Vec<&str> = curves.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(labels, ["optim.lr=0.001", "optim.lr=0.0001"]);
        // Mean over the two seeds of lr 1e-3, per epoch.
        assert_eq!(curves[0].points[0].1, 11.0);
        assert_eq!(curves[0].points.len(), 3);
    }
}
