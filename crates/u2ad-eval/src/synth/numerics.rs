//! Small numerics of the lesion model: the median, the MAD spread of the noise estimate and the
//! complementary error function of the lesion's feathered edge.

use super::MAD_TO_SIGMA;

/// numpy's `median`, (a + b) / 2 for an even count (`u2ad_core::stats::median` is numpy's
/// percentile 50, which can differ in the last bit; kept so that synthetic cohorts stay the same
/// bytes).
pub(super) fn median_f64(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable_by(|a, b| a.total_cmp(b));
    let n = values.len();
    Some(if n % 2 == 1 { values[n / 2] } else { 0.5 * (values[n / 2 - 1] + values[n / 2]) })
}

/// [`MAD_TO_SIGMA`] (the exact 1 / Φ⁻¹(3/4), not `u2ad_core::stats::MAD_TO_SD`'s rounded 1.4826:
/// that would move 117 of 38.6 M int16 voxels of a synthetic cohort by one unit) · median absolute
/// deviation from the median.
pub(super) fn mad_sigma(values: &mut [f64]) -> Option<f64> {
    let centre = median_f64(values)?;
    let mut deviations: Vec<f64> = values.iter().map(|v| (v - centre).abs()).collect();
    median_f64(&mut deviations).map(|m| MAD_TO_SIGMA * m)
}

/// Complementary error function (W. J. Cody's rational approximations via the Numerical
/// Recipes `erfcc` form: fractional error below 1.2e-7 everywhere). Kept rather than libm's
/// erfc (which `u2ad_core::stats::normal_upper_tail` uses) so that synthetic cohorts stay the same bytes.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_matches_known_values() {
        assert!((erfc(0.0) - 1.0).abs() < 1e-7);
        assert!((erfc(1.0) - 0.157_299_207).abs() < 1e-7);
        assert!((erfc(-1.0) - 1.842_700_793).abs() < 1e-7);
        assert!((erfc(2.5) - 0.000_406_952).abs() < 1e-8);
    }
}
