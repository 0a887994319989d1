//! The demo's last step: `report.html` (the headline table, the full tables, links to every QC
//! report) with its sidecar, and the summary printed on the terminal.

use std::path::{Path, PathBuf};

use serde_json::json;
use u2ad_eval::evaluate::{headline_markdown, MethodEvaluation};
use u2ad_report::demo_page::{render_demo_page, DemoEstimate, DemoPage, DemoRow};

use super::setup::write_text;
use super::{DEMO_REPORT, PRETRAIN_SUBJECTS, TARGET_SUBJECTS};
use crate::sidecar::write_sidecar;

/// The demo's HTML page ([`u2ad_report::demo_page`]): the headline table, the full tables, links
/// to every QC report.
pub fn demo_report(methods: &[MethodEvaluation], markdown: &str, out: &Path, notes: &[String]) -> String {
    let estimate = |e: &u2ad_eval::metrics::Estimate| DemoEstimate { value: e.value, interval: e.interval.map(|i| (i.low, i.high)) };
    let rows = methods
        .iter()
        .flat_map(|m| m.groups.iter().filter(|g| !g.group.starts_with("length")).map(move |g| (m, g)))
        .map(|(m, g)| DemoRow {
            method: m.method.clone(),
            group: g.group.clone(),
            pixel_auprc: g.pixel.auprc,
            best_dice_oracle: g.pixel.best_dice_oracle.map(|b| b.dice),
            segment_f1: estimate(&g.segment.summary.f1),
            patient_f1: estimate(&g.patient.summary.f1),
        })
        .collect();
    let qc_reports = methods
        .iter()
        .map(|m| {
            let relative = m.detections.strip_prefix(out).unwrap_or(&m.detections).join(u2ad_core::detect_outputs::QC_REPORT_HTML);
            (m.method.clone(), relative.display().to_string())
        })
        .collect();
    render_demo_page(&DemoPage { notes: notes.to_vec(), rows, qc_reports, tables_markdown: markdown.to_string() })
}

/// What the demo ran and found.
pub(super) struct Outcome<'a> {
    pub out: &'a Path,
    pub seed: u64,
    /// Synthetic subjects of the target cohort, and those with a lesion.
    pub subjects: usize,
    pub lesion_subjects: usize,
    /// Each method's name and detection folder.
    pub methods: &'a [(String, PathBuf)],
    pub evaluations: &'a [MethodEvaluation],
    /// The full tables (markdown) and their folder.
    pub markdown: &'a str,
    pub evaluation: &'a Path,
    /// Wall time of the whole demo.
    pub seconds: f64,
}

/// Writes `report.html` and its sidecar, and prints the headline table.
pub(super) fn write_report(outcome: &Outcome<'_>) -> anyhow::Result<()> {
    let Outcome { out, seed, seconds, evaluations, .. } = *outcome;
    let notes = vec![
        format!(
            "pretrained on {}; target: {} synthetic subjects ({} with a lesion) from {}",
            PRETRAIN_SUBJECTS.join(", "),
            outcome.subjects,
            outcome.lesion_subjects,
            TARGET_SUBJECTS.join(", ")
        ),
        "calls: cohort-calibrated against the other hosts only (never a copy of the same person), pooled over levels, 5 % false-positive rate per patient (Bonferroni over its levels), the same for every method".into(),
        format!("wall time {seconds:.0} s; seed {seed}"),
    ];
    let report = out.join(DEMO_REPORT);
    write_text(&report, &demo_report(evaluations, outcome.markdown, out, &notes))?;
    let methods: Vec<&String> = outcome.methods.iter().map(|(n, _)| n).collect();
    write_sidecar(&report, json!({"Description": "u2ad demo report", "WallTimeSeconds": seconds, "Seed": seed, "Methods": methods}))?;

    println!("\nu2ad demo: synthetic hyperintensities in real healthy cords (this measures the pipeline, not clinical accuracy)\n");
    println!("{}", headline_markdown(evaluations));
    println!("{}", crate::commands::evaluate::hosts_section(evaluations));
    let tables = outcome.evaluation.join(crate::commands::evaluate::EVALUATION_MD);
    println!("wall time {:.1} min; full tables: {}", seconds / 60.0, tables.display());
    println!("report: {}", report.display());
    Ok(())
}
