//! What `u2ad detect` writes, and the model-free steps between Monte-Carlo inference and those
//! files: the output names, the per-subject file of 256 x 256 sample maps, the scoring of those
//! maps, and the maps projected back onto the subject's native grid.
//!
//! # Output layout (a BIDS derivative dataset)
//!
//! ```text
//! <out>/dataset_description.json                      DatasetType "derivative", GeneratedBy
//! <out>/levels.csv                                    every subject x disc level (as below)
//! <out>/patients.csv                                  every subject: score, call, positive levels
//! <out>/qc_report.html                                the QC report (links the figures below)
//! <out>/sub-XX[/ses-YY]/anat/<stem>_desc-anomaly.nii.gz          AU = |image - mean reconstruction|
//! <out>/sub-XX[/ses-YY]/anat/<stem>_desc-uncertainty.nii.gz      EU = variance of the K reconstructions
//! <out>/sub-XX[/ses-YY]/anat/<stem>_desc-reconstruction.nii.gz   mean reconstruction, input units
//! <out>/sub-XX[/ses-YY]/anat/<stem>_label-candidates_mask.nii.gz anomaly candidates (0/1)
//! <out>/sub-XX[/ses-YY]/anat/<stem>_desc-levels_scores.csv       one row per disc level
//! <out>/sub-XX[/ses-YY]/anat/<stem>_desc-patient_scores.json     patient score, call, positive levels
//! <out>/sub-XX[/ses-YY]/anat/<stem>_desc-curve_scores.csv        the anomaly curve, one row per image row
//! <out>/sub-XX[/ses-YY]/anat/<stem>_desc-mc_samples.safetensors  the 256 x 256 sample maps (rescoring)
//! <out>/sub-XX[/ses-YY]/figures/<stem>_desc-maps_qc.png          mid-sagittal slice, reconstruction, EU, AU
//! <out>/sub-XX[/ses-YY]/figures/<stem>_desc-curve_qc.png         anomaly curve, levels, thresholds
//! ```
//!
//! `<stem>` is the input image's name without `.nii.gz` (e.g. `sub-01_T2w`). Every NIfTI, CSV and
//! PNG has a JSON sidecar of the same name (`GeneratedBy`, configuration and model hashes, seed).
//!
//! # The NIfTI maps
//!
//! float32 (the mask uint8) on exactly the input's grid and header. Every sagittal sample's map is
//! projected back onto its native slice ([`crate::sample::project_to_native`], bilinear); voxels
//! of slices without a sample (no cord) are 0. AU and EU are 0 outside the cord mask eroded by
//! 3 x 3 pixels of the 256 x 256 sample grid. The reconstruction is in the input's intensity
//! units: the [0, 1] value `v` becomes `low + v (high - low)` with the subject's intensity window
//! (the 0.2 and 99.8 foreground percentiles); outside the ROI it is the (clipped) input. The
//! candidate mask is the projected 0/1 map thresholded at 0.5.

use std::path::{Path, PathBuf};

use ndarray::Array3;
use safetensors::tensor::Dtype;
use serde::{Deserialize, Serialize};
use u2ad_io::cohort::{nifti_stem, participant_group};
use u2ad_io::names;
use u2ad_io::tensor_file::{self, TensorFile};
use u2ad_io::volume::Volume;

use crate::dataset::{SampleMeta, SubjectMeta, SAMPLE_PIXELS, SAMPLE_SIZE};
use crate::error::Result;
use crate::levels::{vertebra_name, DiscLevel};
use crate::sample::project_to_native;
use crate::level_scores::{slice_spacing_mm, stack_scores, LevelScore, LevelScoreConfig, LevelStatistic, StackSlice};
use crate::scoring::{
    anomaly_candidates, erode_3x3, peak_signal_ratio, score_subject, CandidateFilter, CandidateMap, PlaneShape,
    ScoringConfig, SegmentOutcome, SegmentPeak, SegmentScore, SliceMaps, SubjectScores,
};

// ---------------------------------------------------------------------------------------------
// Names

/// Cohort-level files under the output folder.
pub const COHORT_LEVELS_CSV: &str = "levels.csv";
pub const COHORT_PATIENTS_CSV: &str = "patients.csv";
pub const QC_REPORT_HTML: &str = "qc_report.html";
pub const DATASET_DESCRIPTION: &str = "dataset_description.json";

/// The files of one subject under the output folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectOutputs {
    /// `<out>/sub-XX[/ses-YY]/anat`.
    pub anat_dir: PathBuf,
    /// `<out>/sub-XX[/ses-YY]/figures`.
    pub figures_dir: PathBuf,
    /// The input image's name without `.nii[.gz]` (or `.npy`).
    pub stem: String,
}

impl SubjectOutputs {
    /// Folders from the subject id (`sub-XX` or `sub-XX_ses-YY[_…]`) and the image name. The
    /// id is checked ([`u2ad_io::names`]) and the folders must stay inside `out`, whatever the
    /// name and whatever symbolic links `out` already holds.
    pub fn new(out: &Path, subject: &str, image: &Path) -> Result<SubjectOutputs> {
        names::check_subject_id(subject, image)?;
        let mut relative = PathBuf::new();
        let mut parts = subject.split('_');
        relative.push(parts.next().unwrap_or(subject));
        if let Some(session) = parts.find(|p| p.starts_with("ses-")) {
            relative.push(session);
        }
        let dir = names::path_inside(out, &relative)?;
        let stem = nifti_stem(image);
        let stem = if stem.is_empty() || stem.starts_with('.') { subject.to_string() } else { stem };
        Ok(SubjectOutputs { anat_dir: dir.join("anat"), figures_dir: dir.join("figures"), stem })
    }

    fn anat(&self, suffix: &str) -> PathBuf {
        self.anat_dir.join(format!("{}{suffix}", self.stem))
    }

    /// AU map.
    pub fn anomaly_map(&self) -> PathBuf {
        self.anat("_desc-anomaly.nii.gz")
    }
    /// EU map.
    pub fn uncertainty_map(&self) -> PathBuf {
        self.anat("_desc-uncertainty.nii.gz")
    }
    pub fn reconstruction_map(&self) -> PathBuf {
        self.anat("_desc-reconstruction.nii.gz")
    }
    pub fn candidates_mask(&self) -> PathBuf {
        self.anat("_label-candidates_mask.nii.gz")
    }
    pub fn levels_csv(&self) -> PathBuf {
        self.anat("_desc-levels_scores.csv")
    }
    pub fn patient_json(&self) -> PathBuf {
        self.anat("_desc-patient_scores.json")
    }
    pub fn curve_csv(&self) -> PathBuf {
        self.anat("_desc-curve_scores.csv")
    }
    pub fn sample_maps(&self) -> PathBuf {
        self.anat("_desc-mc_samples.safetensors")
    }
    pub fn maps_figure(&self) -> PathBuf {
        self.figures_dir.join(format!("{}_desc-maps_qc.png", self.stem))
    }
    pub fn curve_figure(&self) -> PathBuf {
        self.figures_dir.join(format!("{}_desc-curve_qc.png", self.stem))
    }

    /// The four NIfTI maps, in the order of [`NativeMaps::named`].
    pub fn nifti_maps(&self) -> [PathBuf; 4] {
        [self.anomaly_map(), self.uncertainty_map(), self.reconstruction_map(), self.candidates_mask()]
    }
}

/// `file.nii.gz` / `file.csv` / `file.png` → `file.json` (the BIDS sidecar).
pub fn sidecar_of(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = name.strip_suffix(".nii.gz").or_else(|| name.rsplit_once('.').map(|(s, _)| s)).unwrap_or(&name);
    path.with_file_name(format!("{stem}.json"))
}

// ---------------------------------------------------------------------------------------------
// Seeds

/// The mask-schedule seed of one sample: the 64-bit FNV-1a hash of
/// `(run seed, subject, native slice)`, so that a slice's maps do not depend on which other
/// subjects or slices run with it, nor on `--jobs`.
pub fn slice_seed(run_seed: u64, subject: &str, native_slice: usize) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            hash ^= b as u64;
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(&run_seed.to_le_bytes());
    eat(subject.as_bytes());
    eat(&[0]);
    eat(&(native_slice as u64).to_le_bytes());
    hash
}

// ---------------------------------------------------------------------------------------------
// The per-subject sample maps file

/// Version of the sample maps file.
pub const SAMPLE_MAPS_VERSION: u32 = 1;

/// One sample's Monte-Carlo results.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleResult {
    pub meta: SampleMeta,
    /// Preprocessed image in [0, 1].
    pub image: Vec<f32>,
    pub roi: Vec<u8>,
    pub cord: Vec<u8>,
    pub row_segment: Vec<u8>,
    /// Mean reconstruction on the ROI pixels, the image elsewhere.
    pub mean: Vec<f32>,
    /// EU (variance of the samples) on the eroded cord, 0 elsewhere.
    pub epistemic: Vec<f32>,
    /// AU = |image - mean| on the eroded cord, 0 elsewhere.
    pub aleatoric: Vec<f32>,
    /// Forward passes made for this sample.
    pub passes: usize,
}

impl SampleResult {
    /// From the MC outputs (on the ROI): EU and AU are restricted to the cord eroded by 3 x 3.
    #[allow(clippy::too_many_arguments)]
    pub fn from_mc(
        meta: SampleMeta,
        image: &[f32],
        roi: &[u8],
        cord: &[u8],
        row_segment: &[u8],
        mean: Vec<f32>,
        epistemic: &[f32],
        aleatoric: &[f32],
        passes: usize,
    ) -> SampleResult {
        let eroded = erode_3x3(cord, PlaneShape::SAMPLE);
        let inside = |v: &[f32]| v.iter().zip(&eroded).map(|(&x, &m)| if m != 0 { x } else { 0.0 }).collect();
        SampleResult {
            meta,
            image: image.to_vec(),
            roi: roi.to_vec(),
            cord: cord.to_vec(),
            row_segment: row_segment.to_vec(),
            mean,
            epistemic: inside(epistemic),
            aleatoric: inside(aleatoric),
            passes,
        }
    }

    pub fn eroded_cord(&self) -> Vec<u8> {
        erode_3x3(&self.cord, PlaneShape::SAMPLE)
    }
}

/// A subject's sample maps: what scoring and the figures need, kept so that a rerun with the same
/// model and settings rescores without Monte-Carlo inference.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectMaps {
    pub subject: SubjectMeta,
    pub samples: Vec<SampleResult>,
}

#[derive(Serialize, Deserialize)]
struct MapsHeader {
    format_version: u32,
    subject: SubjectMeta,
    samples: Vec<SampleMeta>,
    passes: Vec<usize>,
}

impl SubjectMaps {
    /// Writes the file atomically (safetensors: `image`, `mean`, `epistemic`, `aleatoric` f32
    /// N x 256 x 256; `roi`, `cord` u8 N x 256 x 256; `row_segment` u8 N x 256; metadata `u2ad`).
    pub fn write(&self, path: &Path) -> u2ad_io::Result<()> {
        let n = self.samples.len();
        let floats = |f: &dyn Fn(&SampleResult) -> &Vec<f32>| -> Vec<u8> {
            tensor_file::f32_bytes(self.samples.iter().flat_map(|s| f(s).iter()))
        };
        let bytes_of = |f: &dyn Fn(&SampleResult) -> &Vec<u8>| -> Vec<u8> { self.samples.iter().flat_map(|s| f(s).iter().copied()).collect() };
        let image = floats(&|s| &s.image);
        let mean = floats(&|s| &s.mean);
        let epistemic = floats(&|s| &s.epistemic);
        let aleatoric = floats(&|s| &s.aleatoric);
        let roi = bytes_of(&|s| &s.roi);
        let cord = bytes_of(&|s| &s.cord);
        let row_segment = bytes_of(&|s| &s.row_segment);
        let plane = vec![n, SAMPLE_SIZE, SAMPLE_SIZE];
        let tensors = [
            ("image", Dtype::F32, plane.clone(), &image[..]),
            ("mean", Dtype::F32, plane.clone(), &mean[..]),
            ("epistemic", Dtype::F32, plane.clone(), &epistemic[..]),
            ("aleatoric", Dtype::F32, plane.clone(), &aleatoric[..]),
            ("roi", Dtype::U8, plane.clone(), &roi[..]),
            ("cord", Dtype::U8, plane, &cord[..]),
            ("row_segment", Dtype::U8, vec![n, SAMPLE_SIZE], &row_segment[..]),
        ];
        let header = MapsHeader {
            format_version: SAMPLE_MAPS_VERSION,
            subject: self.subject.clone(),
            samples: self.samples.iter().map(|s| s.meta).collect(),
            passes: self.samples.iter().map(|s| s.passes).collect(),
        };
        tensor_file::write(path, &tensors, &header)
    }

    pub fn read(path: &Path) -> Result<SubjectMaps> {
        let (file, header): (_, MapsHeader) = TensorFile::read(path, "sample maps", "u2ad detect")?;
        if header.format_version != SAMPLE_MAPS_VERSION || header.passes.len() != header.samples.len() {
            return Err(file.error(format!("format version {} (expected {SAMPLE_MAPS_VERSION})", header.format_version)).into());
        }
        let n = header.samples.len();
        let plane = [n, SAMPLE_SIZE, SAMPLE_SIZE];
        let floats = |name: &str| file.floats(name, &plane);
        let (image, mean, epistemic, aleatoric) = (floats("image")?, floats("mean")?, floats("epistemic")?, floats("aleatoric")?);
        let (roi, cord) = (file.bytes("roi", Dtype::U8, &plane)?, file.bytes("cord", Dtype::U8, &plane)?);
        let row_segment = file.bytes("row_segment", Dtype::U8, &[n, SAMPLE_SIZE])?;
        let px = |i: usize| i * SAMPLE_PIXELS..(i + 1) * SAMPLE_PIXELS;
        let samples = (0..n)
            .map(|i| SampleResult {
                meta: header.samples[i],
                image: image[px(i)].to_vec(),
                roi: roi[px(i)].to_vec(),
                cord: cord[px(i)].to_vec(),
                row_segment: row_segment[i * SAMPLE_SIZE..(i + 1) * SAMPLE_SIZE].to_vec(),
                mean: mean[px(i)].to_vec(),
                epistemic: epistemic[px(i)].to_vec(),
                aleatoric: aleatoric[px(i)].to_vec(),
                passes: header.passes[i],
            })
            .collect();
        Ok(SubjectMaps { subject: header.subject, samples })
    }

    /// The sample shown in figures: the one with the largest eroded cord (mid-sagittal).
    pub fn mid_sagittal(&self) -> Option<usize> {
        let mut best: Option<(usize, usize)> = None;
        for (i, s) in self.samples.iter().enumerate() {
            let px = s.eroded_cord().iter().filter(|&&m| m != 0).count();
            if px > 0 && best.is_none_or(|(_, b)| px > b) {
                best = Some((i, px));
            }
        }
        best.map(|(i, _)| i)
    }

    /// The subject's row segments (shared by its samples; zeros when it has none).
    pub fn row_segment(&self) -> Vec<u8> {
        self.samples.first().map(|s| s.row_segment.clone()).unwrap_or_else(|| vec![0; SAMPLE_SIZE])
    }
}

// ---------------------------------------------------------------------------------------------
// Scoring

/// The candidate filter, the curve/segment settings and the 3-D level scores.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct MapScoring {
    pub candidates: CandidateFilter,
    pub scoring: ScoringConfig,
    /// How each level's score is taken ([`LevelStatistic::CurvePeak`]: the curve's peak).
    pub levels: LevelScoreConfig,
}

/// A subject's candidates (one map per sample, in order) and scores.
#[derive(Debug, Clone)]
pub struct ScoredSubject {
    pub candidates: Vec<CandidateMap>,
    pub scores: SubjectScores,
}

/// Anomaly candidates of every sample, then the subject's curve and segment scores.
pub fn score_maps(maps: &SubjectMaps, settings: &MapScoring) -> ScoredSubject {
    let shape = PlaneShape::SAMPLE;
    let eroded: Vec<Vec<u8>> = maps.samples.iter().map(SampleResult::eroded_cord).collect();
    let candidates: Vec<CandidateMap> = maps
        .samples
        .iter()
        .zip(&eroded)
        .map(|(s, e)| anomaly_candidates(&s.aleatoric, e, shape, &settings.candidates))
        .collect();
    let slices: Vec<SliceMaps<'_>> = maps
        .samples
        .iter()
        .zip(&eroded)
        .zip(&candidates)
        .map(|((s, e), c)| SliceMaps { image: &s.image, filtered_au: &c.filtered_au, cord_eroded: e, eu: Some(&s.epistemic) })
        .collect();
    let mut scores = score_subject(&maps.subject.subject, &slices, &maps.row_segment(), shape, &settings.scoring);
    scores.group = participant_group(&maps.subject.subject, &maps.subject.image_path);
    if !matches!(settings.levels.statistic, LevelStatistic::CurvePeak) {
        let stack: Vec<StackSlice<'_>> = maps
            .samples
            .iter()
            .map(|s| StackSlice {
                native_slice: s.meta.native_slice,
                cord: &s.cord,
                roi: &s.roi,
                values: &s.aleatoric,
                image: &s.image,
                row_segment: &s.row_segment,
            })
            .collect();
        let spacing = maps.samples.first().map_or(1.0, |s| slice_spacing_mm(&maps.subject, &s.meta));
        let (found, outside) = stack_scores(&stack, shape, &settings.levels, settings.scoring.pixel_mm, spacing);
        replace_segment_scores(&mut scores, &found, &slices, settings.scoring.pixel_mm);
        // A lesion above C2/C3 or below C7/T1 in view reaches the patient's score, as its call.
        scores.patient_score = scores.patient_score.into_iter().chain(outside.iter().map(|o| o.score)).reduce(f64::max);
        scores.outside_levels = outside;
    }
    ScoredSubject { candidates, scores }
}

/// Puts the 3-D level scores in place of the curve peaks: score, peak row and sample, position
/// and signal ratio; the extent stays the curve's (0 where the curve has no value, e.g. a slice
/// whose eroded cord is under the curve's 100 pixels). The levels are exactly those the 3-D
/// scores hold, so one subject's scores never mix the two rules.
fn replace_segment_scores(scores: &mut SubjectScores, found: &[LevelScore], slices: &[SliceMaps<'_>], pixel_mm: f64) {
    let origin_row = scores.position_origin.map(|o| o.row_px());
    for segment in &mut scores.segments {
        let Some(level) = found.iter().find(|l| l.level == segment.level) else {
            segment.outcome = SegmentOutcome::OutOfFieldOfView;
            continue;
        };
        let extent_mm = segment.peak().map_or(0.0, |p| p.extent_mm);
        segment.outcome = SegmentOutcome::Scored(SegmentPeak {
            score: level.score,
            peak_row_px: level.peak_row_px,
            peak_slice: level.peak_slice,
            peak_position_mm: (level.peak_row_px as f64 - origin_row.unwrap_or(level.peak_row_px) as f64) * pixel_mm,
            extent_mm,
            peak_signal_ratio: peak_signal_ratio(&slices[level.peak_slice], level.peak_row_px, PlaneShape::SAMPLE),
        });
    }
    scores.patient_score = scores.segments.iter().filter_map(SegmentScore::score).reduce(f64::max);
}

/// Rows of the vertebral centres that bound the disc-level segments of `row_segment`, with the
/// vertebra's name: the first row of segment Cn/Cn+1 is the centre of Cn, the row after the last
/// row of C7/T1 the centre of T1.
pub fn vertebra_lines(row_segment: &[u8]) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    for level in DiscLevel::ALL {
        let rows: Vec<usize> = (0..row_segment.len()).filter(|&r| row_segment[r] == level.code()).collect();
        let (Some(&first), Some(&last)) = (rows.first(), rows.last()) else { continue };
        let upper = (first, vertebra_name(level.upper_vertebra()));
        if !lines.contains(&upper) {
            lines.push(upper);
        }
        let lower = (last + 1, vertebra_name(level.upper_vertebra() + 1));
        let next_starts_here = DiscLevel::from_code(level.code() + 1).is_some_and(|next| row_segment.get(last + 1) == Some(&next.code()));
        if !next_starts_here {
            lines.push(lower);
        }
    }
    lines.sort();
    lines.dedup_by(|a, b| a.0 == b.0);
    lines
}

// ---------------------------------------------------------------------------------------------
// Native maps

/// The four maps on the native grid (native voxel order).
#[derive(Debug, Clone)]
pub struct NativeMaps {
    pub anomaly: Array3<f32>,
    pub uncertainty: Array3<f32>,
    pub reconstruction: Array3<f32>,
    /// 0/1.
    pub candidates: Array3<f32>,
}

impl NativeMaps {
    /// (map, is a mask) in the order of [`SubjectOutputs::nifti_maps`].
    pub fn named(&self) -> [(&Array3<f32>, bool); 4] {
        [(&self.anomaly, false), (&self.uncertainty, false), (&self.reconstruction, false), (&self.candidates, true)]
    }
}

/// The grid a subject's maps are written on: its scan's, read from `image_path`; for a
/// reference `.npy` slice (no scan behind it) the 256 x 256 sample grid itself
/// ([`Volume::sample_grid`]), onto which the sample maps project one to one.
pub fn map_grid(subject: &SubjectMeta) -> Result<Volume> {
    if subject.image_path.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy")) {
        let pixel_mm = subject.spacing_mm[0];
        return Ok(Volume::sample_grid(&subject.image_path, SAMPLE_SIZE, SAMPLE_SIZE, pixel_mm));
    }
    Ok(Volume::read(&subject.image_path)?)
}

/// Projects every sample's maps onto the native grid of `reference` (the subject's image).
pub fn native_maps(maps: &SubjectMaps, candidates: &[CandidateMap], reference: &Volume) -> NativeMaps {
    let shape = reference.shape();
    let zeros = || Array3::<f32>::zeros((shape[0], shape[1], shape[2]));
    let mut out = NativeMaps { anomaly: zeros(), uncertainty: zeros(), reconstruction: zeros(), candidates: zeros() };
    let (low, high) = (maps.subject.intensity_low as f32, maps.subject.intensity_high as f32);
    for (sample, candidate) in maps.samples.iter().zip(candidates) {
        project_to_native(&sample.meta, &sample.aleatoric, &mut out.anomaly);
        project_to_native(&sample.meta, &sample.epistemic, &mut out.uncertainty);
        let units: Vec<f32> = sample.mean.iter().map(|&v| low + v * (high - low)).collect();
        project_to_native(&sample.meta, &units, &mut out.reconstruction);
        let mask: Vec<f32> = candidate.filtered_au.iter().map(|&v| if v != 0.0 { 1.0 } else { 0.0 }).collect();
        project_to_native(&sample.meta, &mask, &mut out.candidates);
    }
    out.candidates.mapv_inplace(|v| if v >= 0.5 { 1.0 } else { 0.0 });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_bids_derivatives() {
        let o = SubjectOutputs::new(Path::new("out"), "sub-01_ses-02", Path::new("/d/sub-01/ses-02/anat/sub-01_ses-02_T2w.nii.gz")).unwrap();
        assert_eq!(o.anat_dir, Path::new("out/sub-01/ses-02/anat"));
        assert_eq!(o.anomaly_map(), Path::new("out/sub-01/ses-02/anat/sub-01_ses-02_T2w_desc-anomaly.nii.gz"));
        assert_eq!(o.candidates_mask(), Path::new("out/sub-01/ses-02/anat/sub-01_ses-02_T2w_label-candidates_mask.nii.gz"));
        assert_eq!(o.maps_figure(), Path::new("out/sub-01/ses-02/figures/sub-01_ses-02_T2w_desc-maps_qc.png"));
        assert_eq!(sidecar_of(&o.anomaly_map()), Path::new("out/sub-01/ses-02/anat/sub-01_ses-02_T2w_desc-anomaly.json"));
        assert_eq!(sidecar_of(&o.levels_csv()), Path::new("out/sub-01/ses-02/anat/sub-01_ses-02_T2w_desc-levels_scores.json"));
        let plain = SubjectOutputs::new(Path::new("o"), "sub-x", Path::new("scan.nii")).unwrap();
        assert_eq!(plain.anomaly_map(), Path::new("o/sub-x/anat/scan_desc-anomaly.nii.gz"));
    }

    #[test]
    fn seeds_depend_on_run_subject_and_slice_only() {
        let a = slice_seed(7, "sub-01", 3);
        assert_eq!(a, slice_seed(7, "sub-01", 3));
        assert_ne!(a, slice_seed(8, "sub-01", 3));
        assert_ne!(a, slice_seed(7, "sub-02", 3));
        assert_ne!(a, slice_seed(7, "sub-01", 4));
        assert_ne!(slice_seed(0, "sub-1", 11), slice_seed(0, "sub-11", 1), "the subject is delimited");
    }

    #[test]
    fn vertebra_lines_bound_the_segments() {
        let mut rows = vec![0u8; 20];
        rows[3..7].fill(1); // C2/C3
        rows[7..10].fill(2); // C3/C4
        rows[12..15].fill(4); // C5/C6 (C4/C5 missing)
        let lines = vertebra_lines(&rows);
        let names: Vec<(usize, &str)> = lines.iter().map(|(r, n)| (*r, n.as_str())).collect();
        assert_eq!(names, [(3, "C2"), (7, "C3"), (10, "C4"), (12, "C5"), (15, "C6")]);
    }
}
