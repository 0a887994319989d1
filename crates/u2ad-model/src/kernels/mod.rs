//! The CPU kernels of the model's hot operations, each with burn's own operation as the path of
//! every other backend (CUDA): [`attention`] (fused scaled dot-product attention, its SIMD
//! kernels and the `Flex` operations), [`linear`] (layers as one `gemm` call) and [`gelu`] (the
//! vectorised exact GELU). They are re-exported at the crate's root: `u2ad_model::attention`,
//! `u2ad_model::linear` and `u2ad_model::gelu` stay the paths to use.

pub mod attention;
pub mod gelu;
pub mod linear;
