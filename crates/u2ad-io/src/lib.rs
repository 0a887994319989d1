//! u2ad-io: reading and writing u2ad's files, and nothing of the science done with them.
//!
//! NIfTI exactly as nibabel reads it, and maps written back onto a scan's grid ([`volume`]); the
//! one atomic writer of the project ([`staging`]); u2ad's safetensors files, the prepared dataset
//! and the sample maps ([`tensor_file`]); BIDS discovery ([`cohort`]) and BIDS names
//! ([`names`]). Every problem with a file is one [`FileError`] naming it, in one line.

pub mod cohort;
pub mod error;
pub mod names;
pub mod staging;
pub mod tensor_file;
pub mod volume;

pub use error::{FileError, Result};
