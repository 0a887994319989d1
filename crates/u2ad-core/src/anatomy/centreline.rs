//! The cord centreline ([`Centreline`], [`CentrelinePoint`]): the cord centre per axial slice `k`
//! and the arc length along the cord.

use ndarray::{ArrayView3, Axis};

/// The cord centre in one axial slice `k`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CentrelinePoint {
    /// Canonical slice index along the superior axis.
    pub k: usize,
    /// Centre of the cord voxels of the slice along canonical axes 0 (right) and 1 (anterior),
    /// in mm of the canonical voxel frame (index x spacing; not scanner coordinates).
    pub centre_mm: [f64; 2],
    /// Distance along the cord from the most inferior cord slice, in mm.
    pub arc_length_mm: f64,
}

/// The cord centreline: one point per canonical slice `k` that contains cord, inferior to
/// superior. The arc length follows the centre smoothed by a moving average over ±2 mm along
/// the cord (edge values repeated, as `scipy.ndimage.uniform_filter1d(mode="nearest")`), so
/// that voxel-level jitter of the raw centres does not lengthen the cord; the stored
/// `centre_mm` are the raw centres.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Centreline {
    pub points: Vec<CentrelinePoint>,
    /// Canonical voxel spacing, mm.
    pub spacing_mm: [f64; 3],
}

/// Half-width of the centreline smoothing window along the cord, in mm.
pub const CENTRELINE_SMOOTHING_HALF_WIDTH_MM: f64 = 2.0;

impl Centreline {
    /// The centreline of a canonical cord mask, or `None` when the mask is empty.
    pub fn from_cord(cord_canonical: ArrayView3<'_, bool>, spacing_mm: [f64; 3]) -> Option<Centreline> {
        let mut raw: Vec<(usize, [f64; 2])> = Vec::new();
        for (k, slice) in cord_canonical.axis_iter(Axis(2)).enumerate() {
            let (mut n, mut sum_i, mut sum_j) = (0usize, 0.0f64, 0.0f64);
            for ((i, j), &inside) in slice.indexed_iter() {
                if inside {
                    n += 1;
                    sum_i += i as f64;
                    sum_j += j as f64;
                }
            }
            if n > 0 {
                raw.push((k, [sum_i / n as f64 * spacing_mm[0], sum_j / n as f64 * spacing_mm[1]]));
            }
        }
        if raw.is_empty() {
            return None;
        }
        let half = (CENTRELINE_SMOOTHING_HALF_WIDTH_MM / spacing_mm[2] + 0.5).floor().max(0.0) as isize;
        let last = raw.len() as isize - 1;
        let smoothed: Vec<[f64; 2]> = (0..raw.len() as isize)
            .map(|i| {
                let mut acc = [0.0; 2];
                for j in i - half..=i + half {
                    let c = raw[j.clamp(0, last) as usize].1;
                    acc[0] += c[0];
                    acc[1] += c[1];
                }
                let w = (2 * half + 1) as f64;
                [acc[0] / w, acc[1] / w]
            })
            .collect();
        let mut points = Vec::with_capacity(raw.len());
        let mut arc = 0.0;
        for (index, &(k, centre_mm)) in raw.iter().enumerate() {
            if index > 0 {
                let (a, b) = (smoothed[index - 1], smoothed[index]);
                let dz = (k - raw[index - 1].0) as f64 * spacing_mm[2];
                arc += ((b[0] - a[0]).powi(2) + (b[1] - a[1]).powi(2) + dz * dz).sqrt();
            }
            points.push(CentrelinePoint { k, centre_mm, arc_length_mm: arc });
        }
        Some(Centreline { points, spacing_mm })
    }

    /// Length of the cord along its centreline, in mm.
    pub fn cord_length_mm(&self) -> f64 {
        self.points.last().map_or(0.0, |p| p.arc_length_mm)
    }

    /// The most inferior slice with cord.
    pub fn first_k(&self) -> usize {
        self.points.first().map_or(0, |p| p.k)
    }

    /// The most superior slice with cord.
    pub fn last_k(&self) -> usize {
        self.points.last().map_or(0, |p| p.k)
    }

    /// The raw cord centre (mm) of slice `k`, if it contains cord.
    pub fn centre_at_k(&self, k: usize) -> Option<[f64; 2]> {
        self.points.binary_search_by_key(&k, |p| p.k).ok().map(|i| self.points[i].centre_mm)
    }

    /// Arc length (mm) at fractional canonical position `k`: linear between cord slices;
    /// beyond the ends of the cord the centreline is continued straight along the superior
    /// axis (negative below the first cord slice).
    pub fn arc_length_at_k(&self, k: f64) -> f64 {
        let (Some(first), Some(last)) = (self.points.first(), self.points.last()) else {
            return k * self.spacing_mm[2];
        };
        if k <= first.k as f64 {
            return (k - first.k as f64) * self.spacing_mm[2];
        }
        if k >= last.k as f64 {
            return last.arc_length_mm + (k - last.k as f64) * self.spacing_mm[2];
        }
        let upper = self.points.partition_point(|p| (p.k as f64) < k);
        let (a, b) = (&self.points[upper - 1], &self.points[upper]);
        let t = (k - a.k as f64) / (b.k - a.k) as f64;
        a.arc_length_mm + t * (b.arc_length_mm - a.arc_length_mm)
    }

    /// Fractional canonical `k` at arc length `arc_mm`: the inverse of [`Self::arc_length_at_k`].
    pub fn k_at_arc_length(&self, arc_mm: f64) -> f64 {
        let (Some(first), Some(last)) = (self.points.first(), self.points.last()) else {
            return arc_mm / self.spacing_mm[2];
        };
        if arc_mm <= 0.0 {
            return first.k as f64 + arc_mm / self.spacing_mm[2];
        }
        if arc_mm >= last.arc_length_mm {
            return last.k as f64 + (arc_mm - last.arc_length_mm) / self.spacing_mm[2];
        }
        let upper = self.points.partition_point(|p| p.arc_length_mm < arc_mm);
        let (a, b) = (&self.points[upper - 1], &self.points[upper]);
        let t = (arc_mm - a.arc_length_mm) / (b.arc_length_mm - a.arc_length_mm);
        a.k as f64 + t * (b.k - a.k) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn centreline_of_an_oblique_rod() {
        // A rod moving 1 voxel anterior every 2 slices: length sqrt(1 + 0.25) per slice.
        let mut cord = Array3::from_elem((5, 30, 40), false);
        for k in 0..40 {
            cord[[2, 5 + k / 2, k]] = true;
        }
        let line = Centreline::from_cord(cord.view(), [1.0, 1.0, 1.0]).unwrap();
        assert_eq!(line.points.len(), 40);
        assert_eq!(line.centre_at_k(10), Some([2.0, 10.0]));
        assert!((line.cord_length_mm() - 39.0 * 1.25f64.sqrt()).abs() < 0.6);
        let arc = line.arc_length_at_k(17.5);
        assert!((line.k_at_arc_length(arc) - 17.5).abs() < 1e-9);
        assert_eq!(line.arc_length_at_k(-3.0), -3.0);
        assert!((line.k_at_arc_length(line.cord_length_mm() + 2.0) - 41.0).abs() < 1e-9);
    }
}
