//! # u2ad-model
//!
//! The U2AD masked autoencoder (Zhang et al., MedIA 2026, arXiv 2503.13400), its masking
//! strategies, its loss and the Monte-Carlo inference that turns it into uncertainty maps,
//! generic over the burn backend (`Flex` on the CPU, `Cuda` with the `cuda` feature; wrap in
//! `Autodiff` to train).
//!
//! | module | content |
//! |---|---|
//! | [`config`] | [`ModelConfig`] (paper sizes by default), [`PatchGrid`] |
//! | [`mae`] | [`MaskedAutoencoder`]: `forward(images, masks) -> Reconstruction`, `patchify`, `unpatchify` |
//! | [`vit`] | pre-norm transformer block |
//! | [`kernels`]: [`attention`], [`linear`], [`gelu`] (re-exported here) | the one attention function; linear layers; the MLP activation (CPU kernels) |
//! | [`pos_embed`], [`sobel`] | fixed sine-cosine positions; Sobel edge magnitude |
//! | [`masking`] | [`mask_patches`] with a [`MaskingStrategy`] |
//! | [`loss`] | [`reconstruction_loss`] |
//! | [`mc`] | [`mc_inference`] and its mask schedules |
//! | [`interop`] | reference `.pth` loading, safetensors and burn records |
//! | [`train`] | [`pretrain`], [`adapt`]: the training loop, [`TrainingConfig`] (one TOML document) |
//! | [`augment`], [`schedule`] | intensity augmentation; learning rate, structure weight, random streams per epoch |
//! | [`checkpoint`], [`records`] | atomic checkpoints for `--resume`; per-epoch and per-refresh records (CSV) |
//!
//! ## Where this departs from the reference code (zhibaishouheilab/U2AD)
//!
//! Bug IDs (B1 …) are those of `docs/reference-notes.md`.
//!
//! * **Per-image masking** (bug B3): each image masks `round(0.75 · its ROI patches)` of its
//!   own ROI patches; the reference masks the batch-mean count in every image (so small-ROI
//!   images get less than 75 % masked, no-ROI images get non-ROI patches masked, and a batch
//!   without ROI gives a NaN loss). The encoder batches the variable-length visible sets by
//!   padding with an attention key mask, so each image's output equals its output alone.
//! * **EU-guided masking** (bug B5): the default [`MaskingStrategy::EuGuided`] masks a patch
//!   with a probability that grows with its ROI-normalised EU (per-image softmax mixed with a
//!   uniform share, sampled without replacement by Gumbel-top-k). The released formula, which
//!   is nearly uniform and leans towards keeping high-EU patches, is
//!   [`MaskingStrategy::ReferenceEu`] (softmax over the batch as there, count per image).
//! * **AU-guided masking**: candidate patches are never masked, as in the reference; the
//!   candidate map itself (90th percentile, components, top 3) is computed outside this crate,
//!   from the two-sided AU as in the reference, or from its hyperintense side
//!   (`adaptation.candidates.polarity = "hyperintense"`, as `u2ad detect` scores it).
//! * **Loss**: the structure weight `1 + avgpool3x3(mask)` is the default; the reference's
//!   epoch-0 `2 − avgpool3x3(mask)` (bug B1) is [`StructureWeight::TwoMinusMaskedNeighbourhood`],
//!   left to the training loop to pick. A batch with nothing masked has loss 0, not NaN.
//! * **MC inference**: by default a balanced schedule gives every ROI patch exactly `K` samples
//!   in about `K / 0.75` passes, batched; the reference's random-until-covered loop (400 passes
//!   at most, first `K` samples kept) is [`McSchedule::RandomUntilCovered`]. Unsampled pixels
//!   fall back to the image by count, not by the value test `μ == 0` (B9).
//! * **Architecture**: identical to the reference's forward pass (no shared decoder norm: each
//!   head has its own LayerNorm, as `rec_norm`/`edge_norm`); the never-used `rec_blocks` and
//!   `edge_blocks` are not built. Encoder depth 12 (training options); Figure 3's 24 is a
//!   configuration value.

pub mod augment;
pub mod checkpoint;
pub mod config;
pub mod interop;
pub mod kernels;
pub mod loss;
pub mod mae;
pub mod masking;
pub mod mc;
pub mod model_file;
pub mod pos_embed;
pub mod records;
pub mod schedule;
pub mod sobel;
pub mod train;
pub mod vit;

// The CPU kernels live in `kernels/`; their modules keep their old paths here.
pub use kernels::{attention, gelu, linear};
pub use attention::attention;
pub use config::{ConfigError, ModelConfig, PatchGrid};
pub use interop::{
    load_record, load_reference_state_dict, load_safetensors, save_record, save_safetensors, InteropError,
};
pub use loss::{reconstruction_loss, LossConfig, LossTerms, StructureWeight};
pub use mae::{mask_tensor, patchify, unpatchify, MaskedAutoencoder, Reconstruction};
pub use masking::{mask_patches, masked_count, MaskingError, MaskingInput, MaskingStrategy};
pub use model_file::{held_model, load_model, read_model_info, save_model, ModelInfo};
pub use mc::{mc_inference, McConfig, McMaps, McSchedule, McSlice};
pub use sobel::edge_magnitude;
pub use train::{adapt, pretrain, TrainError, TrainingConfig, TrainingObserver, TrainingOutcome, TrainingPlan, TrainingSet};
