//! Parity with the reference PyTorch model (fixture written by scripts/make_parity_fixture.py):
//! same weights, input and mask give the same outputs and loss terms.

mod common;

use std::path::PathBuf;

use burn::tensor::{Tensor, TensorData};
use burn_store::{ModuleStore, PytorchStore};
use common::*;
use u2ad_model::{load_reference_state_dict, reconstruction_loss, InteropError, LossConfig, ModelConfig};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// A tensor of the fixture's input/output dictionary, with its shape.
fn io(name: &str) -> (Vec<f32>, Vec<usize>) {
    let mut store = PytorchStore::from_file(fixture("parity_io.pth"));
    let snapshot = store.get_snapshot(name).unwrap().unwrap_or_else(|| panic!("no {name} in parity_io.pth"));
    let data = snapshot.to_data().unwrap();
    (data.convert::<f32>().to_vec().unwrap(), snapshot.shape.clone().to_vec())
}

fn tensor4(name: &str) -> Tensor<B, 4> {
    let (v, s) = io(name);
    Tensor::from_data(TensorData::new(v, [s[0], s[1], s[2], s[3]]), &Default::default())
}

#[test]
fn forward_and_loss_match_the_reference() {
    let dev = Default::default();
    let mut model = tiny_config().init::<B>(&dev).unwrap();
    let result = load_reference_state_dict(&mut model, &fixture("parity_state_dict.pth"), None).unwrap();
    assert!(result.unused.iter().any(|k| k.starts_with("rec_blocks.")), "dead reference blocks are skipped");
    assert!(result.unused.iter().any(|k| k == "pos_embed"));

    let (mask, shape) = io("mask");
    let masks: Vec<Vec<bool>> = mask.chunks(shape[1]).map(|m| m.iter().map(|&x| x > 0.5).collect()).collect();
    let images = tensor4("images");
    let out = model.forward(images.clone(), &masks);

    let image_error = max_abs_diff(&to_vec(out.image_patches.clone()), &io("image_patches").0);
    let edge_error = max_abs_diff(&to_vec(out.edge_patches.clone()), &io("edge_patches").0);
    println!("parity: max |Δ| image patches {image_error:.3e}, edge patches {edge_error:.3e}");
    assert!(image_error < 1e-4 && edge_error < 1e-4, "image {image_error}, edge {edge_error}");

    let loss = reconstruction_loss(&out, images, tensor4("roi"), &masks, &LossConfig::default());
    let (image_loss, edge_loss) = (loss.image.into_scalar(), loss.edge.into_scalar());
    let (ref_image, ref_edge) = (io("rec_loss").0[0], io("edge_loss").0[0]);
    println!("parity: loss image {image_loss} (reference {ref_image}), edge {edge_loss} (reference {ref_edge})");
    assert!((image_loss - ref_image).abs() < 1e-6 && (edge_loss - ref_edge).abs() < 1e-6);
}

#[test]
fn a_state_dict_of_another_configuration_is_refused() {
    let dev = Default::default();
    // One encoder block fewer than the file: blocks.1.* have no place.
    let mut shallow = ModelConfig { encoder_depth: 1, ..tiny_config() }.init::<B>(&dev).unwrap();
    match load_reference_state_dict(&mut shallow, &fixture("parity_state_dict.pth"), None) {
        Err(InteropError::UnexpectedKeys { keys, .. }) => {
            assert!(keys.iter().all(|k| k.starts_with("encoder_blocks.1.")), "{keys:?}");
            assert_eq!(keys.len(), 12);
        }
        other => panic!("expected unexpected keys, got {other:?}"),
    }
    // One more: encoder_blocks.2.* are missing from the file.
    let mut deep = ModelConfig { encoder_depth: 3, ..tiny_config() }.init::<B>(&dev).unwrap();
    let err = load_reference_state_dict(&mut deep, &fixture("parity_state_dict.pth"), None).unwrap_err();
    assert!(err.to_string().contains("encoder_blocks.2"), "{err}");
}
