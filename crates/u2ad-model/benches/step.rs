//! Training-step and inference benchmarks of the paper-size model on the CPU (`Flex`).
//!
//! `cargo bench -p u2ad-model --bench step [-- FILTER...]`
//!
//! Each case runs in its own child process (this binary re-run with `--child CASE`), so that
//! its peak resident memory (`VmHWM` of `/proc/self/status`) is its own, and under an
//! address-space limit (`U2AD_BENCH_MEM_GB`, default 12) so that a case that would exhaust
//! the machine's memory fails alone instead of invoking the OOM killer.
//!
//! Cases (paper configuration: 256 x 256, patch 8, encoder 128 x 12 x 16 heads, decoder
//! 64 x 8 x 8 heads):
//!
//! * `train_bN`: forward + loss + backward + Adam update on `Autodiff<Flex>`, batch N;
//! * `infer_bN`: one forward pass on `Flex`, batch N;
//! * `*_full`: nothing masked, the encoder sees all 1025 tokens (the worst case).
//!
//! Masking is realistic: each image has an ROI of 140 to 150 patches (a band like a spinal
//! cord) of which `round(0.75 · ROI)` are masked at random, so the encoder sees about 915
//! tokens and pads the batch's shorter visible sets with its key mask; the decoder always sees
//! 1025.
//!
//! Timings: one warm-up step, then up to `U2AD_BENCH_ITERS` (default 5) measured steps within
//! a time budget of `U2AD_BENCH_SECONDS` (default 40) per case (a warm-up longer than the
//! budget is the only measurement). The table gives the median and the minimum wall time, and
//! the median CPU time of all threads (up to 2x the wall time on 2 cores; it hardly changes
//! when other processes compete for the cores, which inflates wall time).
//!
//! A filter that is a case name selects that case, any other filter the cases that contain
//! it; `U2AD_BENCH_FULL=1` adds the batch-10 unmasked training case. `U2AD_ATTENTION=plain`
//! runs every case with the plain (unfused) attention.

use std::process::Command;
use std::time::{Duration, Instant};

use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use u2ad_model::{masked_count, reconstruction_loss, LossConfig, MaskedAutoencoder, ModelConfig};

const CASES: &[&str] = &["train_b1", "train_b10", "infer_b1", "infer_b32", "train_b1_full", "infer_b1_full"];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1]);
        return;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let mut cases: Vec<&str> = CASES.to_vec();
    if std::env::var("U2AD_BENCH_FULL").is_ok_and(|v| v == "1") {
        cases.push("train_b10_full");
    }
    // A filter that names a case selects it alone; any other selects the cases containing it.
    let selects = |c: &str, f: &str| if cases.contains(&f) { c == f } else { c.contains(f) };
    let cases: Vec<&str> =
        cases.iter().copied().filter(|c| filters.is_empty() || filters.iter().any(|f| selects(c, f))).collect();
    let mem_gb = env_usize("U2AD_BENCH_MEM_GB", 12);
    let exe = std::env::current_exe().expect("own path");
    println!(
        "u2ad-model benchmark: {} threads, address-space limit {mem_gb} GB per case",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("| case | encoder tokens | decoder tokens | median (s) | min (s) | CPU (s) | runs | peak RSS (MB) |");
    println!("|---|---|---|---|---|---|---|---|");
    for case in cases {
        // `ulimit -v` bounds the child's address space: an allocation past it fails.
        let script = format!("ulimit -v {}; exec \"$0\" --child {case}", mem_gb * 1024 * 1024);
        let out = Command::new("sh").arg("-c").arg(script).arg(&exe).output().expect("run the case");
        let stdout = String::from_utf8_lossy(&out.stdout);
        match stdout.lines().find_map(|l| l.strip_prefix("RESULT ")) {
            Some(line) => println!("| {case} | {line} |"),
            None => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
                println!("| {case} | failed ({}): {last} | | | | | | |", out.status);
            }
        }
    }
}

/// The batch's images, pixel ROIs and masks: image `b` has an ROI of `150 - 5·(b mod 3)`
/// patches (grid columns 14..19, rows 1..31-(b mod 3)), `round(0.75 · ROI)` of them masked.
struct Batch {
    images: Vec<f32>,
    roi: Vec<f32>,
    masks: Vec<Vec<bool>>,
}

fn make_batch(config: &ModelConfig, batch: usize, masked: bool, seed: u64) -> Batch {
    let grid = config.grid();
    let (side, pside, p) = (config.image_size, grid.patches_per_side(), config.patch_size);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut images = Vec::with_capacity(batch * side * side);
    let mut roi = vec![0f32; batch * side * side];
    let mut masks = Vec::with_capacity(batch);
    for b in 0..batch {
        images.extend((0..side * side).map(|j| {
            let (r, c) = ((j / side) as f32, (j % side) as f32);
            0.5 + 0.4 * ((c + b as f32 * 3.0) / 7.0).sin() * (r / 11.0).cos()
        }));
        let rows = 1..31 - b % 3;
        let roi_patches: Vec<usize> = rows.flat_map(|r| (14..19).map(move |c| r * pside + c)).collect();
        for &patch in &roi_patches {
            let (pr, pc) = (patch / pside, patch % pside);
            for y in pr * p..(pr + 1) * p {
                for x in pc * p..(pc + 1) * p {
                    roi[b * side * side + y * side + x] = 1.0;
                }
            }
        }
        let mut mask = vec![false; grid.num_patches()];
        if masked {
            let n = masked_count(roi_patches.len(), 0.75);
            for i in sample(&mut rng, roi_patches.len(), n) {
                mask[roi_patches[i]] = true;
            }
        }
        masks.push(mask);
    }
    Batch { images, roi, masks }
}

fn tensor4<Bk: Backend>(data: &[f32], batch: usize, side: usize, device: &Bk::Device) -> Tensor<Bk, 4> {
    Tensor::from_data(TensorData::new(data.to_vec(), [batch, 1, side, side]), device)
}

/// Records run `i` (run 0 is the warm-up) and, after the warm-up, fixes the number of runs:
/// as many measured runs as fit in the budget judging by the warm-up, at least one. A warm-up
/// longer than the budget is the only measurement (such a case is slow enough that the
/// first-run overhead does not matter).
fn next_runs(i: usize, elapsed: Duration, cpu: f64, iters: usize, budget: Duration, times: &mut Vec<(f64, f64)>) -> Option<usize> {
    if i > 0 || elapsed > budget {
        times.push((elapsed.as_secs_f64(), cpu));
        return if i == 0 { Some(1) } else { None };
    }
    let fit = (budget.as_secs_f64() / elapsed.as_secs_f64().max(1e-9)) as usize;
    Some(1 + fit.clamp(1, iters))
}

/// CPU time used so far by all threads of this process, in seconds (the first field of each
/// thread's `/proc/self/task/*/schedstat`, in ns). Unlike wall time it hardly changes when
/// other processes compete for the cores.
fn cpu_seconds() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return f64::NAN };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .sum::<f64>()
        * 1e-9
}

/// Peak and current resident set size of this process, in kB.
fn memory_kb() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn child(case: &str) {
    let full = case.ends_with("_full");
    let train = case.starts_with("train");
    let batch: usize = case
        .split('_')
        .find_map(|p| p.strip_prefix('b'))
        .and_then(|n| n.parse().ok())
        .expect("case names its batch as bN");
    let config = ModelConfig::default();
    let data = make_batch(&config, batch, !full, 7);
    let visible_max = data.masks.iter().map(|m| m.iter().filter(|&&x| !x).count()).max().unwrap_or(0);
    let iters = env_usize("U2AD_BENCH_ITERS", 5).max(1);
    let budget = Duration::from_secs(env_usize("U2AD_BENCH_SECONDS", 40) as u64);

    let mut times = Vec::new();
    if train {
        type AB = Autodiff<Flex>;
        let device = Default::default();
        AB::seed(&device, 1);
        let mut model: MaskedAutoencoder<AB> = config.init(&device).expect("paper configuration");
        let mut optim = AdamConfig::new().init::<AB, MaskedAutoencoder<AB>>();
        let loss_config = LossConfig::default();
        let mut runs = iters + 1;
        let mut i = 0;
        while i < runs {
            let images = tensor4::<AB>(&data.images, batch, config.image_size, &device);
            let roi = tensor4::<AB>(&data.roi, batch, config.image_size, &device);
            let (start, cpu) = (Instant::now(), cpu_seconds());
            let rec = model.forward(images.clone(), &data.masks);
            let loss = reconstruction_loss(&rec, images, roi, &data.masks, &loss_config).total;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(1e-4, model, grads);
            // Make sure the update is done (Flex is eager; this reads one value).
            let _ = model.cls_token.val().into_data();
            runs = next_runs(i, start.elapsed(), cpu_seconds() - cpu, iters, budget, &mut times).unwrap_or(runs);
            i += 1;
        }
        let _ = model.valid();
    } else {
        type IB = Flex;
        let device = Default::default();
        IB::seed(&device, 1);
        let model: MaskedAutoencoder<IB> = config.init(&device).expect("paper configuration");
        let mut runs = iters + 1;
        let mut i = 0;
        while i < runs {
            let images = tensor4::<IB>(&data.images, batch, config.image_size, &device);
            let (start, cpu) = (Instant::now(), cpu_seconds());
            let rec = model.forward(images, &data.masks);
            let _ = rec.image_patches.into_data();
            let _ = rec.edge_patches.into_data();
            runs = next_runs(i, start.elapsed(), cpu_seconds() - cpu, iters, budget, &mut times).unwrap_or(runs);
            i += 1;
        }
    }
    let (hwm, _) = memory_kb();
    let median = |mut x: Vec<f64>| -> f64 {
        x.sort_by(f64::total_cmp);
        match x.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => x[n / 2],
            n => 0.5 * (x[n / 2 - 1] + x[n / 2]),
        }
    };
    let wall: Vec<f64> = times.iter().map(|t| t.0).collect();
    let min = wall.iter().cloned().fold(f64::NAN, f64::min);
    println!(
        "RESULT {} | {} | {:.3} | {min:.3} | {:.2} | {} | {:.0}",
        1 + visible_max,
        1 + config.grid().num_patches(),
        median(wall.clone()),
        median(times.iter().map(|t| t.1).collect()),
        times.len(),
        hwm as f64 / 1024.0
    );
}
