//! The reference code's preprocessed slices (`.npy`, float64, shape 3 x 256 x 256): channel 0 the
//! image in [0, 1], channel 1 the cord + CSF region mask, channel 2 a label map (1 disc,
//! 2 vertebral body, 3 spinal cord, 4 CSF, 5 disc protrusion, 6 T2 hyperintensity,
//! 7 other compressive tissue).
//!
//! Such a slice becomes one prepared sample: cord = labels {3, 6}, CSF = label 4, ROI = channel 1.
//! Disc-level segments come from the vertebral bodies (label 2): connected components of at
//! least 20 px sorted by centroid row, the first taken as C2 (the CervAI-X convention of the
//! same group); segment Cn/Cn+1 runs from the centroid row of body n to that of body n + 1.

use std::path::Path;

use ndarray::{Array2, Array3, Axis};
use u2ad_io::error::FileError;

use crate::anatomy::connected_components_2d;
use crate::dataset::{PreparedSample, SampleMeta, SubjectMeta, SAMPLE_SIZE};
use crate::error::{CoreError, Result};
use crate::levels::DiscLevel;

/// Label values of the reference's label map.
pub mod label {
    pub const VERTEBRAL_BODY: u8 = 2;
    pub const CORD: u8 = 3;
    pub const CSF: u8 = 4;
    pub const HYPERINTENSITY: u8 = 6;
}

/// Smallest vertebral-body component used for levels, in pixels.
pub const MIN_BODY_PX: usize = 20;

/// A clinical slice read from `.npy`.
#[derive(Debug, Clone)]
pub struct ClinicalSlice {
    pub image: Array2<f32>,
    pub roi: Array2<bool>,
    pub labels: Array2<u8>,
}

impl ClinicalSlice {
    pub fn read(path: &Path) -> Result<ClinicalSlice> {
        if !path.exists() {
            return Err(CoreError::io(path, std::io::Error::new(std::io::ErrorKind::NotFound, "no such file")));
        }
        let array: Array3<f64> = ndarray_npy::read_npy(path)
            .map_err(|e| CoreError::input(path, format!("not a float64 3 x 256 x 256 .npy slice ({e})")))?;
        if array.shape() != [3, SAMPLE_SIZE, SAMPLE_SIZE] {
            return Err(CoreError::input(path, format!("shape {:?}, expected [3, 256, 256]", array.shape())));
        }
        if array.iter().any(|v| !v.is_finite()) {
            let count = array.iter().filter(|v| !v.is_finite()).count();
            return Err(FileError::NonFinite { path: path.to_path_buf(), count }.into());
        }
        Ok(ClinicalSlice {
            image: array.index_axis(Axis(0), 0).mapv(|v| v as f32),
            roi: array.index_axis(Axis(0), 1).mapv(|v| v > 0.5),
            labels: array.index_axis(Axis(0), 2).mapv(|v| v.round().clamp(0.0, 255.0) as u8),
        })
    }

    /// Centroid rows of the vertebral bodies, top to bottom (first = C2).
    pub fn vertebral_body_rows(&self) -> Vec<f64> {
        let bodies = self.labels.mapv(|v| v == label::VERTEBRAL_BODY);
        let components = connected_components_2d(bodies.view());
        let mut sums = vec![0.0f64; components.count()];
        for ((row, _), &c) in components.labels.indexed_iter() {
            if c > 0 {
                sums[c as usize - 1] += row as f64;
            }
        }
        let mut rows: Vec<f64> = sums
            .iter()
            .zip(&components.sizes_px)
            .filter(|(_, &size)| size >= MIN_BODY_PX)
            .map(|(sum, &size)| sum / size as f64)
            .collect();
        rows.sort_by(|a, b| a.total_cmp(b));
        rows
    }

    /// Disc-level segment of each row (0 none, else [`DiscLevel::code`]).
    pub fn row_segments(&self) -> Vec<u8> {
        let centres = self.vertebral_body_rows();
        (0..SAMPLE_SIZE)
            .map(|row| {
                let row = row as f64;
                DiscLevel::ALL
                    .iter()
                    .enumerate()
                    .find(|(i, _)| i + 1 < centres.len() && row >= centres[*i] && row < centres[i + 1])
                    .map_or(0, |(_, level)| level.code())
            })
            .collect()
    }

    /// The slice as a prepared sample and its subject entry.
    pub fn into_prepared(self, subject: &str, path: &Path) -> (SubjectMeta, PreparedSample) {
        let cord = self.labels.mapv(|v| v == label::CORD || v == label::HYPERINTENSITY);
        let csf = self.labels.mapv(|v| v == label::CSF);
        let row_segment = self.row_segments();
        let levels_found: Vec<String> = DiscLevel::ALL
            .iter()
            .filter(|level| {
                row_segment
                    .iter()
                    .enumerate()
                    .any(|(row, &code)| code == level.code() && cord.row(row).iter().any(|&v| v))
            })
            .map(|level| level.name().to_string())
            .collect();
        let cord_rows = cord.axis_iter(Axis(0)).filter(|r| r.iter().any(|&v| v)).count();
        let pixel_mm = 200.0 / SAMPLE_SIZE as f64;
        let meta = SubjectMeta {
            subject: subject.to_string(),
            image_path: path.to_path_buf(),
            cord_mask_path: None,
            csf_mask_path: None,
            levels_path: None,
            shape: [SAMPLE_SIZE, SAMPLE_SIZE, 1],
            spacing_mm: [pixel_mm, pixel_mm, 1.0],
            orientation: "preprocessed slice (rows superior to inferior, columns anterior to posterior)".into(),
            csf_derived: false,
            cord_length_mm: cord_rows as f64 * pixel_mm,
            levels_source: format!(
                "vertebral bodies (label 2) of the slice, first = C2: {} bodies",
                self.vertebral_body_rows().len()
            ),
            levels_found,
            intensity_low: 0.0,
            intensity_high: 1.0,
        };
        let as_u8 = |m: &Array2<bool>| m.iter().map(|&v| v as u8).collect::<Vec<u8>>();
        let sample = PreparedSample {
            meta: SampleMeta {
                subject_index: 0,
                native_slice: 0,
                pixel_to_native: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]],
                pixel_mm,
                offset_from_mid_mm: 0.0,
            },
            image: self.image.iter().copied().collect(),
            roi: as_u8(&self.roi),
            cord: as_u8(&cord),
            csf: as_u8(&csf),
            row_segment,
        };
        (meta, sample)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use u2ad_data::sample_file;

    #[test]
    fn reads_the_clinical_slices() {
        let path = sample_file("clinical-slices/slice-1.npy");
        let slice = ClinicalSlice::read(&path).unwrap();
        // Counts from numpy: label 3 has 1260 px, channel 1 has 1530 px.
        assert_eq!(slice.labels.iter().filter(|&&v| v == label::CORD).count(), 1260);
        assert_eq!(slice.roi.iter().filter(|&&v| v).count(), 1530);
        assert!((slice.image.iter().cloned().fold(f32::MIN, f32::max) - 1.0).abs() < 1e-6);
        let bodies = slice.vertebral_body_rows();
        // scipy.ndimage.label (8-connected) centroid rows: C2 … T1, as the paper's Figure 2e.
        let expected = [72.5, 110.2, 136.8, 161.9, 186.8, 214.5, 242.6];
        assert_eq!(bodies.len(), 7, "{bodies:?}");
        for (got, want) in bodies.iter().zip(expected) {
            assert!((got - want).abs() < 0.06, "{bodies:?}");
        }
        let (meta, sample) = slice.into_prepared("clinical-1", &path);
        assert_eq!(sample.cord.iter().filter(|&&v| v == 1).count(), 1260);
        // Rows 111..=136 lie between the C3 and C4 centroids: segment C3/C4.
        assert_eq!(sample.row_segment[120], DiscLevel::C3C4.code());
        assert_eq!(sample.row_segment[60], 0);
        assert_eq!(meta.levels_found.len(), 6, "{:?}", meta.levels_found);
    }

    #[test]
    fn rejects_a_nifti_file() {
        let path = sample_file("spine-t2/sub-errsm30/anat/sub-errsm30_T2w.nii.gz");
        let err = ClinicalSlice::read(&path).unwrap_err().to_string();
        assert!(err.contains("sub-errsm30_T2w.nii.gz") && err.contains(".npy"), "{err}");
    }
}
