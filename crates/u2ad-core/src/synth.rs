//! Synthetic T2 hyperintensities in real healthy cords, with their ground truth: the evaluation
//! set that stands in for a labelled lesion cohort (the paper's pseudo-anomaly set,
//! `docs/reference-notes.md` section 2).
//!
//! # The lesion model
//!
//! A lesion is an ellipsoid in a frame that follows the cord ([`CordFrame`], built from the
//! [`Centreline`]): `s` is the arc length along the cord, `u` the offset along the cord's
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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ndarray::{s, Array3, ArrayView3, Axis, Zip};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::anatomy::{
    derive_csf, erode_3d, load_cord_mask, load_csf_mask, Centreline, Neighbourhood3d,
    CENTRELINE_SMOOTHING_HALF_WIDTH_MM,
};
use crate::cohort::{nifti_stem, SubjectFiles};
use crate::error::{CoreError, Result};
use crate::levels::{load_levels, DiscLevel, LevelConvention, LevelMap};
use crate::volume::{check_sagittal, Volume, VoxelType};

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

// ---------------------------------------------------------------------------------------------
// Parameters.

/// A closed interval to draw from uniformly (`min == max`: a fixed value).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ValueRange {
    pub min: f64,
    pub max: f64,
}

impl ValueRange {
    pub fn new(min: f64, max: f64) -> ValueRange {
        ValueRange { min, max }
    }

    pub fn fixed(value: f64) -> ValueRange {
        ValueRange { min: value, max: value }
    }

    /// `"1.3:3.0"` or a single value `"1.6"`.
    pub fn parse(text: &str) -> std::result::Result<ValueRange, String> {
        let number = |t: &str| -> std::result::Result<f64, String> {
            let v: f64 = t.trim().parse().map_err(|_| format!("'{t}' is not a number"))?;
            if v.is_finite() {
                Ok(v)
            } else {
                Err(format!("'{t}' is not a finite number"))
            }
        };
        let range = match text.split_once(':') {
            Some((a, b)) => ValueRange::new(number(a)?, number(b)?),
            None => ValueRange::fixed(number(text)?),
        };
        if range.min > range.max {
            return Err(format!("'{text}': the lower bound is above the upper one (write MIN:MAX)"));
        }
        Ok(range)
    }

    /// A value drawn uniformly from the interval.
    pub fn draw(&self, rng: &mut impl Rng) -> f64 {
        if self.max > self.min {
            self.min + rng.random::<f64>() * (self.max - self.min)
        } else {
            self.min
        }
    }

    fn check(&self, what: &str, lowest: f64, highest: f64) -> std::result::Result<(), String> {
        if self.min < lowest || self.max > highest || self.min > self.max {
            return Err(format!("{what} {self} is outside {lowest}:{highest}"));
        }
        Ok(())
    }
}

impl std::fmt::Display for ValueRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}:{}", self.min, self.max)
        }
    }
}

/// A disc level from its name: `C4/C5`, `C4-C5`, `C4C5` or `c4/c5`.
pub fn parse_disc_level(text: &str) -> std::result::Result<DiscLevel, String> {
    let key: String = text.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_uppercase();
    DiscLevel::ALL.into_iter().find(|level| level.name().replace('/', "") == key).ok_or_else(|| {
        let names: Vec<&str> = DiscLevel::ALL.iter().map(|l| l.name()).collect();
        format!("unknown disc level '{text}' (one of: {})", names.join(", "))
    })
}

/// How the scan's noise is modelled (see the module documentation for the measurements).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NoiseModel {
    /// `a` of the `[a, 1, a]` kernel applied along each axis to white noise.
    pub correlation_kernel: f64,
    /// γ of `σ(μ) = σ̂ (μ / m)^γ`.
    pub signal_exponent: f64,
}

impl Default for NoiseModel {
    fn default() -> Self {
        NoiseModel { correlation_kernel: 0.25, signal_exponent: 0.5 }
    }
}

impl NoiseModel {
    /// Correlation of the modelled noise between neighbours at lags 1 and 2 along an axis.
    pub fn lag_correlations(&self) -> (f64, f64) {
        let a = self.correlation_kernel;
        let norm = 1.0 + 2.0 * a * a;
        (2.0 * a / norm, a * a / norm)
    }

    /// Standard deviation of a [`Residual`] of unit-variance modelled noise:
    /// along the superior axis √(1.5 − 2ρ₁ + ρ₂/2) (√1.5 for white noise); in the sagittal
    /// plane √(1 − 2ρ₁ + (4 + 4ρ₂ + 8ρ₁²) / 16) (√1.25 for white noise).
    pub fn residual_gain(&self, residual: Residual) -> f64 {
        let (rho1, rho2) = self.lag_correlations();
        match residual {
            Residual::Superior => (1.5 - 2.0 * rho1 + 0.5 * rho2).sqrt(),
            Residual::Sagittal => (1.0 - 2.0 * rho1 + (4.0 + 4.0 * rho2 + 8.0 * rho1 * rho1) / 16.0).sqrt(),
        }
    }

    /// Noise σ at signal `signal`, given σ `sigma_ref` at signal `signal_ref`.
    pub fn sigma_at(&self, sigma_ref: f64, signal_ref: f64, signal: f64) -> f64 {
        if signal_ref <= 0.0 {
            return sigma_ref;
        }
        sigma_ref * (signal.max(0.0) / signal_ref).powf(self.signal_exponent)
    }
}

/// How lesions are drawn and written into a scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthConfig {
    /// Length along the cord, mm.
    pub length_mm: ValueRange,
    /// Width as a fraction of the local cord width (≤ [`MAX_WIDTH_FRACTION`]).
    pub width_fraction: ValueRange,
    /// Mean signal over the ground truth / local cord median.
    pub contrast_ratio: ValueRange,
    /// Disc levels to draw from; empty: every level inside the cord's field of view.
    pub levels: Vec<DiscLevel>,
    pub lesions_per_subject: usize,
    /// σ of the Gaussian feathering of the edge, mm.
    pub edge_sigma_mm: f64,
    /// The lesion signal stays at or below this times the local CSF median.
    pub csf_cap_ratio: f64,
    /// Whole-image fresh noise, as a fraction of the scan's noise σ.
    pub fresh_noise_fraction: f64,
    pub noise: NoiseModel,
    /// Largest relative deviation of a smooth multiplicative bias field (coil shading): the image
    /// is multiplied by 1 + b·f(x), f a mean of three plane waves of 150–400 mm wavelength with
    /// random directions and phases (|f| ≤ 1). 0 = none.
    pub bias_field: f64,
    /// A global intensity scale drawn per subject (scanner gain); 1 = none.
    pub intensity_scale: ValueRange,
    /// Fraction of the lesions moved off the centreline until they touch the cord's anterior or
    /// posterior edge (hyperintensities touch the boundary too); 0 = all centred.
    pub edge_fraction: f64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            length_mm: ValueRange::new(3.0, 15.0),
            width_fraction: ValueRange::new(0.3, MAX_WIDTH_FRACTION),
            contrast_ratio: ValueRange::new(1.3, 3.0),
            levels: Vec::new(),
            lesions_per_subject: 1,
            edge_sigma_mm: 0.5,
            csf_cap_ratio: 1.0,
            fresh_noise_fraction: 0.5,
            noise: NoiseModel::default(),
            bias_field: 0.0,
            intensity_scale: ValueRange::fixed(1.0),
            edge_fraction: 0.0,
        }
    }
}

impl SynthConfig {
    /// Checks the parameters; the message names the offending one.
    pub fn validate(&self) -> std::result::Result<(), String> {
        self.length_mm.check("--length-mm", 1.0, 60.0)?;
        self.width_fraction.check("--width-fraction", 0.05, MAX_WIDTH_FRACTION)?;
        self.contrast_ratio.check("--contrast", 1.05, 5.0)?;
        if !(0.0..=3.0).contains(&self.edge_sigma_mm) {
            return Err(format!("edge sigma {} mm is outside 0:3", self.edge_sigma_mm));
        }
        if self.csf_cap_ratio.is_nan() || self.csf_cap_ratio <= 0.0 {
            return Err(format!("CSF cap ratio {} must be positive", self.csf_cap_ratio));
        }
        if !(0.0..=1.0).contains(&self.edge_fraction) {
            return Err(format!("--edge-fraction {} is outside 0:1", self.edge_fraction));
        }
        if !(0.0..=0.5).contains(&self.bias_field) {
            return Err(format!("--bias-field {} is outside 0:0.5", self.bias_field));
        }
        self.intensity_scale.check("--intensity-scale", 0.1, 10.0)?;
        if !(0.0..=2.0).contains(&self.fresh_noise_fraction) {
            return Err(format!("--fresh-noise-fraction {} is outside 0:2", self.fresh_noise_fraction));
        }
        if !(0.0..=0.5).contains(&self.noise.correlation_kernel) {
            return Err(format!("noise correlation kernel {} is outside 0:0.5", self.noise.correlation_kernel));
        }
        if !(0.0..=1.0).contains(&self.noise.signal_exponent) {
            return Err(format!("noise signal exponent {} is outside 0:1", self.noise.signal_exponent));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Small numerics.

fn median_f64(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable_by(|a, b| a.total_cmp(b));
    let n = values.len();
    Some(if n % 2 == 1 { values[n / 2] } else { 0.5 * (values[n / 2 - 1] + values[n / 2]) })
}

/// 1.4826 · median absolute deviation from the median.
fn mad_sigma(values: &mut [f64]) -> Option<f64> {
    let centre = median_f64(values)?;
    let mut deviations: Vec<f64> = values.iter().map(|v| (v - centre).abs()).collect();
    median_f64(&mut deviations).map(|m| MAD_TO_SIGMA * m)
}

/// Complementary error function (W. J. Cody's rational approximations via the Numerical
/// Recipes `erfcc` form: fractional error below 1.2e-7 everywhere).
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// Standard normal values (Box–Muller, both values of each pair used).
fn fill_standard_normal(out: &mut [f32], rng: &mut impl Rng) {
    let mut chunks = out.chunks_exact_mut(2);
    for pair in &mut chunks {
        let (a, b) = box_muller(rng);
        pair[0] = a as f32;
        pair[1] = b as f32;
    }
    if let [last] = chunks.into_remainder() {
        *last = box_muller(rng).0 as f32;
    }
}

fn box_muller(rng: &mut impl Rng) -> (f64, f64) {
    // 1 − U lies in (0, 1], so the logarithm is finite.
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    let radius = (-2.0 * u1.ln()).sqrt();
    let angle = std::f64::consts::TAU * u2;
    (radius * angle.cos(), radius * angle.sin())
}

/// Unit-variance noise of `shape`, white noise convolved along each axis by `[a, 1, a]`
/// (`a` = `kernel`) and rescaled.
pub fn correlated_noise(shape: [usize; 3], kernel: f64, rng: &mut impl Rng) -> Array3<f32> {
    let padded = [shape[0] + 2, shape[1] + 2, shape[2] + 2];
    let mut white = vec![0.0f32; padded[0] * padded[1] * padded[2]];
    fill_standard_normal(&mut white, rng);
    let mut field = Array3::from_shape_vec(padded, white).expect("noise buffer matches its shape");
    let a = kernel as f32;
    for axis in 0..3 {
        let n = field.len_of(Axis(axis));
        let mut next_shape = [field.shape()[0], field.shape()[1], field.shape()[2]];
        next_shape[axis] = n - 2;
        let mut next = Array3::<f32>::zeros(next_shape);
        let before = field.slice_axis(Axis(axis), (0..n - 2).into());
        let centre = field.slice_axis(Axis(axis), (1..n - 1).into());
        let after = field.slice_axis(Axis(axis), (2..n).into());
        Zip::from(&mut next).and(&before).and(&centre).and(&after).for_each(|o, &b, &c, &d| *o = c + a * (b + d));
        field = next;
    }
    let scale = (1.0 + 2.0 * kernel * kernel).powf(-1.5) as f32;
    field.mapv_inplace(|v| v * scale);
    field
}

/// Mean over the 3 x 3 x 3 neighbourhood (edges repeated).
fn box_mean_3(image: ArrayView3<'_, f32>) -> Array3<f32> {
    let mut field = image.as_standard_layout().into_owned();
    for axis in 0..3 {
        let n = field.len_of(Axis(axis));
        let mut next = field.clone();
        for index in 0..n {
            let lo = index.saturating_sub(1);
            let hi = (index + 1).min(n - 1);
            let mut target = next.index_axis_mut(Axis(axis), index);
            target.assign(&field.index_axis(Axis(axis), lo));
            target += &field.index_axis(Axis(axis), index);
            target += &field.index_axis(Axis(axis), hi);
            target.mapv_inplace(|v| v / 3.0);
        }
        field = next;
    }
    field
}

// ---------------------------------------------------------------------------------------------
// Noise estimate.

/// A high-pass residual: a voxel minus the mean of some neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Residual {
    /// `I − (I(k − 1) + I(k + 1)) / 2` along the canonical superior axis, which the cord
    /// follows: the cord's signal hardly changes along it, so this is (nearly) noise alone.
    Superior,
    /// `I − mean of the 4 neighbours in the sagittal plane` (anterior and superior axes): the
    /// texture a sagittal image shows, noise plus the cord's fine structure (grey and white
    /// matter, truncation ringing beside the CSF).
    Sagittal,
}

/// The residuals of `image` at the voxels of `region` (canonical arrays of one shape) whose
/// neighbours lie inside the array.
pub fn residuals(image: ArrayView3<'_, f32>, region: ArrayView3<'_, bool>, residual: Residual) -> Vec<f64> {
    let (_, nj, nk) = image.dim();
    let mut out = Vec::new();
    for ((i, j, k), &inside) in region.indexed_iter() {
        if !inside || k == 0 || k + 1 >= nk {
            continue;
        }
        let along = image[[i, j, k - 1]] as f64 + image[[i, j, k + 1]] as f64;
        let value = image[[i, j, k]] as f64;
        match residual {
            Residual::Superior => out.push(value - along / 2.0),
            Residual::Sagittal => {
                if j == 0 || j + 1 >= nj {
                    continue;
                }
                let across = image[[i, j - 1, k]] as f64 + image[[i, j + 1, k]] as f64;
                out.push(value - (along + across) / 4.0);
            }
        }
    }
    out
}

/// 1.4826 · MAD of a residual over `region` (`None` below [`MIN_NOISE_VOXELS`] residuals).
pub fn residual_spread(image: ArrayView3<'_, f32>, region: ArrayView3<'_, bool>, residual: Residual) -> Option<f64> {
    let mut values = residuals(image, region, residual);
    if values.len() < MIN_NOISE_VOXELS {
        return None;
    }
    mad_sigma(&mut values)
}

/// The scan's noise and texture, measured inside the cord.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NoiseEstimate {
    /// Noise σ at the cord's signal, from the [`Residual::Superior`] spread.
    pub sigma: f64,
    /// σ of modelled noise that would give the cord's [`Residual::Sagittal`] spread: the
    /// texture of the cord in a sagittal image (at least `sigma`).
    pub texture_sigma: f64,
    /// The cord's median signal (where both hold).
    pub signal: f64,
    /// Voxels of the region.
    pub voxels: usize,
}

/// The noise of `image` inside `region` (canonical, one shape; normally the cord eroded by one
/// voxel): `σ = 1.4826 · MAD(superior residual) / gain`, and the texture
/// `σ_t = 1.4826 · MAD(sagittal residual) / gain` (gains from [`NoiseModel::residual_gain`]),
/// at the region's median signal. `None` when the region has fewer than [`MIN_NOISE_VOXELS`]
/// usable voxels.
pub fn estimate_noise(
    image: ArrayView3<'_, f32>,
    region: ArrayView3<'_, bool>,
    model: &NoiseModel,
) -> Option<NoiseEstimate> {
    let sigma = residual_spread(image, region, Residual::Superior)? / model.residual_gain(Residual::Superior);
    let texture = residual_spread(image, region, Residual::Sagittal)? / model.residual_gain(Residual::Sagittal);
    let mut values: Vec<f64> = Zip::from(&image).and(&region).fold(Vec::new(), |mut acc, &v, &r| {
        if r {
            acc.push(v as f64);
        }
        acc
    });
    let voxels = values.len();
    let signal = median_f64(&mut values)?;
    Some(NoiseEstimate { sigma, texture_sigma: texture.max(sigma), signal, voxels })
}

// ---------------------------------------------------------------------------------------------
// A frame that follows the cord.

/// Where a point lies relative to the cord.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CordCoordinates {
    /// Arc length of the closest centreline point, mm (as [`Centreline`]'s).
    pub arc_mm: f64,
    /// Offset along the anterior-pointing normal, mm.
    pub anterior_mm: f64,
    /// Offset along the right-pointing normal, mm.
    pub right_mm: f64,
}

/// The cord centreline as a smooth polyline in canonical millimetres (index × spacing), with
/// [`Centreline`]'s arc length: the raw cord centres smoothed by the same ±2 mm moving
/// average. Projects points onto the cord and gives the cord's normals.
#[derive(Debug, Clone, PartialEq)]
pub struct CordFrame {
    pub points_mm: Vec<[f64; 3]>,
    pub arc_mm: Vec<f64>,
    pub spacing_mm: [f64; 3],
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}
fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}
fn scaled(a: [f64; 3], f: f64) -> [f64; 3] {
    [a[0] * f, a[1] * f, a[2] * f]
}
fn add(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

impl CordFrame {
    pub fn from_centreline(centreline: &Centreline) -> CordFrame {
        let spacing_mm = centreline.spacing_mm;
        let raw = &centreline.points;
        let half = (CENTRELINE_SMOOTHING_HALF_WIDTH_MM / spacing_mm[2] + 0.5).floor().max(0.0) as isize;
        let last = raw.len() as isize - 1;
        let mut points_mm = Vec::with_capacity(raw.len());
        for index in 0..raw.len() as isize {
            let mut acc = [0.0; 2];
            for j in index - half..=index + half {
                let c = raw[j.clamp(0, last) as usize].centre_mm;
                acc[0] += c[0];
                acc[1] += c[1];
            }
            let w = (2 * half + 1) as f64;
            points_mm.push([acc[0] / w, acc[1] / w, raw[index as usize].k as f64 * spacing_mm[2]]);
        }
        let arc_mm = raw.iter().map(|p| p.arc_length_mm).collect();
        CordFrame { points_mm, arc_mm, spacing_mm }
    }

    pub fn cord_length_mm(&self) -> f64 {
        self.arc_mm.last().copied().unwrap_or(0.0)
    }

    /// Unit tangent of segment `n` (towards superior).
    fn tangent(&self, n: usize) -> [f64; 3] {
        if self.points_mm.len() < 2 {
            return [0.0, 0.0, 1.0];
        }
        let n = n.min(self.points_mm.len() - 2);
        let d = sub(self.points_mm[n + 1], self.points_mm[n]);
        let l = norm(d);
        if l > 0.0 {
            scaled(d, 1.0 / l)
        } else {
            [0.0, 0.0, 1.0]
        }
    }

    /// The anterior and right normals of a tangent: right = the right axis made orthogonal to
    /// the tangent, anterior = tangent × right.
    pub fn normals(tangent: [f64; 3]) -> ([f64; 3], [f64; 3]) {
        let x = [1.0, 0.0, 0.0];
        let mut right = sub(x, scaled(tangent, dot(x, tangent)));
        let l = norm(right);
        right = if l > 1e-9 { scaled(right, 1.0 / l) } else { [0.0, 1.0, 0.0] };
        (cross(tangent, right), right)
    }

    /// The centreline point, tangent, anterior and right normals at arc length `arc_mm`
    /// (clamped to the cord).
    pub fn at_arc(&self, arc_mm: f64) -> ([f64; 3], [f64; 3], [f64; 3], [f64; 3]) {
        let n = self.points_mm.len();
        if n < 2 {
            let p = self.points_mm.first().copied().unwrap_or([0.0; 3]);
            let t = [0.0, 0.0, 1.0];
            let (a, r) = CordFrame::normals(t);
            return (p, t, a, r);
        }
        let s = arc_mm.clamp(0.0, self.cord_length_mm());
        let upper = self.arc_mm.partition_point(|&a| a < s).clamp(1, n - 1);
        let segment = upper - 1;
        let span = self.arc_mm[upper] - self.arc_mm[segment];
        let t = if span > 0.0 { (s - self.arc_mm[segment]) / span } else { 0.0 };
        let p = add(self.points_mm[segment], scaled(sub(self.points_mm[upper], self.points_mm[segment]), t));
        let tangent = self.tangent(segment);
        let (anterior, right) = CordFrame::normals(tangent);
        (p, tangent, anterior, right)
    }

    /// The cord coordinates of a point (canonical mm): its projection on the closest segment.
    pub fn project(&self, p: [f64; 3]) -> CordCoordinates {
        let n = self.points_mm.len();
        if n < 2 {
            let c = self.points_mm.first().copied().unwrap_or([0.0; 3]);
            let d = sub(p, c);
            return CordCoordinates { arc_mm: d[2], anterior_mm: d[1], right_mm: d[0] };
        }
        let mut best = (f64::INFINITY, 0usize, 0.0f64);
        for segment in 0..n - 1 {
            let (a, b) = (self.points_mm[segment], self.points_mm[segment + 1]);
            // Cheap bound: the superior distance alone.
            let below = a[2].min(b[2]) - p[2];
            let above = p[2] - a[2].max(b[2]);
            let gap = below.max(above).max(0.0);
            if gap * gap >= best.0 {
                continue;
            }
            let ab = sub(b, a);
            let length2 = dot(ab, ab);
            let t = if length2 > 0.0 { (dot(sub(p, a), ab) / length2).clamp(0.0, 1.0) } else { 0.0 };
            let q = add(a, scaled(ab, t));
            let d2 = dot(sub(p, q), sub(p, q));
            if d2 < best.0 {
                best = (d2, segment, t);
            }
        }
        let (_, segment, t) = best;
        let q = add(self.points_mm[segment], scaled(sub(self.points_mm[segment + 1], self.points_mm[segment]), t));
        let arc = self.arc_mm[segment] + t * (self.arc_mm[segment + 1] - self.arc_mm[segment]);
        let (anterior, right) = CordFrame::normals(self.tangent(segment));
        let offset = sub(p, q);
        CordCoordinates { arc_mm: arc, anterior_mm: dot(offset, anterior), right_mm: dot(offset, right) }
    }

    /// Thickness (mm) of the cord mask through `centre` along `direction` (unit), walked in
    /// 0.25 mm steps to the first voxel outside the cord on each side.
    pub fn thickness_mm(&self, cord: ArrayView3<'_, bool>, centre: [f64; 3], direction: [f64; 3]) -> f64 {
        const STEP_MM: f64 = 0.25;
        const LIMIT_MM: f64 = 60.0;
        let shape = cord.dim();
        let inside = |p: [f64; 3]| -> bool {
            let index: Vec<f64> = (0..3).map(|a| (p[a] / self.spacing_mm[a]).round()).collect();
            let dims = [shape.0, shape.1, shape.2];
            if (0..3).any(|a| index[a] < 0.0 || index[a] >= dims[a] as f64) {
                return false;
            }
            cord[[index[0] as usize, index[1] as usize, index[2] as usize]]
        };
        let reach = |sign: f64| -> f64 {
            let mut t = 0.0;
            while t < LIMIT_MM {
                t += STEP_MM;
                if !inside(add(centre, scaled(direction, sign * t))) {
                    return t;
                }
            }
            LIMIT_MM
        };
        reach(1.0) + reach(-1.0)
    }
}

// ---------------------------------------------------------------------------------------------
// A source scan.

/// A healthy scan with everything synthesis needs, in canonical (RAS+) order.
#[derive(Debug, Clone)]
pub struct SourceScan {
    pub files: SubjectFiles,
    /// The image as read (native order): the grid and header the outputs are written on.
    pub volume: Volume,
    /// The image in canonical order, standard layout.
    pub image: Array3<f32>,
    pub cord: Array3<bool>,
    /// The cord eroded by one voxel (3-D cross): where signal and noise are measured.
    pub cord_core: Array3<bool>,
    pub csf: Array3<bool>,
    pub csf_derived: bool,
    /// Canonical voxel spacing, mm.
    pub spacing_mm: [f64; 3],
    pub centreline: Centreline,
    pub frame: CordFrame,
    pub levels: LevelMap,
    /// The noise over the whole cord.
    pub noise: NoiseEstimate,
}

impl SourceScan {
    /// Reads a subject's image, cord mask, CSF mask (derived when absent) and levels. Every
    /// problem is a one-line error naming the file.
    pub fn load(
        files: &SubjectFiles,
        convention: Option<LevelConvention>,
        noise_model: &NoiseModel,
    ) -> Result<SourceScan> {
        let volume = Volume::read(&files.image)?;
        check_sagittal(&volume)?;
        let cord_path = files.cord_mask.as_ref().ok_or_else(|| {
            CoreError::input(
                &files.image,
                "no cord mask: expected <image>_label-SC_seg.nii.gz under derivatives/labels",
            )
        })?;
        let levels_path = files.levels.as_ref().ok_or_else(|| {
            CoreError::input(
                &files.image,
                "no level file: synthetic lesions are placed at disc levels (expected <image>_label-discs_dlabel \
                 or _label-vertebrae_dlabel under derivatives/labels)",
            )
        })?;
        let cord = load_cord_mask(cord_path, &volume)?;
        let reorientation = volume.reorientation();
        let native = volume.spacing_mm();
        let spacing_mm = [
            native[reorientation.native_axis[0]],
            native[reorientation.native_axis[1]],
            native[reorientation.native_axis[2]],
        ];
        let image = reorientation.to_canonical(volume.data.view()).as_standard_layout().into_owned();
        let (csf, csf_derived) = match &files.csf_mask {
            Some(path) => (load_csf_mask(path, &volume)?, false),
            None => (derive_csf(image.view(), cord.view(), spacing_mm), true),
        };
        let centreline = Centreline::from_cord(cord.view(), spacing_mm)
            .ok_or_else(|| CoreError::EmptyMask { path: cord_path.clone() })?;
        let levels = load_levels(levels_path, convention, &volume, &centreline)?;
        let eroded = erode_3d(cord.view(), Neighbourhood3d::Cross, 1);
        let cord_core = if eroded.iter().filter(|&&v| v).count() >= MIN_NOISE_VOXELS { eroded } else { cord.clone() };
        let noise = estimate_noise(image.view(), cord_core.view(), noise_model).ok_or_else(|| {
            CoreError::input(
                cord_path,
                format!("the cord is too small to measure the noise (fewer than {MIN_NOISE_VOXELS} voxels)"),
            )
        })?;
        let frame = CordFrame::from_centreline(&centreline);
        Ok(SourceScan {
            files: files.clone(),
            volume,
            image,
            cord,
            cord_core,
            csf,
            csf_derived,
            spacing_mm,
            centreline,
            frame,
            levels,
            noise,
        })
    }

    /// The disc levels whose disc lies on the cord, with where along it.
    pub fn level_windows(&self) -> Vec<LevelWindow> {
        let length = self.frame.cord_length_mm();
        DiscLevel::ALL
            .into_iter()
            .filter_map(|level| {
                let upper = *self.levels.vertebra_centre_k.get(&level.upper_vertebra())?;
                let lower = *self.levels.vertebra_centre_k.get(&(level.upper_vertebra() + 1))?;
                let a = self.centreline.arc_length_at_k(upper);
                let b = self.centreline.arc_length_at_k(lower);
                let disc = 0.5 * (a + b);
                (disc >= 0.0 && disc <= length).then_some(LevelWindow {
                    level,
                    disc_arc_mm: disc,
                    segment_mm: (a - b).abs(),
                })
            })
            .collect()
    }

    /// Canonical slice range `k` (clamped) of the arc interval `[from, to]`.
    fn k_range(&self, from_mm: f64, to_mm: f64) -> (usize, usize) {
        let nk = self.image.dim().2;
        let lo = self.centreline.k_at_arc_length(from_mm).floor().max(0.0) as usize;
        let hi = (self.centreline.k_at_arc_length(to_mm).ceil().max(0.0) as usize).min(nk - 1);
        (lo.min(nk - 1), hi)
    }
}

/// Where a disc level lies along a subject's cord.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LevelWindow {
    pub level: DiscLevel,
    /// Arc length of the disc (midway between the two vertebral centres), mm.
    pub disc_arc_mm: f64,
    /// Distance between the two vertebral centres along the cord, mm.
    pub segment_mm: f64,
}

impl LevelWindow {
    /// Where the centre of a lesion of `length_mm` may go: within a quarter of the segment of
    /// the disc, with the whole lesion [`CORD_END_MARGIN_MM`] inside the cord's ends.
    pub fn centre_range(&self, length_mm: f64, cord_length_mm: f64) -> Option<(f64, f64)> {
        let jitter = 0.25 * self.segment_mm;
        let lo = (self.disc_arc_mm - jitter).max(0.5 * length_mm + CORD_END_MARGIN_MM);
        let hi = (self.disc_arc_mm + jitter).min(cord_length_mm - 0.5 * length_mm - CORD_END_MARGIN_MM);
        (lo <= hi).then_some((lo, hi))
    }
}

// ---------------------------------------------------------------------------------------------
// Drawing and placing lesions.

/// One lesion to write, as drawn.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LesionSpec {
    pub level: DiscLevel,
    /// Arc length of the lesion centre along the cord, mm.
    pub centre_arc_mm: f64,
    pub length_mm: f64,
    pub width_fraction: f64,
    /// Requested contrast ratio.
    pub contrast_ratio: f64,
    /// Shift of the centre along the anterior axis, as a fraction of the room left between the
    /// lesion and the cord's edge: 0 on the centreline, ±1 touching the anterior (+) or
    /// posterior (−) edge.
    pub edge_offset: f64,
}

/// Draws `config.lesions_per_subject` lesions at distinct disc levels of `source` (among
/// `config.levels` when given), none overlapping. An error names the image when no level can
/// hold a lesion.
pub fn draw_lesions(source: &SourceScan, config: &SynthConfig, rng: &mut impl Rng) -> Result<Vec<LesionSpec>> {
    let windows = source.level_windows();
    let cord_length = source.frame.cord_length_mm();
    let mut lesions: Vec<LesionSpec> = Vec::new();
    for _ in 0..config.lesions_per_subject {
        let length_mm = config.length_mm.draw(rng);
        let mut candidates: Vec<&LevelWindow> = windows
            .iter()
            .filter(|w| config.levels.is_empty() || config.levels.contains(&w.level))
            .filter(|w| lesions.iter().all(|l| l.level != w.level))
            .filter(|w| w.centre_range(length_mm, cord_length).is_some())
            .collect();
        let mut placed = None;
        while placed.is_none() && !candidates.is_empty() {
            let pick = rng.random_range(0..candidates.len());
            let window = candidates[pick];
            let (lo, hi) = window.centre_range(length_mm, cord_length).expect("filtered above");
            for _ in 0..16 {
                let centre = ValueRange::new(lo, hi).draw(rng);
                let clear = lesions
                    .iter()
                    .all(|l| (l.centre_arc_mm - centre).abs() >= 0.5 * (l.length_mm + length_mm) + LESION_GAP_MM);
                if clear {
                    placed = Some((window.level, centre));
                    break;
                }
            }
            if placed.is_none() {
                candidates.remove(pick);
            }
        }
        let Some((level, centre_arc_mm)) = placed else {
            let in_view: Vec<&str> = windows.iter().map(|w| w.level.name()).collect();
            let requested = if config.levels.is_empty() {
                String::new()
            } else {
                format!(
                    " among the requested {}",
                    config.levels.iter().map(|l| l.name()).collect::<Vec<_>>().join(", ")
                )
            };
            return Err(CoreError::input(
                &source.files.image,
                format!(
                    "no disc level{requested} can hold lesion {} ({length_mm:.1} mm) inside the cord's field of view \
                     (levels on the cord: {}; cord {cord_length:.0} mm long)",
                    lesions.len() + 1,
                    if in_view.is_empty() { "none".to_string() } else { in_view.join(", ") },
                ),
            ));
        };
        lesions.push(LesionSpec {
            level,
            centre_arc_mm,
            length_mm,
            width_fraction: config.width_fraction.draw(rng),
            contrast_ratio: config.contrast_ratio.draw(rng),
            // No draw at all without edge lesions, so earlier cohorts keep their bytes.
            edge_offset: if config.edge_fraction > 0.0 && rng.random::<f64>() < config.edge_fraction {
                if rng.random::<bool>() { 1.0 } else { -1.0 }
            } else {
                0.0
            },
        });
    }
    Ok(lesions)
}

/// A lesion as written, with what was measured around it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlacedLesion {
    pub spec: LesionSpec,
    /// Mean signal over the lesion's ground-truth voxels / `cord_signal`, in the written image.
    pub contrast_ratio: f64,
    /// The cord's smallest thickness along the lesion, along the anterior normal, mm.
    pub cord_width_mm: f64,
    /// The same along the right normal, mm.
    pub cord_width_lr_mm: f64,
    /// Full axes of the ellipsoid: along the cord, anterior-posterior, left-right, mm.
    pub axes_mm: [f64; 3],
    /// Local cord median (cord eroded by one voxel, within 10 mm of the lesion), source image.
    pub cord_signal: f64,
    /// Local CSF median (`None` when no CSF lies beside the lesion).
    pub csf_signal: Option<f64>,
    /// The lesion signal `T` of the blend.
    pub target_signal: f64,
    /// Whether `T` was lowered to the CSF cap.
    pub capped_by_csf: bool,
    /// Noise σ of the cord around the lesion (scan plus fresh noise).
    pub noise_sigma: f64,
    /// Sagittal texture σ of the cord around the lesion (scan plus fresh noise).
    pub texture_sigma: f64,
    /// Noise σ at the lesion's signal.
    pub lesion_noise_sigma: f64,
    /// Ground-truth voxels.
    pub voxels: usize,
    /// Voxels of the ellipsoid (in the chosen slices) outside the cord mask, left out.
    pub voxels_outside_cord: usize,
    /// Canonical sagittal slices (index along the right axis) the lesion spans.
    pub sagittal_slices: Vec<usize>,
    /// Canonical voxel index of the lesion centre.
    pub centre_voxel: [usize; 3],
}

/// A synthetic subject, in canonical order.
#[derive(Debug, Clone)]
pub struct SynthSubject {
    pub image: Array3<f32>,
    /// The ground truth: α > [`GROUND_TRUTH_ALPHA`].
    pub lesion_mask: Array3<bool>,
    /// The lesion weight α (largest over the lesions).
    pub alpha: Array3<f32>,
    pub lesions: Vec<PlacedLesion>,
    /// σ of the whole-image fresh noise at the cord's signal.
    pub fresh_noise_sigma: f64,
}

/// Writes `lesions` (and the whole-image fresh noise) into a copy of `source`.
pub fn synthesise(
    source: &SourceScan,
    lesions: &[LesionSpec],
    config: &SynthConfig,
    rng: &mut impl Rng,
) -> SynthSubject {
    let shape = source.image.dim();
    let mut image = source.image.clone();
    let model = &config.noise;
    let fresh_noise_sigma = config.fresh_noise_fraction * source.noise.sigma;
    if fresh_noise_sigma > 0.0 {
        let envelope = box_mean_3(source.image.view());
        let noise = correlated_noise([shape.0, shape.1, shape.2], model.correlation_kernel, rng);
        let (sigma, signal) = (fresh_noise_sigma, source.noise.signal);
        Zip::from(&mut image).and(&envelope).and(&noise).for_each(|v, &mu, &n| {
            *v += (model.sigma_at(sigma, signal, mu as f64) * n as f64) as f32;
        });
    }
    let mut lesion_mask = Array3::from_elem(shape, false);
    let mut alpha = Array3::<f32>::zeros(shape);
    let mut placed = Vec::with_capacity(lesions.len());
    for spec in lesions {
        placed.push(place_lesion(
            source,
            spec,
            config,
            fresh_noise_sigma,
            &mut image,
            &mut lesion_mask,
            &mut alpha,
            rng,
        ));
    }
    let floor = source.image.iter().copied().fold(0.0f32, f32::min);
    image.mapv_inplace(|v| v.max(floor));
    for lesion in &mut placed {
        lesion.contrast_ratio = measured_contrast(&image, &alpha, lesion, source);
    }
    // Scanner gain and coil shading act on everything, lesion included (the contrast ratio to the
    // local cord stays), after the contrast is measured against the source.
    let scale = config.intensity_scale.draw(rng) as f32;
    if config.bias_field > 0.0 {
        let field = bias_field(shape, source.spacing_mm, config.bias_field, rng);
        Zip::from(&mut image).and(&field).for_each(|v, &f| *v *= scale * f);
    } else if scale != 1.0 {
        image.mapv_inplace(|v| v * scale);
    }
    SynthSubject { image, lesion_mask, alpha, lesions: placed, fresh_noise_sigma }
}

/// A smooth multiplicative field 1 + amplitude·f(x), f the mean of three plane waves
/// cos(2π d·x / λ + φ) with uniformly random unit directions d, wavelengths λ in 150–400 mm and
/// phases φ (x in mm, canonical voxel order).
fn bias_field(shape: (usize, usize, usize), spacing_mm: [f64; 3], amplitude: f64, rng: &mut impl Rng) -> Array3<f32> {
    const WAVES: usize = 3;
    let waves: Vec<([f64; 3], f64, f64)> = (0..WAVES)
        .map(|_| {
            let (u, v) = (2.0 * rng.random::<f64>() - 1.0, std::f64::consts::TAU * rng.random::<f64>());
            let r = (1.0 - u * u).max(0.0).sqrt();
            let direction = [r * v.cos(), r * v.sin(), u];
            let wavelength_mm = 150.0 + 250.0 * rng.random::<f64>();
            (direction, std::f64::consts::TAU / wavelength_mm, std::f64::consts::TAU * rng.random::<f64>())
        })
        .collect();
    Array3::from_shape_fn(shape, |(i, j, k)| {
        let x = [i as f64 * spacing_mm[0], j as f64 * spacing_mm[1], k as f64 * spacing_mm[2]];
        let f = waves
            .iter()
            .map(|(d, wavenumber, phase)| (wavenumber * (d[0] * x[0] + d[1] * x[1] + d[2] * x[2]) + phase).cos())
            .sum::<f64>()
            / WAVES as f64;
        (1.0 + amplitude * f) as f32
    })
}

/// Mean of the written image over the lesion's ground truth / its local cord signal.
fn measured_contrast(image: &Array3<f32>, alpha: &Array3<f32>, lesion: &PlacedLesion, source: &SourceScan) -> f64 {
    let half = 0.5 * lesion.spec.length_mm;
    let (k0, k1) = source.k_range(lesion.spec.centre_arc_mm - half - 2.0, lesion.spec.centre_arc_mm + half + 2.0);
    let (mut sum, mut n) = (0.0, 0usize);
    for &i in &lesion.sagittal_slices {
        for k in k0..=k1 {
            for j in 0..image.dim().1 {
                if alpha[[i, j, k]] as f64 > GROUND_TRUTH_ALPHA {
                    let p = [
                        i as f64 * source.spacing_mm[0],
                        j as f64 * source.spacing_mm[1],
                        k as f64 * source.spacing_mm[2],
                    ];
                    let c = source.frame.project(p);
                    if (c.arc_mm - lesion.spec.centre_arc_mm).abs() <= half + 1.0 {
                        sum += image[[i, j, k]] as f64;
                        n += 1;
                    }
                }
            }
        }
    }
    if n == 0 || lesion.cord_signal <= 0.0 {
        return 1.0;
    }
    sum / n as f64 / lesion.cord_signal
}

#[allow(clippy::too_many_arguments)]
fn place_lesion(
    source: &SourceScan,
    spec: &LesionSpec,
    config: &SynthConfig,
    fresh_noise_sigma: f64,
    image: &mut Array3<f32>,
    lesion_mask: &mut Array3<bool>,
    alpha_map: &mut Array3<f32>,
    rng: &mut impl Rng,
) -> PlacedLesion {
    let spacing = source.spacing_mm;
    let frame = &source.frame;
    let (n0, n1, _) = source.image.dim();
    let s0 = spec.centre_arc_mm;
    let a_s = 0.5 * spec.length_mm;

    // The cord's smallest thickness along the lesion.
    let (mut width_ap, mut width_lr) = (f64::INFINITY, f64::INFINITY);
    let samples = (spec.length_mm / 0.5).ceil().max(1.0) as usize;
    for index in 0..=samples {
        let s = s0 - a_s + spec.length_mm * index as f64 / samples as f64;
        let (p, _, anterior, right) = frame.at_arc(s);
        width_ap = width_ap.min(frame.thickness_mm(source.cord.view(), p, anterior));
        width_lr = width_lr.min(frame.thickness_mm(source.cord.view(), p, right));
    }
    let a_u = 0.5 * spec.width_fraction * width_ap;
    let shift_u = spec.edge_offset * (0.5 * width_ap - a_u).max(0.0);
    let (centre, _, _, _) = frame.at_arc(s0);
    let centre_i = centre[0] / spacing[0];
    let nearest_offset_mm = (centre_i - centre_i.round()).abs() * spacing[0];
    let a_v = a_u
        .min(0.5 * spec.width_fraction * width_lr)
        .min(0.5 * MAX_SAGITTAL_SLICES as f64 * spacing[0])
        .max(nearest_offset_mm + 0.05 * spacing[0]);
    let sagittal_slices: Vec<usize> = (0..n0).filter(|&i| (i as f64 * spacing[0] - centre[0]).abs() < a_v).collect();
    let centre_voxel = [
        (centre[0] / spacing[0]).round().clamp(0.0, (n0 - 1) as f64) as usize,
        (centre[1] / spacing[1]).round().clamp(0.0, (n1 - 1) as f64) as usize,
        (centre[2] / spacing[2]).round().max(0.0) as usize,
    ];

    // Local signal, CSF and noise, from the source image.
    let (k_local0, k_local1) = source.k_range(s0 - a_s - LOCAL_CORD_MARGIN_MM, s0 + a_s + LOCAL_CORD_MARGIN_MM);
    let slab = s![.., .., k_local0..=k_local1];
    let mut cord_values = Vec::new();
    let mut csf_values = Vec::new();
    Zip::from(source.image.slice(slab)).and(source.cord_core.slice(slab)).and(source.csf.slice(slab)).for_each(
        |&v, &core, &csf| {
            if core {
                cord_values.push(v as f64);
            }
            if csf {
                csf_values.push(v as f64);
            }
        },
    );
    let cord_signal = median_f64(&mut cord_values).unwrap_or(source.noise.signal);
    let csf_signal = median_f64(&mut csf_values);
    let local =
        estimate_noise(source.image.slice(slab), source.cord_core.slice(slab), &config.noise).unwrap_or(source.noise);
    let fresh_local = config.noise.sigma_at(fresh_noise_sigma, source.noise.signal, cord_signal);
    let noise_sigma = local.sigma.hypot(fresh_local);
    let texture_sigma = local.texture_sigma.hypot(fresh_local);
    // The lesion's noise: the cord's sagittal texture, plus the growth of the noise with the
    // signal (σ(T)² − σ(m)²).
    let lesion_sigma = |target: f64| -> f64 {
        let noise_at_target = config.noise.sigma_at(noise_sigma, cord_signal, target);
        (texture_sigma * texture_sigma + (noise_at_target * noise_at_target - noise_sigma * noise_sigma).max(0.0))
            .sqrt()
    };

    // The weight α over a box around the lesion.
    let margin = 3.0 * config.edge_sigma_mm + 1.0;
    let (k0, k1) = source.k_range(s0 - a_s - margin, s0 + a_s + margin);
    let (mut j_lo, mut j_hi) = (usize::MAX, 0usize);
    for &i in &sagittal_slices {
        for k in k0..=k1 {
            for j in 0..n1 {
                if source.cord[[i, j, k]] {
                    j_lo = j_lo.min(j);
                    j_hi = j_hi.max(j);
                }
            }
        }
    }
    let mut weights: Vec<([usize; 3], f64, bool)> = Vec::new();
    let mut voxels_outside_cord = 0usize;
    if j_lo <= j_hi {
        let j_lo = j_lo.saturating_sub(2);
        let j_hi = (j_hi + 2).min(n1 - 1);
        let edge = config.edge_sigma_mm.max(1e-6) * std::f64::consts::SQRT_2;
        for &i in &sagittal_slices {
            for k in k0..=k1 {
                for j in j_lo..=j_hi {
                    let p = [i as f64 * spacing[0], j as f64 * spacing[1], k as f64 * spacing[2]];
                    let c = frame.project(p);
                    let (ds, du, dv) = (c.arc_mm - s0, c.anterior_mm - shift_u, c.right_mm);
                    let rho2 = (ds / a_s).powi(2) + (du / a_u).powi(2) + (dv / a_v).powi(2);
                    let rho = rho2.sqrt();
                    let r = (ds * ds + du * du + dv * dv).sqrt();
                    let d = if rho > 0.0 { r * (1.0 - 1.0 / rho) } else { -a_u.min(a_v).min(a_s) };
                    let weight = 0.5 * erfc(d / edge);
                    let in_cord = source.cord[[i, j, k]];
                    if rho < 1.0 && !in_cord {
                        voxels_outside_cord += 1;
                    }
                    if in_cord && weight > 1e-4 {
                        weights.push(([i, j, k], weight, rho < 1.0));
                    }
                }
            }
        }
    }

    // The noise of the blend, drawn over the box of the weights.
    let noise_terms: Vec<f64> = if weights.is_empty() {
        Vec::new()
    } else {
        let lo = |a: usize| weights.iter().map(|w| w.0[a]).min().unwrap_or(0);
        let hi = |a: usize| weights.iter().map(|w| w.0[a]).max().unwrap_or(0);
        let origin = [lo(0), lo(1), lo(2)];
        let noise = correlated_noise(
            [hi(0) - origin[0] + 1, hi(1) - origin[1] + 1, hi(2) - origin[2] + 1],
            config.noise.correlation_kernel,
            rng,
        );
        weights
            .iter()
            .map(|&([i, j, k], weight, _)| {
                let keep = 1.0 - weight;
                (1.0 - keep * keep).max(0.0).sqrt() * noise[[i - origin[0], j - origin[1], k - origin[2]]] as f64
            })
            .collect()
    };

    // The lesion signal T: the mean over the ground truth, noise included, is r × the cord
    // signal. The noise σ grows with T, so T is found by a few fixed-point steps (each moves
    // T by less than half the previous step: ∂σ_T/∂T · Σ noise / Σ α is small).
    let (mut sum_alpha, mut sum_rest, mut sum_noise, mut ground_truth) = (0.0, 0.0, 0.0, 0usize);
    for (&(index, weight, inside), &noise) in weights.iter().zip(&noise_terms) {
        if inside {
            sum_alpha += weight;
            sum_rest += (1.0 - weight) * image[index] as f64;
            sum_noise += noise;
            ground_truth += 1;
        }
    }
    let wanted = spec.contrast_ratio * cord_signal;
    let mut target_signal = wanted;
    if sum_alpha > 0.0 {
        for _ in 0..8 {
            let sigma = lesion_sigma(target_signal);
            target_signal = (wanted * ground_truth as f64 - sum_rest - sigma * sum_noise) / sum_alpha;
        }
    }
    let mut capped_by_csf = false;
    if let Some(csf) = csf_signal {
        let cap = config.csf_cap_ratio * csf;
        if target_signal > cap {
            target_signal = cap.max(cord_signal);
            capped_by_csf = true;
        }
    }
    let lesion_noise_sigma = lesion_sigma(target_signal);

    // Blend and noise.
    for (&(index, weight, inside), &noise) in weights.iter().zip(&noise_terms) {
        let value = (1.0 - weight) * image[index] as f64 + weight * target_signal + lesion_noise_sigma * noise;
        image[index] = value as f32;
        if inside {
            lesion_mask[index] = true;
        }
        if weight as f32 > alpha_map[index] {
            alpha_map[index] = weight as f32;
        }
    }

    PlacedLesion {
        spec: *spec,
        contrast_ratio: spec.contrast_ratio,
        cord_width_mm: width_ap,
        cord_width_lr_mm: width_lr,
        axes_mm: [2.0 * a_s, 2.0 * a_u, 2.0 * a_v],
        cord_signal,
        csf_signal,
        target_signal,
        capped_by_csf,
        noise_sigma,
        texture_sigma,
        lesion_noise_sigma,
        voxels: ground_truth,
        voxels_outside_cord,
        sagittal_slices,
        centre_voxel,
    }
}

// ---------------------------------------------------------------------------------------------
// A cohort.

/// How a synthetic cohort is made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CohortOptions {
    pub subjects_per_source: usize,
    /// Fraction of the synthetic subjects left without lesion (rounded to a count).
    pub lesion_free_fraction: f64,
    pub seed: u64,
    pub synth: SynthConfig,
    pub level_convention: Option<LevelConvention>,
}

impl Default for CohortOptions {
    fn default() -> Self {
        CohortOptions {
            subjects_per_source: 1,
            lesion_free_fraction: 0.3,
            seed: 0,
            synth: SynthConfig::default(),
            level_convention: None,
        }
    }
}

/// One synthetic subject to make.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedSubject {
    /// `sub-<source label>syn<NN>`.
    pub subject: String,
    /// Index into the sources.
    pub source: usize,
    pub lesion_free: bool,
    /// The ChaCha8 stream of the subject's random numbers.
    pub stream: u64,
}

/// The RNG of subject stream `stream` of a cohort seeded with `seed`.
pub fn subject_rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// Stream of the cohort plan (which subjects are lesion-free).
const PLAN_STREAM: u64 = u64::MAX;

/// The BIDS label of a source id (`sub-01_ses-02` → `01ses02`): its letters and digits.
fn source_label(subject: &str) -> String {
    subject.strip_prefix("sub-").unwrap_or(subject).chars().filter(|c| c.is_ascii_alphanumeric()).collect()
}

/// The synthetic subjects of a cohort: `subjects_per_source` copies of each source, named
/// `sub-<label>syn01` …; `round(lesion_free_fraction × total)` of them, drawn with the seed,
/// are lesion-free.
pub fn plan_cohort(sources: &[SubjectFiles], options: &CohortOptions) -> Result<Vec<PlannedSubject>, String> {
    if options.subjects_per_source == 0 {
        return Err("--subjects-per-source must be at least 1".into());
    }
    if !(0.0..=1.0).contains(&options.lesion_free_fraction) {
        return Err(format!("--lesion-free-fraction {} is outside 0:1", options.lesion_free_fraction));
    }
    let mut planned = Vec::new();
    let mut names = BTreeMap::new();
    for (source, files) in sources.iter().enumerate() {
        let label = source_label(&files.subject);
        if label.is_empty() {
            return Err(format!("{}: subject '{}' has no usable BIDS label", files.image.display(), files.subject));
        }
        if let Some(other) = names.insert(label.clone(), files.subject.clone()) {
            return Err(format!("subjects '{other}' and '{}' give the same synthetic name sub-{label}", files.subject));
        }
        for copy in 0..options.subjects_per_source {
            let stream = planned.len() as u64;
            planned.push(PlannedSubject {
                subject: format!("sub-{label}syn{:02}", copy + 1),
                source,
                lesion_free: false,
                stream,
            });
        }
    }
    let lesion_free = (options.lesion_free_fraction * planned.len() as f64).round() as usize;
    let mut order: Vec<usize> = (0..planned.len()).collect();
    order.shuffle(&mut subject_rng(options.seed, PLAN_STREAM));
    for &index in order.iter().take(lesion_free) {
        planned[index].lesion_free = true;
    }
    Ok(planned)
}

/// What was written for one synthetic subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthRecord {
    pub subject: String,
    pub source_subject: String,
    pub source_image: PathBuf,
    pub lesion_free: bool,
    pub seed: u64,
    pub stream: u64,
    /// Noise σ of the source's cord (at `cord_signal`).
    pub noise_sigma: f64,
    pub cord_signal: f64,
    /// σ of the added whole-image noise at the cord's signal.
    pub fresh_noise_sigma: f64,
    pub csf_derived: bool,
    pub lesions: Vec<PlacedLesion>,
    /// Relative paths inside the cohort.
    pub image: PathBuf,
    pub lesion_label: PathBuf,
}

/// The ground-truth lesion mask of an image: `<labels_dir>/<same sub-/ses- folders>/anat/
/// <image stem>_label-lesion_seg.nii.gz`, where `dataset_root` holds the image.
pub fn lesion_label_path(dataset_root: &Path, image: &Path) -> PathBuf {
    let labels_root = dataset_root.join("derivatives").join("labels");
    let relative_dir = image.parent().and_then(|p| p.strip_prefix(dataset_root).ok()).unwrap_or(Path::new(""));
    labels_root.join(relative_dir).join(format!("{}{LESION_LABEL_SUFFIX}.nii.gz", nifti_stem(image)))
}

/// Voxel type to write a synthetic image with: the source's, unless an integer source had a
/// scaling that rounding would spoil (then float32).
fn output_voxel_type(volume: &Volume) -> VoxelType {
    let slope = volume.header.scl_slope;
    let scaled = slope != 0.0 && slope.is_finite() && (slope != 1.0 || volume.header.scl_inter != 0.0);
    match volume.voxel_type {
        VoxelType::Float32 | VoxelType::Float64 => volume.voxel_type,
        other if !scaled => other,
        _ => VoxelType::Float32,
    }
}

fn io_error(path: &Path, e: std::io::Error) -> CoreError {
    CoreError::io(path, e)
}

/// A label file's suffix and extension relative to its image: `<stem><suffix>.nii.gz`.
fn label_tail(image: &Path, label: &Path) -> String {
    let stem = nifti_stem(image);
    let name = label.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    name.strip_prefix(&stem).map(str::to_string).unwrap_or_else(|| format!("_{name}"))
}

/// Makes one synthetic subject and writes its image, lesion mask and copied labels under
/// `root` (a cohort folder being built).
fn make_subject(
    root: &Path,
    source: &SourceScan,
    plan: &PlannedSubject,
    options: &CohortOptions,
) -> Result<SynthRecord> {
    let mut rng = subject_rng(options.seed, plan.stream);
    let specs = if plan.lesion_free { Vec::new() } else { draw_lesions(source, &options.synth, &mut rng)? };
    let synthetic = synthesise(source, &specs, &options.synth, &mut rng);
    let reorientation = source.volume.reorientation();
    let anat = PathBuf::from(&plan.subject).join("anat");
    let labels = PathBuf::from("derivatives").join("labels").join(&plan.subject).join("anat");
    let stem = format!("{}_T2w", plan.subject);
    let image_rel = anat.join(format!("{stem}.nii.gz"));
    let lesion_rel = labels.join(format!("{stem}{LESION_LABEL_SUFFIX}.nii.gz"));
    std::fs::create_dir_all(root.join(&anat)).map_err(|e| io_error(&root.join(&anat), e))?;
    std::fs::create_dir_all(root.join(&labels)).map_err(|e| io_error(&root.join(&labels), e))?;

    let native = reorientation.to_native(synthetic.image.view());
    source.volume.write_like(native.view(), output_voxel_type(&source.volume), &root.join(&image_rel))?;
    let mask = reorientation.to_native(synthetic.lesion_mask.mapv(|v| if v { 1.0f32 } else { 0.0 }).view());
    source.volume.write_like(mask.view(), VoxelType::UInt8, &root.join(&lesion_rel))?;

    // The labels the lesion was placed with, byte for byte, under the new name.
    let files = &source.files;
    let mut copies: Vec<&PathBuf> = vec![];
    copies.extend(files.cord_mask.iter());
    copies.extend(files.csf_mask.iter());
    copies.extend(files.levels.iter());
    for label in copies {
        let target = root.join(&labels).join(format!("{stem}{}", label_tail(&files.image, label)));
        std::fs::copy(label, &target).map_err(|e| io_error(label, e))?;
    }
    // The image's BIDS sidecar, when there is one.
    let sidecar = files.image.with_file_name(format!("{}.json", nifti_stem(&files.image)));
    if sidecar.is_file() {
        let target = root.join(&anat).join(format!("{stem}.json"));
        std::fs::copy(&sidecar, &target).map_err(|e| io_error(&sidecar, e))?;
    }
    Ok(SynthRecord {
        subject: plan.subject.clone(),
        source_subject: files.subject.clone(),
        source_image: std::path::absolute(&files.image).unwrap_or_else(|_| files.image.clone()),
        lesion_free: plan.lesion_free,
        seed: options.seed,
        stream: plan.stream,
        noise_sigma: source.noise.sigma,
        cord_signal: source.noise.signal,
        fresh_noise_sigma: synthetic.fresh_noise_sigma,
        csf_derived: source.csf_derived,
        lesions: synthetic.lesions,
        image: image_rel,
        lesion_label: lesion_rel,
    })
}

/// Columns of `synth_manifest.tsv`, one row per lesion (one row with `n/a` lesion fields for a
/// lesion-free subject).
pub const MANIFEST_COLUMNS: [&str; 22] = [
    "subject",
    "source_subject",
    "lesion",
    "level",
    "centre_arc_mm",
    "length_mm",
    "width_fraction",
    "width_mm",
    "cord_width_mm",
    "sagittal_slices",
    "voxels",
    "contrast_ratio",
    "contrast_ratio_requested",
    "cord_signal",
    "csf_signal",
    "target_signal",
    "capped_by_csf",
    "noise_sigma",
    "lesion_noise_sigma",
    "fresh_noise_sigma",
    "seed",
    "stream",
];

/// The manifest table.
pub fn manifest_tsv(records: &[SynthRecord]) -> String {
    let mut out = MANIFEST_COLUMNS.join("\t");
    out.push('\n');
    let na = "n/a";
    for record in records {
        let tail = format!("{:.3}\t{}\t{}", record.fresh_noise_sigma, record.seed, record.stream);
        if record.lesions.is_empty() {
            let _ = write!(out, "{}\t{}", record.subject, record.source_subject);
            for _ in 0..15 {
                let _ = write!(out, "\t{na}");
            }
            let _ = writeln!(out, "\t{:.3}\tn/a\t{tail}", record.noise_sigma);
            continue;
        }
        for (index, lesion) in record.lesions.iter().enumerate() {
            let _ = writeln!(
                out,
                "{}\t{}\t{}\t{}\t{:.2}\t{:.2}\t{:.3}\t{:.2}\t{:.2}\t{}\t{}\t{:.3}\t{:.3}\t{:.1}\t{}\t{:.1}\t{}\t{:.3}\t{:.3}\t{tail}",
                record.subject,
                record.source_subject,
                index + 1,
                lesion.spec.level.name(),
                lesion.spec.centre_arc_mm,
                lesion.spec.length_mm,
                lesion.spec.width_fraction,
                lesion.axes_mm[1],
                lesion.cord_width_mm,
                lesion.sagittal_slices.len(),
                lesion.voxels,
                lesion.contrast_ratio,
                lesion.spec.contrast_ratio,
                lesion.cord_signal,
                lesion.csf_signal.map_or(na.to_string(), |v| format!("{v:.1}")),
                lesion.target_signal,
                lesion.capped_by_csf,
                lesion.noise_sigma,
                lesion.lesion_noise_sigma,
            );
        }
    }
    out
}

/// What [`write_cohort`] needs besides the sources.
#[derive(Debug, Clone)]
pub struct CohortRequest<'a> {
    /// The source BIDS dataset (for its description).
    pub input_root: &'a Path,
    pub sources: &'a [SubjectFiles],
    /// The cohort folder to create; it must not exist (or be an empty folder).
    pub out: &'a Path,
    pub options: &'a CohortOptions,
    /// The command line, for `GeneratedBy`.
    pub command: &'a str,
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| io_error(path, e))
}

/// Makes a synthetic cohort and writes it as a BIDS dataset at `request.out`: built in a
/// temporary sibling folder and renamed into place at the end, so a failure leaves nothing.
/// Subjects are made in parallel (rayon's current pool); `on_subject` is told each one done.
pub fn write_cohort(request: &CohortRequest<'_>, on_subject: &(dyn Fn(&str) + Sync)) -> Result<Vec<SynthRecord>> {
    use rayon::prelude::*;
    let out = request.out;
    let options = request.options;
    options.synth.validate().map_err(|e| CoreError::input(out, e))?;
    if out.exists() {
        let empty_dir = out.is_dir() && std::fs::read_dir(out).map_err(|e| io_error(out, e))?.next().is_none();
        if !empty_dir {
            return Err(CoreError::input(
                out,
                "already exists: choose a new --out folder (the cohort is written whole)",
            ));
        }
    }
    let plan = plan_cohort(request.sources, options).map_err(|e| CoreError::input(request.input_root, e))?;
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "cohort".into());
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| io_error(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| io_error(&tmp, e))?;
    let built = build_cohort(&tmp, request, &plan, on_subject).and_then(|records| {
        if out.exists() {
            std::fs::remove_dir(out).map_err(|e| io_error(out, e))?;
        }
        std::fs::rename(&tmp, out).map_err(|e| io_error(out, e))?;
        Ok(records)
    });
    if built.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    return built;

    fn build_cohort(
        root: &Path,
        request: &CohortRequest<'_>,
        plan: &[PlannedSubject],
        on_subject: &(dyn Fn(&str) + Sync),
    ) -> Result<Vec<SynthRecord>> {
        let options = request.options;
        // One source at a time per worker: each is read once, its copies made, then dropped.
        let per_source: Vec<Result<Vec<SynthRecord>>> = request
            .sources
            .par_iter()
            .enumerate()
            .map(|(index, files)| {
                let source = SourceScan::load(files, options.level_convention, &options.synth.noise)?;
                plan.iter()
                    .filter(|p| p.source == index)
                    .map(|p| {
                        let record = make_subject(root, &source, p, options)?;
                        on_subject(&p.subject);
                        Ok(record)
                    })
                    .collect()
            })
            .collect();
        let mut records = Vec::with_capacity(plan.len());
        for result in per_source {
            records.extend(result?);
        }
        records.sort_by_key(|r| r.stream);

        let version = env!("CARGO_PKG_VERSION");
        let generated_by = serde_json::json!([{
            "Name": "u2ad",
            "Version": version,
            "Description": "u2ad synth: healthy scans with synthetic T2 hyperintensities (blend toward r x local cord signal, Gaussian-feathered ellipsoid along the cord, matched noise)",
            "Command": request.command,
        }]);
        let source_description: Option<serde_json::Value> =
            std::fs::read_to_string(request.input_root.join("dataset_description.json"))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok());
        let source_name = source_description
            .as_ref()
            .and_then(|d| d.get("Name"))
            .and_then(|n| n.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| request.input_root.display().to_string());
        let input_abs = std::path::absolute(request.input_root).unwrap_or_else(|_| request.input_root.to_path_buf());
        let mut description = serde_json::json!({
            "Name": format!("Synthetic T2 hyperintensities in {source_name}"),
            "BIDSVersion": "1.9.0",
            "DatasetType": "raw",
            "GeneratedBy": generated_by,
            "SourceDatasets": [{"URL": format!("file://{}", input_abs.display())}],
        });
        if let Some(license) = source_description.as_ref().and_then(|d| d.get("License")) {
            description["License"] = license.clone();
        }
        let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).expect("JSON values serialise");
        write_text(&root.join("dataset_description.json"), &pretty(&description))?;
        let labels_root = root.join("derivatives").join("labels");
        std::fs::create_dir_all(&labels_root).map_err(|e| io_error(&labels_root, e))?;
        let labels_description = serde_json::json!({
            "Name": "Cord, CSF and level labels of the sources, and the synthetic lesions' ground truth",
            "BIDSVersion": "1.9.0",
            "DatasetType": "derivative",
            "GeneratedBy": generated_by,
        });
        write_text(&labels_root.join("dataset_description.json"), &pretty(&labels_description))?;
        let mut participants = String::from("participant_id\tsource_participant\n");
        for record in &records {
            let _ = writeln!(participants, "{}\t{}", record.subject, record.source_subject);
        }
        write_text(&root.join("participants.tsv"), &participants)?;
        let manifest = serde_json::json!({
            "GeneratedBy": generated_by,
            "Seed": options.seed,
            "Options": options,
            "GroundTruthAlpha": GROUND_TRUTH_ALPHA,
            "Subjects": records,
        });
        write_text(&root.join("synth_manifest.json"), &pretty(&manifest))?;
        write_text(&root.join("synth_manifest.tsv"), &manifest_tsv(&records))?;
        Ok(records)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_bias_field_is_smooth_and_bounded() {
        let field = bias_field((60, 120, 40), [1.0, 1.0, 1.0], 0.15, &mut subject_rng(3, 1));
        let (low, high) = field.iter().fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        assert!(low >= 0.85 - 1e-6 && high <= 1.15 + 1e-6, "{low} {high}");
        // It varies across the volume, by at most 2π·0.15 / 150 mm per mm.
        assert!(high - low > 0.02, "{low} {high}");
        let step = field.windows((2, 1, 1)).into_iter().map(|w| (w[[1, 0, 0]] - w[[0, 0, 0]]).abs()).fold(0.0f32, f32::max);
        assert!(step <= (std::f64::consts::TAU * 0.15 / 150.0) as f32 + 1e-6, "{step}");
        assert_eq!(bias_field((4, 4, 4), [1.0; 3], 0.0, &mut subject_rng(3, 1)), Array3::from_elem((4, 4, 4), 1.0f32));
    }

    use super::*;

    #[test]
    fn erfc_matches_known_values() {
        assert!((erfc(0.0) - 1.0).abs() < 1e-7);
        assert!((erfc(1.0) - 0.157_299_207).abs() < 1e-7);
        assert!((erfc(-1.0) - 1.842_700_793).abs() < 1e-7);
        assert!((erfc(2.5) - 0.000_406_952).abs() < 1e-8);
    }

    #[test]
    fn ranges_and_levels_parse() {
        assert_eq!(ValueRange::parse("1.3:3").unwrap(), ValueRange::new(1.3, 3.0));
        assert_eq!(ValueRange::parse("8").unwrap(), ValueRange::fixed(8.0));
        assert!(ValueRange::parse("3:1").unwrap_err().contains("lower bound"));
        assert!(ValueRange::parse("a:1").is_err());
        assert_eq!(parse_disc_level("c4/c5").unwrap(), DiscLevel::C4C5);
        assert_eq!(parse_disc_level("C7-T1").unwrap(), DiscLevel::C7T1);
        assert!(parse_disc_level("C8/C9").unwrap_err().contains("C2/C3"));
    }

    #[test]
    fn correlated_noise_has_unit_variance_and_the_modelled_correlation() {
        let model = NoiseModel::default();
        let noise = correlated_noise([40, 40, 40], model.correlation_kernel, &mut subject_rng(7, 0));
        let n = noise.len() as f64;
        let mean = noise.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = noise.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!((var - 1.0).abs() < 0.03, "variance {var}");
        let a = noise.slice(s![..39, .., ..]);
        let b = noise.slice(s![1.., .., ..]);
        let lag1 = Zip::from(&a).and(&b).fold(0.0, |acc, &x, &y| acc + x as f64 * y as f64) / a.len() as f64;
        let (rho1, _) = model.lag_correlations();
        assert!((lag1 - rho1).abs() < 0.03, "lag-1 correlation {lag1} vs {rho1}");
        // The residual gains match the simulated residual spreads.
        let mask = Array3::from_elem((40, 40, 40), true);
        for residual in [Residual::Superior, Residual::Sagittal] {
            let spread = residual_spread(noise.view(), mask.view(), residual).unwrap();
            let gain = model.residual_gain(residual);
            assert!((spread / gain - 1.0).abs() < 0.04, "{residual:?}: {spread} vs {gain}");
        }
        let white = NoiseModel { correlation_kernel: 0.0, ..model };
        assert!((white.residual_gain(Residual::Superior) - 1.5f64.sqrt()).abs() < 1e-12);
        assert!((white.residual_gain(Residual::Sagittal) - 1.25f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn the_plan_names_subjects_and_draws_the_lesion_free_ones() {
        let files = |s: &str| SubjectFiles {
            subject: s.into(),
            image: PathBuf::from(format!("{s}_T2w.nii.gz")),
            cord_mask: None,
            csf_mask: None,
            levels: None,
        };
        let sources = [files("sub-01"), files("sub-02_ses-1")];
        let options = CohortOptions { subjects_per_source: 5, lesion_free_fraction: 0.3, ..Default::default() };
        let plan = plan_cohort(&sources, &options).unwrap();
        assert_eq!(plan.len(), 10);
        assert_eq!(plan[0].subject, "sub-01syn01");
        assert_eq!(plan[9].subject, "sub-02ses1syn05");
        assert_eq!(plan.iter().filter(|p| p.lesion_free).count(), 3);
        assert_eq!(plan, plan_cohort(&sources, &options).unwrap());
        let other = plan_cohort(&sources, &CohortOptions { seed: 1, ..options.clone() }).unwrap();
        assert_ne!(
            plan.iter().map(|p| p.lesion_free).collect::<Vec<_>>(),
            other.iter().map(|p| p.lesion_free).collect::<Vec<_>>()
        );
        let clash = [files("sub-a-1"), files("sub-a1")];
        assert!(plan_cohort(&clash, &options).unwrap_err().contains("same synthetic name"));
    }
}
