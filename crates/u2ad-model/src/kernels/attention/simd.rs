//! The few vector operations the attention kernels need, for AVX-512, AVX2 + FMA and a
//! portable fallback (4-lane arrays that compilers map onto SSE or NEON registers).
//!
//! Every method is `#[inline(always)]` and `unsafe`: the x86 ones must only be called, after
//! run-time detection, from functions compiled with the matching `#[target_feature]`, into
//! which they are inlined. Pointers must be valid for `LANES` floats (no alignment needed).

/// A vector of `LANES` `f32`.
pub(crate) trait Simd: Copy + Send + Sync + 'static {
    const LANES: usize;
    type V: Copy;

    unsafe fn splat(x: f32) -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    /// `a · b + c`.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V;
    /// `x` rounded to the nearest integer (ties either way).
    unsafe fn round(x: Self::V) -> Self::V;
    /// `p · 2^n` for integral `n` in `[-125, 1]` and `p` in `[0.5, 2]` (no overflow, no
    /// subnormal); for any integral `n <= 1` where [`Self::LDEXP_ANY_EXPONENT`].
    unsafe fn ldexp(p: Self::V, n: Self::V) -> Self::V;
    /// Whether [`Self::ldexp`] is exact for every integral `n <= 1` (0 below the subnormals), so
    /// that [`exp2`] needs no clamp.
    const LDEXP_ANY_EXPONENT: bool = false;
    unsafe fn hsum(v: Self::V) -> f32;
    unsafe fn hmax(v: Self::V) -> f32;
}

/// `exp2` clamps its argument here (unless [`Simd::LDEXP_ANY_EXPONENT`]): `2^-125` is still a
/// normal number, small enough to stand for 0 next to the row's largest weight, 1.
pub(crate) const EXP2_MIN: f32 = -125.0;

/// `2^t` lane by lane for finite `t <= 1`: `t = n + f`, `|f| <= 1/2`, a degree-5 polynomial for
/// `2^f` (Chebyshev interpolation of `(2^f - 1) / f`, so that `2^0` is exactly 1; relative error
/// below 3e-7 in `f32`), `2^n` put in the exponent. Where [`Simd::ldexp`] takes any exponent
/// (AVX-512's `scalef`) very negative `t` give 0; elsewhere `t` is first clamped at
/// [`EXP2_MIN`].
#[inline(always)]
pub(crate) unsafe fn exp2<S: Simd>(t: S::V) -> S::V {
    const C: [f32; 6] = [1.0, std::f32::consts::LN_2, 0.240_223_5, 0.055_503_81, 0.009_666_368, 0.001_338_130_2];
    unsafe {
        let x = if S::LDEXP_ANY_EXPONENT { t } else { S::max(t, S::splat(EXP2_MIN)) };
        let n = S::round(x);
        let f = S::sub(x, n);
        let mut p = S::splat(C[5]);
        for &c in C[..5].iter().rev() {
            p = S::fma(p, f, S::splat(c));
        }
        S::ldexp(p, n)
    }
}

/// [`exp2`] of one value (the portable lanes' polynomial, clamp and rounding), for plain loops
/// that the compiler vectorises.
#[inline(always)]
pub(crate) fn exp2_scalar(t: f32) -> f32 {
    // SAFETY: the portable lanes are plain arrays; nothing is read through a pointer.
    unsafe { exp2::<Portable>([t; 4])[0] }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Simd;
    use std::arch::x86_64::*;

    /// 16 lanes; callers are compiled with `avx512f`.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Avx512;

    impl Simd for Avx512 {
        const LANES: usize = 16;
        const LDEXP_ANY_EXPONENT: bool = true;
        type V = __m512;

        #[inline(always)]
        unsafe fn splat(x: f32) -> __m512 {
            unsafe { _mm512_set1_ps(x) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m512 {
            unsafe { _mm512_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m512) {
            unsafe { _mm512_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn add(a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_add_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn sub(a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_sub_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn mul(a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_mul_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
            unsafe { _mm512_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn max(a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_max_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn round(x: __m512) -> __m512 {
            unsafe { _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(x) }
        }
        #[inline(always)]
        unsafe fn ldexp(p: __m512, n: __m512) -> __m512 {
            unsafe { _mm512_scalef_ps(p, n) }
        }
        #[inline(always)]
        unsafe fn hsum(v: __m512) -> f32 {
            unsafe { _mm512_reduce_add_ps(v) }
        }
        #[inline(always)]
        unsafe fn hmax(v: __m512) -> f32 {
            unsafe { _mm512_reduce_max_ps(v) }
        }
    }

    /// 8 lanes; callers are compiled with `avx2,fma`.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Avx2;

    impl Simd for Avx2 {
        const LANES: usize = 8;
        type V = __m256;

        #[inline(always)]
        unsafe fn splat(x: f32) -> __m256 {
            unsafe { _mm256_set1_ps(x) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m256 {
            unsafe { _mm256_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m256) {
            unsafe { _mm256_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn add(a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_add_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn sub(a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_sub_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn mul(a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_mul_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
            unsafe { _mm256_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn max(a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_max_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn round(x: __m256) -> __m256 {
            unsafe { _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(x) }
        }
        #[inline(always)]
        unsafe fn ldexp(p: __m256, n: __m256) -> __m256 {
            unsafe {
                let shift = _mm256_slli_epi32::<23>(_mm256_cvtps_epi32(n));
                _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), shift))
            }
        }
        #[inline(always)]
        unsafe fn hsum(v: __m256) -> f32 {
            unsafe {
                let x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
                let x = _mm_add_ps(x, _mm_movehl_ps(x, x));
                let x = _mm_add_ss(x, _mm_movehdup_ps(x));
                _mm_cvtss_f32(x)
            }
        }
        #[inline(always)]
        unsafe fn hmax(v: __m256) -> f32 {
            unsafe {
                let x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
                let x = _mm_max_ps(x, _mm_movehl_ps(x, x));
                let x = _mm_max_ss(x, _mm_movehdup_ps(x));
                _mm_cvtss_f32(x)
            }
        }
    }
}

/// 4 lanes as a plain array, for any target (the compiler maps it onto SSE or NEON).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Portable;

/// Whether `mul_add` is one instruction on the portable path (on x86 without FMA it is a
/// library call, so the portable path multiplies and adds instead).
const PORTABLE_FMA: bool = cfg!(any(target_arch = "aarch64", target_feature = "fma"));

#[inline(always)]
fn lanes(f: impl Fn(usize) -> f32) -> [f32; 4] {
    [f(0), f(1), f(2), f(3)]
}

impl Simd for Portable {
    const LANES: usize = 4;
    type V = [f32; 4];

    #[inline(always)]
    unsafe fn splat(x: f32) -> [f32; 4] {
        [x; 4]
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> [f32; 4] {
        unsafe { std::ptr::read_unaligned(p as *const [f32; 4]) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: [f32; 4]) {
        unsafe { std::ptr::write_unaligned(p as *mut [f32; 4], v) }
    }
    #[inline(always)]
    unsafe fn add(a: [f32; 4], b: [f32; 4]) -> [f32; 4] {
        lanes(|l| a[l] + b[l])
    }
    #[inline(always)]
    unsafe fn sub(a: [f32; 4], b: [f32; 4]) -> [f32; 4] {
        lanes(|l| a[l] - b[l])
    }
    #[inline(always)]
    unsafe fn mul(a: [f32; 4], b: [f32; 4]) -> [f32; 4] {
        lanes(|l| a[l] * b[l])
    }
    #[inline(always)]
    unsafe fn fma(a: [f32; 4], b: [f32; 4], c: [f32; 4]) -> [f32; 4] {
        if PORTABLE_FMA {
            lanes(|l| a[l].mul_add(b[l], c[l]))
        } else {
            lanes(|l| a[l] * b[l] + c[l])
        }
    }
    #[inline(always)]
    unsafe fn max(a: [f32; 4], b: [f32; 4]) -> [f32; 4] {
        lanes(|l| if a[l] > b[l] { a[l] } else { b[l] })
    }
    #[inline(always)]
    unsafe fn round(x: [f32; 4]) -> [f32; 4] {
        // Adding and subtracting 1.5 · 2^23 rounds (|x| < 2^22) without a conversion.
        const ROUND: f32 = 12_582_912.0;
        lanes(|l| (x[l] + ROUND) - ROUND)
    }
    #[inline(always)]
    unsafe fn ldexp(p: [f32; 4], n: [f32; 4]) -> [f32; 4] {
        // The low mantissa bits of `n + 1.5 · 2^23` hold `n`; shifted into the exponent field
        // and added to `p`'s bits they multiply it by `2^n`.
        const ROUND: f32 = 12_582_912.0;
        lanes(|l| f32::from_bits(p[l].to_bits().wrapping_add((n[l] + ROUND).to_bits() << 23)))
    }
    #[inline(always)]
    unsafe fn hsum(v: [f32; 4]) -> f32 {
        (v[0] + v[2]) + (v[1] + v[3])
    }
    #[inline(always)]
    unsafe fn hmax(v: [f32; 4]) -> f32 {
        let a = if v[0] > v[2] { v[0] } else { v[2] };
        let b = if v[1] > v[3] { v[1] } else { v[3] };
        if a > b { a } else { b }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`exp2`] over `t`, `S::LANES` values at a time.
    #[inline(always)]
    unsafe fn exp2_all<S: Simd>(t: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0f32; t.len().next_multiple_of(S::LANES)];
        let mut padded = t.to_vec();
        padded.resize(out.len(), 0.0);
        for (i, o) in padded.chunks(S::LANES).zip(out.chunks_mut(S::LANES)) {
            unsafe { S::store(o.as_mut_ptr(), exp2::<S>(S::load(i.as_ptr()))) };
        }
        out.truncate(t.len());
        out
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn exp2_avx512(t: &[f32]) -> Vec<f32> {
        unsafe { exp2_all::<Avx512>(t) }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn exp2_avx2(t: &[f32]) -> Vec<f32> {
        unsafe { exp2_all::<Avx2>(t) }
    }

    /// Every instruction set this CPU has: relative error below 3e-7 against `f64` on
    /// `[-120, 1]`, `2^0 = 1` and `2^1 = 2` exactly, and (next to 1) nothing for the scores of
    /// padding keys (`-1e30`) and very negative ones.
    #[test]
    fn exp2_is_accurate_on_every_instruction_set() {
        let t: Vec<f32> = (0..=121_000).map(|i| -120.0 + i as f32 * 1e-3).chain([0.0, 1.0, -150.0, -1e30]).collect();
        let mut runs: Vec<(&str, Vec<f32>)> = vec![("portable", unsafe { exp2_all::<Portable>(&t) })];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                runs.push(("avx2", unsafe { exp2_avx2(&t) }));
            }
            if is_x86_feature_detected!("avx512f") {
                runs.push(("avx512", unsafe { exp2_avx512(&t) }));
            }
        }
        for (isa, got) in runs {
            let n = t.len();
            let worst = t[..n - 4]
                .iter()
                .zip(&got)
                .map(|(&x, &y)| (y as f64 / (x as f64).exp2() - 1.0).abs())
                .fold(0.0f64, f64::max);
            assert!(worst < 3e-7, "{isa}: worst relative error {worst:e}");
            assert_eq!((got[n - 4], got[n - 3]), (1.0, 2.0), "{isa}");
            assert!(got[n - 2] <= 2f32.powi(-125) && got[n - 1] <= 2f32.powi(-125), "{isa}: {} {}", got[n - 2], got[n - 1]);
        }
    }
}
