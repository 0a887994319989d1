//! Micro-benchmark of the fused attention kernels alone, per instruction set.
//!
//! `cargo bench -p u2ad-model --bench attention`
//!
//! For the two attention shapes of the paper model at batch 1 (encoder: 16 heads x 913
//! tokens; decoder: 8 heads x 1025 tokens; head size 8), prints the time of one forward and
//! one backward call of [`u2ad_model::attention::kernel`] with each instruction set this CPU
//! has (each in a child process, since the choice is made once per process through
//! `U2AD_ATTENTION_ISA`), in wall milliseconds and in CPU nanoseconds per score (one
//! query-key pair; all threads), and the forward pass of the plain burn composition on `Flex`
//! for comparison. `U2AD_BENCH_ITERS` (default 10) sets the number of timed calls.

use std::process::Command;
use std::time::Instant;

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use u2ad_model::attention::attention_plain;
use u2ad_model::attention::kernel::{self, Dims, Input};

const SHAPES: [(&str, usize, usize); 2] = [("encoder", 16, 913), ("decoder", 8, 1025)];

fn cpu_seconds() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return f64::NAN };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .sum::<f64>()
        * 1e-9
}

/// Mean wall seconds and CPU seconds of `f` over `iters` calls, after one untimed call.
fn time(iters: usize, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let (start, cpu) = (Instant::now(), cpu_seconds());
    for _ in 0..iters {
        f();
    }
    (start.elapsed().as_secs_f64() / iters as f64, (cpu_seconds() - cpu) / iters as f64)
}

fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 7919 + seed * 104_729) % 2000) as f32 / 1000.0 - 1.0).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1]);
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    println!("| kernel | shape (heads x tokens) | forward (ms) | forward (ns/score, CPU) | backward (ms) | backward (ns/score, CPU) |");
    println!("|---|---|---|---|---|---|");
    let mut isas = vec!["portable"];
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            isas.push("avx2");
        }
        if is_x86_feature_detected!("avx512f") {
            isas.push("avx512");
        }
    }
    isas.push("plain");
    for isa in isas {
        let out = Command::new(&exe).args(["--child", isa]).env("U2AD_ATTENTION_ISA", isa).output().expect("run the child");
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
}

fn child(isa: &str) {
    let iters = std::env::var("U2AD_BENCH_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(10usize).max(1);
    for (name, heads, tokens) in SHAPES {
        let n = heads * tokens * 8;
        let dims = Dims { batch: 1, heads, q_tokens: tokens, k_tokens: tokens, head_dim: 8 };
        let (q, k, v, g) = (values(n, 1), values(n, 2), values(n, 3), values(n, 4));
        let scores = (heads * tokens * tokens) as f64;
        if isa == "plain" {
            let device = Default::default();
            let t = |x: &[f32]| Tensor::<Flex, 4>::from_data(TensorData::new(x.to_vec(), [1, heads, tokens, 8]), &device);
            let (qt, kt, vt) = (t(&q), t(&k), t(&v));
            let (wall, cpu) = time(iters, || {
                let _ = attention_plain(qt.clone(), kt.clone(), vt.clone(), None).into_data();
            });
            println!("| plain (burn ops, Flex) | {name} {heads} x {tokens} | {:.1} | {:.2} | | |", wall * 1e3, cpu / scores * 1e9);
            continue;
        }
        fn input(x: &[f32], heads: usize, tokens: usize) -> Input<'_> {
            Input::contiguous(x, heads, tokens, 8)
        }
        let mut out = vec![0.0f32; n];
        let mut lse = vec![0.0f32; heads * tokens];
        let (fw, fc) = time(iters, || kernel::forward(dims, input(&q, heads, tokens), input(&k, heads, tokens), input(&v, heads, tokens), None, &mut out, &mut lse));
        let (mut dq, mut dk, mut dv) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
        let out_layout = Input { data: &out, strides: kernel::Strides::token_major(heads, tokens, 8) };
        let (bw, bc) = time(iters, || {
            let [qi, ki, vi, gi] = [&q, &k, &v, &g].map(|x| input(x, heads, tokens));
            kernel::backward(dims, qi, ki, vi, None, out_layout, &lse, gi, &mut dq, &mut dk, &mut dv)
        });
        println!(
            "| fused, {isa} | {name} {heads} x {tokens} | {:.1} | {:.2} | {:.1} | {:.2} |",
            fw * 1e3,
            fc / scores * 1e9,
            bw * 1e3,
            bc / scores * 1e9
        );
    }
}
