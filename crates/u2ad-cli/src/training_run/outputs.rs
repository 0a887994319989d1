//! What a training run leaves in its folder: the model file and its sidecar, `training.png`,
//! `reconstruction.png` and, after adaptation, `uncertainty.png`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use serde_json::{json, Value};
use u2ad_model::checkpoint::UncertaintyMaps;
use u2ad_model::records::{History, Stage};
use u2ad_model::train::{example_reconstruction, ExampleReconstruction};
use u2ad_model::{held_model, save_model, PatchGrid, TrainingConfig, TrainingOutcome};
use u2ad_report::training_figures::{self, EpochLoss, ReconstructionExample, RefreshMeans, TrainingCurves, TrainingStage};
use u2ad_report::FigureError;

use super::{LoadedData, MODEL_FILE};
use crate::sidecar::{sidecar_path, write_sidecar};

/// The training sample shown in the figures: the one nearest the cord's mid-sagittal plane, of
/// the first subject with a training sample. Returns its training-set position.
pub fn figure_sample(data: &LoadedData) -> usize {
    let first_subject = data.dataset.meta.samples[data.set.samples[0]].subject_index;
    (0..data.set.len())
        .filter(|&k| data.dataset.meta.samples[data.set.samples[k]].subject_index == first_subject)
        .min_by(|&a, &b| {
            let off = |k: usize| data.dataset.meta.samples[data.set.samples[k]].offset_from_mid_mm.abs();
            off(a).total_cmp(&off(b))
        })
        .unwrap_or(0)
}

/// The model file a run left, and whether this call wrote it.
pub struct ModelOutput {
    pub path: PathBuf,
    /// False when the folder already held this very model ([`held_model`]: a finished run
    /// resumed, or the same run again): the file and its sidecar were left as they were.
    pub written: bool,
}

/// Writes the model file and its sidecar (unless the folder already holds this model), the
/// training figure and the example figures.
pub fn write_outputs<B: AutodiffBackend>(
    out: &Path,
    data: &LoadedData,
    config: &TrainingConfig,
    outcome: &TrainingOutcome<B>,
    provenance: Value,
    seconds: f64,
) -> anyhow::Result<ModelOutput> {
    let model = outcome.model.valid();
    let model_path = out.join(MODEL_FILE);
    let held = held_model(&model, &config.model, &model_path)?;
    let written = held.is_none();
    // The provenance the sidecar must carry: this run's, or that of the model file left in place.
    let provenance = match held {
        None => {
            save_model(&model, &config.model, &provenance, &model_path)?;
            Some(provenance)
        }
        Some(kept) => {
            // A sidecar lost, or left from another model (a run killed between the two writes), is written again.
            let sidecar = std::fs::read(sidecar_path(&model_path)).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok());
            (sidecar.as_ref().and_then(|s| s.get("Provenance")) != Some(&kept.provenance)).then_some(kept.provenance)
        }
    };
    if let Some(provenance) = provenance {
        let last = outcome.history.epochs.last();
        write_sidecar(
            &model_path,
            json!({
                "Description": "u2ad trained model (weights, model configuration and provenance inside)",
                "Provenance": provenance,
                "TrainingSamples": data.set.len(),
                "SkippedSamples": data.set.skipped.len(),
                "FinalLoss": last.map(|r| r.loss),
                "WallSeconds": seconds,
                "ResumedAfterEpoch": outcome.resumed_at,
            }),
        )?;
    }
    let training_png = out.join("training.png");
    let curves = training_curves(&outcome.history);
    write_figure(&training_png, |tmp| training_figures::training_figure(&curves, tmp))?;
    let k = figure_sample(data);
    let example = example_reconstruction(&model, data.set.image(k), data.set.roi(k), config.training.mask_ratio, config.seed)?;
    let title = describe_sample(data, k);
    reconstruction_figure(&example, &title, &out.join("reconstruction.png"))?;
    if let Some(maps) = &outcome.maps {
        uncertainty_figure(out, data, maps, k, &title)?;
    }
    Ok(ModelOutput { path: model_path, written })
}

fn uncertainty_figure(out: &Path, data: &LoadedData, maps: &UncertaintyMaps, k: usize, title: &str) -> anyhow::Result<()> {
    let title = format!("{title}, maps after epoch {}", maps.epoch);
    write_figure(&out.join("uncertainty.png"), |tmp| {
        training_figures::uncertainty_figure(data.set.image(k), maps.epistemic(k), maps.aleatoric(k), maps.candidates(k), data.set.side, &title, tmp)
    })
}

/// Draws a figure through `draw`, written atomically ([`u2ad_io::staging::write_atomically`]:
/// a failure leaves no partial figure).
fn write_figure(path: &Path, draw: impl FnOnce(&Path) -> Result<(), FigureError>) -> anyhow::Result<()> {
    u2ad_io::staging::write_atomically(path, |tmp| draw(tmp).map_err(|e| u2ad_io::FileError::input(path, e.to_string())))
        .with_context(|| format!("{}: cannot write the figure", path.display()))
}

/// How the training figure shows a stage: its place in the pipeline (which orders and colours
/// the loss series) and its name.
fn figure_stage(stage: Stage) -> TrainingStage<'static> {
    let order = match stage {
        Stage::Pretrain => 0,
        Stage::EuGuided => 1,
        Stage::AuGuided => 2,
    };
    TrainingStage { order, name: stage.name() }
}

/// What the training figure draws of a run's history.
fn training_curves(history: &History) -> TrainingCurves<'static> {
    TrainingCurves {
        epochs: history.epochs.iter().map(|r| EpochLoss { epoch: r.epoch, stage: figure_stage(r.stage), loss: r.loss }).collect(),
        refreshes: history.refreshes.iter().map(|r| RefreshMeans { epoch: r.epoch, mean_eu: r.mean_eu, mean_au: r.mean_au }).collect(),
        boundaries: history.stage_boundaries().into_iter().map(|(epoch, stage)| (epoch, figure_stage(stage))).collect(),
    }
}

/// `reconstruction.png` of the example reconstruction: its patch mask spread over the pixels.
fn reconstruction_figure(example: &ExampleReconstruction, title: &str, path: &Path) -> anyhow::Result<()> {
    let side = example.side;
    let grid = PatchGrid { image_size: side, patch_size: example.patch_size };
    let mut masked_pixels = vec![false; side * side];
    for i in (0..grid.num_patches()).filter(|&i| example.mask[i]) {
        for j in grid.pixels_of(i) {
            masked_pixels[j] = true;
        }
    }
    let pasted = example.pasted();
    let view = ReconstructionExample {
        side,
        image: &example.image,
        reconstruction: &example.reconstruction,
        pasted: &pasted,
        masked_pixels: &masked_pixels,
        masked_patches: example.mask.iter().filter(|&&m| m).count(),
    };
    write_figure(path, |tmp| training_figures::reconstruction_figure(&view, title, tmp))
}

fn describe_sample(data: &LoadedData, k: usize) -> String {
    let meta = &data.dataset.meta.samples[data.set.samples[k]];
    let subject = &data.dataset.meta.subjects[meta.subject_index].subject;
    format!("{subject}, slice {} ({:+.1} mm from mid-sagittal)", meta.native_slice, meta.offset_from_mid_mm)
}
