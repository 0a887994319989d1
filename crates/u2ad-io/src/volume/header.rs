//! The NIfTI-1 header: its parsing and checks (magic, shape, data type, data offset), the voxel
//! types u2ad reads and writes, the intensity scaling, and the affine chosen as nibabel does.

use std::path::Path;

use nalgebra::{Matrix3, Matrix4};
use nifti::{NiftiHeader, NiftiType};

use super::Affine;
use crate::error::{FileError, Result};

/// The on-disk data type of an image, kept so that write-then-read keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum VoxelType {
    UInt8,
    Int16,
    UInt16,
    Int32,
    Float32,
    Float64,
}

impl VoxelType {
    fn from_nifti(t: NiftiType) -> Option<Self> {
        Some(match t {
            NiftiType::Uint8 => VoxelType::UInt8,
            NiftiType::Int16 => VoxelType::Int16,
            NiftiType::Uint16 => VoxelType::UInt16,
            NiftiType::Int32 => VoxelType::Int32,
            NiftiType::Float32 => VoxelType::Float32,
            NiftiType::Float64 => VoxelType::Float64,
            _ => return None,
        })
    }

    /// The NIfTI-1 `datatype` code.
    pub fn nifti_code(self) -> i16 {
        match self {
            VoxelType::UInt8 => NiftiType::Uint8 as i16,
            VoxelType::Int16 => NiftiType::Int16 as i16,
            VoxelType::UInt16 => NiftiType::Uint16 as i16,
            VoxelType::Int32 => NiftiType::Int32 as i16,
            VoxelType::Float32 => NiftiType::Float32 as i16,
            VoxelType::Float64 => NiftiType::Float64 as i16,
        }
    }
}

/// Size of a NIfTI-1 header in bytes; single-file (`.nii`) data start at 352 or later.
pub(super) const NIFTI1_HEADER_BYTES: usize = 348;
pub(super) const NIFTI1_MIN_VOX_OFFSET: usize = 352;
/// nibabel's `Nifti1Header.quaternion_threshold`.
const QUATERNION_THRESHOLD: f64 = 3.0 * f32::EPSILON as f64;

/// nibabel's `fillpositive`: w = sqrt(1 - b² - c² - d²), 0 when |1 - b² - c² - d²| is below the
/// float32 threshold, an error when clearly negative.
fn quaternion_w(b: f64, c: f64, d: f64) -> Option<f64> {
    let w2 = 1.0 - (b * b + c * c + d * d);
    if w2.abs() < QUATERNION_THRESHOLD {
        Some(0.0)
    } else if w2 < 0.0 || !w2.is_finite() {
        None
    } else {
        Some(w2.sqrt())
    }
}

/// nibabel's `quat2mat` (normalises the quaternion).
fn quaternion_matrix(w: f64, x: f64, y: f64, z: f64) -> Matrix3<f64> {
    let nq = w * w + x * x + y * y + z * z;
    if nq < f64::EPSILON {
        return Matrix3::identity();
    }
    let s = 2.0 / nq;
    let (xs, ys, zs) = (x * s, y * s, z * s);
    let (wx, wy, wz) = (w * xs, w * ys, w * zs);
    let (xx, xy, xz) = (x * xs, x * ys, x * zs);
    let (yy, yz, zz) = (y * ys, y * zs, z * zs);
    Matrix3::new(
        1.0 - (yy + zz),
        xy - wz,
        xz + wy,
        xy + wz,
        1.0 - (xx + zz),
        yz - wx,
        xz - wy,
        yz + wx,
        1.0 - (xx + yy),
    )
}

/// A `qform_code`/`sform_code` that nibabel accepts (others are reset to 0 on load).
fn xform_code_valid(code: i16) -> bool {
    (1..=5).contains(&code)
}

/// pixdim[1..=3] as nibabel fixes them on load: 0 becomes 1, negatives their absolute value.
fn fixed_zooms(header: &NiftiHeader) -> [f64; 3] {
    let mut zooms = [0.0; 3];
    for (a, z) in zooms.iter_mut().enumerate() {
        let v = header.pixdim[a + 1] as f64;
        *z = if v == 0.0 { 1.0 } else { v.abs() };
    }
    zooms
}

/// The warning for pixdim[1..=3] that are zero or negative, which [`fixed_zooms`] fixes as nibabel
/// does (silently): one line naming the file, the fields and the values used; `None` when all
/// are positive.
pub(super) fn fixed_zooms_warning(header: &NiftiHeader, path: &Path) -> Option<String> {
    let zooms = fixed_zooms(header);
    let fixed: Vec<String> = (1..=3)
        .filter(|&a| header.pixdim[a] <= 0.0)
        .map(|a| format!("pixdim[{a}] = {} read as {}", header.pixdim[a], zooms[a - 1]))
        .collect();
    (!fixed.is_empty()).then(|| {
        format!("{}: voxel sizes that are not positive, fixed as nibabel does: {}", path.display(), fixed.join(", "))
    })
}

/// The affine chosen as nibabel's `Nifti1Header.get_best_affine` after nibabel's header fixes:
/// the sform when its code is valid and > 0, else the qform when its code is valid and > 0, else
/// the pixdim scaling centred on the volume with x flipped.
pub fn header_affine(header: &NiftiHeader, path: &Path) -> Result<Affine> {
    let affine = if xform_code_valid(header.sform_code) {
        let mut m = Matrix4::identity();
        for c in 0..4 {
            m[(0, c)] = header.srow_x[c] as f64;
            m[(1, c)] = header.srow_y[c] as f64;
            m[(2, c)] = header.srow_z[c] as f64;
        }
        m
    } else if xform_code_valid(header.qform_code) {
        let (b, c, d) = (header.quatern_b as f64, header.quatern_c as f64, header.quatern_d as f64);
        let a = quaternion_w(b, c, d).ok_or_else(|| FileError::Header {
            path: path.to_path_buf(),
            detail: format!("invalid qform quaternion (b² + c² + d² = {:.7} > 1) and no sform", b * b + c * c + d * d),
        })?;
        let r = quaternion_matrix(a, b, c, d);
        let qfac = if header.pixdim[0] == -1.0 { -1.0 } else { 1.0 };
        let mut zooms = fixed_zooms(header);
        zooms[2] *= qfac;
        let mut m = Matrix4::identity();
        for row in 0..3 {
            for col in 0..3 {
                m[(row, col)] = r[(row, col)] * zooms[col];
            }
        }
        m[(0, 3)] = header.quatern_x as f64;
        m[(1, 3)] = header.quatern_y as f64;
        m[(2, 3)] = header.quatern_z as f64;
        m
    } else {
        // nibabel's base affine (`shape_zoom_affine` with x flipped): origin at the centre.
        let rank = (header.dim[0] as usize).clamp(1, 7);
        let zooms = fixed_zooms(header);
        let mut m = Matrix4::identity();
        for a in 0..3 {
            let n = if a < rank { header.dim[a + 1] as f64 } else { 1.0 };
            let zoom = if a == 0 { -zooms[a] } else { zooms[a] };
            m[(a, a)] = zoom;
            m[(a, 3)] = -(n - 1.0) / 2.0 * zoom;
        }
        m
    };
    if affine.iter().any(|v| !v.is_finite()) {
        return Err(FileError::Header {
            path: path.to_path_buf(),
            detail: "the voxel-to-world affine holds NaN or infinite values".into(),
        });
    }
    let det = affine.fixed_view::<3, 3>(0, 0).determinant();
    if det.abs() < 1e-12 {
        return Err(FileError::Header {
            path: path.to_path_buf(),
            detail: "the voxel-to-world affine is singular (a voxel axis has no direction)".into(),
        });
    }
    Ok(Affine(affine))
}

/// What a file that is not NIfTI-1 seems to be, for the error message.
fn describe_non_nifti(bytes: &[u8]) -> String {
    let at = |offset: usize, magic: &[u8]| {
        bytes.len() >= offset + magic.len() && &bytes[offset..offset + magic.len()] == magic
    };
    if at(0, b"\x93NUMPY") {
        "it is a NumPy .npy array".into()
    } else if at(4, b"n+2\0") || at(4, b"ni2\0") {
        "it is NIfTI-2: convert it to NIfTI-1, e.g. with nibabel".into()
    } else if at(128, b"DICM") {
        "it is DICOM: convert it to NIfTI first, e.g. with dcm2niix".into()
    } else if at(0, b"NRRD") {
        "it is NRRD".into()
    } else if at(0, b"PK\x03\x04") {
        "it is a zip archive".into()
    } else if bytes.len() < NIFTI1_HEADER_BYTES {
        format!("{} bytes, shorter than a NIfTI-1 header ({NIFTI1_HEADER_BYTES} bytes)", bytes.len())
    } else {
        "no NIfTI-1 magic 'n+1' at byte 344".into()
    }
}

/// Parses and checks a NIfTI-1 single-file header at the start of `bytes`.
pub(super) fn parse_header(bytes: &[u8], path: &Path) -> Result<NiftiHeader> {
    let not_nifti = |reason: String| FileError::NotNifti { path: path.to_path_buf(), reason };
    if bytes.len() < NIFTI1_HEADER_BYTES {
        return Err(not_nifti(describe_non_nifti(bytes)));
    }
    match &bytes[344..348] {
        b"n+1\0" => {}
        b"ni1\0" => {
            return Err(not_nifti(
                "it is the header of a .hdr/.img pair: convert it to a single .nii or .nii.gz".into(),
            ))
        }
        _ => return Err(not_nifti(describe_non_nifti(bytes))),
    }
    NiftiHeader::from_reader(&bytes[..NIFTI1_HEADER_BYTES]).map_err(|e| not_nifti(e.to_string()))
}

/// Shape, data type and data offset of a header, checked against what u2ad reads.
pub(super) struct Layout {
    pub(super) shape: [usize; 3],
    pub(super) datatype: NiftiType,
    pub(super) voxel_type: VoxelType,
    pub(super) offset: usize,
    pub(super) nbytes: usize,
}

pub(super) fn check_layout(header: &NiftiHeader, path: &Path) -> Result<Layout> {
    let header_error = |detail: String| FileError::Header { path: path.to_path_buf(), detail };
    let rank = header.dim[0] as usize;
    if !(1..=7).contains(&rank) {
        return Err(header_error(format!(
            "dim[0] = {} is not a number of dimensions from 1 to 7",
            header.dim[0] as i16
        )));
    }
    // NIfTI dimensions are signed 16-bit; the reader gives them unsigned.
    let dims: Vec<i64> = (1..=rank).map(|a| header.dim[a] as i16 as i64).collect();
    if let Some(a) = dims.iter().position(|&n| n < 1) {
        return Err(header_error(format!("dimension {} has {} voxels", a + 1, dims[a])));
    }
    let is_single_volume = rank >= 3 && dims[3..].iter().all(|&n| n == 1);
    if !is_single_volume {
        return Err(FileError::Dimensions {
            path: path.to_path_buf(),
            dims: dims.iter().map(|&n| n as usize).collect(),
        });
    }
    let shape = [dims[0] as usize, dims[1] as usize, dims[2] as usize];
    let datatype = header.data_type().map_err(|_| FileError::DataType {
        path: path.to_path_buf(),
        datatype: format!("code {} (unknown)", header.datatype),
    })?;
    let voxel_type = VoxelType::from_nifti(datatype)
        .ok_or_else(|| FileError::DataType { path: path.to_path_buf(), datatype: format!("{datatype:?}") })?;
    let vox_offset = header.vox_offset;
    if !vox_offset.is_finite() {
        return Err(header_error(format!("vox_offset = {vox_offset} is not a byte offset")));
    }
    if (vox_offset as f64) < NIFTI1_MIN_VOX_OFFSET as f64 {
        return Err(header_error(format!(
            "vox_offset = {vox_offset} lies inside the header (a .nii file's data start at byte {NIFTI1_MIN_VOX_OFFSET} or later)"
        )));
    }
    let offset = vox_offset as usize;
    let nbytes = shape
        .iter()
        .try_fold(datatype.size_of(), |acc, &n| acc.checked_mul(n))
        .ok_or_else(|| header_error(format!("dimensions {shape:?} are too large")))?;
    Ok(Layout { shape, datatype, voxel_type, offset, nbytes })
}

/// nibabel's `get_slope_inter`: a slope of 0 or non-finite means no scaling; a valid slope with a
/// non-finite intercept is an error.
pub(super) fn scaling(header: &NiftiHeader, path: &Path) -> Result<Option<(f64, f64)>> {
    let slope = header.scl_slope as f64;
    let inter = header.scl_inter as f64;
    if slope == 0.0 || !slope.is_finite() {
        return Ok(None);
    }
    if !inter.is_finite() {
        return Err(FileError::Header {
            path: path.to_path_buf(),
            detail: format!("scl_slope = {slope} but scl_inter = {inter}"),
        });
    }
    Ok(if slope == 1.0 && inter == 0.0 { None } else { Some((slope, inter)) })
}
