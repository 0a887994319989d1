//! The colour maps of every figure of the crate, each a function of a value in [0, 1] (clamped)
//! to an RGB triple:
//!
//! * [`hot`] and [`jet`]: matplotlib's maps, the overlays of the detection figures;
//! * [`heat`]: black, red, yellow, white in equal thirds, the error and uncertainty panels of the
//!   training figures. Not [`hot`]: its knots are at 1/3 and 2/3 (hot's at 0.365 and 0.746) and it
//!   truncates where hot rounds, so the two differ in most pixels;
//! * [`grey`]: the grey level of an image.

/// Matplotlib's "hot" (black, red, yellow, white) at `t` in [0, 1].
pub fn hot(t: f32) -> [u8; 3] {
    let t = t.clamp(0.0, 1.0);
    let r = (t / 0.365).min(1.0);
    let g = ((t - 0.365) / 0.381).clamp(0.0, 1.0);
    let b = ((t - 0.746) / 0.254).clamp(0.0, 1.0);
    [(r * 255.0).round() as u8, (g * 255.0).round() as u8, (b * 255.0).round() as u8]
}

/// Matplotlib's "jet" (blue, cyan, yellow, red) at `t` in [0, 1].
pub fn jet(t: f32) -> [u8; 3] {
    let t = t.clamp(0.0, 1.0);
    let channel = |centre: f32| (1.5 - (4.0 * t - centre).abs()).clamp(0.0, 1.0);
    [(channel(3.0) * 255.0).round() as u8, (channel(2.0) * 255.0).round() as u8, (channel(1.0) * 255.0).round() as u8]
}

/// Black, red, yellow, white in equal thirds at `t` in [0, 1] (channels truncated, not rounded).
pub fn heat(t: f32) -> [u8; 3] {
    let t = t.clamp(0.0, 1.0);
    let r = (t * 3.0).min(1.0);
    let g = (t * 3.0 - 1.0).clamp(0.0, 1.0);
    let b = (t * 3.0 - 2.0).clamp(0.0, 1.0);
    [(r * 255.0) as u8, (g * 255.0) as u8, (b * 255.0) as u8]
}

/// Grey level of a value in [0, 1].
pub fn grey(v: f32) -> [u8; 3] {
    let g = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    [g, g, g]
}

/// A colour map by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColourMap {
    Hot,
    Jet,
    Heat,
}

impl ColourMap {
    pub fn colour(self, t: f32) -> [u8; 3] {
        match self {
            ColourMap::Hot => hot(t),
            ColourMap::Jet => jet(t),
            ColourMap::Heat => heat(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_maps_match_matplotlib_at_their_knots() {
        assert_eq!(hot(0.0), [0, 0, 0]);
        assert_eq!(hot(1.0), [255, 255, 255]);
        assert_eq!(hot(0.365), [255, 0, 0]);
        assert_eq!(jet(0.5), [128, 255, 128]);
        assert_eq!(jet(0.0), [0, 0, 128]);
        assert_eq!(jet(1.0), [128, 0, 0]);
    }

    #[test]
    fn heat_has_its_knots_at_thirds_and_is_not_hot() {
        assert_eq!(heat(0.0), [0, 0, 0]);
        assert_eq!(heat(1.0 / 3.0), [255, 0, 0]);
        assert_eq!(heat(2.0 / 3.0), [255, 255, 0]);
        assert_eq!(heat(1.0), [255, 255, 255]);
        assert_eq!(heat(-1.0), heat(0.0));
        assert_eq!(heat(2.0), heat(1.0));
        // 0.2 x 3 x 255 = 153; hot reaches red later (0.2 / 0.365 x 255 = 139.7, rounded to 140).
        assert_eq!(heat(0.2), [153, 0, 0]);
        assert_eq!(hot(0.2), [140, 0, 0]);
        assert_eq!(ColourMap::Heat.colour(0.5), heat(0.5));
    }

    #[test]
    fn grey_rounds_and_clamps() {
        assert_eq!(grey(0.5), [128, 128, 128]);
        assert_eq!(grey(-0.1), [0, 0, 0]);
        assert_eq!(grey(1.5), [255, 255, 255]);
    }
}
