//! `u2ad detect`: a trained model and a cohort (BIDS folder, prepared `.u2ds`, or one image) to
//! anomaly maps, per-level and per-patient scores and calls, figures and one QC report.
//!
//! Per subject: Monte-Carlo inference on every sagittal sample (K masked reconstructions of each
//! ROI patch, batched), EU and AU on the cord eroded by 3 x 3, anomaly candidates, curve and
//! segment scores ([`u2ad_core::detect_outputs`], [`u2ad_core::scoring`]); the maps go back onto
//! the input's grid. Then, for the cohort: label-free calls with leave-one-subject-out
//! thresholds (or a fixed `--threshold`), tables, figures and the report.
//!
//! A subject that fails is reported and the others finish; the exit status is non-zero at the
//! end. A rerun reuses a subject's Monte-Carlo maps when its `_desc-mc_samples` sidecar records
//! the same configuration hash, model hash and input files (`--force` recomputes).
//!
//! Files: `args.rs` (the flags), `mod.rs` (the verb: subjects in parallel), `finish.rs` (then the cohort's
//! calls and summary, or a shard's record), `settings.rs` (what is fixed for the run, its hash
//! and provenance), `subjects.rs` (the work of one subject).

use std::time::Instant;

use anyhow::{bail, Context as _};
use burn::tensor::backend::Backend;
use rayon::prelude::*;
use u2ad_core::dataset::SAMPLE_SIZE;
use u2ad_io::names::printable;

use crate::cohort_folder::SubjectResult as Detected;
use super::Context;
use crate::progress;

mod args;
mod finish;
mod settings;
mod subjects;

pub use args::{DetectArgs, McRegionArg, ScheduleArg};

use settings::{hash_hex, map_run, settings_of, MapSettings, McInput, Run};
use subjects::{detect_subject, jobs_of, Job};

pub fn run(args: DetectArgs, context: &Context) -> anyhow::Result<()> {
    let device = crate::device::resolve(args.device.choice, context.quiet)?;
    crate::device::run_on(device, OnDevice(args, context))
}

/// The verb's work, for [`crate::device::run_on`].
struct OnDevice<'a>(DetectArgs, &'a Context);

impl crate::device::BackendJob for OnDevice<'_> {
    type Output = anyhow::Result<()>;
    fn run<B: burn::tensor::backend::Backend>(self, device: &B::Device) -> Self::Output {
        run_on::<B>(self.0, self.1, device)
    }
}

fn run_on<B: Backend>(args: DetectArgs, context: &Context, device: &B::Device) -> anyhow::Result<()> {
    let started = Instant::now();
    let (mc, scoring, calls) = settings_of(&args)?;
    let (model, model_info) = super::load_checked_model::<B>(&args.model, device)?;
    let grid = model_info.config.grid();
    if grid.image_size != SAMPLE_SIZE {
        bail!(
            "{}: the model takes {} x {} images; u2ad samples are {SAMPLE_SIZE} x {SAMPLE_SIZE}",
            args.model.display(),
            grid.image_size,
            grid.image_size
        );
    }
    // Each subject keeps its place in the cohort's order: a shard takes every N-th of them.
    let jobs: Vec<(usize, Job)> =
        jobs_of(&args)?.into_iter().enumerate().filter(|(position, _)| args.shard.is_none_or(|s| s.holds(*position))).collect();
    let prepare = args.scans.prepare_options();
    let mc_input = McInput { region: args.mc_region, min_max: !args.no_min_max };
    let settings = MapSettings {
        monte_carlo: &mc,
        seed: args.seed,
        preprocess: &prepare.preprocess,
        level_convention: prepare.level_convention.map(|c| c.name()),
        cord_offset_voxels: prepare.cord_offset_voxels,
        candidates: &scoring.candidates,
        polarity: args.polarity.into(),
        reconstruction_smoothing_mm: args.reconstruction_smoothing_mm,
        mc_input: Some(mc_input).filter(|m| !m.is_legacy()),
    };
    let config_hash = hash_hex(&serde_json::to_string(&settings)?);
    let run = Run {
        out: args.out.clone(),
        model_path: std::path::absolute(&args.model).unwrap_or_else(|_| args.model.clone()),
        model_info,
        mc,
        seed: args.seed,
        prepare,
        scoring,
        calls,
        config_hash,
        force: args.force,
        polarity: args.polarity.into(),
        reconstruction_smoothing_mm: args.reconstruction_smoothing_mm,
        mc_input,
    };
    std::fs::create_dir_all(&run.out).with_context(|| format!("{}: cannot create the output folder", run.out.display()))?;

    // Phase 1: every subject, in parallel.
    let bar = progress::bar(jobs.len() as u64, "detect", context.quiet);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.jobs.threads())
        .build()
        .context("cannot start worker threads")?;
    let results: Vec<(usize, String, anyhow::Result<Detected>)> = pool.install(|| {
        jobs.into_par_iter()
            .map(|(position, job)| {
                let subject = job.subject().to_string();
                bar.set_message(subject.clone());
                let result = detect_subject(job, &model, &run);
                if let Err(error) = &result {
                    bar.suspend(|| eprintln!("u2ad: {}: failed: {}", printable(&subject), printable(&format!("{error:#}").replace('\n', " "))));
                }
                bar.inc(1);
                (position, subject, result)
            })
            .collect()
    });
    bar.finish_and_clear();
    let mut detected = Vec::new();
    let mut positions = Vec::new();
    let mut failed: Vec<(usize, String, String)> = Vec::new();
    for (position, subject, result) in results {
        match result {
            Ok(d) => {
                detected.push(d);
                positions.push(position);
            }
            Err(e) => failed.push((position, subject, format!("{e:#}").replace('\n', " "))),
        }
    }
    let map_run = map_run(&run, &args);
    if let Some(shard) = args.shard {
        return finish::finish_shard(shard, map_run, &detected, &positions, failed, &run.out, context);
    }
    let failed: Vec<(String, String)> = failed.into_iter().map(|(_, s, e)| (s, e)).collect();
    finish::finish_cohort(&run, &map_run, args.scoring.calls.figure_mode(), &detected, &failed, started, context)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_gives_what_clap_gives() {
        let argv = ["detect", "cohort.u2ds", "--model", "m.safetensors", "--out", "detect"];
        let crate::Command::Detect(parsed) = super::super::parse_command(&argv) else { unreachable!() };
        super::super::assert_same(&DetectArgs::new("cohort.u2ds".into(), "m.safetensors".into(), "detect".into()), &parsed);
    }
}
