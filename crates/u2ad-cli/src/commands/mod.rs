//! The verbs of the `u2ad` command line.

pub mod adapt;
pub mod baseline;
pub mod call_args;
pub mod cohort_outputs;
pub mod demo;
pub mod detect;
pub mod evaluate;
pub mod import;
pub mod prepare;
pub mod pretrain;
pub mod synth;
pub mod train_common;
pub mod train_plots;

/// What every verb needs from the global flags.
pub struct Context {
    pub quiet: bool,
}
