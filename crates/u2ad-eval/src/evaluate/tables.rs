//! The evaluation tables: one row per metric for the long CSV ([`metric_rows`]), the full
//! Markdown report ([`markdown_report`]) and the headline table ([`headline_markdown`]).

use std::path::PathBuf;

use serde::Serialize;

use super::groups::GroupMetrics;
use super::hosts::HostFalsePositives;
use crate::metrics::{ConfusionSummary, Estimate};

/// One evaluated method: its name, its detection folder and its groups.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MethodEvaluation {
    pub method: String,
    pub detections: PathBuf,
    pub groups: Vec<GroupMetrics>,
    /// False positives per host ([`host_false_positives`](super::host_false_positives)).
    pub hosts: Vec<HostFalsePositives>,
}

/// One row of the long CSV.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricRow {
    pub method: String,
    pub group: String,
    pub subjects: usize,
    pub lesion_subjects: usize,
    /// "pixel", "segment" or "patient".
    pub unit: &'static str,
    pub metric: &'static str,
    pub value: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    /// How many units the metric counts (voxels, segments, patients).
    pub n: usize,
    pub note: String,
}

/// Every metric of every method and group, one per row.
pub fn metric_rows(methods: &[MethodEvaluation]) -> Vec<MetricRow> {
    let mut rows = Vec::new();
    for m in methods {
        for g in &m.groups {
            let mut push = |unit: &'static str, metric: &'static str, value: Option<f64>, ci: Option<(f64, f64)>, n: usize, note: String| {
                rows.push(MetricRow {
                    method: m.method.clone(),
                    group: g.group.clone(),
                    subjects: g.subjects,
                    lesion_subjects: g.lesion_subjects,
                    unit,
                    metric,
                    value,
                    ci_low: ci.map(|c| c.0),
                    ci_high: ci.map(|c| c.1),
                    n,
                    note,
                });
            };
            let p = &g.pixel;
            push("pixel", "auroc", p.auroc, None, p.cord_voxels, format!("{} lesion voxels", p.lesion_voxels));
            push("pixel", "auprc", p.auprc, None, p.cord_voxels, format!("{} lesion voxels", p.lesion_voxels));
            push("pixel", "mean_subject_auprc", p.mean_subject_auprc, None, g.lesion_subjects, "per lesion subject, averaged".into());
            push("pixel", "dice_candidates", p.dice_candidates, None, p.cord_voxels, "candidate mask (no labels used)".into());
            push(
                "pixel",
                "best_dice_oracle",
                p.best_dice_oracle.map(|b| b.dice),
                None,
                p.cord_voxels,
                p.best_dice_oracle.map(|b| format!("ORACLE: threshold {} chosen on the truth", b.threshold)).unwrap_or_default(),
            );
            for (unit, d) in [("segment", &g.segment), ("patient", &g.patient)] {
                let ci = |e: &Estimate| e.interval.map(|i| (i.low, i.high));
                let s = &d.summary;
                let counts = format!(
                    "TP {} FP {} TN {} FN {}; {} bootstrap resamples",
                    s.counts.true_positives, s.counts.false_positives, s.counts.true_negatives, s.counts.false_negatives, s.resamples
                );
                push(unit, "precision", s.precision.value, ci(&s.precision), d.units, counts.clone());
                push(unit, "recall", s.recall.value, ci(&s.recall), d.units, counts.clone());
                push(unit, "specificity", s.specificity.value, ci(&s.specificity), d.units, counts.clone());
                push(unit, "f1", s.f1.value, ci(&s.f1), d.units, counts);
                let extra = if unit == "segment" {
                    format!("{} indeterminate; {} out of view ({} with a lesion) left out", d.indeterminate, d.out_of_fov, d.out_of_fov_with_lesion)
                } else {
                    String::new()
                };
                push(unit, "auroc", d.auroc, None, d.units, extra.clone());
                push(unit, "auprc", d.auprc, None, d.units, extra);
            }
        }
    }
    rows
}

fn value(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "–".into())
}

fn with_interval(e: &Estimate) -> String {
    match (e.value, e.interval) {
        (Some(v), Some(i)) => format!("{v:.3} [{:.2}, {:.2}]", i.low, i.high),
        (v, _) => value(v),
    }
}

/// The full Markdown report: pixel, segment and patient tables, every method and group.
pub fn markdown_report(methods: &[MethodEvaluation]) -> String {
    let mut out = String::new();
    let confidence = methods.first().and_then(|m| m.groups.first()).map(|g| g.segment.summary.confidence).unwrap_or(0.95);
    out.push_str("### Pixel level (native grid, inside the cord mask)\n\n");
    out.push_str("| method | group | subjects (lesion) | lesion voxels | AUROC | AUPRC | mean subject AUPRC | Dice (candidates) | best Dice (oracle) |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for m in methods {
        for g in &m.groups {
            let p = &g.pixel;
            out.push_str(&format!(
                "| {} | {} | {} ({}) | {} | {} | {} | {} | {} | {} |\n",
                m.method,
                g.group,
                g.subjects,
                g.lesion_subjects,
                p.lesion_voxels,
                value(p.auroc),
                value(p.auprc),
                value(p.mean_subject_auprc),
                value(p.dice_candidates),
                value(p.best_dice_oracle.map(|b| b.dice))
            ));
        }
    }
    out.push_str("\nBest Dice is an oracle: its threshold is chosen on the truth. Dice (candidates) is what the method marks without labels.\n");
    for (title, unit) in [("Segment level (disc levels in the field of view)", "segment"), ("Patient level", "patient")] {
        out.push_str(&format!(
            "\n### {title}: {:.0} % bootstrap intervals over subjects\n\n| method | group | {unit}s (lesion) | precision | recall | specificity | F1 | AUROC | AUPRC |\n|---|---|---|---|---|---|---|---|---|\n",
            confidence * 100.0
        ));
        for m in methods {
            for g in &m.groups {
                let d = if unit == "segment" { &g.segment } else { &g.patient };
                let s = &d.summary;
                out.push_str(&format!(
                    "| {} | {} | {} ({}) | {} | {} | {} | {} | {} | {} |\n",
                    m.method,
                    g.group,
                    d.units,
                    d.positive_units,
                    with_interval(&s.precision),
                    with_interval(&s.recall),
                    with_interval(&s.specificity),
                    with_interval(&s.f1),
                    value(d.auroc),
                    value(d.auprc)
                ));
            }
        }
    }
    let indeterminate: usize = methods.iter().filter_map(|m| m.groups.first()).map(|g| g.segment.indeterminate).sum();
    let out_of_fov: usize = methods.iter().filter_map(|m| m.groups.first()).map(|g| g.segment.out_of_fov_with_lesion).sum();
    out.push_str(&format!(
        "\nCalls: `positive` counts as positive; `negative`, `indeterminate` ({indeterminate} segments over all methods) and patient `not_assessed` do not; \
         segments out of the field of view are left out ({out_of_fov} of them hold a lesion). Breakdown groups hold the lesion subjects of the bin and every lesion-free subject.\n"
    ));
    out
}

/// The headline table: one row per method and group: pixel AUPRC, segment F1, patient F1.
pub fn headline_markdown(methods: &[MethodEvaluation]) -> String {
    let mut out = String::from(
        "| method | group | pixel AUPRC | segment AUROC | segment AUPRC | segment F1 | patient F1 | patient FPR | indeterminate |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for m in methods {
        for g in m.groups.iter().filter(|g| !g.group.starts_with("length") && !g.group.starts_with("size")) {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                m.method,
                g.group,
                value(g.pixel.auprc),
                value(g.segment.auroc),
                value(g.segment.auprc),
                with_interval(&g.segment.summary.f1),
                with_interval(&g.patient.summary.f1),
                false_positive_rate(&g.patient.summary),
                g.segment.indeterminate
            ));
        }
    }
    out
}

/// Lesion-free patients called positive: "FP/negatives (rate)".
fn false_positive_rate(summary: &ConfusionSummary) -> String {
    let c = summary.counts;
    let negatives = c.false_positives + c.true_negatives;
    if negatives == 0 {
        return "n/a".into();
    }
    format!("{}/{} ({:.2})", c.false_positives, negatives, c.false_positives as f64 / negatives as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::test_fixtures::subject;
    use crate::evaluate::{evaluate_groups, EvaluationSettings, LevelCall};

    #[test]
    fn markdown_marks_the_oracle_and_shows_intervals() {
        let results = vec![subject("sub-1", true, 1.5, [(false, LevelCall::Negative); 6], true)];
        let groups = evaluate_groups(&results, &EvaluationSettings::default());
        let methods = vec![MethodEvaluation { method: "intensity".into(), detections: "d".into(), groups, hosts: vec![] }];
        let text = markdown_report(&methods);
        assert!(text.contains("best Dice (oracle)"), "{text}");
        // Pixel row: the cord's lesion voxels (2), AUROC 3/4, AP 5/6, candidate Dice 2/4, best Dice 4/5.
        assert!(text.contains("| intensity | all | 1 (1) | 2 | 0.750 | 0.833 | 0.833 | 0.500 | 0.800 |"), "{text}");
        assert!(text.contains("| intensity | all | 1 (1) | 1.000 [1.00, 1.00] | 1.000 [1.00, 1.00] | – | 1.000 [1.00, 1.00] |"), "{text}");
        let rows = metric_rows(&methods);
        let oracle = rows.iter().find(|r| r.metric == "best_dice_oracle" && r.group == "all").unwrap();
        assert!(oracle.note.starts_with("ORACLE"));
        assert!(headline_markdown(&methods).contains("| intensity | contrast 1.3-1.6 |"));
    }
}
