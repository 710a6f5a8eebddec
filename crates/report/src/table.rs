//! Paper-style tables: a pivot of one metric (rows and columns are spec fields) or of several
//! metrics (one column each), every cell the mean ± std over seeds with its n, missing or failed
//! seeds flagged, the best value of each column marked and the second-best marked apart.

use std::collections::BTreeMap;

use polars::prelude::*;
use serde::Deserialize;
use serde_json::Value;

use crate::ReportError;
use crate::frame::{Policy, higher_is_better};
use crate::reference::Key;
use crate::render::number;
use crate::stats::mean_std;

/// A table declared in a sweep script (`s.table(#{...})`) or on the command line.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    pub name: String,
    /// Spec fields whose values label the rows (empty: every field that varies).
    #[serde(default)]
    pub rows: Vec<String>,
    /// Spec fields whose values label the columns (with one metric).
    #[serde(default)]
    pub cols: Vec<String>,
    /// The metric (`split/name`), or several, one column each.
    #[serde(default)]
    pub metric: Option<String>,
    #[serde(default)]
    pub metrics: Vec<String>,
    #[serde(default)]
    pub policy: Policy,
    /// Only runs of this kind.
    #[serde(default)]
    pub kind: Option<String>,
    /// Only runs whose spec fields have these values.
    #[serde(default, rename = "where")]
    pub filter: BTreeMap<String, Value>,
    /// Digits after the decimal point.
    #[serde(default = "one")]
    pub precision: usize,
    /// Beside each column, the reference's published number for the cell's runs (same
    /// dataset, backbone, frames and views; [`crate::reference`]) and Δ = ours − published.
    #[serde(default)]
    pub reference: bool,
}

fn one() -> usize {
    1
}

impl TableSpec {
    /// The metrics the table reads.
    pub fn metric_names(&self) -> Vec<String> {
        let mut m = self.metrics.clone();
        if let Some(x) = &self.metric {
            m.insert(0, x.clone());
        }
        m
    }

    pub fn check(&self) -> Result<(), ReportError> {
        let bad = |m: &str| ReportError::Spec(format!("table `{}`: {m}", self.name));
        let metrics = self.metric_names();
        if metrics.is_empty() {
            return Err(bad("give `metric` or `metrics`"));
        }
        if metrics.len() > 1 && !self.cols.is_empty() {
            return Err(bad(
                "with several metrics the columns are the metrics: leave `cols` empty",
            ));
        }
        Ok(())
    }
}

/// One cell: the values of the done seeds, and how many seeds the cell should have.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    pub values: Vec<f64>,
    pub expected: usize,
    pub mean: f64,
    pub std: f64,
    /// 1 for the best in its column, 2 for the second.
    pub rank: Option<u8>,
    /// Printed as is instead of mean ± std (a published number, a difference).
    pub fixed: Option<String>,
}

impl Cell {
    pub fn n(&self) -> usize {
        self.values.len()
    }
    pub fn flagged(&self) -> bool {
        self.values.len() < self.expected
    }
}

/// A computed table.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub name: String,
    pub row_fields: Vec<String>,
    /// Column header: the column fields (`a=1, b=2`) or the metric.
    pub col_labels: Vec<String>,
    pub rows: Vec<(Vec<String>, Vec<Option<Cell>>)>,
    pub precision: usize,
    /// What the cells hold, for captions: metric and policy.
    pub caption: String,
}

fn strings(df: &DataFrame, name: &str) -> Result<Vec<Option<String>>, ReportError> {
    let c = df
        .column(name)
        .map_err(|_| ReportError::Spec(format!("no spec field `{name}` in the runs")))?;
    Ok(c.str()?.iter().map(|s| s.map(str::to_string)).collect())
}

/// Computes `spec` from the frame of its selected runs (see [`crate::frame::runs_frame`], which
/// must hold the table's metric columns; [`crate::build`] selects them by `kind` and `where`).
/// Rows and columns keep the order in which they first appear.
pub fn compute(
    df: &DataFrame,
    spec: &TableSpec,
    auto_rows: &[String],
) -> Result<Table, ReportError> {
    spec.check()?;
    let n = df.height();
    let row_fields: Vec<String> = if spec.rows.is_empty() {
        auto_rows
            .iter()
            .filter(|f| !spec.cols.contains(f) && !spec.filter.contains_key(*f) && *f != "kind")
            .cloned()
            .collect()
    } else {
        spec.rows.clone()
    };
    let row_vals: Vec<Vec<Option<String>>> = row_fields
        .iter()
        .map(|f| strings(df, f))
        .collect::<Result<_, _>>()?;
    let col_vals: Vec<Vec<Option<String>>> = spec
        .cols
        .iter()
        .map(|f| strings(df, f))
        .collect::<Result<_, _>>()?;
    let seeds: Vec<u64> = df.column("seed")?.u64()?.into_no_null_iter().collect();
    let metrics = spec.metric_names();
    let metric_vals: Vec<Vec<Option<f64>>> = metrics
        .iter()
        .map(|m| Ok(df.column(&format!("metric:{m}"))?.f64()?.iter().collect()))
        .collect::<Result<_, ReportError>>()?;

    let label = |vals: &[Vec<Option<String>>], i: usize| -> Vec<String> {
        vals.iter()
            .map(|v| v[i].clone().unwrap_or_else(|| "—".into()))
            .collect()
    };
    // (row, col) → seed → value (None: the seed exists but has no value).
    let mut row_order: Vec<Vec<String>> = Vec::new();
    let mut col_order: Vec<String> = Vec::new();
    let mut cells: BTreeMap<(usize, usize), BTreeMap<u64, Option<f64>>> = BTreeMap::new();
    // With `reference`: the reference keys of each cell's runs.
    let mut keys: BTreeMap<(usize, usize), std::collections::BTreeSet<Option<Key>>> =
        BTreeMap::new();
    let key_fields = [
        "data.dataset",
        "model.backbone",
        "model.frames",
        "eval.crops",
        "eval.clips",
    ];
    let key_vals: Vec<(&str, Vec<Option<String>>)> = if spec.reference {
        key_fields
            .iter()
            .filter_map(|f| strings(df, f).ok().map(|v| (*f, v)))
            .collect()
    } else {
        Vec::new()
    };
    let kinds = if spec.reference {
        strings(df, "kind")?
    } else {
        Vec::new()
    };
    let col_label = |i: usize| -> String {
        spec.cols
            .iter()
            .zip(label(&col_vals, i))
            .map(|(f, v)| format!("{f}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for i in 0..n {
        let r = label(&row_vals, i);
        let ri = match row_order.iter().position(|x| *x == r) {
            Some(p) => p,
            None => {
                row_order.push(r);
                row_order.len() - 1
            }
        };
        let targets: Vec<(String, Option<f64>)> = if metrics.len() > 1 {
            metrics
                .iter()
                .zip(&metric_vals)
                .map(|(m, v)| (m.clone(), v[i]))
                .collect()
        } else {
            let l = if spec.cols.is_empty() {
                metrics[0].clone()
            } else {
                col_label(i)
            };
            vec![(l, metric_vals[0][i])]
        };
        for (l, v) in targets {
            let ci = match col_order.iter().position(|x| *x == l) {
                Some(p) => p,
                None => {
                    col_order.push(l);
                    col_order.len() - 1
                }
            };
            if spec.reference {
                let flat: BTreeMap<String, String> = key_vals
                    .iter()
                    .filter_map(|(f, v)| v[i].clone().map(|x| (f.to_string(), x)))
                    .collect();
                let kind = kinds[i].clone().unwrap_or_default();
                keys.entry((ri, ci))
                    .or_default()
                    .insert(crate::reference::key(&flat, &kind));
            }
            let seeds_of = cells.entry((ri, ci)).or_default();
            // A seed seen twice in one cell (runs differing in a field not shown) keeps a value.
            let slot = seeds_of.entry(seeds[i]).or_insert(None);
            if slot.is_none() {
                *slot = v.filter(|x| x.is_finite());
            }
        }
    }
    let mut rows: Vec<(Vec<String>, Vec<Option<Cell>>)> = row_order
        .iter()
        .enumerate()
        .map(|(ri, r)| {
            let cs = (0..col_order.len())
                .map(|ci| {
                    cells.get(&(ri, ci)).map(|s| {
                        let values: Vec<f64> = s.values().flatten().copied().collect();
                        let (mean, std) = mean_std(&values);
                        Cell {
                            expected: s.len(),
                            values,
                            mean,
                            std,
                            rank: None,
                            fixed: None,
                        }
                    })
                })
                .collect();
            (r.clone(), cs)
        })
        .collect();
    // Best and second best per column, on the values as printed (equal prints tie).
    let scale = 10f64.powi(spec.precision as i32);
    for ci in 0..col_order.len() {
        let metric = if metrics.len() > 1 {
            &metrics[ci]
        } else {
            &metrics[0]
        };
        let hi = higher_is_better(metric);
        let mut shown: Vec<f64> = rows
            .iter()
            .filter_map(|(_, cs)| cs[ci].as_ref())
            .filter(|c| c.n() > 0)
            .map(|c| (c.mean * scale).round())
            .collect();
        shown.sort_by(|a, b| if hi { b.total_cmp(a) } else { a.total_cmp(b) });
        shown.dedup();
        for (_, cs) in rows.iter_mut() {
            if let Some(c) = cs[ci].as_mut().filter(|c| c.n() > 0) {
                let v = (c.mean * scale).round();
                c.rank = if Some(&v) == shown.first() {
                    Some(1)
                } else if shown.len() > 1 && Some(&v) == shown.get(1) {
                    Some(2)
                } else {
                    None
                };
            }
        }
    }
    let mut caption_extra = String::new();
    if spec.reference {
        // Right to left, so the indices of the columns still to do stay put.
        for ci in (0..col_order.len()).rev() {
            let metric = if metrics.len() > 1 {
                &metrics[ci]
            } else {
                &metrics[0]
            };
            let found: Vec<Option<f64>> = (0..rows.len())
                .map(|ri| {
                    let ks = keys.get(&(ri, ci))?;
                    let [Some(k)] = ks.iter().collect::<Vec<_>>()[..] else {
                        return None;
                    };
                    crate::reference::published(k, metric).map(|p| p.0)
                })
                .collect();
            if found.iter().all(Option::is_none) {
                continue;
            }
            let fixed = |text: String, v: f64| Cell {
                values: vec![v],
                expected: 1,
                mean: v,
                std: 0.0,
                rank: None,
                fixed: Some(text),
            };
            for (ri, (_, cs)) in rows.iter_mut().enumerate() {
                let p = found[ri];
                let ours = cs[ci].as_ref().filter(|c| c.n() > 0).map(|c| c.mean);
                let pc = p.map(|v| fixed(number(v, spec.precision), v));
                let dc = match (ours, p) {
                    (Some(o), Some(v)) => {
                        Some(fixed(format!("{:+.*}", spec.precision, o - v), o - v))
                    }
                    _ => None,
                };
                cs.insert(ci + 1, pc);
                cs.insert(ci + 2, dc);
            }
            let label = col_order[ci].clone();
            col_order.insert(ci + 1, format!("{label} (published)"));
            col_order.insert(ci + 2, format!("Δ {label}"));
        }
        caption_extra = "; published: the reference's README and released logs \
                         (experiments/reference/published.csv), Δ = ours − published"
            .into();
    }
    let policy = match &spec.policy {
        Policy::Summary => String::new(),
        Policy::Best => " (best epoch)".into(),
        Policy::Last => " (last epoch)".into(),
        Policy::Epoch(e) => format!(" (epoch {e})"),
    };
    Ok(Table {
        name: spec.name.clone(),
        row_fields,
        col_labels: col_order,
        rows,
        precision: spec.precision,
        caption: format!(
            "{}{policy}: mean ± std over seeds{caption_extra}",
            metrics.join(", ")
        ),
    })
}
