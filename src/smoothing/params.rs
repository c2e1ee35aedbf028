//! The hyperparameters of PREDICT and CERTIFY: builders (`*Config`, unchecked, as Burn's
//! configs are) checked once into validated configs (`*ValidConfig`, as linfa names its
//! checked hyperparameters), the only form the procedures accept.

use crate::error::{Error, Result, check_open_unit, check_positive};
use crate::stats::binomial::clopper_pearson_lower_pair;
use crate::stats::hung_fithian::can_ever_reject;

/// Largest sample count accepted: class counts are accumulated in the backend's integer
/// type, which is 32-bit on GPU backends.
///
/// # Example
/// ```
/// use randomized_smoothing::{CertifyConfig, MAX_SAMPLES};
///
/// assert!(CertifyConfig::default().n(MAX_SAMPLES + 1).check().is_err());
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

/// Unchecked hyperparameters of CERTIFY; [`check`](Self::check) them into a [`CertifyValidConfig`].
///
/// Defaults are the paper's: `n0 = 100`, `n = 100_000`, `alpha = 0.001`, batch size 400.
///
/// # Example
/// ```
/// use randomized_smoothing::CertifyConfig;
///
/// let config = CertifyConfig::default().n(10_000).batch_size(1_000).check()?;
/// assert_eq!((config.n0(), config.n(), config.alpha()), (100, 10_000, 0.001));
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CertifyConfig {
    n0: u64,
    n: u64,
    alpha: f64,
    batch_size: usize,
    two_sided: bool,
}

impl Default for CertifyConfig {
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

impl CertifyConfig {
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
    /// use randomized_smoothing::CertifyConfig;
    ///
    /// assert!(CertifyConfig::default().two_sided(true).check()?.is_two_sided());
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
    /// use randomized_smoothing::CertifyConfig;
    ///
    /// assert_eq!(CertifyConfig::default().n0(64).check()?.n0(), 64);
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
    /// use randomized_smoothing::CertifyConfig;
    ///
    /// assert_eq!(CertifyConfig::default().n(1_000).check()?.n(), 1_000);
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
    /// use randomized_smoothing::CertifyConfig;
    ///
    /// assert!(CertifyConfig::default().alpha(1.5).check().is_err());
    /// ```
    pub fn alpha(mut self, alpha: f64) -> Self {
        self.alpha = alpha;
        self
    }

    /// Number of noisy samples classified per forward pass.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::CertifyConfig;
    ///
    /// assert!(CertifyConfig::default().batch_size(0).check().is_err());
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
    /// use randomized_smoothing::{CertifyConfig, Error};
    ///
    /// let err = CertifyConfig::default().n(9).alpha(0.001).check().unwrap_err();
    /// assert!(matches!(err, Error::SampleSizeTooSmall { min_n: 10, .. }));
    /// ```
    pub fn check(self) -> Result<CertifyValidConfig> {
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
        Ok(CertifyValidConfig(self))
    }
}

/// Validated hyperparameters of CERTIFY, made by [`CertifyConfig::check`].
///
/// # Example
/// ```
/// use randomized_smoothing::CertifyConfig;
///
/// let config = CertifyConfig::default().check()?;
/// assert_eq!(config.batch_size(), 400);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CertifyValidConfig(CertifyConfig);

impl CertifyValidConfig {
    /// Selection sample size.
    pub fn n0(&self) -> u64 {
        self.0.n0
    }

    /// Estimation sample size.
    pub fn n(&self) -> u64 {
        self.0.n
    }

    /// Failure probability.
    pub fn alpha(&self) -> f64 {
        self.0.alpha
    }

    /// Samples per forward pass.
    pub fn batch_size(&self) -> usize {
        self.0.batch_size
    }

    /// Whether the two-sided certificate is used (see [`CertifyConfig::two_sided`]).
    pub fn is_two_sided(&self) -> bool {
        self.0.two_sided
    }
}

/// Unchecked hyperparameters of PREDICT; [`check`](Self::check) them into a [`PredictValidConfig`].
///
/// Defaults follow the paper's `predict.py`: `n = 100_000`, `alpha = 0.001`, batch size 400.
///
/// # Example
/// ```
/// use randomized_smoothing::PredictConfig;
///
/// let config = PredictConfig::default().n(1_000).alpha(0.01).check()?;
/// assert_eq!((config.n(), config.alpha()), (1_000, 0.01));
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredictConfig {
    n: u64,
    alpha: f64,
    batch_size: usize,
}

impl Default for PredictConfig {
    fn default() -> Self {
        Self {
            n: 100_000,
            alpha: 0.001,
            batch_size: 400,
        }
    }
}

impl PredictConfig {
    /// Number of noisy samples.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::PredictConfig;
    /// assert_eq!(PredictConfig::default().n(100).check()?.n(), 100);
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
    /// # use randomized_smoothing::PredictConfig;
    /// assert!(PredictConfig::default().alpha(0.0).check().is_err());
    /// ```
    pub fn alpha(mut self, alpha: f64) -> Self {
        self.alpha = alpha;
        self
    }

    /// Samples per forward pass.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::PredictConfig;
    /// assert!(PredictConfig::default().batch_size(0).check().is_err());
    /// ```
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Validates the parameters.
    ///
    /// # Errors
    /// As [`CertifyConfig::check`]; [`Error::SampleSizeTooSmall`] when even `n` agreeing
    /// samples give a two-sided p-value above alpha (`2^(1-n) > alpha`).
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::{Error, PredictConfig};
    ///
    /// let err = PredictConfig::default().n(10).alpha(0.001).check().unwrap_err();
    /// assert!(matches!(err, Error::SampleSizeTooSmall { min_n: 11, .. }));
    /// ```
    pub fn check(self) -> Result<PredictValidConfig> {
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
        Ok(PredictValidConfig(self))
    }
}

/// Validated hyperparameters of PREDICT, made by [`PredictConfig::check`].
///
/// # Example
/// ```
/// # use randomized_smoothing::PredictConfig;
/// let config = PredictConfig::default().check()?;
/// assert_eq!(config.batch_size(), 400);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredictValidConfig(PredictConfig);

impl PredictValidConfig {
    /// Number of noisy samples.
    pub fn n(&self) -> u64 {
        self.0.n
    }

    /// Failure probability.
    pub fn alpha(&self) -> f64 {
        self.0.alpha
    }

    /// Samples per forward pass.
    pub fn batch_size(&self) -> usize {
        self.0.batch_size
    }
}
