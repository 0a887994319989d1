//! The cohort half of detection once every subject has its maps: calls, tables, figures and the QC
//! report (shared by `u2ad calibrate` and `u2ad detect`), and the patients' summary line.

use std::path::Path;

use u2ad_core::detect_outputs::MapScoring;
use u2ad_core::scoring::{CallConfig, PatientCall};
use u2ad_report::html::FigureMode;

use super::shards::MapRun;
use crate::cohort_folder::{write_cohort, CohortFolder, SubjectResult};
use crate::commands::Context;

/// Calls, tables, figures and report for the detected subjects (in cohort order), as `u2ad
/// detect` writes them (the calibration warnings printed); returns the patient calls.
#[allow(clippy::too_many_arguments)]
pub fn write_calls(
    out: &Path,
    run: &MapRun,
    scoring: &MapScoring,
    calls: &CallConfig,
    detected: &[SubjectResult],
    failed: &[(String, String)],
    figure_mode: FigureMode,
    context: &Context,
) -> anyhow::Result<Vec<PatientCall>> {
    let folder = CohortFolder {
        out,
        method: None,
        scoring,
        calls,
        subject_provenance: run.model_provenance.clone(),
        cohort_provenance: run.model_provenance.clone(),
        report_settings: vec![
            ("model".into(), run.model_row.clone()),
            ("Monte-Carlo".into(), run.monte_carlo_row.clone()),
            ("EU gate".into(), format!("{:?}", calls.uncertainty_gate)),
            ("configuration hash".into(), run.config_hash.clone()),
        ],
        dataset_name: "u2ad detect: spinal cord T2 hyperintensity maps and calls".into(),
        source_dataset: run.source_dataset.clone(),
        failed,
        figure_mode,
    };
    let decisions = write_cohort(&folder, detected, context)?;
    Ok(decisions.iter().map(|d| d.patient_call).collect())
}

/// "patients P positive, N negative, U not assessed" (the end-of-run summary of detect and
/// calibrate).
pub fn patient_counts(calls: &[PatientCall]) -> String {
    let count = |call: PatientCall| calls.iter().filter(|c| **c == call).count();
    format!(
        "patients {} positive, {} negative, {} not assessed",
        count(PatientCall::Positive),
        count(PatientCall::Negative),
        count(PatientCall::NotAssessed)
    )
}
