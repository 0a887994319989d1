//! The refresh of the uncertainty maps: Monte-Carlo inference on every training sample, the
//! anomaly candidates, and the record of the refresh.

use std::time::Instant;

use burn::tensor::backend::Backend;
use rand::Rng;
use u2ad_core::scoring::{anomaly_candidates, PlaneShape, Polarity};

use super::{TrainingConfig, TrainingObserver, TrainingSet};
use crate::checkpoint::UncertaintyMaps;
use crate::mae::MaskedAutoencoder;
use crate::mc::{mc_inference, McSlice};
use crate::records::{RefreshRecord, Stage};
use crate::schedule::{stream_rng, RandomStream};

/// Monte-Carlo inference on every training sample with `model` (inference backend): the EU and
/// AU maps, the anomaly candidates, and their cohort means.
pub fn refresh_maps<B: Backend>(
    model: &MaskedAutoencoder<B>,
    set: &TrainingSet,
    config: &TrainingConfig,
    epoch: usize,
    stage: Stage,
    observer: &mut dyn TrainingObserver,
) -> (UncertaintyMaps, RefreshRecord) {
    let started = Instant::now();
    observer.refresh_started(epoch, set.len());
    let mut rng = stream_rng(config.seed, RandomStream::MonteCarlo, epoch);
    let seeds: Vec<u64> = (0..set.len()).map(|_| rng.random()).collect();
    let pixels = set.pixels();
    let mut maps = UncertaintyMaps {
        epoch,
        pixels,
        epistemic: Vec::with_capacity(set.len() * pixels),
        aleatoric: Vec::with_capacity(set.len() * pixels),
        anomaly: Vec::new(),
        candidates: Vec::new(),
    };
    // A one-sided anomaly map is kept only when it differs from the AU.
    let polarity = config.adaptation.candidates.polarity;
    // A few slices at a time, for progress; each slice's schedule depends on its seed only.
    let chunk = config.adaptation.mc.passes_per_batch.clamp(1, 8);
    for start in (0..set.len()).step_by(chunk) {
        let end = (start + chunk).min(set.len());
        let slices: Vec<McSlice<'_>> =
            (start..end).map(|k| McSlice { image: set.image(k), roi: set.mc_roi(k), seed: seeds[k] }).collect();
        for (k, m) in (start..end).zip(mc_inference(model, &slices, &config.adaptation.mc)) {
            maps.epistemic.extend_from_slice(&m.epistemic);
            maps.aleatoric.extend_from_slice(&m.aleatoric);
            if polarity != Polarity::Both {
                maps.anomaly.extend(polarity.anomaly(set.image(k), &m.mean, &m.aleatoric));
            }
        }
        observer.refresh_progress(end);
    }
    let record = finish_maps(&mut maps, set, config, stage, started.elapsed().as_secs_f64());
    observer.refresh_finished(&record);
    (maps, record)
}

/// Computes the anomaly candidates of `maps` and the record of the refresh.
fn finish_maps(maps: &mut UncertaintyMaps, set: &TrainingSet, config: &TrainingConfig, stage: Stage, seconds: f64) -> RefreshRecord {
    let shape = PlaneShape { rows: set.side, cols: set.side };
    let filter = config.adaptation.candidates.filter();
    maps.candidates = Vec::with_capacity(maps.aleatoric.len());
    let (mut eu_sum, mut au_sum, mut roi_px, mut cord_au, mut cord_px, mut candidate_px) = (0f64, 0f64, 0usize, 0f64, 0usize, 0usize);
    for k in 0..set.len() {
        let (eu, au, roi, cord) = (maps.epistemic(k), maps.aleatoric(k), set.mc_roi(k), set.candidate_cord(k));
        for j in 0..maps.pixels {
            if roi[j] != 0 {
                eu_sum += eu[j] as f64;
                au_sum += au[j] as f64;
                roi_px += 1;
            }
            if cord[j] != 0 {
                cord_au += au[j] as f64;
                cord_px += 1;
            }
        }
        let candidates = anomaly_candidates(maps.anomaly(k), cord, shape, &filter).filtered_au;
        candidate_px += candidates.iter().filter(|&&v| v != 0.0).count();
        maps.candidates.extend_from_slice(&candidates);
    }
    let mean = |s: f64, n: usize| if n > 0 { s / n as f64 } else { 0.0 };
    RefreshRecord {
        epoch: maps.epoch,
        stage,
        mean_eu: mean(eu_sum, roi_px),
        mean_au: mean(au_sum, roi_px),
        mean_cord_au: mean(cord_au, cord_px),
        candidate_pixels: candidate_px,
        samples: set.len(),
        seconds,
    }
}

/// Recomputes the candidates of maps read from a checkpoint.
pub(super) fn recompute_candidates(maps: &mut UncertaintyMaps, set: &TrainingSet, config: &TrainingConfig) {
    let _ = finish_maps(maps, set, config, Stage::Pretrain, 0.0);
}
