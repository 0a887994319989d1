//! The cohort half of a detection folder (the layout of [`u2ad_core::detect_outputs`]), shared
//! by `u2ad detect` and `u2ad baseline` so that both write the same files the same way:
//! label-free calls across the cohort, per subject the level CSV, patient JSON, curve CSV and
//! figures (each with a JSON sidecar), then `levels.csv`, `patients.csv`,
//! `dataset_description.json` and the QC report.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use serde_json::{json, Value};
use u2ad_core::dataset::{SubjectMeta, SAMPLE_SIZE};
use u2ad_core::detect_outputs::{
    vertebra_lines, MapScoring, SampleResult, ScoredSubject, SubjectMaps, SubjectOutputs, COHORT_LEVELS_CSV,
    COHORT_PATIENTS_CSV, DATASET_DESCRIPTION, QC_REPORT_HTML,
};
use u2ad_core::levels::DiscLevel;
use u2ad_core::scoring::{
    call_cohort, level_rows, CallConfig, CandidateMap, FalsePositiveScope, IndeterminateReason, LevelPooling, PatientCall, SegmentCall,
    SubjectDecision, SubjectScores, Threshold,
};
use u2ad_report::figures::{curve_figure, maps_figure, CurveData, LevelSpan, OverlayLimits, RowLine, SliceMaps};
use u2ad_report::html::{render_report, FigureMode, Report, ReportFigure, ReportLevel, ReportSubject};

use super::Context;
use crate::sidecar::{command_line, stage_sidecar};
use u2ad_core::staging::StagedWrites;

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

/// `path` relative to the output folder, `/`-separated (a figure's address in the report).
fn report_address(out: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(out).unwrap_or(path);
    relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>().join("/")
}

/// `base` with the keys of `extra` added (replacing equal keys).
pub fn merged(mut base: Value, extra: &Value) -> Value {
    if let (Some(target), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
        target.extend(extra.clone());
    }
    base
}

/// One row of the per-level CSVs: scoring's [`u2ad_core::scoring::LevelRow`] and the EU gate.
#[derive(Debug, Serialize)]
struct LevelCsvRow {
    subject: String,
    level: String,
    score: Option<f64>,
    threshold: Option<f64>,
    z: Option<f64>,
    z_threshold: Option<f64>,
    call: String,
    reason: Option<String>,
    peak_position_mm: Option<f64>,
    extent_mm: Option<f64>,
    peak_signal_ratio: Option<f64>,
    mean_eu: Option<f64>,
    eu_limit: Option<f64>,
    group: String,
}

#[derive(Debug, Serialize)]
struct PatientCsvRow {
    subject: String,
    patient_score: Option<f64>,
    patient_z: Option<f64>,
    z_threshold: Option<f64>,
    max_over_cord_rows: Option<f64>,
    call: String,
    group: String,
    positive_levels: String,
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
/// ([`u2ad_core::names::csv_cell`]).
pub fn csv_bytes<T: Serialize>(rows: &[T]) -> anyhow::Result<Vec<u8>> {
    let mut plain = csv::Writer::from_writer(Vec::new());
    for row in rows {
        plain.serialize(row)?;
    }
    let plain = plain.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(&plain[..]);
    let mut escaped = csv::Writer::from_writer(Vec::new());
    for record in reader.records() {
        escaped.write_record(record?.iter().map(|cell| u2ad_core::names::csv_cell(cell).into_owned()))?;
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

/// The 99th percentile of the nonzero values of the mid-sagittal maps of the cohort.
fn cohort_limit(detected: &[SubjectResult], pick: impl Fn(&SampleResult) -> &Vec<f32>) -> f32 {
    let mut values: Vec<f64> = detected
        .iter()
        .filter_map(|d| d.mid.as_ref())
        .flat_map(|(s, _)| pick(s).iter().filter(|&&v| v > 0.0).map(|&v| v as f64).collect::<Vec<_>>())
        .collect();
    values.sort_by(f64::total_cmp);
    u2ad_core::scoring::percentile_of_sorted(&values, 99.0).unwrap_or(0.0) as f32
}

/// The calibration state in words (for the terminal, the JSON and the report), and warnings.
fn calibration(calls: &CallConfig, subjects: usize, decisions: &[SubjectDecision]) -> (String, Vec<String>) {
    let too_few = decisions
        .iter()
        .flat_map(|d| &d.segments)
        .filter(|s| s.call == SegmentCall::Indeterminate(IndeterminateReason::TooFewReferenceValues))
        .count();
    match calls.threshold {
        Threshold::Fixed(t) => (format!("fixed threshold {t} (--threshold)"), Vec::new()),
        Threshold::Cohort { target_false_positive_rate } => {
            let pooling = match calls.pooling {
                LevelPooling::PerLevel => "the same level of the other subjects",
                LevelPooling::Pooled => "every level of the other subjects",
            };
            let scope = match calls.scope {
                FalsePositiveScope::Patient => "per patient (each level at rate / scored levels, Bonferroni)",
                FalsePositiveScope::Level => "per level",
            };
            let text = format!(
                "cohort-calibrated, leave-one-participant-out: threshold = median + z x 1.4826 x MAD of {pooling} \
                 (never another scan of the same participant), target false-positive rate {target_false_positive_rate} \
                 {scope}, at least {} reference scores",
                calls.min_reference_values
            );
            let mut warnings = Vec::new();
            if subjects == 1 {
                warnings.push(
                    "not calibrated: a cohort of one subject cannot calibrate thresholds, so every level is 'indeterminate' \
                     (too_few_reference_values); give --threshold X learnt on a labelled set, or run on the whole cohort"
                        .to_string(),
                );
            } else if too_few > 0 {
                warnings.push(format!(
                    "not calibrated for {too_few} level(s): fewer than {} reference scores among the other {} subject(s), \
                     so those levels are 'indeterminate' (too_few_reference_values); use --pooling pooled, a lower \
                     --min-reference, a larger cohort, or --threshold",
                    calls.min_reference_values,
                    subjects - 1
                ));
            }
            (text, warnings)
        }
    }
}

/// Calls every subject without labels and writes the cohort half of the detection folder: per
/// subject the level CSV, patient JSON, curve CSV and figures (with sidecars), then `levels.csv`,
/// `patients.csv`, `dataset_description.json` and `qc_report.html`. Returns the calibration
/// warnings and the decisions, in the order of `results`.
pub fn write_cohort(
    folder: &CohortFolder<'_>,
    detected: &[SubjectResult],
    context: &Context,
) -> anyhow::Result<(Vec<String>, Vec<SubjectDecision>)> {
    if detected.is_empty() {
        // Nothing to call: no empty tables or report that would read as "no finding".
        anyhow::bail!("no subject was detected, so no cohort tables or report were written");
    }
    // Every file of this step lands together when all are written (a full disk leaves none).
    let staged = StagedWrites::new();
    let scores: Vec<SubjectScores> = detected.iter().map(|d| d.scored.scores.clone()).collect();
    let decisions = call_cohort(&scores, folder.calls).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (calibration_text, warnings) = calibration(folder.calls, detected.len(), &decisions);
    let limits = OverlayLimits {
        epistemic: cohort_limit(detected, |s| &s.epistemic),
        aleatoric: cohort_limit(detected, |s| &s.aleatoric),
    };
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
        let scores = &d.scored.scores;
        let rows: Vec<LevelCsvRow> = level_rows(scores, decision)
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
            .collect();
        let provenance = merged(json!({"Sources": [d.image.display().to_string()]}), &folder.subject_provenance);
        staged.write(&d.outputs.levels_csv(), &csv_bytes(&rows)?)?;
        stage_sidecar(
            &staged,
            &d.outputs.levels_csv(),
            merged(
                merged(json!({"Description": "Per disc level: anomaly score (see Scoring.levels), threshold, robust z of the score against the reference scores and the z threshold, call, peak position (mm from the centre of C2, inferior positive), extent along the cord (mm), peak signal / median cord signal, mean EU and the EU limit"}), &provenance),
                &settings_json,
            ),
        )?;
        let positive = levels_merged(decision, |c| c == SegmentCall::Positive);
        let indeterminate = levels_merged(decision, |c| matches!(c, SegmentCall::Indeterminate(_)));
        let out_of_fov = levels_merged(decision, |c| c == SegmentCall::OutOfFieldOfView);
        let patient_call = patient_call_label(decision.patient_call);
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
                    "Call": patient_call,
                    "PositiveLevels": positive,
                    "OutsideLevels": decision.outside_levels,
                    "IndeterminateLevels": indeterminate,
                    "OutOfFieldOfViewLevels": out_of_fov,
                    "Levels": rows,
                    "LevelsSource": d.meta.levels_source,
                    "Samples": d.samples,
                    "Passes": d.passes,
                }),
                &provenance,
            ),
            &settings_json,
        );
        staged.write(&d.outputs.patient_json(), serde_json::to_string_pretty(&patient)?.as_bytes())?;

        // The curve.
        let origin = scores.position_origin.map(|o| o.row_px()).unwrap_or(0) as f64;
        let pixel_mm = folder.scoring.scoring.pixel_mm;
        let position = |row: f64| (row - origin) * pixel_mm;
        let row_segment = d.mid.as_ref().map(|(s, _)| s.row_segment.clone()).unwrap_or_else(|| vec![0; SAMPLE_SIZE]);
        let curve_rows: Vec<CurveCsvRow> = scores
            .curve
            .values
            .iter()
            .enumerate()
            .map(|(row, value)| CurveCsvRow {
                row,
                position_mm: position(row as f64),
                level: DiscLevel::from_code(row_segment[row]).map(|l| l.name().to_string()).unwrap_or_default(),
                value: *value,
            })
            .collect();
        staged.write(&d.outputs.curve_csv(), &csv_bytes(&curve_rows)?)?;
        stage_sidecar(
            &staged,
            &d.outputs.curve_csv(),
            merged(json!({"Description": "Anomaly curve: per row of the 256 x 256 sagittal grid (0.78125 mm), the maximum over the sagittal slices of the mean candidate AU over the row's eroded cord; empty where no slice has eroded cord. position_mm: from the centre of C2, inferior positive"}), &provenance),
        )?;

        // Figures.
        let lines = vertebra_lines(&row_segment);
        let mut figures = Vec::new();
        let method = folder.method.map(|m| format!(" ({m})")).unwrap_or_default();
        let title = format!(
            "{}{method}: patient score {}, {}{}",
            d.subject,
            scores.patient_score.map(u2ad_report::figures::format_value).unwrap_or_else(|| "none".into()),
            patient_call.replace('_', " "),
            if positive.is_empty() { String::new() } else { format!(" ({})", positive.join(", ")) }
        );
        if let Some((sample, candidates)) = &d.mid {
            let slice = SliceMaps {
                rows: SAMPLE_SIZE,
                cols: SAMPLE_SIZE,
                image: sample.image.clone(),
                reconstruction: sample.mean.clone(),
                epistemic: sample.epistemic.clone(),
                aleatoric: sample.aleatoric.clone(),
                cord: sample.cord.clone(),
                candidates: candidates.filtered_au.iter().map(|&v| u8::from(v != 0.0)).collect(),
            };
            let row_lines: Vec<RowLine> = lines.iter().map(|(r, n)| RowLine { row: *r as f64, label: n.clone() }).collect();
            let slice_title = format!("{title} · slice {} ({:+.1} mm from mid)", sample.meta.native_slice, sample.meta.offset_from_mid_mm);
            let png = maps_figure(&slice, &row_lines, limits, &slice_title)?;
            staged.write(&d.outputs.maps_figure(), &png)?;
            stage_sidecar(
            &staged,
                &d.outputs.maps_figure(),
                merged(json!({"Description": "Mid-sagittal sample (largest eroded cord): image with the cord outlined, mean reconstruction, EU and AU overlays (cohort 99th-percentile colour limits), candidates outlined in magenta, vertebral centres in green", "ColourLimits": {"EU": limits.epistemic, "AU": limits.aleatoric}}), &provenance),
            )?;
            figures.push(ReportFigure {
                caption: format!(
                    "Native sagittal slice {}: image (cord outlined), mean reconstruction, EU (0 to {}), AU (0 to {}) with the anomaly candidates outlined; green lines: vertebral centres",
                    sample.meta.native_slice,
                    u2ad_report::figures::format_value(limits.epistemic as f64),
                    u2ad_report::figures::format_value(limits.aleatoric as f64)
                ),
                png,
                file: report_address(folder.out, &d.outputs.maps_figure()),
            });
        }
        let level_spans: Vec<LevelSpan> = decision
            .segments
            .iter()
            .filter_map(|s| {
                let rows: Vec<usize> = (0..SAMPLE_SIZE).filter(|&r| row_segment[r] == s.level.code()).collect();
                let (first, last) = (*rows.first()?, *rows.last()?);
                let peak = scores.segment(s.level).and_then(|x| x.peak()).map(|p| (p.peak_position_mm, p.score));
                Some(LevelSpan {
                    name: s.level.name().to_string(),
                    start_mm: position(first as f64),
                    end_mm: position(last as f64 + 1.0),
                    threshold: s.threshold,
                    peak,
                    call: s.call.label().to_string(),
                })
            })
            .collect();
        let curve = CurveData {
            positions_mm: (0..SAMPLE_SIZE).map(|r| position(r as f64)).collect(),
            values: scores.curve.values.clone(),
            boundaries: lines.iter().map(|(r, n)| (position(*r as f64), n.clone())).collect(),
            levels: level_spans,
        };
        let png = curve_figure(&curve, &format!("{title} · anomaly curve"))?;
        staged.write(&d.outputs.curve_figure(), &png)?;
        stage_sidecar(
            &staged,
            &d.outputs.curve_figure(),
            merged(json!({"Description": "Anomaly curve along the cord with the vertebral centres (green), each level's threshold (red dashes) and its peak coloured by its call"}), &provenance),
        )?;
        figures.push(ReportFigure {
            caption: "Anomaly curve: blue, the curve; green dashes, vertebral centres; red dashes, each level's threshold; dots, each level's peak (red positive, grey negative, orange indeterminate)".into(),
            png,
            file: report_address(folder.out, &d.outputs.curve_figure()),
        });

        let mut notes: Vec<String> = folder.method.iter().map(|m| format!("method: {m}")).collect();
        if !out_of_fov.is_empty() {
            notes.push(format!("out of the field of view (or no cord seen): {}", out_of_fov.join(", ")));
        }
        for s in &decision.segments {
            if let SegmentCall::Indeterminate(reason) = s.call {
                let why = match reason {
                    IndeterminateReason::HighEpistemicUncertainty => "epistemic uncertainty above the cohort's limit",
                    IndeterminateReason::TooFewReferenceValues => "too few reference scores to calibrate a threshold",
                };
                notes.push(format!("{} indeterminate: {why}", s.level.name()));
            }
        }
        notes.push(format!("levels: {}", d.meta.levels_source));
        if d.meta.csf_derived {
            notes.push("CSF derived around the cord (no CSF mask given)".into());
        }
        if d.reused {
            notes.push("Monte-Carlo maps reused from a previous run with the same model and settings".into());
        }
        report_subjects.push(ReportSubject {
            subject: d.subject.clone(),
            image_file: d.image.display().to_string(),
            patient_score: scores.patient_score,
            patient_call: patient_call.to_string(),
            positive_levels: positive.clone(),
            notes,
            levels: rows
                .iter()
                .map(|r| ReportLevel {
                    level: r.level.clone(),
                    score: r.score,
                    threshold: r.threshold,
                    call: r.call.clone(),
                    reason: r.reason.clone(),
                    peak_position_mm: r.peak_position_mm,
                    extent_mm: r.extent_mm,
                    peak_signal_ratio: r.peak_signal_ratio,
                })
                .collect(),
            figures,
        });
        patients.push(PatientCsvRow {
            subject: d.subject.clone(),
            patient_score: scores.patient_score,
            patient_z: decision.patient_z,
            z_threshold: decision.z_threshold,
            max_over_cord_rows: scores.max_over_cord_rows,
            call: patient_call.to_string(),
            group: scores.group.clone(),
            positive_levels: positive.join(" "),
            positive_outside_levels: decision
                .outside_levels
                .iter()
                .filter(|r| r.call == SegmentCall::Positive)
                .map(|r| r.region.name())
                .collect::<Vec<_>>()
                .join("; "),
            indeterminate_levels: indeterminate.join(" "),
            out_of_fov_levels: out_of_fov.join(" "),
            samples: d.samples,
            passes: d.passes,
        });
        all_levels.extend(rows);
    }

    let mut provenance = folder.cohort_provenance.clone();
    provenance["FailedSubjects"] = json!(folder.failed.iter().map(|(s, e)| json!({"subject": s, "error": e})).collect::<Vec<_>>());
    let levels_path = folder.out.join(COHORT_LEVELS_CSV);
    staged.write(&levels_path, &csv_bytes(&all_levels)?)?;
    let mut extra = provenance.clone();
    extra["Description"] = json!("Every subject and disc level (see the per-subject _desc-levels_scores.csv)");
    extra["Settings"] = settings_json.clone();
    stage_sidecar(&staged, &levels_path, extra)?;
    let patients_path = folder.out.join(COHORT_PATIENTS_CSV);
    staged.write(&patients_path, &csv_bytes(&patients)?)?;
    let mut extra = provenance.clone();
    extra["Description"] = json!("Every subject: patient score (maximum of the level scores), call and levels by call");
    extra["Settings"] = settings_json.clone();
    stage_sidecar(&staged, &patients_path, extra)?;
    let description = json!({
        "Name": folder.dataset_name,
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "u2ad", "Version": env!("CARGO_PKG_VERSION"), "Command": command_line()}],
        "SourceDatasets": [{"URL": folder.source_dataset}],
    });
    staged.write(&folder.out.join(DATASET_DESCRIPTION), serde_json::to_string_pretty(&description)?.as_bytes())?;

    let report = Report {
        title: format!("u2ad QC report{}: {} subject(s)", folder.method.map(|m| format!(" ({m})")).unwrap_or_default(), detected.len()),
        generated_by: format!("u2ad {} · {}", env!("CARGO_PKG_VERSION"), command_line()),
        settings: folder
            .report_settings
            .iter()
            .cloned()
            .chain([
                ("calibration".to_string(), calibration_text.clone()),
                ("curve".to_string(), format!("{:?}", folder.scoring.scoring.curve)),
            ])
            .collect(),
        warnings: warnings.clone(),
        subjects: report_subjects,
        failed: folder.failed.to_vec(),
        figure_mode: folder.figure_mode,
    };
    staged.write(&folder.out.join(QC_REPORT_HTML), render_report(&report).as_bytes())?;
    staged.commit()?;

    if !context.quiet {
        println!("{:<16} {:>10}  {:<13} positive levels", "subject", "score", "call");
        for p in &patients {
            println!(
                "{:<16} {:>10}  {:<13} {}",
                p.subject,
                p.patient_score.map(|s| format!("{s:.3e}")).unwrap_or_else(|| "none".into()),
                p.call,
                if p.positive_levels.is_empty() { "none" } else { &p.positive_levels }
            );
        }
    }
    Ok((warnings, decisions))
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
