//! The verbs of the `u2ad` command line.

pub mod adapt;
pub mod baseline;
pub mod calibrate;
pub mod call_args;
pub mod demo;
pub mod detect;
pub mod evaluate;
pub mod import;
pub mod prepare;
pub mod pretrain;
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
    if !info.sealed {
        tracing::warn!("{}: the model file carries no weight hash (an older u2ad wrote it): damage to it cannot be detected", path.display());
    }
    Ok((model, info))
}
