//! `u2ad prepare`: a cohort's scans and labels to one prepared dataset file.
//!
//! Files: `mod.rs` (the flags and the verb: subjects in parallel, the dataset, its sidecar and
//! table), `inputs.rs` (what it reads: one image, a BIDS dataset or `.npy` slices); the input
//! flags it shares with other verbs are in `commands/input_args.rs`.

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::Args;
use rayon::prelude::*;
use serde_json::json;
use u2ad_core::dataset::PreparedDataset;
use u2ad_core::prepare::{prepare_subject, PreparedSubject};

use super::input_args::ScanInputs;
use super::run_args::JobsArg;
use super::Context;
use crate::progress;
use crate::sidecar::{command_line, write_sidecar};

mod inputs;

pub(crate) use inputs::{find_inputs, read_slices, Inputs};

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
u2ad prepare ../shared/data/spine-t2 -o healthy.u2ds\n  \
u2ad prepare --image sub-01_T2w.nii.gz --cord sub-01_T2w_label-SC_seg.nii.gz --levels sub-01_T2w_label-discs_dlabel.nii.gz -o one.u2ds\n  \
u2ad prepare ../shared/data/clinical-slices -o clinical.u2ds")]
pub struct PrepareArgs {
    /// A BIDS dataset (sub-*/anat/*_T2w.nii.gz, labels under derivatives/labels/), or a folder
    /// of preprocessed .npy slices (3 x 256 x 256: image, ROI, labels).
    pub input: Option<PathBuf>,

    /// Output dataset file (.u2ds); a JSON sidecar is written beside it.
    #[arg(short, long, alias = "output")]
    pub out: PathBuf,

    #[command(flatten)]
    pub scans: ScanInputs,

    #[command(flatten)]
    pub jobs: JobsArg,
    /// Leave out subjects that fail (reported) instead of stopping without output.
    #[arg(long, help_heading = "Run")]
    pub skip_failed: bool,
}

impl PrepareArgs {
    /// `u2ad prepare INPUT --out OUT` with every other flag at its default.
    pub fn new(input: PathBuf, out: PathBuf) -> Self {
        PrepareArgs { input: Some(input), out, scans: ScanInputs::default(), jobs: JobsArg::default(), skip_failed: false }
    }
}

pub fn run(args: PrepareArgs, context: &Context) -> anyhow::Result<()> {
    let options = args.scans.prepare_options();
    let prepared: Vec<(String, Result<PreparedSubject, u2ad_core::CoreError>)> = match find_inputs(args.input.as_ref(), &args.scans)? {
        Inputs::Slices(paths) => read_slices(&paths),
        Inputs::Scans(subjects) => {
            let bar = progress::bar(subjects.len() as u64, "prepare", context.quiet);
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(args.jobs.threads())
                .build()
                .context("cannot start worker threads")?;
            let results = pool.install(|| {
                subjects
                    .par_iter()
                    .map(|files| {
                        let result = prepare_subject(files, &options);
                        bar.inc(1);
                        bar.set_message(files.subject.clone());
                        (files.subject.clone(), result)
                    })
                    .collect()
            });
            bar.finish_and_clear();
            results
        }
    };

    let mut dataset = PreparedDataset::new(command_line());
    let mut failures = Vec::new();
    for (name, result) in prepared {
        match result {
            Ok(subject) => dataset.push_subject(subject.meta, subject.samples),
            Err(error) => failures.push((name, error)),
        }
    }
    if failures.len() == 1 && dataset.meta.subjects.is_empty() && !args.skip_failed {
        return Err(failures.remove(0).1.into());
    }
    for (name, error) in &failures {
        eprintln!("u2ad: {}: {}", u2ad_io::names::printable(name), u2ad_io::names::printable(&error.to_string()));
    }
    if !failures.is_empty() && !args.skip_failed {
        bail!(
            "{} of {} subjects failed ({}); nothing written (use --skip-failed to leave them out)",
            failures.len(),
            failures.len() + dataset.meta.subjects.len(),
            failures.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    if dataset.is_empty() {
        bail!("no sample to write: no subject has a sagittal slice with cord");
    }
    dataset.write(&args.out)?;
    write_sidecar(
        &args.out,
        json!({
            "Description": "u2ad prepared dataset: 256 x 256 sagittal samples",
            "Preprocessing": options.preprocess,
            "Subjects": dataset.meta.subjects.len(),
            "Samples": dataset.len(),
            "FailedSubjects": failures.iter().map(|(n, e)| json!({"subject": n, "error": e.to_string()})).collect::<Vec<_>>(),
        }),
    )?;
    print_table(&dataset);
    if !context.quiet {
        eprintln!("wrote {} ({} subjects, {} samples)", args.out.display(), dataset.meta.subjects.len(), dataset.len());
    }
    Ok(())
}

fn print_table(dataset: &PreparedDataset) {
    println!("{:<16} {:>6} {:>10}  {:<8} levels found", "subject", "slices", "cord (mm)", "CSF");
    for (index, subject) in dataset.meta.subjects.iter().enumerate() {
        let levels = if subject.levels_found.is_empty() { "none".to_string() } else { subject.levels_found.join(" ") };
        println!(
            "{:<16} {:>6} {:>10.1}  {:<8} {}",
            subject.subject,
            dataset.samples_of(index).len(),
            subject.cord_length_mm,
            if subject.csf_derived { "derived" } else { "given" },
            levels
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_gives_what_clap_gives() {
        let crate::Command::Prepare(parsed) = super::super::parse_command(&["prepare", "cohort", "--out", "x.u2ds"]) else { unreachable!() };
        super::super::assert_same(&PrepareArgs::new("cohort".into(), "x.u2ds".into()), &parsed);
    }
}
