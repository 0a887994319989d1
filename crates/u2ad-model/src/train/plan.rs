//! The plan of a run: its stages (epochs and masking of each), when its uncertainty maps are
//! refreshed, and where the learning-rate schedule starts.

use super::{LearningRateStart, TrainingConfig};
use crate::checkpoint::RunKind;
use crate::masking::MaskingStrategy;
use crate::records::Stage;

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
