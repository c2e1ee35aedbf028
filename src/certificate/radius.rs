//! The paper's Theorem 1: the certified l2 radius of Gaussian smoothing. The earlier, weaker
//! guarantees it is compared with are in [`prior`](super::prior), the l1 radii of other noise
//! families in [`l1`](super::l1).
//!
//! Each takes a lower bound `p_a` on the probability of the top class and an upper bound `p_b`
//! on that of every other class (the paper's `CERTIFY` uses `p_b = 1 - p_a`).
//!
//! # Example
//! ```
//! use randomized_smoothing::certificate::radius::gaussian_radius_from_counts;
//!
//! // The paper's setting: n = 100,000, alpha = 0.001, all samples agree, sigma = 0.25.
//! let r = gaussian_radius_from_counts(0.25, 100_000, 100_000, 0.001)?.unwrap();
//! assert!((r - 0.25 * 3.8114565633899145).abs() < 1e-12);
//! # Ok::<(), randomized_smoothing::Error>(())
//! ```

use crate::error::{Error, Result, check_open_unit, check_positive, check_sigma};
use crate::stats::binomial::clopper_pearson_lower_pair;
use crate::stats::special::normal_quantile_lower;

pub(crate) fn check_pair(p_a: f64, p_b: f64) -> Result<()> {
    let invalid = |reason: String| {
        Err(Error::InvalidParameter {
            name: "p_a, p_b",
            reason,
        })
    };
    if !((0.0..=1.0).contains(&p_a) && (0.0..=1.0).contains(&p_b)) {
        return invalid(format!(
            "probabilities must lie in [0, 1], got p_a = {p_a}, p_b = {p_b}"
        ));
    }
    if p_a <= p_b {
        return invalid(format!(
            "no certificate unless p_a > p_b, got p_a = {p_a}, p_b = {p_b}"
        ));
    }
    if p_a + p_b > 1.0 + 1e-12 {
        return invalid(format!("p_a + p_b = {} exceeds 1", p_a + p_b));
    }
    Ok(())
}

/// `PhiInv(p)` from the probability and its complement, whichever is more precise.
fn phi_inv_pair(p: f64, q: f64) -> f64 {
    if p <= q {
        normal_quantile_lower(p)
    } else {
        -normal_quantile_lower(q)
    }
}

/// Theorem 1: the smoothed classifier's prediction is constant within the l2 ball of radius
/// `sigma / 2 * (PhiInv(p_a) - PhiInv(p_b))`. This radius is tight (Theorem 2).
///
/// # Errors
/// [`Error::InvalidSigma`] unless sigma is finite and positive; [`Error::InvalidParameter`]
/// unless `0 <= p_b < p_a <= 1` and `p_a + p_b <= 1`. The radius is infinite when `p_a = 1`.
///
/// # Example
/// ```
/// use randomized_smoothing::certificate::radius::gaussian_radius;
///
/// // With p_b = 1 - p_a this is sigma * PhiInv(p_a).
/// let r = gaussian_radius(0.5, 0.975, 0.025)?;
/// assert!((r - 0.5 * 1.959963984540054).abs() < 1e-14);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn gaussian_radius(sigma: f64, p_a: f64, p_b: f64) -> Result<f64> {
    check_sigma(sigma)?;
    check_pair(p_a, p_b)?;
    Ok(radius_unchecked(sigma, (p_a, 1.0 - p_a), (p_b, 1.0 - p_b)))
}

/// Theorem 1 from probabilities given with their complements `(p, 1 - p)`.
pub(crate) fn radius_unchecked(sigma: f64, p_a: (f64, f64), p_b: (f64, f64)) -> f64 {
    0.5 * sigma * (phi_inv_pair(p_a.0, p_a.1) - phi_inv_pair(p_b.0, p_b.1))
}

/// The paper's CERTIFY radius from counts: `sigma * PhiInv(pA)` with `pA` the one-sided
/// Clopper-Pearson lower bound at level `1 - alpha` from `n_a` of `n` samples, or `None`
/// (abstain) unless `pA > 1/2`.
///
/// `PhiInv` is taken of `1 - pA` computed directly, so the radius keeps full precision when
/// `pA` is within 1e-16 of 1.
///
/// # Errors
/// [`Error::InvalidSigma`], [`Error::InvalidProbability`] for alpha outside (0, 1),
/// [`Error::ZeroCount`] for `n = 0`, [`Error::SuccessesExceedTrials`] for `n_a > n`.
///
/// # Example
/// ```
/// use randomized_smoothing::certificate::radius::gaussian_radius_from_counts;
///
/// let r = gaussian_radius_from_counts(0.25, 99_000, 100_000, 0.001)?.unwrap();
/// assert!((r - 0.25 * 2.2881).abs() < 1e-3);
/// assert_eq!(gaussian_radius_from_counts(0.25, 50, 100, 0.001)?, None);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn gaussian_radius_from_counts(
    sigma: f64,
    n_a: u64,
    n: u64,
    alpha: f64,
) -> Result<Option<f64>> {
    check_sigma(sigma)?;
    check_open_unit("alpha", alpha)?;
    check_positive("n", n)?;
    if n_a > n {
        return Err(Error::SuccessesExceedTrials {
            successes: n_a,
            trials: n,
        });
    }
    let (p, q) = clopper_pearson_lower_pair(n_a, n, alpha);
    Ok((p > 0.5).then(|| sigma * -normal_quantile_lower(q)))
}
