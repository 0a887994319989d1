//! `u2ad import`: the reference parity fixture (scripts/make_parity_fixture.py) becomes a model
//! file whose forward pass equals the reference PyTorch output.

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use burn_store::{ModuleStore, PytorchStore};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../u2ad-model/tests/fixtures").join(name)
}

fn io(name: &str) -> (Vec<f32>, Vec<usize>) {
    let mut store = PytorchStore::from_file(fixture("parity_io.pth"));
    let snapshot = store.get_snapshot(name).unwrap().unwrap();
    let data = snapshot.to_data().unwrap();
    (data.convert::<f32>().to_vec().unwrap(), snapshot.shape.clone().to_vec())
}

/// The fixture's model sizes (u2ad-model's tests/common tiny_config).
const TINY: &str = "[model]\nimage_size = 32\npatch_size = 8\nencoder_dim = 32\nencoder_depth = 2\nencoder_heads = 4\n\
decoder_dim = 16\ndecoder_depth = 1\ndecoder_heads = 2\n";

fn u2ad(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_u2ad")).args(args).output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn imported_reference_weights_reproduce_the_reference_forward_pass() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tiny.toml");
    std::fs::write(&config, TINY).unwrap();
    let out = dir.path().join("reference.safetensors");
    let state = fixture("parity_state_dict.pth");
    let run = u2ad(&["import", s(&state), "--config", s(&config), "--out", s(&out)]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));

    let (model, info) = u2ad_model::load_model::<Flex>(&out, &Default::default()).unwrap();
    assert_eq!((info.config.image_size, info.config.encoder_dim, info.config.decoder_depth), (32, 32, 1));
    assert_eq!(info.provenance["command"], "import");
    let (images, shape) = io("images");
    let images = Tensor::<Flex, 4>::from_data(TensorData::new(images, [shape[0], shape[1], shape[2], shape[3]]), &Default::default());
    let (mask, mask_shape) = io("mask");
    let masks: Vec<Vec<bool>> = mask.chunks(mask_shape[1]).map(|m| m.iter().map(|&x| x > 0.5).collect()).collect();
    let got: Vec<f32> = model.forward(images, &masks).image_patches.into_data().to_vec().unwrap();
    let want = io("image_patches").0;
    let error = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert_eq!(got.len(), want.len());
    assert!(error < 1e-4, "max |Δ| {error}");

    // The default (paper) sizes do not fit these weights: one line, nothing written.
    let other = dir.path().join("paper.safetensors");
    let run = u2ad(&["import", s(&state), "--out", s(&other)]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("parity_state_dict.pth"), "{stderr}");
    assert!(!other.exists());
}
