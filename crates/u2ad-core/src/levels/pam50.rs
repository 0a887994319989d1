//! The PAM50 template's proportions: where each vertebral centre and disc lies along the cord.

use super::*;

/// Depth of the vertebral centres C1 … T11 (index = vertebra number - 1) in the PAM50
/// template, in mm along the template's cord centreline below the C1/C2 disc (disc 2).
///
/// Derived once from `templates/PAM50_small` (`tests/anatomy_levels.rs` recomputes them from
/// the files): the centre of vertebra n >= 2 lies midway between discs n and n + 1 of
/// `PAM50_small_label_disc` (both point labels); C1, which has no disc above it, is the middle
/// of the level-1 region of `PAM50_small_levels`. The template is straight (its cord centre
/// moves < 0.6 mm over 450 mm), so these are also its superior-inferior distances.
pub const PAM50_VERTEBRA_DEPTH_MM: [f64; 18] = [
    -5.00, 8.00, 25.00, 43.00, 60.00, 76.00, 93.01, // C1 … C7
    113.02, 135.02, 158.02, 182.03, 206.03, 231.04, 258.04, 285.05, 312.05, 340.05, 370.05, // T1 … T11
];

/// Depth of the discs 2 (C1/C2) … 19 (T11/T12) (index = disc number - 2) in the PAM50 template,
/// in mm along its cord below disc 2, from `PAM50_small_label_disc`.
pub const PAM50_DISC_DEPTH_MM: [f64; 18] = [
    0.00, 16.00, 34.00, 52.00, 68.00, 84.01, 102.01, // C1/C2 … C7/T1
    124.02, 146.02, 170.03, 194.03, 218.03, 244.04, 272.04, 298.05, 326.05, 354.05, 386.05, // T1/T2 … T11/T12
];

/// PAM50 depth (mm below the C1/C2 disc) of the centre of vertebra `number` (1 = C1 … 18 = T11).
pub fn pam50_vertebra_depth_mm(number: u8) -> Option<f64> {
    PAM50_VERTEBRA_DEPTH_MM.get((number as usize).checked_sub(1)?).copied()
}

/// PAM50 depth (mm below the C1/C2 disc) of disc `number` (SCT: 2 = C1/C2 … 19 = T11/T12).
pub fn pam50_disc_depth_mm(number: u8) -> Option<f64> {
    PAM50_DISC_DEPTH_MM.get((number as usize).checked_sub(2)?).copied()
}

/// Name of a disc by SCT number: 3 -> "C2/C3".
pub fn disc_name(number: u8) -> String {
    match number {
        0 => "disc 0".into(),
        1 => "above C1".into(),
        n => format!("{}/{}", vertebra_name(n - 1), vertebra_name(n)),
    }
}
