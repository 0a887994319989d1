//! Checkpoints of a training run, for `--resume`.
//!
//! A checkpoint is a folder `<run>/checkpoints/epoch-NNNN` (NNNN = epochs done) holding
//!
//! | file | content |
//! |---|---|
//! | `model.mpk` | the weights, as burn's named MessagePack record (full precision, with parameter ids) |
//! | `optimizer.mpk` | Adam's state (step count, first and second moments per parameter id) |
//! | `maps.safetensors` | the maps in use (adaptation only): `epistemic`, `aleatoric`, and `anomaly` when it differs from `aleatoric` (`[samples, H, W]` f32) |
//! | `SHA256SUMS` | the SHA-256 of the three files above (`sha256sum -c` reads it), checked on loading |
//! | `state.json` | [`CheckpointState`]: epochs done, configuration, dataset hash, samples, records |
//!
//! It is written into `checkpoints/.tmp-epoch-NNNN` and renamed into place, so a checkpoint folder
//! is complete or absent whatever happens to the process; older checkpoints are removed after the
//! rename. The random state needs no saving: every epoch's generators derive from
//! `(seed, epoch)` ([`crate::schedule::stream_rng`]); nor does the learning-rate position, a
//! function of the epoch. The anomaly candidates are recomputed from the anomaly map on loading.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{Adam, Optimizer};
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::mae::MaskedAutoencoder;
use crate::records::History;
use crate::train::config::TrainingConfig;

/// Adam over the masked autoencoder, as the training loop uses it.
pub type TrainingOptimizer<B> = OptimizerAdaptor<Adam, MaskedAutoencoder<B>, B>;

/// Folder of the checkpoints inside a run folder.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// Version of the checkpoint layout.
pub const CHECKPOINT_VERSION: u32 = 1;

const MODEL_FILE: &str = "model.mpk";
const OPTIMIZER_FILE: &str = "optimizer.mpk";
const MAPS_FILE: &str = "maps.safetensors";
const STATE_FILE: &str = "state.json";
const HASHES_FILE: &str = "SHA256SUMS";

/// Which command a run belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    Pretrain,
    Adapt,
}

impl RunKind {
    pub fn name(self) -> &'static str {
        match self {
            RunKind::Pretrain => "pretrain",
            RunKind::Adapt => "adapt",
        }
    }
}

/// Everything of a checkpoint that is not a tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    pub format_version: u32,
    pub kind: RunKind,
    /// Epochs done.
    pub epochs_done: usize,
    pub total_epochs: usize,
    /// The resolved configuration of the run.
    pub config: TrainingConfig,
    /// Hash of the dataset file ([`crate::model_file::file_hash`]).
    pub dataset_hash: String,
    /// Dataset indices of the training samples.
    pub samples: Vec<usize>,
    pub history: History,
    /// Epoch of the refresh that made the saved maps, if any.
    pub maps_epoch: Option<usize>,
}

/// The uncertainty maps of the training samples from one Monte-Carlo refresh, row-major,
/// `samples × pixels` each, in the order of the training set.
#[derive(Debug, Clone, PartialEq)]
pub struct UncertaintyMaps {
    /// Training epochs done before the refresh.
    pub epoch: usize,
    pub pixels: usize,
    pub epistemic: Vec<f32>,
    pub aleatoric: Vec<f32>,
    /// The AU on the side the candidates look at ([`crate::train::CandidateConfig::polarity`]);
    /// empty when that is both sides, i.e. the AU itself (see [`UncertaintyMaps::anomaly`]).
    pub anomaly: Vec<f32>,
    /// The anomaly-candidate map (filtered AU, > 0 at candidate pixels).
    pub candidates: Vec<f32>,
}

impl UncertaintyMaps {
    pub fn epistemic(&self, k: usize) -> &[f32] {
        &self.epistemic[k * self.pixels..(k + 1) * self.pixels]
    }
    pub fn aleatoric(&self, k: usize) -> &[f32] {
        &self.aleatoric[k * self.pixels..(k + 1) * self.pixels]
    }
    /// The map the candidates are found on: the AU unless a one-sided map was kept.
    pub fn anomaly(&self, k: usize) -> &[f32] {
        if self.anomaly.is_empty() {
            self.aleatoric(k)
        } else {
            &self.anomaly[k * self.pixels..(k + 1) * self.pixels]
        }
    }
    pub fn candidates(&self, k: usize) -> &[f32] {
        &self.candidates[k * self.pixels..(k + 1) * self.pixels]
    }
}

/// A problem with a checkpoint, naming its file.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {detail}")]
pub struct CheckpointError {
    pub path: String,
    pub detail: String,
}

fn fail(path: &Path, detail: impl std::fmt::Display) -> CheckpointError {
    CheckpointError { path: path.display().to_string(), detail: detail.to_string() }
}

/// `<run>/checkpoints/epoch-NNNN`.
pub fn checkpoint_path(run_dir: &Path, epochs_done: usize) -> PathBuf {
    run_dir.join(CHECKPOINTS_DIR).join(format!("epoch-{epochs_done:04}"))
}

/// The complete checkpoints of a run folder, `(epochs done, folder)`, oldest first.
pub fn list_checkpoints(run_dir: &Path) -> Vec<(usize, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(run_dir.join(CHECKPOINTS_DIR)) else {
        return Vec::new();
    };
    let mut found: Vec<(usize, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let epochs = name.strip_prefix("epoch-")?.parse::<usize>().ok()?;
            let path = e.path();
            path.join(STATE_FILE).is_file().then_some((epochs, path))
        })
        .collect();
    found.sort();
    found
}

/// The most recent complete checkpoint of a run folder.
pub fn latest_checkpoint(run_dir: &Path) -> Option<PathBuf> {
    list_checkpoints(run_dir).pop().map(|(_, path)| path)
}

/// burn's named MessagePack, encoded in memory so that writing it is a plain file write (whose
/// error says "No space left on device") and reading it can be checked against its hash first.
fn recorder() -> NamedMpkBytesRecorder<FullPrecisionSettings> {
    NamedMpkBytesRecorder::<FullPrecisionSettings>::new()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `bytes` to `path` and returns its `SHA256SUMS` line.
fn write_hashed(path: &Path, bytes: &[u8]) -> Result<String, CheckpointError> {
    std::fs::write(path, bytes).map_err(|e| fail(path, e))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(format!("{}  {name}\n", sha256_hex(bytes)))
}

/// Reads a checkpoint file and checks it against `SHA256SUMS` (when the checkpoint has one).
fn read_hashed(dir: &Path, name: &str) -> Result<Vec<u8>, CheckpointError> {
    let path = dir.join(name);
    let bytes = std::fs::read(&path).map_err(|e| fail(&path, e))?;
    let Ok(sums) = std::fs::read_to_string(dir.join(HASHES_FILE)) else { return Ok(bytes) };
    let recorded = sums.lines().find_map(|line| line.split_once("  ").filter(|(_, n)| *n == name).map(|(h, _)| h.to_string()));
    match recorded {
        Some(hash) if hash == sha256_hex(&bytes) => Ok(bytes),
        Some(_) => Err(fail(&path, "the checkpoint file is damaged or truncated (its SHA-256 differs from the one recorded when it was written)")),
        None => Err(fail(&path, format!("not listed in {HASHES_FILE}: the checkpoint is incomplete"))),
    }
}

/// One line for a record that does not decode (burn's messages span several lines).
fn undecodable(path: &Path, error: impl std::fmt::Display) -> CheckpointError {
    let text = error.to_string();
    let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("unknown error");
    fail(path, format!("cannot decode the checkpoint file (truncated, damaged, or from another u2ad version): {first}"))
}

fn write_maps(path: &Path, maps: &UncertaintyMaps, side: usize) -> Result<String, CheckpointError> {
    let n = maps.epistemic.len() / maps.pixels.max(1);
    let bytes = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
    let (eu, au, anomaly) = (bytes(&maps.epistemic), bytes(&maps.aleatoric), bytes(&maps.anomaly));
    let shape = vec![n, side, side];
    let mut tensors = vec![
        ("epistemic", TensorView::new(Dtype::F32, shape.clone(), &eu).map_err(|e| fail(path, e))?),
        ("aleatoric", TensorView::new(Dtype::F32, shape.clone(), &au).map_err(|e| fail(path, e))?),
    ];
    if !maps.anomaly.is_empty() {
        tensors.push(("anomaly", TensorView::new(Dtype::F32, shape, &anomaly).map_err(|e| fail(path, e))?));
    }
    let metadata: HashMap<String, String> = [("epoch".to_string(), maps.epoch.to_string())].into_iter().collect();
    let data = safetensors::serialize(tensors, &Some(metadata)).map_err(|e| fail(path, e))?;
    write_hashed(path, &data)
}

fn read_maps(dir: &Path, pixels: usize, epoch: usize) -> Result<UncertaintyMaps, CheckpointError> {
    let path = &dir.join(MAPS_FILE);
    let bytes = read_hashed(dir, MAPS_FILE)?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| undecodable(path, e))?;
    let fetch = |name: &str| -> Result<Vec<f32>, CheckpointError> {
        let t = st.tensor(name).map_err(|e| fail(path, e))?;
        if t.dtype() != Dtype::F32 {
            return Err(fail(path, format!("{name} is not f32")));
        }
        Ok(t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    };
    let (epistemic, aleatoric) = (fetch("epistemic")?, fetch("aleatoric")?);
    // Absent when the candidates look at both sides (the AU itself).
    let anomaly = if st.names().iter().any(|n| n.as_str() == "anomaly") { fetch("anomaly")? } else { Vec::new() };
    if epistemic.len() != aleatoric.len() || !(anomaly.is_empty() || anomaly.len() == epistemic.len()) || epistemic.len() % pixels != 0 {
        return Err(fail(path, "map sizes do not match the model"));
    }
    let candidates = vec![0.0; epistemic.len()];
    Ok(UncertaintyMaps { epoch, pixels, epistemic, aleatoric, anomaly, candidates })
}

/// Writes a checkpoint after `state.epochs_done` epochs (see the module documentation) and
/// removes the older ones. Returns its folder.
pub fn save_checkpoint<B: AutodiffBackend>(
    run_dir: &Path,
    state: &CheckpointState,
    model: &MaskedAutoencoder<B>,
    optimizer: &TrainingOptimizer<B>,
    maps: Option<&UncertaintyMaps>,
) -> Result<PathBuf, CheckpointError> {
    let final_dir = checkpoint_path(run_dir, state.epochs_done);
    let parent = final_dir.parent().expect("checkpoint folder has a parent");
    std::fs::create_dir_all(parent).map_err(|e| fail(parent, e))?;
    let tmp = parent.join(format!(".tmp-epoch-{:04}-{}", state.epochs_done, std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| fail(&tmp, e))?;
    let written = (|| -> Result<(), CheckpointError> {
        let model_path = tmp.join(MODEL_FILE);
        let bytes = recorder().record(model.clone().into_record(), ()).map_err(|e| fail(&model_path, e))?;
        let mut sums = write_hashed(&model_path, &bytes)?;
        let optimizer_path = tmp.join(OPTIMIZER_FILE);
        let bytes = recorder().record(optimizer.to_record(), ()).map_err(|e| fail(&optimizer_path, e))?;
        sums += &write_hashed(&optimizer_path, &bytes)?;
        if let Some(maps) = maps {
            sums += &write_maps(&tmp.join(MAPS_FILE), maps, model.grid().image_size)?;
        }
        let sums_path = tmp.join(HASHES_FILE);
        std::fs::write(&sums_path, sums).map_err(|e| fail(&sums_path, e))?;
        let state_path = tmp.join(STATE_FILE);
        let json = serde_json::to_vec_pretty(state).expect("checkpoint state serialises");
        std::fs::write(&state_path, json).map_err(|e| fail(&state_path, e))
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    // Replacing an existing folder of the same name (a rerun of the same epoch) is not atomic
    // with rename(2) on a non-empty target: move the old one aside first.
    if final_dir.exists() {
        let aside = parent.join(format!(".old-epoch-{:04}-{}", state.epochs_done, std::process::id()));
        std::fs::rename(&final_dir, &aside).map_err(|e| fail(&final_dir, e))?;
        let _ = std::fs::remove_dir_all(&aside);
    }
    std::fs::rename(&tmp, &final_dir).map_err(|e| fail(&final_dir, e))?;
    for (epochs, path) in list_checkpoints(run_dir) {
        if epochs != state.epochs_done {
            let _ = std::fs::remove_dir_all(path);
        }
    }
    remove_leftovers(run_dir);
    Ok(final_dir)
}

/// Removes temporary folders a killed process left in `<run>/checkpoints`.
pub fn remove_leftovers(run_dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(run_dir.join(CHECKPOINTS_DIR)) {
        for e in entries.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") || name.starts_with(".old-") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Reads only the state of a checkpoint.
pub fn read_checkpoint_state(dir: &Path) -> Result<CheckpointState, CheckpointError> {
    let path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| fail(&path, e))?;
    let state: CheckpointState = serde_json::from_str(&text).map_err(|e| fail(&path, format!("not a u2ad checkpoint ({e})")))?;
    if state.format_version != CHECKPOINT_VERSION {
        return Err(fail(&path, format!("checkpoint version {} (this u2ad reads {CHECKPOINT_VERSION})", state.format_version)));
    }
    Ok(state)
}

/// A loaded checkpoint.
pub struct LoadedCheckpoint<B: AutodiffBackend> {
    pub state: CheckpointState,
    pub model: MaskedAutoencoder<B>,
    pub optimizer: TrainingOptimizer<B>,
    /// The maps, without candidates (the caller recomputes them from the AU map).
    pub maps: Option<UncertaintyMaps>,
}

/// Loads the checkpoint in `dir` into `model` (built with the run's configuration) and
/// `optimizer`; parameter ids come from the checkpoint, so the optimizer state matches.
pub fn load_checkpoint<B: AutodiffBackend>(
    dir: &Path,
    model: MaskedAutoencoder<B>,
    optimizer: TrainingOptimizer<B>,
    device: &B::Device,
) -> Result<LoadedCheckpoint<B>, CheckpointError> {
    let state = read_checkpoint_state(dir)?;
    let model_path = dir.join(MODEL_FILE);
    let bytes = read_hashed(dir, MODEL_FILE)?;
    let record = recorder().load(bytes, device).map_err(|e| undecodable(&model_path, e))?;
    let model = model.load_record(record);
    let optimizer_path = dir.join(OPTIMIZER_FILE);
    let bytes = read_hashed(dir, OPTIMIZER_FILE)?;
    let record: <TrainingOptimizer<B> as Optimizer<MaskedAutoencoder<B>, B>>::Record =
        recorder().load(bytes, device).map_err(|e| undecodable(&optimizer_path, e))?;
    let optimizer = optimizer.load_record(record);
    let maps = match state.maps_epoch {
        Some(epoch) => Some(read_maps(dir, model.grid().image_pixels(), epoch)?),
        None => None,
    };
    Ok(LoadedCheckpoint { state, model, optimizer, maps })
}
