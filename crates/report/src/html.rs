//! `index.html`: one self-contained page per report — tables, comparisons, figures (the SVG
//! files beside it), the sweep script, run counts and provenance — readable offline.

use crate::compare::Comparison;
use crate::table::Table;
use crate::{Report, render};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn table(t: &Table) -> String {
    let mut out = format!(
        "<section><h2>{}</h2><p class=\"cap\">{}</p><table><thead><tr>",
        esc(&t.name),
        esc(&t.caption)
    );
    for h in &t.row_fields {
        out += &format!("<th>{}</th>", esc(h));
    }
    for h in &t.col_labels {
        out += &format!("<th class=\"n\">{}</th>", esc(h));
    }
    out += "</tr></thead><tbody>";
    for (labels, cells) in &t.rows {
        out += "<tr>";
        for l in labels {
            out += &format!("<td>{}</td>", esc(l));
        }
        for c in cells {
            if c.is_none() {
                out += "<td></td>";
                continue;
            }
            let (text, rank, flag) = render::cell_text(c, t.precision, " ± ");
            let mut text = match rank {
                Some(1) => format!("<b>{text}</b>"),
                Some(2) => format!("<u>{text}</u>"),
                _ => text,
            };
            if !flag.is_empty() {
                text += &format!(" <span class=\"flag\">{flag}</span>");
            }
            out += &format!("<td class=\"n\">{text}</td>");
        }
        out += "</tr>";
    }
    out += "</tbody></table>";
    if render::any_flag(t) {
        out += &format!("<p class=\"cap\">{}</p>", render::FLAG_NOTE);
    }
    out + "</section>\n"
}

fn comparison(c: &Comparison) -> String {
    let mut out = format!(
        "<section><h2>{}</h2><p class=\"cap\">{} − {} on {}, paired by seed</p><table><thead><tr>",
        esc(&c.name),
        esc(&c.a_label),
        esc(&c.b_label),
        esc(&c.metric)
    );
    for h in &c.group_fields {
        out += &format!("<th>{}</th>", esc(h));
    }
    for h in crate::render::paired_heads(c) {
        out += &format!("<th class=\"n\">{}</th>", esc(&h));
    }
    out += "</tr></thead><tbody>";
    for g in &c.groups {
        out += "<tr>";
        for l in &g.labels {
            out += &format!("<td>{}</td>", esc(l));
        }
        for (s, bold) in crate::render::paired_cells(c, g) {
            let s = esc(&s);
            out += &format!(
                "<td class=\"n\">{}</td>",
                if bold { format!("<b>{s}</b>") } else { s }
            );
        }
        out += "</tr>";
    }
    out += "</tbody></table>";
    out += &format!("<p class=\"cap\">{}</p>", esc(&c.method_note()));
    out + "</section>\n"
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:.5em 0}th,td{padding:.25em .7em;border-bottom:1px solid #ddd}\
th{border-bottom:2px solid #444;text-align:left}.n{text-align:right}.cap{color:#555;font-size:.9em}\
.flag{color:#b00;font-size:.85em}img{max-width:100%;border:1px solid #eee}pre{background:#f6f6f6;\
padding:1em;overflow-x:auto;font-size:.85em}";

/// The page.
pub fn page(r: &Report) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Report: {0}</title><style>{STYLE}</style></head><body>\n<h1>Report: sweep <code>{0}</code></h1>\n",
        esc(&r.sweep)
    );
    let total: usize = r.counts.values().sum();
    out += &format!(
        "<p>{total} runs: {}</p>\n",
        r.counts
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for t in &r.tables {
        out += &table(t);
    }
    for c in &r.comparisons {
        out += &comparison(c);
    }
    for f in &r.figures {
        let stem = crate::file_stem(&f.name);
        out += &format!(
            "<section><h2>{}</h2><img src=\"{stem}.svg\" alt=\"{}\"></section>\n",
            esc(&f.title),
            esc(&f.title)
        );
    }
    if !r.provenance.is_empty() {
        out += "<section><h2>Provenance</h2><ul>";
        for (p, n) in &r.provenance {
            out += &format!("<li>{n} runs: {}</li>", esc(p));
        }
        out += "</ul></section>\n";
    }
    if let Some((path, text)) = &r.script {
        out += &format!(
            "<section><h2>Script <code>{}</code></h2><pre>{}</pre></section>\n",
            esc(path),
            esc(text)
        );
    }
    out + "</body></html>\n"
}
