//! Intensity augmentation of a training slice (the reference's `maeloader` with `augment=True`,
//! `docs/reference-notes.md` 1.3 step 7), and the per-slice min–max normalisation every slice
//! gets at load time.
//!
//! With `b ~ U(brightness)`, `c ~ U(contrast)` and `ε ~ N(0, noise_sd²)` per pixel:
//!
//! 1. brightness: `x ← clip(b · x)` (PIL's `ImageEnhance.Brightness` blends with black);
//! 2. contrast: `x ← clip(m + c · (x − m))`, `m` = mean of the slice after step 1 (PIL's
//!    `ImageEnhance.Contrast` blends with a flat image at the mean grey level);
//! 3. noise: `x ← clip(x + ε)`;
//! 4. min–max: `x ← (x − min) / (max − min)` (all 0 for a flat slice).
//!
//! `clip` is to [0, 1]. Unlike the reference, the slice is not quantised to 8 bits for steps 1–2
//! (`docs/reference-notes.md`, recommended answer 16).

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Augmentation settings; the defaults are the reference's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentationConfig {
    /// Augment training slices at all (MC inference never does).
    pub enabled: bool,
    /// Range of the brightness factor `b`.
    pub brightness: [f64; 2],
    /// Range of the contrast factor `c`.
    pub contrast: [f64; 2],
    /// Standard deviation of the additive Gaussian noise, on the [0, 1] scale.
    pub noise_sd: f64,
}

impl Default for AugmentationConfig {
    fn default() -> Self {
        AugmentationConfig { enabled: true, brightness: [0.8, 1.2], contrast: [0.8, 1.2], noise_sd: 0.02 }
    }
}

impl AugmentationConfig {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), String> {
        for (name, [lo, hi]) in [("brightness", self.brightness), ("contrast", self.contrast)] {
            if !(lo >= 0.0 && hi >= lo && hi.is_finite()) {
                return Err(format!("augmentation.{name} = [{lo}, {hi}] is not a range of non-negative factors"));
            }
        }
        if !(self.noise_sd >= 0.0 && self.noise_sd.is_finite()) {
            return Err(format!("augmentation.noise_sd = {} is not a non-negative number", self.noise_sd));
        }
        Ok(())
    }
}

/// `(x − min) / (max − min)` in place; a flat slice becomes all 0.
pub fn min_max_normalise(pixels: &mut [f32]) {
    let (lo, hi) = pixels.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let range = hi - lo;
    for v in pixels.iter_mut() {
        *v = if range > 0.0 { (*v - lo) / range } else { 0.0 };
    }
}

/// A standard normal draw (Box–Muller; one of the pair is used).
pub fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let u1: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn uniform<R: Rng + ?Sized>(rng: &mut R, [lo, hi]: [f64; 2]) -> f64 {
    if hi > lo {
        rng.random_range(lo..hi)
    } else {
        lo
    }
}

/// The augmented copy of `image` (see the module documentation), or its min–max normalised copy
/// when augmentation is off. The draws come from `rng` in a fixed order (`b`, `c`, then the noise
/// row-major), so the result is a function of the generator's state.
pub fn augment<R: Rng + ?Sized>(image: &[f32], config: &AugmentationConfig, rng: &mut R) -> Vec<f32> {
    let mut x: Vec<f32> = image.to_vec();
    if config.enabled {
        let b = uniform(rng, config.brightness);
        let c = uniform(rng, config.contrast);
        for v in x.iter_mut() {
            *v = (b * *v as f64).clamp(0.0, 1.0) as f32;
        }
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / x.len().max(1) as f64;
        for v in x.iter_mut() {
            *v = (mean + c * (*v as f64 - mean)).clamp(0.0, 1.0) as f32;
        }
        if config.noise_sd > 0.0 {
            for v in x.iter_mut() {
                *v = (*v as f64 + config.noise_sd * standard_normal(rng)).clamp(0.0, 1.0) as f32;
            }
        }
    }
    min_max_normalise(&mut x);
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn min_max_maps_to_the_unit_range() {
        let mut v = vec![0.2f32, 0.4, 0.6];
        min_max_normalise(&mut v);
        for (got, want) in v.iter().zip([0.0f32, 0.5, 1.0]) {
            assert!((got - want).abs() < 1e-6, "{v:?}");
        }
        let mut flat = vec![0.3f32; 4];
        min_max_normalise(&mut flat);
        assert_eq!(flat, vec![0.0; 4]);
    }

    #[test]
    fn brightness_and_contrast_without_noise_follow_the_formulas() {
        // Fixed factors (degenerate ranges), no noise: b = 1.5 then c = 0.5 around the mean.
        let config = AugmentationConfig { enabled: true, brightness: [1.5, 1.5], contrast: [0.5, 0.5], noise_sd: 0.0 };
        let image = [0.0f32, 0.2, 0.4, 0.8];
        // b: 0, 0.3, 0.6, 1.0 (clipped from 1.2); mean 0.475; c: 0.2375, 0.3875, 0.5375, 0.7375;
        // min–max: 0, 0.3, 0.6, 1.
        let out = augment(&image, &config, &mut ChaCha8Rng::seed_from_u64(0));
        for (o, e) in out.iter().zip([0.0f32, 0.3, 0.6, 1.0]) {
            assert!((o - e).abs() < 1e-6, "{out:?}");
        }
    }

    #[test]
    fn noise_has_the_configured_spread_and_the_result_stays_in_range() {
        let config = AugmentationConfig { brightness: [1.0, 1.0], contrast: [1.0, 1.0], ..AugmentationConfig::default() };
        // A flat 0.5 slice with 20 pixels at 0 and 20 at 1: after noise and clipping some of
        // each stay exactly 0 and 1, so the min–max is the identity.
        let mut image = vec![0.5f32; 20_000];
        image[..20].fill(0.0);
        image[20..40].fill(1.0);
        let out = augment(&image, &config, &mut ChaCha8Rng::seed_from_u64(3));
        assert!(out.iter().all(|&v| (0.0..=1.0).contains(&v)));
        let body = &out[40..];
        let mean = body.iter().map(|&v| v as f64).sum::<f64>() / body.len() as f64;
        let sd = (body.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / body.len() as f64).sqrt();
        assert!((mean - 0.5).abs() < 0.002, "mean {mean}");
        assert!((sd - 0.02).abs() < 0.001, "sd {sd}");
        let again = augment(&image, &config, &mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(out, again, "same generator state, same result");
    }

    #[test]
    fn disabled_only_normalises() {
        let config = AugmentationConfig { enabled: false, ..AugmentationConfig::default() };
        let out = augment(&[0.1, 0.3], &config, &mut ChaCha8Rng::seed_from_u64(0));
        assert_eq!(out, vec![0.0, 1.0]);
    }
}
