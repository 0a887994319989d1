//! Saving and loading our own weights.

mod common;

use common::*;
use u2ad_model::{load_record, load_safetensors, save_record, save_safetensors, InteropError, ModelConfig};

fn outputs(model: &u2ad_model::MaskedAutoencoder<B>) -> Vec<f32> {
    let masks = vec![mask_of(16, &[1, 2, 6]), mask_of(16, &[5, 9, 10, 13])];
    let out = model.forward(images::<B>(32, &[0, 1], &Default::default()), &masks);
    [to_vec(out.image_patches), to_vec(out.edge_patches)].concat()
}

#[test]
fn safetensors_round_trip_restores_every_parameter() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weights.safetensors");
    let trained = fixture_model();
    save_safetensors(&trained, &path).unwrap();
    save_safetensors(&trained, &path).unwrap(); // overwrites
    let mut fresh = tiny_config().init::<B>(&Default::default()).unwrap();
    assert_ne!(outputs(&fresh), outputs(&trained));
    let result = load_safetensors(&mut fresh, &path).unwrap();
    // Patch embedding 2, tokens 2, encoder blocks 2 x 12, encoder norm 2, decoder embedding 2,
    // decoder block 12, heads 2 x 4.
    assert_eq!(result.applied.len(), 2 + 2 + 2 * 12 + 2 + 2 + 12 + 2 * 4, "every tensor of the tiny model");
    assert_eq!(outputs(&fresh), outputs(&trained));
    // A model of another depth does not take the file.
    let mut deeper = ModelConfig { decoder_depth: 2, ..tiny_config() }.init::<B>(&Default::default()).unwrap();
    assert!(matches!(load_safetensors(&mut deeper, &path), Err(InteropError::Safetensors { .. })));
}

#[test]
fn burn_record_round_trip_restores_every_parameter() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weights");
    let trained = fixture_model();
    save_record(trained.clone(), &path).unwrap();
    assert!(dir.path().join("weights.mpk").exists());
    let fresh = tiny_config().init::<B>(&Default::default()).unwrap();
    let loaded = load_record(fresh, &path, &Default::default()).unwrap();
    assert_eq!(outputs(&loaded), outputs(&trained));
}
