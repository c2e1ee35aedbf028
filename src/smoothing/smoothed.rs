//! The smoothed classifier and the paper's PREDICT and CERTIFY procedures (Section 3.2,
//! Appendix C).

use std::marker::PhantomData;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use rand::Rng;

use super::base::BaseClassifier;
use super::noise::NoiseDistribution;
use super::outcome::{AbstainReason, Certification, Estimate, Prediction};
use super::params::{CertifyConfig, PredictConfig, check_samples};
use super::sampling::{CleanInput, sample_counts};
use crate::error::{Error, Result, check_positive};
use crate::stats::binomial::{clopper_pearson_lower_pair, clopper_pearson_upper_pair};
use crate::stats::hung_fithian::{TopTwoTest, top_two};

/// A base classifier smoothed by a noise distribution: `g(x) = argmax_c P(f(x + e) = c)`.
///
/// PREDICT and CERTIFY estimate `g` by Monte Carlo. Their randomness comes from the `rng`
/// passed to each call: it seeds the backend's generator for every batch, so a result is
/// reproducible from the rng's state for a given batch size, also when several threads
/// sample at once. (Code outside this crate that draws from the same backend's generator
/// at the same moment can still interleave; the results stay valid, not reproducible.)
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use rand::{SeedableRng, rngs::StdRng};
/// use randomized_smoothing::{CertifyParams, Gaussian, LinearClassifier, SmoothedClassifier};
///
/// let device = Default::default();
/// let base = LinearClassifier::<NdArray>::new(&[1.0, 0.0], 0.0, &device)?;
/// let smoothed = SmoothedClassifier::new(base, Gaussian::new(0.5)?);
/// let x = Tensor::<NdArray, 1>::from_floats([2.0, 0.0], &device); // 2.0 from the boundary
/// let config = CertifyParams::default().n(10_000).batch_size(2_000).check()?;
/// let c = smoothed.certify(x, &config, &mut StdRng::seed_from_u64(0))?;
/// assert_eq!(c.class(), Some(1));
/// let r = c.radius().unwrap();
/// assert!(1.5 < r && r < 2.0); // a sound radius, below the exact 2.0
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SmoothedClassifier<B, C, N, const D: usize> {
    base: C,
    noise: N,
    backend: PhantomData<fn() -> B>,
}

impl<B, C, N, const D: usize> SmoothedClassifier<B, C, N, D>
where
    B: Backend,
    C: BaseClassifier<B, D>,
    N: NoiseDistribution,
{
    /// Smooths `base` with `noise`.
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use randomized_smoothing::{Gaussian, LinearClassifier, SmoothedClassifier};
    ///
    /// let base = LinearClassifier::<NdArray>::new(&[1.0], 0.0, &Default::default())?;
    /// let smoothed = SmoothedClassifier::new(base, Gaussian::new(0.25)?);
    /// assert_eq!(smoothed.noise().sigma(), 0.25);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn new(base: C, noise: N) -> Self {
        Self {
            base,
            noise,
            backend: PhantomData,
        }
    }

    /// The base classifier.
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use randomized_smoothing::{BaseClassifier, Gaussian, LinearClassifier, SmoothedClassifier};
    ///
    /// let base = LinearClassifier::<NdArray>::new(&[1.0], 0.0, &Default::default())?;
    /// let smoothed = SmoothedClassifier::new(base, Gaussian::new(0.25)?);
    /// assert_eq!(smoothed.base().num_classes(), 2);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn base(&self) -> &C {
        &self.base
    }

    /// The noise distribution.
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use randomized_smoothing::{Gaussian, LinearClassifier, SmoothedClassifier};
    ///
    /// let base = LinearClassifier::<NdArray>::new(&[1.0], 0.0, &Default::default())?;
    /// let smoothed = SmoothedClassifier::new(base, Gaussian::new(0.25)?);
    /// assert_eq!(*smoothed.noise(), Gaussian::new(0.25)?);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn noise(&self) -> &N {
        &self.noise
    }

    /// Checks `x` against the classifier's input shape and for non-finite values, and
    /// makes it a batch of one, `[1, input_shape...]`, read once for all the sampling that
    /// follows (never the noisy samples).
    pub(crate) fn prepare<const K: usize>(&self, x: Tensor<B, K>) -> Result<CleanInput<B, D>> {
        let dims = x.dims();
        let expected = self.base.input_shape();
        if dims.as_slice() != expected || expected.len() + 1 != D {
            return Err(Error::ShapeMismatch {
                expected: expected.to_vec(),
                got: dims.to_vec(),
            });
        }
        let mut shape = [1; D];
        shape[1..].copy_from_slice(expected);
        CleanInput::new(x, shape)
    }

    /// Counts the base classifier's decisions on `num` noisy copies of `x`: the paper's
    /// `SampleUnderNoise`. Entry `c` of the result is the count of class `c`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`], [`Error::NonFiniteInput`], [`Error::ZeroCount`] for zero
    /// `num` or `batch_size`, [`Error::ClassOutOfRange`] or [`Error::BatchLengthMismatch`] if
    /// the base classifier breaks its contract.
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use burn::tensor::Tensor;
    /// use rand::{SeedableRng, rngs::StdRng};
    /// use randomized_smoothing::{Gaussian, LinearClassifier, SmoothedClassifier};
    ///
    /// let device = Default::default();
    /// let base = LinearClassifier::<NdArray>::new(&[1.0], 0.0, &device)?;
    /// let smoothed = SmoothedClassifier::new(base, Gaussian::new(1.0)?);
    /// let x = Tensor::<NdArray, 1>::from_floats([0.0], &device);
    /// let counts = smoothed.sample_counts(x, 1_000, 100, &mut StdRng::seed_from_u64(1))?;
    /// assert_eq!(counts.iter().sum::<u64>(), 1_000);
    /// assert!(counts[0] > 400 && counts[1] > 400); // on the boundary: about half each
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn sample_counts<const K: usize, R: Rng + ?Sized>(
        &self,
        x: Tensor<B, K>,
        num: u64,
        batch_size: usize,
        rng: &mut R,
    ) -> Result<Vec<u64>> {
        check_samples("num", num)?;
        check_positive("batch_size", batch_size as u64)?;
        let x = self.prepare(x)?;
        sample_counts(&self.base, &self.noise, &x, num, batch_size, rng.next_u64())
    }

    /// PREDICT: the smoothed classifier's class at `x`, or an abstention.
    ///
    /// Draws `n` noisy samples, takes the top two counts `n_a`, `n_b` and returns the top
    /// class if the two-sided binomial test of `n_a` successes in `n_a + n_b` trials at
    /// probability 1/2 has p-value at most alpha.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`], [`Error::NonFiniteInput`], and the base-classifier errors of
    /// [`sample_counts`](Self::sample_counts).
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use burn::tensor::Tensor;
    /// use rand::{SeedableRng, rngs::StdRng};
    /// use randomized_smoothing::{Gaussian, LinearClassifier, PredictParams, SmoothedClassifier};
    ///
    /// let device = Default::default();
    /// let base = LinearClassifier::<NdArray>::new(&[1.0], 0.0, &device)?;
    /// let smoothed = SmoothedClassifier::new(base, Gaussian::new(0.5)?);
    /// let config = PredictParams::default().n(1_000).check()?;
    /// let x = Tensor::<NdArray, 1>::from_floats([-1.0], &device);
    /// let p = smoothed.predict(x, &config, &mut StdRng::seed_from_u64(2))?;
    /// assert_eq!(p.class(), Some(0));
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn predict<const K: usize, R: Rng + ?Sized>(
        &self,
        x: Tensor<B, K>,
        config: &PredictConfig,
        rng: &mut R,
    ) -> Result<Prediction> {
        let x = self.prepare(x)?;
        let counts = sample_counts(
            &self.base,
            &self.noise,
            &x,
            config.n(),
            config.batch_size(),
            rng.next_u64(),
        )?;
        let test = TopTwoTest::from_counts(&counts)?;
        Ok(if test.rejects(config.alpha()) {
            Prediction::Class {
                class: test.top,
                test,
            }
        } else {
            Prediction::Abstain {
                reason: AbstainReason::NotSignificant,
                test,
            }
        })
    }

    /// CERTIFY: a class and a radius within which the smoothed classifier is certified to
    /// return it, or an abstention.
    ///
    /// Chooses the candidate from `n0` samples, then counts it among `n` fresh, independent
    /// samples; `p_a_lower` is the one-sided Clopper-Pearson lower bound at level
    /// `1 - alpha`. Certifies if `p_a_lower > 1/2`, with radius from the noise's theorem
    /// (for [`Gaussian`](crate::Gaussian), `sigma * PhiInv(p_a_lower)`).
    ///
    /// # Errors
    /// As [`predict`](Self::predict).
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use burn::tensor::Tensor;
    /// use rand::{SeedableRng, rngs::StdRng};
    /// use randomized_smoothing::{CertifyParams, Gaussian, LinearClassifier, SmoothedClassifier};
    ///
    /// let device = Default::default();
    /// let base = LinearClassifier::<NdArray>::new(&[1.0], 0.0, &device)?;
    /// let smoothed = SmoothedClassifier::new(base, Gaussian::new(0.5)?);
    /// let config = CertifyParams::default().n(1_000).check()?;
    /// // On the decision boundary nothing can be certified.
    /// let x = Tensor::<NdArray, 1>::from_floats([0.0], &device);
    /// let c = smoothed.certify(x, &config, &mut StdRng::seed_from_u64(3))?;
    /// assert_eq!(c.class(), None);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn certify<const K: usize, R: Rng + ?Sized>(
        &self,
        x: Tensor<B, K>,
        config: &CertifyConfig,
        rng: &mut R,
    ) -> Result<Certification> {
        let x = self.prepare(x)?;
        let batch = config.batch_size();
        let selection = sample_counts(
            &self.base,
            &self.noise,
            &x,
            config.n0(),
            batch,
            rng.next_u64(),
        )?;
        let candidate = top_two(&selection).0;
        let estimation = sample_counts(
            &self.base,
            &self.noise,
            &x,
            config.n(),
            batch,
            rng.next_u64(),
        )?;
        let estimate = bound_top_two(
            &estimation,
            candidate,
            config.alpha(),
            config.is_two_sided(),
        );
        Ok(if estimate.p_a_lower > estimate.p_b_upper {
            let radius = self.noise.radius(estimate.p_a_lower, estimate.p_b_upper);
            Certification::Certified {
                class: candidate,
                radius,
                estimate,
            }
        } else {
            Certification::Abstain {
                reason: AbstainReason::LowConfidence,
                estimate,
            }
        })
    }
}

/// The confidence bounds of CERTIFY for `candidate` from the estimation counts: the paper's
/// `(p_a_lower, 1 - p_a_lower)` at level `1 - alpha`, or the two-sided pair at `1 - alpha/2`
/// each (see [`CertifyParams::two_sided`]).
pub(crate) fn bound_top_two(
    counts: &[u64],
    candidate: usize,
    alpha: f64,
    two_sided: bool,
) -> Estimate {
    let n: u64 = counts.iter().sum();
    let count = counts[candidate];
    let alpha_a = if two_sided { alpha / 2.0 } else { alpha };
    let (p_a_lower, complement) = clopper_pearson_lower_pair(count, n, alpha_a);
    let p_b_upper = if two_sided {
        let runner_up = counts
            .iter()
            .enumerate()
            .filter(|&(c, _)| c != candidate)
            .map(|(_, &k)| k)
            .max()
            .unwrap_or(0);
        clopper_pearson_upper_pair(runner_up, n, alpha / 2.0)
            .0
            .min(complement)
    } else {
        // The exact complement, so the radius keeps its precision as p_a_lower nears 1.
        complement
    };
    Estimate {
        candidate,
        count,
        n,
        p_a_lower,
        p_b_upper,
    }
}

/// The index of the largest count (lowest index among ties): the selected candidate.
pub(crate) fn top_class_of(counts: &[u64]) -> usize {
    top_two(counts).0
}
