//! The cohort's QC report: one HTML page.
//!
//! * The figures stay PNG files beside the page (as in SCT's QC report), loaded lazily when their
//!   subject is shown, so that the page stays small for thousands of subjects
//!   ([`FigureMode::Linked`], a few hundred bytes per subject); or, for small cohorts, inline as
//!   `data:image/png;base64,…` URIs in one self-contained file ([`FigureMode::Embedded`]). The
//!   style sheet and the script are in the page. A Content-Security-Policy (`default-src
//!   'none'`) forbids any request but the figures' own files, so it opens the same offline, from
//!   the output folder or a USB stick.
//! * One subject is shown at a time. ← / → (or ↑ / ↓) move to the previous / next subject, as in
//!   the Spinal Cord Toolbox's QC report; clicking a row of the cohort table shows that subject;
//!   the address keeps the subject (`#sub-XX`) so that a reload stays there.
//! * `p`, `f` and `a` mark the shown subject Pass, Fail or Artifact; "Export qc_fail.yml" saves
//!   the subjects marked Fail or Artifact in the format of SCT's QC report (`FILES_FAIL:` /
//!   `FILES_ARTIFACT:` lists), for `manual-correction`.

use base64::Engine as _;

/// One disc level of a subject.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportLevel {
    pub level: String,
    pub score: Option<f64>,
    pub threshold: Option<f64>,
    pub call: String,
    pub reason: Option<String>,
    pub peak_position_mm: Option<f64>,
    pub extent_mm: Option<f64>,
    pub peak_signal_ratio: Option<f64>,
}

/// A figure and its caption.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportFigure {
    pub caption: String,
    pub png: Vec<u8>,
    /// The PNG file's path relative to the report, `/`-separated (linked figures).
    pub file: String,
}

/// How the report holds its figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FigureMode {
    /// `<img loading="lazy" src="sub-XX/figures/….png">`: the page stays small.
    #[default]
    Linked,
    /// Inline `data:` URIs: one self-contained file (small cohorts).
    Embedded,
}

/// `path` as a relative URL: every byte but unreserved characters and `/` percent-encoded.
fn relative_url(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One subject's page.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportSubject {
    pub subject: String,
    /// The image file the subject's outputs come from (for qc_fail.yml).
    pub image_file: String,
    pub patient_score: Option<f64>,
    pub patient_call: String,
    pub positive_levels: Vec<String>,
    /// Lines worth a look (levels out of the field of view, indeterminate levels …).
    pub notes: Vec<String>,
    pub levels: Vec<ReportLevel>,
    pub figures: Vec<ReportFigure>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub title: String,
    /// e.g. "u2ad 0.1.0: u2ad detect … (2026-…)".
    pub generated_by: String,
    /// Settings shown in a table (name, value).
    pub settings: Vec<(String, String)>,
    /// Warnings shown at the top of the page (e.g. thresholds not calibrated).
    pub warnings: Vec<String>,
    pub subjects: Vec<ReportSubject>,
    /// Subjects that failed, with the error.
    pub failed: Vec<(String, String)>,
    pub figure_mode: FigureMode,
}

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

fn number(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.decimals$}"),
        _ => "–".to_string(),
    }
}

fn score(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() && v != 0.0 && v.abs() < 1e-3 => format!("{v:.2e}"),
        other => number(other, 4),
    }
}

fn call_badge(call: &str) -> String {
    let class = match call {
        "positive" => "pos",
        "negative" => "neg",
        "indeterminate" | "not_assessed" => "ind",
        _ => "oof",
    };
    format!("<span class=\"call {class}\">{}</span>", escape(&call.replace('_', " ")))
}

const STYLE: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;color:#222;background:#fafafa}
header{padding:10px 18px;background:#20344d;color:#fff}
header h1{font-size:20px;margin:0 0 4px 0}
header .by{font-size:12px;opacity:.85;word-break:break-all}
.warn{background:#fff3cd;border:1px solid #e0b000;color:#5a4300;padding:8px 12px;margin:10px 18px;border-radius:4px}
.failed{background:#fde2e2;border:1px solid #d33;color:#700;padding:8px 12px;margin:10px 18px;border-radius:4px}
#layout{display:flex;align-items:flex-start}
#list{width:330px;flex:none;padding:10px 10px 10px 18px;font-size:13px}
#list table{border-collapse:collapse;width:100%}
#list td,#list th{padding:3px 5px;border-bottom:1px solid #ddd;text-align:left}
#list tr.row{cursor:pointer}
#list tr.row:hover{background:#e8eef6}
#list tr.current{background:#cfe0f5;font-weight:600}
main{flex:1;padding:10px 18px;min-width:0}
section.subject{display:none}
section.subject.shown{display:block}
section h2{margin:4px 0;font-size:19px}
.help{font-size:12px;color:#555;margin-bottom:6px}
.summary{font-size:15px;margin:6px 0}
figure{margin:8px 0}
figure img{max-width:100%;height:auto;border:1px solid #ccc;background:#fff}
figcaption{font-size:12px;color:#555}
table.levels{border-collapse:collapse;font-size:13px;margin:8px 0}
table.levels td,table.levels th{border:1px solid #ccc;padding:3px 7px;text-align:right}
table.levels td:first-child,table.levels th:first-child{text-align:left}
.call{padding:1px 6px;border-radius:3px;font-size:12px;color:#fff;white-space:nowrap}
.pos{background:#c62828}.neg{background:#607d8b}.ind{background:#ef8f00}.oof{background:#9e9e9e}
.mark{font-weight:700}
details{margin:8px 18px;font-size:13px}
details table td{padding:1px 8px}
ul.notes{font-size:13px;margin:4px 0}
button{font-size:13px}
"#;

const SCRIPT: &str = r#"
(function(){
  var sections=Array.prototype.slice.call(document.querySelectorAll('section.subject'));
  var rows=Array.prototype.slice.call(document.querySelectorAll('#list tr.row'));
  var marks={};
  var current=0;
  function show(i){
    if(sections.length===0){return;}
    current=(i+sections.length)%sections.length;
    sections.forEach(function(s,k){s.classList.toggle('shown',k===current);});
    rows.forEach(function(r,k){r.classList.toggle('current',k===current);});
    var id=sections[current].getAttribute('data-subject');
    if(history.replaceState){history.replaceState(null,'','#'+id);}
    document.title=id+' \u2014 u2ad QC';
  }
  function mark(kind){
    var id=sections[current].getAttribute('data-subject');
    marks[id]=(marks[id]===kind)?undefined:kind;
    var text=marks[id]?({pass:'\u2713 Pass',fail:'\u2717 Fail',artifact:'\u26a0 Artifact'})[marks[id]]:'';
    sections[current].querySelector('.mark').textContent=text;
    rows[current].querySelector('.markcell').textContent=text;
  }
  function exportFails(){
    var fail=[],artifact=[];
    sections.forEach(function(s){
      var id=s.getAttribute('data-subject'),file=s.getAttribute('data-file');
      if(marks[id]==='fail'){fail.push(file);}
      if(marks[id]==='artifact'){artifact.push(file);}
    });
    var yml='FILES_FAIL:\n'+fail.map(function(f){return '- '+f+'\n';}).join('')+'FILES_ARTIFACT:\n'+artifact.map(function(f){return '- '+f+'\n';}).join('');
    var a=document.createElement('a');
    a.href=URL.createObjectURL(new Blob([yml],{type:'text/yaml'}));
    a.download='qc_fail.yml';
    document.body.appendChild(a);a.click();a.remove();
  }
  document.addEventListener('keydown',function(e){
    if(e.altKey||e.ctrlKey||e.metaKey){return;}
    if(e.key==='ArrowRight'||e.key==='ArrowDown'){show(current+1);e.preventDefault();}
    else if(e.key==='ArrowLeft'||e.key==='ArrowUp'){show(current-1);e.preventDefault();}
    else if(e.key==='p'){mark('pass');}
    else if(e.key==='f'){mark('fail');}
    else if(e.key==='a'){mark('artifact');}
  });
  rows.forEach(function(r,k){r.addEventListener('click',function(){show(k);});});
  var exporter=document.getElementById('export');
  if(exporter){exporter.addEventListener('click',exportFails);}
  var start=0;
  var wanted=decodeURIComponent((location.hash||'').slice(1));
  sections.forEach(function(s,k){if(s.getAttribute('data-subject')===wanted){start=k;}});
  show(start);
  document.body.setAttribute('data-ready','1');
})();
"#;

/// For each figure position, its caption when every subject (of two or more) has that same one.
fn shared_captions(subjects: &[ReportSubject]) -> Vec<Option<String>> {
    let most = subjects.iter().map(|s| s.figures.len()).max().unwrap_or(0);
    (0..most)
        .map(|j| {
            let first = subjects.first()?.figures.get(j)?.caption.clone();
            let same = subjects.len() > 1 && subjects.iter().all(|s| s.figures.get(j).is_some_and(|f| f.caption == first));
            same.then_some(first)
        })
        .collect()
}

/// The report as one HTML document.
pub fn render_report(report: &Report) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut html = String::new();
    html.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    html.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src 'self' file: data:; \
         style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n",
    );
    html.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    html.push_str(&format!("<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n", escape(&report.title)));
    html.push_str(&format!(
        "<header><h1>{}</h1><div class=\"by\">{}</div></header>\n",
        escape(&report.title),
        escape(&report.generated_by)
    ));
    for warning in &report.warnings {
        html.push_str(&format!("<div class=\"warn\">{}</div>\n", escape(warning)));
    }
    if !report.failed.is_empty() {
        html.push_str(&format!("<div class=\"failed\"><b>{} subject(s) failed</b><ul>", report.failed.len()));
        for (subject, error) in &report.failed {
            html.push_str(&format!("<li><b>{}</b>: {}</li>", escape(subject), escape(error)));
        }
        html.push_str("</ul></div>\n");
    }
    if !report.settings.is_empty() {
        html.push_str("<details><summary>Settings</summary><table>");
        for (name, value) in &report.settings {
            html.push_str(&format!("<tr><td>{}</td><td>{}</td></tr>", escape(name), escape(value)));
        }
        html.push_str("</table></details>\n");
    }
    html.push_str("<div id=\"layout\">\n<nav id=\"list\"><table>\n");
    html.push_str("<tr><th>#</th><th>subject</th><th>score</th><th>call</th><th>QC</th></tr>\n");
    for (i, subject) in report.subjects.iter().enumerate() {
        html.push_str(&format!(
            "<tr class=\"row\" data-index=\"{i}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"markcell\"></td></tr>\n",
            i + 1,
            escape(&subject.subject),
            score(subject.patient_score),
            call_badge(&subject.patient_call)
        ));
    }
    html.push_str("</table>\n<p><button id=\"export\" type=\"button\">Export qc_fail.yml</button></p>\n</nav>\n<main>\n");
    html.push_str("<div class=\"help\">← / → previous / next subject · p pass · f fail · a artifact</div>\n");
    if report.subjects.is_empty() {
        html.push_str("<p>No subject was processed.</p>\n");
    }
    // A caption every subject's figure shares is written once, as a legend.
    let shared = shared_captions(&report.subjects);
    for caption in shared.iter().flatten() {
        html.push_str(&format!("<div class=\"help\">{}</div>\n", escape(caption)));
    }
    let n = report.subjects.len();
    for (i, subject) in report.subjects.iter().enumerate() {
        html.push_str(&format!(
            "<section class=\"subject\" id=\"subject-{i}\" data-subject=\"{}\" data-file=\"{}\">\n",
            escape(&subject.subject),
            escape(&subject.image_file)
        ));
        html.push_str(&format!(
            "<h2>{} <small>({}/{n})</small> <span class=\"mark\"></span></h2>\n",
            escape(&subject.subject),
            i + 1
        ));
        let positive = if subject.positive_levels.is_empty() {
            "none".to_string()
        } else {
            escape(&subject.positive_levels.join(", "))
        };
        html.push_str(&format!(
            "<div class=\"summary\">Patient score <b>{}</b> · call {} · positive levels: <b>{positive}</b></div>\n",
            score(subject.patient_score),
            call_badge(&subject.patient_call)
        ));
        if !subject.notes.is_empty() {
            html.push_str("<ul class=\"notes\">");
            for note in &subject.notes {
                html.push_str(&format!("<li>{}</li>", escape(note)));
            }
            html.push_str("</ul>\n");
        }
        for (j, figure) in subject.figures.iter().enumerate() {
            let source = match report.figure_mode {
                FigureMode::Linked => format!("loading=\"lazy\" src=\"{}\"", escape(&relative_url(&figure.file))),
                FigureMode::Embedded => format!("src=\"data:image/png;base64,{}\"", b64.encode(&figure.png)),
            };
            let caption = match shared.get(j) {
                Some(Some(_)) => String::new(),
                _ => format!("<figcaption>{}</figcaption>", escape(&figure.caption)),
            };
            html.push_str(&format!(
                "<figure><img alt=\"{} figure {}\" {source}>{caption}</figure>\n",
                escape(&subject.subject),
                j + 1
            ));
        }
        html.push_str(
            "<table class=\"levels\"><tr><th>level</th><th>score</th><th>threshold</th><th>call</th>\
             <th>peak (mm from C2)</th><th>extent (mm)</th><th>peak / cord median</th></tr>\n",
        );
        for level in &subject.levels {
            let call = match &level.reason {
                Some(reason) => format!("{} <small>({})</small>", call_badge(&level.call), escape(&reason.replace('_', " "))),
                None => call_badge(&level.call),
            };
            html.push_str(&format!(
                "<tr><td>{}<td>{}<td>{}<td>{call}<td>{}<td>{}<td>{}</tr>\n",
                escape(&level.level),
                score(level.score),
                score(level.threshold),
                number(level.peak_position_mm, 1),
                number(level.extent_mm, 1),
                number(level.peak_signal_ratio, 2)
            ));
        }
        html.push_str("</table>\n</section>\n");
    }
    html.push_str("</main>\n</div>\n");
    html.push_str(&format!("<script>{SCRIPT}</script>\n</body>\n</html>\n"));
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(name: &str, call: &str) -> ReportSubject {
        ReportSubject {
            subject: name.into(),
            image_file: format!("{name}/anat/{name}_T2w.nii.gz"),
            patient_score: Some(0.0123),
            patient_call: call.into(),
            positive_levels: if call == "positive" { vec!["C5/C6".into()] } else { vec![] },
            notes: vec!["C7/T1 out of the field of view".into()],
            levels: vec![ReportLevel {
                level: "C5/C6".into(),
                score: Some(0.0123),
                threshold: Some(0.01),
                call: "positive".into(),
                reason: None,
                peak_position_mm: Some(61.2),
                extent_mm: Some(3.1),
                peak_signal_ratio: Some(1.84),
            }],
            figures: vec![ReportFigure {
                caption: "maps".into(),
                png: vec![0x89, b'P', b'N', b'G'],
                file: format!("{name}/figures/{name} T2w_desc-maps_qc.png"),
            }],
        }
    }

    #[test]
    fn the_report_is_self_contained_and_escapes_text() {
        let report = Report {
            title: "u2ad QC <cohort>".into(),
            generated_by: "u2ad 0.1.0".into(),
            settings: vec![("K".into(), "10".into())],
            warnings: vec!["thresholds not calibrated".into()],
            subjects: vec![subject("sub-01", "positive"), subject("sub-02", "negative")],
            failed: vec![("sub-03".into(), "x.nii.gz: not a NIfTI-1 file".into())],
            figure_mode: FigureMode::Embedded,
        };
        let html = render_report(&report);
        assert!(html.contains("<title>u2ad QC &lt;cohort&gt;</title>"));
        assert!(html.contains("src=\"data:image/png;base64,iVBORw==\""), "figure embedded");
        assert_eq!(html.matches("<section class=\"subject\"").count(), 2);
        assert!(html.contains("<div class=\"warn\">thresholds not calibrated</div>"));
        assert!(html.contains("<b>sub-03</b>: x.nii.gz: not a NIfTI-1 file"));
        assert!(html.contains("<td>61.2<td>3.1<td>1.84</tr>"));
        assert!(html.contains("ArrowRight") && html.contains("ArrowLeft"));
        // No request can leave the page: no URL but data URIs.
        assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("src=\"/"));
        assert!(html.contains("default-src 'none'"));
    }

    #[test]
    fn linked_figures_keep_the_page_small_for_a_thousand_subjects() {
        let seven_levels = |name: &str| {
            let mut s = subject(name, "negative");
            // Captions as long as detect's.
            s.figures[0].caption = format!("Native sagittal slice {}: image (cord outlined), mean reconstruction, EU (0 to 0.00123), AU (0 to 0.0456) with the anomaly candidates outlined; green lines: vertebral centres", name.len() + 20);
            s.levels = ["C2/C3", "C3/C4", "C4/C5", "C5/C6", "C6/C7", "C7/T1", "below C7/T1"]
                .iter()
                .map(|l| ReportLevel { level: l.to_string(), ..s.levels[0].clone() })
                .collect();
            s.figures.push(ReportFigure {
                caption: "Anomaly curve: blue, the curve; green dashes, vertebral centres; red dashes, each level's threshold; dots, each level's peak (red positive, grey negative, orange indeterminate)".into(),
                png: vec![0; 280_000],
                file: format!("{name}/figures/{name}_T2w_desc-curve_qc.png"),
            });
            s
        };
        let report = Report {
            title: "u2ad QC".into(),
            generated_by: "u2ad".into(),
            settings: vec![],
            warnings: vec![],
            subjects: (0..1000).map(|i| seven_levels(&format!("sub-{i:04}"))).collect(),
            failed: vec![],
            figure_mode: FigureMode::Linked,
        };
        let html = render_report(&report);
        println!("QC report, linked figures: {} bytes for 1000 subjects", html.len());
        assert!(html.len() < 2_000_000, "{} bytes", html.len());
        assert!(!html.contains("data:image"), "no figure inline");
        assert!(html.contains("<img alt=\"sub-0007 figure 1\" loading=\"lazy\" src=\"sub-0007/figures/sub-0007%20T2w_desc-maps_qc.png\">"));
        assert_eq!(html.matches("grey negative, orange indeterminate").count(), 1, "a caption every subject shares is written once");
        assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("src=\"/"));
    }

    #[test]
    fn small_scores_use_scientific_notation() {
        assert_eq!(score(Some(0.000123)), "1.23e-4");
        assert_eq!(score(Some(0.0123)), "0.0123");
        assert_eq!(score(None), "–");
    }
}
