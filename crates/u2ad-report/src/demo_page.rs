//! The page `u2ad demo` writes (`report.html`): its notes, the headline table of every method,
//! links to each method's QC report and the full evaluation tables.

use crate::html::escape;

/// A value with an optional 95 % interval, as the headline table shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DemoEstimate {
    pub value: Option<f64>,
    /// (low, high).
    pub interval: Option<(f64, f64)>,
}

/// One row of the headline table: a method on one group of the truth.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoRow {
    pub method: String,
    pub group: String,
    pub pixel_auprc: Option<f64>,
    pub best_dice_oracle: Option<f64>,
    pub segment_f1: DemoEstimate,
    pub patient_f1: DemoEstimate,
}

/// What the demo page shows.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoPage {
    pub notes: Vec<String>,
    pub rows: Vec<DemoRow>,
    /// (method, address of its QC report relative to the page).
    pub qc_reports: Vec<(String, String)>,
    /// The evaluation's tables (Markdown), shown as they are.
    pub tables_markdown: String,
}

fn estimate_cell(e: DemoEstimate) -> String {
    match (e.value, e.interval) {
        (Some(v), Some((low, high))) => format!("{v:.3} <small>[{low:.2}, {high:.2}]</small>"),
        (Some(v), None) => format!("{v:.3}"),
        _ => "–".into(),
    }
}

fn value_cell(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "–".into())
}

/// The page as one self-contained HTML document.
pub fn render_demo_page(page: &DemoPage) -> String {
    let rows: String = page
        .rows
        .iter()
        .map(|r| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                escape(&r.method),
                escape(&r.group),
                value_cell(r.pixel_auprc),
                value_cell(r.best_dice_oracle),
                estimate_cell(r.segment_f1),
                estimate_cell(r.patient_f1)
            )
        })
        .collect();
    let links: String = page
        .qc_reports
        .iter()
        .map(|(method, href)| format!("<li><a href=\"{}\">{}</a>: QC report (maps, curves, per-level calls)</li>", escape(href), escape(method)))
        .collect();
    let notes: String = page.notes.iter().map(|n| format!("<li>{}</li>", escape(n))).collect();
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>u2ad demo</title><style>\
body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}table{{border-collapse:collapse}}\
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child,td:nth-child(2){{text-align:left}}\
pre{{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:12px}}</style></head><body>\
<h1>u2ad demo: synthetic T2 hyperintensities in real healthy cords</h1>\
<p><b>This demo measures the pipeline, not clinical accuracy</b>: five healthy scans, three to pretrain on and \
two copied with fresh noise into the target cohort with synthetic lesions.</p><ul>{notes}</ul>\
<h2>Headline</h2><table><tr><th>method</th><th>group</th><th>pixel AUPRC</th><th>best Dice (oracle)</th>\
<th>segment F1 [95 % CI]</th><th>patient F1 [95 % CI]</th></tr>{rows}</table>\
<h2>QC reports</h2><ul>{links}</ul><h2>All tables</h2><pre>{}</pre></body></html>",
        escape(&page.tables_markdown)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_shows_rows_intervals_links_and_escapes_text() {
        let page = DemoPage {
            notes: vec!["a < b".into()],
            rows: vec![DemoRow {
                method: "u2ad".into(),
                group: "all".into(),
                pixel_auprc: Some(0.5),
                best_dice_oracle: None,
                segment_f1: DemoEstimate { value: Some(0.6667), interval: Some((0.25, 0.9)) },
                patient_f1: DemoEstimate { value: Some(0.75), interval: None },
            }],
            qc_reports: vec![("u2ad".into(), "detect/u2ad/qc_report.html".into())],
            tables_markdown: "| x |".into(),
        };
        let html = render_demo_page(&page);
        assert!(html.contains("<li>a &lt; b</li>"), "{html}");
        assert!(html.contains(
            "<tr><td>u2ad</td><td>all</td><td>0.500</td><td>–</td><td>0.667 <small>[0.25, 0.90]</small></td><td>0.750</td></tr>\n"
        ));
        assert!(html.contains("<li><a href=\"detect/u2ad/qc_report.html\">u2ad</a>: QC report"));
        assert!(html.ends_with("<pre>| x |</pre></body></html>"));
    }
}
