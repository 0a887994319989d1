//! Randomised robustness of the NIfTI reader (stable Rust, no cargo-fuzz): real files from the
//! shared data, crops of them written by the crate's writer and hand-built headers, mutated at
//! random (flipped bytes, header fields set to random and extreme values, truncation, appended
//! bytes, a corrupt gzip stream, header or trailer). For every case [`Volume::read`] and
//! [`read_header`] must return (never panic), every error must be one line naming the file, and
//! no read may allocate more than [`ALLOCATION_ALLOWANCE`] beyond a small multiple of the data.
//!
//! Deterministic: `U2AD_FUZZ_SEED` (default 0x2ad) and the case number give each case. Run
//! `U2AD_FUZZ_CASES` cases (default 3000), or as many as fit in `U2AD_FUZZ_SECONDS`;
//! `U2AD_FUZZ_CASE=n` replays case n alone. The test prints the cases run and the rate.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ndarray::s;
use nifti::writer::WriterOptions;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use u2ad_data::sample_file;
use u2ad_io::volume::{read_header, Volume, VoxelType, GZIP_MARGIN_BYTES};

/// Counts the bytes allocated now and their peak (this test binary holds one test, so the peak
/// is that of the read under test).
struct CountingAllocator;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn allocated(bytes: usize) {
    let now = ALLOCATED.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            allocated(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            allocated(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
            allocated(new_size);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// What a read may allocate beyond 16 times the bytes the file holds or inflates to.
const ALLOCATION_ALLOWANCE: usize = 64 << 20;
/// The longest a single case may take (debug build): huge declared sizes must fail fast.
const CASE_TIME_LIMIT: Duration = Duration::from_secs(5);

/// A starting file: its NIfTI bytes, and the real gzip stream when it is a real `.nii.gz`.
struct Seed {
    name: String,
    plain: Vec<u8>,
    gzip: Option<Vec<u8>>,
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(bytes), &mut out).unwrap();
    out
}

fn real_seed(relative: &str) -> Seed {
    let gz = std::fs::read(sample_file(relative)).unwrap();
    Seed { name: relative.rsplit('/').next().unwrap().into(), plain: gunzip(&gz), gzip: Some(gz) }
}

/// A crop of the errsm30 scan written by the nifti writer as `voxel_type`, big-endian or native.
fn written_crop(dir: &Path, name: &str, voxel_type: VoxelType, big_endian: bool) -> Seed {
    let v = Volume::read(sample_file("spine-t2/sub-errsm30/anat/sub-errsm30_T2w.nii.gz")).unwrap();
    let crop = v.data.slice(s![10..42, 8..40, 16..32]);
    let mut header = v.header.clone();
    if big_endian {
        header.endianness = nifti::Endianness::Big;
    }
    let path = dir.join(name);
    let writer = WriterOptions::new(&path).reference_header(&header);
    match voxel_type {
        VoxelType::UInt8 => writer.write_nifti(&crop.mapv(|x| (x / 8.0) as u8)),
        VoxelType::Int16 => writer.write_nifti(&crop.mapv(|x| x as i16)),
        _ => writer.write_nifti(&crop.to_owned()),
    }
    .unwrap();
    Seed { name: name.into(), plain: std::fs::read(&path).unwrap(), gzip: None }
}

/// A header written byte by byte: `dims` voxels of `datatype`, data from `vox_offset` (the gap
/// after the header holds an extension flag and junk), a pixdim sform, little- or big-endian.
fn hand_built(datatype: i16, bitpix: i16, dims: [i16; 3], vox_offset: usize, big_endian: bool) -> Seed {
    let mut h = vec![0u8; vox_offset];
    let mut put = |offset: usize, bytes: &[u8]| {
        let bytes: Vec<u8> = if big_endian { bytes.iter().rev().copied().collect() } else { bytes.to_vec() };
        h[offset..offset + bytes.len()].copy_from_slice(&bytes);
    };
    put(0, &348i32.to_le_bytes());
    for (a, n) in [3, dims[0], dims[1], dims[2], 1, 1, 1, 1].iter().enumerate() {
        put(40 + 2 * a, &n.to_le_bytes());
    }
    put(70, &datatype.to_le_bytes());
    put(72, &bitpix.to_le_bytes());
    for (a, z) in [1.0f32, 0.8, 0.8, 3.0].iter().enumerate() {
        put(76 + 4 * a, &z.to_le_bytes());
    }
    put(108, &(vox_offset as f32).to_le_bytes());
    put(112, &1.0f32.to_le_bytes());
    put(254, &1i16.to_le_bytes());
    for (r, row) in [[0.8f32, 0.0, 0.0, -10.0], [0.0, 0.8, 0.0, 5.0], [0.0, 0.0, 3.0, 2.0]].iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            put(280 + 16 * r + 4 * c, &v.to_le_bytes());
        }
    }
    h[344..348].copy_from_slice(b"n+1\0");
    h[348] = u8::from(vox_offset > 352);
    for (i, b) in h.iter_mut().enumerate().skip(352) {
        *b = (i * 37) as u8;
    }
    let count = dims.iter().map(|&n| n as usize).product::<usize>() * (bitpix as usize / 8);
    h.extend((0..count).map(|i| (i * 7 + 3) as u8 & 0x3f));
    Seed { name: format!("hand-built type {datatype}"), plain: h, gzip: None }
}

fn seeds(dir: &Path) -> Vec<Seed> {
    vec![
        real_seed("spine-t2/sub-errsm30/anat/sub-errsm30_T2w.nii.gz"),
        real_seed("spine-t2/derivatives/labels/sub-errsm30/anat/sub-errsm30_T2w_label-SC_seg.nii.gz"),
        real_seed("spine-t2/derivatives/labels/sub-errsm30/anat/sub-errsm30_T2w_label-vertebrae_dlabel.nii.gz"),
        real_seed("fixtures/bad_quaternion.nii.gz"),
        real_seed("fixtures/ivadomed/sub-unf02/anat/sub-unf02_T2star.nii.gz"),
        written_crop(dir, "crop_int16.nii", VoxelType::Int16, false),
        written_crop(dir, "crop_float32_be.nii", VoxelType::Float32, true),
        written_crop(dir, "crop_uint8.nii", VoxelType::UInt8, false),
        hand_built(64, 64, [3, 4, 5], 352, false),
        hand_built(2, 8, [2, 3, 2], 400, true),
        hand_built(512, 16, [5, 1, 1], 352, false),
    ]
}

/// NIfTI-1 header fields: name, byte offset, width in bytes, float or integer.
fn header_fields() -> Vec<(String, usize, usize, bool)> {
    let mut fields = vec![
        ("sizeof_hdr".to_string(), 0, 4, false),
        ("datatype".into(), 70, 2, false),
        ("bitpix".into(), 72, 2, false),
        ("vox_offset".into(), 108, 4, true),
        ("scl_slope".into(), 112, 4, true),
        ("scl_inter".into(), 116, 4, true),
        ("qform_code".into(), 252, 2, false),
        ("sform_code".into(), 254, 2, false),
        ("magic".into(), 344, 4, false),
    ];
    fields.extend((0..8).map(|i| (format!("dim[{i}]"), 40 + 2 * i, 2, false)));
    fields.extend((0..8).map(|i| (format!("pixdim[{i}]"), 76 + 4 * i, 4, true)));
    fields.extend((0..6).map(|i| (format!("quatern[{i}]"), 256 + 4 * i, 4, true)));
    fields.extend((0..12).map(|i| (format!("srow[{i}]"), 280 + 4 * i, 4, true)));
    fields
}

fn extreme_float(rng: &mut ChaCha8Rng) -> f32 {
    const EXTREMES: [f32; 18] = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        348.0,
        351.0,
        352.0,
        353.0,
        1e9,
        1e30,
        -1e30,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        f32::MIN_POSITIVE,
        1e-40,
    ];
    match rng.random_range(0..4) {
        0 => f32::from_bits(rng.random()),
        1 => rng.random_range(-1000.0..1000.0),
        _ => EXTREMES[rng.random_range(0..EXTREMES.len())],
    }
}

fn extreme_integer(rng: &mut ChaCha8Rng) -> i32 {
    const EXTREMES: [i32; 16] = [0, 1, 2, 3, 4, 5, 7, 8, -1, 255, 256, 348, 32767, -32768, 65535, i32::MAX];
    match rng.random_range(0..3) {
        0 => rng.random(),
        _ => EXTREMES[rng.random_range(0..EXTREMES.len())],
    }
}

/// Sets one header field to a random or extreme value, mostly in the file's byte order.
fn overwrite_field(bytes: &mut [u8], rng: &mut ChaCha8Rng, log: &mut Vec<String>) {
    let fields = header_fields();
    let (name, offset, width, float) = &fields[rng.random_range(0..fields.len())];
    let little = bytes.len() >= 4 && i32::from_le_bytes(bytes[..4].try_into().unwrap()) == 348;
    let little = if rng.random_bool(0.9) { little } else { !little };
    let value: Vec<u8> = if *float {
        let v = extreme_float(rng);
        log.push(format!("{name} = {v}"));
        if little {
            v.to_le_bytes().to_vec()
        } else {
            v.to_be_bytes().to_vec()
        }
    } else {
        let v = extreme_integer(rng);
        log.push(if *width == 4 { format!("{name} = {v}") } else { format!("{name} = {}", v as i16) });
        let all = if little { v.to_le_bytes() } else { v.to_be_bytes() };
        if *width == 4 {
            all.to_vec()
        } else if little {
            all[..2].to_vec()
        } else {
            all[2..].to_vec()
        }
    };
    if let Some(target) = bytes.get_mut(*offset..offset + width) {
        target.copy_from_slice(&value);
    }
}

/// Flips a few random bytes, mostly in the first 400 (header) bytes.
fn flip_bytes(bytes: &mut [u8], rng: &mut ChaCha8Rng, log: &mut Vec<String>) {
    if bytes.is_empty() {
        return;
    }
    for _ in 0..rng.random_range(1..=8) {
        let end = if rng.random_bool(0.7) { bytes.len().min(400) } else { bytes.len() };
        let at = rng.random_range(0..end);
        bytes[at] ^= rng.random_range(1..=255u8);
        log.push(format!("flip byte {at}"));
    }
}

fn truncate(bytes: &mut Vec<u8>, rng: &mut ChaCha8Rng, log: &mut Vec<String>) {
    let len = match rng.random_range(0..3) {
        0 => rng.random_range(0..=bytes.len().min(360)),
        1 => bytes.len().saturating_sub(rng.random_range(1..=16)),
        _ => rng.random_range(0..=bytes.len()),
    };
    bytes.truncate(len);
    log.push(format!("truncate to {len}"));
}

/// Appends random bytes, or (rarely) zeros past the gzip margin.
fn append(bytes: &mut Vec<u8>, rng: &mut ChaCha8Rng, log: &mut Vec<String>) {
    if rng.random_bool(0.05) {
        let n = GZIP_MARGIN_BYTES + rng.random_range(0..=(2 << 20));
        bytes.resize(bytes.len() + n, 0);
        log.push(format!("append {n} zeros"));
    } else {
        let n = rng.random_range(1..=4096);
        bytes.extend((0..n).map(|_| rng.random::<u8>()));
        log.push(format!("append {n} random bytes"));
    }
}

/// Corrupts a gzip stream: its 10-byte header, its 8-byte trailer (CRC, size) or its body.
fn corrupt_gzip(gz: &mut Vec<u8>, rng: &mut ChaCha8Rng, log: &mut Vec<String>) {
    let len = gz.len();
    match rng.random_range(0..4) {
        0 if len >= 10 => {
            let at = rng.random_range(2..10);
            gz[at] = rng.random();
            log.push(format!("gzip header byte {at}"));
        }
        1 if len >= 8 => {
            let at = len - rng.random_range(1..=8);
            gz[at] = rng.random();
            log.push(format!("gzip trailer byte {at}"));
        }
        2 => truncate(gz, rng, log),
        _ => {
            for _ in 0..rng.random_range(1..=4) {
                let at = rng.random_range(0..len.max(1));
                if let Some(b) = gz.get_mut(at) {
                    *b ^= 1 << rng.random_range(0..8);
                    log.push(format!("gzip bit flip at {at}"));
                }
            }
        }
    }
}

/// One case's file bytes, whether they are gzip, and what was done to them.
fn make_case(seeds: &[Seed], rng: &mut ChaCha8Rng) -> (Vec<u8>, bool, Vec<String>) {
    let seed = &seeds[rng.random_range(0..seeds.len())];
    let mut log = vec![seed.name.clone()];
    if let Some(gz) = seed.gzip.as_ref().filter(|_| rng.random_bool(0.2)) {
        let mut gz = gz.clone();
        corrupt_gzip(&mut gz, rng, &mut log);
        return (gz, true, log);
    }
    let mut bytes = seed.plain.clone();
    for _ in 0..rng.random_range(1..=3) {
        match rng.random_range(0..10) {
            0..=4 => overwrite_field(&mut bytes, rng, &mut log),
            5..=6 => flip_bytes(&mut bytes, rng, &mut log),
            7 => truncate(&mut bytes, rng, &mut log),
            _ => append(&mut bytes, rng, &mut log),
        }
    }
    if rng.random_bool(0.5) {
        return (bytes, false, log);
    }
    let mut gz = gzip(&bytes);
    if rng.random_bool(0.3) {
        corrupt_gzip(&mut gz, rng, &mut log);
    }
    (gz, true, log)
}

/// Whether the file read, or how the case went wrong.
fn check_case(path: &Path, file_bytes: usize) -> Result<bool, String> {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let on_disk = std::fs::read(path).unwrap();
    let inflated = if on_disk.starts_with(&[0x1f, 0x8b]) { inflated_len(&on_disk) } else { 0 };
    drop(on_disk);
    let before = ALLOCATED.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let read = catch_unwind(AssertUnwindSafe(|| Volume::read(path).map(|_| ())));
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(before);
    let header = catch_unwind(AssertUnwindSafe(|| read_header(path).map(|_| ())));
    let (Ok(read), Ok(header)) = (read, header) else { return Err("panicked".into()) };
    let allowance = ALLOCATION_ALLOWANCE + 16 * file_bytes.max(inflated);
    if peak > allowance {
        return Err(format!("allocated {peak} bytes (allowance {allowance})"));
    }
    let read_ok = read.is_ok();
    for error in [read.err(), header.err()].into_iter().flatten() {
        let text = error.to_string();
        if text.contains('\n') || !text.contains(&name) {
            return Err(format!("message is not one line naming the file: {text}"));
        }
    }
    Ok(read_ok)
}

/// How many bytes a gzip stream inflates to (up to where it fails), counted without keeping them.
fn inflated_len(gz: &[u8]) -> usize {
    let mut decoder = flate2::read::MultiGzDecoder::new(gz);
    let mut sink = std::io::sink();
    std::io::copy(&mut std::io::Read::take(&mut decoder, 64 << 20), &mut sink).unwrap_or(0) as usize
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim();
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

#[test]
fn mutated_nifti_files_never_panic_or_overallocate() {
    let dir = tempfile::tempdir().unwrap();
    let seeds = seeds(dir.path());
    for seed in &seeds {
        let path = dir.path().join("seed.nii");
        std::fs::write(&path, &seed.plain).unwrap();
        check_case(&path, seed.plain.len()).unwrap_or_else(|e| panic!("{}: {e}", seed.name));
    }
    // A real .nii.gz cut short: its last 4 bytes are deflate data, not the size of the stream,
    // which must not size a buffer (the reader once reserved 1032 x the file for it).
    let real = seeds[0].gzip.as_ref().unwrap();
    let path = dir.path().join("cut.nii.gz");
    for cut in [12, 1000, real.len() / 2] {
        std::fs::write(&path, &real[..real.len() - cut]).unwrap();
        assert_eq!(check_case(&path, real.len() - cut), Ok(false), "cut by {cut} bytes");
    }
    // The counter sees allocations (a 32 MiB buffer raises the peak by at least that).
    PEAK.store(ALLOCATED.load(Ordering::Relaxed), Ordering::Relaxed);
    let before = ALLOCATED.load(Ordering::Relaxed);
    drop(std::hint::black_box(vec![1u8; 32 << 20]));
    assert!(PEAK.load(Ordering::Relaxed) - before >= 32 << 20);

    let seed = env_number("U2AD_FUZZ_SEED").unwrap_or(0x2ad);
    let duration = env_number("U2AD_FUZZ_SECONDS").map(Duration::from_secs);
    let cases = if duration.is_some() { u64::MAX } else { env_number("U2AD_FUZZ_CASES").unwrap_or(3000) };
    let only = env_number("U2AD_FUZZ_CASE");
    let started = Instant::now();
    let (mut run, mut failures, mut slowest) = (0u64, Vec::new(), (Duration::ZERO, 0u64));
    let mut outcomes = [0usize; 2];
    for case in only.map_or(0..cases, |c| c..c + 1) {
        if duration.is_some_and(|d| started.elapsed() >= d) || failures.len() >= 20 {
            break;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ case.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let (bytes, gzipped, log) = make_case(&seeds, &mut rng);
        let path: PathBuf = dir.path().join(if gzipped { "case.nii.gz" } else { "case.nii" });
        std::fs::write(&path, &bytes).unwrap();
        let case_started = Instant::now();
        let outcome = check_case(&path, bytes.len());
        let took = case_started.elapsed();
        slowest = slowest.max((took, case));
        let outcome =
            outcome.and_then(|ok| if took > CASE_TIME_LIMIT { Err(format!("took {took:?}")) } else { Ok(ok) });
        match outcome {
            Ok(read) => outcomes[usize::from(read)] += 1,
            Err(problem) => failures.push(format!("seed {seed:#x} case {case} ({}): {problem}", log.join("; "))),
        }
        run += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "nifti fuzz: {run} cases in {seconds:.1} s ({:.0} cases/s), seed {seed:#x}: {} read, {} refused; \
         slowest case {} took {:?}; {} failures",
        run as f64 / seconds,
        outcomes[1],
        outcomes[0],
        slowest.1,
        slowest.0,
        failures.len()
    );
    assert!(failures.is_empty(), "{} failing cases:\n{}", failures.len(), failures.join("\n"));
}
