//! Vertebral and disc levels: the conventions users have (SCT, TotalSpineSeg), the placement of
//! missing levels along the cord, and the disc-level segment (C2/C3 … C7/T1) of every cord row.
//!
//! Positions are canonical (RAS+) slice indices `k` along the superior axis (k grows towards
//! the head), so nothing here depends on the orientation of the files.
//!
//! API:
//! - [`load_levels`]`(path, convention, reference, centreline) -> LevelMap`: the entry point;
//!   [`load_levels_report`] returns the same with what was measured, cut or ignored
//!   ([`LevelReport`]); [`levels_from_labels`] does the work on a canonical label array;
//! - [`LevelConvention`]: SCT vertebral points, SCT disc points, SCT cord labelled by level,
//!   TotalSpineSeg (current and the older TotalSegmentator-style release);
//!   [`LevelConvention::detect`] from the file name and the values present,
//!   [`LevelConvention::from_name`] for an explicit override; [`LabelSummary`] (per value:
//!   voxel count and extent along `k`);
//! - [`place_vertebrae`]: from some [`Landmark`]s (vertebral centres or discs) to the centres
//!   of C2 … T1 (and every vertebra between the landmarks), by arc length along the
//!   [`Centreline`], with the proportions of the PAM50 template ([`PAM50_VERTEBRA_DEPTH_MM`],
//!   [`PAM50_DISC_DEPTH_MM`]);
//! - [`LevelMap::segment_at_k`]: the disc-level segment ([`DiscLevel`]) of a row;
//! - [`vertebra_name`].
//!
//! Numbering is SCT's throughout: vertebra 1 = C1 … 7 = C7, 8 = T1 …, 20 = L1; disc n is the
//! disc just above vertebra n (3 = C2/C3 … 8 = C7/T1; 2 = C1/C2).

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::ArrayView3;
use serde::{Deserialize, Serialize};

use crate::anatomy::Centreline;
use crate::error::{CoreError, Result};
use crate::volume::Volume;

/// A disc-level segment of the cervical cord. Segment C5/C6 runs from the centre of vertebra C5
/// to the centre of vertebra C6 (it is centred on the C5/C6 disc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DiscLevel {
    C2C3,
    C3C4,
    C4C5,
    C5C6,
    C6C7,
    C7T1,
}

impl DiscLevel {
    pub const ALL: [DiscLevel; 6] =
        [DiscLevel::C2C3, DiscLevel::C3C4, DiscLevel::C4C5, DiscLevel::C5C6, DiscLevel::C6C7, DiscLevel::C7T1];

    /// Code stored in the dataset's `row_segment` (1 = C2/C3 … 6 = C7/T1; 0 is "none").
    pub fn code(self) -> u8 {
        self as u8 + 1
    }

    pub fn from_code(code: u8) -> Option<DiscLevel> {
        DiscLevel::ALL.get((code as usize).checked_sub(1)?).copied()
    }

    /// The vertebra above the disc, by SCT number (2 = C2 … 7 = C7).
    pub fn upper_vertebra(self) -> u8 {
        self as u8 + 2
    }

    /// SCT's disc label value (3 = C2/C3 … 8 = C7/T1).
    pub fn sct_disc_value(self) -> u8 {
        self as u8 + 3
    }

    /// "C2/C3", …, "C7/T1".
    pub fn name(self) -> &'static str {
        match self {
            DiscLevel::C2C3 => "C2/C3",
            DiscLevel::C3C4 => "C3/C4",
            DiscLevel::C4C5 => "C4/C5",
            DiscLevel::C5C6 => "C5/C6",
            DiscLevel::C6C7 => "C6/C7",
            DiscLevel::C7T1 => "C7/T1",
        }
    }
}

impl std::fmt::Display for DiscLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Name of a vertebra by SCT number (1 = C1 … 7 = C7, 8 = T1 …).
pub fn vertebra_name(number: u8) -> String {
    match number {
        1..=7 => format!("C{number}"),
        8..=19 => format!("T{}", number - 7),
        20..=24 => format!("L{}", number - 19),
        _ => format!("V{number}"),
    }
}

/// Superior-inferior positions of the vertebral centres of one subject, as fractional indices
/// along the canonical (RAS+) superior axis `k` (k grows towards the head).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelMap {
    /// Vertebra number (SCT: 2 = C2 … 8 = T1) to canonical k of its centre.
    pub vertebra_centre_k: BTreeMap<u8, f64>,
    /// Which of them came from the labels (the others were placed).
    pub given: Vec<u8>,
    /// A line saying where the levels came from.
    pub source: String,
}

impl LevelMap {
    /// The segment containing canonical position `k`: segment Cn/Cn+1 spans the centres of
    /// vertebrae n and n + 1. `None` outside C2's centre … T1's centre, or where a bound is unknown.
    pub fn segment_at_k(&self, k: f64) -> Option<DiscLevel> {
        DiscLevel::ALL.into_iter().find(|level| {
            let upper = self.vertebra_centre_k.get(&level.upper_vertebra());
            let lower = self.vertebra_centre_k.get(&(level.upper_vertebra() + 1));
            match (upper, lower) {
                (Some(&u), Some(&l)) => {
                    let (lo, hi) = if u >= l { (l, u) } else { (u, l) };
                    // upper bound inclusive at the upper vertebra's centre.
                    k > lo && k <= hi
                }
                _ => false,
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// PAM50 proportions.

/// Depth of the vertebral centres C1 … T11 (index = vertebra number - 1) in the PAM50
/// template, in mm along the template's cord centreline below the C1/C2 disc (disc 2).
///
/// Derived once from `templates/PAM50_small` (`tests/anatomy_levels.rs` recomputes them from
/// the files): the centre of vertebra n >= 2 lies midway between discs n and n + 1 of
/// `PAM50_small_label_disc` (both point labels); C1, which has no disc above it, is the middle
/// of the level-1 region of `PAM50_small_levels`. The template is straight (its cord centre
/// moves < 0.6 mm over 450 mm), so these are also its superior-inferior distances.
pub const PAM50_VERTEBRA_DEPTH_MM: [f64; 18] = [
    -5.00, 8.00, 25.00, 43.00, 60.00, 76.00, 93.01, // C1 … C7
    113.02, 135.02, 158.02, 182.03, 206.03, 231.04, 258.04, 285.05, 312.05, 340.05, 370.05, // T1 … T11
];

/// Depth of the discs 2 (C1/C2) … 19 (T11/T12) (index = disc number - 2) in the PAM50 template,
/// in mm along its cord below disc 2, from `PAM50_small_label_disc`.
pub const PAM50_DISC_DEPTH_MM: [f64; 18] = [
    0.00, 16.00, 34.00, 52.00, 68.00, 84.01, 102.01, // C1/C2 … C7/T1
    124.02, 146.02, 170.03, 194.03, 218.03, 244.04, 272.04, 298.05, 326.05, 354.05, 386.05, // T1/T2 … T11/T12
];

/// PAM50 depth (mm below the C1/C2 disc) of the centre of vertebra `number` (1 = C1 … 18 = T11).
pub fn pam50_vertebra_depth_mm(number: u8) -> Option<f64> {
    PAM50_VERTEBRA_DEPTH_MM.get((number as usize).checked_sub(1)?).copied()
}

/// PAM50 depth (mm below the C1/C2 disc) of disc `number` (SCT: 2 = C1/C2 … 19 = T11/T12).
pub fn pam50_disc_depth_mm(number: u8) -> Option<f64> {
    PAM50_DISC_DEPTH_MM.get((number as usize).checked_sub(2)?).copied()
}

/// Name of a disc by SCT number: 3 -> "C2/C3".
pub fn disc_name(number: u8) -> String {
    match number {
        0 => "disc 0".into(),
        1 => "above C1".into(),
        n => format!("{}/{}", vertebra_name(n - 1), vertebra_name(n)),
    }
}

// ---------------------------------------------------------------------------------------------
// Label files.

/// Voxels of one label value, in canonical order.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LabelStats {
    pub voxels: usize,
    /// Lowest and highest canonical slice holding the value.
    pub k_min: usize,
    pub k_max: usize,
    /// Mean canonical k of its voxels (the centroid along the superior axis).
    pub k_mean: f64,
}

/// The non-zero values of a label volume and where they are along `k`.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelSummary {
    pub values: BTreeMap<u32, LabelStats>,
    /// Number of canonical slices along `k` (the field of view).
    pub k_slices: usize,
}

/// A value with at most this many voxels can be a point label (SCT writes single voxels;
/// some viewers write a 3 x 3 x 3 blob).
pub const POINT_LABEL_MAX_VOXELS: usize = 27;

impl LabelSummary {
    /// Summarises a canonical label array. Values must be non-negative integers (as written in
    /// float, int or uint files); anything else is [`CoreError::UnknownLabels`] naming `path`.
    pub fn of_canonical(labels: ArrayView3<'_, f32>, path: &Path) -> Result<LabelSummary> {
        let mut sums: BTreeMap<u32, (usize, usize, usize, f64)> = BTreeMap::new();
        let mut bad: Option<f32> = None;
        for ((_, _, k), &v) in labels.indexed_iter() {
            if v == 0.0 {
                continue;
            }
            if v < 0.0 || v.fract() != 0.0 || v > u32::MAX as f32 {
                bad.get_or_insert(v);
                continue;
            }
            let entry = sums.entry(v as u32).or_insert((0, usize::MAX, 0, 0.0));
            entry.0 += 1;
            entry.1 = entry.1.min(k);
            entry.2 = entry.2.max(k);
            entry.3 += k as f64;
        }
        if let Some(v) = bad {
            return Err(CoreError::UnknownLabels {
                path: path.to_path_buf(),
                detail: format!("value {v} is not a non-negative integer (a probability map is not a level label)"),
            });
        }
        let values = sums
            .into_iter()
            .map(|(value, (voxels, k_min, k_max, k_sum))| {
                (value, LabelStats { voxels, k_min, k_max, k_mean: k_sum / voxels as f64 })
            })
            .collect();
        Ok(LabelSummary { values, k_slices: labels.dim().2 })
    }

    /// True when every value has at most [`POINT_LABEL_MAX_VOXELS`] voxels.
    pub fn is_point_labels(&self) -> bool {
        self.values.values().all(|s| s.voxels <= POINT_LABEL_MAX_VOXELS)
    }

    /// "2, 9" — the values present.
    pub fn value_list(&self) -> String {
        list(self.values.keys())
    }
}

fn list<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items.into_iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
}

/// How a level file encodes the vertebral levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LevelConvention {
    /// SCT point labels at the cord centre of each vertebral level, valued by vertebra
    /// (`_label-vertebrae_dlabel`, `sct_label_utils -vert-body`): 2 = C2 … 7 = C7, 8 = T1.
    SctVertebraPoints,
    /// SCT disc point labels (`_label-discs_dlabel`, `_labeled_discs`): 2 = C1/C2,
    /// 3 = C2/C3 … 8 = C7/T1.
    SctDiscPoints,
    /// The cord labelled by vertebral level (`_label-vertebrae_dseg`, SCT's `_labeled`).
    SctVertebraCord,
    /// TotalSpineSeg (current release): 1 cord, 2 canal, 11-17 C1-C7, 21-32 T1-T12, 41-45
    /// L1-L5, 50 sacrum, 63-67 C2/C3-C6/C7, 71 C7/T1, 72-82 T1/T2-T11/T12, 91-95 T12/L1-L4/L5,
    /// 100 L5/S.
    TotalSpineSeg,
    /// The first TotalSpineSeg release (TotalSegmentator values): 41 C1 … 35 C7, 34 T1 … 23
    /// T12, 22 L1 … 18 L5, 92 sacrum, 200 cord, 201 canal, 224 C2/C3 … 219 C7/T1 … 202 L5/S.
    TotalSpineSegLegacy,
}

/// SCT's extra labels in level files: pontomedullary groove 49, PMJ 50, conus 60.
const SCT_EXTRA_LABELS: [u32; 3] = [49, 50, 60];

impl LevelConvention {
    pub const ALL: [LevelConvention; 5] = [
        LevelConvention::SctVertebraPoints,
        LevelConvention::SctDiscPoints,
        LevelConvention::SctVertebraCord,
        LevelConvention::TotalSpineSeg,
        LevelConvention::TotalSpineSegLegacy,
    ];

    /// The name used on the command line and in messages.
    pub fn name(self) -> &'static str {
        match self {
            LevelConvention::SctVertebraPoints => "sct-vertebrae",
            LevelConvention::SctDiscPoints => "sct-discs",
            LevelConvention::SctVertebraCord => "sct-labeled-cord",
            LevelConvention::TotalSpineSeg => "totalspineseg",
            LevelConvention::TotalSpineSegLegacy => "totalspineseg-legacy",
        }
    }

    /// The convention of a name given by a user (see [`Self::name`]).
    pub fn from_name(name: &str) -> Option<LevelConvention> {
        let name = name.trim().to_ascii_lowercase();
        LevelConvention::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Whether `value` means something in this convention.
    pub fn knows_value(self, value: u32) -> bool {
        match self {
            LevelConvention::SctVertebraPoints
            | LevelConvention::SctDiscPoints
            | LevelConvention::SctVertebraCord => (1..=26).contains(&value) || SCT_EXTRA_LABELS.contains(&value),
            LevelConvention::TotalSpineSeg => tss_meaning(value).is_some(),
            LevelConvention::TotalSpineSegLegacy => tss_legacy_meaning(value).is_some(),
        }
    }

    /// Detects the convention from the values present and, where the values leave it open, the
    /// file name:
    /// - a value >= 200 → the older TotalSpineSeg release;
    /// - only TotalSpineSeg values, regions rather than points, and a disc (>= 63) or no value
    ///   in 3..=10 → TotalSpineSeg;
    /// - only SCT values (1-26, 49, 50, 60): regions → the cord labelled by level; points →
    ///   disc points when the file name says "disc", vertebral points when it says "vert", and
    ///   an error asking for the convention otherwise (the two differ by half a level);
    /// - anything else → [`CoreError::UnknownLabels`] naming the file and the values found.
    pub fn detect(path: &Path, summary: &LabelSummary) -> Result<LevelConvention> {
        let unknown = |detail: String| CoreError::UnknownLabels { path: path.to_path_buf(), detail };
        if summary.values.is_empty() {
            return Err(unknown("the file holds no labels (every voxel is 0)".into()));
        }
        let values: Vec<u32> = summary.values.keys().copied().collect();
        let all_in = |c: LevelConvention| values.iter().all(|&v| c.knows_value(v));
        let points = summary.is_point_labels();
        if values.iter().any(|&v| v >= 200) {
            if all_in(LevelConvention::TotalSpineSegLegacy) {
                return Ok(LevelConvention::TotalSpineSegLegacy);
            }
        } else if all_in(LevelConvention::TotalSpineSeg)
            && !points
            && (values.iter().any(|&v| v >= 63) || !values.iter().any(|v| (3..=10).contains(v)))
        {
            return Ok(LevelConvention::TotalSpineSeg);
        } else if all_in(LevelConvention::SctVertebraPoints) {
            if !points {
                return Ok(LevelConvention::SctVertebraCord);
            }
            let name = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
            if name.contains("disc") {
                return Ok(LevelConvention::SctDiscPoints);
            }
            if name.contains("vert") {
                return Ok(LevelConvention::SctVertebraPoints);
            }
            return Err(CoreError::input(
                path,
                format!(
                    "point labels {} could be vertebrae or discs: name the file …_label-vertebrae_dlabel or \
                     …_label-discs_dlabel, or give the convention (sct-vertebrae or sct-discs)",
                    summary.value_list()
                ),
            ));
        }
        Err(unknown(format!(
            "values {} (known: SCT levels 1-26 with 49, 50, 60; TotalSpineSeg 1, 2, 11-45, 50, 63-100; \
             its older release 18-41, 92, 200-224)",
            summary.value_list()
        )))
    }
}

impl std::fmt::Display for LevelConvention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for LevelConvention {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        LevelConvention::from_name(s).ok_or_else(|| {
            format!("unknown level convention {s:?}: use one of {}", list(LevelConvention::ALL.iter().map(|c| c.name())))
        })
    }
}

/// What a TotalSpineSeg value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SpineLabel {
    /// Vertebra by SCT number.
    Vertebra(u8),
    /// Disc by SCT number (the vertebra below it).
    Disc(u8),
    /// Cord, canal, sacrum: not a level.
    Other,
}

fn tss_meaning(value: u32) -> Option<SpineLabel> {
    Some(match value {
        1 | 2 | 50 => SpineLabel::Other,
        11..=17 => SpineLabel::Vertebra((value - 10) as u8),
        21..=32 => SpineLabel::Vertebra((value - 13) as u8),
        41..=45 => SpineLabel::Vertebra((value - 21) as u8),
        63..=67 => SpineLabel::Disc((value - 60) as u8),
        71..=82 => SpineLabel::Disc((value - 63) as u8),
        91..=95 => SpineLabel::Disc((value - 71) as u8),
        100 => SpineLabel::Disc(25),
        _ => return None,
    })
}

fn tss_legacy_meaning(value: u32) -> Option<SpineLabel> {
    Some(match value {
        18..=41 => SpineLabel::Vertebra((42 - value) as u8),
        92 | 200 | 201 => SpineLabel::Other,
        202..=224 => SpineLabel::Disc((227 - value) as u8),
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Landmarks and placement.

/// A spinal position known in a subject, at fractional canonical slice `k`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Landmark {
    /// The centre of a vertebral level (SCT number).
    VertebraCentre { vertebra: u8, k: f64 },
    /// A disc (SCT number: the vertebra below it).
    Disc { disc: u8, k: f64 },
}

impl Landmark {
    pub fn k(&self) -> f64 {
        match *self {
            Landmark::VertebraCentre { k, .. } | Landmark::Disc { k, .. } => k,
        }
    }

    /// Its depth in the PAM50 template (mm below the C1/C2 disc), if the template has it.
    pub fn pam50_depth_mm(&self) -> Option<f64> {
        match *self {
            Landmark::VertebraCentre { vertebra, .. } => pam50_vertebra_depth_mm(vertebra),
            Landmark::Disc { disc, .. } => pam50_disc_depth_mm(disc),
        }
    }

    /// "C3" or "disc C2/C3".
    pub fn name(&self) -> String {
        match *self {
            Landmark::VertebraCentre { vertebra, .. } => vertebra_name(vertebra),
            Landmark::Disc { disc, .. } => format!("disc {}", disc_name(disc)),
        }
    }

    /// The vertebrae this landmark belongs to or bounds (a disc bounds the one above and below).
    fn vertebrae(&self) -> std::ops::RangeInclusive<u8> {
        match *self {
            Landmark::VertebraCentre { vertebra, .. } => vertebra..=vertebra,
            Landmark::Disc { disc, .. } => disc.saturating_sub(1).max(1)..=disc,
        }
    }
}

/// Subject arc length at a template depth: piecewise linear between the anchors (sorted by
/// depth), extrapolated with the nearest pair's scale; one anchor: the template's scale (1 mm
/// of cord per mm of template; arc length grows upwards while depth grows downwards).
fn arc_at_depth(anchors: &[(f64, f64)], depth: f64) -> f64 {
    if anchors.len() == 1 {
        let (d0, a0) = anchors[0];
        return a0 - (depth - d0);
    }
    let n = anchors.len();
    let upper = anchors.partition_point(|&(d, _)| d < depth).clamp(1, n - 1);
    let ((da, aa), (db, ab)) = (anchors[upper - 1], anchors[upper]);
    aa + (depth - da) * (ab - aa) / (db - da)
}

/// The centres of the vertebrae C2 … T1, and of every vertebra between the landmarks, as
/// canonical k: measured where a landmark gives the centre, placed otherwise by arc length
/// along `centreline` in the PAM50 proportions. Between two landmarks the template depth maps
/// piecewise-linearly to the subject's arc length; outside them the nearest pair's scale is
/// extrapolated; a single landmark uses the template's scale. Centres beyond the ends of the
/// cord continue straight along the superior axis (they may lie outside the field of view,
/// which still bounds the segments that it cuts).
///
/// `path` names the label file in messages. Errors: no landmark the template knows, or
/// landmarks out of anatomical order (a lower level above a higher one).
pub fn place_vertebrae(landmarks: &[Landmark], centreline: &Centreline, path: &Path) -> Result<LevelMap> {
    let mut usable: Vec<(f64, Landmark)> =
        landmarks.iter().filter_map(|l| l.pam50_depth_mm().map(|d| (d, *l))).collect();
    if usable.is_empty() {
        return Err(CoreError::input(
            path,
            format!(
                "no level between C1 and T11 to place the others from (found: {})",
                if landmarks.is_empty() { "nothing".to_string() } else { list(landmarks.iter().map(|l| l.name())) }
            ),
        ));
    }
    usable.sort_by(|a, b| a.0.total_cmp(&b.0));
    usable.dedup_by(|b, a| a.0 == b.0);
    for pair in usable.windows(2) {
        let ((_, upper), (_, lower)) = (pair[0], pair[1]);
        if lower.k() >= upper.k() {
            return Err(CoreError::input(
                path,
                format!(
                    "levels out of order: {} at k = {:.1} is not below {} at k = {:.1}",
                    lower.name(),
                    lower.k(),
                    upper.name(),
                    upper.k()
                ),
            ));
        }
    }
    let anchors: Vec<(f64, f64)> =
        usable.iter().map(|(d, l)| (*d, centreline.arc_length_at_k(l.k()))).collect();

    let mut centres: BTreeMap<u8, f64> = BTreeMap::new();
    let mut given: Vec<u8> = Vec::new();
    for (_, landmark) in &usable {
        if let Landmark::VertebraCentre { vertebra, k } = *landmark {
            centres.insert(vertebra, k);
            given.push(vertebra);
        }
    }
    // A vertebra between two labelled discs is measured too (its centre is their midpoint
    // along the cord).
    let discs: Vec<u8> =
        usable.iter().filter_map(|(_, l)| if let Landmark::Disc { disc, .. } = l { Some(*disc) } else { None }).collect();
    for &disc in &discs {
        if discs.contains(&(disc + 1)) && !given.contains(&disc) {
            given.push(disc);
        }
    }
    let lowest = usable.iter().flat_map(|(_, l)| l.vertebrae()).min().unwrap_or(2).min(2);
    let highest = usable.iter().flat_map(|(_, l)| l.vertebrae()).max().unwrap_or(8).max(8);
    for vertebra in lowest..=highest {
        if centres.contains_key(&vertebra) {
            continue;
        }
        let Some(depth) = pam50_vertebra_depth_mm(vertebra) else { continue };
        centres.insert(vertebra, centreline.k_at_arc_length(arc_at_depth(&anchors, depth)));
    }
    given.sort_unstable();
    let placed: Vec<u8> = centres.keys().copied().filter(|v| !given.contains(v)).collect();
    let source = format!(
        "{}: from {}{}",
        path.display(),
        list(usable.iter().map(|(_, l)| l.name())),
        if placed.is_empty() {
            String::new()
        } else {
            format!("; placed {} along the cord with PAM50 proportions", list(placed.iter().map(|&v| vertebra_name(v))))
        }
    );
    Ok(LevelMap { vertebra_centre_k: centres, given, source })
}

/// The levels of one subject and how they were obtained.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelReport {
    pub map: LevelMap,
    pub convention: LevelConvention,
    /// The landmarks used (measured in the labels).
    pub landmarks: Vec<Landmark>,
    /// Vertebrae (SCT numbers) whose labelled region is cut by the field of view or by the
    /// end of the cord: their centroid was not trusted and their centre was placed.
    pub partial: Vec<u8>,
    /// Values present but not levels (cord, canal, sacrum, PMJ …).
    pub ignored_values: Vec<u32>,
}

/// Reads a level file on the grid of `reference`, detects (or takes) its convention and
/// returns the vertebral centres of C2 … T1 (measured or placed along `centreline`).
pub fn load_levels(
    path: &Path,
    convention: Option<LevelConvention>,
    reference: &Volume,
    centreline: &Centreline,
) -> Result<LevelMap> {
    load_levels_report(path, convention, reference, centreline).map(|report| report.map)
}

/// [`load_levels`] with the details: landmarks, partial levels, ignored values.
pub fn load_levels_report(
    path: &Path,
    convention: Option<LevelConvention>,
    reference: &Volume,
    centreline: &Centreline,
) -> Result<LevelReport> {
    let labels = Volume::read(path)?;
    reference.check_same_grid(&labels, 1e-3)?;
    let canonical = labels.reorientation().to_canonical(labels.data.view());
    levels_from_labels(canonical, path, convention, centreline)
}

/// A labelled region is cut when it reaches within one slice of `limits` (inclusive k range).
fn is_cut(stats: &LabelStats, limits: (usize, usize)) -> bool {
    stats.k_min <= limits.0 + 1 || stats.k_max + 1 >= limits.1
}

/// The levels of a canonical label array (see [`load_levels`]); `path` names it in messages.
pub fn levels_from_labels(
    labels_canonical: ArrayView3<'_, f32>,
    path: &Path,
    convention: Option<LevelConvention>,
    centreline: &Centreline,
) -> Result<LevelReport> {
    let summary = LabelSummary::of_canonical(labels_canonical, path)?;
    let convention = match convention {
        Some(c) => {
            let foreign: Vec<u32> = summary.values.keys().copied().filter(|&v| !c.knows_value(v)).collect();
            if summary.values.is_empty() || !foreign.is_empty() {
                return Err(CoreError::UnknownLabels {
                    path: path.to_path_buf(),
                    detail: if summary.values.is_empty() {
                        "the file holds no labels (every voxel is 0)".into()
                    } else {
                        format!("values {} are not {} labels (values found: {})", list(&foreign), c, summary.value_list())
                    },
                });
            }
            c
        }
        None => LevelConvention::detect(path, &summary)?,
    };
    let fov = (0, summary.k_slices.saturating_sub(1));
    let mut landmarks = Vec::new();
    let mut partial = Vec::new();
    let mut ignored_values = Vec::new();
    match convention {
        LevelConvention::SctVertebraPoints | LevelConvention::SctDiscPoints => {
            for (&value, stats) in &summary.values {
                if SCT_EXTRA_LABELS.contains(&value) {
                    ignored_values.push(value);
                } else if convention == LevelConvention::SctVertebraPoints {
                    landmarks.push(Landmark::VertebraCentre { vertebra: value as u8, k: stats.k_mean });
                } else {
                    landmarks.push(Landmark::Disc { disc: value as u8, k: stats.k_mean });
                }
            }
        }
        LevelConvention::SctVertebraCord => {
            // The labelled cord ends where the cord mask ends, or at the field of view.
            let limits = (centreline.first_k().max(fov.0), centreline.last_k().min(fov.1));
            for (&value, stats) in &summary.values {
                if SCT_EXTRA_LABELS.contains(&value) {
                    ignored_values.push(value);
                } else if is_cut(stats, limits) {
                    partial.push(value as u8);
                } else {
                    landmarks.push(Landmark::VertebraCentre { vertebra: value as u8, k: stats.k_mean });
                }
            }
        }
        LevelConvention::TotalSpineSeg | LevelConvention::TotalSpineSegLegacy => {
            let meaning = if convention == LevelConvention::TotalSpineSeg { tss_meaning } else { tss_legacy_meaning };
            let mut discs = Vec::new();
            let mut vertebrae = Vec::new();
            for (&value, stats) in &summary.values {
                match meaning(value) {
                    Some(SpineLabel::Disc(disc)) if !is_cut(stats, fov) => {
                        discs.push(Landmark::Disc { disc, k: stats.k_mean })
                    }
                    Some(SpineLabel::Vertebra(vertebra)) if is_cut(stats, fov) => partial.push(vertebra),
                    Some(SpineLabel::Vertebra(vertebra)) => {
                        vertebrae.push(Landmark::VertebraCentre { vertebra, k: stats.k_mean })
                    }
                    _ => ignored_values.push(value),
                }
            }
            // The discs are thin and well localised; a vertebra's centroid includes its
            // posterior elements. Vertebral centroids are used only when no disc is usable.
            if discs.iter().any(|d| d.pam50_depth_mm().is_some()) {
                landmarks = discs;
            } else {
                landmarks = vertebrae;
            }
        }
    }
    let mut map = place_vertebrae(&landmarks, centreline, path)?;
    map.source = format!("{} ({})", map.source, convention);
    if !partial.is_empty() {
        map.source.push_str(&format!(
            "; {} cut by the field of view: placed, not measured",
            list(partial.iter().map(|&v| vertebra_name(v)))
        ));
        for &vertebra in &partial {
            tracing::warn!(
                "{}: level {} is cut by the field of view; its centre is placed, not measured",
                path.display(),
                vertebra_name(vertebra)
            );
        }
    }
    Ok(LevelReport { map, convention, landmarks, partial, ignored_values })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disc_level_codes_and_names() {
        assert_eq!(DiscLevel::C5C6.code(), 4);
        assert_eq!(DiscLevel::from_code(4), Some(DiscLevel::C5C6));
        assert_eq!(DiscLevel::from_code(0), None);
        assert_eq!(DiscLevel::C7T1.sct_disc_value(), 8);
        assert_eq!(DiscLevel::C2C3.to_string(), "C2/C3");
        assert_eq!(vertebra_name(8), "T1");
    }

    #[test]
    fn segment_runs_between_vertebral_centres() {
        let map = LevelMap {
            vertebra_centre_k: [(5, 100.0), (6, 80.0), (7, 62.0)].into_iter().collect(),
            given: vec![5, 6, 7],
            source: "test".into(),
        };
        assert_eq!(map.segment_at_k(90.0), Some(DiscLevel::C5C6));
        assert_eq!(map.segment_at_k(100.0), Some(DiscLevel::C5C6));
        assert_eq!(map.segment_at_k(70.0), Some(DiscLevel::C6C7));
        assert_eq!(map.segment_at_k(101.0), None);
        assert_eq!(map.segment_at_k(50.0), None);
    }

    use crate::anatomy::Centreline;
    use ndarray::{s, Array3};

    /// A straight cord along k = 0 … 199 (1 mm voxels): arc length = k.
    fn straight_centreline() -> Centreline {
        let mut cord = Array3::from_elem((5, 5, 200), false);
        cord.slice_mut(s![0, 0, ..]).fill(true);
        Centreline::from_cord(cord.view(), [1.0, 1.0, 1.0]).unwrap()
    }

    /// Canonical labels: cord (value `cord`) along [0, 0, k]; each disc a 3 x 3 x 3 block
    /// centred on its k; each vertebra a block over a k range.
    fn spine_labels(cord: f32, discs: &[(f32, usize)], vertebrae: &[(f32, usize, usize)]) -> Array3<f32> {
        let mut labels = Array3::<f32>::zeros((5, 5, 200));
        labels.slice_mut(s![0, 0, ..]).fill(cord);
        for &(value, k) in discs {
            labels.slice_mut(s![2..5, 2..5, k - 1..=k + 1]).fill(value);
        }
        for &(value, from, to) in vertebrae {
            labels.slice_mut(s![2..5, 2..5, from..=to]).fill(value);
        }
        labels
    }

    const DISC_K: [usize; 6] = [150, 132, 114, 97, 80, 62]; // C2/C3 … C7/T1

    /// Expected centres C2 … T1 for DISC_K on the straight cord (template depths from the
    /// PAM50 constants: C2 extrapolated with the C2/C3-C3/C4 scale, T1 with the last pair's).
    fn expected_from_discs() -> [f64; 7] {
        [158.0, 141.0, 123.0, 105.5, 97.0 - 8.0 * 17.0 / 16.01, 71.0, 50.99]
    }

    fn check_centres(map: &LevelMap, expected: &[f64]) {
        for (vertebra, &k) in (2u8..).zip(expected) {
            let got = map.vertebra_centre_k[&vertebra];
            assert!((got - k).abs() < 1e-6, "vertebra {vertebra}: {got} vs {k}");
        }
    }

    #[test]
    fn totalspineseg_current_release_uses_its_discs() {
        let discs: Vec<(f32, usize)> = [63.0, 64.0, 65.0, 66.0, 67.0, 71.0].into_iter().zip(DISC_K).collect();
        // C2 (12) above C2/C3; T2 (22) reaches the first slice: cut, reported.
        let labels = spine_labels(1.0, &discs, &[(12.0, 153, 190), (13.0, 134, 148), (22.0, 0, 40)]);
        let path = Path::new("sub-x_T2w_label-spine_dseg.nii.gz");
        let report = levels_from_labels(labels.view(), path, None, &straight_centreline()).unwrap();
        assert_eq!(report.convention, LevelConvention::TotalSpineSeg);
        assert_eq!(report.landmarks.len(), 6);
        assert_eq!(report.map.given, vec![3, 4, 5, 6, 7]);
        assert_eq!(report.partial, vec![9]);
        assert_eq!(report.ignored_values, vec![1]);
        check_centres(&report.map, &expected_from_discs());
    }

    #[test]
    fn totalspineseg_older_release_is_read_too() {
        let discs: Vec<(f32, usize)> = [224.0, 223.0, 222.0, 221.0, 220.0, 219.0].into_iter().zip(DISC_K).collect();
        let labels = spine_labels(200.0, &discs, &[(40.0, 153, 190), (39.0, 134, 148)]);
        let path = Path::new("sub-x_T2w_label-spine_dseg.nii.gz");
        let report = levels_from_labels(labels.view(), path, None, &straight_centreline()).unwrap();
        assert_eq!(report.convention, LevelConvention::TotalSpineSegLegacy);
        check_centres(&report.map, &expected_from_discs());
        assert!(report.map.source.contains("totalspineseg-legacy"), "{}", report.map.source);
    }

    #[test]
    fn totalspineseg_without_discs_uses_whole_vertebrae() {
        // C3 (13) k 120-140 and C5 (15) k 80-100: centroids 130 and 90.
        let labels = spine_labels(1.0, &[], &[(13.0, 120, 140), (15.0, 80, 100)]);
        let report =
            levels_from_labels(labels.view(), Path::new("spine.nii.gz"), None, &straight_centreline()).unwrap();
        assert_eq!(report.convention, LevelConvention::TotalSpineSeg);
        assert_eq!(report.map.given, vec![3, 5]);
        // C4 (depth 43) between C3 (25, k 130) and C5 (60, k 90): 130 - 18 x 40 / 35.
        let c4 = report.map.vertebra_centre_k[&4];
        assert!((c4 - (130.0 - 18.0 * 40.0 / 35.0)).abs() < 1e-6, "{c4}");
    }

    #[test]
    fn sct_discs_as_points_and_labelled_cord_as_regions() {
        let mut labels = Array3::<f32>::zeros((5, 5, 200));
        for (value, k) in (3..=8).zip(DISC_K) {
            labels[[0, 0, k]] = value as f32;
        }
        let line = straight_centreline();
        let report = levels_from_labels(labels.view(), Path::new("a_label-discs_dlabel.nii.gz"), None, &line).unwrap();
        assert_eq!(report.convention, LevelConvention::SctDiscPoints);
        check_centres(&report.map, &expected_from_discs());

        // The cord labelled 2 … 4 between k = 60 and 199: level 2 reaches the cord's last slice.
        let mut labels = Array3::<f32>::zeros((5, 5, 200));
        labels.slice_mut(s![0, 0, 150..200]).fill(2.0);
        labels.slice_mut(s![0, 0, 110..150]).fill(3.0);
        labels.slice_mut(s![0, 0, 60..110]).fill(4.0);
        let report = levels_from_labels(labels.view(), Path::new("cord_labeled.nii.gz"), None, &line).unwrap();
        assert_eq!(report.convention, LevelConvention::SctVertebraCord);
        assert_eq!(report.partial, vec![2]);
        assert_eq!(report.map.given, vec![3, 4]);
        assert!((report.map.vertebra_centre_k[&3] - 129.5).abs() < 1e-9);
    }

    #[test]
    fn detection_rejects_unknown_and_non_integer_values() {
        let line = straight_centreline();
        let mut labels = Array3::<f32>::zeros((5, 5, 200));
        labels.slice_mut(s![0, 0, 10..60]).fill(100.0);
        labels.slice_mut(s![0, 0, 60..90]).fill(150.0);
        let err = levels_from_labels(labels.view(), Path::new("x.nii.gz"), None, &line).unwrap_err();
        assert!(matches!(err, CoreError::UnknownLabels { .. }));
        assert!(err.to_string().starts_with("x.nii.gz: ") && err.to_string().contains("values 100, 150"), "{err}");

        labels[[1, 1, 1]] = 0.37;
        let err = levels_from_labels(labels.view(), Path::new("p.nii.gz"), None, &line).unwrap_err();
        assert!(err.to_string().contains("0.37"), "{err}");

        let empty = Array3::<f32>::zeros((5, 5, 200));
        let err = levels_from_labels(empty.view(), Path::new("e.nii.gz"), None, &line).unwrap_err();
        assert!(err.to_string().contains("no labels"), "{err}");
    }

    #[test]
    fn levels_out_of_order_are_an_error() {
        let mut labels = Array3::<f32>::zeros((5, 5, 200));
        labels[[0, 0, 10]] = 3.0; // C3 below C5
        labels[[0, 0, 50]] = 5.0;
        let err = levels_from_labels(
            labels.view(),
            Path::new("s_label-vertebrae_dlabel.nii.gz"),
            None,
            &straight_centreline(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("out of order"), "{err}");
    }

    #[test]
    fn a_single_landmark_uses_the_template_scale() {
        let line = straight_centreline();
        let map = place_vertebrae(&[Landmark::VertebraCentre { vertebra: 5, k: 100.0 }], &line, Path::new("p")).unwrap();
        assert_eq!(map.given, vec![5]);
        assert!((map.vertebra_centre_k[&2] - 152.0).abs() < 1e-9);
        assert!((map.vertebra_centre_k[&8] - (100.0 - 53.02)).abs() < 1e-9);
        assert!(place_vertebrae(&[], &line, Path::new("p")).is_err());
    }

    #[test]
    fn convention_names_round_trip() {
        for convention in LevelConvention::ALL {
            assert_eq!(convention.name().parse::<LevelConvention>(), Ok(convention));
        }
        assert!("sct".parse::<LevelConvention>().is_err());
        assert_eq!(disc_name(3), "C2/C3");
        assert_eq!(disc_name(8), "C7/T1");
        assert_eq!(pam50_disc_depth_mm(2), Some(0.0));
        assert_eq!(pam50_vertebra_depth_mm(19), None);
    }
}
