//! Groups of subjects: the pixel-, segment- and patient-level metrics of a group
//! ([`group_metrics`]), and the groups evaluated ([`evaluate_groups`]): every subject, then the
//! breakdowns by lesion contrast, length, volume and position at the cord's edge.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::detections::LevelCall;
use super::subject::{SegmentOutcome, SubjectResult};
use super::truth::LesionRecord;
use crate::metrics::{bootstrap_confusion, BestDice, BootstrapConfig, ConfusionCounts, ConfusionSummary, LabelledScores};

/// Pixel-level figures of a group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PixelMetrics {
    pub cord_voxels: usize,
    pub lesion_voxels: usize,
    pub auroc: Option<f64>,
    pub auprc: Option<f64>,
    /// Dice of the candidate mask.
    pub dice_candidates: Option<f64>,
    /// The best Dice over thresholds: an oracle (the threshold is chosen on the truth).
    pub best_dice_oracle: Option<BestDice>,
    /// Mean of the lesion subjects' own AUPRC.
    pub mean_subject_auprc: Option<f64>,
}

/// Segment- or patient-level figures of a group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionMetrics {
    pub summary: ConfusionSummary,
    /// Threshold-free, from the scores.
    pub auroc: Option<f64>,
    pub auprc: Option<f64>,
    /// Units counted (segments in the field of view, or patients).
    pub units: usize,
    pub positive_units: usize,
    /// Segments called indeterminate (counted as not positive).
    pub indeterminate: usize,
    /// Segments out of the field of view (left out), and those of them holding a lesion.
    pub out_of_fov: usize,
    pub out_of_fov_with_lesion: usize,
}

/// The evaluation of one group of subjects.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupMetrics {
    /// "all", "contrast 1.6-2.0", "length 6-10 mm", …
    pub group: String,
    pub subjects: usize,
    pub lesion_subjects: usize,
    pub pixel: PixelMetrics,
    pub segment: DecisionMetrics,
    pub patient: DecisionMetrics,
}

/// Settings of the aggregation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvaluationSettings {
    pub bootstrap: BootstrapConfig,
    /// Bin edges of the lesion contrast (ratio to the cord); values outside fall in open bins.
    pub contrast_edges: Vec<f64>,
    /// Bin edges of the lesion length, in mm.
    pub length_edges_mm: Vec<f64>,
    /// Bin edges of the subject's lesion volume, in voxels of the truth mask inside the cord.
    pub size_edges_voxels: Vec<f64>,
    /// The contrast range of issue 15's targets (1.3-2x): one more group holds the subjects whose
    /// every lesion lies in it, with the lesion-free ones ("every lesion at 1.3-2x").
    pub target_contrast: (f64, f64),
}

impl Default for EvaluationSettings {
    fn default() -> Self {
        EvaluationSettings {
            bootstrap: BootstrapConfig::default(),
            contrast_edges: vec![1.3, 1.6, 2.0, 3.0],
            length_edges_mm: vec![3.0, 6.0, 10.0, 15.0],
            size_edges_voxels: vec![15.0, 30.0, 60.0, 120.0],
            target_contrast: (1.3, 2.0),
        }
    }
}

fn pooled(results: &[&SubjectResult], pick: impl Fn(&SubjectResult) -> Vec<(f64, bool)>) -> LabelledScores {
    LabelledScores::from_pairs(results.iter().flat_map(|r| pick(r)))
}

/// Metrics of a group of subjects.
pub fn group_metrics(group: &str, results: &[&SubjectResult], bootstrap: &BootstrapConfig) -> GroupMetrics {
    let scores_of = |r: &SubjectResult| LabelledScores::from_pairs(r.pixels.iter().map(|&(s, t)| (f64::from(s), t)));
    let pixels = LabelledScores::from_pairs(results.iter().flat_map(|r| r.pixels.iter().map(|&(s, t)| (f64::from(s), t))));
    let candidates: ConfusionCounts = results.iter().map(|r| r.candidates).sum();
    let subject_auprc: Vec<f64> = results.iter().filter(|r| r.has_lesion()).filter_map(|r| scores_of(r).average_precision()).collect();
    let pixel = PixelMetrics {
        cord_voxels: pixels.len(),
        lesion_voxels: pixels.positives(),
        auroc: pixels.auroc(),
        auprc: pixels.average_precision(),
        dice_candidates: candidates.dice(),
        best_dice_oracle: pixels.best_dice(),
        mean_subject_auprc: (!subject_auprc.is_empty()).then(|| subject_auprc.iter().sum::<f64>() / subject_auprc.len() as f64),
    };

    let in_view = |s: &&SegmentOutcome| s.call != LevelCall::OutOfFieldOfView;
    let segment_units: Vec<ConfusionCounts> = results
        .iter()
        .map(|r| ConfusionCounts::from_pairs(r.segments.iter().filter(in_view).map(|s| (s.call == LevelCall::Positive, s.lesion))))
        .collect();
    let segment_scores = pooled(results, |r| {
        r.segments.iter().filter(in_view).filter_map(|s| s.score.map(|v| (v, s.lesion))).collect()
    });
    let all_segments = || results.iter().flat_map(|r| r.segments.iter());
    let segment = DecisionMetrics {
        summary: bootstrap_confusion(&segment_units, bootstrap),
        auroc: segment_scores.auroc(),
        auprc: segment_scores.average_precision(),
        units: all_segments().filter(in_view).count(),
        positive_units: all_segments().filter(in_view).filter(|s| s.lesion).count(),
        indeterminate: all_segments().filter(|s| s.call == LevelCall::Indeterminate).count(),
        out_of_fov: all_segments().filter(|s| s.call == LevelCall::OutOfFieldOfView).count(),
        out_of_fov_with_lesion: all_segments().filter(|s| s.call == LevelCall::OutOfFieldOfView && s.lesion).count(),
    };

    let patient_units: Vec<ConfusionCounts> =
        results.iter().map(|r| ConfusionCounts::from_pairs([(r.patient_positive_call, r.has_lesion())])).collect();
    let patient_scores = pooled(results, |r| r.patient_score.map(|v| (v, r.has_lesion())).into_iter().collect());
    let patient = DecisionMetrics {
        summary: bootstrap_confusion(&patient_units, bootstrap),
        auroc: patient_scores.auroc(),
        auprc: patient_scores.average_precision(),
        units: results.len(),
        positive_units: results.iter().filter(|r| r.has_lesion()).count(),
        indeterminate: 0,
        out_of_fov: 0,
        out_of_fov_with_lesion: 0,
    };
    GroupMetrics {
        group: group.to_string(),
        subjects: results.len(),
        lesion_subjects: results.iter().filter(|r| r.has_lesion()).count(),
        pixel,
        segment,
        patient,
    }
}

/// A bin edge as the labels write it: one decimal, none for a whole number ("1.3", "2").
fn fmt_edge(v: f64) -> String {
    let text = format!("{v:.1}");
    text.strip_suffix(".0").map(str::to_string).unwrap_or(text)
}

/// The bin of `value` among `edges` (ascending): "a-b" for a ≤ value < b (the last bin closed),
/// "<a" below the first edge, ">b" above the last.
pub fn bin_label(value: f64, edges: &[f64]) -> String {
    let fmt = fmt_edge;
    let (Some(&first), Some(&last)) = (edges.first(), edges.last()) else { return "all".to_string() };
    if value < first {
        return format!("<{}", fmt(first));
    }
    if value > last {
        return format!(">{}", fmt(last));
    }
    for pair in edges.windows(2) {
        if value < pair[1] || pair[1] == last {
            return format!("{}-{}", fmt(pair[0]), fmt(pair[1]));
        }
    }
    format!("{}-{}", fmt(first), fmt(last))
}

/// The overall group, then the contrast, length and size bins and the edge/inside groups (module
/// docs, Breakdowns).
pub fn evaluate_groups(results: &[SubjectResult], settings: &EvaluationSettings) -> Vec<GroupMetrics> {
    let all: Vec<&SubjectResult> = results.iter().collect();
    let mut groups = vec![group_metrics("all", &all, &settings.bootstrap)];
    let lesion_free: Vec<&SubjectResult> = results.iter().filter(|r| !r.has_lesion()).collect();
    // The targets' range: unlike a contrast bin, a subject with a lesion outside it is left out
    // whole, so no fainter or brighter lesion of it counts. Only when it differs from "all".
    let (low, high) = settings.target_contrast;
    let in_range = |l: &LesionRecord| l.contrast.is_some_and(|c| c >= low && c <= high);
    let targeted: Vec<&SubjectResult> = results.iter().filter(|r| r.lesions.iter().all(in_range)).collect();
    if targeted.len() < results.len() && targeted.iter().any(|r| r.has_lesion()) {
        groups.push(group_metrics(&format!("every lesion at {}-{}x", fmt_edge(low), fmt_edge(high)), &targeted, &settings.bootstrap));
    }
    let breakdown = |name: &str, unit: &str, edges: &[f64], value: &dyn Fn(&LesionRecord) -> Option<f64>| {
        // Bins in ascending order of their lower value.
        let mut bins: BTreeMap<(i64, String), Vec<&SubjectResult>> = BTreeMap::new();
        for r in results.iter().filter(|r| r.has_lesion()) {
            let labels: BTreeSet<(i64, String)> = r
                .lesions
                .iter()
                .filter_map(|l| value(l))
                .map(|v| ((v * 1000.0) as i64, bin_label(v, edges)))
                .collect();
            let mut seen = BTreeSet::new();
            for (order, label) in labels {
                if seen.insert(label.clone()) {
                    let key = bins.keys().find(|(_, l)| *l == label).cloned().unwrap_or((order, label));
                    bins.entry(key).or_default().push(r);
                }
            }
        }
        bins.into_iter()
            .map(|((_, label), mut members)| {
                members.extend(lesion_free.iter().copied());
                group_metrics(&format!("{name} {label}{unit}"), &members, &settings.bootstrap)
            })
            .collect::<Vec<_>>()
    };
    groups.extend(breakdown("contrast", "", &settings.contrast_edges, &|l| l.contrast));
    groups.extend(breakdown("length", " mm", &settings.length_edges_mm, &|l| l.length_mm));
    // The subject's lesion volume (a subject with two lesions counts them together).
    let mut sizes: BTreeMap<(i64, String), Vec<&SubjectResult>> = BTreeMap::new();
    for r in results.iter().filter(|r| r.has_lesion()) {
        let voxels = r.lesion_voxels_in_cord as f64;
        sizes.entry((voxels as i64, bin_label(voxels, &settings.size_edges_voxels))).or_default().push(r);
    }
    let mut merged: Vec<(String, Vec<&SubjectResult>)> = Vec::new();
    for ((_, label), members) in sizes {
        match merged.iter_mut().find(|(l, _)| *l == label) {
            Some((_, existing)) => existing.extend(members),
            None => merged.push((label, members)),
        }
    }
    for (label, mut members) in merged {
        members.extend(lesion_free.iter().copied());
        groups.push(group_metrics(&format!("size {label} voxels"), &members, &settings.bootstrap));
    }
    // Lesions that reach the cord's boundary: what keeps the edge out must not erase them.
    for (name, at_edge) in [("lesion at the cord edge", true), ("lesion inside the cord", false)] {
        let mut members: Vec<&SubjectResult> = results.iter().filter(|r| r.has_lesion() && r.lesion_at_edge == at_edge).collect();
        if !members.is_empty() {
            members.extend(lesion_free.iter().copied());
            groups.push(group_metrics(name, &members, &settings.bootstrap));
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::test_fixtures::subject;

    #[test]
    fn bins_are_half_open_with_a_closed_last_bin() {
        let edges = [1.3, 1.6, 2.0, 3.0];
        assert_eq!(bin_label(1.3, &edges), "1.3-1.6");
        assert_eq!(bin_label(1.6, &edges), "1.6-2");
        assert_eq!(bin_label(2.99, &edges), "2-3");
        assert_eq!(bin_label(3.0, &edges), "2-3");
        assert_eq!(bin_label(1.2, &edges), "<1.3");
        assert_eq!(bin_label(3.5, &edges), ">3");
        assert_eq!(bin_label(7.0, &[3.0, 6.0, 10.0, 15.0]), "6-10");
    }

    #[test]
    fn groups_count_calls_as_documented() {
        use LevelCall::*;
        let n = (false, Negative);
        let results = vec![
            // Lesion at C5/C6 found; a false positive at C2/C3.
            subject("sub-1", true, 1.5, [(false, Positive), n, n, (true, Positive), n, n], true),
            // Lesion at C3/C4 missed (indeterminate); C7/T1 out of view.
            subject("sub-2", true, 2.5, [n, (true, Indeterminate), n, n, n, (false, OutOfFieldOfView)], false),
            // Lesion-free, all negative.
            subject("sub-3", false, 0.0, [n, n, n, n, n, n], false),
        ];
        let groups = evaluate_groups(&results, &EvaluationSettings { bootstrap: BootstrapConfig { resamples: 50, ..Default::default() }, ..Default::default() });
        let names: Vec<&str> = groups.iter().map(|g| g.group.as_str()).collect();
        assert_eq!(
            names,
            ["all", "every lesion at 1.3-2x", "contrast 1.3-1.6", "contrast 2-3", "length 3-6 mm", "size <15 voxels", "lesion inside the cord"]
        );
        let all = &groups[0];
        assert_eq!((all.subjects, all.lesion_subjects), (3, 2));
        let s = &all.segment;
        assert_eq!((s.units, s.positive_units, s.indeterminate, s.out_of_fov, s.out_of_fov_with_lesion), (17, 2, 1, 1, 0));
        assert_eq!(s.summary.counts, ConfusionCounts { true_positives: 1, false_positives: 1, true_negatives: 14, false_negatives: 1 });
        assert_eq!(s.summary.f1.value, Some(0.5));
        // Segment scores: lesion segments score 1 + i/10, the others i/10: perfectly separated.
        assert_eq!(s.auroc, Some(1.0));
        let p = &all.patient;
        assert_eq!(p.summary.counts, ConfusionCounts { true_positives: 1, false_positives: 0, true_negatives: 1, false_negatives: 1 });
        assert_eq!((p.summary.precision.value, p.summary.recall.value, p.summary.specificity.value), (Some(1.0), Some(0.5), Some(1.0)));
        // Pixels pooled: 4 + 4 + 2 voxels, 4 lesion voxels.
        assert_eq!((all.pixel.cord_voxels, all.pixel.lesion_voxels), (10, 4));
        // Candidates: TP 2, FP 3, FN 3 -> Dice 4 / 10.
        assert_eq!(all.pixel.dice_candidates, Some(0.4));
        // Each lesion subject alone: AP = (0.5 x 1) + (0.5 x 2/3) = 5/6.
        assert!((all.pixel.mean_subject_auprc.unwrap() - 5.0 / 6.0).abs() < 1e-12);
        // The targets' range (1.3-2x): sub-1 (1.5x) and the lesion-free sub-3, not sub-2 (2.5x).
        let targeted = &groups[1];
        assert_eq!((targeted.subjects, targeted.lesion_subjects), (2, 1));
        assert_eq!(targeted.patient.summary.recall.value, Some(1.0));
        // The high-contrast bin: sub-2 and the lesion-free sub-3; nothing found.
        let high = &groups[3];
        assert_eq!((high.subjects, high.lesion_subjects), (2, 1));
        assert_eq!(high.patient.summary.recall.value, Some(0.0));
        assert_eq!(high.segment.summary.f1.value, Some(0.0));
    }
}
