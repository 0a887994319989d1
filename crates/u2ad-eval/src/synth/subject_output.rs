//! One synthetic subject on disk: its image, its ground-truth lesion mask, the source's labels
//! copied under the new name and the BIDS sidecar, and the record of what was written
//! ([`SynthRecord`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use u2ad_io::cohort::nifti_stem;
use u2ad_io::volume::{Volume, VoxelType};

use super::draw::draw_lesions;
use super::lesion::PlacedLesion;
use super::plan::{subject_rng, CohortOptions, PlannedSubject};
use super::source::SourceScan;
use super::synthesis::synthesise;
use super::LESION_LABEL_SUFFIX;
use u2ad_core::error::{CoreError, Result};

/// What was written for one synthetic subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthRecord {
    pub subject: String,
    pub source_subject: String,
    pub source_image: PathBuf,
    pub lesion_free: bool,
    pub seed: u64,
    pub stream: u64,
    /// Noise σ of the source's cord (at `cord_signal`).
    pub noise_sigma: f64,
    pub cord_signal: f64,
    /// σ of the added whole-image noise at the cord's signal.
    pub fresh_noise_sigma: f64,
    pub csf_derived: bool,
    pub lesions: Vec<PlacedLesion>,
    /// Relative paths inside the cohort.
    pub image: PathBuf,
    pub lesion_label: PathBuf,
}

/// The ground-truth lesion mask of an image: `<labels_dir>/<same sub-/ses- folders>/anat/
/// <image stem>_label-lesion_seg.nii.gz`, where `dataset_root` holds the image.
pub fn lesion_label_path(dataset_root: &Path, image: &Path) -> PathBuf {
    let labels_root = dataset_root.join("derivatives").join("labels");
    let relative_dir = image.parent().and_then(|p| p.strip_prefix(dataset_root).ok()).unwrap_or(Path::new(""));
    labels_root.join(relative_dir).join(format!("{}{LESION_LABEL_SUFFIX}.nii.gz", nifti_stem(image)))
}

/// Voxel type to write a synthetic image with: the source's, unless an integer source had a
/// scaling that rounding would spoil (then float32).
fn output_voxel_type(volume: &Volume) -> VoxelType {
    let slope = volume.header.scl_slope;
    let scaled = slope != 0.0 && slope.is_finite() && (slope != 1.0 || volume.header.scl_inter != 0.0);
    match volume.voxel_type {
        VoxelType::Float32 | VoxelType::Float64 => volume.voxel_type,
        other if !scaled => other,
        _ => VoxelType::Float32,
    }
}

pub(super) fn io_error(path: &Path, e: std::io::Error) -> CoreError {
    CoreError::io(path, e)
}

/// A label file's suffix and extension relative to its image: `<stem><suffix>.nii.gz`.
fn label_tail(image: &Path, label: &Path) -> String {
    let stem = nifti_stem(image);
    let name = label.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    name.strip_prefix(&stem).map(str::to_string).unwrap_or_else(|| format!("_{name}"))
}

/// Makes one synthetic subject and writes its image, lesion mask and copied labels under
/// `root` (a cohort folder being built).
pub(super) fn make_subject(
    root: &Path,
    source: &SourceScan,
    plan: &PlannedSubject,
    options: &CohortOptions,
) -> Result<SynthRecord> {
    let mut rng = subject_rng(options.seed, plan.stream);
    let specs = if plan.lesion_free { Vec::new() } else { draw_lesions(source, &options.synth, &mut rng)? };
    let synthetic = synthesise(source, &specs, &options.synth, &mut rng);
    let reorientation = source.volume.reorientation();
    let anat = PathBuf::from(&plan.subject).join("anat");
    let labels = PathBuf::from("derivatives").join("labels").join(&plan.subject).join("anat");
    let stem = format!("{}_T2w", plan.subject);
    let image_rel = anat.join(format!("{stem}.nii.gz"));
    let lesion_rel = labels.join(format!("{stem}{LESION_LABEL_SUFFIX}.nii.gz"));
    std::fs::create_dir_all(root.join(&anat)).map_err(|e| io_error(&root.join(&anat), e))?;
    std::fs::create_dir_all(root.join(&labels)).map_err(|e| io_error(&root.join(&labels), e))?;

    let native = reorientation.to_native(synthetic.image.view());
    source.volume.write_like(native.view(), output_voxel_type(&source.volume), &root.join(&image_rel))?;
    let mask = reorientation.to_native(synthetic.lesion_mask.mapv(|v| if v { 1.0f32 } else { 0.0 }).view());
    source.volume.write_like(mask.view(), VoxelType::UInt8, &root.join(&lesion_rel))?;

    // The labels the lesion was placed with, byte for byte, under the new name.
    let files = &source.files;
    let mut copies: Vec<&PathBuf> = vec![];
    copies.extend(files.cord_mask.iter());
    copies.extend(files.csf_mask.iter());
    copies.extend(files.levels.iter());
    for label in copies {
        let target = root.join(&labels).join(format!("{stem}{}", label_tail(&files.image, label)));
        std::fs::copy(label, &target).map_err(|e| io_error(label, e))?;
    }
    // The image's BIDS sidecar, when there is one.
    let sidecar = files.image.with_file_name(format!("{}.json", nifti_stem(&files.image)));
    if sidecar.is_file() {
        let target = root.join(&anat).join(format!("{stem}.json"));
        std::fs::copy(&sidecar, &target).map_err(|e| io_error(&sidecar, e))?;
    }
    Ok(SynthRecord {
        subject: plan.subject.clone(),
        source_subject: files.subject.clone(),
        source_image: std::path::absolute(&files.image).unwrap_or_else(|_| files.image.clone()),
        lesion_free: plan.lesion_free,
        seed: options.seed,
        stream: plan.stream,
        noise_sigma: source.noise.sigma,
        cord_signal: source.noise.signal,
        fresh_noise_sigma: synthetic.fresh_noise_sigma,
        csf_derived: source.csf_derived,
        lesions: synthetic.lesions,
        image: image_rel,
        lesion_label: lesion_rel,
    })
}
