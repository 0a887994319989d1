//! Monte-Carlo inference: reconstruct a slice many times under random ROI masks and summarise,
//! per pixel, the samples of the passes in which its patch was masked.
//!
//! * mean reconstruction `μ`,
//! * epistemic uncertainty `EU` = population variance of the samples,
//! * aleatoric uncertainty `AU = |image − μ|`,
//!
//! on the ROI pixels (outside them `μ` = image, `EU` = `AU` = 0; the caller may restrict the maps
//! further, e.g. to the eroded cord). Each ROI patch contributes its first `K` samples.
//!
//! The masks of a slice come from a schedule drawn up front from the slice's own seed, so a
//! slice's maps do not depend on which other slices share its forward batches.
//! Run it with an inference backend (no autodiff), e.g. `model.valid()`.

use burn::tensor::{backend::Backend, Tensor, TensorData};
use rand::seq::{index::sample, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::mae::MaskedAutoencoder;
use crate::masking::masked_count;

/// How the masks of the passes are chosen. Every pass masks `m = round(mask_ratio · |ROI|)`
/// ROI patches (all of them random).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum McSchedule {
    /// `K` rounds of a shuffled cyclic cover: `K` random permutations of the ROI patches, laid
    /// end to end and cut into consecutive windows of `m` (each permutation puts the patches
    /// still in the open window last, so no pass masks a patch twice; the last window is
    /// completed with other random ROI patches). Every ROI patch gets exactly `K` samples in
    /// `⌈K·|ROI| / m⌉ ≈ K / mask_ratio` passes.
    Balanced,
    /// The reference: independent random masks until every ROI patch has `K` samples or
    /// `max_passes` passes were made (400 in the reference).
    RandomUntilCovered { max_passes: usize },
}

/// Monte-Carlo inference settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McConfig {
    /// `K`: samples per ROI patch (10 in the README and in training-time MC).
    pub samples_per_patch: usize,
    /// Fraction of the ROI patches masked in each pass.
    pub mask_ratio: f64,
    pub schedule: McSchedule,
    /// Masked copies of the slices reconstructed per forward batch. Memory grows with it: the
    /// paper-size encoder's attention scores alone take 16 heads x ~1000² tokens x 4 bytes
    /// ≈ 64 MB per pass, held twice around the softmax.
    pub passes_per_batch: usize,
}

impl Default for McConfig {
    fn default() -> Self {
        McConfig { samples_per_patch: 10, mask_ratio: 0.75, schedule: McSchedule::Balanced, passes_per_batch: 4 }
    }
}

/// One slice to run MC inference on; maps are row-major.
#[derive(Debug, Clone, Copy)]
pub struct McSlice<'a> {
    /// Image in [0, 1].
    pub image: &'a [f32],
    /// Region of interest (nonzero inside); its patches are the ones masked.
    pub roi: &'a [u8],
    /// Seed of this slice's mask schedule.
    pub seed: u64,
}

/// The per-pixel results of one slice, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct McMaps {
    /// Mean reconstruction on the ROI pixels, the image elsewhere.
    pub mean: Vec<f32>,
    /// Epistemic uncertainty (population variance of the samples), 0 outside the ROI pixels.
    pub epistemic: Vec<f32>,
    /// Aleatoric uncertainty `|image − mean|`, 0 outside the ROI pixels.
    pub aleatoric: Vec<f32>,
    /// Samples gathered per patch (`K` for ROI patches unless the reference loop ran out).
    pub samples: Vec<usize>,
    /// Forward passes (masked copies) made for this slice.
    pub passes: usize,
}

/// The balanced schedule (see [`McSchedule::Balanced`]): the masked ROI patches of each pass.
pub fn balanced_schedule<R: Rng + ?Sized>(roi_patches: &[usize], samples_per_patch: usize, mask_ratio: f64, rng: &mut R) -> Vec<Vec<usize>> {
    let m = masked_count(roi_patches.len(), mask_ratio);
    if m == 0 {
        return Vec::new();
    }
    let mut passes = Vec::new();
    let mut window: Vec<usize> = Vec::with_capacity(m);
    for _ in 0..samples_per_patch {
        let (mut held, mut fresh): (Vec<usize>, Vec<usize>) = roi_patches.iter().partition(|p| window.contains(p));
        fresh.shuffle(rng);
        held.shuffle(rng);
        for patch in fresh.into_iter().chain(held) {
            window.push(patch);
            if window.len() == m {
                passes.push(std::mem::replace(&mut window, Vec::with_capacity(m)));
            }
        }
    }
    if !window.is_empty() {
        let mut others: Vec<usize> = roi_patches.iter().copied().filter(|p| !window.contains(p)).collect();
        others.shuffle(rng);
        window.extend(others.into_iter().take(m - window.len()));
        passes.push(window);
    }
    passes
}

/// The reference's schedule (see [`McSchedule::RandomUntilCovered`]).
pub fn random_until_covered_schedule<R: Rng + ?Sized>(
    roi_patches: &[usize],
    samples_per_patch: usize,
    mask_ratio: f64,
    max_passes: usize,
    rng: &mut R,
) -> Vec<Vec<usize>> {
    let m = masked_count(roi_patches.len(), mask_ratio);
    let mut counts = vec![0usize; roi_patches.len()];
    let mut passes = Vec::new();
    while m > 0 && passes.len() < max_passes && counts.iter().any(|&c| c < samples_per_patch) {
        let chosen = sample(rng, roi_patches.len(), m).into_vec();
        for &j in &chosen {
            counts[j] += 1;
        }
        passes.push(chosen.into_iter().map(|j| roi_patches[j]).collect());
    }
    passes
}

/// The masked patches of every pass for one slice's ROI patches.
pub fn mask_schedule<R: Rng + ?Sized>(roi_patches: &[usize], config: &McConfig, rng: &mut R) -> Vec<Vec<usize>> {
    let (k, ratio) = (config.samples_per_patch, config.mask_ratio);
    match config.schedule {
        McSchedule::Balanced => balanced_schedule(roi_patches, k, ratio, rng),
        McSchedule::RandomUntilCovered { max_passes } => random_until_covered_schedule(roi_patches, k, ratio, max_passes, rng),
    }
}

/// Running sums of the first `K` samples of each patch.
struct Accumulator {
    count: Vec<usize>,
    sum: Vec<f64>,
    sum_sq: Vec<f64>,
}

/// MC inference on several slices, their passes sharing forward batches. Returns one
/// [`McMaps`] per slice, in order.
pub fn mc_inference<B: Backend>(model: &MaskedAutoencoder<B>, slices: &[McSlice<'_>], config: &McConfig) -> Vec<McMaps> {
    let grid = model.grid();
    let (patches, pixels) = (grid.num_patches(), grid.patch_pixels());
    let schedules: Vec<Vec<Vec<usize>>> = slices
        .iter()
        .map(|s| {
            assert_eq!(s.image.len(), grid.image_pixels(), "image size does not match the model");
            assert_eq!(s.roi.len(), grid.image_pixels(), "ROI size does not match the model");
            let flags = grid.patches_touching(s.roi);
            let roi_patches: Vec<usize> = (0..patches).filter(|&i| flags[i]).collect();
            mask_schedule(&roi_patches, config, &mut ChaCha8Rng::seed_from_u64(s.seed))
        })
        .collect();
    let jobs: Vec<(usize, &Vec<usize>)> =
        schedules.iter().enumerate().flat_map(|(s, passes)| passes.iter().map(move |p| (s, p))).collect();
    let mut acc: Vec<Accumulator> = slices
        .iter()
        .map(|_| Accumulator { count: vec![0; patches], sum: vec![0.0; patches * pixels], sum_sq: vec![0.0; patches * pixels] })
        .collect();
    let device = model.encoder_position.device();
    let side = grid.image_size;
    for chunk in jobs.chunks(config.passes_per_batch.max(1)) {
        let flat: Vec<f32> = chunk.iter().flat_map(|&(s, _)| slices[s].image.iter().copied()).collect();
        let images = Tensor::<B, 4>::from_data(TensorData::new(flat, [chunk.len(), 1, side, side]), &device);
        let masks: Vec<Vec<bool>> = chunk
            .iter()
            .map(|(_, masked)| {
                let mut m = vec![false; patches];
                for &i in masked.iter() {
                    m[i] = true;
                }
                m
            })
            .collect();
        let out: Vec<f32> = model.forward(images, &masks).image_patches.into_data().convert::<f32>().to_vec().expect("f32 data");
        for (b, &(s, masked)) in chunk.iter().enumerate() {
            let a = &mut acc[s];
            for &i in masked {
                if a.count[i] >= config.samples_per_patch {
                    continue;
                }
                a.count[i] += 1;
                let values = &out[(b * patches + i) * pixels..(b * patches + i + 1) * pixels];
                for (q, &v) in values.iter().enumerate() {
                    a.sum[i * pixels + q] += v as f64;
                    a.sum_sq[i * pixels + q] += (v as f64) * (v as f64);
                }
            }
        }
    }
    slices
        .iter()
        .zip(acc)
        .zip(&schedules)
        .map(|((slice, a), schedule)| {
            let mut maps = McMaps {
                mean: slice.image.to_vec(),
                epistemic: vec![0.0; grid.image_pixels()],
                aleatoric: vec![0.0; grid.image_pixels()],
                samples: a.count.clone(),
                passes: schedule.len(),
            };
            for i in (0..patches).filter(|&i| a.count[i] > 0) {
                let n = a.count[i] as f64;
                for (q, j) in grid.pixels_of(i).enumerate() {
                    if slice.roi[j] == 0 {
                        continue;
                    }
                    let mean = a.sum[i * pixels + q] / n;
                    maps.mean[j] = mean as f32;
                    maps.epistemic[j] = (a.sum_sq[i * pixels + q] / n - mean * mean).max(0.0) as f32;
                    maps.aleatoric[j] = (slice.image[j] as f64 - mean).abs() as f32;
                }
            }
            maps
        })
        .collect()
}
