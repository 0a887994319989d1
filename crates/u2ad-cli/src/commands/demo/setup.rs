//! Before the demo's verbs run: its training configuration, its work folder, the sample data, and
//! the numbered steps it prints.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _};
use u2ad_io::cohort::{discover_bids, DiscoveryOptions, SubjectFiles};
use u2ad_model::train::TrainingConfig;

use super::{DemoArgs, DEMO_CONFIG, PRETRAIN_SUBJECTS, TARGET_SUBJECTS};
use crate::commands::Context;

/// The training configuration: its text, its name in messages, and the configuration (checked).
pub(super) fn training_config(args: &DemoArgs) -> anyhow::Result<(String, String, TrainingConfig)> {
    let (config_text, config_name) = match &args.config {
        Some(path) => (std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?, path.display().to_string()),
        None => (DEMO_CONFIG.to_string(), "configs/demo.toml (built in)".to_string()),
    };
    let base_config = TrainingConfig::from_toml(&config_text).map_err(|e| anyhow::anyhow!("{config_name}: {e}"))?;
    base_config.validate().map_err(|e| anyhow::anyhow!("{config_name}: {e}"))?;
    Ok((config_text, config_name, base_config))
}

/// Creates the work folder, empty: a folder an earlier demo made is cleared with `force`, any
/// other folder with files is refused.
pub(super) fn work_folder(out: &Path, force: bool) -> anyhow::Result<()> {
    if out.exists() && std::fs::read_dir(out).map(|mut d| d.next().is_some()).unwrap_or(true) {
        if !force {
            bail!("{}: the work folder exists and is not empty (use --force to recompute it, or another --out)", out.display());
        }
        // Only a folder an earlier demo made is cleared.
        if !out.join("demo.toml").is_file() {
            bail!("{}: not a u2ad demo folder (no demo.toml): choose another --out", out.display());
        }
        std::fs::remove_dir_all(out).with_context(|| format!("{}: cannot clear the work folder", out.display()))?;
    }
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create the work folder", out.display()))?;
    Ok(())
}

/// The sample data's `spine-t2` folder and its subjects (found or downloaded; checked to be the
/// bundled cohort).
pub(super) fn sample_data(args: &DemoArgs, context: &Context) -> anyhow::Result<(PathBuf, Vec<SubjectFiles>)> {
    let data = match &args.data {
        Some(dir) => dir.clone(),
        None => u2ad_data::locate_or_fetch_sample_data(&|i, n, file| {
            if !context.quiet {
                eprintln!("  downloading {}/{n}: {file}", i + 1);
            }
        })?,
    };
    let spine = data.join("spine-t2");
    let subjects = discover_bids(&spine, &DiscoveryOptions::default())?;
    for name in PRETRAIN_SUBJECTS.iter().chain(&TARGET_SUBJECTS) {
        if !subjects.iter().any(|s| s.subject == *name) {
            bail!("{}: {name} is missing: not the bundled sample cohort", spine.display());
        }
    }
    if !context.quiet {
        eprintln!("  {}", spine.display());
    }
    Ok((spine, subjects))
}

pub(super) fn write_text(path: &Path, text: &str) -> anyhow::Result<()> {
    u2ad_io::staging::write_file_atomically(path, text.as_bytes())?;
    Ok(())
}

/// Numbered steps with elapsed time.
pub(super) struct Steps {
    pub started: Instant,
    pub total: usize,
    pub done: usize,
    pub quiet: bool,
}

impl Steps {
    pub fn begin(&mut self, what: &str) {
        self.done += 1;
        if !self.quiet {
            eprintln!("\n[{}/{}] {what} ({:.0} s so far)", self.done, self.total, self.started.elapsed().as_secs_f64());
        }
    }
}
