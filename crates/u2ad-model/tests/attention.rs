//! The fused attention (Flex, Autodiff<Flex>) against the plain composition of burn operations:
//! outputs and gradients with respect to q, k and v, with and without a key padding mask, and
//! a whole model's forward pass and gradients.

mod common;

use burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing;
use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Bool, Distribution, Tensor, TensorData};
use common::{images, max_abs_diff, mask_of, tiny_config, to_vec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use u2ad_model::attention::{attention, attention_plain, kernel, with_plain_attention};
use u2ad_model::{reconstruction_loss, LossConfig};

const TOLERANCE: f32 = 1e-5;

/// Deterministic uniform values in `[-amp, amp]`.
fn random(n: usize, amp: f32, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-amp..amp)).collect()
}

fn tensor<Bk: Backend, const D: usize>(values: Vec<f32>, shape: [usize; D]) -> Tensor<Bk, D> {
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

/// `[batch, k_tokens]` padding: image 0 none, image 1 a scattered set and a tail run, image 2
/// (if any) everything but its first key.
fn padding_flags(batch: usize, k_tokens: usize) -> Vec<bool> {
    let mut flags = vec![false; batch * k_tokens];
    if batch > 1 {
        for j in [1, 5, 6, 20].into_iter().filter(|&j| j < k_tokens) {
            flags[k_tokens + j] = true;
        }
        for j in k_tokens.saturating_sub(7)..k_tokens {
            flags[k_tokens + j] = true;
        }
    }
    if batch > 2 {
        for j in 1..k_tokens {
            flags[2 * k_tokens + j] = true;
        }
    }
    flags
}

struct Case {
    batch: usize,
    heads: usize,
    q_tokens: usize,
    k_tokens: usize,
    head_dim: usize,
    amp: f32,
    padded: bool,
}

impl Case {
    fn inputs(&self, seed: u64) -> [Vec<f32>; 4] {
        let qn = self.batch * self.heads * self.q_tokens * self.head_dim;
        let kn = self.batch * self.heads * self.k_tokens * self.head_dim;
        [random(qn, self.amp, seed), random(kn, self.amp, seed + 1), random(kn, 1.0, seed + 2), random(qn, 1.0, seed + 3)]
    }

    fn q_shape(&self) -> [usize; 4] {
        [self.batch, self.heads, self.q_tokens, self.head_dim]
    }

    fn k_shape(&self) -> [usize; 4] {
        [self.batch, self.heads, self.k_tokens, self.head_dim]
    }

    fn padding<Bk: Backend>(&self) -> Option<Tensor<Bk, 2, Bool>> {
        self.padded.then(|| {
            let flags = padding_flags(self.batch, self.k_tokens);
            Tensor::from_data(TensorData::new(flags, [self.batch, self.k_tokens]), &Default::default())
        })
    }

    /// Forward output and gradients of `Σ out · w` with respect to q, k, v, on `Ad`, through
    /// the fused or the plain path.
    fn run<Ad: AutodiffBackend>(&self, fused: bool, seed: u64) -> [Vec<f32>; 4] {
        let [q, k, v, w] = self.inputs(seed);
        let q = tensor::<Ad, 4>(q, self.q_shape()).require_grad();
        let k = tensor::<Ad, 4>(k, self.k_shape()).require_grad();
        let v = tensor::<Ad, 4>(v, self.k_shape()).require_grad();
        let w = tensor::<Ad, 4>(w, self.q_shape());
        let go = || attention(q.clone(), k.clone(), v.clone(), self.padding());
        let out = if fused { go() } else { with_plain_attention(go) };
        let grads = (out.clone() * w).sum().backward();
        let grad = |t: &Tensor<Ad, 4>| to_vec(t.grad(&grads).expect("a gradient"));
        [to_vec(out), grad(&q), grad(&k), grad(&v)]
    }

    fn check<Ad: AutodiffBackend>(&self, seed: u64) -> [f32; 4] {
        let fused = self.run::<Ad>(true, seed);
        let plain = self.run::<Ad>(false, seed);
        let errors = [0, 1, 2, 3].map(|i| max_abs_diff(&fused[i], &plain[i]));
        for (name, e) in ["output", "dq", "dk", "dv"].iter().zip(errors) {
            assert!(
                e < TOLERANCE,
                "{name}: max |fused - plain| = {e:e} (batch {}, heads {}, tokens {}x{}, head size {}, padded {})",
                self.batch,
                self.heads,
                self.q_tokens,
                self.k_tokens,
                self.head_dim,
                self.padded
            );
        }
        // The gradients are not all zero (the comparison means something).
        assert!(plain[1].iter().any(|&x| x.abs() > 1e-4) && plain[2].iter().any(|&x| x.abs() > 1e-4));
        errors
    }
}

#[test]
fn fused_forward_and_gradients_equal_the_plain_path() {
    let cases = [
        // Head size 8 as in U2AD, token counts that leave a partial last block of keys.
        Case { batch: 3, heads: 2, q_tokens: 37, k_tokens: 37, head_dim: 8, amp: 1.5, padded: true },
        Case { batch: 2, heads: 3, q_tokens: 50, k_tokens: 50, head_dim: 8, amp: 1.0, padded: false },
        // Cross-attention shapes and the other head sizes.
        Case { batch: 2, heads: 2, q_tokens: 9, k_tokens: 40, head_dim: 4, amp: 2.0, padded: true },
        Case { batch: 2, heads: 1, q_tokens: 33, k_tokens: 17, head_dim: 16, amp: 1.0, padded: true },
        Case { batch: 1, heads: 2, q_tokens: 20, k_tokens: 31, head_dim: 32, amp: 0.7, padded: false },
        // Large scores: sharply peaked rows.
        Case { batch: 2, heads: 2, q_tokens: 24, k_tokens: 24, head_dim: 8, amp: 4.0, padded: true },
    ];
    for (i, case) in cases.iter().enumerate() {
        let errors = case.check::<Autodiff<Flex>>(100 + i as u64);
        eprintln!("case {i}: max |fused - plain| output {:.1e}, dq {:.1e}, dk {:.1e}, dv {:.1e}", errors[0], errors[1], errors[2], errors[3]);
    }
    // The checkpointing variant of the autodiff backend takes the fused path too.
    cases[0].check::<Autodiff<Flex, BalancedCheckpointing>>(7);
}

#[test]
fn fused_inference_equals_the_plain_path() {
    let case = Case { batch: 3, heads: 2, q_tokens: 37, k_tokens: 37, head_dim: 8, amp: 1.5, padded: true };
    let [q, k, v, _] = case.inputs(3);
    let q = tensor::<Flex, 4>(q, case.q_shape());
    let k = tensor::<Flex, 4>(k, case.k_shape());
    let v = tensor::<Flex, 4>(v, case.k_shape());
    let fused = to_vec(attention(q.clone(), k.clone(), v.clone(), case.padding()));
    let plain = to_vec(attention_plain(q, k, v, case.padding()));
    let e = max_abs_diff(&fused, &plain);
    assert!(e < TOLERANCE, "max |fused - plain| = {e:e}");
}

#[test]
fn padding_keys_get_no_weight_and_no_gradient() {
    // Changing the padding keys and values changes nothing; their gradients are exactly 0.
    let case = Case { batch: 3, heads: 2, q_tokens: 37, k_tokens: 37, head_dim: 8, amp: 1.5, padded: true };
    let flags = padding_flags(case.batch, case.k_tokens);
    let [q, k, v, w] = case.inputs(11);
    let scribble = |x: &[f32]| -> Vec<f32> {
        x.iter()
            .enumerate()
            .map(|(i, &a)| {
                let (b, j) = (i / (case.heads * case.k_tokens * case.head_dim), (i / case.head_dim) % case.k_tokens);
                if flags[b * case.k_tokens + j] { 100.0 - a } else { a }
            })
            .collect()
    };
    type Ad = Autodiff<Flex>;
    let run = |k: Vec<f32>, v: Vec<f32>| {
        let k = tensor::<Ad, 4>(k, case.k_shape()).require_grad();
        let v = tensor::<Ad, 4>(v, case.k_shape()).require_grad();
        let out = attention(tensor::<Ad, 4>(q.clone(), case.q_shape()), k.clone(), v.clone(), case.padding());
        let grads = (out.clone() * tensor::<Ad, 4>(w.clone(), case.q_shape())).sum().backward();
        (to_vec(out), to_vec(k.grad(&grads).unwrap()), to_vec(v.grad(&grads).unwrap()))
    };
    let (out, dk, dv) = run(k.clone(), v.clone());
    let (out2, _, _) = run(scribble(&k), scribble(&v));
    assert_eq!(out, out2);
    for (i, (&a, &b)) in dk.iter().zip(&dv).enumerate() {
        let (batch, j) = (i / (case.heads * case.k_tokens * case.head_dim), (i / case.head_dim) % case.k_tokens);
        if flags[batch * case.k_tokens + j] {
            assert_eq!((a, b), (0.0, 0.0), "padding key {j} of image {batch}");
        }
    }
}

#[test]
fn the_kernel_agrees_with_a_direct_computation() {
    // A double-precision reference on the slices, independent of burn.
    let dims = kernel::Dims { batch: 1, heads: 2, q_tokens: 5, k_tokens: 19, head_dim: 8 };
    let (qn, kn) = (2 * 5 * 8, 2 * 19 * 8);
    let (q, k, v) = (random(qn, 1.0, 1), random(kn, 1.0, 2), random(kn, 1.0, 3));
    let mut out = vec![0.0; qn];
    let mut lse = vec![0.0; 10];
    let (qi, ki, vi) = (kernel::Input::contiguous(&q, 2, 5, 8), kernel::Input::contiguous(&k, 2, 19, 8), kernel::Input::contiguous(&v, 2, 19, 8));
    kernel::forward(dims, qi, ki, vi, None, &mut out, &mut lse);
    for h in 0..2 {
        for i in 0..5 {
            let qi = &q[(h * 5 + i) * 8..][..8];
            let s: Vec<f64> = (0..19)
                .map(|j| {
                    let kj = &k[(h * 19 + j) * 8..][..8];
                    qi.iter().zip(kj).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>() / 8f64.sqrt()
                })
                .collect();
            let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = s.iter().map(|x| (x - m).exp()).sum();
            // The log-sum-exp is kept in base 2.
            assert!((lse[h * 5 + i] as f64 - (m + z.ln()) * std::f64::consts::LOG2_E).abs() < 1e-5);
            for d in 0..8 {
                let o: f64 = (0..19).map(|j| (s[j] - m).exp() / z * v[(h * 19 + j) * 8 + d] as f64).sum();
                // The output is token-major: [batch, tokens, heads, head_dim] in memory.
                assert!((out[(i * 2 + h) * 8 + d] as f64 - o).abs() < 1e-6, "row {i} dim {d}");
            }
        }
    }
}

#[test]
fn the_model_is_the_same_with_either_attention() {
    let dev = Default::default();
    // Tiny configuration (head size 8), images with different visible counts (padding).
    let masks = vec![mask_of(16, &[4, 9]), mask_of(16, &[0, 1, 2, 3, 5, 8, 11, 14, 15]), mask_of(16, &[6, 7, 10, 12, 13])];
    type Ad = Autodiff<Flex>;
    Ad::seed(&dev, 5);
    let ad_model = tiny_config().init::<Ad>(&dev).unwrap();
    let model = ad_model.valid();
    let fused = model.forward(images::<Flex>(32, &[0, 1, 2], &dev), &masks);
    let plain = with_plain_attention(|| model.forward(images::<Flex>(32, &[0, 1, 2], &dev), &masks));
    let e_image = max_abs_diff(&to_vec(fused.image_patches), &to_vec(plain.image_patches));
    let e_edge = max_abs_diff(&to_vec(fused.edge_patches), &to_vec(plain.edge_patches));
    eprintln!("model forward: max |fused - plain| image {e_image:.1e}, edge {e_edge:.1e}");
    assert!(e_image < TOLERANCE && e_edge < TOLERANCE, "{e_image:e} {e_edge:e}");

    // Gradients of the loss with respect to every parameter.
    let model = ad_model;
    let roi = Tensor::<Ad, 4>::random([3, 1, 32, 32], Distribution::Uniform(0.0, 1.0), &dev).greater_elem(0.3).float();
    let grads = |plain: bool| {
        let go = || {
            let x = images::<Ad>(32, &[0, 1, 2], &dev);
            let rec = model.forward(x.clone(), &masks);
            reconstruction_loss(&rec, x, roi.clone(), &masks, &LossConfig::default()).total.backward()
        };
        let grads = if plain { with_plain_attention(go) } else { go() };
        let block = &model.encoder_blocks[0].attention;
        let dec = &model.decoder_blocks[0].attention;
        [
            to_vec(block.qkv.weight.grad(&grads).unwrap()),
            to_vec(block.output.weight.grad(&grads).unwrap()),
            to_vec(dec.qkv.weight.grad(&grads).unwrap()),
            to_vec(model.patch_embedding.weight.grad(&grads).unwrap()),
        ]
    };
    let (fused, plain) = (grads(false), grads(true));
    for (name, (f, p)) in ["encoder qkv", "encoder output", "decoder qkv", "patch embedding"].iter().zip(fused.iter().zip(&plain)) {
        let scale = p.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let e = max_abs_diff(f, p);
        eprintln!("gradient of {name}: max |fused - plain| {e:.1e} (largest {scale:.1e})");
        assert!(e < TOLERANCE * scale.max(1.0), "{name}: {e:e}");
    }
}
