//! The work of one subject: its inputs (scans, or prepared samples), the reuse of maps a
//! previous run left, and Monte-Carlo inference, scoring and the maps written onto the input's
//! grid.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::bail;
use burn::tensor::backend::Backend;
use serde_json::{json, Value};
use u2ad_core::dataset::{PreparedDataset, PreparedSample, SubjectMeta};
use u2ad_core::detect_outputs::{
    map_grid, native_maps, score_maps, sidecar_of, slice_seed, SampleResult, SubjectMaps, SubjectOutputs,
};
use u2ad_core::prepare::prepare_subject;
use u2ad_core::scoring::{anomaly_map, PlaneShape, Polarity};
use u2ad_io::cohort::SubjectFiles;
use u2ad_io::staging::StagedWrites;
use u2ad_io::volume::VoxelType;
use u2ad_model::{mc_inference, MaskedAutoencoder, McSlice};

use super::settings::Run;
use super::DetectArgs;
use crate::cohort_folder::SubjectResult as Detected;
use crate::commands::prepare::{find_inputs, read_slices, Inputs};
use crate::sidecar::stage_sidecar;

/// A unit of work: one subject.
pub(super) enum Job {
    Files(SubjectFiles),
    Prepared { meta: SubjectMeta, samples: Vec<PreparedSample> },
}

impl Job {
    pub(super) fn subject(&self) -> &str {
        match self {
            Job::Files(f) => &f.subject,
            Job::Prepared { meta, .. } => &meta.subject,
        }
    }
    fn image(&self) -> &Path {
        match self {
            Job::Files(f) => &f.image,
            Job::Prepared { meta, .. } => &meta.image_path,
        }
    }
    fn sources(&self) -> Vec<PathBuf> {
        let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        match self {
            Job::Files(f) => std::iter::once(&f.image)
                .chain(f.cord_mask.iter())
                .chain(f.csf_mask.iter())
                .chain(f.levels.iter())
                .map(|p| absolute(p))
                .collect(),
            Job::Prepared { meta, .. } => std::iter::once(&meta.image_path)
                .chain(meta.cord_mask_path.iter())
                .chain(meta.csf_mask_path.iter())
                .chain(meta.levels_path.iter())
                .cloned()
                .collect(),
        }
    }

    /// The content hash of what this subject's maps are made from.
    fn input_hash(&self) -> anyhow::Result<String> {
        Ok(match self {
            Job::Files(f) => f.content_hash()?,
            Job::Prepared { samples, .. } => u2ad_core::dataset::samples_hash(samples),
        })
    }
}

pub(super) fn jobs_of(args: &DetectArgs) -> anyhow::Result<Vec<Job>> {
    if let Some(input) = &args.input {
        if input.is_file() && input.extension().is_some_and(|e| e == "u2ds") {
            let jobs: Vec<Job> = PreparedDataset::read(input)?
                .subjects_with_samples(&args.scans.subjects.include)
                .into_iter()
                .map(|(meta, samples)| Job::Prepared { meta, samples })
                .collect();
            if jobs.is_empty() {
                bail!("{}: no subject to detect (check --include)", input.display());
            }
            return Ok(jobs);
        }
    }
    match find_inputs(args.input.as_ref(), &args.scans)? {
        Inputs::Scans(subjects) => Ok(subjects.into_iter().map(Job::Files).collect()),
        // Maps go on the slice's own 256 x 256 grid (detect_outputs::map_grid).
        Inputs::Slices(paths) => read_slices(&paths)
            .into_iter()
            .map(|(_, prepared)| Ok(prepared.map(|p| Job::Prepared { meta: p.meta, samples: p.samples })?))
            .collect(),
    }
}

/// Whether a previous run left this subject's maps with the same settings, model and input
/// content (a scan that changed in place is recomputed).
fn reusable(outputs: &SubjectOutputs, run: &Run, input_hash: &str) -> bool {
    if run.force || !outputs.nifti_maps().iter().all(|p| p.is_file()) || !outputs.sample_maps().is_file() {
        return false;
    }
    let Ok(text) = std::fs::read_to_string(sidecar_of(&outputs.sample_maps())) else { return false };
    let Ok(sidecar) = serde_json::from_str::<Value>(&text) else { return false };
    sidecar["ConfigHash"] == run.config_hash.as_str()
        && sidecar["ModelHash"] == run.model_info.hash.as_str()
        && sidecar["InputHash"] == input_hash
}

pub(super) fn detect_subject<B: Backend>(job: Job, model: &MaskedAutoencoder<B>, run: &Run) -> anyhow::Result<Detected> {
    let started = Instant::now();
    let subject = job.subject().to_string();
    let image = job.image().to_path_buf();
    let outputs = SubjectOutputs::new(&run.out, &subject, &image)?;
    let sources = job.sources();
    let input_hash = job.input_hash()?;
    if reusable(&outputs, run, &input_hash) {
        match SubjectMaps::read(&outputs.sample_maps()) {
            Ok(maps) => return Ok(summarise(maps, outputs, image, run, started, true)),
            Err(error) => tracing::warn!("{subject}: recomputing: {error}"),
        }
    }
    let (meta, samples) = match job {
        Job::Files(files) => {
            let prepared = prepare_subject(&files, &run.prepare)?;
            (prepared.meta, prepared.samples)
        }
        Job::Prepared { meta, samples } => (meta, samples),
    };
    if samples.is_empty() {
        bail!("{}: no sagittal slice holds cord", image.display());
    }
    let reference = map_grid(&meta)?;
    let inputs: Vec<(Vec<f32>, f32, f32, Vec<u8>)> = samples.iter().map(|s| run.mc_input.of(s)).collect();
    let slices: Vec<McSlice<'_>> = samples
        .iter()
        .zip(&inputs)
        .map(|(s, (image, _, _, region))| McSlice { image, roi: region, seed: slice_seed(run.seed, &subject, s.meta.native_slice) })
        .collect();
    let mc_maps = mc_inference(model, &slices, &run.mc);
    if let Some((s, _)) = samples.iter().zip(&mc_maps).find(|(_, m)| m.mean.iter().any(|v| !v.is_finite())) {
        bail!(
            "{}: the model's reconstruction of native slice {} is NaN or infinite: no maps written (is the model file damaged?)",
            image.display(),
            s.meta.native_slice
        );
    }
    let results: Vec<SampleResult> = samples
        .iter()
        .zip(mc_maps)
        .zip(&inputs)
        .map(|((s, m), &(_, lo, range, _))| {
            // Back from the normalised slice to the prepared [0, 1] scale of the volume.
            let mean: Vec<f32> = m.mean.iter().map(|&v| lo + v * range).collect();
            let epistemic: Vec<f32> = m.epistemic.iter().map(|&v| v * range * range).collect();
            let aleatoric: Vec<f32> = m.aleatoric.iter().map(|&v| v * range).collect();
            let smoothing_px = run.reconstruction_smoothing_mm / s.meta.pixel_mm;
            let anomaly = anomaly_map(run.polarity, &s.image, &mean, &aleatoric, PlaneShape::SAMPLE, smoothing_px);
            SampleResult::from_mc(s.meta, &s.image, &s.roi, &s.cord, &s.row_segment, mean, &epistemic, &anomaly, m.passes)
        })
        .collect();
    let maps = SubjectMaps { subject: meta, samples: results };
    let scored = score_maps(&maps, &run.scoring);
    let native = native_maps(&maps, &scored.candidates, &reference);
    let mut provenance = run.provenance(&sources);
    provenance["InputHash"] = json!(input_hash);
    let reconstruction = match run.reconstruction_smoothing_mm {
        0.0 => "mean reconstruction".to_string(),
        mm => format!("mean reconstruction smoothed in-plane by a Gaussian of sigma {mm} mm"),
    };
    let anomaly_description = match run.polarity {
        Polarity::Hyperintense => format!("Anomaly map: |image - {reconstruction}| where the image is brighter than it (hyperintense side only) and 0 where it is not, on the [0, 1] intensity scale, inside the cord eroded by 3 x 3 pixels; 0 elsewhere and on slices without cord"),
        Polarity::Both => format!("Anomaly map: |image - {reconstruction}| on the [0, 1] intensity scale, inside the cord eroded by 3 x 3 pixels; 0 elsewhere and on slices without cord"),
    };
    let descriptions = [
        (anomaly_description.as_str(), "[0, 1] intensity scale"),
        ("Epistemic uncertainty: variance of the K Monte-Carlo reconstructions, on the [0, 1] intensity scale squared, inside the cord eroded by 3 x 3 pixels; 0 elsewhere", "[0, 1] intensity scale, squared"),
        ("Mean of the K Monte-Carlo reconstructions inside the ROI (cord and CSF), the clipped input elsewhere, in the input's intensity units; 0 on slices without cord", "input intensity units"),
        ("Anomaly candidates: the AU above its 90th percentile in the eroded cord, 8-connected components of at least 2 pixels, the 3 best by mean x sum, per sagittal slice", "0/1"),
    ];
    // Every file lands when all are written (a failure leaves none of them).
    let staged = StagedWrites::new();
    for ((path, (map, is_mask)), (description, units)) in outputs.nifti_maps().iter().zip(native.named()).zip(descriptions) {
        let voxel_type = if is_mask { VoxelType::UInt8 } else { VoxelType::Float32 };
        staged.write_with(path, |tmp| reference.write_like(map.view(), voxel_type, tmp))?;
        let mut extra = provenance.clone();
        extra["Description"] = json!(description);
        extra["Units"] = json!(units);
        extra["SpatialReference"] = json!("orig");
        stage_sidecar(&staged, path, extra)?;
    }
    // The sample maps last: their sidecar marks the subject complete for a rerun.
    staged.write_with(&outputs.sample_maps(), |tmp| maps.write(tmp))?;
    let mut extra = provenance;
    extra["Description"] =
        json!("256 x 256 sagittal sample maps (image, mean reconstruction, EU, AU, ROI, cord, level rows) for rescoring");
    extra["Passes"] = json!(maps.samples.iter().map(|s| s.passes).collect::<Vec<_>>());
    stage_sidecar(&staged, &outputs.sample_maps(), extra)?;
    staged.commit()?;
    Ok(Detected::new(maps, scored, outputs, image, started, false))
}

fn summarise(maps: SubjectMaps, outputs: SubjectOutputs, image: PathBuf, run: &Run, started: Instant, reused: bool) -> Detected {
    let scored = score_maps(&maps, &run.scoring);
    Detected::new(maps, scored, outputs, image, started, reused)
}
