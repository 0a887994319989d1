//! The scan's noise: its model ([`NoiseModel`]: correlation between neighbours, growth with the
//! signal), correlated unit-variance noise and the local mean that scales the fresh noise, and the
//! noise and texture estimate inside the cord ([`Residual`], [`estimate_noise`]). The
//! measurements behind the model are in the `synth` module documentation.

use ndarray::{Array3, ArrayView3, Axis, Zip};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::numerics::{mad_sigma, median_f64};
use super::MIN_NOISE_VOXELS;

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
pub(super) fn box_mean_3(image: ArrayView3<'_, f32>) -> Array3<f32> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::subject_rng;
    use ndarray::s;

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
}
