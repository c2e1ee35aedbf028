//! Choosing the backend and device at run time, among the backends compiled in.
//!
//! Everything in the crate is generic over Burn's [`Backend`]; a program that lets its user
//! pick the backend (`smoothing --backend libtorch --device cuda:0`) writes its work once as a
//! [`BackendTask`] and hands it to [`Runtime::run`], which calls it with the chosen backend
//! type and device. Each task is compiled once per backend feature enabled: `flex` (the
//! default CPU backend), `ndarray`, `tch` (LibTorch, CPU or CUDA), `cuda` (Burn's CubeCL
//! CUDA backend) and `vulkan` (Burn's CubeCL wgpu backend compiling to SPIR-V, on a GPU or on
//! a CPU Vulkan driver such as Mesa's lavapipe).
//!
//! The CubeCL backends (`cuda`, `vulkan`) compile and autotune their kernels on first use;
//! `KernelCache` (features `cuda`, `vulkan`) keeps both results on disk between runs.
//!
//! # Example
//! ```
//! use burn::tensor::backend::Backend;
//! use randomized_smoothing::runtime::{BackendTask, DeviceKind, Runtime};
//!
//! struct Name;
//! impl BackendTask for Name {
//!     type Output = String;
//!     fn run<B: Backend>(self, device: B::Device) -> String {
//!         B::name(&device)
//!     }
//! }
//!
//! let cpu = Runtime::new(None, DeviceKind::Cpu)?; // Flex, or LibTorch with `tch`
//! assert!(["flex", "libtorch<cpu>"].contains(&cpu.run(Name).as_str()));
//! assert_eq!(Runtime::new(Some("ndarray".parse()?), DeviceKind::Cpu)?.run(Name), "ndarray");
//! assert!(Runtime::new(Some("ndarray".parse()?), "cuda:0".parse()?).is_err());
//! # Ok::<(), randomized_smoothing::Error>(())
//! ```

use std::fmt;
use std::str::FromStr;

use burn::tensor::backend::Backend;

use crate::error::{Error, Result};

#[cfg(any(feature = "cuda", feature = "vulkan"))]
mod kernel_cache;
mod memory;
mod probe;
#[cfg(any(feature = "cuda", feature = "vulkan"))]
pub use kernel_cache::{KernelCache, check_cubecl_settings};
pub use memory::keep_freed_memory;

/// A Burn backend the crate can be built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// Burn's Flex CPU backend (feature `flex`, default): the fastest of Burn's pure-Rust CPU
    /// backends for certification and training, with the crate's convolution and pooling
    /// kernels ([`crate::models::kernels`]) in inference.
    Flex,
    /// Burn's NdArray CPU backend (feature `ndarray`).
    NdArray,
    /// Burn's LibTorch backend (feature `tch`), on the CPU or an NVIDIA GPU.
    LibTorch,
    /// Burn's CUDA backend (feature `cuda`), CubeCL kernels with fusion.
    Cuda,
    /// Burn's wgpu backend with CubeCL's SPIR-V compiler (feature `vulkan`), on a Vulkan
    /// device: a GPU, or the CPU through a software driver (Mesa's lavapipe), which is how
    /// the crate's CubeCL paths are tested without a GPU. Not a fast CPU backend.
    Vulkan,
}

impl BackendKind {
    /// Whether this build has the backend (its cargo feature was enabled).
    pub fn is_compiled(self) -> bool {
        match self {
            Self::Flex => cfg!(feature = "flex"),
            Self::NdArray => cfg!(feature = "ndarray"),
            Self::LibTorch => cfg!(feature = "tch"),
            Self::Cuda => cfg!(feature = "cuda"),
            Self::Vulkan => cfg!(feature = "vulkan"),
        }
    }

    /// Whether the backend runs on `device`'s kind of hardware.
    fn supports(self, device: DeviceKind) -> bool {
        matches!(
            (self, device),
            (Self::Flex | Self::NdArray, DeviceKind::Cpu)
                | (Self::Cuda, DeviceKind::Cuda(_))
                | (Self::LibTorch, DeviceKind::Cpu | DeviceKind::Cuda(_))
                | (Self::Vulkan, DeviceKind::Cpu | DeviceKind::Vulkan(_))
        )
    }

    /// The cargo feature that compiles the backend in.
    fn feature(self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::NdArray => "ndarray",
            Self::LibTorch => "tch",
            Self::Cuda => "cuda",
            Self::Vulkan => "vulkan",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Flex => "flex",
            Self::NdArray => "ndarray",
            Self::LibTorch => "libtorch",
            Self::Cuda => "cuda",
            Self::Vulkan => "vulkan",
        })
    }
}

impl FromStr for BackendKind {
    type Err = Error;

    /// `flex`, `ndarray`, `libtorch` (or `tch`), `cuda`, `vulkan`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "flex" => Ok(Self::Flex),
            "ndarray" => Ok(Self::NdArray),
            "libtorch" | "tch" => Ok(Self::LibTorch),
            "cuda" => Ok(Self::Cuda),
            "vulkan" => Ok(Self::Vulkan),
            _ => Err(Error::InvalidParameter {
                name: "backend",
                reason: format!(
                    "unknown backend {s:?}: expected flex, ndarray, libtorch, cuda or vulkan"
                ),
            }),
        }
    }
}

/// Where a backend computes: the CPU, the K-th NVIDIA GPU, or the K-th GPU that Vulkan lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceKind {
    /// The host's processor.
    #[default]
    Cpu,
    /// An NVIDIA GPU, by index.
    Cuda(usize),
    /// A discrete GPU of any vendor, by its index among those Vulkan lists.
    Vulkan(usize),
}

impl DeviceKind {
    /// The device a program runs on unless told otherwise: the first GPU in a build with the
    /// `cuda` feature, else the CPU.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::runtime::DeviceKind;
    ///
    /// let expected = if cfg!(feature = "cuda") { DeviceKind::Cuda(0) } else { DeviceKind::Cpu };
    /// assert_eq!(DeviceKind::preferred(), expected);
    /// ```
    pub fn preferred() -> Self {
        if cfg!(feature = "cuda") {
            Self::Cuda(0)
        } else {
            Self::Cpu
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(k) => write!(f, "cuda:{k}"),
            Self::Vulkan(k) => write!(f, "vulkan:{k}"),
        }
    }
}

impl FromStr for DeviceKind {
    type Err = Error;

    /// `cpu`, `cuda` (the first NVIDIA GPU), `cuda:K`, `vulkan` (the first Vulkan GPU) or
    /// `vulkan:K`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::InvalidParameter {
            name: "device",
            reason: format!("unknown device {s:?}: expected cpu, cuda, cuda:K, vulkan or vulkan:K"),
        };
        match s {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            "vulkan" => Ok(Self::Vulkan(0)),
            _ => {
                if let Some(index) = s.strip_prefix("cuda:") {
                    index.parse().map(Self::Cuda).map_err(|_| bad())
                } else if let Some(index) = s.strip_prefix("vulkan:") {
                    index.parse().map(Self::Vulkan).map_err(|_| bad())
                } else {
                    Err(bad())
                }
            }
        }
    }
}

/// Work written once for any backend, run on the one a [`Runtime`] names.
///
/// # Contract
/// [`run`](Self::run) is called once, with the backend type and a device of that backend.
pub trait BackendTask {
    /// What the work returns.
    type Output;

    /// Does the work on backend `B`, on `device`.
    fn run<B: Backend>(self, device: B::Device) -> Self::Output;
}

/// A backend compiled into this build and a device it runs on: checked at construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Runtime {
    backend: BackendKind,
    device: DeviceKind,
}

impl Runtime {
    /// The runtime for `device`, with `backend` or, when `None`, the fastest compiled in for
    /// the device as measured in docs/benchmarks.md: on the CPU LibTorch, else Flex, else
    /// NdArray (never Vulkan: a software driver is slow); on an NVIDIA GPU Burn's CUDA
    /// backend, else LibTorch; on a Vulkan GPU, Vulkan.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if the backend is not compiled in (naming its cargo
    /// feature) or does not run on the device; [`Error::DeviceUnavailable`] if the device
    /// cannot be reached (no driver, no such device, a CPU-only libtorch asked for CUDA),
    /// asked of its driver without starting the backend, which would panic instead.
    pub fn new(backend: Option<BackendKind>, device: DeviceKind) -> Result<Self> {
        let backend = match backend {
            Some(b) => b,
            None => {
                use BackendKind::*;
                // LibTorch on a GPU needs a CUDA libtorch: Burn's own CUDA backend first.
                let fastest_first: &[BackendKind] = match device {
                    DeviceKind::Cpu => &[LibTorch, Flex, NdArray],
                    DeviceKind::Cuda(_) => &[Cuda, LibTorch],
                    DeviceKind::Vulkan(_) => &[Vulkan],
                };
                fastest_first
                    .iter()
                    .copied()
                    .find(|b| b.is_compiled())
                    .ok_or_else(|| Error::InvalidParameter {
                        name: "device",
                        reason: format!(
                            "no backend for {device} is compiled in: build with --features {}",
                            match device {
                                DeviceKind::Vulkan(_) => "vulkan",
                                _ => "cuda or tch",
                            }
                        ),
                    })?
            }
        };
        if !backend.is_compiled() {
            return Err(Error::InvalidParameter {
                name: "backend",
                reason: format!(
                    "{backend} is not compiled in: build with --features {}",
                    backend.feature()
                ),
            });
        }
        if !backend.supports(device) {
            return Err(Error::InvalidParameter {
                name: "backend",
                reason: format!("{backend} does not run on {device}"),
            });
        }
        probe::check(backend, device)?;
        Ok(Self { backend, device })
    }

    /// The backend.
    pub fn backend(&self) -> BackendKind {
        self.backend
    }

    /// The device.
    pub fn device(&self) -> DeviceKind {
        self.device
    }

    /// Whether the backend compiles and autotunes kernels at run time, the first time a
    /// process meets each shape (`cuda`, `vulkan`): what `KernelCache` (features `cuda`,
    /// `vulkan`) keeps between runs and `workflow::warm_up` takes out of a job's rows.
    pub fn compiles_kernels(&self) -> bool {
        matches!(self.backend, BackendKind::Cuda | BackendKind::Vulkan)
    }

    /// Runs `task` on this runtime's backend and device.
    pub fn run<T: BackendTask>(&self, task: T) -> T::Output {
        match (self.backend, self.device) {
            #[cfg(feature = "flex")]
            (BackendKind::Flex, _) => task.run::<burn::backend::Flex>(Default::default()),
            #[cfg(feature = "ndarray")]
            (BackendKind::NdArray, _) => task.run::<burn::backend::NdArray>(Default::default()),
            #[cfg(feature = "tch")]
            (BackendKind::LibTorch, device) => {
                use burn::backend::libtorch::LibTorchDevice;
                task.run::<burn::backend::LibTorch>(match device {
                    DeviceKind::Cpu => LibTorchDevice::Cpu,
                    DeviceKind::Cuda(k) => LibTorchDevice::Cuda(k),
                    DeviceKind::Vulkan(_) => unreachable!("Runtime::new checked {self}"),
                })
            }
            #[cfg(feature = "cuda")]
            (BackendKind::Cuda, DeviceKind::Cuda(k)) => {
                task.run::<burn::backend::Cuda>(burn::backend::cuda::CudaDevice { index: k })
            }
            #[cfg(feature = "vulkan")]
            (BackendKind::Vulkan, device) => {
                use burn::backend::wgpu::WgpuDevice;
                task.run::<burn::backend::Vulkan>(match device {
                    DeviceKind::Vulkan(k) => WgpuDevice::DiscreteGpu(k),
                    _ => WgpuDevice::Cpu,
                })
            }
            // `new` admits only compiled backends on devices they support.
            _ => unreachable!("Runtime::new checked {self}"),
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.backend, self.device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks() {
        assert_eq!("cuda:3".parse::<DeviceKind>(), Ok(DeviceKind::Cuda(3)));
        assert_eq!("cuda".parse::<DeviceKind>(), Ok(DeviceKind::Cuda(0)));
        assert!("gpu".parse::<DeviceKind>().is_err());
        assert!("cuda:x".parse::<DeviceKind>().is_err());
        assert_eq!("vulkan:1".parse::<DeviceKind>(), Ok(DeviceKind::Vulkan(1)));
        assert_eq!(DeviceKind::Vulkan(2).to_string(), "vulkan:2");
        assert!("vulkan:".parse::<DeviceKind>().is_err());
        // Vulkan runs on a CPU driver and on Vulkan GPUs, never on a CUDA device; LibTorch
        // never on a Vulkan one.
        assert!(Runtime::new(Some(BackendKind::Vulkan), DeviceKind::Cuda(0)).is_err());
        assert!(Runtime::new(Some(BackendKind::LibTorch), DeviceKind::Vulkan(0)).is_err());
        assert_eq!(
            Runtime::new(Some(BackendKind::Vulkan), DeviceKind::Cpu).is_ok(),
            cfg!(feature = "vulkan")
        );
        assert_eq!("tch".parse::<BackendKind>(), Ok(BackendKind::LibTorch));
        assert!("torch".parse::<BackendKind>().is_err());
        // NdArray never runs on a GPU, compiled in or not.
        assert!(Runtime::new(Some(BackendKind::NdArray), DeviceKind::Cuda(0)).is_err());
        let cpu = Runtime::new(None, DeviceKind::Cpu).unwrap();
        let fastest = if cfg!(feature = "tch") {
            "libtorch"
        } else {
            "flex"
        };
        assert_eq!(cpu.to_string(), format!("{fastest} on cpu"));
        assert_eq!(
            Runtime::new(Some(BackendKind::LibTorch), DeviceKind::Cpu).is_ok(),
            cfg!(feature = "tch")
        );
    }
}
