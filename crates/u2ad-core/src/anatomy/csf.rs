//! The CSF derived from the T2 image when no CSF mask is given ([`derive_csf`],
//! [`derive_csf_with`], [`CsfDerivation`]): a ring around the cord, kept where the signal is
//! brighter than a multiple of the cord's median.

use ndarray::{Array3, ArrayView3, Zip};

use super::morphology::{dilate_3d, dilate_ball_mm, Neighbourhood3d};

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
    /// How many times the ring's inner edge first takes in the face neighbours of the cord that
    /// are not CSF-bright (signal ≤ `min_signal_ratio` x the cord's median): the ring is then
    /// measured from the cord's surface as the image shows it, not only as the mask draws it (the
    /// CSF itself stays outside the mask). 0 by default; [`CsfDerivation::MASK_TOLERANT`] takes 1.
    #[serde(default)]
    pub surface_voxels: usize,
}

impl Default for CsfDerivation {
    fn default() -> Self {
        CsfDerivation::ANATOMICAL
    }
}

impl CsfDerivation {
    /// The anatomical ring (the default, and what `synth` measures the CSF signal on).
    pub const ANATOMICAL: CsfDerivation = CsfDerivation { ring_mm: 4.0, min_signal_ratio: 1.2, surface_voxels: 0 };

    /// The CSF of the region the model masks (`prepare`'s ROI): the default ring, measured from a
    /// cord surface one voxel more tolerant. Automatic and manual cord masks differ by about one
    /// voxel; with a mask one voxel small the default ring stops one voxel short of the CSF the
    /// mask as given reaches, the masked region shrinks with it, and the model, trained on the
    /// larger region, reconstructs the cord brighter: on the leave-host-out benchmark that alone
    /// cost 0.16 of segment AUROC on one model (BENCHMARKS.md). A mask one voxel large, whose
    /// outer shell is bright CSF, does not grow; with the masks as given the region barely moves
    /// (IoU 0.996 on the benchmark's samples).
    pub const MASK_TOLERANT: CsfDerivation = CsfDerivation { surface_voxels: 1, ..CsfDerivation::ANATOMICAL };
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
    // The cord's surface as the image shows it: a copy only when it grows.
    let mut surface: Option<Array3<bool>> = None;
    for _ in 0..params.surface_voxels {
        let current = surface.as_ref().map_or(cord_canonical, |s| s.view());
        let mut grown = dilate_3d(current, Neighbourhood3d::Cross, 1);
        Zip::from(&mut grown).and(&current).and(&image_canonical).for_each(|g, &c, &v| {
            *g = c || (*g && (v as f64) <= threshold);
        });
        surface = Some(grown);
    }
    let mut ring = dilate_ball_mm(surface.as_ref().map_or(cord_canonical, |s| s.view()), spacing_mm, params.ring_mm);
    Zip::from(&mut ring).and(&cord_canonical).and(&image_canonical).for_each(|r, &c, &v| {
        *r = *r && !c && (v as f64) > threshold;
    });
    ring
}
