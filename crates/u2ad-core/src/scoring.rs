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
//! * The patient score is the maximum of the segment scores; the maximum of c(y) over every cord
//!   row (including rows above C2/C3 and below C7/T1) is recorded beside it.
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
//! when that is 0 too, the threshold is the median. A fixed threshold, learnt on a labelled set,
//! can replace the calibration ([`Threshold::Fixed`]). Φ⁻¹ is Acklam's rational approximation
//! ([`inverse_normal_cdf`], relative error < 1.2e-9).
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
//! The cord in view above the first level and below the last ([`crate::level_scores::OutsideRegion`])
//! is called the same way against the same region of the other groups (no EU gate), and counts
//! in m: a lesion there makes the patient positive without a level of its own.
//!
//! The patient call is **positive** when any segment or outside region is positive; otherwise **negative** when at
//! least one segment is negative (indeterminate segments then count as not positive, and their
//! number is reported beside the call); otherwise (every segment out of field of view or
//! indeterminate) **not assessed**.
//!
//! Segment scores by default come from [`crate::level_scores`] (the anomaly map over the cord
//! eroded in 3-D), not the curve peak of section 3; [`crate::detect_outputs::score_maps`] puts
//! them in place.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::dataset::SAMPLE_SIZE;
use crate::level_scores::{OutsideRegion, OutsideScore};
use crate::levels::DiscLevel;

/// Pixel size of a prepared sample, in mm (200 mm field of view over 256 pixels).
pub const SAMPLE_PIXEL_MM: f64 = 200.0 / SAMPLE_SIZE as f64;

/// 1 / Φ⁻¹(3/4): scales a MAD to a normal-consistent standard deviation.
pub const MAD_TO_SD: f64 = 1.4826;
/// sqrt(π / 2): scales a mean absolute deviation to a normal-consistent standard deviation.
pub const MEAN_ABSOLUTE_DEVIATION_TO_SD: f64 = 1.2533;

/// Errors of a scoring or calibration configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScoringError {
    #[error("invalid scoring configuration: {0}")]
    InvalidConfig(String),
}

/// Shape of a row-major 2-D map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaneShape {
    pub rows: usize,
    pub cols: usize,
}

impl PlaneShape {
    /// A prepared sample: 256 x 256.
    pub const SAMPLE: PlaneShape = PlaneShape { rows: SAMPLE_SIZE, cols: SAMPLE_SIZE };

    pub fn pixels(self) -> usize {
        self.rows * self.cols
    }

    pub(crate) fn check(self, len: usize, what: &str) {
        assert_eq!(len, self.pixels(), "{what}: {len} values for a {} x {} plane", self.rows, self.cols);
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics shared with the metrics
// ---------------------------------------------------------------------------------------------

/// The `percent`-th percentile of finite `values` by numpy's default method (linear interpolation
/// between order statistics at index (n - 1) x percent / 100, with numpy's two-sided lerp).
/// `None` for no values or a percent outside [0, 100].
pub fn percentile(values: &[f64], percent: f64) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    percentile_of_sorted(&sorted, percent)
}

/// As [`percentile`], for values already sorted ascending.
pub fn percentile_of_sorted(sorted: &[f64], percent: f64) -> Option<f64> {
    if sorted.is_empty() || !(0.0..=100.0).contains(&percent) {
        return None;
    }
    let n = sorted.len();
    let virtual_index = (n - 1) as f64 * (percent / 100.0);
    let below = virtual_index.floor();
    let gamma = virtual_index - below;
    let below = below as usize;
    let above = (below + 1).min(n - 1);
    let (a, b) = (sorted[below], sorted[above]);
    let difference = b - a;
    Some(if gamma >= 0.5 { b - difference * (1.0 - gamma) } else { a + difference * gamma })
}

/// Median (numpy's `median`: the mean of the two middle values for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    percentile(values, 50.0)
}

/// Median absolute deviation from the median (unscaled).
pub fn median_absolute_deviation(values: &[f64]) -> Option<f64> {
    let centre = median(values)?;
    let deviations: Vec<f64> = values.iter().map(|v| (v - centre).abs()).collect();
    median(&deviations)
}

/// Robust centre and spread: the median, and 1.4826 x MAD, or, when the MAD is 0, 1.2533 x the
/// mean absolute deviation from the median. `None` for no values.
pub fn robust_centre_spread(values: &[f64]) -> Option<(f64, f64)> {
    let centre = median(values)?;
    let mad = median_absolute_deviation(values)?;
    let spread = if mad > 0.0 {
        MAD_TO_SD * mad
    } else {
        MEAN_ABSOLUTE_DEVIATION_TO_SD * values.iter().map(|v| (v - centre).abs()).sum::<f64>() / values.len() as f64
    };
    Some((centre, spread))
}

/// Robust upper limit median + z x spread ([`robust_centre_spread`]). `None` for no values.
pub fn robust_upper_limit(values: &[f64], z: f64) -> Option<f64> {
    robust_centre_spread(values).map(|(centre, spread)| centre + z * spread)
}

/// Φ⁻¹(p), the standard normal quantile, by Acklam's rational approximation (relative error
/// below 1.15e-9 over (0, 1)). `None` outside the open interval (0, 1).
pub fn inverse_normal_cdf(p: f64) -> Option<f64> {
    if !(p > 0.0 && p < 1.0) {
        return None;
    }
    const A: [f64; 6] = [
        -3.969683028665376e+01,
        2.209460984245205e+02,
        -2.759285104469687e+02,
        1.38357751867269e+02,
        -3.066479806614716e+01,
        2.506628277459239e+00,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e+01,
        1.615858368580409e+02,
        -1.556989798598866e+02,
        6.680131188771972e+01,
        -1.328068155288572e+01,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-03,
        -3.223964580411365e-01,
        -2.400758277161838e+00,
        -2.549732539343734e+00,
        4.374664141464968e+00,
        2.938163982698783e+00,
    ];
    const D: [f64; 4] = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00];
    const P_LOW: f64 = 0.02425;
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    Some(if p < P_LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p <= 1.0 - P_LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    })
}

/// z = Φ⁻¹(1 - rate): the one-sided normal cut-off with the given false-positive rate.
pub fn z_for_false_positive_rate(rate: f64) -> Result<f64, ScoringError> {
    if !(rate > 0.0 && rate < 1.0) {
        return Err(ScoringError::InvalidConfig(format!("target false-positive rate {rate} is not in (0, 1)")));
    }
    Ok(inverse_normal_cdf(1.0 - rate).expect("1 - rate is in (0, 1)"))
}

// ---------------------------------------------------------------------------------------------
// 1. Anomaly candidates
// ---------------------------------------------------------------------------------------------

/// Binary erosion by a 3 x 3 square; pixels outside the plane count as background (as
/// `scipy.ndimage.binary_erosion(mask, structure=np.ones((3, 3)))`), so the border rows and
/// columns are always eroded. Returns 0/1.
pub fn erode_3x3(mask: &[u8], shape: PlaneShape) -> Vec<u8> {
    shape.check(mask.len(), "mask");
    let (rows, cols) = (shape.rows, shape.cols);
    let mut eroded = vec![0u8; mask.len()];
    if rows < 3 || cols < 3 {
        return eroded;
    }
    for row in 1..rows - 1 {
        for col in 1..cols - 1 {
            let inside = (row - 1..=row + 1).all(|r| (col - 1..=col + 1).all(|c| mask[r * cols + c] != 0));
            eroded[row * cols + col] = u8::from(inside);
        }
    }
    eroded
}

/// The 8-connected components of a binary plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentLabels {
    /// Per pixel: 0 background, 1..=count the component.
    pub labels: Vec<u32>,
    pub count: u32,
}

/// Labels the 8-connected components of `foreground`, numbering them 1, 2, … in the raster order
/// of their first pixel (as cv2 and scipy do); 0 is background.
/// Hand-written: a 2-D flood fill is 20 lines, and ndarray-ndimage labels 3-D arrays only.
pub fn label_components_8(foreground: &[bool], shape: PlaneShape) -> ComponentLabels {
    shape.check(foreground.len(), "foreground");
    let (rows, cols) = (shape.rows as isize, shape.cols as isize);
    let mut labels = vec![0u32; foreground.len()];
    let mut count = 0u32;
    let mut stack = Vec::new();
    for start in 0..foreground.len() {
        if !foreground[start] || labels[start] != 0 {
            continue;
        }
        count += 1;
        labels[start] = count;
        stack.push(start);
        while let Some(pixel) = stack.pop() {
            let (row, col) = ((pixel / shape.cols) as isize, (pixel % shape.cols) as isize);
            for dr in -1..=1 {
                for dc in -1..=1 {
                    let (r, c) = (row + dr, col + dc);
                    if r < 0 || c < 0 || r >= rows || c >= cols {
                        continue;
                    }
                    let neighbour = (r * cols + c) as usize;
                    if foreground[neighbour] && labels[neighbour] == 0 {
                        labels[neighbour] = count;
                        stack.push(neighbour);
                    }
                }
            }
        }
    }
    ComponentLabels { labels, count }
}

/// Which deviations from the reconstruction make the anomaly map that detection scores.
///
/// The paper's aleatoric uncertainty is `AU = |image − mean reconstruction|`: it is as large
/// where the reconstruction is too bright as where the image is. A T2 hyperintensity is by
/// definition brighter than the expected cord, and an imperfect model's commonest error (the
/// dark cord reconstructed a little too bright, towards the surrounding CSF) has the other sign,
/// so u2ad scores the hyperintense side only by default (a departure from the paper):
/// `anomaly = AU` where `image > mean`, else 0. [`Polarity::Both`] is the paper's map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Polarity {
    /// Only pixels brighter than their reconstruction (T2 hyperintensities).
    #[default]
    Hyperintense,
    /// Both signs: the paper's `|image − mean reconstruction|`.
    Both,
}

impl Polarity {
    /// The anomaly map from the image, the mean reconstruction and `AU = |image − mean|`.
    pub fn anomaly(self, image: &[f32], mean: &[f32], au: &[f32]) -> Vec<f32> {
        match self {
            Polarity::Both => au.to_vec(),
            Polarity::Hyperintense => image.iter().zip(mean).zip(au).map(|((&x, &m), &a)| if x > m { a } else { 0.0 }).collect(),
        }
    }
}

/// Settings of [`anomaly_candidates`]; the defaults are the reference's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CandidateFilter {
    /// Percentile (0-100) of the nonzero cord AU above which pixels are kept.
    pub percentile: f64,
    /// Components with fewer pixels are dropped.
    pub min_area_px: usize,
    /// Number of best components kept.
    pub top_components: usize,
}

impl Default for CandidateFilter {
    fn default() -> Self {
        CandidateFilter { percentile: 90.0, min_area_px: 2, top_components: 3 }
    }
}

/// One kept component of the filtered map.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CandidateComponent {
    pub area_px: usize,
    pub mean_au: f64,
    pub sum_au: f64,
    /// mean_au x sum_au.
    pub score: f64,
    /// Most superior and most inferior rows of the component.
    pub first_row_px: usize,
    pub last_row_px: usize,
}

/// The filtered AU map of one sample and what was kept.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateMap {
    /// AU on the kept components' pixels, 0 elsewhere.
    pub filtered_au: Vec<f32>,
    /// The percentile threshold t (`None` when the cord AU has no nonzero value).
    pub threshold_au: Option<f64>,
    /// Kept components, best first.
    pub components: Vec<CandidateComponent>,
}

impl CandidateMap {
    /// Whether pixel `index` belongs to a kept component.
    pub fn is_candidate(&self, index: usize) -> bool {
        self.filtered_au[index] != 0.0
    }
}

/// The reference's `process_error` (module docs, section 1): the AU of the eroded cord above its
/// percentile, in the best `top_components` 8-connected components of at least `min_area_px`.
pub fn anomaly_candidates(au: &[f32], cord_eroded: &[u8], shape: PlaneShape, filter: &CandidateFilter) -> CandidateMap {
    shape.check(au.len(), "AU map");
    shape.check(cord_eroded.len(), "eroded cord mask");
    let cord_au: Vec<f64> =
        au.iter().zip(cord_eroded).map(|(&v, &m)| if m != 0 { f64::from(v) } else { 0.0 }).collect();
    let nonzero: Vec<f64> = cord_au.iter().copied().filter(|&v| v != 0.0).collect();
    let Some(threshold_au) = percentile(&nonzero, filter.percentile) else {
        return CandidateMap { filtered_au: vec![0.0; au.len()], threshold_au: None, components: Vec::new() };
    };
    let above: Vec<bool> = cord_au.iter().map(|&v| v > threshold_au).collect();
    let ComponentLabels { labels, count } = label_components_8(&above, shape);

    struct Accumulator {
        area_px: usize,
        sum_au: f64,
        first_row_px: usize,
        last_row_px: usize,
    }
    let mut accumulators: Vec<Accumulator> =
        (0..count).map(|_| Accumulator { area_px: 0, sum_au: 0.0, first_row_px: usize::MAX, last_row_px: 0 }).collect();
    for (index, &label) in labels.iter().enumerate() {
        if label == 0 {
            continue;
        }
        let acc = &mut accumulators[label as usize - 1];
        let row = index / shape.cols;
        acc.area_px += 1;
        acc.sum_au += cord_au[index];
        acc.first_row_px = acc.first_row_px.min(row);
        acc.last_row_px = acc.last_row_px.max(row);
    }
    let mut ranked: Vec<(u32, CandidateComponent)> = accumulators
        .iter()
        .enumerate()
        .filter(|(_, acc)| acc.area_px >= filter.min_area_px)
        .map(|(i, acc)| {
            let mean_au = acc.sum_au / acc.area_px as f64;
            let component = CandidateComponent {
                area_px: acc.area_px,
                mean_au,
                sum_au: acc.sum_au,
                score: mean_au * acc.sum_au,
                first_row_px: acc.first_row_px,
                last_row_px: acc.last_row_px,
            };
            (i as u32 + 1, component)
        })
        .collect();
    // Stable: equal scores keep raster order.
    ranked.sort_by(|a, b| b.1.score.total_cmp(&a.1.score));
    ranked.truncate(filter.top_components);

    let mut filtered_au = vec![0.0f32; au.len()];
    for (index, &label) in labels.iter().enumerate() {
        if label != 0 && ranked.iter().any(|(kept, _)| *kept == label) {
            filtered_au[index] = cord_au[index] as f32;
        }
    }
    CandidateMap {
        filtered_au,
        threshold_au: Some(threshold_au),
        components: ranked.into_iter().map(|(_, component)| component).collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Anomaly curve
// ---------------------------------------------------------------------------------------------

/// How a row of the filtered map is summarised over its eroded-cord pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowStatistic {
    #[default]
    Mean,
    Max,
    Sum,
}

/// Which samples of a subject make up its curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SliceSelection {
    /// Every sample whose eroded cord has at least this many pixels.
    WithCord { min_eroded_cord_px: usize },
    /// The one sample with the largest eroded cord (mid-sagittal).
    LargestCord,
}

impl Default for SliceSelection {
    fn default() -> Self {
        SliceSelection::WithCord { min_eroded_cord_px: 100 }
    }
}

/// Settings of the anomaly curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CurveConfig {
    pub row_statistic: RowStatistic,
    pub slices: SliceSelection,
    /// Centred moving average over 2 x this + 1 rows; 0 is off.
    pub smoothing_half_window_rows: usize,
}

/// Per-row statistic of `filtered_au` over the eroded-cord pixels of each row; `None` for rows
/// without eroded cord.
pub fn row_curve(
    filtered_au: &[f32],
    cord_eroded: &[u8],
    shape: PlaneShape,
    statistic: RowStatistic,
) -> Vec<Option<f64>> {
    shape.check(filtered_au.len(), "filtered AU map");
    shape.check(cord_eroded.len(), "eroded cord mask");
    (0..shape.rows)
        .map(|row| {
            let span = row * shape.cols..(row + 1) * shape.cols;
            let values: Vec<f64> = filtered_au[span.clone()]
                .iter()
                .zip(&cord_eroded[span])
                .filter(|(_, &m)| m != 0)
                .map(|(&v, _)| f64::from(v))
                .collect();
            if values.is_empty() {
                return None;
            }
            Some(match statistic {
                RowStatistic::Mean => values.iter().sum::<f64>() / values.len() as f64,
                RowStatistic::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                RowStatistic::Sum => values.iter().sum(),
            })
        })
        .collect()
}

/// The maps of one sagittal sample of a subject, as scoring needs them.
#[derive(Debug, Clone, Copy)]
pub struct SliceMaps<'a> {
    /// Preprocessed image (for the peak signal ratio).
    pub image: &'a [f32],
    /// The filtered AU map ([`anomaly_candidates`]).
    pub filtered_au: &'a [f32],
    /// The cord mask eroded by [`erode_3x3`].
    pub cord_eroded: &'a [u8],
    /// Epistemic uncertainty map, when the segment EU should be computed.
    pub eu: Option<&'a [f32]>,
}

/// A subject's anomaly curve.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubjectCurve {
    /// c(y) per row; `None` where no selected sample has eroded cord.
    pub values: Vec<Option<f64>>,
    /// Per row, the index (into the given samples) of the sample that gives the maximum, before
    /// smoothing (ties: the first sample).
    pub source_slice: Vec<Option<usize>>,
    /// Indices of the samples used.
    pub slices_used: Vec<usize>,
}

fn eroded_cord_px(slice: &SliceMaps<'_>) -> usize {
    slice.cord_eroded.iter().filter(|&&m| m != 0).count()
}

fn select_slices(slices: &[SliceMaps<'_>], selection: SliceSelection) -> Vec<usize> {
    match selection {
        SliceSelection::WithCord { min_eroded_cord_px } => (0..slices.len())
            .filter(|&i| {
                let px = eroded_cord_px(&slices[i]);
                px > 0 && px >= min_eroded_cord_px
            })
            .collect(),
        SliceSelection::LargestCord => {
            let mut best: Option<(usize, usize)> = None;
            for (i, slice) in slices.iter().enumerate() {
                let px = eroded_cord_px(slice);
                if px > 0 && best.is_none_or(|(_, best_px)| px > best_px) {
                    best = Some((i, px));
                }
            }
            best.map(|(i, _)| vec![i]).unwrap_or_default()
        }
    }
}

/// The subject curve: maximum over the selected samples of their row curves, then the optional
/// moving average (module docs, section 2).
pub fn subject_curve(slices: &[SliceMaps<'_>], shape: PlaneShape, config: &CurveConfig) -> SubjectCurve {
    let slices_used = select_slices(slices, config.slices);
    let mut values: Vec<Option<f64>> = vec![None; shape.rows];
    let mut source_slice: Vec<Option<usize>> = vec![None; shape.rows];
    for &index in &slices_used {
        let slice = &slices[index];
        for (row, value) in
            row_curve(slice.filtered_au, slice.cord_eroded, shape, config.row_statistic).into_iter().enumerate()
        {
            if let Some(v) = value {
                if values[row].is_none_or(|best| v > best) {
                    values[row] = Some(v);
                    source_slice[row] = Some(index);
                }
            }
        }
    }
    let h = config.smoothing_half_window_rows;
    if h > 0 {
        values = (0..shape.rows)
            .map(|row| {
                values[row]?;
                let window = &values[row.saturating_sub(h)..(row + h + 1).min(shape.rows)];
                let present: Vec<f64> = window.iter().flatten().copied().collect();
                Some(present.iter().sum::<f64>() / present.len() as f64)
            })
            .collect();
    }
    SubjectCurve { values, source_slice, slices_used }
}

// ---------------------------------------------------------------------------------------------
// 3. Segment and patient scores
// ---------------------------------------------------------------------------------------------

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
    /// Maximum of the segment scores (`None` when no segment is scored).
    pub patient_score: Option<f64>,
    /// Maximum of the curve over every cord row.
    pub max_over_cord_rows: Option<f64>,
    pub position_origin: Option<PositionOrigin>,
    /// Mean EU over the eroded-cord pixels of each segment's rows in the used samples that have
    /// an EU map (levels without such pixels are absent).
    pub segment_mean_eu: BTreeMap<DiscLevel, f64>,
    /// The participant the scan belongs to: calibration leaves out every subject of the same
    /// group (the subject's own name unless set, e.g. by [`crate::cohort::participant_group`]).
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
    for &index in &curve.slices_used {
        let slice = &slices[index];
        let Some(eu) = slice.eu else { continue };
        for (row, &code) in row_segment.iter().enumerate() {
            let Some(level) = DiscLevel::from_code(code) else { continue };
            let span = row * shape.cols..(row + 1) * shape.cols;
            for (&value, _) in eu[span.clone()].iter().zip(&slice.cord_eroded[span]).filter(|(_, &m)| m != 0) {
                let entry = eu_sums.entry(level).or_insert((0.0, 0));
                entry.0 += f64::from(value);
                entry.1 += 1;
            }
        }
    }
    let segment_mean_eu = eu_sums.into_iter().map(|(level, (sum, n))| (level, sum / n as f64)).collect();

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
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Calls without labels
// ---------------------------------------------------------------------------------------------

/// Which reference values calibrate a segment's threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LevelPooling {
    /// The same level of the other subjects.
    #[default]
    PerLevel,
    /// Every level of the other subjects.
    Pooled,
}

/// The score threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Threshold {
    /// median + z x 1.4826 x MAD of the other subjects' scores, z = Φ⁻¹(1 - rate).
    Cohort { target_false_positive_rate: f64 },
    /// A fixed threshold (e.g. learnt on a labelled set).
    Fixed(f64),
}

/// When a segment's epistemic uncertainty makes its call indeterminate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UncertaintyGate {
    Off,
    /// Above median + z x 1.4826 x MAD of the other subjects' segment EU.
    RobustZ {
        z: f64,
    },
    /// Above this percentile (0-100) of the other subjects' segment EU.
    Percentile {
        percent: f64,
    },
    /// EU above median + z x 1.4826 x MAD of the other subjects' segment EU **and** a score within
    /// `margin` robust standard deviations of the threshold: EU only withholds a call it could
    /// change, so a host unlike the training scans is not muted whole.
    NearThreshold {
        z: f64,
        margin: f64,
    },
}

/// What the target false-positive rate applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FalsePositiveScope {
    /// Each patient: every level is tested at rate / (the subject's scored levels), Bonferroni,
    /// so a lesion-free patient is called positive with at most the target rate.
    #[default]
    Patient,
    /// Each level on its own (a patient with six levels is then called positive more often).
    Level,
}

/// Settings of [`call_cohort`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CallConfig {
    pub threshold: Threshold,
    /// Pooling of the reference scores and of the reference EU.
    pub pooling: LevelPooling,
    /// Fewer reference values than this: no cohort threshold (indeterminate) and no EU gate.
    pub min_reference_values: usize,
    pub uncertainty_gate: UncertaintyGate,
    pub scope: FalsePositiveScope,
}

impl Default for CallConfig {
    fn default() -> Self {
        CallConfig {
            threshold: Threshold::Cohort { target_false_positive_rate: 0.05 },
            pooling: LevelPooling::PerLevel,
            min_reference_values: 10,
            uncertainty_gate: UncertaintyGate::NearThreshold { z: 3.0, margin: 1.0 },
            scope: FalsePositiveScope::Patient,
        }
    }
}

/// Why a segment is indeterminate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IndeterminateReason {
    HighEpistemicUncertainty,
    TooFewReferenceValues,
}

/// The call of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "call", content = "reason", rename_all = "snake_case")]
pub enum SegmentCall {
    Positive,
    Negative,
    Indeterminate(IndeterminateReason),
    OutOfFieldOfView,
}

impl SegmentCall {
    /// "positive", "negative", "indeterminate", "out_of_fov".
    pub fn label(self) -> &'static str {
        match self {
            SegmentCall::Positive => "positive",
            SegmentCall::Negative => "negative",
            SegmentCall::Indeterminate(_) => "indeterminate",
            SegmentCall::OutOfFieldOfView => "out_of_fov",
        }
    }
}

/// The call of one patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PatientCall {
    Positive,
    Negative,
    /// No segment is positive or negative.
    NotAssessed,
}

/// The decision on one segment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentDecision {
    pub level: DiscLevel,
    pub score: Option<f64>,
    /// The score as a robust z against the reference scores, (score - median) / spread: what the
    /// threshold compares, on one scale for every level (`None` with a fixed threshold).
    pub z: Option<f64>,
    pub threshold: Option<f64>,
    pub mean_eu: Option<f64>,
    /// The EU above which the segment is indeterminate (`None`: gate off or too few references).
    pub eu_limit: Option<f64>,
    pub call: SegmentCall,
}

/// The decisions on one subject.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubjectDecision {
    pub subject: String,
    pub segments: Vec<SegmentDecision>,
    pub patient_call: PatientCall,
    pub indeterminate_segments: usize,
    /// The largest segment z (the patient's score on the calibrated scale).
    pub patient_z: Option<f64>,
    /// The z above which a segment is positive (Bonferroni-corrected for [`FalsePositiveScope::Patient`]).
    pub z_threshold: Option<f64>,
    /// The cord above and below the levels, called like a segment (without the EU gate).
    pub outside_levels: Vec<RegionDecision>,
}

/// The decision on the cord outside the levels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionDecision {
    pub region: OutsideRegion,
    pub score: f64,
    pub z: Option<f64>,
    pub threshold: Option<f64>,
    pub call: SegmentCall,
}

fn reference_values<'a>(
    others: impl Iterator<Item = &'a SubjectScores>,
    level: DiscLevel,
    pooling: LevelPooling,
    value: impl Fn(&SubjectScores, DiscLevel) -> Option<f64>,
) -> Vec<f64> {
    let mut values = Vec::new();
    for other in others {
        match pooling {
            LevelPooling::PerLevel => values.extend(value(other, level)),
            LevelPooling::Pooled => values.extend(DiscLevel::ALL.into_iter().filter_map(|l| value(other, l))),
        }
    }
    values
}

/// Calls every segment and patient of a cohort (module docs, section 4), each subject's
/// thresholds calibrated on the subjects of other groups ([`SubjectScores::group`]: never on
/// another scan of the same person).
pub fn call_cohort(cohort: &[SubjectScores], config: &CallConfig) -> Result<Vec<SubjectDecision>, ScoringError> {
    let rate = match config.threshold {
        Threshold::Cohort { target_false_positive_rate } => {
            z_for_false_positive_rate(target_false_positive_rate)?;
            Some(target_false_positive_rate)
        }
        Threshold::Fixed(value) if !value.is_finite() => {
            return Err(ScoringError::InvalidConfig(format!("fixed threshold {value} is not finite")))
        }
        Threshold::Fixed(_) => None,
    };
    match config.uncertainty_gate {
        UncertaintyGate::Percentile { percent } if !(0.0..=100.0).contains(&percent) => {
            return Err(ScoringError::InvalidConfig(format!("EU percentile {percent} is not in [0, 100]")));
        }
        UncertaintyGate::NearThreshold { margin, .. } if !(margin >= 0.0) => {
            return Err(ScoringError::InvalidConfig(format!("EU gate margin {margin} is not >= 0")));
        }
        _ => {}
    }
    let score_of = |s: &SubjectScores, level: DiscLevel| s.segment(level).and_then(SegmentScore::score);
    let eu_of = |s: &SubjectScores, level: DiscLevel| s.segment_mean_eu.get(&level).copied();
    let enough = |reference: &[f64]| reference.len() >= config.min_reference_values.max(1);

    Ok(cohort
        .iter()
        .map(|subject| {
            let others = || cohort.iter().filter(move |other| other.group != subject.group);
            let scored_levels = DiscLevel::ALL.into_iter().filter(|&l| score_of(subject, l).is_some()).count()
                + subject.outside_levels.len();
            // One level's rate: the target for the level, or shared by the patient's levels.
            let z_threshold = rate.map(|rate| match config.scope {
                FalsePositiveScope::Level => z_for_false_positive_rate(rate),
                FalsePositiveScope::Patient => z_for_false_positive_rate(rate / scored_levels.max(1) as f64),
            });
            let z_threshold = z_threshold.transpose().expect("the rate was checked above");
            let segments: Vec<SegmentDecision> = DiscLevel::ALL
                .into_iter()
                .map(|level| {
                    let score = score_of(subject, level);
                    let mean_eu = eu_of(subject, level);
                    let (threshold, z) = match (config.threshold, z_threshold) {
                        (Threshold::Fixed(value), _) => (Some(value), None),
                        (_, Some(z_cut)) => {
                            let reference = reference_values(others(), level, config.pooling, score_of);
                            match robust_centre_spread(&reference).filter(|_| enough(&reference)) {
                                Some((centre, spread)) => (
                                    Some(centre + z_cut * spread),
                                    score.map(|s| robust_z(s, centre, spread)),
                                ),
                                None => (None, None),
                            }
                        }
                        (_, None) => (None, None),
                    };
                    let eu_reference = || reference_values(others(), level, config.pooling, eu_of);
                    let eu_limit = match config.uncertainty_gate {
                        UncertaintyGate::Off => None,
                        UncertaintyGate::RobustZ { z } | UncertaintyGate::NearThreshold { z, .. } => {
                            Some(eu_reference()).filter(|r| enough(r)).and_then(|r| robust_upper_limit(&r, z))
                        }
                        UncertaintyGate::Percentile { percent } => {
                            Some(eu_reference()).filter(|r| enough(r)).and_then(|r| percentile(&r, percent))
                        }
                    };
                    let high_eu = matches!((mean_eu, eu_limit), (Some(eu), Some(limit)) if eu > limit);
                    let withheld = high_eu
                        && match config.uncertainty_gate {
                            // No z (a fixed threshold, or too few references): nothing to be near.
                            UncertaintyGate::NearThreshold { margin, .. } => match (z, z_threshold) {
                                (Some(z), Some(cut)) => (z - cut).abs() <= margin,
                                _ => false,
                            },
                            _ => true,
                        };
                    let call = match score {
                        None => SegmentCall::OutOfFieldOfView,
                        Some(_) if withheld => SegmentCall::Indeterminate(IndeterminateReason::HighEpistemicUncertainty),
                        Some(score) => match threshold {
                            None => SegmentCall::Indeterminate(IndeterminateReason::TooFewReferenceValues),
                            Some(t) if score > t => SegmentCall::Positive,
                            Some(_) => SegmentCall::Negative,
                        },
                    };
                    SegmentDecision { level, score, z, threshold, mean_eu, eu_limit, call }
                })
                .collect();
            let outside_levels: Vec<RegionDecision> = subject
                .outside_levels
                .iter()
                .map(|outside| {
                    let reference: Vec<f64> = others()
                        .flat_map(|o| o.outside_levels.iter().filter(|r| r.region == outside.region).map(|r| r.score))
                        .collect();
                    let calibrated = match (config.threshold, z_threshold) {
                        (Threshold::Fixed(value), _) => Some((Some(value), None)),
                        (_, Some(z_cut)) => robust_centre_spread(&reference)
                            .filter(|_| enough(&reference))
                            .map(|(centre, spread)| (Some(centre + z_cut * spread), Some(robust_z(outside.score, centre, spread)))),
                        (_, None) => None,
                    };
                    let (threshold, z) = calibrated.unwrap_or((None, None));
                    let call = match threshold {
                        None => SegmentCall::Indeterminate(IndeterminateReason::TooFewReferenceValues),
                        Some(t) if outside.score > t => SegmentCall::Positive,
                        Some(_) => SegmentCall::Negative,
                    };
                    RegionDecision { region: outside.region, score: outside.score, z, threshold, call }
                })
                .collect();
            let indeterminate_segments =
                segments.iter().filter(|s| matches!(s.call, SegmentCall::Indeterminate(_))).count();
            let patient_call = if segments.iter().any(|s| s.call == SegmentCall::Positive)
                || outside_levels.iter().any(|r| r.call == SegmentCall::Positive)
            {
                PatientCall::Positive
            } else if segments.iter().any(|s| s.call == SegmentCall::Negative) {
                PatientCall::Negative
            } else {
                PatientCall::NotAssessed
            };
            let patient_z =
                segments.iter().filter_map(|s| s.z).chain(outside_levels.iter().filter_map(|r| r.z)).reduce(f64::max);
            SubjectDecision {
                subject: subject.subject.clone(),
                segments,
                patient_call,
                indeterminate_segments,
                patient_z,
                z_threshold: match config.threshold {
                    Threshold::Fixed(_) => None,
                    Threshold::Cohort { .. } => z_threshold,
                },
                outside_levels,
            }
        })
        .collect())
}

/// (value - centre) / spread, within ±1e6 (a zero spread gives ±1e6 away from the centre, 0 at it).
fn robust_z(value: f64, centre: f64, spread: f64) -> f64 {
    const LIMIT: f64 = 1e6;
    if spread > 0.0 {
        ((value - centre) / spread).clamp(-LIMIT, LIMIT)
    } else if value > centre {
        LIMIT
    } else if value < centre {
        -LIMIT
    } else {
        0.0
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Per-level table
// ---------------------------------------------------------------------------------------------

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
    //! Reference values come from numpy 2.4 / scipy 1.17 (scipy.ndimage.binary_erosion and label
    //! with a 3 x 3 structure, np.percentile, np.median, scipy.stats.norm.ppf) and from a Python
    //! transcription of the reference's `process_error`, run on the same arrays.

    use super::*;

    #[test]
    fn hyperintense_polarity_keeps_only_pixels_brighter_than_the_reconstruction() {
        let (image, mean) = ([0.5f32, 0.2, 0.7, 0.4], [0.3f32, 0.6, 0.7, 0.1]);
        let au: Vec<f32> = image.iter().zip(&mean).map(|(x, m)| (x - m).abs()).collect();
        let hyper = Polarity::Hyperintense.anomaly(&image, &mean, &au);
        assert_eq!(hyper, vec![au[0], 0.0, 0.0, au[3]]);
        assert_eq!(Polarity::Both.anomaly(&image, &mean, &au), au);
        assert_eq!(Polarity::default(), Polarity::Hyperintense);
    }

    const TOLERANCE: f64 = 1e-9;
    /// Cohort thresholds use Acklam's z (relative error ~1e-9) where the references use scipy's.
    const Z_TOLERANCE: f64 = 1e-10;

    fn close(actual: f64, expected: f64, tolerance: f64) {
        assert!((actual - expected).abs() <= tolerance, "{actual} != {expected} (tolerance {tolerance})");
    }

    #[test]
    fn erosion_matches_scipy() {
        let shape = PlaneShape { rows: 6, cols: 7 };
        #[rustfmt::skip]
        let mask: Vec<u8> = vec![
            0, 1, 1, 1, 1, 0, 0,
            1, 1, 1, 1, 1, 1, 0,
            1, 1, 1, 1, 1, 1, 1,
            1, 1, 1, 1, 1, 1, 1,
            0, 1, 1, 1, 0, 1, 1,
            0, 0, 1, 1, 1, 1, 1,
        ];
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            0, 0, 0, 0, 0, 0, 0,
            0, 0, 1, 1, 0, 0, 0,
            0, 1, 1, 1, 1, 0, 0,
            0, 0, 1, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(erode_3x3(&mask, shape), expected);
    }

    #[test]
    fn percentile_matches_numpy_linear() {
        let values = [0.3, 0.1, 0.7, 0.2, 0.9, 0.5, 0.4];
        close(percentile(&values, 90.0).unwrap(), 0.78, 1e-12);
        close(percentile(&values, 50.0).unwrap(), 0.4, 1e-12);
        close(percentile(&values, 25.0).unwrap(), 0.25, 1e-12);
        close(percentile(&values, 0.0).unwrap(), 0.1, 0.0);
        close(percentile(&values, 100.0).unwrap(), 0.9, 0.0);
        close(percentile(&values, 33.3).unwrap(), 0.29979999999999996, 1e-15);
        close(median(&[1.0, 2.0, 3.0, 4.0]).unwrap(), 2.5, 0.0);
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&values, 101.0), None);
    }

    #[test]
    fn inverse_normal_cdf_matches_scipy() {
        let cases = [
            (0.5, 0.0),
            (0.95, 1.6448536269514722),
            (0.975, 1.959963984540054),
            (0.999, 3.090232306167813),
            (1e-5, -4.264890793922825),
            (0.02, -2.053748910631823), // lower tail region (p < 0.02425)
            (0.03, -1.880793608151251), // central region
            (0.99, 2.3263478740408408), // upper tail region
        ];
        for (p, expected) in cases {
            let z = inverse_normal_cdf(p).unwrap();
            close(z, expected, 1.2e-9 * expected.abs().max(1.0));
        }
        assert_eq!(inverse_normal_cdf(0.0), None);
        assert_eq!(inverse_normal_cdf(1.0), None);
        assert_eq!(inverse_normal_cdf(f64::NAN), None);
        close(z_for_false_positive_rate(0.05).unwrap(), 1.6448536269514722, 1e-8);
        assert!(z_for_false_positive_rate(0.0).is_err());
    }

    /// The 8 x 10 AU map of the candidate tests: a low background 0.010-0.016 with ties, five
    /// blobs inside the cord (columns 1-8) and two bright pixels outside it.
    fn candidate_fixture() -> (Vec<f32>, Vec<u8>, PlaneShape) {
        let shape = PlaneShape { rows: 8, cols: 10 };
        let mut au = vec![0.0f32; shape.pixels()];
        for row in 0..shape.rows {
            for col in 0..shape.cols {
                au[row * shape.cols + col] = (0.01 + ((row * 8 + col) % 7) as f64 * 0.001) as f32;
            }
        }
        let blobs = [
            ((1, 2), 0.20), // A: two pixels joined diagonally
            ((2, 3), 0.18),
            ((1, 6), 0.15), // B: one pixel
            ((4, 5), 0.12), // C: three pixels
            ((4, 6), 0.11),
            ((5, 5), 0.13),
            ((6, 1), 0.09), // D: two pixels
            ((7, 1), 0.095),
            ((6, 7), 0.10), // E: two pixels
            ((6, 8), 0.10),
            ((3, 0), 0.5), // outside the cord
            ((2, 9), 0.5),
        ];
        for ((row, col), value) in blobs {
            au[row * shape.cols + col] = value as f32;
        }
        let cord: Vec<u8> = (0..shape.pixels()).map(|i| u8::from((1..9).contains(&(i % shape.cols)))).collect();
        (au, cord, shape)
    }

    fn kept_pixels(map: &CandidateMap, shape: PlaneShape) -> Vec<(usize, usize)> {
        (0..shape.pixels()).filter(|&i| map.is_candidate(i)).map(|i| (i / shape.cols, i % shape.cols)).collect()
    }

    #[test]
    fn candidates_match_process_error_at_the_90th_percentile() {
        let (au, cord, shape) = candidate_fixture();
        let map = anomaly_candidates(&au, &cord, shape, &CandidateFilter::default());
        // t is the f32 0.1 itself: the 0.10 pixels of blob E are not above it (strict >); B has
        // one pixel and is dropped.
        close(map.threshold_au.unwrap(), 0.10000000149011612, 1e-12);
        assert_eq!(kept_pixels(&map, shape), vec![(1, 2), (2, 3), (4, 5), (4, 6), (5, 5)]);
        assert_eq!(map.components.len(), 2);
        close(map.components[0].score, 0.0722000038504601, 1e-12);
        close(map.components[0].mean_au, 0.1900000050663948, 1e-12);
        close(map.components[0].sum_au, 0.3800000101327896, 1e-12);
        assert_eq!(
            (map.components[0].area_px, map.components[0].first_row_px, map.components[0].last_row_px),
            (2, 1, 2)
        );
        close(map.components[1].score, 0.04319999806880953, 1e-12);
        assert_eq!(map.components[1].area_px, 3);
        assert_eq!(map.filtered_au[2 * 10 + 3], 0.18f32);
    }

    #[test]
    fn candidates_keep_the_top_components() {
        let (au, cord, shape) = candidate_fixture();
        let filter = CandidateFilter { percentile: 80.0, ..CandidateFilter::default() };
        let map = anomaly_candidates(&au, &cord, shape, &filter);
        close(map.threshold_au.unwrap(), 0.01600000075995922, 1e-12);
        // Four components of >= 2 px; D (score 0.0171) is the fourth and is dropped.
        assert_eq!(kept_pixels(&map, shape), vec![(1, 2), (2, 3), (4, 5), (4, 6), (5, 5), (6, 7), (6, 8)]);
        let scores: Vec<f64> = map.components.iter().map(|c| c.score).collect();
        assert_eq!(scores.len(), 3);
        close(scores[2], 0.020000000596046452, 1e-12);
        // Keeping one-pixel components lets B (0.0225) in above E.
        let filter = CandidateFilter { percentile: 80.0, min_area_px: 1, top_components: 4 };
        let map = anomaly_candidates(&au, &cord, shape, &filter);
        assert!(map.is_candidate(16) && !map.is_candidate(6 * 10 + 1));
        close(map.components[2].score, 0.15f32 as f64 * 0.15f32 as f64, 1e-15);
    }

    #[test]
    fn candidates_of_an_empty_cord_are_empty() {
        let (au, _, shape) = candidate_fixture();
        let map = anomaly_candidates(&au, &vec![0; shape.pixels()], shape, &CandidateFilter::default());
        assert_eq!(map.threshold_au, None);
        assert!(map.components.is_empty() && map.filtered_au.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn eight_connected_labels_follow_raster_order() {
        let shape = PlaneShape { rows: 3, cols: 4 };
        let foreground: Vec<bool> = [0, 0, 1, 0, 1, 0, 0, 1, 0, 1, 0, 1].iter().map(|&v| v == 1).collect();
        let components = label_components_8(&foreground, shape);
        assert_eq!(components.count, 2);
        assert_eq!(components.labels, vec![0, 0, 1, 0, 2, 0, 0, 1, 0, 2, 0, 1]);
    }

    /// Two samples of a 12 x 5 plane (the Python transcription in the report builds the same).
    struct SubjectFixture {
        images: [Vec<f32>; 2],
        filtered: [Vec<f32>; 2],
        cords: [Vec<u8>; 2],
        eus: [Vec<f32>; 2],
        row_segment: Vec<u8>,
    }

    const SUBJECT_SHAPE: PlaneShape = PlaneShape { rows: 12, cols: 5 };

    fn subject_fixture() -> SubjectFixture {
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
        fn slices(&self) -> Vec<SliceMaps<'_>> {
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
    fn row_curve_statistics() {
        let f = subject_fixture();
        let mean = row_curve(&f.filtered[1], &f.cords[1], SUBJECT_SHAPE, RowStatistic::Mean);
        assert_eq!(mean[0], None);
        close(mean[4].unwrap(), 0.30000000447034836, TOLERANCE);
        close(mean[2].unwrap(), 0.0, 0.0);
        let max = row_curve(&f.filtered[1], &f.cords[1], SUBJECT_SHAPE, RowStatistic::Max);
        close(max[4].unwrap(), 0.4000000059604645, TOLERANCE);
        let sum = row_curve(&f.filtered[1], &f.cords[1], SUBJECT_SHAPE, RowStatistic::Sum);
        close(sum[4].unwrap(), 0.6000000089406967, TOLERANCE);
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

    // ---- calls ----------------------------------------------------------------------------

    /// Scores of C2/C3, C3/C4, C4/C5 (None: out of view) and their mean EU; the other levels
    /// are out of view.
    fn cohort_fixture() -> Vec<SubjectScores> {
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
                }
            })
            .collect()
    }

    /// The calls as they were before the participant-level rate and the near-threshold EU gate:
    /// each level at the target rate, high EU always withholds the call.
    fn legacy() -> CallConfig {
        CallConfig {
            uncertainty_gate: UncertaintyGate::RobustZ { z: 3.0 },
            scope: FalsePositiveScope::Level,
            ..CallConfig::default()
        }
    }

    fn calls_of(decision: &SubjectDecision) -> Vec<SegmentCall> {
        decision.segments.iter().take(3).map(|s| s.call).collect()
    }

    const POSITIVE: SegmentCall = SegmentCall::Positive;
    const NEGATIVE: SegmentCall = SegmentCall::Negative;
    const HIGH_EU: SegmentCall = SegmentCall::Indeterminate(IndeterminateReason::HighEpistemicUncertainty);

    #[test]
    fn robust_limit_and_its_zero_mad_fallback() {
        let z = 1.6448536269514722;
        close(robust_upper_limit(&[0.012, 0.011, 0.050, 0.013, 0.009], z).unwrap(), 0.014438659987318254, 1e-12);
        // MAD 0: 1.2533 x mean |x - median| = 1.2533 x 0.006.
        close(robust_upper_limit(&[0.0, 0.0, 0.0, 0.030, 0.0], z).unwrap(), 0.012368970303949681, 1e-12);
        close(robust_upper_limit(&[0.0, 0.0, 0.0], z).unwrap(), 0.0, 0.0);
        close(median_absolute_deviation(&[1.0, 2.0, 4.0, 8.0]).unwrap(), 1.5, 0.0);
    }

    #[test]
    fn cohort_calls_per_level() {
        let cohort = cohort_fixture();
        let config = CallConfig { min_reference_values: 3, ..legacy() };
        let decisions = call_cohort(&cohort, &config).unwrap();
        let thresholds: Vec<f64> = decisions.iter().map(|d| d.segments[0].threshold.unwrap()).collect();
        let expected = [
            0.014438659987318254,
            0.015877319974636504,
            0.016877319974636505,
            0.013438659987318254,
            0.013438659987318254,
            0.014438659987318254,
        ];
        for (actual, expected) in thresholds.iter().zip(expected) {
            close(*actual, expected, Z_TOLERANCE);
        }
        close(decisions[0].segments[1].threshold.unwrap(), 0.023657989980977383, Z_TOLERANCE);
        close(decisions[4].segments[1].threshold.unwrap(), 0.022438659987318255, Z_TOLERANCE);
        // sub-04's C4/C5 reference is all 0: threshold 0 and 0.030 > 0.
        close(decisions[3].segments[2].threshold.unwrap(), 0.0, 0.0);
        close(decisions[0].segments[2].threshold.unwrap(), 0.012368970303949681, Z_TOLERANCE);
        close(decisions[0].segments[0].eu_limit.unwrap(), 0.0015447799999999993, 1e-12);

        assert_eq!(calls_of(&decisions[0]), vec![NEGATIVE, NEGATIVE, NEGATIVE]);
        assert_eq!(calls_of(&decisions[2]), vec![NEGATIVE, POSITIVE, NEGATIVE]);
        assert_eq!(calls_of(&decisions[3]), vec![HIGH_EU, NEGATIVE, POSITIVE]);
        assert_eq!(calls_of(&decisions[4]), vec![NEGATIVE, SegmentCall::OutOfFieldOfView, NEGATIVE]);
        assert!(decisions.iter().all(|d| d.segments[3..].iter().all(|s| s.call == SegmentCall::OutOfFieldOfView)));
        let patients: Vec<PatientCall> = decisions.iter().map(|d| d.patient_call).collect();
        use PatientCall::{Negative as N, Positive as P};
        assert_eq!(patients, vec![N, N, P, P, N, N]);
        assert_eq!(decisions[3].indeterminate_segments, 1);
    }

    #[test]
    fn cohort_calls_pooled_over_levels() {
        let cohort = cohort_fixture();
        let config = CallConfig { min_reference_values: 3, pooling: LevelPooling::Pooled, ..legacy() };
        let decisions = call_cohort(&cohort, &config).unwrap();
        let expected = [
            0.03810592986684165,
            0.03760592986684165,
            0.03200927989854602,
            0.03244793988586427,
            0.033947939885864274,
            0.03810592986684165,
        ];
        for (decision, expected) in decisions.iter().zip(expected) {
            for segment in &decision.segments[..3] {
                close(segment.threshold.unwrap(), expected, Z_TOLERANCE);
            }
        }
        assert_eq!(calls_of(&decisions[2]), vec![NEGATIVE, POSITIVE, NEGATIVE]);
        assert_eq!(calls_of(&decisions[3]), vec![HIGH_EU, NEGATIVE, NEGATIVE]);
        // Indeterminate segments do not make a patient positive.
        assert_eq!((decisions[3].patient_call, decisions[3].indeterminate_segments), (PatientCall::Negative, 1));
    }

    #[test]
    fn fixed_threshold_and_percentile_gate() {
        let cohort = cohort_fixture();
        let config = CallConfig {
            threshold: Threshold::Fixed(0.02),
            uncertainty_gate: UncertaintyGate::Off,
            min_reference_values: 3,
            ..legacy()
        };
        let decisions = call_cohort(&cohort, &config).unwrap();
        // 0.020 is not above 0.02 (strict), 0.021 is.
        assert_eq!(calls_of(&decisions[0]), vec![NEGATIVE, NEGATIVE, NEGATIVE]);
        assert_eq!(calls_of(&decisions[3]), vec![POSITIVE, POSITIVE, POSITIVE]);
        assert_eq!(decisions[3].segments[0].eu_limit, None);

        let config = CallConfig { uncertainty_gate: UncertaintyGate::Percentile { percent: 80.0 }, ..config };
        let decisions = call_cohort(&cohort, &config).unwrap();
        close(decisions[3].segments[0].eu_limit.unwrap(), 0.0011200000000000001, 1e-15);
        close(decisions[0].segments[0].eu_limit.unwrap(), 0.001960000000000001, 1e-15);
        assert_eq!(decisions[3].segments[0].call, HIGH_EU);
        assert_eq!(decisions[0].segments[0].call, NEGATIVE);
    }

    #[test]
    fn z_scores_and_the_bonferroni_threshold_per_patient() {
        let cohort = cohort_fixture();
        let config = CallConfig { min_reference_values: 3, uncertainty_gate: UncertaintyGate::Off, ..CallConfig::default() };
        let decisions = call_cohort(&cohort, &config).unwrap();
        // Three levels in view: each at 0.05 / 3; sub-05 has two: 0.05 / 2.
        close(decisions[0].z_threshold.unwrap(), inverse_normal_cdf(1.0 - 0.05 / 3.0).unwrap(), 1e-12);
        close(decisions[4].z_threshold.unwrap(), inverse_normal_cdf(1.0 - 0.05 / 2.0).unwrap(), 1e-12);
        // sub-01's C2/C3 reference (0.012, 0.011, 0.050, 0.013, 0.009): median 0.012, spread
        // 1.4826 x 0.001; its score 0.010 is z = -1.349.
        let z = decisions[0].segments[0].z.unwrap();
        close(z, (0.010 - 0.012) / (MAD_TO_SD * 0.001), 1e-9);
        close(decisions[0].segments[0].threshold.unwrap(), 0.012 + decisions[0].z_threshold.unwrap() * MAD_TO_SD * 0.001, 1e-12);
        // sub-03's C3/C4 (0.090) stays positive; patient z = its largest segment z.
        assert_eq!(decisions[2].segments[1].call, POSITIVE);
        assert_eq!(decisions[2].patient_z, decisions[2].segments[1].z);
        // sub-04's C2/C3 (0.050 against a spread of 0.0015) is positive with its EU ungated.
        assert_eq!(decisions[3].segments[0].call, POSITIVE);
    }

    #[test]
    fn calibration_never_uses_another_scan_of_the_same_participant() {
        let mut cohort = cohort_fixture();
        // sub-03 is a copy of sub-04's participant: sub-04's outlier 0.050 leaves sub-03's reference.
        cohort[2].group = "sub-04".into();
        cohort[3].group = "sub-04".into();
        let config = CallConfig { min_reference_values: 3, ..legacy() };
        let decisions = call_cohort(&cohort, &config).unwrap();
        // sub-03's C2/C3 reference is now 0.010, 0.012, 0.013, 0.009.
        let expected = robust_upper_limit(&[0.010, 0.012, 0.013, 0.009], z_for_false_positive_rate(0.05).unwrap()).unwrap();
        close(decisions[2].segments[0].threshold.unwrap(), expected, 1e-12);
        // Others still see both.
        let all = robust_upper_limit(&[0.012, 0.011, 0.050, 0.013, 0.009], z_for_false_positive_rate(0.05).unwrap()).unwrap();
        close(decisions[0].segments[0].threshold.unwrap(), all, 1e-12);
    }

    #[test]
    fn high_eu_withholds_only_calls_near_the_threshold() {
        let cohort = cohort_fixture();
        // sub-04's C2/C3 has high EU (0.0050) and a score far above its threshold: called.
        let near = CallConfig {
            min_reference_values: 3,
            uncertainty_gate: UncertaintyGate::NearThreshold { z: 3.0, margin: 1.0 },
            scope: FalsePositiveScope::Level,
            ..CallConfig::default()
        };
        let decisions = call_cohort(&cohort, &near).unwrap();
        assert!(decisions[3].segments[0].mean_eu.unwrap() > decisions[3].segments[0].eu_limit.unwrap());
        assert_eq!(decisions[3].segments[0].call, POSITIVE);
        // With a margin wide enough to hold that z, it is withheld as before.
        let z = decisions[3].segments[0].z.unwrap();
        let wide = CallConfig { uncertainty_gate: UncertaintyGate::NearThreshold { z: 3.0, margin: z }, ..near };
        assert_eq!(call_cohort(&cohort, &wide).unwrap()[3].segments[0].call, HIGH_EU);
        let bad = CallConfig { uncertainty_gate: UncertaintyGate::NearThreshold { z: 3.0, margin: -1.0 }, ..near };
        assert!(call_cohort(&cohort, &bad).is_err());
    }

    #[test]
    fn too_small_a_cohort_is_indeterminate_and_not_assessed() {
        let cohort: Vec<SubjectScores> = cohort_fixture().into_iter().take(2).collect();
        let decisions = call_cohort(&cohort, &CallConfig::default()).unwrap();
        let few = SegmentCall::Indeterminate(IndeterminateReason::TooFewReferenceValues);
        assert_eq!(calls_of(&decisions[0]), vec![few, few, few]);
        assert_eq!(decisions[0].segments[0].threshold, None);
        assert_eq!(decisions[0].patient_call, PatientCall::NotAssessed);
        assert_eq!(decisions[0].indeterminate_segments, 3);
    }

    #[test]
    fn invalid_call_configurations_are_errors() {
        let cohort = cohort_fixture();
        let bad_rate =
            CallConfig { threshold: Threshold::Cohort { target_false_positive_rate: 1.5 }, ..legacy() };
        assert!(call_cohort(&cohort, &bad_rate).is_err());
        let bad_fixed = CallConfig { threshold: Threshold::Fixed(f64::NAN), ..legacy() };
        assert!(call_cohort(&cohort, &bad_fixed).is_err());
        let bad_gate =
            CallConfig { uncertainty_gate: UncertaintyGate::Percentile { percent: 120.0 }, ..legacy() };
        assert!(call_cohort(&cohort, &bad_gate).is_err());
    }

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
        assert_eq!(rows[2].call, "positive");
    }
}
