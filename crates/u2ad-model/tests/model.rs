//! The masked autoencoder's forward pass, initialisation and gradients.

mod common;

use burn::backend::Autodiff;
use burn::module::{AutodiffModule, Module};
use burn::tensor::{Tensor, TensorData};
use common::*;
use u2ad_model::{patchify, reconstruction_loss, unpatchify, LossConfig, ModelConfig};

#[test]
fn forward_gives_both_heads_for_every_patch() {
    let dev = Default::default();
    let model = tiny_config().init::<B>(&dev).unwrap();
    let masks = vec![mask_of(16, &[1, 2, 5]), mask_of(16, &[0, 3, 7, 10, 12, 15])];
    let out = model.forward(images::<B>(32, &[0, 1], &dev), &masks);
    assert_eq!(out.image_patches.dims(), [2, 16, 64]);
    assert_eq!(out.edge_patches.dims(), [2, 16, 64]);
    let v = to_vec(out.image_patches);
    assert!(v.iter().all(|&x| x > 0.0 && x < 1.0), "sigmoid outputs lie in (0, 1)");
}

#[test]
fn each_image_equals_its_output_alone() {
    let dev = Default::default();
    let model = fixture_model();
    // 2, 9 and 5 masked: the batch pads the visible sets to 14 tokens.
    let masks = vec![mask_of(16, &[4, 9]), mask_of(16, &[0, 1, 2, 3, 5, 8, 11, 14, 15]), mask_of(16, &[6, 7, 10, 12, 13])];
    let batch = model.forward(images::<B>(32, &[0, 1, 2], &dev), &masks);
    let (image, edge) = (to_vec(batch.image_patches), to_vec(batch.edge_patches));
    for b in 0..3 {
        let alone = model.forward(images::<B>(32, &[b], &dev), &masks[b..b + 1]);
        let span = b * 16 * 64..(b + 1) * 16 * 64;
        let d_image = max_abs_diff(&image[span.clone()], &to_vec(alone.image_patches));
        let d_edge = max_abs_diff(&edge[span], &to_vec(alone.edge_patches));
        assert!(d_image < 1e-6 && d_edge < 1e-6, "image {b}: {d_image} {d_edge}");
    }
}

#[test]
fn the_encoder_sees_only_the_visible_patches() {
    let dev = Default::default();
    let model = tiny_config().init::<B>(&dev).unwrap();
    let masks = vec![mask_of(16, &[5, 6, 9, 10])];
    let original = test_image(32, 0);
    // Scribble over the masked patches (grid rows 1-2, columns 1-2 = pixels 8..24).
    let mut scribbled = original.clone();
    for r in 8..24 {
        for c in 8..24 {
            scribbled[r * 32 + c] = 1.0 - scribbled[r * 32 + c];
        }
    }
    let run = |pixels: Vec<f32>| {
        let t = Tensor::<B, 4>::from_data(TensorData::new(pixels, [1, 1, 32, 32]), &dev);
        to_vec(model.forward(t, &masks).image_patches)
    };
    assert_eq!(run(original.clone()), run(scribbled.clone()));
    // A change in a visible patch does change the output.
    scribbled[0] = 0.0; // was 0.5
    assert!(max_abs_diff(&run(original), &run(scribbled)) > 1e-6);
}

#[test]
fn patchify_lays_out_patches_row_major() {
    let dev = Default::default();
    let pixels: Vec<f32> = (0..32 * 32).map(|j| j as f32).collect();
    let t = Tensor::<B, 4>::from_data(TensorData::new(pixels.clone(), [1, 1, 32, 32]), &dev);
    let p = patchify(t, 8);
    assert_eq!(p.dims(), [1, 16, 64]);
    let v = to_vec(p.clone());
    // Patch 6 = grid row 1, column 2; its pixel 10 = row 1, column 2 inside: image (9, 18).
    assert_eq!(v[6 * 64 + 10], (9 * 32 + 18) as f32);
    assert_eq!(to_vec(unpatchify(p, 8)), pixels);
}

#[test]
fn paper_model_has_the_expected_parameter_count() {
    let dev = Default::default();
    let model = ModelConfig::default().init::<B>(&dev).unwrap();
    // Encoder blocks 12 x 198 272, decoder blocks 8 x 49 984, patch embedding 8 320, heads
    // 2 x 4 288, tokens 192, encoder norm 256, decoder embedding 8 256 (docs/reference-notes.md
    // 1.4: ≈ 2.80 M).
    assert_eq!(model.num_params(), 2_804_736);
    let deep = ModelConfig { encoder_depth: 24, ..ModelConfig::default() }.init::<B>(&dev).unwrap();
    assert_eq!(deep.num_params(), 2_804_736 + 12 * 198_272);
}

#[test]
fn initialisation_follows_mae() {
    let dev = Default::default();
    let model = ModelConfig::default().init::<B>(&dev).unwrap();
    let block = &model.encoder_blocks[0];
    // Xavier-uniform on qkv: bound sqrt(6 / (128 + 384)) = 0.108253.
    let qkv = to_vec(block.attention.qkv.weight.val());
    let bound = (6.0f32 / 512.0).sqrt();
    let max = qkv.iter().fold(0f32, |m, x| m.max(x.abs()));
    assert!(max <= bound && max > 0.95 * bound, "max |w| {max}, bound {bound}");
    assert!(to_vec(block.attention.qkv.bias.as_ref().unwrap().val()).iter().all(|&b| b == 0.0));
    assert!(to_vec(block.attention_norm.gamma.val()).iter().all(|&g| g == 1.0));
    // Patch embedding, flattened [128, 64]: bound sqrt(6 / 192).
    let w = to_vec(model.patch_embedding.weight.val());
    let max = w.iter().fold(0f32, |m, x| m.max(x.abs()));
    assert!(max <= (6.0f32 / 192.0).sqrt() && max > 0.95 * (6.0f32 / 192.0).sqrt());
    // cls token ~ N(0, 0.02): 128 draws, sample std within 30 % (5 standard errors).
    let cls = to_vec(model.cls_token.val());
    let std = (cls.iter().map(|x| x * x).sum::<f32>() / cls.len() as f32).sqrt();
    assert!((std - 0.02).abs() < 0.006, "cls std {std}");
}

#[test]
fn gradients_reach_tokens_and_embeddings() {
    type A = Autodiff<B>;
    let dev = Default::default();
    let model = tiny_config().init::<A>(&dev).unwrap();
    let masks = vec![mask_of(16, &[5, 6, 9]), mask_of(16, &[1, 2, 5, 6, 9, 10])];
    let images = images::<A>(32, &[0, 1], &dev);
    let roi = Tensor::<A, 4>::ones([2, 1, 32, 32], &dev);
    let out = model.forward(images.clone(), &masks);
    let loss = reconstruction_loss(&out, images, roi, &masks, &LossConfig::default());
    let grads = loss.total.backward();
    let norm = |g: Option<Tensor<B, 3>>| to_vec(g.expect("has a gradient")).iter().map(|x| x.abs()).sum::<f32>();
    assert!(norm(model.mask_token.grad(&grads)) > 0.0);
    assert!(norm(model.cls_token.grad(&grads)) > 0.0);
    let w = model.patch_embedding.weight.grad(&grads).expect("patch embedding gradient");
    assert!(to_vec(w).iter().any(|&x| x != 0.0));
    // The inference copy gives the same forward pass.
    let valid = model.valid();
    let a = to_vec(valid.forward(common::images::<B>(32, &[0, 1], &dev), &masks).image_patches);
    let b = to_vec(out.image_patches.inner());
    assert!(max_abs_diff(&a, &b) < 1e-6);
}
