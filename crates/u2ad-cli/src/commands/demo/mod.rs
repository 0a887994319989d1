//! `u2ad demo`: the whole method on the bundled healthy cohort, end to end on two CPU cores
//! (about 3 to 14 minutes, BENCHMARKS.md), ending with a table of how U2AD and the intensity
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

//!
//! Files: `mod.rs` (the flags and the steps in order), `setup.rs` (the configuration, the work
//! folder, the sample data), `steps.rs` (each verb's settings: its own defaults, then the demo's
//! choices), `report.rs` (`report.html` and the printed summary).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::bail;
use clap::Args;
use u2ad_eval::evaluate::{discover_truth, EvaluationSettings};
use u2ad_eval::synth::{write_cohort, CohortOptions, CohortRequest, ValueRange};
use u2ad_model::MaskingStrategy;

use super::run_args::DeviceArg;
use super::Context;
use crate::sidecar::command_line;

mod report;
mod setup;
mod steps;

use setup::{write_text, Steps};
use steps::{ablation_config, target_synth_config, Verbs};

/// The demo's training configuration (configs/demo.toml).
pub const DEMO_CONFIG: &str = include_str!("../../../../../configs/demo.toml");
/// Healthy subjects the model is pretrained on; the others make the target cohort.
pub const PRETRAIN_SUBJECTS: [&str; 2] = ["sub-errsm11", "sub-errsm18"];
pub const TARGET_SUBJECTS: [&str; 3] = ["sub-errsm21", "sub-errsm23", "sub-errsm30"];
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
    // --seed is the demo's own (run_args.rs says why).
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
    #[command(flatten)]
    pub device: DeviceArg,
}

pub fn run(args: DemoArgs, context: &Context) -> anyhow::Result<()> {
    let started = Instant::now();
    if args.copies == 0 {
        bail!("--copies must be at least 1");
    }
    target_synth_config(&args).validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let verbs = Verbs { seed: args.seed, device: crate::device::resolve(args.device.choice, context.quiet)?.choice() };
    let (config_text, config_name, base_config) = setup::training_config(&args)?;
    let out = args.out.clone();
    setup::work_folder(&out, args.force)?;
    let config_path = out.join("demo.toml");
    write_text(&config_path, &config_text)?;
    let mut steps = Steps { started, total: if args.ablations { 11 } else { 9 }, done: 0, quiet: context.quiet };
    let quiet_verb = Context { quiet: true };

    steps.begin("finding the sample data");
    let (spine, subjects) = setup::sample_data(&args, context)?;

    steps.begin(&format!("preparing the healthy subjects {}", PRETRAIN_SUBJECTS.join(", ")));
    let healthy = out.join("healthy.u2ds");
    super::prepare::run(verbs.prepare_healthy(&spine, &healthy), &quiet_verb)?;

    steps.begin(&format!("pretraining a demo-sized model ({} epochs; {config_name})", base_config.pretraining.epochs));
    let pretrain_dir = out.join("runs").join("pretrain");
    super::pretrain::run(verbs.pretrain(&healthy, &pretrain_dir, &config_path), context)?;
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
    super::prepare::run(verbs.prepare(&truth, &target), &quiet_verb)?;

    // Every method is called the same way (steps.rs: pooled thresholds, a small cohort).
    let detect = |model: &Path, name: &str| -> anyhow::Result<PathBuf> {
        let dir = out.join("detect").join(name);
        super::detect::run(verbs.detect(&target, model, &dir), &quiet_verb)?;
        Ok(dir)
    };
    let adapt = |config: &Path, name: &str| -> anyhow::Result<PathBuf> {
        let dir = out.join("runs").join(name);
        super::adapt::run(verbs.adapt(&target, &pretrained, &dir, config), context)?;
        Ok(dir.join(crate::training_run::MODEL_FILE))
    };

    steps.begin("adapting the model to the target cohort (EU- then AU-guided masking, no labels)");
    let adapted = adapt(&config_path, "adapt")?;
    steps.begin("detecting with U2AD");
    let mut methods: Vec<(String, PathBuf)> = vec![("u2ad".into(), detect(&adapted, "u2ad")?)];

    steps.begin("running the intensity baseline through the same pipeline");
    let baseline_dir = out.join("detect").join("intensity");
    super::baseline::run(verbs.baseline(&target, &baseline_dir), &quiet_verb)?;
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
    report::write_report(&report::Outcome {
        out: &out,
        seed: args.seed,
        subjects: records.len(),
        lesion_subjects,
        methods: &methods,
        evaluations: &evaluations,
        markdown: &markdown,
        evaluation: &evaluation,
        seconds,
    })
}
