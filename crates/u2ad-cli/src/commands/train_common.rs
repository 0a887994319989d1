//! What `u2ad pretrain` and `u2ad adapt` share: the flags, the configuration (file, then flags,
//! saved with the run), the backend choice, the progress bar and the run's outputs.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use clap::Args;
use indicatif::ProgressBar;
use serde_json::{json, Value};
use u2ad_core::dataset::PreparedDataset;
use u2ad_model::checkpoint::UncertaintyMaps;
use u2ad_model::records::{EpochRecord, History, RefreshRecord, Stage};
use u2ad_model::train::{example_reconstruction, ExampleReconstruction, TrainError};
use u2ad_model::{save_model, PatchGrid, TrainingConfig, TrainingObserver, TrainingOutcome, TrainingSet};
use u2ad_report::training_figures::{self, EpochLoss, ReconstructionExample, RefreshMeans, TrainingCurves, TrainingStage};
use u2ad_report::FigureError;

use super::Context;
use crate::device::{parse_device, DeviceChoice};
use crate::progress;
use crate::sidecar::{command_line, write_sidecar};

/// Name of the resolved configuration inside a run folder.
pub const CONFIG_FILE: &str = "config.toml";
/// Name of the trained model inside a run folder.
pub const MODEL_FILE: &str = "model.safetensors";

/// Flags of both training commands.
#[derive(Args, Debug)]
pub struct TrainingFlags {
    /// Training configuration (TOML; missing keys take the reference's values, see
    /// configs/paper.toml). With --resume, defaults to the run's own config.toml.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Images per optimizer step (overrides training.batch_size).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Seed of the weights, sample order, augmentation and masks (overrides seed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write a checkpoint every N epochs (overrides training.checkpoint_every).
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<usize>,
    /// Continue the run in --out from its latest checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Where to train: auto (CUDA when this build has it and a driver, else the CPU), cpu, cuda,
    /// cuda:N.
    #[arg(long, value_parser = parse_device, default_value = "auto")]
    pub device: DeviceChoice,
}

/// The prepared dataset, given as the first argument or with the old hidden `--data` flag (clap
/// refuses both, and neither).
pub fn dataset(positional: &Option<PathBuf>, flag: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match (positional, flag) {
        (Some(path), None) | (None, Some(path)) => Ok(path.clone()),
        (Some(_), Some(_)) => anyhow::bail!("give the dataset once: as the first argument, without --data"),
        (None, None) => anyhow::bail!("give the prepared dataset (.u2ds) as the first argument"),
    }
}

/// Reads the configuration: the --config file (or, when resuming, the run's config.toml), else
/// the defaults; then the common flags.
pub fn base_config(flags: &TrainingFlags, out: &Path) -> anyhow::Result<TrainingConfig> {
    let saved = out.join(CONFIG_FILE);
    let file = match (&flags.config, flags.resume && saved.is_file()) {
        (Some(path), _) => Some(path.clone()),
        (None, true) => Some(saved),
        (None, false) => None,
    };
    let mut config = match file {
        Some(path) => {
            let text = std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
            TrainingConfig::from_toml(&text).with_context(|| format!("{}", path.display()))?
        }
        None => TrainingConfig::default(),
    };
    if let Some(n) = flags.batch_size {
        config.training.batch_size = n;
    }
    if let Some(seed) = flags.seed {
        config.seed = seed;
    }
    if let Some(n) = flags.checkpoint_every {
        config.training.checkpoint_every = n;
    }
    Ok(config)
}

/// The run's `config.toml` (checked), written by [`ProgressObserver`] once the run has started,
/// so that a run that fails its checks leaves no configuration behind or rewritten.
pub fn resolved_config(config: &TrainingConfig, out: &Path) -> anyhow::Result<(PathBuf, String)> {
    config.validate().context("configuration")?;
    let text = format!("# Resolved configuration of `{}`\n{}", command_line(), config.to_toml());
    Ok((out.join(CONFIG_FILE), text))
}

/// The dataset, its hash and its training samples.
pub struct LoadedData {
    pub path: PathBuf,
    pub dataset: PreparedDataset,
    pub hash: String,
    pub set: TrainingSet,
}

pub fn load_data(path: &Path, config: &TrainingConfig) -> anyhow::Result<LoadedData> {
    let dataset = PreparedDataset::read(path)?;
    let hash = u2ad_model::model_file::file_hash(path)?;
    let set = TrainingSet::new(&dataset, config).with_context(|| format!("{}", path.display()))?;
    Ok(LoadedData { path: path.to_path_buf(), dataset, hash, set })
}

/// Progress on stderr: one bar over the run's steps, with the epoch, stage, step and loss.
pub struct ProgressObserver {
    bar: ProgressBar,
    quiet: bool,
    what: String,
    total_epochs: usize,
    steps: usize,
    refresh_samples: usize,
    config: (PathBuf, String),
}

impl ProgressObserver {
    /// `config`: the run's `config.toml` and its text, written when the run starts.
    pub fn new(what: &str, quiet: bool, config: (PathBuf, String)) -> Self {
        ProgressObserver {
            bar: ProgressBar::hidden(),
            quiet,
            what: what.to_string(),
            total_epochs: 0,
            steps: 0,
            refresh_samples: 0,
            config,
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl TrainingObserver for ProgressObserver {
    fn run_started(&mut self, start_epoch: usize, total_epochs: usize, steps_per_epoch: usize) -> Result<(), TrainError> {
        let (path, text) = &self.config;
        let io = |source: std::io::Error| TrainError::Io { path: path.display().to_string(), source };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        u2ad_core::staging::write_file_atomically(path, text.as_bytes()).map_err(|e| TrainError::Data(e.to_string()))?;
        self.total_epochs = total_epochs;
        self.steps = steps_per_epoch;
        let remaining = (total_epochs.saturating_sub(start_epoch) * steps_per_epoch) as u64;
        self.bar = progress::bar(remaining, &self.what, self.quiet);
        if start_epoch > 0 {
            self.bar.println(format!("resuming after epoch {start_epoch} of {total_epochs}"));
        }
        Ok(())
    }

    fn refresh_started(&mut self, epoch: usize, samples: usize) {
        self.refresh_samples = samples;
        self.bar.set_message(format!("MC inference after epoch {epoch}: 0/{samples} slices"));
    }

    fn refresh_progress(&mut self, done: usize) {
        self.bar.set_message(format!("MC inference: {done}/{} slices", self.refresh_samples));
        self.bar.tick();
    }

    fn refresh_finished(&mut self, r: &RefreshRecord) {
        self.bar.println(format!(
            "uncertainty after epoch {}: mean EU {:.3e}, mean AU {:.3e}, {} candidate px ({:.1} s)",
            r.epoch, r.mean_eu, r.mean_au, r.candidate_pixels, r.seconds
        ));
    }

    fn step_finished(&mut self, epoch: usize, step: usize, loss: f64) {
        self.bar.inc(1);
        self.bar.set_message(format!("epoch {}/{} step {}/{} loss {loss:.4}", epoch + 1, self.total_epochs, step + 1, self.steps));
    }

    fn epoch_finished(&mut self, r: &EpochRecord) {
        self.bar.println(format!(
            "epoch {:>4}/{} {:<9} lr {:.1e} loss {:.5} (image {:.5}, edge {:.5}) {:.1} s",
            r.epoch,
            self.total_epochs,
            r.stage.name(),
            r.learning_rate,
            r.loss,
            r.image_mse,
            r.edge_mse,
            r.seconds
        ));
    }
}

/// The training sample shown in the figures: the one nearest the cord's mid-sagittal plane, of
/// the first subject with a training sample. Returns its training-set position.
pub fn figure_sample(data: &LoadedData) -> usize {
    let first_subject = data.dataset.meta.samples[data.set.samples[0]].subject_index;
    (0..data.set.len())
        .filter(|&k| data.dataset.meta.samples[data.set.samples[k]].subject_index == first_subject)
        .min_by(|&a, &b| {
            let off = |k: usize| data.dataset.meta.samples[data.set.samples[k]].offset_from_mid_mm.abs();
            off(a).total_cmp(&off(b))
        })
        .unwrap_or(0)
}

/// Writes the model file, its sidecar, the training figure and the example figures. Returns
/// the model path.
pub fn write_outputs<B: AutodiffBackend>(
    out: &Path,
    data: &LoadedData,
    config: &TrainingConfig,
    outcome: &TrainingOutcome<B>,
    provenance: Value,
    seconds: f64,
) -> anyhow::Result<PathBuf> {
    let model = outcome.model.valid();
    let model_path = out.join(MODEL_FILE);
    save_model(&model, &config.model, &provenance, &model_path)?;
    let last = outcome.history.epochs.last();
    write_sidecar(
        &model_path,
        json!({
            "Description": "u2ad trained model (weights, model configuration and provenance inside)",
            "Provenance": provenance,
            "TrainingSamples": data.set.len(),
            "SkippedSamples": data.set.skipped.len(),
            "FinalLoss": last.map(|r| r.loss),
            "WallSeconds": seconds,
            "ResumedAfterEpoch": outcome.resumed_at,
        }),
    )?;
    let training_png = out.join("training.png");
    let curves = training_curves(&outcome.history);
    write_figure(&training_png, |tmp| training_figures::training_figure(&curves, tmp))?;
    let k = figure_sample(data);
    let example = example_reconstruction(&model, data.set.image(k), data.set.roi(k), config.training.mask_ratio, config.seed)?;
    let title = describe_sample(data, k);
    reconstruction_figure(&example, &title, &out.join("reconstruction.png"))?;
    if let Some(maps) = &outcome.maps {
        uncertainty_figure(out, data, maps, k, &title)?;
    }
    Ok(model_path)
}

fn uncertainty_figure(out: &Path, data: &LoadedData, maps: &UncertaintyMaps, k: usize, title: &str) -> anyhow::Result<()> {
    let title = format!("{title}, maps after epoch {}", maps.epoch);
    write_figure(&out.join("uncertainty.png"), |tmp| {
        training_figures::uncertainty_figure(data.set.image(k), maps.epistemic(k), maps.aleatoric(k), maps.candidates(k), data.set.side, &title, tmp)
    })
}

/// Draws a figure through `draw`, written atomically ([`u2ad_core::staging::write_atomically`]:
/// a failure leaves no partial figure).
fn write_figure(path: &Path, draw: impl FnOnce(&Path) -> Result<(), FigureError>) -> anyhow::Result<()> {
    u2ad_core::staging::write_atomically(path, |tmp| draw(tmp).map_err(|e| u2ad_core::error::CoreError::input(path, e.to_string())))
        .with_context(|| format!("{}: cannot write the figure", path.display()))
}

/// How the training figure shows a stage: its place in the pipeline (which orders and colours
/// the loss series) and its name.
fn figure_stage(stage: Stage) -> TrainingStage<'static> {
    let order = match stage {
        Stage::Pretrain => 0,
        Stage::EuGuided => 1,
        Stage::AuGuided => 2,
    };
    TrainingStage { order, name: stage.name() }
}

/// What the training figure draws of a run's history.
fn training_curves(history: &History) -> TrainingCurves<'static> {
    TrainingCurves {
        epochs: history.epochs.iter().map(|r| EpochLoss { epoch: r.epoch, stage: figure_stage(r.stage), loss: r.loss }).collect(),
        refreshes: history.refreshes.iter().map(|r| RefreshMeans { epoch: r.epoch, mean_eu: r.mean_eu, mean_au: r.mean_au }).collect(),
        boundaries: history.stage_boundaries().into_iter().map(|(epoch, stage)| (epoch, figure_stage(stage))).collect(),
    }
}

/// `reconstruction.png` of the example reconstruction: its patch mask spread over the pixels.
fn reconstruction_figure(example: &ExampleReconstruction, title: &str, path: &Path) -> anyhow::Result<()> {
    let side = example.side;
    let grid = PatchGrid { image_size: side, patch_size: example.patch_size };
    let mut masked_pixels = vec![false; side * side];
    for i in (0..grid.num_patches()).filter(|&i| example.mask[i]) {
        for j in grid.pixels_of(i) {
            masked_pixels[j] = true;
        }
    }
    let pasted = example.pasted();
    let view = ReconstructionExample {
        side,
        image: &example.image,
        reconstruction: &example.reconstruction,
        pasted: &pasted,
        masked_pixels: &masked_pixels,
        masked_patches: example.mask.iter().filter(|&&m| m).count(),
    };
    write_figure(path, |tmp| training_figures::reconstruction_figure(&view, title, tmp))
}

fn describe_sample(data: &LoadedData, k: usize) -> String {
    let meta = &data.dataset.meta.samples[data.set.samples[k]];
    let subject = &data.dataset.meta.subjects[meta.subject_index].subject;
    format!("{subject}, slice {} ({:+.1} mm from mid-sagittal)", meta.native_slice, meta.offset_from_mid_mm)
}

/// The provenance every model file carries.
pub fn provenance(kind: &str, data: &LoadedData, config: &TrainingConfig, epochs: usize, extra: Value) -> Value {
    let mut p = json!({
        "command": kind,
        "command_line": command_line(),
        "version": env!("CARGO_PKG_VERSION"),
        "dataset": data.path.display().to_string(),
        "dataset_hash": data.hash,
        "training_samples": data.set.len(),
        "epochs": epochs,
        "config": serde_json::to_value(config).expect("configuration serialises"),
    });
    if let (Some(p), Value::Object(extra)) = (p.as_object_mut(), extra) {
        p.extend(extra);
    }
    p
}

/// Prints the end-of-run summary.
pub fn report(context: &Context, model_path: &Path, outcome_epochs: usize, seconds: f64) {
    if !context.quiet {
        eprintln!("trained {outcome_epochs} epochs in {seconds:.0} s; wrote {}", model_path.display());
    }
}
