//! `u2ad pretrain`: the masked autoencoder learns healthy cords (random ROI masking).

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use clap::Args;
use serde_json::json;

use crate::training_run::{self as common, TrainingFlags};
use super::Context;

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
u2ad pretrain healthy.u2ds --out runs/pretrain\n  \
u2ad pretrain healthy.u2ds --out runs/demo --config configs/demo.toml\n  \
u2ad pretrain healthy.u2ds --out runs/demo --resume\n\n\
Writes into --out: model.safetensors (+ .json sidecar), config.toml, losses.csv, training.png, \
reconstruction.png, checkpoints/.")]
pub struct PretrainArgs {
    /// Prepared healthy cohort (.u2ds from `u2ad prepare`).
    #[arg(required_unless_present = "data_flag")]
    pub data: Option<PathBuf>,
    /// The old spelling of DATA (hidden; kept for one release).
    #[arg(long = "data", value_name = "DATA", hide = true, conflicts_with = "data")]
    pub data_flag: Option<PathBuf>,
    /// Run folder.
    #[arg(short, long)]
    pub out: PathBuf,
    /// Epochs (overrides pretraining.epochs).
    #[arg(long)]
    pub epochs: Option<usize>,
    #[command(flatten)]
    pub training: TrainingFlags,
}

impl PretrainArgs {
    /// `u2ad pretrain DATA --out OUT` with every other flag at its default.
    pub fn new(data: PathBuf, out: PathBuf) -> Self {
        PretrainArgs { data: Some(data), data_flag: None, out, epochs: None, training: TrainingFlags::default() }
    }
}

pub fn run(args: PretrainArgs, context: &Context) -> anyhow::Result<()> {
    let device = crate::device::resolve(args.training.device.choice, context.quiet)?;
    crate::device::run_on(device, OnDevice(args, context))
}

/// The verb's work, for [`crate::device::run_on`].
struct OnDevice<'a>(PretrainArgs, &'a Context);

impl crate::device::BackendJob for OnDevice<'_> {
    type Output = anyhow::Result<()>;
    fn run<B: burn::tensor::backend::Backend>(self, device: &B::Device) -> Self::Output {
        run_on::<burn::backend::Autodiff<B>>(self.0, self.1, device)
    }
}

fn run_on<B: AutodiffBackend>(args: PretrainArgs, context: &Context, device: &B::Device) -> anyhow::Result<()> {
    let started = Instant::now();
    let dataset = common::dataset(&args.data, &args.data_flag)?;
    let mut config = common::base_config(&args.training, &args.out)?;
    if let Some(epochs) = args.epochs {
        config.pretraining.epochs = epochs;
    }
    let config_file = common::resolved_config(&config, &args.out)?;
    let data = common::load_data(&dataset, &config)?;
    if !context.quiet {
        eprintln!(
            "pretraining on {} samples of {} ({} left out: ROI on fewer than {} patches), {} epochs",
            data.set.len(),
            dataset.display(),
            data.set.skipped.len(),
            config.training.min_roi_patches,
            config.pretraining.epochs
        );
    }
    let run = u2ad_model::train::RunOptions::new(args.out.clone(), data.hash.clone(), args.training.resume);
    let mut observer = common::ProgressObserver::new("pretrain", context.quiet, config_file);
    let outcome = u2ad_model::pretrain::<B>(&data.set, &config, &run, &mut observer, device);
    observer.finish();
    let outcome = outcome?;
    let seconds = started.elapsed().as_secs_f64();
    let provenance = common::provenance("pretrain", &data, &config, config.pretraining.epochs, json!({}));
    let model = common::write_outputs(&args.out, &data, &config, &outcome, provenance, seconds)?;
    common::report(context, &model, config.pretraining.epochs - outcome.resumed_at, seconds);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_gives_what_clap_gives() {
        let crate::Command::Pretrain(parsed) = super::super::parse_command(&["pretrain", "healthy.u2ds", "--out", "runs/pretrain"]) else { unreachable!() };
        super::super::assert_same(&PretrainArgs::new("healthy.u2ds".into(), "runs/pretrain".into()), &parsed);
    }
}
