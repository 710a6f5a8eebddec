//! The runs of a sweep as a polars DataFrame: one row per run with its id, setting, seed, kind
//! and status, every spec field flattened to a column (`classifier.init`, `optim.lr`, ...), and
//! one column per requested metric, read by that metric's policy.

use std::collections::{BTreeMap, BTreeSet};

use polars::prelude::*;
use serde::Deserialize;
use serde_json::Value;
use t4v_store::{RunRecord, RunStatus, Series};

/// How one number is read from a run's metrics.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// The stored summary (a series' last point, or what the run reported as its result).
    #[default]
    Summary,
    /// The best point of the series, by the metric's direction.
    Best,
    /// The last point of the series.
    Last,
    /// The series' point at this step (epoch).
    Epoch(u64),
}

/// Is larger better? Losses, errors and ranks are smaller-is-better; everything else larger.
pub fn higher_is_better(metric: &str) -> bool {
    let name = metric.rsplit('/').next().unwrap_or(metric);
    !["loss", "error", "err", "rank", "lr"]
        .iter()
        .any(|k| name.contains(k))
}

/// A run with the series a policy may need.
#[derive(Clone, Debug)]
pub struct RunData {
    pub record: RunRecord,
    /// `(split, name)` → series.
    pub series: BTreeMap<(String, String), Series>,
    /// Where and with what its last attempt ran.
    pub provenance: Option<t4v_core::Provenance>,
}

impl RunData {
    pub fn seed(&self) -> u64 {
        self.record
            .spec
            .get("seed")
            .and_then(Value::as_u64)
            .unwrap_or(0)
    }

    /// The value of `metric` (`split/name`) under `policy`; `None` when the run has none (or
    /// is not done).
    pub fn value(&self, metric: &str, policy: &Policy) -> Option<f64> {
        if self.record.status != RunStatus::Done {
            return None;
        }
        let series = || {
            let (split, name) = metric.split_once('/')?;
            self.series.get(&(split.to_string(), name.to_string()))
        };
        match policy {
            Policy::Summary => self.record.summary.get(metric).copied(),
            Policy::Last => series()?.last().map(|p| p.1),
            Policy::Best => {
                let hi = higher_is_better(metric);
                series()?
                    .points()
                    .iter()
                    .map(|p| p.1)
                    .filter(|v| v.is_finite())
                    .reduce(|a, b| if (b > a) == hi { b } else { a })
            }
            Policy::Epoch(e) => series()?.points().iter().find(|p| p.0 == *e).map(|p| p.1),
        }
    }
}

/// A spec value as the frame prints it: strings bare, everything else as JSON writes it.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Does a run belong to a declaration's selection: its `kind` (when given) and every `where`
/// field equal (compared as printed, on the flattened spec `flat` of the run)?
pub fn selects(
    kind: Option<&str>,
    filter: &BTreeMap<String, Value>,
    run: &RunData,
    flat: &BTreeMap<String, String>,
) -> bool {
    kind.is_none_or(|k| k == run.record.kind)
        && filter
            .iter()
            .all(|(k, v)| flat.get(k).map(String::as_str) == Some(value_text(v).as_str()))
}

/// Spec leaves as `a.b.c` → display string (strings bare, numbers as JSON writes them).
pub fn flatten(spec: &Value) -> BTreeMap<String, String> {
    fn walk(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&p, v, out);
                }
            }
            leaf => {
                out.insert(prefix.to_string(), value_text(leaf));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", spec, &mut out);
    out
}

/// Spec fields whose value differs between runs, given their flattened specs (seed excluded):
/// what a table's rows should show when none are declared.
pub fn varying_fields<'a>(
    flat: impl IntoIterator<Item = &'a BTreeMap<String, String>>,
) -> Vec<String> {
    let flat: Vec<&BTreeMap<String, String>> = flat.into_iter().collect();
    let keys: BTreeSet<&String> = flat.iter().flat_map(|f| f.keys()).collect();
    keys.into_iter()
        .filter(|k| k.as_str() != "seed")
        .filter(|k| {
            let values: BTreeSet<&str> = flat
                .iter()
                .map(|f| f.get(*k).map_or("", String::as_str))
                .collect();
            values.len() > 1
        })
        .cloned()
        .collect()
}

/// The DataFrame of `runs`: `id`, `setting`, `seed`, `kind`, `status`, every spec field, and a
/// `metric:<name>` column per `(name, policy)`.
pub fn runs_frame(runs: &[RunData], metrics: &[(String, Policy)]) -> PolarsResult<DataFrame> {
    let flat: Vec<_> = runs.iter().map(|r| flatten(&r.record.spec)).collect();
    let fields: BTreeSet<&String> = flat.iter().flat_map(|f| f.keys()).collect();
    let str_col = |name: &str, v: Vec<Option<String>>| Column::new(name.into(), v);
    let mut cols = vec![
        str_col(
            "id",
            runs.iter().map(|r| Some(r.record.id.to_string())).collect(),
        ),
        str_col(
            "setting",
            runs.iter()
                .map(|r| Some(r.record.setting.to_string()))
                .collect(),
        ),
        Column::new(
            "seed".into(),
            runs.iter().map(RunData::seed).collect::<Vec<u64>>(),
        ),
        str_col(
            "kind",
            runs.iter().map(|r| Some(r.record.kind.clone())).collect(),
        ),
        str_col(
            "status",
            runs.iter()
                .map(|r| Some(r.record.status.as_str().to_string()))
                .collect(),
        ),
    ];
    for f in fields
        .into_iter()
        .filter(|f| f.as_str() != "seed" && f.as_str() != "kind")
    {
        cols.push(str_col(f, flat.iter().map(|m| m.get(f).cloned()).collect()));
    }
    for (m, policy) in metrics {
        let v: Vec<Option<f64>> = runs.iter().map(|r| r.value(m, policy)).collect();
        cols.push(Column::new(format!("metric:{m}").into(), v));
    }
    DataFrame::new_infer_height(cols)
}
