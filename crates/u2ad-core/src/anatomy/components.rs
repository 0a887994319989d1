//! Connected components of a 2-D mask ([`connected_components_2d`], [`Components2d`]): the
//! workspace's one 8-connected labeller, [`crate::plane::label_components_8`], on an array.

use ndarray::{Array2, ArrayView2};

use crate::plane::{label_components_8, ComponentLabels, PlaneShape};

/// Connected components of a 2-D mask.
#[derive(Debug, Clone, PartialEq)]
pub struct Components2d {
    /// 0 = background; components are numbered 1..=count in the raster order (row by row) of
    /// their first pixel, as `scipy.ndimage.label`.
    pub labels: Array2<u32>,
    /// `sizes_px[c - 1]` = number of pixels of component `c`.
    pub sizes_px: Vec<usize>,
}

impl Components2d {
    pub fn count(&self) -> usize {
        self.sizes_px.len()
    }

    /// Number of the largest component (the first one on ties), or `None` when there is none.
    pub fn largest(&self) -> Option<u32> {
        let mut best: Option<(usize, u32)> = None;
        for (index, &size) in self.sizes_px.iter().enumerate() {
            if best.is_none_or(|(s, _)| size > s) {
                best = Some((size, index as u32 + 1));
            }
        }
        best.map(|(_, label)| label)
    }
}

/// 8-connected components of a 2-D mask (a 3 x 3 square neighbourhood), with their sizes: the
/// workspace's one labeller, [`crate::plane::label_components_8`], on an array.
pub fn connected_components_2d(mask: ArrayView2<'_, bool>) -> Components2d {
    let (rows, cols) = mask.dim();
    // `iter` walks a view in logical (row-major) order whatever its strides.
    let foreground: Vec<bool> = mask.iter().copied().collect();
    let ComponentLabels { labels, count } = label_components_8(&foreground, PlaneShape { rows, cols });
    let mut sizes_px = vec![0usize; count as usize];
    for &label in labels.iter().filter(|&&l| l != 0) {
        sizes_px[label as usize - 1] += 1;
    }
    Components2d { labels: Array2::from_shape_vec((rows, cols), labels).expect("one label per pixel"), sizes_px }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn components_are_eight_connected_and_numbered_in_raster_order() {
        let mask = array![
            [false, false, false, true],
            [true, true, false, false],
            [false, false, true, false],
            [true, false, false, false],
        ];
        let components = connected_components_2d(mask.view());
        // (0,3) first; the diagonal (1,1)-(2,2) joins the second; (3,0) alone.
        assert_eq!(components.sizes_px, vec![1, 3, 1]);
        assert_eq!(components.labels[[0, 3]], 1);
        assert_eq!(components.labels[[2, 2]], 2);
        assert_eq!(components.labels[[3, 0]], 3);
        assert_eq!(components.largest(), Some(2));
    }
}
