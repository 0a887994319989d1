//! PNG figures, drawn into an RGB buffer (images and overlays pixel by pixel, lines and text
//! with plotters' bitmap backend and the embedded DejaVu Sans font) and encoded with `image`.

use std::io::Cursor;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::FigureError;

/// Font family name under which DejaVu Sans is registered with plotters.
pub(crate) const FONT: &str = "sans-serif";

/// Registers DejaVu Sans with plotters, once per process, for every figure of the crate: the
/// regular face as the normal, oblique and italic styles, the bold face as bold.
pub(crate) fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let (regular, bold) = (dejavu::sans::regular(), dejavu::sans::bold());
        for (style, face) in [(FontStyle::Normal, regular), (FontStyle::Bold, bold), (FontStyle::Oblique, regular), (FontStyle::Italic, regular)] {
            // The font is compiled in; failing to parse it is a build defect, not a user error.
            plotters::style::register_font(FONT, style, face).unwrap_or_else(|_| panic!("embedded DejaVu Sans does not parse"));
        }
    });
}

pub(crate) fn fail(figure: &str, detail: impl ToString) -> FigureError {
    FigureError { figure: figure.to_string(), detail: detail.to_string() }
}

/// Encodes an RGB buffer as PNG.
pub fn encode_png(rgb: &[u8], width: u32, height: u32, figure: &str) -> Result<Vec<u8>, FigureError> {
    let mut bytes = Vec::new();
    image::write_buffer_with_format(
        &mut Cursor::new(&mut bytes),
        rgb,
        width,
        height,
        image::ExtendedColorType::Rgb8,
        image::ImageFormat::Png,
    )
    .map_err(|e| fail(figure, e))?;
    Ok(bytes)
}

// The colour maps live in [`crate::colour`]; their old paths here keep working.
pub use crate::colour::{hot, jet, ColourMap};
use crate::colour::grey;

// ---------------------------------------------------------------------------------------------
// Slice panels

/// One sagittal slice and its maps, row-major `rows x cols` (row 0 superior, column 0 anterior).
#[derive(Debug, Clone)]
pub struct SliceFigureMaps {
    pub rows: usize,
    pub cols: usize,
    /// Image in [0, 1].
    pub image: Vec<f32>,
    /// Mean reconstruction in [0, 1].
    pub reconstruction: Vec<f32>,
    /// Epistemic uncertainty (variance), 0 outside the eroded cord.
    pub epistemic: Vec<f32>,
    /// Aleatoric uncertainty |image - reconstruction|, 0 outside the eroded cord.
    pub aleatoric: Vec<f32>,
    /// Cord mask (outlined on the image).
    pub cord: Vec<u8>,
    /// Anomaly candidates (outlined on the AU panel).
    pub candidates: Vec<u8>,
}

/// A horizontal line across the panels at a (fractional) row, labelled, e.g. a vertebral centre.
#[derive(Debug, Clone, PartialEq)]
pub struct RowLine {
    pub row: f64,
    pub label: String,
}

/// Upper ends of the overlay colour scales (values at or above get the top colour). Use the
/// same limits for every subject of a cohort so that colours compare between subjects.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OverlayLimits {
    pub epistemic: f32,
    pub aleatoric: f32,
}

/// Layout of [`maps_figure`].
const SCALE: usize = 2;
const GAP: usize = 8;
const HEADER: usize = 26;
const FOOTER: usize = 44;
/// Columns of the slice shown: 100 mm of the 200 mm window, centred on the cord.
pub const PANEL_COLUMNS: usize = 128;

/// The first column of the panel crop: `PANEL_COLUMNS` wide, centred on the cord's mean column.
pub fn crop_start(maps: &SliceFigureMaps) -> usize {
    let width = PANEL_COLUMNS.min(maps.cols);
    let (sum, count) = maps
        .cord
        .iter()
        .enumerate()
        .filter(|(_, &m)| m != 0)
        .fold((0usize, 0usize), |(s, n), (i, _)| (s + i % maps.cols, n + 1));
    let centre = if count == 0 { maps.cols / 2 } else { sum / count };
    centre.saturating_sub(width / 2).min(maps.cols - width)
}

fn is_edge(mask: &[u8], rows: usize, cols: usize, r: usize, c: usize) -> bool {
    if mask[r * cols + c] == 0 {
        return false;
    }
    let outside = |rr: isize, cc: isize| {
        rr < 0 || cc < 0 || rr >= rows as isize || cc >= cols as isize || mask[rr as usize * cols + cc as usize] == 0
    };
    let (r, c) = (r as isize, c as isize);
    outside(r - 1, c) || outside(r + 1, c) || outside(r, c - 1) || outside(r, c + 1)
}

fn blend(base: [u8; 3], over: [u8; 3], alpha: f32) -> [u8; 3] {
    let mix = |a: u8, b: u8| (a as f32 * (1.0 - alpha) + b as f32 * alpha).round() as u8;
    [mix(base[0], over[0]), mix(base[1], over[1]), mix(base[2], over[2])]
}

/// Overlay colour of a map value: transparent below 5 % of the limit, then more opaque as it rises.
fn overlay(base: [u8; 3], value: f32, limit: f32, map: ColourMap) -> [u8; 3] {
    if !(limit > 0.0) || value <= 0.05 * limit {
        return base;
    }
    let t = (value / limit).min(1.0);
    blend(base, map.colour(t), (0.35 + 0.6 * t).min(0.9))
}

/// Four panels of one slice (image, reconstruction, EU over the image, AU over the image) with
/// the row lines, titled; returns the PNG bytes.
pub fn maps_figure(maps: &SliceFigureMaps, lines: &[RowLine], limits: OverlayLimits, title: &str) -> Result<Vec<u8>, FigureError> {
    const NAME: &str = "maps";
    register_font();
    let n = maps.rows * maps.cols;
    for (what, len) in [
        ("image", maps.image.len()),
        ("reconstruction", maps.reconstruction.len()),
        ("epistemic", maps.epistemic.len()),
        ("aleatoric", maps.aleatoric.len()),
        ("cord", maps.cord.len()),
        ("candidates", maps.candidates.len()),
    ] {
        if len != n {
            return Err(fail(NAME, format!("{what} has {len} values for a {} x {} slice", maps.rows, maps.cols)));
        }
    }
    let width_cols = PANEL_COLUMNS.min(maps.cols);
    let c0 = crop_start(maps);
    let (pw, ph) = (width_cols * SCALE, maps.rows * SCALE);
    let width = 4 * pw + 5 * GAP;
    let height = HEADER + ph + FOOTER;
    let mut rgb = vec![255u8; width * height * 3];
    let panel_x = |p: usize| GAP + p * (pw + GAP);
    for panel in 0..4 {
        for r in 0..maps.rows {
            for c in 0..width_cols {
                let i = r * maps.cols + c0 + c;
                let mut colour = match panel {
                    1 => grey(maps.reconstruction[i]),
                    _ => grey(maps.image[i]),
                };
                match panel {
                    0 if is_edge(&maps.cord, maps.rows, maps.cols, r, c0 + c) => colour = blend(colour, [255, 215, 0], 0.6),
                    2 => colour = overlay(colour, maps.epistemic[i], limits.epistemic, ColourMap::Hot),
                    3 => {
                        colour = overlay(colour, maps.aleatoric[i], limits.aleatoric, ColourMap::Jet);
                        if is_edge(&maps.candidates, maps.rows, maps.cols, r, c0 + c) {
                            colour = [255, 0, 255];
                        }
                    }
                    _ => {}
                }
                for dy in 0..SCALE {
                    for dx in 0..SCALE {
                        let (x, y) = (panel_x(panel) + c * SCALE + dx, HEADER + r * SCALE + dy);
                        rgb[(y * width + x) * 3..(y * width + x) * 3 + 3].copy_from_slice(&colour);
                    }
                }
            }
        }
    }
    // Colour bars under the EU and AU panels.
    let bar_y = HEADER + ph + 6;
    for (panel, map) in [(2, ColourMap::Hot), (3, ColourMap::Jet)] {
        for x in 0..pw {
            let colour = map.colour(x as f32 / (pw - 1).max(1) as f32);
            for y in bar_y..bar_y + 10 {
                let px = panel_x(panel) + x;
                rgb[(y * width + px) * 3..(y * width + px) * 3 + 3].copy_from_slice(&colour);
            }
        }
    }
    {
        let backend = BitMapBackend::with_buffer(&mut rgb, (width as u32, height as u32));
        let root = backend.into_drawing_area();
        let text = |size: u32| TextStyle::from((FONT, size).into_font()).color(&BLACK);
        root.draw(&Text::new(title.to_string(), (GAP as i32, 5), text(16))).map_err(|e| fail(NAME, e))?;
        let captions = ["image (cord outlined)", "mean reconstruction", "epistemic uncertainty (EU)", "anomaly map (AU), candidates"];
        for (panel, caption) in captions.iter().enumerate() {
            let x = panel_x(panel) as i32;
            root.draw(&Text::new(caption.to_string(), (x, HEADER as i32 + ph as i32 - 16), text(12).color(&WHITE)))
                .map_err(|e| fail(NAME, e))?;
        }
        for line in lines {
            if !(0.0..maps.rows as f64).contains(&line.row) {
                continue;
            }
            let y = HEADER as i32 + (line.row * SCALE as f64).round() as i32;
            for panel in 0..4 {
                let x0 = panel_x(panel) as i32;
                // Dashed: 6 on, 4 off.
                let mut x = x0;
                while x < x0 + pw as i32 {
                    let x1 = (x + 6).min(x0 + pw as i32 - 1);
                    root.draw(&PathElement::new(vec![(x, y), (x1, y)], RGBColor(0, 200, 0).stroke_width(1)))
                        .map_err(|e| fail(NAME, e))?;
                    x += 10;
                }
            }
            root.draw(&Text::new(line.label.clone(), (panel_x(0) as i32 + 3, y - 13), text(12).color(&RGBColor(0, 255, 0))))
                .map_err(|e| fail(NAME, e))?;
        }
        for (panel, limit) in [(2, limits.epistemic), (3, limits.aleatoric)] {
            let x = panel_x(panel) as i32;
            let y = (bar_y + 13) as i32;
            root.draw(&Text::new("0".to_string(), (x, y), text(12))).map_err(|e| fail(NAME, e))?;
            let label = format!("{}", format_value(limit as f64));
            let lx = x + pw as i32 - 7 * label.len() as i32;
            root.draw(&Text::new(label, (lx, y), text(12))).map_err(|e| fail(NAME, e))?;
        }
        root.present().map_err(|e| fail(NAME, e))?;
    }
    encode_png(&rgb, width as u32, height as u32, NAME)
}

/// A number for a label: 3 significant digits.
pub fn format_value(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    if v.abs() < 1e-3 {
        return format!("{v:.2e}");
    }
    let digits = (2 - v.abs().log10().floor() as i32).max(0) as usize;
    format!("{v:.digits$}")
}

// ---------------------------------------------------------------------------------------------
// Anomaly curve

/// One disc level on the curve figure.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelSpan {
    /// "C2/C3" …
    pub name: String,
    /// Positions of its upper and lower bounds, in mm.
    pub start_mm: f64,
    pub end_mm: f64,
    pub threshold: Option<f64>,
    /// Position (mm) and value of the peak.
    pub peak: Option<(f64, f64)>,
    /// "positive", "negative", "indeterminate", "out_of_fov".
    pub call: String,
}

/// The anomaly curve of a subject: values along the superior-inferior position.
#[derive(Debug, Clone, PartialEq)]
pub struct CurveData {
    /// Position of each row, in mm (0 at the centre of C2; grows inferiorly).
    pub positions_mm: Vec<f64>,
    /// Curve value per row (`None` where the cord is not seen).
    pub values: Vec<Option<f64>>,
    /// Vertebral-centre lines: position (mm) and name.
    pub boundaries: Vec<(f64, String)>,
    pub levels: Vec<LevelSpan>,
}

fn call_colour(call: &str) -> RGBColor {
    match call {
        "positive" => RGBColor(220, 0, 0),
        "negative" => RGBColor(90, 90, 90),
        "indeterminate" => RGBColor(255, 140, 0),
        _ => RGBColor(180, 180, 180),
    }
}

/// The anomaly curve against position, with level boundaries, thresholds and peaks; PNG bytes.
pub fn curve_figure(curve: &CurveData, title: &str) -> Result<Vec<u8>, FigureError> {
    const NAME: &str = "curve";
    register_font();
    if curve.positions_mm.len() != curve.values.len() {
        return Err(fail(NAME, "positions and values differ in length"));
    }
    let (width, height) = (1064usize, 380usize);
    let seen: Vec<(f64, f64)> =
        curve.positions_mm.iter().zip(&curve.values).filter_map(|(&x, v)| v.map(|v| (x, v))).collect();
    let mut xs: Vec<f64> = seen.iter().map(|p| p.0).collect();
    xs.extend(curve.boundaries.iter().map(|b| b.0));
    let (x_min, x_max) = if xs.is_empty() {
        (0.0, 1.0)
    } else {
        let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lo - 5.0, hi + 5.0)
    };
    let y_top = seen
        .iter()
        .map(|p| p.1)
        .chain(curve.levels.iter().filter_map(|l| l.threshold))
        .chain(curve.levels.iter().filter_map(|l| l.peak.map(|p| p.1)))
        .fold(0.0f64, f64::max);
    let y_max = if y_top > 0.0 { y_top * 1.15 } else { 1e-3 };
    let mut rgb = vec![255u8; width * height * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width as u32, height as u32)).into_drawing_area();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 16))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(x_min..x_max, 0.0..y_max)
            .map_err(|e| fail(NAME, e))?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("position along the cord, mm from the centre of C2 (inferior to the right)")
            .y_desc("curve (line); level scores, thresholds (dots, dashes)")
            .label_style((FONT, 12))
            .axis_desc_style((FONT, 13))
            .y_label_formatter(&|v| format_value(*v))
            .draw()
            .map_err(|e| fail(NAME, e))?;
        for (x, name) in &curve.boundaries {
            chart
                .draw_series(DashedLineSeries::new(vec![(*x, 0.0), (*x, y_max)], 5, 4, RGBColor(0, 160, 0).stroke_width(1)))
                .map_err(|e| fail(NAME, e))?;
            chart
                .draw_series(std::iter::once(Text::new(name.clone(), (*x, y_max), (FONT, 12).into_font().color(&RGBColor(0, 120, 0)))))
                .map_err(|e| fail(NAME, e))?;
        }
        for level in &curve.levels {
            if let Some(t) = level.threshold {
                chart
                    .draw_series(DashedLineSeries::new(
                        vec![(level.start_mm, t), (level.end_mm, t)],
                        6,
                        4,
                        RGBColor(220, 0, 0).stroke_width(2),
                    ))
                    .map_err(|e| fail(NAME, e))?;
            }
        }
        // The curve, in runs of consecutive rows with a value.
        let mut run: Vec<(f64, f64)> = Vec::new();
        let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
        for (&x, v) in curve.positions_mm.iter().zip(&curve.values) {
            match v {
                Some(v) => run.push((x, *v)),
                None if !run.is_empty() => runs.push(std::mem::take(&mut run)),
                None => {}
            }
        }
        if !run.is_empty() {
            runs.push(run);
        }
        for run in runs {
            chart.draw_series(LineSeries::new(run, RGBColor(0, 100, 200).stroke_width(2))).map_err(|e| fail(NAME, e))?;
        }
        for level in &curve.levels {
            if let Some((x, v)) = level.peak {
                let colour = call_colour(&level.call);
                // The label starts beside the marker (pixel offsets), not under it; on its left
                // near the right edge, so that it stays in the plot.
                let label = format!("{} {}", level.name, level.call);
                let label_px = 6 * label.chars().count() as i32;
                let offset = if x > x_min + 0.8 * (x_max - x_min) { (-8 - label_px, -6) } else { (8, -6) };
                let marker = EmptyElement::at((x, v))
                    + Circle::new((0, 0), 5, colour.filled())
                    + Text::new(label, offset, (FONT, 11).into_font().color(&colour));
                chart.draw_series(std::iter::once(marker)).map_err(|e| fail(NAME, e))?;
            }
        }
        root.present().map_err(|e| fail(NAME, e))?;
    }
    encode_png(&rgb, width as u32, height as u32, NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(png: &[u8]) -> image::RgbImage {
        image::load_from_memory_with_format(png, image::ImageFormat::Png).unwrap().to_rgb8()
    }

    #[test]
    fn values_keep_three_significant_digits() {
        assert_eq!(format_value(0.4221), "0.422");
        assert_eq!(format_value(4.33e-7), "4.33e-7");
        assert_eq!(format_value(12.345), "12.3");
    }

    fn test_slice() -> SliceFigureMaps {
        let (rows, cols) = (64, 160);
        let n = rows * cols;
        let mut cord = vec![0u8; n];
        let mut au = vec![0f32; n];
        let mut candidates = vec![0u8; n];
        for r in 4..60 {
            for c in 100..108 {
                cord[r * cols + c] = 1;
            }
        }
        for r in 30..34 {
            for c in 102..106 {
                au[r * cols + c] = 0.2;
                candidates[r * cols + c] = 1;
            }
        }
        SliceFigureMaps {
            rows,
            cols,
            image: (0..n).map(|i| (i % cols) as f32 / cols as f32).collect(),
            reconstruction: vec![0.5; n],
            epistemic: vec![0.0; n],
            aleatoric: au,
            cord,
            candidates,
        }
    }

    #[test]
    fn the_maps_figure_crops_on_the_cord_and_colours_the_candidates() {
        let maps = test_slice();
        assert_eq!(crop_start(&maps), 160 - 128, "cord centre 103.5 -> crop clamped to the right edge");
        let lines = vec![RowLine { row: 10.0, label: "C2".into() }];
        let png = maps_figure(&maps, &lines, OverlayLimits { epistemic: 0.01, aleatoric: 0.2 }, "sub-test").unwrap();
        let img = decode(&png);
        assert_eq!((img.width() as usize, img.height() as usize), (4 * 256 + 5 * GAP, HEADER + 128 + FOOTER));
        // AU panel, candidate edge at row 30, column 102 (crop column 102 - 32 = 70).
        let x = (GAP + 3 * (256 + GAP) + 70 * SCALE) as u32;
        let y = (HEADER + 30 * SCALE) as u32;
        assert_eq!(img.get_pixel(x, y).0, [255, 0, 255]);
        // Inside the candidate, AU = limit: the top of jet, blended at 0.9 over the image.
        let inside = img.get_pixel(x + 2 * SCALE as u32, y + 2 * SCALE as u32).0;
        assert!(inside[0] > inside[2] + 60, "{inside:?}");
        // The image panel at the same place is grey.
        let grey_px = img.get_pixel((GAP + 72 * SCALE) as u32, y + 4).0;
        assert_eq!(grey_px[0], grey_px[2]);
        // Text is drawn (the title's pixels are dark on white).
        let dark = (0..300).flat_map(|x| (0..HEADER as u32).map(move |y| (x, y))).filter(|&(x, y)| img.get_pixel(x, y).0[0] < 100).count();
        assert!(dark > 30, "title rendered: {dark} dark pixels");
    }

    #[test]
    fn the_curve_figure_draws_the_curve_threshold_and_peak() {
        let positions_mm: Vec<f64> = (0..100).map(|r| r as f64 * 0.78125 - 10.0).collect();
        let values: Vec<Option<f64>> = (0..100).map(|r| if (10..90).contains(&r) { Some(if r == 50 { 0.05 } else { 0.0 }) } else { None }).collect();
        let curve = CurveData {
            positions_mm,
            values,
            boundaries: vec![(0.0, "C2".into()), (30.0, "C3".into())],
            levels: vec![LevelSpan {
                name: "C2/C3".into(),
                start_mm: 0.0,
                end_mm: 30.0,
                threshold: Some(0.03),
                peak: Some((29.0, 0.05)),
                call: "positive".into(),
            }],
        };
        let img = decode(&curve_figure(&curve, "sub-test anomaly curve").unwrap());
        assert_eq!((img.width(), img.height()), (1064, 380));
        let red = img.pixels().filter(|p| p.0 == [220, 0, 0]).count();
        let blue = img.pixels().filter(|p| p.0 == [0, 100, 200]).count();
        assert!(red > 100, "threshold line and positive peak drawn in red: {red}");
        assert!(blue > 200, "curve drawn: {blue}");
    }

    #[test]
    fn a_slice_with_mismatched_maps_is_an_error() {
        let mut maps = test_slice();
        maps.epistemic.pop();
        let err = maps_figure(&maps, &[], OverlayLimits { epistemic: 1.0, aleatoric: 1.0 }, "x").unwrap_err().to_string();
        assert!(err.contains("epistemic has 10239 values for a 64 x 160 slice"), "{err}");
    }
}
