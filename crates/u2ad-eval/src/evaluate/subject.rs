//! One subject compared with its truth ([`evaluate_subject`]): the anomaly map and candidate mask
//! over the cord voxels, the segments whose rows hold a lesion against the level calls, and the
//! patient call; [`evaluate_detections`] does every subject of the cohort.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;
use u2ad_io::cohort::participant_group;
use u2ad_io::volume::{Volume, GRID_TOLERANCE_MM};

use super::detections::{read_detection_tables, DetectionTables, LevelCall};
use super::truth::{LesionRecord, TruthSubject};
use u2ad_core::anatomy::{erode_3d, Neighbourhood3d};
use u2ad_core::dataset::SAMPLE_SIZE;
use u2ad_core::detect_outputs::{SubjectMaps, SubjectOutputs, COHORT_LEVELS_CSV, COHORT_PATIENTS_CSV};
use u2ad_core::error::{CoreError, Result};
use u2ad_core::levels::DiscLevel;
use crate::metrics::ConfusionCounts;

/// One disc-level segment of one subject.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentOutcome {
    pub level: DiscLevel,
    /// A lesion voxel lies in the segment's rows.
    pub lesion: bool,
    pub call: LevelCall,
    pub score: Option<f64>,
}

/// Everything compared for one subject.
#[derive(Debug, Clone)]
pub struct SubjectResult {
    pub subject: String,
    /// The participant the subject was made from ([`participant_group`]): per-host counts.
    pub host: String,
    pub lesions: Vec<LesionRecord>,
    /// Lesion voxels in the mask, and those inside the cord mask.
    pub lesion_voxels: usize,
    pub lesion_voxels_in_cord: usize,
    /// A lesion voxel lies on the cord mask's boundary (a cord voxel with a 6-neighbour outside).
    pub lesion_at_edge: bool,
    /// (anomaly map, lesion) of every cord voxel.
    pub pixels: Vec<(f32, bool)>,
    /// Candidate mask against the lesion, over the cord voxels.
    pub candidates: ConfusionCounts,
    pub segments: Vec<SegmentOutcome>,
    pub patient_score: Option<f64>,
    pub patient_positive_call: bool,
}

impl SubjectResult {
    pub fn has_lesion(&self) -> bool {
        self.lesion_voxels > 0
    }
}

fn mask_of(volume: &Volume) -> Vec<u8> {
    volume.data.iter().map(|&v| u8::from(v > 0.5)).collect()
}

/// The segments whose rows hold a lesion voxel (module docs).
pub fn lesion_segments(maps: &SubjectMaps, lesion: &Volume) -> BTreeSet<DiscLevel> {
    let shape = lesion.shape();
    let mut found = BTreeSet::new();
    for sample in &maps.samples {
        let m = sample.meta.pixel_to_native;
        for row in 0..SAMPLE_SIZE {
            let Some(level) = DiscLevel::from_code(sample.row_segment[row]) else { continue };
            if found.contains(&level) {
                continue;
            }
            for col in 0..SAMPLE_SIZE {
                let (r, c) = (row as f64, col as f64);
                let ijk = [0, 1, 2].map(|a| (m[a][0] * r + m[a][1] * c + m[a][2]).round());
                if ijk.iter().zip(shape).any(|(&v, n)| v < 0.0 || v >= n as f64) {
                    continue;
                }
                if lesion.data[[ijk[0] as usize, ijk[1] as usize, ijk[2] as usize]] > 0.5 {
                    found.insert(level);
                    break;
                }
            }
        }
    }
    found
}

/// Compares one subject's detection outputs with its truth.
pub fn evaluate_subject(truth: &TruthSubject, detections: &Path, tables: &DetectionTables) -> Result<SubjectResult> {
    let image = Volume::read(&truth.image)?;
    let cord = Volume::read(&truth.cord_mask)?;
    image.check_same_grid(&cord, GRID_TOLERANCE_MM)?;
    let lesion = match &truth.lesion_mask {
        Some(path) => {
            let lesion = Volume::read(path)?;
            image.check_same_grid(&lesion, GRID_TOLERANCE_MM)?;
            lesion
        }
        None => Volume { data: ndarray::Array3::zeros(image.data.dim()), ..image.clone() },
    };
    let outputs = SubjectOutputs::new(detections, &truth.subject, &truth.image)?;
    let missing = |path: PathBuf| -> Result<PathBuf> {
        if path.is_file() {
            Ok(path)
        } else {
            Err(CoreError::input(&path, format!("missing: the detection folder has no output for {}", truth.subject)))
        }
    };
    let anomaly = Volume::read(missing(outputs.anomaly_map())?)?;
    let candidates = Volume::read(missing(outputs.candidates_mask())?)?;
    image.check_same_grid(&anomaly, GRID_TOLERANCE_MM)?;
    image.check_same_grid(&candidates, GRID_TOLERANCE_MM)?;
    let maps = SubjectMaps::read(&missing(outputs.sample_maps())?)?;

    let (cord_mask, lesion_mask, candidate_mask) = (mask_of(&cord), mask_of(&lesion), mask_of(&candidates));
    let pixels: Vec<(f32, bool)> = anomaly
        .data
        .iter()
        .zip(&lesion_mask)
        .zip(&cord_mask)
        .filter(|(_, &inside)| inside != 0)
        .map(|((&score, &lesion_voxel), _)| (score, lesion_voxel != 0))
        .collect();
    let mut candidate_counts = ConfusionCounts::default();
    for ((&inside, &truth_voxel), &marked) in cord_mask.iter().zip(&lesion_mask).zip(&candidate_mask) {
        if inside != 0 {
            candidate_counts.add(marked != 0, truth_voxel != 0);
        }
    }
    let lesion_voxels = lesion_mask.iter().filter(|&&v| v != 0).count();
    let lesion_voxels_in_cord = lesion_mask.iter().zip(&cord_mask).filter(|(&l, &c)| l != 0 && c != 0).count();
    let cord_inside = erode_3d(cord.data.mapv(|v| v > 0.5).view(), Neighbourhood3d::Cross, 1);
    let lesion_at_edge = lesion_mask
        .iter()
        .zip(&cord_mask)
        .zip(cord_inside.iter())
        .any(|((&l, &c), &inner)| l != 0 && c != 0 && !inner);

    let positive_levels = lesion_segments(&maps, &lesion);
    let levels_csv = detections.join(COHORT_LEVELS_CSV);
    let segments = DiscLevel::ALL
        .into_iter()
        .map(|level| {
            let (score, call) = tables
                .levels
                .get(&(truth.subject.clone(), level))
                .copied()
                .ok_or_else(|| CoreError::input(&levels_csv, format!("no row for {} {}", truth.subject, level.name())))?;
            Ok(SegmentOutcome { level, lesion: positive_levels.contains(&level), call, score })
        })
        .collect::<Result<Vec<_>>>()?;
    let (patient_score, patient_positive_call) = tables.patients.get(&truth.subject).copied().ok_or_else(|| {
        CoreError::input(detections.join(COHORT_PATIENTS_CSV), format!("no row for {}", truth.subject))
    })?;
    Ok(SubjectResult {
        subject: truth.subject.clone(),
        host: participant_group(&truth.subject, &truth.image),
        lesions: truth.lesions.clone(),
        lesion_voxels,
        lesion_voxels_in_cord,
        lesion_at_edge,
        pixels,
        candidates: candidate_counts,
        segments,
        patient_score,
        patient_positive_call,
    })
}

/// Evaluates every subject of the truth cohort against a detection folder.
pub fn evaluate_detections(truth: &[TruthSubject], detections: &Path) -> Result<Vec<SubjectResult>> {
    let tables = read_detection_tables(detections)?;
    use rayon::prelude::*;
    truth.par_iter().map(|t| evaluate_subject(t, detections, &tables)).collect()
}
