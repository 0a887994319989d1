//! The training loop of `u2ad pretrain` and `u2ad adapt`, generic over the autodiff backend
//! (`Autodiff<Flex>` on the CPU, `Autodiff<Cuda>` with the `cuda` feature).
//!
//! **Pretraining** ([`pretrain`]): random ROI masking on a healthy cohort for
//! `pretraining.epochs` epochs, from weights drawn with the run's seed.
//!
//! **Adaptation** ([`adapt`]): from the pretrained weights, on the target cohort (no labels):
//!
//! 1. before epoch 0, and before every `refresh_every`-th epoch after it, Monte-Carlo inference
//!    with the current weights ([`refresh_maps`]: `K` reconstructions of every MC-ROI patch of
//!    every training sample) gives each sample's EU and AU maps, and the anomaly candidates
//!    (the reference's `process_error` on the AU map inside the eroded cord);
//! 2. epochs `0 .. eu_epochs` mask with `adaptation.eu_masking` (EU-guided), the next
//!    `au_epochs` with `adaptation.au_masking` (AU-guided: candidate patches stay visible);
//! 3. with `final_refresh`, the maps are refreshed once more after the last epoch.
//!
//! The learning rate follows the step decay of `[optimizer]`, restarted at adaptation epoch 0
//! (the reference, B17 in `docs/reference-notes.md`) or continued from the pretrained model's
//! epochs.
//!
//! Every epoch: the training samples (ROI touching at least `min_roi_patches` patches) in an
//! order drawn from the epoch's generator, batches of `batch_size` (the last one smaller),
//! each slice augmented ([`crate::augment`]) and masked per image, one Adam step per batch on
//! `image_weight · L_image + edge_weight · L_edge`. All randomness of an epoch comes from
//! [`stream_rng`](crate::schedule::stream_rng)`(seed, ·, epoch)`, so a run resumed from a
//! checkpoint continues exactly as it would have without the interruption.
//!
//! Files: `mod.rs` (the run's options, observer, outcome and entry points), `config.rs` (the
//! training configuration), `training_set.rs` (the samples and their arrays), `plan.rs` (stages
//! and refreshes), `refresh.rs` (the Monte-Carlo refresh of the maps), `epochs.rs` (the epoch
//! loop), `resume.rs` (starting or resuming from a checkpoint, and what a checkpoint saves),
//! `example.rs` (a masked reconstruction for figures).

pub mod config;
mod epochs;
mod example;
mod plan;
mod refresh;
mod resume;
mod training_set;

use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::AdamConfig;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;

use crate::checkpoint::{CheckpointError, TrainingOptimizer, UncertaintyMaps};
use crate::mae::MaskedAutoencoder;
use crate::masking::MaskingError;
use crate::records::{EpochRecord, History, RefreshRecord};
pub use config::{
    AdaptationConfig, CandidateConfig, LearningRateStart, LossSettings, McRegion, OptimizerConfig, PretrainingConfig,
    TrainingConfig, TrainingConfigError, TrainingSettings,
};

pub use epochs::train;
pub use example::{example_reconstruction, ExampleReconstruction};
pub use plan::{StagePlan, TrainingPlan};
pub use refresh::refresh_maps;
pub use training_set::TrainingSet;

/// Why training could not run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{0}")]
    Config(#[from] TrainingConfigError),
    #[error("{0}")]
    Data(String),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error(transparent)]
    Masking(#[from] MaskingError),
}

/// Where a run writes and whether it continues an earlier one.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The run folder (checkpoints, CSV records).
    pub dir: PathBuf,
    /// Hash of the dataset file, checked on resuming.
    pub dataset_hash: String,
    /// Continue from the latest checkpoint in `dir`.
    pub resume: bool,
    /// Read the losses from the device every this many steps (and at each epoch's end), not every
    /// step ([`DEFAULT_LOSS_READOUT_STEPS`]): each read waits for the device, and in between the
    /// host prepares the next batches while a GPU works. It changes no value (the losses and their
    /// sums are the same), only when the progress display hears of a step.
    pub loss_readout_steps: usize,
}

/// How often the losses are read by default ([`RunOptions::loss_readout_steps`]).
pub const DEFAULT_LOSS_READOUT_STEPS: usize = 16;

impl RunOptions {
    /// A run in `dir` on a dataset of hash `dataset_hash`, losses read every
    /// [`DEFAULT_LOSS_READOUT_STEPS`] steps.
    pub fn new(dir: PathBuf, dataset_hash: String, resume: bool) -> Self {
        RunOptions { dir, dataset_hash, resume, loss_readout_steps: DEFAULT_LOSS_READOUT_STEPS }
    }
}

/// Hooks for progress display; every method does nothing by default.
pub trait TrainingObserver {
    /// Before the first epoch that will run (`start_epoch` > 0 when resuming), once every check
    /// passed; an error (e.g. the run folder cannot be written) stops the run before it trains.
    fn run_started(&mut self, _start_epoch: usize, _total_epochs: usize, _steps_per_epoch: usize) -> Result<(), TrainError> {
        Ok(())
    }
    /// Before a Monte-Carlo refresh of `samples` slices.
    fn refresh_started(&mut self, _epoch: usize, _samples: usize) {}
    /// `done` of the refresh's slices are finished.
    fn refresh_progress(&mut self, _done: usize) {}
    fn refresh_finished(&mut self, _record: &RefreshRecord) {}
    /// After an optimizer step (0-based epoch and step).
    fn step_finished(&mut self, _epoch: usize, _step: usize, _loss: f64) {}
    fn epoch_finished(&mut self, _record: &EpochRecord) {}
    fn checkpoint_saved(&mut self, _path: &Path) {}
}

/// An observer that shows nothing.
pub struct Silent;

impl TrainingObserver for Silent {}

/// What a run ends with.
pub struct TrainingOutcome<B: AutodiffBackend> {
    pub model: MaskedAutoencoder<B>,
    pub history: History,
    /// The latest uncertainty maps (adaptation, or pretraining with a monitor).
    pub maps: Option<UncertaintyMaps>,
    /// Epochs done by an earlier process (0 without `--resume`).
    pub resumed_at: usize,
    /// The last checkpoint written.
    pub checkpoint: Option<PathBuf>,
}

/// Adam with the configured betas and epsilon.
pub fn optimizer<B: AutodiffBackend>(config: &OptimizerConfig) -> TrainingOptimizer<B> {
    AdamConfig::new()
        .with_beta_1(config.beta_1 as f32)
        .with_beta_2(config.beta_2 as f32)
        .with_epsilon(config.epsilon as f32)
        .init::<B, MaskedAutoencoder<B>>()
}

/// The model of `config.model` with weights drawn from the backend's generator seeded with
/// `config.seed`. The generator is global to the process, so seeding and drawing happen under a
/// lock: two runs started at once in one process still get their own seed's weights.
pub fn seeded_model<B: Backend>(config: &TrainingConfig, device: &B::Device) -> Result<MaskedAutoencoder<B>, TrainError> {
    static BACKEND_GENERATOR: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = BACKEND_GENERATOR.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    B::seed(device, config.seed);
    let model = config.model.init::<B>(device).map_err(|e| TrainingConfigError(format!("model: {}", e.0)))?;
    // burn draws a parameter's initial values when it is first read: read them all now.
    struct Materialise;
    impl<B: Backend> ModuleVisitor<B> for Materialise {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let _ = param.val();
        }
    }
    model.visit(&mut Materialise);
    Ok(model)
}

/// Pretraining: builds the model from `config.model` with the run's seed and trains it.
pub fn pretrain<B: AutodiffBackend>(
    set: &TrainingSet,
    config: &TrainingConfig,
    run: &RunOptions,
    observer: &mut dyn TrainingObserver,
    device: &B::Device,
) -> Result<TrainingOutcome<B>, TrainError> {
    config.validate()?;
    let model = seeded_model::<B>(config, device)?;
    train(model, set, config, &TrainingPlan::pretraining(config), run, observer, device)
}

/// Adaptation of a pretrained model (trained for `pretrained_epochs` epochs) to the cohort.
pub fn adapt<B: AutodiffBackend>(
    pretrained: MaskedAutoencoder<B>,
    pretrained_epochs: usize,
    set: &TrainingSet,
    config: &TrainingConfig,
    run: &RunOptions,
    observer: &mut dyn TrainingObserver,
    device: &B::Device,
) -> Result<TrainingOutcome<B>, TrainError> {
    config.validate()?;
    if pretrained.grid() != config.model.grid() {
        return Err(TrainError::Data("the pretrained model's image and patch sizes differ from model in the configuration".into()));
    }
    train(pretrained, set, config, &TrainingPlan::adaptation(config, pretrained_epochs), run, observer, device)
}
