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
use burn::backend::Flex;
use clap::{Args, ValueEnum};
use rayon::prelude::*;
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use u2ad_core::cohort::SubjectFiles;
use u2ad_core::dataset::{PreparedDataset, PreparedSample, SubjectMeta, SAMPLE_SIZE};
use u2ad_core::detect_outputs::{
    native_maps, score_maps, sidecar_of, slice_seed, vertebra_lines, MapScoring, SampleResult, ScoredSubject, SubjectMaps,
    SubjectOutputs, COHORT_LEVELS_CSV, COHORT_PATIENTS_CSV, DATASET_DESCRIPTION, QC_REPORT_HTML,
};
use u2ad_core::levels::{DiscLevel, LevelConvention};
use u2ad_core::prepare::{prepare_subject, PrepareOptions};
use u2ad_core::scoring::{
    call_cohort, level_rows, CallConfig, CandidateMap, IndeterminateReason, LevelPooling, PatientCall, RowStatistic,
    SegmentCall, SliceSelection, SubjectDecision, SubjectScores, Threshold, UncertaintyGate,
};
use u2ad_core::volume::{write_atomically, Volume, VoxelType};
use u2ad_model::{load_model, mc_inference, McConfig, McSchedule, McSlice, MaskedAutoencoder, ModelInfo};
use u2ad_report::figures::{curve_figure, maps_figure, CurveData, LevelSpan, OverlayLimits, RowLine, SliceMaps};
use u2ad_report::html::{render_report, Report, ReportFigure, ReportLevel, ReportSubject};

use super::prepare::{find_inputs, parse_convention, Inputs, PrepareArgs};
use super::Context;
use crate::progress;
use crate::sidecar::{command_line, write_sidecar};

type Backend = Flex;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScheduleArg {
    /// Every ROI patch masked exactly K times in about K / 0.75 passes.
    Balanced,
    /// The reference code: random masks until every ROI patch has K samples (at most --max-passes).
    Reference,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PoolingArg {
    /// Each level's threshold from the same level of the other subjects.
    PerLevel,
    /// Every level's threshold from every level of the other subjects.
    Pooled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SlicesArg {
    /// Every sagittal sample whose eroded cord has at least 100 pixels (curve = max over them).
    All,
    /// Only the sample with the largest eroded cord (mid-sagittal).
    Mid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatisticArg {
    Mean,
    Max,
    Sum,
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

    /// One T2w image (instead of a cohort).
    #[arg(long, conflicts_with = "input", requires = "cord")]
    pub image: Option<PathBuf>,
    /// Its binary spinal cord mask.
    #[arg(long)]
    pub cord: Option<PathBuf>,
    /// Its CSF mask; derived around the cord if absent.
    #[arg(long)]
    pub csf: Option<PathBuf>,
    /// Its level labels (SCT or TotalSpineSeg).
    #[arg(long)]
    pub levels: Option<PathBuf>,
    /// Subject name for --image (default: the image name without _T2w.nii.gz).
    #[arg(long)]
    pub subject: Option<String>,
    /// Labels folder of a BIDS dataset (default: <input>/derivatives/labels).
    #[arg(long)]
    pub labels_dir: Option<PathBuf>,
    /// Suffix of the cord masks (default: _label-SC_seg); repeat to try several.
    #[arg(long)]
    pub cord_suffix: Vec<String>,
    /// Suffix of the CSF masks.
    #[arg(long)]
    pub csf_suffix: Vec<String>,
    /// Suffix of the level files.
    #[arg(long)]
    pub levels_suffix: Vec<String>,
    /// Level convention, when it cannot be told from the file.
    #[arg(long, value_parser = parse_convention)]
    pub level_convention: Option<LevelConvention>,
    /// Only these subjects (sub-XX); repeat for several.
    #[arg(long)]
    pub include: Vec<String>,

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
    /// Masked copies reconstructed per forward batch.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Seed of the mask schedules (each slice's seed derives from it, the subject and the slice).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Which sagittal slices make the anomaly curve.
    #[arg(long, value_enum, default_value = "all")]
    pub slices: SlicesArg,
    /// Row statistic of the anomaly curve.
    #[arg(long, value_enum, default_value = "mean")]
    pub curve_statistic: StatisticArg,

    /// A fixed score threshold (learnt on a labelled set) instead of the cohort calibration.
    #[arg(long)]
    pub threshold: Option<f64>,
    /// Target false-positive rate of the cohort-calibrated thresholds.
    #[arg(long, default_value_t = 0.05)]
    pub target_fpr: f64,
    /// Reference scores of a level's cohort threshold.
    #[arg(long, value_enum, default_value = "per-level")]
    pub pooling: PoolingArg,
    /// Fewest reference scores to calibrate a threshold (else the level is indeterminate).
    #[arg(long, default_value_t = 10)]
    pub min_reference: usize,
    /// A level whose mean EU is above median + Z x 1.4826 x MAD of the others' is indeterminate.
    #[arg(long, default_value_t = 3.0)]
    pub eu_gate: f64,
    /// No indeterminate call for high EU.
    #[arg(long)]
    pub no_eu_gate: bool,

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
    candidates: &'a u2ad_core::scoring::CandidateFilter,
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
}

impl Run {
    fn provenance(&self, sources: &[PathBuf]) -> Value {
        json!({
            "Sources": sources.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "ModelFile": self.model_path.display().to_string(),
            "ModelHash": self.model_info.hash,
            "ConfigHash": self.config_hash,
            "Seed": self.seed,
            "MonteCarlo": self.mc,
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
}

/// What phase 1 keeps of a subject.
struct Detected {
    subject: String,
    image: PathBuf,
    outputs: SubjectOutputs,
    meta: SubjectMeta,
    scored: ScoredSubject,
    /// The mid-sagittal sample and its candidates (figures).
    mid: Option<(SampleResult, CandidateMap)>,
    passes: usize,
    samples: usize,
    seconds: f64,
    reused: bool,
}

fn hash_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn jobs_of(args: &DetectArgs) -> anyhow::Result<Vec<Job>> {
    if let Some(input) = &args.input {
        if input.is_file() && input.extension().is_some_and(|e| e == "u2ds") {
            let mut dataset = PreparedDataset::read(input)?;
            let mut jobs = Vec::new();
            let subjects = std::mem::take(&mut dataset.meta.subjects);
            for (index, meta) in subjects.into_iter().enumerate() {
                if !args.include.is_empty() && !args.include.contains(&meta.subject) {
                    continue;
                }
                let samples = dataset
                    .samples_of(index)
                    .into_iter()
                    .map(|i| {
                        let view = dataset.sample(i);
                        PreparedSample {
                            meta: *view.meta,
                            image: view.image.to_vec(),
                            roi: view.roi.to_vec(),
                            cord: view.cord.to_vec(),
                            csf: view.csf.to_vec(),
                            row_segment: view.row_segment.to_vec(),
                        }
                    })
                    .collect();
                jobs.push(Job::Prepared { meta, samples });
            }
            if jobs.is_empty() {
                bail!("{}: no subject to detect (check --include)", input.display());
            }
            return Ok(jobs);
        }
    }
    let prepare_args = PrepareArgs {
        input: args.input.clone(),
        output: args.out.clone(),
        image: args.image.clone(),
        cord: args.cord.clone(),
        csf: args.csf.clone(),
        levels: args.levels.clone(),
        subject: args.subject.clone(),
        labels_dir: args.labels_dir.clone(),
        cord_suffix: args.cord_suffix.clone(),
        csf_suffix: args.csf_suffix.clone(),
        levels_suffix: args.levels_suffix.clone(),
        level_convention: args.level_convention,
        include: args.include.clone(),
        jobs: args.jobs,
        skip_failed: false,
    };
    match find_inputs(&prepare_args)? {
        Inputs::Scans(subjects) => Ok(subjects.into_iter().map(Job::Files).collect()),
        Inputs::Slices(paths) => bail!(
            "{}: .npy slices have no image grid to write maps on; u2ad detect reads NIfTI scans (a BIDS folder or --image) \
             or a .u2ds dataset prepared from them",
            paths.first().map(|p| p.display().to_string()).unwrap_or_default()
        ),
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
        passes_per_batch: args.batch.max(1),
    };
    let mut scoring = MapScoring::default();
    scoring.scoring.curve.slices = match args.slices {
        SlicesArg::All => SliceSelection::default(),
        SlicesArg::Mid => SliceSelection::LargestCord,
    };
    scoring.scoring.curve.row_statistic = match args.curve_statistic {
        StatisticArg::Mean => RowStatistic::Mean,
        StatisticArg::Max => RowStatistic::Max,
        StatisticArg::Sum => RowStatistic::Sum,
    };
    let calls = CallConfig {
        threshold: match args.threshold {
            Some(t) => Threshold::Fixed(t),
            None => Threshold::Cohort { target_false_positive_rate: args.target_fpr },
        },
        pooling: match args.pooling {
            PoolingArg::PerLevel => LevelPooling::PerLevel,
            PoolingArg::Pooled => LevelPooling::Pooled,
        },
        min_reference_values: args.min_reference.max(1),
        uncertainty_gate: if args.no_eu_gate { UncertaintyGate::Off } else { UncertaintyGate::RobustZ { z: args.eu_gate } },
    };
    // Reject a bad threshold or FPR before hours of inference.
    call_cohort(&[], &calls).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((mc, scoring, calls))
}

pub fn run(args: DetectArgs, context: &Context) -> anyhow::Result<()> {
    let started = Instant::now();
    let (mc, scoring, calls) = settings_of(&args)?;
    let device = Default::default();
    let (model, model_info) = load_model::<Backend>(&args.model, &device)?;
    let grid = model_info.config.grid();
    if grid.image_size != SAMPLE_SIZE {
        bail!(
            "{}: the model takes {} x {} images; u2ad samples are {SAMPLE_SIZE} x {SAMPLE_SIZE}",
            args.model.display(),
            grid.image_size,
            grid.image_size
        );
    }
    let jobs = jobs_of(&args)?;
    let prepare = PrepareOptions { level_convention: args.level_convention, ..Default::default() };
    let settings = MapSettings {
        monte_carlo: &mc,
        seed: args.seed,
        preprocess: &prepare.preprocess,
        level_convention: prepare.level_convention.map(|c| c.name()),
        candidates: &scoring.candidates,
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
    };
    std::fs::create_dir_all(&run.out).with_context(|| format!("{}: cannot create the output folder", run.out.display()))?;

    // Phase 1: every subject, in parallel.
    let bar = progress::bar(jobs.len() as u64, "detect", context.quiet);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.jobs.unwrap_or(0))
        .build()
        .context("cannot start worker threads")?;
    let results: Vec<(String, anyhow::Result<Detected>)> = pool.install(|| {
        jobs.into_par_iter()
            .map(|job| {
                let subject = job.subject().to_string();
                bar.set_message(subject.clone());
                let result = detect_subject(job, &model, &run);
                if let Err(error) = &result {
                    bar.suspend(|| eprintln!("u2ad: {subject}: failed: {}", format!("{error:#}").replace('\n', " ")));
                }
                bar.inc(1);
                (subject, result)
            })
            .collect()
    });
    bar.finish_and_clear();
    let mut detected = Vec::new();
    let mut failed: Vec<(String, String)> = Vec::new();
    for (subject, result) in results {
        match result {
            Ok(d) => detected.push(d),
            Err(e) => failed.push((subject, format!("{e:#}").replace('\n', " "))),
        }
    }

    // Phase 2: calls, tables, figures, report.
    let (warnings, calls) = finish_cohort(&detected, &failed, &run, &args, context)?;
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

/// Whether a previous run left this subject's maps with the same settings, model and inputs.
fn reusable(outputs: &SubjectOutputs, run: &Run, sources: &[PathBuf]) -> bool {
    if run.force || !outputs.nifti_maps().iter().all(|p| p.is_file()) || !outputs.sample_maps().is_file() {
        return false;
    }
    let Ok(text) = std::fs::read_to_string(sidecar_of(&outputs.sample_maps())) else { return false };
    let Ok(sidecar) = serde_json::from_str::<Value>(&text) else { return false };
    let sources: Vec<String> = sources.iter().map(|p| p.display().to_string()).collect();
    sidecar["ConfigHash"] == run.config_hash.as_str()
        && sidecar["ModelHash"] == run.model_info.hash.as_str()
        && sidecar["Sources"] == json!(sources)
}

fn detect_subject(job: Job, model: &MaskedAutoencoder<Backend>, run: &Run) -> anyhow::Result<Detected> {
    let started = Instant::now();
    let subject = job.subject().to_string();
    let image = job.image().to_path_buf();
    let outputs = SubjectOutputs::new(&run.out, &subject, &image);
    let sources = job.sources();
    if reusable(&outputs, run, &sources) {
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
    let reference = Volume::read(&meta.image_path)?;
    let slices: Vec<McSlice<'_>> = samples
        .iter()
        .map(|s| McSlice { image: &s.image, roi: &s.roi, seed: slice_seed(run.seed, &subject, s.meta.native_slice) })
        .collect();
    let mc_maps = mc_inference(model, &slices, &run.mc);
    let results: Vec<SampleResult> = samples
        .iter()
        .zip(mc_maps)
        .map(|(s, m)| {
            SampleResult::from_mc(s.meta, &s.image, &s.roi, &s.cord, &s.row_segment, m.mean, &m.epistemic, &m.aleatoric, m.passes)
        })
        .collect();
    let maps = SubjectMaps { subject: meta, samples: results };
    let scored = score_maps(&maps, &run.scoring);
    let native = native_maps(&maps, &scored.candidates, &reference);
    let provenance = run.provenance(&sources);
    let descriptions = [
        ("Aleatoric uncertainty (anomaly map): |image - mean reconstruction| on the [0, 1] intensity scale, inside the cord eroded by 3 x 3 pixels; 0 elsewhere and on slices without cord", "[0, 1] intensity scale"),
        ("Epistemic uncertainty: variance of the K Monte-Carlo reconstructions, on the [0, 1] intensity scale squared, inside the cord eroded by 3 x 3 pixels; 0 elsewhere", "[0, 1] intensity scale, squared"),
        ("Mean of the K Monte-Carlo reconstructions inside the ROI (cord and CSF), the clipped input elsewhere, in the input's intensity units; 0 on slices without cord", "input intensity units"),
        ("Anomaly candidates: the AU above its 90th percentile in the eroded cord, 8-connected components of at least 2 pixels, the 3 best by mean x sum, per sagittal slice", "0/1"),
    ];
    for ((path, (map, is_mask)), (description, units)) in outputs.nifti_maps().iter().zip(native.named()).zip(descriptions) {
        let voxel_type = if is_mask { VoxelType::UInt8 } else { VoxelType::Float32 };
        reference.write_like(map.view(), voxel_type, path)?;
        let mut extra = provenance.clone();
        extra["Description"] = json!(description);
        extra["Units"] = json!(units);
        extra["SpatialReference"] = json!("orig");
        write_sidecar(path, extra)?;
    }
    // The sample maps last: their sidecar marks the subject complete for a rerun.
    maps.write(&outputs.sample_maps())?;
    let mut extra = provenance;
    extra["Description"] =
        json!("256 x 256 sagittal sample maps (image, mean reconstruction, EU, AU, ROI, cord, level rows) for rescoring");
    extra["Passes"] = json!(maps.samples.iter().map(|s| s.passes).collect::<Vec<_>>());
    write_sidecar(&outputs.sample_maps(), extra)?;
    Ok(summarise_scored(maps, scored, outputs, image, started, false))
}

fn summarise(maps: SubjectMaps, outputs: SubjectOutputs, image: PathBuf, run: &Run, started: Instant, reused: bool) -> Detected {
    let scored = score_maps(&maps, &run.scoring);
    summarise_scored(maps, scored, outputs, image, started, reused)
}

fn summarise_scored(
    mut maps: SubjectMaps,
    mut scored: ScoredSubject,
    outputs: SubjectOutputs,
    image: PathBuf,
    started: Instant,
    reused: bool,
) -> Detected {
    let passes = maps.samples.iter().map(|s| s.passes).sum();
    let samples = maps.samples.len();
    let mid = maps.mid_sagittal().map(|i| (maps.samples.swap_remove(i), scored.candidates.swap_remove(i)));
    scored.candidates.clear();
    Detected {
        subject: maps.subject.subject.clone(),
        image,
        outputs,
        meta: maps.subject,
        scored,
        mid,
        passes,
        samples,
        seconds: started.elapsed().as_secs_f64(),
        reused,
    }
}

// ---------------------------------------------------------------------------------------------
// Phase 2

/// One row of the per-level CSVs: scoring's [`u2ad_core::scoring::LevelRow`] and the EU gate.
#[derive(Debug, Serialize)]
struct LevelCsvRow {
    subject: String,
    level: String,
    score: Option<f64>,
    threshold: Option<f64>,
    call: String,
    reason: Option<String>,
    peak_position_mm: Option<f64>,
    extent_mm: Option<f64>,
    peak_signal_ratio: Option<f64>,
    mean_eu: Option<f64>,
    eu_limit: Option<f64>,
}

#[derive(Debug, Serialize)]
struct PatientCsvRow {
    subject: String,
    patient_score: Option<f64>,
    max_over_cord_rows: Option<f64>,
    call: String,
    positive_levels: String,
    indeterminate_levels: String,
    out_of_fov_levels: String,
    samples: usize,
    passes: usize,
}

#[derive(Debug, Serialize)]
struct CurveCsvRow {
    row: usize,
    position_mm: f64,
    level: String,
    value: Option<f64>,
}

fn csv_bytes<T: Serialize>(rows: &[T]) -> anyhow::Result<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer.serialize(row)?;
    }
    Ok(writer.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_atomically(path, |tmp| std::fs::write(tmp, bytes).map_err(|e| u2ad_core::CoreError::io(tmp, e)))?;
    Ok(())
}

fn patient_call_label(call: PatientCall) -> &'static str {
    match call {
        PatientCall::Positive => "positive",
        PatientCall::Negative => "negative",
        PatientCall::NotAssessed => "not_assessed",
    }
}

fn levels_with(decision: &SubjectDecision, pick: impl Fn(SegmentCall) -> bool) -> Vec<String> {
    decision.segments.iter().filter(|s| pick(s.call)).map(|s| s.level.name().to_string()).collect()
}

/// The 99th percentile of the nonzero values of the mid-sagittal maps of the cohort.
fn cohort_limit(detected: &[Detected], pick: impl Fn(&SampleResult) -> &Vec<f32>) -> f32 {
    let mut values: Vec<f64> = detected
        .iter()
        .filter_map(|d| d.mid.as_ref())
        .flat_map(|(s, _)| pick(s).iter().filter(|&&v| v > 0.0).map(|&v| v as f64).collect::<Vec<_>>())
        .collect();
    values.sort_by(f64::total_cmp);
    u2ad_core::scoring::percentile_of_sorted(&values, 99.0).unwrap_or(0.0) as f32
}

/// The calibration state in words (for the terminal, the JSON and the report), and warnings.
fn calibration(run: &Run, subjects: usize, decisions: &[SubjectDecision]) -> (String, Vec<String>) {
    let too_few = decisions
        .iter()
        .flat_map(|d| &d.segments)
        .filter(|s| s.call == SegmentCall::Indeterminate(IndeterminateReason::TooFewReferenceValues))
        .count();
    match run.calls.threshold {
        Threshold::Fixed(t) => (format!("fixed threshold {t} (--threshold)"), Vec::new()),
        Threshold::Cohort { target_false_positive_rate } => {
            let pooling = match run.calls.pooling {
                LevelPooling::PerLevel => "the same level of the other subjects",
                LevelPooling::Pooled => "every level of the other subjects",
            };
            let text = format!(
                "cohort-calibrated, leave-one-subject-out: threshold = median + z x 1.4826 x MAD of {pooling}, \
                 target false-positive rate {target_false_positive_rate}, at least {} reference scores",
                run.calls.min_reference_values
            );
            let mut warnings = Vec::new();
            if subjects == 1 {
                warnings.push(
                    "not calibrated: a cohort of one subject cannot calibrate thresholds, so every level is 'indeterminate' \
                     (too_few_reference_values); give --threshold X learnt on a labelled set, or run on the whole cohort"
                        .to_string(),
                );
            } else if too_few > 0 {
                warnings.push(format!(
                    "not calibrated for {too_few} level(s): fewer than {} reference scores among the other {} subject(s), \
                     so those levels are 'indeterminate' (too_few_reference_values); use --pooling pooled, a lower \
                     --min-reference, a larger cohort, or --threshold",
                    run.calls.min_reference_values,
                    subjects - 1
                ));
            }
            (text, warnings)
        }
    }
}

fn finish_cohort(
    detected: &[Detected],
    failed: &[(String, String)],
    run: &Run,
    args: &DetectArgs,
    context: &Context,
) -> anyhow::Result<(Vec<String>, Vec<PatientCall>)> {
    let scores: Vec<SubjectScores> = detected.iter().map(|d| d.scored.scores.clone()).collect();
    let decisions = call_cohort(&scores, &run.calls).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (calibration_text, warnings) = calibration(run, detected.len(), &decisions);
    let limits = OverlayLimits {
        epistemic: cohort_limit(detected, |s| &s.epistemic),
        aleatoric: cohort_limit(detected, |s| &s.aleatoric),
    };
    let settings_json = json!({
        "CallThreshold": run.calls.threshold,
        "Pooling": run.calls.pooling,
        "MinReferenceValues": run.calls.min_reference_values,
        "UncertaintyGate": run.calls.uncertainty_gate,
        "Scoring": run.scoring,
        "Calibration": calibration_text,
    });
    let mut all_levels = Vec::new();
    let mut patients = Vec::new();
    let mut report_subjects = Vec::new();
    for (d, decision) in detected.iter().zip(&decisions) {
        let scores = &d.scored.scores;
        let rows: Vec<LevelCsvRow> = level_rows(scores, decision)
            .into_iter()
            .zip(&decision.segments)
            .map(|(r, s)| LevelCsvRow {
                subject: r.subject,
                level: r.level,
                score: r.score,
                threshold: r.threshold,
                call: r.call,
                reason: r.reason,
                peak_position_mm: r.peak_position_mm,
                extent_mm: r.extent_mm,
                peak_signal_ratio: r.peak_signal_ratio,
                mean_eu: s.mean_eu,
                eu_limit: s.eu_limit,
            })
            .collect();
        let provenance = run.provenance(&[d.image.clone()]);
        let with = |mut v: Value, extra: &Value| {
            if let (Some(target), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
                target.extend(extra.clone());
            }
            v
        };
        write_file(&d.outputs.levels_csv(), &csv_bytes(&rows)?)?;
        write_sidecar(
            &d.outputs.levels_csv(),
            with(
                with(json!({"Description": "Per disc level: anomaly score (peak of the anomaly curve), threshold, call, peak position (mm from the centre of C2, inferior positive), extent along the cord (mm), peak signal / median cord signal, mean EU and the EU limit"}), &provenance),
                &settings_json,
            ),
        )?;
        let positive = levels_with(decision, |c| c == SegmentCall::Positive);
        let indeterminate = levels_with(decision, |c| matches!(c, SegmentCall::Indeterminate(_)));
        let out_of_fov = levels_with(decision, |c| c == SegmentCall::OutOfFieldOfView);
        let patient_call = patient_call_label(decision.patient_call);
        let patient = with(
            with(
                json!({
                    "GeneratedBy": [{"Name": "u2ad", "Version": env!("CARGO_PKG_VERSION"), "Command": command_line()}],
                    "Subject": d.subject,
                    "PatientScore": scores.patient_score,
                    "MaxOverCordRows": scores.max_over_cord_rows,
                    "Call": patient_call,
                    "PositiveLevels": positive,
                    "IndeterminateLevels": indeterminate,
                    "OutOfFieldOfViewLevels": out_of_fov,
                    "Levels": rows,
                    "LevelsSource": d.meta.levels_source,
                    "Samples": d.samples,
                    "Passes": d.passes,
                }),
                &provenance,
            ),
            &settings_json,
        );
        write_file(&d.outputs.patient_json(), serde_json::to_string_pretty(&patient)?.as_bytes())?;

        // The curve.
        let origin = scores.position_origin.map(|o| o.row_px()).unwrap_or(0) as f64;
        let pixel_mm = run.scoring.scoring.pixel_mm;
        let position = |row: f64| (row - origin) * pixel_mm;
        let row_segment = d.mid.as_ref().map(|(s, _)| s.row_segment.clone()).unwrap_or_else(|| vec![0; SAMPLE_SIZE]);
        let curve_rows: Vec<CurveCsvRow> = scores
            .curve
            .values
            .iter()
            .enumerate()
            .map(|(row, value)| CurveCsvRow {
                row,
                position_mm: position(row as f64),
                level: DiscLevel::from_code(row_segment[row]).map(|l| l.name().to_string()).unwrap_or_default(),
                value: *value,
            })
            .collect();
        write_file(&d.outputs.curve_csv(), &csv_bytes(&curve_rows)?)?;
        write_sidecar(
            &d.outputs.curve_csv(),
            with(json!({"Description": "Anomaly curve: per row of the 256 x 256 sagittal grid (0.78125 mm), the maximum over the sagittal slices of the mean candidate AU over the row's eroded cord; empty where no slice has eroded cord. position_mm: from the centre of C2, inferior positive"}), &provenance),
        )?;

        // Figures.
        let lines = vertebra_lines(&row_segment);
        let mut figures = Vec::new();
        let title = format!(
            "{}: patient score {}, {}{}",
            d.subject,
            scores.patient_score.map(u2ad_report::figures::format_value).unwrap_or_else(|| "none".into()),
            patient_call.replace('_', " "),
            if positive.is_empty() { String::new() } else { format!(" ({})", positive.join(", ")) }
        );
        if let Some((sample, candidates)) = &d.mid {
            let slice = SliceMaps {
                rows: SAMPLE_SIZE,
                cols: SAMPLE_SIZE,
                image: sample.image.clone(),
                reconstruction: sample.mean.clone(),
                epistemic: sample.epistemic.clone(),
                aleatoric: sample.aleatoric.clone(),
                cord: sample.cord.clone(),
                candidates: candidates.filtered_au.iter().map(|&v| u8::from(v != 0.0)).collect(),
            };
            let row_lines: Vec<RowLine> = lines.iter().map(|(r, n)| RowLine { row: *r as f64, label: n.clone() }).collect();
            let slice_title = format!("{title} · slice {} ({:+.1} mm from mid)", sample.meta.native_slice, sample.meta.offset_from_mid_mm);
            let png = maps_figure(&slice, &row_lines, limits, &slice_title)?;
            write_file(&d.outputs.maps_figure(), &png)?;
            write_sidecar(
                &d.outputs.maps_figure(),
                with(json!({"Description": "Mid-sagittal sample (largest eroded cord): image with the cord outlined, mean reconstruction, EU and AU overlays (cohort 99th-percentile colour limits), candidates outlined in magenta, vertebral centres in green", "ColourLimits": {"EU": limits.epistemic, "AU": limits.aleatoric}}), &provenance),
            )?;
            figures.push(ReportFigure {
                caption: format!(
                    "Native sagittal slice {}: image (cord outlined), mean reconstruction, EU (0 to {}), AU (0 to {}) with the anomaly candidates outlined; green lines: vertebral centres",
                    sample.meta.native_slice,
                    u2ad_report::figures::format_value(limits.epistemic as f64),
                    u2ad_report::figures::format_value(limits.aleatoric as f64)
                ),
                png,
            });
        }
        let level_spans: Vec<LevelSpan> = decision
            .segments
            .iter()
            .filter_map(|s| {
                let rows: Vec<usize> = (0..SAMPLE_SIZE).filter(|&r| row_segment[r] == s.level.code()).collect();
                let (first, last) = (*rows.first()?, *rows.last()?);
                let peak = scores.segment(s.level).and_then(|x| x.peak()).map(|p| (p.peak_position_mm, p.score));
                Some(LevelSpan {
                    name: s.level.name().to_string(),
                    start_mm: position(first as f64),
                    end_mm: position(last as f64 + 1.0),
                    threshold: s.threshold,
                    peak,
                    call: s.call.label().to_string(),
                })
            })
            .collect();
        let curve = CurveData {
            positions_mm: (0..SAMPLE_SIZE).map(|r| position(r as f64)).collect(),
            values: scores.curve.values.clone(),
            boundaries: lines.iter().map(|(r, n)| (position(*r as f64), n.clone())).collect(),
            levels: level_spans,
        };
        let png = curve_figure(&curve, &format!("{title} · anomaly curve"))?;
        write_file(&d.outputs.curve_figure(), &png)?;
        write_sidecar(
            &d.outputs.curve_figure(),
            with(json!({"Description": "Anomaly curve along the cord with the vertebral centres (green), each level's threshold (red dashes) and its peak coloured by its call"}), &provenance),
        )?;
        figures.push(ReportFigure {
            caption: "Anomaly curve: blue, the curve; green dashes, vertebral centres; red dashes, each level's threshold; dots, each level's peak (red positive, grey negative, orange indeterminate)".into(),
            png,
        });

        let mut notes = Vec::new();
        if !out_of_fov.is_empty() {
            notes.push(format!("out of the field of view (or no cord seen): {}", out_of_fov.join(", ")));
        }
        for s in &decision.segments {
            if let SegmentCall::Indeterminate(reason) = s.call {
                let why = match reason {
                    IndeterminateReason::HighEpistemicUncertainty => "epistemic uncertainty above the cohort's limit",
                    IndeterminateReason::TooFewReferenceValues => "too few reference scores to calibrate a threshold",
                };
                notes.push(format!("{} indeterminate: {why}", s.level.name()));
            }
        }
        notes.push(format!("levels: {}", d.meta.levels_source));
        if d.meta.csf_derived {
            notes.push("CSF derived around the cord (no CSF mask given)".into());
        }
        if d.reused {
            notes.push("Monte-Carlo maps reused from a previous run with the same model and settings".into());
        }
        report_subjects.push(ReportSubject {
            subject: d.subject.clone(),
            image_file: d.image.display().to_string(),
            patient_score: scores.patient_score,
            patient_call: patient_call.to_string(),
            positive_levels: positive.clone(),
            notes,
            levels: rows
                .iter()
                .map(|r| ReportLevel {
                    level: r.level.clone(),
                    score: r.score,
                    threshold: r.threshold,
                    call: r.call.clone(),
                    reason: r.reason.clone(),
                    peak_position_mm: r.peak_position_mm,
                    extent_mm: r.extent_mm,
                    peak_signal_ratio: r.peak_signal_ratio,
                })
                .collect(),
            figures,
        });
        patients.push(PatientCsvRow {
            subject: d.subject.clone(),
            patient_score: scores.patient_score,
            max_over_cord_rows: scores.max_over_cord_rows,
            call: patient_call.to_string(),
            positive_levels: positive.join(" "),
            indeterminate_levels: indeterminate.join(" "),
            out_of_fov_levels: out_of_fov.join(" "),
            samples: d.samples,
            passes: d.passes,
        });
        all_levels.extend(rows);
    }

    let provenance = json!({
        "ModelFile": run.model_path.display().to_string(),
        "ModelHash": run.model_info.hash,
        "ConfigHash": run.config_hash,
        "Seed": run.seed,
        "MonteCarlo": run.mc,
        "FailedSubjects": failed.iter().map(|(s, e)| json!({"subject": s, "error": e})).collect::<Vec<_>>(),
    });
    let levels_path = run.out.join(COHORT_LEVELS_CSV);
    write_file(&levels_path, &csv_bytes(&all_levels)?)?;
    let mut extra = provenance.clone();
    extra["Description"] = json!("Every subject and disc level (see the per-subject _desc-levels_scores.csv)");
    extra["Settings"] = settings_json.clone();
    write_sidecar(&levels_path, extra)?;
    let patients_path = run.out.join(COHORT_PATIENTS_CSV);
    write_file(&patients_path, &csv_bytes(&patients)?)?;
    let mut extra = provenance.clone();
    extra["Description"] = json!("Every subject: patient score (maximum of the level scores), call and levels by call");
    extra["Settings"] = settings_json.clone();
    write_sidecar(&patients_path, extra)?;
    let description = json!({
        "Name": "u2ad detect: spinal cord T2 hyperintensity maps and calls",
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "u2ad", "Version": env!("CARGO_PKG_VERSION"), "Command": command_line()}],
        "SourceDatasets": [{"URL": args.input.as_ref().or(args.image.as_ref()).map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()).display().to_string())}],
    });
    write_file(&run.out.join(DATASET_DESCRIPTION), serde_json::to_string_pretty(&description)?.as_bytes())?;

    let schedule = match run.mc.schedule {
        McSchedule::Balanced => "balanced".to_string(),
        McSchedule::RandomUntilCovered { max_passes } => format!("reference (random until covered, at most {max_passes} passes)"),
    };
    let report = Report {
        title: format!("u2ad QC report: {} subject(s)", detected.len()),
        generated_by: format!("u2ad {} · {}", env!("CARGO_PKG_VERSION"), command_line()),
        settings: vec![
            ("model".into(), format!("{} (hash {})", run.model_path.display(), run.model_info.hash)),
            ("Monte-Carlo".into(), format!("K = {}, mask ratio {}, {schedule}, seed {}", run.mc.samples_per_patch, run.mc.mask_ratio, run.seed)),
            ("calibration".into(), calibration_text.clone()),
            ("EU gate".into(), format!("{:?}", run.calls.uncertainty_gate)),
            ("curve".into(), format!("{:?}", run.scoring.scoring.curve)),
            ("configuration hash".into(), run.config_hash.clone()),
        ],
        warnings: warnings.clone(),
        subjects: report_subjects,
        failed: failed.to_vec(),
    };
    write_file(&run.out.join(QC_REPORT_HTML), render_report(&report).as_bytes())?;

    if !context.quiet {
        println!("{:<16} {:>10}  {:<13} positive levels", "subject", "score", "call");
        for p in &patients {
            println!(
                "{:<16} {:>10}  {:<13} {}",
                p.subject,
                p.patient_score.map(|s| format!("{s:.3e}")).unwrap_or_else(|| "none".into()),
                p.call,
                if p.positive_levels.is_empty() { "none" } else { &p.positive_levels }
            );
        }
    }
    Ok((warnings, decisions.iter().map(|d| d.patient_call).collect()))
}
