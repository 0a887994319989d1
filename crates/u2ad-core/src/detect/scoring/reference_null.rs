//! The model of a threshold's reference scores (module docs, section 4): a share of scores that are
//! exactly 0 and a robust normal for the rest. A level without a single voxel above its expected
//! signal scores exactly 0, and with a tight cord mask half the cohort's levels can: a point mass
//! that a median and MAD cannot describe (it shrinks the MAD, and a modest score became z = 6).
//! So the zeros are counted, the centre and spread are those of the scores above 0, and a score's
//! z is the normal quantile of its tail probability under both parts. With no zero in the
//! reference this is the plain robust z, to the bit.

use crate::stats::{inverse_normal_cdf, normal_upper_tail, robust_centre_spread, robust_centre_spread_below};

/// |z| is reported within this bound.
const Z_LIMIT: f64 = 1e6;

/// The fitted reference of one threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct ReferenceNull {
    /// Share of the reference scores that are exactly 0.
    zero_share: f64,
    /// Robust centre and spread ([`robust_centre_spread`]) of the reference scores above 0.
    centre: f64,
    spread: f64,
}

/// What a reference supports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum NullFit {
    Fitted(ReferenceNull),
    /// Fewer reference scores than the minimum (or, with zeros among them, fewer above 0).
    TooFew,
    /// Every reference score above 0 is the same (or none is above 0): no scale.
    WithoutSpread,
}

impl ReferenceNull {
    /// Fits `reference` for one test at false-positive rate `test_rate` (its z cut
    /// `z_cut` = Φ⁻¹(1 - `test_rate`)). `clip_high`: the centre and spread come from the scores the
    /// threshold would call negative ([`robust_centre_spread_below`]); otherwise from every score.
    pub(super) fn fit(reference: &[f64], test_rate: f64, z_cut: f64, clip_high: bool, min_values: usize) -> NullFit {
        let min_values = min_values.max(1);
        if reference.len() < min_values {
            return NullFit::TooFew;
        }
        let above: Vec<f64> = reference.iter().copied().filter(|&v| v != 0.0).collect();
        if above.is_empty() {
            return NullFit::WithoutSpread;
        }
        let zero_share = 1.0 - above.len() as f64 / reference.len() as f64;
        if zero_share > 0.0 && above.len() < min_values {
            return NullFit::TooFew;
        }
        let z_above = z_above_zero(zero_share, test_rate, z_cut);
        let fitted = if clip_high { robust_centre_spread_below(&above, z_above) } else { robust_centre_spread(&above) };
        match fitted {
            Some((centre, spread)) if spread > 0.0 => NullFit::Fitted(ReferenceNull { zero_share, centre, spread }),
            _ => NullFit::WithoutSpread,
        }
    }

    /// The score above which a test at rate `test_rate` (z cut `z_cut`) is positive. Never below 0:
    /// a score of 0 is never positive when the reference holds zeros.
    pub(super) fn threshold(&self, test_rate: f64, z_cut: f64) -> f64 {
        let t = self.centre + z_above_zero(self.zero_share, test_rate, z_cut) * self.spread;
        if self.zero_share > 0.0 {
            t.max(0.0)
        } else {
            t
        }
    }

    /// The score's z: Φ⁻¹(1 - P(reference score ≥ score)), within ±1e6. A score above 0 has tail
    /// probability (1 - zero share) x (1 - Φ((score - centre) / spread)); a score of 0 the mid-point
    /// of the point mass, 1 - zero share / 2, and so does a score below 0 (a region's score less
    /// its offset, `calls.rs`: every reference score lies above it), so that z never falls as the
    /// score rises.
    pub(super) fn z(&self, score: f64) -> f64 {
        let z_above = (score - self.centre) / self.spread;
        let z = if self.zero_share == 0.0 {
            z_above
        } else if score <= 0.0 {
            -inverse_normal_cdf(1.0 - self.zero_share / 2.0).expect("0 < zero share / 2 < 1")
        } else {
            let tail = (1.0 - self.zero_share) * normal_upper_tail(z_above);
            // In the far tail (1 - Φ underflows to 0) the point mass no longer moves z.
            inverse_normal_cdf(tail).map_or(z_above, |q| -q)
        };
        z.clamp(-Z_LIMIT, Z_LIMIT)
    }
}

/// The z on the scores above 0 whose tail, times their share, is `test_rate`; `z_cut` itself when
/// there is no zero; -∞ when the share above 0 is no larger than the rate (any score above 0 is
/// then rarer than the rate).
fn z_above_zero(zero_share: f64, test_rate: f64, z_cut: f64) -> f64 {
    if zero_share == 0.0 {
        return z_cut;
    }
    let tail = test_rate / (1.0 - zero_share);
    if tail >= 1.0 {
        f64::NEG_INFINITY
    } else {
        -inverse_normal_cdf(tail).expect("0 < tail < 1")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::MAD_TO_SD;

    fn fitted(fit: NullFit) -> ReferenceNull {
        match fit {
            NullFit::Fitted(null) => null,
            other => panic!("not fitted: {other:?}"),
        }
    }

    const RATE: f64 = 0.05 / 8.0;
    fn z_cut() -> f64 {
        inverse_normal_cdf(1.0 - RATE).unwrap()
    }

    #[test]
    fn without_zeros_it_is_the_robust_z() {
        let reference = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1];
        let null = fitted(ReferenceNull::fit(&reference, RATE, z_cut(), false, 10));
        let (centre, spread) = (0.6, MAD_TO_SD * 0.3);
        assert_eq!(null.z(0.95), (0.95 - centre) / spread);
        assert_eq!(null.threshold(RATE, z_cut()), centre + z_cut() * spread);
    }

    #[test]
    fn zeros_are_a_point_mass_not_part_of_the_spread() {
        // Half the reference is 0: the MAD of all 20 would be 0.05 (median 0.05), the spread of the
        // ten scores above 0 is 1.4826 x 0.25 around 0.55.
        let mut reference = vec![0.0; 10];
        reference.extend((1..=10).map(|i| 0.1 * i as f64));
        let null = fitted(ReferenceNull::fit(&reference, RATE, z_cut(), false, 10));
        assert_eq!(null.zero_share, 0.5);
        assert!((null.centre - 0.55).abs() < 1e-12 && (null.spread - MAD_TO_SD * 0.25).abs() < 1e-12, "{null:?}");
        // The threshold: the tail of the scores above 0 at 2 x the rate (scipy norm.isf(0.0125)).
        let t = null.threshold(RATE, z_cut());
        assert!((t - (0.55 + 2.241402727604947 * MAD_TO_SD * 0.25)).abs() < 1e-8, "{t}");
        // ... where z reaches the cut, and z rises with the score.
        assert!((null.z(t) - z_cut()).abs() < 1e-6, "{} vs {}", null.z(t), z_cut());
        assert!(null.z(0.0) < null.z(0.01) && null.z(0.01) < null.z(0.55) && null.z(0.55) < null.z(2.0));
        // A score of 0: the middle of the point mass, Φ⁻¹(0.25).
        assert!((null.z(0.0) + 0.6744897501960817).abs() < 1e-8);
        // Far out, z stays finite and large.
        assert!(null.z(1e9) >= 1e6 - 1.0);
    }

    #[test]
    fn a_reference_of_zeros_or_too_few_scores_calibrates_nothing() {
        assert_eq!(ReferenceNull::fit(&[0.0; 12], RATE, z_cut(), true, 10), NullFit::WithoutSpread);
        assert_eq!(ReferenceNull::fit(&[0.3; 9], RATE, z_cut(), true, 10), NullFit::TooFew);
        let mut reference = vec![0.0; 12];
        reference.extend([0.2, 0.3, 0.4]);
        assert_eq!(ReferenceNull::fit(&reference, RATE, z_cut(), true, 10), NullFit::TooFew);
        assert_eq!(ReferenceNull::fit(&[0.4; 12], RATE, z_cut(), true, 10), NullFit::WithoutSpread);
    }

    #[test]
    fn when_scores_above_zero_are_rarer_than_the_rate_any_is_positive() {
        let mut reference = vec![0.0; 1990];
        reference.extend((1..=10).map(|i| 0.1 * i as f64));
        let null = fitted(ReferenceNull::fit(&reference, RATE, z_cut(), false, 10));
        assert_eq!(null.threshold(RATE, z_cut()), 0.0);
        assert!(null.z(0.05) > z_cut());
    }
}
