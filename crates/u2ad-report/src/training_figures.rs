//! The figures of a training run (`u2ad pretrain`, `u2ad adapt`), written as PNG files by
//! plotters' bitmap backend, text in the embedded DejaVu Sans:
//!
//! * [`training_figure`] (`training.png`): the paper's training-dynamics figure: loss per epoch
//!   (log scale) and, when the run refreshed its uncertainty maps, the cohort-mean EU and AU at
//!   each refresh, with the stage boundaries marked;
//! * [`reconstruction_figure`] (`reconstruction.png`): input, mask, reconstruction and error of one
//!   slice;
//! * [`uncertainty_figure`] (`uncertainty.png`): input, EU, AU and anomaly candidates of one slice
//!   (adaptation).
//!
//! Each writes the file at the path it is given; the caller stages it (writes a temporary sibling
//! and renames it), since a failed figure may leave a partial file. The path's extension picks
//! the format, so it must end in `.png`.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::colour::{grey, heat};
use crate::figures::{fail, register_font, FONT};
use crate::FigureError;

/// A stage of a training run as the training figure shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrainingStage<'a> {
    /// Position of the stage in the training pipeline (0 pretraining, 1 EU-guided adaptation,
    /// 2 AU-guided adaptation): the loss series are drawn in this order, and it picks the colour.
    pub order: usize,
    /// Its name, in the legend, the title and at the stage boundaries.
    pub name: &'a str,
}

/// The loss of one training epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochLoss<'a> {
    /// Epochs done, counting this one (1-based).
    pub epoch: usize,
    pub stage: TrainingStage<'a>,
    pub loss: f64,
}

/// The cohort-mean uncertainties of one refresh of the uncertainty maps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefreshMeans {
    /// Training epochs done before the refresh.
    pub epoch: usize,
    pub mean_eu: f64,
    pub mean_au: f64,
}

/// What [`training_figure`] draws: a run's history.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainingCurves<'a> {
    /// In the order trained.
    pub epochs: Vec<EpochLoss<'a>>,
    /// Empty when the run refreshed no uncertainty maps (pretraining): one panel instead of three.
    pub refreshes: Vec<RefreshMeans>,
    /// Where a stage begins: epochs done before it, and the stage.
    pub boundaries: Vec<(usize, TrainingStage<'a>)>,
}

fn rgb([r, g, b]: [u8; 3]) -> RGBColor {
    RGBColor(r, g, b)
}

/// Draws into a PNG file at `path`.
fn draw_png(
    figure: &str,
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<(), FigureError>,
) -> Result<(), FigureError> {
    register_font();
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(figure, e))?;
    draw(&root)?;
    root.present().map_err(|e| fail(figure, e))
}

/// The colour of a stage's loss series (matplotlib's tab10 blue, green, red).
fn stage_colour(stage: TrainingStage<'_>) -> RGBColor {
    const COLOURS: [RGBColor; 3] = [RGBColor(31, 119, 180), RGBColor(44, 160, 44), RGBColor(214, 39, 40)];
    COLOURS[stage.order % COLOURS.len()]
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

/// Five labelled values spread evenly (on the log scale) over `range`, each rounded to two
/// significant digits. plotters labels a log axis only at powers of ten, so a range inside one
/// decade (the usual loss, EU and AU curves) would get one label or none.
fn log_key_points(range: &std::ops::Range<f64>) -> Vec<f64> {
    const COUNT: i32 = 5;
    let (lo, hi) = (range.start, range.end);
    let mut points: Vec<f64> = (0..COUNT)
        .map(|i| lo * (hi / lo).powf(f64::from(i) / f64::from(COUNT - 1)))
        .filter_map(|v| format!("{v:.1e}").parse::<f64>().ok())
        .filter(|&v| v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9))
        .collect();
    points.dedup_by(|a, b| (*a - *b).abs() <= f64::EPSILON * b.abs());
    points
}

/// `training.png` (module documentation), written at `path`.
pub fn training_figure(curves: &TrainingCurves<'_>, path: &Path) -> Result<(), FigureError> {
    const NAME: &str = "training";
    let panels = if curves.refreshes.is_empty() { 1 } else { 3 };
    let total = curves.epochs.last().map_or(1, |r| r.epoch).max(1) as f64;
    let boundaries = &curves.boundaries;
    // The stages drawn, in pipeline order.
    let mut stage_order: Vec<TrainingStage<'_>> = Vec::new();
    for r in &curves.epochs {
        if !stage_order.iter().any(|s| s.order == r.stage.order) {
            stage_order.push(r.stage);
        }
    }
    stage_order.sort_by_key(|s| s.order);
    draw_png(NAME, path, (1100, 340 * panels as u32 + 40), |root| {
        let err = |e: DrawingAreaErrorKind<_>| fail(NAME, e);
        let (title, body) = root.split_vertically(40);
        let stages: Vec<&str> = {
            let mut s: Vec<&str> = curves.epochs.iter().map(|r| r.stage.name).collect();
            s.dedup();
            s
        };
        title
            .titled(&format!("Training dynamics ({} epochs: {})", total, stages.join(" → ")), (FONT, 22).into_font().style(FontStyle::Bold))
            .map_err(err)?;
        let areas = body.split_evenly((panels, 1));

        // Loss per epoch.
        let range = log_range(curves.epochs.iter().map(|r| r.loss));
        let mut chart = ChartBuilder::on(&areas[0])
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .caption("loss per epoch (10·image MSE + edge MSE)", (FONT, 18))
            .build_cartesian_2d(0f64..total, range.clone().log_scale().with_key_points(log_key_points(&range)))
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("loss")
            .y_label_formatter(&|v| format!("{v:.1e}"))
            .label_style((FONT, 14))
            .draw()
            .map_err(err)?;
        for &stage in &stage_order {
            let points: Vec<(f64, f64)> =
                curves.epochs.iter().filter(|r| r.stage.order == stage.order).map(|r| (r.epoch as f64, r.loss)).collect();
            if points.is_empty() {
                continue;
            }
            let colour = stage_colour(stage);
            chart
                .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
                .map_err(err)?
                .label(stage.name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled()))).map_err(err)?;
        }
        draw_boundaries(&mut chart, boundaries, range.start, range.end).map_err(err)?;
        chart
            .configure_series_labels()
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(err)?;

        if panels == 3 {
            let series: [(&str, &str, Box<dyn Fn(&RefreshMeans) -> f64>); 2] = [
                ("mean epistemic uncertainty (MC variance) over the cord + CSF", "mean EU", Box::new(|r| r.mean_eu)),
                ("mean aleatoric uncertainty |x − μ| over the cord + CSF", "mean AU", Box::new(|r| r.mean_au)),
            ];
            for (area, (caption, label, value)) in areas[1..].iter().zip(series) {
                let range = log_range(curves.refreshes.iter().map(|r| value(r)));
                let mut chart = ChartBuilder::on(area)
                    .margin(12)
                    .x_label_area_size(40)
                    .y_label_area_size(80)
                    .caption(format!("{caption}, at each refresh"), (FONT, 18))
                    .build_cartesian_2d(0f64..total, range.clone().log_scale().with_key_points(log_key_points(&range)))
                    .map_err(err)?;
                chart
                    .configure_mesh()
                    .x_desc("epochs done")
                    .y_desc(label)
                    .y_label_formatter(&|v| format!("{v:.1e}"))
                    .label_style((FONT, 14))
                    .draw()
                    .map_err(err)?;
                let points: Vec<(f64, f64)> = curves.refreshes.iter().map(|r| (r.epoch as f64, value(r))).collect();
                let colour = RGBColor(120, 60, 160);
                chart.draw_series(LineSeries::new(points.clone(), colour.stroke_width(2))).map_err(err)?;
                chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, colour.filled()))).map_err(err)?;
                draw_boundaries(&mut chart, boundaries, range.start, range.end).map_err(err)?;
            }
        }
        Ok(())
    })
}

type LogChart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::combinators::WithKeyPoints<LogCoord<f64>>>>;

fn draw_boundaries(
    chart: &mut LogChart<'_, '_>,
    boundaries: &[(usize, TrainingStage<'_>)],
    lo: f64,
    hi: f64,
) -> Result<(), DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>> {
    for &(epoch, stage) in boundaries {
        let x = epoch as f64;
        chart.draw_series(DashedLineSeries::new(vec![(x, lo), (x, hi)], 6, 4, BLACK.mix(0.6).stroke_width(1)))?;
        chart.draw_series(std::iter::once(Text::new(format!("→ {}", stage.name), (x, hi / (hi / lo).powf(0.08)), (FONT, 14))))?;
    }
    Ok(())
}

/// Draws one `side × side` panel, each pixel `scale × scale`, with a caption above.
fn panel(
    figure: &str,
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    caption: &str,
    side: usize,
    scale: usize,
    colour: impl Fn(usize) -> RGBColor,
) -> Result<(), FigureError> {
    let err = |e: DrawingAreaErrorKind<_>| fail(figure, e);
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

/// An error unless every map has `side × side` values.
fn check_lengths(figure: &str, side: usize, maps: &[(&str, usize)]) -> Result<(), FigureError> {
    for &(what, len) in maps {
        if len != side * side {
            return Err(fail(figure, format!("{what} has {len} values for a {side} x {side} slice")));
        }
    }
    Ok(())
}

const SCALE: usize = 2;

/// The example reconstruction of [`reconstruction_figure`]: one `side × side` slice, row-major.
#[derive(Debug, Clone, Copy)]
pub struct ReconstructionExample<'a> {
    pub side: usize,
    /// The input, in [0, 1].
    pub image: &'a [f32],
    /// The model's output on every pixel.
    pub reconstruction: &'a [f32],
    /// The input on the visible patches, the reconstruction on the masked ones.
    pub pasted: &'a [f32],
    /// Per pixel: inside a masked patch.
    pub masked_pixels: &'a [bool],
    /// Patches masked (for the caption).
    pub masked_patches: usize,
}

/// `reconstruction.png`: input | masked input | reconstruction (input on visible patches) |
/// error on the masked patches; written at `path`.
pub fn reconstruction_figure(example: &ReconstructionExample<'_>, title: &str, path: &Path) -> Result<(), FigureError> {
    const NAME: &str = "reconstruction";
    let side = example.side;
    check_lengths(
        NAME,
        side,
        &[
            ("image", example.image.len()),
            ("reconstruction", example.reconstruction.len()),
            ("pasted", example.pasted.len()),
            ("masked_pixels", example.masked_pixels.len()),
        ],
    )?;
    let size = (side * SCALE) as u32;
    let masked_pixel = example.masked_pixels;
    let pasted = example.pasted;
    let error: Vec<f32> =
        (0..side * side).map(|j| if masked_pixel[j] { (example.reconstruction[j] - example.image[j]).abs() } else { 0.0 }).collect();
    let error_max = upper_scale(&error, 0.99, 0.05);
    let masked_count = example.masked_patches;
    draw_png(NAME, path, (size * 4 + 30, size + 30 + 40), |root| {
        let err = |e: DrawingAreaErrorKind<_>| fail(NAME, e);
        let (top, body) = root.split_vertically(40);
        top.titled(title, (FONT, 20).into_font().style(FontStyle::Bold)).map_err(err)?;
        let areas = body.split_evenly((1, 4));
        panel(NAME, &areas[0], "input", side, SCALE, |j| rgb(grey(example.image[j])))?;
        panel(NAME, &areas[1], &format!("mask ({masked_count} patches hidden)"), side, SCALE, |j| {
            if masked_pixel[j] {
                RGBColor(40, 90, 160)
            } else {
                rgb(grey(example.image[j]))
            }
        })?;
        panel(NAME, &areas[2], "reconstruction", side, SCALE, |j| rgb(grey(pasted[j])))?;
        panel(NAME, &areas[3], &format!("|error| on masked (0–{error_max:.2})"), side, SCALE, |j| rgb(heat(error[j] / error_max)))?;
        Ok(())
    })
}

/// `uncertainty.png`: input | EU | AU | anomaly candidates over the input, of one `side × side`
/// slice (row-major); written at `path`.
pub fn uncertainty_figure(
    image: &[f32],
    epistemic: &[f32],
    aleatoric: &[f32],
    candidates: &[f32],
    side: usize,
    title: &str,
    path: &Path,
) -> Result<(), FigureError> {
    const NAME: &str = "uncertainty";
    check_lengths(
        NAME,
        side,
        &[("image", image.len()), ("epistemic", epistemic.len()), ("aleatoric", aleatoric.len()), ("candidates", candidates.len())],
    )?;
    let size = (side * SCALE) as u32;
    let eu_max = upper_scale(epistemic, 0.99, 1e-6);
    let au_max = upper_scale(aleatoric, 0.99, 1e-3);
    draw_png(NAME, path, (size * 4 + 30, size + 30 + 40), |root| {
        let err = |e: DrawingAreaErrorKind<_>| fail(NAME, e);
        let (top, body) = root.split_vertically(40);
        top.titled(title, (FONT, 20).into_font().style(FontStyle::Bold)).map_err(err)?;
        let areas = body.split_evenly((1, 4));
        panel(NAME, &areas[0], "input", side, SCALE, |j| rgb(grey(image[j])))?;
        panel(NAME, &areas[1], &format!("EU (0–{eu_max:.1e})"), side, SCALE, |j| rgb(heat(epistemic[j] / eu_max)))?;
        panel(NAME, &areas[2], &format!("AU (0–{au_max:.2})"), side, SCALE, |j| rgb(heat(aleatoric[j] / au_max)))?;
        panel(NAME, &areas[3], "anomaly candidates (red)", side, SCALE, |j| {
            if candidates[j] > 0.0 {
                RGBColor(230, 30, 30)
            } else {
                rgb(grey(image[j]))
            }
        })?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRETRAIN: TrainingStage<'static> = TrainingStage { order: 0, name: "pretrain" };
    const EU: TrainingStage<'static> = TrainingStage { order: 1, name: "eu_guided" };

    fn count(img: &image::RgbImage, colour: [u8; 3]) -> usize {
        img.pixels().filter(|p| p.0 == colour).count()
    }

    #[test]
    fn a_log_axis_inside_one_decade_gets_five_labels() {
        // The EU range of a short adaptation: no power of ten inside, so plotters alone draws none.
        assert_eq!(log_key_points(&(0.0031..0.0047)), vec![0.0031, 0.0034, 0.0038, 0.0042, 0.0047]);
        // A loss falling from 0.09 to 0.012: one power of ten inside, still five labels.
        assert_eq!(log_key_points(&(0.012..0.09)), vec![0.012, 0.020, 0.033, 0.054, 0.09]);
    }

    #[test]
    fn a_two_stage_history_draws_three_panels_in_the_stage_colours() {
        // 6 epochs of pretraining, 4 EU-guided, maps refreshed at 6 and 8.
        let epochs = (1..=10)
            .map(|epoch| EpochLoss { epoch, stage: if epoch <= 6 { PRETRAIN } else { EU }, loss: 0.5 / epoch as f64 })
            .collect();
        let curves = TrainingCurves {
            epochs,
            refreshes: vec![RefreshMeans { epoch: 6, mean_eu: 2e-4, mean_au: 0.05 }, RefreshMeans { epoch: 8, mean_eu: 1e-4, mean_au: 0.04 }],
            boundaries: vec![(6, EU)],
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("training.png");
        training_figure(&curves, &path).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!((img.width(), img.height()), (1100, 3 * 340 + 40));
        let (blue, green, red) = (count(&img, [31, 119, 180]), count(&img, [44, 160, 44]), count(&img, [214, 39, 40]));
        assert!(blue > 300, "pretraining series (line, 6 dots, legend) in tab10 blue: {blue}");
        assert!(green > 200, "EU-guided series in tab10 green: {green}");
        assert_eq!(red, 0, "no AU-guided epoch, no red");
        let purple = count(&img, [120, 60, 160]);
        assert!(purple > 200, "the refresh panels' series: {purple}");
        // Only the loss panel when nothing was refreshed.
        let curves = TrainingCurves { refreshes: Vec::new(), ..curves };
        training_figure(&curves, &path).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!((img.width(), img.height()), (1100, 340 + 40));
        assert_eq!(count(&img, [120, 60, 160]), 0);
    }

    #[test]
    fn the_uncertainty_figure_colours_with_heat_and_marks_candidates() {
        let side = 8;
        let n = side * side;
        let image = vec![0.5f32; n];
        let epistemic: Vec<f32> = (0..n).map(|j| if j < n / 2 { 1e-3 } else { 0.0 }).collect();
        let aleatoric = vec![0.0f32; n];
        let candidates: Vec<f32> = (0..n).map(|j| if j == 0 { 1.0 } else { 0.0 }).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("uncertainty.png");
        uncertainty_figure(&image, &epistemic, &aleatoric, &candidates, side, "t", &path).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        let size = (side * SCALE) as u32;
        assert_eq!((img.width(), img.height()), (4 * size + 30, size + 30 + 40));
        // The input grey in the first and last panels, but for one candidate pixel (2 x 2).
        assert_eq!(count(&img, [230, 30, 30]), SCALE * SCALE);
        assert!(count(&img, [128, 128, 128]) >= (2 * n - 1) * SCALE * SCALE);
        // Heat's black where a map is 0: all the AU panel, half the EU panel (the other half at
        // the scale's top, heat's white).
        assert!(count(&img, [0, 0, 0]) >= (n + n / 2) * SCALE * SCALE);
        let mut short = epistemic.clone();
        short.pop();
        let err = uncertainty_figure(&image, &short, &aleatoric, &candidates, side, "t", &path).unwrap_err().to_string();
        assert_eq!(err, "cannot draw figure 'uncertainty': epistemic has 63 values for a 8 x 8 slice");
    }
}
