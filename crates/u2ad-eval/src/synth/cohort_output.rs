//! The cohort folder: the manifest table ([`manifest_tsv`]) and [`write_cohort`], which makes
//! every subject and writes the dataset descriptions, `participants.tsv` and the manifests, into
//! a temporary folder renamed into place at the end.

use std::fmt::Write as _;
use std::path::Path;

use u2ad_io::cohort::SubjectFiles;

use super::plan::{plan_cohort, CohortOptions, PlannedSubject};
use super::source::SourceScan;
use super::subject_output::{io_error, make_subject, SynthRecord};
use super::GROUND_TRUTH_ALPHA;
use u2ad_core::error::{CoreError, Result};

/// Columns of `synth_manifest.tsv`, one row per lesion (one row with `n/a` lesion fields for a
/// lesion-free subject).
pub const MANIFEST_COLUMNS: [&str; 22] = [
    "subject",
    "source_subject",
    "lesion",
    "level",
    "centre_arc_mm",
    "length_mm",
    "width_fraction",
    "width_mm",
    "cord_width_mm",
    "sagittal_slices",
    "voxels",
    "contrast_ratio",
    "contrast_ratio_requested",
    "cord_signal",
    "csf_signal",
    "target_signal",
    "capped_by_csf",
    "noise_sigma",
    "lesion_noise_sigma",
    "fresh_noise_sigma",
    "seed",
    "stream",
];

/// The manifest table.
pub fn manifest_tsv(records: &[SynthRecord]) -> String {
    let mut out = MANIFEST_COLUMNS.join("\t");
    out.push('\n');
    let na = "n/a";
    for record in records {
        let tail = format!("{:.3}\t{}\t{}", record.fresh_noise_sigma, record.seed, record.stream);
        if record.lesions.is_empty() {
            let _ = write!(out, "{}\t{}", record.subject, record.source_subject);
            // The lesion columns: all but the first two and the last five.
            for _ in 0..MANIFEST_COLUMNS.len() - 7 {
                let _ = write!(out, "\t{na}");
            }
            let _ = writeln!(out, "\t{:.3}\tn/a\t{tail}", record.noise_sigma);
            continue;
        }
        for (index, lesion) in record.lesions.iter().enumerate() {
            let _ = writeln!(
                out,
                "{}\t{}\t{}\t{}\t{:.2}\t{:.2}\t{:.3}\t{:.2}\t{:.2}\t{}\t{}\t{:.3}\t{:.3}\t{:.1}\t{}\t{:.1}\t{}\t{:.3}\t{:.3}\t{tail}",
                record.subject,
                record.source_subject,
                index + 1,
                lesion.spec.level.name(),
                lesion.spec.centre_arc_mm,
                lesion.spec.length_mm,
                lesion.spec.width_fraction,
                lesion.axes_mm[1],
                lesion.cord_width_mm,
                lesion.sagittal_slices.len(),
                lesion.voxels,
                lesion.contrast_ratio,
                lesion.spec.contrast_ratio,
                lesion.cord_signal,
                lesion.csf_signal.map_or(na.to_string(), |v| format!("{v:.1}")),
                lesion.target_signal,
                lesion.capped_by_csf,
                lesion.noise_sigma,
                lesion.lesion_noise_sigma,
            );
        }
    }
    out
}

/// What [`write_cohort`] needs besides the sources.
#[derive(Debug, Clone)]
pub struct CohortRequest<'a> {
    /// The source BIDS dataset (for its description).
    pub input_root: &'a Path,
    pub sources: &'a [SubjectFiles],
    /// The cohort folder to create; it must not exist (or be an empty folder).
    pub out: &'a Path,
    pub options: &'a CohortOptions,
    /// The command line, for `GeneratedBy`.
    pub command: &'a str,
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| io_error(path, e))
}

/// Makes a synthetic cohort and writes it as a BIDS dataset at `request.out`: built in a
/// temporary sibling folder and renamed into place at the end, so a failure leaves nothing.
/// Subjects are made in parallel (rayon's current pool); `on_subject` is told each one done.
pub fn write_cohort(request: &CohortRequest<'_>, on_subject: &(dyn Fn(&str) + Sync)) -> Result<Vec<SynthRecord>> {
    use rayon::prelude::*;
    let out = request.out;
    let options = request.options;
    options.synth.validate().map_err(|e| CoreError::input(out, e))?;
    if out.exists() {
        let empty_dir = out.is_dir() && std::fs::read_dir(out).map_err(|e| io_error(out, e))?.next().is_none();
        if !empty_dir {
            return Err(CoreError::input(
                out,
                "already exists: choose a new --out folder (the cohort is written whole)",
            ));
        }
    }
    let plan = plan_cohort(request.sources, options).map_err(|e| CoreError::input(request.input_root, e))?;
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "cohort".into());
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| io_error(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| io_error(&tmp, e))?;
    let built = build_cohort(&tmp, request, &plan, on_subject).and_then(|records| {
        if out.exists() {
            std::fs::remove_dir(out).map_err(|e| io_error(out, e))?;
        }
        std::fs::rename(&tmp, out).map_err(|e| io_error(out, e))?;
        Ok(records)
    });
    if built.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    return built;

    fn build_cohort(
        root: &Path,
        request: &CohortRequest<'_>,
        plan: &[PlannedSubject],
        on_subject: &(dyn Fn(&str) + Sync),
    ) -> Result<Vec<SynthRecord>> {
        let options = request.options;
        // One source at a time per worker: each is read once, its copies made, then dropped.
        let per_source: Vec<Result<Vec<SynthRecord>>> = request
            .sources
            .par_iter()
            .enumerate()
            .map(|(index, files)| {
                let source = SourceScan::load(files, options.level_convention, &options.synth.noise)?;
                plan.iter()
                    .filter(|p| p.source == index)
                    .map(|p| {
                        let record = make_subject(root, &source, p, options)?;
                        on_subject(&p.subject);
                        Ok(record)
                    })
                    .collect()
            })
            .collect();
        let mut records = Vec::with_capacity(plan.len());
        for result in per_source {
            records.extend(result?);
        }
        records.sort_by_key(|r| r.stream);

        let version = env!("CARGO_PKG_VERSION");
        let generated_by = serde_json::json!([{
            "Name": "u2ad",
            "Version": version,
            "Description": "u2ad synth: healthy scans with synthetic T2 hyperintensities (blend toward r x local cord signal, Gaussian-feathered ellipsoid along the cord, matched noise)",
            "Command": request.command,
        }]);
        let source_description: Option<serde_json::Value> =
            std::fs::read_to_string(request.input_root.join("dataset_description.json"))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok());
        let source_name = source_description
            .as_ref()
            .and_then(|d| d.get("Name"))
            .and_then(|n| n.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| request.input_root.display().to_string());
        let input_abs = std::path::absolute(request.input_root).unwrap_or_else(|_| request.input_root.to_path_buf());
        let mut description = serde_json::json!({
            "Name": format!("Synthetic T2 hyperintensities in {source_name}"),
            "BIDSVersion": "1.9.0",
            "DatasetType": "raw",
            "GeneratedBy": generated_by,
            "SourceDatasets": [{"URL": format!("file://{}", input_abs.display())}],
        });
        if let Some(license) = source_description.as_ref().and_then(|d| d.get("License")) {
            description["License"] = license.clone();
        }
        let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).expect("JSON values serialise");
        write_text(&root.join("dataset_description.json"), &pretty(&description))?;
        let labels_root = root.join("derivatives").join("labels");
        std::fs::create_dir_all(&labels_root).map_err(|e| io_error(&labels_root, e))?;
        let labels_description = serde_json::json!({
            "Name": "Cord, CSF and level labels of the sources, and the synthetic lesions' ground truth",
            "BIDSVersion": "1.9.0",
            "DatasetType": "derivative",
            "GeneratedBy": generated_by,
        });
        write_text(&labels_root.join("dataset_description.json"), &pretty(&labels_description))?;
        let mut participants = String::from("participant_id\tsource_participant\n");
        for record in &records {
            let _ = writeln!(participants, "{}\t{}", record.subject, record.source_subject);
        }
        write_text(&root.join("participants.tsv"), &participants)?;
        let manifest = serde_json::json!({
            "GeneratedBy": generated_by,
            "Seed": options.seed,
            "Options": options,
            "GroundTruthAlpha": GROUND_TRUTH_ALPHA,
            "Subjects": records,
        });
        write_text(&root.join("synth_manifest.json"), &pretty(&manifest))?;
        write_text(&root.join("synth_manifest.tsv"), &manifest_tsv(&records))?;
        Ok(records)
    }
}
