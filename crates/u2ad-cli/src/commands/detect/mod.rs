//! `u2ad detect`: a trained model and a cohort (BIDS folder, prepared `.u2ds`, or one image) to
//! anomaly maps, per-level and per-patient scores and calls, figures and one QC report.
//!
//! Per subject: Monte-Carlo inference on every sagittal sample (K masked reconstructions of each
//! ROI patch, batched), EU and AU on the cord eroded by 3 x 3, anomaly candidates, curve and
//! segment scores ([`u2ad_core::detect_outputs`], [`u2ad_core::scoring`]); the maps go back onto
//! the input's grid. Then, for the cohort: label-free calls with leave-one-subject-out
//! thresholds (or a fixed `--threshold`), tables, figures and the report.
//!
//! A subject that fails is reported and the others finish; the exit status is non-zero at the
//! end. A rerun reuses a subject's Monte-Carlo maps when its `_desc-mc_samples` sidecar records
//! the same configuration hash, model hash and input files (`--force` recomputes).
//!
//! Files: `mod.rs` (the flags and the verb: subjects in parallel), `finish.rs` (then the cohort's
//! calls and summary, or a shard's record), `settings.rs` (what is fixed for the run, its hash
//! and provenance), `subjects.rs` (the work of one subject).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context as _};
use burn::tensor::backend::Backend;
use clap::{Args, ValueEnum};
use rayon::prelude::*;
use serde::Serialize;
use u2ad_core::dataset::SAMPLE_SIZE;
use u2ad_core::scoring::Polarity;
use u2ad_io::names::printable;

use super::calibrate::{parse_shard, Shard};
use super::call_args::MapCallArgs;
use crate::cohort_folder::SubjectResult as Detected;
use super::prepare::ScanInputs;
use super::Context;
use crate::device::{parse_device, DeviceChoice};
use crate::progress;

mod finish;
mod settings;
mod subjects;

use settings::{hash_hex, map_run, settings_of, MapSettings, McInput, Run};
use subjects::{detect_subject, jobs_of, Job};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PolarityArg {
    /// Only pixels brighter than their reconstruction (T2 hyperintensities).
    Hyperintense,
    /// Both signs (the paper's AU).
    Both,
}

impl From<PolarityArg> for Polarity {
    fn from(p: PolarityArg) -> Polarity {
        match p {
            PolarityArg::Hyperintense => Polarity::Hyperintense,
            PolarityArg::Both => Polarity::Both,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScheduleArg {
    /// Every ROI patch masked exactly K times in about K / 0.75 passes.
    Balanced,
    /// The reference code: random masks until every ROI patch has K samples (at most --max-passes).
    Reference,
}

/// Which pixels Monte-Carlo inference masks and reconstructs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum McRegionArg {
    /// The prepared ROI (cord and CSF dilated by one pixel): the default, a departure measured on
    /// the leave-host-out benchmark (segment AUROC 0.87 against 0.68 for `cord-csf`, BENCHMARKS.md).
    Roi,
    /// Cord and CSF, not dilated: the region of training's Monte-Carlo refreshes.
    CordCsf,
    /// The cord eroded by 3 x 3 pixels: the reference's final inference.
    ErodedCord,
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
u2ad detect ../shared/data/spine-t2 --model model.safetensors --out detect/\n  \
u2ad detect cohort.u2ds --model model.safetensors --out detect/ --jobs 2\n  \
u2ad detect --image sub-01_T2w.nii.gz --cord sub-01_T2w_label-SC_seg.nii.gz --levels sub-01_T2w_label-discs_dlabel.nii.gz \
--model model.safetensors --out detect/ --threshold 0.004\n\n\
Outputs (BIDS derivatives, each with a JSON sidecar): <out>/sub-XX/anat/<image>_desc-anomaly.nii.gz (AU), \
_desc-uncertainty.nii.gz (EU), _desc-reconstruction.nii.gz, _label-candidates_mask.nii.gz, _desc-levels_scores.csv, \
_desc-patient_scores.json, _desc-curve_scores.csv; <out>/sub-XX/figures/*_qc.png; <out>/levels.csv, \
<out>/patients.csv and <out>/qc_report.html for the cohort.")]
pub struct DetectArgs {
    /// A BIDS dataset (sub-*/anat/*_T2w.nii.gz with labels under derivatives/labels/), or a
    /// prepared dataset (.u2ds) written by `u2ad prepare`.
    pub input: Option<PathBuf>,

    /// The trained model (.safetensors from `u2ad pretrain` / `u2ad adapt`).
    #[arg(long)]
    pub model: PathBuf,
    /// Output folder (a BIDS derivative dataset).
    #[arg(short, long)]
    pub out: PathBuf,

    #[command(flatten)]
    pub scans: ScanInputs,

    /// K: reconstructions of each ROI patch.
    #[arg(short = 'k', long, default_value_t = DetectArgs::SAMPLES_PER_PATCH, help_heading = "Monte Carlo")]
    pub samples_per_patch: usize,
    /// Fraction of the ROI patches masked in each pass.
    #[arg(long, default_value_t = DetectArgs::MASK_RATIO, help_heading = "Monte Carlo")]
    pub mask_ratio: f64,
    /// Mask schedule of the Monte-Carlo passes.
    #[arg(long, value_enum, default_value_t = DetectArgs::MC_SCHEDULE, help_heading = "Monte Carlo")]
    pub mc_schedule: ScheduleArg,
    /// Most passes per slice for --mc-schedule reference.
    #[arg(long, default_value_t = DetectArgs::MAX_PASSES, help_heading = "Monte Carlo")]
    pub max_passes: usize,
    /// Region masked and reconstructed by the Monte-Carlo passes.
    #[arg(long, value_enum, default_value_t = DetectArgs::MC_REGION, help_heading = "Monte Carlo")]
    pub mc_region: McRegionArg,
    /// Reconstruct each slice as prepared, without the per-slice min-max normalisation that
    /// training and the reference apply to every slice.
    #[arg(long, help_heading = "Monte Carlo")]
    pub no_min_max: bool,
    /// Masked copies reconstructed per forward batch of the Monte-Carlo passes (memory grows
    /// with it; not training's --batch-size).
    #[arg(long = "mc-batch", alias = "batch", default_value_t = DetectArgs::MC_BATCH, help_heading = "Monte Carlo")]
    pub mc_batch: usize,
    /// Which deviations make the anomaly map: `hyperintense` (image brighter than its
    /// reconstruction: T2 hyperintensities) or `both` (the paper's |image - reconstruction|).
    #[arg(long, value_enum, default_value_t = DetectArgs::POLARITY, help_heading = "Scores and calls")]
    pub polarity: PolarityArg,
    /// Where the model runs: auto (CUDA when this build has it and a driver, else the CPU),
    /// cpu, cuda, cuda:N.
    #[arg(long, value_parser = parse_device, default_value_t = DeviceChoice::DEFAULT, help_heading = "Run")]
    pub device: DeviceChoice,
    /// Seed of the mask schedules (each slice's seed derives from it, the subject and the slice).
    #[arg(long, default_value_t = DetectArgs::SEED, help_heading = "Run")]
    pub seed: u64,

    #[command(flatten)]
    pub scoring: MapCallArgs,

    /// Process only this share of the subjects, `I/N` (I from 0 to N-1; the subjects in sorted
    /// order, every N-th from the I-th): maps and scores, no calls. When every shard is done,
    /// `u2ad calibrate OUT` calls the whole cohort (one machine per shard, e.g. a Slurm array).
    #[arg(long, value_parser = parse_shard, help_heading = "Scale-out")]
    pub shard: Option<Shard>,

    /// Subjects processed at once (threads; default: all cores).
    #[arg(short, long, help_heading = "Run")]
    pub jobs: Option<usize>,
    /// Recompute subjects whose outputs exist with the same configuration and model.
    #[arg(long, help_heading = "Run")]
    pub force: bool,
}

impl DetectArgs {
    /// The flags' defaults (clap's and [`DetectArgs::new`]'s).
    pub const SAMPLES_PER_PATCH: usize = 10;
    pub const MASK_RATIO: f64 = 0.75;
    pub const MC_SCHEDULE: ScheduleArg = ScheduleArg::Balanced;
    pub const MAX_PASSES: usize = 400;
    pub const MC_REGION: McRegionArg = McRegionArg::Roi;
    pub const MC_BATCH: usize = 8;
    pub const POLARITY: PolarityArg = PolarityArg::Hyperintense;
    pub const SEED: u64 = 0;

    /// `u2ad detect INPUT --model MODEL --out OUT` with every other flag at its default.
    pub fn new(input: PathBuf, model: PathBuf, out: PathBuf) -> Self {
        DetectArgs {
            input: Some(input),
            model,
            out,
            scans: ScanInputs::default(),
            samples_per_patch: Self::SAMPLES_PER_PATCH,
            mask_ratio: Self::MASK_RATIO,
            mc_schedule: Self::MC_SCHEDULE,
            max_passes: Self::MAX_PASSES,
            mc_region: Self::MC_REGION,
            no_min_max: false,
            mc_batch: Self::MC_BATCH,
            polarity: Self::POLARITY,
            device: DeviceChoice::DEFAULT,
            seed: Self::SEED,
            scoring: MapCallArgs::default(),
            shard: None,
            jobs: None,
            force: false,
        }
    }
}

pub fn run(args: DetectArgs, context: &Context) -> anyhow::Result<()> {
    let device = crate::device::resolve(args.device, context.quiet)?;
    crate::device::run_on(device, OnDevice(args, context))
}

/// The verb's work, for [`crate::device::run_on`].
struct OnDevice<'a>(DetectArgs, &'a Context);

impl crate::device::BackendJob for OnDevice<'_> {
    type Output = anyhow::Result<()>;
    fn run<B: burn::tensor::backend::Backend>(self, device: &B::Device) -> Self::Output {
        run_on::<B>(self.0, self.1, device)
    }
}

fn run_on<B: Backend>(args: DetectArgs, context: &Context, device: &B::Device) -> anyhow::Result<()> {
    let started = Instant::now();
    let (mc, scoring, calls) = settings_of(&args)?;
    let (model, model_info) = super::load_checked_model::<B>(&args.model, device)?;
    let grid = model_info.config.grid();
    if grid.image_size != SAMPLE_SIZE {
        bail!(
            "{}: the model takes {} x {} images; u2ad samples are {SAMPLE_SIZE} x {SAMPLE_SIZE}",
            args.model.display(),
            grid.image_size,
            grid.image_size
        );
    }
    // Each subject keeps its place in the cohort's order: a shard takes every N-th of them.
    let jobs: Vec<(usize, Job)> =
        jobs_of(&args)?.into_iter().enumerate().filter(|(position, _)| args.shard.is_none_or(|s| s.holds(*position))).collect();
    let prepare = args.scans.prepare_options();
    let mc_input = McInput { region: args.mc_region, min_max: !args.no_min_max };
    let settings = MapSettings {
        monte_carlo: &mc,
        seed: args.seed,
        preprocess: &prepare.preprocess,
        level_convention: prepare.level_convention.map(|c| c.name()),
        cord_offset_voxels: prepare.cord_offset_voxels,
        candidates: &scoring.candidates,
        polarity: args.polarity.into(),
        mc_input: Some(mc_input).filter(|m| !m.is_legacy()),
    };
    let config_hash = hash_hex(&serde_json::to_string(&settings)?);
    let run = Run {
        out: args.out.clone(),
        model_path: std::path::absolute(&args.model).unwrap_or_else(|_| args.model.clone()),
        model_info,
        mc,
        seed: args.seed,
        prepare,
        scoring,
        calls,
        config_hash,
        force: args.force,
        polarity: args.polarity.into(),
        mc_input,
    };
    std::fs::create_dir_all(&run.out).with_context(|| format!("{}: cannot create the output folder", run.out.display()))?;

    // Phase 1: every subject, in parallel.
    let bar = progress::bar(jobs.len() as u64, "detect", context.quiet);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.jobs.unwrap_or(0))
        .build()
        .context("cannot start worker threads")?;
    let results: Vec<(usize, String, anyhow::Result<Detected>)> = pool.install(|| {
        jobs.into_par_iter()
            .map(|(position, job)| {
                let subject = job.subject().to_string();
                bar.set_message(subject.clone());
                let result = detect_subject(job, &model, &run);
                if let Err(error) = &result {
                    bar.suspend(|| eprintln!("u2ad: {}: failed: {}", printable(&subject), printable(&format!("{error:#}").replace('\n', " "))));
                }
                bar.inc(1);
                (position, subject, result)
            })
            .collect()
    });
    bar.finish_and_clear();
    let mut detected = Vec::new();
    let mut positions = Vec::new();
    let mut failed: Vec<(usize, String, String)> = Vec::new();
    for (position, subject, result) in results {
        match result {
            Ok(d) => {
                detected.push(d);
                positions.push(position);
            }
            Err(e) => failed.push((position, subject, format!("{e:#}").replace('\n', " "))),
        }
    }
    let map_run = map_run(&run, &args);
    if let Some(shard) = args.shard {
        return finish::finish_shard(shard, map_run, &detected, &positions, failed, &run.out, context);
    }
    let failed: Vec<(String, String)> = failed.into_iter().map(|(_, s, e)| (s, e)).collect();
    finish::finish_cohort(&run, &map_run, args.scoring.calls.figure_mode(), &detected, &failed, started, context)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_gives_what_clap_gives() {
        let argv = ["detect", "cohort.u2ds", "--model", "m.safetensors", "--out", "detect"];
        let crate::Command::Detect(parsed) = super::super::parse_command(&argv) else { unreachable!() };
        super::super::assert_same(&DetectArgs::new("cohort.u2ds".into(), "m.safetensors".into(), "detect".into()), &parsed);
    }
}
