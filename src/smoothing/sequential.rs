//! Certification with fewer samples: sample in rounds and stop as soon as the answer is
//! known. Two procedures share one schedule of looks and one way of accounting for alpha:
//!
//! - [`SmoothedClassifier::certify_at_radius`] answers "is `x` certified at radius `r`?",
//!   stopping when the lower confidence bound clears `r` or the upper one rules it out;
//! - [`SmoothedClassifier::certify_budgeted`] estimates the radius, stopping when more
//!   samples cannot raise it by more than a tolerance, or when the input is clearly going to
//!   abstain.
//!
//! After `n0` selection samples choose the candidate, as in CERTIFY, estimation samples are
//! drawn in rounds so that the looks fall at `n_first, 2 n_first, 4 n_first, ...`, up to
//! `n_max`. Each look computes Clopper-Pearson bounds at level `1 - alpha / K`, for `K`
//! looks: by the union bound all the lower bounds hold together with probability at least
//! `1 - alpha`, so a certificate issued at any look is wrong with probability at most
//! `alpha`, however the stopping rule uses the data. The upper bounds are at the same level,
//! so a true certificate is given up early with probability at most `alpha` as well.
//!
//! [`certify_at_radius_many`](SmoothedClassifier::certify_at_radius_many) and
//! [`certify_budgeted_many`](SmoothedClassifier::certify_budgeted_many) run several inputs
//! together, look by look, filling each forward pass with the samples of the inputs still
//! undecided; each input's answer is the one it gets alone.

use super::base::BaseClassifier;
use super::noise::NoiseDistribution;
use super::outcome::{AbstainReason, Certification, Estimate};
use super::params::{MAX_SAMPLES, check_samples, smallest_n};
use super::sampling::{Draw, sample_counts_packed};
use super::smoothed::{SmoothedClassifier, top_class_of};
use crate::error::{Error, Result, check_open_unit, check_positive};
use crate::stats::binomial::{clopper_pearson_lower_pair, clopper_pearson_upper_pair};
use crate::stats::seed::Streams;
use burn::tensor::Tensor;

/// Unchecked hyperparameters of the sequential procedures; [`check`](Self::check) them into
/// a [`SequentialValidConfig`].
///
/// Defaults: `n0 = 100` selection samples, looks at 100, 200, 400, ... estimation samples
/// up to `n_max = 100_000` (11 looks), `alpha = 0.001`, batch size 400, radius tolerance
/// 0.01 (for [`certify_budgeted`](SmoothedClassifier::certify_budgeted)).
///
/// # Example
/// ```
/// use randomized_smoothing::SequentialConfig;
///
/// let config = SequentialConfig::default().check()?;
/// assert_eq!(config.looks(), vec![100, 200, 400, 800, 1_600, 3_200, 6_400, 12_800, 25_600, 51_200, 100_000]);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SequentialConfig {
    n0: u64,
    n_first: u64,
    n_max: u64,
    alpha: f64,
    batch_size: usize,
    tolerance: f64,
}

impl Default for SequentialConfig {
    fn default() -> Self {
        Self {
            n0: 100,
            n_first: 100,
            n_max: 100_000,
            alpha: 0.001,
            batch_size: 400,
            tolerance: 0.01,
        }
    }
}

impl SequentialConfig {
    /// Number of selection samples.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::SequentialConfig;
    /// assert!(SequentialConfig::default().n0(0).check().is_err());
    /// ```
    pub fn n0(mut self, n0: u64) -> Self {
        self.n0 = n0;
        self
    }

    /// Estimation samples at the first look and at most in all.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::SequentialConfig;
    /// let config = SequentialConfig::default().samples(1_000, 10_000).check()?;
    /// assert_eq!(config.looks(), vec![1_000, 2_000, 4_000, 8_000, 10_000]);
    /// assert!(SequentialConfig::default().samples(1_000, 100).check().is_err());
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn samples(mut self, n_first: u64, n_max: u64) -> Self {
        self.n_first = n_first;
        self.n_max = n_max;
        self
    }

    /// Total probability of a wrong certificate, over all looks.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::SequentialConfig;
    /// assert!(SequentialConfig::default().alpha(1.0).check().is_err());
    /// ```
    pub fn alpha(mut self, alpha: f64) -> Self {
        self.alpha = alpha;
        self
    }

    /// Noisy samples per forward pass.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::SequentialConfig;
    /// assert_eq!(SequentialConfig::default().batch_size(64).check()?.batch_size(), 64);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// [`certify_budgeted`](SmoothedClassifier::certify_budgeted) stops once more samples
    /// could raise the radius by at most this much (in the noise's norm and input units).
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::SequentialConfig;
    /// assert!(SequentialConfig::default().tolerance(-0.1).check().is_err());
    /// ```
    pub fn tolerance(mut self, tolerance: f64) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Validates the parameters.
    ///
    /// # Errors
    /// [`Error::InvalidProbability`] unless `0 < alpha < 1`; [`Error::ZeroCount`] for zero
    /// counts; [`Error::InvalidParameter`] if `n_max < n_first`, `n_max` exceeds
    /// [`crate::MAX_SAMPLES`] or the tolerance is negative or not finite;
    /// [`Error::SampleSizeTooSmall`] if even `n_max` agreeing samples cannot certify at the
    /// per-look level `alpha / K`.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::{Error, SequentialConfig};
    ///
    /// let err = SequentialConfig::default().samples(5, 5).check().unwrap_err();
    /// assert!(matches!(err, Error::SampleSizeTooSmall { .. }));
    /// ```
    pub fn check(self) -> Result<SequentialValidConfig> {
        check_open_unit("alpha", self.alpha)?;
        check_samples("n0", self.n0)?;
        check_positive("n_first", self.n_first)?;
        check_samples("n_max", self.n_max)?;
        check_positive("batch_size", self.batch_size as u64)?;
        let invalid = |name, reason: String| Err(Error::InvalidParameter { name, reason });
        if self.n_max < self.n_first {
            return invalid(
                "n_max",
                format!("n_first {} exceeds n_max {}", self.n_first, self.n_max),
            );
        }
        if !(self.tolerance.is_finite() && self.tolerance >= 0.0) {
            return invalid("tolerance", format!("{} is not a radius", self.tolerance));
        }
        let config = SequentialValidConfig(self);
        let per_look = config.alpha_per_look();
        let can_certify = |n: u64| clopper_pearson_lower_pair(n, n, per_look).0 > 0.5;
        if !can_certify(self.n_max) {
            return Err(Error::SampleSizeTooSmall {
                procedure: "sequential certification",
                n: self.n_max,
                alpha: per_look,
                min_n: smallest_n(MAX_SAMPLES, can_certify),
            });
        }
        Ok(config)
    }
}

/// Validated hyperparameters of the sequential procedures, made by
/// [`SequentialConfig::check`].
///
/// # Example
/// ```
/// let config = randomized_smoothing::SequentialConfig::default().check()?;
/// assert_eq!(config.alpha_per_look(), 0.001 / 11.0);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SequentialValidConfig(SequentialConfig);

impl SequentialValidConfig {
    /// The cumulative numbers of estimation samples at which the procedures look.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::SequentialConfig;
    /// let config = SequentialConfig::default().samples(300, 1_000).check()?;
    /// assert_eq!(config.looks(), vec![300, 600, 1_000]);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn looks(&self) -> Vec<u64> {
        let mut looks = Vec::new();
        let mut n = self.0.n_first;
        while n < self.0.n_max {
            looks.push(n);
            n = n.saturating_mul(2);
        }
        looks.push(self.0.n_max);
        looks
    }

    /// The level of each look's bounds, `alpha / K` for `K` looks.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::SequentialConfig;
    /// let config = SequentialConfig::default().samples(100, 100).alpha(0.01).check()?;
    /// assert_eq!(config.alpha_per_look(), 0.01);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn alpha_per_look(&self) -> f64 {
        self.0.alpha / self.looks().len() as f64
    }

    /// Number of selection samples.
    pub fn n0(&self) -> u64 {
        self.0.n0
    }

    /// Total alpha.
    pub fn alpha(&self) -> f64 {
        self.0.alpha
    }

    /// Noisy samples per forward pass.
    pub fn batch_size(&self) -> usize {
        self.0.batch_size
    }

    /// The radius tolerance of [`certify_budgeted`](SmoothedClassifier::certify_budgeted).
    pub fn tolerance(&self) -> f64 {
        self.0.tolerance
    }
}

/// The answer of [`certify_at_radius`](SmoothedClassifier::certify_at_radius).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Certified at the radius: wrong with probability at most alpha.
    Certified,
    /// The upper confidence bound rules the radius out.
    NotCertified,
    /// The budget ran out first; not certified.
    Undecided,
}

/// The outcome of a sequential procedure: its decision, the estimate it rests on (at the
/// look where it stopped, with bounds at level `1 - alpha / K`) and the samples it spent.
///
/// # Example
/// ```
/// use randomized_smoothing::{Estimate, Sequential, Verdict};
///
/// let estimate = Estimate { candidate: 2, count: 100, n: 100, p_a_lower: 0.91, p_b_upper: 0.09 };
/// let s = Sequential { verdict: Verdict::Certified, estimate, samples: 200, looks: 1 };
/// assert_eq!(s.samples, 200);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sequential<T> {
    /// The decision.
    pub verdict: T,
    /// The candidate's count, sample size and bounds at the last look.
    pub estimate: Estimate,
    /// Forward passes spent: selection plus estimation samples.
    pub samples: u64,
    /// Looks taken.
    pub looks: usize,
}

impl<C, N: NoiseDistribution> SmoothedClassifier<C, N> {
    /// Runs the looks of `config` on each `(x, seed)`, calling `stop` at each look with the
    /// input's estimate (bounds at `1 - alpha / K`) and whether it is the last look; an
    /// input's answer is what `stop` returned first for it.
    ///
    /// The inputs are sampled together, round by round: the selection samples of all, then
    /// the next look of each input still undecided, every forward pass filled up to the
    /// batch size across inputs. Each input's selection and looks draw from successive
    /// streams of its own seed, so its answer is the one it gets alone.
    fn sequential_many<const D: usize, const K: usize, T>(
        &self,
        inputs: Vec<(Tensor<C::Backend, K>, u64)>,
        config: &SequentialValidConfig,
        mut stop: impl FnMut(&Estimate, (f64, f64), bool) -> Option<T>,
    ) -> Result<Vec<Sequential<T>>>
    where
        C: BaseClassifier<D>,
    {
        let prepared = self.prepare_all(inputs)?;
        let mut streams: Vec<Streams> = prepared.iter().map(|(_, s)| Streams::new(*s)).collect();
        let batch = config.batch_size();
        let selection_draws: Vec<_> = prepared
            .iter()
            .zip(streams.iter_mut())
            .map(|((x, _), streams)| Draw {
                input: x,
                num: config.n0(),
                seed: streams.next(),
            })
            .collect();
        let selection = sample_counts_packed(self.base(), self.noise(), &selection_draws, batch)?;
        let candidates: Vec<usize> = selection.iter().map(|c| top_class_of(c)).collect();
        let looks = config.looks();
        let alpha = config.alpha_per_look();
        // Per input: estimation samples drawn and the candidate's count among them.
        let mut tallies = vec![(0u64, 0u64); prepared.len()];
        let mut answers: Vec<Option<Sequential<T>>> = prepared.iter().map(|_| None).collect();
        for (k, &n) in looks.iter().enumerate() {
            let open: Vec<usize> = (0..prepared.len())
                .filter(|&i| answers[i].is_none())
                .collect();
            if open.is_empty() {
                break;
            }
            let draws: Vec<_> = open
                .iter()
                .map(|&i| Draw {
                    input: &prepared[i].0,
                    num: n - tallies[i].0,
                    seed: streams[i].next(),
                })
                .collect();
            let counts = sample_counts_packed(self.base(), self.noise(), &draws, batch)?;
            for (&i, counts) in open.iter().zip(&counts) {
                let candidate = candidates[i];
                let (drawn, count) = &mut tallies[i];
                *count += counts[candidate];
                *drawn = n;
                let (p_a_lower, complement) = clopper_pearson_lower_pair(*count, n, alpha);
                let p_a_upper = clopper_pearson_upper_pair(*count, n, alpha);
                let estimate = Estimate {
                    candidate,
                    count: *count,
                    n,
                    p_a_lower,
                    p_b_upper: complement,
                };
                answers[i] =
                    stop(&estimate, p_a_upper, k + 1 == looks.len()).map(|verdict| Sequential {
                        verdict,
                        estimate,
                        samples: config.n0() + n,
                        looks: k + 1,
                    });
            }
        }
        Ok(answers
            .into_iter()
            .map(|a| a.expect("the last look always stops"))
            .collect())
    }

    /// Decides whether `x` is certified at `radius` (CERTIFY's certificate, `p_b = 1 - p_a`),
    /// sampling in rounds and stopping at the first look that decides either way.
    ///
    /// Certified when the lower bound's radius reaches `radius`; not certified when even the
    /// upper bound's radius falls short (then, with probability at least `1 - alpha`, no
    /// amount of sampling would certify). A certificate is wrong with probability at most
    /// `alpha` over all looks (see the [module documentation](crate::smoothing::sequential)).
    ///
    /// # Errors
    /// As [`certify`](Self::certify); [`Error::InvalidParameter`] for a negative or
    /// non-finite radius.
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use burn::tensor::Tensor;
    /// use randomized_smoothing::{Gaussian, LinearClassifier, SequentialConfig, SmoothedClassifier, Verdict};
    ///
    /// let device = Default::default();
    /// let base = LinearClassifier::<NdArray>::new(&[1.0], 0.0, &device)?;
    /// let smoothed = SmoothedClassifier::new(base, Gaussian::new(0.5)?);
    /// let config = SequentialConfig::default().check()?;
    /// let x = Tensor::<NdArray, 1>::from_floats([1.5], &device);
    /// let d = smoothed.certify_at_radius(x.clone(), 0.5, &config, 0)?;
    /// assert_eq!(d.verdict, Verdict::Certified);
    /// assert!(d.samples <= 500); // against 100,100 for CERTIFY
    /// let d = smoothed.certify_at_radius(x, 2.0, &config, 0)?;
    /// assert_eq!(d.verdict, Verdict::NotCertified);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn certify_at_radius<const D: usize, const K: usize>(
        &self,
        x: Tensor<C::Backend, K>,
        radius: f64,
        config: &SequentialValidConfig,
        seed: u64,
    ) -> Result<Sequential<Verdict>>
    where
        C: BaseClassifier<D>,
    {
        let mut answers = self.certify_at_radius_many(vec![(x, seed)], radius, config)?;
        Ok(answers.pop().expect("one answer per input"))
    }

    /// [`certify_at_radius`](Self::certify_at_radius) for several `(x, seed)` at once, their
    /// forward passes shared: the selection samples of all inputs first, then at each look
    /// the samples of the inputs still undecided, every batch filled up to the batch size
    /// across inputs. Each answer is the one its input gets alone with its seed (with the
    /// host's noise; see [`certify_many`](Self::certify_many)). This is where the
    /// sequential procedures gain on a GPU, whose small batches run at a fraction of a full
    /// one's rate: the looks at 100, 200, 400 samples are small.
    ///
    /// # Errors
    /// As [`certify_at_radius`](Self::certify_at_radius), for any input.
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use burn::tensor::Tensor;
    /// use randomized_smoothing::{Gaussian, LinearClassifier, SequentialConfig, SmoothedClassifier};
    ///
    /// let device = Default::default();
    /// let base = LinearClassifier::<NdArray>::new(&[1.0], 0.0, &device)?;
    /// let smoothed = SmoothedClassifier::new(base, Gaussian::new(0.5)?);
    /// let config = SequentialConfig::default().check()?;
    /// let xs: Vec<_> = [1.5, 0.4, -0.2]
    ///     .iter()
    ///     .zip(0u64..)
    ///     .map(|(&v, seed)| (Tensor::<NdArray, 1>::from_floats([v], &device), seed))
    ///     .collect();
    /// let together = smoothed.certify_at_radius_many(xs.clone(), 0.3, &config)?;
    /// for ((x, seed), d) in xs.into_iter().zip(together) {
    ///     assert_eq!(smoothed.certify_at_radius(x, 0.3, &config, seed)?, d);
    /// }
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn certify_at_radius_many<const D: usize, const K: usize>(
        &self,
        inputs: Vec<(Tensor<C::Backend, K>, u64)>,
        radius: f64,
        config: &SequentialValidConfig,
    ) -> Result<Vec<Sequential<Verdict>>>
    where
        C: BaseClassifier<D>,
    {
        if !(radius.is_finite() && radius >= 0.0) {
            return Err(Error::InvalidParameter {
                name: "radius",
                reason: format!("{radius} is not a radius"),
            });
        }
        let noise = self.noise();
        // Whether p_a (with its complement) certifies the radius.
        let reaches = |(p, q): (f64, f64)| p > 0.5 && noise.radius(p, q) >= radius;
        self.sequential_many(inputs, config, |e, p_a_upper, last| {
            if reaches((e.p_a_lower, e.p_b_upper)) {
                Some(Verdict::Certified)
            } else if !reaches(p_a_upper) {
                Some(Verdict::NotCertified)
            } else if last {
                Some(Verdict::Undecided)
            } else {
                None
            }
        })
    }

    /// CERTIFY under a sample budget: the radius from the lower bound at the look where the
    /// procedure stops, which is the first look at which
    /// - the upper bound is at most 1/2 (the input will abstain), or
    /// - more samples could raise the radius by at most the configured tolerance: the radius
    ///   is already within `tolerance` of the radius that `n_max` samples would give if the
    ///   observed frequency were the upper bound `p_a_upper`,
    ///
    /// or at `n_max`. The radius is valid with probability at least `1 - alpha` over all
    /// looks; against CERTIFY with `n = n_max` it gives up at most the difference between
    /// levels `alpha` and `alpha / K`, plus the tolerance.
    ///
    /// # Errors
    /// As [`certify`](Self::certify).
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use burn::tensor::Tensor;
    /// use randomized_smoothing::{Gaussian, LinearClassifier, SequentialConfig, SmoothedClassifier};
    ///
    /// let device = Default::default();
    /// let base = LinearClassifier::<NdArray>::new(&[1.0], 0.0, &device)?;
    /// let smoothed = SmoothedClassifier::new(base, Gaussian::new(0.5)?);
    /// let config = SequentialConfig::default().tolerance(0.05).check()?;
    /// // Near the boundary: the radius settles early, far below 0.3.
    /// let x = Tensor::<NdArray, 1>::from_floats([0.3], &device);
    /// let s = smoothed.certify_budgeted(x, &config, 1)?;
    /// assert!(s.verdict.radius().unwrap() < 0.3 && s.samples < 100_100);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn certify_budgeted<const D: usize, const K: usize>(
        &self,
        x: Tensor<C::Backend, K>,
        config: &SequentialValidConfig,
        seed: u64,
    ) -> Result<Sequential<Certification>>
    where
        C: BaseClassifier<D>,
    {
        let mut answers = self.certify_budgeted_many(vec![(x, seed)], config)?;
        Ok(answers.pop().expect("one answer per input"))
    }

    /// [`certify_budgeted`](Self::certify_budgeted) for several `(x, seed)` at once, their
    /// forward passes shared as in
    /// [`certify_at_radius_many`](Self::certify_at_radius_many); each answer is the one its
    /// input gets alone with its seed (with the host's noise).
    ///
    /// # Errors
    /// As [`certify`](Self::certify), for any input.
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use burn::tensor::Tensor;
    /// use randomized_smoothing::{Gaussian, LinearClassifier, SequentialConfig, SmoothedClassifier};
    ///
    /// let device = Default::default();
    /// let base = LinearClassifier::<NdArray>::new(&[1.0], 0.0, &device)?;
    /// let smoothed = SmoothedClassifier::new(base, Gaussian::new(0.5)?);
    /// let config = SequentialConfig::default().tolerance(0.05).check()?;
    /// let xs: Vec<_> = [0.3, 2.0]
    ///     .iter()
    ///     .zip(7u64..)
    ///     .map(|(&v, seed)| (Tensor::<NdArray, 1>::from_floats([v], &device), seed))
    ///     .collect();
    /// let together = smoothed.certify_budgeted_many(xs.clone(), &config)?;
    /// for ((x, seed), s) in xs.into_iter().zip(together) {
    ///     assert_eq!(smoothed.certify_budgeted(x, &config, seed)?, s);
    /// }
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn certify_budgeted_many<const D: usize, const K: usize>(
        &self,
        inputs: Vec<(Tensor<C::Backend, K>, u64)>,
        config: &SequentialValidConfig,
    ) -> Result<Vec<Sequential<Certification>>>
    where
        C: BaseClassifier<D>,
    {
        let noise = self.noise();
        let radius = |p: f64, q: f64| if p > 0.5 { noise.radius(p, q) } else { 0.0 };
        let n_max = *config.looks().last().expect("at least one look");
        let (best, best_complement) =
            clopper_pearson_lower_pair(n_max, n_max, config.alpha_per_look());
        self.sequential_many(inputs, config, |e, (p_a_upper, _), last| {
            let decide = || {
                if e.p_a_lower > 0.5 {
                    Certification::Certified {
                        class: e.candidate,
                        radius: noise.radius(e.p_a_lower, e.p_b_upper),
                        estimate: *e,
                    }
                } else {
                    Certification::Abstain {
                        reason: AbstainReason::LowConfidence,
                        estimate: *e,
                    }
                }
            };
            if p_a_upper <= 0.5 || last {
                return Some(decide());
            }
            // The largest radius n_max samples could give if p_a were as high as its upper
            // bound: the lower bound from a frequency of p_a_upper at n_max.
            let reachable = if p_a_upper < 1.0 {
                let count = (p_a_upper * n_max as f64).ceil().min(n_max as f64) as u64;
                let (p, q) = clopper_pearson_lower_pair(count, n_max, config.alpha_per_look());
                radius(p, q)
            } else {
                radius(best, best_complement)
            };
            let now = radius(e.p_a_lower, e.p_b_upper);
            (reachable - now <= config.tolerance()).then(decide)
        })
    }
}
