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
//!   [`Centreline`](crate::anatomy::Centreline), with the proportions of the PAM50 template ([`PAM50_VERTEBRA_DEPTH_MM`],
//!   [`PAM50_DISC_DEPTH_MM`]);
//! - [`LevelMap::segment_at_k`]: the disc-level segment ([`DiscLevel`]) of a row;
//! - [`vertebra_name`].
//!
//! Numbering is SCT's throughout: vertebra 1 = C1 … 7 = C7, 8 = T1 …, 20 = L1; disc n is the
//! disc just above vertebra n (3 = C2/C3 … 8 = C7/T1; 2 = C1/C2).
//!
//! Files: `mod.rs` (disc levels and the level map), `pam50.rs` (the template's proportions),
//! `labels.rs` (label files and their conventions), `placement.rs` (landmarks, placement along
//! the cord, and the entry points).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};


mod labels;
mod pam50;
mod placement;
#[cfg(test)]
mod tests;

pub use labels::*;
pub use pam50::*;
pub use placement::*;

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
