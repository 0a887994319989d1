//! NIfTI reading, orientation, canonical reorientation and writing, checked against nibabel.
//!
//! Every literal below was computed with nibabel 5.4 / numpy 2.4 on the files of the shared data
//! (`nib.load(f)`: `img.shape`, `img.affine`, `nib.aff2axcodes`, `img.get_fdata()` sums and
//! voxels; `nib.as_closest_canonical(img)` for the canonical grids; `header.get_best_affine()`
//! after editing the form codes for the synthetic headers).
//!
//! `expected`: nibabel's view of every shared file; `read`: reading as nibabel reads;
//! `geometry`: canonical grids, header forms and writing.

use std::path::{Path, PathBuf};

use ndarray::{Array3, Array4, Array5, Axis};
use nifti::writer::WriterOptions;
use nifti::NiftiHeader;
use u2ad_data::sample_file;
use u2ad_io::volume::{check_sagittal, read_header, Affine, Volume, VoxelType};

mod expected;
mod geometry;
mod read;

use expected::EXPECTED;

const ERRSM30: &str = "spine-t2/sub-errsm30/anat/sub-errsm30_T2w.nii.gz";
const ERRSM11: &str = "spine-t2/sub-errsm11/anat/sub-errsm11_T2w.nii.gz";
const PAM50_T2: &str = "templates/PAM50_small/PAM50_small_t2.nii.gz";
const UNF01: &str = "fixtures/ivadomed/sub-unf01/anat/sub-unf01_T2w.nii.gz";
const UNF02_T2STAR: &str = "fixtures/ivadomed/sub-unf02/anat/sub-unf02_T2star.nii.gz";

fn read(relative: &str) -> Volume {
    Volume::read(sample_file(relative)).unwrap_or_else(|e| panic!("{e}"))
}

fn assert_affine_close(actual: &Affine, expected: &[[f64; 4]; 3], tolerance: f64, what: &str) {
    let rows = actual.to_rows();
    for r in 0..3 {
        for c in 0..4 {
            assert!(
                (rows[r][c] - expected[r][c]).abs() <= tolerance,
                "{what}: affine[{r}][{c}] = {} but nibabel says {}",
                rows[r][c],
                expected[r][c]
            );
        }
    }
    assert_eq!(rows[3], [0.0, 0.0, 0.0, 1.0], "{what}: last affine row");
}

fn sum(data: &Array3<f32>) -> f64 {
    data.iter().map(|&v| v as f64).sum()
}

/// Stores `affine` in the header's sform (code 2) and/or qform (code 1, quaternion + qfac +
/// pixdim, as the NIfTI-1 standard defines them; the affine's axes must be orthogonal).
fn set_forms(header: &mut NiftiHeader, affine: &Affine, sform: bool, qform: bool) {
    let m = affine.0;
    for c in 0..4 {
        header.srow_x[c] = m[(0, c)] as f32;
        header.srow_y[c] = m[(1, c)] as f32;
        header.srow_z[c] = m[(2, c)] as f32;
    }
    header.sform_code = if sform { 2 } else { 0 };
    let zooms = affine.spacing_mm();
    let mut r = nalgebra::Matrix3::<f64>::from_fn(|row, col| m[(row, col)] / zooms[col]);
    let qfac = if r.determinant() < 0.0 {
        for row in 0..3 {
            r[(row, 2)] = -r[(row, 2)];
        }
        -1.0
    } else {
        1.0
    };
    let trace = r[(0, 0)] + r[(1, 1)] + r[(2, 2)];
    let (w, x, y, z) = if trace > 0.0 {
        let s = 0.5 / (trace + 1.0).sqrt();
        (0.25 / s, (r[(2, 1)] - r[(1, 2)]) * s, (r[(0, 2)] - r[(2, 0)]) * s, (r[(1, 0)] - r[(0, 1)]) * s)
    } else if r[(0, 0)] > r[(1, 1)] && r[(0, 0)] > r[(2, 2)] {
        let s = 2.0 * (1.0 + r[(0, 0)] - r[(1, 1)] - r[(2, 2)]).sqrt();
        ((r[(2, 1)] - r[(1, 2)]) / s, 0.25 * s, (r[(0, 1)] + r[(1, 0)]) / s, (r[(0, 2)] + r[(2, 0)]) / s)
    } else if r[(1, 1)] > r[(2, 2)] {
        let s = 2.0 * (1.0 + r[(1, 1)] - r[(0, 0)] - r[(2, 2)]).sqrt();
        ((r[(0, 2)] - r[(2, 0)]) / s, (r[(0, 1)] + r[(1, 0)]) / s, 0.25 * s, (r[(1, 2)] + r[(2, 1)]) / s)
    } else {
        let s = 2.0 * (1.0 + r[(2, 2)] - r[(0, 0)] - r[(1, 1)]).sqrt();
        ((r[(1, 0)] - r[(0, 1)]) / s, (r[(0, 2)] + r[(2, 0)]) / s, (r[(1, 2)] + r[(2, 1)]) / s, 0.25 * s)
    };
    let sign = if w < 0.0 { -1.0 } else { 1.0 };
    header.quatern_b = (sign * x) as f32;
    header.quatern_c = (sign * y) as f32;
    header.quatern_d = (sign * z) as f32;
    header.quatern_x = m[(0, 3)] as f32;
    header.quatern_y = m[(1, 3)] as f32;
    header.quatern_z = m[(2, 3)] as f32;
    header.pixdim[0] = qfac as f32;
    for (pixdim, zoom) in header.pixdim[1..4].iter_mut().zip(zooms) {
        *pixdim = zoom as f32;
    }
    header.qform_code = if qform { 1 } else { 0 };
}

/// Writes `data` with a default header carrying `affine` in the sform and/or qform.
fn write_with_affine(path: &Path, data: &Array3<f32>, affine: &Affine, sform: bool, qform: bool) {
    let mut header = NiftiHeader::default();
    set_forms(&mut header, affine, sform, qform);
    WriterOptions::new(path).reference_header(&header).write_nifti(data).unwrap();
}
