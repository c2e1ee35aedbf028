//! Shared test helpers: per-backend test generation and statistical checks.
#![allow(dead_code, unused_macros, unused_imports)]

use std::path::{Path, PathBuf};

use randomized_smoothing::stats::binomial::binomial_tail_at_least;

/// A fresh, empty folder `rs-{name}-{process id}` under the system's temporary folder.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `args` with each argument equal to the left side of a pair in `swaps` replaced by its
/// right side: a command line that differs from another in one file or setting.
pub fn swapped<'a>(args: &[&'a str], swaps: &[(&str, &'a str)]) -> Vec<&'a str> {
    args.iter()
        .map(|&a| {
            swaps
                .iter()
                .find(|(from, _)| *from == a)
                .map_or(a, |(_, to)| *to)
        })
        .collect()
}

/// A log's lines without their last column (the time, which differs between runs); no
/// lines for a log not written yet.
pub fn rows_without_time(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| l.rsplit_once('\t').unwrap().0.to_string())
        .collect()
}

/// Generates `#[test]` wrappers for generic test functions `fn name<B: Backend>(device: &B::Device)`,
/// once per enabled backend: NdArray and Flex (the default CPU backend), whose noise the crate
/// draws on the host; `Autodiff<NdArray>`, which draws its noise through the backend's own
/// generator as GPU backends do; LibTorch's CPU device with the `tch` feature; CUDA with the
/// `cuda` feature.
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        $crate::common::inference_backend_tests!($($name),*);
        mod autodiff_ndarray_backend {
            $(
                #[test]
                fn $name() {
                    super::$name::<burn::backend::Autodiff<burn::backend::NdArray>>(&Default::default());
                }
            )*
        }
    };
}
pub(crate) use backend_tests;

/// As [`backend_tests`], for inference-only checks: backends without autodiff, where batch
/// norm uses its running statistics. NdArray, Flex, LibTorch's CPU device with the `tch`
/// feature, CUDA with the `cuda` feature, the default Vulkan device with `vulkan`.
macro_rules! inference_backend_tests {
    ($($name:ident),* $(,)?) => {
        mod ndarray_backend {
            $(
                #[test]
                fn $name() {
                    super::$name::<burn::backend::NdArray>(&Default::default());
                }
            )*
        }
        mod flex_backend {
            $(
                #[test]
                fn $name() {
                    super::$name::<burn::backend::Flex>(&Default::default());
                }
            )*
        }
        #[cfg(feature = "tch")]
        mod libtorch_backend {
            $(
                #[test]
                fn $name() {
                    super::$name::<burn::backend::LibTorch>(&Default::default());
                }
            )*
        }
        #[cfg(feature = "cuda")]
        mod cuda_backend {
            $(
                #[test]
                fn $name() {
                    super::$name::<burn::backend::Cuda>(&Default::default());
                }
            )*
        }
        // The default Vulkan device: in CI Mesa's lavapipe, the CubeCL path on the CPU.
        #[cfg(feature = "vulkan")]
        mod vulkan_backend {
            $(
                #[test]
                fn $name() {
                    super::$name::<burn::backend::Vulkan>(&Default::default());
                }
            )*
        }
    };
}
pub(crate) use inference_backend_tests;

/// One-sided binomial test that `failures` out of `trials` is consistent with a failure
/// rate of at most `rate`: true unless P(Binomial(trials, rate) >= failures) < 1e-4.
pub fn consistent_with_rate(failures: u64, trials: u64, rate: f64) -> bool {
    binomial_tail_at_least(failures, trials, rate).unwrap() >= 1e-4
}

/// Exact sampler for Binomial(n, p) by inversion of its CDF, tabulated once.
pub struct BinomialSampler {
    cdf: Vec<f64>,
}

impl BinomialSampler {
    pub fn new(n: u64, p: f64) -> Self {
        let cdf = (0..=n)
            .map(|k| randomized_smoothing::stats::binomial::binomial_cdf(k, n, p).unwrap())
            .take_while(|&c| c < 1.0)
            .collect();
        Self { cdf }
    }

    pub fn sample(&self, rng: &mut impl rand::Rng) -> u64 {
        use rand::RngExt;
        let u: f64 = rng.random();
        self.cdf.partition_point(|&c| c < u) as u64
    }
}
