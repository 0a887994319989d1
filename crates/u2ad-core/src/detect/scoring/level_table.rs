//! The output of detection: one row per subject and disc level for the per-level CSV, from the
//! segment scores (section 3) and their calls (section 4).

use serde::Serialize;

use super::calls::{IndeterminateReason, SegmentCall, SubjectDecision};
use super::segments::{SegmentScore, SubjectScores};

/// One row of the per-level CSV (`None` is an empty field).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LevelRow {
    pub subject: String,
    /// "C2/C3" … "C7/T1".
    pub level: String,
    pub score: Option<f64>,
    pub threshold: Option<f64>,
    /// The score as a robust z against the reference scores (the calibrated scale).
    pub z: Option<f64>,
    /// "positive", "negative", "indeterminate" or "out_of_fov".
    pub call: String,
    /// For indeterminate calls: "high_epistemic_uncertainty" or "too_few_reference_values".
    pub reason: Option<String>,
    pub peak_position_mm: Option<f64>,
    pub extent_mm: Option<f64>,
    pub peak_signal_ratio: Option<f64>,
}

/// The six rows of one subject, in level order.
pub fn level_rows(scores: &SubjectScores, decision: &SubjectDecision) -> Vec<LevelRow> {
    decision
        .segments
        .iter()
        .map(|segment| {
            let peak = scores.segment(segment.level).and_then(SegmentScore::peak);
            LevelRow {
                subject: decision.subject.clone(),
                level: segment.level.name().to_string(),
                score: segment.score,
                threshold: segment.threshold,
                z: segment.z,
                call: segment.call.label().to_string(),
                reason: match segment.call {
                    SegmentCall::Indeterminate(IndeterminateReason::HighEpistemicUncertainty) => {
                        Some("high_epistemic_uncertainty".to_string())
                    }
                    SegmentCall::Indeterminate(IndeterminateReason::TooFewReferenceValues) => {
                        Some("too_few_reference_values".to_string())
                    }
                    SegmentCall::Indeterminate(IndeterminateReason::ReferenceWithoutSpread) => {
                        Some("reference_without_spread".to_string())
                    }
                    _ => None,
                },
                peak_position_mm: peak.map(|p| p.peak_position_mm),
                extent_mm: peak.map(|p| p.extent_mm),
                peak_signal_ratio: peak.and_then(|p| p.peak_signal_ratio),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::calls::{call_cohort, CallConfig};
    use crate::scoring::test_fixtures::{close, cohort_fixture, legacy, Z_TOLERANCE};

    #[test]
    fn level_rows_serialise_for_the_csv() {
        let cohort = cohort_fixture();
        let config = CallConfig { min_reference_values: 3, ..legacy() };
        let decisions = call_cohort(&cohort, &config).unwrap();
        let rows = level_rows(&cohort[3], &decisions[3]);
        assert_eq!(rows.len(), 6);
        let json = serde_json::to_value(&rows[0]).unwrap();
        assert_eq!(json["subject"], "sub-04");
        assert_eq!(json["level"], "C2/C3");
        assert_eq!(json["call"], "indeterminate");
        assert_eq!(json["reason"], "high_epistemic_uncertainty");
        close(json["score"].as_f64().unwrap(), 0.05, 0.0);
        close(json["threshold"].as_f64().unwrap(), 0.013438659987318254, Z_TOLERANCE);
        close(json["peak_position_mm"].as_f64().unwrap(), 0.0, 0.0);
        close(json["extent_mm"].as_f64().unwrap(), 1.5625, 0.0);
        close(json["peak_signal_ratio"].as_f64().unwrap(), 1.25, 0.0);
        // Columns in this order (serialising a struct keeps its field order).
        let text = serde_json::to_string(&rows[0]).unwrap();
        let columns = [
            "subject",
            "level",
            "score",
            "threshold",
            "z",
            "call",
            "reason",
            "peak_position_mm",
            "extent_mm",
            "peak_signal_ratio",
        ];
        let positions: Vec<usize> = columns.iter().map(|c| text.find(&format!("\"{c}\":")).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert_eq!(json.as_object().unwrap().len(), columns.len());
        let out_of_view = serde_json::to_value(&rows[5]).unwrap();
        assert_eq!(out_of_view["call"], "out_of_fov");
        assert!(out_of_view["score"].is_null() && out_of_view["extent_mm"].is_null());
        // C4/C5's reference (the other subjects' C4/C5) is all 0: no threshold to call it by.
        let flat = serde_json::to_value(&rows[2]).unwrap();
        assert_eq!((flat["call"].as_str(), flat["reason"].as_str()), (Some("indeterminate"), Some("reference_without_spread")));
        assert!(flat["threshold"].is_null() && flat["z"].is_null());
        close(flat["score"].as_f64().unwrap(), 0.030, 1e-12);
    }
}
