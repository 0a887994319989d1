//! Checkpoints of a run: where a run starts (a new run, or the latest checkpoint checked
//! against this run with `--resume`) and the state each checkpoint saves.

use std::path::PathBuf;

use burn::tensor::backend::AutodiffBackend;

use super::refresh::recompute_candidates;
use super::{RunOptions, TrainError, TrainingConfig, TrainingPlan, TrainingSet};
use crate::checkpoint::{
    latest_checkpoint, list_checkpoints, load_checkpoint, CheckpointState, TrainingOptimizer, UncertaintyMaps,
    CHECKPOINT_VERSION,
};
use crate::mae::MaskedAutoencoder;
use crate::records::History;

/// Where a run starts: the model, optimizer, history and maps it trains on from epoch `start`
/// (0 for a new run), and the checkpoint they were read from.
pub(super) struct Start<B: AutodiffBackend> {
    pub(super) model: MaskedAutoencoder<B>,
    pub(super) optim: TrainingOptimizer<B>,
    pub(super) history: History,
    pub(super) maps: Option<UncertaintyMaps>,
    pub(super) start: usize,
    pub(super) checkpoint: Option<PathBuf>,
}

/// With `run.resume`, the state of the latest checkpoint in `run.dir`, checked against this
/// run; without it, `model` and `optim` from epoch 0 (refused when `run.dir` holds checkpoints
/// of an earlier run).
pub(super) fn resume_or_start<B: AutodiffBackend>(
    mut model: MaskedAutoencoder<B>,
    mut optim: TrainingOptimizer<B>,
    set: &TrainingSet,
    config: &TrainingConfig,
    plan: &TrainingPlan,
    run: &RunOptions,
    device: &B::Device,
) -> Result<Start<B>, TrainError> {
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
    Ok(Start { model, optim, history, maps, start, checkpoint })
}

/// The state saved in a checkpoint after `epochs_done` epochs.
pub(super) fn state_of(
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
