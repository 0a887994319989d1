//! What the command-line tests share: running the binary, a tiny seeded model, the small subject.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use burn::backend::Flex;
use u2ad_data::sample_file;
use u2ad_model::{model_file, ModelConfig};

pub fn u2ad(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_u2ad")).args(args).output().expect("u2ad runs")
}

pub fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The configuration of a model taking 256 x 256 images, small enough for tests (16 x 16
/// patches, one block each side).
pub fn tiny_config() -> ModelConfig {
    ModelConfig {
        image_size: 256,
        patch_size: 16,
        encoder_dim: 16,
        encoder_depth: 1,
        encoder_heads: 2,
        decoder_dim: 8,
        decoder_depth: 1,
        decoder_heads: 2,
        ..ModelConfig::default()
    }
}

/// A random tiny model, seeded: the same weights on every run.
pub fn tiny_model(dir: &Path) -> PathBuf {
    <Flex as burn::tensor::backend::Backend>::seed(&Default::default(), 7);
    let model = tiny_config().init::<Flex>(&Default::default()).unwrap();
    let path = dir.join("tiny.safetensors");
    model_file::save_model(&model, &tiny_config(), &serde_json::json!({"test": "random weights"}), &path).unwrap();
    path
}

/// The files of sub-errsm30 (the small one) as `--image --cord --levels` arguments.
pub fn errsm30() -> Vec<String> {
    let root = sample_file("spine-t2");
    let labels = root.join("derivatives/labels/sub-errsm30/anat");
    vec![
        "--image".into(),
        root.join("sub-errsm30/anat/sub-errsm30_T2w.nii.gz").display().to_string(),
        "--cord".into(),
        labels.join("sub-errsm30_T2w_label-SC_seg.nii.gz").display().to_string(),
        "--levels".into(),
        labels.join("sub-errsm30_T2w_label-vertebrae_dlabel.nii.gz").display().to_string(),
    ]
}

/// Every file under `root`, by path relative to it, sorted.
pub fn relative_files(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    files.sort();
    files
}
