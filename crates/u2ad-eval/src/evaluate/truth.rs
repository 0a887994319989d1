//! The truth cohort: its subjects with their cord and lesion masks ([`discover_truth`]), and the
//! lesion manifest ([`read_manifest`]).

use std::path::{Path, PathBuf};

use serde::Serialize;
use u2ad_io::cohort::{discover_bids, nifti_stem, DiscoveryOptions};

use super::{LESION_SUFFIX, MANIFEST_NAMES};
use u2ad_core::error::{CoreError, Result};

/// One lesion of the manifest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LesionRecord {
    pub subject: String,
    /// The disc level the lesion was placed at (e.g. "C5/C6"), when given.
    pub level: Option<String>,
    /// Length along the cord, in mm.
    pub length_mm: Option<f64>,
    /// Lesion signal / local cord signal.
    pub contrast: Option<f64>,
}

/// Reads a lesion manifest: CSV or TSV with a header. Columns are found by name: `subject`
/// (also `participant_id`), `level`, a column whose name starts with `length` (mm), and one
/// starting with `contrast`. Rows with an empty level, length and contrast (a lesion-free copy)
/// are skipped.
pub fn read_manifest(path: &Path) -> Result<Vec<LesionRecord>> {
    let text = std::fs::read_to_string(path).map_err(|e| CoreError::io(path, e))?;
    let header = text.lines().next().unwrap_or_default();
    let delimiter = if header.contains('\t') { b'\t' } else { b',' };
    let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).flexible(true).from_reader(text.as_bytes());
    let bad = |detail: String| CoreError::input(path, detail);
    let names: Vec<String> = reader.headers().map_err(|e| bad(format!("not a CSV/TSV manifest ({e})")))?.iter().map(|h| h.trim().to_lowercase()).collect();
    let find = |pred: &dyn Fn(&str) -> bool| names.iter().position(|n| pred(n));
    let subject_column = find(&|n| n == "subject" || n == "participant_id")
        .ok_or_else(|| bad(format!("no 'subject' column (columns: {})", names.join(", "))))?;
    let level_column = find(&|n| n == "level" || n == "disc_level");
    let length_column = find(&|n| n.starts_with("length"));
    let contrast_column = find(&|n| n.starts_with("contrast"));
    let mut records = Vec::new();
    for (line, row) in reader.records().enumerate() {
        let row = row.map_err(|e| bad(format!("line {}: {e}", line + 2)))?;
        let field = |column: Option<usize>| column.and_then(|c| row.get(c)).map(str::trim).filter(|v| !v.is_empty() && *v != "n/a");
        let number = |column: Option<usize>, what: &str| -> Result<Option<f64>> {
            field(column)
                .map(|v| v.parse::<f64>().map_err(|_| bad(format!("line {}: {what} '{v}' is not a number", line + 2))))
                .transpose()
        };
        let subject = field(Some(subject_column)).ok_or_else(|| bad(format!("line {}: empty subject", line + 2)))?;
        let record = LesionRecord {
            subject: subject.to_string(),
            level: field(level_column).map(str::to_string),
            length_mm: number(length_column, "length")?,
            contrast: number(contrast_column, "contrast")?,
        };
        if record.level.is_some() || record.length_mm.is_some() || record.contrast.is_some() {
            records.push(record);
        }
    }
    Ok(records)
}

/// One subject of the truth cohort.
#[derive(Debug, Clone, PartialEq)]
pub struct TruthSubject {
    pub subject: String,
    pub image: PathBuf,
    pub cord_mask: PathBuf,
    /// `None`: the subject has no lesion mask (lesion-free).
    pub lesion_mask: Option<PathBuf>,
    /// Its lesions in the manifest.
    pub lesions: Vec<LesionRecord>,
}

/// The subjects of a truth cohort (a BIDS folder with cord masks and lesion masks), with the
/// manifest (`manifest`, or the first of [`MANIFEST_NAMES`] found at its root; none is fine).
pub fn discover_truth(root: &Path, manifest: Option<&Path>) -> Result<Vec<TruthSubject>> {
    let subjects = discover_bids(root, &DiscoveryOptions::default())?;
    let manifest_path = match manifest {
        Some(path) => Some(path.to_path_buf()),
        None => MANIFEST_NAMES.iter().map(|n| root.join(n)).find(|p| p.is_file()),
    };
    let records = match &manifest_path {
        Some(path) => read_manifest(path)?,
        None => Vec::new(),
    };
    let labels_root = root.join("derivatives").join("labels");
    let mut truth = Vec::new();
    for files in subjects {
        let cord_mask = files
            .cord_mask
            .clone()
            .ok_or_else(|| CoreError::input(&files.image, "no cord mask (_label-SC_seg) in the truth cohort"))?;
        let anat = files.image.parent().unwrap_or(root);
        let relative = anat.strip_prefix(root).unwrap_or(anat);
        let stem = nifti_stem(&files.image);
        let lesion_mask = ["nii.gz", "nii"]
            .iter()
            .map(|ext| labels_root.join(relative).join(format!("{stem}{LESION_SUFFIX}.{ext}")))
            .find(|p| p.is_file());
        let lesions: Vec<LesionRecord> = records.iter().filter(|r| r.subject == files.subject).cloned().collect();
        if lesion_mask.is_none() && !lesions.is_empty() {
            return Err(CoreError::input(
                manifest_path.as_deref().unwrap_or(root),
                format!("{} has a lesion in the manifest but no {stem}{LESION_SUFFIX}.nii.gz", files.subject),
            ));
        }
        truth.push(TruthSubject { subject: files.subject, image: files.image, cord_mask, lesion_mask, lesions });
    }
    Ok(truth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_are_read_by_column_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lesions.tsv");
        std::fs::write(
            &path,
            "subject\tseed\tlevel\tlength_mm\tcontrast_ratio\nsub-a01\t7\tC5/C6\t8.5\t1.8\nsub-b01\t8\t\t\t\nsub-c01\t9\tC3/C4\t4\t2.5\n",
        )
        .unwrap();
        let records = read_manifest(&path).unwrap();
        assert_eq!(records.len(), 2, "the lesion-free row is skipped");
        assert_eq!(
            records[0],
            LesionRecord { subject: "sub-a01".into(), level: Some("C5/C6".into()), length_mm: Some(8.5), contrast: Some(1.8) }
        );
        assert_eq!(records[1].length_mm, Some(4.0));
        std::fs::write(&path, "subject,level,length_mm\nsub-a01,C5/C6,long\n").unwrap();
        let err = read_manifest(&path).unwrap_err().to_string();
        assert!(err.contains("lesions.tsv") && err.contains("line 2") && err.contains("'long'"), "{err}");
        std::fs::write(&path, "name,level\nx,C5/C6\n").unwrap();
        assert!(read_manifest(&path).unwrap_err().to_string().contains("no 'subject' column"));
    }
}
