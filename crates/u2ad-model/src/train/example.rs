//! One masked reconstruction of a slice, for the figures of a run.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use crate::augment::min_max_normalise;
use crate::mae::{unpatchify, MaskedAutoencoder};
use crate::masking::{mask_patches, MaskingError, MaskingInput, MaskingStrategy};
use crate::schedule::{stream_rng, RandomStream};

/// One masked reconstruction of a slice, for figures.
#[derive(Debug, Clone, PartialEq)]
pub struct ExampleReconstruction {
    /// The min–max normalised input.
    pub image: Vec<f32>,
    /// Per patch: masked or not.
    pub mask: Vec<bool>,
    /// The image head's output on every pixel.
    pub reconstruction: Vec<f32>,
    pub side: usize,
    pub patch_size: usize,
}

impl ExampleReconstruction {
    /// The input on visible patches, the reconstruction on masked ones (MAE's usual display).
    pub fn pasted(&self) -> Vec<f32> {
        let grid = crate::config::PatchGrid { image_size: self.side, patch_size: self.patch_size };
        let mut out = self.image.clone();
        for i in (0..grid.num_patches()).filter(|&i| self.mask[i]) {
            for j in grid.pixels_of(i) {
                out[j] = self.reconstruction[j];
            }
        }
        out
    }
}

/// Reconstructs `image` with a random mask of `mask_ratio` of its ROI patches drawn from the
/// run's figure stream.
pub fn example_reconstruction<B: Backend>(
    model: &MaskedAutoencoder<B>,
    image: &[f32],
    roi: &[u8],
    mask_ratio: f64,
    seed: u64,
) -> Result<ExampleReconstruction, MaskingError> {
    let grid = model.grid();
    let mut normalised = image.to_vec();
    min_max_normalise(&mut normalised);
    let mut rng = stream_rng(seed, RandomStream::Figure, 0);
    let input = [MaskingInput { roi, epistemic: None, candidates: None }];
    let mask = mask_patches(&input, grid, mask_ratio, &MaskingStrategy::Random, &mut rng)?.remove(0);
    let device = model.encoder_position.device();
    let side = grid.image_size;
    let x = Tensor::<B, 4>::from_data(TensorData::new(normalised.clone(), [1, 1, side, side]), &device);
    let out = model.forward(x, std::slice::from_ref(&mask));
    let reconstruction: Vec<f32> =
        unpatchify(out.image_patches, grid.patch_size).into_data().convert::<f32>().to_vec().expect("f32 data");
    Ok(ExampleReconstruction { image: normalised, mask, reconstruction, side, patch_size: grid.patch_size })
}
