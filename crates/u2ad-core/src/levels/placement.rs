//! Landmarks and placement: from the landmarks a label file gives to the centres of C2 … T1
//! along the cord, and the entry points that read a label file.

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::ArrayView3;
use serde::{Deserialize, Serialize};
use u2ad_io::volume::Volume;

use crate::anatomy::Centreline;
use crate::error::{CoreError, Result};

use super::*;
use super::labels::*;
use super::pam50::*;

/// A spinal position known in a subject, at fractional canonical slice `k`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Landmark {
    /// The centre of a vertebral level (SCT number).
    VertebraCentre { vertebra: u8, k: f64 },
    /// A disc (SCT number: the vertebra below it).
    Disc { disc: u8, k: f64 },
}

impl Landmark {
    pub fn k(&self) -> f64 {
        match *self {
            Landmark::VertebraCentre { k, .. } | Landmark::Disc { k, .. } => k,
        }
    }

    /// Its depth in the PAM50 template (mm below the C1/C2 disc), if the template has it.
    pub fn pam50_depth_mm(&self) -> Option<f64> {
        match *self {
            Landmark::VertebraCentre { vertebra, .. } => pam50_vertebra_depth_mm(vertebra),
            Landmark::Disc { disc, .. } => pam50_disc_depth_mm(disc),
        }
    }

    /// "C3" or "disc C2/C3".
    pub fn name(&self) -> String {
        match *self {
            Landmark::VertebraCentre { vertebra, .. } => vertebra_name(vertebra),
            Landmark::Disc { disc, .. } => format!("disc {}", disc_name(disc)),
        }
    }

    /// The vertebrae this landmark belongs to or bounds (a disc bounds the one above and below).
    fn vertebrae(&self) -> std::ops::RangeInclusive<u8> {
        match *self {
            Landmark::VertebraCentre { vertebra, .. } => vertebra..=vertebra,
            Landmark::Disc { disc, .. } => disc.saturating_sub(1).max(1)..=disc,
        }
    }
}

/// Subject arc length at a template depth: piecewise linear between the anchors (sorted by
/// depth), extrapolated with the nearest pair's scale; one anchor: the template's scale (1 mm
/// of cord per mm of template; arc length grows upwards while depth grows downwards).
pub(super) fn arc_at_depth(anchors: &[(f64, f64)], depth: f64) -> f64 {
    if anchors.len() == 1 {
        let (d0, a0) = anchors[0];
        return a0 - (depth - d0);
    }
    let n = anchors.len();
    let upper = anchors.partition_point(|&(d, _)| d < depth).clamp(1, n - 1);
    let ((da, aa), (db, ab)) = (anchors[upper - 1], anchors[upper]);
    aa + (depth - da) * (ab - aa) / (db - da)
}

/// The centres of the vertebrae C2 … T1, and of every vertebra between the landmarks, as
/// canonical k: measured where a landmark gives the centre, placed otherwise by arc length
/// along `centreline` in the PAM50 proportions. Between two landmarks the template depth maps
/// piecewise-linearly to the subject's arc length; outside them the nearest pair's scale is
/// extrapolated; a single landmark uses the template's scale. Centres beyond the ends of the
/// cord continue straight along the superior axis (they may lie outside the field of view,
/// which still bounds the segments that it cuts).
///
/// `path` names the label file in messages. Errors: no landmark the template knows, or
/// landmarks out of anatomical order (a lower level above a higher one).
pub fn place_vertebrae(landmarks: &[Landmark], centreline: &Centreline, path: &Path) -> Result<LevelMap> {
    let mut usable: Vec<(f64, Landmark)> =
        landmarks.iter().filter_map(|l| l.pam50_depth_mm().map(|d| (d, *l))).collect();
    if usable.is_empty() {
        return Err(CoreError::input(
            path,
            format!(
                "no level between C1 and T11 to place the others from (found: {})",
                if landmarks.is_empty() { "nothing".to_string() } else { list(landmarks.iter().map(|l| l.name())) }
            ),
        ));
    }
    usable.sort_by(|a, b| a.0.total_cmp(&b.0));
    usable.dedup_by(|b, a| a.0 == b.0);
    for pair in usable.windows(2) {
        let ((_, upper), (_, lower)) = (pair[0], pair[1]);
        if lower.k() >= upper.k() {
            return Err(CoreError::input(
                path,
                format!(
                    "levels out of order: {} at k = {:.1} is not below {} at k = {:.1}",
                    lower.name(),
                    lower.k(),
                    upper.name(),
                    upper.k()
                ),
            ));
        }
    }
    let anchors: Vec<(f64, f64)> =
        usable.iter().map(|(d, l)| (*d, centreline.arc_length_at_k(l.k()))).collect();

    let mut centres: BTreeMap<u8, f64> = BTreeMap::new();
    let mut given: Vec<u8> = Vec::new();
    for (_, landmark) in &usable {
        if let Landmark::VertebraCentre { vertebra, k } = *landmark {
            centres.insert(vertebra, k);
            given.push(vertebra);
        }
    }
    // A vertebra between two labelled discs is measured too (its centre is their midpoint
    // along the cord).
    let discs: Vec<u8> =
        usable.iter().filter_map(|(_, l)| if let Landmark::Disc { disc, .. } = l { Some(*disc) } else { None }).collect();
    for &disc in &discs {
        if discs.contains(&(disc + 1)) && !given.contains(&disc) {
            given.push(disc);
        }
    }
    let lowest = usable.iter().flat_map(|(_, l)| l.vertebrae()).min().unwrap_or(2).min(2);
    let highest = usable.iter().flat_map(|(_, l)| l.vertebrae()).max().unwrap_or(8).max(8);
    for vertebra in lowest..=highest {
        if centres.contains_key(&vertebra) {
            continue;
        }
        let Some(depth) = pam50_vertebra_depth_mm(vertebra) else { continue };
        centres.insert(vertebra, centreline.k_at_arc_length(arc_at_depth(&anchors, depth)));
    }
    given.sort_unstable();
    let placed: Vec<u8> = centres.keys().copied().filter(|v| !given.contains(v)).collect();
    let source = format!(
        "{}: from {}{}",
        path.display(),
        list(usable.iter().map(|(_, l)| l.name())),
        if placed.is_empty() {
            String::new()
        } else {
            format!("; placed {} along the cord with PAM50 proportions", list(placed.iter().map(|&v| vertebra_name(v))))
        }
    );
    Ok(LevelMap { vertebra_centre_k: centres, given, source })
}

/// The levels of one subject and how they were obtained.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelReport {
    pub map: LevelMap,
    pub convention: LevelConvention,
    /// The landmarks used (measured in the labels).
    pub landmarks: Vec<Landmark>,
    /// Vertebrae (SCT numbers) whose labelled region is cut by the field of view or by the
    /// end of the cord: their centroid was not trusted and their centre was placed.
    pub partial: Vec<u8>,
    /// Values present but not levels (cord, canal, sacrum, PMJ …).
    pub ignored_values: Vec<u32>,
}

/// Reads a level file on the grid of `reference`, detects (or takes) its convention and
/// returns the vertebral centres of C2 … T1 (measured or placed along `centreline`).
pub fn load_levels(
    path: &Path,
    convention: Option<LevelConvention>,
    reference: &Volume,
    centreline: &Centreline,
) -> Result<LevelMap> {
    load_levels_report(path, convention, reference, centreline).map(|report| report.map)
}

/// [`load_levels`] with the details: landmarks, partial levels, ignored values.
pub fn load_levels_report(
    path: &Path,
    convention: Option<LevelConvention>,
    reference: &Volume,
    centreline: &Centreline,
) -> Result<LevelReport> {
    let labels = Volume::read(path)?;
    reference.check_same_grid(&labels, 1e-3)?;
    let canonical = labels.reorientation().to_canonical(labels.data.view());
    levels_from_labels(canonical, path, convention, centreline)
}

/// A labelled region is cut when it reaches within one slice of `limits` (inclusive k range).
pub(super) fn is_cut(stats: &LabelStats, limits: (usize, usize)) -> bool {
    stats.k_min <= limits.0 + 1 || stats.k_max + 1 >= limits.1
}

/// The levels of a canonical label array (see [`load_levels`]); `path` names it in messages.
pub fn levels_from_labels(
    labels_canonical: ArrayView3<'_, f32>,
    path: &Path,
    convention: Option<LevelConvention>,
    centreline: &Centreline,
) -> Result<LevelReport> {
    let summary = LabelSummary::of_canonical(labels_canonical, path)?;
    let convention = match convention {
        Some(c) => {
            let foreign: Vec<u32> = summary.values.keys().copied().filter(|&v| !c.knows_value(v)).collect();
            if summary.values.is_empty() || !foreign.is_empty() {
                return Err(CoreError::UnknownLabels {
                    path: path.to_path_buf(),
                    detail: if summary.values.is_empty() {
                        "the file holds no labels (every voxel is 0)".into()
                    } else {
                        format!("values {} are not {} labels (values found: {})", list(&foreign), c, summary.value_list())
                    },
                });
            }
            c
        }
        None => LevelConvention::detect(path, &summary)?,
    };
    let fov = (0, summary.k_slices.saturating_sub(1));
    let mut landmarks = Vec::new();
    let mut partial = Vec::new();
    let mut ignored_values = Vec::new();
    match convention {
        LevelConvention::SctVertebraPoints | LevelConvention::SctDiscPoints => {
            for (&value, stats) in &summary.values {
                if SCT_EXTRA_LABELS.contains(&value) {
                    ignored_values.push(value);
                } else if convention == LevelConvention::SctVertebraPoints {
                    landmarks.push(Landmark::VertebraCentre { vertebra: value as u8, k: stats.k_mean });
                } else {
                    landmarks.push(Landmark::Disc { disc: value as u8, k: stats.k_mean });
                }
            }
        }
        LevelConvention::SctVertebraCord => {
            // The labelled cord ends where the cord mask ends, or at the field of view.
            let limits = (centreline.first_k().max(fov.0), centreline.last_k().min(fov.1));
            for (&value, stats) in &summary.values {
                if SCT_EXTRA_LABELS.contains(&value) {
                    ignored_values.push(value);
                } else if is_cut(stats, limits) {
                    partial.push(value as u8);
                } else {
                    landmarks.push(Landmark::VertebraCentre { vertebra: value as u8, k: stats.k_mean });
                }
            }
        }
        LevelConvention::TotalSpineSeg | LevelConvention::TotalSpineSegLegacy => {
            let meaning = if convention == LevelConvention::TotalSpineSeg { tss_meaning } else { tss_legacy_meaning };
            let mut discs = Vec::new();
            let mut vertebrae = Vec::new();
            for (&value, stats) in &summary.values {
                match meaning(value) {
                    Some(SpineLabel::Disc(disc)) if !is_cut(stats, fov) => {
                        discs.push(Landmark::Disc { disc, k: stats.k_mean })
                    }
                    Some(SpineLabel::Vertebra(vertebra)) if is_cut(stats, fov) => partial.push(vertebra),
                    Some(SpineLabel::Vertebra(vertebra)) => {
                        vertebrae.push(Landmark::VertebraCentre { vertebra, k: stats.k_mean })
                    }
                    _ => ignored_values.push(value),
                }
            }
            // The discs are thin and well localised; a vertebra's centroid includes its
            // posterior elements. Vertebral centroids are used only when no disc is usable.
            if discs.iter().any(|d| d.pam50_depth_mm().is_some()) {
                landmarks = discs;
            } else {
                landmarks = vertebrae;
            }
        }
    }
    let mut map = place_vertebrae(&landmarks, centreline, path)?;
    map.source = format!("{} ({})", map.source, convention);
    if !partial.is_empty() {
        map.source.push_str(&format!(
            "; {} cut by the field of view: placed, not measured",
            list(partial.iter().map(|&v| vertebra_name(v)))
        ));
        for &vertebra in &partial {
            tracing::warn!(
                "{}: level {} is cut by the field of view; its centre is placed, not measured",
                path.display(),
                vertebra_name(vertebra)
            );
        }
    }
    Ok(LevelReport { map, convention, landmarks, partial, ignored_values })
}
