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

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _};
use burn::tensor::backend::Backend;
use clap::{Args, ValueEnum};
use rayon::prelude::*;
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use u2ad_core::cohort::SubjectFiles;
use u2ad_core::dataset::{PreparedDataset, PreparedSample, SubjectMeta, SAMPLE_SIZE};
use u2ad_core::detect_outputs::{
    map_grid, native_maps, score_maps, sidecar_of, slice_seed, MapScoring, SampleResult, SubjectMaps, SubjectOutputs, QC_REPORT_HTML,
};
use u2ad_core::prepare::{prepare_subject, PrepareOptions};
use u2ad_core::scoring::{
    erode_3x3, CallConfig, PatientCall, PlaneShape, Polarity,
};
use u2ad_core::volume::VoxelType;
use u2ad_model::{mc_inference, McConfig, McSchedule, McSlice, MaskedAutoencoder, ModelInfo};

use super::call_args::MapCallArgs;
use super::calibrate::{parse_shard, write_calls, write_shard_record, MapRun, Shard, ShardRecord, ShardSubject};
use super::prepare::{find_inputs, read_slices, Inputs, ScanInputs};
use super::cohort_outputs::{merged, SubjectResult as Detected};
use super::Context;
use crate::device::{parse_device, DeviceChoice};
use crate::progress;
use crate::sidecar::stage_sidecar;
use u2ad_core::names::printable;
use u2ad_core::staging::StagedWrites;

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
    #[arg(short = 'k', long, default_value_t = 10)]
    pub samples_per_patch: usize,
    /// Fraction of the ROI patches masked in each pass.
    #[arg(long, default_value_t = 0.75)]
    pub mask_ratio: f64,
    /// Mask schedule of the Monte-Carlo passes.
    #[arg(long, value_enum, default_value = "balanced")]
    pub mc_schedule: ScheduleArg,
    /// Most passes per slice for --mc-schedule reference.
    #[arg(long, default_value_t = 400)]
    pub max_passes: usize,
    /// Region masked and reconstructed by the Monte-Carlo passes.
    #[arg(long, value_enum, default_value = "roi")]
    pub mc_region: McRegionArg,
    /// Reconstruct each slice as prepared, without the per-slice min-max normalisation that
    /// training and the reference apply to every slice.
    #[arg(long)]
    pub no_min_max: bool,
    /// Masked copies reconstructed per forward batch of the Monte-Carlo passes (memory grows
    /// with it; not training's --batch-size).
    #[arg(long = "mc-batch", alias = "batch", default_value_t = 8)]
    pub mc_batch: usize,
    /// Which deviations make the anomaly map: `hyperintense` (image brighter than its
    /// reconstruction: T2 hyperintensities) or `both` (the paper's |image - reconstruction|).
    #[arg(long, value_enum, default_value = "hyperintense")]
    pub polarity: PolarityArg,
    /// Where the model runs: auto (CUDA when this build has it and a driver, else the CPU),
    /// cpu, cuda, cuda:N.
    #[arg(long, value_parser = parse_device, default_value = "auto")]
    pub device: DeviceChoice,
    /// Seed of the mask schedules (each slice's seed derives from it, the subject and the slice).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    #[command(flatten)]
    pub scoring: MapCallArgs,

    /// Process only this share of the subjects, `I/N` (I from 0 to N-1; the subjects in sorted
    /// order, every N-th from the I-th): maps and scores, no calls. When every shard is done,
    /// `u2ad calibrate OUT` calls the whole cohort (one machine per shard, e.g. a Slurm array).
    #[arg(long, value_parser = parse_shard, help_heading = "Scale-out")]
    pub shard: Option<Shard>,

    /// Subjects processed at once (threads; default: all cores).
    #[arg(short, long)]
    pub jobs: Option<usize>,
    /// Recompute subjects whose outputs exist with the same configuration and model.
    #[arg(long)]
    pub force: bool,
}

/// What one subject's Monte-Carlo run depends on (hashed into `ConfigHash`).
#[derive(Debug, Serialize)]
struct MapSettings<'a> {
    monte_carlo: &'a McConfig,
    seed: u64,
    preprocess: &'a u2ad_core::sample::PreprocessConfig,
    level_convention: Option<&'static str>,
    #[serde(skip_serializing_if = "is_zero")]
    cord_offset_voxels: i32,
    candidates: &'a u2ad_core::scoring::CandidateFilter,
    polarity: Polarity,
    /// Absent for the dilated ROI without min-max (so the maps of runs before the per-slice
    /// min-max stay reusable with `--no-min-max`).
    #[serde(skip_serializing_if = "Option::is_none")]
    mc_input: Option<McInput>,
}

fn is_zero(value: &i32) -> bool {
    *value == 0
}

/// The image and region Monte-Carlo inference sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
struct McInput {
    region: McRegionArg,
    min_max: bool,
}

impl McInput {
    fn is_legacy(self) -> bool {
        self == McInput { region: McRegionArg::Roi, min_max: false }
    }

    /// The image MC inference reconstructs (min-max normalised: (x - lo) / range) with lo and
    /// range, and the region it masks.
    fn of(self, sample: &PreparedSample) -> (Vec<f32>, f32, f32, Vec<u8>) {
        let (lo, hi) = sample.image.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
        let (lo, range) = if self.min_max && hi > lo { (lo, hi - lo) } else { (0.0, 1.0) };
        let image = sample.image.iter().map(|&v| (v - lo) / range).collect();
        let region = match self.region {
            McRegionArg::Roi => sample.roi.clone(),
            McRegionArg::CordCsf => sample.cord.iter().zip(&sample.csf).map(|(&c, &f)| u8::from(c != 0 || f != 0)).collect(),
            McRegionArg::ErodedCord => erode_3x3(&sample.cord, PlaneShape::SAMPLE),
        };
        (image, lo, range, region)
    }
}

/// Everything fixed for the run.
struct Run {
    out: PathBuf,
    model_path: PathBuf,
    model_info: ModelInfo,
    mc: McConfig,
    seed: u64,
    prepare: PrepareOptions,
    scoring: MapScoring,
    calls: CallConfig,
    config_hash: String,
    force: bool,
    polarity: Polarity,
    mc_input: McInput,
}

impl Run {
    fn provenance(&self, sources: &[PathBuf]) -> Value {
        let sources: Vec<String> = sources.iter().map(|p| p.display().to_string()).collect();
        merged(json!({ "Sources": sources }), &self.model_provenance())
    }

    /// The model and settings every output records.
    fn model_provenance(&self) -> Value {
        json!({
            "ModelFile": self.model_path.display().to_string(),
            "ModelHash": self.model_info.hash,
            "ConfigHash": self.config_hash,
            "Seed": self.seed,
            "MonteCarlo": self.mc,
            "MonteCarloRegion": self.mc_input.region,
            "PerSliceMinMax": self.mc_input.min_max,
        })
    }
}

/// A unit of work: one subject.
enum Job {
    Files(SubjectFiles),
    Prepared { meta: SubjectMeta, samples: Vec<PreparedSample> },
}

impl Job {
    fn subject(&self) -> &str {
        match self {
            Job::Files(f) => &f.subject,
            Job::Prepared { meta, .. } => &meta.subject,
        }
    }
    fn image(&self) -> &Path {
        match self {
            Job::Files(f) => &f.image,
            Job::Prepared { meta, .. } => &meta.image_path,
        }
    }
    fn sources(&self) -> Vec<PathBuf> {
        let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        match self {
            Job::Files(f) => std::iter::once(&f.image)
                .chain(f.cord_mask.iter())
                .chain(f.csf_mask.iter())
                .chain(f.levels.iter())
                .map(|p| absolute(p))
                .collect(),
            Job::Prepared { meta, .. } => std::iter::once(&meta.image_path)
                .chain(meta.cord_mask_path.iter())
                .chain(meta.csf_mask_path.iter())
                .chain(meta.levels_path.iter())
                .cloned()
                .collect(),
        }
    }

    /// The content hash of what this subject's maps are made from.
    fn input_hash(&self) -> anyhow::Result<String> {
        Ok(match self {
            Job::Files(f) => f.content_hash()?,
            Job::Prepared { samples, .. } => u2ad_core::dataset::samples_hash(samples),
        })
    }
}

fn hash_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn jobs_of(args: &DetectArgs) -> anyhow::Result<Vec<Job>> {
    if let Some(input) = &args.input {
        if input.is_file() && input.extension().is_some_and(|e| e == "u2ds") {
            let jobs: Vec<Job> = PreparedDataset::read(input)?
                .subjects_with_samples(&args.scans.subjects.include)
                .into_iter()
                .map(|(meta, samples)| Job::Prepared { meta, samples })
                .collect();
            if jobs.is_empty() {
                bail!("{}: no subject to detect (check --include)", input.display());
            }
            return Ok(jobs);
        }
    }
    match find_inputs(args.input.as_ref(), &args.scans)? {
        Inputs::Scans(subjects) => Ok(subjects.into_iter().map(Job::Files).collect()),
        // Maps go on the slice's own 256 x 256 grid (detect_outputs::map_grid).
        Inputs::Slices(paths) => read_slices(&paths)
            .into_iter()
            .map(|(_, prepared)| Ok(prepared.map(|p| Job::Prepared { meta: p.meta, samples: p.samples })?))
            .collect(),
    }
}

fn settings_of(args: &DetectArgs) -> anyhow::Result<(McConfig, MapScoring, CallConfig)> {
    if args.samples_per_patch == 0 {
        bail!("-k/--samples-per-patch must be at least 1");
    }
    if !(args.mask_ratio > 0.0 && args.mask_ratio < 1.0) {
        bail!("--mask-ratio {} is not between 0 and 1", args.mask_ratio);
    }
    let mc = McConfig {
        samples_per_patch: args.samples_per_patch,
        mask_ratio: args.mask_ratio,
        schedule: match args.mc_schedule {
            ScheduleArg::Balanced => McSchedule::Balanced,
            ScheduleArg::Reference => McSchedule::RandomUntilCovered { max_passes: args.max_passes },
        },
        passes_per_batch: args.mc_batch.max(1),
    };
    // Rejects a bad threshold or FPR before hours of inference.
    let (scoring, calls) = args.scoring.settings()?;
    Ok((mc, scoring, calls))
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
        return finish_shard(shard, map_run, &detected, &positions, failed, &run.out, context);
    }
    let failed: Vec<(String, String)> = failed.into_iter().map(|(_, s, e)| (s, e)).collect();
    if let (true, Some((subject, error))) = (detected.is_empty(), failed.first()) {
        bail!("{} of {} subjects failed, nothing written (first: {}: {error})", failed.len(), failed.len(), printable(subject));
    }
    // Phase 2: calls, tables, figures, report.
    let figure_mode = args.scoring.calls.figure_mode();
    let (warnings, calls) = write_calls(&run.out, &map_run, &run.scoring, &run.calls, &detected, &failed, figure_mode, context)?;
    let reused = detected.iter().filter(|d| d.reused).count();
    let count = |call: PatientCall| calls.iter().filter(|c| **c == call).count();
    // Calibration warnings are printed even with --quiet: calls must never be silently uncalibrated.
    for warning in &warnings {
        eprintln!("u2ad: warning: {warning}");
    }
    if !context.quiet {
        let computed: Vec<&Detected> = detected.iter().filter(|d| !d.reused).collect();
        let per_subject = if computed.is_empty() {
            String::new()
        } else {
            format!(", {:.1} s per computed subject", computed.iter().map(|d| d.seconds).sum::<f64>() / computed.len() as f64)
        };
        eprintln!(
            "u2ad detect: {} subjects done ({reused} reused), {} failed; patients {} positive, {} negative, {} not assessed; \
             {:.1} s{per_subject}; report {}",
            detected.len(),
            failed.len(),
            count(PatientCall::Positive),
            count(PatientCall::Negative),
            count(PatientCall::NotAssessed),
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

/// Whether a previous run left this subject's maps with the same settings, model and input
/// content (a scan that changed in place is recomputed).
fn reusable(outputs: &SubjectOutputs, run: &Run, input_hash: &str) -> bool {
    if run.force || !outputs.nifti_maps().iter().all(|p| p.is_file()) || !outputs.sample_maps().is_file() {
        return false;
    }
    let Ok(text) = std::fs::read_to_string(sidecar_of(&outputs.sample_maps())) else { return false };
    let Ok(sidecar) = serde_json::from_str::<Value>(&text) else { return false };
    sidecar["ConfigHash"] == run.config_hash.as_str()
        && sidecar["ModelHash"] == run.model_info.hash.as_str()
        && sidecar["InputHash"] == input_hash
}

fn detect_subject<B: Backend>(job: Job, model: &MaskedAutoencoder<B>, run: &Run) -> anyhow::Result<Detected> {
    let started = Instant::now();
    let subject = job.subject().to_string();
    let image = job.image().to_path_buf();
    let outputs = SubjectOutputs::new(&run.out, &subject, &image)?;
    let sources = job.sources();
    let input_hash = job.input_hash()?;
    if reusable(&outputs, run, &input_hash) {
        match SubjectMaps::read(&outputs.sample_maps()) {
            Ok(maps) => return Ok(summarise(maps, outputs, image, run, started, true)),
            Err(error) => tracing::warn!("{subject}: recomputing: {error}"),
        }
    }
    let (meta, samples) = match job {
        Job::Files(files) => {
            let prepared = prepare_subject(&files, &run.prepare)?;
            (prepared.meta, prepared.samples)
        }
        Job::Prepared { meta, samples } => (meta, samples),
    };
    if samples.is_empty() {
        bail!("{}: no sagittal slice holds cord", image.display());
    }
    let reference = map_grid(&meta)?;
    let inputs: Vec<(Vec<f32>, f32, f32, Vec<u8>)> = samples.iter().map(|s| run.mc_input.of(s)).collect();
    let slices: Vec<McSlice<'_>> = samples
        .iter()
        .zip(&inputs)
        .map(|(s, (image, _, _, region))| McSlice { image, roi: region, seed: slice_seed(run.seed, &subject, s.meta.native_slice) })
        .collect();
    let mc_maps = mc_inference(model, &slices, &run.mc);
    if let Some((s, _)) = samples.iter().zip(&mc_maps).find(|(_, m)| m.mean.iter().any(|v| !v.is_finite())) {
        bail!(
            "{}: the model's reconstruction of native slice {} is NaN or infinite: no maps written (is the model file damaged?)",
            image.display(),
            s.meta.native_slice
        );
    }
    let results: Vec<SampleResult> = samples
        .iter()
        .zip(mc_maps)
        .zip(&inputs)
        .map(|((s, m), &(_, lo, range, _))| {
            // Back from the normalised slice to the prepared [0, 1] scale of the volume.
            let mean: Vec<f32> = m.mean.iter().map(|&v| lo + v * range).collect();
            let epistemic: Vec<f32> = m.epistemic.iter().map(|&v| v * range * range).collect();
            let aleatoric: Vec<f32> = m.aleatoric.iter().map(|&v| v * range).collect();
            let anomaly = run.polarity.anomaly(&s.image, &mean, &aleatoric);
            SampleResult::from_mc(s.meta, &s.image, &s.roi, &s.cord, &s.row_segment, mean, &epistemic, &anomaly, m.passes)
        })
        .collect();
    let maps = SubjectMaps { subject: meta, samples: results };
    let scored = score_maps(&maps, &run.scoring);
    let native = native_maps(&maps, &scored.candidates, &reference);
    let mut provenance = run.provenance(&sources);
    provenance["InputHash"] = json!(input_hash);
    let descriptions = [
        (match run.polarity {
            Polarity::Hyperintense => "Anomaly map: the aleatoric uncertainty |image - mean reconstruction| where the image is brighter than its reconstruction (hyperintense side only) and 0 where it is not, on the [0, 1] intensity scale, inside the cord eroded by 3 x 3 pixels; 0 elsewhere and on slices without cord",
            Polarity::Both => "Anomaly map: the aleatoric uncertainty |image - mean reconstruction| on the [0, 1] intensity scale, inside the cord eroded by 3 x 3 pixels; 0 elsewhere and on slices without cord",
        }, "[0, 1] intensity scale"),
        ("Epistemic uncertainty: variance of the K Monte-Carlo reconstructions, on the [0, 1] intensity scale squared, inside the cord eroded by 3 x 3 pixels; 0 elsewhere", "[0, 1] intensity scale, squared"),
        ("Mean of the K Monte-Carlo reconstructions inside the ROI (cord and CSF), the clipped input elsewhere, in the input's intensity units; 0 on slices without cord", "input intensity units"),
        ("Anomaly candidates: the AU above its 90th percentile in the eroded cord, 8-connected components of at least 2 pixels, the 3 best by mean x sum, per sagittal slice", "0/1"),
    ];
    // Every file lands when all are written (a failure leaves none of them).
    let staged = StagedWrites::new();
    for ((path, (map, is_mask)), (description, units)) in outputs.nifti_maps().iter().zip(native.named()).zip(descriptions) {
        let voxel_type = if is_mask { VoxelType::UInt8 } else { VoxelType::Float32 };
        staged.write_with(path, |tmp| reference.write_like(map.view(), voxel_type, tmp))?;
        let mut extra = provenance.clone();
        extra["Description"] = json!(description);
        extra["Units"] = json!(units);
        extra["SpatialReference"] = json!("orig");
        stage_sidecar(&staged, path, extra)?;
    }
    // The sample maps last: their sidecar marks the subject complete for a rerun.
    staged.write_with(&outputs.sample_maps(), |tmp| maps.write(tmp))?;
    let mut extra = provenance;
    extra["Description"] =
        json!("256 x 256 sagittal sample maps (image, mean reconstruction, EU, AU, ROI, cord, level rows) for rescoring");
    extra["Passes"] = json!(maps.samples.iter().map(|s| s.passes).collect::<Vec<_>>());
    stage_sidecar(&staged, &outputs.sample_maps(), extra)?;
    staged.commit()?;
    Ok(Detected::new(maps, scored, outputs, image, started, false))
}

fn summarise(maps: SubjectMaps, outputs: SubjectOutputs, image: PathBuf, run: &Run, started: Instant, reused: bool) -> Detected {
    let scored = score_maps(&maps, &run.scoring);
    Detected::new(maps, scored, outputs, image, started, reused)
}


// ---------------------------------------------------------------------------------------------
// Phase 2

/// What made the maps, for the report, the sidecars and `u2ad calibrate`.
fn map_run(run: &Run, args: &DetectArgs) -> MapRun {
    let schedule = match run.mc.schedule {
        McSchedule::Balanced => "balanced".to_string(),
        McSchedule::RandomUntilCovered { max_passes } => format!("reference (random until covered, at most {max_passes} passes)"),
    };
    MapRun {
        model_provenance: run.model_provenance(),
        model_row: format!("{} (hash {})", run.model_path.display(), run.model_info.hash),
        monte_carlo_row: format!("K = {}, mask ratio {}, {schedule}, seed {}", run.mc.samples_per_patch, run.mc.mask_ratio, run.seed),
        config_hash: run.config_hash.clone(),
        source_dataset: args
            .input
            .as_ref()
            .or(args.scans.image.as_ref())
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()).display().to_string()),
    }
}

/// A shard's end: its record for `u2ad calibrate`, no calls.
fn finish_shard(
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
