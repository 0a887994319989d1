//! Point sampling of 2-D planes: cubic for images, nearest for labels, bilinear for maps.
//!
//! Written here because u2ad samples each output pixel at an arbitrary fractional position of a
//! native sagittal plane (one interpolation from native voxels to the 256 x 256 sample, instead of
//! the reference's two in a row); no well-kept crate samples ndarray planes at arbitrary points.

use ndarray::ArrayView2;

/// Keys' cubic convolution kernel (a = -0.5, the Catmull-Rom spline): interpolating, C1,
/// third-order accurate.
fn keys_weight(t: f64) -> f64 {
    let t = t.abs();
    if t < 1.0 {
        (1.5 * t - 2.5) * t * t + 1.0
    } else if t < 2.0 {
        ((-0.5 * t + 2.5) * t - 4.0) * t + 2.0
    } else {
        0.0
    }
}

/// Cubic interpolation of `plane` at fractional index (`a`, `b`). Positions more than half a
/// voxel outside the plane read `outside`; neighbours beyond the edge repeat the edge voxel.
pub fn cubic(plane: ArrayView2<'_, f32>, a: f64, b: f64, outside: f32) -> f32 {
    let (na, nb) = plane.dim();
    if na == 0 || nb == 0 || a < -0.5 || b < -0.5 || a > na as f64 - 0.5 || b > nb as f64 - 0.5 {
        return outside;
    }
    let a0 = a.floor() as isize;
    let b0 = b.floor() as isize;
    let mut total = 0.0;
    for da in -1..=2isize {
        let ia = (a0 + da).clamp(0, na as isize - 1) as usize;
        let wa = keys_weight(a - (a0 + da) as f64);
        if wa == 0.0 {
            continue;
        }
        let mut row = 0.0;
        for db in -1..=2isize {
            let ib = (b0 + db).clamp(0, nb as isize - 1) as usize;
            row += keys_weight(b - (b0 + db) as f64) * plane[[ia, ib]] as f64;
        }
        total += wa * row;
    }
    total as f32
}

/// Bilinear interpolation at fractional index (`a`, `b`), `outside` beyond half a voxel from the edge.
pub fn bilinear(plane: ArrayView2<'_, f32>, a: f64, b: f64, outside: f32) -> f32 {
    let (na, nb) = plane.dim();
    if na == 0 || nb == 0 || a < -0.5 || b < -0.5 || a > na as f64 - 0.5 || b > nb as f64 - 0.5 {
        return outside;
    }
    let a = a.clamp(0.0, (na - 1) as f64);
    let b = b.clamp(0.0, (nb - 1) as f64);
    let (a0, b0) = (a.floor() as usize, b.floor() as usize);
    let (a1, b1) = ((a0 + 1).min(na - 1), (b0 + 1).min(nb - 1));
    let (fa, fb) = (a - a0 as f64, b - b0 as f64);
    let v = (1.0 - fa) * ((1.0 - fb) * plane[[a0, b0]] as f64 + fb * plane[[a0, b1]] as f64)
        + fa * ((1.0 - fb) * plane[[a1, b0]] as f64 + fb * plane[[a1, b1]] as f64);
    v as f32
}

/// Nearest-neighbour lookup at fractional index (`a`, `b`), `outside` beyond half a voxel from the edge.
pub fn nearest<T: Copy>(plane: ArrayView2<'_, T>, a: f64, b: f64, outside: T) -> T {
    let (na, nb) = plane.dim();
    let (ra, rb) = (a.round(), b.round());
    if ra < 0.0 || rb < 0.0 || ra >= na as f64 || rb >= nb as f64 {
        return outside;
    }
    plane[[ra as usize, rb as usize]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn cubic_reproduces_grid_values_and_linear_ramps() {
        let plane = Array2::from_shape_fn((6, 5), |(a, b)| (2 * a + 3 * b) as f32);
        assert_eq!(cubic(plane.view(), 2.0, 3.0, -1.0), 13.0);
        // Keys' kernel reproduces linear functions exactly away from the edges.
        assert!((cubic(plane.view(), 2.25, 1.5, -1.0) - 9.0).abs() < 1e-5);
        assert_eq!(cubic(plane.view(), -0.6, 1.0, -1.0), -1.0);
        assert_eq!(cubic(plane.view(), 1.0, 4.6, -1.0), -1.0);
    }

    #[test]
    fn bilinear_and_nearest() {
        let plane = Array2::from_shape_fn((3, 3), |(a, b)| (a * 3 + b) as f32);
        assert!((bilinear(plane.view(), 0.5, 0.5, 0.0) - 2.0).abs() < 1e-6);
        assert_eq!(nearest(plane.view(), 1.4, 1.6, 99.0), 5.0);
        assert_eq!(nearest(plane.view(), 2.6, 0.0, 99.0), 99.0);
    }
}
