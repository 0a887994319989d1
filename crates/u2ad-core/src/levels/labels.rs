//! Label files: what each value of an SCT or TotalSpineSeg label file means, and their summary.

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::ArrayView3;
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

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

pub(super) fn list<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
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
pub(super) const SCT_EXTRA_LABELS: [u32; 3] = [49, 50, 60];

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
pub(super) enum SpineLabel {
    /// Vertebra by SCT number.
    Vertebra(u8),
    /// Disc by SCT number (the vertebra below it).
    Disc(u8),
    /// Cord, canal, sacrum: not a level.
    Other,
}

pub(super) fn tss_meaning(value: u32) -> Option<SpineLabel> {
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

pub(super) fn tss_legacy_meaning(value: u32) -> Option<SpineLabel> {
    Some(match value {
        18..=41 => SpineLabel::Vertebra((42 - value) as u8),
        92 | 200 | 201 => SpineLabel::Other,
        202..=224 => SpineLabel::Disc((227 - value) as u8),
        _ => return None,
    })
}
