//! The smoothed classifier and the paper's PREDICT and CERTIFY procedures (Section 3.2,
//! Appendix C), with their hyperparameters validated once into configs.

use std::marker::PhantomData;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use rand::Rng;

use super::base::BaseClassifier;
use super::noise::NoiseDistribution;
use super::sampling::sample_counts;
use crate::certificate::accuracy::Outcome;
use crate::error::{Error, Result, check_open_unit, check_positive};
use crate::stats::binomial::{clopper_pearson_lower_pair, clopper_pearson_upper_pair};
use crate::stats::hung_fithian::{TopTwoTest, can_ever_reject, top_two};

/// Largest sample count accepted: class counts are accumulated in the backend's integer
/// type, which is 32-bit on GPU backends.
///
/// # Example
/// ```
/// use randomized_smoothing::{CertifyParams, MAX_SAMPLES};
///
/// assert!(CertifyParams::default().n(MAX_SAMPLES + 1).check().is_err());
/// ```
pub const MAX_SAMPLES: u64 = i32::MAX as u64;

pub(crate) fn check_samples(name: &'static str, n: u64) -> Result<u64> {
    check_positive(name, n)?;
    if n > MAX_SAMPLES {
        return Err(Error::InvalidParameter {
            name,
            reason: format!("{n} exceeds the maximum of {MAX_SAMPLES} samples per call"),
        });
    }
    Ok(n)
}

/// Smallest `n` with `ok(n)`, for a predicate that is monotone in `n` and true at `hi`.
pub(crate) fn smallest_n(hi: u64, ok: impl Fn(u64) -> bool) -> u64 {
    let (mut lo, mut hi) = (1, hi);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if ok(mid) { hi = mid } else { lo = mid + 1 }
    }
    lo
}

/// Unchecked hyperparameters of CERTIFY; [`check`](Self::check) them into a [`CertifyConfig`].
///
/// Defaults are the paper's: `n0 = 100`, `n = 100_000`, `alpha = 0.001`, batch size 400.
///
/// # Example
/// ```
/// use randomized_smoothing::CertifyParams;
///
/// let config = CertifyParams::default().n(10_000).batch_size(1_000).check()?;
/// assert_eq!((config.n0(), config.n(), config.alpha()), (100, 10_000, 0.001));
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CertifyParams {
    n0: u64,
    n: u64,
    alpha: f64,
    batch_size: usize,
    two_sided: bool,
}

impl Default for CertifyParams {
    fn default() -> Self {
        Self {
            n0: 100,
            n: 100_000,
            alpha: 0.001,
            batch_size: 400,
            two_sided: false,
        }
    }
}

impl CertifyParams {
    /// The two-sided certificate: bound the runner-up's probability from above instead of
    /// by `1 - p_a_lower`, for the radius of the general Theorem 1,
    /// `sigma/2 (PhiInv(p_a_lower) - PhiInv(p_b_upper))`. Off by default (the paper's CERTIFY).
    ///
    /// `p_a_lower` is then the Clopper-Pearson lower bound at level `1 - alpha/2`, and
    /// `p_b_upper` the Clopper-Pearson upper bound at level `1 - alpha/2` on the largest count
    /// among the other classes, capped at `1 - p_a_lower`. Why this is valid:
    /// - the candidate is chosen from the `n0` selection samples, independent of the `n`
    ///   estimation samples both bounds use;
    /// - the upper bound is increasing in the count, and the largest other count is at least
    ///   that of the most probable other class `c*`, so `p_b_upper >= p_{c*}` whenever the
    ///   bound on `c*`'s own count holds, which fails with probability at most `alpha/2`;
    /// - `p_b_upper` is therefore at least every other class's probability, and the cap only
    ///   uses `p_a + p_b <= 1`, true whenever `p_a_lower` holds;
    /// - by the union bound both hold together with probability at least `1 - alpha`.
    ///
    /// Since `p_b_upper <= 1 - p_a_lower`, the radius is never smaller than the paper's radius
    /// computed at `alpha/2`; it is larger when the probability not on the top class is spread
    /// over several classes, and it certifies some inputs with `p_a_lower <= 1/2`.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::CertifyParams;
    ///
    /// assert!(CertifyParams::default().two_sided(true).check()?.is_two_sided());
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn two_sided(mut self, two_sided: bool) -> Self {
        self.two_sided = two_sided;
        self
    }

    /// Number of samples used to select the candidate class.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::CertifyParams;
    ///
    /// assert_eq!(CertifyParams::default().n0(64).check()?.n0(), 64);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn n0(mut self, n0: u64) -> Self {
        self.n0 = n0;
        self
    }

    /// Number of fresh samples used to bound the candidate's probability.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::CertifyParams;
    ///
    /// assert_eq!(CertifyParams::default().n(1_000).check()?.n(), 1_000);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn n(mut self, n: u64) -> Self {
        self.n = n;
        self
    }

    /// Failure probability: a certificate is wrong with probability at most alpha.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::CertifyParams;
    ///
    /// assert!(CertifyParams::default().alpha(1.5).check().is_err());
    /// ```
    pub fn alpha(mut self, alpha: f64) -> Self {
        self.alpha = alpha;
        self
    }

    /// Number of noisy samples classified per forward pass.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::CertifyParams;
    ///
    /// assert!(CertifyParams::default().batch_size(0).check().is_err());
    /// ```
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Validates the parameters.
    ///
    /// # Errors
    /// [`Error::InvalidProbability`] unless `0 < alpha < 1`; [`Error::ZeroCount`] for a zero
    /// `n0`, `n` or batch size; [`Error::InvalidParameter`] for counts above
    /// [`MAX_SAMPLES`]; [`Error::SampleSizeTooSmall`] when `alpha^(1/n) <= 1/2`, since then
    /// even `n` agreeing samples give a lower bound of at most 1/2 and every input abstains.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::{CertifyParams, Error};
    ///
    /// let err = CertifyParams::default().n(9).alpha(0.001).check().unwrap_err();
    /// assert!(matches!(err, Error::SampleSizeTooSmall { min_n: 10, .. }));
    /// ```
    pub fn check(self) -> Result<CertifyConfig> {
        let alpha = check_open_unit("alpha", self.alpha)?;
        check_samples("n0", self.n0)?;
        let n = check_samples("n", self.n)?;
        check_positive("batch_size", self.batch_size as u64)?;
        // The two-sided certificate spends alpha/2 on each bound; with n agreeing samples its
        // p_b_upper is at most 1 - p_a_lower, so the same condition decides.
        let alpha_a = if self.two_sided { alpha / 2.0 } else { alpha };
        let can_certify = |n: u64| clopper_pearson_lower_pair(n, n, alpha_a).0 > 0.5;
        if !can_certify(n) {
            let min_n = smallest_n(MAX_SAMPLES, can_certify);
            return Err(Error::SampleSizeTooSmall {
                procedure: "certify",
                n,
                alpha,
                min_n,
            });
        }
        Ok(CertifyConfig(self))
    }
}

/// Validated hyperparameters of CERTIFY, made by [`CertifyParams::check`].
///
/// # Example
/// ```
/// use randomized_smoothing::CertifyParams;
///
/// let config = CertifyParams::default().check()?;
/// assert_eq!(config.batch_size(), 400);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CertifyConfig(CertifyParams);

impl CertifyConfig {
    /// Selection sample size.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::CertifyParams;
    /// assert_eq!(CertifyParams::default().check()?.n0(), 100);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn n0(&self) -> u64 {
        self.0.n0
    }

    /// Estimation sample size.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::CertifyParams;
    /// assert_eq!(CertifyParams::default().check()?.n(), 100_000);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn n(&self) -> u64 {
        self.0.n
    }

    /// Failure probability.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::CertifyParams;
    /// assert_eq!(CertifyParams::default().check()?.alpha(), 0.001);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn alpha(&self) -> f64 {
        self.0.alpha
    }

    /// Samples per forward pass.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::CertifyParams;
    /// assert_eq!(CertifyParams::default().batch_size(50).check()?.batch_size(), 50);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn batch_size(&self) -> usize {
        self.0.batch_size
    }

    /// Whether the two-sided certificate is used (see [`CertifyParams::two_sided`]).
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::CertifyParams;
    /// assert!(!CertifyParams::default().check()?.is_two_sided());
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn is_two_sided(&self) -> bool {
        self.0.two_sided
    }
}

/// Unchecked hyperparameters of PREDICT; [`check`](Self::check) them into a [`PredictConfig`].
///
/// Defaults follow the paper's `predict.py`: `n = 100_000`, `alpha = 0.001`, batch size 400.
///
/// # Example
/// ```
/// use randomized_smoothing::PredictParams;
///
/// let config = PredictParams::default().n(1_000).alpha(0.01).check()?;
/// assert_eq!((config.n(), config.alpha()), (1_000, 0.01));
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredictParams {
    n: u64,
    alpha: f64,
    batch_size: usize,
}

impl Default for PredictParams {
    fn default() -> Self {
        Self {
            n: 100_000,
            alpha: 0.001,
            batch_size: 400,
        }
    }
}

impl PredictParams {
    /// Number of noisy samples.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::PredictParams;
    /// assert_eq!(PredictParams::default().n(100).check()?.n(), 100);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn n(mut self, n: u64) -> Self {
        self.n = n;
        self
    }

    /// Probability of returning a class other than the smoothed classifier's.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::PredictParams;
    /// assert!(PredictParams::default().alpha(0.0).check().is_err());
    /// ```
    pub fn alpha(mut self, alpha: f64) -> Self {
        self.alpha = alpha;
        self
    }

    /// Samples per forward pass.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::PredictParams;
    /// assert!(PredictParams::default().batch_size(0).check().is_err());
    /// ```
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Validates the parameters.
    ///
    /// # Errors
    /// As [`CertifyParams::check`]; [`Error::SampleSizeTooSmall`] when even `n` agreeing
    /// samples give a two-sided p-value above alpha (`2^(1-n) > alpha`).
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::{Error, PredictParams};
    ///
    /// let err = PredictParams::default().n(10).alpha(0.001).check().unwrap_err();
    /// assert!(matches!(err, Error::SampleSizeTooSmall { min_n: 11, .. }));
    /// ```
    pub fn check(self) -> Result<PredictConfig> {
        let alpha = check_open_unit("alpha", self.alpha)?;
        let n = check_samples("n", self.n)?;
        check_positive("batch_size", self.batch_size as u64)?;
        let can_predict = |n: u64| can_ever_reject(n, alpha);
        if !can_predict(n) {
            let min_n = smallest_n(MAX_SAMPLES, can_predict);
            return Err(Error::SampleSizeTooSmall {
                procedure: "predict",
                n,
                alpha,
                min_n,
            });
        }
        Ok(PredictConfig(self))
    }
}

/// Validated hyperparameters of PREDICT, made by [`PredictParams::check`].
///
/// # Example
/// ```
/// # use randomized_smoothing::PredictParams;
/// let config = PredictParams::default().check()?;
/// assert_eq!(config.batch_size(), 400);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredictConfig(PredictParams);

impl PredictConfig {
    /// Number of noisy samples.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::PredictParams;
    /// assert_eq!(PredictParams::default().check()?.n(), 100_000);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn n(&self) -> u64 {
        self.0.n
    }

    /// Failure probability.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::PredictParams;
    /// assert_eq!(PredictParams::default().check()?.alpha(), 0.001);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn alpha(&self) -> f64 {
        self.0.alpha
    }

    /// Samples per forward pass.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::PredictParams;
    /// assert_eq!(PredictParams::default().check()?.batch_size(), 400);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn batch_size(&self) -> usize {
        self.0.batch_size
    }
}

/// Why a procedure abstained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AbstainReason {
    /// CERTIFY: the lower confidence bound on the candidate class's probability is at most 1/2.
    LowConfidence,
    /// PREDICT: the top two counts are not significantly different at level alpha.
    NotSignificant,
}

/// The outcome of PREDICT.
///
/// With probability at least `1 - alpha` it is either the smoothed classifier's class or an
/// abstention (the paper's Proposition 1).
///
/// # Example
/// ```
/// use randomized_smoothing::{AbstainReason, Prediction, TopTwoTest};
///
/// let test = TopTwoTest { top: 0, count_top: 6, runner_up: 1, count_runner_up: 4, p_value: 0.75 };
/// let p = Prediction::Abstain { reason: AbstainReason::NotSignificant, test };
/// assert_eq!(p.class(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Prediction {
    /// The predicted class.
    Class {
        /// The class.
        class: usize,
        /// The test that decided it.
        test: TopTwoTest,
    },
    /// No prediction.
    Abstain {
        /// Why.
        reason: AbstainReason,
        /// The test that failed.
        test: TopTwoTest,
    },
}

impl Prediction {
    /// The predicted class, or `None` on abstention.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::{Prediction, TopTwoTest};
    /// let test = TopTwoTest { top: 2, count_top: 100, runner_up: 0, count_runner_up: 0, p_value: 1e-30 };
    /// assert_eq!(Prediction::Class { class: 2, test }.class(), Some(2));
    /// ```
    pub fn class(&self) -> Option<usize> {
        match self {
            Prediction::Class { class, .. } => Some(*class),
            Prediction::Abstain { .. } => None,
        }
    }

    /// The evidence.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::{Prediction, TopTwoTest};
    /// let test = TopTwoTest { top: 2, count_top: 100, runner_up: 0, count_runner_up: 0, p_value: 1e-30 };
    /// assert_eq!(Prediction::Class { class: 2, test }.test().count_top, 100);
    /// ```
    pub fn test(&self) -> &TopTwoTest {
        match self {
            Prediction::Class { test, .. } | Prediction::Abstain { test, .. } => test,
        }
    }
}

/// The estimate behind a CERTIFY decision.
///
/// # Example
/// ```
/// use randomized_smoothing::Estimate;
///
/// let e = Estimate { candidate: 7, count: 990, n: 1_000, p_a_lower: 0.97, p_b_upper: 0.03 };
/// assert!(e.p_a_lower < e.count as f64 / e.n as f64);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The class chosen from the `n0` selection samples.
    pub candidate: usize,
    /// Its count among the `n` fresh estimation samples.
    pub count: u64,
    /// The number of estimation samples.
    pub n: u64,
    /// Lower confidence bound on its probability (one-sided Clopper-Pearson at level
    /// `1 - alpha`, or `1 - alpha/2` for the two-sided certificate).
    pub p_a_lower: f64,
    /// Upper confidence bound on every other class's probability: `1 - p_a_lower` for the
    /// paper's certificate; for the two-sided one, the Clopper-Pearson upper bound on the
    /// largest other count at level `1 - alpha/2`, capped at `1 - p_a_lower`.
    pub p_b_upper: f64,
}

/// The outcome of CERTIFY.
///
/// With probability at least `1 - alpha`, a certified class is the smoothed classifier's
/// prediction at every point within `radius` of the input (the paper's Proposition 2).
///
/// # Example
/// ```
/// use randomized_smoothing::{Certification, Estimate};
///
/// let estimate = Estimate { candidate: 1, count: 1_000, n: 1_000, p_a_lower: 0.993, p_b_upper: 0.007 };
/// let c = Certification::Certified { class: 1, radius: 0.61, estimate };
/// assert_eq!((c.class(), c.radius()), (Some(1), Some(0.61)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Certification {
    /// A class with its certified radius.
    Certified {
        /// The class.
        class: usize,
        /// The certified radius, in the noise's norm and the input's units.
        radius: f64,
        /// The estimate it rests on.
        estimate: Estimate,
    },
    /// No certificate.
    Abstain {
        /// Why.
        reason: AbstainReason,
        /// The estimate that was not confident enough.
        estimate: Estimate,
    },
}

impl Certification {
    /// The outcome for an example whose true label is `label`, as the certified-accuracy
    /// statistics count it: correct only when certified with that label, radius 0 on
    /// abstention.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::certificate::accuracy::Outcome;
    /// use randomized_smoothing::{Certification, Estimate};
    ///
    /// let estimate = Estimate { candidate: 3, count: 990, n: 1_000, p_a_lower: 0.98, p_b_upper: 0.02 };
    /// let c = Certification::Certified { class: 3, radius: 0.5, estimate };
    /// assert_eq!(c.outcome(3), Outcome { correct: true, radius: 0.5 });
    /// assert_eq!(c.outcome(4).correct, false);
    /// ```
    pub fn outcome(&self, label: usize) -> Outcome {
        match self {
            Certification::Certified { class, radius, .. } => Outcome {
                correct: *class == label,
                radius: *radius,
            },
            Certification::Abstain { .. } => Outcome {
                correct: false,
                radius: 0.0,
            },
        }
    }

    /// The certified class, or `None` on abstention.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::{AbstainReason, Certification, Estimate};
    /// let estimate = Estimate { candidate: 1, count: 400, n: 1_000, p_a_lower: 0.36, p_b_upper: 0.64 };
    /// let c = Certification::Abstain { reason: AbstainReason::LowConfidence, estimate };
    /// assert_eq!(c.class(), None);
    /// ```
    pub fn class(&self) -> Option<usize> {
        match self {
            Certification::Certified { class, .. } => Some(*class),
            Certification::Abstain { .. } => None,
        }
    }

    /// The certified radius, or `None` on abstention.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::{AbstainReason, Certification, Estimate};
    /// let estimate = Estimate { candidate: 1, count: 400, n: 1_000, p_a_lower: 0.36, p_b_upper: 0.64 };
    /// let c = Certification::Abstain { reason: AbstainReason::LowConfidence, estimate };
    /// assert_eq!(c.radius(), None);
    /// ```
    pub fn radius(&self) -> Option<f64> {
        match self {
            Certification::Certified { radius, .. } => Some(*radius),
            Certification::Abstain { .. } => None,
        }
    }

    /// The estimate behind the decision.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::{Certification, Estimate};
    /// let estimate = Estimate { candidate: 1, count: 1_000, n: 1_000, p_a_lower: 0.993, p_b_upper: 0.007 };
    /// let c = Certification::Certified { class: 1, radius: 0.61, estimate };
    /// assert_eq!(c.estimate().count, 1_000);
    /// ```
    pub fn estimate(&self) -> &Estimate {
        match self {
            Certification::Certified { estimate, .. } | Certification::Abstain { estimate, .. } => {
                estimate
            }
        }
    }
}

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
    /// makes it a batch of one, `[1, input_shape...]`. Reads `x` to the host once (never the
    /// noisy samples).
    pub(crate) fn prepare<const K: usize>(&self, x: Tensor<B, K>) -> Result<Tensor<B, D>> {
        let dims = x.dims();
        let expected = self.base.input_shape();
        if dims.as_slice() != expected || expected.len() + 1 != D {
            return Err(Error::ShapeMismatch {
                expected: expected.to_vec(),
                got: dims.to_vec(),
            });
        }
        if let Some(bad) = x.to_data().iter::<f64>().find(|v| !v.is_finite()) {
            return Err(Error::NonFiniteInput(bad));
        }
        let mut shape = [1; D];
        shape[1..].copy_from_slice(expected);
        Ok(x.reshape(shape))
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

/// The indices of the largest and second-largest counts (lowest index first among ties).
/// The index of the largest count (lowest index among ties): the selected candidate.
pub(crate) fn top_class_of(counts: &[u64]) -> usize {
    top_two(counts).0
}
