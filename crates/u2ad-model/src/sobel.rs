//! The Sobel edge magnitude, target of the model's edge head.

use burn::tensor::module::conv2d;
use burn::tensor::ops::{ConvOptions, PadMode};
use burn::tensor::{backend::Backend, Tensor, TensorData};

/// Horizontal Sobel kernel (cross-correlation, as `nn.Conv2d` applies it).
pub const SOBEL_X: [[f32; 3]; 3] = [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]];
/// Vertical Sobel kernel.
pub const SOBEL_Y: [[f32; 3]; 3] = [[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]];

/// `min(1, sqrt(Gx² + Gy²))` with `Gx`, `Gy` the responses to [`SOBEL_X`], [`SOBEL_Y`] on the
/// image padded by replicating its border. `[batch, 1, H, W] -> [batch, 1, H, W]`.
pub fn edge_magnitude<B: Backend>(images: Tensor<B, 4>) -> Tensor<B, 4> {
    let device = images.device();
    let kernels: Vec<f32> = SOBEL_X.iter().chain(SOBEL_Y.iter()).flatten().copied().collect();
    let weight = Tensor::<B, 4>::from_data(TensorData::new(kernels, [2, 1, 3, 3]), &device);
    let padded = images.pad((1, 1, 1, 1), PadMode::Edge);
    let g = conv2d(padded, weight, None, ConvOptions::new([1, 1], [0, 0], [1, 1], 1));
    let [batch, _, h, w] = g.dims();
    let gx = g.clone().narrow(1, 0, 1);
    let gy = g.narrow(1, 1, 1);
    (gx.powi_scalar(2) + gy.powi_scalar(2)).sqrt().clamp_max(1.0).reshape([batch, 1, h, w])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn hand_computed_edges() {
        let dev = Default::default();
        // 3 x 3 image with a vertical step 0 | 0.1 | 0.2 (a ramp) in every row.
        let img = vec![0.0f32, 0.1, 0.2, 0.0, 0.1, 0.2, 0.0, 0.1, 0.2];
        let t = Tensor::<Flex, 4>::from_data(TensorData::new(img, [1, 1, 3, 3]), &dev);
        let e: Vec<f32> = edge_magnitude(t).into_data().to_vec().unwrap();
        // Centre: Gx = 4 · 0.2 = 0.8, Gy = 0. Left column (replicated 0 | 0 | 0.1): Gx = 0.4.
        // Right column (0.1 | 0.2 | 0.2): Gx = 0.4. Rows are equal, so Gy = 0 everywhere.
        let expect = [0.4f32, 0.8, 0.4, 0.4, 0.8, 0.4, 0.4, 0.8, 0.4];
        for (a, b) in e.iter().zip(expect) {
            assert!((a - b).abs() < 1e-6, "{e:?}");
        }
        // A strong step saturates at 1.
        let img = vec![0.0f32, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0];
        let t = Tensor::<Flex, 4>::from_data(TensorData::new(img, [1, 1, 3, 3]), &dev);
        let e: Vec<f32> = edge_magnitude(t).into_data().to_vec().unwrap();
        assert_eq!(e, vec![0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0]);
    }
}
