//! A detection folder from a baseline's sample maps, in the layout of `u2ad detect`: maps on the
//! native grid with their sidecars, then the cohort's tables, figures and QC report.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use rayon::prelude::*;
use serde_json::{json, Value};
use u2ad_core::detect_outputs::{map_grid, native_maps, score_maps, MapScoring, ScoredSubject, SubjectMaps, SubjectOutputs};
use u2ad_core::scoring::CallConfig;
use u2ad_io::staging::StagedWrites;
use u2ad_io::volume::VoxelType;

use crate::cohort_folder::{merged, write_cohort, CohortFolder, SubjectResult};
use crate::commands::Context;
use crate::progress;
use crate::sidecar::stage_sidecar;

/// What a detection folder is written with.
pub struct DetectionFolder {
    pub out: PathBuf,
    /// Shown in the report's title and settings.
    pub method: String,
    /// Added to every sidecar.
    pub provenance: Value,
    /// Descriptions of the anomaly, uncertainty, reconstruction and candidate maps.
    pub map_descriptions: [&'static str; 4],
    pub scoring: MapScoring,
    pub calls: CallConfig,
    pub figure_mode: u2ad_report::html::FigureMode,
}

/// Writes a detection folder from the subjects' sample maps: maps on the native grid, per-subject
/// tables and figures, cohort tables, the QC report (the layout of `u2ad detect`).
pub fn write_detection_folder(folder: &DetectionFolder, maps: Vec<SubjectMaps>, context: &Context) -> anyhow::Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(&folder.out).with_context(|| format!("{}: cannot create the output folder", folder.out.display()))?;
    let bar = progress::bar(maps.len() as u64, "write", context.quiet);
    let scored: Vec<(SubjectMaps, ScoredSubject, SubjectOutputs)> = maps
        .into_par_iter()
        .map(|subject_maps| {
            let meta = &subject_maps.subject;
            let outputs = SubjectOutputs::new(&folder.out, &meta.subject, &meta.image_path)?;
            let scored = score_maps(&subject_maps, &folder.scoring);
            let reference = map_grid(meta)?;
            let native = native_maps(&subject_maps, &scored.candidates, &reference);
            let sources: Vec<String> = std::iter::once(&meta.image_path)
                .chain(meta.cord_mask_path.iter())
                .chain(meta.csf_mask_path.iter())
                .chain(meta.levels_path.iter())
                .map(|p| p.display().to_string())
                .collect();
            let provenance = merged(json!({"Sources": sources}), &folder.provenance);
            // The subject's maps land together or not at all.
            let staged = StagedWrites::new();
            for ((path, (map, is_mask)), description) in outputs.nifti_maps().iter().zip(native.named()).zip(folder.map_descriptions) {
                let voxel_type = if is_mask { VoxelType::UInt8 } else { VoxelType::Float32 };
                staged.write_with(path, |tmp| reference.write_like(map.view(), voxel_type, tmp))?;
                stage_sidecar(&staged, path, merged(json!({"Description": description, "SpatialReference": "orig"}), &provenance))?;
            }
            staged.write_with(&outputs.sample_maps(), |tmp| subject_maps.write(tmp))?;
            stage_sidecar(
                &staged,
                &outputs.sample_maps(),
                merged(json!({"Description": "256 x 256 sagittal sample maps (image, expected signal, EU, anomaly map, ROI, cord, level rows) for rescoring"}), &provenance),
            )?;
            staged.commit()?;
            bar.inc(1);
            Ok((subject_maps, scored, outputs))
        })
        .collect::<anyhow::Result<_>>()?;
    bar.finish_and_clear();

    let results: Vec<SubjectResult> = scored
        .into_iter()
        .map(|(maps, scored, outputs)| {
            let image = maps.subject.image_path.clone();
            SubjectResult::new(maps, scored, outputs, image, started, false)
        })
        .collect();
    let cohort = CohortFolder {
        out: &folder.out,
        method: Some(&folder.method),
        scoring: &folder.scoring,
        calls: &folder.calls,
        subject_provenance: folder.provenance.clone(),
        cohort_provenance: folder.provenance.clone(),
        report_settings: vec![("method".into(), folder.method.clone())],
        dataset_name: format!("u2ad {}: spinal cord T2 hyperintensity maps and calls", folder.method),
        source_dataset: folder.provenance["Input"].as_str().map(String::from),
        failed: &[],
        figure_mode: folder.figure_mode,
    };
    write_cohort(&cohort, &results, context)?;
    Ok(())
}
