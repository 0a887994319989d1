//! Step 3 of detection (module docs, section 3): the disc-level segment scores of a subject (the
//! curve's peak in each segment, its position, extent and signal ratio) and its patient score.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::curve::{subject_curve, CurveConfig, SliceMaps, SubjectCurve};
use crate::plane::{PlaneShape, SAMPLE_PIXEL_MM};
use crate::stats::median;
use super::outside::{OutsideRegion, OutsideScore};
use crate::levels::DiscLevel;

/// Settings of [`score_subject`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoringConfig {
    pub curve: CurveConfig,
    /// Pixel size of the samples, in mm.
    pub pixel_mm: f64,
    /// The extent counts the contiguous rows whose curve value is above this.
    pub extent_above: f64,
}

impl Default for ScoringConfig {
    fn default() -> Self {
        ScoringConfig { curve: CurveConfig::default(), pixel_mm: SAMPLE_PIXEL_MM, extent_above: 0.0 }
    }
}

/// Where peak positions are measured from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PositionOrigin {
    /// The first (most superior) row of segment C2/C3.
    C2C3UpperEnd { row_px: usize },
    /// The first row of the cord (C2/C3 is not on the image).
    FirstCordRow { row_px: usize },
}

impl PositionOrigin {
    pub fn row_px(self) -> usize {
        match self {
            PositionOrigin::C2C3UpperEnd { row_px } | PositionOrigin::FirstCordRow { row_px } => row_px,
        }
    }
}

/// The peak of the curve in a segment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentPeak {
    /// Curve value at the peak (AnoScore of the segment).
    pub score: f64,
    pub peak_row_px: usize,
    /// Index (into the given samples) of the sample giving the peak.
    pub peak_slice: usize,
    /// (peak row - origin row) x pixel size.
    pub peak_position_mm: f64,
    /// Contiguous rows around the peak above [`ScoringConfig::extent_above`], in mm.
    pub extent_mm: f64,
    /// Image signal at the peak / median cord signal of that sample (`None` if that median is not
    /// positive).
    pub peak_signal_ratio: Option<f64>,
}

/// Outcome of one disc-level segment.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum SegmentOutcome {
    Scored(SegmentPeak),
    /// No row of the segment has a curve value.
    OutOfFieldOfView,
}

/// One disc-level segment of a subject.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentScore {
    pub level: DiscLevel,
    pub outcome: SegmentOutcome,
}

impl SegmentScore {
    pub fn score(&self) -> Option<f64> {
        match &self.outcome {
            SegmentOutcome::Scored(peak) => Some(peak.score),
            SegmentOutcome::OutOfFieldOfView => None,
        }
    }

    pub fn peak(&self) -> Option<&SegmentPeak> {
        match &self.outcome {
            SegmentOutcome::Scored(peak) => Some(peak),
            SegmentOutcome::OutOfFieldOfView => None,
        }
    }
}

/// Everything scored for one subject.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubjectScores {
    pub subject: String,
    pub curve: SubjectCurve,
    /// The six segments C2/C3 … C7/T1, in that order.
    pub segments: Vec<SegmentScore>,
    /// Maximum of the segment scores and of the cord in view outside them (`outside_levels`,
    /// once the 3-D scores are in place); `None` when nothing is scored.
    pub patient_score: Option<f64>,
    /// Maximum of the curve over every cord row.
    pub max_over_cord_rows: Option<f64>,
    pub position_origin: Option<PositionOrigin>,
    /// Mean EU over the eroded-cord pixels of each segment's rows in the used samples that have
    /// an EU map (levels without such pixels are absent).
    pub segment_mean_eu: BTreeMap<DiscLevel, f64>,
    /// The same over the rows of the cord in view above the first and below the last level.
    pub outside_mean_eu: BTreeMap<OutsideRegion, f64>,
    /// The participant the scan belongs to: calibration leaves out every subject of the same
    /// group (the subject's own name unless set, e.g. by [`u2ad_io::cohort::participant_group`]).
    pub group: String,
    /// Scores of the cord in view above the first and below the last level (3-D level scores
    /// only; empty for the curve peak).
    pub outside_levels: Vec<OutsideScore>,
}

impl SubjectScores {
    pub fn segment(&self, level: DiscLevel) -> Option<&SegmentScore> {
        self.segments.iter().find(|s| s.level == level)
    }
}

pub(crate) fn peak_signal_ratio(slice: &SliceMaps<'_>, row: usize, shape: PlaneShape) -> Option<f64> {
    let cord_signal: Vec<f64> =
        slice.image.iter().zip(slice.cord_eroded).filter(|(_, &m)| m != 0).map(|(&v, _)| f64::from(v)).collect();
    let cord_median = median(&cord_signal)?;
    if cord_median <= 0.0 {
        return None;
    }
    let span = row * shape.cols..(row + 1) * shape.cols;
    let row_pixels: Vec<usize> = span.filter(|&i| slice.cord_eroded[i] != 0).collect();
    let candidates: Vec<usize> = row_pixels.iter().copied().filter(|&i| slice.filtered_au[i] > 0.0).collect();
    let chosen = if candidates.is_empty() { &row_pixels } else { &candidates };
    if chosen.is_empty() {
        return None;
    }
    let signal = chosen.iter().map(|&i| f64::from(slice.image[i])).sum::<f64>() / chosen.len() as f64;
    Some(signal / cord_median)
}

/// Scores one subject (module docs, sections 2 and 3). `slices` are the subject's samples with
/// their filtered AU maps; `row_segment` gives the disc-level code of each row (0 none,
/// [`DiscLevel::code`]), shared by the subject's samples (they have the same in-plane grid).
pub fn score_subject(
    subject: &str,
    slices: &[SliceMaps<'_>],
    row_segment: &[u8],
    shape: PlaneShape,
    config: &ScoringConfig,
) -> SubjectScores {
    assert_eq!(row_segment.len(), shape.rows, "row_segment: {} values for {} rows", row_segment.len(), shape.rows);
    for slice in slices {
        shape.check(slice.image.len(), "image");
        shape.check(slice.filtered_au.len(), "filtered AU map");
        shape.check(slice.cord_eroded.len(), "eroded cord mask");
        if let Some(eu) = slice.eu {
            shape.check(eu.len(), "EU map");
        }
    }
    let curve = subject_curve(slices, shape, &config.curve);
    let position_origin = row_segment
        .iter()
        .position(|&code| code == DiscLevel::C2C3.code())
        .map(|row_px| PositionOrigin::C2C3UpperEnd { row_px })
        .or_else(|| {
            curve.values.iter().position(Option::is_some).map(|row_px| PositionOrigin::FirstCordRow { row_px })
        });

    let segments: Vec<SegmentScore> = DiscLevel::ALL
        .into_iter()
        .map(|level| {
            let mut peak: Option<(usize, f64)> = None;
            for (row, value) in curve.values.iter().enumerate() {
                if row_segment[row] != level.code() {
                    continue;
                }
                if let Some(v) = *value {
                    if peak.is_none_or(|(_, best)| v > best) {
                        peak = Some((row, v));
                    }
                }
            }
            let Some((peak_row_px, score)) = peak else {
                return SegmentScore { level, outcome: SegmentOutcome::OutOfFieldOfView };
            };
            let above = |row: usize| curve.values[row].is_some_and(|v| v > config.extent_above);
            let extent_rows = if above(peak_row_px) {
                let mut first = peak_row_px;
                while first > 0 && above(first - 1) {
                    first -= 1;
                }
                let mut last = peak_row_px;
                while last + 1 < shape.rows && above(last + 1) {
                    last += 1;
                }
                last - first + 1
            } else {
                0
            };
            let peak_slice = curve.source_slice[peak_row_px].expect("a row with a value has a source sample");
            let origin_row = position_origin.expect("a scored segment implies an origin").row_px();
            SegmentScore {
                level,
                outcome: SegmentOutcome::Scored(SegmentPeak {
                    score,
                    peak_row_px,
                    peak_slice,
                    peak_position_mm: (peak_row_px as f64 - origin_row as f64) * config.pixel_mm,
                    extent_mm: extent_rows as f64 * config.pixel_mm,
                    peak_signal_ratio: peak_signal_ratio(&slices[peak_slice], peak_row_px, shape),
                }),
            }
        })
        .collect();

    let patient_score = segments.iter().filter_map(SegmentScore::score).reduce(f64::max);
    let max_over_cord_rows = curve.values.iter().flatten().copied().reduce(f64::max);

    let mut eu_sums: BTreeMap<DiscLevel, (f64, usize)> = BTreeMap::new();
    let mut outside_eu_sums: BTreeMap<OutsideRegion, (f64, usize)> = BTreeMap::new();
    let outside_of_row: Vec<Option<OutsideRegion>> =
        (0..shape.rows).map(|row| OutsideRegion::ALL.into_iter().find(|r| r.holds(row, row_segment))).collect();
    for &index in &curve.slices_used {
        let slice = &slices[index];
        let Some(eu) = slice.eu else { continue };
        for (row, &code) in row_segment.iter().enumerate() {
            let span = row * shape.cols..(row + 1) * shape.cols;
            let mut values =
                eu[span.clone()].iter().zip(&slice.cord_eroded[span]).filter(|(_, &m)| m != 0).map(|(&v, _)| f64::from(v)).peekable();
            if values.peek().is_none() {
                continue;
            }
            let entry = match (DiscLevel::from_code(code), outside_of_row[row]) {
                (Some(level), _) => eu_sums.entry(level).or_insert((0.0, 0)),
                (None, Some(region)) => outside_eu_sums.entry(region).or_insert((0.0, 0)),
                (None, None) => continue,
            };
            for value in values {
                entry.0 += value;
                entry.1 += 1;
            }
        }
    }
    let segment_mean_eu = eu_sums.into_iter().map(|(level, (sum, n))| (level, sum / n as f64)).collect();
    let outside_mean_eu = outside_eu_sums.into_iter().map(|(region, (sum, n))| (region, sum / n as f64)).collect();

    SubjectScores {
        subject: subject.to_string(),
        group: subject.to_string(),
        outside_levels: Vec::new(),
        curve,
        segments,
        patient_score,
        max_over_cord_rows,
        position_origin,
        segment_mean_eu,
        outside_mean_eu,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::curve::{RowStatistic, SliceSelection};
    use crate::scoring::test_fixtures::{close, subject_fixture, SUBJECT_SHAPE, TOLERANCE};

    fn config(slices: SliceSelection, smoothing_half_window_rows: usize) -> ScoringConfig {
        ScoringConfig {
            curve: CurveConfig { row_statistic: RowStatistic::Mean, slices, smoothing_half_window_rows },
            ..ScoringConfig::default()
        }
    }

    fn peak(scores: &SubjectScores, level: DiscLevel) -> &SegmentPeak {
        scores.segment(level).unwrap().peak().unwrap()
    }

    fn assert_peak(
        p: &SegmentPeak,
        score: f64,
        row: usize,
        slice: usize,
        position_mm: f64,
        extent_mm: f64,
        ratio: f64,
    ) {
        close(p.score, score, TOLERANCE);
        assert_eq!((p.peak_row_px, p.peak_slice), (row, slice));
        close(p.peak_position_mm, position_mm, 1e-12);
        close(p.extent_mm, extent_mm, 1e-12);
        close(p.peak_signal_ratio.unwrap(), ratio, 1e-6);
    }

    #[test]
    fn subject_scores_over_both_samples() {
        let f = subject_fixture();
        let scores = score_subject(
            "sub-01",
            &f.slices(),
            &f.row_segment,
            SUBJECT_SHAPE,
            &config(SliceSelection::WithCord { min_eroded_cord_px: 10 }, 0),
        );
        assert_eq!(scores.curve.slices_used, vec![0, 1]);
        let expected_curve = [
            None,
            Some(0.0),
            Some(0.0),
            Some(0.10000000397364299),
            Some(0.30000000447034836),
            Some(0.033333333830038704),
            Some(0.0),
            Some(0.0),
            Some(0.016666666915019352),
            Some(0.029999999329447746),
            Some(0.0),
            Some(0.44999998807907104),
        ];
        for (actual, expected) in scores.curve.values.iter().zip(expected_curve) {
            assert_eq!(actual.is_some(), expected.is_some());
            if let (Some(a), Some(e)) = (actual, expected) {
                close(*a, e, TOLERANCE);
            }
        }
        let sources =
            [None, Some(0), Some(0), Some(0), Some(1), Some(0), Some(0), Some(0), Some(0), Some(1), Some(0), Some(1)];
        assert_eq!(scores.curve.source_slice, sources);
        assert_eq!(scores.position_origin, Some(PositionOrigin::C2C3UpperEnd { row_px: 2 }));
        assert_peak(peak(&scores, DiscLevel::C2C3), 0.10000000397364299, 3, 0, 0.78125, 2.34375, 1.9120458821282253);
        assert_peak(peak(&scores, DiscLevel::C3C4), 0.30000000447034836, 4, 1, 1.5625, 2.34375, 1.384496157556605);
        assert_peak(peak(&scores, DiscLevel::C4C5), 0.029999999329447746, 9, 1, 5.46875, 1.5625, 1.0604651222964847);
        for level in [DiscLevel::C5C6, DiscLevel::C6C7, DiscLevel::C7T1] {
            assert_eq!(scores.segment(level).unwrap().outcome, SegmentOutcome::OutOfFieldOfView);
        }
        close(scores.patient_score.unwrap(), 0.30000000447034836, TOLERANCE);
        // Row 11 lies below C4/C5: it counts only for the maximum over all cord rows.
        close(scores.max_over_cord_rows.unwrap(), 0.44999998807907104, TOLERANCE);
        close(scores.segment_mean_eu[&DiscLevel::C2C3], 0.0045200000051409004, 1e-9);
        close(scores.segment_mean_eu[&DiscLevel::C3C4], 0.007020000026871761, 1e-9);
        close(scores.segment_mean_eu[&DiscLevel::C4C5], 0.010020000052948792, 1e-9);
        assert!(!scores.segment_mean_eu.contains_key(&DiscLevel::C5C6));
        // Row 1 above the levels (sample 0 only), rows 10-11 below them (3 + 4 pixels).
        close(scores.outside_mean_eu[&OutsideRegion::AboveLevels], 0.0022, 1e-9);
        close(scores.outside_mean_eu[&OutsideRegion::BelowLevels], 0.0886 / 7.0, 1e-9);
    }

    #[test]
    fn subject_scores_with_a_minimum_cord_size_and_the_largest_cord() {
        let f = subject_fixture();
        // Sample 0 has 30 eroded-cord px, sample 1 has 20.
        for selection in [SliceSelection::WithCord { min_eroded_cord_px: 25 }, SliceSelection::LargestCord] {
            let scores = score_subject("sub-01", &f.slices(), &f.row_segment, SUBJECT_SHAPE, &config(selection, 0));
            assert_eq!(scores.curve.slices_used, vec![0]);
            assert_eq!(scores.curve.values[11], None);
            assert_peak(peak(&scores, DiscLevel::C3C4), 0.06666666766007741, 4, 0, 1.5625, 2.34375, 0.9254302019355212);
            assert_peak(
                peak(&scores, DiscLevel::C4C5),
                0.016666666915019352,
                8,
                0,
                4.6875,
                0.78125,
                1.0822179401090708,
            );
            close(scores.patient_score.unwrap(), 0.10000000397364299, TOLERANCE);
            close(scores.segment_mean_eu[&DiscLevel::C3C4], 0.006200000022848447, 1e-9);
        }
    }

    #[test]
    fn smoothed_curve() {
        let f = subject_fixture();
        let scores = score_subject(
            "sub-01",
            &f.slices(),
            &f.row_segment,
            SUBJECT_SHAPE,
            &config(SliceSelection::WithCord { min_eroded_cord_px: 10 }, 1),
        );
        close(scores.curve.values[2].unwrap(), 0.033333334657881, TOLERANCE);
        close(scores.curve.values[10].unwrap(), 0.1599999958028396, TOLERANCE);
        close(scores.curve.values[11].unwrap(), 0.22499999403953552, TOLERANCE);
        // Rows 2-11 are all above 0 after smoothing: the extent is 10 rows.
        assert_peak(peak(&scores, DiscLevel::C2C3), 0.1333333361479971, 3, 0, 0.78125, 7.8125, 1.9120458821282253);
        assert_peak(peak(&scores, DiscLevel::C3C4), 0.1444444474246767, 4, 1, 1.5625, 7.8125, 1.384496157556605);
        // Rows 8 and 9 tie: the most superior wins.
        assert_peak(peak(&scores, DiscLevel::C4C5), 0.015555555414822364, 8, 0, 4.6875, 7.8125, 1.0822179401090708);
    }

    #[test]
    fn position_origin_falls_back_to_the_first_cord_row() {
        let f = subject_fixture();
        let row_segment: Vec<u8> = f.row_segment.iter().map(|&c| if c == 1 { 0 } else { c }).collect();
        let scores = score_subject(
            "sub-01",
            &f.slices(),
            &row_segment,
            SUBJECT_SHAPE,
            &config(SliceSelection::WithCord { min_eroded_cord_px: 10 }, 0),
        );
        assert_eq!(scores.position_origin, Some(PositionOrigin::FirstCordRow { row_px: 1 }));
        assert_eq!(scores.segment(DiscLevel::C2C3).unwrap().outcome, SegmentOutcome::OutOfFieldOfView);
        close(peak(&scores, DiscLevel::C3C4).peak_position_mm, 3.0 * 0.78125, 1e-12);
    }

    #[test]
    fn no_usable_sample_leaves_every_segment_out_of_view() {
        let f = subject_fixture();
        let scores = score_subject(
            "sub-01",
            &f.slices(),
            &f.row_segment,
            SUBJECT_SHAPE,
            &config(SliceSelection::WithCord { min_eroded_cord_px: 31 }, 0),
        );
        assert!(scores.segments.iter().all(|s| s.outcome == SegmentOutcome::OutOfFieldOfView));
        assert_eq!(
            (scores.patient_score, scores.max_over_cord_rows, scores.position_origin),
            (None, None, Some(PositionOrigin::C2C3UpperEnd { row_px: 2 }))
        );
        assert!(scores.segment_mean_eu.is_empty());
    }
}
