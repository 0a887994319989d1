//! A subject's figures in the detection folder: the mid-sagittal maps and the anomaly curve
//! (PNG, each with a JSON sidecar), and their entries in the QC report.

use std::path::Path;

use serde_json::json;
use u2ad_core::dataset::SAMPLE_SIZE;
use u2ad_core::detect_outputs::{vertebra_lines, SampleResult};
use u2ad_core::level_scores::OutsideRegion;
use u2ad_io::staging::StagedWrites;
use u2ad_report::figures::{curve_figure, format_value, maps_figure, CurveData, LevelSpan, OverlayLimits, RowLine, SliceFigureMaps};
use u2ad_report::html::ReportFigure;

use super::tables::{merged, position_mm, row_segment, CalledSubject};
use super::{CohortFolder, SubjectResult};
use crate::sidecar::stage_sidecar;

/// The colour limits of the EU and AU overlays: the cohort's 99th percentiles.
pub(super) fn cohort_limits(detected: &[SubjectResult]) -> OverlayLimits {
    OverlayLimits { epistemic: cohort_limit(detected, |s| &s.epistemic), aleatoric: cohort_limit(detected, |s| &s.aleatoric) }
}

/// The 99th percentile of the nonzero values of the mid-sagittal maps of the cohort.
fn cohort_limit(detected: &[SubjectResult], pick: impl Fn(&SampleResult) -> &Vec<f32>) -> f32 {
    let mut values: Vec<f64> = detected
        .iter()
        .filter_map(|d| d.mid.as_ref())
        .flat_map(|(s, _)| pick(s).iter().filter(|&&v| v > 0.0).map(|&v| v as f64).collect::<Vec<_>>())
        .collect();
    values.sort_by(f64::total_cmp);
    u2ad_core::scoring::percentile_of_sorted(&values, 99.0).unwrap_or(0.0) as f32
}

/// `path` relative to the output folder, `/`-separated (a figure's address in the report).
fn report_address(out: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(out).unwrap_or(path);
    relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>().join("/")
}

/// Draws and stages a subject's maps figure (when it has a mid-sagittal sample) and curve
/// figure, with their sidecars; returns them for the report.
pub(super) fn write_subject_figures(
    staged: &StagedWrites,
    folder: &CohortFolder<'_>,
    s: &CalledSubject<'_>,
    limits: OverlayLimits,
) -> anyhow::Result<Vec<ReportFigure>> {
    let (d, decision, calls, provenance) = (s.result, s.decision, &s.calls, &s.provenance);
    let scores = &d.scored.scores;
    let row_segment = row_segment(d);
    let position = |row: f64| position_mm(d, folder, row);
    let lines = vertebra_lines(&row_segment);
    let mut figures = Vec::new();
    let method = folder.method.map(|m| format!(" ({m})")).unwrap_or_default();
    let title = format!(
        "{}{method}: patient score {}, {}{}",
        d.subject,
        scores.patient_score.map(format_value).unwrap_or_else(|| "none".into()),
        calls.patient_call.replace('_', " "),
        match calls.positive_places() {
            places if places.is_empty() => String::new(),
            places => format!(" ({})", places.join(", ")),
        }
    );
    if let Some((sample, candidates)) = &d.mid {
        let slice = SliceFigureMaps {
            rows: SAMPLE_SIZE,
            cols: SAMPLE_SIZE,
            image: sample.image.clone(),
            reconstruction: sample.mean.clone(),
            epistemic: sample.epistemic.clone(),
            aleatoric: sample.aleatoric.clone(),
            cord: sample.cord.clone(),
            candidates: candidates.filtered_au.iter().map(|&v| u8::from(v != 0.0)).collect(),
        };
        let row_lines: Vec<RowLine> = lines.iter().map(|(r, n)| RowLine { row: *r as f64, label: n.clone() }).collect();
        let slice_title = format!("{title} · slice {} ({:+.1} mm from mid)", sample.meta.native_slice, sample.meta.offset_from_mid_mm);
        let png = maps_figure(&slice, &row_lines, limits, &slice_title)?;
        staged.write(&d.outputs.maps_figure(), &png)?;
        stage_sidecar(
            staged,
            &d.outputs.maps_figure(),
            merged(json!({"Description": "Mid-sagittal sample (largest eroded cord): image with the cord outlined, mean reconstruction, EU and AU overlays (cohort 99th-percentile colour limits), candidates outlined in magenta, vertebral centres in green", "ColourLimits": {"EU": limits.epistemic, "AU": limits.aleatoric}}), provenance),
        )?;
        figures.push(ReportFigure {
            caption: format!(
                "Native sagittal slice {}: image (cord outlined), mean reconstruction, EU (0 to {}), AU (0 to {}) with the anomaly candidates outlined; green lines: vertebral centres",
                sample.meta.native_slice,
                format_value(limits.epistemic as f64),
                format_value(limits.aleatoric as f64)
            ),
            png,
            file: report_address(folder.out, &d.outputs.maps_figure()),
        });
    }
    let level_spans: Vec<LevelSpan> = decision
        .segments
        .iter()
        .filter_map(|s| {
            let rows: Vec<usize> = (0..SAMPLE_SIZE).filter(|&r| row_segment[r] == s.level.code()).collect();
            let (first, last) = (*rows.first()?, *rows.last()?);
            let peak = scores.segment(s.level).and_then(|x| x.peak()).map(|p| (p.peak_position_mm, p.score));
            Some(LevelSpan {
                name: s.level.name().to_string(),
                start_mm: position(first as f64),
                end_mm: position(last as f64 + 1.0),
                threshold: s.threshold,
                peak,
                call: s.call.label().to_string(),
            })
        })
        .collect();
    let outside_spans = decision.outside_levels.iter().filter_map(|region| {
        let peak_row = scores.outside_levels.iter().find(|o| o.region == region.region)?.peak_row_px;
        let rows = outside_rows(region.region, &row_segment, &scores.curve.values)?;
        Some(LevelSpan {
            name: region.region.name().to_string(),
            start_mm: position(*rows.start() as f64),
            end_mm: position(*rows.end() as f64 + 1.0),
            threshold: region.threshold,
            peak: Some((position(peak_row as f64), region.score)),
            call: region.call.label().to_string(),
        })
    });
    let level_spans: Vec<LevelSpan> = level_spans.into_iter().chain(outside_spans).collect();
    let curve = CurveData {
        positions_mm: (0..SAMPLE_SIZE).map(|r| position(r as f64)).collect(),
        values: scores.curve.values.clone(),
        boundaries: lines.iter().map(|(r, n)| (position(*r as f64), n.clone())).collect(),
        levels: level_spans,
    };
    let png = curve_figure(&curve, &format!("{title} · anomaly curve"))?;
    staged.write(&d.outputs.curve_figure(), &png)?;
    stage_sidecar(
        staged,
        &d.outputs.curve_figure(),
        merged(json!({"Description": "Anomaly curve along the cord with the vertebral centres (green), each level's threshold (red dashes) and its peak coloured by its call"}), provenance),
    )?;
    figures.push(ReportFigure {
        caption: "Anomaly curve: blue, the curve; green dashes, vertebral centres; red dashes, each level's threshold (and that of the cord above and below the levels); dots, each level's peak (red positive, grey negative, orange indeterminate)".into(),
        png,
        file: report_address(folder.out, &d.outputs.curve_figure()),
    });
    Ok(figures)
}

/// The rows of the cord above the first level or below the last that the curve sees (first to
/// last), or `None` when it sees none there.
fn outside_rows(region: OutsideRegion, row_segment: &[u8], curve: &[Option<f64>]) -> Option<std::ops::RangeInclusive<usize>> {
    let seen: Vec<usize> = (0..curve.len()).filter(|&r| region.holds(r, row_segment) && curve[r].is_some()).collect();
    Some(*seen.first()?..=*seen.last()?)
}
