//! The forward pass of one `(batch, head)`: per query row, the scores against the packed keys
//! and their maximum, then the exponentials, their sum and the weighted sum of values, written
//! with the row's log-sum-exp.

use std::f32::consts::LOG2_E;

use super::super::simd::{exp2, Simd};
use super::buffers::{pack, tail_bias, HeadIn, HeadOut, Scratch};

/// One `(batch, head)` of the forward pass.
pub(super) struct ForwardTask<'a> {
    pub(super) q: HeadIn,
    pub(super) k: HeadIn,
    pub(super) v: HeadIn,
    pub(super) keys: &'a [u32],
    pub(super) q_tokens: usize,
    pub(super) out: HeadOut,
    /// `q_tokens` log-sum-exps.
    pub(super) lse: *mut f32,
}

#[inline(always)]
pub(super) unsafe fn forward_head<S: Simd, const D: usize>(task: &ForwardTask<'_>, scratch: &mut Scratch) {
    let lanes = S::LANES;
    // Scores in base-2 units (`log2(e) · q·k / sqrt(D)`), so that the weights are `2^(s − m)`.
    let scale = LOG2_E / (D as f32).sqrt();
    let keys = task.keys;
    unsafe {
        pack::<D>(lanes, task.k, keys, &mut scratch.keys);
        pack::<D>(lanes, task.v, keys, &mut scratch.values);
        let blocks = keys.len().div_ceil(lanes);
        if blocks == 0 {
            for i in 0..task.q_tokens {
                task.out.row::<D>(i).fill(0.0);
                *task.lse.add(i) = f32::NEG_INFINITY;
            }
            return;
        }
        scratch.row.zeroed(FORWARD_ROWS * blocks * lanes);
        let blocks = ForwardBlocks {
            keys: scratch.keys.as_slice().as_ptr(),
            values: scratch.values.as_slice().as_ptr(),
            count: blocks,
            bias: tail_bias::<S>(keys.len() - (blocks - 1) * lanes),
        };
        let row = scratch.row.as_mut_slice().as_mut_ptr();
        // Several rows at a time share each block's loads.
        let mut i = 0;
        while i + FORWARD_ROWS <= task.q_tokens {
            forward_rows::<S, D, FORWARD_ROWS>(task, i, &blocks, row, scale);
            i += FORWARD_ROWS;
        }
        while i < task.q_tokens {
            forward_rows::<S, D, 1>(task, i, &blocks, row, scale);
            i += 1;
        }
    }
}

/// Query rows handled together by the forward pass (2 measured fastest of 1, 2, 4, 8, by a
/// little: the forward pass is bound by arithmetic, not loads).
const FORWARD_ROWS: usize = 2;

/// The packed blocks of one `(batch, head)` in the forward pass.
struct ForwardBlocks<S: Simd> {
    keys: *const f32,
    values: *const f32,
    count: usize,
    /// [`tail_bias`] of the last block.
    bias: S::V,
}

/// Query rows `first..first + R` of the forward pass; `row` has room for `R` rows of scores.
#[inline(always)]
unsafe fn forward_rows<S: Simd, const D: usize, const R: usize>(
    task: &ForwardTask<'_>,
    first: usize,
    blocks: &ForwardBlocks<S>,
    row: *mut f32,
    scale: f32,
) {
    let lanes = S::LANES;
    let stride = D * lanes;
    let count = blocks.count;
    unsafe {
        let zero = S::splat(0.0);
        let qs: [[S::V; D]; R] = std::array::from_fn(|r| std::array::from_fn(|d| S::splat(task.q.get(first + r, d) * scale)));
        let mut max = [S::splat(f32::NEG_INFINITY); R];
        for c in 0..count {
            let kc = blocks.keys.add(c * stride);
            let mut s = [zero; R];
            for r in 0..R {
                s[r] = S::mul(qs[r][0], S::load(kc));
            }
            for d in 1..D {
                let k = S::load(kc.add(d * lanes));
                for r in 0..R {
                    s[r] = S::fma(qs[r][d], k, s[r]);
                }
            }
            for r in 0..R {
                if c + 1 == count {
                    s[r] = S::add(s[r], blocks.bias);
                }
                S::store(row.add((r * count + c) * lanes), s[r]);
                max[r] = S::max(max[r], s[r]);
            }
        }
        // The weighted sums one row at a time: with `R` rows the `R·D` accumulators, the
        // exponential's constants and temporaries outgrow the 32 vector registers and spill.
        for r in 0..R {
            let m = S::hmax(max[r]);
            let mv = S::splat(m);
            let scores = row.add(r * count * lanes);
            let mut sum = zero;
            let mut acc: [S::V; D] = [zero; D];
            for c in 0..count {
                let vc = blocks.values.add(c * stride);
                let p = exp2::<S>(S::sub(S::load(scores.add(c * lanes)), mv));
                sum = S::add(sum, p);
                for d in 0..D {
                    acc[d] = S::fma(p, S::load(vc.add(d * lanes)), acc[d]);
                }
            }
            let total = S::hsum(sum);
            let inv = 1.0 / total;
            let out = task.out.row::<D>(first + r);
            for d in 0..D {
                out[d] = S::hsum(acc[d]) * inv;
            }
            *task.lse.add(first + r) = m + total.log2();
        }
    }
}
