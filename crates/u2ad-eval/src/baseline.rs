//! The intensity baseline: a T2 hyperintensity is cord signal that is bright for its disc level.
//!
//! For bright lesions this simple rule is known to rival deep anomaly detectors (Meissen et al.),
//! so every evaluation carries it beside U2AD. It produces the same 256 x 256 sample maps as
//! Monte-Carlo inference ([`SubjectMaps`]), so the candidate filter, the anomaly curve, the
//! segment and patient scores, the label-free calls and every output file are exactly those of
//! `u2ad detect`; only the anomaly map differs.
//!
//! # The anomaly map: a robust z-score against the cohort, leave-one-subject-out
//!
//! 1. Each subject's signal is put on a common scale by dividing it by the median of its own
//!    eroded-cord signal (the cord eroded by 3 x 3 pixels, over its samples whose eroded cord has
//!    at least [`IntensityBaselineConfig::min_eroded_cord_px`] pixels, the slices the anomaly
//!    curve uses; all samples when none has). Scanner gain and coil shading change from subject to
//!    subject; a hyperintensity is small, so it hardly moves that median.
//! 2. The reference of subject S at disc level L is the normalised eroded-cord signal, in the rows
//!    of level L, of every *other* subject (the same selected samples). Rows outside C2/C3 … C7/T1,
//!    and levels no other subject has, use every level of the other subjects. At most
//!    [`IntensityBaselineConfig::max_reference_values_per_subject`] values of one subject and level
//!    enter (an even stride through them), which bounds the cost on large cohorts.
//! 3. z = (s − median(R)) / spread(R), with spread = 1.4826 x MAD(R), or 1.2533 x the mean absolute
//!    deviation from the median when the MAD is 0 (as the cohort calibration of
//!    [`u2ad_core::scoring`]), floored at 1e-6.
//! 4. The anomaly map is max(z, 0) on the eroded cord, 0 elsewhere: only hyperintensity counts.
//!    The "reconstruction" is the signal the rule expects, the subject's cord median x median(R),
//!    on the eroded cord (the image elsewhere), and the epistemic map is 0 (the rule has no
//!    uncertainty, so no call is ever indeterminate for it).

use u2ad_core::dataset::{PreparedSample, SubjectMeta, SAMPLE_SIZE};
use u2ad_core::detect_outputs::{SampleResult, SubjectMaps};
use u2ad_core::level_scores::{LevelScoreConfig, LevelStatistic};
use u2ad_core::scoring::{erode_3x3, gaussian_smooth, median, PlaneShape, MAD_TO_SD, MEAN_ABSOLUTE_DEVIATION_TO_SD};

/// Level codes 0 (no level) and 1..=6 (C2/C3 … C7/T1).
const CODES: usize = 7;

/// Settings of the intensity baseline.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IntensityBaselineConfig {
    /// Samples whose eroded cord has fewer pixels do not enter the normalisation nor the
    /// reference (the anomaly curve's default slice selection).
    pub min_eroded_cord_px: usize,
    /// Most reference values taken from one subject at one level.
    pub max_reference_values_per_subject: usize,
}

impl Default for IntensityBaselineConfig {
    fn default() -> Self {
        IntensityBaselineConfig { min_eroded_cord_px: 100, max_reference_values_per_subject: 20_000 }
    }
}

/// One subject of the cohort: its description and its prepared samples.
#[derive(Debug, Clone, Copy)]
pub struct CohortSubject<'a> {
    pub meta: &'a SubjectMeta,
    pub samples: &'a [PreparedSample],
}

/// Why the baseline cannot run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BaselineError {
    #[error("the intensity baseline compares each subject with the others: it needs at least 2 subjects, got {0}")]
    TooFewSubjects(usize),
    #[error("{0}: no sample has cord pixels left after erosion")]
    NoCord(String),
}

/// Location and spread of a reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RobustReference {
    pub centre: f64,
    pub spread: f64,
}

impl RobustReference {
    /// Median and normal-consistent spread (module docs, step 3). `None` for no values.
    pub fn of(values: &[f64]) -> Option<RobustReference> {
        let centre = median(values)?;
        let deviations: Vec<f64> = values.iter().map(|v| (v - centre).abs()).collect();
        let mad = median(&deviations)?;
        let spread = if mad > 0.0 {
            MAD_TO_SD * mad
        } else {
            MEAN_ABSOLUTE_DEVIATION_TO_SD * deviations.iter().sum::<f64>() / deviations.len() as f64
        };
        Some(RobustReference { centre, spread: spread.max(1e-6) })
    }

    pub fn z(&self, value: f64) -> f64 {
        (value - self.centre) / self.spread
    }
}

/// A subject's normalised eroded-cord signal, by level code.
struct SubjectSignal {
    cord_median: f64,
    by_code: [Vec<f64>; CODES],
}

fn eroded(sample: &PreparedSample) -> Vec<u8> {
    erode_3x3(&sample.cord, PlaneShape::SAMPLE)
}

fn selected_samples(eroded_cords: &[Vec<u8>], min_px: usize) -> Vec<usize> {
    let counts: Vec<usize> = eroded_cords.iter().map(|e| e.iter().filter(|&&m| m != 0).count()).collect();
    let selected: Vec<usize> = (0..counts.len()).filter(|&i| counts[i] > 0 && counts[i] >= min_px).collect();
    if selected.is_empty() {
        (0..counts.len()).filter(|&i| counts[i] > 0).collect()
    } else {
        selected
    }
}

fn strided(values: &[f64], cap: usize) -> impl Iterator<Item = f64> + '_ {
    let step = values.len().div_ceil(cap.max(1)).max(1);
    values.iter().step_by(step).copied()
}

fn subject_signal(subject: &CohortSubject<'_>, eroded_cords: &[Vec<u8>], config: &IntensityBaselineConfig) -> Result<SubjectSignal, BaselineError> {
    let mut raw: [Vec<f64>; CODES] = Default::default();
    for &i in &selected_samples(eroded_cords, config.min_eroded_cord_px) {
        let sample = &subject.samples[i];
        for (index, (&value, &inside)) in sample.image.iter().zip(&eroded_cords[i]).enumerate() {
            if inside != 0 {
                let code = sample.row_segment[index / SAMPLE_SIZE] as usize;
                raw[code.min(CODES - 1)].push(f64::from(value));
            }
        }
    }
    let all: Vec<f64> = raw.iter().flatten().copied().collect();
    let cord_median = median(&all).filter(|m| *m > 0.0).ok_or_else(|| BaselineError::NoCord(subject.meta.subject.clone()))?;
    let by_code = raw.map(|values| values.into_iter().map(|v| v / cord_median).collect());
    Ok(SubjectSignal { cord_median, by_code })
}

/// The references of one subject: per level code, from the other subjects.
fn references(signals: &[SubjectSignal], subject: usize, cap: usize) -> [RobustReference; CODES] {
    let others = || signals.iter().enumerate().filter(move |(i, _)| *i != subject).map(|(_, s)| s);
    let pooled: Vec<f64> = others().flat_map(|s| s.by_code.iter().flat_map(|v| strided(v, cap))).collect();
    let pooled_reference = RobustReference::of(&pooled).unwrap_or(RobustReference { centre: 1.0, spread: 1.0 });
    std::array::from_fn(|code| {
        if code == 0 {
            return pooled_reference;
        }
        let values: Vec<f64> = others().flat_map(|s| strided(&s.by_code[code], cap)).collect();
        RobustReference::of(&values).unwrap_or(pooled_reference)
    })
}

/// The baseline's sample maps of every subject of the cohort (module docs), in cohort order.
pub fn intensity_baseline(cohort: &[CohortSubject<'_>], config: &IntensityBaselineConfig) -> Result<Vec<SubjectMaps>, BaselineError> {
    if cohort.len() < 2 {
        return Err(BaselineError::TooFewSubjects(cohort.len()));
    }
    let eroded_cords: Vec<Vec<Vec<u8>>> = cohort.iter().map(|s| s.samples.iter().map(eroded).collect()).collect();
    let signals: Vec<SubjectSignal> = cohort
        .iter()
        .zip(&eroded_cords)
        .map(|(s, e)| subject_signal(s, e, config))
        .collect::<Result<_, _>>()?;
    Ok(cohort
        .iter()
        .enumerate()
        .map(|(index, subject)| {
            let reference = references(&signals, index, config.max_reference_values_per_subject);
            let cord_median = signals[index].cord_median;
            let samples = subject
                .samples
                .iter()
                .zip(&eroded_cords[index])
                .map(|(sample, eroded_cord)| {
                    let mut anomaly = vec![0.0f32; sample.image.len()];
                    let mut expected = sample.image.clone();
                    for (i, &inside) in eroded_cord.iter().enumerate() {
                        if inside == 0 {
                            continue;
                        }
                        let code = (sample.row_segment[i / SAMPLE_SIZE] as usize).min(CODES - 1);
                        let r = reference[code];
                        anomaly[i] = r.z(f64::from(sample.image[i]) / cord_median).max(0.0) as f32;
                        expected[i] = (cord_median * r.centre) as f32;
                    }
                    intensity_result(sample, expected, &anomaly)
                })
                .collect();
            SubjectMaps { subject: subject.meta.clone(), samples }
        })
        .collect())
}

// ---------------------------------------------------------------------------------------------
// The level-percentile rule (the default intensity baseline)

/// Settings of [`intensity_percentile_baseline`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IntensityPercentileConfig {
    /// Gaussian smoothing of the image before the percentile, in mm (in-plane).
    pub smoothing_sigma_mm: f64,
    /// The subject's cord median: [`IntensityBaselineConfig`]'s (its sample selection).
    pub cord_median: IntensityBaselineConfig,
}

impl Default for IntensityPercentileConfig {
    fn default() -> Self {
        IntensityPercentileConfig { smoothing_sigma_mm: 0.7, cord_median: IntensityBaselineConfig::default() }
    }
}

impl IntensityPercentileConfig {
    /// How its levels are scored: the 99th percentile over the cord eroded by about two native
    /// voxels in 3-D (three 3 x 3 erosions of 0.78 mm pixels in-plane, 2 mm across slices).
    pub const LEVEL_SCORES: LevelScoreConfig = LevelScoreConfig {
        statistic: LevelStatistic::Percentile { percent: 99.0 },
        in_plane_steps: 3,
        lateral_mm: 2.0,
        relative_to_cord_signal: false,
        exclude_csf_partial_volume: false,
        partial_volume_depth: None,
    };
}

/// The intensity rule as a map: each sample's image smoothed by a Gaussian of
/// `smoothing_sigma_mm`, divided by the subject's median eroded-cord signal, on the eroded cord.
/// Scored with [`IntensityPercentileConfig::LEVEL_SCORES`] and calibrated like every detection
/// (robust z per level against the other participants), this is the recipe: per level, the 99th
/// percentile of the smoothed T2 signal in the 3-D-eroded cord over the subject's cord median,
/// robust z-scored against the other subjects. Needs no other subject to make the map.
pub fn intensity_percentile_baseline(
    subject: &CohortSubject<'_>,
    config: &IntensityPercentileConfig,
) -> Result<SubjectMaps, BaselineError> {
    let eroded_cords: Vec<Vec<u8>> = subject.samples.iter().map(eroded).collect();
    let cord_median = subject_signal(subject, &eroded_cords, &config.cord_median)?.cord_median;
    let samples = subject
        .samples
        .iter()
        .zip(&eroded_cords)
        .map(|(sample, eroded_cord)| {
            let sigma_px = f64::from((config.smoothing_sigma_mm / sample.meta.pixel_mm.max(f64::MIN_POSITIVE)) as f32);
            let smoothed = gaussian_smooth(&sample.image, PlaneShape::SAMPLE, sigma_px);
            let mut ratio = vec![0.0f32; sample.image.len()];
            let mut expected = sample.image.clone();
            for (i, (&inside, &value)) in eroded_cord.iter().zip(smoothed.iter()).enumerate() {
                if inside != 0 {
                    ratio[i] = (f64::from(value) / cord_median) as f32;
                    expected[i] = cord_median as f32;
                }
            }
            intensity_result(sample, expected, &ratio)
        })
        .collect();
    Ok(SubjectMaps { subject: subject.meta.clone(), samples })
}

/// A sample's maps for an intensity baseline: its expected signal and anomaly map, no EU, no
/// Monte-Carlo passes.
fn intensity_result(sample: &PreparedSample, expected: Vec<f32>, anomaly: &[f32]) -> SampleResult {
    let epistemic = vec![0.0f32; sample.image.len()];
    SampleResult::from_mc(sample.meta, &sample.image, &sample.roi, &sample.cord, &sample.row_segment, expected, &epistemic, anomaly, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use u2ad_core::dataset::{SampleMeta, SAMPLE_PIXELS};

    fn meta(name: &str) -> SubjectMeta {
        SubjectMeta {
            subject: name.to_string(),
            image_path: format!("{name}_T2w.nii.gz").into(),
            cord_mask_path: None,
            csf_mask_path: None,
            levels_path: None,
            shape: [10, 10, 10],
            spacing_mm: [1.0; 3],
            orientation: "PSR".into(),
            csf_derived: true,
            cord_length_mm: 100.0,
            levels_found: vec![],
            levels_source: "test".into(),
            intensity_low: 0.0,
            intensity_high: 1.0,
        }
    }

    /// A cord of rows 40..160 x columns 100..120; columns alternate 1 and 1.1 times `gain`;
    /// rows 40..100 are C2/C3, rows 100..160 C3/C4.
    fn sample(gain: f32) -> PreparedSample {
        let mut image = vec![0.0f32; SAMPLE_PIXELS];
        let mut cord = vec![0u8; SAMPLE_PIXELS];
        for row in 40..160 {
            for col in 100..120 {
                let i = row * SAMPLE_SIZE + col;
                cord[i] = 1;
                image[i] = gain * if col % 2 == 0 { 1.0 } else { 1.1 };
            }
        }
        let mut row_segment = vec![0u8; SAMPLE_SIZE];
        row_segment[40..100].fill(1);
        row_segment[100..160].fill(2);
        PreparedSample {
            meta: SampleMeta {
                subject_index: 0,
                native_slice: 0,
                pixel_to_native: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]],
                pixel_mm: 0.78125,
                offset_from_mid_mm: 0.0,
            },
            image,
            roi: cord.clone(),
            csf: vec![0; SAMPLE_PIXELS],
            cord,
            row_segment,
        }
    }

    #[test]
    fn robust_reference_falls_back_to_the_mean_deviation() {
        let r = RobustReference::of(&[1.0, 2.0, 3.0, 4.0, 100.0]).unwrap();
        assert_eq!(r.centre, 3.0);
        assert!((r.spread - 1.4826).abs() < 1e-12);
        // MAD 0: 1.2533 x mean(|R - 1|) = 1.2533 x 3 / 4.
        let r = RobustReference::of(&[1.0, 1.0, 1.0, 4.0]).unwrap();
        assert!((r.spread - 1.2533 * 0.75).abs() < 1e-12);
        assert_eq!(RobustReference::of(&[2.0, 2.0]).unwrap().spread, 1e-6);
        assert_eq!(RobustReference::of(&[]), None);
    }

    #[test]
    fn a_bright_spot_stands_out_whatever_the_gain() {
        // Three subjects with gains 0.3, 0.4 and 0.5; the first has a 4 x 4 spot at 2 x its
        // cord signal in C3/C4, on bright columns only so that its cord median stays 0.315
        // (rows 120..128, columns 107 and 109).
        let mut samples = vec![vec![sample(0.3)], vec![sample(0.4)], vec![sample(0.5)]];
        for row in 120..128 {
            for col in [107, 109] {
                samples[0][0].image[row * SAMPLE_SIZE + col] = 0.6;
            }
        }
        let metas = [meta("sub-a"), meta("sub-b"), meta("sub-c")];
        let cohort: Vec<CohortSubject<'_>> =
            metas.iter().zip(&samples).map(|(m, s)| CohortSubject { meta: m, samples: s }).collect();
        let maps = intensity_baseline(&cohort, &IntensityBaselineConfig::default()).unwrap();
        assert_eq!(maps.len(), 3);
        // Every subject's normalised cord is {1/1.05, 1.1/1.05} (median 1.05 x gain): the
        // reference median is 1 and its MAD 0.05/1.05, so spread = 1.4826 x 0.047619.
        let spread = 1.4826 * (0.05 / 1.05);
        let au = &maps[0].samples[0].aleatoric;
        let z_spot = (0.6 / (0.3 * 1.05) - 1.0) / spread;
        assert!((f64::from(au[121 * SAMPLE_SIZE + 107]) - z_spot).abs() < 1e-4, "{}", au[121 * SAMPLE_SIZE + 107]);
        // A bright column of normal cord: z = (1.1/1.05 - 1) / spread = 1 / 1.4826 = 0.6745.
        assert!((f64::from(au[70 * SAMPLE_SIZE + 103]) - 0.6745).abs() < 1e-3);
        // Dark columns are clipped to 0; the eroded edge (column 100) and outside the cord are 0.
        assert_eq!(au[70 * SAMPLE_SIZE + 102], 0.0);
        assert_eq!(au[70 * SAMPLE_SIZE + 100], 0.0);
        assert_eq!(au[20 * SAMPLE_SIZE + 110], 0.0);
        // The other subjects have no spot; their maps are the same pattern.
        let (b, c) = (&maps[1].samples[0].aleatoric, &maps[2].samples[0].aleatoric);
        assert!(b.iter().zip(c).all(|(x, y)| (x - y).abs() < 1e-4));
        assert!(maps[1].samples[0].aleatoric.iter().all(|&v| v < 0.7));
        // The expected signal is the subject's cord median x the reference median (1).
        assert!((maps[0].samples[0].mean[70 * SAMPLE_SIZE + 103] - 0.315).abs() < 1e-6);
        assert!(maps[0].samples[0].epistemic.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn one_subject_is_an_error() {
        let samples = vec![sample(0.3)];
        let m = meta("sub-a");
        let err = intensity_baseline(&[CohortSubject { meta: &m, samples: &samples }], &IntensityBaselineConfig::default())
            .unwrap_err();
        assert_eq!(err, BaselineError::TooFewSubjects(1));
    }

    #[test]
    fn the_percentile_rule_maps_smoothed_signal_over_the_cord_median() {
        let mut samples = vec![sample(0.4)];
        for row in 120..128 {
            for col in 106..110 {
                samples[0].image[row * SAMPLE_SIZE + col] = 0.8;
            }
        }
        let m = meta("sub-a");
        let maps = intensity_percentile_baseline(&CohortSubject { meta: &m, samples: &samples }, &IntensityPercentileConfig::default()).unwrap();
        let s = &maps.samples[0];
        // Cord median 0.44: 1055 eroded-cord pixels at 0.4, 1055 at 0.44 and the spot's 32 at 0.8.
        assert!((s.mean[70 * SAMPLE_SIZE + 103] - 0.44).abs() < 1e-6);
        // The smoothing evens the columns out: 0.42 / 0.44.
        let normal = f64::from(s.aleatoric[70 * SAMPLE_SIZE + 104]);
        assert!((normal - 0.42 / 0.44).abs() < 0.03, "{normal}");
        // The spot's centre, smoothed by 0.7 mm: a little under 0.8 / 0.44 = 1.82.
        let spot = f64::from(s.aleatoric[124 * SAMPLE_SIZE + 107]);
        assert!(spot > 1.5 && spot < 1.82, "{spot}");
        assert_eq!(s.aleatoric[20 * SAMPLE_SIZE + 110], 0.0);
        // Scored as the rule says: C3/C4 (the spot's level) far above C2/C3.
        let stack = [u2ad_core::level_scores::StackSlice {
            native_slice: 0,
            cord: &s.cord,
            roi: &s.roi,
            values: &s.aleatoric,
            image: &s.image,
            row_segment: &s.row_segment,
        }];
        let scores = u2ad_core::level_scores::level_scores(&stack, PlaneShape::SAMPLE, &IntensityPercentileConfig::LEVEL_SCORES, 0.78125, 1.0);
        assert_eq!(scores.len(), 2);
        assert!(scores[0].in_plane_only, "one slice: in-plane erosion only");
        assert!((0.9..1.0).contains(&scores[0].score), "{:?}", scores[0]);
        assert!(scores[1].score > 1.5, "{:?}", scores[1]);
    }
}
