//! The trained-model file users pass around: one `.safetensors` file holding the weights, the
//! [`ModelConfig`] they were built with and how they were trained, so that `u2ad detect
//! --model FILE` needs nothing else.
//!
//! Metadata keys: `u2ad_model_config` (JSON of [`ModelConfig`]), `u2ad_provenance` (JSON:
//! command, version, dataset, epochs … whatever the trainer records), `producer` = `u2ad`, and
//! `u2ad_tensor_sha256`: the SHA-256 of the configuration and the tensor bytes, checked on load so
//! that a damaged file (a flipped byte, a bad copy) is refused instead of detecting with it.
//! Weights that are NaN or infinite are refused when saving and when loading.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn_store::{ModuleSnapshot, SafetensorsStore};
use serde_json::Value;
use u2ad_io::staging::write_atomically;

use crate::config::ModelConfig;
use crate::interop::InteropError;
use crate::mae::MaskedAutoencoder;

const CONFIG_KEY: &str = "u2ad_model_config";
const PROVENANCE_KEY: &str = "u2ad_provenance";
const TENSOR_HASH_KEY: &str = "u2ad_tensor_sha256";

/// What a model file says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub config: ModelConfig,
    pub provenance: Value,
    /// First 16 hex digits of the SHA-256 of the file (names the model in sidecars and caches).
    pub hash: String,
    /// The SHA-256 (hex) of the configuration and tensor bytes recorded in the file, checked
    /// against them on reading; `None` for files of u2ad before 0.x, which had none.
    pub tensor_hash: Option<String>,
}

impl ModelInfo {
    /// Whether the file carried a tensor hash (and it matched).
    pub fn sealed(&self) -> bool {
        self.tensor_hash.is_some()
    }
}

fn error(path: &Path, detail: impl Into<String>) -> InteropError {
    InteropError::ModelFile { path: path.display().to_string(), detail: detail.into() }
}

/// SHA-256 of a file's bytes, first 16 hex digits.
pub fn file_hash(path: &Path) -> Result<String, InteropError> {
    let bytes = std::fs::read(path).map_err(|e| error(path, e.to_string()))?;
    Ok(bytes_hash(&bytes))
}

/// SHA-256 of bytes, first 16 hex digits (the file hash of bytes already read).
fn bytes_hash(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Writes the model, its configuration and provenance atomically (temporary file, then rename:
/// [`write_atomically`], the workspace's one atomic writer).
pub fn save_model<B: Backend>(
    model: &MaskedAutoencoder<B>,
    config: &ModelConfig,
    provenance: &Value,
    path: &Path,
) -> Result<(), InteropError> {
    let config_json = config_json(config);
    write_atomically(path, |tmp| {
        let mut store = SafetensorsStore::from_file(tmp)
            .overwrite(true)
            .metadata("producer", "u2ad")
            .metadata(CONFIG_KEY, config_json)
            .metadata(PROVENANCE_KEY, provenance.to_string());
        model
            .save_into(&mut store)
            .map_err(|source| InteropError::Safetensors { path: path.display().to_string(), source })?;
        seal(tmp, path)
    })
}

/// What the file at `path` says about itself, when it already holds exactly this model: a sealed
/// u2ad model file whose recorded tensor hash (configuration and weights) equals `model`'s,
/// whatever its provenance says. A training run whose result is already on disk (a finished run
/// resumed, or the same run again) leaves that file as it is, so the file hash that names the
/// model in sidecars and detection caches does not change. A missing, unreadable, damaged or
/// unsealed file does not hold it (`None`). The model is serialised in memory to be hashed.
pub fn held_model<B: Backend>(
    model: &MaskedAutoencoder<B>,
    config: &ModelConfig,
    path: &Path,
) -> Result<Option<ModelInfo>, InteropError> {
    let Some(info) = read_model_info(path).ok().filter(ModelInfo::sealed) else { return Ok(None) };
    let mut store = SafetensorsStore::from_bytes(None);
    let serialised = |source| InteropError::Safetensors { path: path.display().to_string(), source };
    model.save_into(&mut store).map_err(serialised)?;
    let bytes = store.get_bytes().map_err(serialised)?;
    let (_, tensors) = split_safetensors(&bytes, path)?;
    let same = info.tensor_hash.as_deref() == Some(tensor_hash(&config_json(config), tensors).as_str());
    Ok(same.then_some(info))
}

/// The model configuration as the file's metadata records it (and its tensor hash covers).
fn config_json(config: &ModelConfig) -> String {
    serde_json::to_string(config).expect("model config serialises")
}

/// Splits a safetensors file into its header JSON and its tensor bytes.
fn split_safetensors<'a>(bytes: &'a [u8], path: &Path) -> Result<(&'a [u8], &'a [u8]), InteropError> {
    let damaged = || error(path, "not a safetensors model file (its header is damaged or the file is truncated)");
    let length = bytes.get(..8).ok_or_else(damaged)?;
    let length = u64::from_le_bytes(length.try_into().map_err(|_| damaged())?);
    let end = usize::try_from(length).ok().and_then(|n| n.checked_add(8)).filter(|&e| e <= bytes.len()).ok_or_else(damaged)?;
    Ok((&bytes[8..end], &bytes[end..]))
}

/// SHA-256 (hex) of the model configuration JSON and the tensor bytes.
fn tensor_hash(config_json: &str, tensors: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(config_json.as_bytes());
    hasher.update([0u8]);
    hasher.update(tensors);
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Refuses weights that are NaN or infinite, naming the first tensor that holds one.
fn check_finite(bytes: &[u8], path: &Path) -> Result<(), InteropError> {
    let tensors = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| error(path, format!("not a safetensors model file ({e})")))?;
    let mut names = tensors.names();
    names.sort();
    for name in names {
        let Ok(view) = tensors.tensor(name) else { continue };
        if view.dtype() != safetensors::Dtype::F32 {
            continue;
        }
        let bad = view.data().chunks_exact(4).filter(|c| !f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite()).count();
        if bad > 0 {
            return Err(error(path, format!("{bad} weights of '{name}' are NaN or infinite: the model is unusable (training diverged, or the file is damaged)")));
        }
    }
    Ok(())
}

/// Adds the tensor hash to the metadata of the file burn wrote at `tmp` (the header is
/// rewritten; the tensor bytes and their offsets stay), after checking the weights are finite.
fn seal(tmp: &Path, path: &Path) -> Result<(), InteropError> {
    let bytes = std::fs::read(tmp).map_err(|e| error(path, e.to_string()))?;
    check_finite(&bytes, path)?;
    let (header, tensors) = split_safetensors(&bytes, path)?;
    let mut header: serde_json::Map<String, Value> =
        serde_json::from_slice(header).map_err(|e| error(path, format!("safetensors header: {e}")))?;
    let metadata = header.entry("__metadata__").or_insert_with(|| Value::Object(Default::default()));
    let config_json = metadata.get(CONFIG_KEY).and_then(Value::as_str).unwrap_or_default().to_string();
    if let Value::Object(metadata) = metadata {
        metadata.insert(TENSOR_HASH_KEY.into(), Value::String(tensor_hash(&config_json, tensors)));
    }
    let mut header = serde_json::to_vec(&header).map_err(|e| error(path, e.to_string()))?;
    // safetensors pads the header with spaces so that the tensor bytes start 8-byte aligned.
    header.resize(header.len().div_ceil(8) * 8, b' ');
    let mut sealed = Vec::with_capacity(8 + header.len() + tensors.len());
    sealed.extend_from_slice(&(header.len() as u64).to_le_bytes());
    sealed.extend_from_slice(&header);
    sealed.extend_from_slice(tensors);
    std::fs::write(tmp, sealed).map_err(|e| error(path, e.to_string()))
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
    let recorded_hash = match metadata.get(TENSOR_HASH_KEY) {
        Some(recorded) => {
            let (_, tensors) = split_safetensors(&bytes, path)?;
            if *recorded != tensor_hash(config_json, tensors) {
                return Err(error(
                    path,
                    "the model file is damaged: its weights do not match the hash recorded when it was written (copy it again)",
                ));
            }
            Some(recorded.clone())
        }
        None => None,
    };
    check_finite(&bytes, path)?;
    Ok(ModelInfo { config, provenance, hash: bytes_hash(&bytes), tensor_hash: recorded_hash })
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

    fn saved_tiny(dir: &Path) -> std::path::PathBuf {
        let config = tiny();
        let model = config.init::<Flex>(&Default::default()).unwrap();
        let path = dir.join("model.safetensors");
        save_model(&model, &config, &serde_json::json!({}), &path).unwrap();
        path
    }

    #[test]
    fn a_flipped_byte_in_the_weights_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = saved_tiny(dir.path());
        assert!(read_model_info(&path).unwrap().sealed());
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let err = read_model_info(&path).unwrap_err().to_string();
        assert!(err.contains("model.safetensors") && err.contains("damaged") && !err.contains('\n'), "{err}");
    }

    #[test]
    fn non_finite_weights_are_refused_even_with_a_matching_hash() {
        let dir = tempfile::tempdir().unwrap();
        let path = saved_tiny(dir.path());
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() - 8;
        bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let err = seal(&path, &path).unwrap_err().to_string();
        assert!(err.contains("NaN or infinite"), "saving refuses: {err}");
        // A file sealed by someone else with NaN inside: refused on load too.
        let (header, tensors) = split_safetensors(&bytes, &path).unwrap();
        let mut header: serde_json::Map<String, Value> = serde_json::from_slice(header).unwrap();
        let config_json = header["__metadata__"][CONFIG_KEY].as_str().unwrap().to_string();
        header["__metadata__"][TENSOR_HASH_KEY] = Value::String(tensor_hash(&config_json, tensors));
        let mut header = serde_json::to_vec(&header).unwrap();
        header.resize(header.len().div_ceil(8) * 8, b' ');
        let resealed = [&(header.len() as u64).to_le_bytes()[..], &header, tensors].concat();
        std::fs::write(&path, resealed).unwrap();
        let err = read_model_info(&path).unwrap_err().to_string();
        assert!(err.contains("model.safetensors") && err.contains("weights of") && err.contains("NaN or infinite"), "{err}");
    }

    #[test]
    fn a_file_without_a_hash_still_loads_unsealed() {
        let dir = tempfile::tempdir().unwrap();
        let path = saved_tiny(dir.path());
        let bytes = std::fs::read(&path).unwrap();
        let (header, tensors) = split_safetensors(&bytes, &path).unwrap();
        let mut header: serde_json::Map<String, Value> = serde_json::from_slice(header).unwrap();
        header["__metadata__"].as_object_mut().unwrap().remove(TENSOR_HASH_KEY);
        let mut header = serde_json::to_vec(&header).unwrap();
        header.resize(header.len().div_ceil(8) * 8, b' ');
        std::fs::write(&path, [&(header.len() as u64).to_le_bytes()[..], &header, tensors].concat()).unwrap();
        assert!(!read_model_info(&path).unwrap().sealed());
        load_model::<Flex>(&path, &Default::default()).unwrap();
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
