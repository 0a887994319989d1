//! The cord and CSF masks: thresholding ([`binarize`]), the masks of a volume in canonical order
//! ([`cord_mask`], [`csf_mask`]), reading them on the image's grid ([`load_cord_mask`],
//! [`load_csf_mask`]), and their overlap ([`dice`]).

use std::path::Path;

use ndarray::{Array3, ArrayView, ArrayView3, Dimension, Zip};
use u2ad_io::volume::Volume;

use crate::error::{CoreError, Result};

/// Voxels above `threshold`, in standard (C) layout whatever the layout of `data` (a
/// reoriented view has permuted, reversed strides).
pub fn binarize(data: ArrayView3<'_, f32>, threshold: f32) -> Array3<bool> {
    let mut mask = Array3::from_elem(data.dim(), false);
    Zip::from(&mut mask).and(&data).for_each(|m, &v| *m = v > threshold);
    mask
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

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array2};

    #[test]
    fn dice_counts_overlap() {
        let a = array![[true, true, false], [false, true, false]];
        let b = array![[true, false, false], [false, true, true]];
        assert!((dice(a.view(), b.view()) - 2.0 * 2.0 / 6.0).abs() < 1e-12);
        let empty = Array2::from_elem((2, 3), false);
        assert_eq!(dice(empty.view(), empty.view()), 1.0);
        assert_eq!(dice(a.view(), empty.view()), 0.0);
    }
}
