//! Fixed 2-D sine-cosine position embeddings, MAE's recipe (`util/pos_embed.py`), which the
//! reference copies: not trained, slot 0 (the cls token) all zeros.

use burn::tensor::{backend::Backend, Tensor, TensorData};

/// 1-D embedding of the positions `pos` in `dim` channels: `[sin(pos·ω), cos(pos·ω)]` with
/// `ω_d = 1 / 10000^(d / (dim/2))`, `d = 0 .. dim/2`. Row-major `[pos.len(), dim]`.
fn sincos_1d(dim: usize, pos: &[f64]) -> Vec<f64> {
    let half = dim / 2;
    let omega: Vec<f64> = (0..half).map(|d| 1.0 / 10000f64.powf(d as f64 / half as f64)).collect();
    let mut out = Vec::with_capacity(pos.len() * dim);
    for &p in pos {
        out.extend(omega.iter().map(|w| (p * w).sin()));
        out.extend(omega.iter().map(|w| (p * w).cos()));
    }
    out
}

/// The `[1 + side², dim]` table (row-major) for a `side x side` patch grid: row 0 is the cls
/// slot (zeros); token `r * side + c` gets `[emb_1d(c), emb_1d(r)]`, each half `dim / 2` wide.
/// As in MAE (`np.meshgrid(grid_w, grid_h)`), the first half encodes the column.
/// Computed in f64 like numpy, then rounded to f32.
pub fn sincos_2d_table(dim: usize, side: usize) -> Vec<f32> {
    assert!(dim.is_multiple_of(4), "2-D sine-cosine embedding needs a width divisible by 4, got {dim}");
    let cols: Vec<f64> = (0..side * side).map(|t| (t % side) as f64).collect();
    let rows: Vec<f64> = (0..side * side).map(|t| (t / side) as f64).collect();
    let (emb_c, emb_r) = (sincos_1d(dim / 2, &cols), sincos_1d(dim / 2, &rows));
    let mut table = vec![0f32; dim];
    for t in 0..side * side {
        let half = dim / 2;
        table.extend(emb_c[t * half..(t + 1) * half].iter().map(|&v| v as f32));
        table.extend(emb_r[t * half..(t + 1) * half].iter().map(|&v| v as f32));
    }
    table
}

/// The table as a `[1, 1 + side², dim]` tensor, ready to add to a token sequence.
pub fn sincos_2d<B: Backend>(dim: usize, side: usize, device: &B::Device) -> Tensor<B, 3> {
    let table = sincos_2d_table(dim, side);
    Tensor::from_data(TensorData::new(table, [1, 1 + side * side, dim]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_mae_values() {
        // dim 8, side 2: half = 4 per axis, omega = [1, 1/100] for each 1-D half of width 4.
        let t = sincos_2d_table(8, 2);
        assert_eq!(t.len(), 5 * 8);
        assert!(t[..8].iter().all(|&v| v == 0.0), "cls slot is zero");
        // Token 1 = row 0, column 1: column half [sin 1, sin .01, cos 1, cos .01], row half [0, 0, 1, 1].
        let tok1 = &t[16..24];
        let expect = [1f64.sin(), 0.01f64.sin(), 1f64.cos(), 0.01f64.cos(), 0.0, 0.0, 1.0, 1.0];
        for (a, b) in tok1.iter().zip(expect) {
            assert!((*a as f64 - b).abs() < 1e-7, "{tok1:?}");
        }
        // Token 2 = row 1, column 0: the halves swap roles.
        assert_eq!(&t[24..28], &[0.0, 0.0, 1.0, 1.0]);
        assert!((t[28] as f64 - 1f64.sin()).abs() < 1e-7);
    }
}
