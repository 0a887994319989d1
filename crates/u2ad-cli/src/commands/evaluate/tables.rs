//! What `u2ad evaluate` writes: every method evaluated against the truth, then `evaluation.csv`,
//! `evaluation_subjects.csv` and `evaluation.md` with their sidecars.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use serde::Serialize;
use serde_json::json;
use u2ad_eval::evaluate::{
    evaluate_detections, evaluate_groups, host_false_positives, host_markdown, markdown_report, metric_rows,
    EvaluationSettings, MethodEvaluation,
    SubjectResult, TruthSubject,
};
use u2ad_eval::metrics::LabelledScores;
use u2ad_io::staging::write_file_atomically;

use crate::sidecar::write_sidecar;

/// Files written under `--out`.
pub const EVALUATION_CSV: &str = "evaluation.csv";
pub const EVALUATION_MD: &str = "evaluation.md";
pub const EVALUATION_SUBJECTS_CSV: &str = "evaluation_subjects.csv";

/// One row of the per-subject CSV.
#[derive(Debug, Serialize)]
struct SubjectRow {
    method: String,
    subject: String,
    lesion_voxels: usize,
    lesion_voxels_in_cord: usize,
    contrast: Option<f64>,
    length_mm: Option<f64>,
    pixel_auprc: Option<f64>,
    lesion_levels: String,
    positive_levels: String,
    patient_score: Option<f64>,
    patient_call_positive: bool,
}

fn subject_rows(method: &str, results: &[SubjectResult]) -> Vec<SubjectRow> {
    results
        .iter()
        .map(|r| SubjectRow {
            method: method.to_string(),
            subject: r.subject.clone(),
            lesion_voxels: r.lesion_voxels,
            lesion_voxels_in_cord: r.lesion_voxels_in_cord,
            contrast: r.lesions.first().and_then(|l| l.contrast),
            length_mm: r.lesions.first().and_then(|l| l.length_mm),
            pixel_auprc: LabelledScores::from_pairs(r.pixels.iter().map(|&(s, t)| (f64::from(s), t))).average_precision(),
            lesion_levels: r.segments.iter().filter(|s| s.lesion).map(|s| s.level.name()).collect::<Vec<_>>().join(" "),
            positive_levels: r
                .segments
                .iter()
                .filter(|s| s.call == u2ad_eval::evaluate::LevelCall::Positive)
                .map(|s| s.level.name())
                .collect::<Vec<_>>()
                .join(" "),
            patient_score: r.patient_score,
            patient_call_positive: r.patient_positive_call,
        })
        .collect()
}

fn write_csv<T: Serialize>(path: &Path, rows: &[T]) -> anyhow::Result<()> {
    let bytes = crate::cohort_folder::csv_bytes(rows)?;
    write_file_atomically(path, &bytes)?;
    Ok(())
}

/// Evaluates every method and writes the CSVs and the Markdown under `out`; returns the
/// evaluations and the Markdown text.
pub fn evaluate_and_write(
    methods: &[(String, PathBuf)],
    truth: &[TruthSubject],
    settings: &EvaluationSettings,
    out: &Path,
) -> anyhow::Result<(Vec<MethodEvaluation>, String)> {
    let mut evaluations = Vec::new();
    let mut subjects = Vec::new();
    for (name, dir) in methods {
        if !dir.is_dir() {
            bail!("{}: not a folder (expected the output of u2ad detect or u2ad baseline)", dir.display());
        }
        let results = evaluate_detections(truth, dir)?;
        subjects.extend(subject_rows(name, &results));
        evaluations.push(MethodEvaluation {
            method: name.clone(),
            detections: dir.clone(),
            groups: evaluate_groups(&results, settings),
            hosts: host_false_positives(&results),
        });
    }
    let markdown = format!("{}\n{}", markdown_report(&evaluations), hosts_section(&evaluations));
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create the output folder", out.display()))?;
    let csv_path = out.join(EVALUATION_CSV);
    write_csv(&csv_path, &metric_rows(&evaluations))?;
    let subjects_path = out.join(EVALUATION_SUBJECTS_CSV);
    write_csv(&subjects_path, &subjects)?;
    let md_path = out.join(EVALUATION_MD);
    write_file_atomically(&md_path, markdown.as_bytes())?;
    let provenance = json!({
        "Detections": methods.iter().map(|(n, d)| json!({"method": n, "folder": std::path::absolute(d).unwrap_or_else(|_| d.clone()).display().to_string()})).collect::<Vec<_>>(),
        "Settings": settings,
        "Definitions": "pixel: native grid inside the truth cord mask, pooled over subjects; segment: disc levels in the field of view, truly positive when a lesion voxel lies in its rows, `positive` call = positive; patient: truly positive when the lesion mask is not empty; 95 % percentile bootstrap over subjects; breakdown groups = lesion subjects of the bin + every lesion-free subject; best Dice is an oracle",
    });
    for (path, description) in [
        (&csv_path, "Evaluation metrics, one per row (method, group, unit, metric, value, 95 % interval)"),
        (&subjects_path, "Per subject and method: lesion size, pixel AUPRC, lesion levels, positive levels, patient call"),
        (&md_path, "Evaluation tables (Markdown)"),
    ] {
        let mut extra = provenance.clone();
        extra["Description"] = json!(description);
        write_sidecar(path, extra)?;
    }
    Ok((evaluations, markdown))
}

/// The per-host false-positive table under its heading.
pub fn hosts_section(evaluations: &[MethodEvaluation]) -> String {
    let hosts: Vec<(String, Vec<_>)> = evaluations.iter().map(|e| (e.method.clone(), e.hosts.clone())).collect();
    format!("## False positives per host (the participant each subject was made from)\n\n{}", host_markdown(&hosts))
}
