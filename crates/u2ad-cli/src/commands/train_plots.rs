//! The figures of a training run (PNG, plotters' bitmap backend, text in DejaVu Sans embedded in
//! the binary so no system font is needed):
//!
//! * `training.png`: the paper's training-dynamics figure: loss per epoch (log scale) and, when
//!   the run refreshed its uncertainty maps, the cohort-mean EU and AU at each refresh, with the
//!   stage boundaries marked;
//! * `reconstruction.png`: input, mask, reconstruction and error of one slice;
//! * `uncertainty.png`: input, EU, AU and anomaly candidates of one slice (adaptation).

use std::path::Path;
use std::sync::Once;

use anyhow::{anyhow, Context as _};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};
use u2ad_model::records::{History, Stage};
use u2ad_model::train::ExampleReconstruction;

const FONT: &str = "sans-serif";

fn fonts() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        let regular = dejavu::sans::regular();
        let bold = dejavu::sans::bold();
        let _ = register_font(FONT, FontStyle::Normal, regular);
        let _ = register_font(FONT, FontStyle::Bold, bold);
        let _ = register_font(FONT, FontStyle::Oblique, regular);
        let _ = register_font(FONT, FontStyle::Italic, regular);
    });
}

/// Draws into a temporary sibling of `path` and renames it to `path` once complete.
fn draw_png(path: &Path, size: (u32, u32), draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> anyhow::Result<()>) -> anyhow::Result<()> {
    fonts();
    let tmp = u2ad_core::staging::temporary_sibling(path)?;
    let result = (|| {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        draw(&root)?;
        root.present().map_err(|e| anyhow!("{e}"))
    })();
    result.and_then(|()| std::fs::rename(&tmp, path).map_err(Into::into)).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        e
    })
    .with_context(|| format!("{}: cannot write the figure", path.display()))
}

fn stage_colour(stage: Stage) -> RGBColor {
    match stage {
        Stage::Pretrain => RGBColor(31, 119, 180),
        Stage::EuGuided => RGBColor(44, 160, 44),
        Stage::AuGuided => RGBColor(214, 39, 40),
    }
}

/// Range of positive values, padded for a log axis.
fn log_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values.filter(|v| *v > 0.0 && v.is_finite()).fold((f64::INFINITY, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return 1e-6..1.0;
    }
    let (lo, hi) = if hi / lo < 1.5 { (lo / 1.5, hi * 1.5) } else { (lo / 1.15, hi * 1.15) };
    lo..hi
}

/// `training.png` (module documentation).
pub fn training_figure(history: &History, path: &Path) -> anyhow::Result<()> {
    let panels = if history.refreshes.is_empty() { 1 } else { 3 };
    let total = history.epochs.last().map_or(1, |r| r.epoch).max(1) as f64;
    let boundaries = history.stage_boundaries();
    draw_png(path, (1100, 340 * panels as u32 + 40), |root| {
        let err = |e: DrawingAreaErrorKind<_>| anyhow!("{e}");
        let (title, body) = root.split_vertically(40);
        let stages: Vec<&str> = {
            let mut s: Vec<&str> = history.epochs.iter().map(|r| r.stage.name()).collect();
            s.dedup();
            s
        };
        title
            .titled(&format!("Training dynamics ({} epochs: {})", total, stages.join(" → ")), (FONT, 22).into_font().style(FontStyle::Bold))
            .map_err(err)?;
        let areas = body.split_evenly((panels, 1));

        // Loss per epoch.
        let range = log_range(history.epochs.iter().map(|r| r.loss));
        let mut chart = ChartBuilder::on(&areas[0])
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .caption("loss per epoch (10·image MSE + edge MSE)", (FONT, 18))
            .build_cartesian_2d(0f64..total, range.clone().log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("loss")
            .y_label_formatter(&|v| format!("{v:.2e}"))
            .label_style((FONT, 14))
            .draw()
            .map_err(err)?;
        for stage in [Stage::Pretrain, Stage::EuGuided, Stage::AuGuided] {
            let points: Vec<(f64, f64)> =
                history.epochs.iter().filter(|r| r.stage == stage).map(|r| (r.epoch as f64, r.loss)).collect();
            if points.is_empty() {
                continue;
            }
            let colour = stage_colour(stage);
            chart
                .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
                .map_err(err)?
                .label(stage.name())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled()))).map_err(err)?;
        }
        draw_boundaries(&mut chart, &boundaries, range.start, range.end).map_err(err)?;
        chart
            .configure_series_labels()
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(err)?;

        if panels == 3 {
            let series: [(&str, &str, Box<dyn Fn(&u2ad_model::records::RefreshRecord) -> f64>); 2] = [
                ("mean epistemic uncertainty (MC variance) over the cord + CSF", "mean EU", Box::new(|r| r.mean_eu)),
                ("mean aleatoric uncertainty |x − μ| over the cord + CSF", "mean AU", Box::new(|r| r.mean_au)),
            ];
            for (area, (caption, label, value)) in areas[1..].iter().zip(series) {
                let range = log_range(history.refreshes.iter().map(|r| value(r)));
                let mut chart = ChartBuilder::on(area)
                    .margin(12)
                    .x_label_area_size(40)
                    .y_label_area_size(80)
                    .caption(format!("{caption}, at each refresh"), (FONT, 18))
                    .build_cartesian_2d(0f64..total, range.clone().log_scale())
                    .map_err(err)?;
                chart
                    .configure_mesh()
                    .x_desc("epochs done")
                    .y_desc(label)
                    .y_label_formatter(&|v| format!("{v:.2e}"))
                    .label_style((FONT, 14))
                    .draw()
                    .map_err(err)?;
                let points: Vec<(f64, f64)> = history.refreshes.iter().map(|r| (r.epoch as f64, value(r))).collect();
                let colour = RGBColor(120, 60, 160);
                chart.draw_series(LineSeries::new(points.clone(), colour.stroke_width(2))).map_err(err)?;
                chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, colour.filled()))).map_err(err)?;
                draw_boundaries(&mut chart, &boundaries, range.start, range.end).map_err(err)?;
            }
        }
        Ok(())
    })
}

type LogChart<'a, 'b> = ChartContext<'a, BitMapBackend<'b>, Cartesian2d<plotters::coord::types::RangedCoordf64, LogCoord<f64>>>;

fn draw_boundaries(
    chart: &mut LogChart<'_, '_>,
    boundaries: &[(usize, Stage)],
    lo: f64,
    hi: f64,
) -> Result<(), DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>> {
    for &(epoch, stage) in boundaries {
        let x = epoch as f64;
        chart.draw_series(DashedLineSeries::new(vec![(x, lo), (x, hi)], 6, 4, BLACK.mix(0.6).stroke_width(1)))?;
        chart.draw_series(std::iter::once(Text::new(format!("→ {}", stage.name()), (x, hi / (hi / lo).powf(0.08)), (FONT, 14))))?;
    }
    Ok(())
}

/// Grey level of a value in [0, 1].
fn grey(v: f32) -> RGBColor {
    let g = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    RGBColor(g, g, g)
}

/// A black-red-yellow-white colour map of a value in [0, 1].
fn heat(v: f32) -> RGBColor {
    let v = v.clamp(0.0, 1.0);
    let r = (v * 3.0).min(1.0);
    let g = (v * 3.0 - 1.0).clamp(0.0, 1.0);
    let b = (v * 3.0 - 2.0).clamp(0.0, 1.0);
    RGBColor((r * 255.0) as u8, (g * 255.0) as u8, (b * 255.0) as u8)
}

/// Draws one `side × side` panel, each pixel `scale × scale`, with a caption above.
fn panel(area: &DrawingArea<BitMapBackend<'_>, Shift>, caption: &str, side: usize, scale: usize, colour: impl Fn(usize) -> RGBColor) -> anyhow::Result<()> {
    let err = |e: DrawingAreaErrorKind<_>| anyhow!("{e}");
    let (top, image) = area.split_vertically(30);
    top.draw(&Text::new(caption.to_string(), (6, 6), (FONT, 17))).map_err(err)?;
    for j in 0..side * side {
        let c = colour(j);
        let (r, col) = ((j / side) * scale, (j % side) * scale);
        for dy in 0..scale {
            for dx in 0..scale {
                image.draw_pixel(((col + dx) as i32, (r + dy) as i32), &c).map_err(err)?;
            }
        }
    }
    Ok(())
}

/// The value below which `q` of the positive values lie (for colour scales), at least `floor`.
fn upper_scale(values: &[f32], q: f64, floor: f32) -> f32 {
    let mut v: Vec<f32> = values.iter().copied().filter(|&x| x > 0.0).collect();
    if v.is_empty() {
        return floor;
    }
    v.sort_by(f32::total_cmp);
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i].max(floor)
}

const SCALE: usize = 2;

/// `reconstruction.png`: input | masked input | reconstruction (input on visible patches) |
/// error on the masked patches.
pub fn reconstruction_figure(example: &ExampleReconstruction, title: &str, path: &Path) -> anyhow::Result<()> {
    let side = example.side;
    let size = (side * SCALE) as u32;
    let grid = u2ad_model::PatchGrid { image_size: side, patch_size: example.patch_size };
    let mut masked_pixel = vec![false; side * side];
    for i in (0..grid.num_patches()).filter(|&i| example.mask[i]) {
        for j in grid.pixels_of(i) {
            masked_pixel[j] = true;
        }
    }
    let pasted = example.pasted();
    let error: Vec<f32> =
        (0..side * side).map(|j| if masked_pixel[j] { (example.reconstruction[j] - example.image[j]).abs() } else { 0.0 }).collect();
    let error_max = upper_scale(&error, 0.99, 0.05);
    let masked_count = example.mask.iter().filter(|&&m| m).count();
    draw_png(path, (size * 4 + 30, size + 30 + 40), |root| {
        let err = |e: DrawingAreaErrorKind<_>| anyhow!("{e}");
        let (top, body) = root.split_vertically(40);
        top.titled(title, (FONT, 20).into_font().style(FontStyle::Bold)).map_err(err)?;
        let areas = body.split_evenly((1, 4));
        panel(&areas[0], "input", side, SCALE, |j| grey(example.image[j]))?;
        panel(&areas[1], &format!("mask ({masked_count} patches hidden)"), side, SCALE, |j| {
            if masked_pixel[j] {
                RGBColor(40, 90, 160)
            } else {
                grey(example.image[j])
            }
        })?;
        panel(&areas[2], "reconstruction", side, SCALE, |j| grey(pasted[j]))?;
        panel(&areas[3], &format!("|error| on masked (0–{error_max:.2})"), side, SCALE, |j| heat(error[j] / error_max))?;
        Ok(())
    })
}

/// `uncertainty.png`: input | EU | AU | anomaly candidates over the input.
pub fn uncertainty_figure(
    image: &[f32],
    epistemic: &[f32],
    aleatoric: &[f32],
    candidates: &[f32],
    side: usize,
    title: &str,
    path: &Path,
) -> anyhow::Result<()> {
    let size = (side * SCALE) as u32;
    let eu_max = upper_scale(epistemic, 0.99, 1e-6);
    let au_max = upper_scale(aleatoric, 0.99, 1e-3);
    draw_png(path, (size * 4 + 30, size + 30 + 40), |root| {
        let err = |e: DrawingAreaErrorKind<_>| anyhow!("{e}");
        let (top, body) = root.split_vertically(40);
        top.titled(title, (FONT, 20).into_font().style(FontStyle::Bold)).map_err(err)?;
        let areas = body.split_evenly((1, 4));
        panel(&areas[0], "input", side, SCALE, |j| grey(image[j]))?;
        panel(&areas[1], &format!("EU (0–{eu_max:.1e})"), side, SCALE, |j| heat(epistemic[j] / eu_max))?;
        panel(&areas[2], &format!("AU (0–{au_max:.2})"), side, SCALE, |j| heat(aleatoric[j] / au_max))?;
        panel(&areas[3], "anomaly candidates (red)", side, SCALE, |j| {
            if candidates[j] > 0.0 {
                RGBColor(230, 30, 30)
            } else {
                grey(image[j])
            }
        })?;
        Ok(())
    })
}
