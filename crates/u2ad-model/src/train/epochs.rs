//! The epoch loop: per epoch, the maps refreshed when due, the samples in the epoch's order,
//! augmented, masked and batched, one Adam step per batch, the epoch's record and checkpoint.

use std::path::Path;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use rand::seq::SliceRandom;

use super::refresh::refresh_maps;
use super::resume::{resume_or_start, state_of, Start};
use super::{
    optimizer, RunOptions, TrainError, TrainingConfig, TrainingConfigError, TrainingObserver, TrainingOutcome,
    TrainingPlan, TrainingSet,
};
use crate::augment::augment;
use crate::checkpoint::{remove_leftovers, save_checkpoint};
use crate::mae::MaskedAutoencoder;
use crate::masking::{mask_patches, MaskingInput};
use crate::records::EpochRecord;
use crate::schedule::{stream_rng, RandomStream};

/// An epoch's losses: the steps not yet read ([`RunOptions::loss_readout_steps`]), and the sums of
/// those read.
struct LossTally<B: burn::tensor::backend::Backend> {
    /// Each pending step's [total, image, edge] losses, on the device.
    pending: Vec<Tensor<B, 1>>,
    /// Sums of the read steps' total, image and edge losses, added in step order.
    sums: [f64; 3],
    /// The 0-based step of the first pending one.
    next_step: usize,
}

impl<B: burn::tensor::backend::Backend> Default for LossTally<B> {
    fn default() -> Self {
        LossTally { pending: Vec::new(), sums: [0.0; 3], next_step: 0 }
    }
}

impl<B: burn::tensor::backend::Backend> LossTally<B> {
    /// Reads the pending steps in one transfer, adds them up and reports each to `observer`.
    fn read(&mut self, epoch: usize, observer: &mut dyn TrainingObserver) {
        if self.pending.is_empty() {
            return;
        }
        let values: Vec<f32> =
            Tensor::cat(std::mem::take(&mut self.pending), 0).into_data().convert::<f32>().to_vec().expect("f32 losses");
        for step in values.chunks_exact(3) {
            for (sum, &value) in self.sums.iter_mut().zip(step) {
                *sum += f64::from(value);
            }
            observer.step_finished(epoch, self.next_step, f64::from(step[0]));
            self.next_step += 1;
        }
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
    let Start { mut model, mut optim, mut history, mut maps, start, mut checkpoint } =
        resume_or_start(model, optimizer::<B>(&config.optimizer), set, config, plan, run, device)?;
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
        let mut losses = LossTally::<B::InnerBackend>::default();
        let guiding = if plan.maps_drive_masking { maps.as_ref() } else { None };
        for batch in order.chunks(config.training.batch_size) {
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
            // The three terms stay on the device (without their graph) until the readout.
            losses.pending.push(Tensor::cat(vec![terms.total.clone().inner(), terms.image.inner(), terms.edge.inner()], 0));
            let grads = GradientsParams::from_grads(terms.total.backward(), &model);
            model = optim.step(lr, model, grads);
            if losses.pending.len() >= run.loss_readout_steps.max(1) {
                losses.read(epoch, observer);
            }
        }
        losses.read(epoch, observer);
        let [loss_sum, image_sum, edge_sum] = losses.sums;
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
