//! `u2ad prepare`: a cohort's scans and labels to one prepared dataset file.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::Args;
use rayon::prelude::*;
use serde_json::json;
use u2ad_core::dataset::PreparedDataset;
use u2ad_core::levels::LevelConvention;
use u2ad_core::npy::ClinicalSlice;
use u2ad_core::prepare::{prepare_subject, PrepareOptions, PreparedSubject};
use u2ad_io::cohort::{discover_bids, DiscoveryOptions, LabelSuffixes, SubjectFiles};

use super::Context;
use crate::progress;
use crate::sidecar::{command_line, write_sidecar};

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

    /// Subjects prepared in parallel (default: all cores).
    #[arg(short, long, help_heading = "Run")]
    pub jobs: Option<usize>,
    /// Leave out subjects that fail (reported) instead of stopping without output.
    #[arg(long, help_heading = "Run")]
    pub skip_failed: bool,
}

impl PrepareArgs {
    /// `u2ad prepare INPUT --out OUT` with every other flag at its default.
    pub fn new(input: PathBuf, out: PathBuf) -> Self {
        PrepareArgs { input: Some(input), out, scans: ScanInputs::default(), jobs: None, skip_failed: false }
    }
}

/// Where the scans and their labels are, beyond the input folder: one image with its masks, or
/// how to find a BIDS dataset's labels (shared by `prepare` and `detect`).
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Input")]
pub struct ScanInputs {
    /// One T2w image (instead of a BIDS folder).
    #[arg(long, conflicts_with = "input", requires = "cord")]
    pub image: Option<PathBuf>,
    /// Its binary spinal cord mask (SCT's *_seg, TotalSpineSeg's cord).
    #[arg(long)]
    pub cord: Option<PathBuf>,
    /// Its CSF mask (binary, or probability thresholded at 0.5); derived around the cord if absent.
    #[arg(long)]
    pub csf: Option<PathBuf>,
    /// Its level labels: SCT vertebral or disc points, SCT labelled cord, or TotalSpineSeg output.
    #[arg(long)]
    pub levels: Option<PathBuf>,
    /// Subject name for --image (default: the image name without _T2w.nii.gz).
    #[arg(long)]
    pub subject: Option<String>,

    /// Labels folder of a BIDS dataset (default: <input>/derivatives/labels).
    #[arg(long)]
    pub labels_dir: Option<PathBuf>,
    /// Suffix of the cord masks (default: _label-SC_seg); repeat to try several.
    #[arg(long)]
    pub cord_suffix: Vec<String>,
    /// Suffix of the CSF masks (default: _label-CSF_seg, _label-CSF_probseg).
    #[arg(long)]
    pub csf_suffix: Vec<String>,
    /// Suffix of the level files (default: _label-discs_dlabel, _label-vertebrae_dlabel,
    /// _label-vertebrae_dseg, _label-spine_dseg, first found).
    #[arg(long)]
    pub levels_suffix: Vec<String>,
    #[command(flatten)]
    pub subjects: SubjectArgs,
    /// Grow (positive) or shrink (negative) every cord mask by this many voxels in 3-D first: a
    /// check of how much the results depend on the mask.
    #[arg(long, default_value_t = ScanInputs::CORD_OFFSET_VOXELS, allow_negative_numbers = true)]
    pub cord_offset_voxels: i32,
}

/// What clap gives when none of the flags is given.
impl Default for ScanInputs {
    fn default() -> Self {
        ScanInputs {
            image: None,
            cord: None,
            csf: None,
            levels: None,
            subject: None,
            labels_dir: None,
            cord_suffix: Vec::new(),
            csf_suffix: Vec::new(),
            levels_suffix: Vec::new(),
            subjects: SubjectArgs::default(),
            cord_offset_voxels: Self::CORD_OFFSET_VOXELS,
        }
    }
}

/// Which subjects of a cohort, and how their level labels read (shared by `prepare`, `detect`,
/// `synth` and `baseline`).
// The derived `Default` is what clap gives when none of the flags is given.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Input")]
pub struct SubjectArgs {
    /// Level convention, when it cannot be told from the file: sct-vertebrae, sct-discs,
    /// sct-labeled-cord, totalspineseg, totalspineseg-legacy.
    #[arg(long, value_parser = parse_convention)]
    pub level_convention: Option<LevelConvention>,
    /// Only these subjects (sub-XX); repeat for several.
    #[arg(long)]
    pub include: Vec<String>,
}

impl ScanInputs {
    /// `--cord-offset-voxels`'s default (clap's and [`Default`]'s).
    pub const CORD_OFFSET_VOXELS: i32 = 0;

    /// How these inputs are prepared.
    pub fn prepare_options(&self) -> PrepareOptions {
        PrepareOptions {
            level_convention: self.subjects.level_convention,
            cord_offset_voxels: self.cord_offset_voxels,
            ..Default::default()
        }
    }
}

fn parse_convention(name: &str) -> Result<LevelConvention, String> {
    LevelConvention::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = LevelConvention::ALL.iter().map(|c| c.name()).collect();
        format!("unknown level convention '{name}' (one of: {})", names.join(", "))
    })
}

fn subject_name_of(image: &Path) -> String {
    let stem = u2ad_io::cohort::nifti_stem(image);
    stem.strip_suffix("_T2w").unwrap_or(&stem).to_string()
}

/// What the command will read.
pub(crate) enum Inputs {
    Scans(Vec<SubjectFiles>),
    Slices(Vec<PathBuf>),
}

pub(crate) fn find_inputs(input: Option<&PathBuf>, args: &ScanInputs) -> anyhow::Result<Inputs> {
    if let Some(image) = &args.image {
        let subject = args.subject.clone().unwrap_or_else(|| subject_name_of(image));
        if let Some(problem) = u2ad_io::names::subject_id_problem(&subject) {
            match args.subject {
                Some(_) => bail!("--subject: {problem}"),
                None => bail!("{}: {problem} (taken from the file name; give --subject)", image.display()),
            }
        }
        return Ok(Inputs::Scans(vec![SubjectFiles {
            subject,
            image: image.clone(),
            cord_mask: args.cord.clone(),
            csf_mask: args.csf.clone(),
            levels: args.levels.clone(),
        }]));
    }
    let Some(input) = input else {
        bail!("give a BIDS folder, a folder of .npy slices, or --image with --cord (see u2ad prepare --help)");
    };
    let npy_files = |dir: &Path| -> anyhow::Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("{}: cannot read folder", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "npy"))
            .collect();
        files.sort();
        Ok(files)
    };
    if input.is_file() && input.extension().is_some_and(|e| e == "npy") {
        return Ok(Inputs::Slices(vec![input.clone()]));
    }
    if input.is_dir() && !input.join("derivatives").is_dir() {
        let slices = npy_files(input)?;
        if !slices.is_empty() {
            return Ok(Inputs::Slices(slices));
        }
    }
    let mut suffixes = LabelSuffixes::default();
    if !args.cord_suffix.is_empty() {
        suffixes.cord = args.cord_suffix.clone();
    }
    if !args.csf_suffix.is_empty() {
        suffixes.csf = args.csf_suffix.clone();
    }
    if !args.levels_suffix.is_empty() {
        suffixes.levels = args.levels_suffix.clone();
    }
    let options = DiscoveryOptions {
        labels_dir: args.labels_dir.clone(),
        suffixes,
        image_suffix: None,
        include: args.subjects.include.clone(),
    };
    Ok(Inputs::Scans(discover_bids(input, &options)?))
}

/// The reference's `.npy` slices, each one subject named by its file stem.
pub fn read_slices(paths: &[PathBuf]) -> Vec<(String, Result<PreparedSubject, u2ad_core::CoreError>)> {
    paths
        .iter()
        .map(|path| {
            let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let result = u2ad_io::names::check_subject_id(&name, path).map_err(Into::into).and_then(|()| ClinicalSlice::read(path)).map(|slice| {
                let (meta, sample) = slice.into_prepared(&name, path);
                PreparedSubject { meta, samples: vec![sample] }
            });
            (name, result)
        })
        .collect()
}

pub fn run(args: PrepareArgs, context: &Context) -> anyhow::Result<()> {
    let options = args.scans.prepare_options();
    let prepared: Vec<(String, Result<PreparedSubject, u2ad_core::CoreError>)> = match find_inputs(args.input.as_ref(), &args.scans)? {
        Inputs::Slices(paths) => read_slices(&paths),
        Inputs::Scans(subjects) => {
            let bar = progress::bar(subjects.len() as u64, "prepare", context.quiet);
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(args.jobs.unwrap_or(0))
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
