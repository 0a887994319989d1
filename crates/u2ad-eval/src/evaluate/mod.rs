//! Evaluation: how well a detection folder (the layout of [`u2ad_core::detect_outputs`], written by
//! `u2ad detect` or `u2ad baseline`) finds the lesions of a cohort whose truth is known (a
//! synthetic cohort: `derivatives/labels/sub-X/anat/sub-X_T2w_label-lesion_seg.nii.gz` and a
//! manifest of the lesions).
//!
//! # Pixel level (native grid, inside the cord)
//!
//! The voxels counted are those of the truth cohort's cord mask (`_label-SC_seg`, the mask
//! detection used), pooled over every subject; a voxel is a lesion voxel when the lesion mask is
//! nonzero. The score is the anomaly map (`_desc-anomaly`).
//! * **AUROC** and **AUPRC** (average precision) of the anomaly map ([`LabelledScores`](crate::metrics::LabelledScores)).
//! * **Dice (candidates)**: of the candidate mask (`_label-candidates_mask`), the pixels the
//!   method marks without labels, against the lesion mask.
//! * **Best Dice (oracle)**: the best Dice of "anomaly ≥ t" over every threshold t. The threshold
//!   is chosen on the truth: an upper bound, not a result a user can get.
//! * **Mean per-subject AUPRC**: the AUPRC of each lesion subject's own voxels, averaged (pooled and
//!   per-volume figures differ; both are reported).
//!
//! # Segment level
//!
//! A disc-level segment (C2/C3 … C7/T1) is truly positive when a lesion voxel lies in its rows:
//! every pixel of the subject's 256 x 256 samples (`_desc-mc_samples`, the very rows detection
//! scored) in a row of that segment is mapped to its nearest native voxel, and the segment is
//! positive when one of them is a lesion voxel. The prediction is the call of the detection's
//! `levels.csv`: `positive` is a positive call; `negative` and `indeterminate` are not (the number
//! of indeterminate segments is reported); `out_of_fov` segments have no score and are left out
//! (their number, and how many of them hold a lesion, are reported).
//!
//! # Patient level
//!
//! A subject is truly positive when its lesion mask has a voxel. The prediction is the call of
//! `patients.csv`: `positive` is positive, `negative` and `not_assessed` are not.
//!
//! Segment and patient level report precision, recall, specificity and F1 with 95 % bootstrap
//! intervals resampling subjects ([`bootstrap_confusion`](crate::metrics::bootstrap_confusion)), and the threshold-free AUROC and AUPRC
//! of the scores (segment score, patient score) with which the calls were made.
//!
//! # Breakdowns
//!
//! Lesion subjects are binned by the contrast, the length and the size (voxels) of their lesion,
//! and by whether it reaches the cord's edge, from the manifest (a subject with several lesions
//! enters the bin of each). Each bin is evaluated on its
//! lesion subjects together with **every lesion-free subject**, so that precision, specificity and
//! F1 stay defined and comparable between bins.

// The steps, one file each:
// - `truth`: the truth cohort (lesion masks, cord masks) and its lesion manifest;
// - `detections`: the cohort tables (`levels.csv`, `patients.csv`) of a detection folder;
// - `subject`: one subject's detection outputs against its truth;
// - `groups`: pixel, segment and patient metrics of a group of subjects, and the breakdowns;
// - `hosts`: false positives per host;
// - `tables`: the long CSV rows and the Markdown tables.

mod detections;
mod groups;
mod hosts;
mod subject;
mod tables;
#[cfg(test)]
mod test_fixtures;
mod truth;

pub use detections::{read_detection_tables, DetectionTables, LevelCall};
pub use groups::{
    bin_label, evaluate_groups, group_metrics, DecisionMetrics, EvaluationSettings, GroupMetrics, PixelMetrics,
};
pub use hosts::{host_false_positives, host_markdown, HostFalsePositives};
pub use subject::{evaluate_detections, evaluate_subject, lesion_segments, SegmentOutcome, SubjectResult};
pub use tables::{headline_markdown, markdown_report, metric_rows, MethodEvaluation, MetricRow};
pub use truth::{discover_truth, read_manifest, LesionRecord, TruthSubject};

/// Suffix of the lesion masks of a synthetic cohort.
pub const LESION_SUFFIX: &str = crate::synth::LESION_LABEL_SUFFIX;
/// Names tried, in this order, for the lesion manifest at the root of the truth cohort (`u2ad
/// synth` writes `synth_manifest.tsv`).
pub const MANIFEST_NAMES: [&str; 3] = ["synth_manifest.tsv", "lesions.tsv", "lesions.csv"];
