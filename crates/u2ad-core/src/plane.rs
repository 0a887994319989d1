//! Plane geometry of detection (step 1, anomaly candidates; the 3-D level scores; training's
//! masks): the shape of a row-major 2-D map, the 3 x 3 erosion of the cord mask, the 8-connected
//! components of a binary plane and its Gaussian smoothing. One labeller and one 3 x 3 square
//! erosion: `anatomy`'s [`connected_components_2d`](crate::anatomy::connected_components_2d)
//! is this labeller on an array, with sizes; its [`erode_2d`](crate::anatomy::erode_2d) is the
//! general form (cross or square, repeated) on an array. Re-exported at `u2ad_core::scoring::*`.

use serde::{Deserialize, Serialize};

use crate::dataset::SAMPLE_SIZE;

/// Pixel size of a prepared sample, in mm (200 mm field of view over 256 pixels).
pub const SAMPLE_PIXEL_MM: f64 = 200.0 / SAMPLE_SIZE as f64;

/// Shape of a row-major 2-D map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaneShape {
    pub rows: usize,
    pub cols: usize,
}

impl PlaneShape {
    /// A prepared sample: 256 x 256.
    pub const SAMPLE: PlaneShape = PlaneShape { rows: SAMPLE_SIZE, cols: SAMPLE_SIZE };

    pub fn pixels(self) -> usize {
        self.rows * self.cols
    }

    pub(crate) fn check(self, len: usize, what: &str) {
        assert_eq!(len, self.pixels(), "{what}: {len} values for a {} x {} plane", self.rows, self.cols);
    }
}

/// Binary erosion by a 3 x 3 square; pixels outside the plane count as background (as
/// `scipy.ndimage.binary_erosion(mask, structure=np.ones((3, 3)))`), so the border rows and
/// columns are always eroded. Returns 0/1.
pub fn erode_3x3(mask: &[u8], shape: PlaneShape) -> Vec<u8> {
    shape.check(mask.len(), "mask");
    let (rows, cols) = (shape.rows, shape.cols);
    let mut eroded = vec![0u8; mask.len()];
    if rows < 3 || cols < 3 {
        return eroded;
    }
    for row in 1..rows - 1 {
        for col in 1..cols - 1 {
            let inside = (row - 1..=row + 1).all(|r| (col - 1..=col + 1).all(|c| mask[r * cols + c] != 0));
            eroded[row * cols + col] = u8::from(inside);
        }
    }
    eroded
}

/// The 8-connected components of a binary plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentLabels {
    /// Per pixel: 0 background, 1..=count the component.
    pub labels: Vec<u32>,
    pub count: u32,
}

/// Labels the 8-connected components of `foreground`, numbering them 1, 2, … in the raster order
/// of their first pixel (as cv2 and scipy do); 0 is background.
/// Hand-written: a 2-D flood fill is 20 lines, and ndarray-ndimage labels 3-D arrays only.
pub fn label_components_8(foreground: &[bool], shape: PlaneShape) -> ComponentLabels {
    shape.check(foreground.len(), "foreground");
    let (rows, cols) = (shape.rows as isize, shape.cols as isize);
    let mut labels = vec![0u32; foreground.len()];
    let mut count = 0u32;
    let mut stack = Vec::new();
    for start in 0..foreground.len() {
        if !foreground[start] || labels[start] != 0 {
            continue;
        }
        count += 1;
        labels[start] = count;
        stack.push(start);
        while let Some(pixel) = stack.pop() {
            let (row, col) = ((pixel / shape.cols) as isize, (pixel % shape.cols) as isize);
            for dr in -1..=1 {
                for dc in -1..=1 {
                    let (r, c) = (row + dr, col + dc);
                    if r < 0 || c < 0 || r >= rows || c >= cols {
                        continue;
                    }
                    let neighbour = (r * cols + c) as usize;
                    if foreground[neighbour] && labels[neighbour] == 0 {
                        labels[neighbour] = count;
                        stack.push(neighbour);
                    }
                }
            }
        }
    }
    ComponentLabels { labels, count }
}

/// `values` smoothed by a Gaussian of `sigma_px` (reflected at the border, truncated at 4 sigma,
/// as `scipy.ndimage.gaussian_filter`); unchanged for `sigma_px <= 0`.
pub fn gaussian_smooth(values: &[f32], shape: PlaneShape, sigma_px: f64) -> Vec<f32> {
    shape.check(values.len(), "plane");
    if !(sigma_px > 0.0) {
        return values.to_vec();
    }
    let plane = ndarray::Array2::from_shape_vec((shape.rows, shape.cols), values.to_vec()).expect("checked shape");
    ndarray_ndimage::gaussian_filter(&plane, sigma_px as f32, 0, ndarray_ndimage::BorderMode::Reflect, 4).iter().copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erosion_matches_scipy() {
        let shape = PlaneShape { rows: 6, cols: 7 };
        #[rustfmt::skip]
        let mask: Vec<u8> = vec![
            0, 1, 1, 1, 1, 0, 0,
            1, 1, 1, 1, 1, 1, 0,
            1, 1, 1, 1, 1, 1, 1,
            1, 1, 1, 1, 1, 1, 1,
            0, 1, 1, 1, 0, 1, 1,
            0, 0, 1, 1, 1, 1, 1,
        ];
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            0, 0, 0, 0, 0, 0, 0,
            0, 0, 1, 1, 0, 0, 0,
            0, 1, 1, 1, 1, 0, 0,
            0, 0, 1, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(erode_3x3(&mask, shape), expected);
    }

    #[test]
    fn gaussian_smoothing_keeps_the_sum_and_spreads_a_point() {
        let shape = PlaneShape { rows: 21, cols: 21 };
        let mut point = vec![0.0f32; shape.pixels()];
        point[10 * 21 + 10] = 1.0;
        let smoothed = gaussian_smooth(&point, shape, 1.5);
        assert!((smoothed.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        // The centre of a 2-D Gaussian of sigma 1.5 sampled on the grid: about 1 / (2 pi 1.5^2).
        assert!((smoothed[10 * 21 + 10] - 0.0717).abs() < 2e-3, "{}", smoothed[10 * 21 + 10]);
        assert!((smoothed[10 * 21 + 11] / smoothed[10 * 21 + 10] - (-1.0f32 / (2.0 * 2.25)).exp()).abs() < 0.02);
        assert_eq!(gaussian_smooth(&point, shape, 0.0), point);
    }

    #[test]
    fn eight_connected_labels_follow_raster_order() {
        let shape = PlaneShape { rows: 3, cols: 4 };
        let foreground: Vec<bool> = [0, 0, 1, 0, 1, 0, 0, 1, 0, 1, 0, 1].iter().map(|&v| v == 1).collect();
        let components = label_components_8(&foreground, shape);
        assert_eq!(components.count, 2);
        assert_eq!(components.labels, vec![0, 0, 1, 0, 2, 0, 0, 1, 0, 2, 0, 1]);
    }
}
