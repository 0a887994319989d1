//! Rough timings of the paper-size model; ignored by default. Run with
//! `cargo test --release -p u2ad-model --test timing -- --ignored --nocapture`.

mod common;

use std::time::Instant;

use common::*;
use u2ad_model::{mc_inference, McConfig, McSlice, ModelConfig};

/// A cord-like ROI: a vertical band 24 px wide, 200 px tall (3 x 25 + 25 = 100 patches).
fn band_roi() -> Vec<u8> {
    let mut roi = vec![0u8; 256 * 256];
    for r in 28..228 {
        for c in 116..140 {
            roi[r * 256 + c] = 1;
        }
    }
    roi
}

#[test]
#[ignore]
fn paper_model_forward_and_mc_timing() {
    let dev = Default::default();
    let model = ModelConfig::default().init::<B>(&dev).unwrap();
    let grid = model.grid();
    let roi_patches: Vec<usize> = {
        let flags = grid.patches_touching(&band_roi());
        (0..1024).filter(|&i| flags[i]).collect()
    };
    let m = (0.75 * roi_patches.len() as f64).round() as usize;
    let mask = mask_of(1024, &roi_patches[..m]);
    for batch in [1usize, 4] {
        let imgs = images::<B>(256, &vec![0; batch], &dev);
        let masks = vec![mask.clone(); batch];
        let _ = to_vec(model.forward(imgs.clone(), &masks).image_patches); // warm-up
        let runs = 3;
        let start = Instant::now();
        for _ in 0..runs {
            let _ = to_vec(model.forward(imgs.clone(), &masks).image_patches);
        }
        let per = start.elapsed().as_secs_f64() / runs as f64;
        println!("forward, batch {batch}, {} ROI patches ({m} masked): {per:.3} s ({:.3} s per image)", roi_patches.len(), per / batch as f64);
    }
    let image = test_image(256, 0);
    let roi = band_roi();
    let start = Instant::now();
    let maps = mc_inference(&model, &[McSlice { image: &image, roi: &roi, seed: 1 }], &McConfig::default());
    println!("MC inference, K = 10, balanced, 4 passes per batch: {} passes, {:.2} s", maps[0].passes, start.elapsed().as_secs_f64());
}
