//! Model sizes. The defaults are the configuration of the reference training scripts
//! (`options/*.py`): 256 x 256 input, 8 x 8 patches, encoder 128-d x 12 blocks x 16 heads,
//! decoder 64-d x 8 blocks x 8 heads, MLP ratio 4, LayerNorm epsilon 1e-5 (`nn.LayerNorm`'s
//! default, which the reference uses; MAE's own scripts use 1e-6).

use serde::{Deserialize, Serialize};

/// Sizes of the masked autoencoder. Every field has the paper's value as its default, so a TOML
/// table may name only the fields it changes (`encoder_depth = 24` gives Figure 3's encoder).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Side of the square input image, in pixels.
    pub image_size: usize,
    /// Side of a square patch, in pixels.
    pub patch_size: usize,
    /// Width of the encoder tokens.
    pub encoder_dim: usize,
    /// Number of encoder transformer blocks.
    pub encoder_depth: usize,
    /// Attention heads per encoder block.
    pub encoder_heads: usize,
    /// Width of the decoder tokens.
    pub decoder_dim: usize,
    /// Number of decoder transformer blocks.
    pub decoder_depth: usize,
    /// Attention heads per decoder block.
    pub decoder_heads: usize,
    /// Hidden width of each MLP as a multiple of the token width.
    pub mlp_ratio: f64,
    /// Epsilon of every LayerNorm.
    pub layer_norm_epsilon: f64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            image_size: 256,
            patch_size: 8,
            encoder_dim: 128,
            encoder_depth: 12,
            encoder_heads: 16,
            decoder_dim: 64,
            decoder_depth: 8,
            decoder_heads: 8,
            mlp_ratio: 4.0,
            layer_norm_epsilon: 1e-5,
        }
    }
}

/// A configuration the model cannot be built from.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid model configuration: {0}")]
pub struct ConfigError(pub String);

impl ModelConfig {
    /// The patch grid of the input image.
    pub fn grid(&self) -> PatchGrid {
        PatchGrid { image_size: self.image_size, patch_size: self.patch_size }
    }

    /// Hidden width of an MLP whose tokens are `dim` wide (timm: `int(dim * mlp_ratio)`).
    pub fn mlp_hidden(&self, dim: usize) -> usize {
        (dim as f64 * self.mlp_ratio) as usize
    }

    /// Checks that the sizes fit together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        if self.patch_size == 0 || self.image_size == 0 || !self.image_size.is_multiple_of(self.patch_size) {
            return err(format!("image size {} is not a multiple of patch size {}", self.image_size, self.patch_size));
        }
        for (what, dim, heads, depth) in [
            ("encoder", self.encoder_dim, self.encoder_heads, self.encoder_depth),
            ("decoder", self.decoder_dim, self.decoder_heads, self.decoder_depth),
        ] {
            // The 2-D sine-cosine embedding splits the width in 4 (sin/cos of rows and columns).
            if dim == 0 || !dim.is_multiple_of(4) {
                return err(format!("{what} width {dim} is not a positive multiple of 4"));
            }
            if heads == 0 || !dim.is_multiple_of(heads) {
                return err(format!("{what} width {dim} is not a multiple of its {heads} heads"));
            }
            if depth == 0 {
                return err(format!("{what} depth is 0"));
            }
        }
        if self.mlp_ratio.is_nan() || self.mlp_ratio <= 0.0 || self.mlp_hidden(self.decoder_dim.min(self.encoder_dim)) == 0 {
            return err(format!("MLP ratio {} gives an empty hidden layer", self.mlp_ratio));
        }
        if self.layer_norm_epsilon.is_nan() || self.layer_norm_epsilon <= 0.0 {
            return err(format!("LayerNorm epsilon {} is not positive", self.layer_norm_epsilon));
        }
        Ok(())
    }
}

/// The square grid of patches that tiles an image, tokens in row-major order
/// (token `row * patches_per_side + col`, as the patch-embedding convolution flattens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchGrid {
    pub image_size: usize,
    pub patch_size: usize,
}

impl PatchGrid {
    /// Patches along one side.
    pub fn patches_per_side(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Patches in an image (tokens without the cls token).
    pub fn num_patches(&self) -> usize {
        self.patches_per_side() * self.patches_per_side()
    }

    /// Pixels in a patch.
    pub fn patch_pixels(&self) -> usize {
        self.patch_size * self.patch_size
    }

    /// Pixels in an image.
    pub fn image_pixels(&self) -> usize {
        self.image_size * self.image_size
    }

    /// Row-major pixel indices of patch `patch`, in the order `patchify` lays them out.
    pub fn pixels_of(&self, patch: usize) -> impl Iterator<Item = usize> + '_ {
        let side = self.patches_per_side();
        let (pr, pc) = (patch / side, patch % side);
        let p = self.patch_size;
        let n = self.image_size;
        (0..p).flat_map(move |r| (0..p).map(move |c| (pr * p + r) * n + pc * p + c))
    }

    /// Patches containing at least one nonzero pixel of `pixels` (a row-major image).
    pub fn patches_touching<T: Copy + PartialOrd + Default>(&self, pixels: &[T]) -> Vec<bool> {
        assert_eq!(pixels.len(), self.image_pixels(), "map does not have the image's pixel count");
        (0..self.num_patches()).map(|i| self.pixels_of(i).any(|j| pixels[j] > T::default())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_defaults_and_partial_json() {
        let c = ModelConfig::default();
        assert_eq!(c.grid().num_patches(), 1024);
        assert_eq!(c.mlp_hidden(128), 512);
        assert!(c.validate().is_ok());
        let deeper: ModelConfig = serde_json::from_str(r#"{"encoder_depth": 24}"#).unwrap();
        assert_eq!(deeper.encoder_depth, 24);
        assert_eq!(deeper.decoder_depth, 8);
        assert!(serde_json::from_str::<ModelConfig>(r#"{"encoder_width": 24}"#).is_err());
    }

    #[test]
    fn rejects_sizes_that_do_not_fit() {
        let bad = ModelConfig { patch_size: 7, ..ModelConfig::default() };
        assert!(bad.validate().unwrap_err().0.contains("multiple of patch size 7"));
        let bad = ModelConfig { encoder_heads: 3, ..ModelConfig::default() };
        assert!(bad.validate().unwrap_err().0.contains("3 heads"));
        let bad = ModelConfig { decoder_dim: 66, decoder_heads: 6, ..ModelConfig::default() };
        assert!(bad.validate().unwrap_err().0.contains("multiple of 4"));
    }

    #[test]
    fn patch_pixels_are_row_major_within_the_patch() {
        let g = PatchGrid { image_size: 8, patch_size: 2 };
        // Patch 5 = grid row 1, column 1: pixels (2,2), (2,3), (3,2), (3,3).
        assert_eq!(g.pixels_of(5).collect::<Vec<_>>(), vec![18, 19, 26, 27]);
        let mut roi = vec![0u8; 64];
        roi[27] = 1;
        roi[63] = 1;
        let touched = g.patches_touching(&roi);
        assert_eq!(touched.iter().filter(|&&t| t).count(), 2);
        assert!(touched[5] && touched[15]);
    }
}
