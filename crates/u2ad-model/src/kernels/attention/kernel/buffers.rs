//! Where the tensors lie and the buffers of the kernels: strides, one head's input and output
//! views, the outputs the tasks share, the aligned scratch of a worker, and the packing of keys
//! and values into transposed blocks of `L` keys.

use super::super::simd::Simd;
use super::Dims;

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

    pub(super) fn check(&self, what: &str, batch: usize, heads: usize, tokens: usize, head_dim: usize) {
        if let Some(max) = self.strides.max_index(batch, heads, tokens, head_dim) {
            assert!(max < self.data.len(), "fused attention: {what} ({} values) is too small for its strides", self.data.len());
        }
    }

    /// Head `h` of image `b`.
    pub(super) fn head(&self, b: usize, h: usize) -> HeadIn {
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
pub(super) struct HeadIn {
    ptr: *const f32,
    token: usize,
    dim: usize,
}

impl HeadIn {
    /// Element `d` of token `t`; the caller keeps `t`, `d` within the checked sizes.
    #[inline(always)]
    pub(super) unsafe fn get(&self, t: usize, d: usize) -> f32 {
        unsafe { *self.ptr.add(t * self.token + d * self.dim) }
    }
}

/// One head of a token-major output: token `t` starts at `ptr + t·token`, its `D` values are
/// contiguous.
#[derive(Clone, Copy)]
pub(super) struct HeadOut {
    ptr: *mut f32,
    token: usize,
}

impl HeadOut {
    #[inline(always)]
    pub(super) unsafe fn row<'a, const D: usize>(&self, t: usize) -> &'a mut [f32; D] {
        unsafe { &mut *(self.ptr.add(t * self.token) as *mut [f32; D]) }
    }
}

/// A token-major output buffer shared by the tasks, which write disjoint heads.
#[derive(Clone, Copy)]
pub(super) struct SharedOut {
    ptr: *mut f32,
    heads: usize,
    tokens: usize,
    head_dim: usize,
}

// SAFETY: tasks write disjoint elements (one `(batch, head)` pair each).
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    pub(super) fn new(data: &mut [f32], dims: Dims, tokens: usize) -> Self {
        assert_eq!(data.len(), dims.pairs() * tokens * dims.head_dim, "fused attention: output size");
        SharedOut { ptr: data.as_mut_ptr(), heads: dims.heads, tokens, head_dim: dims.head_dim }
    }

    pub(super) fn head(&self, b: usize, h: usize) -> HeadOut {
        let row = self.heads * self.head_dim;
        HeadOut { ptr: self.ptr.wrapping_add(b * self.tokens * row + h * self.head_dim), token: row }
    }
}

/// Per-row values (`[batch, heads, q_tokens]`, contiguous) shared by the tasks.
#[derive(Clone, Copy)]
pub(super) struct SharedRows(pub(super) *mut f32);

// SAFETY: tasks write disjoint rows.
unsafe impl Send for SharedRows {}
unsafe impl Sync for SharedRows {}

impl SharedRows {
    pub(super) fn at(&self, index: usize) -> *mut f32 {
        self.0.wrapping_add(index)
    }
}

/// Inputs shared by the tasks (read only).
#[derive(Clone, Copy)]
pub(super) struct Shared<T>(pub(super) T);

// SAFETY: read-only views of slices that outlive the parallel loop.
unsafe impl<T> Send for Shared<T> {}
unsafe impl<T> Sync for Shared<T> {}

/// A 64-byte aligned, zero-initialised `f32` buffer.
pub(super) struct Aligned {
    storage: Vec<f32>,
    offset: usize,
    len: usize,
}

impl Aligned {
    fn new() -> Self {
        Aligned { storage: Vec::new(), offset: 0, len: 0 }
    }

    /// Resizes to `len` zeros.
    pub(super) fn zeroed(&mut self, len: usize) {
        self.storage.clear();
        self.storage.resize(len + 16, 0.0);
        self.offset = self.storage.as_ptr().align_offset(64).min(15);
        self.len = len;
    }

    pub(super) fn as_slice(&self) -> &[f32] {
        &self.storage[self.offset..][..self.len]
    }

    pub(super) fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.storage[self.offset..][..self.len]
    }
}

/// Scratch of one worker, reused across its `(batch, head)` tasks.
pub(super) struct Scratch {
    pub(super) keys: Aligned,
    pub(super) values: Aligned,
    pub(super) d_keys: Aligned,
    pub(super) d_values: Aligned,
    pub(super) row: Aligned,
}

impl Scratch {
    pub(super) fn new() -> Self {
        Scratch { keys: Aligned::new(), values: Aligned::new(), d_keys: Aligned::new(), d_values: Aligned::new(), row: Aligned::new() }
    }
}

/// Packs tokens `keys` of `src` into blocks of `lanes` keys, transposed (`[block][D][lanes]`),
/// zero-padding the last block.
#[inline(always)]
pub(super) unsafe fn pack<const D: usize>(lanes: usize, src: HeadIn, keys: &[u32], dst: &mut Aligned) {
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
/// so that its padding lanes get no weight (finite, so that [`exp2`](super::super::simd::exp2) needs no clamp where its
/// `ldexp` takes any exponent).
#[inline(always)]
pub(super) unsafe fn tail_bias<S: Simd>(valid: usize) -> S::V {
    let mut bias = [-1e30f32; 16];
    bias[..valid].fill(0.0);
    unsafe { S::load(bias.as_ptr()) }
}

