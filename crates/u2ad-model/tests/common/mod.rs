//! Shared helpers of the integration tests.
#![allow(dead_code)]

use burn::backend::Flex;
use burn::tensor::{backend::Backend, Tensor, TensorData};
use u2ad_model::ModelConfig;

pub type B = Flex;

/// The parity fixture's size: 32 x 32 image, 8 x 8 patches (16), encoder 32 x 2 x 4 heads,
/// decoder 16 x 1 x 2 heads.
pub fn tiny_config() -> ModelConfig {
    ModelConfig {
        image_size: 32,
        patch_size: 8,
        encoder_dim: 32,
        encoder_depth: 2,
        encoder_heads: 4,
        decoder_dim: 16,
        decoder_depth: 1,
        decoder_heads: 2,
        ..ModelConfig::default()
    }
}

/// A smooth test image in [0, 1], different for each `variant`.
pub fn test_image(side: usize, variant: usize) -> Vec<f32> {
    (0..side * side)
        .map(|j| {
            let (r, c) = ((j / side) as f32, (j % side) as f32);
            0.5 + 0.4 * ((c + variant as f32 * 3.0) / 3.0).sin() * (r / 5.0).cos()
        })
        .collect()
}

pub fn images<Bk: Backend>(side: usize, variants: &[usize], device: &Bk::Device) -> Tensor<Bk, 4> {
    let flat: Vec<f32> = variants.iter().flat_map(|&v| test_image(side, v)).collect();
    Tensor::from_data(TensorData::new(flat, [variants.len(), 1, side, side]), device)
}

pub fn to_vec<Bk: Backend, const D: usize>(t: Tensor<Bk, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().unwrap()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

pub fn mask_of(patches: usize, masked: &[usize]) -> Vec<bool> {
    (0..patches).map(|i| masked.contains(&i)).collect()
}

/// The tiny model with the parity fixture's weights: deterministic, unlike a model drawn from
/// the backend's generator, which tests running in parallel share.
pub fn fixture_model() -> u2ad_model::MaskedAutoencoder<B> {
    let mut model = tiny_config().init::<B>(&Default::default()).unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity_state_dict.pth");
    u2ad_model::load_reference_state_dict(&mut model, &path, None).unwrap();
    model
}
