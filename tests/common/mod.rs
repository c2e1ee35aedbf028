//! Shared test helpers: per-backend test generation and statistical checks.
#![allow(dead_code, unused_macros, unused_imports)]

use randomized_smoothing::stats::binomial::binomial_tail_at_least;

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
/// feature, CUDA with the `cuda` feature.
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
