//! Placing one lesion ([`PlacedLesion`]), in steps: the ellipsoid in the cord frame (the cord's
//! thickness along the lesion, the half-axes, the sagittal slices), the local cord and CSF signal
//! and noise, the feathered weight α over a box around the lesion, the noise of the blend, the
//! lesion signal `T`, and the blend written into the image.

use ndarray::{s, Array3, Zip};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::config::SynthConfig;
use super::draw::LesionSpec;
use super::noise::{correlated_noise, estimate_noise, NoiseModel};
use super::numerics::{erfc, median_f64};
use super::source::SourceScan;
use super::{LOCAL_CORD_MARGIN_MM, MAX_SAGITTAL_SLICES};

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

/// Writes one lesion into `image`, its ground truth into `lesion_mask` and its weight into
/// `alpha_map` (largest over the lesions), in the steps below.
#[allow(clippy::too_many_arguments)]
pub(super) fn place_lesion(
    source: &SourceScan,
    spec: &LesionSpec,
    config: &SynthConfig,
    fresh_noise_sigma: f64,
    image: &mut Array3<f32>,
    lesion_mask: &mut Array3<bool>,
    alpha_map: &mut Array3<f32>,
    rng: &mut impl Rng,
) -> PlacedLesion {
    let shape = lesion_shape(source, spec);
    let local = local_signal(source, config, fresh_noise_sigma, &shape);
    let (weights, voxels_outside_cord) = lesion_weights(source, config, &shape);
    let noise_terms = blend_noise(&weights, config.noise.correlation_kernel, rng);
    let signal = lesion_signal(image, &weights, &noise_terms, spec, &local, config);
    blend(image, lesion_mask, alpha_map, &weights, &noise_terms, &signal);

    PlacedLesion {
        spec: *spec,
        contrast_ratio: spec.contrast_ratio,
        cord_width_mm: shape.width_ap,
        cord_width_lr_mm: shape.width_lr,
        axes_mm: [2.0 * shape.a_s, 2.0 * shape.a_u, 2.0 * shape.a_v],
        cord_signal: local.cord_signal,
        csf_signal: local.csf_signal,
        target_signal: signal.target_signal,
        capped_by_csf: signal.capped_by_csf,
        noise_sigma: local.noise_sigma,
        texture_sigma: local.texture_sigma,
        lesion_noise_sigma: signal.lesion_noise_sigma,
        voxels: signal.ground_truth,
        voxels_outside_cord,
        sagittal_slices: shape.sagittal_slices,
        centre_voxel: shape.centre_voxel,
    }
}

/// The lesion's ellipsoid in the cord frame.
struct LesionShape {
    /// Arc length of the centre along the cord, mm.
    s0: f64,
    /// Half-axes along the cord, the anterior normal and the right normal, mm.
    a_s: f64,
    a_u: f64,
    a_v: f64,
    /// Shift of the centre along the anterior normal, mm.
    shift_u: f64,
    /// The cord's smallest thickness along the lesion, along the anterior and right normals, mm.
    width_ap: f64,
    width_lr: f64,
    /// Canonical sagittal slices the lesion spans.
    sagittal_slices: Vec<usize>,
    /// Canonical voxel index of the centre.
    centre_voxel: [usize; 3],
}

/// The ellipsoid of `spec`: its half-axes from the cord's smallest thickness along the lesion,
/// its shift toward the cord's edge, and the sagittal slices it spans.
fn lesion_shape(source: &SourceScan, spec: &LesionSpec) -> LesionShape {
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
    LesionShape { s0, a_s, a_u, a_v, shift_u, width_ap, width_lr, sagittal_slices, centre_voxel }
}

/// The cord around the lesion: its median signal, the CSF's, and the noise and texture σ (scan
/// plus fresh noise).
struct LocalSignal {
    cord_signal: f64,
    csf_signal: Option<f64>,
    noise_sigma: f64,
    texture_sigma: f64,
}

impl LocalSignal {
    /// The lesion's noise at lesion signal `target`: the cord's sagittal texture, plus the growth
    /// of the noise with the signal (σ(T)² − σ(m)²).
    fn lesion_sigma(&self, model: &NoiseModel, target: f64) -> f64 {
        let (noise_sigma, texture_sigma) = (self.noise_sigma, self.texture_sigma);
        let noise_at_target = model.sigma_at(noise_sigma, self.cord_signal, target);
        (texture_sigma * texture_sigma + (noise_at_target * noise_at_target - noise_sigma * noise_sigma).max(0.0))
            .sqrt()
    }
}

/// Local signal, CSF and noise, from the source image: the cord (eroded by one voxel) and the
/// CSF within [`LOCAL_CORD_MARGIN_MM`] of the lesion along the cord.
fn local_signal(source: &SourceScan, config: &SynthConfig, fresh_noise_sigma: f64, shape: &LesionShape) -> LocalSignal {
    let (s0, a_s) = (shape.s0, shape.a_s);
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
    LocalSignal { cord_signal, csf_signal, noise_sigma, texture_sigma }
}

/// A voxel the lesion touches: its canonical index, its weight α, and whether it lies inside the
/// ellipsoid (ρ < 1: ground truth).
type Weight = ([usize; 3], f64, bool);

/// The weight α over a box around the lesion: the cord voxels of the lesion's sagittal slices
/// where it exceeds 1e-4, and the number of the ellipsoid's voxels outside the cord mask.
fn lesion_weights(source: &SourceScan, config: &SynthConfig, shape: &LesionShape) -> (Vec<Weight>, usize) {
    let spacing = source.spacing_mm;
    let frame = &source.frame;
    let (_, n1, _) = source.image.dim();
    let (s0, a_s, a_u, a_v, shift_u) = (shape.s0, shape.a_s, shape.a_u, shape.a_v, shape.shift_u);
    let sagittal_slices = &shape.sagittal_slices;

    let margin = 3.0 * config.edge_sigma_mm + 1.0;
    let (k0, k1) = source.k_range(s0 - a_s - margin, s0 + a_s + margin);
    let (mut j_lo, mut j_hi) = (usize::MAX, 0usize);
    for &i in sagittal_slices {
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
        for &i in sagittal_slices {
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
    (weights, voxels_outside_cord)
}

/// The noise of the blend, drawn over the box of the weights: `√(1 − (1 − α)²) · n` for each
/// weight, `n` unit-variance correlated noise (`kernel` as [`NoiseModel::correlation_kernel`]).
fn blend_noise(weights: &[Weight], kernel: f64, rng: &mut impl Rng) -> Vec<f64> {
    if weights.is_empty() {
        Vec::new()
    } else {
        let lo = |a: usize| weights.iter().map(|w| w.0[a]).min().unwrap_or(0);
        let hi = |a: usize| weights.iter().map(|w| w.0[a]).max().unwrap_or(0);
        let origin = [lo(0), lo(1), lo(2)];
        let noise = correlated_noise(
            [hi(0) - origin[0] + 1, hi(1) - origin[1] + 1, hi(2) - origin[2] + 1],
            kernel,
            rng,
        );
        weights
            .iter()
            .map(|&([i, j, k], weight, _)| {
                let keep = 1.0 - weight;
                (1.0 - keep * keep).max(0.0).sqrt() * noise[[i - origin[0], j - origin[1], k - origin[2]]] as f64
            })
            .collect()
    }
}

/// The lesion signal `T` and what follows from it.
struct LesionSignal {
    target_signal: f64,
    /// Whether `T` was lowered to the CSF cap.
    capped_by_csf: bool,
    /// Noise σ at `T`.
    lesion_noise_sigma: f64,
    /// Ground-truth voxels.
    ground_truth: usize,
}

/// The lesion signal `T`, from the image before the blend.
fn lesion_signal(
    image: &Array3<f32>,
    weights: &[Weight],
    noise_terms: &[f64],
    spec: &LesionSpec,
    local: &LocalSignal,
    config: &SynthConfig,
) -> LesionSignal {
    let (cord_signal, csf_signal) = (local.cord_signal, local.csf_signal);
    let lesion_sigma = |target: f64| -> f64 { local.lesion_sigma(&config.noise, target) };
    // The lesion signal T: the mean over the ground truth, noise included, is r × the cord
    // signal. The noise σ grows with T, so T is found by a few fixed-point steps (each moves
    // T by less than half the previous step: ∂σ_T/∂T · Σ noise / Σ α is small).
    let (mut sum_alpha, mut sum_rest, mut sum_noise, mut ground_truth) = (0.0, 0.0, 0.0, 0usize);
    for (&(index, weight, inside), &noise) in weights.iter().zip(noise_terms) {
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
    LesionSignal { target_signal, capped_by_csf, lesion_noise_sigma, ground_truth }
}

/// Blend and noise: writes the lesion into `image`, its ground truth into `lesion_mask` and its
/// weight into `alpha_map` (largest over the lesions).
fn blend(
    image: &mut Array3<f32>,
    lesion_mask: &mut Array3<bool>,
    alpha_map: &mut Array3<f32>,
    weights: &[Weight],
    noise_terms: &[f64],
    signal: &LesionSignal,
) {
    let (target_signal, lesion_noise_sigma) = (signal.target_signal, signal.lesion_noise_sigma);
    for (&(index, weight, inside), &noise) in weights.iter().zip(noise_terms) {
        let value = (1.0 - weight) * image[index] as f64 + weight * target_signal + lesion_noise_sigma * noise;
        image[index] = value as f32;
        if inside {
            lesion_mask[index] = true;
        }
        if weight as f32 > alpha_map[index] {
            alpha_map[index] = weight as f32;
        }
    }
}
