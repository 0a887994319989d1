//! `u2ad import`: turns weights of the reference PyTorch model (`torch.save(model.state_dict())`,
//! timm parameter names) into a u2ad model file that `detect`, `adapt` and `--resume`-free
//! training read, with its configuration and provenance inside.

use std::path::PathBuf;

use anyhow::Context as _;
use burn::backend::Flex;
use clap::Args;
use serde_json::json;
use u2ad_model::interop::load_reference_state_dict;
use u2ad_model::train::TrainingConfig;
use u2ad_model::{read_model_info, save_model};

use super::Context;
use crate::sidecar::command_line;

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
u2ad import checkpoints/model_best.pth --out reference.safetensors\n  \
u2ad import ckpt.pth --top-level-key model --config my-sizes.toml --out reference.safetensors\n\n\
The model's sizes come from --config ([model] table; default: the paper's). Parameters the reference \
creates but never uses (rec_blocks, edge_blocks) and its fixed position embeddings are ignored; any other \
missing or unexpected parameter is an error.")]
pub struct ImportArgs {
    /// The reference PyTorch state_dict (.pth).
    pub input: PathBuf,
    /// The u2ad model file to write (.safetensors).
    #[arg(short, long)]
    pub out: PathBuf,
    /// A training configuration (TOML) whose [model] table gives the sizes the weights were trained with.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The key holding the state_dict inside a larger checkpoint dictionary (e.g. `model`).
    #[arg(long)]
    pub top_level_key: Option<String>,
}

pub fn run(args: ImportArgs, context: &Context) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
            TrainingConfig::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => TrainingConfig::default(),
    };
    if !args.input.is_file() {
        anyhow::bail!("{}: no such file", args.input.display());
    }
    let device = Default::default();
    let mut model = config.model.init::<Flex>(&device).map_err(|e| anyhow::anyhow!("{e}"))?;
    load_reference_state_dict(&mut model, &args.input, args.top_level_key.as_deref())?;
    let provenance = json!({
        "command": "import",
        "command_line": command_line(),
        "version": env!("CARGO_PKG_VERSION"),
        "source": std::path::absolute(&args.input).unwrap_or_else(|_| args.input.clone()).display().to_string(),
        "source_hash": u2ad_model::model_file::file_hash(&args.input)?,
    });
    save_model(&model, &config.model, &provenance, &args.out)?;
    let info = read_model_info(&args.out)?;
    if !context.quiet {
        eprintln!("imported {} into {} (model hash {})", args.input.display(), args.out.display(), info.hash);
    }
    Ok(())
}
