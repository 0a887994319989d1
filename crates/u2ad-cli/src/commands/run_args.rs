//! The "Run" flags several verbs share, each defined once under the same help heading: `--jobs`
//! (`prepare`, `detect`, `baseline`, `synth`) and `--device` (`detect`, `pretrain`, `adapt`,
//! `demo`).
//!
//! `--seed` stays with each verb, under the same heading: it seeds something different in each
//! (detect's mask schedules, training's weights and masks, evaluate's bootstrap, synth's cohort,
//! the whole demo), and pretrain's and adapt's is an override of the configuration without a
//! default of its own.

use clap::Args;

use crate::device::{parse_device, DeviceChoice};

/// `-j/--jobs`: how many subjects are processed at once (shared by `prepare`, `detect`,
/// `baseline` and `synth`).
// The derived `Default` is what clap gives when the flag is not given.
#[derive(Args, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[command(next_help_heading = "Run")]
pub struct JobsArg {
    /// Subjects processed at once (threads; default: all cores).
    #[arg(short, long)]
    pub jobs: Option<usize>,
}

impl JobsArg {
    /// The thread count for `rayon::ThreadPoolBuilder::num_threads`: the number given, or 0
    /// (rayon's default: all cores).
    pub fn threads(self) -> usize {
        self.jobs.unwrap_or(0)
    }
}

/// `--device`: where the model runs (shared by `detect`, `pretrain`, `adapt` and `demo`).
// The derived `Default` is what clap gives when the flag is not given.
#[derive(Args, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[command(next_help_heading = "Run")]
pub struct DeviceArg {
    /// Where the model runs: auto (CUDA when this build has it and a driver, else the CPU), cpu,
    /// cuda, cuda:N (`cuda` needs a build with `--features cuda`).
    #[arg(long = "device", id = "device", value_name = "DEVICE", value_parser = parse_device, default_value_t = DeviceChoice::DEFAULT)]
    pub choice: DeviceChoice,
}
