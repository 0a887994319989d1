//! The prepared dataset file (`.u2ds`): every 2-D sagittal sample of a cohort, written once by
//! `u2ad prepare` and read in one go by training, inference and detection.
//!
//! The file is a [safetensors](https://huggingface.co/docs/safetensors) container:
//!
//! | tensor | type | shape | meaning |
//! |---|---|---|---|
//! | `image` | f32 | N x 256 x 256 | preprocessed T2 signal in [0, 1] |
//! | `roi` | u8 | N x 256 x 256 | region of interest: cord ∪ CSF, dilated by one pixel |
//! | `cord` | u8 | N x 256 x 256 | spinal cord mask |
//! | `csf` | u8 | N x 256 x 256 | CSF mask (given or derived) |
//! | `row_segment` | u8 | N x 256 | disc-level segment of each image row: 0 none, 1 C2/C3 … 6 C7/T1 |
//!
//! and a JSON document under the metadata key `u2ad` ([`DatasetMeta`]): the subjects, and for
//! each sample its subject, native slice and the affine from sample pixel to native voxel.

use std::path::{Path, PathBuf};

use safetensors::tensor::Dtype;
use serde::{Deserialize, Serialize};
use u2ad_io::tensor_file::{self, TensorFile};

use crate::error::Result;

/// Side of a square sample, in pixels.
pub const SAMPLE_SIZE: usize = 256;
/// Pixels per sample.
pub const SAMPLE_PIXELS: usize = SAMPLE_SIZE * SAMPLE_SIZE;
/// Version of the file layout.
pub const FORMAT_VERSION: u32 = 1;

/// One subject of the prepared cohort.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SubjectMeta {
    /// BIDS subject label with its prefix, e.g. `sub-errsm11`.
    pub subject: String,
    /// The T2w image the samples come from (maps are written back onto its grid).
    pub image_path: PathBuf,
    pub cord_mask_path: Option<PathBuf>,
    pub csf_mask_path: Option<PathBuf>,
    pub levels_path: Option<PathBuf>,
    /// Native grid.
    pub shape: [usize; 3],
    pub spacing_mm: [f64; 3],
    pub orientation: String,
    /// Whether the CSF mask was derived from the cord mask and the signal (no CSF file given).
    pub csf_derived: bool,
    /// Cord length along its centreline, in mm.
    pub cord_length_mm: f64,
    /// Disc levels with a segment on the cord, e.g. ["C2/C3", …].
    pub levels_found: Vec<String>,
    /// How the levels were obtained (e.g. "vertebrae_dlabel: C2, T2 given; others placed with PAM50 proportions").
    pub levels_source: String,
    /// Intensities mapped to 0 and 1 (the 0.2 and 99.8 percentiles of the foreground).
    pub intensity_low: f64,
    pub intensity_high: f64,
}

/// One 2-D sample: a native sagittal slice, resampled.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct SampleMeta {
    /// Index into [`DatasetMeta::subjects`].
    pub subject_index: usize,
    /// Index of the sagittal slice along the native left-right voxel axis.
    pub native_slice: usize,
    /// Native fractional voxel index (i, j, k) = `pixel_to_native` x (row, col, 1).
    pub pixel_to_native: [[f64; 3]; 3],
    /// Pixel size of the sample, in mm.
    pub pixel_mm: f64,
    /// Position of the slice along the left-right axis relative to the cord's centre slice, in mm.
    pub offset_from_mid_mm: f64,
}

/// The JSON document stored with the tensors.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DatasetMeta {
    pub format_version: u32,
    pub u2ad_version: String,
    /// The command line that wrote the file.
    pub command: String,
    pub subjects: Vec<SubjectMeta>,
    pub samples: Vec<SampleMeta>,
}

/// A prepared cohort in memory.
#[derive(Debug, Clone)]
pub struct PreparedDataset {
    pub meta: DatasetMeta,
    pub image: Vec<f32>,
    pub roi: Vec<u8>,
    pub cord: Vec<u8>,
    pub csf: Vec<u8>,
    pub row_segment: Vec<u8>,
}

/// One sample's arrays, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct SampleView<'a> {
    pub meta: &'a SampleMeta,
    pub image: &'a [f32],
    pub roi: &'a [u8],
    pub cord: &'a [u8],
    pub csf: &'a [u8],
    pub row_segment: &'a [u8],
}

impl SampleView<'_> {
    /// An owned copy.
    pub fn to_sample(&self) -> PreparedSample {
        PreparedSample {
            meta: *self.meta,
            image: self.image.to_vec(),
            roi: self.roi.to_vec(),
            cord: self.cord.to_vec(),
            csf: self.csf.to_vec(),
            row_segment: self.row_segment.to_vec(),
        }
    }
}

impl PreparedDataset {
    pub fn new(command: String) -> Self {
        PreparedDataset {
            meta: DatasetMeta {
                format_version: FORMAT_VERSION,
                u2ad_version: env!("CARGO_PKG_VERSION").to_string(),
                command,
                subjects: Vec::new(),
                samples: Vec::new(),
            },
            image: Vec::new(),
            roi: Vec::new(),
            cord: Vec::new(),
            csf: Vec::new(),
            row_segment: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.meta.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.meta.samples.is_empty()
    }

    pub fn sample(&self, index: usize) -> SampleView<'_> {
        let px = index * SAMPLE_PIXELS..(index + 1) * SAMPLE_PIXELS;
        let rows = index * SAMPLE_SIZE..(index + 1) * SAMPLE_SIZE;
        SampleView {
            meta: &self.meta.samples[index],
            image: &self.image[px.clone()],
            roi: &self.roi[px.clone()],
            cord: &self.cord[px.clone()],
            csf: &self.csf[px],
            row_segment: &self.row_segment[rows],
        }
    }

    /// Indices of the samples of one subject.
    pub fn samples_of(&self, subject_index: usize) -> Vec<usize> {
        (0..self.len()).filter(|&i| self.meta.samples[i].subject_index == subject_index).collect()
    }

    /// Appends a subject and its samples (arrays of SAMPLE_PIXELS per sample, SAMPLE_SIZE rows).
    /// Every subject (or those named in `include`, when not empty) with owned copies of its
    /// samples, in file order.
    pub fn subjects_with_samples(&self, include: &[String]) -> Vec<(SubjectMeta, Vec<PreparedSample>)> {
        self.meta
            .subjects
            .iter()
            .enumerate()
            .filter(|(_, meta)| include.is_empty() || include.contains(&meta.subject))
            .map(|(index, meta)| (meta.clone(), self.samples_of(index).into_iter().map(|i| self.sample(i).to_sample()).collect()))
            .collect()
    }

    pub fn push_subject(&mut self, subject: SubjectMeta, samples: Vec<PreparedSample>) {
        let subject_index = self.meta.subjects.len();
        self.meta.subjects.push(subject);
        for mut s in samples {
            s.meta.subject_index = subject_index;
            assert_eq!(s.image.len(), SAMPLE_PIXELS);
            self.meta.samples.push(s.meta);
            self.image.extend_from_slice(&s.image);
            self.roi.extend_from_slice(&s.roi);
            self.cord.extend_from_slice(&s.cord);
            self.csf.extend_from_slice(&s.csf);
            self.row_segment.extend_from_slice(&s.row_segment);
        }
    }

    /// Every subject name valid ([`u2ad_io::names`]); `path` is the file named in the error.
    fn check_subject_names(meta: &DatasetMeta, path: &Path) -> Result<()> {
        for subject in &meta.subjects {
            u2ad_io::names::check_subject_id(&subject.subject, path)?;
        }
        Ok(())
    }

    /// Writes the file atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        Self::check_subject_names(&self.meta, path)?;
        let n = self.len();
        let image = tensor_file::f32_bytes(&self.image);
        let plane = vec![n, SAMPLE_SIZE, SAMPLE_SIZE];
        let tensors = [
            ("image", Dtype::F32, plane.clone(), &image[..]),
            ("roi", Dtype::U8, plane.clone(), &self.roi[..]),
            ("cord", Dtype::U8, plane.clone(), &self.cord[..]),
            ("csf", Dtype::U8, plane, &self.csf[..]),
            ("row_segment", Dtype::U8, vec![n, SAMPLE_SIZE], &self.row_segment[..]),
        ];
        Ok(tensor_file::write(path, &tensors, &self.meta)?)
    }

    /// Reads the whole file in one read.
    pub fn read(path: &Path) -> Result<PreparedDataset> {
        let (file, meta): (_, DatasetMeta) = TensorFile::read(path, "dataset", "u2ad prepare")?;
        if meta.format_version != FORMAT_VERSION {
            return Err(file.error(format!(
                "format version {} (this u2ad reads version {FORMAT_VERSION}); run `u2ad prepare` again",
                meta.format_version
            )).into());
        }
        Self::check_subject_names(&meta, path)?;
        let n = meta.samples.len();
        let plane = [n, SAMPLE_SIZE, SAMPLE_SIZE];
        Ok(PreparedDataset {
            image: file.floats("image", &plane)?,
            roi: file.bytes("roi", Dtype::U8, &plane)?,
            cord: file.bytes("cord", Dtype::U8, &plane)?,
            csf: file.bytes("csf", Dtype::U8, &plane)?,
            row_segment: file.bytes("row_segment", Dtype::U8, &[n, SAMPLE_SIZE])?,
            meta,
        })
    }
}

/// SHA-256 (16 hex digits) of prepared samples: their geometry and every array, so that a
/// result made from them is reused only for the same content.
pub fn samples_hash(samples: &[PreparedSample]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for s in samples {
        hasher.update(serde_json::to_vec(&s.meta).unwrap_or_default());
        hasher.update(tensor_file::f32_bytes(&s.image));
        for mask in [&s.roi, &s.cord, &s.csf, &s.row_segment] {
            hasher.update(mask);
        }
    }
    hasher.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// One sample before it joins a dataset.
#[derive(Debug, Clone)]
pub struct PreparedSample {
    pub meta: SampleMeta,
    pub image: Vec<f32>,
    pub roi: Vec<u8>,
    pub cord: Vec<u8>,
    pub csf: Vec<u8>,
    pub row_segment: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_keeps_everything() {
        let mut ds = PreparedDataset::new("u2ad prepare test".into());
        let meta = SampleMeta {
            subject_index: 0,
            native_slice: 7,
            pixel_to_native: [[0.0, 0.78, 3.0], [-0.78, 0.0, 200.0], [0.0, 0.0, 7.0]],
            pixel_mm: 0.78125,
            offset_from_mid_mm: -2.0,
        };
        let mut image = vec![0.0f32; SAMPLE_PIXELS];
        image[1234] = 0.5;
        let mut roi = vec![0u8; SAMPLE_PIXELS];
        roi[99] = 1;
        let mut row_segment = vec![0u8; SAMPLE_SIZE];
        row_segment[100] = 4;
        let sample = PreparedSample {
            meta,
            image,
            roi: roi.clone(),
            cord: roi.clone(),
            csf: vec![0; SAMPLE_PIXELS],
            row_segment,
        };
        let subject = SubjectMeta {
            subject: "sub-x".into(),
            image_path: "x.nii.gz".into(),
            cord_mask_path: None,
            csf_mask_path: None,
            levels_path: None,
            shape: [3, 4, 5],
            spacing_mm: [1.0, 1.0, 1.0],
            orientation: "PSR".into(),
            csf_derived: true,
            cord_length_mm: 12.5,
            levels_found: vec!["C5/C6".into()],
            levels_source: "test".into(),
            intensity_low: 1.0,
            intensity_high: 2.0,
        };
        ds.push_subject(subject, vec![sample]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.u2ds");
        ds.write(&path).unwrap();
        let back = PreparedDataset::read(&path).unwrap();
        assert_eq!(back.meta, ds.meta);
        assert_eq!(back.sample(0).image[1234], 0.5);
        assert_eq!(back.sample(0).roi[99], 1);
        assert_eq!(back.sample(0).row_segment[100], 4);
        assert_eq!(back.samples_of(0), vec![0]);
    }

    #[test]
    fn rejects_a_file_that_is_not_a_dataset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.u2ds");
        std::fs::write(&path, b"hello").unwrap();
        let err = PreparedDataset::read(&path).unwrap_err().to_string();
        assert!(err.contains("bad.u2ds") && err.contains("not a u2ad dataset"), "{err}");
    }
}
