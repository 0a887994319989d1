//! u2ad-core: the science u2ad does on scans that is neither deep learning nor evaluation.
//!
//! In the order of the pipeline: the cord, CSF and vertebral-level anatomy ([`anatomy`],
//! [`levels`]); step 1, the U2AD preprocessing into 256 x 256 sagittal samples with the map back
//! to native voxels ([`preprocess`]: `prepare`, `sample`, `resample`) and the prepared dataset
//! ([`dataset`]); step 5, detection's scoring, level scores and calls ([`detect`]: `scoring`,
//! `level_scores`, `scoring_region`, `cord_depth`, re-exported at the root) with the statistics
//! and plane geometry they share ([`stats`], [`plane`]); and what detection writes
//! ([`detect_outputs`]). Reading and
//! writing the files (NIfTI, the atomic writer, the tensor file, BIDS discovery and names) is the
//! crate u2ad-io, below this one; the evaluation side (synthetic lesions, evaluation, metrics,
//! the intensity baseline) is the crate u2ad-eval, built on this one.

pub mod anatomy;
pub mod dataset;
pub mod detect;
pub mod detect_outputs;
pub mod error;
pub mod levels;
pub mod npy;
pub mod plane;
pub mod preprocess;
pub mod stats;

pub use detect::{cord_depth, level_scores, scoring, scoring_region};
pub use preprocess::{prepare, resample, sample};

pub use error::{CoreError, Result};
