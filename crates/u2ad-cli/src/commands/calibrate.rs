//! `u2ad calibrate`: the cohort half of detection, for a cohort spread over machines.
//!
//! `u2ad detect … --shard I/N` runs the Monte-Carlo maps of every N-th subject (from the I-th,
//! in the order a single run takes them) and records what it did in
//! `<out>/shards/shard-I-of-N.json`. Once every shard is done, `u2ad calibrate <out>` reads the
//! shards' maps, scores them, calibrates the thresholds on the whole cohort and writes the calls,
//! `levels.csv`, `patients.csv` and the QC report: the same files a single `u2ad detect` writes.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _};
use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use u2ad_core::detect_outputs::{score_maps, MapScoring, SubjectMaps, SubjectOutputs, QC_REPORT_HTML};
use u2ad_core::scoring::{CallConfig, PatientCall};
use u2ad_io::names::printable;
use u2ad_io::staging::write_file_atomically;
use u2ad_report::html::FigureMode;

use super::call_args::MapCallArgs;
use crate::cohort_folder::{write_cohort, CohortFolder, SubjectResult};
use super::Context;

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

/// Calls, tables, figures and report for the detected subjects (in cohort order), as `u2ad
/// detect` writes them (the calibration warnings printed); returns the patient calls.
#[allow(clippy::too_many_arguments)]
pub fn write_calls(
    out: &Path,
    run: &MapRun,
    scoring: &MapScoring,
    calls: &CallConfig,
    detected: &[SubjectResult],
    failed: &[(String, String)],
    figure_mode: FigureMode,
    context: &Context,
) -> anyhow::Result<Vec<PatientCall>> {
    let folder = CohortFolder {
        out,
        method: None,
        scoring,
        calls,
        subject_provenance: run.model_provenance.clone(),
        cohort_provenance: run.model_provenance.clone(),
        report_settings: vec![
            ("model".into(), run.model_row.clone()),
            ("Monte-Carlo".into(), run.monte_carlo_row.clone()),
            ("EU gate".into(), format!("{:?}", calls.uncertainty_gate)),
            ("configuration hash".into(), run.config_hash.clone()),
        ],
        dataset_name: "u2ad detect: spinal cord T2 hyperintensity maps and calls".into(),
        source_dataset: run.source_dataset.clone(),
        failed,
        figure_mode,
    };
    let decisions = write_cohort(&folder, detected, context)?;
    Ok(decisions.iter().map(|d| d.patient_call).collect())
}

/// "patients P positive, N negative, U not assessed" (the end-of-run summary of detect and
/// calibrate).
pub fn patient_counts(calls: &[PatientCall]) -> String {
    let count = |call: PatientCall| calls.iter().filter(|c| **c == call).count();
    format!(
        "patients {} positive, {} negative, {} not assessed",
        count(PatientCall::Positive),
        count(PatientCall::Negative),
        count(PatientCall::NotAssessed)
    )
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
u2ad detect cohort/ --model model.safetensors --out detect/ --shard 0/2   # machine 1\n  \
u2ad detect cohort/ --model model.safetensors --out detect/ --shard 1/2   # machine 2\n  \
u2ad calibrate detect/                                                     # once both are done")]
pub struct CalibrateArgs {
    /// The output folder every shard wrote into (`u2ad detect … --out FOLDER --shard I/N`).
    pub folder: PathBuf,
    #[command(flatten)]
    pub scoring: MapCallArgs,
}

/// Every shard's record, checked to be one complete run of the same model and settings.
fn read_shards(folder: &Path) -> anyhow::Result<Vec<ShardRecord>> {
    let dir = folder.join(SHARDS_DIR);
    let entries = std::fs::read_dir(&dir).with_context(|| format!("{}: no shard records (run u2ad detect … --shard I/N first)", dir.display()))?;
    let mut records = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
            let record: ShardRecord = serde_json::from_str(&text).with_context(|| format!("{}: not a u2ad shard record", path.display()))?;
            records.push(record);
        }
    }
    let Some(first) = records.first() else { bail!("{}: no shard records (run u2ad detect … --shard I/N first)", dir.display()) };
    let count = first.of;
    if let Some(other) = records.iter().find(|r| r.of != count) {
        bail!("{}: shards of {count} and of {} machines mixed: calibrate one run's shards", dir.display(), other.of);
    }
    let missing: Vec<String> = (0..count).filter(|i| !records.iter().any(|r| r.shard == *i)).map(|i| format!("{i}/{count}")).collect();
    if !missing.is_empty() {
        bail!("{}: shard {} not done yet (run u2ad detect … --shard {})", dir.display(), missing.join(", "), missing[0]);
    }
    let key = |r: &ShardRecord| (r.run.model_provenance["ModelHash"].clone(), r.run.config_hash.clone());
    if let Some(other) = records.iter().find(|r| key(r) != key(first)) {
        bail!(
            "{}: shard {}/{count} was made with another model or settings than shard {}/{count}: rerun it with the same ones",
            dir.display(),
            other.shard,
            first.shard
        );
    }
    records.sort_by_key(|r| r.shard);
    Ok(records)
}

pub fn run(args: CalibrateArgs, context: &Context) -> anyhow::Result<()> {
    let started = Instant::now();
    let (scoring, calls) = args.scoring.settings()?;
    let records = read_shards(&args.folder)?;
    let mut subjects: Vec<&ShardSubject> = records.iter().flat_map(|r| &r.subjects).collect();
    subjects.sort_by_key(|s| s.position);
    let mut failures: Vec<&(usize, String, String)> = records.iter().flat_map(|r| &r.failed).collect();
    failures.sort_by_key(|f| f.0);
    let failed: Vec<(String, String)> = failures.iter().map(|(_, s, e)| (s.clone(), e.clone())).collect();
    let detected = subjects
        .iter()
        .map(|s| {
            let outputs = SubjectOutputs::new(&args.folder, &s.subject, &s.image)?;
            let maps = SubjectMaps::read(&outputs.sample_maps())?;
            let scored = score_maps(&maps, &scoring);
            Ok(SubjectResult::new(maps, scored, outputs, s.image.clone(), started, false))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if detected.is_empty() {
        bail!("{}: every subject of every shard failed: nothing to calibrate", args.folder.display());
    }
    let figure_mode = args.scoring.calls.figure_mode();
    let patient_calls = write_calls(&args.folder, &records[0].run, &scoring, &calls, &detected, &failed, figure_mode, context)?;
    if !context.quiet {
        eprintln!(
            "u2ad calibrate: {} subjects from {} shards, {} failed; {}; {:.1} s; report {}",
            detected.len(),
            records.len(),
            failed.len(),
            patient_counts(&patient_calls),
            started.elapsed().as_secs_f64(),
            args.folder.join(QC_REPORT_HTML).display()
        );
    }
    if !failed.is_empty() {
        let names: Vec<String> = failed.iter().map(|(s, _)| printable(s)).collect();
        bail!("{} of {} subjects failed in their shards ({})", failed.len(), failed.len() + detected.len(), names.join(", "));
    }
    Ok(())
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
