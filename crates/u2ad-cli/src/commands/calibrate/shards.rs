//! What a shard of `u2ad detect … --shard I/N` is and records: `I/N`, the subjects it detected,
//! the run that made their maps, in `<out>/shards/shard-I-of-N.json`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use u2ad_io::staging::write_file_atomically;

/// Folder of the shard records inside the output folder.
pub const SHARDS_DIR: &str = "shards";

/// `I/N`: this machine's share of the subjects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// Whether the subject at `position` (in the order of a single run) is this shard's.
    pub fn holds(self, position: usize) -> bool {
        position % self.count == self.index
    }

    fn record_path(self, out: &Path) -> PathBuf {
        out.join(SHARDS_DIR).join(format!("shard-{}-of-{}.json", self.index, self.count))
    }
}

pub fn parse_shard(text: &str) -> Result<Shard, String> {
    let bad = || format!("'{text}' is not I/N with 0 <= I < N (e.g. 0/8 … 7/8)");
    let (index, count) = text.split_once('/').ok_or_else(bad)?;
    let (index, count): (usize, usize) = (index.trim().parse().map_err(|_| bad())?, count.trim().parse().map_err(|_| bad())?);
    if count == 0 || index >= count {
        return Err(bad());
    }
    Ok(Shard { index, count })
}

/// One subject a shard detected: its place in the cohort's order, its id and image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardSubject {
    pub position: usize,
    pub subject: String,
    pub image: PathBuf,
}

/// What the run that made the maps was (the rows of the report's settings and the sidecars).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MapRun {
    /// ModelFile, ModelHash, ConfigHash, Seed, MonteCarlo … (merged into every sidecar).
    pub model_provenance: Value,
    /// The model and the Monte-Carlo settings, as the report shows them.
    pub model_row: String,
    pub monte_carlo_row: String,
    pub config_hash: String,
    /// The input dataset (`SourceDatasets` of dataset_description.json).
    pub source_dataset: Option<String>,
}

/// `<out>/shards/shard-I-of-N.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardRecord {
    pub shard: usize,
    pub of: usize,
    pub run: MapRun,
    pub subjects: Vec<ShardSubject>,
    /// Subjects that failed: (position, subject, error).
    pub failed: Vec<(usize, String, String)>,
}

pub fn write_shard_record(out: &Path, shard: Shard, record: &ShardRecord) -> anyhow::Result<PathBuf> {
    let path = shard.record_path(out);
    let text = serde_json::to_string_pretty(record)?;
    write_file_atomically(&path, text.as_bytes())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_the_cohort_in_turn() {
        let shard = parse_shard("1/3").unwrap();
        assert_eq!((0..8).filter(|&k| shard.holds(k)).collect::<Vec<_>>(), [1, 4, 7]);
        for bad in ["3/3", "1", "a/2", "0/0", "-1/2"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
        assert_eq!(shard.record_path(Path::new("o")), Path::new("o/shards/shard-1-of-3.json"));
    }
}
