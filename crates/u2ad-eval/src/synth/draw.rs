//! Drawing the lesions of one subject ([`LesionSpec`]): a distinct disc level and a centre along
//! the cord for each, clear of the others, with its length, width, contrast and edge offset.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::config::{SynthConfig, ValueRange};
use super::source::{LevelWindow, SourceScan};
use super::LESION_GAP_MM;
use u2ad_core::error::{CoreError, Result};
use u2ad_core::levels::DiscLevel;

/// One lesion to write, as drawn.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LesionSpec {
    pub level: DiscLevel,
    /// Arc length of the lesion centre along the cord, mm.
    pub centre_arc_mm: f64,
    pub length_mm: f64,
    pub width_fraction: f64,
    /// Requested contrast ratio.
    pub contrast_ratio: f64,
    /// Shift of the centre along the anterior axis, as a fraction of the room left between the
    /// lesion and the cord's edge: 0 on the centreline, ±1 touching the anterior (+) or
    /// posterior (−) edge.
    pub edge_offset: f64,
}

/// Draws `config.lesions_per_subject` lesions at distinct disc levels of `source` (among
/// `config.levels` when given), none overlapping. An error names the image when no level can
/// hold a lesion.
pub fn draw_lesions(source: &SourceScan, config: &SynthConfig, rng: &mut impl Rng) -> Result<Vec<LesionSpec>> {
    let windows = source.level_windows();
    let cord_length = source.frame.cord_length_mm();
    let mut lesions: Vec<LesionSpec> = Vec::new();
    for _ in 0..config.lesions_per_subject {
        let length_mm = config.length_mm.draw(rng);
        let mut candidates: Vec<&LevelWindow> = windows
            .iter()
            .filter(|w| config.levels.is_empty() || config.levels.contains(&w.level))
            .filter(|w| lesions.iter().all(|l| l.level != w.level))
            .filter(|w| w.centre_range(length_mm, cord_length).is_some())
            .collect();
        let mut placed = None;
        while placed.is_none() && !candidates.is_empty() {
            let pick = rng.random_range(0..candidates.len());
            let window = candidates[pick];
            let (lo, hi) = window.centre_range(length_mm, cord_length).expect("filtered above");
            for _ in 0..16 {
                let centre = ValueRange::new(lo, hi).draw(rng);
                let clear = lesions
                    .iter()
                    .all(|l| (l.centre_arc_mm - centre).abs() >= 0.5 * (l.length_mm + length_mm) + LESION_GAP_MM);
                if clear {
                    placed = Some((window.level, centre));
                    break;
                }
            }
            if placed.is_none() {
                candidates.remove(pick);
            }
        }
        let Some((level, centre_arc_mm)) = placed else {
            let in_view: Vec<&str> = windows.iter().map(|w| w.level.name()).collect();
            let requested = if config.levels.is_empty() {
                String::new()
            } else {
                format!(
                    " among the requested {}",
                    config.levels.iter().map(|l| l.name()).collect::<Vec<_>>().join(", ")
                )
            };
            return Err(CoreError::input(
                &source.files.image,
                format!(
                    "no disc level{requested} can hold lesion {} ({length_mm:.1} mm) inside the cord's field of view \
                     (levels on the cord: {}; cord {cord_length:.0} mm long)",
                    lesions.len() + 1,
                    if in_view.is_empty() { "none".to_string() } else { in_view.join(", ") },
                ),
            ));
        };
        lesions.push(LesionSpec {
            level,
            centre_arc_mm,
            length_mm,
            width_fraction: config.width_fraction.draw(rng),
            contrast_ratio: config.contrast_ratio.draw(rng),
            // No draw at all without edge lesions, so earlier cohorts keep their bytes.
            edge_offset: if config.edge_fraction > 0.0 && rng.random::<f64>() < config.edge_fraction {
                if rng.random::<bool>() { 1.0 } else { -1.0 }
            } else {
                0.0
            },
        });
    }
    Ok(lesions)
}
