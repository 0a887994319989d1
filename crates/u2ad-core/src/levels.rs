//! Vertebral and disc levels: the conventions users have (SCT, TotalSpineSeg), the placement of
//! missing levels along the cord, and the disc-level segment (C2/C3 … C7/T1) of every cord row.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
}
