//! Binary morphology: 2-D masks ([`dilate_2d`], [`erode_2d`] with a 3 x 3 [`Neighbourhood2d`])
//! and 3-D masks ([`dilate_3d`], [`erode_3d`] with a 3 x 3 x 3 [`Neighbourhood3d`], and
//! [`dilate_ball_mm`], a ball in mm); outside the array counts as background (as
//! `scipy.ndimage`'s default).
//!
//! The work is done by `ndarray-ndimage` (3-D only; it panics when the structuring
//! element is larger than the array, and, in 0.6, on kernels that are not cubes): 2-D masks go
//! in as the middle plane of a 3-plane stack with a 3 x 3 x 3 kernel acting within the plane,
//! and every mask is padded with background first, which also gives scipy's border rule. The
//! ball is stamped here (see [`dilate_ball_mm`]).

use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3, Axis};

/// An owned copy in standard (C) layout.
fn standard_copy(mask: ArrayView3<'_, bool>) -> Array3<bool> {
    let mut out = Array3::from_elem(mask.dim(), false);
    out.assign(&mask);
    out
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anatomy::connected_components_2d;
    use crate::plane::PlaneShape;
    use ndarray::array;

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
    fn ball_dilation_uses_millimetres() {
        let mut mask = Array3::from_elem((9, 9, 9), false);
        mask[[4, 4, 4]] = true;
        // 2 mm with 1 x 1 x 2 mm voxels: ±2 voxels along 0 and 1, ±1 along 2.
        let ball = dilate_ball_mm(mask.view(), [1.0, 1.0, 2.0], 2.0);
        assert!(ball[[4, 6, 4]] && ball[[4, 4, 5]] && !ball[[4, 4, 6]] && !ball[[5, 5, 5]]);
        // 13 in the plane k = 4 (|d| <= 2), 1 above and 1 below.
        assert_eq!(ball.iter().filter(|&&v| v).count(), 15);
    }
}
