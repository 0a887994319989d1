//! The trained-model file users pass around: one `.safetensors` file holding the weights, the
//! [`ModelConfig`] they were built with and how they were trained, so that `u2ad detect
//! --model FILE` needs nothing else.
//!
//! Metadata keys: `u2ad_model_config` (JSON of [`ModelConfig`]), `u2ad_provenance` (JSON:
//! command, version, dataset, epochs … whatever the trainer records), `producer` = `u2ad`.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn_store::{ModuleSnapshot, SafetensorsStore};
use serde_json::Value;

use crate::config::ModelConfig;
use crate::interop::InteropError;
use crate::mae::MaskedAutoencoder;

const CONFIG_KEY: &str = "u2ad_model_config";
const PROVENANCE_KEY: &str = "u2ad_provenance";

/// What a model file says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub config: ModelConfig,
    pub provenance: Value,
    /// First 16 hex digits of the SHA-256 of the file (names the model in sidecars and caches).
    pub hash: String,
}

fn error(path: &Path, detail: impl Into<String>) -> InteropError {
    InteropError::ModelFile { path: path.display().to_string(), detail: detail.into() }
}

/// SHA-256 of a file's bytes, first 16 hex digits.
pub fn file_hash(path: &Path) -> Result<String, InteropError> {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).map_err(|e| error(path, e.to_string()))?;
    let digest = Sha256::digest(&bytes);
    Ok(digest.iter().take(8).map(|b| format!("{b:02x}")).collect())
}

/// Writes the model, its configuration and provenance atomically (temporary file, then rename).
pub fn save_model<B: Backend>(
    model: &MaskedAutoencoder<B>,
    config: &ModelConfig,
    provenance: &Value,
    path: &Path,
) -> Result<(), InteropError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| error(dir, e.to_string()))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
    let tmp = dir.join(format!(".tmp-{}-{name}", std::process::id()));
    let config_json = serde_json::to_string(config).expect("model config serialises");
    let mut store = SafetensorsStore::from_file(&tmp)
        .overwrite(true)
        .metadata("producer", "u2ad")
        .metadata(CONFIG_KEY, config_json)
        .metadata(PROVENANCE_KEY, provenance.to_string());
    let saved = model
        .save_into(&mut store)
        .map_err(|source| InteropError::Safetensors { path: path.display().to_string(), source });
    if let Err(e) = saved {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        error(path, e.to_string())
    })
}

/// Reads the configuration and provenance of a model file without loading the weights.
pub fn read_model_info(path: &Path) -> Result<ModelInfo, InteropError> {
    let bytes = std::fs::read(path).map_err(|e| error(path, e.to_string()))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| error(path, format!("not a safetensors model file ({e})")))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let config_json = metadata
        .get(CONFIG_KEY)
        .ok_or_else(|| error(path, "no model configuration inside: not a model written by u2ad pretrain/adapt"))?;
    let config: ModelConfig =
        serde_json::from_str(config_json).map_err(|e| error(path, format!("model configuration: {e}")))?;
    let provenance = metadata.get(PROVENANCE_KEY).and_then(|p| serde_json::from_str(p).ok()).unwrap_or(Value::Null);
    Ok(ModelInfo { config, provenance, hash: file_hash(path)? })
}

/// Builds the model described by the file and loads its weights.
pub fn load_model<B: Backend>(path: &Path, device: &B::Device) -> Result<(MaskedAutoencoder<B>, ModelInfo), InteropError> {
    let info = read_model_info(path)?;
    let mut model = info.config.init::<B>(device).map_err(|e| error(path, e.to_string()))?;
    crate::interop::load_safetensors(&mut model, path)?;
    Ok((model, info))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    fn tiny() -> ModelConfig {
        ModelConfig {
            image_size: 32,
            patch_size: 8,
            encoder_dim: 16,
            encoder_depth: 1,
            encoder_heads: 2,
            decoder_dim: 8,
            decoder_depth: 1,
            decoder_heads: 2,
            ..ModelConfig::default()
        }
    }

    #[test]
    fn a_saved_model_loads_with_its_configuration_and_the_same_outputs() {
        let device = Default::default();
        let config = tiny();
        let model = config.init::<Flex>(&device).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        save_model(&model, &config, &serde_json::json!({"epochs": 3}), &path).unwrap();
        let (loaded, info) = load_model::<Flex>(&path, &device).unwrap();
        assert_eq!(info.config, config);
        assert_eq!(info.provenance["epochs"], 3);
        assert_eq!(info.hash.len(), 16);
        let images = burn::tensor::Tensor::<Flex, 4>::ones([1, 1, 32, 32], &device) * 0.5;
        let masks = vec![(0..16).map(|p| p % 4 != 0).collect::<Vec<bool>>()];
        let a = model.forward(images.clone(), &masks).image_patches.into_data().to_vec::<f32>().unwrap();
        let b = loaded.forward(images, &masks).image_patches.into_data().to_vec::<f32>().unwrap();
        assert_eq!(a, b);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left");
    }

    #[test]
    fn a_file_that_is_not_a_model_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weights.safetensors");
        std::fs::write(&path, b"garbage").unwrap();
        let err = read_model_info(&path).unwrap_err().to_string();
        assert!(err.contains("weights.safetensors") && err.contains("not a safetensors model"), "{err}");
    }
}
