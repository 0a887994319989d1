//! u2ad-core: everything u2ad does to scans that is not deep learning.
//!
//! Reading and writing NIfTI exactly as nibabel reads it ([`volume`]), the cord, CSF and
//! vertebral-level anatomy ([`anatomy`], [`levels`]), the U2AD preprocessing into 256 x 256
//! sagittal samples with the map back to native voxels ([`sample`]), the prepared dataset
//! file ([`dataset`]) and BIDS discovery ([`cohort`]).

pub mod anatomy;
pub mod baseline;
pub mod cohort;
pub mod cord_depth;
pub mod dataset;
pub mod detect_outputs;
pub mod error;
pub mod evaluate;
pub mod fetch;
pub mod level_scores;
pub mod levels;
pub mod locate;
pub mod metrics;
pub mod names;
pub mod npy;
pub mod prepare;
pub mod resample;
pub mod sample;
pub mod scoring;
pub mod scoring_region;
pub mod staging;
pub mod synth;
mod tensor_file;
pub mod volume;

pub use error::{CoreError, Result};
