//! The QC report of a detection folder (`qc_report.html`) and the calibration in words, for the
//! terminal, the sidecars and the report.

use u2ad_core::detect_outputs::QC_REPORT_HTML;
use u2ad_core::scoring::{
    CallConfig, FalsePositiveScope, IndeterminateReason, LevelPooling, ReferenceScores, SegmentCall, SubjectDecision, Threshold,
};
use u2ad_io::staging::StagedWrites;
use u2ad_report::figures::format_value;
use u2ad_report::html::{render_report, Report, ReportFigure, ReportLevel, ReportSubject};

use super::tables::{CalledSubject, PatientCsvRow};
use super::CohortFolder;
use crate::sidecar::command_line;

/// The calibration state in words (for the terminal, the JSON and the report), and warnings.
pub(super) fn calibration(calls: &CallConfig, subjects: usize, decisions: &[SubjectDecision]) -> (String, Vec<String>) {
    let too_few = decisions
        .iter()
        .flat_map(|d| &d.segments)
        .filter(|s| s.call == SegmentCall::Indeterminate(IndeterminateReason::TooFewReferenceValues))
        .count();
    let flat = decisions
        .iter()
        .flat_map(|d| d.segments.iter().map(|s| s.call).chain(d.outside_levels.iter().map(|r| r.call)))
        .filter(|&call| call == SegmentCall::Indeterminate(IndeterminateReason::ReferenceWithoutSpread))
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
            let reference = match calls.reference_scores {
                ReferenceScores::All => "",
                ReferenceScores::Negative => {
                    ", recomputed without the scores above that threshold (other patients' lesions; the cord outside \
                     the levels against all of them)"
                }
            };
            let outside = match calls.pooling {
                LevelPooling::PerLevel => "",
                LevelPooling::Pooled => {
                    "; the cord above and below the levels against the levels' threshold raised by that region's offset, \
                     how much higher it scores than the levels of the same subject (the median over at least 3 other \
                     subjects, never below 0)"
                }
            };
            let text = format!(
                "cohort-calibrated, leave-one-participant-out: threshold = median + z x 1.4826 x MAD of {pooling}{reference} \
                 (never another scan of the same participant; scores of exactly 0 counted apart, the median and MAD taken \
                 on the scores above 0), target false-positive rate {target_false_positive_rate} \
                 {scope}, at least {} reference scores{outside}",
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
            if flat > 0 {
                warnings.push(format!(
                    "not calibrated for {flat} level(s) or region(s): every reference score of the other subjects is the same \
                     (a map that is 0 there), so those are 'indeterminate' (reference_without_spread); use a larger cohort \
                     or --threshold"
                ));
            }
            (text, warnings)
        }
    }
}

/// A subject's section of the report: its calls, notes, levels and figures.
pub(super) fn report_subject(folder: &CohortFolder<'_>, called: &CalledSubject<'_>, figures: Vec<ReportFigure>) -> ReportSubject {
    let (d, decision, rows, calls) = (called.result, called.decision, &called.rows, &called.calls);
    let mut notes: Vec<String> = folder.method.iter().map(|m| format!("method: {m}")).collect();
    if !calls.out_of_fov.is_empty() {
        notes.push(format!("out of the field of view (or no cord seen): {}", calls.out_of_fov.join(", ")));
    }
    let places = decision
        .segments
        .iter()
        .map(|s| (s.level.name().to_string(), s.call))
        .chain(decision.outside_levels.iter().map(|r| (format!("the cord {}", r.region.name()), r.call)));
    for (place, call) in places {
        if let SegmentCall::Indeterminate(reason) = call {
            let why = match reason {
                IndeterminateReason::HighEpistemicUncertainty => "epistemic uncertainty above the cohort's limit",
                IndeterminateReason::TooFewReferenceValues => "too few reference scores to calibrate a threshold",
                IndeterminateReason::ReferenceWithoutSpread => "the reference scores do not vary, so no threshold can be calibrated",
            };
            notes.push(format!("{place} indeterminate: {why}"));
        }
    }
    for region in decision.outside_levels.iter().filter(|r| r.call == SegmentCall::Positive) {
        let offset = if region.offset > 0.0 { format!(", which holds the region's offset {}", format_value(region.offset)) } else { String::new() };
        notes.push(format!(
            "the cord {} is positive: score {} above its threshold {}{}{}",
            region.region.name(),
            format_value(region.score),
            region.threshold.map(format_value).unwrap_or_else(|| "none".into()),
            offset,
            region.z.map(|z| format!(" (z {z:.2})")).unwrap_or_default()
        ));
    }
    notes.push(format!("levels: {}", d.meta.levels_source));
    if d.meta.csf_derived {
        notes.push("CSF derived around the cord (no CSF mask given)".into());
    }
    if d.reused {
        notes.push("Monte-Carlo maps reused from a previous run with the same model and settings".into());
    }
    ReportSubject {
        subject: d.subject.clone(),
        image_file: d.image.display().to_string(),
        patient_score: d.scored.scores.patient_score,
        patient_call: calls.patient_call.to_string(),
        positive_levels: calls.positive_places(),
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
    }
}

/// Renders and stages `qc_report.html`.
pub(super) fn write_report(
    staged: &StagedWrites,
    folder: &CohortFolder<'_>,
    subjects: Vec<ReportSubject>,
    calibration_text: &str,
    warnings: &[String],
) -> anyhow::Result<()> {
    let report = Report {
        title: format!("u2ad QC report{}: {} subject(s)", folder.method.map(|m| format!(" ({m})")).unwrap_or_default(), subjects.len()),
        generated_by: format!("u2ad {} · {}", env!("CARGO_PKG_VERSION"), command_line()),
        settings: folder
            .report_settings
            .iter()
            .cloned()
            .chain([
                ("calibration".to_string(), calibration_text.to_string()),
                ("curve".to_string(), format!("{:?}", folder.scoring.scoring.curve)),
            ])
            .collect(),
        warnings: warnings.to_vec(),
        subjects,
        failed: folder.failed.to_vec(),
        figure_mode: folder.figure_mode,
    };
    staged.write(&folder.out.join(QC_REPORT_HTML), render_report(&report).as_bytes())?;
    Ok(())
}

/// The patient table on the terminal.
pub(super) fn print_patients(patients: &[PatientCsvRow]) {
    println!("{:<16} {:>10}  {:<13} positive levels", "subject", "score", "call");
    for p in patients {
        println!(
            "{:<16} {:>10}  {:<13} {}",
            p.subject,
            p.patient_score.map(|s| format!("{s:.3e}")).unwrap_or_else(|| "none".into()),
            p.call,
            if p.positive_levels.is_empty() { "none" } else { &p.positive_levels }
        );
    }
}
