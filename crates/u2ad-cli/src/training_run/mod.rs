//! What `u2ad pretrain` and `u2ad adapt` share: the flags, the configuration (file, then flags,
//! saved with the run), the backend choice, the progress bar ([`observer`]) and the run's
//! outputs ([`outputs`]: the model file and the training figures).

mod observer;
mod outputs;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use serde_json::{json, Value};
use u2ad_core::dataset::PreparedDataset;
use u2ad_model::{TrainingConfig, TrainingSet};

use crate::commands::Context;
use crate::commands::run_args::DeviceArg;
use crate::sidecar::command_line;

pub use observer::ProgressObserver;
pub use outputs::{write_outputs, ModelOutput};

/// Name of the resolved configuration inside a run folder.
pub const CONFIG_FILE: &str = "config.toml";
/// Name of the trained model inside a run folder.
pub const MODEL_FILE: &str = "model.safetensors";

/// Flags of both training commands.
// The derived `Default` is what clap gives when none of the flags is given.
#[derive(Args, Debug, Default)]
#[command(next_help_heading = "Training")]
pub struct TrainingFlags {
    /// Training configuration (TOML; missing keys take the reference's values, see
    /// configs/paper.toml). With --resume, defaults to the run's own config.toml.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Images per optimizer step (overrides training.batch_size).
    #[arg(long)]
    pub batch_size: Option<usize>,
    // --seed is training's own (run_args.rs says why).
    /// Seed of the weights, sample order, augmentation and masks (overrides seed).
    #[arg(long, help_heading = "Run")]
    pub seed: Option<u64>,
    /// Write a checkpoint every N epochs (overrides training.checkpoint_every).
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<usize>,
    /// Continue the run in --out from its latest checkpoint.
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub device: DeviceArg,
}

/// The prepared dataset, given as the first argument or with the old hidden `--data` flag (clap
/// refuses both, and neither).
pub fn dataset(positional: &Option<PathBuf>, flag: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match (positional, flag) {
        (Some(path), None) | (None, Some(path)) => Ok(path.clone()),
        (Some(_), Some(_)) => anyhow::bail!("give the dataset once: as the first argument, without --data"),
        (None, None) => anyhow::bail!("give the prepared dataset (.u2ds) as the first argument"),
    }
}

/// Reads the configuration: the --config file (or, when resuming, the run's config.toml), else
/// the defaults; then the common flags.
pub fn base_config(flags: &TrainingFlags, out: &Path) -> anyhow::Result<TrainingConfig> {
    let saved = out.join(CONFIG_FILE);
    let file = match (&flags.config, flags.resume && saved.is_file()) {
        (Some(path), _) => Some(path.clone()),
        (None, true) => Some(saved),
        (None, false) => None,
    };
    let mut config = match file {
        Some(path) => {
            let text = std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
            TrainingConfig::from_toml(&text).with_context(|| format!("{}", path.display()))?
        }
        None => TrainingConfig::default(),
    };
    if let Some(n) = flags.batch_size {
        config.training.batch_size = n;
    }
    if let Some(seed) = flags.seed {
        config.seed = seed;
    }
    if let Some(n) = flags.checkpoint_every {
        config.training.checkpoint_every = n;
    }
    Ok(config)
}

/// The run's `config.toml` (checked), written by [`ProgressObserver`] once the run has started,
/// so that a run that fails its checks leaves no configuration behind or rewritten.
pub fn resolved_config(config: &TrainingConfig, out: &Path) -> anyhow::Result<(PathBuf, String)> {
    config.validate().context("configuration")?;
    let text = format!("# Resolved configuration of `{}`\n{}", command_line(), config.to_toml());
    Ok((out.join(CONFIG_FILE), text))
}

/// The dataset, its hash and its training samples.
pub struct LoadedData {
    pub path: PathBuf,
    pub dataset: PreparedDataset,
    pub hash: String,
    pub set: TrainingSet,
}

pub fn load_data(path: &Path, config: &TrainingConfig) -> anyhow::Result<LoadedData> {
    let dataset = PreparedDataset::read(path)?;
    let hash = u2ad_model::model_file::file_hash(path)?;
    let set = TrainingSet::new(&dataset, config).with_context(|| format!("{}", path.display()))?;
    Ok(LoadedData { path: path.to_path_buf(), dataset, hash, set })
}

/// The provenance every model file carries.
pub fn provenance(kind: &str, data: &LoadedData, config: &TrainingConfig, epochs: usize, extra: Value) -> Value {
    let mut p = json!({
        "command": kind,
        "command_line": command_line(),
        "version": env!("CARGO_PKG_VERSION"),
        "dataset": data.path.display().to_string(),
        "dataset_hash": data.hash,
        "training_samples": data.set.len(),
        "epochs": epochs,
        "config": serde_json::to_value(config).expect("configuration serialises"),
    });
    if let (Some(p), Value::Object(extra)) = (p.as_object_mut(), extra) {
        p.extend(extra);
    }
    p
}

/// Prints the end-of-run summary.
pub fn report(context: &Context, model: &ModelOutput, outcome_epochs: usize, seconds: f64) {
    if context.quiet {
        return;
    }
    if model.written {
        eprintln!("trained {outcome_epochs} epochs in {seconds:.0} s; wrote {}", model.path.display());
    } else {
        eprintln!("trained {outcome_epochs} epochs in {seconds:.0} s; {} already holds this model, left as it was", model.path.display());
    }
}
