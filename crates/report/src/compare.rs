//! Paired comparisons: setting A against setting B over the seeds both were run with (everything
//! else in their specs equal), optionally per group (`by`), with the paired t-test and the
//! Wilcoxon signed-rank test — whether, say, the text init beats LDA beyond seed noise. The
//! rows of one comparison are several tests at once: their p-values are adjusted (Holm–Bonferroni
//! unless the declaration says otherwise), and each mean difference gets a seeded bootstrap
//! confidence interval.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::ReportError;
use crate::frame::{Policy, RunData, flatten, value_text};
use crate::stats::{Correction, Paired, bootstrap_mean_ci, paired};

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
    /// Multiple-comparison control over the rows: `holm` (default), `bh`, `none`.
    #[serde(default)]
    pub correction: Correction,
    /// Level of the bootstrap intervals of the mean difference.
    #[serde(default = "level")]
    pub confidence: f64,
    /// Bootstrap resamples, and the seed they are drawn with.
    #[serde(default = "resamples")]
    pub resamples: usize,
    #[serde(default)]
    pub seed: u64,
}

fn two() -> usize {
    2
}

fn level() -> f64 {
    0.95
}

fn resamples() -> usize {
    10_000
}

#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub labels: Vec<String>,
    pub mean_a: f64,
    pub mean_b: f64,
    pub stats: Paired,
    /// The t-test's and the Wilcoxon test's p-values adjusted over the comparison's rows.
    pub t_p_adj: f64,
    pub wilcoxon_p_adj: f64,
    /// Bootstrap interval of the mean difference.
    pub ci: (f64, f64),
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
    pub correction: Correction,
    pub confidence: f64,
    pub resamples: usize,
    pub seed: u64,
}

impl Comparison {
    /// What the table's numbers are, for the line under it.
    pub fn method_note(&self) -> String {
        let rows = self.groups.len();
        let correction = match self.correction {
            Correction::None => "not adjusted for multiple comparisons".to_string(),
            c => format!(
                "adjusted over the {rows} row{} by {}",
                if rows == 1 { "" } else { "s" },
                c.name()
            ),
        };
        format!(
            "Paired t-test and Wilcoxon signed-rank test (two-sided) over seeds; p-values {correction}; \
             bold: p < 0.05{}. {:.0}% CI: percentile bootstrap of the mean difference ({} resamples, seed {}).",
            if self.correction == Correction::None {
                ""
            } else {
                " after adjustment"
            },
            self.confidence * 100.0,
            self.resamples,
            self.seed
        )
    }
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
    if !(spec.confidence > 0.0 && spec.confidence < 1.0) {
        return Err(ReportError::Spec(format!(
            "comparison `{}`: confidence {} is not between 0 and 1",
            spec.name, spec.confidence
        )));
    }
    let mut groups: Vec<Group> = groups
        .into_iter()
        .map(|(labels, a, b)| {
            let d: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
            Group {
                labels,
                mean_a: mean(&a),
                mean_b: mean(&b),
                stats: paired(&a, &b),
                t_p_adj: f64::NAN,
                wilcoxon_p_adj: f64::NAN,
                ci: bootstrap_mean_ci(&d, spec.confidence, spec.resamples, spec.seed),
            }
        })
        .collect();
    let t = spec
        .correction
        .adjust(&groups.iter().map(|g| g.stats.t_p).collect::<Vec<_>>());
    let w = spec.correction.adjust(
        &groups
            .iter()
            .map(|g| g.stats.wilcoxon_p)
            .collect::<Vec<_>>(),
    );
    for (g, (t, w)) in groups.iter_mut().zip(t.into_iter().zip(w)) {
        g.t_p_adj = t;
        g.wilcoxon_p_adj = w;
    }
    Ok(Comparison {
        name: spec.name.clone(),
        metric: spec.metric.clone(),
        a_label: label(&spec.a),
        b_label: label(&spec.b),
        group_fields: spec.by.clone(),
        groups,
        precision: spec.precision,
        correction: spec.correction,
        confidence: spec.confidence,
        resamples: spec.resamples,
        seed: spec.seed,
    })
}
