//! Robust statistics used by every step of detection: the candidate threshold (section 1 of
//! [`crate::scoring`]), the cohort calibration of the calls (section 4), the 3-D level scores,
//! and, in u2ad-eval, the intensity baselines and the metrics. numpy's percentile and median, the
//! MAD and its zero-MAD fallback, and Acklam's Φ⁻¹. One definition of each; the few helpers
//! elsewhere that look alike compute something else and say what (`anatomy`'s f32 median of the
//! cord signal, `sample`'s f32 intensity-window percentile, and u2ad-eval's synth: numpy's
//! `median`, (a + b) / 2, and the exact 1 / Φ⁻¹(3/4) = 1.482602… for its noise estimate, whose
//! int16 images would move by one unit at 117 of 38.6 M voxels with [`MAD_TO_SD`]'s rounded 1.4826).
//!
//! A leaf: it imports nothing from the rest of the crate (the false-positive rate's z, which
//! returns a scoring error, is [`crate::scoring::z_for_false_positive_rate`]). Re-exported at
//! `u2ad_core::scoring::*` as before.

/// 1 / Φ⁻¹(3/4): scales a MAD to a normal-consistent standard deviation.
pub const MAD_TO_SD: f64 = 1.4826;
/// sqrt(π / 2): scales a mean absolute deviation to a normal-consistent standard deviation.
pub const MEAN_ABSOLUTE_DEVIATION_TO_SD: f64 = 1.2533;

/// The `percent`-th percentile of finite `values` by numpy's default method (linear interpolation
/// between order statistics at index (n - 1) x percent / 100, with numpy's two-sided lerp).
/// `None` for no values or a percent outside [0, 100].
pub fn percentile(values: &[f64], percent: f64) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    percentile_of_sorted(&sorted, percent)
}

/// As [`percentile`], for values already sorted ascending.
pub fn percentile_of_sorted(sorted: &[f64], percent: f64) -> Option<f64> {
    if sorted.is_empty() || !(0.0..=100.0).contains(&percent) {
        return None;
    }
    let n = sorted.len();
    let virtual_index = (n - 1) as f64 * (percent / 100.0);
    let below = virtual_index.floor();
    let gamma = virtual_index - below;
    let below = below as usize;
    let above = (below + 1).min(n - 1);
    let (a, b) = (sorted[below], sorted[above]);
    let difference = b - a;
    Some(if gamma >= 0.5 { b - difference * (1.0 - gamma) } else { a + difference * gamma })
}

/// Median as numpy's `percentile(values, 50)`: for an even count, the upper middle value minus
/// half the gap to the lower one, which can differ from numpy's `median` ((a + b) / 2) in the last
/// bit (about 1 % of random f64 pairs; never for values that were f32).
pub fn median(values: &[f64]) -> Option<f64> {
    percentile(values, 50.0)
}

/// Median absolute deviation from the median (unscaled).
pub fn median_absolute_deviation(values: &[f64]) -> Option<f64> {
    let centre = median(values)?;
    let deviations: Vec<f64> = values.iter().map(|v| (v - centre).abs()).collect();
    median(&deviations)
}

/// Robust centre and spread: the median, and 1.4826 x MAD, or, when the MAD is 0, 1.2533 x the
/// mean absolute deviation from the median. `None` for no values.
pub fn robust_centre_spread(values: &[f64]) -> Option<(f64, f64)> {
    let centre = median(values)?;
    let mad = median_absolute_deviation(values)?;
    let spread = if mad > 0.0 {
        MAD_TO_SD * mad
    } else {
        MEAN_ABSOLUTE_DEVIATION_TO_SD * values.iter().map(|v| (v - centre).abs()).sum::<f64>() / values.len() as f64
    };
    Some((centre, spread))
}

/// Below this z the reference is not clipped ([`robust_centre_spread_below`]): a loose target rate
/// would otherwise set aside the body of the reference, not its tail.
pub const MIN_CLIP_Z: f64 = 2.0;

/// [`robust_centre_spread`] of the values it does not flag: the values above centre + z x spread
/// (z at least [`MIN_CLIP_Z`]) are set aside and the centre and spread computed once more on the
/// rest (one reweighting step, as Rousseeuw's reweighted estimators take). A cohort's reference
/// scores hold other patients' lesions, all on the high side; they move the median up and widen
/// the MAD, and so raise every threshold. One step, not a loop until nothing is above: repeated,
/// the clip runs down a reference made of two hosts with different offsets (measured: segment
/// AUROC 0.77 -> 0.56 with one host's map gone quiet). A clip that would leave no spread at all
/// (the rest all equal, as a map that is 0 on most levels leaves them) is not made. `None` for no
/// values.
pub fn robust_centre_spread_below(values: &[f64], z: f64) -> Option<(f64, f64)> {
    let (centre, spread) = robust_centre_spread(values)?;
    let limit = centre + z.max(MIN_CLIP_Z) * spread;
    let kept: Vec<f64> = values.iter().copied().filter(|&v| v <= limit).collect();
    match robust_centre_spread(&kept) {
        Some((_, 0.0)) | None => Some((centre, spread)),
        clipped => clipped,
    }
}

/// Robust upper limit median + z x spread ([`robust_centre_spread`]). `None` for no values.
pub fn robust_upper_limit(values: &[f64], z: f64) -> Option<f64> {
    robust_centre_spread(values).map(|(centre, spread)| centre + z * spread)
}

/// 1 - Φ(z), the standard normal upper tail, as erfc(z / √2) / 2 (libm's erfc, accurate in the
/// far tail where 1 - Φ(z) would round to 0).
pub fn normal_upper_tail(z: f64) -> f64 {
    0.5 * libm::erfc(z / std::f64::consts::SQRT_2)
}

/// Φ⁻¹(p), the standard normal quantile, by Acklam's rational approximation (relative error
/// below 1.15e-9 over (0, 1)). `None` outside the open interval (0, 1).
pub fn inverse_normal_cdf(p: f64) -> Option<f64> {
    if !(p > 0.0 && p < 1.0) {
        return None;
    }
    const A: [f64; 6] = [
        -3.969683028665376e+01,
        2.209460984245205e+02,
        -2.759285104469687e+02,
        1.38357751867269e+02,
        -3.066479806614716e+01,
        2.506628277459239e+00,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e+01,
        1.615858368580409e+02,
        -1.556989798598866e+02,
        6.680131188771972e+01,
        -1.328068155288572e+01,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-03,
        -3.223964580411365e-01,
        -2.400758277161838e+00,
        -2.549732539343734e+00,
        4.374664141464968e+00,
        2.938163982698783e+00,
    ];
    const D: [f64; 4] = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00];
    const P_LOW: f64 = 0.02425;
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    Some(if p < P_LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p <= 1.0 - P_LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64, tolerance: f64) {
        assert!((actual - expected).abs() <= tolerance, "{actual} != {expected} (tolerance {tolerance})");
    }

    #[test]
    fn percentile_matches_numpy_linear() {
        let values = [0.3, 0.1, 0.7, 0.2, 0.9, 0.5, 0.4];
        close(percentile(&values, 90.0).unwrap(), 0.78, 1e-12);
        close(percentile(&values, 50.0).unwrap(), 0.4, 1e-12);
        close(percentile(&values, 25.0).unwrap(), 0.25, 1e-12);
        close(percentile(&values, 0.0).unwrap(), 0.1, 0.0);
        close(percentile(&values, 100.0).unwrap(), 0.9, 0.0);
        close(percentile(&values, 33.3).unwrap(), 0.29979999999999996, 1e-15);
        close(median(&[1.0, 2.0, 3.0, 4.0]).unwrap(), 2.5, 0.0);
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&values, 101.0), None);
    }

    #[test]
    fn normal_upper_tail_matches_scipy() {
        // scipy.stats.norm.sf
        close(normal_upper_tail(0.0), 0.5, 1e-16);
        close(normal_upper_tail(1.6448536269514722), 0.05, 1e-15);
        close(normal_upper_tail(-1.0), 0.8413447460685429, 1e-15);
        let far = normal_upper_tail(10.0);
        assert!((far / 7.61985302416047e-24 - 1.0).abs() < 1e-12, "{far}");
    }

    #[test]
    fn inverse_normal_cdf_matches_scipy() {
        let cases = [
            (0.5, 0.0),
            (0.95, 1.6448536269514722),
            (0.975, 1.959963984540054),
            (0.999, 3.090232306167813),
            (1e-5, -4.264890793922825),
            (0.02, -2.053748910631823), // lower tail region (p < 0.02425)
            (0.03, -1.880793608151251), // central region
            (0.99, 2.3263478740408408), // upper tail region
        ];
        for (p, expected) in cases {
            let z = inverse_normal_cdf(p).unwrap();
            close(z, expected, 1.2e-9 * expected.abs().max(1.0));
        }
        assert_eq!(inverse_normal_cdf(0.0), None);
        assert_eq!(inverse_normal_cdf(1.0), None);
        assert_eq!(inverse_normal_cdf(f64::NAN), None);
    }

    #[test]
    fn robust_limit_and_its_zero_mad_fallback() {
        let z = 1.6448536269514722;
        close(robust_upper_limit(&[0.012, 0.011, 0.050, 0.013, 0.009], z).unwrap(), 0.014438659987318254, 1e-12);
        // MAD 0: 1.2533 x mean |x - median| = 1.2533 x 0.006.
        close(robust_upper_limit(&[0.0, 0.0, 0.0, 0.030, 0.0], z).unwrap(), 0.012368970303949681, 1e-12);
        close(robust_upper_limit(&[0.0, 0.0, 0.0], z).unwrap(), 0.0, 0.0);
        close(median_absolute_deviation(&[1.0, 2.0, 4.0, 8.0]).unwrap(), 1.5, 0.0);
    }

    #[test]
    fn the_reference_without_the_values_it_would_flag() {
        // z 1.64 is raised to 2: 0.050 is above 0.012 + 2 x 1.4826 x 0.001 and set aside; the other
        // four give median 0.0115, MAD 0.001.
        let (centre, spread) = robust_centre_spread_below(&[0.012, 0.011, 0.050, 0.013, 0.009], 1.6448536269514722).unwrap();
        close(centre, 0.0115, 1e-15);
        close(spread, MAD_TO_SD * 0.001, 1e-15);
        // A clean reference is left as it is.
        let clean = [0.012, 0.011, 0.013, 0.009, 0.010];
        assert_eq!(robust_centre_spread_below(&clean, 3.0), robust_centre_spread(&clean));
        // Two lesions among eight: median 0.0135, MAD 0.002, both above 0.0209; the six left
        // give median 0.0125, MAD 0.0015.
        let (centre, spread) =
            robust_centre_spread_below(&[0.010, 0.011, 0.012, 0.013, 0.014, 0.015, 0.022, 0.040], 2.5).unwrap();
        close(centre, 0.0125, 1e-15);
        close(spread, MAD_TO_SD * 0.0015, 1e-15);
        // One step only: 0.040 is above 0.014 + 2.5 x 1.4826 x 0.003 = 0.0251 and set aside; the
        // rest give median 0.0135, MAD 0.002, and 0.022, above their own limit 0.0209, stays.
        let (centre, spread) = robust_centre_spread_below(
            &[0.010, 0.011, 0.012, 0.013, 0.014, 0.015, 0.019, 0.022, 0.040],
            2.5,
        )
        .unwrap();
        close(centre, 0.0135, 1e-15);
        close(spread, MAD_TO_SD * 0.002, 1e-15);
        // All zeros but one: clipping the one would leave no spread, so it stays.
        let sparse = [0.0, 0.0, 0.0, 0.030, 0.0];
        assert_eq!(robust_centre_spread_below(&sparse, 2.5), robust_centre_spread(&sparse));
        assert_eq!(robust_centre_spread_below(&[], 2.5), None);
    }
}
