//! Voxel geometry: the world affine, the orientation code of the voxel axes (nibabel's
//! `aff2axcodes`) and the reorientation between the native and the canonical RAS+ voxel order.

use nalgebra::{Matrix3, Matrix4, Vector3, Vector4};
use ndarray::{Array3, ArrayView3, Axis};

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
