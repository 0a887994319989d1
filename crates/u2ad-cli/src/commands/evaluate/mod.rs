//! `u2ad evaluate`: detection folders (`u2ad detect`, `u2ad baseline`) against the ground truth of
//! a synthetic cohort (`u2ad synth`): pixel, segment and patient metrics with bootstrap intervals,
//! broken down by lesion contrast and length (definitions: [`u2ad_eval::evaluate`]).
//!
//! Files: `mod.rs` (the flags and the verb), `tables.rs` (each method evaluated, and the CSV and
//! Markdown tables written).

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use u2ad_eval::evaluate::{discover_truth, EvaluationSettings};
use u2ad_eval::metrics::BootstrapConfig;

use super::Context;

mod tables;

pub use tables::{evaluate_and_write, hosts_section, EVALUATION_CSV, EVALUATION_MD, EVALUATION_SUBJECTS_CSV};

#[derive(Args, Debug, Clone)]
#[command(after_help = "Examples:\n  \
u2ad evaluate --detections detect/ --truth synth-cohort/\n  \
u2ad evaluate --detections u2ad=detect/ --detections intensity=baseline/ --truth synth-cohort/ --out evaluation/\n\n\
Writes <out>/evaluation.csv (one metric per row, with its 95 % interval), <out>/evaluation.md (the tables printed) and \
<out>/evaluation_subjects.csv (per subject and method). The best Dice is an oracle (threshold chosen on the truth).")]
pub struct EvaluateArgs {
    /// A detection folder (`u2ad detect` or `u2ad baseline` output), as NAME=DIR or DIR (named
    /// after the folder); repeat to compare methods in one table.
    #[arg(long, required = true)]
    pub detections: Vec<String>,
    /// The synthetic cohort with the ground truth (`u2ad synth` output: lesion masks under
    /// derivatives/labels and synth_manifest.tsv).
    #[arg(long)]
    pub truth: PathBuf,
    /// The lesion manifest (default: <truth>/synth_manifest.tsv).
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Output folder.
    #[arg(short, long, default_value = "evaluation")]
    pub out: PathBuf,
    /// Bootstrap resamples of the 95 % intervals (subjects resampled).
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    // --seed is evaluate's own (run_args.rs says why).
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 0, help_heading = "Run")]
    pub seed: u64,
    /// Bin edges of the lesion contrast (lesion / cord signal), ascending.
    #[arg(long, value_delimiter = ',', default_values_t = [1.3, 1.6, 2.0, 3.0])]
    pub contrast_bins: Vec<f64>,
    /// Bin edges of the lesion length in mm, ascending.
    #[arg(long, value_delimiter = ',', default_values_t = [3.0, 6.0, 10.0, 15.0])]
    pub length_bins_mm: Vec<f64>,
}

/// `NAME=DIR` or `DIR`.
pub fn parse_detections(text: &str) -> (String, PathBuf) {
    match text.split_once('=') {
        Some((name, dir)) if !name.is_empty() && !name.contains('/') => (name.to_string(), PathBuf::from(dir)),
        _ => {
            let dir = PathBuf::from(text);
            let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| text.to_string());
            (name, dir)
        }
    }
}

fn check_edges(edges: &[f64], flag: &str) -> anyhow::Result<()> {
    if edges.len() < 2 || edges.windows(2).any(|w| !(w[0] < w[1])) || edges.iter().any(|v| !v.is_finite()) {
        bail!("{flag} needs at least two ascending numbers, got {edges:?}");
    }
    Ok(())
}

pub fn run(args: EvaluateArgs, context: &Context) -> anyhow::Result<()> {
    check_edges(&args.contrast_bins, "--contrast-bins")?;
    check_edges(&args.length_bins_mm, "--length-bins-mm")?;
    if args.bootstrap == 0 {
        bail!("--bootstrap must be at least 1");
    }
    let truth = discover_truth(&args.truth, args.manifest.as_deref())?;
    if !truth.iter().any(|t| t.lesion_mask.is_some()) {
        bail!("{}: no lesion mask (*_label-lesion_seg.nii.gz) under derivatives/labels: not a u2ad synth cohort", args.truth.display());
    }
    let methods: Vec<(String, PathBuf)> = args.detections.iter().map(|d| parse_detections(d)).collect();
    let settings = EvaluationSettings {
        bootstrap: BootstrapConfig { resamples: args.bootstrap, seed: args.seed, confidence: 0.95 },
        contrast_edges: args.contrast_bins.clone(),
        length_edges_mm: args.length_bins_mm.clone(),
        ..EvaluationSettings::default()
    };
    let (_, markdown) = evaluate_and_write(&methods, &truth, &settings, &args.out)?;
    println!("{markdown}");
    if !context.quiet {
        eprintln!(
            "u2ad evaluate: {} subjects, {} method(s); wrote {}, {} and {}",
            truth.len(),
            methods.len(),
            args.out.join(EVALUATION_CSV).display(),
            args.out.join(EVALUATION_MD).display(),
            args.out.join(EVALUATION_SUBJECTS_CSV).display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detections_are_named() {
        assert_eq!(parse_detections("u2ad=out/detect"), ("u2ad".to_string(), PathBuf::from("out/detect")));
        assert_eq!(parse_detections("out/baseline-intensity"), ("baseline-intensity".to_string(), PathBuf::from("out/baseline-intensity")));
        assert_eq!(parse_detections("a/b=c"), ("b=c".to_string(), PathBuf::from("a/b=c")));
    }

    #[test]
    fn bin_edges_must_ascend() {
        assert!(check_edges(&[1.3, 1.6], "--contrast-bins").is_ok());
        let err = check_edges(&[2.0, 1.0], "--contrast-bins").unwrap_err().to_string();
        assert!(err.contains("--contrast-bins") && err.contains("ascending"), "{err}");
        assert!(check_edges(&[1.0], "--length-bins-mm").is_err());
    }
}
