//! Which patches the encoder does not see. One function, [`mask_patches`], with a
//! [`MaskingStrategy`].
//!
//! Masking works per image and only inside the region of interest: a patch is an ROI patch if
//! any of its pixels is in the ROI; each image masks `round(mask_ratio · |ROI patches|)` of its
//! own ROI patches and never a patch outside the ROI. (The reference masks the batch-mean count
//! in every image, bug B3 of `docs/reference-notes.md`.)

use rand::seq::index::sample;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::config::PatchGrid;

/// How the masked ROI patches are chosen.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum MaskingStrategy {
    /// Uniformly at random among the ROI patches (pretraining, MC inference, the baseline).
    #[default]
    Random,
    /// Epistemic-uncertainty guided, the paper's intent. For ROI patch `i` of an image let
    /// `ē_i` be the mean EU over its ROI pixels and `n_i = ē_i / mean EU over the image's ROI
    /// pixels` (all `n_i = 0` if that mean is 0). The masking weights over the image's ROI
    /// patches `𝓡` are
    ///
    /// `p_i = (1 − λ) · exp(n_i / τ) / Σ_{j∈𝓡} exp(n_j / τ) + λ / |𝓡|`
    ///
    /// (`τ` = `temperature`, `λ` = `uniform_mix`), and the `k` masked patches are drawn from
    /// `p` without replacement by Gumbel-top-k: `key_i = ln p_i + g_i`, `g_i = −ln(−ln u_i)`,
    /// `u_i ~ U(0, 1)`; the `k` largest keys are masked.
    EuGuided { temperature: f64, uniform_mix: f64 },
    /// The released code's `variance_masking`, kept for comparison (bug B5: it barely differs
    /// from random and leans towards keeping high-EU patches). With `e_i` the EU summed over
    /// patch `i`'s pixels (ROI patches only) and `Z` the set of nonzero `e` in the whole batch:
    /// `q_i = −ln(exp(e_i/τ) / Σ_{j∈Z} exp(e_j/τ) + 1e-6)` (`q_i = 0` where `e_i = 0`), score
    /// `s_i = u_i · q_i`, `u_i ~ U(0, 1)`; the `k` ROI patches with the largest scores are masked
    /// (per image `k`, unlike the reference).
    ReferenceEu { temperature: f64 },
    /// Aleatoric-uncertainty stage: as [`MaskingStrategy::EuGuided`] over the ROI patches that
    /// hold no anomaly candidate (the candidate map, computed elsewhere from the AU map, is > 0
    /// somewhere in the patch); candidate patches are never masked. The count is still
    /// `round(mask_ratio · |𝓡|)`, capped at the number of candidate-free ROI patches.
    AuGuided { temperature: f64, uniform_mix: f64 },
}

impl MaskingStrategy {
    /// EU-guided with `τ = 1` (on the ROI-mean-normalised EU) and `λ = 0.1`.
    pub fn eu_guided() -> Self {
        MaskingStrategy::EuGuided { temperature: 1.0, uniform_mix: 0.1 }
    }

    /// AU-guided with the same `τ`, `λ` as [`MaskingStrategy::eu_guided`].
    pub fn au_guided() -> Self {
        MaskingStrategy::AuGuided { temperature: 1.0, uniform_mix: 0.1 }
    }

    fn needs_eu(&self) -> bool {
        !matches!(self, MaskingStrategy::Random)
    }
}

/// What masking needs to know about one image; maps are row-major, one value per pixel.
#[derive(Debug, Clone, Copy)]
pub struct MaskingInput<'a> {
    /// Region of interest (nonzero inside).
    pub roi: &'a [u8],
    /// Epistemic-uncertainty map of the latest MC inference (guided strategies).
    pub epistemic: Option<&'a [f32]>,
    /// Anomaly-candidate map (> 0 at candidate pixels; AU-guided strategy).
    pub candidates: Option<&'a [f32]>,
}

/// A strategy that lacks a map it needs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MaskingError {
    #[error("image {image}: {strategy} masking needs the {map} map")]
    MissingMap { image: usize, strategy: &'static str, map: &'static str },
    #[error("image {image}: a map has {got} pixels, the image has {expected}")]
    WrongSize { image: usize, got: usize, expected: usize },
}

/// Number of ROI patches to mask: `round(mask_ratio · roi_patches)`.
pub fn masked_count(roi_patches: usize, mask_ratio: f64) -> usize {
    ((mask_ratio * roi_patches as f64).round() as usize).min(roi_patches)
}

/// The masks of a batch: `result[b][i] == true` if patch `i` of image `b` is masked.
/// Deterministic given the state of `rng`.
pub fn mask_patches<R: Rng + ?Sized>(
    inputs: &[MaskingInput<'_>],
    grid: PatchGrid,
    mask_ratio: f64,
    strategy: &MaskingStrategy,
    rng: &mut R,
) -> Result<Vec<Vec<bool>>, MaskingError> {
    let name = match strategy {
        MaskingStrategy::Random => "random",
        MaskingStrategy::EuGuided { .. } => "EU-guided",
        MaskingStrategy::ReferenceEu { .. } => "reference EU",
        MaskingStrategy::AuGuided { .. } => "AU-guided",
    };
    for (image, input) in inputs.iter().enumerate() {
        let maps = [Some(input.roi.len()), input.epistemic.map(<[f32]>::len), input.candidates.map(<[f32]>::len)];
        if let Some(got) = maps.into_iter().flatten().find(|&n| n != grid.image_pixels()) {
            return Err(MaskingError::WrongSize { image, got, expected: grid.image_pixels() });
        }
        if strategy.needs_eu() && input.epistemic.is_none() {
            return Err(MaskingError::MissingMap { image, strategy: name, map: "epistemic-uncertainty" });
        }
        if matches!(strategy, MaskingStrategy::AuGuided { .. }) && input.candidates.is_none() {
            return Err(MaskingError::MissingMap { image, strategy: name, map: "anomaly-candidate" });
        }
    }
    let reference_q = match strategy {
        MaskingStrategy::ReferenceEu { temperature } => Some(reference_scores(inputs, grid, *temperature)),
        _ => None,
    };
    let mut masks = Vec::with_capacity(inputs.len());
    for (image, input) in inputs.iter().enumerate() {
        let roi_flags = grid.patches_touching(input.roi);
        let roi: Vec<usize> = (0..grid.num_patches()).filter(|&i| roi_flags[i]).collect();
        let k = masked_count(roi.len(), mask_ratio);
        let chosen: Vec<usize> = match strategy {
            MaskingStrategy::Random => sample(rng, roi.len(), k).into_iter().map(|j| roi[j]).collect(),
            MaskingStrategy::EuGuided { temperature, uniform_mix } => {
                let weights = eu_weights(input, grid, &roi, *temperature, *uniform_mix);
                gumbel_top_k(&roi, &weights, k, rng)
            }
            MaskingStrategy::AuGuided { temperature, uniform_mix } => {
                let candidate = grid.patches_touching(input.candidates.expect("checked above"));
                let eligible: Vec<usize> = roi.iter().copied().filter(|&i| !candidate[i]).collect();
                let weights = eu_weights(input, grid, &eligible, *temperature, *uniform_mix);
                gumbel_top_k(&eligible, &weights, k.min(eligible.len()), rng)
            }
            MaskingStrategy::ReferenceEu { .. } => {
                let q = &reference_q.as_ref().expect("computed above")[image];
                let mut scored: Vec<(f64, usize)> = roi.iter().map(|&i| (rng.random::<f64>() * q[i], i)).collect();
                scored.sort_by(|a, b| b.0.total_cmp(&a.0));
                scored.into_iter().take(k).map(|(_, i)| i).collect()
            }
        };
        let mut mask = vec![false; grid.num_patches()];
        for i in chosen {
            mask[i] = true;
        }
        masks.push(mask);
    }
    Ok(masks)
}

/// The EU-guided weights `p` over `patches` (see [`MaskingStrategy::EuGuided`]).
fn eu_weights(input: &MaskingInput<'_>, grid: PatchGrid, patches: &[usize], temperature: f64, uniform_mix: f64) -> Vec<f64> {
    let eu = input.epistemic.expect("checked by mask_patches");
    let (mut total, mut count) = (0f64, 0usize);
    for (j, &r) in input.roi.iter().enumerate() {
        if r > 0 {
            total += eu[j] as f64;
            count += 1;
        }
    }
    let roi_mean = if count > 0 { total / count as f64 } else { 0.0 };
    let normalised: Vec<f64> = patches
        .iter()
        .map(|&i| {
            let (s, n) = grid
                .pixels_of(i)
                .filter(|&j| input.roi[j] > 0)
                .fold((0f64, 0usize), |(s, n), j| (s + eu[j] as f64, n + 1));
            if roi_mean > 0.0 && n > 0 {
                s / n as f64 / roi_mean
            } else {
                0.0
            }
        })
        .collect();
    let top = normalised.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = normalised.iter().map(|n| ((n - top) / temperature).exp()).collect();
    let sum: f64 = exp.iter().sum();
    let uniform = 1.0 / patches.len().max(1) as f64;
    exp.iter().map(|e| (1.0 - uniform_mix) * e / sum + uniform_mix * uniform).collect()
}

/// `k` of `patches` drawn without replacement with probabilities proportional to `weights`:
/// the `k` largest `ln w_i + Gumbel` keys.
fn gumbel_top_k<R: Rng + ?Sized>(patches: &[usize], weights: &[f64], k: usize, rng: &mut R) -> Vec<usize> {
    let mut keyed: Vec<(f64, usize)> = patches
        .iter()
        .zip(weights)
        .map(|(&i, &w)| {
            let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
            (w.ln() - (-u.ln()).ln(), i)
        })
        .collect();
    keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
    keyed.into_iter().take(k).map(|(_, i)| i).collect()
}

/// The reference's `q` for every patch of every image (0 outside the ROI and where `e = 0`).
fn reference_scores(inputs: &[MaskingInput<'_>], grid: PatchGrid, temperature: f64) -> Vec<Vec<f64>> {
    let sums: Vec<Vec<f64>> = inputs
        .iter()
        .map(|input| {
            let eu = input.epistemic.expect("checked by mask_patches");
            let roi = grid.patches_touching(input.roi);
            (0..grid.num_patches())
                .map(|i| if roi[i] { grid.pixels_of(i).map(|j| eu[j] as f64).sum() } else { 0.0 })
                .collect()
        })
        .collect();
    let nonzero = || sums.iter().flatten().copied().filter(|&e| e != 0.0);
    let top = nonzero().fold(f64::NEG_INFINITY, f64::max);
    let log_sum = nonzero().map(|e| ((e - top) / temperature).exp()).sum::<f64>().ln() + top / temperature;
    sums.iter()
        .map(|s| s.iter().map(|&e| if e == 0.0 { 0.0 } else { -((e / temperature - log_sum).exp() + 1e-6).ln() }).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// 64 x 64 image, 8 x 8 patches (an 8 x 8 grid); ROI = grid rows `rows`, columns 2..=5.
    fn grid() -> PatchGrid {
        PatchGrid { image_size: 64, patch_size: 8 }
    }

    fn roi_rows(rows: std::ops::Range<usize>) -> Vec<u8> {
        let mut roi = vec![0u8; 64 * 64];
        for r in rows.start * 8..rows.end * 8 {
            for c in 2 * 8..6 * 8 {
                roi[r * 64 + c] = 1;
            }
        }
        roi
    }

    fn masked(mask: &[bool]) -> Vec<usize> {
        (0..mask.len()).filter(|&i| mask[i]).collect()
    }

    #[test]
    fn random_masks_three_quarters_of_each_images_own_roi() {
        let small = roi_rows(0..2); // 8 ROI patches -> 6 masked
        let mut large = roi_rows(2..7); // 20 ROI patches -> 15 masked
        large[63 * 64] = 1; // one stray pixel: bottom-left patch (56) becomes ROI -> 21 -> 16
        let inputs = [
            MaskingInput { roi: &small, epistemic: None, candidates: None },
            MaskingInput { roi: &large, epistemic: None, candidates: None },
        ];
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..50 {
            let masks = mask_patches(&inputs, grid(), 0.75, &MaskingStrategy::Random, &mut rng).unwrap();
            assert_eq!(masked(&masks[0]).len(), 6);
            assert_eq!(masked(&masks[1]).len(), 16);
            for (mask, roi) in masks.iter().zip([&small, &large]) {
                let roi_patches = grid().patches_touching(roi);
                assert!(masked(mask).iter().all(|&i| roi_patches[i]), "a patch outside the ROI was masked");
            }
        }
        let a = mask_patches(&inputs, grid(), 0.75, &MaskingStrategy::Random, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
        let b = mask_patches(&inputs, grid(), 0.75, &MaskingStrategy::Random, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
        assert_eq!(a, b, "same seed, same masks");
        let empty = vec![0u8; 64 * 64];
        let none = [MaskingInput { roi: &empty, epistemic: None, candidates: None }];
        let masks = mask_patches(&none, grid(), 0.75, &MaskingStrategy::Random, &mut rng).unwrap();
        assert!(masks[0].iter().all(|&m| !m), "no ROI, nothing masked");
    }

    /// ROI of 20 patches (grid rows 2..7); EU 3.0 on the 10 patches of grid rows 2..4 and
    /// half of row 4, 0.5 on the rest. Returns how often each ROI patch was masked.
    fn frequencies(strategy: &MaskingStrategy, draws: usize) -> (Vec<usize>, Vec<usize>, Vec<f64>) {
        let roi = roi_rows(2..7);
        let g = grid();
        let roi_patches: Vec<usize> = masked(&g.patches_touching(&roi));
        let high: Vec<usize> = roi_patches[..10].to_vec();
        let low: Vec<usize> = roi_patches[10..].to_vec();
        let mut eu = vec![0f32; 64 * 64];
        for &i in &roi_patches {
            let v = if high.contains(&i) { 3.0 } else { 0.5 };
            for j in g.pixels_of(i) {
                eu[j] = v;
            }
        }
        let inputs = [MaskingInput { roi: &roi, epistemic: Some(&eu), candidates: None }];
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut count = vec![0usize; g.num_patches()];
        for _ in 0..draws {
            let masks = mask_patches(&inputs, g, 0.75, strategy, &mut rng).unwrap();
            assert_eq!(masked(&masks[0]).len(), 15);
            for i in masked(&masks[0]) {
                count[i] += 1;
            }
        }
        let freq = count.iter().map(|&c| c as f64 / draws as f64).collect();
        (high, low, freq)
    }

    #[test]
    fn eu_guided_masks_high_uncertainty_patches_more_often() {
        let (high, low, freq) = frequencies(&MaskingStrategy::eu_guided(), 2000);
        for &i in &high {
            assert!(freq[i] > 0.9, "high-EU patch {i} masked {:.3} of the time", freq[i]);
        }
        for &i in &low {
            assert!(freq[i] < 0.6, "low-EU patch {i} masked {:.3} of the time", freq[i]);
        }
        // Random masking, for contrast, masks every ROI patch 75 % of the time.
        let (_, _, freq) = frequencies(&MaskingStrategy::Random, 2000);
        assert!(high.iter().chain(&low).all(|&i| (freq[i] - 0.75).abs() < 0.05));
    }

    #[test]
    fn reference_eu_leans_towards_keeping_high_uncertainty_patches() {
        // EU sums per patch: 64 · 3 = 192 vs 32: the batch softmax gives q ≈ 0 + ln(10)…, so
        // low-EU patches get the larger scores and are masked more often (bug B5).
        let (high, low, freq) = frequencies(&MaskingStrategy::ReferenceEu { temperature: 1.0 }, 2000);
        let mean = |s: &[usize]| s.iter().map(|&i| freq[i]).sum::<f64>() / s.len() as f64;
        assert!(mean(&high) < 0.6 && mean(&low) > 0.9, "high {:.3}, low {:.3}", mean(&high), mean(&low));
    }

    #[test]
    fn au_guided_never_masks_candidates() {
        let roi = roi_rows(2..7);
        let g = grid();
        let eu: Vec<f32> = roi.iter().map(|&r| r as f32).collect();
        let mut candidates = vec![0f32; 64 * 64];
        candidates[(2 * 8 + 3) * 64 + 2 * 8 + 1] = 0.2; // one pixel in patch 18 (row 2, col 2)
        candidates[(6 * 8) * 64 + 5 * 8] = 0.1; // patch 53 (row 6, col 5)
        let inputs = [MaskingInput { roi: &roi, epistemic: Some(&eu), candidates: Some(&candidates) }];
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut seen = vec![false; g.num_patches()];
        for _ in 0..300 {
            let masks = mask_patches(&inputs, g, 0.75, &MaskingStrategy::au_guided(), &mut rng).unwrap();
            assert_eq!(masked(&masks[0]).len(), 15, "round(0.75 · 20) of the 18 candidate-free patches");
            assert!(!masks[0][18] && !masks[0][53]);
            for i in masked(&masks[0]) {
                seen[i] = true;
            }
        }
        assert_eq!(seen.iter().filter(|&&s| s).count(), 18, "every other ROI patch gets masked sometimes");
        let no_map = [MaskingInput { roi: &roi, epistemic: Some(&eu), candidates: None }];
        let err = mask_patches(&no_map, g, 0.75, &MaskingStrategy::au_guided(), &mut rng).unwrap_err();
        assert_eq!(err, MaskingError::MissingMap { image: 0, strategy: "AU-guided", map: "anomaly-candidate" });
    }
}
