//! Paired comparisons: setting A against setting B over the seeds both were run with (everything
//! else in their specs equal), optionally per group (`by`), with the paired t-test and the
//! Wilcoxon signed-rank test — whether, say, the text init beats LDA beyond seed noise.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::ReportError;
use crate::frame::{Policy, RunData, flatten, value_text};
use crate::stats::{Paired, paired};

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CompareSpec {
    pub name: String,
    pub metric: String,
    #[serde(default)]
    pub policy: Policy,
    /// Spec fields and values that select A (`#{ "classifier.init": "text" }`) ...
    pub a: BTreeMap<String, Value>,
    /// ... and B. The fields of A and B are the only ones allowed to differ within a pair.
    pub b: BTreeMap<String, Value>,
    /// Spec fields to compare within (one line of the result per value).
    #[serde(default)]
    pub by: Vec<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default = "two")]
    pub precision: usize,
}

fn two() -> usize {
    2
}

#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub labels: Vec<String>,
    pub mean_a: f64,
    pub mean_b: f64,
    pub stats: Paired,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub name: String,
    pub metric: String,
    pub a_label: String,
    pub b_label: String,
    pub group_fields: Vec<String>,
    pub groups: Vec<Group>,
    pub precision: usize,
}

fn label(sel: &BTreeMap<String, Value>) -> String {
    sel.iter()
        .map(|(k, v)| format!("{k}={}", value_text(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn compute(runs: &[RunData], spec: &CompareSpec) -> Result<Comparison, ReportError> {
    if spec.a.is_empty() || spec.b.is_empty() {
        return Err(ReportError::Spec(format!(
            "comparison `{}`: `a` and `b` each select runs by at least one field",
            spec.name
        )));
    }
    let fields: Vec<&String> = spec.a.keys().chain(spec.b.keys()).collect();
    let matches = |flat: &BTreeMap<String, String>, sel: &BTreeMap<String, Value>| {
        sel.iter()
            .all(|(k, v)| flat.get(k).map(String::as_str) == Some(value_text(v).as_str()))
    };
    // Pair key: the whole flattened spec (seed included) minus the fields A and B set.
    let key = |flat: &BTreeMap<String, String>| -> String {
        flat.iter()
            .filter(|(k, _)| !fields.contains(k))
            .map(|(k, v)| format!("{k}={v}\u{1}"))
            .collect()
    };
    let mut side_a: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    let mut side_b: BTreeMap<String, f64> = BTreeMap::new();
    for (i, r) in runs.iter().enumerate() {
        if spec.kind.as_ref().is_some_and(|k| *k != r.record.kind) {
            continue;
        }
        let Some(v) = r
            .value(&spec.metric, &spec.policy)
            .filter(|v| v.is_finite())
        else {
            continue;
        };
        let flat = flatten(&r.record.spec);
        if matches(&flat, &spec.a) {
            side_a.insert(key(&flat), (i, v));
        } else if matches(&flat, &spec.b) {
            side_b.insert(key(&flat), v);
        }
    }
    // Groups in the order their A runs appear.
    let mut pairs: Vec<(usize, f64, f64)> = side_a
        .iter()
        .filter_map(|(k, (i, a))| side_b.get(k).map(|b| (*i, *a, *b)))
        .collect();
    pairs.sort_by_key(|p| p.0);
    let mut groups: Vec<(Vec<String>, Vec<f64>, Vec<f64>)> = Vec::new();
    for (i, a, b) in pairs {
        let flat = flatten(&runs[i].record.spec);
        let labels: Vec<String> = spec
            .by
            .iter()
            .map(|f| flat.get(f).cloned().unwrap_or_else(|| "—".into()))
            .collect();
        match groups.iter_mut().find(|g| g.0 == labels) {
            Some(g) => {
                g.1.push(a);
                g.2.push(b);
            }
            None => groups.push((labels, vec![a], vec![b])),
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    Ok(Comparison {
        name: spec.name.clone(),
        metric: spec.metric.clone(),
        a_label: label(&spec.a),
        b_label: label(&spec.b),
        group_fields: spec.by.clone(),
        groups: groups
            .into_iter()
            .map(|(labels, a, b)| Group {
                labels,
                mean_a: mean(&a),
                mean_b: mean(&b),
                stats: paired(&a, &b),
            })
            .collect(),
        precision: spec.precision,
    })
}
