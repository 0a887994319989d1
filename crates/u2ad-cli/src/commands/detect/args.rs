//! The flags of `u2ad detect` (one definition; `DetectArgs::new` gives their defaults without
//! parsing).

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde::Serialize;
use u2ad_core::scoring::Polarity;

use super::super::calibrate::{parse_shard, Shard};
use super::super::call_args::MapCallArgs;
use super::super::input_args::ScanInputs;
use super::super::run_args::{DeviceArg, JobsArg};

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

/// A smoothing sigma in mm: finite and not negative.
fn parse_smoothing_mm(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(mm) if mm.is_finite() && mm >= 0.0 => Ok(mm),
        _ => Err(format!("{text:?} is not a sigma in mm (a number, 0 or more)")),
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
    /// The anomaly map compares the image with its mean reconstruction smoothed in-plane by a
    /// Gaussian of this sigma, in mm, which takes the reconstruction's pixel-scale noise and
    /// patch seams out of the comparison; 0 compares with the raw mean, as the paper does.
    #[arg(long, value_parser = parse_smoothing_mm, default_value_t = DetectArgs::RECONSTRUCTION_SMOOTHING_MM, help_heading = "Scores and calls")]
    pub reconstruction_smoothing_mm: f64,
    #[command(flatten)]
    pub device: DeviceArg,
    // --seed is detect's own (run_args.rs says why).
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

    #[command(flatten)]
    pub jobs: JobsArg,
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
    /// About one and a half pixels of the 0.78 mm sample grid, a fifth of the model's 8-pixel
    /// patch: below the size of a lesion of 15 voxels (BENCHMARKS.md).
    pub const RECONSTRUCTION_SMOOTHING_MM: f64 = 1.2;
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
            reconstruction_smoothing_mm: Self::RECONSTRUCTION_SMOOTHING_MM,
            device: DeviceArg::default(),
            seed: Self::SEED,
            scoring: MapCallArgs::default(),
            shard: None,
            jobs: JobsArg::default(),
            force: false,
        }
    }
}
