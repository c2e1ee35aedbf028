//! Whether a GPU device can be reached, asked of its driver directly before any backend
//! starts: Burn's backends panic on a missing driver or device (cudarc when libcuda is
//! absent, CubeCL's wgpu runtime when no adapter matches, LibTorch on a CPU-only build), and
//! starting a CubeCL backend to find out would read CubeCL's settings before
//! `KernelCache::install` could set them.

use super::{BackendKind, DeviceKind};
use crate::error::{Error, Result};

/// `Ok` if `backend` can start on `device`; [`Error::DeviceUnavailable`] saying what is
/// missing otherwise. CPU devices are always there, except Vulkan's, which needs a CPU
/// Vulkan driver (Mesa's lavapipe).
pub(super) fn check(backend: BackendKind, device: DeviceKind) -> Result<()> {
    let reached: std::result::Result<(), String> = match (backend, device) {
        #[cfg(feature = "cuda")]
        (BackendKind::Cuda, DeviceKind::Cuda(k)) => cuda(k),
        #[cfg(feature = "tch")]
        (BackendKind::LibTorch, DeviceKind::Cuda(k)) => libtorch_cuda(k),
        #[cfg(feature = "vulkan")]
        (BackendKind::Vulkan, device) => vulkan(device),
        _ => Ok(()),
    };
    reached.map_err(|reason| Error::DeviceUnavailable {
        device: device.to_string(),
        reason,
    })
}

/// CUDA device `k` through the driver API, loaded the way Burn's CUDA backend loads it.
#[cfg(feature = "cuda")]
fn cuda(k: usize) -> std::result::Result<(), String> {
    use cudarc::driver::{result, sys};

    // SAFETY: only tries to open the driver library; nothing is called through it.
    if !unsafe { sys::is_culib_present() } {
        return Err(
            "no CUDA driver (libcuda) is installed: use --device cpu, or install \
                    the NVIDIA driver"
                .into(),
        );
    }
    result::init().map_err(|e| format!("the CUDA driver did not start: {e}"))?;
    let count = result::device::get_count()
        .map_err(|e| format!("the CUDA driver cannot count its devices: {e}"))?;
    within(k, usize::try_from(count).unwrap_or(0), "the CUDA driver")
}

/// CUDA device `k` as LibTorch sees it: a CPU-only libtorch sees none.
#[cfg(feature = "tch")]
fn libtorch_cuda(k: usize) -> std::result::Result<(), String> {
    match usize::try_from(tch::Cuda::device_count()).unwrap_or(0) {
        0 => Err(
            "LibTorch sees no CUDA device (no GPU or driver, or a CPU-only \
                  libtorch)"
                .into(),
        ),
        count => within(k, count, "LibTorch"),
    }
}

/// `Ok` if device `k` is among the `count` that `who` sees.
#[cfg(any(feature = "cuda", feature = "tch"))]
fn within(k: usize, count: usize, who: &str) -> std::result::Result<(), String> {
    match count {
        0 => Err(format!("{who} sees no CUDA device")),
        1 if k > 0 => Err(format!("{who} sees one CUDA device, cuda:0")),
        n if k >= n => Err(format!(
            "{who} sees {n} CUDA devices, cuda:0 to cuda:{}",
            n - 1
        )),
        _ => Ok(()),
    }
}

/// The Vulkan adapter CubeCL's wgpu runtime would pick for `device`: the K-th discrete GPU
/// for `vulkan:K` and the CPU adapter for `cpu`, else the K-th adapter of no stated type.
#[cfg(feature = "vulkan")]
fn vulkan(device: DeviceKind) -> std::result::Result<(), String> {
    use wgpu::{Backends, DeviceType, Instance, InstanceDescriptor};

    let (wanted, k) = match device {
        DeviceKind::Vulkan(k) => (DeviceType::DiscreteGpu, k),
        _ => (DeviceType::Cpu, 0),
    };
    let instance = Instance::new(InstanceDescriptor {
        backends: Backends::VULKAN,
        ..InstanceDescriptor::new_without_display_handle()
    });
    let adapters: Vec<_> = block_on(instance.enumerate_adapters(Backends::VULKAN))
        .iter()
        .map(|adapter| adapter.get_info())
        .collect();
    let count = |kind| adapters.iter().filter(|a| a.device_type == kind).count();
    if count(wanted) > k || count(DeviceType::Other) > k {
        return Ok(());
    }
    let what = match device {
        DeviceKind::Vulkan(_) => format!("discrete GPU number {k}"),
        _ => "CPU driver (Mesa's lavapipe, in Debian's mesa-vulkan-drivers)".into(),
    };
    let found = if adapters.is_empty() {
        "no adapter at all".to_string()
    } else {
        adapters
            .iter()
            .map(|a| format!("{} ({:?})", a.name, a.device_type))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(format!("Vulkan has no {what}; it found {found}"))
}

/// Runs `future` to completion on this thread (wgpu's adapter list is a future even on
/// native platforms, where it is ready at once).
#[cfg(feature = "vulkan")]
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut context) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}
