//! The smoothed classifier and the paper's PREDICT and CERTIFY procedures (Section 3.2,
//! Appendix C).

use burn::tensor::Tensor;

use super::base::BaseClassifier;
use super::noise::{Gaussian, NoiseDistribution};
use super::outcome::{AbstainReason, Certification, Estimate, Prediction};
use super::params::{CertifyValidConfig, PredictValidConfig, check_samples};
use super::sampling::{CleanInput, Draw, sample_counts, sample_counts_packed};
use crate::error::{Error, Result, check_positive};
use crate::stats::binomial::{clopper_pearson_lower_pair, clopper_pearson_upper_pair};
use crate::stats::hung_fithian::{TopTwoTest, top_two};
use crate::stats::seed::Streams;

/// A base classifier smoothed by a noise distribution: `g(x) = argmax_c P(f(x + e) = c)`.
///
/// Generic over the base classifier and the noise only: the backend and the input's rank
/// come from the classifier ([`BaseClassifier`]), and the noise is Gaussian unless named.
///
/// PREDICT and CERTIFY estimate `g` by Monte Carlo. Their randomness is a function of the
/// `seed` passed to each call: it seeds the noise of every batch (on the host for CPU
/// devices, the backend's generator otherwise), so a result is reproducible from the seed
/// for a given batch size, also when several threads sample at once. (Code outside this
/// crate that draws from the same backend's generator at the same moment can still
/// interleave; the results stay valid, not reproducible.) Calls that should be independent,
/// such as one per example of a data set, need distinct seeds.
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use randomized_smoothing::{CertifyConfig, Gaussian, LinearClassifier, SmoothedClassifier};
///
/// let device = Default::default();
/// let base = LinearClassifier::<NdArray>::new(&[1.0, 0.0], 0.0, &device)?;
/// let smoothed = SmoothedClassifier::new(base, Gaussian::new(0.5)?);
/// let x = Tensor::<NdArray, 1>::from_floats([2.0, 0.0], &device); // 2.0 from the boundary
/// let config = CertifyConfig::default().n(10_000).batch_size(2_000).check()?;
/// let c = smoothed.certify(x, &config, 0)?;
/// assert_eq!(c.class(), Some(1));
/// let r = c.radius().unwrap();
/// assert!(1.5 < r && r < 2.0); // a sound radius, below the exact 2.0
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SmoothedClassifier<C, N = Gaussian> {
    base: C,
    noise: N,
}

impl<C, N> SmoothedClassifier<C, N> {
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
        Self { base, noise }
    }

    /// The base classifier.
    pub fn base(&self) -> &C {
        &self.base
    }

    /// The noise distribution.
    pub fn noise(&self) -> &N {
        &self.noise
    }
}

impl<C, N: NoiseDistribution> SmoothedClassifier<C, N> {
    /// Checks `x` against the classifier's input shape and for non-finite values, and
    /// makes it a batch of one, `[1, input_shape...]`, read once for all the sampling that
    /// follows (never the noisy samples).
    pub(crate) fn prepare<const D: usize, const K: usize>(
        &self,
        x: Tensor<C::Backend, K>,
    ) -> Result<CleanInput<C::Backend, D>>
    where
        C: BaseClassifier<D>,
    {
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
    /// use randomized_smoothing::{Gaussian, LinearClassifier, SmoothedClassifier};
    ///
    /// let device = Default::default();
    /// let base = LinearClassifier::<NdArray>::new(&[1.0], 0.0, &device)?;
    /// let smoothed = SmoothedClassifier::new(base, Gaussian::new(1.0)?);
    /// let x = Tensor::<NdArray, 1>::from_floats([0.0], &device);
    /// let counts = smoothed.sample_counts(x, 1_000, 100, 1)?;
    /// assert_eq!(counts.iter().sum::<u64>(), 1_000);
    /// assert!(counts[0] > 400 && counts[1] > 400); // on the boundary: about half each
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn sample_counts<const D: usize, const K: usize>(
        &self,
        x: Tensor<C::Backend, K>,
        num: u64,
        batch_size: usize,
        seed: u64,
    ) -> Result<Vec<u64>>
    where
        C: BaseClassifier<D>,
    {
        check_samples("num", num)?;
        check_positive("batch_size", batch_size as u64)?;
        let x = self.prepare(x)?;
        let mut streams = Streams::new(seed);
        sample_counts(&self.base, &self.noise, &x, num, batch_size, streams.next())
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
    /// use randomized_smoothing::{Gaussian, LinearClassifier, PredictConfig, SmoothedClassifier};
    ///
    /// let device = Default::default();
    /// let base = LinearClassifier::<NdArray>::new(&[1.0], 0.0, &device)?;
    /// let smoothed = SmoothedClassifier::new(base, Gaussian::new(0.5)?);
    /// let config = PredictConfig::default().n(1_000).check()?;
    /// let x = Tensor::<NdArray, 1>::from_floats([-1.0], &device);
    /// let p = smoothed.predict(x, &config, 2)?;
    /// assert_eq!(p.class(), Some(0));
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn predict<const D: usize, const K: usize>(
        &self,
        x: Tensor<C::Backend, K>,
        config: &PredictValidConfig,
        seed: u64,
    ) -> Result<Prediction>
    where
        C: BaseClassifier<D>,
    {
        let x = self.prepare(x)?;
        let mut streams = Streams::new(seed);
        let counts = sample_counts(
            &self.base,
            &self.noise,
            &x,
            config.n(),
            config.batch_size(),
            streams.next(),
        )?;
        prediction(&counts, config)
    }

    /// PREDICT for several inputs, `(x, seed)` each, their samples packed into full forward
    /// passes of `config`'s batch size: the tail of one input's samples and the head of the
    /// next share a pass. Each answer is [`predict`](Self::predict)'s for the same input and
    /// seed on the CPU backends (each noisy copy there is a function of its seed and number,
    /// and each decision of its copy alone); a GPU seeds its generator per batch segment, so
    /// there the answers depend on the packing as they do on the batch size.
    ///
    /// # Errors
    /// As [`predict`](Self::predict), for the first input that fails.
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use burn::tensor::Tensor;
    /// use randomized_smoothing::{Gaussian, LinearClassifier, PredictConfig, SmoothedClassifier};
    ///
    /// let device = Default::default();
    /// let base = LinearClassifier::<NdArray>::new(&[1.0], 0.0, &device)?;
    /// let smoothed = SmoothedClassifier::new(base, Gaussian::new(0.5)?);
    /// let config = PredictConfig::default().n(300).batch_size(400).check()?;
    /// let xs: Vec<_> = [-1.0, 0.02, 1.0]
    ///     .iter()
    ///     .zip([5, 6, 7])
    ///     .map(|(&a, seed)| (Tensor::<NdArray, 1>::from_floats([a], &device), seed))
    ///     .collect();
    /// let packed = smoothed.predict_many(xs.clone(), &config)?;
    /// for ((x, seed), p) in xs.into_iter().zip(packed) {
    ///     assert_eq!(smoothed.predict(x, &config, seed)?, p);
    /// }
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn predict_many<const D: usize, const K: usize>(
        &self,
        inputs: Vec<(Tensor<C::Backend, K>, u64)>,
        config: &PredictValidConfig,
    ) -> Result<Vec<Prediction>>
    where
        C: BaseClassifier<D>,
    {
        let prepared = self.prepare_all(inputs)?;
        let draws: Vec<_> = prepared
            .iter()
            .map(|(x, seed)| Draw {
                input: x,
                num: config.n(),
                seed: Streams::new(*seed).next(),
            })
            .collect();
        sample_counts_packed(&self.base, &self.noise, &draws, config.batch_size())?
            .iter()
            .map(|counts| prediction(counts, config))
            .collect()
    }

    /// [`prepare`](Self::prepare) for each input, keeping its seed.
    pub(crate) fn prepare_all<const D: usize, const K: usize>(
        &self,
        inputs: Vec<(Tensor<C::Backend, K>, u64)>,
    ) -> Result<Vec<(CleanInput<C::Backend, D>, u64)>>
    where
        C: BaseClassifier<D>,
    {
        inputs
            .into_iter()
            .map(|(x, seed)| Ok((self.prepare(x)?, seed)))
            .collect()
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
    /// use randomized_smoothing::{CertifyConfig, Gaussian, LinearClassifier, SmoothedClassifier};
    ///
    /// let device = Default::default();
    /// let base = LinearClassifier::<NdArray>::new(&[1.0], 0.0, &device)?;
    /// let smoothed = SmoothedClassifier::new(base, Gaussian::new(0.5)?);
    /// let config = CertifyConfig::default().n(1_000).check()?;
    /// // On the decision boundary nothing can be certified.
    /// let x = Tensor::<NdArray, 1>::from_floats([0.0], &device);
    /// let c = smoothed.certify(x, &config, 3)?;
    /// assert_eq!(c.class(), None);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn certify<const D: usize, const K: usize>(
        &self,
        x: Tensor<C::Backend, K>,
        config: &CertifyValidConfig,
        seed: u64,
    ) -> Result<Certification>
    where
        C: BaseClassifier<D>,
    {
        let x = self.prepare(x)?;
        // Selection and estimation draw from two streams of the seed: independent samples.
        let mut streams = Streams::new(seed);
        let batch = config.batch_size();
        let selection = sample_counts(
            &self.base,
            &self.noise,
            &x,
            config.n0(),
            batch,
            streams.next(),
        )?;
        let candidate = top_two(&selection).0;
        let estimation = sample_counts(
            &self.base,
            &self.noise,
            &x,
            config.n(),
            batch,
            streams.next(),
        )?;
        Ok(self.certification(&estimation, candidate, config))
    }

    /// CERTIFY for several inputs, `(x, seed)` each, their samples packed into full forward
    /// passes: first the selection samples of all of them (the `n0` samples of several
    /// inputs fill one pass), then their estimation samples, the tail of one input's and the
    /// head of the next sharing a pass. Selection and estimation stay separate streams of
    /// each input's seed, so each answer is [`certify`](Self::certify)'s for the same input
    /// and seed on the CPU backends; on a GPU, as for the batch size, the answers depend on
    /// the packing (see [`predict_many`](Self::predict_many)).
    ///
    /// # Errors
    /// As [`certify`](Self::certify), for the first input that fails.
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use burn::tensor::Tensor;
    /// use randomized_smoothing::{CertifyConfig, Gaussian, LinearClassifier, SmoothedClassifier};
    ///
    /// let device = Default::default();
    /// let base = LinearClassifier::<NdArray>::new(&[1.0], 0.0, &device)?;
    /// let smoothed = SmoothedClassifier::new(base, Gaussian::new(0.5)?);
    /// let config = CertifyConfig::default().n(500).batch_size(400).check()?;
    /// let xs: Vec<_> = [-1.0, 0.1, 0.7]
    ///     .iter()
    ///     .zip([1, 2, 3])
    ///     .map(|(&a, seed)| (Tensor::<NdArray, 1>::from_floats([a], &device), seed))
    ///     .collect();
    /// let packed = smoothed.certify_many(xs.clone(), &config)?;
    /// for ((x, seed), c) in xs.into_iter().zip(packed) {
    ///     assert_eq!(smoothed.certify(x, &config, seed)?, c);
    /// }
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn certify_many<const D: usize, const K: usize>(
        &self,
        inputs: Vec<(Tensor<C::Backend, K>, u64)>,
        config: &CertifyValidConfig,
    ) -> Result<Vec<Certification>>
    where
        C: BaseClassifier<D>,
    {
        let prepared = self.prepare_all(inputs)?;
        let mut streams: Vec<Streams> = prepared.iter().map(|(_, s)| Streams::new(*s)).collect();
        let mut draws = |num: u64| -> Vec<Draw<'_, C::Backend, D>> {
            prepared
                .iter()
                .zip(streams.iter_mut())
                .map(|((x, _), streams)| Draw {
                    input: x,
                    num,
                    seed: streams.next(),
                })
                .collect()
        };
        let (selection_draws, estimation_draws) = (draws(config.n0()), draws(config.n()));
        let batch = config.batch_size();
        let selection = sample_counts_packed(&self.base, &self.noise, &selection_draws, batch)?;
        let estimation = sample_counts_packed(&self.base, &self.noise, &estimation_draws, batch)?;
        Ok(selection
            .iter()
            .zip(&estimation)
            .map(|(selection, estimation)| {
                self.certification(estimation, top_two(selection).0, config)
            })
            .collect())
    }

    /// The certificate of `candidate` from its estimation counts.
    fn certification(
        &self,
        estimation: &[u64],
        candidate: usize,
        config: &CertifyValidConfig,
    ) -> Certification {
        let estimate = bound_top_two(estimation, candidate, config.alpha(), config.is_two_sided());
        if estimate.p_a_lower > estimate.p_b_upper {
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
        }
    }
}

/// PREDICT's answer from its counts.
fn prediction(counts: &[u64], config: &PredictValidConfig) -> Result<Prediction> {
    let test = TopTwoTest::from_counts(counts)?;
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

/// The confidence bounds of CERTIFY for `candidate` from the estimation counts: the paper's
/// `(p_a_lower, 1 - p_a_lower)` at level `1 - alpha`, or the two-sided pair at `1 - alpha/2`
/// each (see [`CertifyConfig::two_sided`]).
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
