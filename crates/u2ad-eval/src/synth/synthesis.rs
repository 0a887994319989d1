//! One synthetic subject in memory ([`synthesise`]): fresh noise over the whole image, the
//! lesions, the contrast measured in the written image, then the scanner gain and the bias field.

use ndarray::{Array3, Zip};
use rand::Rng;

use super::config::SynthConfig;
use super::draw::LesionSpec;
use super::lesion::{place_lesion, PlacedLesion};
use super::noise::{box_mean_3, correlated_noise};
use super::source::SourceScan;
use super::GROUND_TRUTH_ALPHA;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::subject_rng;

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
}
