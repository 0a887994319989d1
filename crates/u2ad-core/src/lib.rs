//! u2ad-core: everything u2ad does to scans that is neither deep learning nor evaluation.
//!
//! Reading and writing NIfTI exactly as nibabel reads it ([`volume`]), the cord, CSF and
//! vertebral-level anatomy ([`anatomy`], [`levels`]), the U2AD preprocessing into 256 x 256
//! sagittal samples with the map back to native voxels ([`sample`]), the prepared dataset
//! file ([`dataset`]) and BIDS discovery ([`cohort`]). The evaluation side (synthetic lesions,
//! evaluation, metrics, the intensity baseline) is the crate u2ad-eval, built on this one.

pub mod anatomy;
pub mod cohort;
pub mod cord_depth;
pub mod dataset;
pub mod detect_outputs;
pub mod error;
pub mod level_scores;
pub mod levels;
pub mod names;
pub mod npy;
pub mod prepare;
pub mod resample;
pub mod sample;
pub mod scoring;
pub mod scoring_region;
pub mod staging;
mod tensor_file;
pub mod volume;

pub use error::{CoreError, Result};
