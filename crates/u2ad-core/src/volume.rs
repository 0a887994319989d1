//! 3-D scans as nibabel reads them: voxel data, the world affine, the orientation, the
//! reorientation to the canonical RAS+ voxel order, and writing maps back onto the input grid.
//!
//! The affine is chosen as nibabel's `get_best_affine` does: the sform when its code is > 0,
//! else the qform when its code is > 0, else the pixdim scaling centred on the volume.
//! Reading is defensive: the header is validated before any data are decoded, a gzip stream is
//! inflated no further than its header declares (plus a margin: a gzip bomb is refused early)
//! and to its end (so its checksum is verified), and every problem with the input is a
//! one-line [`CoreError`] naming the file, never a panic.

use std::io::Read;
use std::path::{Path, PathBuf};

use nalgebra::{Matrix3, Matrix4, Vector3, Vector4};
use ndarray::{Array3, ArrayView3, Axis};
use nifti::{NiftiHeader, NiftiType};

use crate::error::{CoreError, Result};
use crate::staging::write_atomically;

/// Voxel index (i, j, k) to world millimetres (RAS+, as nibabel).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine(pub Matrix4<f64>);

/// Where a voxel axis points in the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum AxisCode {
    R,
    L,
    A,
    P,
    S,
    I,
}

impl AxisCode {
    /// World axis (0 = left-right, 1 = posterior-anterior, 2 = inferior-superior) and whether
    /// the voxel axis runs towards the positive RAS direction.
    pub fn world_axis(self) -> (usize, bool) {
        match self {
            AxisCode::R => (0, true),
            AxisCode::L => (0, false),
            AxisCode::A => (1, true),
            AxisCode::P => (1, false),
            AxisCode::S => (2, true),
            AxisCode::I => (2, false),
        }
    }

    fn from_world_axis(axis: usize, positive: bool) -> Self {
        match (axis, positive) {
            (0, true) => AxisCode::R,
            (0, false) => AxisCode::L,
            (1, true) => AxisCode::A,
            (1, false) => AxisCode::P,
            (2, true) => AxisCode::S,
            _ => AxisCode::I,
        }
    }

    pub fn letter(self) -> char {
        match self {
            AxisCode::R => 'R',
            AxisCode::L => 'L',
            AxisCode::A => 'A',
            AxisCode::P => 'P',
            AxisCode::S => 'S',
            AxisCode::I => 'I',
        }
    }
}

/// Orientation code of the three voxel axes, nibabel style (`aff2axcodes`): "PSR" means voxel
/// axis 0 points posterior, axis 1 superior, axis 2 right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Orientation(pub [AxisCode; 3]);

impl std::fmt::Display for Orientation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for code in self.0 {
            write!(f, "{}", code.letter())?;
        }
        Ok(())
    }
}

impl Affine {
    pub fn identity() -> Self {
        Affine(Matrix4::identity())
    }

    pub fn from_rows(rows: [[f64; 4]; 4]) -> Self {
        let mut m = Matrix4::zeros();
        for (r, row) in rows.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                m[(r, c)] = *v;
            }
        }
        Affine(m)
    }

    pub fn to_rows(&self) -> [[f64; 4]; 4] {
        let mut rows = [[0.0; 4]; 4];
        for (r, row) in rows.iter_mut().enumerate() {
            for (c, v) in row.iter_mut().enumerate() {
                *v = self.0[(r, c)];
            }
        }
        rows
    }

    /// Voxel size along each voxel axis, in mm (the norms of the affine's columns).
    pub fn spacing_mm(&self) -> [f64; 3] {
        let mut out = [0.0; 3];
        for (c, v) in out.iter_mut().enumerate() {
            *v = Vector3::new(self.0[(0, c)], self.0[(1, c)], self.0[(2, c)]).norm();
        }
        out
    }

    /// World position (mm) of a (fractional) voxel index.
    pub fn voxel_to_world(&self, ijk: [f64; 3]) -> [f64; 3] {
        let v = self.0 * Vector4::new(ijk[0], ijk[1], ijk[2], 1.0);
        [v[0], v[1], v[2]]
    }

    /// Fractional voxel index of a world position (mm).
    pub fn world_to_voxel(&self, xyz: [f64; 3]) -> [f64; 3] {
        let inv = self.0.try_inverse().unwrap_or_else(Matrix4::identity);
        let v = inv * Vector4::new(xyz[0], xyz[1], xyz[2], 1.0);
        [v[0], v[1], v[2]]
    }

    /// The orientation code, as nibabel's `aff2axcodes` (`io_orientation`): the direction cosines
    /// are replaced by the closest orthogonal matrix (polar decomposition), then voxel axes are
    /// taken in order 0, 1, 2, each assigned the world axis with the largest absolute cosine
    /// among those not yet used.
    pub fn orientation(&self) -> Orientation {
        let spacing = self.spacing_mm();
        let mut cosines = Matrix3::zeros();
        for c in 0..3 {
            let norm = if spacing[c] > 0.0 { spacing[c] } else { 1.0 };
            for r in 0..3 {
                cosines[(r, c)] = self.0[(r, c)] / norm;
            }
        }
        let mut rotation = Matrix3::zeros();
        let svd = cosines.svd(true, true);
        if let (Some(u), Some(v_t)) = (svd.u, svd.v_t) {
            let largest = svd.singular_values.max();
            let tolerance = largest * 3.0 * f64::EPSILON;
            for i in 0..3 {
                if svd.singular_values[i] > tolerance {
                    rotation += u.column(i) * v_t.row(i);
                }
            }
        }
        let mut codes = [AxisCode::R; 3];
        let mut used_world = [false; 3];
        for c in 0..3 {
            let mut best: Option<(usize, f64)> = None;
            for r in 0..3 {
                if used_world[r] {
                    continue;
                }
                let v = rotation[(r, c)];
                if best.is_none_or(|(_, b)| v.abs() > b.abs()) {
                    best = Some((r, v));
                }
            }
            // Each voxel axis takes one of the world axes still free (there always is one).
            let (r, v) = best.unwrap_or((c, 1.0));
            used_world[r] = true;
            codes[c] = AxisCode::from_world_axis(r, v >= 0.0);
        }
        Orientation(codes)
    }

    /// Largest absolute difference between two affines' entries.
    pub fn max_abs_difference(&self, other: &Affine) -> f64 {
        (self.0 - other.0).iter().fold(0.0f64, |m, v| m.max(v.abs()))
    }
}

/// How the canonical RAS+ voxel order maps onto the native one: canonical axis `a` (0 = R,
/// 1 = A, 2 = S) is native axis `native_axis[a]`, counted backwards when `flipped[a]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reorientation {
    pub native_axis: [usize; 3],
    pub flipped: [bool; 3],
    pub native_shape: [usize; 3],
}

impl Reorientation {
    pub fn from_orientation(orientation: Orientation, native_shape: [usize; 3]) -> Self {
        let mut native_axis = [0; 3];
        let mut flipped = [false; 3];
        for (voxel_axis, code) in orientation.0.iter().enumerate() {
            let (world, positive) = code.world_axis();
            native_axis[world] = voxel_axis;
            flipped[world] = !positive;
        }
        Reorientation { native_axis, flipped, native_shape }
    }

    pub fn canonical_shape(&self) -> [usize; 3] {
        [
            self.native_shape[self.native_axis[0]],
            self.native_shape[self.native_axis[1]],
            self.native_shape[self.native_axis[2]],
        ]
    }

    /// Native fractional voxel index of a canonical fractional voxel index.
    pub fn canonical_to_native(&self, canonical: [f64; 3]) -> [f64; 3] {
        let mut native = [0.0; 3];
        for a in 0..3 {
            let n = self.native_shape[self.native_axis[a]] as f64;
            native[self.native_axis[a]] = if self.flipped[a] { n - 1.0 - canonical[a] } else { canonical[a] };
        }
        native
    }

    /// Canonical fractional voxel index of a native fractional voxel index.
    pub fn native_to_canonical(&self, native: [f64; 3]) -> [f64; 3] {
        let mut canonical = [0.0; 3];
        for a in 0..3 {
            let n = self.native_shape[self.native_axis[a]] as f64;
            let v = native[self.native_axis[a]];
            canonical[a] = if self.flipped[a] { n - 1.0 - v } else { v };
        }
        canonical
    }

    /// The canonical (RAS+) affine given the native one.
    pub fn canonical_affine(&self, native: &Affine) -> Affine {
        // canonical index -> native index is affine: native = P * canonical + t.
        let mut m = Matrix4::zeros();
        m[(3, 3)] = 1.0;
        for a in 0..3 {
            let n = self.native_shape[self.native_axis[a]] as f64;
            if self.flipped[a] {
                m[(self.native_axis[a], a)] = -1.0;
                m[(self.native_axis[a], 3)] = n - 1.0;
            } else {
                m[(self.native_axis[a], a)] = 1.0;
            }
        }
        Affine(native.0 * m)
    }

    /// Reorders a native array into canonical order (a view: no copy).
    pub fn to_canonical<'a, T>(&self, native: ArrayView3<'a, T>) -> ArrayView3<'a, T> {
        let mut view = native.permuted_axes(self.native_axis);
        for a in 0..3 {
            if self.flipped[a] {
                view.invert_axis(Axis(a));
            }
        }
        view
    }

    /// Reorders a canonical array back into native order.
    pub fn to_native<T: Clone>(&self, canonical: ArrayView3<'_, T>) -> Array3<T> {
        let mut view = canonical;
        for a in 0..3 {
            if self.flipped[a] {
                view.invert_axis(Axis(a));
            }
        }
        // canonical axis a holds native axis native_axis[a]; invert the permutation.
        let mut inverse = [0; 3];
        for a in 0..3 {
            inverse[self.native_axis[a]] = a;
        }
        view.permuted_axes(inverse).as_standard_layout().to_owned()
    }
}

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

/// Size of a NIfTI-1 header in bytes; single-file (`.nii`) data start at 352 or later.
const NIFTI1_HEADER_BYTES: usize = 348;
const NIFTI1_MIN_VOX_OFFSET: usize = 352;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// How far a gzip stream may inflate beyond the size its header declares (trailing bytes) before
/// it is refused as corrupt or hostile (a gzip bomb).
pub const GZIP_MARGIN_BYTES: usize = 1 << 20;
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
fn fixed_zooms_warning(header: &NiftiHeader, path: &Path) -> Option<String> {
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
        let a = quaternion_w(b, c, d).ok_or_else(|| CoreError::Header {
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
        return Err(CoreError::Header {
            path: path.to_path_buf(),
            detail: "the voxel-to-world affine holds NaN or infinite values".into(),
        });
    }
    let det = affine.fixed_view::<3, 3>(0, 0).determinant();
    if det.abs() < 1e-12 {
        return Err(CoreError::Header {
            path: path.to_path_buf(),
            detail: "the voxel-to-world affine is singular (a voxel axis has no direction)".into(),
        });
    }
    Ok(Affine(affine))
}

/// The file's bytes (gunzipped when it starts with the gzip magic, whatever its name), its header
/// and its checked layout. A gzip stream is inflated in two steps: the header, then at most the
/// size that header declares plus [`GZIP_MARGIN_BYTES`], so that a gzip bomb is refused before it
/// is inflated in full; a stream read to its end has its checksum verified.
fn read_checked(path: &Path) -> Result<(Vec<u8>, NiftiHeader, Layout)> {
    let raw = std::fs::read(path).map_err(|e| CoreError::io(path, e))?;
    if !raw.starts_with(&GZIP_MAGIC) {
        let header = parse_header(&raw, path)?;
        let layout = check_layout(&header, path)?;
        return Ok((raw, header, layout));
    }
    let mut stream = flate2::read::MultiGzDecoder::new(&raw[..]);
    let mut bytes = Vec::new();
    inflate_up_to(&mut stream, NIFTI1_HEADER_BYTES, &mut bytes, path)?;
    let header = parse_header(&bytes, path)?;
    let layout = check_layout(&header, path)?;
    let declared = layout.offset.saturating_add(layout.nbytes);
    let limit = declared.saturating_add(GZIP_MARGIN_BYTES);
    // Room for the whole stream only where the trailer's size agrees with the header.
    let stated = gzip_trailer_size(&raw);
    if (declared..=limit).contains(&stated) {
        let _ = bytes.try_reserve_exact(stated.saturating_sub(bytes.len()));
    }
    inflate_up_to(&mut stream, limit.saturating_add(1), &mut bytes, path)?;
    if bytes.len() > limit {
        return Err(CoreError::input(
            path,
            format!(
                "the gzip stream inflates beyond the {declared} bytes its header declares (a corrupt or hostile file)"
            ),
        ));
    }
    Ok((bytes, header, layout))
}

/// Inflates `stream` into `out` until `out` holds `limit` bytes or the stream ends.
fn inflate_up_to(stream: &mut impl Read, limit: usize, out: &mut Vec<u8>, path: &Path) -> Result<()> {
    let wanted = limit.saturating_sub(out.len()) as u64;
    stream.take(wanted).read_to_end(out).map(drop).map_err(|e| gzip_error(path, e))
}

/// The uncompressed size the gzip trailer states (mod 2³²), bounded by deflate's largest
/// expansion (~1032 times), which bounds a corrupt trailer's claim.
fn gzip_trailer_size(raw: &[u8]) -> usize {
    let Some(trailer) = raw.len().checked_sub(4).and_then(|start| raw.get(start..)) else { return 0 };
    let stated = u32::from_le_bytes(trailer.try_into().unwrap_or([0; 4])) as usize;
    stated.min(raw.len().saturating_mul(1032))
}

/// Reads the first `limit` bytes of a file (gunzipped when it is gzip).
fn read_file_prefix(path: &Path, limit: usize) -> Result<Vec<u8>> {
    let mut file = std::fs::File::open(path).map_err(|e| CoreError::io(path, e))?;
    let mut magic = Vec::with_capacity(2);
    (&mut file).take(2).read_to_end(&mut magic).map_err(|e| CoreError::io(path, e))?;
    let mut out = Vec::with_capacity(limit);
    if magic == GZIP_MAGIC {
        let reader = std::io::Cursor::new(magic).chain(std::io::BufReader::new(file));
        let mut decoder = flate2::read::MultiGzDecoder::new(reader).take(limit as u64);
        decoder.read_to_end(&mut out).map_err(|e| gzip_error(path, e))?;
    } else {
        out.extend_from_slice(&magic);
        file.take(limit.saturating_sub(2) as u64).read_to_end(&mut out).map_err(|e| CoreError::io(path, e))?;
    }
    Ok(out)
}

fn gzip_error(path: &Path, err: std::io::Error) -> CoreError {
    let reason = match err.kind() {
        std::io::ErrorKind::UnexpectedEof => "the gzip stream ends early".to_string(),
        _ => err.to_string(),
    };
    CoreError::Truncated { path: path.to_path_buf(), reason }
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
fn parse_header(bytes: &[u8], path: &Path) -> Result<NiftiHeader> {
    let not_nifti = |reason: String| CoreError::NotNifti { path: path.to_path_buf(), reason };
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

/// Reads the header only (cheap: grids can be compared before any data is decoded).
pub fn read_header(path: &Path) -> Result<NiftiHeader> {
    let bytes = read_file_prefix(path, NIFTI1_HEADER_BYTES)?;
    parse_header(&bytes, path)
}

/// Shape, data type and data offset of a header, checked against what u2ad reads.
struct Layout {
    shape: [usize; 3],
    datatype: NiftiType,
    voxel_type: VoxelType,
    offset: usize,
    nbytes: usize,
}

fn check_layout(header: &NiftiHeader, path: &Path) -> Result<Layout> {
    let header_error = |detail: String| CoreError::Header { path: path.to_path_buf(), detail };
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
        return Err(CoreError::Dimensions {
            path: path.to_path_buf(),
            dims: dims.iter().map(|&n| n as usize).collect(),
        });
    }
    let shape = [dims[0] as usize, dims[1] as usize, dims[2] as usize];
    let datatype = header.data_type().map_err(|_| CoreError::DataType {
        path: path.to_path_buf(),
        datatype: format!("code {} (unknown)", header.datatype),
    })?;
    let voxel_type = VoxelType::from_nifti(datatype)
        .ok_or_else(|| CoreError::DataType { path: path.to_path_buf(), datatype: format!("{datatype:?}") })?;
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
fn scaling(header: &NiftiHeader, path: &Path) -> Result<Option<(f64, f64)>> {
    let slope = header.scl_slope as f64;
    let inter = header.scl_inter as f64;
    if slope == 0.0 || !slope.is_finite() {
        return Ok(None);
    }
    if !inter.is_finite() {
        return Err(CoreError::Header {
            path: path.to_path_buf(),
            detail: format!("scl_slope = {slope} but scl_inter = {inter}"),
        });
    }
    Ok(if slope == 1.0 && inter == 0.0 { None } else { Some((slope, inter)) })
}

/// Voxel values in file order as f32, after `value * slope + inter` (computed in f64).
fn decode_voxels(raw: &[u8], voxel_type: VoxelType, big_endian: bool, scale: Option<(f64, f64)>) -> Vec<f32> {
    fn decode<const N: usize>(raw: &[u8], scale: Option<(f64, f64)>, convert: impl Fn([u8; N]) -> f64) -> Vec<f32> {
        let element = |chunk: &[u8]| {
            let mut bytes = [0u8; N];
            bytes.copy_from_slice(chunk);
            convert(bytes)
        };
        let chunks = raw.chunks_exact(N);
        match scale {
            Some((slope, inter)) => chunks.map(|c| (element(c) * slope + inter) as f32).collect(),
            None => chunks.map(|c| element(c) as f32).collect(),
        }
    }
    macro_rules! decode_as {
        ($t:ty, $n:literal) => {
            if big_endian {
                decode::<$n>(raw, scale, |b| <$t>::from_be_bytes(b) as f64)
            } else {
                decode::<$n>(raw, scale, |b| <$t>::from_le_bytes(b) as f64)
            }
        };
    }
    match voxel_type {
        VoxelType::UInt8 => decode_as!(u8, 1),
        VoxelType::Int16 => decode_as!(i16, 2),
        VoxelType::UInt16 => decode_as!(u16, 2),
        VoxelType::Int32 => decode_as!(i32, 4),
        VoxelType::Float32 => decode_as!(f32, 4),
        VoxelType::Float64 => decode_as!(f64, 8),
    }
}

impl Volume {
    /// Reads a `.nii` or `.nii.gz` 3-D image (or 4-D with one volume) as nibabel reads it: the
    /// voxel values after `scl_slope`/`scl_inter`, the affine of `get_best_affine`. Gzip is
    /// recognised by its magic bytes, not the file name. Every problem with the file is a
    /// one-line [`CoreError`] naming it; voxels that are NaN or infinite are an error.
    pub fn read(path: impl AsRef<Path>) -> Result<Volume> {
        let path = path.as_ref();
        let (bytes, header, layout) = read_checked(path)?;
        let scale = scaling(&header, path)?;
        let affine = header_affine(&header, path)?;
        if let Some(warning) = fixed_zooms_warning(&header, path) {
            tracing::warn!("{warning}");
        }

        let available = bytes.len().saturating_sub(layout.offset);
        if available < layout.nbytes {
            return Err(CoreError::Truncated {
                path: path.to_path_buf(),
                reason: format!(
                    "{:?} {:?} voxels need {} bytes of data from byte {}, the file holds {}",
                    layout.shape, layout.datatype, layout.nbytes, layout.offset, available
                ),
            });
        }
        let raw = &bytes[layout.offset..layout.offset + layout.nbytes];
        let big_endian = header.endianness == nifti::Endianness::Big;
        let values = decode_voxels(raw, layout.voxel_type, big_endian, scale);
        drop(bytes);
        // NIfTI stores voxels with i fastest (Fortran order); `data` is in standard layout.
        let [nx, ny, nz] = layout.shape;
        let mut standard = vec![0f32; values.len()];
        for (row, file_row) in values.chunks_exact(nx).enumerate() {
            let (j, k) = (row % ny, row / ny);
            for (i, &v) in file_row.iter().enumerate() {
                standard[(i * ny + j) * nz + k] = v;
            }
        }
        drop(values);
        let data = Array3::from_shape_vec(layout.shape, standard)
            .map_err(|e| CoreError::NotNifti { path: path.to_path_buf(), reason: e.to_string() })?;
        let non_finite = data.iter().filter(|v| !v.is_finite()).count();
        if non_finite > 0 {
            return Err(CoreError::NonFinite { path: path.to_path_buf(), count: non_finite });
        }
        Ok(Volume { data, affine, header, voxel_type: layout.voxel_type, path: path.to_path_buf() })
    }

    /// An empty grid for maps of a preprocessed 2-D slice that has no scan behind it (the
    /// reference's `.npy` slices): `rows` x `cols` x 1 voxels of `pixel_mm` x `pixel_mm` x 1 mm,
    /// voxel axis i = the slice's rows (superior to inferior), j = its columns (anterior to
    /// posterior), k = left-right, so that NIfTI viewers show it as a sagittal image. The sform
    /// (code 2, aligned anatomical) puts row 0, column 0 at the world origin.
    pub fn sample_grid(path: &Path, rows: usize, cols: usize, pixel_mm: f64) -> Volume {
        let p = pixel_mm as f32;
        let mut header = NiftiHeader {
            dim: [3, rows as u16, cols as u16, 1, 1, 1, 1, 1],
            pixdim: [1.0, p, p, 1.0, 1.0, 1.0, 1.0, 1.0],
            xyzt_units: 2, // mm
            qform_code: 0,
            sform_code: 2,
            srow_x: [0.0, 0.0, 1.0, 0.0],
            srow_y: [0.0, -p, 0.0, 0.0],
            srow_z: [-p, 0.0, 0.0, 0.0],
            ..NiftiHeader::default()
        };
        header.datatype = 16;
        header.bitpix = 32;
        let affine = Affine::from_rows([
            [0.0, 0.0, 1.0, 0.0],
            [0.0, -pixel_mm, 0.0, 0.0],
            [-pixel_mm, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]);
        Volume {
            data: Array3::zeros((rows, cols, 1)),
            affine,
            header,
            voxel_type: VoxelType::Float32,
            path: path.to_path_buf(),
        }
    }

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
            return Err(CoreError::GridMismatch {
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
            return Err(CoreError::GridMismatch {
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

    /// Writes `data` (native voxel order, this volume's shape) onto exactly this volume's grid
    /// and header, as `voxel_type`, atomically (temporary file in the same folder, then rename).
    ///
    /// The written header is the reference header with the sform, qform, their codes and pixdim
    /// unchanged; only the shape (3-D), data type, `scl_slope` = 1, `scl_inter` = 0,
    /// `cal_min`/`cal_max` = 0, the intent (none) and the byte order (native) change. Integer
    /// types round and saturate. `path` must end in `.nii` or `.nii.gz` (gzip).
    pub fn write_like(&self, data: ArrayView3<'_, f32>, voxel_type: VoxelType, path: &Path) -> Result<()> {
        if data.shape() != self.data.shape() {
            return Err(CoreError::input(
                path,
                format!("map shape {:?} differs from the reference grid {:?}", data.shape(), self.shape()),
            ));
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let compressed = if name.ends_with(".nii.gz") {
            true
        } else if name.ends_with(".nii") {
            false
        } else {
            return Err(CoreError::input(path, "output file name must end in .nii or .nii.gz"));
        };
        let mut header = self.header.clone();
        header.scl_slope = 1.0;
        header.scl_inter = 0.0;
        header.dim = [3, self.header.dim[1], self.header.dim[2], self.header.dim[3], 1, 1, 1, 1];
        header.pixdim[4] = 1.0;
        header.cal_min = 0.0;
        header.cal_max = 0.0;
        header.intent_code = 0;
        header.intent_p1 = 0.0;
        header.intent_p2 = 0.0;
        header.intent_p3 = 0.0;
        header.intent_name = [0; 16];
        header.vox_offset = NIFTI1_MIN_VOX_OFFSET as f32;
        header.endianness = nifti::Endianness::native();
        let element_bytes = match voxel_type {
            VoxelType::UInt8 => 1,
            VoxelType::Int16 | VoxelType::UInt16 => 2,
            VoxelType::Int32 | VoxelType::Float32 => 4,
            VoxelType::Float64 => 8,
        };
        write_atomically(path, |tmp| {
            let options = nifti::writer::WriterOptions::new(tmp).reference_header(&header);
            let result = match voxel_type {
                VoxelType::UInt8 => options.write_nifti(&data.mapv(|v| v.round().clamp(0.0, 255.0) as u8)),
                VoxelType::Int16 => options.write_nifti(&data.mapv(|v| v.round().clamp(-32768.0, 32767.0) as i16)),
                VoxelType::UInt16 => options.write_nifti(&data.mapv(|v| v.round().clamp(0.0, 65535.0) as u16)),
                VoxelType::Int32 => options.write_nifti(&data.mapv(|v| v.round() as i32)),
                VoxelType::Float32 => options.write_nifti(&data),
                VoxelType::Float64 => options.write_nifti(&data.mapv(|v| v as f64)),
            };
            result.map_err(|e| match e {
                nifti::NiftiError::Io(io) => CoreError::input(path, format!("cannot write file: {io}")),
                other => CoreError::input(path, format!("cannot write NIfTI: {other}")),
            })?;
            if !compressed {
                // The writer flushes an uncompressed file when dropping its buffer, where a
                // failure (a full disk) would go unseen: check that everything arrived.
                let expected = (NIFTI1_MIN_VOX_OFFSET + data.len() * element_bytes) as u64;
                let written = std::fs::metadata(tmp)
                    .map_err(|e| CoreError::input(path, format!("cannot write file: {e}")))?
                    .len();
                if written != expected {
                    return Err(CoreError::input(
                        path,
                        format!("incomplete write: {written} of {expected} bytes (is the disk full?)"),
                    ));
                }
            }
            Ok(())
        })
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

/// Checks that `volume` is a sagittal scan, else [`CoreError::NotSagittal`]:
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
            return Err(CoreError::NotSagittal {
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
    Err(CoreError::NotSagittal {
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
