//! Step 4 of detection (module docs, section 4): calls without labels, each segment's score
//! against a threshold calibrated on the other participants of the cohort, the epistemic
//! uncertainty gate and the patient call.

use serde::{Deserialize, Serialize};

use super::outside::OutsideRegion;
use super::segments::{SegmentScore, SubjectScores};
use super::ScoringError;
use crate::levels::DiscLevel;
use super::reference_null::{NullFit, ReferenceNull};
use crate::stats::{inverse_normal_cdf, median, percentile, robust_upper_limit};

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
    /// ([`crate::stats::robust_centre_spread_below`] at the subject's z threshold): the other
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
    /// Every reference score is the same (e.g. a map that is 0 on every level of the other
    /// subjects): the reference gives no scale, so no threshold can be calibrated from it.
    ReferenceWithoutSpread,
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
    /// The cord above and below the levels, called like a segment (the same EU gate included).
    pub outside_levels: Vec<RegionDecision>,
}

/// The decision on the cord outside the levels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionDecision {
    pub region: OutsideRegion,
    pub score: f64,
    pub z: Option<f64>,
    pub threshold: Option<f64>,
    pub mean_eu: Option<f64>,
    /// The EU above which the region is indeterminate, as a segment's.
    pub eu_limit: Option<f64>,
    /// How much higher this region scores than the levels of the same subject, over the other
    /// groups ([`outside_offset`]); subtracted before the levels' reference calibrates it (so
    /// `threshold` holds it too). 0 with per-level pooling.
    pub offset: f64,
    pub call: SegmentCall,
}

/// The fewest other subjects with both the region and levels scored that give a region its
/// offset from the levels ([`outside_offset`]): a median of fewer is not a location.
pub const MIN_OFFSET_SUBJECTS: usize = 3;

/// How much higher `region` scores than the same subject's levels, over the `others`: the median,
/// over the others that score the region, of its score minus the median of their own level
/// scores above 0; 0 when it is negative (a region is never made more sensitive than a level) or fewer
/// than [`MIN_OFFSET_SUBJECTS`] others score it. The difference is taken within each subject, so a
/// host whose whole map runs high does not move it: what remains is the anatomy and the
/// model (the upper cord runs higher in the map than any level with some models), which the
/// levels' reference knows nothing of.
pub fn outside_offset<'a>(
    others: impl Iterator<Item = &'a SubjectScores>,
    region: OutsideRegion,
    score_of: impl Fn(&SubjectScores, DiscLevel) -> Option<f64>,
) -> f64 {
    let differences: Vec<f64> = others
        .filter_map(|other| {
            let region_score = other.outside_levels.iter().find(|r| r.region == region)?.score;
            // Its levels' scores above 0: the centre the reference is fitted on leaves the point
            // mass at 0 apart too (reference_null.rs), and a subject with half its levels at 0
            // would otherwise lend the region its whole score as an offset.
            let levels: Vec<f64> = DiscLevel::ALL.into_iter().filter_map(|l| score_of(other, l)).filter(|&v| v > 0.0).collect();
            Some(region_score - median(&levels)?)
        })
        .collect();
    if differences.len() < MIN_OFFSET_SUBJECTS {
        return 0.0;
    }
    median(&differences).map_or(0.0, |m| m.max(0.0))
}

fn reference_values<'a>(
    others: impl Iterator<Item = &'a SubjectScores>,
    level: DiscLevel,
    pooling: LevelPooling,
    value: impl Fn(&SubjectScores, DiscLevel) -> Option<f64>,
) -> Vec<f64> {
    match pooling {
        LevelPooling::PerLevel => others.filter_map(|other| value(other, level)).collect(),
        LevelPooling::Pooled => every_level(others, value),
    }
}

/// `value` of every level of the `others`, subject by subject (the pooled reference).
fn every_level<'a>(
    others: impl Iterator<Item = &'a SubjectScores>,
    value: impl Fn(&SubjectScores, DiscLevel) -> Option<f64>,
) -> Vec<f64> {
    let mut values = Vec::new();
    for other in others {
        values.extend(DiscLevel::ALL.into_iter().filter_map(|l| value(other, l)));
    }
    values
}

/// z = Φ⁻¹(1 - rate): the one-sided normal cut-off with the given false-positive rate.
pub fn z_for_false_positive_rate(rate: f64) -> Result<f64, ScoringError> {
    if !(rate > 0.0 && rate < 1.0) {
        return Err(ScoringError::InvalidConfig(format!("target false-positive rate {rate} is not in (0, 1)")));
    }
    Ok(inverse_normal_cdf(1.0 - rate).expect("1 - rate is in (0, 1)"))
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

    Ok(cohort
        .iter()
        .map(|subject| {
            let others = || cohort.iter().filter(move |other| other.group != subject.group);
            let scored_levels = DiscLevel::ALL.into_iter().filter(|&l| score_of(subject, l).is_some()).count()
                + subject.outside_levels.len();
            // One level's rate: the target for the level, or shared by the patient's levels.
            let test_rate = rate.map(|rate| match config.scope {
                FalsePositiveScope::Level => rate,
                FalsePositiveScope::Patient => rate / scored_levels.max(1) as f64,
            });
            let z_threshold = test_rate.map(z_for_false_positive_rate).transpose().expect("the rate was checked above");
            let segments: Vec<SegmentDecision> = DiscLevel::ALL
                .into_iter()
                .map(|level| {
                    let score = score_of(subject, level);
                    let mean_eu = eu_of(subject, level);
                    let (threshold, z) = match (config.threshold, test_rate.zip(z_threshold)) {
                        (Threshold::Fixed(value), _) => (Some(value), None),
                        (_, Some((test_rate, z_cut))) => {
                            let reference = reference_values(others(), level, config.pooling, score_of);
                            let clip_high = config.reference_scores == ReferenceScores::Negative;
                            match ReferenceNull::fit(&reference, test_rate, z_cut, clip_high, config.min_reference_values) {
                                NullFit::Fitted(null) => {
                                    (Some(null.threshold(test_rate, z_cut)), score.map(|s| null.z(s)))
                                }
                                NullFit::WithoutSpread => return flat_reference(level, score, mean_eu),
                                NullFit::TooFew => (None, None),
                            }
                        }
                        (_, None) => (None, None),
                    };
                    let eu_reference = || reference_values(others(), level, config.pooling, eu_of);
                    let (eu_limit, withheld) = uncertainty_gate(config, mean_eu, eu_reference, z, z_threshold);
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
                    let mean_eu = subject.outside_mean_eu.get(&outside.region).copied();
                    let reference: Vec<f64> = match config.pooling {
                        // One scale for the patient's maximum: the levels' own reference.
                        LevelPooling::Pooled => every_level(others(), score_of),
                        LevelPooling::PerLevel => others()
                            .flat_map(|o| o.outside_levels.iter().filter(|r| r.region == outside.region).map(|r| r.score))
                            .collect(),
                    };
                    // The region's own offset from the levels, on the levels' scale.
                    let offset = match (config.threshold, config.pooling) {
                        (Threshold::Cohort { .. }, LevelPooling::Pooled) => outside_offset(others(), outside.region, score_of),
                        _ => 0.0,
                    };
                    // Every reference score, whatever `reference_scores` says: the cord's ends carry
                    // bright spots the levels do not (module docs, section 4).
                    let calibrated = match (config.threshold, test_rate.zip(z_threshold)) {
                        (Threshold::Fixed(value), _) => Some((Some(value), None)),
                        (_, Some((test_rate, z_cut))) => {
                            match ReferenceNull::fit(&reference, test_rate, z_cut, false, config.min_reference_values) {
                                NullFit::Fitted(null) => {
                                    Some((Some(null.threshold(test_rate, z_cut) + offset), Some(null.z(outside.score - offset))))
                                }
                                NullFit::WithoutSpread => {
                                    let call = SegmentCall::Indeterminate(IndeterminateReason::ReferenceWithoutSpread);
                                    return RegionDecision { region: outside.region, score: outside.score, z: None, threshold: None, mean_eu, eu_limit: None, offset, call };
                                }
                                NullFit::TooFew => None,
                            }
                        }
                        (_, None) => None,
                    };
                    let (threshold, z) = calibrated.unwrap_or((None, None));
                    // The same EU gate as the levels', on the same reference EU.
                    let eu_reference = || match config.pooling {
                        LevelPooling::Pooled => every_level(others(), eu_of),
                        LevelPooling::PerLevel => others().filter_map(|o| o.outside_mean_eu.get(&outside.region).copied()).collect(),
                    };
                    let (eu_limit, withheld) = uncertainty_gate(config, mean_eu, eu_reference, z, z_threshold);
                    let call = match threshold {
                        _ if withheld => SegmentCall::Indeterminate(IndeterminateReason::HighEpistemicUncertainty),
                        None => SegmentCall::Indeterminate(IndeterminateReason::TooFewReferenceValues),
                        Some(t) if outside.score > t => SegmentCall::Positive,
                        Some(_) => SegmentCall::Negative,
                    };
                    RegionDecision { region: outside.region, score: outside.score, z, threshold, mean_eu, eu_limit, offset, call }
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

/// The EU gate of one region (module docs, section 4): the EU limit from the reference EU, and
/// whether the call is withheld (EU above the limit, and for [`UncertaintyGate::NearThreshold`]
/// a z within the margin of the threshold).
fn uncertainty_gate(
    config: &CallConfig,
    mean_eu: Option<f64>,
    eu_reference: impl Fn() -> Vec<f64>,
    z: Option<f64>,
    z_threshold: Option<f64>,
) -> (Option<f64>, bool) {
    let enough = |reference: &[f64]| reference.len() >= config.min_reference_values.max(1);
    let eu_limit = match config.uncertainty_gate {
        UncertaintyGate::Off => None,
        UncertaintyGate::RobustZ { z } | UncertaintyGate::NearThreshold { z, .. } => {
            Some(eu_reference()).filter(|r| enough(r)).and_then(|r| robust_upper_limit(&r, z))
        }
        UncertaintyGate::Percentile { percent } => Some(eu_reference()).filter(|r| enough(r)).and_then(|r| percentile(&r, percent)),
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
    (eu_limit, withheld)
}

/// A level whose reference scores are all the same: no threshold, no z, `indeterminate`
/// ([`IndeterminateReason::ReferenceWithoutSpread`]), unless it is out of view.
fn flat_reference(level: DiscLevel, score: Option<f64>, mean_eu: Option<f64>) -> SegmentDecision {
    let call = match score {
        None => SegmentCall::OutOfFieldOfView,
        Some(_) => SegmentCall::Indeterminate(IndeterminateReason::ReferenceWithoutSpread),
    };
    SegmentDecision { level, score, z: None, threshold: None, mean_eu, eu_limit: None, call }
}

#[cfg(test)]
#[path = "calls_tests.rs"]
mod tests;
