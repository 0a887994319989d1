//! `u2ad`: unsupervised detection of T2 hyperintensities in the spinal cord on sagittal T2w MRI.
//!
//! One verb per task, as the Spinal Cord Toolbox: each verb lives in `commands/`, parses its
//! flags, calls the library crates and reports; `detect` also runs the per-subject pipeline
//! (inputs, reuse, Monte-Carlo inference, scoring, native maps) in `commands/detect/subjects.rs`.

mod cohort_folder;
mod commands;
mod device;
mod progress;
mod sidecar;
mod training_run;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "u2ad",
    version,
    about = "Find T2 hyperintensities in the spinal cord on sagittal T2-weighted MRI, without lesion labels",
    long_about = "u2ad implements U2AD (Zhang et al., Medical Image Analysis 2026): a masked autoencoder learns \
what a normal cord looks like from healthy scans, adapts to your cohort without labels, and flags \
the cord regions it cannot reconstruct, per disc level (C2/C3 … C7/T1) and per patient.\n\n\
Typical use: `u2ad prepare` your BIDS folder (T2w images with SCT or TotalSpineSeg cord masks and \
levels), then train and detect."
)]
struct Cli {
    /// Print more (repeat for debug output).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Print only errors and results.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read scans and their cord/CSF masks and levels; write the 2-D samples the model uses.
    Prepare(commands::prepare::PrepareArgs),
    /// Write a BIDS cohort of healthy scans with synthetic T2 hyperintensities and their ground truth.
    Synth(commands::synth::SynthArgs),
    /// Train the masked autoencoder on a healthy cohort (random masking of the cord region).
    Pretrain(commands::pretrain::PretrainArgs),
    /// Adapt a pretrained model to your cohort without labels (uncertainty-guided masking).
    Adapt(commands::adapt::AdaptArgs),
    /// Turn weights of the reference PyTorch model (.pth state_dict) into a u2ad model file.
    Import(commands::import::ImportArgs),
    /// Find T2 hyperintensities with a trained model: maps, per-level and per-patient calls, figures, QC report.
    Detect(commands::detect::DetectArgs),
    /// Call a cohort whose maps were made by several `detect --shard I/N` runs: thresholds, calls, tables, QC report.
    Calibrate(commands::calibrate::CalibrateArgs),
    /// Run a simple detector (intensity z-score) through the same pipeline and outputs as detect.
    Baseline(commands::baseline::BaselineArgs),
    /// Compare detection folders with the ground truth of a synthetic cohort: pixel, level and patient metrics.
    Evaluate(commands::evaluate::EvaluateArgs),
    /// The whole method end to end on the bundled healthy scans with synthetic lesions: train, detect, evaluate, report.
    Demo(commands::demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into()))
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    let context = commands::Context { quiet: cli.quiet };
    let result = match cli.command {
        Command::Prepare(args) => commands::prepare::run(args, &context),
        Command::Synth(args) => commands::synth::run(args, &context),
        Command::Detect(args) => commands::detect::run(args, &context),
        Command::Calibrate(args) => commands::calibrate::run(args, &context),
        Command::Baseline(args) => commands::baseline::run(args, &context),
        Command::Evaluate(args) => commands::evaluate::run(args, &context),
        Command::Demo(args) => commands::demo::run(args, &context),
        Command::Pretrain(args) => commands::pretrain::run(args, &context),
        Command::Adapt(args) => commands::adapt::run(args, &context),
        Command::Import(args) => commands::import::run(args, &context),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line: the file and the problem.
            // Control characters of hostile file names are shown escaped, never sent raw.
            let text = u2ad_io::names::printable(&format!("{error:#}").replace('\n', " "));
            eprintln!("u2ad: error: {text}");
            ExitCode::FAILURE
        }
    }
}
