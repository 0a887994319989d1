//! Fixtures shared by the unit tests of the scoring steps.
//!
//! Reference values come from numpy 2.4 / scipy 1.17 (scipy.ndimage.binary_erosion and label
//! with a 3 x 3 structure, np.percentile, np.median, scipy.stats.norm.ppf) and from a Python
//! transcription of the reference's `process_error`, run on the same arrays.

use super::{
    CallConfig, FalsePositiveScope, PlaneShape, PositionOrigin, ReferenceScores, SegmentOutcome, SegmentPeak, SegmentScore,
    SliceMaps, SubjectCurve, SubjectScores, UncertaintyGate,
};
use crate::levels::DiscLevel;

pub(super) const TOLERANCE: f64 = 1e-9;
/// Cohort thresholds use Acklam's z (relative error ~1e-9) where the references use scipy's.
pub(super) const Z_TOLERANCE: f64 = 1e-10;

pub(super) fn close(actual: f64, expected: f64, tolerance: f64) {
    assert!((actual - expected).abs() <= tolerance, "{actual} != {expected} (tolerance {tolerance})");
}

/// Two samples of a 12 x 5 plane (the Python transcription in the report builds the same).
pub(super) struct SubjectFixture {
    pub(super) images: [Vec<f32>; 2],
    pub(super) filtered: [Vec<f32>; 2],
    pub(super) cords: [Vec<u8>; 2],
    pub(super) eus: [Vec<f32>; 2],
    pub(super) row_segment: Vec<u8>,
}

pub(super) const SUBJECT_SHAPE: PlaneShape = PlaneShape { rows: 12, cols: 5 };

pub(super) fn subject_fixture() -> SubjectFixture {
    let shape = SUBJECT_SHAPE;
    let at = |row: usize, col: usize| row * shape.cols + col;
    let mut cords = [vec![0u8; shape.pixels()], vec![0u8; shape.pixels()]];
    for row in 1..11 {
        for col in 1..4 {
            cords[0][at(row, col)] = 1;
        }
    }
    for row in 2..12 {
        for col in 2..4 {
            cords[1][at(row, col)] = 1;
        }
    }
    let mut filtered = [vec![0f32; shape.pixels()], vec![0f32; shape.pixels()]];
    for ((row, col), v) in [((3, 2), 0.3), ((4, 2), 0.2), ((5, 1), 0.1), ((8, 3), 0.05)] {
        filtered[0][at(row, col)] = v;
    }
    for ((row, col), v) in [((4, 2), 0.4), ((4, 3), 0.2), ((9, 2), 0.06), ((11, 3), 0.9)] {
        filtered[1][at(row, col)] = v;
    }
    let plane = |f: &dyn Fn(usize, usize) -> f64| -> Vec<f32> {
        (0..shape.pixels()).map(|i| f(i / shape.cols, i % shape.cols) as f32).collect()
    };
    let mut images = [
        plane(&|r, c| 0.2 + 0.01 * r as f64 + 0.001 * c as f64),
        plane(&|r, c| 0.2 + 0.01 * r as f64 + 0.001 * c as f64 + 0.05),
    ];
    images[0][at(3, 2)] = 0.5;
    images[1][at(4, 2)] = 0.6;
    let eus = [
        plane(&|r, c| 0.001 * (r + 1) as f64 + 0.0001 * c as f64),
        plane(&|r, c| 0.001 * (r + 1) as f64 + 0.0001 * c as f64 + 0.002),
    ];
    let row_segment = vec![0, 0, 1, 1, 2, 2, 2, 3, 3, 3, 0, 0];
    SubjectFixture { images, filtered, cords, eus, row_segment }
}

impl SubjectFixture {
    pub(super) fn slices(&self) -> Vec<SliceMaps<'_>> {
        (0..2)
            .map(|s| SliceMaps {
                image: &self.images[s],
                filtered_au: &self.filtered[s],
                cord_eroded: &self.cords[s],
                eu: Some(&self.eus[s]),
            })
            .collect()
    }
}

/// Scores of C2/C3, C3/C4, C4/C5 (None: out of view) and their mean EU; the other levels
/// are out of view.
pub(super) fn cohort_fixture() -> Vec<SubjectScores> {
    // (subject, scores, mean EU)
    type Row = (&'static str, [Option<f64>; 3], [f64; 3]);
    let table: [Row; 6] = [
        ("sub-01", [Some(0.010), Some(0.020), Some(0.0)], [0.0010, 0.0011, 0.0012]),
        ("sub-02", [Some(0.012), Some(0.018), Some(0.0)], [0.0011, 0.0012, 0.0010]),
        ("sub-03", [Some(0.011), Some(0.090), Some(0.0)], [0.0012, 0.0010, 0.0011]),
        ("sub-04", [Some(0.050), Some(0.021), Some(0.030)], [0.0050, 0.0011, 0.0012]),
        ("sub-05", [Some(0.013), None, Some(0.0)], [0.0010, 0.0012, 0.0011]),
        ("sub-06", [Some(0.009), Some(0.019), Some(0.0)], [0.0011, 0.0010, 0.0010]),
    ];
    table
        .iter()
        .map(|(subject, scores, eus)| {
            let segments = DiscLevel::ALL
                .into_iter()
                .enumerate()
                .map(|(i, level)| SegmentScore {
                    level,
                    outcome: match scores.get(i).copied().flatten() {
                        Some(score) => SegmentOutcome::Scored(SegmentPeak {
                            score,
                            peak_row_px: 10 * i,
                            peak_slice: 0,
                            peak_position_mm: 7.8125 * i as f64,
                            extent_mm: 1.5625,
                            peak_signal_ratio: Some(1.25),
                        }),
                        None => SegmentOutcome::OutOfFieldOfView,
                    },
                })
                .collect::<Vec<_>>();
            let patient_score = segments.iter().filter_map(SegmentScore::score).reduce(f64::max);
            SubjectScores {
                subject: subject.to_string(),
                group: subject.to_string(),
                outside_levels: Vec::new(),
                curve: SubjectCurve { values: vec![], source_slice: vec![], slices_used: vec![] },
                segments,
                patient_score,
                max_over_cord_rows: patient_score,
                position_origin: Some(PositionOrigin::C2C3UpperEnd { row_px: 0 }),
                segment_mean_eu: DiscLevel::ALL.into_iter().zip(eus.iter().copied()).collect(),
                outside_mean_eu: Default::default(),
            }
        })
        .collect()
}

/// The calls as they were before the participant-level rate, the near-threshold EU gate and the
/// clipped reference: each level at the target rate, high EU always withholds the call, every
/// reference score sets the median and spread.
pub(super) fn legacy() -> CallConfig {
    CallConfig {
        uncertainty_gate: UncertaintyGate::RobustZ { z: 3.0 },
        scope: FalsePositiveScope::Level,
        reference_scores: ReferenceScores::All,
        ..CallConfig::default()
    }
}
