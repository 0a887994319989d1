//! Linear layers, `y = x W + b`, as the model applies them.
//!
//! On the CPU backend without autodiff (`Flex`: Monte-Carlo inference, detection) a layer is
//! one call of the `gemm` crate (the matrix kernels `Flex` itself uses) over all rows of the
//! batch at once, accumulating onto the bias, into a buffer handed to the tensor without a
//! copy. burn 0.21's `Linear` on `Flex` runs a zero-filled allocation that is then copied to
//! realign it (`FlexTensor::empty`), the product, and a separate single-threaded bias pass;
//! together, on the calling thread, about a fifth of an MC forward pass while the other cores
//! waited. Every other backend, and training (`Autodiff<Flex>`), takes burn's `Linear::forward`.

use burn::backend::flex::FlexTensor;
use burn::backend::Flex;
use burn::nn::Linear;
use burn::tensor::{backend::Backend, DType, Tensor, TensorData, TensorPrimitive};
use rayon::prelude::*;

use super::attention::{cast, fused_backend, FusedBackend};

/// `x W + b` over the last dimension of `x`, as `layer.forward(x)`.
pub fn linear<B: Backend, const D: usize>(layer: &Linear<B>, x: Tensor<B, D>) -> Tensor<B, D> {
    let weight = layer.weight.val();
    let f32_only = x.dtype() == DType::F32
        && weight.dtype() == DType::F32
        && layer.bias.as_ref().is_none_or(|b| b.val().dtype() == DType::F32);
    if fused_backend::<B>() != Some(FusedBackend::Flex) || !f32_only {
        return layer.forward(x);
    }
    let x: Tensor<Flex, D> = cast(x);
    let weight: Tensor<Flex, 2> = cast(weight);
    let bias: Option<Tensor<Flex, 1>> = layer.bias.as_ref().map(|b| cast(b.val()));
    let bias = bias.map(|b| b.into_primitive().tensor());
    let out = linear_flex(&x.into_primitive().tensor(), &weight.into_primitive().tensor(), bias.as_ref());
    cast(Tensor::<Flex, D>::from_primitive(TensorPrimitive::Float(out)))
}

/// The values of `t` in row-major order (a copy only if `t` is a strided view).
fn row_major(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(values) => values.into(),
        None => t.to_contiguous().as_slice::<f32>().expect("a contiguous tensor").to_vec().into(),
    }
}

/// Products smaller than this many multiply-adds run on one thread (as `Flex` decides).
const PARALLEL_MULTIPLY_ADDS: usize = 192 * 192 * 192;

/// `x` (`[.., d_in]`) times `weight` (`[d_in, d_out]`, any strides) plus `bias` (`[d_out]`).
fn linear_flex(x: &FlexTensor, weight: &FlexTensor, bias: Option<&FlexTensor>) -> FlexTensor {
    let dims = x.layout().shape().to_vec();
    let d_in = *dims.last().expect("linear: a tensor with at least one dimension");
    let w_layout = weight.layout();
    let (w_rows, d_out) = (w_layout.shape()[0], w_layout.shape()[1]);
    assert_eq!(w_rows, d_in, "linear: input size {d_in} against a weight of {w_rows} rows");
    assert!(d_in > 0, "linear: an input without features");
    let rows = dims.iter().product::<usize>() / d_in;
    let x_values = row_major(x);
    let w_strides = w_layout.strides();
    assert!(w_strides.iter().all(|&s| s >= 0), "linear: a weight with negative strides");
    let w_values = &weight.storage::<f32>()[w_layout.start_offset()..];

    // The output starts as the bias, row after row, and the product is accumulated onto it;
    // without a bias the product is written over an uninitialised buffer. Either way every
    // element is written once before it is read: no zero-filling pass.
    let len = rows * d_out;
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let read_out = match bias {
        Some(bias) if len > 0 => {
            let bias = row_major(bias);
            assert_eq!(bias.len(), d_out, "linear: bias size");
            out.spare_capacity_mut()[..len].par_chunks_mut(d_out * 64).for_each(|chunk| {
                for row in chunk.chunks_mut(d_out) {
                    for (o, &b) in row.iter_mut().zip(bias.iter()) {
                        o.write(b);
                    }
                }
            });
            true
        }
        _ => false,
    };
    if len > 0 {
        let parallelism = if rows * d_in * d_out >= PARALLEL_MULTIPLY_ADDS {
            gemm::Parallelism::Rayon(0)
        } else {
            gemm::Parallelism::None
        };
        // SAFETY: `out` is `rows x d_out` row-major, `x_values` `rows x d_in` row-major, and the
        // weight's `d_in x d_out` elements lie in its storage at its own (non-negative) strides.
        unsafe {
            gemm::gemm(
                rows,
                d_out,
                d_in,
                out.spare_capacity_mut().as_mut_ptr().cast::<f32>(),
                1,
                d_out as isize,
                read_out,
                x_values.as_ptr(),
                1,
                d_in as isize,
                w_values.as_ptr(),
                w_strides[1],
                w_strides[0],
                1.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            );
        }
    }
    // SAFETY: `gemm` wrote all `len` elements (onto the bias where there is one).
    unsafe { out.set_len(len) };
    let mut out_dims = dims;
    *out_dims.last_mut().expect("at least one dimension") = d_out;
    FlexTensor::from_data(TensorData::new(out, out_dims))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Autodiff;
    use burn::module::Param;

    fn layer<B: Backend>(d_in: usize, d_out: usize, bias: bool, device: &B::Device) -> Linear<B> {
        let w: Vec<f32> = (0..d_in * d_out).map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0).collect();
        let b: Vec<f32> = (0..d_out).map(|i| i as f32 * 0.25 - 1.0).collect();
        Linear {
            weight: Param::from_tensor(Tensor::from_data(TensorData::new(w, [d_in, d_out]), device)),
            bias: bias.then(|| Param::from_tensor(Tensor::from_data(TensorData::new(b, [d_out]), device))),
        }
    }

    fn input<B: Backend>(shape: [usize; 3], device: &B::Device) -> Tensor<B, 3> {
        let n = shape.iter().product::<usize>();
        let x: Vec<f32> = (0..n).map(|i| ((i * 7919) % 211) as f32 / 100.0 - 1.0).collect();
        Tensor::from_data(TensorData::new(x, shape), device)
    }

    /// The gemm path against burn's `Linear::forward` (taken under autodiff) on the same
    /// weights: with and without bias, sizes on both sides of the threshold for threads, and a
    /// transposed (strided) input.
    #[test]
    fn flex_linear_matches_burn_linear() {
        let device = Default::default();
        for (shape, d_out, bias) in [([2, 5, 3], 4, true), ([4, 300, 128], 384, true), ([1, 7, 16], 9, false)] {
            let fast = linear(&layer::<Flex>(shape[2], d_out, bias, &device), input::<Flex>(shape, &device));
            let reference = layer::<Autodiff<Flex>>(shape[2], d_out, bias, &device).forward(input::<Autodiff<Flex>>(shape, &device));
            assert_eq!(fast.dims(), [shape[0], shape[1], d_out]);
            let (a, b) = (fast.into_data().to_vec::<f32>().unwrap(), reference.into_data().to_vec::<f32>().unwrap());
            let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs() / (1.0 + y.abs())).fold(0.0f32, f32::max);
            assert!(worst < 1e-5, "{shape:?} -> {d_out}: worst relative difference {worst}");
        }
        let x = input::<Flex>([1, 6, 5], &device).swap_dims(1, 2);
        let fast = linear(&layer::<Flex>(6, 3, true, &device), x.clone()).into_data().to_vec::<f32>().unwrap();
        let reference = layer::<Flex>(6, 3, true, &device).forward(x).into_data().to_vec::<f32>().unwrap();
        assert_eq!(fast.len(), 15);
        for (a, b) in fast.iter().zip(&reference) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }
}
