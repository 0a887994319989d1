//! Weights in and out: the reference PyTorch `state_dict` (`.pth`), our own weights as
//! safetensors (burn-store) and as burn's named MessagePack record.
//!
//! The reference names (timm 0.6 `Block`s inside MAE's layout) map to ours as follows; PyTorch's
//! `[out, in]` linear weights are transposed and LayerNorm `weight`/`bias` become
//! `gamma`/`beta` by burn-store's PyTorch adapter.
//!
//! | reference | ours |
//! |---|---|
//! | `patch_embed.proj.*` | `patch_embedding.*` |
//! | `cls_token`, `mask_token` | same |
//! | `blocks.N.*` | `encoder_blocks.N.*` |
//! | `norm.*` | `encoder_norm.*` |
//! | `decoder_embed.*` | `decoder_embedding.*` |
//! | `decoder_blocks.N.*` | same |
//! | `rec_norm.*`, `rec_pred.*` | `image_head.norm.*`, `image_head.projection.*` |
//! | `edge_norm.*`, `edge_pred.*` | `edge_head.norm.*`, `edge_head.projection.*` |
//! | in a block: `norm1`, `attn.qkv`, `attn.proj`, `norm2`, `mlp.fc1`, `mlp.fc2` | `attention_norm`, `attention.qkv`, `attention.output`, `mlp_norm`, `mlp.hidden`, `mlp.output` |
//!
//! Ignored: `pos_embed`, `decoder_pos_embed` (fixed, recomputed), the never-used `rec_blocks.*`
//! and `edge_blocks.*`, and the Sobel operator's buffers. Any other key left over (e.g. encoder
//! blocks beyond our depth) is an error, as is any of our parameters missing from the file.

use std::path::Path;

use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, RecorderError};
use burn::tensor::backend::Backend;
use burn_store::{ApplyResult, KeyRemapper, ModuleSnapshot, PytorchStore, PytorchStoreError, SafetensorsStore, SafetensorsStoreError};

use crate::mae::MaskedAutoencoder;

/// Reference key patterns and their replacements, applied in order.
pub const REFERENCE_KEY_MAP: [(&str, &str); 14] = [
    (r"^patch_embed\.proj\.", "patch_embedding."),
    (r"^blocks\.", "encoder_blocks."),
    (r"^norm\.", "encoder_norm."),
    (r"^decoder_embed\.", "decoder_embedding."),
    (r"^rec_norm\.", "image_head.norm."),
    (r"^rec_pred\.", "image_head.projection."),
    (r"^edge_norm\.", "edge_head.norm."),
    (r"^edge_pred\.", "edge_head.projection."),
    (r"\.norm1\.", ".attention_norm."),
    (r"\.norm2\.", ".mlp_norm."),
    (r"\.attn\.qkv\.", ".attention.qkv."),
    (r"\.attn\.proj\.", ".attention.output."),
    (r"\.mlp\.fc1\.", ".mlp.hidden."),
    (r"\.mlp\.fc2\.", ".mlp.output."),
];

/// Reference keys that have no counterpart in our model, on purpose.
fn ignorable(key: &str) -> bool {
    key == "pos_embed"
        || key == "decoder_pos_embed"
        || key.starts_with("rec_blocks.")
        || key.starts_with("edge_blocks.")
        || key.starts_with("operator.")
}

/// Whether `key` (a PyTorch LayerNorm `weight`/`bias`) was applied as burn's `gamma`/`beta`:
/// burn-store 0.21 still lists such keys as unused.
fn applied_under_burn_name(key: &str, result: &ApplyResult) -> bool {
    let renamed = if let Some(stem) = key.strip_suffix(".weight") {
        format!("{stem}.gamma")
    } else if let Some(stem) = key.strip_suffix(".bias") {
        format!("{stem}.beta")
    } else {
        return false;
    };
    result.applied.contains(&renamed)
}

/// Errors of loading and saving weights.
#[derive(Debug, thiserror::Error)]
pub enum InteropError {
    #[error("{path}: {source}")]
    Pytorch { path: String, source: PytorchStoreError },
    #[error("{path}: {source}")]
    Safetensors { path: String, source: SafetensorsStoreError },
    #[error("{path}: {source}")]
    Record { path: String, source: RecorderError },
    #[error("{path}: weights the model has no place for (a different configuration?): {keys:?}")]
    UnexpectedKeys { path: String, keys: Vec<String> },
    #[error("{path}: {detail}")]
    ModelFile { path: String, detail: String },
    /// Writing the file (its folder, the temporary file, the rename).
    #[error(transparent)]
    File(#[from] u2ad_io::FileError),
}

/// The reference-to-ours key remapper.
pub fn reference_key_remapper() -> KeyRemapper {
    KeyRemapper::from_patterns(REFERENCE_KEY_MAP.to_vec()).expect("the reference key patterns are valid regexes")
}

/// Loads a reference `state_dict` saved by `torch.save(model.state_dict(), path)` (or a
/// checkpoint holding it under `top_level_key`, e.g. `"model"`) into `model`, whose
/// configuration must match the one the weights were trained with.
pub fn load_reference_state_dict<B: Backend>(
    model: &mut MaskedAutoencoder<B>,
    path: &Path,
    top_level_key: Option<&str>,
) -> Result<ApplyResult, InteropError> {
    let shown = path.display().to_string();
    let mut store = PytorchStore::from_file(path).remap(reference_key_remapper()).allow_partial(false);
    if let Some(key) = top_level_key {
        store = store.with_top_level_key(key);
    }
    let result = model.load_from(&mut store).map_err(|source| InteropError::Pytorch { path: shown.clone(), source })?;
    let unexpected: Vec<String> =
        result.unused.iter().filter(|k| !ignorable(k) && !applied_under_burn_name(k, &result)).cloned().collect();
    if !unexpected.is_empty() {
        return Err(InteropError::UnexpectedKeys { path: shown, keys: unexpected });
    }
    Ok(result)
}

/// Saves the model's parameters as safetensors under our names (burn layout), overwriting.
pub fn save_safetensors<B: Backend>(model: &MaskedAutoencoder<B>, path: &Path) -> Result<(), InteropError> {
    let mut store = SafetensorsStore::from_file(path).overwrite(true).metadata("producer", "u2ad");
    model
        .save_into(&mut store)
        .map_err(|source| InteropError::Safetensors { path: path.display().to_string(), source })
}

/// Loads parameters written by [`save_safetensors`]; every parameter must be present.
pub fn load_safetensors<B: Backend>(model: &mut MaskedAutoencoder<B>, path: &Path) -> Result<ApplyResult, InteropError> {
    let shown = path.display().to_string();
    let mut store = SafetensorsStore::from_file(path);
    let result = model.load_from(&mut store).map_err(|source| InteropError::Safetensors { path: shown.clone(), source })?;
    if !result.unused.is_empty() {
        return Err(InteropError::UnexpectedKeys { path: shown, keys: result.unused });
    }
    Ok(result)
}

/// Saves the model as burn's named MessagePack record (`path` with the extension `.mpk`).
pub fn save_record<B: Backend>(model: MaskedAutoencoder<B>, path: &Path) -> Result<(), InteropError> {
    model
        .save_file(path, &NamedMpkFileRecorder::<FullPrecisionSettings>::new())
        .map_err(|source| InteropError::Record { path: path.display().to_string(), source })
}

/// Loads a record written by [`save_record`] into a model built with the same configuration.
pub fn load_record<B: Backend>(
    model: MaskedAutoencoder<B>,
    path: &Path,
    device: &B::Device,
) -> Result<MaskedAutoencoder<B>, InteropError> {
    model
        .load_file(path, &NamedMpkFileRecorder::<FullPrecisionSettings>::new(), device)
        .map_err(|source| InteropError::Record { path: path.display().to_string(), source })
}
