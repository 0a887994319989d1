//! Unit tests of [`super`] (the calls), beside it to keep calls.rs short.

use super::*;
use crate::stats::{inverse_normal_cdf, MAD_TO_SD};
use crate::scoring::test_fixtures::{close, cohort_fixture, legacy, Z_TOLERANCE};

fn calls_of(decision: &SubjectDecision) -> Vec<SegmentCall> {
    decision.segments.iter().take(3).map(|s| s.call).collect()
}

const POSITIVE: SegmentCall = SegmentCall::Positive;
const NEGATIVE: SegmentCall = SegmentCall::Negative;
const HIGH_EU: SegmentCall = SegmentCall::Indeterminate(IndeterminateReason::HighEpistemicUncertainty);
const FLAT: SegmentCall = SegmentCall::Indeterminate(IndeterminateReason::ReferenceWithoutSpread);
const TOO_FEW: SegmentCall = SegmentCall::Indeterminate(IndeterminateReason::TooFewReferenceValues);

#[test]
fn z_of_a_false_positive_rate() {
    close(z_for_false_positive_rate(0.05).unwrap(), 1.6448536269514722, 1e-8);
    assert!(z_for_false_positive_rate(0.0).is_err());
}

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
    // sub-04's C4/C5 reference is all 0: no scale, so no threshold (its 0.030 is not called
    // positive against a reference that does not vary).
    assert_eq!(decisions[3].segments[2].threshold, None);
    assert_eq!(decisions[3].segments[2].z, None);
    // The others' C4/C5 are 0 but for sub-04's 0.030: one score above 0 is too few to give the
    // scores above 0 a centre and spread (reference_null.rs), so no threshold.
    assert_eq!((decisions[0].segments[2].threshold, decisions[0].segments[2].z), (None, None));
    close(decisions[0].segments[0].eu_limit.unwrap(), 0.0015447799999999993, 1e-12);

    assert_eq!(calls_of(&decisions[0]), vec![NEGATIVE, NEGATIVE, TOO_FEW]);
    assert_eq!(calls_of(&decisions[2]), vec![NEGATIVE, POSITIVE, TOO_FEW]);
    assert_eq!(calls_of(&decisions[3]), vec![HIGH_EU, NEGATIVE, FLAT]);
    assert_eq!(calls_of(&decisions[4]), vec![NEGATIVE, SegmentCall::OutOfFieldOfView, TOO_FEW]);
    assert!(decisions.iter().all(|d| d.segments[3..].iter().all(|s| s.call == SegmentCall::OutOfFieldOfView)));
    let patients: Vec<PatientCall> = decisions.iter().map(|d| d.patient_call).collect();
    use PatientCall::{Negative as N, Positive as P};
    assert_eq!(patients, vec![N, N, P, N, N, N]);
    assert_eq!(decisions[3].indeterminate_segments, 2);
}

#[test]
fn cohort_calls_pooled_over_levels() {
    let cohort = cohort_fixture();
    let config = CallConfig { min_reference_values: 3, pooling: LevelPooling::Pooled, ..legacy() };
    let decisions = call_cohort(&cohort, &config).unwrap();
    // Four or five of the 14 or 15 reference scores are 0 (the C4/C5 column): the threshold is
    // the scores above 0's median + Φ⁻¹(1 - 0.05 / share above 0) x spread (scipy, the Python
    // transcription of reference_null.rs).
    let expected = [
        0.03381605444864907,
        0.03919207000540595,
        0.031628046670270624,
        0.02142222995240455,
        0.03666630627804324,
        0.035410058337838286,
    ];
    for (decision, expected) in decisions.iter().zip(expected) {
        for segment in &decision.segments[..3] {
            close(segment.threshold.unwrap(), expected, Z_TOLERANCE);
        }
    }
    assert_eq!(calls_of(&decisions[2]), vec![NEGATIVE, POSITIVE, NEGATIVE]);
    // sub-04's C4/C5 (0.030) stands out from the others' scores above 0 (median 0.013, spread
    // 0.0059); counted among them, the zeros had widened the spread and hidden it.
    assert_eq!(calls_of(&decisions[3]), vec![HIGH_EU, NEGATIVE, POSITIVE]);
    assert_eq!((decisions[3].patient_call, decisions[3].indeterminate_segments), (PatientCall::Positive, 1));
    // A score of 0 sits in the middle of the reference's point mass: z = Φ⁻¹(share of zeros / 2).
    close(decisions[0].segments[2].z.unwrap(), inverse_normal_cdf(4.0 / 14.0 / 2.0).unwrap(), 1e-12);
}

#[test]
fn the_cord_outside_the_levels_is_called_on_the_levels_scale_when_pooled() {
    use crate::scoring::{OutsideRegion, OutsideScore};
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

    // Pooled: against every level of the others (14 scores, 4 of them 0; the 10 above 0 have
    // median 0.0185 and MAD 0.007): z = Φ⁻¹(1 - 10/14 x (1 - Φ((0.025 - 0.0185) / (1.4826 x 0.007)))).
    // The others' upper cord less the median of their levels above 0 is 0, -0.0354, -0.0148,
    // 0.0023 and 0.0014: median 0, so no offset.
    let pooled = CallConfig { pooling: LevelPooling::Pooled, ..per_level };
    let decisions = call_cohort(&cohort, &pooled).unwrap();
    let above = &decisions[0].outside_levels[0];
    assert_eq!(above.offset, 0.0);
    close(above.z.unwrap(), 0.879068538945, 1e-8);
    close(above.threshold.unwrap(), decisions[0].segments[0].threshold.unwrap(), 1e-15);
    assert_eq!((above.call, decisions[0].patient_call), (NEGATIVE, PatientCall::Negative));
}

#[test]
fn the_cord_outside_the_levels_has_the_levels_eu_gate() {
    use crate::scoring::{OutsideRegion, OutsideScore};
    let mut cohort = cohort_fixture();
    for (subject, score) in cohort.iter_mut().zip([0.06, 0.0150, 0.0151, 0.0152, 0.0153, 0.0154]) {
        subject.outside_levels = vec![OutsideScore { region: OutsideRegion::AboveLevels, score, peak_slice: 0, peak_row_px: 0 }];
    }
    // sub-01's upper cord is ten times as uncertain as the most uncertain level of the cohort.
    let highest_eu = cohort.iter().flat_map(|s| s.segment_mean_eu.values().copied()).fold(0.0, f64::max);
    cohort[0].outside_mean_eu.insert(OutsideRegion::AboveLevels, 10.0 * highest_eu);
    let ungated =
        CallConfig { min_reference_values: 3, pooling: LevelPooling::Pooled, uncertainty_gate: UncertaintyGate::Off, ..CallConfig::default() };
    let decision = &call_cohort(&cohort, &ungated).unwrap()[0];
    let above = &decision.outside_levels[0];
    assert_eq!((above.call, above.mean_eu, above.eu_limit), (POSITIVE, Some(10.0 * highest_eu), None));
    let over = above.z.unwrap() - decision.z_threshold.unwrap();
    assert!(over > 0.0);
    // The levels' gate: withheld when the z is within the margin of the threshold, called when
    // it is further above; the EU limit is the levels' (every level of the others, pooled).
    let gate = |margin: f64| CallConfig { uncertainty_gate: UncertaintyGate::NearThreshold { z: 3.0, margin }, ..ungated };
    let near = &call_cohort(&cohort, &gate(over + 0.01)).unwrap()[0];
    let limit = near.outside_levels[0].eu_limit.unwrap();
    assert!(10.0 * highest_eu > limit);
    assert_eq!(Some(limit), near.segments[0].eu_limit, "the levels' EU limit");
    assert_eq!(near.outside_levels[0].call, HIGH_EU);
    assert_ne!(near.patient_call, PatientCall::Positive, "its levels are not positive either");
    let far = &call_cohort(&cohort, &gate(over - 0.01)).unwrap()[0];
    assert_eq!((far.outside_levels[0].call, far.patient_call), (POSITIVE, PatientCall::Positive));
    // A region without EU (no EU map) is never withheld.
    cohort[0].outside_mean_eu.clear();
    assert_eq!(call_cohort(&cohort, &gate(over + 0.01)).unwrap()[0].outside_levels[0].call, POSITIVE);
}

#[test]
fn the_cord_outside_the_levels_is_offset_by_how_much_it_exceeds_the_levels_elsewhere() {
    use crate::scoring::{OutsideRegion, OutsideScore};
    use crate::stats::median;
    let level_median = |subject: &SubjectScores| {
        let above_zero = DiscLevel::ALL.into_iter().filter_map(|l| subject.segment(l).and_then(SegmentScore::score)).filter(|&v| v > 0.0);
        median(&above_zero.collect::<Vec<_>>()).unwrap()
    };
    // Every subject's upper cord runs `excess` above the median of its own levels' scores above 0
    // (a region the model reconstructs worse than any level), sub-01's by `excess + lesion`.
    let with_upper = |excess: f64, lesion: f64| {
        let mut cohort = cohort_fixture();
        for (i, subject) in cohort.iter_mut().enumerate() {
            let score = level_median(subject) + excess + if i == 0 { lesion } else { 0.0 };
            subject.outside_levels = vec![OutsideScore { region: OutsideRegion::AboveLevels, score, peak_slice: 0, peak_row_px: 0 }];
        }
        cohort
    };
    let pooled = CallConfig {
        min_reference_values: 3,
        pooling: LevelPooling::Pooled,
        uncertainty_gate: UncertaintyGate::Off,
        reference_scores: ReferenceScores::All,
        ..CallConfig::default()
    };
    // sub-01's levels above 0: median 0.015; its threshold (every level of the others): about 0.040.
    let decisions = call_cohort(&with_upper(0.04, 0.0), &pooled).unwrap();
    let (decision, above) = (&decisions[0], &decisions[0].outside_levels[0]);
    close(above.offset, 0.04, 1e-12);
    // The levels' threshold moved up by the offset, and the z of the score less the offset.
    close(above.threshold.unwrap(), decision.segments[0].threshold.unwrap() + 0.04, 1e-12);
    assert!(above.score > decision.segments[0].threshold.unwrap(), "above the levels' own threshold");
    assert_eq!(above.call, NEGATIVE, "but not above its excess over the levels elsewhere");
    let mut moved = with_upper(0.04, 0.0);
    moved[0].outside_levels[0].score -= 0.04;
    for other in moved.iter_mut().skip(1) {
        other.outside_levels.clear();
    }
    let plain = &call_cohort(&moved, &pooled).unwrap()[0].outside_levels[0];
    assert_eq!(plain.offset, 0.0, "no other subject scores the region");
    close(above.z.unwrap(), plain.z.unwrap(), 1e-12);
    // A lesion there still stands out from the levels by as much as on a level.
    let lesion = &call_cohort(&with_upper(0.04, 0.05), &pooled).unwrap()[0];
    assert_eq!((lesion.outside_levels[0].call, lesion.patient_call), (POSITIVE, PatientCall::Positive));
    // A region below its offset sits in the reference's point mass at 0, as a level scoring 0
    // does (4 of the 14 reference scores are 0), never above it.
    let mut below = with_upper(0.04, 0.0);
    below[0].outside_levels[0].score = 0.01;
    let below = &call_cohort(&below, &pooled).unwrap()[0];
    close(below.outside_levels[0].z.unwrap(), inverse_normal_cdf(4.0 / 14.0 / 2.0).unwrap(), 1e-12);
    assert_eq!(below.outside_levels[0].call, NEGATIVE);
    // Fewer than three other subjects scoring the region: no offset.
    let mut few = with_upper(0.04, 0.0);
    for other in few.iter_mut().skip(3) {
        other.outside_levels.clear();
    }
    assert_eq!(call_cohort(&few, &pooled).unwrap()[0].outside_levels[0].offset, 0.0);
    // A region that scores below the levels elsewhere is not made more sensitive than a level.
    let lower = with_upper(-0.005, 0.0);
    assert_eq!(call_cohort(&lower, &pooled).unwrap()[0].outside_levels[0].offset, 0.0);
    // Per-level pooling calibrates the region on the same region of the others, and a fixed
    // threshold is the same for every place: no offset.
    let per_level = CallConfig { pooling: LevelPooling::PerLevel, ..pooled };
    assert_eq!(call_cohort(&with_upper(0.04, 0.0), &per_level).unwrap()[0].outside_levels[0].offset, 0.0);
    let fixed = CallConfig { threshold: Threshold::Fixed(0.03), ..pooled };
    let fixed = &call_cohort(&with_upper(0.04, 0.0), &fixed).unwrap()[0].outside_levels[0];
    assert_eq!((fixed.offset, fixed.threshold, fixed.call), (0.0, Some(0.03), POSITIVE));
}

#[test]
fn a_reference_that_does_not_vary_calibrates_nothing() {
    use crate::scoring::{OutsideRegion, OutsideScore};
    let mut cohort = cohort_fixture();
    // The cord above the levels: 0 in every other subject (a map that is quiet there), 0.02 in
    // sub-01. Against a reference with no spread, 0.02 is neither large nor small.
    for (subject, score) in cohort.iter_mut().zip([0.02, 0.0, 0.0, 0.0, 0.0, 0.0]) {
        subject.outside_levels = vec![OutsideScore { region: OutsideRegion::AboveLevels, score, peak_slice: 0, peak_row_px: 0 }];
    }
    let config = CallConfig { min_reference_values: 3, uncertainty_gate: UncertaintyGate::Off, ..CallConfig::default() };
    let decisions = call_cohort(&cohort, &config).unwrap();
    let above = &decisions[0].outside_levels[0];
    assert_eq!((above.call, above.threshold, above.z), (FLAT, None, None));
    // The others' own region: four references, one of them above 0 (sub-01's 0.02), too few to
    // give the scores above 0 a scale.
    assert_eq!((decisions[1].outside_levels[0].call, decisions[1].outside_levels[0].threshold), (TOO_FEW, None));
    assert_eq!(decisions[0].patient_call, PatientCall::Negative, "its levels are calibrated and negative");
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
    use crate::scoring::{OutsideRegion, OutsideScore};
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
