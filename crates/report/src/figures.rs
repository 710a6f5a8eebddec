//! Figures with plotters, as SVG and PNG: metric curves over epochs (or over a numeric spec
//! field such as `data.shots`, the few-shot curve) per setting — mean line and ± std band over
//! seeds —, grouped bars with error bars, and the cosine-similarity heatmap of a classifier W
//! (the paper's Fig. 1). PNG text uses an embedded DejaVu Sans subset, so figures render the same
//! on a machine without fonts; SVG text is left to the viewer.

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
    #[serde(default)]
    pub title: Option<String>,
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
}

#[derive(Clone, Debug, PartialEq)]
pub enum FigureData {
    Curves {
        x_label: String,
        y_label: String,
        curves: Vec<Curve>,
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
            for (r, f) in &sel {
                let label = group_label(spec, f);
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
            let curves = groups
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
                    Curve { label, points }
                })
                .collect();
            FigureData::Curves {
                x_label: x.to_string(),
                y_label: metric.to_string(),
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
            FigureData::Heatmap {
                labels: names.into_iter().take(k).collect(),
                values,
            }
        }
    };
    Ok(Figure {
        name: spec.name.clone(),
        title,
        data,
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
        } => {
            let pts = curves.iter().flat_map(|c| &c.points);
            let (x0, x1) = pts
                .clone()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |a, p| {
                    (a.0.min(p.0), a.1.max(p.0))
                });
            let (y0, y1) = pts.fold((f64::INFINITY, f64::NEG_INFINITY), |a, p| {
                (a.0.min(p.1 - p.2), a.1.max(p.1 + p.2))
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
            chart
                .configure_mesh()
                .x_desc(x_label.as_str())
                .y_desc(y_label.as_str())
                .label_style(("sans-serif", 14))
                .draw()
                .map_err(e)?;
            for (i, c) in curves.iter().enumerate() {
                let colour = PALETTE[i % PALETTE.len()];
                let mut band: Vec<(f64, f64)> = c.points.iter().map(|p| (p.0, p.1 + p.2)).collect();
                band.extend(c.points.iter().rev().map(|p| (p.0, p.1 - p.2)));
                chart
                    .draw_series(std::iter::once(Polygon::new(
                        band,
                        colour.mix(0.18).filled(),
                    )))
                    .map_err(e)?;
                chart
                    .draw_series(LineSeries::new(
                        c.points.iter().map(|p| (p.0, p.1)),
                        colour.stroke_width(2),
                    ))
                    .map_err(e)?
                    .label(c.label.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                    });
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
                let colour = PALETTE[gi % PALETTE.len()];
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
            let mut chart = ChartBuilder::on(&root)
                .caption(&fig.title, ("sans-serif", 22))
                .margin(12)
                .x_label_area_size(30)
                .y_label_area_size(160)
                .build_cartesian_2d(0.0..n as f64, 0.0..n as f64)
                .map_err(e)?;
            let names = labels.clone();
            chart
                .configure_mesh()
                .disable_mesh()
                .y_labels(n.min(40))
                .y_label_formatter(&move |v: &f64| {
                    let i = v.floor() as usize;
                    names
                        .get(n.saturating_sub(1 + i))
                        .cloned()
                        .unwrap_or_default()
                })
                .x_labels(n.min(20))
                .x_label_formatter(&|v: &f64| format!("{}", v.floor() as usize))
                .label_style(("sans-serif", 11))
                .draw()
                .map_err(e)?;
            // Cosine similarity in [-1, 1]: blue (−1) → white (0) → red (1).
            let colour = |v: f64| {
                let t = v.clamp(-1.0, 1.0);
                let f = |a: f64| (255.0 * (1.0 - a)).round() as u8;
                if t >= 0.0 {
                    RGBColor(255, f(t), f(t))
                } else {
                    RGBColor(f(-t), f(-t), 255)
                }
            };
            chart
                .draw_series(values.iter().enumerate().flat_map(|(i, row)| {
                    row.iter().enumerate().map(move |(j, v)| {
                        let y = (n - 1 - i) as f64;
                        Rectangle::new(
                            [(j as f64, y), (j as f64 + 1.0, y + 1.0)],
                            colour(*v).filled(),
                        )
                    })
                }))
                .map_err(e)?;
        }
    }
    root.present().map_err(e)?;
    Ok(())
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

/// Writes the figure as PNG.
pub fn png(fig: &Figure, path: &Path) -> Result<(), ReportError> {
    register_font();
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    draw(root, fig).map_err(|m| ReportError::Spec(format!("{}: {m}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        png(&fig, &d.join("sim.png")).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }
}
