//! Finding the scans of a cohort: a BIDS dataset (`sub-*/[ses-*/]anat/*_T2w.nii.gz`, labels under
//! `derivatives/labels/` with the spine-generic suffixes), or explicit paths.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{FileError, Result};

/// The files of one subject (or session).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubjectFiles {
    /// `sub-XX` or `sub-XX_ses-YY`.
    pub subject: String,
    pub image: PathBuf,
    pub cord_mask: Option<PathBuf>,
    pub csf_mask: Option<PathBuf>,
    pub levels: Option<PathBuf>,
}

impl SubjectFiles {
    /// SHA-256 (16 hex digits) of the contents of the image, masks and levels, each tagged with
    /// its role: what a reused result must match, wherever the files now lie.
    pub fn content_hash(&self) -> Result<String> {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        let roles = [("image", Some(&self.image)), ("cord", self.cord_mask.as_ref()), ("csf", self.csf_mask.as_ref()), ("levels", self.levels.as_ref())];
        for (role, path) in roles {
            hasher.update(role.as_bytes());
            match path {
                Some(path) => {
                    let bytes = std::fs::read(path).map_err(|e| FileError::io(path, e))?;
                    hasher.update((bytes.len() as u64).to_le_bytes());
                    hasher.update(&bytes);
                }
                None => hasher.update(b"none"),
            }
        }
        Ok(hasher.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect())
    }
}

/// Suffixes of the label files next to `<image stem>` under the labels directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelSuffixes {
    pub cord: Vec<String>,
    pub csf: Vec<String>,
    /// In order of preference: the first one found is used.
    pub levels: Vec<String>,
}

impl Default for LabelSuffixes {
    fn default() -> Self {
        LabelSuffixes {
            cord: vec!["_label-SC_seg".into(), "_seg-manual".into(), "_label-SC_mask".into()],
            csf: vec!["_label-CSF_seg".into(), "_label-CSF_probseg".into()],
            levels: vec![
                "_label-discs_dlabel".into(),
                "_label-vertebrae_dlabel".into(),
                "_label-vertebrae_dseg".into(),
                "_label-spine_dseg".into(),
            ],
        }
    }
}

/// Options for [`discover_bids`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DiscoveryOptions {
    /// Where the labels live; default `<root>/derivatives/labels`.
    pub labels_dir: Option<PathBuf>,
    pub suffixes: LabelSuffixes,
    /// Image suffix (default `_T2w`).
    pub image_suffix: Option<String>,
    /// Only these subjects (`sub-XX`), if given.
    pub include: Vec<String>,
}

fn sorted_dir(path: &Path) -> Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| FileError::io(path, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    Ok(entries)
}

fn name_of(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// File name without `.nii.gz` / `.nii` (or `.npy`, the reference's preprocessed slices).
pub fn nifti_stem(path: &Path) -> String {
    let name = name_of(path);
    [".nii.gz", ".nii", ".npy"].iter().find_map(|ext| name.strip_suffix(ext)).unwrap_or(&name).to_string()
}

fn find_label(dir: &Path, stem: &str, suffixes: &[String]) -> Option<PathBuf> {
    suffixes.iter().find_map(|suffix| {
        ["nii.gz", "nii"].iter().map(|ext| dir.join(format!("{stem}{suffix}.{ext}"))).find(|p| p.is_file())
    })
}

/// The participant a subject belongs to, for calibrations that must leave out every scan of the
/// same person: the `source_participant` column of the BIDS `participants.tsv` (as `u2ad synth`
/// writes it: each synthetic copy names the healthy scan it was made from) when it has a row for
/// the subject, else the subject's BIDS participant label (`sub-XX` without its session, so two
/// sessions of one person are one participant; a name that is not a BIDS `sub-` label, such as
/// a `.npy` slice's file name, is its own participant). `participants.tsv` is looked up in the
/// dataset root above `image` (the parent of its `sub-XX` folder).
pub fn participant_group(subject: &str, image: &Path) -> String {
    if !subject.starts_with("sub-") {
        return subject.to_string();
    }
    let label = subject.split('_').next().unwrap_or(subject).to_string();
    let root = image.ancestors().find(|a| a.file_name().is_some_and(|n| n == label.as_str())).and_then(Path::parent);
    let Some(text) = root.and_then(|r| std::fs::read_to_string(r.join("participants.tsv")).ok()) else {
        return label;
    };
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').map(str::trim).collect();
    let (Some(id), Some(source)) = (
        header.iter().position(|h| *h == "participant_id"),
        header.iter().position(|h| *h == "source_participant"),
    ) else {
        return label;
    };
    lines
        .map(|line| line.split('\t').map(str::trim).collect::<Vec<_>>())
        .find(|cells| cells.get(id) == Some(&label.as_str()))
        .and_then(|cells| cells.get(source).map(|s| s.to_string()))
        .filter(|s| !s.is_empty() && s != "n/a")
        .unwrap_or(label)
}

/// Every T2w image of a BIDS dataset with its labels.
pub fn discover_bids(root: &Path, options: &DiscoveryOptions) -> Result<Vec<SubjectFiles>> {
    if !root.is_dir() {
        return Err(FileError::input(root, "not a directory (expected a BIDS dataset with sub-*/anat/*_T2w.nii.gz)"));
    }
    let labels_root = options.labels_dir.clone().unwrap_or_else(|| root.join("derivatives").join("labels"));
    let image_suffix = options.image_suffix.clone().unwrap_or_else(|| "_T2w".into());
    let mut found = Vec::new();
    for subject_dir in sorted_dir(root)? {
        let subject = name_of(&subject_dir);
        if !subject.starts_with("sub-") || !subject_dir.is_dir() {
            continue;
        }
        if !options.include.is_empty() && !options.include.contains(&subject) {
            continue;
        }
        // anat folders: sub-X/anat or sub-X/ses-Y/anat.
        let mut anat_dirs: Vec<PathBuf> = Vec::new();
        if subject_dir.join("anat").is_dir() {
            anat_dirs.push(subject_dir.join("anat"));
        }
        for session_dir in sorted_dir(&subject_dir)? {
            let session = name_of(&session_dir);
            if session.starts_with("ses-") && session_dir.join("anat").is_dir() {
                anat_dirs.push(session_dir.join("anat"));
            }
        }
        for anat in anat_dirs {
            for image in sorted_dir(&anat)? {
                let stem = nifti_stem(&image);
                let is_nifti = name_of(&image).ends_with(".nii.gz") || name_of(&image).ends_with(".nii");
                if !is_nifti || !stem.ends_with(&image_suffix) {
                    continue;
                }
                let relative = anat.strip_prefix(root).unwrap_or(&anat);
                let label_dir = labels_root.join(relative);
                // `sub-XX[_ses-YY][_acq-ZZ]`: the image name without its suffix.
                let id = stem.trim_end_matches(&image_suffix).to_string();
                crate::names::check_subject_id(&id, &image)?;
                found.push(SubjectFiles {
                    subject: id,
                    cord_mask: find_label(&label_dir, &stem, &options.suffixes.cord),
                    csf_mask: find_label(&label_dir, &stem, &options.suffixes.csf),
                    levels: find_label(&label_dir, &stem, &options.suffixes.levels),
                    image,
                });
            }
        }
    }
    if found.is_empty() {
        return Err(FileError::input(root, format!("no sub-*/anat/*{image_suffix}.nii.gz images found")));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use u2ad_data::sample_file;

    #[test]
    fn finds_the_shared_cohort_and_its_labels() {
        let root = sample_file("spine-t2");
        let subjects = discover_bids(&root, &DiscoveryOptions::default()).unwrap();
        let names: Vec<&str> = subjects.iter().map(|s| s.subject.as_str()).collect();
        assert_eq!(names, ["sub-errsm11", "sub-errsm18", "sub-errsm21", "sub-errsm23", "sub-errsm30"]);
        assert!(subjects.iter().all(|s| s.cord_mask.is_some() && s.levels.is_some()));
        let errsm30 = &subjects[4];
        assert!(name_of(errsm30.csf_mask.as_ref().unwrap()).ends_with("_label-CSF_probseg.nii.gz"));
        assert!(subjects[0].csf_mask.is_none());
        assert!(name_of(subjects[0].levels.as_ref().unwrap()).ends_with("_label-vertebrae_dlabel.nii.gz"));
    }

    #[test]
    fn a_folder_without_images_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = discover_bids(dir.path(), &DiscoveryOptions::default()).unwrap_err().to_string();
        assert!(err.contains(&dir.path().display().to_string()) && err.contains("no sub-"), "{err}");
    }

    #[test]
    fn participants_come_from_participants_tsv_else_the_subject_label() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(
            root.join("participants.tsv"),
            "participant_id\tsource_participant\nsub-errsm23syn01\tsub-errsm23\nsub-x01\tn/a\n",
        )
        .unwrap();
        let image = |label: &str| root.join(label).join("anat").join(format!("{label}_T2w.nii.gz"));
        assert_eq!(participant_group("sub-errsm23syn01", &image("sub-errsm23syn01")), "sub-errsm23");
        // n/a, no row, a session: the participant label.
        assert_eq!(participant_group("sub-x01", &image("sub-x01")), "sub-x01");
        assert_eq!(participant_group("sub-y01", &image("sub-y01")), "sub-y01");
        let session = root.join("sub-z").join("ses-2").join("anat").join("sub-z_ses-2_T2w.nii.gz");
        assert_eq!(participant_group("sub-z_ses-2", &session), "sub-z");
        // The shared cohort has no participants.tsv with sources.
        let errsm = sample_file("spine-t2/sub-errsm21/anat/sub-errsm21_T2w.nii.gz");
        assert_eq!(participant_group("sub-errsm21", &errsm), "sub-errsm21");
        // Not a BIDS label (the reference's .npy slices): the whole name.
        assert_eq!(participant_group("case_1", &root.join("case_1.npy")), "case_1");
    }
}
