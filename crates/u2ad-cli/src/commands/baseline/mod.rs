//! `u2ad baseline`: a simple detector run through the same pipeline as U2AD, so that evaluation
//! and the QC report compare like with like.
//!
//! `--method intensity` ([`u2ad_eval::baseline::intensity_percentile_baseline`]): per level, the
//! 99th percentile of the smoothed T2 signal in the cord eroded in 3-D, over the subject's cord
//! median, robust z-scored against the other participants. `--method intensity-voxel-z`: each
//! voxel's robust z against the other subjects' cord at its level, scored by the anomaly curve.
//! Everything after the map is `u2ad detect`'s: the same candidate filter, anomaly curve, segment
//! and patient scores,
//! cohort-calibrated calls, and the same output folder (the layout of
//! [`u2ad_core::detect_outputs`]): NIfTI maps on the input grid, per-level and per-patient tables,
//! figures and `qc_report.html`.
//!
//! Files: `mod.rs` (the verb: the subjects, the method's maps), `args.rs` (the flags),
//! `folder.rs` (the maps to a detection folder).

use std::time::Instant;

use anyhow::Context as _;
use rayon::prelude::*;
use serde_json::json;
use u2ad_eval::baseline::{
    intensity_baseline, intensity_percentile_baseline, BaselineError, CohortSubject, IntensityBaselineConfig,
    IntensityPercentileConfig,
};
use u2ad_core::dataset::{PreparedDataset, PreparedSample, SubjectMeta};
use u2ad_core::detect_outputs::{MapScoring, QC_REPORT_HTML};
use u2ad_core::prepare::{prepare_subject, PrepareOptions};
use u2ad_core::level_scores::LevelScoreConfig;
use u2ad_core::scoring::UncertaintyGate;
use u2ad_io::cohort::{discover_bids, DiscoveryOptions};

use super::Context;
use crate::progress;

mod args;
mod folder;

pub use args::{BaselineArgs, BaselineMethod};

use folder::{write_detection_folder, DetectionFolder};

/// The prepared subjects of the input.
fn load_subjects(args: &BaselineArgs, context: &Context) -> anyhow::Result<Vec<(SubjectMeta, Vec<PreparedSample>)>> {
    let input = &args.input;
    if input.is_file() && input.extension().is_some_and(|e| e == "u2ds") {
        return Ok(PreparedDataset::read(input)?.subjects_with_samples(&args.subjects.include));
    }
    let options = DiscoveryOptions { include: args.subjects.include.clone(), ..Default::default() };
    let prepare = PrepareOptions { level_convention: args.subjects.level_convention, ..Default::default() };
    let files = discover_bids(input, &options)?;
    let bar = progress::bar(files.len() as u64, "prepare", context.quiet);
    let prepared: Vec<anyhow::Result<(SubjectMeta, Vec<PreparedSample>)>> = files
        .par_iter()
        .map(|f| {
            let result = prepare_subject(f, &prepare).map(|p| (p.meta, p.samples));
            bar.inc(1);
            Ok(result?)
        })
        .collect();
    bar.finish_and_clear();
    prepared.into_iter().collect()
}

pub fn run(args: BaselineArgs, context: &Context) -> anyhow::Result<()> {
    let started = Instant::now();
    // The baseline has no epistemic uncertainty.
    let calls = args.calls.call_config(UncertaintyGate::Off)?;
    let mut scoring = MapScoring::default();
    scoring.scoring.curve.slices = args.slices.selection();
    scoring.levels = match args.method {
        BaselineMethod::Intensity => args.calls.level_scores(IntensityPercentileConfig::LEVEL_SCORES),
        BaselineMethod::IntensityVoxelZ => LevelScoreConfig::CURVE_PEAK,
    };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(args.jobs.threads()).build().context("cannot start worker threads")?;
    let subjects = pool.install(|| load_subjects(&args, context))?;
    let cohort: Vec<CohortSubject<'_>> = subjects.iter().map(|(meta, samples)| CohortSubject { meta, samples }).collect();
    if cohort.len() < 2 {
        anyhow::bail!("{}: {}", args.input.display(), BaselineError::TooFewSubjects(cohort.len()));
    }
    let (maps, config, descriptions) = match args.method {
        BaselineMethod::Intensity => {
            let config = IntensityPercentileConfig::default();
            let maps = cohort
                .iter()
                .map(|s| intensity_percentile_baseline(s, &config))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow::anyhow!("{}: {e}", args.input.display()))?;
            (maps, serde_json::to_value(config)?, PERCENTILE_MAPS)
        }
        BaselineMethod::IntensityVoxelZ => {
            let config = IntensityBaselineConfig::default();
            let maps = intensity_baseline(&cohort, &config).map_err(|e| anyhow::anyhow!("{}: {e}", args.input.display()))?;
            (maps, serde_json::to_value(config)?, VOXEL_Z_MAPS)
        }
    };
    let method = BaselineMethod::name(args.method);
    let folder = DetectionFolder {
        out: args.out.clone(),
        method: format!("{method} baseline"),
        provenance: json!({
            "Method": method,
            "Baseline": config,
            "Input": std::path::absolute(&args.input).unwrap_or_else(|_| args.input.clone()).display().to_string(),
        }),
        map_descriptions: descriptions,
        scoring,
        calls,
        figure_mode: args.calls.figure_mode(),
    };
    pool.install(|| write_detection_folder(&folder, maps, context))?;
    if !context.quiet {
        eprintln!(
            "u2ad baseline ({method}): {} subjects in {:.1} s; report {}",
            subjects.len(),
            started.elapsed().as_secs_f64(),
            args.out.join(QC_REPORT_HTML).display()
        );
    }
    Ok(())
}

const VOXEL_Z_MAPS: [&str; 4] = [
    "Intensity baseline anomaly map: max(0, robust z-score) of the cord T2 signal (divided by the subject's cord median) against the other subjects' cord signal at the same disc level (median, 1.4826 x MAD), inside the cord eroded by 3 x 3 pixels; 0 elsewhere",
    "Epistemic uncertainty: 0 (the intensity baseline has none)",
    "The signal the intensity rule expects: the subject's cord median x the reference median of the level, in the input's intensity units, inside the eroded cord; the clipped input elsewhere",
    "Anomaly candidates: the z-score above its 90th percentile in the eroded cord, 8-connected components of at least 2 pixels, the 3 best by mean x sum, per sagittal slice",
];

const PERCENTILE_MAPS: [&str; 4] = [
    "Intensity baseline map: the T2 signal smoothed by a Gaussian of 0.7 mm, divided by the subject's median cord signal, inside the cord eroded by 3 x 3 pixels; 0 elsewhere. Each level's score is its 99th percentile over the cord eroded by about two voxels in 3-D",
    "Epistemic uncertainty: 0 (the intensity baseline has none)",
    "The signal the intensity rule expects: the subject's median cord signal, in the input's intensity units, inside the eroded cord; the clipped input elsewhere",
    "Anomaly candidates: the signal ratio above its 90th percentile in the eroded cord, 8-connected components of at least 2 pixels, the 3 best by mean x sum, per sagittal slice",
];
