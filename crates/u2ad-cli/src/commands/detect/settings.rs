//! What is fixed for a detection run: the Monte-Carlo and scoring settings read from the flags,
//! the image and region Monte-Carlo inference sees, the settings hashed into `ConfigHash`, and the
//! provenance every output records.

use std::path::PathBuf;

use anyhow::bail;
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use u2ad_core::dataset::PreparedSample;
use u2ad_core::detect_outputs::MapScoring;
use u2ad_core::prepare::PrepareOptions;
use u2ad_core::scoring::{erode_3x3, CallConfig, PlaneShape, Polarity};
use u2ad_model::{McConfig, McSchedule, ModelInfo};

use super::{DetectArgs, McRegionArg, ScheduleArg};
use crate::commands::calibrate::MapRun;
use crate::cohort_folder::merged;

/// What one subject's Monte-Carlo run depends on (hashed into `ConfigHash`).
#[derive(Debug, Serialize)]
pub(super) struct MapSettings<'a> {
    pub(super) monte_carlo: &'a McConfig,
    pub(super) seed: u64,
    pub(super) preprocess: &'a u2ad_core::sample::PreprocessConfig,
    pub(super) level_convention: Option<&'static str>,
    #[serde(skip_serializing_if = "is_zero")]
    pub(super) cord_offset_voxels: i32,
    pub(super) candidates: &'a u2ad_core::scoring::CandidateFilter,
    pub(super) polarity: Polarity,
    /// Absent when 0 (the maps of runs before the smoothing stay reusable with
    /// `--reconstruction-smoothing-mm 0`).
    #[serde(skip_serializing_if = "is_zero_mm")]
    pub(super) reconstruction_smoothing_mm: f64,
    /// Absent for the dilated ROI without min-max (so the maps of runs before the per-slice
    /// min-max stay reusable with `--no-min-max`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) mc_input: Option<McInput>,
}

fn is_zero(value: &i32) -> bool {
    *value == 0
}

fn is_zero_mm(value: &f64) -> bool {
    *value == 0.0
}

/// The image and region Monte-Carlo inference sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(super) struct McInput {
    pub(super) region: McRegionArg,
    pub(super) min_max: bool,
}

impl McInput {
    pub(super) fn is_legacy(self) -> bool {
        self == McInput { region: McRegionArg::Roi, min_max: false }
    }

    /// The image MC inference reconstructs (min-max normalised: (x - lo) / range) with lo and
    /// range, and the region it masks.
    pub(super) fn of(self, sample: &PreparedSample) -> (Vec<f32>, f32, f32, Vec<u8>) {
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
pub(super) struct Run {
    pub(super) out: PathBuf,
    pub(super) model_path: PathBuf,
    pub(super) model_info: ModelInfo,
    pub(super) mc: McConfig,
    pub(super) seed: u64,
    pub(super) prepare: PrepareOptions,
    pub(super) scoring: MapScoring,
    pub(super) calls: CallConfig,
    pub(super) config_hash: String,
    pub(super) force: bool,
    pub(super) polarity: Polarity,
    /// Sigma of the reconstruction's smoothing for the anomaly map, in mm (0: none).
    pub(super) reconstruction_smoothing_mm: f64,
    pub(super) mc_input: McInput,
}

impl Run {
    pub(super) fn provenance(&self, sources: &[PathBuf]) -> Value {
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
            "ReconstructionSmoothingMm": self.reconstruction_smoothing_mm,
        })
    }
}

pub(super) fn hash_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

pub(super) fn settings_of(args: &DetectArgs) -> anyhow::Result<(McConfig, MapScoring, CallConfig)> {
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

/// What made the maps, for the report, the sidecars and `u2ad calibrate`.
pub(super) fn map_run(run: &Run, args: &DetectArgs) -> MapRun {
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
