//! `u2ad calibrate`: the cohort half of detection, for a cohort spread over machines.
//!
//! `u2ad detect … --shard I/N` runs the Monte-Carlo maps of every N-th subject (from the I-th,
//! in the order a single run takes them) and records what it did in
//! `<out>/shards/shard-I-of-N.json`. Once every shard is done, `u2ad calibrate <out>` reads the
//! shards' maps, scores them, calibrates the thresholds on the whole cohort and writes the calls,
//! `levels.csv`, `patients.csv` and the QC report: the same files a single `u2ad detect` writes.
//!
//! Files: `mod.rs` (the flags and the verb: the shards' records read and checked, their maps
//! scored), `shards.rs` (what a shard records), `calls.rs` (the cohort's calls and report, as
//! `u2ad detect` writes them).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _};
use clap::Args;
use u2ad_core::detect_outputs::{score_maps, SubjectMaps, SubjectOutputs, QC_REPORT_HTML};
use u2ad_io::names::printable;

use super::call_args::MapCallArgs;
use crate::cohort_folder::SubjectResult;
use super::Context;

mod calls;
mod shards;

pub use calls::{patient_counts, write_calls};
pub use shards::{parse_shard, write_shard_record, MapRun, Shard, ShardRecord, ShardSubject};

use shards::SHARDS_DIR;

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
