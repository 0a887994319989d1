//! The training run's progress on the terminal, and the moment its configuration is written.

use std::path::PathBuf;

use indicatif::ProgressBar;
use u2ad_model::records::{EpochRecord, RefreshRecord};
use u2ad_model::train::TrainError;
use u2ad_model::TrainingObserver;

use crate::progress;

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
        u2ad_io::staging::write_file_atomically(path, text.as_bytes()).map_err(|e| TrainError::Data(e.to_string()))?;
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
