//! Tables as Markdown, LaTeX (booktabs) and CSV. The text formats print every cell as
//! `mean ± std` at the table's precision; the best of a column is bold, the second underlined;
//! a cell with fewer seeds than planned carries `†n/expected`.

use polars::prelude::*;

use crate::ReportError;
use crate::compare::{Comparison, Group};
use crate::stats::Correction;
use crate::table::{Cell, Table};

pub(crate) fn number(x: f64, precision: usize) -> String {
    format!("{x:.precision$}")
}

/// A cell's `mean{pm}std` text (`—` without values), its rank, and its `†n/expected` flag.
pub(crate) fn cell_text(
    c: &Option<Cell>,
    precision: usize,
    pm: &str,
) -> (String, Option<u8>, String) {
    match c {
        None => (String::new(), None, String::new()),
        Some(Cell {
            fixed: Some(text), ..
        }) => (text.clone(), None, String::new()),
        Some(c) => {
            let flag = if c.flagged() {
                format!("†{}/{}", c.n(), c.expected)
            } else {
                String::new()
            };
            if c.n() == 0 {
                return ("—".into(), None, flag);
            }
            (
                format!(
                    "{}{pm}{}",
                    number(c.mean, precision),
                    number(c.std, precision)
                ),
                c.rank,
                flag,
            )
        }
    }
}

pub(crate) const FLAG_NOTE: &str =
    "† fewer seeds than planned (n/expected): failed, pending or missing runs.";

pub(crate) fn any_flag(t: &Table) -> bool {
    t.rows
        .iter()
        .flat_map(|(_, cs)| cs)
        .any(|c| c.as_ref().is_some_and(Cell::flagged))
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

pub fn markdown(t: &Table) -> String {
    let mut out = format!("### {}\n\n{}\n\n", t.name, t.caption);
    let head: Vec<String> = t
        .row_fields
        .iter()
        .chain(&t.col_labels)
        .map(|s| md_escape(s))
        .collect();
    out += &format!("| {} |\n", head.join(" | "));
    let align: Vec<&str> = t
        .row_fields
        .iter()
        .map(|_| "---")
        .chain(t.col_labels.iter().map(|_| "---:"))
        .collect();
    out += &format!("|{}|\n", align.join("|"));
    for (labels, cells) in &t.rows {
        let mut fields: Vec<String> = labels.iter().map(|s| md_escape(s)).collect();
        for c in cells {
            let (text, rank, flag) = cell_text(c, t.precision, " ± ");
            let text = match rank {
                Some(1) => format!("**{text}**"),
                Some(2) => format!("<u>{text}</u>"),
                _ => text,
            };
            fields.push(if flag.is_empty() {
                text
            } else {
                format!("{text} {flag}")
            });
        }
        out += &format!("| {} |\n", fields.join(" | "));
    }
    if any_flag(t) {
        out += &format!("\n{FLAG_NOTE}\n");
    }
    out
}

fn tex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\textbackslash{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            '—' => out.push_str("---"),
            '±' => out.push_str("$\\pm$"),
            _ => out.push(c),
        }
    }
    out
}

/// A booktabs `table` environment (needs `\usepackage{booktabs}`).
pub fn latex(t: &Table) -> String {
    let cols = format!(
        "{}{}",
        "l".repeat(t.row_fields.len().max(1)),
        "r".repeat(t.col_labels.len())
    );
    let mut out = String::from("\\begin{table}[t]\n\\centering\n");
    out += &format!(
        "\\caption{{{}: {}}}\n\\label{{tab:{}}}\n",
        tex_escape(&t.name),
        tex_escape(&t.caption),
        t.name.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
    );
    out += &format!("\\begin{{tabular}}{{{cols}}}\n\\toprule\n");
    let mut head: Vec<String> = t.row_fields.iter().map(|s| tex_escape(s)).collect();
    if head.is_empty() {
        head.push(String::new());
    }
    head.extend(t.col_labels.iter().map(|s| tex_escape(s)));
    out += &format!("{} \\\\\n\\midrule\n", head.join(" & "));
    for (labels, cells) in &t.rows {
        let mut fields: Vec<String> = labels.iter().map(|s| tex_escape(s)).collect();
        if fields.is_empty() {
            fields.push(String::new());
        }
        for c in cells {
            let (text, rank, flag) = cell_text(c, t.precision, " $\\pm$ ");
            let text = if text == "—" {
                "---".to_string()
            } else {
                text
            };
            let text = match rank {
                Some(1) => format!("\\textbf{{{text}}}"),
                Some(2) => format!("\\underline{{{text}}}"),
                _ => text,
            };
            fields.push(if flag.is_empty() {
                text
            } else {
                format!(
                    "{text}\\textsuperscript{{\\dag{}}}",
                    flag.trim_start_matches('†')
                )
            });
        }
        out += &format!("{} \\\\\n", fields.join(" & "));
    }
    out += "\\bottomrule\n\\end{tabular}\n";
    if any_flag(t) {
        out += &format!(
            "\\par\\smallskip{{\\footnotesize {}}}\n",
            tex_escape(FLAG_NOTE).replace('†', "\\dag{} ")
        );
    }
    out += "\\end{table}\n";
    out
}

/// The table in long form, one line per cell: row fields, `column`, `n`, `expected`, `mean`,
/// `std`, `rank` (1 best, 2 second), through a polars DataFrame.
pub fn table_frame(t: &Table) -> PolarsResult<DataFrame> {
    let mut labels: Vec<Vec<String>> = vec![Vec::new(); t.row_fields.len()];
    let (mut column, mut n, mut expected, mut mean, mut std, mut rank) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for (ls, cells) in &t.rows {
        for (ci, c) in cells.iter().enumerate() {
            let Some(c) = c else { continue };
            for (k, l) in ls.iter().enumerate() {
                labels[k].push(l.clone());
            }
            column.push(t.col_labels[ci].clone());
            n.push(c.n() as u32);
            expected.push(c.expected as u32);
            mean.push((c.n() > 0).then_some(c.mean));
            std.push((c.n() > 0).then_some(c.std));
            rank.push(c.rank.map(u32::from));
        }
    }
    let mut cols: Vec<Column> = t
        .row_fields
        .iter()
        .zip(labels)
        .map(|(f, v)| Column::new(f.as_str().into(), v))
        .collect();
    cols.push(Column::new("column".into(), column));
    cols.push(Column::new("n".into(), n));
    cols.push(Column::new("expected".into(), expected));
    cols.push(Column::new("mean".into(), mean));
    cols.push(Column::new("std".into(), std));
    cols.push(Column::new("rank".into(), rank));
    DataFrame::new_infer_height(cols)
}

/// Any frame as CSV text.
pub fn csv(df: &mut DataFrame) -> Result<String, ReportError> {
    let mut buf = Vec::new();
    CsvWriter::new(&mut buf)
        .include_header(true)
        .with_float_precision(Some(6))
        .finish(df)?;
    Ok(String::from_utf8(buf).expect("CSV is UTF-8"))
}

/// A p-value as printed: three decimals, `<0.001`, or `—` when undefined.
pub(crate) fn p_text(p: f64) -> String {
    if p.is_nan() {
        "—".into()
    } else if p < 0.001 {
        "<0.001".into()
    } else {
        format!("{p:.3}")
    }
}

/// The statistics columns of a comparison: their heads and, per row, each cell's text and
/// whether it is bold (an adjusted p-value — or a raw one when nothing is adjusted — under
/// 0.05). Markdown, LaTeX and HTML all render these.
pub(crate) fn paired_heads(c: &Comparison) -> Vec<String> {
    let mut h: Vec<String> = ["pairs", "mean A", "mean B", "Δ (A − B)"]
        .map(String::from)
        .to_vec();
    h.push(format!("{:.0}% CI", c.confidence * 100.0));
    let short = match c.correction {
        Correction::Holm => Some("Holm"),
        Correction::BenjaminiHochberg => Some("BH"),
        Correction::None => None,
    };
    for test in ["t-test p", "Wilcoxon p"] {
        h.push(test.to_string());
        if let Some(s) = short {
            h.push(format!("{test} ({s})"));
        }
    }
    h
}

pub(crate) fn paired_cells(c: &Comparison, g: &Group) -> Vec<(String, bool)> {
    let p = c.precision;
    let adjusted = c.correction != Correction::None;
    let mut out = vec![
        (g.stats.n.to_string(), false),
        (number(g.mean_a, p), false),
        (number(g.mean_b, p), false),
        (format!("{:+.p$}", g.stats.mean_diff), false),
        (
            if g.ci.0.is_nan() {
                "—".into()
            } else {
                format!("[{:+.p$}, {:+.p$}]", g.ci.0, g.ci.1)
            },
            false,
        ),
    ];
    for (raw, adj) in [
        (g.stats.t_p, g.t_p_adj),
        (g.stats.wilcoxon_p, g.wilcoxon_p_adj),
    ] {
        out.push((p_text(raw), !adjusted && raw < 0.05));
        if adjusted {
            out.push((p_text(adj), adj < 0.05));
        }
    }
    out
}

/// A comparison as Markdown: one line per group.
pub fn comparison_markdown(c: &Comparison) -> String {
    let mut out = format!(
        "### {}\n\n{} − {} on {}, paired by seed\n\n",
        c.name, c.a_label, c.b_label, c.metric
    );
    let mut head: Vec<String> = c.group_fields.clone();
    head.extend(paired_heads(c));
    out += &format!("| {} |\n", head.join(" | "));
    out += &format!(
        "|{}|\n",
        head.iter()
            .enumerate()
            .map(|(i, _)| if i < c.group_fields.len() {
                "---"
            } else {
                "---:"
            })
            .collect::<Vec<_>>()
            .join("|")
    );
    for g in &c.groups {
        let mut f: Vec<String> = g.labels.clone();
        f.extend(
            paired_cells(c, g)
                .into_iter()
                .map(|(s, b)| if b { format!("**{s}**") } else { s }),
        );
        out += &format!("| {} |\n", f.join(" | "));
    }
    out += &format!("\n{}\n", c.method_note());
    out
}

/// A comparison as a booktabs table.
pub fn comparison_latex(c: &Comparison) -> String {
    let mut out = String::from("\\begin{table}[t]\n\\centering\n");
    out += &format!(
        "\\caption{{{}: {} $-$ {} on {}, paired by seed}}\n",
        tex_escape(&c.name),
        tex_escape(&c.a_label),
        tex_escape(&c.b_label),
        tex_escape(&c.metric)
    );
    let heads = paired_heads(c);
    out += &format!(
        "\\begin{{tabular}}{{{}{}}}\n\\toprule\n",
        "l".repeat(c.group_fields.len()),
        "r".repeat(heads.len())
    );
    let mut head: Vec<String> = c.group_fields.iter().map(|s| tex_escape(s)).collect();
    head.extend(
        heads
            .iter()
            .map(|h| tex_escape(h).replace("Δ", "$\\Delta$").replace("−", "$-$")),
    );
    out += &format!("{} \\\\\n\\midrule\n", head.join(" & "));
    for g in &c.groups {
        let mut f: Vec<String> = g.labels.iter().map(|s| tex_escape(s)).collect();
        f.extend(paired_cells(c, g).into_iter().map(|(s, b)| {
            let s = tex_escape(&s).replace('<', "$<$");
            if b { format!("\\textbf{{{s}}}") } else { s }
        }));
        out += &format!("{} \\\\\n", f.join(" & "));
    }
    out += "\\bottomrule\n\\end{tabular}\n";
    out += &format!(
        "\\par\\smallskip{{\\footnotesize {}}}\n",
        tex_escape(&c.method_note())
            .replace('<', "$<$")
            .replace("–", "--")
    );
    out += "\\end{table}\n";
    out
}

/// A comparison in long form.
pub fn comparison_frame(c: &Comparison) -> PolarsResult<DataFrame> {
    let mut cols: Vec<Column> = c
        .group_fields
        .iter()
        .enumerate()
        .map(|(k, f)| {
            Column::new(
                f.as_str().into(),
                c.groups
                    .iter()
                    .map(|g| g.labels[k].clone())
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let g = &c.groups;
    cols.push(Column::new(
        "pairs".into(),
        g.iter().map(|g| g.stats.n as u32).collect::<Vec<_>>(),
    ));
    cols.push(Column::new(
        "mean_a".into(),
        g.iter().map(|g| g.mean_a).collect::<Vec<_>>(),
    ));
    cols.push(Column::new(
        "mean_b".into(),
        g.iter().map(|g| g.mean_b).collect::<Vec<_>>(),
    ));
    cols.push(Column::new(
        "mean_diff".into(),
        g.iter().map(|g| g.stats.mean_diff).collect::<Vec<_>>(),
    ));
    cols.push(Column::new(
        "t".into(),
        g.iter().map(|g| g.stats.t).collect::<Vec<_>>(),
    ));
    cols.push(Column::new(
        "t_p".into(),
        g.iter().map(|g| g.stats.t_p).collect::<Vec<_>>(),
    ));
    cols.push(Column::new(
        "wilcoxon_w_plus".into(),
        g.iter().map(|g| g.stats.w_plus).collect::<Vec<_>>(),
    ));
    cols.push(Column::new(
        "wilcoxon_p".into(),
        g.iter().map(|g| g.stats.wilcoxon_p).collect::<Vec<_>>(),
    ));
    cols.push(Column::new(
        "t_p_adj".into(),
        g.iter().map(|g| g.t_p_adj).collect::<Vec<_>>(),
    ));
    cols.push(Column::new(
        "wilcoxon_p_adj".into(),
        g.iter().map(|g| g.wilcoxon_p_adj).collect::<Vec<_>>(),
    ));
    cols.push(Column::new(
        "ci_low".into(),
        g.iter().map(|g| g.ci.0).collect::<Vec<_>>(),
    ));
    cols.push(Column::new(
        "ci_high".into(),
        g.iter().map(|g| g.ci.1).collect::<Vec<_>>(),
    ));
    cols.push(Column::new(
        "correction".into(),
        g.iter()
            .map(|_| c.correction.name().to_string())
            .collect::<Vec<_>>(),
    ));
    DataFrame::new_infer_height(cols)
}
