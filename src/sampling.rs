//! Monte Carlo sampling: the noise distributions and the loop that counts the base
//! classifier's decisions under noise.
//!
//! The loop draws noise on the input's device, classifies in batches and accumulates the
//! class counts there; the only transfer to the host is the final count vector.

use std::sync::Mutex;

use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Int, Tensor};

use crate::classifier::BaseClassifier;
use crate::error::{Error, Result};
use crate::radius::{check_sigma, radius_unchecked};

/// A noise distribution for randomized smoothing, with the certified radius it implies.
///
/// # Contract
/// - [`sample`](Self::sample) draws i.i.d. noise of the given shape on `device` from the
///   backend's random number generator, which the caller seeds (see [`B::seed`](Backend::seed)).
/// - [`radius`](Self::radius) is a certified radius, in the distribution's norm, for any
///   smoothed classifier whose top class has probability at least `p_a_lower` and every
///   other class at most `p_b_upper`, with `p_a_lower > p_b_upper`.
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use randomized_smoothing::{Gaussian, NoiseDistribution};
///
/// let noise = Gaussian::new(0.5)?;
/// let e = noise.sample::<NdArray>([4, 3], &Default::default());
/// assert_eq!(e.dims(), [4, 3]);
/// assert!((noise.radius(0.975, 0.025) - 0.5 * 1.959963984540054).abs() < 1e-12);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub trait NoiseDistribution {
    /// Draws a `[rows, cols]` tensor of i.i.d. noise on `device`.
    fn sample<B: Backend>(&self, shape: [usize; 2], device: &B::Device) -> Tensor<B, 2>;

    /// The certified radius given probability bounds for the top class and the runner-up.
    fn radius(&self, p_a_lower: f64, p_b_upper: f64) -> f64;
}

/// Isotropic Gaussian noise `N(0, sigma^2 I)`, certifying l2 radii by Theorem 1.
///
/// # Example
/// ```
/// use randomized_smoothing::Gaussian;
///
/// let g = Gaussian::new(0.25)?;
/// assert_eq!(g.sigma(), 0.25);
/// assert!(Gaussian::new(0.0).is_err());
/// assert!(Gaussian::new(f64::NAN).is_err());
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gaussian {
    sigma: f64,
}

impl Gaussian {
    /// Gaussian noise with standard deviation `sigma`.
    ///
    /// # Errors
    /// [`Error::InvalidSigma`] unless sigma is finite and positive.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::{Error, Gaussian};
    ///
    /// assert_eq!(Gaussian::new(-0.5), Err(Error::InvalidSigma(-0.5)));
    /// ```
    pub fn new(sigma: f64) -> Result<Self> {
        Ok(Self {
            sigma: check_sigma(sigma)?,
        })
    }

    /// The standard deviation.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::Gaussian;
    ///
    /// assert_eq!(Gaussian::new(1.0)?.sigma(), 1.0);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn sigma(&self) -> f64 {
        self.sigma
    }
}

impl NoiseDistribution for Gaussian {
    fn sample<B: Backend>(&self, shape: [usize; 2], device: &B::Device) -> Tensor<B, 2> {
        Tensor::random(shape, Distribution::Normal(0.0, self.sigma), device)
    }

    /// `sigma / 2 * (PhiInv(p_a_lower) - PhiInv(p_b_upper))`; infinite when `p_a_lower = 1`.
    fn radius(&self, p_a_lower: f64, p_b_upper: f64) -> f64 {
        radius_unchecked(
            self.sigma,
            (p_a_lower, 1.0 - p_a_lower),
            (p_b_upper, 1.0 - p_b_upper),
        )
    }
}

/// Serializes seeding and drawing from the backend's generator, which Burn keeps
/// process-wide: without it, concurrent sampling (even the test harness's threads) would
/// interleave draws and lose reproducibility.
static BACKEND_RNG: Mutex<()> = Mutex::new(());

/// SplitMix64: a bijective mixer, so distinct (seed, batch) pairs give unrelated seeds.
fn split_mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Draws batch `index` of the noise stream `seed`: a function of `(seed, index)` alone,
/// whatever else uses the backend's generator through this crate meanwhile.
fn draw_batch<B: Backend, N: NoiseDistribution>(
    noise: &N,
    shape: [usize; 2],
    seed: u64,
    index: u64,
    device: &B::Device,
) -> Tensor<B, 2> {
    let _guard = BACKEND_RNG
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    B::seed(device, split_mix(seed ^ split_mix(index)));
    noise.sample::<B>(shape, device)
}

/// Counts the base classifier's decisions on `num` noisy copies of `x` (`[1, d]`), in batches
/// of at most `batch_size`, with noise stream `seed`.
pub(crate) fn sample_counts<B, C, N>(
    base: &C,
    noise: &N,
    x: &Tensor<B, 2>,
    num: u64,
    batch_size: usize,
    seed: u64,
) -> Result<Vec<u64>>
where
    B: Backend,
    C: BaseClassifier<B>,
    N: NoiseDistribution,
{
    let device = x.device();
    let d = x.dims()[1];
    let classes = base.num_classes();
    let class_ids = Tensor::<B, 1, Int>::arange(0..classes as i64, &device).reshape([1, classes]);
    let mut counts = Tensor::<B, 1, Int>::zeros([classes], &device);
    let mut remaining = num;
    let mut index = 0;
    while remaining > 0 {
        let rows = remaining.min(batch_size as u64) as usize;
        let inputs =
            x.clone().expand([rows, d]) + draw_batch(noise, [rows, d], seed, index, &device);
        index += 1;
        let decisions = base.classify(inputs);
        let got = decisions.dims()[0];
        if got != rows {
            return Err(Error::BatchLengthMismatch {
                expected: rows,
                got,
            });
        }
        // One-hot by comparison with 0..classes; a decision outside that range matches no
        // column and is caught by the total below.
        let hits = decisions
            .reshape([rows, 1])
            .equal(class_ids.clone().expand([rows, classes]));
        counts = counts + hits.int().sum_dim(0).reshape([classes]);
        remaining -= rows as u64;
    }
    let counts: Vec<u64> = counts.into_data().iter::<i64>().map(|c| c as u64).collect();
    let total: u64 = counts.iter().sum();
    if total != num {
        return Err(Error::ClassOutOfRange {
            num_classes: classes,
            out_of_range: num - total,
            total: num,
        });
    }
    Ok(counts)
}
