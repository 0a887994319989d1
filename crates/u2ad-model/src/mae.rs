//! The masked autoencoder of U2AD (the reference's `UGMAE`): a ViT encoder over the visible
//! patches, a shared ViT decoder over all patches, and two heads that predict each patch's
//! pixels and its Sobel edge magnitude.
//!
//! Per-image masking gives every image its own number of visible patches. The encoder batches
//! them by padding each image's visible set to the batch's largest one and passing the padding
//! to [`attention`](crate::kernels::attention::attention) as a key mask, so a padding token is never
//! attended to and each image's output equals its output when run alone. (MAE's trick of one
//! keep count for the whole batch would change how many patches each image masks.)

use burn::module::{Initializer, Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{LayerNorm, Linear};
use burn::tensor::{activation::sigmoid, backend::Backend, Bool, Int, Tensor, TensorData};

use crate::config::{ConfigError, ModelConfig, PatchGrid};
use crate::kernels::linear::linear;
use crate::pos_embed::sincos_2d;
use crate::vit::{layer_norm, xavier_linear, TransformerBlock};

/// The model's two outputs, `[batch, patches, patch_pixels]` each, in `[0, 1]` (sigmoid), for
/// every patch (visible ones included).
#[derive(Debug, Clone)]
pub struct Reconstruction<B: Backend> {
    /// Predicted pixels of each patch.
    pub image_patches: Tensor<B, 3>,
    /// Predicted Sobel edge magnitude of each patch.
    pub edge_patches: Tensor<B, 3>,
}

/// LayerNorm, Linear, sigmoid: decoder tokens to the pixels of one patch.
#[derive(Module, Debug)]
pub struct PatchHead<B: Backend> {
    pub norm: LayerNorm<B>,
    pub projection: Linear<B>,
}

impl<B: Backend> PatchHead<B> {
    fn new(dim: usize, patch_pixels: usize, epsilon: f64, device: &B::Device) -> Self {
        PatchHead { norm: layer_norm(dim, epsilon, device), projection: xavier_linear(dim, patch_pixels, device) }
    }

    /// `[batch, tokens, dim] -> [batch, tokens, patch_pixels]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        sigmoid(linear(&self.projection, self.norm.forward(x)))
    }
}

/// The U2AD masked autoencoder. Field names are ours; [`crate::interop`] maps the reference's.
#[derive(Module, Debug)]
pub struct MaskedAutoencoder<B: Backend> {
    /// Patch embedding: a `patch x patch` convolution with stride `patch`, 1 -> encoder width.
    pub patch_embedding: Conv2d<B>,
    /// `[1, 1, encoder_dim]`.
    pub cls_token: Param<Tensor<B, 3>>,
    pub encoder_blocks: Vec<TransformerBlock<B>>,
    pub encoder_norm: LayerNorm<B>,
    /// Encoder width -> decoder width.
    pub decoder_embedding: Linear<B>,
    /// `[1, 1, decoder_dim]`, stands in for every masked patch in the decoder.
    pub mask_token: Param<Tensor<B, 3>>,
    pub decoder_blocks: Vec<TransformerBlock<B>>,
    pub image_head: PatchHead<B>,
    pub edge_head: PatchHead<B>,
    /// Fixed sine-cosine position embeddings `[1, 1 + patches, dim]` (not parameters, not saved).
    pub encoder_position: Tensor<B, 3>,
    pub decoder_position: Tensor<B, 3>,
    pub patch_size: usize,
}

impl ModelConfig {
    /// Builds the model with MAE's initialisation: Xavier-uniform linear weights and flattened
    /// patch-embedding weight, zero linear biases, PyTorch's default patch-embedding bias
    /// `U(±1/sqrt(patch_pixels))`, LayerNorm 1/0, cls and mask tokens `N(0, 0.02)`. Random draws
    /// come from the backend's generator (`B::seed` makes them repeatable).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<MaskedAutoencoder<B>, ConfigError> {
        self.validate()?;
        let grid = self.grid();
        let (p, enc, dec) = (self.patch_size, self.encoder_dim, self.decoder_dim);
        let fan_in = p * p;
        let mut patch_embedding = Conv2dConfig::new([1, enc], [p, p]).with_stride([p, p]).init(device);
        patch_embedding.weight = Initializer::XavierUniform { gain: 1.0 }.init_with([enc, 1, p, p], Some(fan_in), Some(enc), device);
        let bound = 1.0 / (fan_in as f64).sqrt();
        patch_embedding.bias = Some(Initializer::Uniform { min: -bound, max: bound }.init([enc], device));
        let token = Initializer::Normal { mean: 0.0, std: 0.02 };
        let blocks = |dim: usize, heads: usize, depth: usize| -> Vec<TransformerBlock<B>> {
            (0..depth)
                .map(|_| TransformerBlock::new(dim, heads, self.mlp_hidden(dim), self.layer_norm_epsilon, device))
                .collect()
        };
        Ok(MaskedAutoencoder {
            patch_embedding,
            cls_token: token.init([1, 1, enc], device),
            encoder_blocks: blocks(enc, self.encoder_heads, self.encoder_depth),
            encoder_norm: layer_norm(enc, self.layer_norm_epsilon, device),
            decoder_embedding: xavier_linear(enc, dec, device),
            mask_token: token.init([1, 1, dec], device),
            decoder_blocks: blocks(dec, self.decoder_heads, self.decoder_depth),
            image_head: PatchHead::new(dec, grid.patch_pixels(), self.layer_norm_epsilon, device),
            edge_head: PatchHead::new(dec, grid.patch_pixels(), self.layer_norm_epsilon, device),
            encoder_position: sincos_2d(enc, grid.patches_per_side(), device),
            decoder_position: sincos_2d(dec, grid.patches_per_side(), device),
            patch_size: p,
        })
    }
}

/// `[batch, 1, H, W] -> [batch, (H/p)·(W/p), p·p]`: patches in row-major grid order, pixels
/// row-major within a patch (MAE's `patchify`).
pub fn patchify<B: Backend>(images: Tensor<B, 4>, patch_size: usize) -> Tensor<B, 3> {
    let [batch, _, h, w] = images.dims();
    let p = patch_size;
    images
        .reshape([batch, h / p, p, w / p, p])
        .permute([0, 1, 3, 2, 4])
        .reshape([batch, (h / p) * (w / p), p * p])
}

/// Inverse of [`patchify`] for a square image: `[batch, L, p·p] -> [batch, 1, √L·p, √L·p]`.
pub fn unpatchify<B: Backend>(patches: Tensor<B, 3>, patch_size: usize) -> Tensor<B, 4> {
    let [batch, tokens, _] = patches.dims();
    let side = (tokens as f64).sqrt().round() as usize;
    assert_eq!(side * side, tokens, "unpatchify needs a square number of patches");
    let p = patch_size;
    patches.reshape([batch, side, side, p, p]).permute([0, 1, 3, 2, 4]).reshape([batch, 1, side * p, side * p])
}

/// `masks[b][i]` (`true` = patch `i` of image `b` is masked) as a `[batch, patches]` 0/1 tensor.
pub fn mask_tensor<B: Backend>(masks: &[Vec<bool>], device: &B::Device) -> Tensor<B, 2> {
    let patches = masks.first().map_or(0, Vec::len);
    let flat: Vec<f32> = masks.iter().flat_map(|m| m.iter().map(|&x| x as u8 as f32)).collect();
    Tensor::from_data(TensorData::new(flat, [masks.len(), patches]), device)
}

/// Where each image's tokens go, built on the host from the masks.
struct TokenLayout<B: Backend> {
    /// `[batch, visible_max]`: the patch index of each visible token, padding points at patch 0.
    keep: Tensor<B, 2, Int>,
    /// `[batch, 1 + visible_max]`, `true` at padding; `None` when no image needs padding.
    padding: Option<Tensor<B, 2, Bool>>,
    /// `[batch, patches]`: for each patch, its slot among the visible tokens, or `visible_max`
    /// (the slot of the mask token) if it is masked.
    restore: Tensor<B, 2, Int>,
}

impl<B: Backend> TokenLayout<B> {
    fn new(masks: &[Vec<bool>], patches: usize, device: &B::Device) -> Self {
        let visible: Vec<Vec<usize>> =
            masks.iter().map(|m| (0..patches).filter(|&i| !m[i]).collect()).collect();
        let visible_max = visible.iter().map(Vec::len).max().unwrap_or(0);
        let batch = masks.len();
        let mut keep = vec![0i64; batch * visible_max];
        let mut padding = vec![false; batch * (1 + visible_max)];
        let mut restore = vec![visible_max as i64; batch * patches];
        for (b, vis) in visible.iter().enumerate() {
            for (slot, &patch) in vis.iter().enumerate() {
                keep[b * visible_max + slot] = patch as i64;
                restore[b * patches + patch] = slot as i64;
            }
            for slot in vis.len()..visible_max {
                padding[b * (1 + visible_max) + 1 + slot] = true;
            }
        }
        let any_padding = visible.iter().any(|v| v.len() < visible_max);
        TokenLayout {
            keep: Tensor::from_data(TensorData::new(keep, [batch, visible_max]), device),
            padding: any_padding
                .then(|| Tensor::from_data(TensorData::new(padding, [batch, 1 + visible_max]), device)),
            restore: Tensor::from_data(TensorData::new(restore, [batch, patches]), device),
        }
    }
}

/// `tokens[b, index[b, j], :]` for every `j`: `[batch, n, dim]` gathered by `[batch, m]`.
fn gather_tokens<B: Backend>(tokens: Tensor<B, 3>, index: Tensor<B, 2, Int>) -> Tensor<B, 3> {
    let [batch, _, dim] = tokens.dims();
    let [_, m] = index.dims();
    tokens.gather(1, index.reshape([batch, m, 1]).expand([batch, m, dim]))
}

impl<B: Backend> MaskedAutoencoder<B> {
    /// The patch grid of the input image.
    pub fn grid(&self) -> PatchGrid {
        let patches = self.encoder_position.dims()[1] - 1;
        let side = (patches as f64).sqrt().round() as usize;
        PatchGrid { image_size: side * self.patch_size, patch_size: self.patch_size }
    }

    /// Embeds every patch and adds its position: `[batch, 1, H, W] -> [batch, patches, enc]`.
    pub fn embed_patches(&self, images: Tensor<B, 4>) -> Tensor<B, 3> {
        let x = self.patch_embedding.forward(images).flatten::<3>(2, 3).swap_dims(1, 2);
        let patches = x.dims()[1];
        x + self.encoder_position.clone().narrow(1, 1, patches)
    }

    /// Encodes the visible patches: `[batch, 1 + visible_max, enc]`, cls token first, padding
    /// slots (see the module documentation) last.
    fn forward_encoder(&self, images: Tensor<B, 4>, layout: &TokenLayout<B>) -> Tensor<B, 3> {
        let x = gather_tokens(self.embed_patches(images), layout.keep.clone());
        let [batch, _, dim] = x.dims();
        let cls = (self.cls_token.val() + self.encoder_position.clone().narrow(1, 0, 1)).expand([batch, 1, dim]);
        let mut x = Tensor::cat(vec![cls, x], 1);
        for block in &self.encoder_blocks {
            x = block.forward(x, layout.padding.clone());
        }
        self.encoder_norm.forward(x)
    }

    /// Puts the encoded visible tokens back in place, the mask token everywhere else, and
    /// decodes: `[batch, 1 + visible_max, enc] -> ` both heads' patches.
    fn forward_decoder(&self, latent: Tensor<B, 3>, layout: &TokenLayout<B>) -> Reconstruction<B> {
        let x = linear(&self.decoder_embedding, latent);
        let [batch, tokens, dim] = x.dims();
        let cls = x.clone().narrow(1, 0, 1);
        let pool = Tensor::cat(vec![x.narrow(1, 1, tokens - 1), self.mask_token.val().expand([batch, 1, dim])], 1);
        let placed = gather_tokens(pool, layout.restore.clone());
        let mut x = Tensor::cat(vec![cls, placed], 1) + self.decoder_position.clone();
        for block in &self.decoder_blocks {
            x = block.forward(x, None);
        }
        let patches = x.dims()[1] - 1;
        let x = x.narrow(1, 1, patches);
        Reconstruction { image_patches: self.image_head.forward(x.clone()), edge_patches: self.edge_head.forward(x) }
    }

    /// Reconstructs `images` (`[batch, 1, H, W]`) with the patches flagged in `masks` hidden
    /// from the encoder (`masks[b][i] == true`: patch `i` of image `b` is masked; one vector of
    /// `patches` flags per image; any number per image).
    pub fn forward(&self, images: Tensor<B, 4>, masks: &[Vec<bool>]) -> Reconstruction<B> {
        let patches = self.grid().num_patches();
        assert_eq!(images.dims()[0], masks.len(), "one mask per image");
        assert!(masks.iter().all(|m| m.len() == patches), "each mask must have {patches} flags");
        let layout = TokenLayout::new(masks, patches, &images.device());
        let latent = self.forward_encoder(images, &layout);
        self.forward_decoder(latent, &layout)
    }
}
