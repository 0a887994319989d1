//! The fused kernels of [`super::kernel`] as operations of the `Flex` backend and, with their
//! own backward step, of `Autodiff<Flex>` (the backward pass recomputes the attention weights
//! from the saved output and log-sum-exp instead of keeping `tokens x tokens` matrices).
//!
//! [`super::attention`] is generic over the backend; it asks [`fused_backend`] whether the
//! backend it runs on is one of these, and hands the tensors over by downcasting (a check of
//! the type, no copy).

use std::any::{Any, TypeId};
use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, CheckpointStrategy, NoCheckpointing};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};

use super::kernel::{self, Dims, Strides};

/// The backends with a fused attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FusedBackend {
    Flex,
    AutodiffFlex,
    AutodiffFlexBalanced,
}

/// Which fused implementation `B` has, if any.
pub(crate) fn fused_backend<B: Backend>() -> Option<FusedBackend> {
    let id = TypeId::of::<B>();
    if id == TypeId::of::<Flex>() {
        Some(FusedBackend::Flex)
    } else if id == TypeId::of::<Autodiff<Flex, NoCheckpointing>>() {
        Some(FusedBackend::AutodiffFlex)
    } else if id == TypeId::of::<Autodiff<Flex, BalancedCheckpointing>>() {
        Some(FusedBackend::AutodiffFlexBalanced)
    } else {
        None
    }
}

/// `x` as a `U`, which the caller has checked it is (a type check, no copy).
pub(crate) fn cast<T: 'static, U: 'static>(x: T) -> U {
    let mut slot = Some(x);
    (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<U>>()
        .and_then(Option::take)
        .expect("fused kernel: backend type mismatch")
}

/// Runs the fused attention on backend `B`, which [`fused_backend`] must have recognised as
/// `which`. `padding` is `[batch, k_tokens]`, `true` at padding keys.
pub(crate) fn attention<B: Backend>(
    which: FusedBackend,
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    padding: Option<Arc<[bool]>>,
) -> Tensor<B, 4> {
    let [batch, heads, q_tokens, head_dim] = q.dims();
    let k_tokens = k.dims()[2];
    let dims = Dims { batch, heads, q_tokens, k_tokens, head_dim };
    match which {
        FusedBackend::Flex => {
            let [q, k, v] = [q, k, v].map(|t| readable(&float_primitive::<Flex, 4>(cast(t))));
            let (out, _) = forward(dims, &q, &k, &v, padding.as_deref());
            cast(Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(out)))
        }
        FusedBackend::AutodiffFlex => {
            let [q, k, v] = [q, k, v].map(|t| float_primitive::<Autodiff<Flex>, 4>(cast(t)));
            let out = autodiff_forward::<NoCheckpointing>(dims, q, k, v, padding);
            cast(Tensor::<Autodiff<Flex>, 4>::from_primitive(TensorPrimitive::Float(out)))
        }
        FusedBackend::AutodiffFlexBalanced => {
            type Ad = Autodiff<Flex, BalancedCheckpointing>;
            let [q, k, v] = [q, k, v].map(|t| float_primitive::<Ad, 4>(cast(t)));
            let out = autodiff_forward::<BalancedCheckpointing>(dims, q, k, v, padding);
            cast(Tensor::<Ad, 4>::from_primitive(TensorPrimitive::Float(out)))
        }
    }
}

fn float_primitive<B: Backend, const D: usize>(t: Tensor<B, D>) -> FloatTensor<B> {
    t.into_primitive().tensor()
}

/// The tensor itself if it is `f32` with non-negative strides (which the kernels read in
/// place), else a contiguous `f32` copy.
fn readable(t: &FlexTensor) -> FlexTensor {
    assert_eq!(t.dtype(), DType::F32, "fused attention runs on f32 tensors");
    if t.layout().strides().iter().all(|&s| s >= 0) {
        t.clone()
    } else {
        t.to_contiguous()
    }
}

/// A [`readable`] 4-d tensor as the kernels' input.
fn input(t: &FlexTensor) -> kernel::Input<'_> {
    let layout = t.layout();
    let strides = layout.strides();
    assert!(layout.shape().num_dims() == 4 && strides.iter().all(|&s| s >= 0), "fused attention: a 4-d tensor with non-negative strides");
    kernel::Input {
        data: t.storage::<f32>(),
        strides: Strides {
            offset: layout.start_offset(),
            batch: strides[0] as usize,
            head: strides[1] as usize,
            token: strides[2] as usize,
            dim: strides[3] as usize,
        },
    }
}

/// A `[batch, heads, tokens, head_dim]` tensor over `values` laid out token-major
/// (`[batch, tokens, heads, head_dim]` in memory): a view with permuted strides, so that the
/// model's `swap_dims(1, 2).reshape(..)` back to `[batch, tokens, dim]` copies nothing.
fn token_major(values: Vec<f32>, batch: usize, heads: usize, tokens: usize, head_dim: usize) -> FlexTensor {
    let t = FlexTensor::from_data(TensorData::new(values, [batch, tokens, heads, head_dim]));
    let layout = t.layout().permute(&[0, 2, 1, 3]);
    t.with_layout(layout)
}

/// The fused forward on Flex tensors: the output and the log-sum-exp of each query row.
fn forward(dims: Dims, q: &FlexTensor, k: &FlexTensor, v: &FlexTensor, padding: Option<&[bool]>) -> (FlexTensor, FlexTensor) {
    let rows = dims.batch * dims.heads * dims.q_tokens;
    let mut out = vec![0.0f32; rows * dims.head_dim];
    let mut lse = vec![0.0f32; rows];
    kernel::forward(dims, input(q), input(k), input(v), padding, &mut out, &mut lse);
    (
        token_major(out, dims.batch, dims.heads, dims.q_tokens, dims.head_dim),
        FlexTensor::from_data(TensorData::new(lse, [dims.batch, dims.heads, dims.q_tokens])),
    )
}

/// What the backward step keeps: the inputs (views of the `qkv` projection, as they came), the
/// output and the log-sum-exp.
#[derive(Debug, Clone)]
struct SavedAttention {
    dims: Dims,
    q: FlexTensor,
    k: FlexTensor,
    v: FlexTensor,
    out: FlexTensor,
    lse: FlexTensor,
    padding: Option<Arc<[bool]>>,
}

#[derive(Debug)]
struct FusedAttentionBackward;

impl Backward<Flex, 3> for FusedAttentionBackward {
    type State = SavedAttention;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_q, node_k, node_v] = ops.parents;
        let d_out = readable(&grads.consume::<Flex>(&ops.node));
        let s = ops.state;
        let Dims { batch, heads, q_tokens, k_tokens, head_dim } = s.dims;
        let mut dq = vec![0.0f32; batch * heads * q_tokens * head_dim];
        let mut dk = vec![0.0f32; batch * heads * k_tokens * head_dim];
        let mut dv = vec![0.0f32; batch * heads * k_tokens * head_dim];
        let lse = s.lse.as_slice::<f32>().expect("the saved log-sum-exp is contiguous");
        kernel::backward(
            s.dims,
            input(&s.q),
            input(&s.k),
            input(&s.v),
            s.padding.as_deref(),
            input(&s.out),
            lse,
            input(&d_out),
            &mut dq,
            &mut dk,
            &mut dv,
        );
        if let Some(node) = node_q {
            grads.register::<Flex>(node.id, token_major(dq, batch, heads, q_tokens, head_dim));
        }
        if let Some(node) = node_k {
            grads.register::<Flex>(node.id, token_major(dk, batch, heads, k_tokens, head_dim));
        }
        if let Some(node) = node_v {
            grads.register::<Flex>(node.id, token_major(dv, batch, heads, k_tokens, head_dim));
        }
    }
}

/// The fused attention as an operation of `Autodiff<Flex, C>` with [`FusedAttentionBackward`]
/// as its backward step.
fn autodiff_forward<C: CheckpointStrategy>(
    dims: Dims,
    q: FloatTensor<Autodiff<Flex, C>>,
    k: FloatTensor<Autodiff<Flex, C>>,
    v: FloatTensor<Autodiff<Flex, C>>,
    padding: Option<Arc<[bool]>>,
) -> FloatTensor<Autodiff<Flex, C>> {
    let prep = FusedAttentionBackward
        .prepare::<C>([q.node.clone(), k.node.clone(), v.node.clone()])
        .compute_bound()
        .stateful();
    match prep {
        OpsKind::Tracked(prep) => {
            let [q, k, v] = [&q.primitive, &k.primitive, &v.primitive].map(readable);
            let (out, lse) = forward(dims, &q, &k, &v, padding.as_deref());
            let saved = SavedAttention { dims, q, k, v, out: out.clone(), lse, padding };
            prep.finish(saved, out)
        }
        OpsKind::UnTracked(prep) => {
            let [q, k, v] = [&q.primitive, &k.primitive, &v.primitive].map(readable);
            let (out, _) = forward(dims, &q, &k, &v, padding.as_deref());
            prep.finish(out)
        }
    }
}
