//! What a certification run would have certified with other settings, computed from its log:
//! the paper's Figure 8. Left: the same counts under the weaker radii of Lecuyer et al. and
//! Li et al. (Appendix I); middle: more or fewer samples `n`, the class proportions held
//! fixed; right: another `alpha`.
//!
//! A log keeps only the radius, so the count behind it is recovered first: the radius is
//! strictly increasing in the count `n_A`, and the logged value (three significant digits)
//! pins the count down to within a unit or so, which moves `p_A` by about `1/n`. As in the
//! paper's appendix J.2, nothing is resampled: the projected run feeds `n_A' = round(n_A n'/n)`
//! of `n'` to the Clopper-Pearson bound.
//!
//! Rows that abstained or certified a wrong class stay so in every projection: their counts
//! are not in the log. For `n' > n` this understates only the smallest radii, those of inputs
//! whose top class has a frequency just above 1/2.
//!
//! # Example
//! ```
//! use randomized_smoothing::certificate::accuracy::Outcome;
//! use randomized_smoothing::certificate::projection::{LoggedSettings, Projection, RadiusBound, project};
//! use randomized_smoothing::certificate::radius::gaussian_radius_from_counts;
//!
//! let logged = LoggedSettings::new(0.25, 100_000, 0.001)?;
//! // A row as the paper's certify.py logs it: 99,998 of 100,000 samples, radius rounded
//! // (near n the count is recovered exactly; lower down, to within the rounding).
//! let exact = gaussian_radius_from_counts(0.25, 99_998, 100_000, 0.001)?.unwrap();
//! let radius = format!("{exact:.3}").parse::<f64>()?;
//! assert_eq!(logged.count_for(radius)?, 99_998);
//!
//! let rows = [Outcome { correct: true, radius }];
//! let fewer = project(&rows, &logged, &Projection::new(1_000, 0.001, RadiusBound::Cohen)?)?;
//! assert!(fewer[0].radius < radius);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::prior::{lecuyer_radius, li_radius};
use super::radius::radius_unchecked;
use crate::certificate::accuracy::Outcome;
use crate::error::check_sigma;
use crate::error::{Error, Result, check_open_unit, check_positive};
use crate::stats::binomial::clopper_pearson_lower_pair;
use crate::stats::special::normal_quantile_lower;

/// The settings a certification log was written with: the noise level and the `n` and
/// `alpha` of CERTIFY.
///
/// # Example
/// ```
/// use randomized_smoothing::certificate::projection::LoggedSettings;
///
/// assert!(LoggedSettings::new(0.5, 100_000, 0.001).is_ok());
/// assert!(LoggedSettings::new(0.0, 100_000, 0.001).is_err());
/// assert!(LoggedSettings::new(0.5, 0, 0.001).is_err());
/// assert!(LoggedSettings::new(0.5, 100_000, 1.0).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoggedSettings {
    sigma: f64,
    n: u64,
    alpha: f64,
}

impl LoggedSettings {
    /// Validates the settings.
    ///
    /// # Errors
    /// [`Error::InvalidSigma`] unless sigma is finite and positive, [`Error::ZeroCount`] for
    /// `n = 0`, [`Error::InvalidProbability`] for alpha outside (0, 1).
    ///
    /// # Example
    /// ```
    /// let s = randomized_smoothing::certificate::projection::LoggedSettings::new(0.25, 10_000, 0.01)?;
    /// assert_eq!((s.sigma(), s.n(), s.alpha()), (0.25, 10_000, 0.01));
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn new(sigma: f64, n: u64, alpha: f64) -> Result<Self> {
        Ok(Self {
            sigma: check_sigma(sigma)?,
            n: check_positive("n", n)?,
            alpha: check_open_unit("alpha", alpha)?,
        })
    }

    /// The noise level.
    pub fn sigma(&self) -> f64 {
        self.sigma
    }

    /// CERTIFY's number of estimation samples.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// CERTIFY's failure probability.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// CERTIFY's radius for `n_a` of `n` samples, `None` where it abstains.
    fn radius_of(&self, n_a: u64) -> Option<f64> {
        let (p, q) = clopper_pearson_lower_pair(n_a, self.n, self.alpha);
        (p > 0.5).then(|| self.sigma * -normal_quantile_lower(q))
    }

    /// The count `n_A` whose radius is nearest to a logged (positive) radius.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a radius that is not finite and positive, or that no
    /// count reproduces to within its rounding (three significant digits), which means the
    /// log was written with other settings.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::certificate::projection::LoggedSettings;
    ///
    /// // The paper's largest radius at sigma = 0.25: all 100,000 samples agree.
    /// let s = LoggedSettings::new(0.25, 100_000, 0.001)?;
    /// assert_eq!(s.count_for(0.953)?, 100_000);
    /// // sigma = 0.5 could not have produced it with n = 1,000.
    /// assert!(LoggedSettings::new(0.5, 1_000, 0.001)?.count_for(2.5).is_err());
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn count_for(&self, radius: f64) -> Result<u64> {
        let invalid = |reason: String| Error::InvalidParameter {
            name: "radius",
            reason,
        };
        if !(radius.is_finite() && radius > 0.0) {
            return Err(invalid(format!(
                "a certified radius is finite and positive, got {radius}"
            )));
        }
        // Smallest count whose radius reaches the logged one (radius_of increases with n_a).
        let reaches = |k: u64| self.radius_of(k).is_some_and(|r| r >= radius);
        let (mut lo, mut hi) = (0, self.n);
        if reaches(hi) {
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if reaches(mid) {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
        }
        let distance = |k: u64| {
            self.radius_of(k)
                .map_or(f64::INFINITY, |r| (r - radius).abs())
        };
        let best = if hi > 0 && distance(hi - 1) < distance(hi) {
            hi - 1
        } else {
            hi
        };
        // Half a unit in the third significant digit, with room for the float's own error.
        let tolerance = 0.5 * 10f64.powf(radius.log10().floor() - 2.0) * (1.0 + 1e-6);
        if distance(best) > tolerance {
            return Err(invalid(format!(
                "no count of n = {} at sigma = {}, alpha = {} gives a radius within {tolerance:.2e} \
                 of {radius} (nearest: {:?}); was the log written with these settings?",
                self.n,
                self.sigma,
                self.alpha,
                self.radius_of(best)
            )));
        }
        Ok(best)
    }
}

/// A certified-radius formula, applied to the lower bound `p_A` with `p_B = 1 - p_A`.
///
/// # Example
/// ```
/// use randomized_smoothing::certificate::projection::RadiusBound;
///
/// let radii: Vec<f64> = RadiusBound::ALL.iter().map(|b| b.radius(1.0, 0.99).unwrap()).collect();
/// assert!(radii[0] > radii[2] && radii[2] > radii[1]); // Cohen > Li > Lecuyer
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RadiusBound {
    /// Theorem 1 of the paper: `sigma * PhiInv(p_A)`, tight.
    Cohen,
    /// Lecuyer et al. (2019), [`super::prior::lecuyer_radius`].
    Lecuyer,
    /// Li et al. (2018), [`super::prior::li_radius`].
    Li,
}

impl RadiusBound {
    /// The three formulas, in the order of the paper's Figure 5 legend.
    pub const ALL: [Self; 3] = [Self::Cohen, Self::Lecuyer, Self::Li];

    /// The name the figures and tables use.
    ///
    /// # Example
    /// ```
    /// assert_eq!(randomized_smoothing::certificate::projection::RadiusBound::Li.name(), "Li et al.");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Self::Cohen => "Cohen et al. (Theorem 1)",
            Self::Lecuyer => "Lecuyer et al.",
            Self::Li => "Li et al.",
        }
    }

    /// The radius at noise level `sigma` for a lower bound `p_a` on the top class's
    /// probability (`p_B = 1 - p_a`).
    ///
    /// # Errors
    /// [`Error::InvalidSigma`]; [`Error::InvalidParameter`] unless `1/2 < p_a <= 1`.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::certificate::projection::RadiusBound;
    ///
    /// assert!((RadiusBound::Cohen.radius(0.5, 0.975)? - 0.5 * 1.959963984540054).abs() < 1e-12);
    /// assert!(RadiusBound::Li.radius(0.5, 0.5).is_err());
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn radius(self, sigma: f64, p_a: f64) -> Result<f64> {
        self.radius_pair(sigma, p_a, 1.0 - p_a)
    }

    /// As [`Self::radius`], with `p_A` given with its exact complement.
    fn radius_pair(self, sigma: f64, p_a: f64, q_a: f64) -> Result<f64> {
        check_sigma(sigma)?;
        if !(p_a > 0.5 && p_a <= 1.0) {
            return Err(Error::InvalidParameter {
                name: "p_a",
                reason: format!("no certificate unless 1/2 < p_a <= 1, got {p_a}"),
            });
        }
        match self {
            Self::Cohen => Ok(radius_unchecked(sigma, (p_a, q_a), (q_a, p_a))),
            Self::Lecuyer => lecuyer_radius(sigma, p_a, q_a),
            Self::Li => li_radius(sigma, p_a, q_a),
        }
    }
}

/// The settings a log is projected to: CERTIFY's `n` and `alpha`, and the radius formula.
///
/// # Example
/// ```
/// use randomized_smoothing::certificate::projection::{Projection, RadiusBound};
///
/// let p = Projection::new(1_000_000, 0.001, RadiusBound::Cohen)?;
/// assert_eq!(p.n(), 1_000_000);
/// assert!(Projection::new(1_000, 0.0, RadiusBound::Cohen).is_err());
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Projection {
    n: u64,
    alpha: f64,
    bound: RadiusBound,
}

impl Projection {
    /// Validates the settings.
    ///
    /// # Errors
    /// [`Error::ZeroCount`] for `n = 0`, [`Error::InvalidProbability`] for alpha outside (0, 1).
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::certificate::projection::{Projection, RadiusBound};
    ///
    /// assert!(Projection::new(0, 0.001, RadiusBound::Li).is_err());
    /// ```
    pub fn new(n: u64, alpha: f64, bound: RadiusBound) -> Result<Self> {
        Ok(Self {
            n: check_positive("n", n)?,
            alpha: check_open_unit("alpha", alpha)?,
            bound,
        })
    }

    /// The projected number of estimation samples.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// The projected failure probability.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// The radius formula.
    pub fn bound(&self) -> RadiusBound {
        self.bound
    }
}

/// Recomputes each outcome of a log written with `logged` settings as CERTIFY with the
/// settings `to` would have produced it (see the module documentation for the assumptions).
///
/// # Errors
/// As [`LoggedSettings::count_for`], for a correct row whose radius no count reproduces.
///
/// # Example
/// ```
/// use randomized_smoothing::certificate::accuracy::Outcome;
/// use randomized_smoothing::certificate::projection::{LoggedSettings, Projection, RadiusBound, project};
///
/// let logged = LoggedSettings::new(0.5, 100_000, 0.001)?;
/// let rows = [Outcome { correct: true, radius: 1.02 }, Outcome { correct: false, radius: 0.0 }];
/// // The same counts under Lecuyer et al.'s bound certify a smaller radius.
/// let lecuyer = project(&rows, &logged, &Projection::new(100_000, 0.001, RadiusBound::Lecuyer)?)?;
/// assert!(0.0 < lecuyer[0].radius && lecuyer[0].radius < 1.02);
/// assert_eq!(lecuyer[1], rows[1]);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn project(
    outcomes: &[Outcome],
    logged: &LoggedSettings,
    to: &Projection,
) -> Result<Vec<Outcome>> {
    outcomes
        .iter()
        .map(|o| {
            if !o.correct {
                return Ok(*o);
            }
            let n_a = logged.count_for(o.radius)?;
            // Same class proportion, rounded to a count of the new n (u128: no overflow).
            let scaled = (u128::from(n_a) * u128::from(to.n) * 2 + u128::from(logged.n))
                / (2 * u128::from(logged.n));
            let n_a = u64::try_from(scaled).unwrap_or(to.n).min(to.n);
            let (p, q) = clopper_pearson_lower_pair(n_a, to.n, to.alpha);
            if p <= 0.5 {
                return Ok(Outcome {
                    correct: false,
                    radius: 0.0,
                });
            }
            Ok(Outcome {
                correct: true,
                radius: to.bound.radius_pair(logged.sigma, p, q)?,
            })
        })
        .collect()
}
