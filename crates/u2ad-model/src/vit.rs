//! The pre-norm transformer block of timm 0.6 (`timm.models.vision_transformer.Block` with
//! `qkv_bias=True`, no dropout, no drop-path, no layer scale), with MAE's initialisation.

use burn::module::{Initializer, Module};
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::tensor::{backend::Backend, Bool, Tensor};

use crate::kernels::attention::attention;
use crate::kernels::gelu::gelu;
use crate::kernels::linear::linear;

/// A linear layer initialised as MAE does: Xavier-uniform weight, zero bias.
pub fn xavier_linear<B: Backend>(d_input: usize, d_output: usize, device: &B::Device) -> Linear<B> {
    Linear {
        weight: Initializer::XavierUniform { gain: 1.0 }.init_with(
            [d_input, d_output],
            Some(d_input),
            Some(d_output),
            device,
        ),
        bias: Some(Initializer::Zeros.init([d_output], device)),
    }
}

/// A LayerNorm with weight 1 and bias 0.
pub fn layer_norm<B: Backend>(dim: usize, epsilon: f64, device: &B::Device) -> LayerNorm<B> {
    LayerNormConfig::new(dim).with_epsilon(epsilon).init(device)
}

/// Multi-head self-attention: one `qkv` projection, [`attention`], one output projection.
#[derive(Module, Debug)]
pub struct SelfAttention<B: Backend> {
    /// `dim -> 3·dim`; the output channels are laid out `[q | k | v]`, each `[head][head_dim]`.
    pub qkv: Linear<B>,
    pub output: Linear<B>,
    pub heads: usize,
}

impl<B: Backend> SelfAttention<B> {
    pub fn new(dim: usize, heads: usize, device: &B::Device) -> Self {
        SelfAttention { qkv: xavier_linear(dim, 3 * dim, device), output: xavier_linear(dim, dim, device), heads }
    }

    /// `[batch, tokens, dim] -> [batch, tokens, dim]`.
    pub fn forward(&self, x: Tensor<B, 3>, key_padding: Option<Tensor<B, 2, Bool>>) -> Tensor<B, 3> {
        let [batch, tokens, dim] = x.dims();
        let head_dim = dim / self.heads;
        // `[q heads | k heads | v heads]` along one axis: each part is a view (narrow, then
        // swap), which the fused attention reads in place; no copy of q, k or v is made.
        let qkv = linear(&self.qkv, x).reshape([batch, tokens, 3 * self.heads, head_dim]);
        let part = |i: usize| -> Tensor<B, 4> { qkv.clone().narrow(2, i * self.heads, self.heads).swap_dims(1, 2) };
        let mixed = attention(part(0), part(1), part(2), key_padding);
        linear(&self.output, mixed.swap_dims(1, 2).reshape([batch, tokens, dim]))
    }
}

/// Two linear layers with an exact (erf) GELU between them.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    pub hidden: Linear<B>,
    pub output: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    pub fn new(dim: usize, hidden: usize, device: &B::Device) -> Self {
        Mlp { hidden: xavier_linear(dim, hidden, device), output: xavier_linear(hidden, dim, device) }
    }

    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        linear(&self.output, gelu(linear(&self.hidden, x)))
    }
}

/// `x + attention(norm(x))`, then `x + mlp(norm(x))`.
#[derive(Module, Debug)]
pub struct TransformerBlock<B: Backend> {
    pub attention_norm: LayerNorm<B>,
    pub attention: SelfAttention<B>,
    pub mlp_norm: LayerNorm<B>,
    pub mlp: Mlp<B>,
}

impl<B: Backend> TransformerBlock<B> {
    pub fn new(dim: usize, heads: usize, mlp_hidden: usize, epsilon: f64, device: &B::Device) -> Self {
        TransformerBlock {
            attention_norm: layer_norm(dim, epsilon, device),
            attention: SelfAttention::new(dim, heads, device),
            mlp_norm: layer_norm(dim, epsilon, device),
            mlp: Mlp::new(dim, mlp_hidden, device),
        }
    }

    /// `[batch, tokens, dim] -> [batch, tokens, dim]`; see [`attention`] for `key_padding`.
    pub fn forward(&self, x: Tensor<B, 3>, key_padding: Option<Tensor<B, 2, Bool>>) -> Tensor<B, 3> {
        let x = x.clone() + self.attention.forward(self.attention_norm.forward(x), key_padding);
        x.clone() + self.mlp.forward(self.mlp_norm.forward(x))
    }
}
