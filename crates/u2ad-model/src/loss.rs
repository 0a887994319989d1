//! The training loss: `image_weight · L_image + edge_weight · L_edge` (10 and 1 in the
//! reference, whose option is misleadingly named `l1_loss`; both terms are squared errors).
//!
//! Each term is a structure-weighted MSE over the masked patches:
//!
//! `L = Σ_b Σ_i w_bi · m_bi · e_bi / Σ_b Σ_i m_bi`, `e_bi = (1/P) Σ_{j ∈ patch i} (R_j (ŷ_j − y_j))²`
//!
//! where `m` flags masked patches, `P` is the number of pixels in a patch, `R` the pixel ROI
//! (predictions outside it are replaced by the target, `ŷ' = R ŷ + (1 − R) y`, so their error is
//! 0 but they still count in `P`), `y` the image for `L_image` and its Sobel edge magnitude for
//! `L_edge`, and `w` the structure weight of the patch (see [`StructureWeight`]).

use burn::tensor::{backend::Backend, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::mae::{patchify, Reconstruction};
use crate::sobel::edge_magnitude;

/// How a masked patch's error is weighted by how much of its 3 x 3 neighbourhood on the patch
/// grid is masked: `a_i` = 3 x 3 average of the mask flags around patch `i` (zero padding,
/// the 9 cells always count, as `F.avg_pool2d(·, 3, 1, 1)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StructureWeight {
    /// `w_i = 1 + a_i`: the reference from its second epoch on (the default).
    OnePlusMaskedNeighbourhood,
    /// `w_i = 2 − a_i`: the reference at epoch 0 only (its bug B1, `docs/reference-notes.md`,
    /// makes the intended switch at half of the training happen after the first epoch).
    TwoMinusMaskedNeighbourhood,
}

/// Weights of the two loss terms and the structure weighting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossConfig {
    pub image_weight: f64,
    pub edge_weight: f64,
    pub structure: StructureWeight,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig { image_weight: 10.0, edge_weight: 1.0, structure: StructureWeight::OnePlusMaskedNeighbourhood }
    }
}

/// The loss and its two terms, each a one-element tensor.
#[derive(Debug, Clone)]
pub struct LossTerms<B: Backend> {
    /// `image_weight · image + edge_weight · edge`.
    pub total: Tensor<B, 1>,
    /// Structure-weighted MSE of the image patches.
    pub image: Tensor<B, 1>,
    /// Structure-weighted MSE of the edge patches.
    pub edge: Tensor<B, 1>,
}

/// `w_bi · m_bi` for every image `b` and patch `i` of a `side x side` grid, row-major
/// (`masks[b][i]`, `true` = masked).
pub fn structure_weights(masks: &[Vec<bool>], side: usize, rule: StructureWeight) -> Vec<f32> {
    let mut out = Vec::with_capacity(masks.len() * side * side);
    for mask in masks {
        assert_eq!(mask.len(), side * side, "mask does not cover the {side} x {side} grid");
        for r in 0..side {
            for c in 0..side {
                if !mask[r * side + c] {
                    out.push(0.0);
                    continue;
                }
                let rows = r.saturating_sub(1)..(r + 2).min(side);
                let masked_near = rows
                    .flat_map(|rr| (c.saturating_sub(1)..(c + 2).min(side)).map(move |cc| rr * side + cc))
                    .filter(|&i| mask[i])
                    .count();
                let a = masked_near as f32 / 9.0;
                out.push(match rule {
                    StructureWeight::OnePlusMaskedNeighbourhood => 1.0 + a,
                    StructureWeight::TwoMinusMaskedNeighbourhood => 2.0 - a,
                });
            }
        }
    }
    out
}

/// `Σ weighted_mask · e / masked_count` with `e` the per-patch mean of `(roi · (pred − target))²`.
/// `pred`, `target`, `roi`: `[batch, patches, patch_pixels]`; `weighted_mask`: `[batch, patches]`.
/// `masked_count` of 0 gives a loss of 0 (a batch with nothing masked has nothing to learn).
pub fn masked_patch_mse<B: Backend>(
    pred: Tensor<B, 3>,
    target: Tensor<B, 3>,
    roi: Tensor<B, 3>,
    weighted_mask: Tensor<B, 2>,
    masked_count: usize,
) -> Tensor<B, 1> {
    let per_patch: Tensor<B, 2> = (roi * (pred - target)).powi_scalar(2).mean_dim(2).squeeze_dim(2);
    (per_patch * weighted_mask).sum().div_scalar(masked_count.max(1) as f64)
}

/// The U2AD loss of a [`Reconstruction`] of `images` (`[batch, 1, H, W]` in `[0, 1]`) given the
/// pixel ROI (`[batch, 1, H, W]`, 1 inside) and the masks the reconstruction was made with.
/// The Sobel target is computed here, outside any gradient path that matters (it depends on the
/// images only).
pub fn reconstruction_loss<B: Backend>(
    reconstruction: &Reconstruction<B>,
    images: Tensor<B, 4>,
    roi: Tensor<B, 4>,
    masks: &[Vec<bool>],
    config: &LossConfig,
) -> LossTerms<B> {
    let [batch, patches, pixels] = reconstruction.image_patches.dims();
    let patch_size = (pixels as f64).sqrt().round() as usize;
    let side = (patches as f64).sqrt().round() as usize;
    let device = images.device();
    let weights = structure_weights(masks, side, config.structure);
    let weighted_mask = Tensor::<B, 2>::from_data(TensorData::new(weights, [batch, patches]), &device);
    let masked_count = masks.iter().flatten().filter(|&&m| m).count();

    let edges = patchify(edge_magnitude(images.clone()), patch_size);
    let images = patchify(images, patch_size);
    let roi = patchify(roi, patch_size);
    let image = masked_patch_mse(
        reconstruction.image_patches.clone(),
        images,
        roi.clone(),
        weighted_mask.clone(),
        masked_count,
    );
    let edge = masked_patch_mse(reconstruction.edge_patches.clone(), edges, roi, weighted_mask, masked_count);
    let total = image.clone().mul_scalar(config.image_weight) + edge.clone().mul_scalar(config.edge_weight);
    LossTerms { total, image, edge }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    type B = Flex;

    #[test]
    fn structure_weights_on_a_3x3_grid() {
        // Masked: the corners 0 and 8 and the centre 4.
        let mask: Vec<bool> = (0..9).map(|i| i == 0 || i == 4 || i == 8).collect();
        let w = structure_weights(std::slice::from_ref(&mask), 3, StructureWeight::OnePlusMaskedNeighbourhood);
        let ninth = 1.0f32 / 9.0;
        assert_eq!(w[1], 0.0, "visible patches weigh 0");
        assert!((w[0] - (1.0 + 2.0 * ninth)).abs() < 1e-7);
        assert!((w[4] - (1.0 + 3.0 * ninth)).abs() < 1e-7);
        assert!((w[8] - (1.0 + 2.0 * ninth)).abs() < 1e-7);
        let w = structure_weights(&[mask], 3, StructureWeight::TwoMinusMaskedNeighbourhood);
        assert!((w[4] - (2.0 - 3.0 * ninth)).abs() < 1e-7);
    }

    #[test]
    fn loss_matches_a_hand_computed_case() {
        let dev = Default::default();
        // 4 x 4 image of 0.5 (no edges), 2 x 2 patches of 2 x 2 pixels; patches 0 and 3 masked.
        let images = Tensor::<B, 4>::full([1, 1, 4, 4], 0.5, &dev);
        // ROI: all of patch 0, only the top-left pixel (row 2, col 2) of patch 3.
        let mut roi = vec![0f32; 16];
        for j in [0, 1, 4, 5, 10] {
            roi[j] = 1.0;
        }
        let roi = Tensor::<B, 4>::from_data(TensorData::new(roi, [1, 1, 4, 4]), &dev);
        // Predicted pixels per patch: 0.7 | 0.1 | 0.3 | 0.9; predicted edges: 0.1 | 0.5 | 0.5 | 0.2.
        let per_patch = |v: [f32; 4]| {
            let flat: Vec<f32> = v.iter().flat_map(|&x| [x; 4]).collect();
            Tensor::<B, 3>::from_data(TensorData::new(flat, [1, 4, 4]), &dev)
        };
        let rec = Reconstruction { image_patches: per_patch([0.7, 0.1, 0.3, 0.9]), edge_patches: per_patch([0.1, 0.5, 0.5, 0.2]) };
        let masks = vec![vec![true, false, false, true]];
        let terms = reconstruction_loss(&rec, images, roi, &masks, &LossConfig::default());
        // Both masked patches see both masked patches in their 3 x 3 window: w = 1 + 2/9.
        // Image: patch 0 error 0.2² = 0.04 on 4 pixels -> 0.04; patch 3 error 0.4² on 1 of 4
        // pixels -> 0.04. L_image = (11/9)(0.04 + 0.04) / 2 = 0.0488889.
        // Edge: patch 0: 0.01; patch 3: 0.04 / 4 = 0.01. L_edge = (11/9)(0.02) / 2 = 0.0122222.
        let image = terms.image.into_scalar();
        let edge = terms.edge.into_scalar();
        let total = terms.total.into_scalar();
        assert!((image - 0.048_888_89).abs() < 1e-6, "{image}");
        assert!((edge - 0.012_222_22).abs() < 1e-6, "{edge}");
        assert!((total - 0.501_111_1).abs() < 1e-5, "{total}");
    }

    #[test]
    fn nothing_masked_gives_zero() {
        let dev = Default::default();
        let images = Tensor::<B, 4>::full([1, 1, 4, 4], 0.5, &dev);
        let roi = Tensor::<B, 4>::ones([1, 1, 4, 4], &dev);
        let rec = Reconstruction { image_patches: Tensor::zeros([1, 4, 4], &dev), edge_patches: Tensor::zeros([1, 4, 4], &dev) };
        let terms = reconstruction_loss(&rec, images, roi, &[vec![false; 4]], &LossConfig::default());
        assert_eq!(terms.total.into_scalar(), 0.0);
    }
}
