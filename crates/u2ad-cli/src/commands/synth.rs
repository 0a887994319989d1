//! `u2ad synth`: a BIDS cohort of healthy scans with synthetic T2 hyperintensities and their
//! ground truth, for measuring detection without a labelled lesion cohort.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use u2ad_core::levels::DiscLevel;
use u2ad_eval::synth::{parse_disc_level, write_cohort, CohortOptions, CohortRequest, SynthConfig, ValueRange};
use u2ad_io::cohort::{discover_bids, DiscoveryOptions};

use super::input_args::SubjectArgs;
use super::run_args::JobsArg;
use super::Context;
use crate::progress;
use crate::sidecar::command_line;

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
u2ad synth ../shared/data/spine-t2 --out synth-cohort\n  \
u2ad synth ../shared/data/spine-t2 --out synth-c5 --levels C4/C5,C5/C6 --contrast 1.6 --length-mm 5:10 --seed 7\n\n\
Writes <out>/sub-*/anat/*_T2w.nii.gz, the cord/CSF/level labels it used and the ground truth \
(derivatives/labels/sub-*/anat/*_T2w_label-lesion_seg.nii.gz) under derivatives/labels, \
synth_manifest.tsv and .json (one row per lesion), participants.tsv and dataset_description.json. \
`u2ad prepare <out>` reads it as any BIDS cohort.")]
pub struct SynthArgs {
    /// A BIDS dataset of healthy T2w scans with cord masks and level labels under derivatives/labels.
    pub input: PathBuf,

    /// The cohort folder to create (must not exist, or be empty); written whole or not at all.
    #[arg(short, long)]
    pub out: PathBuf,

    /// Synthetic subjects made from each source scan.
    #[arg(long, default_value_t = 1)]
    pub subjects_per_source: usize,
    /// Lesions in each subject that has lesions (at distinct disc levels).
    #[arg(long, default_value_t = 1)]
    pub lesions_per_subject: usize,
    /// Fraction of the synthetic subjects left without lesion (fresh noise only).
    #[arg(long, default_value_t = 0.3)]
    pub lesion_free_fraction: f64,
    /// Contrast ratio: mean lesion signal / local cord median, MIN:MAX or one value (the
    /// lesion never exceeds the local CSF signal).
    #[arg(long, default_value = "1.3:3.0", value_parser = ValueRange::parse)]
    pub contrast: ValueRange,
    /// Lesion length along the cord in mm, MIN:MAX or one value.
    #[arg(long, default_value = "3:15", value_parser = ValueRange::parse)]
    pub length_mm: ValueRange,
    /// Lesion width as a fraction of the local cord width, MIN:MAX (at most 0.7).
    #[arg(long, default_value = "0.3:0.7", value_parser = ValueRange::parse)]
    pub width_fraction: ValueRange,
    /// Disc levels to place lesions at, e.g. C4/C5,C5/C6 (default: any level in view).
    #[arg(long, value_delimiter = ',', value_parser = parse_disc_level)]
    pub levels: Vec<DiscLevel>,
    /// Whole-image fresh noise in every subject, as a fraction of the scan's noise σ.
    #[arg(long, default_value_t = 0.5)]
    pub fresh_noise_fraction: f64,
    /// Fraction of the lesions moved off the centreline to touch the cord's anterior or
    /// posterior edge.
    #[arg(long, default_value_t = 0.0)]
    pub edge_fraction: f64,
    /// Largest relative deviation of a smooth multiplicative bias field in each copy (e.g. 0.15;
    /// 0 = none).
    #[arg(long, default_value_t = 0.0)]
    pub bias_field: f64,
    /// Global intensity scale of each copy, MIN:MAX or one value (scanner gain).
    #[arg(long, default_value = "1", value_parser = ValueRange::parse)]
    pub intensity_scale: ValueRange,
    // --seed is synth's own (run_args.rs says why).
    /// Random seed: the same seed and options give byte-identical files.
    #[arg(long, default_value_t = 0, help_heading = "Run")]
    pub seed: u64,

    // --include (source subjects) and --level-convention.
    #[command(flatten)]
    pub subjects: SubjectArgs,
    #[command(flatten)]
    pub jobs: JobsArg,
}

pub fn run(args: SynthArgs, context: &Context) -> anyhow::Result<()> {
    let options = CohortOptions {
        subjects_per_source: args.subjects_per_source,
        lesion_free_fraction: args.lesion_free_fraction,
        seed: args.seed,
        synth: SynthConfig {
            length_mm: args.length_mm,
            width_fraction: args.width_fraction,
            contrast_ratio: args.contrast,
            levels: args.levels.clone(),
            lesions_per_subject: args.lesions_per_subject,
            fresh_noise_fraction: args.fresh_noise_fraction,
            bias_field: args.bias_field,
            edge_fraction: args.edge_fraction,
            intensity_scale: args.intensity_scale,
            ..Default::default()
        },
        level_convention: args.subjects.level_convention,
    };
    if let Err(problem) = options.synth.validate() {
        anyhow::bail!("{problem}");
    }
    let discovery = DiscoveryOptions { include: args.subjects.include.clone(), ..Default::default() };
    let sources = discover_bids(&args.input, &discovery)?;
    let total = (sources.len() * args.subjects_per_source) as u64;
    let bar = progress::bar(total, "synth", context.quiet);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.jobs.threads())
        .build()
        .context("cannot start worker threads")?;
    let command = command_line();
    let request = CohortRequest {
        input_root: &args.input,
        sources: &sources,
        out: &args.out,
        options: &options,
        command: &command,
    };
    let records = pool.install(|| {
        write_cohort(&request, &|subject: &str| {
            bar.inc(1);
            bar.set_message(subject.to_string());
        })
    });
    bar.finish_and_clear();
    let records = records?;

    println!(
        "{:<22} {:<14} {:<7} {:>9} {:>6} {:>9} {:>7}",
        "subject", "source", "level", "length_mm", "width", "contrast", "voxels"
    );
    for record in &records {
        if record.lesions.is_empty() {
            println!("{:<22} {:<14} {:<7}", record.subject, record.source_subject, "none");
        }
        for lesion in &record.lesions {
            println!(
                "{:<22} {:<14} {:<7} {:>9.1} {:>6.2} {:>9.2} {:>7}",
                record.subject,
                record.source_subject,
                lesion.spec.level.name(),
                lesion.spec.length_mm,
                lesion.spec.width_fraction,
                lesion.contrast_ratio,
                lesion.voxels
            );
        }
    }
    if !context.quiet {
        let lesions: usize = records.iter().map(|r| r.lesions.len()).sum();
        let free = records.iter().filter(|r| r.lesion_free).count();
        eprintln!(
            "wrote {} ({} subjects: {} with {} lesions, {} lesion-free; seed {})",
            args.out.display(),
            records.len(),
            records.len() - free,
            lesions,
            free,
            args.seed
        );
    }
    Ok(())
}
