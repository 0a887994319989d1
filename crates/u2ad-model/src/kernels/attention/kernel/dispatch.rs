//! The instruction set the kernels run with (detected once, or chosen by
//! `U2AD_ATTENTION_ISA`) and the dispatch of each pass to its instantiation for it.

use std::sync::OnceLock;

use super::super::simd::Portable;
#[cfg(target_arch = "x86_64")]
use super::super::simd::{Avx2, Avx512};
use super::backward_pass::{backward_head, BackwardTask};
use super::buffers::Scratch;
use super::forward_pass::{forward_head, ForwardTask};

/// The instruction set the kernels run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Isa {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Portable,
}

/// The best instruction set of this CPU, or the one `U2AD_ATTENTION_ISA` (`avx512`, `avx2`,
/// `portable`) asks for if the CPU has it (read once).
pub(super) fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        let wanted = std::env::var("U2AD_ATTENTION_ISA").unwrap_or_default();
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            let avx512 = avx2 && is_x86_feature_detected!("avx512f");
            if avx512 && !matches!(wanted.as_str(), "avx2" | "portable") {
                return Isa::Avx512;
            }
            if avx2 && wanted != "portable" {
                return Isa::Avx2;
            }
        }
        let _ = wanted;
        Isa::Portable
    })
}

macro_rules! variants {
    ($forward:ident, $backward:ident, $simd:ty $(, $feature:literal)?) => {
        $(#[cfg(target_arch = "x86_64")] #[target_feature(enable = $feature)])?
        unsafe fn $forward<const D: usize>(task: &ForwardTask<'_>, scratch: &mut Scratch) {
            unsafe { forward_head::<$simd, D>(task, scratch) }
        }

        $(#[cfg(target_arch = "x86_64")] #[target_feature(enable = $feature)])?
        unsafe fn $backward<const D: usize>(task: &BackwardTask<'_>, scratch: &mut Scratch) {
            unsafe { backward_head::<$simd, D>(task, scratch) }
        }
    };
}

variants!(forward_avx512, backward_avx512, Avx512, "avx512f,avx2,fma");
variants!(forward_avx2, backward_avx2, Avx2, "avx2,fma");
variants!(forward_portable, backward_portable, Portable);

pub(super) fn forward_dispatch<const D: usize>(isa: Isa, task: &ForwardTask<'_>, scratch: &mut Scratch) {
    // SAFETY: `isa()` detected the features these functions are compiled for; the caller
    // checked the sizes and strides of every tensor the task points into.
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => forward_avx512::<D>(task, scratch),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => forward_avx2::<D>(task, scratch),
            Isa::Portable => forward_portable::<D>(task, scratch),
        }
    }
}

pub(super) fn backward_dispatch<const D: usize>(isa: Isa, task: &BackwardTask<'_>, scratch: &mut Scratch) {
    // SAFETY: as in `forward_dispatch`.
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => backward_avx512::<D>(task, scratch),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => backward_avx2::<D>(task, scratch),
            Isa::Portable => backward_portable::<D>(task, scratch),
        }
    }
}
