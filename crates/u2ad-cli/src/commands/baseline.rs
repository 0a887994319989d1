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

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use rayon::prelude::*;
use serde_json::{json, Value};
use u2ad_eval::baseline::{
    intensity_baseline, intensity_percentile_baseline, BaselineError, CohortSubject, IntensityBaselineConfig,
    IntensityPercentileConfig,
};
use u2ad_core::dataset::{PreparedDataset, PreparedSample, SubjectMeta};
use u2ad_core::detect_outputs::{map_grid, native_maps, score_maps, MapScoring, ScoredSubject, SubjectMaps, SubjectOutputs, QC_REPORT_HTML};
use u2ad_core::prepare::{prepare_subject, PrepareOptions};
use u2ad_core::level_scores::LevelScoreConfig;
use u2ad_core::scoring::{CallConfig, UncertaintyGate};
use u2ad_io::cohort::{discover_bids, DiscoveryOptions};
use u2ad_io::staging::StagedWrites;
use u2ad_io::volume::VoxelType;

use super::call_args::{CallArgs, SliceArgs};
use crate::cohort_folder::{merged, write_cohort, CohortFolder, SubjectResult};
use super::input_args::SubjectArgs;
use super::Context;
use crate::progress;
use crate::sidecar::stage_sidecar;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BaselineMethod {
    /// Per level, the 99th percentile of the smoothed T2 signal in the cord eroded in 3-D, over the
    /// subject's cord median, robust z-scored against the other participants.
    Intensity,
    /// Each cord voxel's T2 signal (over the cord median) as a robust z-score against the other
    /// subjects' cord at its level, then the curve of `u2ad detect --level-score curve-peak`.
    IntensityVoxelZ,
}

impl BaselineMethod {
    pub fn name(self) -> &'static str {
        match self {
            BaselineMethod::Intensity => "intensity",
            BaselineMethod::IntensityVoxelZ => "intensity-voxel-z",
        }
    }
}

#[derive(Args, Debug, Clone)]
#[command(after_help = "Examples:\n  \
u2ad baseline --method intensity synth-cohort/ --out baseline-intensity/ --pooling pooled\n  \
u2ad evaluate --detections u2ad=detect/ --detections intensity=baseline-intensity/ --truth synth-cohort/\n\n\
The output folder has exactly the layout of `u2ad detect` (maps, tables, figures, qc_report.html); \
the anomaly map is the z-score, the reconstruction the signal the rule expects, the uncertainty map 0.")]
pub struct BaselineArgs {
    /// A BIDS dataset (sub-*/anat/*_T2w.nii.gz with labels under derivatives/labels/), or a
    /// prepared dataset (.u2ds) written by `u2ad prepare`.
    pub input: PathBuf,
    /// Which baseline.
    #[arg(long, value_enum, default_value_t = BaselineArgs::METHOD)]
    pub method: BaselineMethod,
    /// Output folder (the layout of `u2ad detect`).
    #[arg(short, long)]
    pub out: PathBuf,
    // --include and --level-convention (the baseline compares each subject with the others, so
    // at least two are needed).
    #[command(flatten)]
    pub subjects: SubjectArgs,

    #[command(flatten)]
    pub calls: CallArgs,
    #[command(flatten)]
    pub slices: SliceArgs,

    /// Subjects processed at once (threads; default: all cores).
    #[arg(short, long, help_heading = "Run")]
    pub jobs: Option<usize>,
}

impl BaselineArgs {
    /// `--method`'s default (clap's and [`BaselineArgs::new`]'s).
    pub const METHOD: BaselineMethod = BaselineMethod::Intensity;

    /// `u2ad baseline INPUT --out OUT` with every other flag at its default.
    pub fn new(input: PathBuf, out: PathBuf) -> Self {
        BaselineArgs {
            input,
            method: Self::METHOD,
            out,
            subjects: SubjectArgs::default(),
            calls: CallArgs::default(),
            slices: SliceArgs::default(),
            jobs: None,
        }
    }
}

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
    let pool = rayon::ThreadPoolBuilder::new().num_threads(args.jobs.unwrap_or(0)).build().context("cannot start worker threads")?;
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

// ---------------------------------------------------------------------------------------------
// The detection folder

/// What a detection folder is written with.
pub struct DetectionFolder {
    pub out: PathBuf,
    /// Shown in the report's title and settings.
    pub method: String,
    /// Added to every sidecar.
    pub provenance: Value,
    /// Descriptions of the anomaly, uncertainty, reconstruction and candidate maps.
    pub map_descriptions: [&'static str; 4],
    pub scoring: MapScoring,
    pub calls: CallConfig,
    pub figure_mode: u2ad_report::html::FigureMode,
}

/// Writes a detection folder from the subjects' sample maps: maps on the native grid, per-subject
/// tables and figures, cohort tables, the QC report (the layout of `u2ad detect`).
pub fn write_detection_folder(folder: &DetectionFolder, maps: Vec<SubjectMaps>, context: &Context) -> anyhow::Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(&folder.out).with_context(|| format!("{}: cannot create the output folder", folder.out.display()))?;
    let bar = progress::bar(maps.len() as u64, "write", context.quiet);
    let scored: Vec<(SubjectMaps, ScoredSubject, SubjectOutputs)> = maps
        .into_par_iter()
        .map(|subject_maps| {
            let meta = &subject_maps.subject;
            let outputs = SubjectOutputs::new(&folder.out, &meta.subject, &meta.image_path)?;
            let scored = score_maps(&subject_maps, &folder.scoring);
            let reference = map_grid(meta)?;
            let native = native_maps(&subject_maps, &scored.candidates, &reference);
            let sources: Vec<String> = std::iter::once(&meta.image_path)
                .chain(meta.cord_mask_path.iter())
                .chain(meta.csf_mask_path.iter())
                .chain(meta.levels_path.iter())
                .map(|p| p.display().to_string())
                .collect();
            let provenance = merged(json!({"Sources": sources}), &folder.provenance);
            // The subject's maps land together or not at all.
            let staged = StagedWrites::new();
            for ((path, (map, is_mask)), description) in outputs.nifti_maps().iter().zip(native.named()).zip(folder.map_descriptions) {
                let voxel_type = if is_mask { VoxelType::UInt8 } else { VoxelType::Float32 };
                staged.write_with(path, |tmp| reference.write_like(map.view(), voxel_type, tmp))?;
                stage_sidecar(&staged, path, merged(json!({"Description": description, "SpatialReference": "orig"}), &provenance))?;
            }
            staged.write_with(&outputs.sample_maps(), |tmp| subject_maps.write(tmp))?;
            stage_sidecar(
                &staged,
                &outputs.sample_maps(),
                merged(json!({"Description": "256 x 256 sagittal sample maps (image, expected signal, EU, anomaly map, ROI, cord, level rows) for rescoring"}), &provenance),
            )?;
            staged.commit()?;
            bar.inc(1);
            Ok((subject_maps, scored, outputs))
        })
        .collect::<anyhow::Result<_>>()?;
    bar.finish_and_clear();

    let results: Vec<SubjectResult> = scored
        .into_iter()
        .map(|(maps, scored, outputs)| {
            let image = maps.subject.image_path.clone();
            SubjectResult::new(maps, scored, outputs, image, started, false)
        })
        .collect();
    let cohort = CohortFolder {
        out: &folder.out,
        method: Some(&folder.method),
        scoring: &folder.scoring,
        calls: &folder.calls,
        subject_provenance: folder.provenance.clone(),
        cohort_provenance: folder.provenance.clone(),
        report_settings: vec![("method".into(), folder.method.clone())],
        dataset_name: format!("u2ad {}: spinal cord T2 hyperintensity maps and calls", folder.method),
        source_dataset: folder.provenance["Input"].as_str().map(String::from),
        failed: &[],
        figure_mode: folder.figure_mode,
    };
    write_cohort(&cohort, &results, context)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_gives_what_clap_gives() {
        let crate::Command::Baseline(parsed) = super::super::parse_command(&["baseline", "cohort", "--out", "x"]) else { unreachable!() };
        super::super::assert_same(&BaselineArgs::new("cohort".into(), "x".into()), &parsed);
    }
}
