//! Cord and CSF masks, small morphology helpers, the derived CSF, and the cord centreline.
//!
//! Everything here works on canonical (RAS+) arrays — axis 0 left → right, 1 posterior →
//! anterior, 2 inferior → superior (`k`) — with the voxel spacing in mm, so it does not depend
//! on the orientation of the file.
//!
//! API:
//! - masks: [`cord_mask`] (a cord volume, > 0.5, empty → [`CoreError::EmptyMask`]),
//!   [`csf_mask`] (binary or probabilistic, > 0.5), [`load_cord_mask`] / [`load_csf_mask`]
//!   (read, check the grid against the image, reorient), [`binarize`];
//! - derived CSF when no CSF mask is given: [`derive_csf`] / [`derive_csf_with`]
//!   ([`CsfDerivation`]: a ring of `ring_mm` around the cord, kept where the T2 signal is
//!   brighter than `min_signal_ratio` x the cord's median signal);
//! - overlap: [`dice`];
//! - morphology on 2-D masks ([`dilate_2d`], [`erode_2d`] with a 3 x 3 [`Neighbourhood2d`],
//!   [`connected_components_2d`]: 8-connected, with sizes) and 3-D masks ([`dilate_3d`],
//!   [`erode_3d`] with a 3 x 3 x 3 [`Neighbourhood3d`], [`dilate_ball_mm`]: a ball in mm);
//!   outside the array counts as background (as `scipy.ndimage`'s default);
//! - the centreline: [`Centreline::from_cord`] (cord centre per axial slice `k`, arc length,
//!   cord length in mm), with [`Centreline::arc_length_at_k`] / [`Centreline::k_at_arc_length`].

use std::path::Path;

use ndarray::{s, Array2, Array3, ArrayView, ArrayView2, ArrayView3, Axis, Dimension, Zip};
use u2ad_io::volume::Volume;

use crate::error::{CoreError, Result};
use crate::plane::{label_components_8, ComponentLabels, PlaneShape};

/// Voxels above `threshold`, in standard (C) layout whatever the layout of `data` (a
/// reoriented view has permuted, reversed strides).
pub fn binarize(data: ArrayView3<'_, f32>, threshold: f32) -> Array3<bool> {
    let mut mask = Array3::from_elem(data.dim(), false);
    Zip::from(&mut mask).and(&data).for_each(|m, &v| *m = v > threshold);
    mask
}

/// An owned copy in standard (C) layout.
fn standard_copy(mask: ArrayView3<'_, bool>) -> Array3<bool> {
    let mut out = Array3::from_elem(mask.dim(), false);
    out.assign(&mask);
    out
}

/// The cord mask of a cord-segmentation volume, in canonical order: voxels > 0.5.
/// An empty mask is an error naming the file.
pub fn cord_mask(volume: &Volume) -> Result<Array3<bool>> {
    let canonical = volume.reorientation().to_canonical(volume.data.view());
    let mask = binarize(canonical, 0.5);
    if !mask.iter().any(|&v| v) {
        return Err(CoreError::EmptyMask { path: volume.path.clone() });
    }
    Ok(mask)
}

/// The CSF mask of a CSF volume (binary, or a probability map thresholded at 0.5), in
/// canonical order: voxels > 0.5. It may be empty (a crop without CSF is not an error).
pub fn csf_mask(volume: &Volume) -> Array3<bool> {
    binarize(volume.reorientation().to_canonical(volume.data.view()), 0.5)
}

/// Reads a cord mask on the grid of `reference` (the image) and returns it in canonical order.
pub fn load_cord_mask(path: &Path, reference: &Volume) -> Result<Array3<bool>> {
    let volume = Volume::read(path)?;
    reference.check_same_grid(&volume, 1e-3)?;
    cord_mask(&volume)
}

/// Reads a CSF mask or probability map on the grid of `reference`, in canonical order.
pub fn load_csf_mask(path: &Path, reference: &Volume) -> Result<Array3<bool>> {
    let volume = Volume::read(path)?;
    reference.check_same_grid(&volume, 1e-3)?;
    Ok(csf_mask(&volume))
}

/// Dice overlap 2|A ∩ B| / (|A| + |B|); 1 when both are empty. Panics if the shapes differ.
pub fn dice<D: Dimension>(a: ArrayView<'_, bool, D>, b: ArrayView<'_, bool, D>) -> f64 {
    assert_eq!(a.shape(), b.shape(), "dice of masks with different shapes");
    let (mut both, mut total) = (0usize, 0usize);
    Zip::from(&a).and(&b).for_each(|&x, &y| {
        both += (x && y) as usize;
        total += x as usize + y as usize;
    });
    if total == 0 {
        1.0
    } else {
        2.0 * both as f64 / total as f64
    }
}

// ---------------------------------------------------------------------------------------------
// Morphology. The work is done by `ndarray-ndimage` (3-D only; it panics when the structuring
// element is larger than the array, and, in 0.6, on kernels that are not cubes): 2-D masks go
// in as the middle plane of a 3-plane stack with a 3 x 3 x 3 kernel acting within the plane,
// and every mask is padded with background first, which also gives scipy's border rule.

/// A 3 x 3 structuring element in 2-D.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Neighbourhood2d {
    /// The centre and its 4 edge neighbours (4-connectivity).
    Cross,
    /// The full 3 x 3 square (8-connectivity).
    Square,
}

impl Neighbourhood2d {
    /// As a 3 x 3 x 3 kernel acting only within the middle plane (the crate handles cubic
    /// kernels only).
    fn kernel(self) -> Array3<bool> {
        let mut kernel = Array3::from_elem((3, 3, 3), false);
        kernel.index_axis_mut(Axis(0), 1).fill(true);
        if self == Neighbourhood2d::Cross {
            for (r, c) in [(0, 0), (0, 2), (2, 0), (2, 2)] {
                kernel[[1, r, c]] = false;
            }
        }
        kernel
    }
}

/// A 3 x 3 x 3 structuring element in 3-D.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Neighbourhood3d {
    /// The centre and its 6 face neighbours.
    Cross,
    /// The full 3 x 3 x 3 cube (26 neighbours).
    Cube,
}

impl Neighbourhood3d {
    fn kernel(self) -> Array3<bool> {
        match self {
            Neighbourhood3d::Cross => ndarray_ndimage::Kernel3d::Star.generate(),
            Neighbourhood3d::Cube => ndarray_ndimage::Kernel3d::Full.generate(),
        }
    }
}

/// `mask` inside a border of `pad[a]` background voxels on each side of axis `a`.
fn padded(mask: ArrayView3<'_, bool>, pad: [usize; 3]) -> Array3<bool> {
    let (n0, n1, n2) = mask.dim();
    let mut out = Array3::from_elem((n0 + 2 * pad[0], n1 + 2 * pad[1], n2 + 2 * pad[2]), false);
    out.slice_mut(s![pad[0]..pad[0] + n0, pad[1]..pad[1] + n1, pad[2]..pad[2] + n2]).assign(&mask);
    out
}

fn unpadded(padded: &Array3<bool>, pad: [usize; 3], dim: (usize, usize, usize)) -> Array3<bool> {
    padded.slice(s![pad[0]..pad[0] + dim.0, pad[1]..pad[1] + dim.1, pad[2]..pad[2] + dim.2]).to_owned()
}

/// Dilation or erosion of a 3-D mask, `steps` times, by a kernel with odd sides; outside the
/// array is background.
fn morph_3d(mask: ArrayView3<'_, bool>, kernel: &Array3<bool>, steps: usize, dilate: bool) -> Array3<bool> {
    if steps == 0 || mask.is_empty() {
        return standard_copy(mask);
    }
    let k = kernel.dim();
    let pad = [k.0 / 2, k.1 / 2, k.2 / 2];
    let input = padded(mask, pad);
    let output = if dilate {
        ndarray_ndimage::binary_dilation(&input, kernel, steps)
    } else {
        ndarray_ndimage::binary_erosion(&input, kernel, steps)
    };
    unpadded(&output, pad, mask.dim())
}

/// `mask` as the middle plane of three (the outer planes background).
fn as_middle_plane(mask: ArrayView2<'_, bool>) -> Array3<bool> {
    let (rows, cols) = mask.dim();
    let mut stack = Array3::from_elem((3, rows, cols), false);
    stack.index_axis_mut(Axis(0), 1).assign(&mask);
    stack
}

fn morph_2d(mask: ArrayView2<'_, bool>, element: Neighbourhood2d, steps: usize, dilate: bool) -> Array2<bool> {
    let stack = as_middle_plane(mask);
    morph_3d(stack.view(), &element.kernel(), steps, dilate).index_axis_move(Axis(0), 1)
}

/// Binary dilation of a 2-D mask by a 3 x 3 cross or square, repeated `steps` times.
pub fn dilate_2d(mask: ArrayView2<'_, bool>, element: Neighbourhood2d, steps: usize) -> Array2<bool> {
    morph_2d(mask, element, steps, true)
}

/// Binary erosion of a 2-D mask by a 3 x 3 cross or square, repeated `steps` times. Pixels
/// outside the array count as background, so foreground touching the border erodes (scipy's
/// default `border_value=0`). The general form: with [`Neighbourhood2d::Square`] and one step it
/// gives the pixels of [`crate::plane::erode_3x3`], the one-step square erosion of a flat plane
/// that detection uses.
pub fn erode_2d(mask: ArrayView2<'_, bool>, element: Neighbourhood2d, steps: usize) -> Array2<bool> {
    morph_2d(mask, element, steps, false)
}

/// Binary dilation of a 3-D mask by a 3 x 3 x 3 cross or cube, repeated `steps` times.
pub fn dilate_3d(mask: ArrayView3<'_, bool>, element: Neighbourhood3d, steps: usize) -> Array3<bool> {
    morph_3d(mask, &element.kernel(), steps, true)
}

/// Binary erosion of a 3-D mask by a 3 x 3 x 3 cross or cube, repeated `steps` times; outside
/// the array counts as background.
pub fn erode_3d(mask: ArrayView3<'_, bool>, element: Neighbourhood3d, steps: usize) -> Array3<bool> {
    morph_3d(mask, &element.kernel(), steps, false)
}

/// Every voxel within `radius_mm` (Euclidean, centre to centre, in mm with `spacing_mm`) of a
/// voxel of `mask`: dilation by a ball that is an ellipsoid in voxels when the spacing is not
/// isotropic. Equals `scipy.ndimage.distance_transform_edt(~mask, sampling=spacing) <= radius`.
// Written here: ndarray-ndimage 0.6 panics on kernels that are not cubes, and a ball in mm
// is not a cube in voxels; stamping the ball on each foreground voxel is short and exact.
pub fn dilate_ball_mm(mask: ArrayView3<'_, bool>, spacing_mm: [f64; 3], radius_mm: f64) -> Array3<bool> {
    let (n0, n1, n2) = mask.dim();
    let dims = [n0 as isize, n1 as isize, n2 as isize];
    let radius_vox: [isize; 3] =
        std::array::from_fn(|a| if radius_mm > 0.0 { (radius_mm / spacing_mm[a] + 1e-9).floor() as isize } else { 0 });
    let mut ball: Vec<[isize; 3]> = Vec::new();
    for d0 in -radius_vox[0]..=radius_vox[0] {
        for d1 in -radius_vox[1]..=radius_vox[1] {
            for d2 in -radius_vox[2]..=radius_vox[2] {
                let d = [d0, d1, d2];
                let squared: f64 = (0..3).map(|a| (d[a] as f64 * spacing_mm[a]).powi(2)).sum();
                if squared <= radius_mm * radius_mm * (1.0 + 1e-9) {
                    ball.push(d);
                }
            }
        }
    }
    let mut out = standard_copy(mask);
    for ((i, j, k), &inside) in mask.indexed_iter() {
        if !inside {
            continue;
        }
        for d in &ball {
            let p = [i as isize + d[0], j as isize + d[1], k as isize + d[2]];
            if (0..3).all(|a| p[a] >= 0 && p[a] < dims[a]) {
                out[[p[0] as usize, p[1] as usize, p[2] as usize]] = true;
            }
        }
    }
    out
}

/// Connected components of a 2-D mask.
#[derive(Debug, Clone, PartialEq)]
pub struct Components2d {
    /// 0 = background; components are numbered 1..=count in the raster order (row by row) of
    /// their first pixel, as `scipy.ndimage.label`.
    pub labels: Array2<u32>,
    /// `sizes_px[c - 1]` = number of pixels of component `c`.
    pub sizes_px: Vec<usize>,
}

impl Components2d {
    pub fn count(&self) -> usize {
        self.sizes_px.len()
    }

    /// Number of the largest component (the first one on ties), or `None` when there is none.
    pub fn largest(&self) -> Option<u32> {
        let mut best: Option<(usize, u32)> = None;
        for (index, &size) in self.sizes_px.iter().enumerate() {
            if best.is_none_or(|(s, _)| size > s) {
                best = Some((size, index as u32 + 1));
            }
        }
        best.map(|(_, label)| label)
    }
}

/// 8-connected components of a 2-D mask (a 3 x 3 square neighbourhood), with their sizes: the
/// workspace's one labeller, [`crate::plane::label_components_8`], on an array.
pub fn connected_components_2d(mask: ArrayView2<'_, bool>) -> Components2d {
    let (rows, cols) = mask.dim();
    // `iter` walks a view in logical (row-major) order whatever its strides.
    let foreground: Vec<bool> = mask.iter().copied().collect();
    let ComponentLabels { labels, count } = label_components_8(&foreground, PlaneShape { rows, cols });
    let mut sizes_px = vec![0usize; count as usize];
    for &label in labels.iter().filter(|&&l| l != 0) {
        sizes_px[label as usize - 1] += 1;
    }
    Components2d { labels: Array2::from_shape_vec((rows, cols), labels).expect("one label per pixel"), sizes_px }
}

// ---------------------------------------------------------------------------------------------
// Derived CSF.

/// How the CSF is derived from the image when no CSF mask is given.
///
/// The defaults follow the anatomy, not one subject: the subarachnoid CSF is a 1-4 mm annulus
/// around the cervical cord (thinnest anteriorly and posteriorly, a little wider laterally), so
/// the ring reaches 4 mm from the cord surface; on T2 CSF is much brighter than cord (2-3 x
/// the cord's median in these scans), while bone, ligament, dura and disc are at or below the
/// cord's signal, so a voxel of the ring counts as CSF when it is brighter than 1.2 x the
/// cord's median (the margin keeps cord/CSF partial-volume voxels and drops cord-like tissue).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CsfDerivation {
    /// Outer radius of the ring around the cord, in mm (from cord voxel centres).
    pub ring_mm: f64,
    /// A ring voxel is CSF when its signal is > this x the median signal of the cord.
    pub min_signal_ratio: f64,
}

impl Default for CsfDerivation {
    fn default() -> Self {
        CsfDerivation { ring_mm: 4.0, min_signal_ratio: 1.2 }
    }
}

/// numpy's `median` of f32 values, in f64: (a + b) / 2 of the two middle values for an even
/// count. Not [`crate::stats::median`], which is numpy's `percentile(.., 50)`, b - (b - a) / 2,
/// on f64: the two agree on finite values of like magnitude but not on every input (a pair far
/// apart in magnitude rounds differently; an infinity makes the percentile NaN), and the derived
/// CSF's threshold is kept as it is.
fn numpy_median_f32(values: &mut [f32]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable_by(|a, b| a.total_cmp(b));
    let n = values.len();
    Some(if n % 2 == 1 { values[n / 2] as f64 } else { (values[n / 2 - 1] as f64 + values[n / 2] as f64) / 2.0 })
}

/// CSF derived from a T2 image and its cord mask with the default [`CsfDerivation`]: voxels
/// within 4 mm of the cord, outside it, brighter than 1.2 x the cord's median signal.
/// All arrays canonical and of one shape. An empty cord gives an empty CSF.
pub fn derive_csf(
    image_canonical: ArrayView3<'_, f32>,
    cord_canonical: ArrayView3<'_, bool>,
    spacing_mm: [f64; 3],
) -> Array3<bool> {
    derive_csf_with(image_canonical, cord_canonical, spacing_mm, &CsfDerivation::default())
}

/// [`derive_csf`] with explicit parameters. Panics if the shapes differ.
pub fn derive_csf_with(
    image_canonical: ArrayView3<'_, f32>,
    cord_canonical: ArrayView3<'_, bool>,
    spacing_mm: [f64; 3],
    params: &CsfDerivation,
) -> Array3<bool> {
    assert_eq!(image_canonical.shape(), cord_canonical.shape(), "image and cord mask shapes differ");
    let mut cord_values: Vec<f32> =
        Zip::from(&image_canonical).and(&cord_canonical).fold(Vec::new(), |mut acc, &v, &c| {
            if c {
                acc.push(v);
            }
            acc
        });
    let Some(cord_median) = numpy_median_f32(&mut cord_values) else {
        return Array3::from_elem(cord_canonical.dim(), false);
    };
    let threshold = params.min_signal_ratio * cord_median;
    let mut ring = dilate_ball_mm(cord_canonical, spacing_mm, params.ring_mm);
    Zip::from(&mut ring).and(&cord_canonical).and(&image_canonical).for_each(|r, &c, &v| {
        *r = *r && !c && (v as f64) > threshold;
    });
    ring
}

// ---------------------------------------------------------------------------------------------
// Centreline.

/// The cord centre in one axial slice `k`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CentrelinePoint {
    /// Canonical slice index along the superior axis.
    pub k: usize,
    /// Centre of the cord voxels of the slice along canonical axes 0 (right) and 1 (anterior),
    /// in mm of the canonical voxel frame (index x spacing; not scanner coordinates).
    pub centre_mm: [f64; 2],
    /// Distance along the cord from the most inferior cord slice, in mm.
    pub arc_length_mm: f64,
}

/// The cord centreline: one point per canonical slice `k` that contains cord, inferior to
/// superior. The arc length follows the centre smoothed by a moving average over ±2 mm along
/// the cord (edge values repeated, as `scipy.ndimage.uniform_filter1d(mode="nearest")`), so
/// that voxel-level jitter of the raw centres does not lengthen the cord; the stored
/// `centre_mm` are the raw centres.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Centreline {
    pub points: Vec<CentrelinePoint>,
    /// Canonical voxel spacing, mm.
    pub spacing_mm: [f64; 3],
}

/// Half-width of the centreline smoothing window along the cord, in mm.
pub const CENTRELINE_SMOOTHING_HALF_WIDTH_MM: f64 = 2.0;

impl Centreline {
    /// The centreline of a canonical cord mask, or `None` when the mask is empty.
    pub fn from_cord(cord_canonical: ArrayView3<'_, bool>, spacing_mm: [f64; 3]) -> Option<Centreline> {
        let mut raw: Vec<(usize, [f64; 2])> = Vec::new();
        for (k, slice) in cord_canonical.axis_iter(Axis(2)).enumerate() {
            let (mut n, mut sum_i, mut sum_j) = (0usize, 0.0f64, 0.0f64);
            for ((i, j), &inside) in slice.indexed_iter() {
                if inside {
                    n += 1;
                    sum_i += i as f64;
                    sum_j += j as f64;
                }
            }
            if n > 0 {
                raw.push((k, [sum_i / n as f64 * spacing_mm[0], sum_j / n as f64 * spacing_mm[1]]));
            }
        }
        if raw.is_empty() {
            return None;
        }
        let half = (CENTRELINE_SMOOTHING_HALF_WIDTH_MM / spacing_mm[2] + 0.5).floor().max(0.0) as isize;
        let last = raw.len() as isize - 1;
        let smoothed: Vec<[f64; 2]> = (0..raw.len() as isize)
            .map(|i| {
                let mut acc = [0.0; 2];
                for j in i - half..=i + half {
                    let c = raw[j.clamp(0, last) as usize].1;
                    acc[0] += c[0];
                    acc[1] += c[1];
                }
                let w = (2 * half + 1) as f64;
                [acc[0] / w, acc[1] / w]
            })
            .collect();
        let mut points = Vec::with_capacity(raw.len());
        let mut arc = 0.0;
        for (index, &(k, centre_mm)) in raw.iter().enumerate() {
            if index > 0 {
                let (a, b) = (smoothed[index - 1], smoothed[index]);
                let dz = (k - raw[index - 1].0) as f64 * spacing_mm[2];
                arc += ((b[0] - a[0]).powi(2) + (b[1] - a[1]).powi(2) + dz * dz).sqrt();
            }
            points.push(CentrelinePoint { k, centre_mm, arc_length_mm: arc });
        }
        Some(Centreline { points, spacing_mm })
    }

    /// Length of the cord along its centreline, in mm.
    pub fn cord_length_mm(&self) -> f64 {
        self.points.last().map_or(0.0, |p| p.arc_length_mm)
    }

    /// The most inferior slice with cord.
    pub fn first_k(&self) -> usize {
        self.points.first().map_or(0, |p| p.k)
    }

    /// The most superior slice with cord.
    pub fn last_k(&self) -> usize {
        self.points.last().map_or(0, |p| p.k)
    }

    /// The raw cord centre (mm) of slice `k`, if it contains cord.
    pub fn centre_at_k(&self, k: usize) -> Option<[f64; 2]> {
        self.points.binary_search_by_key(&k, |p| p.k).ok().map(|i| self.points[i].centre_mm)
    }

    /// Arc length (mm) at fractional canonical position `k`: linear between cord slices;
    /// beyond the ends of the cord the centreline is continued straight along the superior
    /// axis (negative below the first cord slice).
    pub fn arc_length_at_k(&self, k: f64) -> f64 {
        let (Some(first), Some(last)) = (self.points.first(), self.points.last()) else {
            return k * self.spacing_mm[2];
        };
        if k <= first.k as f64 {
            return (k - first.k as f64) * self.spacing_mm[2];
        }
        if k >= last.k as f64 {
            return last.arc_length_mm + (k - last.k as f64) * self.spacing_mm[2];
        }
        let upper = self.points.partition_point(|p| (p.k as f64) < k);
        let (a, b) = (&self.points[upper - 1], &self.points[upper]);
        let t = (k - a.k as f64) / (b.k - a.k) as f64;
        a.arc_length_mm + t * (b.arc_length_mm - a.arc_length_mm)
    }

    /// Fractional canonical `k` at arc length `arc_mm`: the inverse of [`Self::arc_length_at_k`].
    pub fn k_at_arc_length(&self, arc_mm: f64) -> f64 {
        let (Some(first), Some(last)) = (self.points.first(), self.points.last()) else {
            return arc_mm / self.spacing_mm[2];
        };
        if arc_mm <= 0.0 {
            return first.k as f64 + arc_mm / self.spacing_mm[2];
        }
        if arc_mm >= last.arc_length_mm {
            return last.k as f64 + (arc_mm - last.arc_length_mm) / self.spacing_mm[2];
        }
        let upper = self.points.partition_point(|p| p.arc_length_mm < arc_mm);
        let (a, b) = (&self.points[upper - 1], &self.points[upper]);
        let t = (arc_mm - a.arc_length_mm) / (b.arc_length_mm - a.arc_length_mm);
        a.k as f64 + t * (b.k - a.k) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn dice_counts_overlap() {
        let a = array![[true, true, false], [false, true, false]];
        let b = array![[true, false, false], [false, true, true]];
        assert!((dice(a.view(), b.view()) - 2.0 * 2.0 / 6.0).abs() < 1e-12);
        let empty = Array2::from_elem((2, 3), false);
        assert_eq!(dice(empty.view(), empty.view()), 1.0);
        assert_eq!(dice(a.view(), empty.view()), 0.0);
    }

    #[test]
    fn cross_and_square_differ_at_the_corners() {
        let mut mask = Array2::from_elem((5, 5), false);
        mask[[2, 2]] = true;
        let cross = dilate_2d(mask.view(), Neighbourhood2d::Cross, 1);
        let square = dilate_2d(mask.view(), Neighbourhood2d::Square, 1);
        assert_eq!(cross.iter().filter(|&&v| v).count(), 5);
        assert_eq!(square.iter().filter(|&&v| v).count(), 9);
        assert!(!cross[[1, 1]] && square[[1, 1]]);
        // Two steps of the cross: a diamond of 13 pixels.
        assert_eq!(dilate_2d(mask.view(), Neighbourhood2d::Cross, 2).iter().filter(|&&v| v).count(), 13);
        // Erosion undoes it, and the border counts as background.
        let full = Array2::from_elem((4, 4), true);
        let eroded = erode_2d(full.view(), Neighbourhood2d::Cross, 1);
        assert_eq!(eroded.iter().filter(|&&v| v).count(), 4);
        assert!(eroded[[1, 1]] && !eroded[[0, 1]]);
        // One step of the square is plane::erode_3x3's erosion.
        let blob = Array2::from_shape_fn((6, 7), |(r, c)| (r * 7 + c) % 11 != 0);
        let flat: Vec<u8> = blob.iter().map(|&v| u8::from(v)).collect();
        let square: Vec<u8> = erode_2d(blob.view(), Neighbourhood2d::Square, 1).iter().map(|&v| u8::from(v)).collect();
        assert_eq!(square, crate::plane::erode_3x3(&flat, PlaneShape { rows: 6, cols: 7 }));
    }

    #[test]
    fn tiny_arrays_do_not_panic() {
        let one = array![[true]];
        assert_eq!(dilate_2d(one.view(), Neighbourhood2d::Square, 3), one);
        assert!(!erode_2d(one.view(), Neighbourhood2d::Cross, 1)[[0, 0]]);
        let line = Array3::from_elem((1, 1, 2), true);
        assert_eq!(erode_3d(line.view(), Neighbourhood3d::Cube, 1).iter().filter(|&&v| v).count(), 0);
        assert_eq!(connected_components_2d(one.view()).sizes_px, vec![1]);
    }

    #[test]
    fn components_are_eight_connected_and_numbered_in_raster_order() {
        let mask = array![
            [false, false, false, true],
            [true, true, false, false],
            [false, false, true, false],
            [true, false, false, false],
        ];
        let components = connected_components_2d(mask.view());
        // (0,3) first; the diagonal (1,1)-(2,2) joins the second; (3,0) alone.
        assert_eq!(components.sizes_px, vec![1, 3, 1]);
        assert_eq!(components.labels[[0, 3]], 1);
        assert_eq!(components.labels[[2, 2]], 2);
        assert_eq!(components.labels[[3, 0]], 3);
        assert_eq!(components.largest(), Some(2));
    }

    #[test]
    fn ball_dilation_uses_millimetres() {
        let mut mask = Array3::from_elem((9, 9, 9), false);
        mask[[4, 4, 4]] = true;
        // 2 mm with 1 x 1 x 2 mm voxels: ±2 voxels along 0 and 1, ±1 along 2.
        let ball = dilate_ball_mm(mask.view(), [1.0, 1.0, 2.0], 2.0);
        assert!(ball[[4, 6, 4]] && ball[[4, 4, 5]] && !ball[[4, 4, 6]] && !ball[[5, 5, 5]]);
        // 13 in the plane k = 4 (|d| <= 2), 1 above and 1 below.
        assert_eq!(ball.iter().filter(|&&v| v).count(), 15);
    }

    #[test]
    fn centreline_of_an_oblique_rod() {
        // A rod moving 1 voxel anterior every 2 slices: length sqrt(1 + 0.25) per slice.
        let mut cord = Array3::from_elem((5, 30, 40), false);
        for k in 0..40 {
            cord[[2, 5 + k / 2, k]] = true;
        }
        let line = Centreline::from_cord(cord.view(), [1.0, 1.0, 1.0]).unwrap();
        assert_eq!(line.points.len(), 40);
        assert_eq!(line.centre_at_k(10), Some([2.0, 10.0]));
        assert!((line.cord_length_mm() - 39.0 * 1.25f64.sqrt()).abs() < 0.6);
        let arc = line.arc_length_at_k(17.5);
        assert!((line.k_at_arc_length(arc) - 17.5).abs() < 1e-9);
        assert_eq!(line.arc_length_at_k(-3.0), -3.0);
        assert!((line.k_at_arc_length(line.cord_length_mm() + 2.0) - 41.0).abs() < 1e-9);
    }
}
