//! `u2ad evaluate`: detection folders (`u2ad detect`, `u2ad baseline`) against the ground truth of
//! a synthetic cohort (`u2ad synth`): pixel, segment and patient metrics with bootstrap intervals,
//! broken down by lesion contrast and length (definitions: [`u2ad_eval::evaluate`]).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::Args;
use serde::Serialize;
use serde_json::json;
use u2ad_eval::evaluate::{
    discover_truth, evaluate_detections, evaluate_groups, host_false_positives, host_markdown, markdown_report, metric_rows,
    EvaluationSettings, MethodEvaluation,
    SubjectResult, TruthSubject,
};
use u2ad_eval::metrics::{BootstrapConfig, LabelledScores};
use u2ad_io::staging::write_file_atomically;

use super::Context;
use crate::sidecar::write_sidecar;

/// Files written under `--out`.
pub const EVALUATION_CSV: &str = "evaluation.csv";
pub const EVALUATION_MD: &str = "evaluation.md";
pub const EVALUATION_SUBJECTS_CSV: &str = "evaluation_subjects.csv";

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

/// One row of the per-subject CSV.
#[derive(Debug, Serialize)]
struct SubjectRow {
    method: String,
    subject: String,
    lesion_voxels: usize,
    lesion_voxels_in_cord: usize,
    contrast: Option<f64>,
    length_mm: Option<f64>,
    pixel_auprc: Option<f64>,
    lesion_levels: String,
    positive_levels: String,
    patient_score: Option<f64>,
    patient_call_positive: bool,
}

fn subject_rows(method: &str, results: &[SubjectResult]) -> Vec<SubjectRow> {
    results
        .iter()
        .map(|r| SubjectRow {
            method: method.to_string(),
            subject: r.subject.clone(),
            lesion_voxels: r.lesion_voxels,
            lesion_voxels_in_cord: r.lesion_voxels_in_cord,
            contrast: r.lesions.first().and_then(|l| l.contrast),
            length_mm: r.lesions.first().and_then(|l| l.length_mm),
            pixel_auprc: LabelledScores::from_pairs(r.pixels.iter().map(|&(s, t)| (f64::from(s), t))).average_precision(),
            lesion_levels: r.segments.iter().filter(|s| s.lesion).map(|s| s.level.name()).collect::<Vec<_>>().join(" "),
            positive_levels: r
                .segments
                .iter()
                .filter(|s| s.call == u2ad_eval::evaluate::LevelCall::Positive)
                .map(|s| s.level.name())
                .collect::<Vec<_>>()
                .join(" "),
            patient_score: r.patient_score,
            patient_call_positive: r.patient_positive_call,
        })
        .collect()
}

fn write_csv<T: Serialize>(path: &Path, rows: &[T]) -> anyhow::Result<()> {
    let bytes = crate::cohort_folder::csv_bytes(rows)?;
    write_file_atomically(path, &bytes)?;
    Ok(())
}

/// Evaluates every method and writes the CSVs and the Markdown under `out`; returns the
/// evaluations and the Markdown text.
pub fn evaluate_and_write(
    methods: &[(String, PathBuf)],
    truth: &[TruthSubject],
    settings: &EvaluationSettings,
    out: &Path,
) -> anyhow::Result<(Vec<MethodEvaluation>, String)> {
    let mut evaluations = Vec::new();
    let mut subjects = Vec::new();
    for (name, dir) in methods {
        if !dir.is_dir() {
            bail!("{}: not a folder (expected the output of u2ad detect or u2ad baseline)", dir.display());
        }
        let results = evaluate_detections(truth, dir)?;
        subjects.extend(subject_rows(name, &results));
        evaluations.push(MethodEvaluation {
            method: name.clone(),
            detections: dir.clone(),
            groups: evaluate_groups(&results, settings),
            hosts: host_false_positives(&results),
        });
    }
    let markdown = format!("{}\n{}", markdown_report(&evaluations), hosts_section(&evaluations));
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create the output folder", out.display()))?;
    let csv_path = out.join(EVALUATION_CSV);
    write_csv(&csv_path, &metric_rows(&evaluations))?;
    let subjects_path = out.join(EVALUATION_SUBJECTS_CSV);
    write_csv(&subjects_path, &subjects)?;
    let md_path = out.join(EVALUATION_MD);
    write_file_atomically(&md_path, markdown.as_bytes())?;
    let provenance = json!({
        "Detections": methods.iter().map(|(n, d)| json!({"method": n, "folder": std::path::absolute(d).unwrap_or_else(|_| d.clone()).display().to_string()})).collect::<Vec<_>>(),
        "Settings": settings,
        "Definitions": "pixel: native grid inside the truth cord mask, pooled over subjects; segment: disc levels in the field of view, truly positive when a lesion voxel lies in its rows, `positive` call = positive; patient: truly positive when the lesion mask is not empty; 95 % percentile bootstrap over subjects; breakdown groups = lesion subjects of the bin + every lesion-free subject; best Dice is an oracle",
    });
    for (path, description) in [
        (&csv_path, "Evaluation metrics, one per row (method, group, unit, metric, value, 95 % interval)"),
        (&subjects_path, "Per subject and method: lesion size, pixel AUPRC, lesion levels, positive levels, patient call"),
        (&md_path, "Evaluation tables (Markdown)"),
    ] {
        let mut extra = provenance.clone();
        extra["Description"] = json!(description);
        write_sidecar(path, extra)?;
    }
    Ok((evaluations, markdown))
}

/// The per-host false-positive table under its heading.
pub fn hosts_section(evaluations: &[MethodEvaluation]) -> String {
    let hosts: Vec<(String, Vec<_>)> = evaluations.iter().map(|e| (e.method.clone(), e.hosts.clone())).collect();
    format!("## False positives per host (the participant each subject was made from)\n\n{}", host_markdown(&hosts))
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
