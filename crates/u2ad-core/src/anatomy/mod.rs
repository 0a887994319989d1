//! Cord and CSF masks, small morphology helpers, the derived CSF, and the cord centreline.
//!
//! Everything here works on canonical (RAS+) arrays — axis 0 left → right, 1 posterior →
//! anterior, 2 inferior → superior (`k`) — with the voxel spacing in mm, so it does not depend
//! on the orientation of the file.
//!
//! API (every item re-exported here, at `u2ad_core::anatomy::*`):
//! - masks: [`cord_mask`] (a cord volume, > 0.5, empty →
//!   [`CoreError::EmptyMask`](crate::error::CoreError::EmptyMask)),
//!   [`csf_mask`] (binary or probabilistic, > 0.5), [`load_cord_mask`] / [`load_csf_mask`]
//!   (read, check the grid against the image, reorient), [`binarize`];
//! - derived CSF when no CSF mask is given: [`derive_csf`] / [`derive_csf_with`]
//!   ([`CsfDerivation`]: a ring of `ring_mm` around the cord, kept where the T2 signal is
//!   brighter than `min_signal_ratio` x the cord's median signal; `prepare`'s ROI uses
//!   [`CsfDerivation::MASK_TOLERANT`], whose ring starts from the cord's dark surface one voxel
//!   beyond the mask, so a mask one voxel small does not shrink the region the model masks);
//! - overlap: [`dice`];
//! - morphology on 2-D masks ([`dilate_2d`], [`erode_2d`] with a 3 x 3 [`Neighbourhood2d`],
//!   [`connected_components_2d`]: 8-connected, with sizes) and 3-D masks ([`dilate_3d`],
//!   [`erode_3d`] with a 3 x 3 x 3 [`Neighbourhood3d`], [`dilate_ball_mm`]: a ball in mm);
//!   outside the array counts as background (as `scipy.ndimage`'s default);
//! - the centreline: [`Centreline::from_cord`] (cord centre per axial slice `k`, arc length,
//!   cord length in mm), with [`Centreline::arc_length_at_k`] / [`Centreline::k_at_arc_length`].
//!
//! Files, one per job: `masks.rs` (binarize, the cord and CSF masks and their loading, Dice),
//! `morphology.rs` (2-D and 3-D dilation and erosion, the ball in mm), `components.rs` (2-D
//! connected components), `csf.rs` (the derived CSF), `centreline.rs` (the centreline); each
//! file's tests beside its code.

mod centreline;
mod components;
mod csf;
mod masks;
mod morphology;

pub use centreline::{Centreline, CentrelinePoint, CENTRELINE_SMOOTHING_HALF_WIDTH_MM};
pub use components::{connected_components_2d, Components2d};
pub use csf::{derive_csf, derive_csf_with, CsfDerivation};
pub use masks::{binarize, cord_mask, csf_mask, dice, load_cord_mask, load_csf_mask};
pub use morphology::{dilate_2d, dilate_3d, dilate_ball_mm, erode_2d, erode_3d, Neighbourhood2d, Neighbourhood3d};
