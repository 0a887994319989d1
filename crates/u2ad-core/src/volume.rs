//! 3-D scans as nibabel reads them: voxel data, the world affine, the orientation, the
//! reorientation to the canonical RAS+ voxel order, and writing maps back onto the input grid.
//!
//! The affine is chosen as nibabel's `get_best_affine` does: the sform when its code is > 0,
//! else the qform when its code is > 0, else the pixdim scaling centred on the volume.

use std::path::{Path, PathBuf};

use nalgebra::{Matrix3, Matrix4, Vector3, Vector4};
use ndarray::{Array3, ArrayView3, Axis};
use nifti::{InMemNiftiVolume, NiftiHeader, NiftiObject, NiftiType, ReaderOptions};

use crate::error::{CoreError, Result};

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

    /// The orientation code, as nibabel's `aff2axcodes` (largest direction cosine per voxel
    /// axis, each world axis used once).
    pub fn orientation(&self) -> Orientation {
        let spacing = self.spacing_mm();
        let mut cosines = Matrix3::zeros();
        for c in 0..3 {
            for r in 0..3 {
                cosines[(r, c)] = if spacing[c] > 0.0 { self.0[(r, c)] / spacing[c] } else { 0.0 };
            }
        }
        let mut codes = [AxisCode::R; 3];
        let mut used_world = [false; 3];
        let mut used_voxel = [false; 3];
        for _ in 0..3 {
            let mut best = (0usize, 0usize, -1.0f64);
            for c in 0..3 {
                if used_voxel[c] {
                    continue;
                }
                for r in 0..3 {
                    if used_world[r] {
                        continue;
                    }
                    let v = cosines[(r, c)].abs();
                    if v > best.2 {
                        best = (r, c, v);
                    }
                }
            }
            let (r, c, _) = best;
            used_world[r] = true;
            used_voxel[c] = true;
            codes[c] = AxisCode::from_world_axis(r, cosines[(r, c)] >= 0.0);
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
            native[self.native_axis[a]] =
                if self.flipped[a] { n - 1.0 - canonical[a] } else { canonical[a] };
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
}

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

/// nibabel's rule for the quaternion's first component (`fillpositive`): w = sqrt(1 - b² - c² - d²),
/// 0 when slightly negative through rounding, an error when clearly negative.
fn quaternion_w(b: f64, c: f64, d: f64) -> Option<f64> {
    let w2 = 1.0 - (b * b + c * c + d * d);
    let threshold = -(f32::EPSILON as f64) * 3.0;
    if w2 < threshold {
        None
    } else if w2 < 0.0 {
        Some(0.0)
    } else {
        Some(w2.sqrt())
    }
}

/// The affine chosen as nibabel's `Nifti1Header.get_best_affine`.
pub fn header_affine(header: &NiftiHeader, path: &Path) -> Result<Affine> {
    if header.sform_code > 0 {
        let mut m = Matrix4::identity();
        for c in 0..4 {
            m[(0, c)] = header.srow_x[c] as f64;
            m[(1, c)] = header.srow_y[c] as f64;
            m[(2, c)] = header.srow_z[c] as f64;
        }
        return Ok(Affine(m));
    }
    let pixdim = [header.pixdim[1] as f64, header.pixdim[2] as f64, header.pixdim[3] as f64];
    if header.qform_code > 0 {
        let (b, c, d) = (header.quatern_b as f64, header.quatern_c as f64, header.quatern_d as f64);
        let a = quaternion_w(b, c, d).ok_or_else(|| CoreError::Header {
            path: path.to_path_buf(),
            detail: format!("invalid qform quaternion (b² + c² + d² = {:.4} > 1) and no sform", b * b + c * c + d * d),
        })?;
        let r = Matrix3::new(
            a * a + b * b - c * c - d * d,
            2.0 * (b * c - a * d),
            2.0 * (b * d + a * c),
            2.0 * (b * c + a * d),
            a * a + c * c - b * b - d * d,
            2.0 * (c * d - a * b),
            2.0 * (b * d - a * c),
            2.0 * (c * d + a * b),
            a * a + d * d - c * c - b * b,
        );
        let qfac = if header.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
        let zooms = [pixdim[0], pixdim[1], pixdim[2] * qfac];
        let mut m = Matrix4::identity();
        for row in 0..3 {
            for col in 0..3 {
                m[(row, col)] = r[(row, col)] * zooms[col];
            }
        }
        m[(0, 3)] = header.quatern_x as f64;
        m[(1, 3)] = header.quatern_y as f64;
        m[(2, 3)] = header.quatern_z as f64;
        return Ok(Affine(m));
    }
    // nibabel's base affine: x flipped, origin at the volume centre.
    let mut m = Matrix4::identity();
    let zooms = [-pixdim[0], pixdim[1], pixdim[2]];
    for a in 0..3 {
        let n = header.dim[a + 1].max(1) as f64;
        m[(a, a)] = zooms[a];
        m[(a, 3)] = -(n - 1.0) / 2.0 * zooms[a];
    }
    Ok(Affine(m))
}

fn classify_nifti_error(path: &Path, err: nifti::NiftiError) -> CoreError {
    use nifti::NiftiError as E;
    let text = err.to_string();
    match err {
        E::Io(io) => {
            let kind = io.kind();
            if kind == std::io::ErrorKind::NotFound || kind == std::io::ErrorKind::PermissionDenied {
                CoreError::io(path, io)
            } else if kind == std::io::ErrorKind::UnexpectedEof {
                CoreError::Truncated { path: path.to_path_buf(), reason: "unexpected end of file".into() }
            } else if kind == std::io::ErrorKind::InvalidInput || kind == std::io::ErrorKind::InvalidData {
                CoreError::Truncated { path: path.to_path_buf(), reason: io.to_string() }
            } else {
                CoreError::io(path, io)
            }
        }
        E::InvalidFormat | E::InvalidCode(..) => {
            CoreError::NotNifti { path: path.to_path_buf(), reason: text }
        }
        E::IncompatibleLength(..) => CoreError::Truncated { path: path.to_path_buf(), reason: text },
        E::UnsupportedDataType(t) => CoreError::DataType { path: path.to_path_buf(), datatype: format!("{t:?}") },
        _ => CoreError::NotNifti { path: path.to_path_buf(), reason: text },
    }
}

/// Reads the header only (cheap: grids can be compared before any data is decoded).
pub fn read_header(path: &Path) -> Result<NiftiHeader> {
    if !path.exists() {
        return Err(CoreError::io(path, std::io::Error::new(std::io::ErrorKind::NotFound, "no such file")));
    }
    NiftiHeader::from_file(path).map_err(|e| classify_nifti_error(path, e))
}

impl Volume {
    /// Reads a `.nii` or `.nii.gz` 3-D image (or 4-D with one volume).
    pub fn read(path: impl AsRef<Path>) -> Result<Volume> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(CoreError::io(path, std::io::Error::new(std::io::ErrorKind::NotFound, "no such file")));
        }
        let object = ReaderOptions::new().read_file(path).map_err(|e| classify_nifti_error(path, e))?;
        let header = object.header().clone();
        let rank = header.dim[0] as usize;
        let dims: Vec<usize> = (1..=rank.min(7)).map(|a| header.dim[a] as usize).collect();
        let is_3d = rank == 3 || (rank == 4 && header.dim[4] == 1);
        if !is_3d {
            return Err(CoreError::Dimensions { path: path.to_path_buf(), dims });
        }
        let datatype = header.data_type().map_err(|e| classify_nifti_error(path, e))?;
        let voxel_type = VoxelType::from_nifti(datatype)
            .ok_or_else(|| CoreError::DataType { path: path.to_path_buf(), datatype: format!("{datatype:?}") })?;
        let affine = header_affine(&header, path)?;

        let raw = object.into_volume().into_raw_data();
        let mut raw_dim = [1u16; 8];
        raw_dim[0] = 3;
        raw_dim[1..4].copy_from_slice(&header.dim[1..4]);
        let unscaled = InMemNiftiVolume::from_raw_fields(raw_dim, datatype, 0.0, 0.0, raw, header.endianness)
            .map_err(|e| classify_nifti_error(path, e))?;
        use nifti::IntoNdArray;
        let data = unscaled
            .into_ndarray::<f64>()
            .map_err(|e| classify_nifti_error(path, e))?
            .into_dimensionality::<ndarray::Ix3>()
            .map_err(|e| CoreError::NotNifti { path: path.to_path_buf(), reason: e.to_string() })?;
        // nibabel: a slope of 0 or NaN means no scaling; a NaN intercept means 0.
        let slope = header.scl_slope as f64;
        let inter = header.scl_inter as f64;
        let (slope, inter) = if slope == 0.0 || !slope.is_finite() {
            (1.0, 0.0)
        } else {
            (slope, if inter.is_finite() { inter } else { 0.0 })
        };
        let data: Array3<f32> = data.mapv(|v| (v * slope + inter) as f32).as_standard_layout().to_owned();
        let non_finite = data.iter().filter(|v| !v.is_finite()).count();
        if non_finite > 0 {
            return Err(CoreError::NonFinite { path: path.to_path_buf(), count: non_finite });
        }
        Ok(Volume { data, affine, header, voxel_type, path: path.to_path_buf() })
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

    /// Checks that `other` lies on this volume's grid: the same shape, and affines equal within
    /// `tolerance_mm` (entries of the 4 x 4 matrix).
    pub fn check_same_grid(&self, other: &Volume, tolerance_mm: f64) -> Result<()> {
        if self.shape() != other.shape() {
            return Err(CoreError::GridMismatch {
                path: other.path.clone(),
                reference: self.path.clone(),
                detail: format!("shape {:?} differs from {:?}", other.shape(), self.shape()),
            });
        }
        let diff = self.affine.max_abs_difference(&other.affine);
        if diff > tolerance_mm {
            return Err(CoreError::GridMismatch {
                path: other.path.clone(),
                reference: self.path.clone(),
                detail: format!("affines differ by up to {diff:.4} mm (tolerance {tolerance_mm} mm)"),
            });
        }
        Ok(())
    }

    /// Writes `data` (native voxel order, this volume's shape) onto exactly this volume's grid
    /// and header, as `voxel_type`, atomically (temporary file in the same folder, then rename).
    pub fn write_like(&self, data: ArrayView3<'_, f32>, voxel_type: VoxelType, path: &Path) -> Result<()> {
        if data.shape() != self.data.shape() {
            return Err(CoreError::input(
                path,
                format!("map shape {:?} differs from the reference grid {:?}", data.shape(), self.shape()),
            ));
        }
        let mut header = self.header.clone();
        header.scl_slope = 1.0;
        header.scl_inter = 0.0;
        header.dim = [3, self.header.dim[1], self.header.dim[2], self.header.dim[3], 1, 1, 1, 1];
        header.pixdim[4] = 1.0;
        header.cal_min = 0.0;
        header.cal_max = 0.0;
        header.vox_offset = 352.0;
        header.endianness = nifti::Endianness::native();
        write_atomically(path, |tmp| {
            let options = nifti::writer::WriterOptions::new(tmp).reference_header(&header);
            let result = match voxel_type {
                VoxelType::UInt8 => options.write_nifti(&data.mapv(|v| v.round().clamp(0.0, 255.0) as u8)),
                VoxelType::Int16 => options.write_nifti(&data.mapv(|v| v.round().clamp(-32768.0, 32767.0) as i16)),
                VoxelType::UInt16 => options.write_nifti(&data.mapv(|v| v.round().clamp(0.0, 65535.0) as u16)),
                VoxelType::Int32 => options.write_nifti(&data.mapv(|v| v.round() as i32)),
                VoxelType::Float32 => options.write_nifti(&data.to_owned()),
                VoxelType::Float64 => options.write_nifti(&data.mapv(|v| v as f64)),
            };
            result.map_err(|e| classify_nifti_error(tmp, e))
        })
    }
}

/// Writes a file through `write` into a temporary sibling, then renames it onto `path`, so that
/// a failure never leaves a half-written output. The temporary name keeps the extension.
pub fn write_atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| CoreError::io(dir, e))?;
    let name = path
        .file_name()
        .ok_or_else(|| CoreError::input(path, "output path has no file name"))?
        .to_string_lossy()
        .into_owned();
    let tmp = dir.join(format!(".tmp-{}-{}", std::process::id(), name));
    match write(&tmp) {
        Ok(()) => std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            CoreError::io(path, e)
        }),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}
