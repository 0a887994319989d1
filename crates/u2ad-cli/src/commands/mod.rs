//! The verbs of the `u2ad` command line.

pub mod adapt;
pub mod baseline;
pub mod calibrate;
pub mod call_args;
pub mod demo;
pub mod detect;
pub mod evaluate;
pub mod import;
pub mod input_args;
pub mod prepare;
pub mod pretrain;
pub mod run_args;
pub mod synth;

/// What every verb needs from the global flags.
pub struct Context {
    pub quiet: bool,
}

/// Loads a model file (checked: its weight hash and finite weights), warning about a file of an
/// older u2ad that carries no weight hash.
pub fn load_checked_model<B: burn::tensor::backend::Backend>(
    path: &std::path::Path,
    device: &B::Device,
) -> anyhow::Result<(u2ad_model::MaskedAutoencoder<B>, u2ad_model::ModelInfo)> {
    let (model, info) = u2ad_model::load_model::<B>(path, device)?;
    if !info.sealed() {
        tracing::warn!("{}: the model file carries no weight hash (an older u2ad wrote it): damage to it cannot be detected", path.display());
    }
    Ok((model, info))
}

/// The verb `argv` names, parsed by the command line itself (tests: a verb's constructor gives
/// what clap gives).
#[cfg(test)]
pub(crate) fn parse_command(argv: &[&str]) -> crate::Command {
    use clap::Parser as _;
    crate::Cli::try_parse_from(std::iter::once("u2ad").chain(argv.iter().copied())).unwrap_or_else(|e| panic!("{argv:?}: {e}")).command
}

/// The same flags, field by field (their `Debug` texts, since not every flag type compares).
#[cfg(test)]
pub(crate) fn assert_same<T: std::fmt::Debug>(built: &T, parsed: &T) {
    assert_eq!(format!("{built:#?}"), format!("{parsed:#?}"));
}
