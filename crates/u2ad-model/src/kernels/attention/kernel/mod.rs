//! Fused scaled dot-product attention on plain `f32` buffers: a forward pass that keeps only
//! the output and each query row's log-sum-exp, and a backward pass that recomputes the
//! attention weights from them. Neither ever holds more than one row of scores per thread, so
//! memory grows with `tokens`, not `tokens²`.
//!
//! # Layout and vectorisation
//!
//! Inputs are `[batch, heads, tokens, head_dim]` tensors with any element strides
//! ([`Strides`]), so that the heads can be read where the `qkv` projection left them, without a
//! copy. Outputs are written token-major (`[batch, tokens, heads, head_dim]` in memory, see
//! [`Strides::token_major`]), the order in which the model merges the heads again.
//!
//! Work is split over `(batch, head)` pairs with rayon. Within a pair, the keys and values that
//! may be attended (those not flagged as padding: padding keys are dropped here, so they cost
//! nothing and get exactly zero weight) are packed, transposed, into blocks of `L` keys
//! (`[head_dim][L]`, 64-byte aligned), so that every operation runs across `L` keys at once:
//! `L` = 16 with AVX-512, 8 with AVX2 + FMA, 4 elsewhere. With the small head sizes of U2AD
//! (8), vectorising over keys keeps every lane busy, where vectorising over the head
//! dimension would need a horizontal sum per score. The exponential is a polynomial evaluated
//! in the same lanes (a base-2 exponential with `log2 e` folded into the scores; relative error
//! below 3e-7), see [`super::simd`].
//!
//! Each query row makes two sweeps over its keys in the forward pass: scores and their
//! maximum (the scores go to a one-row buffer), then exponentials, their sum and the weighted
//! sum of values. The backward pass makes one sweep per row that recomputes the scores and
//! weights `p = exp(s − lse)`, and accumulates `dV += p·dO`, `dK += dS·q`, `dq += dS·K` with
//! `dS = p (dO·v − Δ)` and `Δ = dO·O` (FlashAttention's backward). Rows go through together,
//! 2 in the forward pass's first sweep and 8 in the backward pass, so that each block of keys
//! loaded (and each read-modify-write of its gradients) serves several rows; the forward
//! pass's second sweep takes its rows one at a time (two rows' accumulators spilled).
//!
//! The kernels are instantiated per head size (4, 8, 16, 32; see [`supported_head_dim`]) and
//! per instruction set (chosen at run time, or by `U2AD_ATTENTION_ISA`), from one generic body.
//!
//! Files: `mod.rs` (the sizes and the two entry points, [`forward`] and [`backward`]),
//! `buffers.rs` (strides, head views, shared outputs, scratch and the packing of keys into
//! blocks), `forward_pass.rs` and `backward_pass.rs` (one `(batch, head)` of each pass),
//! `dispatch.rs` (the instruction set and the instantiation per instruction set).

use rayon::prelude::*;

mod backward_pass;
mod buffers;
mod dispatch;
mod forward_pass;

use backward_pass::BackwardTask;
pub use buffers::{Input, Strides};
use buffers::{Scratch, Shared, SharedOut, SharedRows};
use dispatch::{backward_dispatch, forward_dispatch, isa};
use forward_pass::ForwardTask;

/// Sizes of one attention call. Queries and keys may differ in number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    pub batch: usize,
    pub heads: usize,
    pub q_tokens: usize,
    pub k_tokens: usize,
    pub head_dim: usize,
}

impl Dims {
    fn pairs(&self) -> usize {
        self.batch * self.heads
    }
}

/// Head sizes the fused kernels are built for.
pub fn supported_head_dim(head_dim: usize) -> bool {
    matches!(head_dim, 4 | 8 | 16 | 32)
}

/// Calls `$body` with `D` bound to the head size as a constant.
macro_rules! with_head_dim {
    ($head_dim:expr, $D:ident => $body:expr) => {
        match $head_dim {
            4 => {
                const $D: usize = 4;
                $body
            }
            8 => {
                const $D: usize = 8;
                $body
            }
            16 => {
                const $D: usize = 16;
                $body
            }
            32 => {
                const $D: usize = 32;
                $body
            }
            d => panic!("fused attention: unsupported head size {d}"),
        }
    };
}

/// For each image, the keys not flagged in `padding` (`[batch, k_tokens]`, `true` = padding).
fn valid_keys(dims: Dims, padding: Option<&[bool]>) -> Vec<Vec<u32>> {
    (0..dims.batch)
        .map(|b| match padding {
            Some(p) => {
                let p = &p[b * dims.k_tokens..][..dims.k_tokens];
                (0..dims.k_tokens as u32).filter(|&j| !p[j as usize]).collect()
            }
            None => (0..dims.k_tokens as u32).collect(),
        })
        .collect()
}

fn check_inputs(dims: Dims, q: &Input<'_>, k: &Input<'_>, v: &Input<'_>, padding: Option<&[bool]>) {
    assert!(supported_head_dim(dims.head_dim), "fused attention: unsupported head size {}", dims.head_dim);
    assert!(dims.k_tokens <= u32::MAX as usize, "fused attention: too many keys");
    let Dims { batch, heads, q_tokens, k_tokens, head_dim } = dims;
    q.check("query", batch, heads, q_tokens, head_dim);
    k.check("key", batch, heads, k_tokens, head_dim);
    v.check("value", batch, heads, k_tokens, head_dim);
    if let Some(p) = padding {
        assert_eq!(p.len(), batch * k_tokens, "fused attention: key padding size");
    }
}

/// `softmax(q kᵀ / sqrt(head_dim)) v` with padding keys (`padding`: `[batch, k_tokens]`,
/// `true` = padding) excluded. `out` gets the output, token-major (`[batch, q_tokens, heads,
/// head_dim]` in memory), `lse` the log-sum-exp of each query row's scores, in base 2
/// (`log2 Σ_j 2^(log2(e) q·k_j / sqrt(head_dim))`, `[batch, heads, q_tokens]`; `-inf` for a row
/// with no key, whose output is 0).
pub fn forward(dims: Dims, q: Input<'_>, k: Input<'_>, v: Input<'_>, padding: Option<&[bool]>, out: &mut [f32], lse: &mut [f32]) {
    check_inputs(dims, &q, &k, &v, padding);
    assert_eq!(lse.len(), dims.pairs() * dims.q_tokens, "fused attention: log-sum-exp size");
    let keys = valid_keys(dims, padding);
    let isa = isa();
    let out = SharedOut::new(out, dims, dims.q_tokens);
    let lse = SharedRows(lse.as_mut_ptr());
    let inputs = Shared((q, k, v));
    with_head_dim!(dims.head_dim, D => {
        (0..dims.pairs()).into_par_iter().for_each_init(Scratch::new, |scratch, pair| {
            let (b, h) = (pair / dims.heads, pair % dims.heads);
            let (q, k, v) = inputs.0;
            let task = ForwardTask {
                q: q.head(b, h),
                k: k.head(b, h),
                v: v.head(b, h),
                keys: &keys[b],
                q_tokens: dims.q_tokens,
                out: out.head(b, h),
                lse: lse.at(pair * dims.q_tokens),
            };
            forward_dispatch::<D>(isa, &task, scratch);
        })
    });
}

/// Gradients of [`forward`] given the gradient `d_out` of its output (`out` and `d_out` may
/// have any strides; `lse` is as [`forward`] wrote it): `dq`, `dk`, `dv` are overwritten,
/// token-major like [`forward`]'s output; padding keys get 0.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    dims: Dims,
    q: Input<'_>,
    k: Input<'_>,
    v: Input<'_>,
    padding: Option<&[bool]>,
    out: Input<'_>,
    lse: &[f32],
    d_out: Input<'_>,
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
) {
    check_inputs(dims, &q, &k, &v, padding);
    out.check("output", dims.batch, dims.heads, dims.q_tokens, dims.head_dim);
    d_out.check("output gradient", dims.batch, dims.heads, dims.q_tokens, dims.head_dim);
    assert_eq!(lse.len(), dims.pairs() * dims.q_tokens, "fused attention: log-sum-exp size");
    let keys = valid_keys(dims, padding);
    let isa = isa();
    let dq = SharedOut::new(dq, dims, dims.q_tokens);
    let dk = SharedOut::new(dk, dims, dims.k_tokens);
    let dv = SharedOut::new(dv, dims, dims.k_tokens);
    let inputs = Shared((q, k, v, out, d_out, lse));
    with_head_dim!(dims.head_dim, D => {
        (0..dims.pairs()).into_par_iter().for_each_init(Scratch::new, |scratch, pair| {
            let (b, h) = (pair / dims.heads, pair % dims.heads);
            let (q, k, v, out, d_out, lse) = inputs.0;
            let task = BackwardTask {
                q: q.head(b, h),
                k: k.head(b, h),
                v: v.head(b, h),
                keys: &keys[b],
                q_tokens: dims.q_tokens,
                k_tokens: dims.k_tokens,
                out: out.head(b, h),
                d_out: d_out.head(b, h),
                lse: lse[pair * dims.q_tokens..].as_ptr(),
                dq: dq.head(b, h),
                dk: dk.head(b, h),
                dv: dv.head(b, h),
            };
            backward_dispatch::<D>(isa, &task, scratch);
        })
    });
}
