//! What a training run records: one row per epoch (losses) and one per Monte-Carlo refresh
//! (cohort-mean uncertainties), kept in the checkpoint and written as two CSV files.
//!
//! `losses.csv`: `epoch,stage,lr,loss,image_mse,edge_mse,seconds`; `epoch` counts from 1 (the
//! number of epochs done when the row was written), `loss` is the mean over the epoch's batches of
//! `image_weight · image_mse + edge_weight · edge_mse`, `seconds` the wall time of the epoch.
//!
//! `uncertainty.csv`: `epoch,stage,mean_eu,mean_au,mean_cord_au,candidate_pixels,samples,seconds`;
//! `epoch` is the number of training epochs done before the refresh (0 = the starting weights),
//! `stage` the stage the maps are made for, `mean_eu` and `mean_au` the means of the EU and AU maps
//! over every MC-ROI pixel of the cohort, `mean_cord_au` the mean AU over the eroded cord,
//! `candidate_pixels` the number of anomaly-candidate pixels in the cohort.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use u2ad_io::staging::write_file_atomically;

/// A stage of training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Random ROI masking on healthy scans.
    Pretrain,
    /// Adaptation, first stage: epistemic-uncertainty-guided masking.
    EuGuided,
    /// Adaptation, second stage: aleatoric-uncertainty-guided masking.
    AuGuided,
}

impl Stage {
    /// The name used in records and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Pretrain => "pretrain",
            Stage::EuGuided => "eu_guided",
            Stage::AuGuided => "au_guided",
        }
    }
}

/// One training epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epochs done, counting this one (1-based).
    pub epoch: usize,
    pub stage: Stage,
    pub learning_rate: f64,
    pub loss: f64,
    pub image_mse: f64,
    pub edge_mse: f64,
    /// Batches (optimizer steps) in the epoch.
    pub steps: usize,
    pub seconds: f64,
}

/// One Monte-Carlo refresh of the uncertainty maps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshRecord {
    /// Training epochs done before the refresh (0 = the starting weights).
    pub epoch: usize,
    pub stage: Stage,
    pub mean_eu: f64,
    pub mean_au: f64,
    pub mean_cord_au: f64,
    pub candidate_pixels: usize,
    pub samples: usize,
    pub seconds: f64,
}

/// Everything recorded so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub epochs: Vec<EpochRecord>,
    pub refreshes: Vec<RefreshRecord>,
}

impl History {
    /// The losses CSV (module documentation).
    pub fn losses_csv(&self) -> String {
        let mut s = String::from("epoch,stage,lr,loss,image_mse,edge_mse,seconds\n");
        for r in &self.epochs {
            let _ = writeln!(
                s,
                "{},{},{:e},{:.6e},{:.6e},{:.6e},{:.2}",
                r.epoch,
                r.stage.name(),
                // 12 significant digits: 3e-3 x 0.1 prints as 3e-4, not 3.0000000000000003e-4.
                format!("{:.11e}", r.learning_rate).parse::<f64>().unwrap_or(r.learning_rate),
                r.loss,
                r.image_mse,
                r.edge_mse,
                r.seconds
            );
        }
        s
    }

    /// The uncertainty CSV (module documentation).
    pub fn uncertainty_csv(&self) -> String {
        let mut s = String::from("epoch,stage,mean_eu,mean_au,mean_cord_au,candidate_pixels,samples,seconds\n");
        for r in &self.refreshes {
            let _ = writeln!(
                s,
                "{},{},{:.6e},{:.6e},{:.6e},{},{},{:.2}",
                r.epoch,
                r.stage.name(),
                r.mean_eu,
                r.mean_au,
                r.mean_cord_au,
                r.candidate_pixels,
                r.samples,
                r.seconds
            );
        }
        s
    }

    /// Writes `losses.csv` and, when there was a refresh, `uncertainty.csv` into `dir`, each
    /// atomically.
    pub fn write_csv(&self, dir: &Path) -> u2ad_core::Result<()> {
        write_file_atomically(&dir.join(LOSSES_CSV), self.losses_csv().as_bytes())?;
        if !self.refreshes.is_empty() {
            write_file_atomically(&dir.join(UNCERTAINTY_CSV), self.uncertainty_csv().as_bytes())?;
        }
        Ok(())
    }

    /// Epochs at which the stage changes: `(epochs done before the new stage, new stage)`.
    pub fn stage_boundaries(&self) -> Vec<(usize, Stage)> {
        let mut out = Vec::new();
        let mut previous: Option<Stage> = None;
        for r in &self.epochs {
            if previous.is_some_and(|p| p != r.stage) {
                out.push((r.epoch - 1, r.stage));
            }
            previous = Some(r.stage);
        }
        out
    }
}

/// File name of the per-epoch losses.
pub const LOSSES_CSV: &str = "losses.csv";
/// File name of the per-refresh uncertainties.
pub const UNCERTAINTY_CSV: &str = "uncertainty.csv";

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(epoch: usize, stage: Stage) -> EpochRecord {
        EpochRecord { epoch, stage, learning_rate: 3e-3, loss: 0.5, image_mse: 0.04, edge_mse: 0.1, steps: 8, seconds: 1.234 }
    }

    #[test]
    fn csv_rows_and_stage_boundaries() {
        let history = History {
            epochs: vec![epoch(1, Stage::EuGuided), epoch(2, Stage::EuGuided), epoch(3, Stage::AuGuided)],
            refreshes: vec![RefreshRecord {
                epoch: 0,
                stage: Stage::EuGuided,
                mean_eu: 1.5e-4,
                mean_au: 0.03,
                mean_cord_au: 0.02,
                candidate_pixels: 12,
                samples: 4,
                seconds: 2.0,
            }],
        };
        let losses = history.losses_csv();
        let lines: Vec<&str> = losses.lines().collect();
        assert_eq!(lines[0], "epoch,stage,lr,loss,image_mse,edge_mse,seconds");
        assert_eq!(lines[1], "1,eu_guided,3e-3,5.000000e-1,4.000000e-2,1.000000e-1,1.23");
        assert_eq!(lines.len(), 4);
        let unc = history.uncertainty_csv();
        assert_eq!(unc.lines().nth(1).unwrap(), "0,eu_guided,1.500000e-4,3.000000e-2,2.000000e-2,12,4,2.00");
        assert_eq!(history.stage_boundaries(), vec![(2, Stage::AuGuided)]);
    }

    #[test]
    fn decayed_learning_rates_print_short() {
        let mut record = epoch(1, Stage::Pretrain);
        record.learning_rate = 3e-3 * 0.1f64.powi(1);
        assert_ne!(record.learning_rate, 3e-4, "the product is not the literal");
        let history = History { epochs: vec![record], refreshes: Vec::new() };
        assert!(history.losses_csv().lines().nth(1).unwrap().starts_with("1,pretrain,3e-4,"), "{}", history.losses_csv());
    }
}
