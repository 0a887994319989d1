//! U2AD preprocessing, in physical units: from a canonical (RAS+) scan and its masks to
//! 256 x 256 sagittal samples, and back from a sample map to the native voxel grid.
//!
//! Effect of the reference (datasets/preprocess_*.py), with one interpolation instead of two:
//! - per volume, the intensities are clipped at the 0.2 and 99.8 percentiles of the foreground
//!   (voxels that differ from the first voxel, as the reference) and scaled to [0, 1];
//! - each sagittal slice that contains cord is sampled on a 200 x 200 mm window centred on the
//!   cord, 256 x 256 pixels (0.78125 mm), with cubic interpolation for the image (Keys) and
//!   nearest for the masks. The reference resamples to 1 x 1 mm first and zooms by 1.28 after:
//!   sampling the final grid directly gives the same geometry without blurring twice;
//! - row 0 is the most superior row, column 0 the most anterior column (as the clinical slices);
//! - ROI = cord ∪ CSF dilated by one pixel (3 x 3 cross), on the 256 grid;
//! - every row gets the disc-level segment of its superior-inferior position;
//! - every sample keeps the affine from its pixels to native voxel indices.

use ndarray::{Array2, Array3, ArrayView3, Axis};
use u2ad_io::volume::Reorientation;

use crate::anatomy::CsfDerivation;
use crate::dataset::{PreparedSample, SampleMeta, SAMPLE_PIXELS, SAMPLE_SIZE};
use crate::levels::LevelMap;
use crate::resample;

/// Preprocessing settings (the defaults are the paper's).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PreprocessConfig {
    /// Side of the square sagittal window, in mm.
    pub window_mm: f64,
    /// Percentiles of the foreground mapped to 0 and 1.
    pub clip_low_percentile: f64,
    pub clip_high_percentile: f64,
    /// Dilation of cord ∪ CSF into the ROI, in pixels of the 256 grid (3 x 3 cross).
    pub roi_dilation_px: usize,
    /// A native sagittal slice is kept when it holds at least this many cord voxels.
    pub min_cord_voxels_per_slice: usize,
    /// How the CSF of the ROI is derived when no CSF mask is given ([`CsfDerivation::MASK_TOLERANT`]:
    /// a cord mask one voxel small does not shrink the ROI). Part of the settings that detection's
    /// reuse of maps and every sidecar record.
    pub derived_csf: CsfDerivation,
}

impl Default for PreprocessConfig {
    fn default() -> Self {
        PreprocessConfig {
            window_mm: 200.0,
            clip_low_percentile: 0.2,
            clip_high_percentile: 99.8,
            roi_dilation_px: 1,
            min_cord_voxels_per_slice: 1,
            derived_csf: CsfDerivation::MASK_TOLERANT,
        }
    }
}

/// Percentile of f32 values sorted ascending, by linear interpolation between order statistics
/// at index (n - 1) x percent / 100 written one-sided, a + (b - a) x fraction; the percent is
/// clamped to [0, 100] and no values give NaN. Not [`crate::stats::percentile_of_sorted`], which
/// takes numpy's two-sided form (b - (b - a) x (1 - fraction) from a fraction of 0.5) and differs
/// from this in the last bit for some inputs: the intensity window, and so every prepared sample,
/// is kept as it is.
pub fn percentile_of_sorted_f32(sorted: &[f32], percent: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let position = percent.clamp(0.0, 100.0) / 100.0 * (sorted.len() - 1) as f64;
    let lower = position.floor() as usize;
    let upper = (lower + 1).min(sorted.len() - 1);
    let fraction = position - lower as f64;
    sorted[lower] as f64 + (sorted[upper] as f64 - sorted[lower] as f64) * fraction
}

/// The intensity window of a volume: values at the low and high foreground percentiles.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntensityWindow {
    pub low: f64,
    pub high: f64,
}

impl IntensityWindow {
    /// Foreground = voxels that differ from the first voxel (the reference's rule).
    pub fn of_volume(native: ArrayView3<'_, f32>, config: &PreprocessConfig) -> IntensityWindow {
        let background = native.iter().next().copied().unwrap_or(0.0);
        let mut foreground: Vec<f32> = native.iter().copied().filter(|&v| v != background).collect();
        if foreground.is_empty() {
            return IntensityWindow { low: background as f64, high: background as f64 };
        }
        foreground.sort_unstable_by(|a, b| a.total_cmp(b));
        IntensityWindow {
            low: percentile_of_sorted_f32(&foreground, config.clip_low_percentile),
            high: percentile_of_sorted_f32(&foreground, config.clip_high_percentile),
        }
    }

    /// Clips and scales one value to [0, 1].
    pub fn scale(&self, value: f32) -> f32 {
        let span = self.high - self.low;
        if span <= 0.0 {
            return 0.0;
        }
        (((value as f64).clamp(self.low, self.high) - self.low) / span) as f32
    }
}

/// The sagittal window of one subject, in canonical millimetres (index x spacing).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SagittalWindow {
    /// Centre of the window along the canonical anterior axis, in mm.
    pub centre_anterior_mm: f64,
    /// Centre of the window along the canonical superior axis, in mm.
    pub centre_superior_mm: f64,
    /// Pixel size of the samples, in mm.
    pub pixel_mm: f64,
    pub window_mm: f64,
}

impl SagittalWindow {
    /// Centred on the cord's bounding box in the sagittal plane. When the cord is longer than
    /// the window and the levels are known, centred on C2 … T1 instead, so that every disc
    /// level stays inside.
    pub fn on_cord(
        cord: ArrayView3<'_, bool>,
        spacing_mm: [f64; 3],
        levels: Option<&LevelMap>,
        config: &PreprocessConfig,
    ) -> Option<SagittalWindow> {
        let (mut y_min, mut y_max, mut z_min, mut z_max) = (usize::MAX, 0, usize::MAX, 0);
        for ((_, y, z), &inside) in cord.indexed_iter() {
            if inside {
                y_min = y_min.min(y);
                y_max = y_max.max(y);
                z_min = z_min.min(z);
                z_max = z_max.max(z);
            }
        }
        if y_min == usize::MAX {
            return None;
        }
        let centre_anterior_mm = (y_min + y_max) as f64 / 2.0 * spacing_mm[1];
        let mut centre_superior_mm = (z_min + z_max) as f64 / 2.0 * spacing_mm[2];
        let cord_length_mm = (z_max - z_min) as f64 * spacing_mm[2];
        if cord_length_mm > config.window_mm {
            if let Some(levels) = levels {
                if let (Some(c2), Some(t1)) =
                    (levels.vertebra_centre_k.get(&2), levels.vertebra_centre_k.get(&8))
                {
                    centre_superior_mm = (c2 + t1) / 2.0 * spacing_mm[2];
                }
            }
        }
        Some(SagittalWindow {
            centre_anterior_mm,
            centre_superior_mm,
            pixel_mm: config.window_mm / SAMPLE_SIZE as f64,
            window_mm: config.window_mm,
        })
    }

    /// Canonical (y, z) fractional index of sample pixel (row, col).
    pub fn pixel_to_canonical_yz(&self, row: f64, col: f64, spacing_mm: [f64; 3]) -> (f64, f64) {
        let half = self.window_mm / 2.0;
        let anterior_mm = self.centre_anterior_mm + half - (col + 0.5) * self.pixel_mm;
        let superior_mm = self.centre_superior_mm + half - (row + 0.5) * self.pixel_mm;
        (anterior_mm / spacing_mm[1], superior_mm / spacing_mm[2])
    }

    /// Affine (row, col, 1) -> native voxel index, for canonical slice `x`.
    pub fn pixel_to_native(&self, x: usize, spacing_mm: [f64; 3], reorientation: &Reorientation) -> [[f64; 3]; 3] {
        let (y0, z0) = self.pixel_to_canonical_yz(0.0, 0.0, spacing_mm);
        let (y_col, _) = self.pixel_to_canonical_yz(0.0, 1.0, spacing_mm);
        let (_, z_row) = self.pixel_to_canonical_yz(1.0, 0.0, spacing_mm);
        let origin = reorientation.canonical_to_native([x as f64, y0, z0]);
        let along_col = reorientation.canonical_to_native([x as f64, y_col, z0]);
        let along_row = reorientation.canonical_to_native([x as f64, y0, z_row]);
        let mut m = [[0.0; 3]; 3];
        for i in 0..3 {
            m[i][0] = along_row[i] - origin[i];
            m[i][1] = along_col[i] - origin[i];
            m[i][2] = origin[i];
        }
        m
    }
}

/// One subject, reoriented to canonical RAS+ order.
#[derive(Debug, Clone, Copy)]
pub struct CanonicalSubject<'a> {
    /// T2 signal as read (not yet scaled).
    pub image: ArrayView3<'a, f32>,
    pub cord: ArrayView3<'a, bool>,
    pub csf: ArrayView3<'a, bool>,
    pub spacing_mm: [f64; 3],
    pub reorientation: Reorientation,
    pub levels: Option<&'a LevelMap>,
}

/// Dilates a 2-D mask with a 3 x 3 cross, `steps` times.
fn dilate_cross(mask: &Array2<bool>, steps: usize) -> Array2<bool> {
    let mut current = mask.clone();
    let (rows, cols) = mask.dim();
    for _ in 0..steps {
        let mut next = current.clone();
        for ((r, c), &v) in current.indexed_iter() {
            if v {
                if r > 0 {
                    next[[r - 1, c]] = true;
                }
                if r + 1 < rows {
                    next[[r + 1, c]] = true;
                }
                if c > 0 {
                    next[[r, c - 1]] = true;
                }
                if c + 1 < cols {
                    next[[r, c + 1]] = true;
                }
            }
        }
        current = next;
    }
    current
}

/// All samples of one subject: one per native sagittal slice containing cord.
pub fn preprocess_subject(
    subject: &CanonicalSubject<'_>,
    intensity: IntensityWindow,
    config: &PreprocessConfig,
) -> Vec<PreparedSample> {
    let Some(window) = SagittalWindow::on_cord(subject.cord, subject.spacing_mm, subject.levels, config) else {
        return Vec::new();
    };
    let cord_per_slice: Vec<usize> =
        subject.cord.axis_iter(Axis(0)).map(|plane| plane.iter().filter(|&&v| v).count()).collect();
    let total: usize = cord_per_slice.iter().sum();
    let mid_x = cord_per_slice.iter().enumerate().map(|(x, &n)| x as f64 * n as f64).sum::<f64>() / total as f64;

    // Row -> segment depends only on the superior position.
    let row_segment: Vec<u8> = (0..SAMPLE_SIZE)
        .map(|row| {
            let (_, z) = window.pixel_to_canonical_yz(row as f64, 0.0, subject.spacing_mm);
            subject.levels.and_then(|levels| levels.segment_at_k(z)).map_or(0, |level| level.code())
        })
        .collect();

    let mut samples = Vec::new();
    for (x, &count) in cord_per_slice.iter().enumerate() {
        if count < config.min_cord_voxels_per_slice.max(1) {
            continue;
        }
        let image_plane = subject.image.index_axis(Axis(0), x).mapv(|v| intensity.scale(v));
        let cord_plane = subject.cord.index_axis(Axis(0), x);
        let csf_plane = subject.csf.index_axis(Axis(0), x);
        let mut image = vec![0.0f32; SAMPLE_PIXELS];
        let mut cord = Array2::from_elem((SAMPLE_SIZE, SAMPLE_SIZE), false);
        let mut csf = Array2::from_elem((SAMPLE_SIZE, SAMPLE_SIZE), false);
        for row in 0..SAMPLE_SIZE {
            for col in 0..SAMPLE_SIZE {
                let (y, z) = window.pixel_to_canonical_yz(row as f64, col as f64, subject.spacing_mm);
                image[row * SAMPLE_SIZE + col] = resample::cubic(image_plane.view(), y, z, 0.0).clamp(0.0, 1.0);
                cord[[row, col]] = resample::nearest(cord_plane, y, z, false);
                csf[[row, col]] = resample::nearest(csf_plane, y, z, false) && !cord[[row, col]];
            }
        }
        let union = Array2::from_shape_fn(cord.dim(), |(r, c)| cord[[r, c]] || csf[[r, c]]);
        let roi = dilate_cross(&union, config.roi_dilation_px);
        let as_u8 = |m: &Array2<bool>| m.iter().map(|&v| v as u8).collect::<Vec<u8>>();
        samples.push(PreparedSample {
            meta: SampleMeta {
                subject_index: 0,
                native_slice: subject.reorientation.canonical_to_native([x as f64, 0.0, 0.0])
                    [subject.reorientation.native_axis[0]] as usize,
                pixel_to_native: window.pixel_to_native(x, subject.spacing_mm, &subject.reorientation),
                pixel_mm: window.pixel_mm,
                offset_from_mid_mm: (x as f64 - mid_x) * subject.spacing_mm[0],
            },
            image,
            roi: as_u8(&roi),
            cord: as_u8(&cord),
            csf: as_u8(&csf),
            row_segment: row_segment.clone(),
        });
    }
    samples
}

/// Writes a 256 x 256 sample map back onto its native sagittal slice (bilinear), into `native`
/// (native voxel order). Voxels of that slice outside the window keep their value.
pub fn project_to_native(meta: &SampleMeta, map: &[f32], native: &mut Array3<f32>) {
    assert_eq!(map.len(), SAMPLE_PIXELS, "a sample map has 256 x 256 values");
    let m = meta.pixel_to_native;
    // Solve native = A (row, col) + t for (row, col) on this slice: A is 3 x 2 with one zero row.
    let a = [[m[0][0], m[0][1]], [m[1][0], m[1][1]], [m[2][0], m[2][1]]];
    let t = [m[0][2], m[1][2], m[2][2]];
    // The slice axis is the native axis whose row of A is zero.
    let slice_axis = (0..3).find(|&i| a[i][0].abs() < 1e-9 && a[i][1].abs() < 1e-9).expect("sample affine spans a plane");
    let plane_axes: Vec<usize> = (0..3).filter(|&i| i != slice_axis).collect();
    let (p, q) = (plane_axes[0], plane_axes[1]);
    let det = a[p][0] * a[q][1] - a[p][1] * a[q][0];
    let map_plane = ndarray::ArrayView2::from_shape((SAMPLE_SIZE, SAMPLE_SIZE), map).expect("256 x 256");
    let slice = t[slice_axis].round() as usize;
    let shape = native.shape().to_vec();
    for u in 0..shape[p] {
        for v in 0..shape[q] {
            let (du, dv) = (u as f64 - t[p], v as f64 - t[q]);
            let row = (a[q][1] * du - a[p][1] * dv) / det;
            let col = (-a[q][0] * du + a[p][0] * dv) / det;
            if row < -0.5 || col < -0.5 || row > SAMPLE_SIZE as f64 - 0.5 || col > SAMPLE_SIZE as f64 - 0.5 {
                continue;
            }
            let mut index = [0usize; 3];
            index[slice_axis] = slice;
            index[p] = u;
            index[q] = v;
            native[index] = resample::bilinear(map_plane, row, col, 0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_follow_numpy_linear() {
        let sorted: Vec<f32> = (0..11).map(|v| v as f32).collect();
        assert_eq!(percentile_of_sorted_f32(&sorted, 50.0), 5.0);
        assert!((percentile_of_sorted_f32(&sorted, 0.2) - 0.02).abs() < 1e-9);
        assert!((percentile_of_sorted_f32(&sorted, 99.8) - 9.98).abs() < 1e-9);
        // The one-sided form is not stats::percentile_of_sorted's two-sided one: they part in
        // the last bit here, so the two stay apart.
        let pair = [0.1f32, 2.1f32];
        assert_eq!(percentile_of_sorted_f32(&pair, 99.8), 2.095999904826283);
        let pair_f64 = pair.map(f64::from);
        assert_eq!(crate::stats::percentile_of_sorted(&pair_f64, 99.8), Some(2.0959999048262836));
    }

    #[test]
    fn dilation_with_a_cross() {
        let mut m = Array2::from_elem((5, 5), false);
        m[[2, 2]] = true;
        let d = dilate_cross(&m, 1);
        assert_eq!(d.iter().filter(|&&v| v).count(), 5);
        assert!(d[[1, 2]] && d[[2, 1]] && !d[[1, 1]]);
    }
}
