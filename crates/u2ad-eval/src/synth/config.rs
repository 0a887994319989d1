//! The synthesis parameters: value ranges to draw from ([`ValueRange`]), disc levels by name, and
//! how lesions are drawn and written ([`SynthConfig`]) with its checks.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::noise::NoiseModel;
use super::MAX_WIDTH_FRACTION;
use u2ad_core::levels::DiscLevel;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
