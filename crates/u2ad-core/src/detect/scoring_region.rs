//! Which cord voxels a level is scored on: the subject's sagittal samples stacked in 3-D, the
//! cord below its partial volume with the CSF ([`crate::cord_depth`]), and the CSF partial volume
//! a mask holds deeper than that (a mask that reaches into the subarachnoid space). The level
//! scores themselves are [`crate::level_scores`].

use crate::cord_depth::{depth_mm, PartialVolumeDepth};
use crate::scoring::{median, PlaneShape};

/// One sample of the stack.
#[derive(Debug, Clone, Copy)]
pub struct StackSlice<'a> {
    /// Index of the sample's slice along the native left-right axis.
    pub native_slice: usize,
    /// Cord mask (not eroded).
    pub cord: &'a [u8],
    /// The region around the cord whose median signal is the CSF's (the prepared ROI: cord and
    /// CSF, dilated by one pixel).
    pub roi: &'a [u8],
    /// The values scored (e.g. the anomaly map).
    pub values: &'a [f32],
    /// The preprocessed image (for the relative score).
    pub image: &'a [f32],
    /// Disc-level code of each row.
    pub row_segment: &'a [u8],
}

/// Cord-mask voxels that are CSF partial volume ([`crate::level_scores`] docs, step 1), per slice. A flood fill
/// over the stack: in-plane through the 4 neighbours, across slices through the same pixel of
/// the adjacent native slice.
pub fn csf_partial_volume(slices: &[StackSlice<'_>], shape: PlaneShape) -> Vec<Vec<bool>> {
    let none = || vec![vec![false; shape.pixels()]; slices.len()];
    let values = |pick: &dyn Fn(&StackSlice<'_>, usize) -> bool| -> Vec<f64> {
        slices.iter().flat_map(|s| (0..shape.pixels()).filter(|&p| pick(s, p)).map(|p| f64::from(s.image[p]))).collect()
    };
    let cord_signal = median(&values(&|s, p| s.cord[p] != 0));
    let csf_signal = median(&values(&|s, p| s.roi[p] != 0 && s.cord[p] == 0));
    let (Some(cord_signal), Some(csf_signal)) = (cord_signal, csf_signal) else { return none() };
    if !(cord_signal > 0.0 && csf_signal > 1.2 * cord_signal) {
        return none();
    }
    let threshold = 0.5 * (cord_signal + csf_signal);
    let bright = |i: usize, p: usize| f64::from(slices[i].image[p]) > threshold;
    let by_native: std::collections::BTreeMap<usize, usize> =
        slices.iter().enumerate().map(|(i, s)| (s.native_slice, i)).collect();
    let mut reached = none();
    let mut queue: Vec<(usize, usize)> = Vec::new();
    // The fill starts from the CSF itself: voxels outside the cord mask as bright as the CSF's
    // median. A voxel outside the mask that is only brighter than the midpoint may be the cord's
    // own edge or a lesion's outer part (a mask one voxel small leaves both outside it).
    for (i, s) in slices.iter().enumerate() {
        for p in 0..shape.pixels() {
            if s.cord[p] == 0 && s.roi[p] != 0 && f64::from(s.image[p]) >= csf_signal {
                reached[i][p] = true;
                queue.push((i, p));
            }
        }
    }
    while let Some((i, p)) = queue.pop() {
        let (row, col) = (p / shape.cols, p % shape.cols);
        let mut next: Vec<(usize, usize)> = Vec::with_capacity(6);
        if row > 0 {
            next.push((i, p - shape.cols));
        }
        if row + 1 < shape.rows {
            next.push((i, p + shape.cols));
        }
        if col > 0 {
            next.push((i, p - 1));
        }
        if col + 1 < shape.cols {
            next.push((i, p + 1));
        }
        let native = slices[i].native_slice;
        for n in [native.checked_sub(1), Some(native + 1)].into_iter().flatten() {
            if let Some(&j) = by_native.get(&n) {
                next.push((j, p));
            }
        }
        for (j, q) in next {
            // Only into the cord (the CSF outside is where the fill starts).
            if !reached[j][q] && slices[j].cord[q] != 0 && bright(j, q) {
                reached[j][q] = true;
                queue.push((j, q));
            }
        }
    }
    for (i, s) in slices.iter().enumerate() {
        for (p, r) in reached[i].iter_mut().enumerate() {
            *r &= s.cord[p] != 0;
        }
    }
    reached
}

/// The depth of every cord voxel of a stack below the mask's surface, and the depth from which
/// the cord is scored.
#[derive(Debug, Clone, PartialEq)]
pub struct StackDepth {
    /// Per slice and pixel, in mm (0 outside the cord).
    pub depth_mm: Vec<Vec<f32>>,
    /// Whether depth was measured in 3-D: a stack where no slice has both neighbours (one slice,
    /// as the reference's `.npy` slices, or two) says nothing about the cord's lateral surface,
    /// so its depth is measured in-plane only.
    pub lateral: bool,
    /// Where the cord below its partial volume with the CSF starts ([`PartialVolumeDepth`]);
    /// `None` when no shell of the cord is clear of it.
    pub scoring_from_mm: Option<f64>,
}

/// Measures a stack's depth and its scoring depth ([`StackDepth`]); the CSF's signal is the
/// median of the ROI outside the cord.
pub fn stack_depth(slices: &[StackSlice<'_>], shape: PlaneShape, rule: PartialVolumeDepth, pixel_mm: f64, slice_spacing_mm: f64) -> StackDepth {
    let cords: Vec<&[u8]> = slices.iter().map(|s| s.cord).collect();
    let natives: Vec<usize> = slices.iter().map(|s| s.native_slice).collect();
    let lateral = natives.iter().any(|&n| n > 0 && natives.contains(&(n - 1)) && natives.contains(&(n + 1)));
    let depth = depth_mm(&cords, &natives, shape, pixel_mm, if lateral { slice_spacing_mm } else { 1e6 });
    let mut depths = Vec::new();
    let mut signal = Vec::new();
    let mut csf = Vec::new();
    for (s, d) in slices.iter().zip(&depth) {
        for p in 0..shape.pixels() {
            if s.cord[p] != 0 {
                depths.push(d[p]);
                signal.push(f64::from(s.image[p]));
            } else if s.roi[p] != 0 {
                csf.push(f64::from(s.image[p]));
            }
        }
    }
    let scoring_from_mm = rule.scoring_depth_mm(&depths, &signal, median(&csf));
    StackDepth { depth_mm: depth, lateral, scoring_from_mm }
}

/// The cord (`in_plane`: the reference's eroded cord, where the maps are defined) deeper than the
/// subject's partial volume with the CSF ([`stack_depth`]). The second value says whether depth
/// was measured in 3-D and left something (else `in_plane` itself, as
/// [`crate::level_scores::eroded_cord_3d`] does when nothing is left).
pub(crate) fn below_partial_volume(
    slices: &[StackSlice<'_>],
    shape: PlaneShape,
    in_plane: &[Vec<u8>],
    rule: PartialVolumeDepth,
    pixel_mm: f64,
    slice_spacing_mm: f64,
) -> (Vec<Vec<u8>>, bool) {
    let StackDepth { depth_mm: depth, lateral, scoring_from_mm } = stack_depth(slices, shape, rule, pixel_mm, slice_spacing_mm);
    let Some(from_mm) = scoring_from_mm else { return (in_plane.to_vec(), false) };
    let kept: Vec<Vec<u8>> = in_plane
        .iter()
        .zip(&depth)
        .map(|(mask, d)| mask.iter().zip(d).map(|(&m, &d)| u8::from(m != 0 && f64::from(d) >= from_mm - 1e-6)).collect())
        .collect();
    if kept.iter().all(|m| m.iter().all(|&v| v == 0)) {
        (in_plane.to_vec(), false)
    } else {
        (kept, lateral)
    }
}

/// The small stack of this module's tests and of [`crate::level_scores`]'s.
#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::levels::DiscLevel;

    pub(crate) const SHAPE: PlaneShape = PlaneShape { rows: 12, cols: 10 };

    /// A cord of columns 2..=7 on rows 0..12, level C4/C5 on rows 0..6 and C5/C6 on 6..12.
    pub(crate) fn cord() -> Vec<u8> {
        (0..SHAPE.pixels()).map(|p| u8::from((2..=7).contains(&(p % SHAPE.cols)))).collect()
    }

    pub(crate) fn rows() -> Vec<u8> {
        (0..SHAPE.rows).map(|r| if r < 6 { DiscLevel::C4C5.code() } else { DiscLevel::C5C6.code() }).collect()
    }

    /// The pixels [`csf_partial_volume`] marks on one slice of this cord and image (ROI everywhere).
    fn marked_as_csf(cord: &[u8], image: &[f32]) -> Vec<usize> {
        let (roi, rows) = (vec![1u8; SHAPE.pixels()], rows());
        let slices = [StackSlice { native_slice: 0, cord, roi: &roi, values: image, image, row_segment: &rows }];
        let out = &csf_partial_volume(&slices, SHAPE)[0];
        (0..SHAPE.pixels()).filter(|&p| out[p]).collect()
    }

    #[test]
    fn csf_partial_volume_is_the_bright_cord_connected_to_the_csf() {
        // Cord: columns 2..=7; CSF: columns 0..=1 and 8..=9 (signal 4); cord signal 1.
        let cord = cord();
        let mut image: Vec<f32> = (0..SHAPE.pixels()).map(|p| if (2..=7).contains(&(p % SHAPE.cols)) { 1.0 } else { 4.0 }).collect();
        // A CSF-bright tongue into the cord from the right CSF (row 3, columns 4..=7), and an
        // isolated lesion at twice and at four times the cord signal (rows 8 and 10, column 4).
        for col in 4..=7 {
            image[3 * SHAPE.cols + col] = 3.5;
        }
        image[8 * SHAPE.cols + 4] = 2.0;
        image[10 * SHAPE.cols + 4] = 4.0;
        assert_eq!(marked_as_csf(&cord, &image), (4..=7).map(|c| 3 * SHAPE.cols + c).collect::<Vec<_>>());
        // No CSF brighter than the cord: nothing is taken out.
        assert!(marked_as_csf(&cord, &vec![1.0f32; SHAPE.pixels()]).is_empty());
    }

    #[test]
    fn a_lesion_reaching_past_a_small_mask_is_not_csf() {
        // A mask one voxel small: the cord's own edge (columns 2 and 7, signal 1.6) lies outside
        // it, between the mask (columns 3..=6) and the CSF (signal 4). A lesion at 2.6 x the cord
        // (rows 5..=7, columns 2..=4) reaches past the mask's edge into that band; above the
        // midpoint of cord and CSF signals, but connected to the CSF only through the cord's
        // edge, which is not CSF. A CSF-bright voxel of the mask touching the CSF (row 2) is still CSF.
        let cord: Vec<u8> = (0..SHAPE.pixels()).map(|p| u8::from((3..=6).contains(&(p % SHAPE.cols)))).collect();
        let mut image: Vec<f32> = (0..SHAPE.pixels())
            .map(|p| match p % SHAPE.cols {
                3..=6 => 1.0,
                2 | 7 => 1.6,
                _ => 4.0,
            })
            .collect();
        for row in 5..=7 {
            for col in 2..=4 {
                image[row * SHAPE.cols + col] = 2.6;
            }
        }
        image[2 * SHAPE.cols + 6] = 3.5;
        image[2 * SHAPE.cols + 7] = 4.0;
        assert_eq!(marked_as_csf(&cord, &image), vec![2 * SHAPE.cols + 6]);
    }
}
