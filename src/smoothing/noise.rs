//! Noise distributions for randomized smoothing, each with the certified radius it implies.

use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use rand::{Rng, RngExt};
use rand_distr::Distribution as _;

use crate::certificate::l1::{laplace_radius_unchecked, uniform_radius_unchecked};
use crate::certificate::radius::radius_unchecked;
use crate::error::{Result, check_sigma};
use crate::stats::ziggurat::add_scaled_normals;

/// A noise distribution for randomized smoothing, with the certified radius it implies.
///
/// # Contract
/// - [`sample`](Self::sample) draws i.i.d. noise of the given shape on `device` from the
///   backend's random number generator, which the caller seeds (see [`B::seed`](Backend::seed)).
///   GPU backends use it.
/// - [`add_to`](Self::add_to) adds i.i.d. noise to values in CPU memory, drawn from `rng`.
///   CPU backends use it: there the device's memory is the host's, and Burn's own CPU
///   generator is single-threaded, so the crate fills batches on all cores instead.
/// - [`radius`](Self::radius) is a certified radius, in the distribution's norm, for any
///   smoothed classifier whose top class has probability at least `p_a_lower` and every
///   other class at most `p_b_upper`, with `p_a_lower > p_b_upper`.
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use rand::SeedableRng;
/// use randomized_smoothing::{Gaussian, NoiseDistribution};
///
/// let noise = Gaussian::new(0.5)?;
/// let e = noise.sample::<NdArray, 2>([4, 3], &Default::default());
/// assert_eq!(e.dims(), [4, 3]);
/// let mut values = [1.0f32; 3];
/// noise.add_to(&mut values, &mut rand::rngs::Xoshiro256PlusPlus::seed_from_u64(0));
/// assert!(values.iter().all(|v| *v != 1.0));
/// assert!((noise.radius(0.975, 0.025) - 0.5 * 1.959963984540054).abs() < 1e-12);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub trait NoiseDistribution: Sync {
    /// Draws a tensor of i.i.d. noise of the given shape on `device`.
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use randomized_smoothing::{Gaussian, NoiseDistribution};
    ///
    /// let e = Gaussian::new(1.0)?.sample::<NdArray, 4>([2, 3, 8, 8], &Default::default());
    /// assert_eq!(e.dims(), [2, 3, 8, 8]);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    fn sample<B: Backend, const D: usize>(
        &self,
        shape: [usize; D],
        device: &B::Device,
    ) -> Tensor<B, D>;

    /// Adds i.i.d. noise drawn from `rng` to each of `values`.
    ///
    /// # Example
    /// ```
    /// use rand::{SeedableRng, rngs::Xoshiro256PlusPlus};
    /// use randomized_smoothing::{Gaussian, NoiseDistribution};
    ///
    /// let mut v = vec![0.0f32; 10_000];
    /// Gaussian::new(2.0)?.add_to(&mut v, &mut Xoshiro256PlusPlus::seed_from_u64(1));
    /// let var = v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32;
    /// assert!((var - 4.0).abs() < 0.3);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    fn add_to<R: Rng>(&self, values: &mut [f32], rng: &mut R);

    /// The certified radius given probability bounds for the top class and the runner-up.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::{Gaussian, NoiseDistribution};
    ///
    /// // Theorem 1: sigma / 2 * (PhiInv(0.9) - PhiInv(0.05)).
    /// let r = Gaussian::new(1.0)?.radius(0.9, 0.05);
    /// assert!((r - 0.5 * (1.2815515655446004 + 1.6448536269514722)).abs() < 1e-12);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    fn radius(&self, p_a_lower: f64, p_b_upper: f64) -> f64;

    /// The norm in which [`radius`](Self::radius) is measured.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::{Gaussian, Laplace, NoiseDistribution, Norm};
    ///
    /// assert_eq!(Gaussian::new(0.5)?.norm(), Norm::L2);
    /// assert_eq!(Laplace::new(0.5)?.norm(), Norm::L1);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    fn norm(&self) -> Norm;
}

/// The norm of a certified radius.
///
/// # Example
/// ```
/// use randomized_smoothing::Norm;
///
/// // An l2 radius of 1 in 3x32x32 pixels certifies an l-infinity ball of radius 1/sqrt(3072).
/// assert!((Norm::L2.linf_radius(1.0, 3 * 32 * 32) - 0.018042).abs() < 1e-6);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Norm {
    /// Sum of absolute values.
    L1,
    /// Euclidean norm.
    L2,
}

impl Norm {
    /// The l-infinity radius that a radius `radius` in this norm certifies for inputs of
    /// `dim` values: the largest l-infinity ball inside the certified ball, since
    /// `||d||_2 <= sqrt(dim) ||d||_inf` and `||d||_1 <= dim ||d||_inf`.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::Norm;
    ///
    /// assert_eq!(Norm::L1.linf_radius(2.0, 4), 0.5);
    /// assert_eq!(Norm::L2.linf_radius(2.0, 4), 1.0);
    /// ```
    pub fn linf_radius(self, radius: f64, dim: usize) -> f64 {
        match self {
            Norm::L1 => radius / dim as f64,
            Norm::L2 => radius / (dim as f64).sqrt(),
        }
    }
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
    /// [`Error::InvalidSigma`](crate::Error::InvalidSigma) unless sigma is finite and positive.
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
    pub fn sigma(&self) -> f64 {
        self.sigma
    }
}

impl NoiseDistribution for Gaussian {
    fn sample<B: Backend, const D: usize>(
        &self,
        shape: [usize; D],
        device: &B::Device,
    ) -> Tensor<B, D> {
        Tensor::random(shape, Distribution::Normal(0.0, self.sigma), device)
    }

    /// Standard normals from the crate's vectorized ziggurat, scaled by sigma.
    fn add_to<R: Rng>(&self, values: &mut [f32], rng: &mut R) {
        add_scaled_normals(values, self.sigma as f32, rng);
    }

    /// `sigma / 2 * (PhiInv(p_a_lower) - PhiInv(p_b_upper))`; infinite when `p_a_lower = 1`.
    fn radius(&self, p_a_lower: f64, p_b_upper: f64) -> f64 {
        radius_unchecked(
            self.sigma,
            (p_a_lower, 1.0 - p_a_lower),
            (p_b_upper, 1.0 - p_b_upper),
        )
    }

    fn norm(&self) -> Norm {
        Norm::L2
    }
}

/// Laplace noise with scale `lambda` (density proportional to `exp(-|e| / lambda)` per
/// coordinate, standard deviation `sqrt(2) lambda`), certifying l1 radii
/// (Teng, Lee & Yuan, ICLR 2020): see [`laplace_radius`](crate::certificate::l1::laplace_radius).
///
/// # Example
/// ```
/// use randomized_smoothing::{Laplace, NoiseDistribution};
///
/// let noise = Laplace::new(0.5)?;
/// // With p_b = 1 - p_a: lambda * ln(1 / (2 (1 - p_a))).
/// assert!((noise.radius(0.99, 0.01) - 0.5 * 50f64.ln()).abs() < 1e-12);
/// assert!(Laplace::new(0.0).is_err());
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Laplace {
    scale: f64,
}

impl Laplace {
    /// Laplace noise of scale `lambda`.
    ///
    /// # Errors
    /// [`Error::InvalidSigma`](crate::Error::InvalidSigma) unless `lambda` is finite and positive.
    ///
    /// # Example
    /// ```
    /// assert_eq!(randomized_smoothing::Laplace::new(0.25)?.scale(), 0.25);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn new(lambda: f64) -> Result<Self> {
        Ok(Self {
            scale: check_sigma(lambda)?,
        })
    }

    /// The scale `lambda`.
    pub fn scale(&self) -> f64 {
        self.scale
    }
}

impl NoiseDistribution for Laplace {
    fn sample<B: Backend, const D: usize>(
        &self,
        shape: [usize; D],
        device: &B::Device,
    ) -> Tensor<B, D> {
        // Inversion: u uniform on (-1/2, 1/2) gives -lambda sign(u) ln(1 - 2|u|).
        let u = Tensor::<B, D>::random(shape, Distribution::Uniform(-0.5, 0.5), device);
        let magnitude = (u.clone().abs() * -2.0 + 1.0).log() * -self.scale;
        u.sign() * magnitude
    }

    fn add_to<R: Rng>(&self, values: &mut [f32], rng: &mut R) {
        for v in values {
            // The difference of two exponentials is Laplace.
            let e1: f64 = rand_distr::Exp1.sample(rng);
            let e2: f64 = rand_distr::Exp1.sample(rng);
            *v += (self.scale * (e1 - e2)) as f32;
        }
    }

    fn radius(&self, p_a_lower: f64, p_b_upper: f64) -> f64 {
        laplace_radius_unchecked(self.scale, p_a_lower, p_b_upper)
    }

    fn norm(&self) -> Norm {
        Norm::L1
    }
}

/// Uniform noise on `[-lambda, lambda]` per coordinate, certifying l1 radii
/// (Lee et al., NeurIPS 2019; Yang et al., ICML 2020): see
/// [`uniform_radius`](crate::certificate::l1::uniform_radius).
///
/// # Example
/// ```
/// use randomized_smoothing::{NoiseDistribution, Uniform};
///
/// let noise = Uniform::new(0.5)?;
/// assert!((noise.radius(0.9, 0.1) - 0.5 * 0.8).abs() < 1e-12);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Uniform {
    half_width: f64,
}

impl Uniform {
    /// Uniform noise on `[-lambda, lambda]`.
    ///
    /// # Errors
    /// [`Error::InvalidSigma`](crate::Error::InvalidSigma) unless `lambda` is finite and positive.
    ///
    /// # Example
    /// ```
    /// assert!(randomized_smoothing::Uniform::new(-1.0).is_err());
    /// ```
    pub fn new(lambda: f64) -> Result<Self> {
        Ok(Self {
            half_width: check_sigma(lambda)?,
        })
    }

    /// The half-width `lambda`.
    pub fn half_width(&self) -> f64 {
        self.half_width
    }
}

impl NoiseDistribution for Uniform {
    fn sample<B: Backend, const D: usize>(
        &self,
        shape: [usize; D],
        device: &B::Device,
    ) -> Tensor<B, D> {
        let l = self.half_width;
        Tensor::random(shape, Distribution::Uniform(-l, l), device)
    }

    fn add_to<R: Rng>(&self, values: &mut [f32], rng: &mut R) {
        let l = self.half_width;
        for v in values {
            *v += rng.random_range(-l..l) as f32;
        }
    }

    fn radius(&self, p_a_lower: f64, p_b_upper: f64) -> f64 {
        uniform_radius_unchecked(self.half_width, p_a_lower, p_b_upper)
    }

    fn norm(&self) -> Norm {
        Norm::L1
    }
}
