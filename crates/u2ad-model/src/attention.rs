//! Scaled dot-product attention: the single place every transformer block attends through,
//! so that a fused, memory-saving kernel can replace the body of [`attention`] without touching
//! the model.

use burn::tensor::{activation::softmax, backend::Backend, Bool, Tensor};

/// `softmax(q kᵀ / sqrt(d)) v` on `[batch, heads, tokens, head_dim]` tensors.
///
/// `key_padding` (`[batch, tokens]`, `true` = padding) marks keys that no query may attend to:
/// their attention weight is exactly 0. The encoder pads each image's variable-length set of
/// visible tokens to the batch's largest one and passes the padding here; `None` means every key
/// is real. The outputs at padding queries are meaningless and are discarded by the caller.
/// Every row must keep at least one real key (the cls token always is one).
pub fn attention<B: Backend>(
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
}
