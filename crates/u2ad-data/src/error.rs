//! The error of finding and downloading the sample data: one line naming the file (or URL) and
//! the problem, worded as u2ad's other errors.

use std::path::PathBuf;

pub type Result<T, E = DataError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{path}: {detail}")]
    Input { path: PathBuf, detail: String },
    /// Writing a downloaded file in place (u2ad-io's atomic writer).
    #[error(transparent)]
    File(#[from] u2ad_io::FileError),
}

impl DataError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io { path: path.into(), error: source }
    }
    pub fn input(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        DataError::Input { path: path.into(), detail: detail.into() }
    }
}
