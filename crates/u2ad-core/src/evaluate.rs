//! Evaluation: how well a detection folder (the layout of [`crate::detect_outputs`], written by
//! `u2ad detect` or `u2ad baseline`) finds the lesions of a cohort whose truth is known (a
//! synthetic cohort: `derivatives/labels/sub-X/anat/sub-X_T2w_label-lesion_seg.nii.gz` and a
//! manifest of the lesions).
//!
//! # Pixel level (native grid, inside the cord)
//!
//! The voxels counted are those of the truth cohort's cord mask (`_label-SC_seg`, the mask
//! detection used), pooled over every subject; a voxel is a lesion voxel when the lesion mask is
//! nonzero. The score is the anomaly map (`_desc-anomaly`).
//! * **AUROC** and **AUPRC** (average precision) of the anomaly map ([`LabelledScores`]).
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
//! intervals resampling subjects ([`bootstrap_confusion`]), and the threshold-free AUROC and AUPRC
//! of the scores (segment score, patient score) with which the calls were made.
//!
//! # Breakdowns
//!
//! Lesion subjects are binned by the contrast and by the length of their lesion, from the
//! manifest (a subject with several lesions enters the bin of each). Each bin is evaluated on its
//! lesion subjects together with **every lesion-free subject**, so that precision, specificity and
//! F1 stay defined and comparable between bins.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::anatomy::{erode_3d, Neighbourhood3d};
use crate::cohort::{discover_bids, nifti_stem, participant_group, DiscoveryOptions};
use crate::dataset::SAMPLE_SIZE;
use crate::detect_outputs::{SubjectMaps, SubjectOutputs, COHORT_LEVELS_CSV, COHORT_PATIENTS_CSV};
use crate::error::{CoreError, Result};
use crate::levels::DiscLevel;
use crate::metrics::{bootstrap_confusion, BestDice, BootstrapConfig, ConfusionCounts, ConfusionSummary, Estimate, LabelledScores};
use crate::volume::{Volume, GRID_TOLERANCE_MM};

/// Suffix of the lesion masks of a synthetic cohort.
pub const LESION_SUFFIX: &str = "_label-lesion_seg";
/// Names tried, in this order, for the lesion manifest at the root of the truth cohort (`u2ad
/// synth` writes `synth_manifest.tsv`).
pub const MANIFEST_NAMES: [&str; 3] = ["synth_manifest.tsv", "lesions.tsv", "lesions.csv"];

// ---------------------------------------------------------------------------------------------
// Truth

/// One lesion of the manifest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LesionRecord {
    pub subject: String,
    /// The disc level the lesion was placed at (e.g. "C5/C6"), when given.
    pub level: Option<String>,
    /// Length along the cord, in mm.
    pub length_mm: Option<f64>,
    /// Lesion signal / local cord signal.
    pub contrast: Option<f64>,
}

/// Reads a lesion manifest: CSV or TSV with a header. Columns are found by name: `subject`
/// (also `participant_id`), `level`, a column whose name starts with `length` (mm), and one
/// starting with `contrast`. Rows with an empty level, length and contrast (a lesion-free copy)
/// are skipped.
pub fn read_manifest(path: &Path) -> Result<Vec<LesionRecord>> {
    let text = std::fs::read_to_string(path).map_err(|e| CoreError::io(path, e))?;
    let header = text.lines().next().unwrap_or_default();
    let delimiter = if header.contains('\t') { b'\t' } else { b',' };
    let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).flexible(true).from_reader(text.as_bytes());
    let bad = |detail: String| CoreError::input(path, detail);
    let names: Vec<String> = reader.headers().map_err(|e| bad(format!("not a CSV/TSV manifest ({e})")))?.iter().map(|h| h.trim().to_lowercase()).collect();
    let find = |pred: &dyn Fn(&str) -> bool| names.iter().position(|n| pred(n));
    let subject_column = find(&|n| n == "subject" || n == "participant_id")
        .ok_or_else(|| bad(format!("no 'subject' column (columns: {})", names.join(", "))))?;
    let level_column = find(&|n| n == "level" || n == "disc_level");
    let length_column = find(&|n| n.starts_with("length"));
    let contrast_column = find(&|n| n.starts_with("contrast"));
    let mut records = Vec::new();
    for (line, row) in reader.records().enumerate() {
        let row = row.map_err(|e| bad(format!("line {}: {e}", line + 2)))?;
        let field = |column: Option<usize>| column.and_then(|c| row.get(c)).map(str::trim).filter(|v| !v.is_empty() && *v != "n/a");
        let number = |column: Option<usize>, what: &str| -> Result<Option<f64>> {
            field(column)
                .map(|v| v.parse::<f64>().map_err(|_| bad(format!("line {}: {what} '{v}' is not a number", line + 2))))
                .transpose()
        };
        let subject = field(Some(subject_column)).ok_or_else(|| bad(format!("line {}: empty subject", line + 2)))?;
        let record = LesionRecord {
            subject: subject.to_string(),
            level: field(level_column).map(str::to_string),
            length_mm: number(length_column, "length")?,
            contrast: number(contrast_column, "contrast")?,
        };
        if record.level.is_some() || record.length_mm.is_some() || record.contrast.is_some() {
            records.push(record);
        }
    }
    Ok(records)
}

/// One subject of the truth cohort.
#[derive(Debug, Clone, PartialEq)]
pub struct TruthSubject {
    pub subject: String,
    pub image: PathBuf,
    pub cord_mask: PathBuf,
    /// `None`: the subject has no lesion mask (lesion-free).
    pub lesion_mask: Option<PathBuf>,
    /// Its lesions in the manifest.
    pub lesions: Vec<LesionRecord>,
}

/// The subjects of a truth cohort (a BIDS folder with cord masks and lesion masks), with the
/// manifest (`manifest`, or the first of [`MANIFEST_NAMES`] found at its root; none is fine).
pub fn discover_truth(root: &Path, manifest: Option<&Path>) -> Result<Vec<TruthSubject>> {
    let subjects = discover_bids(root, &DiscoveryOptions::default())?;
    let manifest_path = match manifest {
        Some(path) => Some(path.to_path_buf()),
        None => MANIFEST_NAMES.iter().map(|n| root.join(n)).find(|p| p.is_file()),
    };
    let records = match &manifest_path {
        Some(path) => read_manifest(path)?,
        None => Vec::new(),
    };
    let labels_root = root.join("derivatives").join("labels");
    let mut truth = Vec::new();
    for files in subjects {
        let cord_mask = files
            .cord_mask
            .clone()
            .ok_or_else(|| CoreError::input(&files.image, "no cord mask (_label-SC_seg) in the truth cohort"))?;
        let anat = files.image.parent().unwrap_or(root);
        let relative = anat.strip_prefix(root).unwrap_or(anat);
        let stem = nifti_stem(&files.image);
        let lesion_mask = ["nii.gz", "nii"]
            .iter()
            .map(|ext| labels_root.join(relative).join(format!("{stem}{LESION_SUFFIX}.{ext}")))
            .find(|p| p.is_file());
        let lesions: Vec<LesionRecord> = records.iter().filter(|r| r.subject == files.subject).cloned().collect();
        if lesion_mask.is_none() && !lesions.is_empty() {
            return Err(CoreError::input(
                manifest_path.as_deref().unwrap_or(root),
                format!("{} has a lesion in the manifest but no {stem}{LESION_SUFFIX}.nii.gz", files.subject),
            ));
        }
        truth.push(TruthSubject { subject: files.subject, image: files.image, cord_mask, lesion_mask, lesions });
    }
    Ok(truth)
}

// ---------------------------------------------------------------------------------------------
// Detections

/// A level call as written in `levels.csv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LevelCall {
    Positive,
    Negative,
    Indeterminate,
    OutOfFieldOfView,
}

impl LevelCall {
    fn parse(text: &str) -> Option<LevelCall> {
        match text {
            "positive" => Some(LevelCall::Positive),
            "negative" => Some(LevelCall::Negative),
            "indeterminate" => Some(LevelCall::Indeterminate),
            "out_of_fov" => Some(LevelCall::OutOfFieldOfView),
            _ => None,
        }
    }
}

/// The cohort tables of a detection folder.
#[derive(Debug, Clone, Default)]
pub struct DetectionTables {
    /// (subject, level) → (score, call).
    pub levels: BTreeMap<(String, DiscLevel), (Option<f64>, LevelCall)>,
    /// subject → (patient score, call is positive).
    pub patients: BTreeMap<String, (Option<f64>, bool)>,
}

fn read_table(path: &Path, required: &[&str]) -> Result<(Vec<String>, Vec<csv::StringRecord>)> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| CoreError::input(path, format!("cannot read ({e})")))?;
    let headers: Vec<String> = reader.headers().map_err(|e| CoreError::input(path, e.to_string()))?.iter().map(str::to_string).collect();
    for column in required {
        if !headers.iter().any(|h| h == column) {
            return Err(CoreError::input(path, format!("no '{column}' column: not a u2ad detection table")));
        }
    }
    let rows = reader.records().collect::<std::result::Result<Vec<_>, _>>().map_err(|e| CoreError::input(path, e.to_string()))?;
    Ok((headers, rows))
}

fn optional_number(path: &Path, text: &str) -> Result<Option<f64>> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| CoreError::input(path, format!("'{text}' is not a number")))
}

/// The column `name` when it exists and holds at least one value.
fn calibrated_column(headers: &[String], rows: &[csv::StringRecord], name: &str) -> Option<usize> {
    let index = headers.iter().position(|h| h == name)?;
    rows.iter().any(|r| r.get(index).is_some_and(|v| !v.is_empty())).then_some(index)
}

/// Reads `levels.csv` and `patients.csv` of a detection folder.
pub fn read_detection_tables(dir: &Path) -> Result<DetectionTables> {
    let mut tables = DetectionTables::default();
    let path = dir.join(COHORT_LEVELS_CSV);
    let (headers, rows) = read_table(&path, &["subject", "level", "score", "call"])?;
    let column = |name: &str| headers.iter().position(|h| h == name).expect("checked");
    // The calibrated z (one scale for every level, what the calls threshold) when the folder has
    // it (a fixed --threshold leaves it empty: then the score).
    let sc = calibrated_column(&headers, &rows, "z").unwrap_or_else(|| column("score"));
    let (s, l, c) = (column("subject"), column("level"), column("call"));
    for row in &rows {
        let level = DiscLevel::ALL
            .into_iter()
            .find(|d| d.name() == &row[l])
            .ok_or_else(|| CoreError::input(&path, format!("unknown level '{}'", &row[l])))?;
        let call = LevelCall::parse(&row[c]).ok_or_else(|| CoreError::input(&path, format!("unknown call '{}'", &row[c])))?;
        tables.levels.insert((row[s].to_string(), level), (optional_number(&path, &row[sc])?, call));
    }
    let path = dir.join(COHORT_PATIENTS_CSV);
    let (headers, rows) = read_table(&path, &["subject", "patient_score", "call"])?;
    let column = |name: &str| headers.iter().position(|h| h == name).expect("checked");
    let sc = calibrated_column(&headers, &rows, "patient_z").unwrap_or_else(|| column("patient_score"));
    let (s, c) = (column("subject"), column("call"));
    for row in &rows {
        tables.patients.insert(row[s].to_string(), (optional_number(&path, &row[sc])?, &row[c] == "positive"));
    }
    Ok(tables)
}

// ---------------------------------------------------------------------------------------------
// One subject

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

// ---------------------------------------------------------------------------------------------
// Groups of subjects

/// Pixel-level figures of a group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PixelMetrics {
    pub cord_voxels: usize,
    pub lesion_voxels: usize,
    pub auroc: Option<f64>,
    pub auprc: Option<f64>,
    /// Dice of the candidate mask.
    pub dice_candidates: Option<f64>,
    /// The best Dice over thresholds: an oracle (the threshold is chosen on the truth).
    pub best_dice_oracle: Option<BestDice>,
    /// Mean of the lesion subjects' own AUPRC.
    pub mean_subject_auprc: Option<f64>,
}

/// Segment- or patient-level figures of a group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionMetrics {
    pub summary: ConfusionSummary,
    /// Threshold-free, from the scores.
    pub auroc: Option<f64>,
    pub auprc: Option<f64>,
    /// Units counted (segments in the field of view, or patients).
    pub units: usize,
    pub positive_units: usize,
    /// Segments called indeterminate (counted as not positive).
    pub indeterminate: usize,
    /// Segments out of the field of view (left out), and those of them holding a lesion.
    pub out_of_fov: usize,
    pub out_of_fov_with_lesion: usize,
}

/// The evaluation of one group of subjects.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupMetrics {
    /// "all", "contrast 1.6-2.0", "length 6-10 mm", …
    pub group: String,
    pub subjects: usize,
    pub lesion_subjects: usize,
    pub pixel: PixelMetrics,
    pub segment: DecisionMetrics,
    pub patient: DecisionMetrics,
}

/// Settings of the aggregation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvaluationSettings {
    pub bootstrap: BootstrapConfig,
    /// Bin edges of the lesion contrast (ratio to the cord); values outside fall in open bins.
    pub contrast_edges: Vec<f64>,
    /// Bin edges of the lesion length, in mm.
    pub length_edges_mm: Vec<f64>,
    /// Bin edges of the subject's lesion volume, in voxels of the truth mask inside the cord.
    pub size_edges_voxels: Vec<f64>,
}

impl Default for EvaluationSettings {
    fn default() -> Self {
        EvaluationSettings {
            bootstrap: BootstrapConfig::default(),
            contrast_edges: vec![1.3, 1.6, 2.0, 3.0],
            length_edges_mm: vec![3.0, 6.0, 10.0, 15.0],
            size_edges_voxels: vec![15.0, 30.0, 60.0, 120.0],
        }
    }
}

fn pooled(results: &[&SubjectResult], pick: impl Fn(&SubjectResult) -> Vec<(f64, bool)>) -> LabelledScores {
    LabelledScores::from_pairs(results.iter().flat_map(|r| pick(r)))
}

/// Metrics of a group of subjects.
pub fn group_metrics(group: &str, results: &[&SubjectResult], bootstrap: &BootstrapConfig) -> GroupMetrics {
    let scores_of = |r: &SubjectResult| LabelledScores::from_pairs(r.pixels.iter().map(|&(s, t)| (f64::from(s), t)));
    let pixels = LabelledScores::from_pairs(results.iter().flat_map(|r| r.pixels.iter().map(|&(s, t)| (f64::from(s), t))));
    let candidates: ConfusionCounts = results.iter().map(|r| r.candidates).sum();
    let subject_auprc: Vec<f64> = results.iter().filter(|r| r.has_lesion()).filter_map(|r| scores_of(r).average_precision()).collect();
    let pixel = PixelMetrics {
        cord_voxels: pixels.len(),
        lesion_voxels: pixels.positives(),
        auroc: pixels.auroc(),
        auprc: pixels.average_precision(),
        dice_candidates: candidates.dice(),
        best_dice_oracle: pixels.best_dice(),
        mean_subject_auprc: (!subject_auprc.is_empty()).then(|| subject_auprc.iter().sum::<f64>() / subject_auprc.len() as f64),
    };

    let in_view = |s: &&SegmentOutcome| s.call != LevelCall::OutOfFieldOfView;
    let segment_units: Vec<ConfusionCounts> = results
        .iter()
        .map(|r| ConfusionCounts::from_pairs(r.segments.iter().filter(in_view).map(|s| (s.call == LevelCall::Positive, s.lesion))))
        .collect();
    let segment_scores = pooled(results, |r| {
        r.segments.iter().filter(in_view).filter_map(|s| s.score.map(|v| (v, s.lesion))).collect()
    });
    let all_segments = || results.iter().flat_map(|r| r.segments.iter());
    let segment = DecisionMetrics {
        summary: bootstrap_confusion(&segment_units, bootstrap),
        auroc: segment_scores.auroc(),
        auprc: segment_scores.average_precision(),
        units: all_segments().filter(in_view).count(),
        positive_units: all_segments().filter(in_view).filter(|s| s.lesion).count(),
        indeterminate: all_segments().filter(|s| s.call == LevelCall::Indeterminate).count(),
        out_of_fov: all_segments().filter(|s| s.call == LevelCall::OutOfFieldOfView).count(),
        out_of_fov_with_lesion: all_segments().filter(|s| s.call == LevelCall::OutOfFieldOfView && s.lesion).count(),
    };

    let patient_units: Vec<ConfusionCounts> =
        results.iter().map(|r| ConfusionCounts::from_pairs([(r.patient_positive_call, r.has_lesion())])).collect();
    let patient_scores = pooled(results, |r| r.patient_score.map(|v| (v, r.has_lesion())).into_iter().collect());
    let patient = DecisionMetrics {
        summary: bootstrap_confusion(&patient_units, bootstrap),
        auroc: patient_scores.auroc(),
        auprc: patient_scores.average_precision(),
        units: results.len(),
        positive_units: results.iter().filter(|r| r.has_lesion()).count(),
        indeterminate: 0,
        out_of_fov: 0,
        out_of_fov_with_lesion: 0,
    };
    GroupMetrics {
        group: group.to_string(),
        subjects: results.len(),
        lesion_subjects: results.iter().filter(|r| r.has_lesion()).count(),
        pixel,
        segment,
        patient,
    }
}

/// The bin of `value` among `edges` (ascending): "a-b" for a ≤ value < b (the last bin closed),
/// "<a" below the first edge, ">b" above the last.
pub fn bin_label(value: f64, edges: &[f64]) -> String {
    let fmt = |v: f64| {
        let text = format!("{v:.1}");
        text.strip_suffix(".0").map(str::to_string).unwrap_or(text)
    };
    let (Some(&first), Some(&last)) = (edges.first(), edges.last()) else { return "all".to_string() };
    if value < first {
        return format!("<{}", fmt(first));
    }
    if value > last {
        return format!(">{}", fmt(last));
    }
    for pair in edges.windows(2) {
        if value < pair[1] || pair[1] == last {
            return format!("{}-{}", fmt(pair[0]), fmt(pair[1]));
        }
    }
    format!("{}-{}", fmt(first), fmt(last))
}

/// The overall group, then the contrast bins, then the length bins (module docs, Breakdowns).
pub fn evaluate_groups(results: &[SubjectResult], settings: &EvaluationSettings) -> Vec<GroupMetrics> {
    let all: Vec<&SubjectResult> = results.iter().collect();
    let mut groups = vec![group_metrics("all", &all, &settings.bootstrap)];
    let lesion_free: Vec<&SubjectResult> = results.iter().filter(|r| !r.has_lesion()).collect();
    let breakdown = |name: &str, unit: &str, edges: &[f64], value: &dyn Fn(&LesionRecord) -> Option<f64>| {
        // Bins in ascending order of their lower value.
        let mut bins: BTreeMap<(i64, String), Vec<&SubjectResult>> = BTreeMap::new();
        for r in results.iter().filter(|r| r.has_lesion()) {
            let labels: BTreeSet<(i64, String)> = r
                .lesions
                .iter()
                .filter_map(|l| value(l))
                .map(|v| ((v * 1000.0) as i64, bin_label(v, edges)))
                .collect();
            let mut seen = BTreeSet::new();
            for (order, label) in labels {
                if seen.insert(label.clone()) {
                    let key = bins.keys().find(|(_, l)| *l == label).cloned().unwrap_or((order, label));
                    bins.entry(key).or_default().push(r);
                }
            }
        }
        bins.into_iter()
            .map(|((_, label), mut members)| {
                members.extend(lesion_free.iter().copied());
                group_metrics(&format!("{name} {label}{unit}"), &members, &settings.bootstrap)
            })
            .collect::<Vec<_>>()
    };
    groups.extend(breakdown("contrast", "", &settings.contrast_edges, &|l| l.contrast));
    groups.extend(breakdown("length", " mm", &settings.length_edges_mm, &|l| l.length_mm));
    // The subject's lesion volume (a subject with two lesions counts them together).
    let mut sizes: BTreeMap<(i64, String), Vec<&SubjectResult>> = BTreeMap::new();
    for r in results.iter().filter(|r| r.has_lesion()) {
        let voxels = r.lesion_voxels_in_cord as f64;
        sizes.entry((voxels as i64, bin_label(voxels, &settings.size_edges_voxels))).or_default().push(r);
    }
    let mut merged: Vec<(String, Vec<&SubjectResult>)> = Vec::new();
    for ((_, label), members) in sizes {
        match merged.iter_mut().find(|(l, _)| *l == label) {
            Some((_, existing)) => existing.extend(members),
            None => merged.push((label, members)),
        }
    }
    for (label, mut members) in merged {
        members.extend(lesion_free.iter().copied());
        groups.push(group_metrics(&format!("size {label} voxels"), &members, &settings.bootstrap));
    }
    // Lesions that reach the cord's boundary: what keeps the edge out must not erase them.
    for (name, at_edge) in [("lesion at the cord edge", true), ("lesion inside the cord", false)] {
        let mut members: Vec<&SubjectResult> = results.iter().filter(|r| r.has_lesion() && r.lesion_at_edge == at_edge).collect();
        if !members.is_empty() {
            members.extend(lesion_free.iter().copied());
            groups.push(group_metrics(name, &members, &settings.bootstrap));
        }
    }
    groups
}

// ---------------------------------------------------------------------------------------------
// Tables

/// One evaluated method: its name, its detection folder and its groups.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MethodEvaluation {
    pub method: String,
    pub detections: PathBuf,
    pub groups: Vec<GroupMetrics>,
    /// False positives per host ([`host_false_positives`]).
    pub hosts: Vec<HostFalsePositives>,
}

/// One row of the long CSV.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricRow {
    pub method: String,
    pub group: String,
    pub subjects: usize,
    pub lesion_subjects: usize,
    /// "pixel", "segment" or "patient".
    pub unit: &'static str,
    pub metric: &'static str,
    pub value: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    /// How many units the metric counts (voxels, segments, patients).
    pub n: usize,
    pub note: String,
}

/// Every metric of every method and group, one per row.
pub fn metric_rows(methods: &[MethodEvaluation]) -> Vec<MetricRow> {
    let mut rows = Vec::new();
    for m in methods {
        for g in &m.groups {
            let mut push = |unit: &'static str, metric: &'static str, value: Option<f64>, ci: Option<(f64, f64)>, n: usize, note: String| {
                rows.push(MetricRow {
                    method: m.method.clone(),
                    group: g.group.clone(),
                    subjects: g.subjects,
                    lesion_subjects: g.lesion_subjects,
                    unit,
                    metric,
                    value,
                    ci_low: ci.map(|c| c.0),
                    ci_high: ci.map(|c| c.1),
                    n,
                    note,
                });
            };
            let p = &g.pixel;
            push("pixel", "auroc", p.auroc, None, p.cord_voxels, format!("{} lesion voxels", p.lesion_voxels));
            push("pixel", "auprc", p.auprc, None, p.cord_voxels, format!("{} lesion voxels", p.lesion_voxels));
            push("pixel", "mean_subject_auprc", p.mean_subject_auprc, None, g.lesion_subjects, "per lesion subject, averaged".into());
            push("pixel", "dice_candidates", p.dice_candidates, None, p.cord_voxels, "candidate mask (no labels used)".into());
            push(
                "pixel",
                "best_dice_oracle",
                p.best_dice_oracle.map(|b| b.dice),
                None,
                p.cord_voxels,
                p.best_dice_oracle.map(|b| format!("ORACLE: threshold {} chosen on the truth", b.threshold)).unwrap_or_default(),
            );
            for (unit, d) in [("segment", &g.segment), ("patient", &g.patient)] {
                let ci = |e: &Estimate| e.interval.map(|i| (i.low, i.high));
                let s = &d.summary;
                let counts = format!(
                    "TP {} FP {} TN {} FN {}; {} bootstrap resamples",
                    s.counts.true_positives, s.counts.false_positives, s.counts.true_negatives, s.counts.false_negatives, s.resamples
                );
                push(unit, "precision", s.precision.value, ci(&s.precision), d.units, counts.clone());
                push(unit, "recall", s.recall.value, ci(&s.recall), d.units, counts.clone());
                push(unit, "specificity", s.specificity.value, ci(&s.specificity), d.units, counts.clone());
                push(unit, "f1", s.f1.value, ci(&s.f1), d.units, counts);
                let extra = if unit == "segment" {
                    format!("{} indeterminate; {} out of view ({} with a lesion) left out", d.indeterminate, d.out_of_fov, d.out_of_fov_with_lesion)
                } else {
                    String::new()
                };
                push(unit, "auroc", d.auroc, None, d.units, extra.clone());
                push(unit, "auprc", d.auprc, None, d.units, extra);
            }
        }
    }
    rows
}

fn value(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "–".into())
}

fn with_interval(e: &Estimate) -> String {
    match (e.value, e.interval) {
        (Some(v), Some(i)) => format!("{v:.3} [{:.2}, {:.2}]", i.low, i.high),
        (v, _) => value(v),
    }
}

/// The full Markdown report: pixel, segment and patient tables, every method and group.
pub fn markdown_report(methods: &[MethodEvaluation]) -> String {
    let mut out = String::new();
    let confidence = methods.first().and_then(|m| m.groups.first()).map(|g| g.segment.summary.confidence).unwrap_or(0.95);
    out.push_str("### Pixel level (native grid, inside the cord mask)\n\n");
    out.push_str("| method | group | subjects (lesion) | lesion voxels | AUROC | AUPRC | mean subject AUPRC | Dice (candidates) | best Dice (oracle) |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for m in methods {
        for g in &m.groups {
            let p = &g.pixel;
            out.push_str(&format!(
                "| {} | {} | {} ({}) | {} | {} | {} | {} | {} | {} |\n",
                m.method,
                g.group,
                g.subjects,
                g.lesion_subjects,
                p.lesion_voxels,
                value(p.auroc),
                value(p.auprc),
                value(p.mean_subject_auprc),
                value(p.dice_candidates),
                value(p.best_dice_oracle.map(|b| b.dice))
            ));
        }
    }
    out.push_str("\nBest Dice is an oracle: its threshold is chosen on the truth. Dice (candidates) is what the method marks without labels.\n");
    for (title, unit) in [("Segment level (disc levels in the field of view)", "segment"), ("Patient level", "patient")] {
        out.push_str(&format!(
            "\n### {title}: {:.0} % bootstrap intervals over subjects\n\n| method | group | {unit}s (lesion) | precision | recall | specificity | F1 | AUROC | AUPRC |\n|---|---|---|---|---|---|---|---|---|\n",
            confidence * 100.0
        ));
        for m in methods {
            for g in &m.groups {
                let d = if unit == "segment" { &g.segment } else { &g.patient };
                let s = &d.summary;
                out.push_str(&format!(
                    "| {} | {} | {} ({}) | {} | {} | {} | {} | {} | {} |\n",
                    m.method,
                    g.group,
                    d.units,
                    d.positive_units,
                    with_interval(&s.precision),
                    with_interval(&s.recall),
                    with_interval(&s.specificity),
                    with_interval(&s.f1),
                    value(d.auroc),
                    value(d.auprc)
                ));
            }
        }
    }
    let indeterminate: usize = methods.iter().filter_map(|m| m.groups.first()).map(|g| g.segment.indeterminate).sum();
    let out_of_fov: usize = methods.iter().filter_map(|m| m.groups.first()).map(|g| g.segment.out_of_fov_with_lesion).sum();
    out.push_str(&format!(
        "\nCalls: `positive` counts as positive; `negative`, `indeterminate` ({indeterminate} segments over all methods) and patient `not_assessed` do not; \
         segments out of the field of view are left out ({out_of_fov} of them hold a lesion). Breakdown groups hold the lesion subjects of the bin and every lesion-free subject.\n"
    ));
    out
}

/// The headline table: one row per method and group: pixel AUPRC, segment F1, patient F1.
pub fn headline_markdown(methods: &[MethodEvaluation]) -> String {
    let mut out = String::from(
        "| method | group | pixel AUPRC | segment AUROC | segment AUPRC | segment F1 | patient F1 | patient FPR | indeterminate |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for m in methods {
        for g in m.groups.iter().filter(|g| !g.group.starts_with("length") && !g.group.starts_with("size")) {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                m.method,
                g.group,
                value(g.pixel.auprc),
                value(g.segment.auroc),
                value(g.segment.auprc),
                with_interval(&g.segment.summary.f1),
                with_interval(&g.patient.summary.f1),
                false_positive_rate(&g.patient.summary),
                g.segment.indeterminate
            ));
        }
    }
    out
}

/// Lesion-free patients called positive: "FP/negatives (rate)".
fn false_positive_rate(summary: &ConfusionSummary) -> String {
    let c = summary.counts;
    let negatives = c.false_positives + c.true_negatives;
    if negatives == 0 {
        return "n/a".into();
    }
    format!("{}/{} ({:.2})", c.false_positives, negatives, c.false_positives as f64 / negatives as f64)
}

/// False positives of one host (the participant the synthetic subjects were made from).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostFalsePositives {
    pub host: String,
    pub subjects: usize,
    pub lesion_free_subjects: usize,
    /// Lesion-free subjects called positive.
    pub false_positive_patients: usize,
    /// In-view segments without a lesion, and those called positive.
    pub negative_segments: usize,
    pub false_positive_segments: usize,
    pub indeterminate_segments: usize,
}

/// Per-host false-positive counts, hosts in name order.
pub fn host_false_positives(results: &[SubjectResult]) -> Vec<HostFalsePositives> {
    let mut hosts: BTreeMap<&str, HostFalsePositives> = BTreeMap::new();
    for r in results {
        let entry = hosts.entry(&r.host).or_insert_with(|| HostFalsePositives {
            host: r.host.clone(),
            subjects: 0,
            lesion_free_subjects: 0,
            false_positive_patients: 0,
            negative_segments: 0,
            false_positive_segments: 0,
            indeterminate_segments: 0,
        });
        entry.subjects += 1;
        if !r.has_lesion() {
            entry.lesion_free_subjects += 1;
            entry.false_positive_patients += usize::from(r.patient_positive_call);
        }
        for s in r.segments.iter().filter(|s| s.call != LevelCall::OutOfFieldOfView) {
            entry.indeterminate_segments += usize::from(s.call == LevelCall::Indeterminate);
            if !s.lesion {
                entry.negative_segments += 1;
                entry.false_positive_segments += usize::from(s.call == LevelCall::Positive);
            }
        }
    }
    hosts.into_values().collect()
}

/// The per-host table of every method.
pub fn host_markdown(methods: &[(String, Vec<HostFalsePositives>)]) -> String {
    let mut out = String::from(
        "| method | host | subjects | false-positive patients / lesion-free | false-positive segments / lesion-free segments | indeterminate segments |\n\
         |---|---|---|---|---|---|\n",
    );
    for (method, hosts) in methods {
        for h in hosts {
            out.push_str(&format!(
                "| {method} | {} | {} | {}/{} | {}/{} | {} |\n",
                h.host,
                h.subjects,
                h.false_positive_patients,
                h.lesion_free_subjects,
                h.false_positive_segments,
                h.negative_segments,
                h.indeterminate_segments
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_are_half_open_with_a_closed_last_bin() {
        let edges = [1.3, 1.6, 2.0, 3.0];
        assert_eq!(bin_label(1.3, &edges), "1.3-1.6");
        assert_eq!(bin_label(1.6, &edges), "1.6-2");
        assert_eq!(bin_label(2.99, &edges), "2-3");
        assert_eq!(bin_label(3.0, &edges), "2-3");
        assert_eq!(bin_label(1.2, &edges), "<1.3");
        assert_eq!(bin_label(3.5, &edges), ">3");
        assert_eq!(bin_label(7.0, &[3.0, 6.0, 10.0, 15.0]), "6-10");
    }

    #[test]
    fn manifests_are_read_by_column_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lesions.tsv");
        std::fs::write(
            &path,
            "subject\tseed\tlevel\tlength_mm\tcontrast_ratio\nsub-a01\t7\tC5/C6\t8.5\t1.8\nsub-b01\t8\t\t\t\nsub-c01\t9\tC3/C4\t4\t2.5\n",
        )
        .unwrap();
        let records = read_manifest(&path).unwrap();
        assert_eq!(records.len(), 2, "the lesion-free row is skipped");
        assert_eq!(
            records[0],
            LesionRecord { subject: "sub-a01".into(), level: Some("C5/C6".into()), length_mm: Some(8.5), contrast: Some(1.8) }
        );
        assert_eq!(records[1].length_mm, Some(4.0));
        std::fs::write(&path, "subject,level,length_mm\nsub-a01,C5/C6,long\n").unwrap();
        let err = read_manifest(&path).unwrap_err().to_string();
        assert!(err.contains("lesions.tsv") && err.contains("line 2") && err.contains("'long'"), "{err}");
        std::fs::write(&path, "name,level\nx,C5/C6\n").unwrap();
        assert!(read_manifest(&path).unwrap_err().to_string().contains("no 'subject' column"));
    }

    fn subject(name: &str, lesion: bool, contrast: f64, calls: [(bool, LevelCall); 6], patient: bool) -> SubjectResult {
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

    #[test]
    fn groups_count_calls_as_documented() {
        use LevelCall::*;
        let n = (false, Negative);
        let results = vec![
            // Lesion at C5/C6 found; a false positive at C2/C3.
            subject("sub-1", true, 1.5, [(false, Positive), n, n, (true, Positive), n, n], true),
            // Lesion at C3/C4 missed (indeterminate); C7/T1 out of view.
            subject("sub-2", true, 2.5, [n, (true, Indeterminate), n, n, n, (false, OutOfFieldOfView)], false),
            // Lesion-free, all negative.
            subject("sub-3", false, 0.0, [n, n, n, n, n, n], false),
        ];
        let groups = evaluate_groups(&results, &EvaluationSettings { bootstrap: BootstrapConfig { resamples: 50, ..Default::default() }, ..Default::default() });
        let names: Vec<&str> = groups.iter().map(|g| g.group.as_str()).collect();
        assert_eq!(names, ["all", "contrast 1.3-1.6", "contrast 2-3", "length 3-6 mm", "size <15 voxels", "lesion inside the cord"]);
        let all = &groups[0];
        assert_eq!((all.subjects, all.lesion_subjects), (3, 2));
        let s = &all.segment;
        assert_eq!((s.units, s.positive_units, s.indeterminate, s.out_of_fov, s.out_of_fov_with_lesion), (17, 2, 1, 1, 0));
        assert_eq!(s.summary.counts, ConfusionCounts { true_positives: 1, false_positives: 1, true_negatives: 14, false_negatives: 1 });
        assert_eq!(s.summary.f1.value, Some(0.5));
        // Segment scores: lesion segments score 1 + i/10, the others i/10: perfectly separated.
        assert_eq!(s.auroc, Some(1.0));
        let p = &all.patient;
        assert_eq!(p.summary.counts, ConfusionCounts { true_positives: 1, false_positives: 0, true_negatives: 1, false_negatives: 1 });
        assert_eq!((p.summary.precision.value, p.summary.recall.value, p.summary.specificity.value), (Some(1.0), Some(0.5), Some(1.0)));
        // Pixels pooled: 4 + 4 + 2 voxels, 4 lesion voxels.
        assert_eq!((all.pixel.cord_voxels, all.pixel.lesion_voxels), (10, 4));
        // Candidates: TP 2, FP 3, FN 3 -> Dice 4 / 10.
        assert_eq!(all.pixel.dice_candidates, Some(0.4));
        // Each lesion subject alone: AP = (0.5 x 1) + (0.5 x 2/3) = 5/6.
        assert!((all.pixel.mean_subject_auprc.unwrap() - 5.0 / 6.0).abs() < 1e-12);
        // The high-contrast bin: sub-2 and the lesion-free sub-3; nothing found.
        let high = &groups[2];
        assert_eq!((high.subjects, high.lesion_subjects), (2, 1));
        assert_eq!(high.patient.summary.recall.value, Some(0.0));
        assert_eq!(high.segment.summary.f1.value, Some(0.0));
    }

    #[test]
    fn markdown_marks_the_oracle_and_shows_intervals() {
        let results = vec![subject("sub-1", true, 1.5, [(false, LevelCall::Negative); 6], true)];
        let groups = evaluate_groups(&results, &EvaluationSettings::default());
        let methods = vec![MethodEvaluation { method: "intensity".into(), detections: "d".into(), groups, hosts: vec![] }];
        let text = markdown_report(&methods);
        assert!(text.contains("best Dice (oracle)"), "{text}");
        // Pixel row: the cord's lesion voxels (2), AUROC 3/4, AP 5/6, candidate Dice 2/4, best Dice 4/5.
        assert!(text.contains("| intensity | all | 1 (1) | 2 | 0.750 | 0.833 | 0.833 | 0.500 | 0.800 |"), "{text}");
        assert!(text.contains("| intensity | all | 1 (1) | 1.000 [1.00, 1.00] | 1.000 [1.00, 1.00] | – | 1.000 [1.00, 1.00] |"), "{text}");
        let rows = metric_rows(&methods);
        let oracle = rows.iter().find(|r| r.metric == "best_dice_oracle" && r.group == "all").unwrap();
        assert!(oracle.note.starts_with("ORACLE"));
        assert!(headline_markdown(&methods).contains("| intensity | contrast 1.3-1.6 |"));
    }
}
