//! What `u2ad prepare` (and `u2ad detect`) reads: one image with its masks, a BIDS dataset's
//! subjects, or the reference's `.npy` slices.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use u2ad_core::npy::ClinicalSlice;
use u2ad_core::prepare::PreparedSubject;
use u2ad_io::cohort::{discover_bids, DiscoveryOptions, LabelSuffixes, SubjectFiles};

use crate::commands::input_args::ScanInputs;

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
