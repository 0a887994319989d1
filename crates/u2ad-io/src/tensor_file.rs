//! u2ad's own safetensors files (the prepared datasets of `u2ad prepare`, the per-subject
//! sample maps of `u2ad detect`): named tensors plus a JSON header under the metadata key
//! `u2ad`, written atomically and read whole, with one clear error per problem.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{FileError, Result};
use crate::staging::write_file_atomically;

/// One tensor to write: name, element type, shape and little-endian bytes.
pub type Entry<'a> = (&'a str, Dtype, Vec<usize>, &'a [u8]);

/// The little-endian bytes of `values`.
pub fn f32_bytes<'a>(values: impl IntoIterator<Item = &'a f32>) -> Vec<u8> {
    values.into_iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Writes `tensors` and `header` to `path` atomically.
pub fn write<H: Serialize>(path: &Path, tensors: &[Entry<'_>], header: &H) -> Result<()> {
    let err = |e: safetensors::SafeTensorError| FileError::Dataset { path: path.to_path_buf(), detail: e.to_string() };
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| Ok((*name, TensorView::new(*dtype, shape.clone(), bytes).map_err(err)?)))
        .collect::<Result<Vec<_>>>()?;
    let json = serde_json::to_string(header).expect("a u2ad header serialises");
    let metadata: HashMap<String, String> = [("u2ad".to_string(), json)].into_iter().collect();
    let bytes = safetensors::serialize(views, &Some(metadata)).map_err(err)?;
    write_file_atomically(path, &bytes)
}

/// A u2ad safetensors file read into memory.
pub struct TensorFile {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl TensorFile {
    /// Reads `path` and its header; `kind` names the file in errors ("dataset") and `writer`
    /// the command that writes it (for a file without the u2ad header).
    pub fn read<H: DeserializeOwned>(path: &Path, kind: &str, writer: &str) -> Result<(TensorFile, H)> {
        let bytes = std::fs::read(path).map_err(|e| FileError::io(path, e))?;
        let file = TensorFile { path: path.to_path_buf(), bytes };
        SafeTensors::deserialize(&file.bytes).map_err(|e| file.error(format!("not a u2ad {kind} file ({e})")))?;
        let (_, metadata) = SafeTensors::read_metadata(&file.bytes).map_err(|e| file.error(e.to_string()))?;
        let json = metadata
            .metadata()
            .as_ref()
            .and_then(|m| m.get("u2ad"))
            .ok_or_else(|| file.error(format!("no u2ad metadata: not written by `{writer}`")))?;
        let header = serde_json::from_str(json).map_err(|e| file.error(format!("metadata: {e}")))?;
        Ok((file, header))
    }

    /// An error about this file.
    pub fn error(&self, detail: String) -> FileError {
        FileError::Dataset { path: self.path.clone(), detail }
    }

    /// The bytes of tensor `name`, which must have type `dtype` and shape `shape`.
    pub fn bytes(&self, name: &str, dtype: Dtype, shape: &[usize]) -> Result<Vec<u8>> {
        let tensors = SafeTensors::deserialize(&self.bytes).map_err(|e| self.error(e.to_string()))?;
        let t = tensors.tensor(name).map_err(|e| self.error(format!("tensor {name}: {e}")))?;
        if t.dtype() != dtype || t.shape() != shape {
            return Err(self.error(format!("tensor {name} has type {:?} and shape {:?}", t.dtype(), t.shape())));
        }
        Ok(t.data().to_vec())
    }

    /// The values of the `f32` tensor `name` of shape `shape`.
    pub fn floats(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let bytes = self.bytes(name, Dtype::F32, shape)?;
        Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Header {
        subject: String,
    }

    #[test]
    fn round_trip_and_one_clear_error_per_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("maps.safetensors");
        let floats = [1.5f32, -2.0, 0.25, 3.0];
        let labels = [0u8, 1, 2, 3, 4, 5];
        let header = Header { subject: "sub-01".into() };
        let tensors = [("x", Dtype::F32, vec![2, 2], &f32_bytes(&floats)[..]), ("labels", Dtype::U8, vec![6], &labels[..])];
        write(&path, &tensors, &header).unwrap();

        let (file, read): (_, Header) = TensorFile::read(&path, "sample maps", "u2ad detect").unwrap();
        assert_eq!(read, header);
        assert_eq!(file.floats("x", &[2, 2]).unwrap(), floats);
        assert_eq!(file.bytes("labels", Dtype::U8, &[6]).unwrap(), labels);
        let wrong = file.floats("labels", &[6]).unwrap_err().to_string();
        assert!(wrong.contains("maps.safetensors") && wrong.contains("tensor labels has type U8"), "{wrong}");
        assert!(file.floats("missing", &[1]).unwrap_err().to_string().contains("tensor missing"));

        let garbage = dir.path().join("garbage.u2ds");
        std::fs::write(&garbage, b"not a tensor file").unwrap();
        let err = TensorFile::read::<Header>(&garbage, "dataset", "u2ad prepare").err().unwrap().to_string();
        assert!(err.contains("garbage.u2ds") && err.contains("not a u2ad dataset file"), "{err}");

        let foreign = dir.path().join("foreign.safetensors");
        let view = TensorView::new(Dtype::U8, vec![6], &labels).unwrap();
        std::fs::write(&foreign, safetensors::serialize([("labels", view)], &None).unwrap()).unwrap();
        let err = TensorFile::read::<Header>(&foreign, "dataset", "u2ad prepare").err().unwrap().to_string();
        assert!(err.contains("no u2ad metadata: not written by `u2ad prepare`"), "{err}");
    }
}
