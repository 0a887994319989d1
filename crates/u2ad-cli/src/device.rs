//! Where the model runs: `--device auto|cpu|cuda|cuda:N`.
//!
//! Before any kernel, the CUDA driver (`libcuda.so.1`) and NVRTC (`libnvrtc.so`, which compiles
//! the kernels) are opened the way burn's CUDA backend will open them, and the driver is asked
//! for its GPUs. Without them `cuda` is one line naming what is missing and how to fix it (burn
//! would panic with a backtrace), and `auto` says it runs on the CPU instead. Hand-written
//! because no crate probes the driver without initialising a whole CUDA context.

use std::ffi::c_int;

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// CUDA when this build has it and a driver and NVRTC load, else the CPU.
    Auto,
    Cpu,
    /// The N-th NVIDIA GPU (`cuda` = `cuda:0`).
    Cuda(usize),
}

impl DeviceChoice {
    /// `--device`'s default in every verb.
    pub const DEFAULT: DeviceChoice = DeviceChoice::Auto;
}

impl Default for DeviceChoice {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The `--device` value that names it ([`parse_device`] reads it back).
impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceChoice::Auto => f.write_str("auto"),
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// Where the run goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Cuda(usize),
}

impl Device {
    /// The choice that names it (a verb run on a device already resolved).
    pub fn choice(self) -> DeviceChoice {
        match self {
            Device::Cpu => DeviceChoice::Cpu,
            Device::Cuda(n) => DeviceChoice::Cuda(n),
        }
    }
}

pub fn parse_device(text: &str) -> Result<DeviceChoice, String> {
    match text {
        "auto" => Ok(DeviceChoice::Auto),
        "cpu" => Ok(DeviceChoice::Cpu),
        "cuda" => Ok(DeviceChoice::Cuda(0)),
        _ => text
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .map(DeviceChoice::Cuda)
            .ok_or_else(|| format!("'{text}' is not auto, cpu, cuda or cuda:N")),
    }
}

/// What the driver reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CudaDriver {
    pub gpus: usize,
    /// e.g. 12040 for CUDA 12.4.
    pub version: i32,
}

const DRIVER_LIBRARY: &str = "libcuda.so.1";
/// The names burn's CUDA backend (cudarc, built for the CUDA 12.0 API) tries for NVRTC on Linux.
const NVRTC_LIBRARIES: [&str; 3] = ["libnvrtc.so", "libnvrtc.so.12", "libnvrtc.so.11"];

/// Calls a driver function `CUresult f(int *out)` and returns `out`.
fn query(driver: &libloading::Library, name: &str) -> Result<c_int, String> {
    // SAFETY: cuDeviceGetCount and cuDriverGetVersion are `CUresult f(int *)` in every CUDA
    // driver API since 2.0, and `value` outlives the call.
    unsafe {
        let f: libloading::Symbol<unsafe extern "C" fn(*mut c_int) -> c_int> =
            driver.get(name.as_bytes()).map_err(|e| format!("{DRIVER_LIBRARY}: {name}: {e}"))?;
        let mut value: c_int = 0;
        match f(&mut value) {
            0 => Ok(value),
            code => Err(format!("{name} failed (CUDA error {code}); check nvidia-smi, or use --device cpu")),
        }
    }
}

/// Opens the driver and NVRTC and counts the GPUs; the error says what is missing and the fix.
pub fn probe_cuda() -> Result<CudaDriver, String> {
    // SAFETY: loading the system's CUDA driver runs its initialisers, as burn's backend would.
    let driver = unsafe { libloading::Library::new(DRIVER_LIBRARY) }.map_err(|_| {
        format!("no NVIDIA driver: {DRIVER_LIBRARY} cannot be loaded (install the NVIDIA driver, or use --device cpu)")
    })?;
    // SAFETY: `CUresult cuInit(unsigned int flags)` with flags 0, as documented.
    let init = unsafe {
        let f: libloading::Symbol<unsafe extern "C" fn(u32) -> c_int> =
            driver.get(b"cuInit").map_err(|e| format!("{DRIVER_LIBRARY}: cuInit: {e}"))?;
        f(0)
    };
    match init {
        0 => {}
        100 => return Err("the NVIDIA driver sees no GPU (CUDA error 100: no device); use --device cpu".into()),
        code => return Err(format!("the NVIDIA driver does not start (cuInit: CUDA error {code}); check nvidia-smi, or use --device cpu")),
    }
    let gpus = query(&driver, "cuDeviceGetCount")?.max(0) as usize;
    let version = query(&driver, "cuDriverGetVersion")?;
    // SAFETY: as for the driver.
    let nvrtc = NVRTC_LIBRARIES.iter().any(|name| unsafe { libloading::Library::new(name) }.is_ok());
    if !nvrtc {
        return Err("NVRTC (libnvrtc.so.12 or libnvrtc.so, CUDA's runtime compiler) cannot be loaded: install the CUDA \
                    12 toolkit's NVRTC (e.g. the cuda-nvrtc-12 package) and put it on LD_LIBRARY_PATH, or use --device cpu"
            .into());
    }
    Ok(CudaDriver { gpus, version })
}

/// The device for `choice`, and a line saying why (for `auto`); an error is one line.
pub fn choose(choice: DeviceChoice, built_with_cuda: bool, probe: impl FnOnce() -> Result<CudaDriver, String>) -> Result<(Device, String), String> {
    let rebuild = "this u2ad was built without CUDA support: rebuild with `cargo build --release --features cuda`";
    match choice {
        DeviceChoice::Cpu => Ok((Device::Cpu, "the CPU (--device cpu)".into())),
        DeviceChoice::Auto if !built_with_cuda => Ok((Device::Cpu, "the CPU (this build has no CUDA support)".into())),
        DeviceChoice::Auto => match probe() {
            Ok(driver) if driver.gpus > 0 => Ok((Device::Cuda(0), format!("CUDA GPU 0 of {} (driver API {})", driver.gpus, version_text(driver.version)))),
            Ok(_) => Ok((Device::Cpu, "the CPU (the NVIDIA driver sees no GPU)".into())),
            Err(why) => Ok((Device::Cpu, format!("the CPU ({why})"))),
        },
        DeviceChoice::Cuda(_) if !built_with_cuda => Err(format!("{rebuild}, or use --device cpu")),
        DeviceChoice::Cuda(n) => {
            let driver = probe()?;
            if n >= driver.gpus {
                return Err(format!("--device cuda:{n}: the NVIDIA driver sees {} GPU(s) (cuda:0 … cuda:{})", driver.gpus, driver.gpus.max(1) - 1));
            }
            Ok((Device::Cuda(n), format!("CUDA GPU {n} of {} (driver API {})", driver.gpus, version_text(driver.version))))
        }
    }
}

fn version_text(version: i32) -> String {
    format!("{}.{}", version / 1000, (version % 1000) / 10)
}

/// Resolves `--device` for this build and machine, saying where `auto` went unless `quiet`.
pub fn resolve(choice: DeviceChoice, quiet: bool) -> anyhow::Result<Device> {
    let (device, why) = choose(choice, cfg!(feature = "cuda"), probe_cuda).map_err(|e| anyhow::anyhow!(e))?;
    if choice == DeviceChoice::Auto && cfg!(feature = "cuda") && !quiet {
        eprintln!("u2ad: running on {why}");
    } else {
        tracing::info!("running on {why}");
    }
    Ok(device)
}

/// Work that runs on any burn backend. [`run_on`] is the one place that turns a [`Device`] into a
/// backend; a training job wraps the backend it is given in `burn::backend::Autodiff`.
pub trait BackendJob {
    type Output;
    fn run<B: burn::tensor::backend::Backend>(self, device: &B::Device) -> Self::Output;
}

/// Runs `job` on `device`: the CPU (burn's `Flex`) or a CUDA GPU (in a build with `--features cuda`).
pub fn run_on<J: BackendJob>(device: Device, job: J) -> J::Output {
    match device {
        Device::Cpu => job.run::<burn::backend::Flex>(&Default::default()),
        #[cfg(feature = "cuda")]
        Device::Cuda(n) => job.run::<burn::backend::Cuda>(&burn::backend::cuda::CudaDevice::new(n)),
        #[cfg(not(feature = "cuda"))]
        Device::Cuda(_) => unreachable!("refused by device::resolve"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE_GPU: Result<CudaDriver, String> = Ok(CudaDriver { gpus: 1, version: 12040 });

    #[test]
    fn device_names_parse() {
        assert_eq!(parse_device("auto"), Ok(DeviceChoice::Auto));
        assert_eq!(parse_device("cuda"), Ok(DeviceChoice::Cuda(0)));
        assert_eq!(parse_device("cuda:3"), Ok(DeviceChoice::Cuda(3)));
        assert!(parse_device("gpu").is_err() && parse_device("cuda:x").is_err());
        assert_eq!(Device::Cuda(2).choice(), DeviceChoice::Cuda(2));
        assert_eq!(Device::Cpu.choice(), DeviceChoice::Cpu);
        for choice in [DeviceChoice::Auto, DeviceChoice::Cpu, DeviceChoice::Cuda(0), DeviceChoice::Cuda(3)] {
            assert_eq!(parse_device(&choice.to_string()), Ok(choice));
        }
        assert_eq!((DeviceChoice::default().to_string(), DeviceChoice::Cuda(2).to_string()), ("auto".to_string(), "cuda:2".to_string()));
    }

    #[test]
    fn auto_takes_cuda_only_when_the_build_the_driver_and_a_gpu_are_there() {
        assert_eq!(choose(DeviceChoice::Auto, true, || ONE_GPU).unwrap(), (Device::Cuda(0), "CUDA GPU 0 of 1 (driver API 12.4)".into()));
        let (device, why) = choose(DeviceChoice::Auto, true, || Err("no NVIDIA driver: libcuda.so.1 cannot be loaded".into())).unwrap();
        assert_eq!((device, why.contains("libcuda.so.1")), (Device::Cpu, true));
        assert_eq!(choose(DeviceChoice::Auto, true, || Ok(CudaDriver { gpus: 0, version: 12040 })).unwrap().0, Device::Cpu);
        let (device, why) = choose(DeviceChoice::Auto, false, || unreachable!("no probe without CUDA support")).unwrap();
        assert_eq!((device, why.as_str()), (Device::Cpu, "the CPU (this build has no CUDA support)"));
    }

    #[test]
    fn cuda_without_a_driver_or_gpu_is_one_line() {
        let error = choose(DeviceChoice::Cuda(0), true, || Err("no NVIDIA driver: libcuda.so.1 cannot be loaded (install …)".into())).unwrap_err();
        assert!(error.contains("libcuda.so.1") && !error.contains('\n'), "{error}");
        let error = choose(DeviceChoice::Cuda(1), true, || ONE_GPU).unwrap_err();
        assert_eq!(error, "--device cuda:1: the NVIDIA driver sees 1 GPU(s) (cuda:0 … cuda:0)");
        assert!(choose(DeviceChoice::Cuda(0), false, || ONE_GPU).unwrap_err().contains("--features cuda"));
    }

    #[test]
    fn the_probe_names_the_missing_driver_on_a_machine_without_one() {
        if std::path::Path::new("/dev/nvidiactl").exists() {
            eprintln!("SKIPPED: this machine has an NVIDIA device");
            return;
        }
        let error = probe_cuda().unwrap_err();
        assert!(error.contains("libcuda.so.1") || error.contains("no GPU"), "{error}");
    }
}
