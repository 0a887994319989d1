//! One subject's files to prepared samples: read and check the image and its labels, derive what
//! is missing (CSF, levels), preprocess (see [`crate::sample`]).

use std::path::PathBuf;

use u2ad_io::cohort::SubjectFiles;
use u2ad_io::volume::{check_sagittal, Volume};

use crate::anatomy::{derive_csf_with, dilate_3d, erode_3d, load_cord_mask, load_csf_mask, Centreline, Neighbourhood3d};
use crate::dataset::{PreparedSample, SubjectMeta, SAMPLE_SIZE};
use crate::error::{CoreError, Result};
use crate::levels::{load_levels_report, DiscLevel, LevelConvention};
use crate::sample::{preprocess_subject, CanonicalSubject, IntensityWindow, PreprocessConfig};

/// How to prepare a subject.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PrepareOptions {
    pub preprocess: PreprocessConfig,
    /// Force a level convention instead of detecting it.
    pub level_convention: Option<LevelConvention>,
    /// Grow (positive) or shrink (negative) every cord mask by this many voxels in 3-D (6-connected
    /// steps) before anything else: how much do the results depend on the mask? Automatic
    /// segmentations differ from manual ones by about one voxel.
    pub cord_offset_voxels: i32,
}

/// A prepared subject.
#[derive(Debug, Clone)]
pub struct PreparedSubject {
    pub meta: SubjectMeta,
    pub samples: Vec<PreparedSample>,
}

/// Prepares one subject. Every error names the offending file.
pub fn prepare_subject(files: &SubjectFiles, options: &PrepareOptions) -> Result<PreparedSubject> {
    let image = Volume::read(&files.image)?;
    check_not_constant(&image)?;
    check_sagittal(&image)?;
    let cord_path = files.cord_mask.as_ref().ok_or_else(|| {
        CoreError::input(
            &files.image,
            "no cord mask: expected <image>_label-SC_seg.nii.gz under derivatives/labels (or give --cord)",
        )
    })?;
    let cord = load_cord_mask(cord_path, &image)?;
    let steps = options.cord_offset_voxels.unsigned_abs() as usize;
    let cord = match options.cord_offset_voxels {
        0 => cord,
        n if n > 0 => dilate_3d(cord.view(), Neighbourhood3d::Cross, steps),
        _ => erode_3d(cord.view(), Neighbourhood3d::Cross, steps),
    };
    if !cord.iter().any(|&v| v) {
        return Err(CoreError::input(cord_path, format!("empty after eroding it by {steps} voxel(s)")));
    }
    let reorientation = image.reorientation();
    let native_spacing = image.spacing_mm();
    let spacing_mm = [
        native_spacing[reorientation.native_axis[0]],
        native_spacing[reorientation.native_axis[1]],
        native_spacing[reorientation.native_axis[2]],
    ];
    let canonical_image = reorientation.to_canonical(image.data.view());
    let (csf, csf_derived) = match &files.csf_mask {
        Some(path) => (load_csf_mask(path, &image)?, false),
        None => (derive_csf_with(canonical_image, cord.view(), spacing_mm, &options.preprocess.derived_csf), true),
    };
    let centreline =
        Centreline::from_cord(cord.view(), spacing_mm).ok_or_else(|| CoreError::EmptyMask { path: cord_path.clone() })?;
    let levels = match &files.levels {
        Some(path) => Some(load_levels_report(path, options.level_convention, &image, &centreline)?),
        None => None,
    };
    let level_map = levels.as_ref().map(|report| &report.map);
    let intensity = IntensityWindow::of_volume(image.data.view(), &options.preprocess);
    let subject = CanonicalSubject {
        image: canonical_image,
        cord: cord.view(),
        csf: csf.view(),
        spacing_mm,
        reorientation,
        levels: level_map,
    };
    let samples = preprocess_subject(&subject, intensity, &options.preprocess);
    let levels_found = DiscLevel::ALL
        .iter()
        .filter(|level| {
            samples.iter().any(|s| {
                (0..SAMPLE_SIZE).any(|row| {
                    s.row_segment[row] == level.code() && s.cord[row * SAMPLE_SIZE..(row + 1) * SAMPLE_SIZE].contains(&1)
                })
            })
        })
        .map(|level| level.name().to_string())
        .collect();
    let meta = SubjectMeta {
        subject: files.subject.clone(),
        image_path: absolute(&files.image),
        cord_mask_path: Some(absolute(cord_path)),
        csf_mask_path: files.csf_mask.as_deref().map(absolute),
        levels_path: files.levels.as_deref().map(absolute),
        shape: image.shape(),
        spacing_mm: native_spacing,
        orientation: image.orientation().to_string(),
        csf_derived,
        cord_length_mm: centreline.cord_length_mm(),
        levels_found,
        levels_source: levels.as_ref().map_or_else(|| "no level file".to_string(), |r| r.map.source.clone()),
        intensity_low: intensity.low,
        intensity_high: intensity.high,
    };
    Ok(PreparedSubject { meta, samples })
}

/// Refuses a constant image (every voxel the same value, such as an all-zero scan): there is
/// nothing to detect in it.
fn check_not_constant(image: &Volume) -> Result<()> {
    let mut values = image.data.iter();
    let first = values.next().copied().unwrap_or(0.0);
    if values.all(|&v| v == first) {
        let detail = format!("the image is constant (every voxel is {first}): nothing to detect");
        return Err(CoreError::input(&image.path, detail));
    }
    Ok(())
}

fn absolute(path: &std::path::Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
