//! Synthetic T2 hyperintensities on real healthy cords (sub-errsm11, sub-errsm30): where the
//! lesion lies, its size, contrast and texture, the noise estimate, reproducibility, the
//! lesion-free copies, and the clinical slices the contrast is checked against.

use std::sync::OnceLock;

use ndarray::{Array3, ArrayView3, Zip};
use u2ad_core::levels::DiscLevel;
use u2ad_data::sample_file;
use u2ad_core::npy::ClinicalSlice;
use u2ad_eval::synth::*;
use u2ad_io::cohort::{discover_bids, DiscoveryOptions};

fn load(subject: &str) -> SourceScan {
    let options = DiscoveryOptions { include: vec![subject.to_string()], ..Default::default() };
    let files = discover_bids(&sample_file("spine-t2"), &options).unwrap();
    SourceScan::load(&files[0], None, &NoiseModel::default()).unwrap()
}

fn errsm11() -> &'static SourceScan {
    static SOURCE: OnceLock<SourceScan> = OnceLock::new();
    SOURCE.get_or_init(|| load("sub-errsm11"))
}

fn errsm30() -> &'static SourceScan {
    static SOURCE: OnceLock<SourceScan> = OnceLock::new();
    SOURCE.get_or_init(|| load("sub-errsm30"))
}

fn fixed_lesion(level: DiscLevel, length_mm: f64, width_fraction: f64, contrast: f64) -> SynthConfig {
    SynthConfig {
        length_mm: ValueRange::fixed(length_mm),
        width_fraction: ValueRange::fixed(width_fraction),
        contrast_ratio: ValueRange::fixed(contrast),
        levels: vec![level],
        ..Default::default()
    }
}

fn count(mask: &Array3<bool>) -> usize {
    mask.iter().filter(|&&v| v).count()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        0.5 * (values[n / 2 - 1] + values[n / 2])
    }
}

/// Canonical k range of the lesion mask.
fn k_extent(mask: &Array3<bool>) -> (usize, usize) {
    let ks: Vec<usize> = mask.indexed_iter().filter(|(_, &v)| v).map(|((_, _, k), _)| k).collect();
    (*ks.iter().min().unwrap(), *ks.iter().max().unwrap())
}

/// The cord (eroded by one voxel) within `margin` slices of the lesion, away from it: the
/// surrounding cord an observer compares the lesion with.
fn surrounding_cord(source: &SourceScan, alpha: &Array3<f32>, mask: &Array3<bool>, margin: usize) -> Array3<bool> {
    let (k0, k1) = k_extent(mask);
    let mut region = source.cord_core.clone();
    for ((i, j, k), v) in region.indexed_iter_mut() {
        *v = *v && k + margin >= k0 && k <= k1 + margin && alpha[[i, j, k]] < 0.01;
    }
    region
}

fn mean_over(image: ArrayView3<'_, f32>, region: &Array3<bool>) -> f64 {
    let (sum, n) = Zip::from(&image)
        .and(region)
        .fold((0.0, 0usize), |(s, n), &v, &r| if r { (s + v as f64, n + 1) } else { (s, n) });
    sum / n as f64
}

fn values_over(image: ArrayView3<'_, f32>, region: &Array3<bool>) -> Vec<f64> {
    Zip::from(&image).and(region).fold(Vec::new(), |mut acc, &v, &r| {
        if r {
            acc.push(v as f64);
        }
        acc
    })
}

#[test]
fn noise_is_measured_in_the_cord_because_the_background_is_suppressed() {
    let source = errsm11();
    let noise = source.noise;
    // The air of these scans is nearly black: a Rayleigh estimate there would be far too small.
    let image = &source.image;
    let (ni, nj, nk) = image.dim();
    let mut squares = Vec::new();
    for i in 0..ni {
        for (j0, k0) in [(0, 0), (nj - 20, 0), (0, nk - 20), (nj - 20, nk - 20)] {
            for j in j0..j0 + 20 {
                for k in k0..k0 + 20 {
                    squares.push((image[[i, j, k]] as f64).powi(2));
                }
            }
        }
    }
    let rayleigh_sigma = (squares.iter().sum::<f64>() / squares.len() as f64 / 2.0).sqrt();
    assert!((rayleigh_sigma - 0.48).abs() < 0.01, "background Rayleigh σ {rayleigh_sigma}");
    assert!(rayleigh_sigma < noise.sigma / 50.0, "background σ {rayleigh_sigma} vs cord σ {}", noise.sigma);
    // In the cord (eroded by one voxel): noise along the cord, texture in the sagittal plane.
    assert_eq!(noise.voxels, 8151);
    assert_eq!(noise.signal, 251.0);
    assert!((noise.sigma - 25.97).abs() < 0.05, "noise σ {}", noise.sigma);
    assert!((noise.texture_sigma - 47.93).abs() < 0.05, "texture σ {}", noise.texture_sigma);
}

#[test]
fn a_lesion_at_c4_c5_lies_in_the_cord_with_the_requested_length_width_and_contrast() {
    let source = errsm11();
    let config = fixed_lesion(DiscLevel::C4C5, 10.0, 0.6, 1.6);
    let mut rng = subject_rng(11, 0);
    let specs = draw_lesions(source, &config, &mut rng).unwrap();
    assert_eq!(specs.len(), 1);
    assert_eq!(specs[0].level, DiscLevel::C4C5);
    let synthetic = synthesise(source, &specs, &config, &mut rng);
    let lesion = &synthetic.lesions[0];
    let mask = &synthetic.lesion_mask;
    let voxels = count(mask);
    assert_eq!(voxels, lesion.voxels);
    assert_eq!(voxels, 70);
    // 0.6 of the cord's smallest anterior-posterior thickness along the lesion (7.25 mm).
    assert_eq!(lesion.cord_width_mm, 7.25);
    assert!((lesion.axes_mm[1] - 0.6 * 7.25).abs() < 1e-9);
    // Inside the cord, none of the ellipsoid cut off by it.
    let outside = Zip::from(mask).and(&source.cord).fold(0, |n, &m, &c| n + (m && !c) as usize);
    assert_eq!(outside, 0);
    assert_eq!(lesion.voxels_outside_cord, 0);
    // Ground truth = α > 0.5.
    let from_alpha = synthetic.alpha.mapv(|a| a as f64 > GROUND_TRUTH_ALPHA);
    assert_eq!(&from_alpha, mask);
    // At C4/C5.
    let (k0, k1) = k_extent(mask);
    assert_eq!(source.levels.segment_at_k(0.5 * (k0 + k1) as f64), Some(DiscLevel::C4C5));
    // Length along the cord: the arc spanned by the voxels (plus one voxel), within ±1 voxel.
    let spacing = source.spacing_mm;
    let arcs: Vec<f64> = mask
        .indexed_iter()
        .filter(|(_, &v)| v)
        .map(|((i, j, k), _)| {
            source.frame.project([i as f64 * spacing[0], j as f64 * spacing[1], k as f64 * spacing[2]]).arc_mm
        })
        .collect();
    let extent =
        arcs.iter().cloned().fold(f64::MIN, f64::max) - arcs.iter().cloned().fold(f64::MAX, f64::min) + spacing[2];
    let independent =
        source.centreline.arc_length_at_k(k1 as f64 + 0.5) - source.centreline.arc_length_at_k(k0 as f64 - 0.5);
    assert!((extent - 10.0).abs() <= spacing[2], "extent along the cord {extent} mm");
    // The same from the slices it spans, with the centreline's arc length alone.
    assert!((independent - 10.0).abs() <= spacing[2], "extent over its slices {independent} mm");
    // Width: in every sagittal column the lesion covers at most 70 % of the cord.
    let mut worst = 0.0f64;
    for &i in &lesion.sagittal_slices {
        for k in k0..=k1 {
            let lesion_rows = (0..mask.dim().1).filter(|&j| mask[[i, j, k]]).count();
            let cord_rows = (0..mask.dim().1).filter(|&j| source.cord[[i, j, k]]).count();
            if lesion_rows > 0 {
                worst = worst.max(lesion_rows as f64 / cord_rows as f64);
            }
        }
    }
    assert!(worst <= MAX_WIDTH_FRACTION, "widest column {worst}");
    assert_eq!(worst, 0.5);
    // 1 to 3 sagittal slices.
    let slices: std::collections::BTreeSet<usize> =
        mask.indexed_iter().filter(|(_, &v)| v).map(|((i, _, _), _)| i).collect();
    assert_eq!(slices.into_iter().collect::<Vec<_>>(), lesion.sagittal_slices);
    assert_eq!(lesion.sagittal_slices, [27, 28, 29]);
    // Contrast: mean over the lesion / median of the surrounding cord.
    let around = surrounding_cord(source, &synthetic.alpha, mask, 10);
    let cord_median = median(&mut values_over(synthetic.image.view(), &around));
    let ratio = mean_over(synthetic.image.view(), mask) / cord_median;
    assert!((ratio / 1.6 - 1.0).abs() < 0.1, "contrast {ratio}");
    // The manifest's ratio (against the source's local cord median) is the requested one; the
    // lesion stays below the CSF beside it.
    assert!((lesion.contrast_ratio - 1.6).abs() < 1e-3, "{}", lesion.contrast_ratio);
    assert!(!lesion.capped_by_csf && lesion.target_signal < lesion.csf_signal.unwrap());
}

#[test]
fn the_lesion_texture_is_not_smoother_than_the_cord_around_it() {
    let source = errsm11();
    let config = SynthConfig {
        length_mm: ValueRange::fixed(14.0),
        width_fraction: ValueRange::fixed(0.7),
        contrast_ratio: ValueRange::fixed(1.8),
        levels: vec![DiscLevel::C3C4, DiscLevel::C5C6, DiscLevel::C7T1],
        lesions_per_subject: 3,
        ..Default::default()
    };
    let mut rng = subject_rng(3, 0);
    let specs = draw_lesions(source, &config, &mut rng).unwrap();
    let synthetic = synthesise(source, &specs, &config, &mut rng);
    let core = synthetic.alpha.mapv(|a| a >= 0.9);
    let around = surrounding_cord(source, &synthetic.alpha, &synthetic.lesion_mask, 10);
    // Residuals whose neighbours all lie in the lesion core.
    let inner = core_with_sagittal_neighbours(&core);
    let lesion_texture = residual_spread(synthetic.image.view(), inner.view(), Residual::Sagittal).unwrap();
    let cord_texture = residual_spread(synthetic.image.view(), around.view(), Residual::Sagittal).unwrap();
    let source_texture = residual_spread(source.image.view(), around.view(), Residual::Sagittal).unwrap();
    assert!(count(&inner) >= 50, "{} core voxels", count(&inner));
    // Not smoother than the cord beside it, and not much rougher (the noise grows with the
    // signal, about √(T / m)).
    let ratio = lesion_texture / cord_texture;
    assert!((0.9..=1.5).contains(&ratio), "lesion texture {lesion_texture} vs cord {cord_texture}");
    // The fresh noise leaves the cord's own texture nearly as it was.
    assert!((cord_texture / source_texture - 1.0).abs() < 0.1, "{cord_texture} vs source {source_texture}");
}

fn core_with_sagittal_neighbours(core: &Array3<bool>) -> Array3<bool> {
    let (_, nj, nk) = core.dim();
    let mut inner = Array3::from_elem(core.dim(), false);
    for ((i, j, k), &inside) in core.indexed_iter() {
        if inside && j > 0 && k > 0 && j + 1 < nj && k + 1 < nk {
            inner[[i, j, k]] = core[[i, j - 1, k]] && core[[i, j + 1, k]] && core[[i, j, k - 1]] && core[[i, j, k + 1]];
        }
    }
    inner
}

#[test]
fn the_same_seed_gives_the_same_subject_and_another_stream_another() {
    let source = errsm30();
    let config = SynthConfig::default();
    let make = |stream: u64| {
        let mut rng = subject_rng(42, stream);
        let specs = draw_lesions(source, &config, &mut rng).unwrap();
        (specs.clone(), synthesise(source, &specs, &config, &mut rng))
    };
    let (specs_a, a) = make(3);
    let (specs_b, b) = make(3);
    assert_eq!(specs_a, specs_b);
    let bits = |image: &Array3<f32>| image.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a.image), bits(&b.image));
    assert_eq!(a.lesion_mask, b.lesion_mask);
    let (specs_c, c) = make(4);
    assert_ne!(specs_a, specs_c);
    let changed = Zip::from(&a.image).and(&c.image).fold(0usize, |n, x, y| n + (x != y) as usize);
    assert!(changed > a.image.len() / 2, "{changed} of {} voxels differ", a.image.len());
}

#[test]
fn a_lesion_free_copy_has_fresh_noise_and_the_same_mean() {
    let source = errsm11();
    let config = SynthConfig::default();
    let copy = synthesise(source, &[], &config, &mut subject_rng(9, 0));
    assert_eq!(count(&copy.lesion_mask), 0);
    assert!(copy.lesions.is_empty());
    assert!((copy.fresh_noise_sigma - 0.5 * source.noise.sigma).abs() < 1e-9);
    // In the cord the difference is the fresh noise: σ as modelled, mean zero.
    let difference: Vec<f64> =
        Zip::from(&copy.image).and(&source.image).and(&source.cord_core).fold(Vec::new(), |mut acc, &a, &b, &c| {
            if c {
                acc.push(a as f64 - b as f64);
            }
            acc
        });
    let n = difference.len() as f64;
    let mean = difference.iter().sum::<f64>() / n;
    let sd = (difference.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / n).sqrt();
    let changed = difference.iter().filter(|&&d| d != 0.0).count() as f64 / n;
    assert!(changed > 0.99, "fraction of cord voxels changed {changed}");
    assert!((sd / copy.fresh_noise_sigma - 1.0).abs() < 0.1, "sd {sd} vs fresh σ {}", copy.fresh_noise_sigma);
    // Mean within noise: 4 standard errors (the noise is correlated over about 2.3 voxels per axis).
    let standard_error = sd / (n / 12.0).sqrt();
    assert!(mean.abs() < 4.0 * standard_error, "mean difference {mean} (standard error {standard_error})");
    // Over the whole image the mean hardly moves, and the suppressed background stays dark.
    let before = source.image.iter().map(|&v| v as f64).sum::<f64>() / source.image.len() as f64;
    let after = copy.image.iter().map(|&v| v as f64).sum::<f64>() / copy.image.len() as f64;
    assert!((after - before).abs() < 0.01 * before, "{before} -> {after}");
    assert_eq!(copy.image[[0, 0, 0]], source.image[[0, 0, 0]]);
}

#[test]
fn random_levels_stay_on_the_cord_of_a_cropped_scan_and_others_are_refused() {
    let source = errsm30();
    let windows: Vec<&str> = source.level_windows().iter().map(|w| w.level.name()).collect();
    assert_eq!(windows, ["C2/C3", "C3/C4", "C4/C5", "C5/C6"]);
    let config = SynthConfig { length_mm: ValueRange::new(3.0, 15.0), ..Default::default() };
    let mut seen = std::collections::BTreeSet::new();
    for stream in 0..12 {
        let mut rng = subject_rng(1, stream);
        let specs = draw_lesions(source, &config, &mut rng).unwrap();
        let synthetic = synthesise(source, &specs, &config, &mut rng);
        let lesion = &synthetic.lesions[0];
        seen.insert(lesion.spec.level.name());
        let half = 0.5 * lesion.spec.length_mm;
        assert!(lesion.spec.centre_arc_mm - half >= CORD_END_MARGIN_MM - 1e-9);
        assert!(lesion.spec.centre_arc_mm + half <= source.frame.cord_length_mm() - CORD_END_MARGIN_MM + 1e-9);
        let outside = Zip::from(&synthetic.lesion_mask).and(&source.cord).fold(0, |n, &m, &c| n + (m && !c) as usize);
        assert_eq!(outside, 0);
        assert_eq!(lesion.voxels_outside_cord, 0);
        assert!(lesion.voxels > 0);
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["C2/C3", "C3/C4", "C4/C5"]);
    let config = SynthConfig { levels: vec![DiscLevel::C6C7], ..Default::default() };
    let error = draw_lesions(source, &config, &mut subject_rng(1, 0)).unwrap_err().to_string();
    assert!(error.contains("sub-errsm30_T2w.nii.gz") && error.contains("C6/C7"), "{error}");
}

#[test]
fn the_clinical_slices_have_no_hyperintensity_and_their_csf_is_1_4_to_1_9_times_the_cord() {
    // The contrast range (1.3 to 3.0 times the cord, capped at the CSF) is checked against the
    // two clinical slices: neither has label 6, so the lesion-to-cord and lesion-to-CSF ratios
    // (about 1.6 and 0.8) cannot be measured there; the CSF-to-cord ratio can.
    let mut ratios = Vec::new();
    for name in ["slice-1.npy", "slice-3.npy"] {
        let slice = ClinicalSlice::read(&sample_file(format!("clinical-slices/{name}"))).unwrap();
        assert!(!slice.labels.iter().any(|&l| l == 6), "{name} has label 6");
        let values = |label: u8| -> Vec<f64> {
            Zip::from(&slice.image).and(&slice.labels).fold(Vec::new(), |mut acc, &v, &l| {
                if l == label {
                    acc.push(v as f64);
                }
                acc
            })
        };
        let ratio = median(&mut values(4)) / median(&mut values(3));
        ratios.push(ratio);
    }
    assert!((ratios[0] - 1.87).abs() < 0.01, "{ratios:?}");
    assert!((ratios[1] - 1.41).abs() < 0.01, "{ratios:?}");
}
