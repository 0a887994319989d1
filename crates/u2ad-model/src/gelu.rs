//! The exact (erf) GELU of the transformer's MLP, `0.5 · x · (1 + erf(x / √2))`.
//!
//! On the CPU backend without autodiff (`Flex`: Monte-Carlo inference, detection) it runs a
//! vectorised kernel, written here because `Flex` evaluates `erf` one value at a time through
//! `libm` (about a tenth of an MC forward pass went there). Every other backend, and training
//! (`Autodiff<Flex>`), takes burn's `gelu`. The kernel's `erf` is the rational approximation of
//! Eigen and XLA (odd degree-13 numerator over even degree-8 denominator on `[-4, 4]`, ±1
//! outside); it agrees with `libm::erff` within 3e-7 (test below), so the two paths give the
//! same model within `f32` rounding.

use burn::backend::flex::FlexTensor;
use burn::backend::Flex;
use burn::tensor::{activation, backend::Backend, DType, Tensor, TensorData, TensorPrimitive};
use rayon::prelude::*;

use crate::attention::{cast, fused_backend, FusedBackend};

/// `gelu(x)` element-wise.
pub fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    if fused_backend::<B>() != Some(FusedBackend::Flex) || x.dtype() != DType::F32 {
        return activation::gelu(x);
    }
    let flex: Tensor<Flex, D> = cast(x);
    let input = match flex.into_primitive() {
        TensorPrimitive::Float(t) => t,
        TensorPrimitive::QFloat(_) => unreachable!("an f32 tensor"),
    };
    cast(Tensor::<Flex, D>::from_primitive(TensorPrimitive::Float(gelu_flex(input))))
}

/// In place when `input` owns its whole buffer (the hidden layer's fresh output always does),
/// into a new buffer otherwise.
fn gelu_flex(mut input: FlexTensor) -> FlexTensor {
    let owns_buffer = input.is_unique()
        && input.layout().start_offset() == 0
        && input.as_slice::<f32>().is_some_and(|v| v.len() * 4 == input.bytes().len());
    if owns_buffer {
        gelu_in_place(input.storage_mut::<f32>());
        return input;
    }
    let contiguous = input.to_contiguous();
    let values = contiguous.as_slice::<f32>().expect("a contiguous tensor");
    let mut output = vec![0.0f32; values.len()];
    gelu_into(values, &mut output);
    FlexTensor::from_data(TensorData::new(output, input.layout().shape().to_vec()))
}

/// `x[i] = gelu(x[i])`, in parallel chunks.
pub fn gelu_in_place(x: &mut [f32]) {
    const CHUNK: usize = 16 * 1024;
    x.par_chunks_mut(CHUNK).for_each(gelu_chunk);
}

/// `out[i] = gelu(x[i])`.
pub fn gelu_into(x: &[f32], out: &mut [f32]) {
    assert_eq!(x.len(), out.len(), "gelu: input and output sizes");
    out.copy_from_slice(x);
    gelu_in_place(out);
}

fn gelu_chunk(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { gelu_avx512(x) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { gelu_avx2(x) };
        }
    }
    gelu_loop(x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn gelu_avx512(x: &mut [f32]) {
    gelu_loop(x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_avx2(x: &mut [f32]) {
    gelu_loop(x)
}

/// A plain loop over [`gelu_scalar`] that the compiler vectorises for the enclosing target
/// features (no branches, no calls).
#[inline(always)]
fn gelu_loop(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = gelu_scalar(*v);
    }
}

/// `0.5 · x · (1 + erf(x / √2))`.
#[inline(always)]
pub fn gelu_scalar(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// `erf(x)` for `f32` (see the module documentation).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    const ALPHA: [f32; 7] = [
        -2.726_142_2e-10,
        2.770_681_4e-8,
        -2.101_024e-6,
        -5.692_506_4e-5,
        -7.349_906_3e-4,
        -2.954_599_8e-3,
        -1.609_603_3e-2,
    ];
    const BETA: [f32; 5] = [-1.456_607_2e-5, -2.133_740_6e-4, -1.682_827e-3, -7.373_329_2e-3, -1.426_473_9e-2];
    // Branch-free clamp (a comparison and a select per bound), which vectorises.
    let x = if x > 4.0 { 4.0 } else { x };
    let x = if x < -4.0 { -4.0 } else { x };
    let x2 = x * x;
    let mut p = ALPHA[0];
    for &a in &ALPHA[1..] {
        p = p.mul_add(x2, a);
    }
    let mut q = BETA[0];
    for &b in &BETA[1..] {
        q = q.mul_add(x2, b);
    }
    x * p / q
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn erf_matches_known_values() {
        // erf(0.5), erf(1), erf(2), erf(3) to 8 digits (Abramowitz & Stegun, table 7.1).
        for (x, expected) in [(0.5f32, 0.520_499_9f32), (1.0, 0.842_700_8), (2.0, 0.995_322_3), (3.0, 0.999_977_9)] {
            assert!((erf(x) - expected).abs() < 3e-7, "erf({x}) = {} vs {expected}", erf(x));
            assert!((erf(-x) + expected).abs() < 3e-7, "erf is odd");
        }
        assert_eq!(erf(0.0), 0.0);
        assert_eq!(erf(10.0), erf(4.0));
        assert!((erf(4.0) - 1.0).abs() < 3e-7, "{}", erf(4.0));
    }

    #[test]
    fn flex_gelu_matches_burns_within_f32_rounding() {
        // A dense grid over [-8, 8] and a non-contiguous view: the vectorised kernel against
        // burn's own gelu (libm erff) on the same values.
        let values: Vec<f32> = (0..64_001).map(|i| -8.0 + i as f32 * 2.5e-4).collect();
        let device = Default::default();
        let x = Tensor::<Flex, 1>::from_data(TensorData::new(values.clone(), [values.len()]), &device);
        let ours: Vec<f32> = gelu(x.clone()).into_data().to_vec().unwrap();
        let burns: Vec<f32> = activation::gelu(x.clone()).into_data().to_vec().unwrap();
        let worst = ours.iter().zip(&burns).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-6, "largest difference {worst}");
        // `x` was shared, so the result went to a new buffer and `x` kept its values; a tensor
        // of its own is overwritten in place, with the same result.
        assert_eq!(x.into_data().to_vec::<f32>().unwrap(), values);
        let owned = Tensor::<Flex, 1>::from_data(TensorData::new(values.clone(), [values.len()]), &device);
        assert_eq!(gelu(owned).into_data().to_vec::<f32>().unwrap(), ours);
        // gelu(1) = 0.5 (1 + erf(1/√2)) = 0.841 344 7.
        let at_one = ours[36_000];
        assert!((values[36_000] - 1.0).abs() < 1e-6 && (at_one - 0.841_344_7).abs() < 3e-7, "{at_one}");

        let m = Tensor::<Flex, 2>::from_data(TensorData::new(values[..6].to_vec(), [2, 3]), &device).swap_dims(0, 1);
        let ours: Vec<f32> = gelu(m.clone()).into_data().to_vec().unwrap();
        let burns: Vec<f32> = activation::gelu(m).into_data().to_vec().unwrap();
        assert_eq!(ours.len(), 6);
        assert!(ours.iter().zip(&burns).all(|(a, b)| (a - b).abs() < 1e-6), "{ours:?} vs {burns:?}");
    }
}
