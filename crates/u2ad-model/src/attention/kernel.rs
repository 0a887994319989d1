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

use std::sync::OnceLock;

use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use super::simd::{Avx2, Avx512};
use super::simd::{exp2, Portable, Simd};
use std::f32::consts::{LN_2, LOG2_E};

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

/// Where element `(b, h, t, d)` of a `[batch, heads, tokens, head_dim]` tensor lies in its
/// buffer: `offset + b·batch + h·head + t·token + d·dim`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strides {
    pub offset: usize,
    pub batch: usize,
    pub head: usize,
    pub token: usize,
    pub dim: usize,
}

impl Strides {
    /// Row-major `[batch, heads, tokens, head_dim]`.
    pub fn contiguous(heads: usize, tokens: usize, head_dim: usize) -> Self {
        Strides { offset: 0, batch: heads * tokens * head_dim, head: tokens * head_dim, token: head_dim, dim: 1 }
    }

    /// `[batch, tokens, heads, head_dim]` in memory: the layout of the outputs, in which
    /// merging the heads back into `[batch, tokens, heads · head_dim]` is free.
    pub fn token_major(heads: usize, tokens: usize, head_dim: usize) -> Self {
        Strides { offset: 0, batch: tokens * heads * head_dim, head: head_dim, token: heads * head_dim, dim: 1 }
    }

    /// The largest index of a `[batch, heads, tokens, head_dim]` tensor (`None` if empty).
    fn max_index(&self, batch: usize, heads: usize, tokens: usize, head_dim: usize) -> Option<usize> {
        if batch == 0 || heads == 0 || tokens == 0 || head_dim == 0 {
            return None;
        }
        Some(
            self.offset
                + (batch - 1) * self.batch
                + (heads - 1) * self.head
                + (tokens - 1) * self.token
                + (head_dim - 1) * self.dim,
        )
    }
}

/// A read-only `[batch, heads, tokens, head_dim]` tensor: a buffer and where its elements lie.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub data: &'a [f32],
    pub strides: Strides,
}

impl<'a> Input<'a> {
    /// A row-major `[batch, heads, tokens, head_dim]` tensor.
    pub fn contiguous(data: &'a [f32], heads: usize, tokens: usize, head_dim: usize) -> Self {
        Input { data, strides: Strides::contiguous(heads, tokens, head_dim) }
    }

    fn check(&self, what: &str, batch: usize, heads: usize, tokens: usize, head_dim: usize) {
        if let Some(max) = self.strides.max_index(batch, heads, tokens, head_dim) {
            assert!(max < self.data.len(), "fused attention: {what} ({} values) is too small for its strides", self.data.len());
        }
    }

    /// Head `h` of image `b`.
    fn head(&self, b: usize, h: usize) -> HeadIn {
        let s = self.strides;
        // In bounds by `check` (or the head is empty).
        HeadIn {
            ptr: self.data.as_ptr().wrapping_add(s.offset + b * s.batch + h * s.head),
            token: s.token,
            dim: s.dim,
        }
    }
}

/// One head of an [`Input`].
#[derive(Clone, Copy)]
struct HeadIn {
    ptr: *const f32,
    token: usize,
    dim: usize,
}

impl HeadIn {
    /// Element `d` of token `t`; the caller keeps `t`, `d` within the checked sizes.
    #[inline(always)]
    unsafe fn get(&self, t: usize, d: usize) -> f32 {
        unsafe { *self.ptr.add(t * self.token + d * self.dim) }
    }
}

/// One head of a token-major output: token `t` starts at `ptr + t·token`, its `D` values are
/// contiguous.
#[derive(Clone, Copy)]
struct HeadOut {
    ptr: *mut f32,
    token: usize,
}

impl HeadOut {
    #[inline(always)]
    unsafe fn row<'a, const D: usize>(&self, t: usize) -> &'a mut [f32; D] {
        unsafe { &mut *(self.ptr.add(t * self.token) as *mut [f32; D]) }
    }
}

/// A token-major output buffer shared by the tasks, which write disjoint heads.
#[derive(Clone, Copy)]
struct SharedOut {
    ptr: *mut f32,
    heads: usize,
    tokens: usize,
    head_dim: usize,
}

// SAFETY: tasks write disjoint elements (one `(batch, head)` pair each).
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    fn new(data: &mut [f32], dims: Dims, tokens: usize) -> Self {
        assert_eq!(data.len(), dims.pairs() * tokens * dims.head_dim, "fused attention: output size");
        SharedOut { ptr: data.as_mut_ptr(), heads: dims.heads, tokens, head_dim: dims.head_dim }
    }

    fn head(&self, b: usize, h: usize) -> HeadOut {
        let row = self.heads * self.head_dim;
        HeadOut { ptr: self.ptr.wrapping_add(b * self.tokens * row + h * self.head_dim), token: row }
    }
}

/// Per-row values (`[batch, heads, q_tokens]`, contiguous) shared by the tasks.
#[derive(Clone, Copy)]
struct SharedRows(*mut f32);

// SAFETY: tasks write disjoint rows.
unsafe impl Send for SharedRows {}
unsafe impl Sync for SharedRows {}

impl SharedRows {
    fn at(&self, index: usize) -> *mut f32 {
        self.0.wrapping_add(index)
    }
}

/// Inputs shared by the tasks (read only).
#[derive(Clone, Copy)]
struct Shared<T>(T);

// SAFETY: read-only views of slices that outlive the parallel loop.
unsafe impl<T> Send for Shared<T> {}
unsafe impl<T> Sync for Shared<T> {}

/// A 64-byte aligned, zero-initialised `f32` buffer.
struct Aligned {
    storage: Vec<f32>,
    offset: usize,
    len: usize,
}

impl Aligned {
    fn new() -> Self {
        Aligned { storage: Vec::new(), offset: 0, len: 0 }
    }

    /// Resizes to `len` zeros.
    fn zeroed(&mut self, len: usize) {
        self.storage.clear();
        self.storage.resize(len + 16, 0.0);
        self.offset = self.storage.as_ptr().align_offset(64).min(15);
        self.len = len;
    }

    fn as_slice(&self) -> &[f32] {
        &self.storage[self.offset..][..self.len]
    }

    fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.storage[self.offset..][..self.len]
    }
}

/// Scratch of one worker, reused across its `(batch, head)` tasks.
struct Scratch {
    keys: Aligned,
    values: Aligned,
    d_keys: Aligned,
    d_values: Aligned,
    row: Aligned,
}

impl Scratch {
    fn new() -> Self {
        Scratch { keys: Aligned::new(), values: Aligned::new(), d_keys: Aligned::new(), d_values: Aligned::new(), row: Aligned::new() }
    }
}

/// Packs tokens `keys` of `src` into blocks of `lanes` keys, transposed (`[block][D][lanes]`),
/// zero-padding the last block.
#[inline(always)]
unsafe fn pack<const D: usize>(lanes: usize, src: HeadIn, keys: &[u32], dst: &mut Aligned) {
    dst.zeroed(keys.len().div_ceil(lanes) * D * lanes);
    let dst = dst.as_mut_slice();
    for (j, &key) in keys.iter().enumerate() {
        let base = (j / lanes) * D * lanes + j % lanes;
        for d in 0..D {
            dst[base + d * lanes] = unsafe { src.get(key as usize, d) };
        }
    }
}

/// `0` on the first `valid` lanes, `-1e30` on the others: added to the scores of the last block
/// so that its padding lanes get no weight (finite, so that [`exp2`] needs no clamp where its
/// `ldexp` takes any exponent).
#[inline(always)]
unsafe fn tail_bias<S: Simd>(valid: usize) -> S::V {
    let mut bias = [-1e30f32; 16];
    bias[..valid].fill(0.0);
    unsafe { S::load(bias.as_ptr()) }
}

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

/// One `(batch, head)` of the forward pass.
struct ForwardTask<'a> {
    q: HeadIn,
    k: HeadIn,
    v: HeadIn,
    keys: &'a [u32],
    q_tokens: usize,
    out: HeadOut,
    /// `q_tokens` log-sum-exps.
    lse: *mut f32,
}

#[inline(always)]
unsafe fn forward_head<S: Simd, const D: usize>(task: &ForwardTask<'_>, scratch: &mut Scratch) {
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

/// One `(batch, head)` of the backward pass.
struct BackwardTask<'a> {
    q: HeadIn,
    k: HeadIn,
    v: HeadIn,
    keys: &'a [u32],
    q_tokens: usize,
    k_tokens: usize,
    out: HeadIn,
    d_out: HeadIn,
    /// `q_tokens` log-sum-exps.
    lse: *const f32,
    dq: HeadOut,
    dk: HeadOut,
    dv: HeadOut,
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
unsafe fn backward_head<S: Simd, const D: usize>(task: &BackwardTask<'_>, scratch: &mut Scratch) {
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

/// The instruction set the kernels run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Portable,
}

/// The best instruction set of this CPU, or the one `U2AD_ATTENTION_ISA` (`avx512`, `avx2`,
/// `portable`) asks for if the CPU has it (read once).
fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        let wanted = std::env::var("U2AD_ATTENTION_ISA").unwrap_or_default();
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            let avx512 = avx2 && is_x86_feature_detected!("avx512f");
            if avx512 && !matches!(wanted.as_str(), "avx2" | "portable") {
                return Isa::Avx512;
            }
            if avx2 && wanted != "portable" {
                return Isa::Avx2;
            }
        }
        let _ = wanted;
        Isa::Portable
    })
}

macro_rules! variants {
    ($forward:ident, $backward:ident, $simd:ty $(, $feature:literal)?) => {
        $(#[cfg(target_arch = "x86_64")] #[target_feature(enable = $feature)])?
        unsafe fn $forward<const D: usize>(task: &ForwardTask<'_>, scratch: &mut Scratch) {
            unsafe { forward_head::<$simd, D>(task, scratch) }
        }

        $(#[cfg(target_arch = "x86_64")] #[target_feature(enable = $feature)])?
        unsafe fn $backward<const D: usize>(task: &BackwardTask<'_>, scratch: &mut Scratch) {
            unsafe { backward_head::<$simd, D>(task, scratch) }
        }
    };
}

variants!(forward_avx512, backward_avx512, Avx512, "avx512f,avx2,fma");
variants!(forward_avx2, backward_avx2, Avx2, "avx2,fma");
variants!(forward_portable, backward_portable, Portable);

fn forward_dispatch<const D: usize>(isa: Isa, task: &ForwardTask<'_>, scratch: &mut Scratch) {
    // SAFETY: `isa()` detected the features these functions are compiled for; the caller
    // checked the sizes and strides of every tensor the task points into.
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => forward_avx512::<D>(task, scratch),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => forward_avx2::<D>(task, scratch),
            Isa::Portable => forward_portable::<D>(task, scratch),
        }
    }
}

fn backward_dispatch<const D: usize>(isa: Isa, task: &BackwardTask<'_>, scratch: &mut Scratch) {
    // SAFETY: as in `forward_dispatch`.
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => backward_avx512::<D>(task, scratch),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => backward_avx2::<D>(task, scratch),
            Isa::Portable => backward_portable::<D>(task, scratch),
        }
    }
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
