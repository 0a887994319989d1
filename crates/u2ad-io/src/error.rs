//! The error of reading and writing files. Every message names the file and the problem in one line.

use std::path::PathBuf;

pub type Result<T, E = FileError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{path}: not a NIfTI-1 file ({reason})")]
    NotNifti { path: PathBuf, reason: String },
    #[error("{path}: file is truncated or its gzip stream is corrupt ({reason})")]
    Truncated { path: PathBuf, reason: String },
    #[error("{path}: unsupported image dimensions {dims:?}: u2ad reads 3-D images, or 4-D images with a single volume")]
    Dimensions { path: PathBuf, dims: Vec<usize> },
    #[error("{path}: unsupported NIfTI data type {datatype}: use uint8, int16, uint16, int32, float32 or float64")]
    DataType { path: PathBuf, datatype: String },
    #[error("{path}: {count} voxels are NaN or infinite")]
    NonFinite { path: PathBuf, count: usize },
    #[error("{path}: not on the grid of {reference}: {detail}")]
    GridMismatch { path: PathBuf, reference: PathBuf, detail: String },
    #[error("{path}: not a sagittal scan: {detail}")]
    NotSagittal { path: PathBuf, detail: String },
    #[error("{path}: invalid header: {detail}")]
    Header { path: PathBuf, detail: String },
    #[error("{path}: invalid dataset file: {detail}")]
    Dataset { path: PathBuf, detail: String },
    #[error("{path}: {detail}")]
    Input { path: PathBuf, detail: String },
}

impl FileError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        FileError::Io { path: path.into(), error: source }
    }
    pub fn input(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        FileError::Input { path: path.into(), detail: detail.into() }
    }
}
