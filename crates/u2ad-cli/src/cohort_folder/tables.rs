//! The tables of a detection folder: per subject the level CSV, the patient JSON and the curve
//! CSV (each with a JSON sidecar), and the cohort's `levels.csv`, `patients.csv` and
//! `dataset_description.json`.

use serde::Serialize;
use serde_json::{json, Value};
use u2ad_core::dataset::SAMPLE_SIZE;
use u2ad_core::detect_outputs::{COHORT_LEVELS_CSV, COHORT_PATIENTS_CSV, DATASET_DESCRIPTION};
use u2ad_core::levels::DiscLevel;
use u2ad_core::scoring::{level_rows, PatientCall, SegmentCall, SubjectDecision};
use u2ad_io::staging::StagedWrites;

use super::{CohortFolder, SubjectResult};
use crate::sidecar::{command_line, stage_sidecar};

/// One row of the per-level CSVs: scoring's [`u2ad_core::scoring::LevelRow`] and the EU gate.
#[derive(Debug, Serialize)]
pub(super) struct LevelCsvRow {
    pub(super) subject: String,
    pub(super) level: String,
    pub(super) score: Option<f64>,
    pub(super) threshold: Option<f64>,
    z: Option<f64>,
    z_threshold: Option<f64>,
    pub(super) call: String,
    pub(super) reason: Option<String>,
    pub(super) peak_position_mm: Option<f64>,
    pub(super) extent_mm: Option<f64>,
    pub(super) peak_signal_ratio: Option<f64>,
    mean_eu: Option<f64>,
    eu_limit: Option<f64>,
    group: String,
}

#[derive(Debug, Serialize)]
pub(super) struct PatientCsvRow {
    pub(super) subject: String,
    pub(super) patient_score: Option<f64>,
    patient_z: Option<f64>,
    z_threshold: Option<f64>,
    max_over_cord_rows: Option<f64>,
    pub(super) call: String,
    group: String,
    pub(super) positive_levels: String,
    /// "above levels" / "below levels" when the cord there is called positive.
    positive_outside_levels: String,
    indeterminate_levels: String,
    out_of_fov_levels: String,
    samples: usize,
    passes: usize,
}

#[derive(Debug, Serialize)]
struct CurveCsvRow {
    row: usize,
    position_mm: f64,
    level: String,
    value: Option<f64>,
}

/// The rows as CSV with a header; a text cell a spreadsheet would run as a formula is escaped
/// ([`u2ad_io::names::csv_cell`]).
pub fn csv_bytes<T: Serialize>(rows: &[T]) -> anyhow::Result<Vec<u8>> {
    let mut plain = csv::Writer::from_writer(Vec::new());
    for row in rows {
        plain.serialize(row)?;
    }
    let plain = plain.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(&plain[..]);
    let mut escaped = csv::Writer::from_writer(Vec::new());
    for record in reader.records() {
        escaped.write_record(record?.iter().map(|cell| u2ad_io::names::csv_cell(cell).into_owned()))?;
    }
    escaped.into_inner().map_err(|e| anyhow::anyhow!("{e}"))
}

pub fn patient_call_label(call: PatientCall) -> &'static str {
    match call {
        PatientCall::Positive => "positive",
        PatientCall::Negative => "negative",
        PatientCall::NotAssessed => "not_assessed",
    }
}

pub fn levels_merged(decision: &SubjectDecision, pick: impl Fn(SegmentCall) -> bool) -> Vec<String> {
    decision.segments.iter().filter(|s| pick(s.call)).map(|s| s.level.name().to_string()).collect()
}

/// `base` with the keys of `extra` added (replacing equal keys).
pub fn merged(mut base: Value, extra: &Value) -> Value {
    if let (Some(target), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
        target.extend(extra.clone());
    }
    base
}

/// A subject's calls in words: its patient call and its levels by call.
pub(super) struct CallSummary {
    pub(super) patient_call: &'static str,
    pub(super) positive: Vec<String>,
    /// "above levels" / "below levels" when the cord there is called positive.
    pub(super) positive_outside: Vec<String>,
    /// The indeterminate levels, then the cord outside them where it is indeterminate.
    pub(super) indeterminate: Vec<String>,
    pub(super) out_of_fov: Vec<String>,
}

impl CallSummary {
    pub(super) fn of(decision: &SubjectDecision) -> CallSummary {
        CallSummary {
            patient_call: patient_call_label(decision.patient_call),
            positive: levels_merged(decision, |c| c == SegmentCall::Positive),
            positive_outside: decision
                .outside_levels
                .iter()
                .filter(|r| r.call == SegmentCall::Positive)
                .map(|r| r.region.name().to_string())
                .collect(),
            indeterminate: levels_merged(decision, |c| matches!(c, SegmentCall::Indeterminate(_)))
                .into_iter()
                .chain(
                    decision
                        .outside_levels
                        .iter()
                        .filter(|r| matches!(r.call, SegmentCall::Indeterminate(_)))
                        .map(|r| r.region.name().to_string()),
                )
                .collect(),
            out_of_fov: levels_merged(decision, |c| c == SegmentCall::OutOfFieldOfView),
        }
    }

    /// The positive levels, then the positive cord outside them: where the patient call comes from.
    pub(super) fn positive_places(&self) -> Vec<String> {
        self.positive.iter().chain(&self.positive_outside).cloned().collect()
    }
}

/// One subject with its decision, as every output of the folder shows it: its level rows, its
/// calls in words and the provenance of its files.
pub(super) struct CalledSubject<'a> {
    pub(super) result: &'a SubjectResult,
    pub(super) decision: &'a SubjectDecision,
    pub(super) rows: Vec<LevelCsvRow>,
    pub(super) calls: CallSummary,
    pub(super) provenance: Value,
}

impl<'a> CalledSubject<'a> {
    pub(super) fn new(result: &'a SubjectResult, decision: &'a SubjectDecision, folder: &CohortFolder<'_>) -> Self {
        CalledSubject {
            result,
            decision,
            rows: level_csv_rows(result, decision),
            calls: CallSummary::of(decision),
            provenance: merged(json!({"Sources": [result.image.display().to_string()]}), &folder.subject_provenance),
        }
    }
}

/// The rows of a subject's level CSV.
fn level_csv_rows(d: &SubjectResult, decision: &SubjectDecision) -> Vec<LevelCsvRow> {
    let scores = &d.scored.scores;
    level_rows(scores, decision)
        .into_iter()
        .zip(&decision.segments)
        .map(|(r, s)| LevelCsvRow {
            subject: r.subject,
            level: r.level,
            score: r.score,
            threshold: r.threshold,
            z: r.z,
            z_threshold: decision.z_threshold.filter(|_| r.z.is_some()),
            call: r.call,
            reason: r.reason,
            peak_position_mm: r.peak_position_mm,
            extent_mm: r.extent_mm,
            peak_signal_ratio: r.peak_signal_ratio,
            mean_eu: s.mean_eu,
            eu_limit: s.eu_limit,
            group: scores.group.clone(),
        })
        .collect()
}

/// The disc-level code of each row of the subject's grid (0 without a mid-sagittal sample).
pub(super) fn row_segment(d: &SubjectResult) -> Vec<u8> {
    d.mid.as_ref().map(|(s, _)| s.row_segment.clone()).unwrap_or_else(|| vec![0; SAMPLE_SIZE])
}

/// Position of `row` along the cord, in mm from the centre of C2 (inferior positive).
pub(super) fn position_mm(d: &SubjectResult, folder: &CohortFolder<'_>, row: f64) -> f64 {
    let origin = d.scored.scores.position_origin.map(|o| o.row_px()).unwrap_or(0) as f64;
    (row - origin) * folder.scoring.scoring.pixel_mm
}

/// Writes a subject's level CSV, patient JSON and curve CSV (with sidecars).
pub(super) fn write_subject_tables(staged: &StagedWrites, folder: &CohortFolder<'_>, s: &CalledSubject<'_>, settings: &Value) -> anyhow::Result<()> {
    let (d, decision, rows, calls, provenance) = (s.result, s.decision, &s.rows[..], &s.calls, &s.provenance);
    let scores = &d.scored.scores;
    staged.write(&d.outputs.levels_csv(), &csv_bytes(rows)?)?;
    stage_sidecar(
        staged,
        &d.outputs.levels_csv(),
        merged(
            merged(json!({"Description": "Per disc level: anomaly score (see Scoring.levels), threshold, robust z of the score against the reference scores and the z threshold, call, peak position (mm from the centre of C2, inferior positive), extent along the cord (mm), peak signal / median cord signal, mean EU and the EU limit"}), provenance),
            settings,
        ),
    )?;
    let patient = merged(
        merged(
            json!({
                "GeneratedBy": [{"Name": "u2ad", "Version": env!("CARGO_PKG_VERSION"), "Command": command_line()}],
                "Subject": d.subject,
                "PatientScore": scores.patient_score,
                "PatientZ": decision.patient_z,
                "ZThreshold": decision.z_threshold,
                "Group": scores.group,
                "MaxOverCordRows": scores.max_over_cord_rows,
                "Call": calls.patient_call,
                "PositiveLevels": calls.positive,
                "OutsideLevels": decision.outside_levels,
                "IndeterminateLevels": calls.indeterminate,
                "OutOfFieldOfViewLevels": calls.out_of_fov,
                "Levels": rows,
                "LevelsSource": d.meta.levels_source,
                "Samples": d.samples,
                "Passes": d.passes,
            }),
            provenance,
        ),
        settings,
    );
    staged.write(&d.outputs.patient_json(), serde_json::to_string_pretty(&patient)?.as_bytes())?;

    let row_segment = row_segment(d);
    let curve_rows: Vec<CurveCsvRow> = scores
        .curve
        .values
        .iter()
        .enumerate()
        .map(|(row, value)| CurveCsvRow {
            row,
            position_mm: position_mm(d, folder, row as f64),
            level: DiscLevel::from_code(row_segment[row]).map(|l| l.name().to_string()).unwrap_or_default(),
            value: *value,
        })
        .collect();
    staged.write(&d.outputs.curve_csv(), &csv_bytes(&curve_rows)?)?;
    stage_sidecar(
        staged,
        &d.outputs.curve_csv(),
        merged(json!({"Description": "Anomaly curve: per row of the 256 x 256 sagittal grid (0.78125 mm), the maximum over the sagittal slices of the mean candidate AU over the row's eroded cord; empty where no slice has eroded cord. position_mm: from the centre of C2, inferior positive"}), provenance),
    )?;
    Ok(())
}

/// The subject's row of `patients.csv`.
pub(super) fn patient_row(s: &CalledSubject<'_>) -> PatientCsvRow {
    let (d, decision, calls) = (s.result, s.decision, &s.calls);
    let scores = &d.scored.scores;
    PatientCsvRow {
        subject: d.subject.clone(),
        patient_score: scores.patient_score,
        patient_z: decision.patient_z,
        z_threshold: decision.z_threshold,
        max_over_cord_rows: scores.max_over_cord_rows,
        call: calls.patient_call.to_string(),
        group: scores.group.clone(),
        positive_levels: calls.positive.join(" "),
        positive_outside_levels: calls.positive_outside.join("; "),
        indeterminate_levels: calls.indeterminate.join(" "),
        out_of_fov_levels: calls.out_of_fov.join(" "),
        samples: d.samples,
        passes: d.passes,
    }
}

/// Writes `levels.csv`, `patients.csv` (with sidecars) and `dataset_description.json`.
pub(super) fn write_cohort_tables(
    staged: &StagedWrites,
    folder: &CohortFolder<'_>,
    levels: &[LevelCsvRow],
    patients: &[PatientCsvRow],
    settings: &Value,
) -> anyhow::Result<()> {
    let mut provenance = folder.cohort_provenance.clone();
    provenance["FailedSubjects"] = json!(folder.failed.iter().map(|(s, e)| json!({"subject": s, "error": e})).collect::<Vec<_>>());
    let levels_path = folder.out.join(COHORT_LEVELS_CSV);
    staged.write(&levels_path, &csv_bytes(levels)?)?;
    let mut extra = provenance.clone();
    extra["Description"] = json!("Every subject and disc level (see the per-subject _desc-levels_scores.csv)");
    extra["Settings"] = settings.clone();
    stage_sidecar(staged, &levels_path, extra)?;
    let patients_path = folder.out.join(COHORT_PATIENTS_CSV);
    staged.write(&patients_path, &csv_bytes(patients)?)?;
    let mut extra = provenance.clone();
    extra["Description"] = json!("Every subject: patient score (maximum of the level scores), call and levels by call");
    extra["Settings"] = settings.clone();
    stage_sidecar(staged, &patients_path, extra)?;
    let description = json!({
        "Name": folder.dataset_name,
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "u2ad", "Version": env!("CARGO_PKG_VERSION"), "Command": command_line()}],
        "SourceDatasets": [{"URL": folder.source_dataset}],
    });
    staged.write(&folder.out.join(DATASET_DESCRIPTION), serde_json::to_string_pretty(&description)?.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_adds_and_overrides_keys() {
        let v = merged(json!({"a": 1, "b": 2}), &json!({"b": 3, "c": 4}));
        assert_eq!(v, json!({"a": 1, "b": 3, "c": 4}));
    }
}
