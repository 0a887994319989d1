//! Test fixtures shared by the unit tests of the evaluation: a subject result made up from its
//! lesion, contrast, level calls and patient call.

use super::detections::LevelCall;
use super::subject::{SegmentOutcome, SubjectResult};
use super::truth::LesionRecord;
use u2ad_core::levels::DiscLevel;
use crate::metrics::ConfusionCounts;

pub(super) fn subject(name: &str, lesion: bool, contrast: f64, calls: [(bool, LevelCall); 6], patient: bool) -> SubjectResult {
    SubjectResult {
        subject: name.into(),
        host: name.into(),
        lesions: if lesion {
            vec![LesionRecord { subject: name.into(), level: None, length_mm: Some(5.0), contrast: Some(contrast) }]
        } else {
            vec![]
        },
        lesion_voxels: usize::from(lesion) * 10,
        lesion_voxels_in_cord: usize::from(lesion) * 10,
        lesion_at_edge: false,
        pixels: if lesion {
            vec![(0.9, true), (0.2, true), (0.5, false), (0.1, false)]
        } else {
            vec![(0.3, false), (0.1, false)]
        },
        candidates: ConfusionCounts { true_positives: usize::from(lesion) as u64, false_positives: 1, true_negatives: 5, false_negatives: 1 },
        segments: DiscLevel::ALL
            .into_iter()
            .zip(calls)
            .enumerate()
            .map(|(i, (level, (lesion, call)))| SegmentOutcome { level, lesion, call, score: Some(i as f64 / 10.0 + f64::from(u8::from(lesion))) })
            .collect(),
        patient_score: Some(if patient { 1.0 } else { 0.1 }),
        patient_positive_call: patient,
    }
}
