//! Step 4 of detection (module docs, section 4): calls without labels, each segment's score
//! against a threshold calibrated on the other participants of the cohort, the epistemic
//! uncertainty gate and the patient call.

use serde::{Deserialize, Serialize};

use super::segments::{SegmentScore, SubjectScores};
use super::stats::{
    percentile, robust_centre_spread, robust_centre_spread_below, robust_upper_limit, z_for_false_positive_rate,
};
use super::ScoringError;
use crate::level_scores::OutsideRegion;
use crate::levels::DiscLevel;

/// Which reference values calibrate a segment's threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LevelPooling {
    /// The same level of the other subjects.
    #[default]
    PerLevel,
    /// Every level of the other subjects.
    Pooled,
}

/// Which of the reference scores estimate the scores of normal levels (the median and spread of
/// a cohort threshold).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceScores {
    /// Every reference score, other patients' lesions included.
    All,
    /// The reference scores the same rule would call negative
    /// ([`super::stats::robust_centre_spread_below`] at the subject's z threshold): the other
    /// patients' lesions no longer raise the threshold. The cord outside the levels is still
    /// calibrated on every score (module docs, section 4).
    #[default]
    Negative,
}

/// The score threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Threshold {
    /// median + z x 1.4826 x MAD of the other subjects' scores, z = Φ⁻¹(1 - rate).
    Cohort { target_false_positive_rate: f64 },
    /// A fixed threshold (e.g. learnt on a labelled set).
    Fixed(f64),
}

/// When a segment's epistemic uncertainty makes its call indeterminate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UncertaintyGate {
    Off,
    /// Above median + z x 1.4826 x MAD of the other subjects' segment EU.
    RobustZ {
        z: f64,
    },
    /// Above this percentile (0-100) of the other subjects' segment EU.
    Percentile {
        percent: f64,
    },
    /// EU above median + z x 1.4826 x MAD of the other subjects' segment EU **and** a score within
    /// `margin` robust standard deviations of the threshold: EU only withholds a call it could
    /// change, so a host unlike the training scans is not muted whole.
    NearThreshold {
        z: f64,
        margin: f64,
    },
}

/// What the target false-positive rate applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FalsePositiveScope {
    /// Each patient: every level is tested at rate / (the subject's scored levels), Bonferroni,
    /// so a lesion-free patient is called positive with at most the target rate.
    #[default]
    Patient,
    /// Each level on its own (a patient with six levels is then called positive more often).
    Level,
}

/// Settings of [`call_cohort`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CallConfig {
    pub threshold: Threshold,
    /// Pooling of the reference scores and of the reference EU.
    pub pooling: LevelPooling,
    /// Fewer reference values than this: no cohort threshold (indeterminate) and no EU gate.
    pub min_reference_values: usize,
    pub uncertainty_gate: UncertaintyGate,
    pub scope: FalsePositiveScope,
    /// Which reference scores set a level's median and spread.
    pub reference_scores: ReferenceScores,
}

impl Default for CallConfig {
    fn default() -> Self {
        CallConfig {
            threshold: Threshold::Cohort { target_false_positive_rate: 0.05 },
            pooling: LevelPooling::PerLevel,
            min_reference_values: 10,
            uncertainty_gate: UncertaintyGate::NearThreshold { z: 3.0, margin: 1.0 },
            scope: FalsePositiveScope::Patient,
            reference_scores: ReferenceScores::Negative,
        }
    }
}

/// Why a segment is indeterminate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IndeterminateReason {
    HighEpistemicUncertainty,
    TooFewReferenceValues,
}

/// The call of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "call", content = "reason", rename_all = "snake_case")]
pub enum SegmentCall {
    Positive,
    Negative,
    Indeterminate(IndeterminateReason),
    OutOfFieldOfView,
}

impl SegmentCall {
    /// "positive", "negative", "indeterminate", "out_of_fov".
    pub fn label(self) -> &'static str {
        match self {
            SegmentCall::Positive => "positive",
            SegmentCall::Negative => "negative",
            SegmentCall::Indeterminate(_) => "indeterminate",
            SegmentCall::OutOfFieldOfView => "out_of_fov",
        }
    }
}

/// The call of one patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PatientCall {
    Positive,
    Negative,
    /// No segment is positive or negative.
    NotAssessed,
}

/// The decision on one segment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentDecision {
    pub level: DiscLevel,
    pub score: Option<f64>,
    /// The score as a robust z against the reference scores, (score - median) / spread: what the
    /// threshold compares, on one scale for every level (`None` with a fixed threshold).
    pub z: Option<f64>,
    pub threshold: Option<f64>,
    pub mean_eu: Option<f64>,
    /// The EU above which the segment is indeterminate (`None`: gate off or too few references).
    pub eu_limit: Option<f64>,
    pub call: SegmentCall,
}

/// The decisions on one subject.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubjectDecision {
    pub subject: String,
    pub segments: Vec<SegmentDecision>,
    pub patient_call: PatientCall,
    pub indeterminate_segments: usize,
    /// The largest segment z (the patient's score on the calibrated scale).
    pub patient_z: Option<f64>,
    /// The z above which a segment is positive (Bonferroni-corrected for [`FalsePositiveScope::Patient`]).
    pub z_threshold: Option<f64>,
    /// The cord above and below the levels, called like a segment (without the EU gate).
    pub outside_levels: Vec<RegionDecision>,
}

/// The decision on the cord outside the levels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionDecision {
    pub region: OutsideRegion,
    pub score: f64,
    pub z: Option<f64>,
    pub threshold: Option<f64>,
    pub call: SegmentCall,
}

fn reference_values<'a>(
    others: impl Iterator<Item = &'a SubjectScores>,
    level: DiscLevel,
    pooling: LevelPooling,
    value: impl Fn(&SubjectScores, DiscLevel) -> Option<f64>,
) -> Vec<f64> {
    let mut values = Vec::new();
    for other in others {
        match pooling {
            LevelPooling::PerLevel => values.extend(value(other, level)),
            LevelPooling::Pooled => values.extend(DiscLevel::ALL.into_iter().filter_map(|l| value(other, l))),
        }
    }
    values
}

/// Calls every segment and patient of a cohort (module docs, section 4), each subject's
/// thresholds calibrated on the subjects of other groups ([`SubjectScores::group`]: never on
/// another scan of the same person).
pub fn call_cohort(cohort: &[SubjectScores], config: &CallConfig) -> Result<Vec<SubjectDecision>, ScoringError> {
    let rate = match config.threshold {
        Threshold::Cohort { target_false_positive_rate } => {
            z_for_false_positive_rate(target_false_positive_rate)?;
            Some(target_false_positive_rate)
        }
        Threshold::Fixed(value) if !value.is_finite() => {
            return Err(ScoringError::InvalidConfig(format!("fixed threshold {value} is not finite")))
        }
        Threshold::Fixed(_) => None,
    };
    match config.uncertainty_gate {
        UncertaintyGate::Percentile { percent } if !(0.0..=100.0).contains(&percent) => {
            return Err(ScoringError::InvalidConfig(format!("EU percentile {percent} is not in [0, 100]")));
        }
        UncertaintyGate::NearThreshold { margin, .. } if !(margin >= 0.0) => {
            return Err(ScoringError::InvalidConfig(format!("EU gate margin {margin} is not >= 0")));
        }
        _ => {}
    }
    let score_of = |s: &SubjectScores, level: DiscLevel| s.segment(level).and_then(SegmentScore::score);
    let eu_of = |s: &SubjectScores, level: DiscLevel| s.segment_mean_eu.get(&level).copied();
    let enough = |reference: &[f64]| reference.len() >= config.min_reference_values.max(1);

    Ok(cohort
        .iter()
        .map(|subject| {
            let others = || cohort.iter().filter(move |other| other.group != subject.group);
            let scored_levels = DiscLevel::ALL.into_iter().filter(|&l| score_of(subject, l).is_some()).count()
                + subject.outside_levels.len();
            // One level's rate: the target for the level, or shared by the patient's levels.
            let z_threshold = rate.map(|rate| match config.scope {
                FalsePositiveScope::Level => z_for_false_positive_rate(rate),
                FalsePositiveScope::Patient => z_for_false_positive_rate(rate / scored_levels.max(1) as f64),
            });
            let z_threshold = z_threshold.transpose().expect("the rate was checked above");
            let segments: Vec<SegmentDecision> = DiscLevel::ALL
                .into_iter()
                .map(|level| {
                    let score = score_of(subject, level);
                    let mean_eu = eu_of(subject, level);
                    let (threshold, z) = match (config.threshold, z_threshold) {
                        (Threshold::Fixed(value), _) => (Some(value), None),
                        (_, Some(z_cut)) => {
                            let reference = reference_values(others(), level, config.pooling, score_of);
                            let null = match config.reference_scores {
                                ReferenceScores::All => robust_centre_spread(&reference),
                                ReferenceScores::Negative => robust_centre_spread_below(&reference, z_cut),
                            };
                            match null.filter(|_| enough(&reference)) {
                                Some((centre, spread)) => (
                                    Some(centre + z_cut * spread),
                                    score.map(|s| robust_z(s, centre, spread)),
                                ),
                                None => (None, None),
                            }
                        }
                        (_, None) => (None, None),
                    };
                    let eu_reference = || reference_values(others(), level, config.pooling, eu_of);
                    let eu_limit = match config.uncertainty_gate {
                        UncertaintyGate::Off => None,
                        UncertaintyGate::RobustZ { z } | UncertaintyGate::NearThreshold { z, .. } => {
                            Some(eu_reference()).filter(|r| enough(r)).and_then(|r| robust_upper_limit(&r, z))
                        }
                        UncertaintyGate::Percentile { percent } => {
                            Some(eu_reference()).filter(|r| enough(r)).and_then(|r| percentile(&r, percent))
                        }
                    };
                    let high_eu = matches!((mean_eu, eu_limit), (Some(eu), Some(limit)) if eu > limit);
                    let withheld = high_eu
                        && match config.uncertainty_gate {
                            // No z (a fixed threshold, or too few references): nothing to be near.
                            UncertaintyGate::NearThreshold { margin, .. } => match (z, z_threshold) {
                                (Some(z), Some(cut)) => (z - cut).abs() <= margin,
                                _ => false,
                            },
                            _ => true,
                        };
                    let call = match score {
                        None => SegmentCall::OutOfFieldOfView,
                        Some(_) if withheld => SegmentCall::Indeterminate(IndeterminateReason::HighEpistemicUncertainty),
                        Some(score) => match threshold {
                            None => SegmentCall::Indeterminate(IndeterminateReason::TooFewReferenceValues),
                            Some(t) if score > t => SegmentCall::Positive,
                            Some(_) => SegmentCall::Negative,
                        },
                    };
                    SegmentDecision { level, score, z, threshold, mean_eu, eu_limit, call }
                })
                .collect();
            let outside_levels: Vec<RegionDecision> = subject
                .outside_levels
                .iter()
                .map(|outside| {
                    let reference: Vec<f64> = match config.pooling {
                        // One scale for the patient's maximum: the levels' own reference.
                        LevelPooling::Pooled => others().flat_map(|o| DiscLevel::ALL.into_iter().filter_map(move |l| score_of(o, l))).collect(),
                        LevelPooling::PerLevel => others()
                            .flat_map(|o| o.outside_levels.iter().filter(|r| r.region == outside.region).map(|r| r.score))
                            .collect(),
                    };
                    // Every reference score, whatever `reference_scores` says: the cord's ends carry
                    // bright spots the levels do not (module docs, section 4).
                    let calibrated = match (config.threshold, z_threshold) {
                        (Threshold::Fixed(value), _) => Some((Some(value), None)),
                        (_, Some(z_cut)) => robust_centre_spread(&reference)
                            .filter(|_| enough(&reference))
                            .map(|(centre, spread)| (Some(centre + z_cut * spread), Some(robust_z(outside.score, centre, spread)))),
                        (_, None) => None,
                    };
                    let (threshold, z) = calibrated.unwrap_or((None, None));
                    let call = match threshold {
                        None => SegmentCall::Indeterminate(IndeterminateReason::TooFewReferenceValues),
                        Some(t) if outside.score > t => SegmentCall::Positive,
                        Some(_) => SegmentCall::Negative,
                    };
                    RegionDecision { region: outside.region, score: outside.score, z, threshold, call }
                })
                .collect();
            let indeterminate_segments =
                segments.iter().filter(|s| matches!(s.call, SegmentCall::Indeterminate(_))).count();
            let patient_call = if segments.iter().any(|s| s.call == SegmentCall::Positive)
                || outside_levels.iter().any(|r| r.call == SegmentCall::Positive)
            {
                PatientCall::Positive
            } else if segments.iter().any(|s| s.call == SegmentCall::Negative) {
                PatientCall::Negative
            } else {
                PatientCall::NotAssessed
            };
            let patient_z =
                segments.iter().filter_map(|s| s.z).chain(outside_levels.iter().filter_map(|r| r.z)).reduce(f64::max);
            SubjectDecision {
                subject: subject.subject.clone(),
                segments,
                patient_call,
                indeterminate_segments,
                patient_z,
                z_threshold: match config.threshold {
                    Threshold::Fixed(_) => None,
                    Threshold::Cohort { .. } => z_threshold,
                },
                outside_levels,
            }
        })
        .collect())
}

/// (value - centre) / spread, within ±1e6 (a zero spread gives ±1e6 away from the centre, 0 at it).
fn robust_z(value: f64, centre: f64, spread: f64) -> f64 {
    const LIMIT: f64 = 1e6;
    if spread > 0.0 {
        ((value - centre) / spread).clamp(-LIMIT, LIMIT)
    } else if value > centre {
        LIMIT
    } else if value < centre {
        -LIMIT
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::stats::{inverse_normal_cdf, MAD_TO_SD};
    use crate::scoring::test_fixtures::{close, cohort_fixture, legacy, Z_TOLERANCE};

    fn calls_of(decision: &SubjectDecision) -> Vec<SegmentCall> {
        decision.segments.iter().take(3).map(|s| s.call).collect()
    }

    const POSITIVE: SegmentCall = SegmentCall::Positive;
    const NEGATIVE: SegmentCall = SegmentCall::Negative;
    const HIGH_EU: SegmentCall = SegmentCall::Indeterminate(IndeterminateReason::HighEpistemicUncertainty);

    #[test]
    fn cohort_calls_per_level() {
        let cohort = cohort_fixture();
        let config = CallConfig { min_reference_values: 3, ..legacy() };
        let decisions = call_cohort(&cohort, &config).unwrap();
        let thresholds: Vec<f64> = decisions.iter().map(|d| d.segments[0].threshold.unwrap()).collect();
        let expected = [
            0.014438659987318254,
            0.015877319974636504,
            0.016877319974636505,
            0.013438659987318254,
            0.013438659987318254,
            0.014438659987318254,
        ];
        for (actual, expected) in thresholds.iter().zip(expected) {
            close(*actual, expected, Z_TOLERANCE);
        }
        close(decisions[0].segments[1].threshold.unwrap(), 0.023657989980977383, Z_TOLERANCE);
        close(decisions[4].segments[1].threshold.unwrap(), 0.022438659987318255, Z_TOLERANCE);
        // sub-04's C4/C5 reference is all 0: threshold 0 and 0.030 > 0.
        close(decisions[3].segments[2].threshold.unwrap(), 0.0, 0.0);
        close(decisions[0].segments[2].threshold.unwrap(), 0.012368970303949681, Z_TOLERANCE);
        close(decisions[0].segments[0].eu_limit.unwrap(), 0.0015447799999999993, 1e-12);

        assert_eq!(calls_of(&decisions[0]), vec![NEGATIVE, NEGATIVE, NEGATIVE]);
        assert_eq!(calls_of(&decisions[2]), vec![NEGATIVE, POSITIVE, NEGATIVE]);
        assert_eq!(calls_of(&decisions[3]), vec![HIGH_EU, NEGATIVE, POSITIVE]);
        assert_eq!(calls_of(&decisions[4]), vec![NEGATIVE, SegmentCall::OutOfFieldOfView, NEGATIVE]);
        assert!(decisions.iter().all(|d| d.segments[3..].iter().all(|s| s.call == SegmentCall::OutOfFieldOfView)));
        let patients: Vec<PatientCall> = decisions.iter().map(|d| d.patient_call).collect();
        use PatientCall::{Negative as N, Positive as P};
        assert_eq!(patients, vec![N, N, P, P, N, N]);
        assert_eq!(decisions[3].indeterminate_segments, 1);
    }

    #[test]
    fn cohort_calls_pooled_over_levels() {
        let cohort = cohort_fixture();
        let config = CallConfig { min_reference_values: 3, pooling: LevelPooling::Pooled, ..legacy() };
        let decisions = call_cohort(&cohort, &config).unwrap();
        let expected = [
            0.03810592986684165,
            0.03760592986684165,
            0.03200927989854602,
            0.03244793988586427,
            0.033947939885864274,
            0.03810592986684165,
        ];
        for (decision, expected) in decisions.iter().zip(expected) {
            for segment in &decision.segments[..3] {
                close(segment.threshold.unwrap(), expected, Z_TOLERANCE);
            }
        }
        assert_eq!(calls_of(&decisions[2]), vec![NEGATIVE, POSITIVE, NEGATIVE]);
        assert_eq!(calls_of(&decisions[3]), vec![HIGH_EU, NEGATIVE, NEGATIVE]);
        // Indeterminate segments do not make a patient positive.
        assert_eq!((decisions[3].patient_call, decisions[3].indeterminate_segments), (PatientCall::Negative, 1));
    }

    #[test]
    fn the_cord_outside_the_levels_is_called_on_the_levels_scale_when_pooled() {
        use crate::level_scores::{OutsideRegion, OutsideScore};
        let mut cohort = cohort_fixture();
        // The cord above the levels: the five others alike (copies of two hosts are), sub-01 a
        // little brighter.
        for (subject, score) in cohort.iter_mut().zip([0.025, 0.0150, 0.0151, 0.0152, 0.0153, 0.0154]) {
            subject.outside_levels = vec![OutsideScore { region: OutsideRegion::AboveLevels, score, peak_slice: 0, peak_row_px: 0 }];
        }
        let per_level = CallConfig {
            min_reference_values: 3,
            uncertainty_gate: UncertaintyGate::Off,
            reference_scores: ReferenceScores::All,
            ..CallConfig::default()
        };
        let decisions = call_cohort(&cohort, &per_level).unwrap();
        // Against the same region of the others only: median 0.0152, spread 1.4826 x 0.0001.
        let above = &decisions[0].outside_levels[0];
        close(above.z.unwrap(), (0.025 - 0.0152) / (MAD_TO_SD * 0.0001), 1e-6);
        assert_eq!((above.call, decisions[0].patient_call), (POSITIVE, PatientCall::Positive));
        assert_eq!(decisions[0].patient_z, above.z);

        // Pooled: against every level of the others (14 scores, median 0.0125, MAD 0.0105).
        let pooled = CallConfig { pooling: LevelPooling::Pooled, ..per_level };
        let decisions = call_cohort(&cohort, &pooled).unwrap();
        let above = &decisions[0].outside_levels[0];
        close(above.z.unwrap(), (0.025 - 0.0125) / (MAD_TO_SD * 0.0105), 1e-9);
        close(above.threshold.unwrap(), decisions[0].segments[0].threshold.unwrap(), 1e-15);
        assert_eq!((above.call, decisions[0].patient_call), (NEGATIVE, PatientCall::Negative));
    }

    #[test]
    fn fixed_threshold_and_percentile_gate() {
        let cohort = cohort_fixture();
        let config = CallConfig {
            threshold: Threshold::Fixed(0.02),
            uncertainty_gate: UncertaintyGate::Off,
            min_reference_values: 3,
            ..legacy()
        };
        let decisions = call_cohort(&cohort, &config).unwrap();
        // 0.020 is not above 0.02 (strict), 0.021 is.
        assert_eq!(calls_of(&decisions[0]), vec![NEGATIVE, NEGATIVE, NEGATIVE]);
        assert_eq!(calls_of(&decisions[3]), vec![POSITIVE, POSITIVE, POSITIVE]);
        assert_eq!(decisions[3].segments[0].eu_limit, None);

        let config = CallConfig { uncertainty_gate: UncertaintyGate::Percentile { percent: 80.0 }, ..config };
        let decisions = call_cohort(&cohort, &config).unwrap();
        close(decisions[3].segments[0].eu_limit.unwrap(), 0.0011200000000000001, 1e-15);
        close(decisions[0].segments[0].eu_limit.unwrap(), 0.001960000000000001, 1e-15);
        assert_eq!(decisions[3].segments[0].call, HIGH_EU);
        assert_eq!(decisions[0].segments[0].call, NEGATIVE);
    }

    #[test]
    fn z_scores_and_the_bonferroni_threshold_per_patient() {
        let cohort = cohort_fixture();
        let config = CallConfig {
            min_reference_values: 3,
            uncertainty_gate: UncertaintyGate::Off,
            reference_scores: ReferenceScores::All,
            ..CallConfig::default()
        };
        let decisions = call_cohort(&cohort, &config).unwrap();
        // Three levels in view: each at 0.05 / 3; sub-05 has two: 0.05 / 2.
        close(decisions[0].z_threshold.unwrap(), inverse_normal_cdf(1.0 - 0.05 / 3.0).unwrap(), 1e-12);
        close(decisions[4].z_threshold.unwrap(), inverse_normal_cdf(1.0 - 0.05 / 2.0).unwrap(), 1e-12);
        // sub-01's C2/C3 reference (0.012, 0.011, 0.050, 0.013, 0.009): median 0.012, spread
        // 1.4826 x 0.001; its score 0.010 is z = -1.349.
        let z = decisions[0].segments[0].z.unwrap();
        close(z, (0.010 - 0.012) / (MAD_TO_SD * 0.001), 1e-9);
        close(decisions[0].segments[0].threshold.unwrap(), 0.012 + decisions[0].z_threshold.unwrap() * MAD_TO_SD * 0.001, 1e-12);
        // sub-03's C3/C4 (0.090) stays positive; patient z = its largest segment z.
        assert_eq!(decisions[2].segments[1].call, POSITIVE);
        assert_eq!(decisions[2].patient_z, decisions[2].segments[1].z);
        // sub-04's C2/C3 (0.050 against a spread of 0.0015) is positive with its EU ungated.
        assert_eq!(decisions[3].segments[0].call, POSITIVE);
    }

    #[test]
    fn other_patients_lesions_do_not_raise_the_threshold() {
        use crate::level_scores::{OutsideRegion, OutsideScore};
        let mut cohort = cohort_fixture();
        for subject in &mut cohort {
            subject.outside_levels = vec![OutsideScore { region: OutsideRegion::AboveLevels, score: 0.01, peak_slice: 0, peak_row_px: 0 }];
        }
        let clipped = CallConfig { min_reference_values: 3, uncertainty_gate: UncertaintyGate::Off, ..CallConfig::default() };
        assert_eq!(clipped.reference_scores, ReferenceScores::Negative);
        let decisions = call_cohort(&cohort, &clipped).unwrap();
        // sub-01's C2/C3 reference (0.012, 0.011, 0.050, 0.013, 0.009): 0.050 (sub-04's lesion) is
        // above what the rule calls, so the median and spread come from the other four.
        let z_cut = decisions[0].z_threshold.unwrap();
        close(z_cut, inverse_normal_cdf(1.0 - 0.05 / 4.0).unwrap(), 1e-12);
        let c2c3 = &decisions[0].segments[0];
        close(c2c3.threshold.unwrap(), 0.0115 + z_cut * MAD_TO_SD * 0.001, 1e-12);
        close(c2c3.z.unwrap(), (0.010 - 0.0115) / (MAD_TO_SD * 0.001), 1e-9);
        // Every reference score: median 0.012, the same MAD here, so a higher threshold.
        let all = CallConfig { reference_scores: ReferenceScores::All, ..clipped };
        let before = call_cohort(&cohort, &all).unwrap();
        close(before[0].segments[0].threshold.unwrap(), 0.012 + z_cut * MAD_TO_SD * 0.001, 1e-12);
        // sub-01's C3/C4 reference (0.018, 0.090, 0.021, 0.019): 0.090 (sub-03's lesion) moved
        // the median from 0.019 to 0.020 and the MAD from 0.001 to 0.0015.
        close(before[0].segments[1].threshold.unwrap(), 0.020 + z_cut * MAD_TO_SD * 0.0015, 1e-12);
        close(decisions[0].segments[1].threshold.unwrap(), 0.019 + z_cut * MAD_TO_SD * 0.001, 1e-12);
        // The cord outside the levels keeps the full reference either way.
        assert_eq!(decisions[0].outside_levels[0].threshold, before[0].outside_levels[0].threshold);
    }

    #[test]
    fn calibration_never_uses_another_scan_of_the_same_participant() {
        let mut cohort = cohort_fixture();
        // sub-03 is a copy of sub-04's participant: sub-04's outlier 0.050 leaves sub-03's reference.
        cohort[2].group = "sub-04".into();
        cohort[3].group = "sub-04".into();
        let config = CallConfig { min_reference_values: 3, ..legacy() };
        let decisions = call_cohort(&cohort, &config).unwrap();
        // sub-03's C2/C3 reference is now 0.010, 0.012, 0.013, 0.009.
        let expected = robust_upper_limit(&[0.010, 0.012, 0.013, 0.009], z_for_false_positive_rate(0.05).unwrap()).unwrap();
        close(decisions[2].segments[0].threshold.unwrap(), expected, 1e-12);
        // Others still see both.
        let all = robust_upper_limit(&[0.012, 0.011, 0.050, 0.013, 0.009], z_for_false_positive_rate(0.05).unwrap()).unwrap();
        close(decisions[0].segments[0].threshold.unwrap(), all, 1e-12);
    }

    #[test]
    fn high_eu_withholds_only_calls_near_the_threshold() {
        let cohort = cohort_fixture();
        // sub-04's C2/C3 has high EU (0.0050) and a score far above its threshold: called.
        let near = CallConfig {
            min_reference_values: 3,
            uncertainty_gate: UncertaintyGate::NearThreshold { z: 3.0, margin: 1.0 },
            scope: FalsePositiveScope::Level,
            ..CallConfig::default()
        };
        let decisions = call_cohort(&cohort, &near).unwrap();
        assert!(decisions[3].segments[0].mean_eu.unwrap() > decisions[3].segments[0].eu_limit.unwrap());
        assert_eq!(decisions[3].segments[0].call, POSITIVE);
        // With a margin wide enough to hold that z, it is withheld as before.
        let z = decisions[3].segments[0].z.unwrap();
        let wide = CallConfig { uncertainty_gate: UncertaintyGate::NearThreshold { z: 3.0, margin: z }, ..near };
        assert_eq!(call_cohort(&cohort, &wide).unwrap()[3].segments[0].call, HIGH_EU);
        let bad = CallConfig { uncertainty_gate: UncertaintyGate::NearThreshold { z: 3.0, margin: -1.0 }, ..near };
        assert!(call_cohort(&cohort, &bad).is_err());
    }

    #[test]
    fn too_small_a_cohort_is_indeterminate_and_not_assessed() {
        let cohort: Vec<SubjectScores> = cohort_fixture().into_iter().take(2).collect();
        let decisions = call_cohort(&cohort, &CallConfig::default()).unwrap();
        let few = SegmentCall::Indeterminate(IndeterminateReason::TooFewReferenceValues);
        assert_eq!(calls_of(&decisions[0]), vec![few, few, few]);
        assert_eq!(decisions[0].segments[0].threshold, None);
        assert_eq!(decisions[0].patient_call, PatientCall::NotAssessed);
        assert_eq!(decisions[0].indeterminate_segments, 3);
    }

    #[test]
    fn invalid_call_configurations_are_errors() {
        let cohort = cohort_fixture();
        let bad_rate =
            CallConfig { threshold: Threshold::Cohort { target_false_positive_rate: 1.5 }, ..legacy() };
        assert!(call_cohort(&cohort, &bad_rate).is_err());
        let bad_fixed = CallConfig { threshold: Threshold::Fixed(f64::NAN), ..legacy() };
        assert!(call_cohort(&cohort, &bad_fixed).is_err());
        let bad_gate =
            CallConfig { uncertainty_gate: UncertaintyGate::Percentile { percent: 120.0 }, ..legacy() };
        assert!(call_cohort(&cohort, &bad_gate).is_err());
    }
}
