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
//! [`stream_rng`]`(seed, ·, epoch)`, so a run resumed from a checkpoint continues exactly as it
//! would have without the interruption.

pub mod config;

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::Rng;
use u2ad_core::dataset::PreparedDataset;
use u2ad_core::scoring::{anomaly_candidates, erode_3x3, PlaneShape, Polarity};

use crate::augment::{augment, min_max_normalise};
use crate::checkpoint::{
    latest_checkpoint, list_checkpoints, load_checkpoint, remove_leftovers, save_checkpoint, CheckpointError,
    CheckpointState, RunKind, TrainingOptimizer, UncertaintyMaps, CHECKPOINT_VERSION,
};
use crate::mae::{unpatchify, MaskedAutoencoder};
use crate::masking::{mask_patches, MaskingError, MaskingInput, MaskingStrategy};
use crate::mc::{mc_inference, McSlice};
use crate::records::{EpochRecord, History, RefreshRecord, Stage};
use crate::schedule::{stream_rng, RandomStream};
pub use config::{
    AdaptationConfig, CandidateConfig, LearningRateStart, LossSettings, McRegion, OptimizerConfig, PretrainingConfig,
    TrainingConfig, TrainingConfigError, TrainingSettings,
};

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

/// The samples a run trains on, with the per-slice arrays it needs, in training-set order.
#[derive(Debug, Clone)]
pub struct TrainingSet {
    /// Dataset index of each training sample.
    pub samples: Vec<usize>,
    /// Dataset indices left out (ROI on fewer than `min_roi_patches` patches).
    pub skipped: Vec<usize>,
    pub side: usize,
    /// Min–max normalised images.
    images: Vec<f32>,
    /// Training ROI (the dataset's `roi`).
    roi: Vec<u8>,
    /// ROI of the Monte-Carlo inference.
    mc_roi: Vec<u8>,
    /// Cord mask of the anomaly candidates (eroded when configured).
    cord: Vec<u8>,
}

impl TrainingSet {
    /// Selects the training samples of `dataset` and prepares their arrays.
    pub fn new(dataset: &PreparedDataset, config: &TrainingConfig) -> Result<TrainingSet, TrainError> {
        let grid = config.model.grid();
        let side = grid.image_size;
        if side != u2ad_core::dataset::SAMPLE_SIZE {
            return Err(TrainError::Data(format!(
                "model.image_size = {side}, but prepared samples are {} x {}",
                u2ad_core::dataset::SAMPLE_SIZE,
                u2ad_core::dataset::SAMPLE_SIZE
            )));
        }
        let shape = PlaneShape { rows: side, cols: side };
        let mut set = TrainingSet {
            samples: Vec::new(),
            skipped: Vec::new(),
            side,
            images: Vec::new(),
            roi: Vec::new(),
            mc_roi: Vec::new(),
            cord: Vec::new(),
        };
        for index in 0..dataset.len() {
            let s = dataset.sample(index);
            let roi_patches = grid.patches_touching(s.roi).iter().filter(|&&t| t).count();
            if roi_patches < config.training.min_roi_patches.max(1) {
                set.skipped.push(index);
                continue;
            }
            set.samples.push(index);
            let mut image = s.image.to_vec();
            min_max_normalise(&mut image);
            set.images.extend_from_slice(&image);
            set.roi.extend_from_slice(s.roi);
            match config.adaptation.mc_region {
                McRegion::CordAndCsf => set.mc_roi.extend(s.cord.iter().zip(s.csf).map(|(&c, &f)| u8::from(c != 0 || f != 0))),
                McRegion::Roi => set.mc_roi.extend_from_slice(s.roi),
            }
            if config.adaptation.candidates.erode_cord {
                set.cord.extend(erode_3x3(s.cord, shape));
            } else {
                set.cord.extend(s.cord.iter().map(|&c| u8::from(c != 0)));
            }
        }
        if set.samples.is_empty() {
            return Err(TrainError::Data(format!(
                "no sample has an ROI on {} or more patches ({} samples)",
                config.training.min_roi_patches,
                dataset.len()
            )));
        }
        Ok(set)
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    fn pixels(&self) -> usize {
        self.side * self.side
    }

    fn span(&self, k: usize) -> std::ops::Range<usize> {
        k * self.pixels()..(k + 1) * self.pixels()
    }

    /// Min–max normalised image of training sample `k`.
    pub fn image(&self, k: usize) -> &[f32] {
        &self.images[self.span(k)]
    }

    /// Training ROI of sample `k`.
    pub fn roi(&self, k: usize) -> &[u8] {
        &self.roi[self.span(k)]
    }

    /// MC-inference ROI of sample `k`.
    pub fn mc_roi(&self, k: usize) -> &[u8] {
        &self.mc_roi[self.span(k)]
    }

    /// Cord mask of the anomaly candidates of sample `k`.
    pub fn candidate_cord(&self, k: usize) -> &[u8] {
        &self.cord[self.span(k)]
    }

    /// Steps (batches) per epoch.
    pub fn steps_per_epoch(&self, batch_size: usize) -> usize {
        self.len().div_ceil(batch_size.max(1))
    }
}

/// One stage of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct StagePlan {
    pub stage: Stage,
    pub epochs: usize,
    pub masking: MaskingStrategy,
}

/// The stages of a run and when its maps are refreshed.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingPlan {
    pub kind: RunKind,
    pub stages: Vec<StagePlan>,
    /// Refresh the uncertainty maps before every epoch that is a multiple of this.
    pub refresh_every: Option<usize>,
    /// Whether the maps drive masking (adaptation) or are only recorded (pretraining monitor).
    pub maps_drive_masking: bool,
    /// Refresh once more after the last epoch.
    pub final_refresh: bool,
    /// Added to the epoch to get the learning-rate schedule's position.
    pub learning_rate_offset: usize,
}

impl TrainingPlan {
    /// `u2ad pretrain`.
    pub fn pretraining(config: &TrainingConfig) -> TrainingPlan {
        let monitor = config.pretraining.monitor_every;
        TrainingPlan {
            kind: RunKind::Pretrain,
            stages: vec![StagePlan { stage: Stage::Pretrain, epochs: config.pretraining.epochs, masking: MaskingStrategy::Random }],
            refresh_every: (monitor > 0).then_some(monitor),
            maps_drive_masking: false,
            final_refresh: monitor > 0,
            learning_rate_offset: 0,
        }
    }

    /// `u2ad adapt`, from a model pretrained for `pretrained_epochs` epochs.
    pub fn adaptation(config: &TrainingConfig, pretrained_epochs: usize) -> TrainingPlan {
        let a = &config.adaptation;
        TrainingPlan {
            kind: RunKind::Adapt,
            stages: vec![
                StagePlan { stage: Stage::EuGuided, epochs: a.eu_epochs, masking: a.eu_masking.clone() },
                StagePlan { stage: Stage::AuGuided, epochs: a.au_epochs, masking: a.au_masking.clone() },
            ]
            .into_iter()
            .filter(|s| s.epochs > 0)
            .collect(),
            refresh_every: Some(a.refresh_every),
            maps_drive_masking: true,
            final_refresh: a.final_refresh,
            learning_rate_offset: match a.learning_rate_start {
                LearningRateStart::Restart => 0,
                LearningRateStart::Continue => pretrained_epochs,
            },
        }
    }

    pub fn total_epochs(&self) -> usize {
        self.stages.iter().map(|s| s.epochs).sum()
    }

    /// The stage of (0-based) `epoch`; past the end, the last stage.
    pub fn stage_at(&self, epoch: usize) -> &StagePlan {
        let mut end = 0;
        for s in &self.stages {
            end += s.epochs;
            if epoch < end {
                return s;
            }
        }
        self.stages.last().expect("a plan has a stage")
    }
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

/// Monte-Carlo inference on every training sample with `model` (inference backend): the EU and
/// AU maps, the anomaly candidates, and their cohort means.
pub fn refresh_maps<B: Backend>(
    model: &MaskedAutoencoder<B>,
    set: &TrainingSet,
    config: &TrainingConfig,
    epoch: usize,
    stage: Stage,
    observer: &mut dyn TrainingObserver,
) -> (UncertaintyMaps, RefreshRecord) {
    let started = Instant::now();
    observer.refresh_started(epoch, set.len());
    let mut rng = stream_rng(config.seed, RandomStream::MonteCarlo, epoch);
    let seeds: Vec<u64> = (0..set.len()).map(|_| rng.random()).collect();
    let pixels = set.pixels();
    let mut maps = UncertaintyMaps {
        epoch,
        pixels,
        epistemic: Vec::with_capacity(set.len() * pixels),
        aleatoric: Vec::with_capacity(set.len() * pixels),
        anomaly: Vec::new(),
        candidates: Vec::new(),
    };
    // A one-sided anomaly map is kept only when it differs from the AU.
    let polarity = config.adaptation.candidates.polarity;
    // A few slices at a time, for progress; each slice's schedule depends on its seed only.
    let chunk = config.adaptation.mc.passes_per_batch.clamp(1, 8);
    for start in (0..set.len()).step_by(chunk) {
        let end = (start + chunk).min(set.len());
        let slices: Vec<McSlice<'_>> =
            (start..end).map(|k| McSlice { image: set.image(k), roi: set.mc_roi(k), seed: seeds[k] }).collect();
        for (k, m) in (start..end).zip(mc_inference(model, &slices, &config.adaptation.mc)) {
            maps.epistemic.extend_from_slice(&m.epistemic);
            maps.aleatoric.extend_from_slice(&m.aleatoric);
            if polarity != Polarity::Both {
                maps.anomaly.extend(polarity.anomaly(set.image(k), &m.mean, &m.aleatoric));
            }
        }
        observer.refresh_progress(end);
    }
    let record = finish_maps(&mut maps, set, config, stage, started.elapsed().as_secs_f64());
    observer.refresh_finished(&record);
    (maps, record)
}

/// Computes the anomaly candidates of `maps` and the record of the refresh.
fn finish_maps(maps: &mut UncertaintyMaps, set: &TrainingSet, config: &TrainingConfig, stage: Stage, seconds: f64) -> RefreshRecord {
    let shape = PlaneShape { rows: set.side, cols: set.side };
    let filter = config.adaptation.candidates.filter();
    maps.candidates = Vec::with_capacity(maps.aleatoric.len());
    let (mut eu_sum, mut au_sum, mut roi_px, mut cord_au, mut cord_px, mut candidate_px) = (0f64, 0f64, 0usize, 0f64, 0usize, 0usize);
    for k in 0..set.len() {
        let (eu, au, roi, cord) = (maps.epistemic(k), maps.aleatoric(k), set.mc_roi(k), set.candidate_cord(k));
        for j in 0..maps.pixels {
            if roi[j] != 0 {
                eu_sum += eu[j] as f64;
                au_sum += au[j] as f64;
                roi_px += 1;
            }
            if cord[j] != 0 {
                cord_au += au[j] as f64;
                cord_px += 1;
            }
        }
        let candidates = anomaly_candidates(maps.anomaly(k), cord, shape, &filter).filtered_au;
        candidate_px += candidates.iter().filter(|&&v| v != 0.0).count();
        maps.candidates.extend_from_slice(&candidates);
    }
    let mean = |s: f64, n: usize| if n > 0 { s / n as f64 } else { 0.0 };
    RefreshRecord {
        epoch: maps.epoch,
        stage,
        mean_eu: mean(eu_sum, roi_px),
        mean_au: mean(au_sum, roi_px),
        mean_cord_au: mean(cord_au, cord_px),
        candidate_pixels: candidate_px,
        samples: set.len(),
        seconds,
    }
}

/// Recomputes the candidates of maps read from a checkpoint.
fn recompute_candidates(maps: &mut UncertaintyMaps, set: &TrainingSet, config: &TrainingConfig) {
    let _ = finish_maps(maps, set, config, Stage::Pretrain, 0.0);
}

/// The state saved in a checkpoint after `epochs_done` epochs.
fn state_of(
    plan: &TrainingPlan,
    config: &TrainingConfig,
    set: &TrainingSet,
    run: &RunOptions,
    epochs_done: usize,
    history: &History,
    maps: Option<&UncertaintyMaps>,
) -> CheckpointState {
    CheckpointState {
        format_version: CHECKPOINT_VERSION,
        kind: plan.kind,
        epochs_done,
        total_epochs: plan.total_epochs(),
        config: config.clone(),
        dataset_hash: run.dataset_hash.clone(),
        samples: set.samples.clone(),
        history: history.clone(),
        maps_epoch: maps.map(|m| m.epoch),
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io { path: path.display().to_string(), source }
}

/// Runs `plan` from `model` (or from the latest checkpoint with `run.resume`).
pub fn train<B: AutodiffBackend>(
    model: MaskedAutoencoder<B>,
    set: &TrainingSet,
    config: &TrainingConfig,
    plan: &TrainingPlan,
    run: &RunOptions,
    observer: &mut dyn TrainingObserver,
    device: &B::Device,
) -> Result<TrainingOutcome<B>, TrainError> {
    config.validate()?;
    let total = plan.total_epochs();
    if total == 0 {
        return Err(TrainingConfigError("the run has 0 epochs".into()).into());
    }
    std::fs::create_dir_all(&run.dir).map_err(io(&run.dir))?;
    remove_leftovers(&run.dir);
    let mut model = model;
    let mut optim = optimizer::<B>(&config.optimizer);
    let mut history = History::default();
    let mut maps: Option<UncertaintyMaps> = None;
    let mut start = 0;
    let mut checkpoint = None;
    match (run.resume, latest_checkpoint(&run.dir)) {
        (true, Some(dir)) => {
            let loaded = load_checkpoint(&dir, model, optim, device)?;
            let s = &loaded.state;
            let shown = dir.display();
            if s.kind != plan.kind {
                return Err(TrainError::Data(format!("{shown}: a checkpoint of `u2ad {}`, not of this command", s.kind.name())));
            }
            if s.config != *config {
                return Err(TrainError::Data(format!("{shown}: the checkpoint was made with another configuration")));
            }
            if s.dataset_hash != run.dataset_hash || s.samples != set.samples {
                return Err(TrainError::Data(format!("{shown}: the checkpoint was made on another dataset file")));
            }
            start = s.epochs_done;
            history = loaded.state.history.clone();
            maps = loaded.maps;
            if let Some(m) = maps.as_mut() {
                if m.epistemic.len() != set.len() * set.pixels() {
                    return Err(TrainError::Data(format!("{shown}: the saved maps do not match the training samples")));
                }
                recompute_candidates(m, set, config);
            }
            model = loaded.model;
            optim = loaded.optimizer;
            checkpoint = Some(dir);
        }
        (true, None) => {
            return Err(TrainError::Data(format!(
                "{}: no checkpoint to resume from (start without --resume)",
                run.dir.join(crate::checkpoint::CHECKPOINTS_DIR).display()
            )))
        }
        (false, _) if !list_checkpoints(&run.dir).is_empty() => {
            return Err(TrainError::Data(format!(
                "{}: holds checkpoints of an earlier run (use --resume to continue it, or another output folder)",
                run.dir.display()
            )))
        }
        (false, _) => {}
    }
    let resumed_at = start;
    let steps = set.steps_per_epoch(config.training.batch_size);
    observer.run_started(start, total, steps)?;
    let grid = model.grid();
    let side = grid.image_size;
    let schedule = config.optimizer.schedule();

    for epoch in start..total {
        let stage = plan.stage_at(epoch);
        if let Some(every) = plan.refresh_every {
            let stale = maps.as_ref().is_none_or(|m| m.epoch != epoch);
            if epoch % every == 0 && stale || (plan.maps_drive_masking && maps.is_none()) {
                let (fresh, record) = refresh_maps(&model.valid(), set, config, epoch, stage.stage, observer);
                history.refreshes.push(record);
                maps = Some(fresh);
            }
        }
        let started = Instant::now();
        let lr = schedule.at(plan.learning_rate_offset + epoch);
        let loss_config = config.loss.at(epoch, total);
        let mut rng = stream_rng(config.seed, RandomStream::Epoch, epoch);
        let mut order: Vec<usize> = (0..set.len()).collect();
        order.shuffle(&mut rng);
        let (mut loss_sum, mut image_sum, mut edge_sum) = (0f64, 0f64, 0f64);
        let guiding = if plan.maps_drive_masking { maps.as_ref() } else { None };
        for (step, batch) in order.chunks(config.training.batch_size).enumerate() {
            let mut pixels = Vec::with_capacity(batch.len() * set.pixels());
            for &k in batch {
                pixels.extend(augment(set.image(k), &config.augmentation, &mut rng));
            }
            let inputs: Vec<MaskingInput<'_>> = batch
                .iter()
                .map(|&k| MaskingInput {
                    roi: set.roi(k),
                    epistemic: guiding.map(|m| m.epistemic(k)),
                    candidates: guiding.map(|m| m.candidates(k)),
                })
                .collect();
            let masks = mask_patches(&inputs, grid, config.training.mask_ratio, &stage.masking, &mut rng)?;
            let n = batch.len();
            let images = Tensor::<B, 4>::from_data(TensorData::new(pixels, [n, 1, side, side]), device);
            let roi: Vec<f32> = batch.iter().flat_map(|&k| set.roi(k).iter().map(|&r| f32::from(u8::from(r != 0)))).collect();
            let roi = Tensor::<B, 4>::from_data(TensorData::new(roi, [n, 1, side, side]), device);
            let reconstruction = model.forward(images.clone(), &masks);
            let terms = crate::loss::reconstruction_loss(&reconstruction, images, roi, &masks, &loss_config);
            let loss: f64 = terms.total.clone().into_scalar().elem();
            image_sum += terms.image.clone().into_scalar().elem::<f64>();
            edge_sum += terms.edge.clone().into_scalar().elem::<f64>();
            loss_sum += loss;
            let grads = GradientsParams::from_grads(terms.total.backward(), &model);
            model = optim.step(lr, model, grads);
            observer.step_finished(epoch, step, loss);
        }
        let record = EpochRecord {
            epoch: epoch + 1,
            stage: stage.stage,
            learning_rate: lr,
            loss: loss_sum / steps as f64,
            image_mse: image_sum / steps as f64,
            edge_mse: edge_sum / steps as f64,
            steps,
            seconds: started.elapsed().as_secs_f64(),
        };
        observer.epoch_finished(&record);
        history.epochs.push(record);
        let done = epoch + 1;
        if done == total && plan.final_refresh {
            let (fresh, record) = refresh_maps(&model.valid(), set, config, done, stage.stage, observer);
            history.refreshes.push(record);
            maps = Some(fresh);
        }
        if done % config.training.checkpoint_every == 0 || done == total {
            let kept = if plan.maps_drive_masking || done == total { maps.as_ref() } else { None };
            let state = state_of(plan, config, set, run, done, &history, kept);
            let path = save_checkpoint(&run.dir, &state, &model, &optim, kept)?;
            observer.checkpoint_saved(&path);
            checkpoint = Some(path);
        }
        history.write_csv(&run.dir).map_err(|e| TrainError::Data(e.to_string()))?;
    }
    history.write_csv(&run.dir).map_err(|e| TrainError::Data(e.to_string()))?;
    Ok(TrainingOutcome { model, history, maps, resumed_at, checkpoint })
}

/// One masked reconstruction of a slice, for figures.
#[derive(Debug, Clone, PartialEq)]
pub struct ExampleReconstruction {
    /// The min–max normalised input.
    pub image: Vec<f32>,
    /// Per patch: masked or not.
    pub mask: Vec<bool>,
    /// The image head's output on every pixel.
    pub reconstruction: Vec<f32>,
    pub side: usize,
    pub patch_size: usize,
}

impl ExampleReconstruction {
    /// The input on visible patches, the reconstruction on masked ones (MAE's usual display).
    pub fn pasted(&self) -> Vec<f32> {
        let grid = crate::config::PatchGrid { image_size: self.side, patch_size: self.patch_size };
        let mut out = self.image.clone();
        for i in (0..grid.num_patches()).filter(|&i| self.mask[i]) {
            for j in grid.pixels_of(i) {
                out[j] = self.reconstruction[j];
            }
        }
        out
    }
}

/// Reconstructs `image` with a random mask of `mask_ratio` of its ROI patches drawn from the
/// run's figure stream.
pub fn example_reconstruction<B: Backend>(
    model: &MaskedAutoencoder<B>,
    image: &[f32],
    roi: &[u8],
    mask_ratio: f64,
    seed: u64,
) -> Result<ExampleReconstruction, MaskingError> {
    let grid = model.grid();
    let mut normalised = image.to_vec();
    min_max_normalise(&mut normalised);
    let mut rng = stream_rng(seed, RandomStream::Figure, 0);
    let input = [MaskingInput { roi, epistemic: None, candidates: None }];
    let mask = mask_patches(&input, grid, mask_ratio, &MaskingStrategy::Random, &mut rng)?.remove(0);
    let device = model.encoder_position.device();
    let side = grid.image_size;
    let x = Tensor::<B, 4>::from_data(TensorData::new(normalised.clone(), [1, 1, side, side]), &device);
    let out = model.forward(x, std::slice::from_ref(&mask));
    let reconstruction: Vec<f32> =
        unpatchify(out.image_patches, grid.patch_size).into_data().convert::<f32>().to_vec().expect("f32 data");
    Ok(ExampleReconstruction { image: normalised, mask, reconstruction, side, patch_size: grid.patch_size })
}
