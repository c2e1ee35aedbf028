//! Certified accuracy of a test set: the paper's approximate certified accuracy and the
//! Appendix D lower bound on the true certified accuracy.
//!
//! CERTIFY's certificates are each wrong with probability at most alpha, so the fraction of
//! a test set certified correct at radius r (the approximate certified accuracy, which the
//! paper's tables report) can exceed the true certified accuracy. Appendix D bounds the gap.
//!
//! # Example
//! ```
//! use randomized_smoothing::certificate::accuracy::{Outcome, approximate_certified_accuracy};
//!
//! let outcomes = [Outcome { correct: true, radius: 0.4 }, Outcome { correct: false, radius: 0.0 }];
//! assert_eq!(approximate_certified_accuracy(&outcomes, &[0.25])?, vec![0.5]);
//! # Ok::<(), randomized_smoothing::Error>(())
//! ```

use crate::error::{Error, Result, check_open_unit, check_positive};
use crate::stats::binomial::{binomial_cdf, binomial_test_two_sided};

/// The outcome of CERTIFY on one labelled test example.
///
/// # Example
/// ```
/// use randomized_smoothing::certificate::accuracy::Outcome;
///
/// let o = Outcome { correct: true, radius: 0.8 };
/// assert!(o.certified_at(0.5) && !o.certified_at(1.0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// CERTIFY returned the true label (false on abstention).
    pub correct: bool,
    /// The certified radius (0 on abstention).
    pub radius: f64,
}

impl Outcome {
    /// Correct and certified at radius at least `r`.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::certificate::accuracy::Outcome;
    ///
    /// assert!(!Outcome { correct: false, radius: 2.0 }.certified_at(0.0));
    /// ```
    pub fn certified_at(&self, r: f64) -> bool {
        self.correct && self.radius >= r
    }
}

/// The approximate certified accuracy at each radius in `radii`: the fraction of `outcomes`
/// that are correct with a radius at least that large.
///
/// # Errors
/// [`Error::ZeroCount`] for no outcomes; [`Error::InvalidParameter`] for a NaN radius.
///
/// # Example
/// ```
/// use randomized_smoothing::certificate::accuracy::{Outcome, approximate_certified_accuracy};
///
/// let outcomes = [
///     Outcome { correct: true, radius: 0.3 },
///     Outcome { correct: true, radius: 0.9 },
///     Outcome { correct: false, radius: 0.0 },
///     Outcome { correct: false, radius: 1.2 }, // wrong class, certified: never counts
/// ];
/// let acc = approximate_certified_accuracy(&outcomes, &[0.0, 0.5, 1.0])?;
/// assert_eq!(acc, vec![0.5, 0.25, 0.0]);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn approximate_certified_accuracy(outcomes: &[Outcome], radii: &[f64]) -> Result<Vec<f64>> {
    check_positive("outcomes", outcomes.len() as u64)?;
    if let Some(r) = radii
        .iter()
        .chain(outcomes.iter().map(|o| &o.radius))
        .find(|r| r.is_nan())
    {
        return Err(Error::InvalidParameter {
            name: "radius",
            reason: format!("{r} is not a number"),
        });
    }
    let m = outcomes.len() as f64;
    Ok(radii
        .iter()
        .map(|&r| outcomes.iter().filter(|o| o.certified_at(r)).count() as f64 / m)
        .collect())
}

/// The average certified radius (ACR) of a test set, as MACER (Zhai et al. 2020) defines it:
/// the mean over all examples of the certified radius, counting 0 for an example that
/// CERTIFY got wrong or abstained on. One number that rewards both accuracy and radius.
///
/// # Errors
/// [`Error::ZeroCount`] for no outcomes; [`Error::InvalidParameter`] for a NaN or infinite
/// radius of a correct outcome.
///
/// # Example
/// ```
/// use randomized_smoothing::certificate::accuracy::{Outcome, average_certified_radius};
///
/// let outcomes = [
///     Outcome { correct: true, radius: 0.9 },
///     Outcome { correct: true, radius: 0.3 },
///     Outcome { correct: false, radius: 1.2 }, // wrong class: counts 0
///     Outcome { correct: false, radius: 0.0 }, // abstained
/// ];
/// assert!((average_certified_radius(&outcomes)? - 0.3).abs() < 1e-12);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn average_certified_radius(outcomes: &[Outcome]) -> Result<f64> {
    check_positive("outcomes", outcomes.len() as u64)?;
    let mut sum = 0.0;
    for o in outcomes.iter().filter(|o| o.correct) {
        if !o.radius.is_finite() {
            return Err(Error::InvalidParameter {
                name: "radius",
                reason: format!("{} is not a finite radius", o.radius),
            });
        }
        sum += o.radius;
    }
    Ok(sum / outcomes.len() as f64)
}

/// Two certification runs on the same examples compared at one radius: how many examples
/// each certified correct there that the other did not, and the exact McNemar test of
/// whether the two certify at the same rate.
///
/// # Example
/// ```
/// use randomized_smoothing::certificate::accuracy::{Outcome, PairedComparison};
///
/// let yes = Outcome { correct: true, radius: 1.0 };
/// let no = Outcome { correct: false, radius: 0.0 };
/// let first = [yes, no, no, yes];
/// let second = [yes, yes, yes, yes];
/// let c = PairedComparison::new(&first, &second, 0.5)?;
/// assert_eq!((c.both, c.only_first, c.only_second, c.neither), (2, 0, 2, 0));
/// // 2 of 2 discordant pairs one way: 2 * (1/2)^2.
/// assert!((c.p_value - 0.5).abs() < 1e-12);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedComparison {
    /// The radius compared at.
    pub radius: f64,
    /// Examples both runs certified correct at the radius.
    pub both: usize,
    /// Examples only the first run certified correct at the radius.
    pub only_first: usize,
    /// Examples only the second run certified correct at the radius.
    pub only_second: usize,
    /// Examples neither run certified correct at the radius.
    pub neither: usize,
    /// The two-sided exact McNemar p-value: the binomial test of `only_second` successes in
    /// `only_first + only_second` trials at 1/2 (1 when no example tells the runs apart).
    pub p_value: f64,
}

impl PairedComparison {
    /// Compares `first` and `second`, the outcomes of two runs on the same examples in the
    /// same order, at `radius`.
    ///
    /// # Errors
    /// [`Error::ZeroCount`] for no outcomes; [`Error::InvalidParameter`] if the runs have
    /// different lengths or the radius is NaN.
    pub fn new(first: &[Outcome], second: &[Outcome], radius: f64) -> Result<Self> {
        check_positive("outcomes", first.len() as u64)?;
        if first.len() != second.len() {
            return Err(Error::InvalidParameter {
                name: "outcomes",
                reason: format!(
                    "paired runs need the same examples: {} outcomes against {}",
                    first.len(),
                    second.len()
                ),
            });
        }
        if radius.is_nan() {
            return Err(Error::InvalidParameter {
                name: "radius",
                reason: "NaN".into(),
            });
        }
        let mut c = Self {
            radius,
            both: 0,
            only_first: 0,
            only_second: 0,
            neither: 0,
            p_value: 1.0,
        };
        for (a, b) in first.iter().zip(second) {
            match (a.certified_at(radius), b.certified_at(radius)) {
                (true, true) => c.both += 1,
                (true, false) => c.only_first += 1,
                (false, true) => c.only_second += 1,
                (false, false) => c.neither += 1,
            }
        }
        let discordant = (c.only_first + c.only_second) as u64;
        if discordant > 0 {
            c.p_value = binomial_test_two_sided(c.only_second as u64, discordant, 0.5)?;
        }
        Ok(c)
    }
}

/// How [`certified_accuracy_lower_bound`] bounds the number of wrong certificates. The
/// default, used by the examples and `smoothing analyze` alike, is the exact binomial tail,
/// the tighter of the two; name the bound with [`name`](Self::name) wherever a figure is
/// shown, since the two give different numbers for the same log.
///
/// # Example
/// ```
/// use randomized_smoothing::certificate::accuracy::AccuracyBound;
///
/// assert_eq!(AccuracyBound::default(), AccuracyBound::Binomial);
/// assert_eq!(AccuracyBound::Bernstein.name(), "Bernstein");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccuracyBound {
    /// The paper's Theorem 6, from Bernstein's inequality.
    Bernstein,
    /// The exact binomial tail in place of Bernstein's inequality: valid under the same
    /// assumptions and never looser than needed for the stochastic bound it rests on.
    #[default]
    Binomial,
}

impl AccuracyBound {
    /// The bound's name for tables and legends: `exact binomial` or `Bernstein`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bernstein => "Bernstein",
            Self::Binomial => "exact binomial",
        }
    }
}

/// A lower bound on the true certified accuracy at some radius that holds with probability at
/// least `1 - rho` over CERTIFY's randomness, from the approximate certified accuracy
/// `approx` at that radius on `m` test examples certified at failure rate `alpha`.
///
/// # The argument (Appendix D)
/// Let `m_good` examples be truly certified at the radius. Each of the other `m - m_good`
/// counts towards `approx` with probability at most alpha, independently, so their number X
/// is stochastically below Binomial(m - m_good, alpha), and
/// `m approx <= m_good + X`.
///
/// - [`AccuracyBound::Bernstein`]: Bernstein's inequality gives, with probability
///   `1 - rho`, `X <= alpha (m - m_good) + sqrt(2 m v ln(1/rho)) + ln(1/rho)/3` with
///   `v = alpha (1 - alpha)` (1/4 if alpha > 1/2), hence
///   `m_good / m >= (approx - alpha - sqrt(2 v ln(1/rho) / m) - ln(1/rho) / (3m)) / (1 - alpha)`.
///   The paper's released analysis code computes
///   `approx - alpha - sqrt(alpha (1 - alpha) ln(1/rho) / m) - ln(1/rho) / (3m)`: its
///   square-root term lacks the factor 2 of Bernstein's inequality, which the inequality does
///   not support (`tests/it/accuracy_bound.rs` shows its coverage falls below `1 - rho`); it also
///   omits the division by `1 - alpha`, which the inequality does support and which tightens
///   the bound.
/// - [`AccuracyBound::Binomial`]: with `Q(k)` the `(1 - rho)`-quantile of Binomial(k, alpha),
///   `X <= Q(m - m_good)` with probability `1 - rho`, and the bound is the smallest `g` with
///   `g + Q(m - g) >= m approx`, divided by m.
///
/// The result is clamped at 0.
///
/// # Errors
/// [`Error::InvalidProbability`] unless alpha and rho lie in (0, 1);
/// [`Error::InvalidParameter`] unless `approx` lies in [0, 1]; [`Error::ZeroCount`] for `m = 0`.
///
/// # Example
/// ```
/// use randomized_smoothing::certificate::accuracy::{AccuracyBound, certified_accuracy_lower_bound};
///
/// // The paper's Appendix H.2 setting: alpha = 0.001, rho = 0.001, 500 examples.
/// let b = certified_accuracy_lower_bound(0.6, 500, 0.001, 0.001, AccuracyBound::Bernstein)?;
/// assert!(0.58 < b && b < 0.6);
/// let e = certified_accuracy_lower_bound(0.6, 500, 0.001, 0.001, AccuracyBound::Binomial)?;
/// assert!(b < e && e < 0.6);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn certified_accuracy_lower_bound(
    approx: f64,
    m: u64,
    alpha: f64,
    rho: f64,
    method: AccuracyBound,
) -> Result<f64> {
    check_open_unit("alpha", alpha)?;
    check_open_unit("rho", rho)?;
    check_positive("m", m)?;
    if !(0.0..=1.0).contains(&approx) {
        return Err(Error::InvalidParameter {
            name: "approx",
            reason: format!("an accuracy must lie in [0, 1], got {approx}"),
        });
    }
    let bound = match method {
        AccuracyBound::Bernstein => {
            let (mf, log) = (m as f64, (1.0 / rho).ln());
            let v = if alpha <= 0.5 {
                alpha * (1.0 - alpha)
            } else {
                0.25
            };
            (approx - alpha - (2.0 * v * log / mf).sqrt() - log / (3.0 * mf)) / (1.0 - alpha)
        }
        AccuracyBound::Binomial => {
            // Number of certified-correct examples, recovered from the fraction.
            let observed = (approx * m as f64).round() as u64;
            let quantile = |k: u64| binomial_quantile(k, alpha, 1.0 - rho);
            let mut lo = 0;
            let mut hi = m;
            // Smallest g with g + Q(m - g) >= observed; g + Q(m - g) is non-decreasing in g.
            while lo < hi {
                let g = lo + (hi - lo) / 2;
                if g + quantile(m - g) >= observed {
                    hi = g
                } else {
                    lo = g + 1
                }
            }
            lo as f64 / m as f64
        }
    };
    Ok(bound.max(0.0))
}

/// Smallest q with `P(Binomial(k, p) <= q) >= level`.
fn binomial_quantile(k: u64, p: f64, level: f64) -> u64 {
    if k == 0 {
        return 0;
    }
    let (mut lo, mut hi) = (0, k);
    while lo < hi {
        let q = lo + (hi - lo) / 2;
        // Arguments are valid by construction (q <= k, p in (0, 1)).
        if binomial_cdf(q, k, p).unwrap_or(1.0) >= level {
            hi = q
        } else {
            lo = q + 1
        }
    }
    lo
}
