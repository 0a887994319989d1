//! A healthy source scan loaded for synthesis (image, cord and CSF masks, levels, noise, cord
//! frame), and where each disc level lies along its cord ([`LevelWindow`]).

use ndarray::Array3;
use serde::{Deserialize, Serialize};
use u2ad_io::cohort::SubjectFiles;
use u2ad_io::volume::{check_sagittal, Volume};

use super::frame::CordFrame;
use super::noise::{estimate_noise, NoiseEstimate, NoiseModel};
use super::{CORD_END_MARGIN_MM, MIN_NOISE_VOXELS};
use u2ad_core::anatomy::{derive_csf, erode_3d, load_cord_mask, load_csf_mask, Centreline, Neighbourhood3d};
use u2ad_core::error::{CoreError, Result};
use u2ad_core::levels::{load_levels, DiscLevel, LevelConvention, LevelMap};

/// A healthy scan with everything synthesis needs, in canonical (RAS+) order.
#[derive(Debug, Clone)]
pub struct SourceScan {
    pub files: SubjectFiles,
    /// The image as read (native order): the grid and header the outputs are written on.
    pub volume: Volume,
    /// The image in canonical order, standard layout.
    pub image: Array3<f32>,
    pub cord: Array3<bool>,
    /// The cord eroded by one voxel (3-D cross): where signal and noise are measured.
    pub cord_core: Array3<bool>,
    pub csf: Array3<bool>,
    pub csf_derived: bool,
    /// Canonical voxel spacing, mm.
    pub spacing_mm: [f64; 3],
    pub centreline: Centreline,
    pub frame: CordFrame,
    pub levels: LevelMap,
    /// The noise over the whole cord.
    pub noise: NoiseEstimate,
}

impl SourceScan {
    /// Reads a subject's image, cord mask, CSF mask (derived when absent) and levels. Every
    /// problem is a one-line error naming the file.
    pub fn load(
        files: &SubjectFiles,
        convention: Option<LevelConvention>,
        noise_model: &NoiseModel,
    ) -> Result<SourceScan> {
        let volume = Volume::read(&files.image)?;
        check_sagittal(&volume)?;
        let cord_path = files.cord_mask.as_ref().ok_or_else(|| {
            CoreError::input(
                &files.image,
                "no cord mask: expected <image>_label-SC_seg.nii.gz under derivatives/labels",
            )
        })?;
        let levels_path = files.levels.as_ref().ok_or_else(|| {
            CoreError::input(
                &files.image,
                "no level file: synthetic lesions are placed at disc levels (expected <image>_label-discs_dlabel \
                 or _label-vertebrae_dlabel under derivatives/labels)",
            )
        })?;
        let cord = load_cord_mask(cord_path, &volume)?;
        let reorientation = volume.reorientation();
        let native = volume.spacing_mm();
        let spacing_mm = [
            native[reorientation.native_axis[0]],
            native[reorientation.native_axis[1]],
            native[reorientation.native_axis[2]],
        ];
        let image = reorientation.to_canonical(volume.data.view()).as_standard_layout().into_owned();
        let (csf, csf_derived) = match &files.csf_mask {
            Some(path) => (load_csf_mask(path, &volume)?, false),
            None => (derive_csf(image.view(), cord.view(), spacing_mm), true),
        };
        let centreline = Centreline::from_cord(cord.view(), spacing_mm)
            .ok_or_else(|| CoreError::EmptyMask { path: cord_path.clone() })?;
        let levels = load_levels(levels_path, convention, &volume, &centreline)?;
        let eroded = erode_3d(cord.view(), Neighbourhood3d::Cross, 1);
        let cord_core = if eroded.iter().filter(|&&v| v).count() >= MIN_NOISE_VOXELS { eroded } else { cord.clone() };
        let noise = estimate_noise(image.view(), cord_core.view(), noise_model).ok_or_else(|| {
            CoreError::input(
                cord_path,
                format!("the cord is too small to measure the noise (fewer than {MIN_NOISE_VOXELS} voxels)"),
            )
        })?;
        let frame = CordFrame::from_centreline(&centreline);
        Ok(SourceScan {
            files: files.clone(),
            volume,
            image,
            cord,
            cord_core,
            csf,
            csf_derived,
            spacing_mm,
            centreline,
            frame,
            levels,
            noise,
        })
    }

    /// The disc levels whose disc lies on the cord, with where along it.
    pub fn level_windows(&self) -> Vec<LevelWindow> {
        let length = self.frame.cord_length_mm();
        DiscLevel::ALL
            .into_iter()
            .filter_map(|level| {
                let upper = *self.levels.vertebra_centre_k.get(&level.upper_vertebra())?;
                let lower = *self.levels.vertebra_centre_k.get(&(level.upper_vertebra() + 1))?;
                let a = self.centreline.arc_length_at_k(upper);
                let b = self.centreline.arc_length_at_k(lower);
                let disc = 0.5 * (a + b);
                (disc >= 0.0 && disc <= length).then_some(LevelWindow {
                    level,
                    disc_arc_mm: disc,
                    segment_mm: (a - b).abs(),
                })
            })
            .collect()
    }

    /// Canonical slice range `k` (clamped) of the arc interval `[from, to]`.
    pub(super) fn k_range(&self, from_mm: f64, to_mm: f64) -> (usize, usize) {
        let nk = self.image.dim().2;
        let lo = self.centreline.k_at_arc_length(from_mm).floor().max(0.0) as usize;
        let hi = (self.centreline.k_at_arc_length(to_mm).ceil().max(0.0) as usize).min(nk - 1);
        (lo.min(nk - 1), hi)
    }
}

/// Where a disc level lies along a subject's cord.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LevelWindow {
    pub level: DiscLevel,
    /// Arc length of the disc (midway between the two vertebral centres), mm.
    pub disc_arc_mm: f64,
    /// Distance between the two vertebral centres along the cord, mm.
    pub segment_mm: f64,
}

impl LevelWindow {
    /// Where the centre of a lesion of `length_mm` may go: within a quarter of the segment of
    /// the disc, with the whole lesion [`CORD_END_MARGIN_MM`] inside the cord's ends.
    pub fn centre_range(&self, length_mm: f64, cord_length_mm: f64) -> Option<(f64, f64)> {
        let jitter = 0.25 * self.segment_mm;
        let lo = (self.disc_arc_mm - jitter).max(0.5 * length_mm + CORD_END_MARGIN_MM);
        let hi = (self.disc_arc_mm + jitter).min(cord_length_mm - 0.5 * length_mm - CORD_END_MARGIN_MM);
        (lo <= hi).then_some((lo, hi))
    }
}
