//! A frame that follows the cord: the smoothed centreline in canonical millimetres, the cord
//! coordinates of a point (arc length, anterior and right offsets), the cord's normals and its
//! thickness along a direction.

use ndarray::ArrayView3;

use u2ad_core::anatomy::{Centreline, CENTRELINE_SMOOTHING_HALF_WIDTH_MM};

/// Where a point lies relative to the cord.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CordCoordinates {
    /// Arc length of the closest centreline point, mm (as [`Centreline`]'s).
    pub arc_mm: f64,
    /// Offset along the anterior-pointing normal, mm.
    pub anterior_mm: f64,
    /// Offset along the right-pointing normal, mm.
    pub right_mm: f64,
}

/// The cord centreline as a smooth polyline in canonical millimetres (index × spacing), with
/// [`Centreline`]'s arc length: the raw cord centres smoothed by the same ±2 mm moving
/// average. Projects points onto the cord and gives the cord's normals.
#[derive(Debug, Clone, PartialEq)]
pub struct CordFrame {
    pub points_mm: Vec<[f64; 3]>,
    pub arc_mm: Vec<f64>,
    pub spacing_mm: [f64; 3],
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}
fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}
fn scaled(a: [f64; 3], f: f64) -> [f64; 3] {
    [a[0] * f, a[1] * f, a[2] * f]
}
fn add(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

impl CordFrame {
    pub fn from_centreline(centreline: &Centreline) -> CordFrame {
        let spacing_mm = centreline.spacing_mm;
        let raw = &centreline.points;
        let half = (CENTRELINE_SMOOTHING_HALF_WIDTH_MM / spacing_mm[2] + 0.5).floor().max(0.0) as isize;
        let last = raw.len() as isize - 1;
        let mut points_mm = Vec::with_capacity(raw.len());
        for index in 0..raw.len() as isize {
            let mut acc = [0.0; 2];
            for j in index - half..=index + half {
                let c = raw[j.clamp(0, last) as usize].centre_mm;
                acc[0] += c[0];
                acc[1] += c[1];
            }
            let w = (2 * half + 1) as f64;
            points_mm.push([acc[0] / w, acc[1] / w, raw[index as usize].k as f64 * spacing_mm[2]]);
        }
        let arc_mm = raw.iter().map(|p| p.arc_length_mm).collect();
        CordFrame { points_mm, arc_mm, spacing_mm }
    }

    pub fn cord_length_mm(&self) -> f64 {
        self.arc_mm.last().copied().unwrap_or(0.0)
    }

    /// Unit tangent of segment `n` (towards superior).
    fn tangent(&self, n: usize) -> [f64; 3] {
        if self.points_mm.len() < 2 {
            return [0.0, 0.0, 1.0];
        }
        let n = n.min(self.points_mm.len() - 2);
        let d = sub(self.points_mm[n + 1], self.points_mm[n]);
        let l = norm(d);
        if l > 0.0 {
            scaled(d, 1.0 / l)
        } else {
            [0.0, 0.0, 1.0]
        }
    }

    /// The anterior and right normals of a tangent: right = the right axis made orthogonal to
    /// the tangent, anterior = tangent × right.
    pub fn normals(tangent: [f64; 3]) -> ([f64; 3], [f64; 3]) {
        let x = [1.0, 0.0, 0.0];
        let mut right = sub(x, scaled(tangent, dot(x, tangent)));
        let l = norm(right);
        right = if l > 1e-9 { scaled(right, 1.0 / l) } else { [0.0, 1.0, 0.0] };
        (cross(tangent, right), right)
    }

    /// The centreline point, tangent, anterior and right normals at arc length `arc_mm`
    /// (clamped to the cord).
    pub fn at_arc(&self, arc_mm: f64) -> ([f64; 3], [f64; 3], [f64; 3], [f64; 3]) {
        let n = self.points_mm.len();
        if n < 2 {
            let p = self.points_mm.first().copied().unwrap_or([0.0; 3]);
            let t = [0.0, 0.0, 1.0];
            let (a, r) = CordFrame::normals(t);
            return (p, t, a, r);
        }
        let s = arc_mm.clamp(0.0, self.cord_length_mm());
        let upper = self.arc_mm.partition_point(|&a| a < s).clamp(1, n - 1);
        let segment = upper - 1;
        let span = self.arc_mm[upper] - self.arc_mm[segment];
        let t = if span > 0.0 { (s - self.arc_mm[segment]) / span } else { 0.0 };
        let p = add(self.points_mm[segment], scaled(sub(self.points_mm[upper], self.points_mm[segment]), t));
        let tangent = self.tangent(segment);
        let (anterior, right) = CordFrame::normals(tangent);
        (p, tangent, anterior, right)
    }

    /// The cord coordinates of a point (canonical mm): its projection on the closest segment.
    pub fn project(&self, p: [f64; 3]) -> CordCoordinates {
        let n = self.points_mm.len();
        if n < 2 {
            let c = self.points_mm.first().copied().unwrap_or([0.0; 3]);
            let d = sub(p, c);
            return CordCoordinates { arc_mm: d[2], anterior_mm: d[1], right_mm: d[0] };
        }
        let mut best = (f64::INFINITY, 0usize, 0.0f64);
        for segment in 0..n - 1 {
            let (a, b) = (self.points_mm[segment], self.points_mm[segment + 1]);
            // Cheap bound: the superior distance alone.
            let below = a[2].min(b[2]) - p[2];
            let above = p[2] - a[2].max(b[2]);
            let gap = below.max(above).max(0.0);
            if gap * gap >= best.0 {
                continue;
            }
            let ab = sub(b, a);
            let length2 = dot(ab, ab);
            let t = if length2 > 0.0 { (dot(sub(p, a), ab) / length2).clamp(0.0, 1.0) } else { 0.0 };
            let q = add(a, scaled(ab, t));
            let d2 = dot(sub(p, q), sub(p, q));
            if d2 < best.0 {
                best = (d2, segment, t);
            }
        }
        let (_, segment, t) = best;
        let q = add(self.points_mm[segment], scaled(sub(self.points_mm[segment + 1], self.points_mm[segment]), t));
        let arc = self.arc_mm[segment] + t * (self.arc_mm[segment + 1] - self.arc_mm[segment]);
        let (anterior, right) = CordFrame::normals(self.tangent(segment));
        let offset = sub(p, q);
        CordCoordinates { arc_mm: arc, anterior_mm: dot(offset, anterior), right_mm: dot(offset, right) }
    }

    /// Thickness (mm) of the cord mask through `centre` along `direction` (unit), walked in
    /// 0.25 mm steps to the first voxel outside the cord on each side.
    pub fn thickness_mm(&self, cord: ArrayView3<'_, bool>, centre: [f64; 3], direction: [f64; 3]) -> f64 {
        const STEP_MM: f64 = 0.25;
        const LIMIT_MM: f64 = 60.0;
        let shape = cord.dim();
        let inside = |p: [f64; 3]| -> bool {
            let index: Vec<f64> = (0..3).map(|a| (p[a] / self.spacing_mm[a]).round()).collect();
            let dims = [shape.0, shape.1, shape.2];
            if (0..3).any(|a| index[a] < 0.0 || index[a] >= dims[a] as f64) {
                return false;
            }
            cord[[index[0] as usize, index[1] as usize, index[2] as usize]]
        };
        let reach = |sign: f64| -> f64 {
            let mut t = 0.0;
            while t < LIMIT_MM {
                t += STEP_MM;
                if !inside(add(centre, scaled(direction, sign * t))) {
                    return t;
                }
            }
            LIMIT_MM
        };
        reach(1.0) + reach(-1.0)
    }
}
