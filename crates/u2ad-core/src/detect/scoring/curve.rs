//! Step 2 of detection (module docs, section 2): the anomaly curve, a row statistic of the
//! filtered map over the eroded cord, the maximum over a subject's samples, optionally smoothed.

use serde::{Deserialize, Serialize};

use crate::plane::PlaneShape;

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
    /// The filtered AU map ([`anomaly_candidates`](super::anomaly_candidates)).
    pub filtered_au: &'a [f32],
    /// The cord mask eroded by [`erode_3x3`](super::erode_3x3).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::test_fixtures::{close, subject_fixture, SUBJECT_SHAPE, TOLERANCE};

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
}
