//! The backward pass of one `(batch, head)`: the attention weights recomputed from the
//! log-sum-exps, and the gradients of the queries, keys and values (FlashAttention's backward).

use std::f32::consts::{LN_2, LOG2_E};

use super::super::simd::{exp2, Simd};
use super::buffers::{pack, tail_bias, HeadIn, HeadOut, Scratch};

/// The scores of the (scaled) query `qs` against the block of keys at `keys`.
#[inline(always)]
unsafe fn scores<S: Simd, const D: usize>(qs: &[S::V; D], keys: *const f32) -> S::V {
    unsafe {
        let mut s = S::mul(qs[0], S::load(keys));
        for d in 1..D {
            s = S::fma(qs[d], S::load(keys.add(d * S::LANES)), s);
        }
        s
    }
}

/// One `(batch, head)` of the backward pass.
pub(super) struct BackwardTask<'a> {
    pub(super) q: HeadIn,
    pub(super) k: HeadIn,
    pub(super) v: HeadIn,
    pub(super) keys: &'a [u32],
    pub(super) q_tokens: usize,
    pub(super) k_tokens: usize,
    pub(super) out: HeadIn,
    pub(super) d_out: HeadIn,
    /// `q_tokens` log-sum-exps.
    pub(super) lse: *const f32,
    pub(super) dq: HeadOut,
    pub(super) dk: HeadOut,
    pub(super) dv: HeadOut,
}

/// Query rows handled together by the backward pass (8 measured fastest of 1, 2, 3, 4, 8, 16
/// with AVX-512 and AVX2 at head size 8).
const BACKWARD_ROWS: usize = 8;

/// The packed blocks of one `(batch, head)` in the backward pass.
struct BackwardBlocks<S: Simd> {
    keys: *const f32,
    values: *const f32,
    d_keys: *mut f32,
    d_values: *mut f32,
    count: usize,
    /// [`tail_bias`] of the last block.
    bias: S::V,
}

/// Query rows `first..first + R` of the backward pass: their `dq`, and their contributions to
/// the blocks' key and value gradients. `scale` is the base-2 score scale.
#[inline(always)]
unsafe fn backward_rows<S: Simd, const D: usize, const R: usize>(task: &BackwardTask<'_>, first: usize, blocks: &BackwardBlocks<S>, scale: f32) {
    let lanes = S::LANES;
    let stride = D * lanes;
    unsafe {
        let zero = S::splat(0.0);
        let qs: [[S::V; D]; R] = std::array::from_fn(|r| std::array::from_fn(|d| S::splat(task.q.get(first + r, d) * scale)));
        let g: [[S::V; D]; R] = std::array::from_fn(|r| std::array::from_fn(|d| S::splat(task.d_out.get(first + r, d) * LN_2)));
        let delta: [S::V; R] = std::array::from_fn(|r| {
            let i = first + r;
            S::splat((0..D).map(|d| task.d_out.get(i, d) * task.out.get(i, d)).sum::<f32>() * LN_2)
        });
        let lv: [S::V; R] = std::array::from_fn(|r| S::splat(*task.lse.add(first + r)));
        let mut acc: [[S::V; D]; R] = [[zero; D]; R];
        for c in 0..blocks.count {
            let kc = blocks.keys.add(c * stride);
            let vc = blocks.values.add(c * stride);
            let mut p = [zero; R];
            let mut ds = [zero; R];
            for r in 0..R {
                let mut s = scores::<S, D>(&qs[r], kc);
                if c + 1 == blocks.count {
                    s = S::add(s, blocks.bias);
                }
                p[r] = exp2::<S>(S::sub(s, lv[r]));
            }
            let mut dp = [zero; R];
            for d in 0..D {
                let v = S::load(vc.add(d * lanes));
                for r in 0..R {
                    dp[r] = S::fma(g[r][d], v, dp[r]);
                }
            }
            for r in 0..R {
                ds[r] = S::mul(p[r], S::sub(dp[r], delta[r]));
            }
            let (dkc, dvc) = (blocks.d_keys.add(c * stride), blocks.d_values.add(c * stride));
            for d in 0..D {
                let o = d * lanes;
                let mut dv = S::load(dvc.add(o));
                let mut dk = S::load(dkc.add(o));
                let k = S::load(kc.add(o));
                for r in 0..R {
                    dv = S::fma(p[r], g[r][d], dv);
                    dk = S::fma(ds[r], qs[r][d], dk);
                    acc[r][d] = S::fma(ds[r], k, acc[r][d]);
                }
                S::store(dvc.add(o), dv);
                S::store(dkc.add(o), dk);
            }
        }
        for r in 0..R {
            let dq = task.dq.row::<D>(first + r);
            for d in 0..D {
                dq[d] = S::hsum(acc[r][d]) * scale;
            }
        }
    }
}

#[inline(always)]
pub(super) unsafe fn backward_head<S: Simd, const D: usize>(task: &BackwardTask<'_>, scratch: &mut Scratch) {
    let lanes = S::LANES;
    // As in the forward pass, scores are in base-2 units: `s = log2(e) · q·k / sqrt(D)`,
    // `p = 2^(s − lse)`. With `g = ln2 · dO` and `Δ = ln2 · dO·O`, `ds = p (g·v − Δ)` is
    // `ln2` times the gradient of the natural scores, so that `dK += ds · (scale · q)` is
    // exact, `dq = scale · Σ ds k` and `dV = log2(e) · Σ p g`.
    let scale = LOG2_E / (D as f32).sqrt();
    let keys = task.keys;
    unsafe {
        for j in 0..task.k_tokens {
            task.dk.row::<D>(j).fill(0.0);
            task.dv.row::<D>(j).fill(0.0);
        }
        pack::<D>(lanes, task.k, keys, &mut scratch.keys);
        pack::<D>(lanes, task.v, keys, &mut scratch.values);
        let blocks = keys.len().div_ceil(lanes);
        if blocks == 0 {
            for i in 0..task.q_tokens {
                task.dq.row::<D>(i).fill(0.0);
            }
            return;
        }
        scratch.d_keys.zeroed(blocks * D * lanes);
        scratch.d_values.zeroed(blocks * D * lanes);
        let kb = scratch.keys.as_slice().as_ptr();
        let vb = scratch.values.as_slice().as_ptr();
        let dkb = scratch.d_keys.as_mut_slice().as_mut_ptr();
        let dvb = scratch.d_values.as_mut_slice().as_mut_ptr();
        let bias = tail_bias::<S>(keys.len() - (blocks - 1) * lanes);
        let blocks = BackwardBlocks { keys: kb, values: vb, d_keys: dkb, d_values: dvb, count: blocks, bias };
        // Several rows at a time share each block's loads and the read-modify-write of its
        // key and value gradients.
        let mut i = 0;
        while i + BACKWARD_ROWS <= task.q_tokens {
            backward_rows::<S, D, BACKWARD_ROWS>(task, i, &blocks, scale);
            i += BACKWARD_ROWS;
        }
        while i < task.q_tokens {
            backward_rows::<S, D, 1>(task, i, &blocks, scale);
            i += 1;
        }
        let (dks, dvs) = (scratch.d_keys.as_slice(), scratch.d_values.as_slice());
        for (j, &key) in keys.iter().enumerate() {
            let base = (j / lanes) * D * lanes + j % lanes;
            let (dk, dv) = (task.dk.row::<D>(key as usize), task.dv.row::<D>(key as usize));
            for d in 0..D {
                dk[d] = dks[base + d * lanes];
                dv[d] = dvs[base + d * lanes] * LOG2_E;
            }
        }
    }
}
