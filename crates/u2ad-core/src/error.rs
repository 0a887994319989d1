//! One error type for the core crate. Every message names the file and the problem in one line:
//! a file that cannot be read or written, or is not what u2ad reads ([`FileError`], of u2ad-io,
//! shown as it is), or an anatomy u2ad cannot use.

use std::path::PathBuf;

use u2ad_io::error::FileError;

pub type Result<T, E = CoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{path}: the cord mask is empty")]
    EmptyMask { path: PathBuf },
    #[error("{path}: labels in no known convention: {detail}")]
    UnknownLabels { path: PathBuf, detail: String },
}

impl CoreError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        FileError::io(path, source).into()
    }
    pub fn input(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        FileError::input(path, detail).into()
    }
}
