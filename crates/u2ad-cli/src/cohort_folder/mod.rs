//! The cohort half of a detection folder (the layout of [`u2ad_core::detect_outputs`]), shared
//! by `u2ad detect`, `u2ad baseline` and `u2ad calibrate` so that all write the same files the
//! same way: label-free calls across the cohort, per subject the level CSV, patient JSON, curve
//! CSV ([`tables`]) and figures ([`figures`]), each with a JSON sidecar, then `levels.csv`,
//! `patients.csv`, `dataset_description.json` and the QC report ([`report`]).

mod figures;
mod report;
mod tables;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Value};
use u2ad_core::dataset::SubjectMeta;
use u2ad_core::detect_outputs::{MapScoring, SampleResult, ScoredSubject, SubjectMaps, SubjectOutputs};
use u2ad_core::scoring::{call_cohort, CallConfig, CandidateMap, SubjectDecision, SubjectScores};
use u2ad_io::staging::StagedWrites;
use u2ad_report::html::FigureMode;

use crate::commands::Context;
pub use tables::{csv_bytes, merged};
use tables::CalledSubject;

/// What the cohort half needs of a subject: its scores, the mid-sagittal sample for figures, and
/// where its files go.
pub struct SubjectResult {
    pub subject: String,
    pub image: PathBuf,
    pub outputs: SubjectOutputs,
    pub meta: SubjectMeta,
    pub scored: ScoredSubject,
    /// The mid-sagittal sample and its candidates (figures).
    pub mid: Option<(SampleResult, CandidateMap)>,
    pub passes: usize,
    pub samples: usize,
    pub seconds: f64,
    pub reused: bool,
}

impl SubjectResult {
    /// Keeps the mid-sagittal sample (figures) and the counts; drops the other samples.
        pub fn new(
        mut maps: SubjectMaps,
        mut scored: ScoredSubject,
        outputs: SubjectOutputs,
        image: PathBuf,
        started: Instant,
        reused: bool,
    ) -> SubjectResult {
        let passes = maps.samples.iter().map(|s| s.passes).sum();
        let samples = maps.samples.len();
        let mid = maps.mid_sagittal().map(|i| (maps.samples.swap_remove(i), scored.candidates.swap_remove(i)));
        scored.candidates.clear();
        SubjectResult {
            subject: maps.subject.subject.clone(),
            image,
            outputs,
            meta: maps.subject,
            scored,
            mid,
            passes,
            samples,
            seconds: started.elapsed().as_secs_f64(),
            reused,
        }
    }
}

/// What a detection folder's cohort half is written with.
pub struct CohortFolder<'a> {
    pub out: &'a Path,
    /// A method other than U2AD (e.g. "intensity baseline"), shown in titles and notes.
    pub method: Option<&'a str>,
    pub scoring: &'a MapScoring,
    pub calls: &'a CallConfig,
    /// Merged into every per-subject sidecar (with the subject's `Sources`).
    pub subject_provenance: Value,
    /// Merged into the cohort tables' sidecars (with `FailedSubjects`).
    pub cohort_provenance: Value,
    /// Rows of the report's settings table, before the calibration and curve rows.
    pub report_settings: Vec<(String, String)>,
    /// `dataset_description.json`'s `Name`.
    pub dataset_name: String,
    /// The input dataset (`SourceDatasets`).
    pub source_dataset: Option<String>,
    /// Subjects that failed, with their error (listed in the report and the sidecars).
    pub failed: &'a [(String, String)],
    /// Figures linked beside the report or inside it.
    pub figure_mode: FigureMode,
}

/// Calls every subject without labels and writes the cohort half of the detection folder: per
/// subject the level CSV, patient JSON, curve CSV and figures (with sidecars), then `levels.csv`,
/// `patients.csv`, `dataset_description.json` and `qc_report.html`; then prints the calibration
/// warnings (even with `--quiet`: calls are never silently uncalibrated). Returns the decisions,
/// in the order of `results`.
pub fn write_cohort(
    folder: &CohortFolder<'_>,
    detected: &[SubjectResult],
    context: &Context,
) -> anyhow::Result<Vec<SubjectDecision>> {
    if detected.is_empty() {
        // Nothing to call: no empty tables or report that would read as "no finding".
        anyhow::bail!("no subject was detected, so no cohort tables or report were written");
    }
    // Every file of this step lands together when all are written (a full disk leaves none).
    let staged = StagedWrites::new();
    let scores: Vec<SubjectScores> = detected.iter().map(|d| d.scored.scores.clone()).collect();
    let decisions = call_cohort(&scores, folder.calls).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (calibration_text, warnings) = report::calibration(folder.calls, detected.len(), &decisions);
    let limits = figures::cohort_limits(detected);
    let settings_json = json!({
        "CallThreshold": folder.calls.threshold,
        "Pooling": folder.calls.pooling,
        "MinReferenceValues": folder.calls.min_reference_values,
        "UncertaintyGate": folder.calls.uncertainty_gate,
        "FalsePositiveScope": folder.calls.scope,
        "Scoring": folder.scoring,
        "Calibration": calibration_text,
    });
    let mut all_levels = Vec::new();
    let mut patients = Vec::new();
    let mut report_subjects = Vec::new();
    for (d, decision) in detected.iter().zip(&decisions) {
        let called = CalledSubject::new(d, decision, folder);
        tables::write_subject_tables(&staged, folder, &called, &settings_json)?;
        let figures = figures::write_subject_figures(&staged, folder, &called, limits)?;
        report_subjects.push(report::report_subject(folder, &called, figures));
        patients.push(tables::patient_row(&called));
        all_levels.extend(called.rows);
    }
    tables::write_cohort_tables(&staged, folder, &all_levels, &patients, &settings_json)?;
    report::write_report(&staged, folder, report_subjects, &calibration_text, &warnings)?;
    staged.commit()?;
    if !context.quiet {
        report::print_patients(&patients);
    }
    for warning in &warnings {
        eprintln!("u2ad: warning: {warning}");
    }
    Ok(decisions)
}
