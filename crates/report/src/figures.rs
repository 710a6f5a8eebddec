//! Figures with plotters, as SVG, PNG and PDF: metric curves over epochs (or over a numeric spec
//! field such as `data.shots`, the few-shot curve) per setting — mean line and ± std band over
//! seeds —, grouped bars with error bars, and the cosine-similarity heatmap of a classifier W
//! (the paper's Fig. 1). PNG text uses an embedded DejaVu Sans subset, so figures render the same
//! on a machine without fonts; SVG text is left to the viewer.
//!
//! Axes say what they hold: integer x values (epochs, shots) get integer ticks, shots a log₂
//! axis (1, 2, 4, 8 evenly spaced), the heatmap names classes on both axes and has a colour bar
//! over the data's range; a setting keeps its colour in every figure of a report.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use serde::Deserialize;
use serde_json::Value;

use crate::ReportError;
use crate::frame::{Policy, RunData, flatten, selects};
use crate::stats::mean_std;

static FONT: &[u8] = include_bytes!("../fonts/DejaVuSans-subset.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            plotters::style::register_font("sans-serif", style, FONT)
                .unwrap_or_else(|_| panic!("the embedded font parses"));
        }
    });
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub enum Plot {
    /// A metric over epochs (`x` absent or `epoch`) or over a numeric spec field.
    Curve,
    /// Grouped bars: categories from `x`, one bar per `group`, error bars over seeds.
    Bars,
    /// Cosine similarity of the classifier rows of one run (its `classifier` artefact).
    Similarity,
}

/// A figure declared in a sweep script (`s.figure(#{...})`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FigureSpec {
    pub name: String,
    pub plot: Plot,
    #[serde(default)]
    pub metric: Option<String>,
    /// `epoch` (curves over a run's series) or a spec field.
    #[serde(default)]
    pub x: Option<String>,
    /// Spec fields whose values make one curve or bar each.
    #[serde(default)]
    pub group: Vec<String>,
    #[serde(default)]
    pub policy: Policy,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default, rename = "where")]
    pub filter: BTreeMap<String, Value>,
    /// Similarity heatmaps: the first this many classes.
    #[serde(default)]
    pub classes: Option<usize>,
    /// Similarity heatmaps: class order, `given` (the dataset's) or `cluster` (average-linkage
    /// clustering of 1 − cosine: similar classes side by side).
    #[serde(default)]
    pub order: Order,
    #[serde(default)]
    pub title: Option<String>,
    /// Curves over a spec field: `auto` (log₂ for shots), `linear` or `log2`.
    #[serde(default)]
    pub x_scale: XScale,
    /// Learning curves: the reference's released log for each curve whose runs match one
    /// ([`crate::reference`]), dashed, in the curve's colour.
    #[serde(default)]
    pub reference: bool,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    #[default]
    Given,
    Cluster,
}

/// The leaf order of average-linkage agglomerative clustering of a similarity matrix: the two
/// clusters with the highest mean similarity merge (the first's members before the second's)
/// until one is left.
pub fn cluster_order(sim: &[Vec<f64>]) -> Vec<usize> {
    let n = sim.len();
    let mut members: Vec<Option<Vec<usize>>> = (0..n).map(|i| Some(vec![i])).collect();
    let mut s: Vec<Vec<f64>> = sim.to_vec();
    loop {
        let live: Vec<usize> = (0..n).filter(|&i| members[i].is_some()).collect();
        if live.len() <= 1 {
            return live
                .first()
                .and_then(|&i| members[i].clone())
                .unwrap_or_default();
        }
        let mut best = (live[0], live[1], f64::NEG_INFINITY);
        for (x, &i) in live.iter().enumerate() {
            for &j in &live[x + 1..] {
                if s[i][j] > best.2 {
                    best = (i, j, s[i][j]);
                }
            }
        }
        let (a, b, _) = best;
        let (na, nb) = (
            members[a].as_ref().map_or(0, Vec::len) as f64,
            members[b].as_ref().map_or(0, Vec::len) as f64,
        );
        for &k in &live {
            if k != a && k != b {
                let v = (na * s[a][k] + nb * s[b][k]) / (na + nb);
                s[a][k] = v;
                s[k][a] = v;
            }
        }
        let tail = members[b].take().unwrap_or_default();
        if let Some(m) = members[a].as_mut() {
            m.extend(tail);
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum XScale {
    #[default]
    Auto,
    Linear,
    Log2,
}

/// How a curve figure's x axis is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XAxis {
    /// Real numbers.
    Linear,
    /// Integers (epochs, frames): integer ticks only.
    Integer,
    /// Powers of two on a log₂ scale (shots), ticks at 1, 2, 4, ….
    Log2,
}

impl XAxis {
    /// The axis for values `xs` of field `x` under `scale`: log₂ for shots (or when asked) when
    /// every value is positive; integer ticks when every value is an integer.
    pub fn choose(x: &str, xs: &[f64], scale: XScale) -> XAxis {
        let positive = !xs.is_empty() && xs.iter().all(|v| *v > 0.0);
        let integral = xs.iter().all(|v| v.fract() == 0.0);
        match scale {
            XScale::Log2 if positive => XAxis::Log2,
            XScale::Auto if positive && x.ends_with("shots") => XAxis::Log2,
            _ if integral => XAxis::Integer,
            _ => XAxis::Linear,
        }
    }
}

/// Per category: (mean, std) over seeds, when the category has values.
pub type BarValues = Vec<Option<(f64, f64)>>;

/// A classifier artefact's class names, row-major W and its shape `[C, D]`.
pub type Classifier = (Vec<String>, Vec<f64>, [usize; 2]);

/// One curve: `(x, mean, std, n)` points.
#[derive(Clone, Debug, PartialEq)]
pub struct Curve {
    pub label: String,
    pub points: Vec<(f64, f64, f64, usize)>,
    /// The reference's curve for the same setting, `(epoch, value)` (empty: none).
    pub reference: Vec<(f64, f64)>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum FigureData {
    Curves {
        x_label: String,
        y_label: String,
        curves: Vec<Curve>,
        x_axis: XAxis,
    },
    Bars {
        x_label: String,
        y_label: String,
        categories: Vec<String>,
        /// Per group: label and, per category, (mean, std).
        groups: Vec<(String, BarValues)>,
    },
    Heatmap {
        labels: Vec<String>,
        values: Vec<Vec<f64>>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    pub name: String,
    pub title: String,
    pub data: FigureData,
    /// Palette index of each setting (curve or bar group label), shared by a report's figures
    /// ([`assign_colours`]); a label not in it takes its position.
    pub colours: BTreeMap<String, usize>,
}

impl Figure {
    fn colour(&self, label: &str, i: usize) -> RGBColor {
        PALETTE[self.colours.get(label).copied().unwrap_or(i) % PALETTE.len()]
    }

    /// The labels of its settings, in drawing order.
    fn labels(&self) -> Vec<&str> {
        match &self.data {
            FigureData::Curves { curves, .. } => curves.iter().map(|c| c.label.as_str()).collect(),
            FigureData::Bars { groups, .. } => groups.iter().map(|g| g.0.as_str()).collect(),
            FigureData::Heatmap { .. } => Vec::new(),
        }
    }
}

/// Gives each setting one colour across `figures` (first appearance order), so `init=text` is
/// the same colour in the learning curves, the few-shot curve and the bars.
pub fn assign_colours(figures: &mut [Figure]) {
    let mut all: Vec<String> = Vec::new();
    for f in figures.iter() {
        for l in f.labels() {
            if !all.iter().any(|a| a == l) {
                all.push(l.to_string());
            }
        }
    }
    for f in figures.iter_mut() {
        f.colours = f
            .labels()
            .into_iter()
            .map(|l| {
                let i = all.iter().position(|a| a == l).expect("collected above");
                (l.to_string(), i)
            })
            .collect();
    }
}

fn selected<'a>(
    runs: &'a [RunData],
    spec: &FigureSpec,
) -> Vec<(&'a RunData, BTreeMap<String, String>)> {
    runs.iter()
        .map(|r| (r, flatten(&r.record.spec)))
        .filter(|(r, f)| selects(spec.kind.as_deref(), &spec.filter, r, f))
        .collect()
}

fn group_label(spec: &FigureSpec, f: &BTreeMap<String, String>) -> String {
    if spec.group.is_empty() {
        return "all runs".into();
    }
    spec.group
        .iter()
        .map(|g| format!("{}={}", g, f.get(g).map(String::as_str).unwrap_or("—")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Groups in first-appearance order.
fn push<T>(groups: &mut Vec<(String, Vec<T>)>, label: String, item: T) {
    match groups.iter_mut().find(|g| g.0 == label) {
        Some(g) => g.1.push(item),
        None => groups.push((label, vec![item])),
    }
}

fn need<'a>(
    spec: &'a FigureSpec,
    what: &str,
    v: &'a Option<String>,
) -> Result<&'a str, ReportError> {
    v.as_deref().ok_or_else(|| {
        ReportError::Spec(format!(
            "figure `{}`: a {:?} plot needs `{what}`",
            spec.name, spec.plot
        ))
    })
}

/// Computes a figure's data from the runs (in sweep order).
pub fn compute(runs: &[RunData], spec: &FigureSpec) -> Result<Figure, ReportError> {
    let sel = selected(runs, spec);
    let title = spec.title.clone().unwrap_or_else(|| spec.name.clone());
    let data = match spec.plot {
        Plot::Curve => {
            let metric = need(spec, "metric", &spec.metric)?;
            let x = spec.x.as_deref().unwrap_or("epoch");
            let mut groups: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
            let mut keys: BTreeMap<
                String,
                std::collections::BTreeSet<Option<crate::reference::Key>>,
            > = BTreeMap::new();
            for (r, f) in &sel {
                let label = group_label(spec, f);
                if spec.reference {
                    keys.entry(label.clone())
                        .or_default()
                        .insert(crate::reference::key(f, &r.record.kind));
                }
                if x == "epoch" {
                    if r.record.status != t4v_store::RunStatus::Done {
                        continue;
                    }
                    let Some(s) = metric
                        .split_once('/')
                        .and_then(|(sp, n)| r.series.get(&(sp.to_string(), n.to_string())))
                    else {
                        continue;
                    };
                    for (step, v) in s.points() {
                        push(&mut groups, label.clone(), (*step as f64, *v));
                    }
                } else {
                    let Some(xv) = f.get(x).and_then(|v| v.parse::<f64>().ok()) else {
                        return Err(ReportError::Spec(format!(
                            "figure `{}`: x field `{x}` is not a number in run {}",
                            spec.name, r.record.id
                        )));
                    };
                    if let Some(v) = r.value(metric, &spec.policy) {
                        push(&mut groups, label.clone(), (xv, v));
                    }
                }
            }
            let curves: Vec<Curve> = groups
                .into_iter()
                .map(|(label, pts)| {
                    let mut by_x: BTreeMap<u64, (f64, Vec<f64>)> = BTreeMap::new();
                    for (xv, v) in pts.into_iter().filter(|p| p.1.is_finite()) {
                        by_x.entry(xv.to_bits())
                            .or_insert((xv, Vec::new()))
                            .1
                            .push(v);
                    }
                    let mut points: Vec<(f64, f64, f64, usize)> = by_x
                        .into_values()
                        .map(|(xv, vs)| {
                            let (m, s) = mean_std(&vs);
                            (xv, m, s, vs.len())
                        })
                        .collect();
                    points.sort_by(|a, b| a.0.total_cmp(&b.0));
                    let reference = match keys.get(&label).map(|k| k.iter().collect::<Vec<_>>()) {
                        Some(k) if x == "epoch" && k.len() == 1 => k[0]
                            .as_ref()
                            .and_then(|k| crate::reference::curve(k, metric))
                            .map(|c| c.into_iter().map(|(e, v)| (e as f64, v)).collect())
                            .unwrap_or_default(),
                        _ => Vec::new(),
                    };
                    Curve {
                        label,
                        points,
                        reference,
                    }
                })
                .collect();
            let xs: Vec<f64> = curves
                .iter()
                .flat_map(|c: &Curve| c.points.iter().map(|p| p.0))
                .collect();
            FigureData::Curves {
                x_label: x.to_string(),
                y_label: metric.to_string(),
                x_axis: XAxis::choose(x, &xs, spec.x_scale),
                curves,
            }
        }
        Plot::Bars => {
            let metric = need(spec, "metric", &spec.metric)?;
            let x = need(spec, "x", &spec.x)?;
            let mut categories: Vec<String> = Vec::new();
            let mut groups: Vec<(String, Vec<(String, f64)>)> = Vec::new();
            for (r, f) in &sel {
                let cat = f.get(x).cloned().unwrap_or_else(|| "—".into());
                if !categories.contains(&cat) {
                    categories.push(cat.clone());
                }
                if let Some(v) = r.value(metric, &spec.policy).filter(|v| v.is_finite()) {
                    push(&mut groups, group_label(spec, f), (cat, v));
                }
            }
            let groups = groups
                .into_iter()
                .map(|(label, vals)| {
                    let per: Vec<Option<(f64, f64)>> = categories
                        .iter()
                        .map(|c| {
                            let vs: Vec<f64> = vals
                                .iter()
                                .filter(|(k, _)| k == c)
                                .map(|(_, v)| *v)
                                .collect();
                            (!vs.is_empty()).then(|| mean_std(&vs))
                        })
                        .collect();
                    (label, per)
                })
                .collect();
            FigureData::Bars {
                x_label: x.to_string(),
                y_label: metric.to_string(),
                categories,
                groups,
            }
        }
        Plot::Similarity => {
            let (r, _) = sel
                .iter()
                .find(|(r, _)| r.record.artefacts.contains_key("classifier"))
                .ok_or_else(|| {
                    ReportError::Spec(format!(
                        "figure `{}`: no selected run has a `classifier` artefact (train and probe runs write one)",
                        spec.name
                    ))
                })?;
            let path = Path::new(&r.record.artefacts["classifier"]);
            let (names, w, [c, d]) = read_classifier(path)?;
            let k = spec.classes.unwrap_or(c).min(c);
            let norm: Vec<Vec<f64>> = (0..k)
                .map(|i| {
                    let row = &w[i * d..(i + 1) * d];
                    let n = row.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
                    row.iter().map(|x| x / n).collect()
                })
                .collect();
            let values = norm
                .iter()
                .map(|a| {
                    norm.iter()
                        .map(|b| a.iter().zip(b).map(|(x, y)| x * y).sum())
                        .collect()
                })
                .collect();
            let labels: Vec<String> = names.into_iter().take(k).collect();
            let values: Vec<Vec<f64>> = values;
            match spec.order {
                Order::Given => FigureData::Heatmap { labels, values },
                Order::Cluster => {
                    let order = cluster_order(&values);
                    FigureData::Heatmap {
                        labels: order.iter().map(|&i| labels[i].clone()).collect(),
                        values: order
                            .iter()
                            .map(|&i| order.iter().map(|&j| values[i][j]).collect())
                            .collect(),
                    }
                }
            }
        }
    };
    Ok(Figure {
        name: spec.name.clone(),
        title,
        data,
        colours: BTreeMap::new(),
    })
}

/// A classifier artefact: `weight` `[C, D]` (f32) with the class names in the metadata.
pub fn read_classifier(path: &Path) -> Result<Classifier, ReportError> {
    let bad = |m: String| ReportError::Spec(format!("{}: {m}", path.display()));
    let bytes = std::fs::read(path).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let (_, meta) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    let t = st.tensor("weight").map_err(|e| bad(e.to_string()))?;
    let [c, d]: [usize; 2] = t
        .shape()
        .try_into()
        .map_err(|_| bad(format!("`weight` has shape {:?}", t.shape())))?;
    let w = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")) as f64)
        .collect();
    let names: Vec<String> = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("classes"))
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_else(|| (0..c).map(|i| i.to_string()).collect());
    Ok((names, w, [c, d]))
}

/// Tableau-10: distinguishable, colour-blind-friendly enough for a handful of settings.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

type DrawResult<T> = Result<T, String>;

fn e<E: std::fmt::Debug>(err: E) -> String {
    format!("{err:?}")
}

fn span(lo: f64, hi: f64) -> (f64, f64) {
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-9);
    (lo - pad, hi + pad)
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, fig: &Figure) -> DrawResult<()> {
    root.fill(&WHITE).map_err(e)?;
    match &fig.data {
        FigureData::Curves {
            x_label,
            y_label,
            curves,
            x_axis,
        } => {
            // Log₂ axes are drawn in log₂ units, labelled with the powers of two.
            let tx = |v: f64| if *x_axis == XAxis::Log2 { v.log2() } else { v };
            let pts = curves.iter().flat_map(|c| &c.points);
            let (x0, x1) = pts
                .clone()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |a, p| {
                    (a.0.min(tx(p.0)), a.1.max(tx(p.0)))
                });
            let distinct: std::collections::BTreeSet<u64> = curves
                .iter()
                .flat_map(|c| &c.points)
                .map(|p| p.0.to_bits())
                .collect();
            let (y0, y1) = pts.fold((f64::INFINITY, f64::NEG_INFINITY), |a, p| {
                (a.0.min(p.1 - p.2), a.1.max(p.1 + p.2))
            });
            let (x0, x1, y0, y1) =
                curves
                    .iter()
                    .flat_map(|c| &c.reference)
                    .fold((x0, x1, y0, y1), |a, p| {
                        (
                            a.0.min(tx(p.0)),
                            a.1.max(tx(p.0)),
                            a.2.min(p.1),
                            a.3.max(p.1),
                        )
                    });
            let (x0, x1) = span(x0, x1);
            let (y0, y1) = span(y0, y1);
            let mut chart = ChartBuilder::on(&root)
                .caption(&fig.title, ("sans-serif", 22))
                .margin(12)
                .x_label_area_size(42)
                .y_label_area_size(60)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(e)?;
            let axis = *x_axis;
            let x_desc = if axis == XAxis::Log2 {
                format!("{x_label} (log2 scale)")
            } else {
                x_label.clone()
            };
            let mut mesh = chart.configure_mesh();
            mesh.x_desc(x_desc)
                .y_desc(y_label.as_str())
                .label_style(("sans-serif", 14));
            let integer = |v: &f64| {
                let r = v.round();
                if (v - r).abs() < 1e-6 {
                    format!("{}", r as i64)
                } else {
                    String::new()
                }
            };
            let power = |v: &f64| {
                let r = v.round();
                if (v - r).abs() < 1e-6 {
                    format!("{}", 2f64.powi(r as i32))
                } else {
                    String::new()
                }
            };
            match axis {
                XAxis::Integer => {
                    mesh.x_labels(distinct.len().clamp(2, 12))
                        .x_label_formatter(&integer);
                }
                XAxis::Log2 => {
                    mesh.x_labels(((x1 - x0).ceil() as usize + 2).clamp(2, 12))
                        .x_label_formatter(&power);
                }
                XAxis::Linear => {}
            }
            mesh.draw().map_err(e)?;
            for (i, c) in curves.iter().enumerate() {
                let colour = fig.colour(&c.label, i);
                let mut band: Vec<(f64, f64)> =
                    c.points.iter().map(|p| (tx(p.0), p.1 + p.2)).collect();
                band.extend(c.points.iter().rev().map(|p| (tx(p.0), p.1 - p.2)));
                chart
                    .draw_series(std::iter::once(Polygon::new(
                        band,
                        colour.mix(0.18).filled(),
                    )))
                    .map_err(e)?;
                chart
                    .draw_series(LineSeries::new(
                        c.points.iter().map(|p| (tx(p.0), p.1)),
                        colour.stroke_width(2),
                    ))
                    .map_err(e)?
                    .label(c.label.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                    });
                if !c.reference.is_empty() {
                    chart
                        .draw_series(DashedLineSeries::new(
                            c.reference.iter().map(|p| (tx(p.0), p.1)),
                            6,
                            4,
                            colour.stroke_width(2),
                        ))
                        .map_err(e)?
                        .label(format!("{} (reference, released log)", c.label))
                        .legend(move |(x, y)| {
                            plotters::element::DashedPathElement::new(
                                vec![(x, y), (x + 18, y)],
                                4,
                                3,
                                colour.stroke_width(2),
                            )
                        });
                }
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 14))
                .position(SeriesLabelPosition::LowerRight)
                .draw()
                .map_err(e)?;
        }
        FigureData::Bars {
            x_label,
            y_label,
            categories,
            groups,
        } => {
            let top = groups
                .iter()
                .flat_map(|g| g.1.iter().flatten())
                .fold(0.0f64, |m, (a, s)| m.max(a + s));
            let n = categories.len().max(1) as f64;
            let mut chart = ChartBuilder::on(&root)
                .caption(&fig.title, ("sans-serif", 22))
                .margin(12)
                .x_label_area_size(42)
                .y_label_area_size(60)
                .build_cartesian_2d(-0.5..n - 0.5, 0.0..top * 1.1 + 1e-9)
                .map_err(e)?;
            let cats = categories.clone();
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_desc(x_label.as_str())
                .y_desc(y_label.as_str())
                .x_labels(categories.len())
                .x_label_formatter(&move |v: &f64| {
                    let i = v.round();
                    if (v - i).abs() < 1e-6 && i >= 0.0 {
                        cats.get(i as usize).cloned().unwrap_or_default()
                    } else {
                        String::new()
                    }
                })
                .label_style(("sans-serif", 14))
                .draw()
                .map_err(e)?;
            let k = groups.len().max(1) as f64;
            let width = 0.8 / k;
            for (gi, (label, vals)) in groups.iter().enumerate() {
                let colour = fig.colour(label, gi);
                let left = |ci: usize| ci as f64 - 0.4 + gi as f64 * width;
                chart
                    .draw_series(vals.iter().enumerate().filter_map(|(ci, v)| {
                        v.map(|(m, _)| {
                            Rectangle::new(
                                [(left(ci), 0.0), (left(ci) + width * 0.9, m)],
                                colour.filled(),
                            )
                        })
                    }))
                    .map_err(e)?
                    .label(label.as_str())
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled())
                    });
                chart
                    .draw_series(vals.iter().enumerate().filter_map(|(ci, v)| {
                        v.map(|(m, s)| {
                            let c = left(ci) + width * 0.45;
                            PathElement::new(vec![(c, m - s), (c, m + s)], BLACK.stroke_width(1))
                        })
                    }))
                    .map_err(e)?;
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 14))
                .draw()
                .map_err(e)?;
        }
        FigureData::Heatmap { labels, values } => {
            let n = labels.len().max(1);
            // The colour scale spans the data (cosine similarities of text embeddings sit
            // within a narrow band), shown by the colour bar on the right.
            let (lo, hi) = values
                .iter()
                .flatten()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |a, v| {
                    (a.0.min(*v), a.1.max(*v))
                });
            let (lo, hi) = if lo.is_finite() && hi > lo {
                (lo, hi)
            } else {
                (lo.min(0.0), lo.min(0.0) + 1.0)
            };
            let (w, _) = root.dim_in_pixel();
            let (main, bar) = root.split_horizontally(w.saturating_sub(110));
            let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(1);
            let names_px = (longest as u32 * 6 + 12).clamp(40, 200);
            let mut chart = ChartBuilder::on(&main)
                .caption(&fig.title, ("sans-serif", 22))
                .margin(12)
                .x_label_area_size(names_px)
                .y_label_area_size(names_px)
                .build_cartesian_2d(0.0..n as f64, 0.0..n as f64)
                .map_err(e)?;
            let (rows, cols) = (labels.clone(), labels.clone());
            let at = |v: f64| {
                let f = v - v.floor();
                ((f - 0.5).abs() < 1e-6).then(|| v.floor() as usize)
            };
            chart
                .configure_mesh()
                .disable_mesh()
                .y_labels(2 * n + 1)
                .y_label_formatter(&move |v: &f64| {
                    at(*v)
                        .and_then(|i| rows.get(n.saturating_sub(1 + i)).cloned())
                        .unwrap_or_default()
                })
                // Column names are drawn below, turned a quarter.
                .x_labels(0)
                .y_label_style(("sans-serif", 11))
                .draw()
                .map_err(e)?;
            let turned = ("sans-serif", 11)
                .into_font()
                .transform(FontTransform::Rotate90)
                .into_text_style(&main)
                .pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Left,
                    plotters::style::text_anchor::VPos::Center,
                ));
            for (j, name) in cols.iter().enumerate() {
                let (px, py) = chart.backend_coord(&(j as f64 + 0.5, 0.0));
                main.draw(&Text::new(name.clone(), (px, py + 6), turned.clone()))
                    .map_err(e)?;
            }
            let scale = |v: f64| viridis(((v - lo) / (hi - lo)).clamp(0.0, 1.0));
            chart
                .draw_series(values.iter().enumerate().flat_map(|(i, row)| {
                    row.iter().enumerate().map(move |(j, v)| {
                        let y = (n - 1 - i) as f64;
                        Rectangle::new(
                            [(j as f64, y), (j as f64 + 1.0, y + 1.0)],
                            scale(*v).filled(),
                        )
                    })
                }))
                .map_err(e)?;
            // The colour bar: the scale from the smallest to the largest similarity.
            let mut cb = ChartBuilder::on(&bar)
                .margin_top(46)
                .margin_bottom(names_px + 12)
                .margin_right(8)
                .y_label_area_size(46)
                .build_cartesian_2d(0.0..1.0, lo..hi)
                .map_err(e)?;
            cb.configure_mesh()
                .disable_mesh()
                .disable_x_axis()
                .y_labels(6)
                .y_label_formatter(&|v: &f64| format!("{v:.2}"))
                .y_desc("cosine similarity")
                .label_style(("sans-serif", 11))
                .draw()
                .map_err(e)?;
            let steps = 64;
            cb.draw_series((0..steps).map(|k| {
                let a = lo + (hi - lo) * k as f64 / steps as f64;
                let b = lo + (hi - lo) * (k + 1) as f64 / steps as f64;
                Rectangle::new([(0.0, a), (1.0, b)], scale((a + b) / 2.0).filled())
            }))
            .map_err(e)?;
        }
    }
    root.present().map_err(e)?;
    Ok(())
}

/// Viridis (matplotlib's default sequential map: perceptually uniform, readable in grey and by
/// most colour-blind readers) at `t` in [0, 1], interpolated between nine of its stops.
fn viridis(t: f64) -> RGBColor {
    const STOPS: [(u8, u8, u8); 9] = [
        (68, 1, 84),
        (71, 44, 122),
        (59, 81, 139),
        (44, 113, 142),
        (33, 144, 141),
        (39, 173, 129),
        (92, 200, 99),
        (170, 220, 50),
        (253, 231, 37),
    ];
    let x = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Size of every figure.
pub const SIZE: (u32, u32) = (900, 560);

/// The figure as SVG text.
pub fn svg(fig: &Figure) -> Result<String, ReportError> {
    register_font();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        draw(root, fig).map_err(|m| ReportError::Spec(format!("figure `{}`: {m}", fig.name)))?;
    }
    Ok(out)
}

/// Writes the figure as a vector PDF (for LaTeX's `\includegraphics`).
pub fn pdf(fig: &Figure, path: &Path) -> Result<(), ReportError> {
    register_font();
    let root = crate::pdf::PdfBackend::new(path, SIZE).into_drawing_area();
    draw(root, fig).map_err(|m| ReportError::Spec(format!("{}: {m}", path.display())))
}

/// Writes the figure as PNG.
pub fn png(fig: &Figure, path: &Path) -> Result<(), ReportError> {
    register_font();
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    draw(root, fig).map_err(|m| ReportError::Spec(format!("{}: {m}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(x, text)` of every `<text>` element of an SVG.
    fn texts(svg: &str) -> Vec<(f64, String)> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let x = t.split("x=\"").nth(1)?.split('"').next()?.parse().ok()?;
                let body = t.split_once('>')?.1.split("</text>").next()?;
                Some((x, body.trim().to_string()))
            })
            .collect()
    }

    fn curves(x_label: &str, xs: &[f64], scale: XScale, labels: &[&str]) -> Figure {
        let points: Vec<(f64, f64, f64, usize)> =
            xs.iter().map(|&x| (x, 50.0 + x, 1.0, 3)).collect();
        Figure {
            name: "f".into(),
            title: "f".into(),
            data: FigureData::Curves {
                x_label: x_label.into(),
                y_label: "test/top1".into(),
                x_axis: XAxis::choose(x_label, xs, scale),
                curves: labels
                    .iter()
                    .map(|l| Curve {
                        label: l.to_string(),
                        points: points.clone(),
                        reference: Vec::new(),
                    })
                    .collect(),
            },
            colours: BTreeMap::new(),
        }
    }

    #[test]
    fn clustering_puts_similar_classes_side_by_side() {
        // Classes 0 and 2 alike, 1 and 3 alike.
        let s = vec![
            vec![1.0, 0.1, 0.9, 0.2],
            vec![0.1, 1.0, 0.15, 0.8],
            vec![0.9, 0.15, 1.0, 0.1],
            vec![0.2, 0.8, 0.1, 1.0],
        ];
        let o = cluster_order(&s);
        assert_eq!(o.len(), 4);
        let pos = |i: usize| o.iter().position(|&x| x == i).unwrap() as i64;
        assert_eq!((pos(0) - pos(2)).abs(), 1, "{o:?}");
        assert_eq!((pos(1) - pos(3)).abs(), 1, "{o:?}");
        assert_eq!(cluster_order(&[vec![1.0]]), vec![0]);
        assert!(cluster_order(&[]).is_empty());
    }

    #[test]
    fn axes_follow_their_values() {
        let auto = XScale::Auto;
        assert_eq!(
            XAxis::choose("data.shots", &[1.0, 2.0, 4.0, 8.0], auto),
            XAxis::Log2
        );
        assert_eq!(
            XAxis::choose("data.shots", &[0.0, 2.0], auto),
            XAxis::Integer
        );
        assert_eq!(
            XAxis::choose("epoch", &[1.0, 2.0, 3.0], auto),
            XAxis::Integer
        );
        assert_eq!(
            XAxis::choose("optim.lr", &[1e-5, 5e-5], auto),
            XAxis::Linear
        );
        assert_eq!(
            XAxis::choose("model.frames", &[8.0, 16.0], XScale::Log2),
            XAxis::Log2
        );
        assert_eq!(
            XAxis::choose("data.shots", &[1.0, 2.0], XScale::Linear),
            XAxis::Integer
        );
    }

    #[test]
    fn shots_sit_on_a_log2_axis_and_epochs_on_integer_ticks() {
        let out = super::svg(&curves(
            "data.shots",
            &[1.0, 2.0, 4.0, 8.0],
            XScale::Auto,
            &["a"],
        ))
        .unwrap();
        let t = texts(&out);
        let tick = |s: &str| t.iter().find(|(_, b)| b == s).map(|(x, _)| *x);
        let xs: Vec<f64> = ["1", "2", "4", "8"]
            .iter()
            .map(|s| tick(s).unwrap_or_else(|| panic!("no tick {s}: {t:?}")))
            .collect();
        // Evenly spaced: equal steps between 1, 2, 4 and 8.
        let steps: Vec<f64> = xs.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(steps.iter().all(|d| (d - steps[0]).abs() <= 1.5), "{xs:?}");
        assert!(tick("3").is_none() && tick("6").is_none(), "{t:?}");
        assert!(t.iter().any(|(_, b)| b.contains("log2 scale")));

        let out = super::svg(&curves(
            "epoch",
            &[1.0, 2.0, 3.0, 4.0, 5.0],
            XScale::Auto,
            &["a"],
        ))
        .unwrap();
        let t = texts(&out);
        for k in 1..=5 {
            assert!(
                t.iter().any(|(_, b)| *b == k.to_string()),
                "tick {k}: {t:?}"
            );
        }
        assert!(
            !t.iter()
                .any(|(_, b)| b.contains('.') && b.parse::<f64>().is_ok_and(|v| v < 10.0)),
            "no fractional epoch ticks: {t:?}"
        );
    }

    /// `pdftoppm` (poppler): `T4V_PDFTOPPM`, or on the PATH; `.ci/run` installs it.
    fn pdftoppm() -> Option<std::path::PathBuf> {
        std::env::var_os("T4V_PDFTOPPM")
            .map(Into::into)
            .or_else(|| {
                std::env::split_paths(&std::env::var_os("PATH")?)
                    .map(|d| d.join("pdftoppm"))
                    .find(|p| p.exists())
            })
    }

    /// Renders page 1 of a PDF at 72 dpi: (width, height, RGB bytes).
    fn render(tool: &Path, pdf: &Path) -> (usize, usize, Vec<u8>) {
        let out = pdf.with_extension("");
        let o = std::process::Command::new(tool)
            .args(["-r", "72", "-singlefile"])
            .arg(pdf)
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let ppm = std::fs::read(out.with_extension("ppm")).unwrap();
        // P6 <w> <h> 255 <rgb...>
        let mut fields = Vec::new();
        let mut i = 0;
        while fields.len() < 4 {
            while ppm[i].is_ascii_whitespace() {
                i += 1;
            }
            let start = i;
            while !ppm[i].is_ascii_whitespace() {
                i += 1;
            }
            fields.push(String::from_utf8_lossy(&ppm[start..i]).into_owned());
        }
        let (w, h): (usize, usize) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
        (w, h, ppm[i + 1..].to_vec())
    }

    /// A figure as vector PDF: path and text operators (no image), rendered by poppler to a
    /// page of the figure's size with its marks — the curve's colour, dark text and axes.
    #[test]
    fn figures_render_as_vector_pdf() {
        let d = tempfile::tempdir().unwrap();
        let mut fig = curves(
            "data.shots",
            &[1.0, 2.0, 4.0, 8.0],
            XScale::Auto,
            &["init=text"],
        );
        assign_colours(std::slice::from_mut(&mut fig));
        let p = d.path().join("shots.pdf");
        pdf(&fig, &p).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.starts_with("%PDF-1.4") && text.trim_end().ends_with("%%EOF"));
        assert!(text.contains("/BaseFont /Helvetica") && text.contains(" Tj ET"));
        assert!(
            text.contains("(data.shots \\(log2 scale\\)) Tj"),
            "the axis title as text"
        );
        assert!(!text.contains("/Image"), "vector only");
        let Some(tool) = pdftoppm() else {
            eprintln!("skipped rendering the PDF: no pdftoppm (set T4V_PDFTOPPM)");
            return;
        };
        let (w, h, rgb) = render(&tool, &p);
        assert_eq!((w, h), (SIZE.0 as usize, SIZE.1 as usize));
        let px: Vec<&[u8]> = rgb.chunks_exact(3).collect();
        let near = |c: &[u8], (r, g, b): (u8, u8, u8)| {
            (c[0] as i32 - r as i32).abs() < 40
                && (c[1] as i32 - g as i32).abs() < 40
                && (c[2] as i32 - b as i32).abs() < 40
        };
        let line = px.iter().filter(|c| near(c, (31, 119, 180))).count();
        let dark = px.iter().filter(|c| c.iter().all(|&v| v < 90)).count();
        let white = px.iter().filter(|c| c.iter().all(|&v| v > 245)).count();
        assert!(line > 500, "{line} pixels of the curve's colour");
        assert!(dark > 500, "{dark} dark pixels (text, axes)");
        assert!(white > px.len() / 2, "a white page with marks");

        // The heatmap: the colour bar's extremes (viridis' ends) are on the page.
        let labels: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let values = vec![
            vec![1.0, 0.2, 0.5],
            vec![0.2, 1.0, 0.4],
            vec![0.5, 0.4, 1.0],
        ];
        let heat = Figure {
            name: "h".into(),
            title: "h".into(),
            data: FigureData::Heatmap { labels, values },
            colours: BTreeMap::new(),
        };
        let p = d.path().join("heat.pdf");
        pdf(&heat, &p).unwrap();
        let (_, _, rgb) = render(&tool, &p);
        let px: Vec<&[u8]> = rgb.chunks_exact(3).collect();
        for end in [(68, 1, 84), (253, 231, 37)] {
            assert!(px.iter().filter(|c| near(c, end)).count() > 500, "{end:?}");
        }
    }

    #[test]
    fn a_setting_keeps_its_colour_across_figures() {
        let mut figs = vec![
            curves(
                "epoch",
                &[1.0, 2.0],
                XScale::Auto,
                &["init=text", "init=lda"],
            ),
            curves("data.shots", &[1.0, 2.0], XScale::Auto, &["init=lda"]),
        ];
        assign_colours(&mut figs);
        assert_eq!(figs[1].colours["init=lda"], figs[0].colours["init=lda"]);
        assert_ne!(figs[0].colours["init=text"], figs[0].colours["init=lda"]);
        let colour = |f: &Figure| format!("{:?}", f.colour("init=lda", 0));
        assert_eq!(colour(&figs[0]), colour(&figs[1]));
    }

    #[test]
    fn similarity_of_a_classifier_artefact() {
        let d = std::env::temp_dir().join(format!("t4v-sim-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join("classifier.safetensors");
        // Rows: e1, e1 + e2 (cos 1/√2 with row 0), −e1.
        let w: Vec<f32> = vec![1.0, 0.0, 1.0, 1.0, -1.0, 0.0];
        let bytes: Vec<u8> = w.iter().flat_map(|x| x.to_le_bytes()).collect();
        let view =
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![3, 2], &bytes)
                .unwrap();
        let meta: std::collections::HashMap<String, String> =
            [("classes".to_string(), r#"["a","b","c"]"#.to_string())].into();
        safetensors::serialize_to_file([("weight", view)], Some(meta), &path).unwrap();
        let mut record = t4v_store::RunRecord::new(
            "0123456789abcdef".parse().unwrap(),
            serde_json::json!({"kind": "probe", "seed": 0}),
            serde_json::json!({}),
            "0123456789abcdef".parse().unwrap(),
            0,
        );
        record
            .artefacts
            .insert("classifier".into(), path.to_string_lossy().into_owned());
        let runs = [RunData {
            record,
            series: Default::default(),
            provenance: None,
        }];
        let spec: FigureSpec = serde_json::from_value(serde_json::json!({
            "name": "sim", "plot": "similarity", "classes": 3
        }))
        .unwrap();
        let fig = compute(&runs, &spec).unwrap();
        let FigureData::Heatmap { labels, values } = &fig.data else {
            panic!("a heatmap")
        };
        assert_eq!(labels, &["a", "b", "c"]);
        let h = std::f64::consts::FRAC_1_SQRT_2;
        let want = [[1.0, h, -1.0], [h, 1.0, -h], [-1.0, -h, 1.0]];
        for (i, row) in values.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                assert!((v - want[i][j]).abs() < 1e-6, "{i},{j}: {v}");
            }
        }
        let svg = svg(&fig).unwrap();
        assert!(svg.matches("<rect").count() >= 9);
        // Class names on both axes, and a colour bar over the data's range (−1 … 1 here).
        let t = texts(&svg);
        for name in ["a", "b", "c"] {
            assert_eq!(
                t.iter().filter(|(_, b)| b == name).count(),
                2,
                "{name}: {t:?}"
            );
        }
        assert!(t.iter().any(|(_, b)| b == "cosine similarity"), "{t:?}");
        assert!(
            t.iter().any(|(_, b)| b == "-1.00") && t.iter().any(|(_, b)| b == "1.00"),
            "{t:?}"
        );
        png(&fig, &d.join("sim.png")).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }
}
