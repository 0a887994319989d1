//! `u2ad demo`: the whole method on the bundled healthy cohort, end to end on two CPU cores
//! (about 11 to 14 minutes, BENCHMARKS.md), ending with a table of how U2AD and the intensity
//! baseline find synthetic hyperintensities in hosts the model never saw.
//!
//! 1. Find the sample data (`../shared/data` beside the project, `U2AD_DATA`, or the download
//!    cache; else download the public files of `SOURCES.tsv`, checking every sha256).
//! 2. Prepare two healthy subjects (sub-errsm11, -18) and pretrain a demo-sized model on them
//!    (`configs/demo.toml`, compiled in).
//! 3. Make the target cohort from the other three (sub-errsm21 and sub-errsm23, the hosts with
//!    CSF partial volume inside the cord mask and a bright upper cord end, and sub-errsm30, a
//!    small field of view around C2-C5), which the model never saw: several copies of each
//!    with fresh noise, a smooth bias field (±15 %) and a global intensity scale (0.8-1.25), most
//!    with one faint synthetic hyperintensity (1.2-2.0x the local cord, 5-12 mm), some
//!    lesion-free (`u2ad synth`'s library), and prepare it.
//! 4. Adapt the model on the target cohort (no labels), detect, run the intensity baseline on
//!    the same cohort with the same calls, and, with `--ablations`, adapt and detect the two
//!    ablations (random masking only, EU guidance only).
//! 5. Evaluate every method against the synthetic ground truth and write `report.html`.
//!
//! Five healthy scans are all the bundled data holds: this demo measures that the pipeline works,
//! not clinical accuracy. The calls use pooled cohort thresholds (every level of the other
//! participants), since a cohort of fifteen cannot calibrate each level on its own; no subject is
//! ever calibrated against a copy of its own host (`participants.tsv`'s `source_participant`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _};
use clap::{Args, Parser};
use serde_json::json;
use u2ad_eval::evaluate::{discover_truth, headline_markdown, EvaluationSettings, MethodEvaluation};
use u2ad_eval::synth::{write_cohort, CohortOptions, CohortRequest, SynthConfig, ValueRange};
use u2ad_io::cohort::{discover_bids, DiscoveryOptions};
use u2ad_model::train::TrainingConfig;
use u2ad_model::MaskingStrategy;
use u2ad_report::demo_page::{render_demo_page, DemoEstimate, DemoPage, DemoRow};

use crate::device::{parse_device, DeviceChoice};
use super::Context;
use crate::sidecar::{command_line, write_sidecar};

/// The demo's training configuration (configs/demo.toml).
pub const DEMO_CONFIG: &str = include_str!("../../../../configs/demo.toml");
/// Healthy subjects the model is pretrained on; the others make the target cohort.
pub const PRETRAIN_SUBJECTS: [&str; 2] = ["sub-errsm11", "sub-errsm18"];
pub const TARGET_SUBJECTS: [&str; 3] = ["sub-errsm21", "sub-errsm23", "sub-errsm30"];

/// The target cohort's lesions and scan variations (module docs, step 3): a third of the lesions
/// touch the cord's edge.
fn target_synth_config(args: &DemoArgs) -> SynthConfig {
    SynthConfig {
        contrast_ratio: args.contrast,
        length_mm: args.length_mm,
        bias_field: 0.15,
        intensity_scale: ValueRange::new(0.8, 1.25),
        edge_fraction: 1.0 / 3.0,
        ..SynthConfig::default()
    }
}
/// The report the demo writes in its folder.
pub const DEMO_REPORT: &str = "report.html";

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
u2ad demo\n  \
u2ad demo --out /tmp/u2ad-demo --ablations\n\n\
Finds ../shared/data (or U2AD_DATA, or downloads the public sample files into ~/.cache/u2ad), then prepares, \
pretrains, synthesises a lesion cohort, adapts, detects, runs the intensity baseline, evaluates, and writes \
<out>/report.html. It measures the pipeline on five healthy scans, not clinical accuracy.")]
pub struct DemoArgs {
    /// Work folder (everything the demo makes goes here).
    #[arg(short, long, default_value = "u2ad-demo")]
    pub out: PathBuf,
    /// Sample data folder holding spine-t2/ (default: found or downloaded).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Synthetic copies of each target subject (with fresh noise each).
    #[arg(long, default_value_t = 5)]
    pub copies: usize,
    /// Fraction of the synthetic subjects left lesion-free.
    #[arg(long, default_value_t = 0.3)]
    pub lesion_free_fraction: f64,
    /// Lesion contrast to the local cord signal, MIN:MAX (faint, as in a clinic; `u2ad synth`'s
    /// default range is 1.3:3.0).
    #[arg(long, default_value = "1.2:2.0", value_parser = ValueRange::parse)]
    pub contrast: ValueRange,
    /// Lesion length along the cord in mm, MIN:MAX.
    #[arg(long, default_value = "5:12", value_parser = ValueRange::parse)]
    pub length_mm: ValueRange,
    /// Also adapt and evaluate the two ablations (random masking only; EU guidance only).
    #[arg(long)]
    pub ablations: bool,
    /// Seed of training, synthesis and inference.
    #[arg(long, default_value_t = 0, help_heading = "Run")]
    pub seed: u64,
    /// Recompute everything in an existing demo folder (as `detect --force` recomputes what
    /// exists; the demo reuses nothing, so the folder's earlier outputs are removed first).
    #[arg(long)]
    pub force: bool,
    /// A training configuration (TOML) instead of the built-in configs/demo.toml.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where training and inference run (`cuda` needs a build with `--features cuda`).
    #[arg(long, value_parser = parse_device, default_value = "auto", help_heading = "Run")]
    pub device: DeviceChoice,
}

/// Parses a verb's flags as its command line would (so every default is the verb's own).
fn parse<T: Args>(verb: &str, args: &[String]) -> anyhow::Result<T> {
    #[derive(Parser)]
    struct Wrapper<U: Args> {
        #[command(flatten)]
        inner: U,
    }
    let argv = std::iter::once(verb.to_string()).chain(args.iter().cloned());
    Ok(Wrapper::<T>::try_parse_from(argv).map_err(|e| anyhow::anyhow!("{verb}: {e}"))?.inner)
}

fn strings(items: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<String> {
    items.iter().map(|s| s.as_ref().to_string_lossy().into_owned()).collect()
}

/// Numbered steps with elapsed time.
struct Steps {
    started: Instant,
    total: usize,
    done: usize,
    quiet: bool,
}

impl Steps {
    fn begin(&mut self, what: &str) {
        self.done += 1;
        if !self.quiet {
            eprintln!("\n[{}/{}] {what} ({:.0} s so far)", self.done, self.total, self.started.elapsed().as_secs_f64());
        }
    }
}

/// A training configuration with other adaptation masking (the ablations).
fn ablation_config(base: &TrainingConfig, eu: MaskingStrategy, au: MaskingStrategy) -> TrainingConfig {
    let mut config = base.clone();
    config.adaptation.eu_masking = eu;
    config.adaptation.au_masking = au;
    config
}

fn write_text(path: &Path, text: &str) -> anyhow::Result<()> {
    u2ad_io::staging::write_file_atomically(path, text.as_bytes())?;
    Ok(())
}

/// The demo's HTML page ([`u2ad_report::demo_page`]): the headline table, the full tables, links
/// to every QC report.
pub fn demo_report(methods: &[MethodEvaluation], markdown: &str, out: &Path, notes: &[String]) -> String {
    let estimate = |e: &u2ad_eval::metrics::Estimate| DemoEstimate { value: e.value, interval: e.interval.map(|i| (i.low, i.high)) };
    let rows = methods
        .iter()
        .flat_map(|m| m.groups.iter().filter(|g| !g.group.starts_with("length")).map(move |g| (m, g)))
        .map(|(m, g)| DemoRow {
            method: m.method.clone(),
            group: g.group.clone(),
            pixel_auprc: g.pixel.auprc,
            best_dice_oracle: g.pixel.best_dice_oracle.map(|b| b.dice),
            segment_f1: estimate(&g.segment.summary.f1),
            patient_f1: estimate(&g.patient.summary.f1),
        })
        .collect();
    let qc_reports = methods
        .iter()
        .map(|m| {
            let relative = m.detections.strip_prefix(out).unwrap_or(&m.detections).join(u2ad_core::detect_outputs::QC_REPORT_HTML);
            (m.method.clone(), relative.display().to_string())
        })
        .collect();
    render_demo_page(&DemoPage { notes: notes.to_vec(), rows, qc_reports, tables_markdown: markdown.to_string() })
}

pub fn run(args: DemoArgs, context: &Context) -> anyhow::Result<()> {
    let started = Instant::now();
    if args.copies == 0 {
        bail!("--copies must be at least 1");
    }
    target_synth_config(&args).validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let device = crate::device::resolve(args.device, context.quiet)?.flag();
    let (config_text, config_name) = match &args.config {
        Some(path) => (std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?, path.display().to_string()),
        None => (DEMO_CONFIG.to_string(), "configs/demo.toml (built in)".to_string()),
    };
    let base_config = TrainingConfig::from_toml(&config_text).map_err(|e| anyhow::anyhow!("{config_name}: {e}"))?;
    base_config.validate().map_err(|e| anyhow::anyhow!("{config_name}: {e}"))?;
    let out = args.out.clone();
    if out.exists() && std::fs::read_dir(&out).map(|mut d| d.next().is_some()).unwrap_or(true) {
        if !args.force {
            bail!("{}: the work folder exists and is not empty (use --force to recompute it, or another --out)", out.display());
        }
        // Only a folder an earlier demo made is cleared.
        if !out.join("demo.toml").is_file() {
            bail!("{}: not a u2ad demo folder (no demo.toml): choose another --out", out.display());
        }
        std::fs::remove_dir_all(&out).with_context(|| format!("{}: cannot clear the work folder", out.display()))?;
    }
    std::fs::create_dir_all(&out).with_context(|| format!("{}: cannot create the work folder", out.display()))?;
    let config_path = out.join("demo.toml");
    write_text(&config_path, &config_text)?;
    let mut steps = Steps { started, total: if args.ablations { 11 } else { 9 }, done: 0, quiet: context.quiet };
    let quiet_verb = Context { quiet: true };

    steps.begin("finding the sample data");
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

    steps.begin(&format!("preparing the healthy subjects {}", PRETRAIN_SUBJECTS.join(", ")));
    let healthy = out.join("healthy.u2ds");
    let mut prepare = strings(&[&spine, &"--out", &healthy]);
    for s in PRETRAIN_SUBJECTS {
        prepare.extend(["--include".to_string(), s.to_string()]);
    }
    super::prepare::run(parse("prepare", &prepare)?, &quiet_verb)?;

    steps.begin(&format!("pretraining a demo-sized model ({} epochs; {config_name})", base_config.pretraining.epochs));
    let pretrain_dir = out.join("runs").join("pretrain");
    let seed = args.seed.to_string();
    super::pretrain::run(parse("pretrain", &strings(&[&healthy, &"--out", &pretrain_dir, &"--config", &config_path, &"--seed", &seed, &"--device", &device]))?, context)?;
    let pretrained = pretrain_dir.join(crate::training_run::MODEL_FILE);

    steps.begin(&format!("synthesising the target cohort: {} copies of {}", args.copies, TARGET_SUBJECTS.join(" and ")));
    let truth = out.join("synth");
    let sources: Vec<_> = subjects.iter().filter(|s| TARGET_SUBJECTS.contains(&s.subject.as_str())).cloned().collect();
    let options = CohortOptions {
        subjects_per_source: args.copies,
        lesion_free_fraction: args.lesion_free_fraction,
        seed: args.seed,
        synth: target_synth_config(&args),
        ..CohortOptions::default()
    };
    let command = command_line();
    let records = write_cohort(&CohortRequest { input_root: &spine, sources: &sources, out: &truth, options: &options, command: &command }, &|_| {})?;
    let lesion_subjects = records.iter().filter(|r| !r.lesion_free).count();
    if !context.quiet {
        eprintln!("  {} subjects, {lesion_subjects} with a lesion: {}", records.len(), truth.display());
    }
    let target = out.join("target.u2ds");
    super::prepare::run(parse("prepare", &strings(&[&truth, &"--out", &target]))?, &quiet_verb)?;

    // The same calls for every method: pooled thresholds (a small cohort).
    let calls = ["--pooling", "pooled", "--min-reference", "10"].map(String::from);
    let detect = |model: &Path, name: &str| -> anyhow::Result<PathBuf> {
        let dir = out.join("detect").join(name);
        let mut argv = strings(&[&target, &"--model", &model, &"--out", &dir, &"--seed", &seed, &"--device", &device]);
        argv.extend(calls.iter().cloned());
        super::detect::run(parse("detect", &argv)?, &quiet_verb)?;
        Ok(dir)
    };
    let adapt = |config: &Path, name: &str| -> anyhow::Result<PathBuf> {
        let dir = out.join("runs").join(name);
        super::adapt::run(
            parse("adapt", &strings(&[&target, &"--model", &pretrained, &"--out", &dir, &"--config", &config, &"--seed", &seed, &"--device", &device]))?,
            context,
        )?;
        Ok(dir.join(crate::training_run::MODEL_FILE))
    };

    steps.begin("adapting the model to the target cohort (EU- then AU-guided masking, no labels)");
    let adapted = adapt(&config_path, "adapt")?;
    steps.begin("detecting with U2AD");
    let mut methods: Vec<(String, PathBuf)> = vec![("u2ad".into(), detect(&adapted, "u2ad")?)];

    steps.begin("running the intensity baseline through the same pipeline");
    let baseline_dir = out.join("detect").join("intensity");
    let mut argv = strings(&[&target, &"--method", &"intensity", &"--out", &baseline_dir]);
    argv.extend(calls.iter().cloned());
    super::baseline::run(parse("baseline", &argv)?, &quiet_verb)?;
    methods.push(("intensity".into(), baseline_dir));

    if args.ablations {
        for (name, eu, au) in [
            ("ablation-random", MaskingStrategy::Random, MaskingStrategy::Random),
            ("ablation-eu", MaskingStrategy::eu_guided(), MaskingStrategy::eu_guided()),
        ] {
            steps.begin(&format!("ablation {name}: adapt and detect"));
            let path = out.join(format!("{name}.toml"));
            write_text(&path, &ablation_config(&base_config, eu, au).to_toml())?;
            let model = adapt(&path, name)?;
            methods.push((name.into(), detect(&model, name)?));
        }
    }

    steps.begin("evaluating every method against the synthetic ground truth");
    let truth_subjects = discover_truth(&truth, None)?;
    let settings = EvaluationSettings::default();
    let evaluation = out.join("evaluation");
    let (evaluations, markdown) = super::evaluate::evaluate_and_write(&methods, &truth_subjects, &settings, &evaluation)?;

    steps.begin("writing the report");
    let seconds = started.elapsed().as_secs_f64();
    let notes = vec![
        format!("pretrained on {}; target: {} synthetic subjects ({lesion_subjects} with a lesion) from {}", PRETRAIN_SUBJECTS.join(", "), records.len(), TARGET_SUBJECTS.join(", ")),
        "calls: cohort-calibrated against the other hosts only (never a copy of the same person), pooled over levels, 5 % false-positive rate per patient (Bonferroni over its levels), the same for every method".into(),
        format!("wall time {seconds:.0} s; seed {}", args.seed),
    ];
    let report = out.join(DEMO_REPORT);
    write_text(&report, &demo_report(&evaluations, &markdown, &out, &notes))?;
    write_sidecar(&report, json!({"Description": "u2ad demo report", "WallTimeSeconds": seconds, "Seed": args.seed, "Methods": methods.iter().map(|(n, _)| n).collect::<Vec<_>>()}))?;

    println!("\nu2ad demo: synthetic hyperintensities in real healthy cords (this measures the pipeline, not clinical accuracy)\n");
    println!("{}", headline_markdown(&evaluations));
    println!("{}", super::evaluate::hosts_section(&evaluations));
    println!("wall time {:.1} min; full tables: {}", seconds / 60.0, evaluation.join(super::evaluate::EVALUATION_MD).display());
    println!("report: {}", report.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_configurations_parse() {
        let base = TrainingConfig::from_toml(DEMO_CONFIG).unwrap();
        base.validate().unwrap();
        let random = ablation_config(&base, MaskingStrategy::Random, MaskingStrategy::Random);
        assert_eq!(random.adaptation.eu_masking, MaskingStrategy::Random);
        assert_eq!(random.adaptation.au_epochs, base.adaptation.au_epochs);
        // The ablation files of configs/ parse and differ from the defaults only in masking.
        for (text, eu) in [
            (include_str!("../../../../configs/ablation-random.toml"), MaskingStrategy::Random),
            (include_str!("../../../../configs/ablation-eu.toml"), MaskingStrategy::eu_guided()),
        ] {
            let config = TrainingConfig::from_toml(text).unwrap();
            assert_eq!((config.adaptation.eu_masking.clone(), config.adaptation.au_masking.clone()), (eu.clone(), eu));
            let mut reset = config.clone();
            reset.adaptation.eu_masking = MaskingStrategy::eu_guided();
            reset.adaptation.au_masking = MaskingStrategy::au_guided();
            assert_eq!(reset, TrainingConfig::default());
        }
    }

    #[test]
    fn verbs_parse_with_their_own_defaults() {
        let args: super::super::baseline::BaselineArgs = parse("baseline", &strings(&[&"cohort", &"--out", &"x", &"--pooling", &"pooled"])).unwrap();
        assert_eq!(args.calls.min_reference, 10);
        assert_eq!(args.calls.pooling, super::super::call_args::PoolingArg::Pooled);
        let err = parse::<super::super::baseline::BaselineArgs>("baseline", &strings(&[&"--bogus"])).unwrap_err().to_string();
        assert!(err.starts_with("baseline:"), "{err}");
    }
}
