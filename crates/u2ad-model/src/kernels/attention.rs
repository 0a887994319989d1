//! Scaled dot-product attention: the single place every transformer block attends through.
//!
//! On the CPU backend (`Flex`, and `Autodiff<Flex>` for training) [`attention`] runs a fused
//! kernel ([`kernel`]): it never builds the `tokens x tokens` score matrix, runs every
//! `(image, head)` pair in parallel, and under autodiff keeps only the output and one
//! log-sum-exp per query row for its own backward pass, which recomputes the attention
//! weights. Any other backend (CUDA) takes [`attention_plain`], the textbook composition of
//! burn operations. The environment variable `U2AD_ATTENTION=plain` forces the plain path
//! everywhere (for comparisons).

mod flex;

pub(crate) use flex::{cast, fused_backend, FusedBackend};
mod simd;
pub(crate) use simd::exp2_scalar;
pub mod kernel;

use std::cell::Cell;
use std::sync::{Arc, OnceLock};

use burn::tensor::{activation::softmax, backend::Backend, Bool, DType, Tensor};

/// `softmax(q kᵀ / sqrt(d)) v` on `[batch, heads, tokens, head_dim]` tensors.
///
/// `key_padding` (`[batch, tokens]`, `true` = padding) marks keys that no query may attend to:
/// their attention weight is exactly 0. The encoder pads each image's variable-length set of
/// visible tokens to the batch's largest one and passes the padding here; `None` means every key
/// is real. The outputs at padding queries are meaningless and are discarded by the caller.
/// Every row must keep at least one real key (the cls token always is one).
///
/// Runs the fused kernel on `Flex` and `Autodiff<Flex>` (f32, head sizes 4, 8, 16, 32), and
/// [`attention_plain`] otherwise.
pub fn attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    key_padding: Option<Tensor<B, 2, Bool>>,
) -> Tensor<B, 4> {
    let fusable = !plain_forced()
        && kernel::supported_head_dim(q.dims()[3])
        && [q.dtype(), k.dtype(), v.dtype()].iter().all(|&d| d == DType::F32);
    match flex::fused_backend::<B>() {
        Some(which) if fusable => {
            let padding = key_padding.map(|p| -> Arc<[bool]> {
                p.into_data().iter::<bool>().collect()
            });
            flex::attention(which, q, k, v, padding)
        }
        _ => attention_plain(q, k, v, key_padding),
    }
}

thread_local! {
    static PLAIN_HERE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with every [`attention`] call made on this thread taking [`attention_plain`]
/// (to compare the two paths, e.g. a whole model's forward pass, within one process).
pub fn with_plain_attention<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            PLAIN_HERE.with(|p| p.set(self.0));
        }
    }
    let _restore = Restore(PLAIN_HERE.with(|p| p.replace(true)));
    f()
}

/// Whether `U2AD_ATTENTION=plain` is set (read once) or [`with_plain_attention`] is running.
fn plain_forced() -> bool {
    static PLAIN: OnceLock<bool> = OnceLock::new();
    *PLAIN.get_or_init(|| std::env::var("U2AD_ATTENTION").is_ok_and(|v| v == "plain")) || PLAIN_HERE.with(Cell::get)
}

/// [`attention`] as a composition of burn operations, for any backend: it materialises the
/// `[batch, heads, tokens, tokens]` scores (and autodiff keeps them for the backward pass).
pub fn attention_plain<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    key_padding: Option<Tensor<B, 2, Bool>>,
) -> Tensor<B, 4> {
    let [batch, heads, tokens, head_dim] = q.dims();
    let scores = q.matmul(k.swap_dims(2, 3)).div_scalar((head_dim as f64).sqrt());
    let scores = match key_padding {
        Some(padding) => {
            let keys = padding.dims()[1];
            let padding = padding.reshape([batch, 1, 1, keys]).expand([batch, heads, tokens, keys]);
            scores.mask_fill(padding, f32::NEG_INFINITY)
        }
        None => scores,
    };
    softmax(scores, 3).matmul(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    type B = Flex;

    #[test]
    fn matches_a_hand_computed_case() {
        let dev = Default::default();
        // One head, two tokens, head dim 1: q = [1, 0], k = [ln 3 · 1, 0] scaled by sqrt(1).
        let q = Tensor::<B, 4>::from_data(TensorData::new(vec![1.0f32, 0.0], [1, 1, 2, 1]), &dev);
        let k = Tensor::<B, 4>::from_data(TensorData::new(vec![3f32.ln(), 0.0], [1, 1, 2, 1]), &dev);
        let v = Tensor::<B, 4>::from_data(TensorData::new(vec![1.0f32, 5.0], [1, 1, 2, 1]), &dev);
        let out: Vec<f32> = attention(q.clone(), k.clone(), v.clone(), None).into_data().to_vec().unwrap();
        // Query 0: weights 3/4, 1/4 -> 0.75 + 1.25 = 2; query 1: weights 1/2, 1/2 -> 3.
        assert!((out[0] - 2.0).abs() < 1e-6 && (out[1] - 3.0).abs() < 1e-6, "{out:?}");
        let pad = Tensor::<B, 2, Bool>::from_data(TensorData::new(vec![false, true], [1, 2]), &dev);
        let out: Vec<f32> = attention(q, k, v, Some(pad)).into_data().to_vec().unwrap();
        assert_eq!(out, vec![1.0, 1.0], "the padding key gets weight 0");
    }

    #[test]
    fn the_fused_kernel_matches_the_hand_computed_case() {
        let dev = Default::default();
        // The same case with head size 4 (fused): zero components, and k scaled by sqrt(4).
        let t = |x: [f32; 2]| {
            let flat: Vec<f32> = x.iter().flat_map(|&a| [a, 0.0, 0.0, 0.0]).collect();
            Tensor::<B, 4>::from_data(TensorData::new(flat, [1, 1, 2, 4]), &dev)
        };
        let (q, k, v) = (t([1.0, 0.0]), t([2.0 * 3f32.ln(), 0.0]), t([1.0, 5.0]));
        let out: Vec<f32> = attention(q.clone(), k.clone(), v.clone(), None).into_data().to_vec().unwrap();
        assert!((out[0] - 2.0).abs() < 1e-6 && (out[4] - 3.0).abs() < 1e-6, "{out:?}");
        let pad = Tensor::<B, 2, Bool>::from_data(TensorData::new(vec![false, true], [1, 2]), &dev);
        let out: Vec<f32> = attention(q, k, v, Some(pad)).into_data().to_vec().unwrap();
        assert_eq!((out[0], out[4]), (1.0, 1.0), "the padding key gets weight 0");
    }
}
