//! Synthetic T2 hyperintensities in real healthy cords, with their ground truth: the evaluation
//! set that stands in for a labelled lesion cohort (the paper's pseudo-anomaly set,
//! `docs/reference-notes.md` section 2).
//!
//! # The lesion model
//!
//! A lesion is an ellipsoid in a frame that follows the cord ([`CordFrame`], built from the
//! [`Centreline`](u2ad_core::anatomy::Centreline)): `s` is the arc length along the cord, `u` the offset along the cord's
//! anterior-posterior normal, `v` along its left-right normal. With half-axes `a_s = length / 2`,
//! `a_u = w · W_ap / 2`, `a_v = min(a_u, w · W_lr / 2, 1.5 Δx)` (`w` the width fraction ≤ 0.7,
//! `W_ap`, `W_lr` the cord's smallest thickness along the lesion, measured along the normals,
//! `Δx` the left-right voxel size, so that the lesion spans 1 to 3 sagittal slices depending on
//! its width), the normalised radius of a voxel is
//!
//! `ρ² = ((s − s₀)/a_s)² + (u/a_u)² + (v/a_v)²`
//!
//! and its radial distance to the ellipsoid's surface (in mm, negative inside) is
//! `d = r (1 − 1/ρ)` with `r` its distance to the centre. The lesion weight is a Gaussian-feathered
//! edge, the profile of a sharp boundary blurred by a Gaussian of `σ_edge` mm:
//!
//! `α = ½ erfc(d / (√2 σ_edge))`, so `α = ½` exactly on the ellipsoid, `α → 1` inside.
//!
//! `α` is 0 outside the cord mask (the lesion never touches the CSF) and outside the chosen
//! sagittal slices.
//!
//! **Ground truth**: the voxels with `α > 0.5` ([`GROUND_TRUTH_ALPHA`]): those the lesion moved
//! more than halfway from their own signal to the lesion's. That is exactly the ellipsoid
//! `ρ < 1` (within the cord and the chosen slices), so its length along the cord is `length_mm`
//! and its width `w` times the cord's.
//!
//! **Signal**: a blend toward a lesion signal `T`, with noise that keeps the scan's texture:
//!
//! `I' = (1 − α) I + α T + √(1 − (1 − α)²) · σ_L · n`
//!
//! with `n` unit-variance noise correlated as the scan's ([`NoiseModel`]) and `σ_L` the lesion's
//! noise (below). `T` is set so that the mean over the `N` ground-truth voxels, noise included,
//! is `r` times the local cord median `m` (the median of the cord, eroded by one voxel, within
//! 10 mm of the lesion along the cord):
//! `T = (r m N − Σ (1 − α) I − σ_L Σ √(1 − (1 − α)²) n) / Σ α` over the ground truth (a few
//! fixed-point steps, since `σ_L` grows with `T`). The **contrast ratio** `r` is thus what an
//! evaluator measures: mean lesion signal / surrounding cord signal. `T` is capped at
//! `csf_cap_ratio` (default 1.0) times the local CSF median, so a lesion is never brighter than
//! the CSF beside it (the manifest gives the ratio reached and whether the cap acted).
//!
//! Why a blend and not a multiplication `I (1 + α (r − 1))`: oedema replaces the cord's signal;
//! scaling would also scale the cord's fine structure and noise by `r` (up to 3), a texture
//! no real lesion has; and the reference notes read the paper's pseudo-anomaly histogram as about
//! as wide as the cord's, shifted, which a blend gives and a multiplication (which widens it by
//! `r`) does not. The blend alone would make the lesion core flat, hence the noise term, whose
//! variance tops a blended voxel back up to the lesion's: `(1 − α)² σ² + (1 − (1 − α)²) σ_L²`.
//!
//! # Contrast range
//!
//! The default range is 1.3 to 3.0 times the cord. The two clinical slices (`clinical-slices`)
//! hold no T2 hyperintensity (label 6), so the lesion/cord (≈ 1.6) and lesion/CSF (≈ 0.8) ratios
//! of the clinical example cannot be measured there; their CSF/cord median ratio is 1.87 and
//! 1.41 (thin, partial-volumed CSF), consistent with a lesion at 1.6 x the cord being 0.85 x the
//! CSF. In the healthy 3-D scans the CSF is brighter, 2.8 to 3.8 x the cord (derived CSF), so
//! the CSF cap only acts above about 2.8 x.
//!
//! # Noise and texture
//!
//! Measured on the shared healthy scans (`spine-t2`; the estimator is [`estimate_noise`]):
//! - the **background is suppressed**: 11 % of the voxels are exactly 0 and the air's Rayleigh
//!   σ is about 0.5 against a noise σ of 11 to 26 in the cord, so a background (Rician/Rayleigh)
//!   estimate would be 20 to 50 times too small. Both measures below are taken in the cord,
//!   eroded by one voxel, as `1.4826 · MAD` of a high-pass [`Residual`] divided by that
//!   residual's gain for the noise model;
//! - the **noise** σ comes from the residual along the superior axis, which the cord follows
//!   (its signal hardly changes along it): 26 in sub-errsm11 (cord median 251), 11 to 21 in the
//!   others;
//! - the **texture** σ_t comes from the residual in the sagittal plane: 48 to 75, two to five
//!   times the noise, since across the cord it also holds the grey/white matter pattern and the
//!   truncation ringing beside the bright CSF. That is what the cord looks like on a sagittal
//!   slice, and what the lesion must not be smoother than;
//! - the noise is **spatially correlated**: in flat tissue the lag-1 correlation is 0.37 – 0.57
//!   along each axis and the lag-2 correlation below 0.1 (the scans were interpolated). The model
//!   is white noise convolved along each axis by `[a, 1, a]` with `a = 0.25` (lag-1 correlation
//!   `2a / (1 + 2a²) = 0.44`, lag-2 `a² / (1 + 2a²) = 0.056`);
//! - the noise **grows with the signal**: the residual spread in flat tissue scales as
//!   `signal^γ` with γ = 0.4 – 0.65 (log-log slope over signals 20 … 1280); the model uses
//!   γ = 0.5: `σ(μ) = σ (μ / m)^γ`.
//!
//! The lesion's noise keeps the cord's sagittal texture and adds the growth of the noise with
//! the signal: `σ_L² = σ_t² + σ(T)² − σ(m)²`, so its sagittal texture matches the cord's (a little
//! rougher at high contrast), never smoother.
//!
//! Every synthetic subject, with or without lesion, gets fresh noise over the whole image,
//! `fresh_noise_fraction · σ(μ(x)) · n(x)` (default 0.5: the noise σ rises by 12 %) with `μ`
//! the 3 x 3 x 3 mean of the scan, so the suppressed background stays dark: no two subjects are
//! identical, and lesion-free and lesion subjects share one noise level (a detector cannot tell
//! them apart by their noise).
//!
//! # Reproducibility
//!
//! Subject `n` of a cohort draws from ChaCha8 seeded with the cohort seed on stream `n`, so the
//! same seed gives byte-identical files whatever the number of threads.

// The steps, one file each:
// - `config`: the parameters (value ranges, disc-level names, `SynthConfig`);
// - `numerics`: medians, the MAD spread, the complementary error function;
// - `noise`: the noise model, correlated noise, and the noise estimate in the cord;
// - `frame`: the frame that follows the cord;
// - `source`: a healthy source scan and its disc levels along the cord;
// - `draw`: drawing the lesions of a subject (level, centre, size, contrast);
// - `lesion`: placing one lesion (shape, local signal, weight α, lesion signal, blend);
// - `synthesis`: one synthetic subject (fresh noise, lesions, gain and bias field);
// - `plan`: the cohort plan (names, streams, lesion-free subjects);
// - `subject_output`: one subject's image, ground truth and copied labels on disk;
// - `cohort_output`: the cohort folder (descriptions, participants.tsv, manifests).

mod cohort_output;
mod config;
mod draw;
mod frame;
mod lesion;
mod noise;
mod numerics;
mod plan;
mod source;
mod subject_output;
mod synthesis;

pub use cohort_output::{manifest_tsv, write_cohort, CohortRequest, MANIFEST_COLUMNS};
pub use config::{parse_disc_level, SynthConfig, ValueRange};
pub use draw::{draw_lesions, LesionSpec};
pub use frame::{CordCoordinates, CordFrame};
pub use lesion::PlacedLesion;
pub use noise::{correlated_noise, estimate_noise, residual_spread, residuals, NoiseEstimate, NoiseModel, Residual};
pub use numerics::erfc;
pub use plan::{plan_cohort, subject_rng, CohortOptions, PlannedSubject};
pub use source::{LevelWindow, SourceScan};
pub use subject_output::{lesion_label_path, SynthRecord};
pub use synthesis::{synthesise, SynthSubject};

/// A voxel is ground truth when the lesion weight α exceeds this: the lesion moved its signal
/// more than halfway from its own value to the lesion's.
pub const GROUND_TRUTH_ALPHA: f64 = 0.5;

/// Largest width of a lesion as a fraction of the local cord width.
pub const MAX_WIDTH_FRACTION: f64 = 0.7;

/// Most sagittal slices a lesion spans.
pub const MAX_SAGITTAL_SLICES: usize = 3;

/// Smallest distance (mm) from a lesion's end to an end of the cord mask.
pub const CORD_END_MARGIN_MM: f64 = 3.0;

/// The cord around a lesion that gives its local cord and CSF signal: this far (mm) beyond
/// each end of the lesion along the cord.
pub const LOCAL_CORD_MARGIN_MM: f64 = 10.0;

/// Smallest gap (mm) along the cord between two lesions of one subject.
pub const LESION_GAP_MM: f64 = 2.0;

/// Fewest residuals for a noise estimate; below, the subject's whole-cord estimate is used.
pub const MIN_NOISE_VOXELS: usize = 30;

/// 1 / Φ⁻¹(3/4): the MAD of a Gaussian times this is its standard deviation.
pub const MAD_TO_SIGMA: f64 = 1.482_602_218_505_602;

/// Suffix of the ground-truth lesion masks written next to the cord masks.
pub const LESION_LABEL_SUFFIX: &str = "_label-lesion_seg";
