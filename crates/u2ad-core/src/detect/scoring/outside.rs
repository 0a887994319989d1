//! The cord in view outside the disc-level segments: its two regions and their scores (scored by
//! [`crate::level_scores`], called with the segments in `calls.rs`).

use serde::{Deserialize, Serialize};

/// Cord in view outside the disc-level segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutsideRegion {
    /// Rows above the first disc-level segment (C2/C3 when it is in view: C1-C2 and up).
    AboveLevels,
    /// Rows below the last disc-level segment (below C7/T1 when it is in view).
    BelowLevels,
}

impl OutsideRegion {
    pub const ALL: [OutsideRegion; 2] = [OutsideRegion::AboveLevels, OutsideRegion::BelowLevels];

    /// "above levels", "below levels".
    pub fn name(self) -> &'static str {
        match self {
            OutsideRegion::AboveLevels => "above levels",
            OutsideRegion::BelowLevels => "below levels",
        }
    }

    /// Whether `row` of a subject with these row codes lies in the region (no region without
    /// any level).
    pub fn holds(self, row: usize, row_segment: &[u8]) -> bool {
        let (Some(first), Some(last)) =
            (row_segment.iter().position(|&c| c != 0), row_segment.iter().rposition(|&c| c != 0))
        else {
            return false;
        };
        match self {
            OutsideRegion::AboveLevels => row < first,
            OutsideRegion::BelowLevels => row > last,
        }
    }
}

/// A score of the cord outside the levels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OutsideScore {
    pub region: OutsideRegion,
    pub score: f64,
    pub peak_slice: usize,
    pub peak_row_px: usize,
}
