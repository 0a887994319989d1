//! u2ad-core: the science u2ad does on scans that is neither deep learning nor evaluation.
//!
//! The cord, CSF and vertebral-level anatomy ([`anatomy`], [`levels`]), the U2AD preprocessing
//! into 256 x 256 sagittal samples with the map back to native voxels ([`resample`], [`sample`],
//! [`prepare`]), the prepared dataset ([`dataset`]), detection's scoring and level scores
//! ([`scoring`], [`level_scores`]) with the statistics and plane geometry they share ([`stats`],
//! [`plane`]), and what detection writes ([`detect_outputs`]). Reading and
//! writing the files (NIfTI, the atomic writer, the tensor file, BIDS discovery and names) is the
//! crate u2ad-io, below this one; the evaluation side (synthetic lesions, evaluation, metrics,
//! the intensity baseline) is the crate u2ad-eval, built on this one.

pub mod anatomy;
pub mod cord_depth;
pub mod dataset;
pub mod detect_outputs;
pub mod error;
pub mod level_scores;
pub mod levels;
pub mod npy;
pub mod plane;
pub mod prepare;
pub mod resample;
pub mod sample;
pub mod scoring;
pub mod scoring_region;
pub mod stats;

pub use error::{CoreError, Result};
