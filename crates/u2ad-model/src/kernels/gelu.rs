//! The exact (erf) GELU of the transformer's MLP, `0.5 · x · (1 + erf(x / √2))`.
//!
//! On the CPU backend (`Flex` for Monte-Carlo inference and detection, `Autodiff<Flex>` for
//! training, with its own backward step) it runs a vectorised kernel, written here because
//! `Flex` evaluates `erf` (and, for the gradient, `exp`) one value at a time through `libm`
//! (about a tenth of an MC forward pass, and of a training step, went there). Other backends
//! (CUDA) take burn's `gelu`. The kernel's `erf` is the rational approximation of Eigen and XLA
//! (odd degree-13 numerator over even degree-8 denominator on `[-4, 4]`, ±1 outside); it
//! agrees with `libm::erff` within 3e-7 (test below), so the two paths give the same model
//! within `f32` rounding. The gradient is burn's formula, `Φ(x) + x·φ(x)`, with the attention
//! kernels' `exp2` polynomial for `φ`.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, CheckpointStrategy, NoCheckpointing};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::{activation, backend::Backend, DType, Tensor, TensorData, TensorPrimitive};
use rayon::prelude::*;

use super::attention::{cast, exp2_scalar, fused_backend, FusedBackend};

/// `gelu(x)` element-wise.
pub fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    if x.dtype() != DType::F32 {
        return activation::gelu(x);
    }
    match fused_backend::<B>() {
        Some(FusedBackend::Flex) => {
            let flex: Tensor<Flex, D> = cast(x);
            cast(Tensor::<Flex, D>::from_primitive(TensorPrimitive::Float(gelu_flex(flex.into_primitive().tensor()))))
        }
        Some(FusedBackend::AutodiffFlex) => autodiff_gelu::<NoCheckpointing, B, D>(x),
        Some(FusedBackend::AutodiffFlexBalanced) => autodiff_gelu::<BalancedCheckpointing, B, D>(x),
        None => activation::gelu(x),
    }
}

/// [`gelu`] as an operation of `Autodiff<Flex, C>` (which `B` is) with [`GeluBackward`].
fn autodiff_gelu<C: CheckpointStrategy, B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let x: Tensor<Autodiff<Flex, C>, D> = cast(x);
    let x = x.into_primitive().tensor();
    let out = match GeluBackward.prepare::<C>([x.node.clone()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            // The input is kept for the backward step, so the output goes to a new buffer.
            let input = x.primitive.to_contiguous();
            let out = gelu_copy(&input);
            prep.finish(input, out)
        }
        OpsKind::UnTracked(prep) => prep.finish(gelu_flex(x.primitive)),
    };
    cast(Tensor::<Autodiff<Flex, C>, D>::from_primitive(TensorPrimitive::Float(out)))
}

/// The backward step of [`autodiff_gelu`]: `dx = dy · gelu'(x)`; its state is `x`.
#[derive(Debug)]
struct GeluBackward;

impl Backward<Flex, 1> for GeluBackward {
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let Some(node) = node else { return };
        let x = ops.state;
        let x = x.as_slice::<f32>().expect("the saved input is contiguous");
        let mut grad = grad;
        let d_x = match owned_values(&mut grad) {
            Some(values) => {
                assert_eq!(values.len(), x.len(), "gelu backward: gradient size");
                gelu_gradient_in_place(x, values);
                grad
            }
            None => {
                let mut values = grad.to_contiguous().as_slice::<f32>().expect("a contiguous tensor").to_vec();
                gelu_gradient_in_place(x, &mut values);
                FlexTensor::from_data(TensorData::new(values, grad.layout().shape().to_vec()))
            }
        };
        grads.register::<Flex>(node.id, d_x);
    }
}

/// The values of `t`, writable, if `t` is the only owner of exactly its own contiguous buffer.
fn owned_values(t: &mut FlexTensor) -> Option<&mut [f32]> {
    let owned = t.dtype() == DType::F32
        && t.is_unique()
        && t.layout().start_offset() == 0
        && t.as_slice::<f32>().is_some_and(|v| v.len() * 4 == t.bytes().len());
    owned.then(|| t.storage_mut::<f32>())
}

/// `gelu` into a new contiguous tensor.
fn gelu_copy(input: &FlexTensor) -> FlexTensor {
    let contiguous = input.to_contiguous();
    let mut values = contiguous.as_slice::<f32>().expect("a contiguous tensor").to_vec();
    gelu_in_place(&mut values);
    FlexTensor::from_data(TensorData::new(values, input.layout().shape().to_vec()))
}

/// In place when `input` owns its whole buffer (the hidden layer's fresh output always does),
/// into a new buffer otherwise.
fn gelu_flex(mut input: FlexTensor) -> FlexTensor {
    if let Some(values) = owned_values(&mut input) {
        gelu_in_place(values);
        return input;
    }
    gelu_copy(&input)
}

/// Values per parallel task.
const CHUNK: usize = 16 * 1024;

/// `x[i] = gelu(x[i])`, in parallel chunks.
pub fn gelu_in_place(x: &mut [f32]) {
    x.par_chunks_mut(CHUNK).for_each(|chunk| run(Pass::Gelu, chunk));
}

/// `grad[i] *= gelu'(x[i])`, in parallel chunks.
pub fn gelu_gradient_in_place(x: &[f32], grad: &mut [f32]) {
    assert_eq!(x.len(), grad.len(), "gelu gradient: input and gradient sizes");
    grad.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(g, x)| run(Pass::Gradient { x }, g));
}

/// What one kernel call computes in place on its values.
#[derive(Clone, Copy)]
enum Pass<'a> {
    /// `v = gelu(v)`.
    Gelu,
    /// `v *= gelu'(x)`, element by element.
    Gradient { x: &'a [f32] },
}

/// Runs `pass` on `values`, compiled for the best instruction set this CPU has.
fn run(pass: Pass<'_>, values: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { run_avx512(pass, values) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { run_avx2(pass, values) };
        }
    }
    pass_loop(pass, values)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn run_avx512(pass: Pass<'_>, values: &mut [f32]) {
    pass_loop(pass, values)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2(pass: Pass<'_>, values: &mut [f32]) {
    pass_loop(pass, values)
}

/// Plain loops over [`gelu_scalar`] and [`gelu_derivative`] that the compiler vectorises for
/// the enclosing target features (no branches, no calls).
#[inline(always)]
fn pass_loop(pass: Pass<'_>, values: &mut [f32]) {
    match pass {
        Pass::Gelu => {
            for v in values.iter_mut() {
                *v = gelu_scalar(*v);
            }
        }
        Pass::Gradient { x } => {
            for (g, &x) in values.iter_mut().zip(x) {
                *g *= gelu_derivative(x);
            }
        }
    }
}

/// `d gelu / dx = Φ(x) + x·φ(x)`: the normal distribution's CDF and density.
#[inline(always)]
pub fn gelu_derivative(x: f32) -> f32 {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let cdf = 0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
    let pdf = INV_SQRT_2PI * exp2_scalar(-0.5 * std::f32::consts::LOG2_E * x * x);
    cdf + x * pdf
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

    /// Under autodiff (both checkpointing strategies the trainer uses): the same values and
    /// gradients as burn's own gelu (libm `erff` and `expf`), for a weighted sum of the outputs.
    #[test]
    fn autodiff_gelu_matches_burns_values_and_gradients() {
        use burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing;
        use burn::tensor::backend::AutodiffBackend;

        fn check<Ad: AutodiffBackend>() {
            let values: Vec<f32> = (0..16_001).map(|i| -8.0 + i as f32 * 1e-3).collect();
            let weights: Vec<f32> = (0..values.len()).map(|i| 1.0 + (i % 7) as f32 * 0.25).collect();
            let device = Default::default();
            let run = |ours: bool| {
                let x = Tensor::<Ad, 1>::from_data(TensorData::new(values.clone(), [values.len()]), &device).require_grad();
                let w = Tensor::<Ad, 1>::from_data(TensorData::new(weights.clone(), [weights.len()]), &device);
                // Through a product first, so that the input of the gelu is not a leaf.
                let h = x.clone() * 1.0;
                let y = if ours { gelu(h) } else { activation::gelu(h) };
                let grads = (y.clone() * w).sum().backward();
                let y: Vec<f32> = y.into_data().to_vec().unwrap();
                let dx: Vec<f32> = x.grad(&grads).expect("a gradient").into_data().to_vec().unwrap();
                (y, dx)
            };
            let ((y, dx), (y_ref, dx_ref)) = (run(true), run(false));
            let worst = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst(&y, &y_ref) < 1e-6, "values: {}", worst(&y, &y_ref));
            assert!(worst(&dx, &dx_ref) < 2e-6, "gradients: {}", worst(&dx, &dx_ref));
            // gelu'(0) = 1/2; gelu'(1) = Φ(1) + φ(1) = 0.841 344 7 + 0.241 970 7, times the weight.
            assert!((dx[8_000] / weights[8_000] - 0.5).abs() < 1e-6, "{}", dx[8_000]);
            assert!((dx[9_000] / weights[9_000] - 1.083_315_4).abs() < 1e-6, "{}", dx[9_000]);
        }
        check::<Autodiff<Flex>>();
        check::<Autodiff<Flex, BalancedCheckpointing>>();
    }
}
