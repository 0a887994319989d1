//! The end of `u2ad detect`, once every subject has its maps: the cohort's calls, tables,
//! figures and report with the run's summary, or a shard's record for `u2ad calibrate`.

use std::path::Path;
use std::time::Instant;

use anyhow::bail;
use u2ad_core::detect_outputs::QC_REPORT_HTML;
use u2ad_io::names::printable;
use u2ad_report::html::FigureMode;

use super::settings::Run;
use crate::cohort_folder::SubjectResult as Detected;
use crate::commands::calibrate::{patient_counts, write_calls, write_shard_record, MapRun, Shard, ShardRecord, ShardSubject};
use crate::commands::Context;

/// Calls the cohort and writes its half of the folder, prints the run's summary and fails when a
/// subject failed (the others' outputs stay).
pub(super) fn finish_cohort(
    run: &Run,
    map_run: &MapRun,
    figure_mode: FigureMode,
    detected: &[Detected],
    failed: &[(String, String)],
    started: Instant,
    context: &Context,
) -> anyhow::Result<()> {
    if let (true, Some((subject, error))) = (detected.is_empty(), failed.first()) {
        bail!("{} of {} subjects failed, nothing written (first: {}: {error})", failed.len(), failed.len(), printable(subject));
    }
    // Phase 2: calls, tables, figures, report.
    let calls = write_calls(&run.out, map_run, &run.scoring, &run.calls, detected, failed, figure_mode, context)?;
    let reused = detected.iter().filter(|d| d.reused).count();
    if !context.quiet {
        let computed: Vec<&Detected> = detected.iter().filter(|d| !d.reused).collect();
        let per_subject = if computed.is_empty() {
            String::new()
        } else {
            format!(", {:.1} s per computed subject", computed.iter().map(|d| d.seconds).sum::<f64>() / computed.len() as f64)
        };
        eprintln!(
            "u2ad detect: {} subjects done ({reused} reused), {} failed; {}; {:.1} s{per_subject}; report {}",
            detected.len(),
            failed.len(),
            patient_counts(&calls),
            started.elapsed().as_secs_f64(),
            run.out.join(QC_REPORT_HTML).display()
        );
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} subjects failed ({}); the others' outputs are in {}",
            failed.len(),
            failed.len() + detected.len(),
            failed.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>().join(", "),
            run.out.display()
        );
    }
    Ok(())
}

/// A shard's end: its record for `u2ad calibrate`, no calls.
pub(super) fn finish_shard(
    shard: Shard,
    run: MapRun,
    detected: &[Detected],
    positions: &[usize],
    failed: Vec<(usize, String, String)>,
    out: &Path,
    context: &Context,
) -> anyhow::Result<()> {
    let subjects =
        detected.iter().zip(positions).map(|(d, &position)| ShardSubject { position, subject: d.subject.clone(), image: d.image.clone() }).collect();
    let record = ShardRecord { shard: shard.index, of: shard.count, run, subjects, failed };
    let path = write_shard_record(out, shard, &record)?;
    if !context.quiet {
        eprintln!(
            "u2ad detect: shard {}/{}: {} subjects done, {} failed; recorded in {}; when every shard is done: u2ad calibrate {}",
            shard.index,
            shard.count,
            record.subjects.len(),
            record.failed.len(),
            path.display(),
            out.display()
        );
    }
    if !record.failed.is_empty() {
        let names: Vec<String> = record.failed.iter().map(|(_, s, _)| printable(s)).collect();
        bail!("{} subjects of shard {}/{} failed ({})", names.len(), shard.index, shard.count, names.join(", "));
    }
    Ok(())
}
