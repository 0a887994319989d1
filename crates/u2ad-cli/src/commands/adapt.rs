//! `u2ad adapt`: the pretrained model adapts to the target cohort without labels, guided by its
//! own epistemic (EU) and then aleatoric (AU) uncertainty maps.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context as _};
use burn::tensor::backend::AutodiffBackend;
use clap::Args;
use serde_json::json;
use u2ad_model::train::LearningRateStart;

use crate::training_run::{self as common, TrainingFlags};
use super::Context;

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
u2ad adapt cohort.u2ds --model runs/pretrain/model.safetensors --out runs/adapt\n  \
u2ad adapt cohort.u2ds --model runs/demo/model.safetensors --out runs/demo-adapt --config configs/demo.toml\n\n\
Writes into --out: model.safetensors (+ .json sidecar), config.toml, losses.csv, uncertainty.csv, \
training.png, reconstruction.png, uncertainty.png, checkpoints/ (with the latest EU/AU maps).")]
pub struct AdaptArgs {
    /// Prepared target cohort (.u2ds from `u2ad prepare`); no lesion labels are used.
    #[arg(required_unless_present = "data_flag")]
    pub data: Option<PathBuf>,
    /// The old spelling of DATA (hidden; kept for one release).
    #[arg(long = "data", value_name = "DATA", hide = true, conflicts_with = "data")]
    pub data_flag: Option<PathBuf>,
    /// Pretrained model (model.safetensors written by `u2ad pretrain`).
    #[arg(long)]
    pub model: PathBuf,
    /// Run folder.
    #[arg(short, long)]
    pub out: PathBuf,
    /// Epochs of EU-guided masking (overrides adaptation.eu_epochs).
    #[arg(long)]
    pub eu_epochs: Option<usize>,
    /// Epochs of AU-guided masking that follow (overrides adaptation.au_epochs).
    #[arg(long)]
    pub au_epochs: Option<usize>,
    /// Refresh the EU and AU maps by MC inference every N epochs (overrides adaptation.refresh_every).
    #[arg(long, value_name = "N")]
    pub refresh_every: Option<usize>,
    #[command(flatten)]
    pub training: TrainingFlags,
}

impl AdaptArgs {
    /// `u2ad adapt DATA --model MODEL --out OUT` with every other flag at its default.
    pub fn new(data: PathBuf, model: PathBuf, out: PathBuf) -> Self {
        AdaptArgs {
            data: Some(data),
            data_flag: None,
            model,
            out,
            eu_epochs: None,
            au_epochs: None,
            refresh_every: None,
            training: TrainingFlags::default(),
        }
    }
}

pub fn run(args: AdaptArgs, context: &Context) -> anyhow::Result<()> {
    let device = crate::device::resolve(args.training.device.choice, context.quiet)?;
    crate::device::run_on(device, OnDevice(args, context))
}

/// The verb's work, for [`crate::device::run_on`].
struct OnDevice<'a>(AdaptArgs, &'a Context);

impl crate::device::BackendJob for OnDevice<'_> {
    type Output = anyhow::Result<()>;
    fn run<B: burn::tensor::backend::Backend>(self, device: &B::Device) -> Self::Output {
        run_on::<burn::backend::Autodiff<B>>(self.0, self.1, device)
    }
}

fn run_on<B: AutodiffBackend>(args: AdaptArgs, context: &Context, device: &B::Device) -> anyhow::Result<()> {
    let started = Instant::now();
    let dataset = common::dataset(&args.data, &args.data_flag)?;
    let mut config = common::base_config(&args.training, &args.out)?;
    if let Some(n) = args.eu_epochs {
        config.adaptation.eu_epochs = n;
    }
    if let Some(n) = args.au_epochs {
        config.adaptation.au_epochs = n;
    }
    if let Some(n) = args.refresh_every {
        config.adaptation.refresh_every = n;
    }
    let (pretrained, info) = super::load_checked_model::<B>(&args.model, device)?;
    // The model file decides the sizes; the [model] table of the configuration is replaced.
    config.model = info.config.clone();
    let pretrained_epochs = info.provenance.get("epochs").and_then(|e| e.as_u64()).map(|e| e as usize);
    if config.adaptation.learning_rate_start == LearningRateStart::Continue && pretrained_epochs.is_none() {
        bail!(
            "{}: the model file does not say how many epochs it was trained (needed by adaptation.learning_rate_start = \"continue\")",
            args.model.display()
        );
    }
    let config_file = common::resolved_config(&config, &args.out)?;
    let data = common::load_data(&dataset, &config)?;
    let total = config.adaptation.eu_epochs + config.adaptation.au_epochs;
    if !context.quiet {
        eprintln!(
            "adapting {} to {} samples of {} ({} left out), {} EU-guided + {} AU-guided epochs, maps refreshed every {}",
            args.model.display(),
            data.set.len(),
            dataset.display(),
            data.set.skipped.len(),
            config.adaptation.eu_epochs,
            config.adaptation.au_epochs,
            config.adaptation.refresh_every
        );
    }
    let run = u2ad_model::train::RunOptions::new(args.out.clone(), data.hash.clone(), args.training.resume);
    let mut observer = common::ProgressObserver::new("adapt", context.quiet, config_file);
    let outcome = u2ad_model::adapt::<B>(pretrained, pretrained_epochs.unwrap_or(0), &data.set, &config, &run, &mut observer, device);
    observer.finish();
    let outcome = outcome.with_context(|| format!("adapting {}", args.model.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    let provenance = common::provenance(
        "adapt",
        &data,
        &config,
        total,
        json!({
            "pretrained_model": args.model.display().to_string(),
            "pretrained_model_hash": info.hash,
            "pretrained_epochs": pretrained_epochs,
            "pretrained_dataset": info.provenance.get("dataset"),
        }),
    );
    let model = common::write_outputs(&args.out, &data, &config, &outcome, provenance, seconds)?;
    common::report(context, &model, total - outcome.resumed_at, seconds);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_gives_what_clap_gives() {
        let crate::Command::Adapt(parsed) = super::super::parse_command(&["adapt", "cohort.u2ds", "--model", "m.safetensors", "--out", "runs/adapt"]) else { unreachable!() };
        super::super::assert_same(&AdaptArgs::new("cohort.u2ds".into(), "m.safetensors".into(), "runs/adapt".into()), &parsed);
    }
}
