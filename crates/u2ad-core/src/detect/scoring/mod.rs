//! Scoring: from the aleatoric-uncertainty (AU) map of each sagittal sample to an anomaly curve
//! along the cord, disc-level segment scores, patient scores and calls made without labels.
//!
//! All maps are row-major planes ([`PlaneShape`], 256 x 256 for prepared samples): row 0 is the
//! most superior row, column 0 the most anterior column. Masks are `u8`, nonzero = inside.
//!
//! # 1. Anomaly candidates (the reference's `process_error`)
//!
//! For one sample, with AU = |image - mean reconstruction| and the cord mask eroded once by a
//! 3 x 3 square ([`erode_3x3`], outside the plane counts as background, as in
//! `scipy.ndimage.binary_erosion`):
//!
//! 1. E = AU x eroded cord.
//! 2. t = the 90th percentile of the nonzero values of E (numpy's default, linear interpolation
//!    between order statistics: [`percentile`]).
//! 3. Keep the pixels with E > t; group them into 8-connected components.
//! 4. Drop components of fewer than 2 px; score each remaining component by mean(E) x sum(E).
//! 5. Keep the 3 best components (ties keep the raster order of their first pixel, as cv2's
//!    labels with Python's stable sort). The filtered map holds E on their pixels and 0 elsewhere.
//!
//! Percentile, minimum area and number of components are configurable ([`CandidateFilter`]).
//! Training uses the same map: AU-guided masking never masks a patch holding a candidate pixel.
//!
//! # 2. Anomaly curve
//!
//! For each sample s and row y, c_s(y) = mean of the filtered map over the eroded-cord pixels of
//! row y (no value where the row has no eroded cord; `max` and `sum` are available as
//! [`RowStatistic`]s). The subject curve is c(y) = max over the subject's samples s of c_s(y),
//! over the samples whose eroded cord has at least 100 px (the minimum is configurable, and
//! [`SliceSelection::LargestCord`] uses the single sample with the largest eroded cord). An
//! optional centred moving average over 2h + 1 rows (h = 0, off, by default) averages the rows of
//! the window that have a value; rows without a value keep none.
//!
//! # 3. Segment and patient scores
//!
//! * The score of disc-level segment L is the peak of c(y) over the rows whose `row_segment` is
//!   L's code (ties: the most superior row). A segment none of whose rows has a curve value (the
//!   level is not on the image, or the cord is not seen there) is
//!   [`SegmentOutcome::OutOfFieldOfView`], never a score of 0.
//! * The patient score is the maximum of the segment scores (with the 3-D level scores, and of
//!   the cord in view above C2/C3 and below C7/T1, [`crate::detect_outputs::score_maps`]); the
//!   maximum of c(y) over every cord row is recorded beside it.
//! * Peak position, in mm along the image's superior-inferior axis: (peak row - origin row) x
//!   pixel size, where the origin is the upper end (first row) of segment C2/C3 when the sample
//!   has one, else the first row of the subject curve (the first cord row);
//!   [`PositionOrigin`] says which.
//! * Extent, in mm: the number of contiguous rows around the peak (the peak included) whose
//!   curve value is above [`ScoringConfig::extent_above`] (default 0, i.e. > 0), times the pixel
//!   size. It is measured along the superior-inferior axis of the image, which the cervical cord
//!   follows to within a few degrees on sagittal images; it may run across segment boundaries.
//!   It is 0 mm when the peak itself is not above that level.
//! * Peak signal ratio: in the sample that gives the peak, the mean image value over the
//!   candidate pixels (filtered map > 0) of the peak row's eroded cord, or over all eroded-cord
//!   pixels of that row when it has no candidate pixel, divided by the median image value over
//!   that sample's whole eroded cord.
//!
//! # 4. Calls without labels
//!
//! For each subject S and segment L the threshold is calibrated on the cohort itself, leaving out
//! every subject of S's group ([`SubjectScores::group`]: the participant, so that no scan is ever
//! calibrated against another copy or session of the same person): R = the scores of segment L
//! of every subject of another group ([`LevelPooling::PerLevel`], default) or of every segment of
//! those subjects ([`LevelPooling::Pooled`]), and
//!
//! ```text
//! z(score)  = (score - median(R)) / (1.4826 x MAD(R)),   MAD(R) = median(|R - median(R)|)
//! threshold = median(R) + z* x 1.4826 x MAD(R),
//! z*        = Φ⁻¹(1 - rate / m)
//! ```
//!
//! with m the number of the subject's scored segments ([`FalsePositiveScope::Patient`], default:
//! Bonferroni, so that a lesion-free patient is called positive with at most the target rate when
//! normal scores are normally distributed) or m = 1 ([`FalsePositiveScope::Level`]). The z is
//! reported beside the score: it puts every level on one scale (the patient's z is its largest).
//! When MAD(R) = 0 (more than half the reference scores equal), the spread is 1.2533 x
//! mean(|R - median(R)|) instead (the same normal-consistent estimate of the standard deviation);
//! when that is 0 too, the level is indeterminate (`reference_without_spread`).
//!
//! **Scores of exactly 0** (a level without a single voxel above its expected signal) are a point
//! mass, not the low end of a normal: with a cord mask one voxel small, 70 of 160 level scores of
//! the leave-host-out benchmark were 0, the MAD of such a reference shrinks, and a modest score
//! became z = 6 (10 of 27 lesion-free patients called). When R holds zeros, their share p0 is
//! counted, the median and MAD are those of the scores above 0 (R+), and
//!
//! ```text
//! z(score > 0) = Φ⁻¹(1 - (1 - p0) x (1 - Φ((score - median(R+)) / (1.4826 x MAD(R+)))))
//! z(0)         = Φ⁻¹(p0 / 2)                               (the middle of the point mass)
//! threshold    = max(0, median(R+) + Φ⁻¹(1 - rate / (m (1 - p0))) x 1.4826 x MAD(R+))
//! ```
//!
//! so z is still the normal quantile of the score's tail probability under the reference and
//! meets z* at the threshold (`reference_null.rs`). With no zero in R this is the formula above,
//! to the bit. R+ needs the minimum number of reference scores (10 by default); with fewer the level is
//! indeterminate (`too_few_reference_values`). A fixed threshold, learnt on a labelled set,
//! can replace the calibration ([`Threshold::Fixed`]). Φ⁻¹ is Acklam's rational approximation
//! ([`inverse_normal_cdf`], relative error < 1.2e-9).
//!
//! With [`ReferenceScores::Negative`] (default), median(R) and MAD(R) (of R+ when R holds zeros)
//! are then computed once more on the scores of R at or below the threshold they give ([`robust_centre_spread_below`], with
//! z* but at least 2): other patients' lesions are all on the high side of R, and left in they
//! raise the median and widen the MAD, so every threshold (on the leave-host-out benchmark, 44 of
//! 160 levels carried a lesion and the calls found under half of them with no false level;
//! [`ReferenceScores::All`] keeps every score).
//!
//! Each segment call, in this order:
//! 1. **out of field of view** when the segment has no score;
//! 2. **indeterminate** when the segment's mean epistemic uncertainty (mean EU over the
//!    eroded-cord pixels of its rows) is above the cohort's limit (median + 3 x 1.4826 x MAD of
//!    the other groups' segment EU, same pooling) **and** its z lies within 1 of z*
//!    ([`UncertaintyGate::NearThreshold`], default): high EU withholds only a call it could turn,
//!    so a whole host unlike the training scans is not muted. [`UncertaintyGate::RobustZ`] and
//!    [`UncertaintyGate::Percentile`] withhold whenever EU is high;
//! 3. **indeterminate** when fewer than 10 reference scores (configurable) exist to calibrate
//!    the threshold;
//! 4. **positive** when the score is strictly above the threshold, **negative** otherwise.
//!
//! The cord in view above the first level and below the last ([`OutsideRegion`])
//! is called the same way, the EU gate included (its mean EU over the eroded cord of its rows
//! against the same reference EU as the levels'), and counts in m: a lesion there makes the
//! patient positive without a level of its own. (Without the gate, the upper cord of a host unlike
//! the training scans, its EU ten times the limit, called every lesion-free copy of that host at z
//! 3.2-3.5 against z* 2.50 with one adapted model of three on the leave-host-out benchmark: the
//! gate is the levels' own rule, and a region the model is unsure of is not called on a z near
//! the threshold.) With [`LevelPooling::Pooled`] its reference is the levels' own R
//! (every segment of the other groups, none set aside: the cord's ends carry bright spots the
//! levels do not, such as the truncation line of a thin upper cord; against the levels' reduced
//! reference the upper cord of one host called all 4 of its lesion-free copies on the benchmark
//! with each of three adapted models, against 1, 4 and 0 of 4), so that its z is on the levels'
//! scale, after the region's offset is subtracted from its score ([`outside_offset`]): the
//! median, over the other groups' subjects scoring the region (at least
//! [`MIN_OFFSET_SUBJECTS`]), of their region's score less the median of their own levels'
//! scores above 0, never below 0. Some adapted models map the upper cord (C1-C2 up to the brainstem)
//! higher than any level in every host, by as much as a faint lesion: 3 of 9 lesion-free patients
//! of the leave-host-out benchmark, and 3 of 5 in the demo, were called there. Taken within each
//! subject the offset leaves out a host whose whole map runs high, and a lesion in the region
//! still stands out from it as a level's would. With
//! [`LevelPooling::PerLevel`] it is the same region of the other groups. (The ends of the cord in
//! view differ from host to host, the brainstem junction above, the field of view's edge below:
//! against only the same region of two reference hosts, one host's upper cord reached z = 12 in
//! every copy and a nearly empty region below the levels z = 28, on the leave-host-out
//! benchmark.)
//!
//! The patient call is **positive** when any segment or outside region is positive; otherwise **negative** when at
//! least one segment is negative (indeterminate segments then count as not positive, and their
//! number is reported beside the call); otherwise (every segment out of field of view or
//! indeterminate) **not assessed**.
//!
//! Segment scores by default come from [`crate::level_scores`] (the anomaly map over the cord
//! eroded in 3-D), not the curve peak of section 3; [`crate::detect_outputs::score_maps`] puts
//! them in place.
//!
//! # Files
//!
//! The statistics (percentiles, median, MAD, robust centre and spread, Φ⁻¹) are [`crate::stats`]
//! and the plane geometry (the plane shape, 3 x 3 erosion, 8-connected labels, smoothing)
//! [`crate::plane`], both re-exported here; `candidates.rs`: section 1; `curve.rs`:
//! section 2; `segments.rs`: section 3; `calls.rs`: section 4 (its tests in `calls_tests.rs`; the
//! reference's model with its zeros in `reference_null.rs`); `level_table.rs`: the per-level
//! CSV rows; `outside.rs`: the cord outside the levels ([`OutsideRegion`], [`OutsideScore`]).
//! Every public item is re-exported here: `u2ad_core::scoring::X` is the path to use.

mod calls;
mod candidates;
mod curve;
mod level_table;
mod outside;
mod reference_null;
mod segments;
#[cfg(test)]
mod test_fixtures;

pub use calls::{
    call_cohort, outside_offset, CallConfig, FalsePositiveScope, IndeterminateReason, LevelPooling, PatientCall, ReferenceScores,
    RegionDecision, SegmentCall, SegmentDecision, SubjectDecision, Threshold, UncertaintyGate, MIN_OFFSET_SUBJECTS, z_for_false_positive_rate,
};
pub use candidates::{anomaly_candidates, anomaly_map, smoothed_reconstruction, CandidateComponent, CandidateFilter, CandidateMap, Polarity};
pub use curve::{row_curve, subject_curve, CurveConfig, RowStatistic, SliceMaps, SliceSelection, SubjectCurve};
pub use level_table::{level_rows, LevelRow};
pub use outside::{OutsideRegion, OutsideScore};
// Statistics and plane geometry live in crate::stats and crate::plane (they serve other steps
// too); every path under scoring:: stays.
pub use crate::plane::{erode_3x3, gaussian_smooth, label_components_8, ComponentLabels, PlaneShape, SAMPLE_PIXEL_MM};
pub(crate) use segments::peak_signal_ratio;
pub use segments::{
    score_subject, PositionOrigin, ScoringConfig, SegmentOutcome, SegmentPeak, SegmentScore, SubjectScores,
};
pub use crate::stats::{
    inverse_normal_cdf, median, median_absolute_deviation, percentile, percentile_of_sorted, robust_centre_spread,
    robust_centre_spread_below, robust_upper_limit, MAD_TO_SD, MEAN_ABSOLUTE_DEVIATION_TO_SD,
};

/// Errors of a scoring or calibration configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScoringError {
    #[error("invalid scoring configuration: {0}")]
    InvalidConfig(String),
}
