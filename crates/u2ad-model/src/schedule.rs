//! What changes with the epoch: the learning rate (step decay, as the reference's
//! `StepLR(step_size=50, gamma=0.1)`), the loss's structure weight (the reference's epoch-0 rule,
//! bug B1 of `docs/reference-notes.md`) and the random streams of each epoch.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::loss::StructureWeight;

/// Step decay: `learning_rate · decay_factor ^ ⌊epoch / decay_every_epochs⌋`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepDecay {
    pub learning_rate: f64,
    pub decay_every_epochs: usize,
    pub decay_factor: f64,
}

impl StepDecay {
    /// The learning rate of (0-based) `epoch`. `decay_every_epochs = 0` means no decay.
    pub fn at(&self, epoch: usize) -> f64 {
        if self.decay_every_epochs == 0 {
            return self.learning_rate;
        }
        let steps = (epoch / self.decay_every_epochs) as i32;
        self.learning_rate * self.decay_factor.powi(steps)
    }
}

/// Which [`StructureWeight`] each epoch of a training command uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StructureSchedule {
    /// The released code: `2 − a` at the command's first epoch, `1 + a` afterwards (its test
    /// `epoch > 0.5 * epoch` is true from epoch 1 on, bug B1).
    #[default]
    Reference,
    /// `1 + a` at every epoch.
    OnePlusMaskedNeighbourhood,
    /// The reference's evident intent: `2 − a` during the first half of the command's epochs,
    /// `1 + a` from epoch `⌈total / 2⌉` on.
    SwitchAtHalf,
}

impl StructureSchedule {
    /// The structure weight of (0-based) `epoch` out of `total` epochs of the command.
    pub fn at(self, epoch: usize, total: usize) -> StructureWeight {
        let early = match self {
            StructureSchedule::Reference => epoch == 0,
            StructureSchedule::OnePlusMaskedNeighbourhood => false,
            StructureSchedule::SwitchAtHalf => epoch < total.div_ceil(2),
        };
        if early {
            StructureWeight::TwoMinusMaskedNeighbourhood
        } else {
            StructureWeight::OnePlusMaskedNeighbourhood
        }
    }
}

/// The independent random streams of a run. Each is a ChaCha8 stream of the run's seed, so the
/// state at the start of any epoch is a function of `(seed, purpose, epoch)` alone and resuming
/// needs only the epoch number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum RandomStream {
    /// Sample order, augmentation and masks of a training epoch.
    Epoch = 1,
    /// Mask schedules of the Monte-Carlo inference run before an epoch.
    MonteCarlo = 2,
    /// The reconstruction shown in the run's figure.
    Figure = 3,
}

/// The generator of stream `purpose` at `epoch` for `seed`.
pub fn stream_rng(seed: u64, purpose: RandomStream, epoch: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(((purpose as u64) << 40) | epoch as u64);
    rng
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn step_decay_divides_by_ten_every_fifty_epochs() {
        let s = StepDecay { learning_rate: 3e-3, decay_every_epochs: 50, decay_factor: 0.1 };
        assert_eq!(s.at(0), 3e-3);
        assert_eq!(s.at(49), 3e-3);
        assert!((s.at(50) - 3e-4).abs() < 1e-18);
        assert!((s.at(199) - 3e-6).abs() < 1e-18);
        let flat = StepDecay { decay_every_epochs: 0, ..s };
        assert_eq!(flat.at(1000), 3e-3);
    }

    #[test]
    fn structure_schedules() {
        use StructureWeight::*;
        assert_eq!(StructureSchedule::Reference.at(0, 10), TwoMinusMaskedNeighbourhood);
        assert_eq!(StructureSchedule::Reference.at(1, 10), OnePlusMaskedNeighbourhood);
        assert_eq!(StructureSchedule::OnePlusMaskedNeighbourhood.at(0, 10), OnePlusMaskedNeighbourhood);
        assert_eq!(StructureSchedule::SwitchAtHalf.at(4, 9), TwoMinusMaskedNeighbourhood);
        assert_eq!(StructureSchedule::SwitchAtHalf.at(5, 9), OnePlusMaskedNeighbourhood);
    }

    #[test]
    fn streams_depend_on_seed_purpose_and_epoch_only() {
        let draw = |seed, purpose, epoch| stream_rng(seed, purpose, epoch).random::<u64>();
        assert_eq!(draw(7, RandomStream::Epoch, 3), draw(7, RandomStream::Epoch, 3));
        assert_ne!(draw(7, RandomStream::Epoch, 3), draw(7, RandomStream::Epoch, 4));
        assert_ne!(draw(7, RandomStream::Epoch, 3), draw(7, RandomStream::MonteCarlo, 3));
        assert_ne!(draw(7, RandomStream::Epoch, 3), draw(8, RandomStream::Epoch, 3));
    }
}
