//! The verbs of the `u2ad` command line.

pub mod baseline;
pub mod detect;
pub mod evaluate;
pub mod prepare;
pub mod synth;

/// What every verb needs from the global flags.
pub struct Context {
    pub quiet: bool,
}
