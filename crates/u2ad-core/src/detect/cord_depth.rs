//! Depth below the cord mask's surface, and how deep the mask's partial volume with the CSF goes.
//!
//! The edge of a cord mask is where CSF partial volume and mask error live: there, the image is
//! brighter than the cord and the model's reconstruction blurs the cord-CSF boundary, so the
//! anomaly map runs high all along the cord. How deep that goes depends on the mask: one voxel too
//! large puts its outer shell in the CSF, one voxel too small puts it inside the cord. A fixed
//! erosion fails one way or the other, so the depth is measured on each subject: voxels are
//! grouped into shells by their 3-D depth below the mask's surface, and the outer shells whose
//! median signal lies more than a stated fraction of the way from the cord's core towards the CSF
//! are partial volume. The scoring region starts one shell deeper (the reconstruction blurs the
//! boundary a little further in than the image does).

use serde::{Deserialize, Serialize};

use crate::scoring::{median, PlaneShape};

/// Depth of every mask voxel below the mask's surface, in mm: the 3-D Euclidean distance to the
/// nearest voxel outside the mask (missing slices and everything beyond the grid are outside), 0
/// outside the mask. `masks[i]` is the plane of `native_slices[i]`; planes are `pixel_mm` apart
/// in-plane and `slice_spacing_mm` across.
pub fn depth_mm(masks: &[&[u8]], native_slices: &[usize], shape: PlaneShape, pixel_mm: f64, slice_spacing_mm: f64) -> Vec<Vec<f32>> {
    assert_eq!(masks.len(), native_slices.len(), "one native slice index per mask");
    let Some((&first, &last)) = native_slices.iter().min().zip(native_slices.iter().max()) else { return Vec::new() };
    // One empty plane on either side, and one empty row and column around each plane.
    let depth = last - first + 3;
    let (rows, cols) = (shape.rows + 2, shape.cols + 2);
    let plane = rows * cols;
    let mut f = vec![0.0f64; depth * plane];
    for (mask, &native) in masks.iter().zip(native_slices) {
        shape.check(mask.len(), "cord mask");
        let z = native - first + 1;
        for (p, &m) in mask.iter().enumerate() {
            if m != 0 {
                f[z * plane + (p / shape.cols + 1) * cols + p % shape.cols + 1] = f64::INFINITY;
            }
        }
    }
    let mut line = Vec::new();
    let mut out = Vec::new();
    let mut pass = |f: &mut [f64], len: usize, stride: usize, starts: &mut dyn Iterator<Item = usize>, step_mm: f64| {
        for start in starts {
            line.clear();
            line.extend((0..len).map(|i| f[start + i * stride]));
            out.resize(len, 0.0);
            squared_distance_1d(&line, step_mm * step_mm, &mut out);
            for (i, &d) in out.iter().enumerate() {
                f[start + i * stride] = d;
            }
        }
    };
    pass(&mut f, cols, 1, &mut (0..depth).flat_map(|z| (0..rows).map(move |r| z * plane + r * cols)), pixel_mm);
    pass(&mut f, rows, cols, &mut (0..depth).flat_map(|z| (0..cols).map(move |c| z * plane + c)), pixel_mm);
    pass(&mut f, depth, plane, &mut (0..plane), slice_spacing_mm);
    native_slices
        .iter()
        .map(|&native| {
            let z = native - first + 1;
            (0..shape.pixels())
                .map(|p| {
                    let d = f[z * plane + (p / shape.cols + 1) * cols + p % shape.cols + 1];
                    if d.is_finite() { d.sqrt() as f32 } else { 0.0 }
                })
                .collect()
        })
        .collect()
}

/// The lower envelope of parabolas (Felzenszwalb and Huttenlocher, 2012): `out[p] = min_q
/// (step2 (p - q)² + f[q])`, infinite where every `f` is. Written here: no maintained Rust crate
/// gives a 3-D Euclidean distance transform with anisotropic spacing.
fn squared_distance_1d(f: &[f64], step2: f64, out: &mut [f64]) {
    let n = f.len();
    let mut hull: Vec<usize> = Vec::with_capacity(n);
    let mut from: Vec<f64> = Vec::with_capacity(n);
    let key = |q: usize| f[q] + step2 * (q * q) as f64;
    for q in (0..n).filter(|&q| f[q].is_finite()) {
        loop {
            let Some(&p) = hull.last() else {
                hull.push(q);
                from.push(f64::NEG_INFINITY);
                break;
            };
            let s = (key(q) - key(p)) / (2.0 * step2 * (q - p) as f64);
            if s <= *from.last().expect("one boundary per parabola") {
                hull.pop();
                from.pop();
            } else {
                hull.push(q);
                from.push(s);
                break;
            }
        }
    }
    if hull.is_empty() {
        out.fill(f64::INFINITY);
        return;
    }
    let mut j = 0;
    for (p, o) in out.iter_mut().enumerate() {
        while j + 1 < hull.len() && from[j + 1] < p as f64 {
            j += 1;
        }
        let q = hull[j];
        *o = step2 * ((p as f64 - q as f64).powi(2)) + f[q];
    }
}

/// How the scoring region's depth is chosen from the image (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PartialVolumeDepth {
    /// Width of a shell, in mm.
    pub shell_mm: f64,
    /// A shell whose median signal lies this fraction of the way from the core's to the CSF's
    /// is partial volume.
    pub csf_fraction: f64,
    /// Depth added below the partial volume, in mm.
    pub margin_mm: f64,
}

impl PartialVolumeDepth {
    /// U2AD's default: 0.5 mm shells, partial volume from 10 % of the way to the CSF, a margin of
    /// one shell.
    pub const DEFAULT: PartialVolumeDepth = PartialVolumeDepth { shell_mm: 0.5, csf_fraction: 0.1, margin_mm: 0.5 };

    /// The depth (mm) from which the cord is scored: the shallowest shell whose signal is not
    /// partial volume (its lower bound), plus the margin. `cord` voxels carry their
    /// `depths` and `image` signal; `csf_signal` is the median signal of the CSF around the cord.
    /// Without a CSF brighter than 1.2 x the core, no shell counts as partial volume.
    pub fn scoring_depth_mm(&self, depths: &[f32], image: &[f64], csf_signal: Option<f64>) -> Option<f64> {
        assert_eq!(depths.len(), image.len(), "one depth per voxel");
        let shell_of = |d: f32| (f64::from(d) / self.shell_mm).floor() as usize;
        let mut shells: std::collections::BTreeMap<usize, Vec<f64>> = std::collections::BTreeMap::new();
        for (&d, &v) in depths.iter().zip(image) {
            if d > 0.0 {
                shells.entry(shell_of(d)).or_default().push(v);
            }
        }
        // The core: the deeper half of the voxels.
        let mut by_depth: Vec<(f32, f64)> = depths.iter().copied().zip(image.iter().copied()).filter(|v| v.0 > 0.0).collect();
        by_depth.sort_by(|a, b| a.0.total_cmp(&b.0));
        let core = median(&by_depth[by_depth.len() / 2..].iter().map(|v| v.1).collect::<Vec<_>>())?;
        let first_clean = match csf_signal.filter(|&c| core > 0.0 && c > 1.2 * core) {
            None => *shells.keys().next()?,
            Some(csf) => shells
                .iter()
                .find(|(_, signal)| median(signal).is_some_and(|m| (m - core) / (csf - core) < self.csf_fraction))
                .map(|(&k, _)| k)?,
        };
        Some(first_clean as f64 * self.shell_mm + self.margin_mm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_is_the_distance_to_the_nearest_outside_voxel_in_mm() {
        let shape = PlaneShape { rows: 9, cols: 9 };
        // A 7 x 7 square (rows and columns 1..=7) on three slices 2 mm apart.
        let square: Vec<u8> = (0..81).map(|p| u8::from((1..=7).contains(&(p / 9)) && (1..=7).contains(&(p % 9)))).collect();
        let masks = [&square[..], &square[..], &square[..]];
        let depth = depth_mm(&masks, &[4, 5, 6], shape, 0.5, 2.0);
        let at = |s: usize, r: usize, c: usize| depth[s][r * 9 + c];
        // Edge voxels: one pixel from the outside (0.5 mm); the centre of the middle slice: 4
        // pixels in-plane (2 mm) and one slice (2 mm) across.
        assert_eq!(at(1, 1, 4), 0.5);
        assert_eq!(at(1, 4, 4), 2.0);
        assert_eq!(at(1, 3, 3), 1.5);
        // The outer slices are 2 mm from the missing slice beside them, so their centre is 2 mm.
        assert_eq!(at(0, 4, 4), 2.0);
        assert_eq!(at(1, 0, 0), 0.0);
        // A diagonal: (1, 1) of a mask that is empty at (0, 0) only.
        let full: Vec<u8> = (0..81).map(|p| u8::from(p != 0)).collect();
        let one = depth_mm(&[&full[..]], &[0], shape, 1.0, 100.0);
        assert!((one[0][10] - 2f32.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn the_scoring_region_starts_below_the_bright_outer_shells() {
        let rule = PartialVolumeDepth::DEFAULT;
        // Shells at 0.78, 1.56, 2.34 and 3.1 mm; the cord's core at 0.25, the CSF at 0.75.
        let depths: Vec<f32> = [0.78f32, 1.56, 2.34, 3.1].iter().flat_map(|&d| [d; 10]).collect();
        let with = |outer: [f64; 4]| -> Vec<f64> { outer.iter().flat_map(|&v| [v; 10]).collect() };
        // The outer shell half CSF: partial volume; the next at 4 % of the way: cord.
        let depth = rule.scoring_depth_mm(&depths, &with([0.5, 0.27, 0.25, 0.25]), Some(0.75)).unwrap();
        assert!((depth - (1.5 + 0.5)).abs() < 1e-9, "{depth}");
        // Two shells partial volume (a mask one voxel too large).
        let depth = rule.scoring_depth_mm(&depths, &with([0.7, 0.4, 0.25, 0.25]), Some(0.75)).unwrap();
        assert!((depth - (2.0 + 0.5)).abs() < 1e-9, "{depth}");
        // No partial volume (a mask one voxel too small), or no CSF to tell: the margin below
        // the outermost shell.
        for csf in [Some(0.75), Some(0.28), None] {
            let depth = rule.scoring_depth_mm(&depths, &with([0.26, 0.25, 0.25, 0.25]), csf).unwrap();
            assert!((depth - (0.5 + 0.5)).abs() < 1e-9, "{depth}");
        }
        assert_eq!(rule.scoring_depth_mm(&[], &[], Some(0.75)), None);
    }
}
