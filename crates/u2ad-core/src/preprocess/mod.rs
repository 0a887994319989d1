//! Step 1 of the paper, preprocessing: one subject's files to 256 x 256 sagittal samples
//! ([`prepare`]: read and check the scan and its labels, derive the CSF and the levels), the
//! sampling itself and the map back to native voxels ([`sample`]), and the interpolation both use
//! ([`resample`]). Re-exported at the crate root (`u2ad_core::prepare`, `::sample`, `::resample`).

pub mod prepare;
pub mod resample;
pub mod sample;
