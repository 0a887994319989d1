//! Monte-Carlo inference of one 256 x 256 sagittal slice, K = 10, paper configuration, on the
//! CPU (`Flex`), and the check that the balanced schedule gives the same maps in distribution as
//! the reference's random-until-covered loop.
//!
//! `cargo bench -p u2ad-model --bench mc [-- timing | distribution | bound]`
//!
//! * **timing**: the mid-sagittal sample of `spine-t2/sub-errsm11` (real image and ROI, via
//!   `u2ad prepare`'s code) with a paper-size model (random weights: the time does not depend on
//!   them). One warm-up run, then `U2AD_BENCH_ITERS` (default 3) timed runs of `mc_inference`
//!   per case; the table gives passes, the median and the minimum time per slice. Cases: the
//!   balanced schedule with 1, 4, 8 and 16 masked copies per forward batch, and the reference
//!   schedule (at most 400 passes) batched by 8; `U2AD_BENCH_BATCHES=4` (a comma-separated
//!   list) times only those balanced cases. The last column is the share of CPU time the
//!   hypervisor gave to other guests meanwhile (steal, from `/proc/stat`): on a shared virtual
//!   machine, times with a high steal share measure the neighbours, not u2ad.
//! * **distribution**: the mid-sagittal sample of each of the 5 subjects, `U2AD_BENCH_SEEDS`
//!   (default 3) seeds per schedule: mean EU and mean AU over the cord eroded by 3 x 3 pixels
//!   (where `u2ad detect` reads them), their mean over seeds and the seed-to-seed standard
//!   deviation, and the difference between the schedules in units of that deviation.
//! * **bound**: the multiply-adds of one slice's MC inference (linear layers and the two
//!   attention products, counted from the real sample's token numbers) divided by this
//!   machine's measured f32 FMA rate on 1 thread and on all: the time no implementation of the
//!   f32 model can beat here.

use std::time::Instant;

use burn::backend::Flex;
use u2ad_core::dataset::PreparedSample;
use u2ad_core::prepare::{prepare_subject, PrepareOptions};
use u2ad_core::scoring::{erode_3x3, PlaneShape};
use u2ad_io::cohort::{discover_bids, DiscoveryOptions};
use u2ad_model::{mc_inference, MaskedAutoencoder, McConfig, McSchedule, McSlice, ModelConfig};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The sample with the most cord pixels of each subject of the shared cohort.
fn mid_sagittal_samples() -> Vec<(String, PreparedSample)> {
    let root = u2ad_data::sample_file("spine-t2");
    let subjects = discover_bids(&root, &DiscoveryOptions::default()).expect("the shared cohort");
    subjects
        .iter()
        .map(|files| {
            let prepared = prepare_subject(files, &PrepareOptions::default()).expect("prepares");
            let best = prepared
                .samples
                .into_iter()
                .max_by_key(|s| s.cord.iter().filter(|&&m| m != 0).count())
                .expect("a sample with cord");
            (files.subject.clone(), best)
        })
        .collect()
}

fn roi_patches(sample: &PreparedSample, config: &ModelConfig) -> usize {
    config.grid().patches_touching(&sample.roi).iter().filter(|&&t| t).count()
}

fn timing(model: &MaskedAutoencoder<Flex>, config: &ModelConfig, sample: &PreparedSample) {
    let iterations = env_usize("U2AD_BENCH_ITERS", 3).max(1);
    println!(
        "\ntiming: sub-errsm11, native slice {}, {} ROI patches, K = 10, mask ratio 0.75, {} cores",
        sample.meta.native_slice,
        roi_patches(sample, config),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    println!(
        "{:<34} {:>7} {:>11} {:>11} {:>12} {:>10}",
        "case", "passes", "median (s)", "min (s)", "s per pass", "steal (%)"
    );
    // `U2AD_BENCH_BATCHES=4` (a comma-separated list) times only those balanced cases.
    let chosen: Option<Vec<usize>> =
        std::env::var("U2AD_BENCH_BATCHES").ok().map(|v| v.split(',').filter_map(|b| b.trim().parse().ok()).collect());
    let cases: Vec<(String, McConfig)> = chosen
        .clone()
        .unwrap_or_else(|| vec![1, 4, 8, 16])
        .into_iter()
        .map(|b| (format!("balanced, batch {b}"), McConfig { passes_per_batch: b, ..McConfig::default() }))
        .chain(chosen.is_none().then(|| {
            (
                "reference (random until covered), batch 8".to_string(),
                McConfig { schedule: McSchedule::RandomUntilCovered { max_passes: 400 }, passes_per_batch: 8, ..McConfig::default() },
            )
        }))
        .collect();
    for (name, mc) in cases {
        let slice = [McSlice { image: &sample.image, roi: &sample.roi, seed: 1 }];
        let warm = mc_inference(model, &slice, &mc);
        let passes = warm[0].passes;
        let steal_before = cpu_ticks();
        let mut times: Vec<f64> = (0..iterations)
            .map(|i| {
                let slice = [McSlice { image: &sample.image, roi: &sample.roi, seed: 2 + i as u64 }];
                let start = Instant::now();
                let maps = mc_inference(model, &slice, &mc);
                std::hint::black_box(&maps);
                start.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let steal = match (steal_before, cpu_ticks()) {
            (Some((s0, t0)), Some((s1, t1))) if t1 > t0 => 100.0 * (s1 - s0) as f64 / (t1 - t0) as f64,
            _ => f64::NAN,
        };
        println!("{name:<34} {passes:>7} {median:>11.3} {:>11.3} {:>12.3} {steal:>10.0}", times[0], median / passes as f64);
    }
}

/// Steal ticks and all ticks of all CPUs so far (`/proc/stat`, Linux): on a virtual machine,
/// the share of time the hypervisor gave the CPUs to other guests, which the times above
/// include.
fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    Some((*ticks.get(7)?, ticks.iter().take(8).sum()))
}

fn eroded_mean(map: &[f32], eroded: &[u8]) -> f64 {
    let (sum, n) = map.iter().zip(eroded).filter(|(_, &m)| m != 0).fold((0.0, 0usize), |(s, n), (&v, _)| (s + v as f64, n + 1));
    sum / n.max(1) as f64
}

fn mean_sd(values: &[f64]) -> (f64, f64) {
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (values.len().max(2) - 1) as f64;
    (mean, var.sqrt())
}

fn distribution(model: &MaskedAutoencoder<Flex>, samples: &[(String, PreparedSample)]) {
    let seeds = env_usize("U2AD_BENCH_SEEDS", 3).max(2) as u64;
    println!("\ndistribution: mid-sagittal sample of each subject, {seeds} seeds per schedule, K = 10, batch 8");
    println!(
        "{:<13} {:<10} {:>6} {:>13} {:>11} {:>13} {:>11}",
        "subject", "schedule", "passes", "mean EU", "sd (seeds)", "mean AU", "sd (seeds)"
    );
    let schedules = [("balanced", McSchedule::Balanced), ("reference", McSchedule::RandomUntilCovered { max_passes: 400 })];
    let mut worst_eu_z: f64 = 0.0;
    let mut worst_au_z: f64 = 0.0;
    for (subject, sample) in samples {
        let eroded = erode_3x3(&sample.cord, PlaneShape::SAMPLE);
        let mut summary = Vec::new();
        for (name, schedule) in &schedules {
            let mc = McConfig { schedule: schedule.clone(), passes_per_batch: 8, ..McConfig::default() };
            let slices: Vec<McSlice<'_>> =
                (0..seeds).map(|seed| McSlice { image: &sample.image, roi: &sample.roi, seed: 1000 + seed }).collect();
            let maps = mc_inference(model, &slices, &mc);
            let eu: Vec<f64> = maps.iter().map(|m| eroded_mean(&m.epistemic, &eroded)).collect();
            let au: Vec<f64> = maps.iter().map(|m| eroded_mean(&m.aleatoric, &eroded)).collect();
            let passes = maps.iter().map(|m| m.passes).sum::<usize>() as f64 / maps.len() as f64;
            let ((eu_mean, eu_sd), (au_mean, au_sd)) = (mean_sd(&eu), mean_sd(&au));
            println!("{subject:<13} {name:<10} {passes:>6.1} {eu_mean:>13.4e} {eu_sd:>11.2e} {au_mean:>13.4e} {au_sd:>11.2e}");
            summary.push((eu_mean, eu_sd, au_mean, au_sd));
        }
        let (a, b) = (summary[0], summary[1]);
        // Difference of two means of `seeds` runs, in units of its standard error.
        let z = |m1: f64, s1: f64, m2: f64, s2: f64| (m1 - m2).abs() / ((s1 * s1 + s2 * s2) / seeds as f64).sqrt().max(1e-30);
        let (eu_z, au_z) = (z(a.0, a.1, b.0, b.1), z(a.2, a.3, b.2, b.3));
        println!("{:<13} balanced - reference: EU {eu_z:.2} standard errors, AU {au_z:.2} standard errors", "");
        worst_eu_z = worst_eu_z.max(eu_z);
        worst_au_z = worst_au_z.max(au_z);
    }
    println!("largest difference over subjects: EU {worst_eu_z:.2}, AU {worst_au_z:.2} standard errors");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let wants = |name: &str| args.is_empty() || args.iter().any(|a| name.contains(a.as_str()));
    let config = ModelConfig::default();
    let device = Default::default();
    let model = config.init::<Flex>(&device).expect("paper configuration");
    let samples = mid_sagittal_samples();
    println!(
        "u2ad MC inference benchmark: paper configuration (256 x 256, patch 8, encoder 128 x {} x {} heads, decoder 64 x {} x {} heads), Flex backend",
        config.encoder_depth, config.encoder_heads, config.decoder_depth, config.decoder_heads
    );
    if wants("timing") {
        let errsm11 = &samples.iter().find(|(s, _)| s == "sub-errsm11").expect("sub-errsm11").1;
        timing(&model, &config, errsm11);
    }
    if wants("distribution") {
        distribution(&model, &samples);
    }
    if wants("bound") {
        let errsm11 = &samples.iter().find(|(s, _)| s == "sub-errsm11").expect("sub-errsm11").1;
        bound(&config, errsm11);
    }
}

/// The arithmetic of one slice's MC inference (K = 10, balanced schedule) against the measured
/// f32 multiply-add rate of this machine: a lower bound on its time that no kernel can beat.
fn bound(config: &ModelConfig, sample: &PreparedSample) {
    let roi = roi_patches(sample, config);
    let masked = u2ad_model::masking::masked_count(roi, 0.75);
    let passes = (10 * roi).div_ceil(masked);
    let patches = config.grid().num_patches();
    let (enc_tokens, dec_tokens) = ((1 + patches - masked) as f64, (1 + patches) as f64);
    let mlp = |d: usize| (config.mlp_ratio * d as f64).round();
    // Per token and block: qkv (3 d²), output (d²), MLP (2 · d · hidden) multiply-adds.
    let linear = |tokens: f64, d: usize, depth: usize| 2.0 * tokens * depth as f64 * (4.0 * (d * d) as f64 + 2.0 * d as f64 * mlp(d));
    // q·k and p·v: 2 · head_dim multiply-adds per score, heads · tokens² scores.
    let attention = |tokens: f64, d: usize, depth: usize| 2.0 * 2.0 * d as f64 * tokens * tokens * depth as f64;
    let enc = (config.encoder_dim, config.encoder_depth);
    let dec = (config.decoder_dim, config.decoder_depth);
    let linear_flop = linear(enc_tokens, enc.0, enc.1) + linear(dec_tokens, dec.0, dec.1);
    let attention_flop = attention(enc_tokens, enc.0, enc.1) + attention(dec_tokens, dec.0, dec.1);
    let scores = config.encoder_heads as f64 * enc_tokens * enc_tokens * enc.1 as f64
        + config.decoder_heads as f64 * dec_tokens * dec_tokens * dec.1 as f64;
    let per_pass = linear_flop + attention_flop;
    println!("\nbound: sub-errsm11, {roi} ROI patches, {masked} masked per pass, {passes} passes for K = 10");
    println!("  encoder {enc_tokens} tokens, decoder {dec_tokens} tokens; {:.0} M attention scores per pass (one exponential each)", scores / 1e6);
    println!(
        "  per pass: linear layers {:.2} GFLOP, attention products {:.2} GFLOP; per slice {:.1} GFLOP",
        linear_flop / 1e9,
        attention_flop / 1e9,
        per_pass * passes as f64 / 1e9
    );
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    for t in [1, threads] {
        let rate = peak_flops(t);
        println!(
            "  f32 FMA peak with {t} thread(s): {:.1} GFLOP/s -> at least {:.2} s per slice (multiply-adds alone, no exponentials, no memory traffic)",
            rate / 1e9,
            per_pass * passes as f64 / rate
        );
    }
}

/// Multiply-add throughput: independent FMA chains on `threads` threads at once.
fn peak_flops(threads: usize) -> f64 {
    const ROUNDS: usize = 50_000_000;
    let start = Instant::now();
    let flop_per_round = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads).map(|_| scope.spawn(|| fma_chains(ROUNDS))).collect();
        handles.into_iter().map(|h| h.join().expect("fma thread")).sum::<f64>()
    });
    flop_per_round / start.elapsed().as_secs_f64()
}

/// Runs `rounds` rounds of 12 independent vector FMA chains; returns the FLOPs done.
fn fma_chains(rounds: usize) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        #[target_feature(enable = "avx512f")]
        unsafe fn run512(rounds: usize) -> f32 {
            let mut acc = [_mm512_set1_ps(1.0); 12];
            let (b, c) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
            for _ in 0..rounds {
                for a in acc.iter_mut() {
                    *a = _mm512_fmadd_ps(*a, b, c);
                }
            }
            acc.iter().map(|&a| _mm512_reduce_add_ps(a)).sum()
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn run256(rounds: usize) -> f32 {
            let mut acc = [_mm256_set1_ps(1.0); 12];
            let (b, c) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
            for _ in 0..rounds {
                for a in acc.iter_mut() {
                    *a = _mm256_fmadd_ps(*a, b, c);
                }
            }
            let mut lanes = [0.0f32; 8];
            acc.iter().map(|&a| { _mm256_storeu_ps(lanes.as_mut_ptr(), a); lanes.iter().sum::<f32>() }).sum()
        }
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            std::hint::black_box(unsafe { run512(rounds) });
            return (rounds * 12 * 16 * 2) as f64;
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA.
            std::hint::black_box(unsafe { run256(rounds) });
            return (rounds * 12 * 8 * 2) as f64;
        }
    }
    let mut acc = [1.0f32; 12];
    for _ in 0..rounds {
        for a in acc.iter_mut() {
            *a = a.mul_add(0.999_999, 1e-7);
        }
    }
    std::hint::black_box(acc);
    (rounds * 12 * 2) as f64
}
