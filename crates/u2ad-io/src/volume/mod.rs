//! 3-D scans as nibabel reads them: voxel data, the world affine, the orientation, the
//! reorientation to the canonical RAS+ voxel order, and writing maps back onto the input grid.
//!
//! The affine is chosen as nibabel's `get_best_affine` does: the sform when its code is > 0,
//! else the qform when its code is > 0, else the pixdim scaling centred on the volume.
//! Reading is defensive: the header is validated before any data are decoded, a gzip stream is
//! inflated no further than its header declares (plus a margin: a gzip bomb is refused early)
//! and to its end (so its checksum is verified), and every problem with the input is a
//! one-line [`FileError`] naming the file, never a panic.
//!
//! Files: `mod.rs` (the volume, its canonical views, the grid and sagittal checks),
//! `orientation.rs` (the affine, the orientation code, the reorientation to RAS+), `header.rs`
//! (the NIfTI-1 header, voxel types, scaling and the affine nibabel chooses), `read.rs` (reading
//! files, gzip included) and `write.rs` (writing maps onto a scan's grid).

use std::path::PathBuf;

use ndarray::{Array3, ArrayView3};
use nifti::NiftiHeader;

use crate::error::{FileError, Result};

mod header;
mod orientation;
mod read;
mod write;

pub use header::{header_affine, VoxelType};
pub use orientation::{Affine, AxisCode, Orientation, Reorientation};
pub use read::{read_header, GZIP_MARGIN_BYTES};

/// Largest relative excess of the thickest voxel spacing over the thinnest for which a scan
/// still counts as isotropic (see [`check_sagittal`]).
pub const ANISOTROPY_TOLERANCE: f64 = 0.25;

/// Default tolerance of [`Volume::check_same_grid`]: the largest distance (mm) by which any
/// voxel centre may move between the two grids. Covers float32 rounding of headers rewritten
/// by other tools; a real shift or rotation is far larger.
pub const GRID_TOLERANCE_MM: f64 = 0.01;

/// A 3-D scan or map as read from NIfTI.
#[derive(Debug, Clone)]
pub struct Volume {
    /// Voxel values after `scl_slope`/`scl_inter`, indexed `[i, j, k]` in file voxel order.
    pub data: Array3<f32>,
    /// Voxel to world (mm), chosen as nibabel does.
    pub affine: Affine,
    /// The header as read, to write maps back onto exactly this grid.
    pub header: NiftiHeader,
    pub voxel_type: VoxelType,
    pub path: PathBuf,
}

impl Volume {
    pub fn shape(&self) -> [usize; 3] {
        let s = self.data.shape();
        [s[0], s[1], s[2]]
    }

    pub fn spacing_mm(&self) -> [f64; 3] {
        self.affine.spacing_mm()
    }

    pub fn orientation(&self) -> Orientation {
        self.affine.orientation()
    }

    pub fn reorientation(&self) -> Reorientation {
        Reorientation::from_orientation(self.orientation(), self.shape())
    }

    /// The affine of the canonical (RAS+) voxel order, as nibabel's
    /// `as_closest_canonical(img).affine`.
    pub fn canonical_affine(&self) -> Affine {
        self.reorientation().canonical_affine(&self.affine)
    }

    /// The voxel values in canonical (RAS+) order (a view: no copy).
    pub fn canonical_data(&self) -> ArrayView3<'_, f32> {
        self.reorientation().to_canonical(self.data.view())
    }

    /// Checks that `other` lies on this volume's grid: the same shape, and no voxel centre
    /// moved by more than `tolerance_mm` between the two affines (the largest displacement over
    /// the corners of the volume; [`GRID_TOLERANCE_MM`] is the default to use).
    pub fn check_same_grid(&self, other: &Volume, tolerance_mm: f64) -> Result<()> {
        if self.shape() != other.shape() {
            return Err(FileError::GridMismatch {
                path: other.path.clone(),
                reference: self.path.clone(),
                detail: format!("shape {:?} differs from {:?}", other.shape(), self.shape()),
            });
        }
        let shape = self.shape();
        let mut largest = 0.0f64;
        for corner in 0..8 {
            let ijk = [0, 1, 2].map(|a| if corner & (1 << a) != 0 { (shape[a] - 1) as f64 } else { 0.0 });
            let p = self.affine.voxel_to_world(ijk);
            let q = other.affine.voxel_to_world(ijk);
            let d = ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2) + (p[2] - q[2]).powi(2)).sqrt();
            largest = largest.max(d);
        }
        if largest > tolerance_mm || largest.is_nan() {
            return Err(FileError::GridMismatch {
                path: other.path.clone(),
                reference: self.path.clone(),
                detail: format!(
                    "same shape {shape:?} but voxels lie up to {} mm apart (tolerance {tolerance_mm} mm)",
                    format_mm(largest)
                ),
            });
        }
        Ok(())
    }
}

/// A length in mm for messages: up to 3 decimals, trailing zeros dropped.
fn format_mm(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s };
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

/// Checks that `volume` is a sagittal scan, else [`FileError::NotSagittal`]:
/// - anisotropic voxels (the largest spacing exceeds the smallest by more than
///   [`ANISOTROPY_TOLERANCE`]): the thick (slice) axis must point left-right;
/// - isotropic voxels: accepted (they can be resliced sagittally without loss) unless the field
///   of view is a slab (one extent under half of both others) that is not thin left-right,
///   such as an axial slab of a few isotropic slices.
pub fn check_sagittal(volume: &Volume) -> Result<()> {
    let spacing = volume.spacing_mm();
    let orientation = volume.orientation();
    let thinnest = spacing.iter().copied().fold(f64::INFINITY, f64::min);
    let thickest = spacing.iter().copied().fold(0.0, f64::max);
    if thickest <= thinnest * (1.0 + ANISOTROPY_TOLERANCE) {
        // Isotropic voxels: a slab (an extent less than half of both others) tells the slice
        // direction; a sagittal slab is thin left-right, a whole 3-D volume passes.
        let shape = volume.shape();
        let extent_mm: Vec<f64> = (0..3).map(|a| shape[a] as f64 * spacing[a]).collect();
        let slab = (0..3).find(|&a| (0..3).all(|b| b == a || extent_mm[a] < 0.5 * extent_mm[b]));
        if let Some(axis) = slab.filter(|&a| orientation.0[a].world_axis().0 != 0) {
            let plane = if orientation.0[axis].world_axis().0 == 1 { "coronal" } else { "axial" };
            return Err(FileError::NotSagittal {
                path: volume.path.clone(),
                detail: format!(
                    "{plane} slab: {} x {} x {} voxels ({orientation}) of {} mm, only {:.0} mm along voxel axis {axis}; \
                     u2ad needs sagittal slices",
                    shape[0], shape[1], shape[2], format_mm(spacing[0]), extent_mm[axis]
                ),
            });
        }
        return Ok(());
    }
    let left_right = (0..3).find(|&a| orientation.0[a].world_axis().0 == 0).unwrap_or(0);
    // The left-right axis may tie with another thick axis (up to rounding) and still pass.
    if spacing[left_right] >= thickest * (1.0 - 1e-3) {
        return Ok(());
    }
    let thick = (0..3).fold(0, |best, a| if spacing[a] > spacing[best] { a } else { best });
    let (plane, direction) = match orientation.0[thick].world_axis().0 {
        1 => ("coronal", "anterior-posterior"),
        _ => ("axial", "inferior-superior"),
    };
    Err(FileError::NotSagittal {
        path: volume.path.clone(),
        detail: format!(
            "{plane} slices: voxels are {} x {} x {} mm ({}), thickest along {direction} (voxel axis {thick}); \
             u2ad needs sagittal slices, thickest along left-right",
            format_mm(spacing[0]),
            format_mm(spacing[1]),
            format_mm(spacing[2]),
            orientation,
        ),
    })
}
