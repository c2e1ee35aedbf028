//! Certified l2 radii for Gaussian smoothing: the paper's Theorem 1 and, for comparison, the
//! earlier and weaker guarantees of Lecuyer et al. (2019) and Li et al. (2018) (Appendix I).
//!
//! Each takes a lower bound `p_a` on the probability of the top class and an upper bound `p_b`
//! on that of every other class (the paper's `CERTIFY` uses `p_b = 1 - p_a`).
//!
//! # Example
//! ```
//! use randomized_smoothing::radius::gaussian_radius_from_counts;
//!
//! // The paper's setting: n = 100,000, alpha = 0.001, all samples agree, sigma = 0.25.
//! let r = gaussian_radius_from_counts(0.25, 100_000, 100_000, 0.001)?.unwrap();
//! assert!((r - 0.25 * 3.8114565633899145).abs() < 1e-12);
//! # Ok::<(), randomized_smoothing::Error>(())
//! ```

use crate::binomial::clopper_pearson_lower_pair;
use crate::error::{Error, Result, check_open_unit, check_positive};
use crate::special::normal_quantile_lower;

pub(crate) fn check_sigma(sigma: f64) -> Result<f64> {
    if sigma.is_finite() && sigma > 0.0 {
        Ok(sigma)
    } else {
        Err(Error::InvalidSigma(sigma))
    }
}

fn check_pair(p_a: f64, p_b: f64) -> Result<()> {
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
/// use randomized_smoothing::radius::gaussian_radius;
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
/// use randomized_smoothing::radius::gaussian_radius_from_counts;
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

/// Maximizes a function on (lo, hi): a grid to find the right neighbourhood, then golden
/// section inside it. The objectives below are smooth and, on every case plotted in the
/// paper's Figure 16, unimodal; the grid guards against a poor start if they are not.
fn maximize(f: impl Fn(f64) -> f64, lo: f64, hi: f64) -> f64 {
    const GRID: usize = 400;
    let at = |i: usize| lo + (hi - lo) * i as f64 / GRID as f64;
    let value = |x: f64| {
        let v = f(x);
        if v.is_finite() { v } else { f64::NEG_INFINITY }
    };
    let best = (1..GRID)
        .max_by(|&i, &j| value(at(i)).total_cmp(&value(at(j))))
        .unwrap_or(1);
    let (mut a, mut b) = (at(best - 1), at(best + 1));
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let mut c = b - ratio * (b - a);
    let mut d = a + ratio * (b - a);
    for _ in 0..200 {
        if value(c) > value(d) {
            b = d;
        } else {
            a = c;
        }
        c = b - ratio * (b - a);
        d = a + ratio * (b - a);
    }
    value(at(best)).max(value(0.5 * (a + b)))
}

/// The radius implied by Lecuyer et al. (2019)'s differential-privacy argument, in the
/// paper's notation (Appendix I.1):
/// `sup_{0 < b < min(1, ln(p_a/p_b)/2)} sigma b / sqrt(2 ln(1.25 (1 + e^b) / (p_a - e^{2b} p_b)))`.
///
/// # Errors
/// As [`gaussian_radius`].
///
/// # Example
/// ```
/// use randomized_smoothing::radius::{gaussian_radius, lecuyer_radius};
///
/// let ours = gaussian_radius(1.0, 0.99, 0.01)?;
/// let theirs = lecuyer_radius(1.0, 0.99, 0.01)?;
/// assert!(0.0 < theirs && theirs < ours);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn lecuyer_radius(sigma: f64, p_a: f64, p_b: f64) -> Result<f64> {
    check_sigma(sigma)?;
    check_pair(p_a, p_b)?;
    let beta_max = if p_b == 0.0 {
        1.0
    } else {
        (0.5 * (p_a / p_b).ln()).min(1.0)
    };
    let objective = |b: f64| {
        let margin = p_a - (2.0 * b).exp() * p_b;
        if margin <= 0.0 {
            return f64::NEG_INFINITY;
        }
        b / (2.0 * (1.25 * (1.0 + b.exp()) / margin).ln()).sqrt()
    };
    Ok(sigma * maximize(objective, 0.0, beta_max).max(0.0))
}

/// The radius implied by Li et al. (2018)'s Renyi-divergence argument (Appendix I.2):
/// `sigma * sqrt(sup_{b > 1} -(2/b) ln(1 - p_a - p_b + 2 ((p_a^{1-b} + p_b^{1-b}) / 2)^{1/(1-b)}))`,
/// maximised numerically over b.
///
/// # Errors
/// As [`gaussian_radius`].
///
/// # Example
/// ```
/// use randomized_smoothing::radius::{gaussian_radius, li_radius, lecuyer_radius};
///
/// let (ours, li, lecuyer) = (
///     gaussian_radius(1.0, 0.9, 0.1)?,
///     li_radius(1.0, 0.9, 0.1)?,
///     lecuyer_radius(1.0, 0.9, 0.1)?,
/// );
/// assert!(lecuyer < li && li < ours);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn li_radius(sigma: f64, p_a: f64, p_b: f64) -> Result<f64> {
    check_sigma(sigma)?;
    check_pair(p_a, p_b)?;
    if p_a == 1.0 {
        return Ok(f64::INFINITY);
    }
    let (ln_a, ln_b) = (p_a.ln(), p_b.ln());
    // b = 1 + e^s: the sup is often approached as b -> 1 (KL limit) or at moderate b.
    let objective = |s: f64| {
        let b = 1.0 + s.exp();
        let e = 1.0 - b; // < 0
        // ln of the power mean ((p_a^e + p_b^e) / 2)^(1/e), written as
        // ln p_a + ln(1 + (e^x - 1) / 2) / e with x = e (ln p_b - ln p_a) >= 0, which stays
        // accurate as b -> 1 where both terms of the mean tend to 1.
        let x = e * (ln_b - ln_a);
        let ln_mean = if x > 30.0 {
            x - std::f64::consts::LN_2
        } else {
            (0.5 * x.exp_m1()).ln_1p()
        };
        let power_mean = (ln_a + ln_mean / e).exp();
        let inner = 1.0 - p_a - p_b + 2.0 * power_mean;
        -(2.0 / b) * inner.ln()
    };
    Ok(sigma * maximize(objective, -30.0, 12.0).max(0.0).sqrt())
}

/// The l1 radius of Laplace smoothing with scale `lambda` (Teng, Lee & Yuan, ICLR 2020,
/// Theorem 1): `max(lambda/2 ln(p_a/p_b), -lambda ln(1 - p_a + p_b))`. With `p_b = 1 - p_a`
/// it is `lambda ln(1 / (2 (1 - p_a)))`, which is exact for a half-space in one dimension.
///
/// # Errors
/// As [`gaussian_radius`].
///
/// # Example
/// ```
/// use randomized_smoothing::radius::laplace_radius;
///
/// // A point at distance t from a half-space boundary has p_a = 1 - exp(-t / lambda) / 2:
/// let (lambda, t) = (0.5, 0.3);
/// let p_a = 1.0 - 0.5 * (-t / lambda as f64).exp();
/// assert!((laplace_radius(lambda, p_a, 1.0 - p_a)? - t).abs() < 1e-12);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn laplace_radius(lambda: f64, p_a: f64, p_b: f64) -> Result<f64> {
    check_sigma(lambda)?;
    check_pair(p_a, p_b)?;
    Ok(laplace_radius_unchecked(lambda, p_a, p_b))
}

pub(crate) fn laplace_radius_unchecked(lambda: f64, p_a: f64, p_b: f64) -> f64 {
    let ratio = if p_b > 0.0 {
        0.5 * lambda * (p_a / p_b).ln()
    } else {
        f64::INFINITY
    };
    // -ln(1 - (p_a - p_b)), accurate when p_a - p_b is small.
    let gap = -lambda * (-(p_a - p_b)).ln_1p();
    ratio.max(gap)
}

/// The l1 radius of uniform smoothing on `[-lambda, lambda]` per coordinate (Lee et al.,
/// NeurIPS 2019; Yang et al., ICML 2020): `lambda (p_a - p_b)`, from the total-variation
/// distance `||delta||_1 / (2 lambda)` between the noise and its shift by `delta`. With
/// `p_b = 1 - p_a` it is `2 lambda (p_a - 1/2)`, exact for a half-space in one dimension.
///
/// # Errors
/// As [`gaussian_radius`].
///
/// # Example
/// ```
/// use randomized_smoothing::radius::uniform_radius;
///
/// assert!((uniform_radius(1.0, 0.75, 0.25)? - 0.5).abs() < 1e-15);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn uniform_radius(lambda: f64, p_a: f64, p_b: f64) -> Result<f64> {
    check_sigma(lambda)?;
    check_pair(p_a, p_b)?;
    Ok(uniform_radius_unchecked(lambda, p_a, p_b))
}

pub(crate) fn uniform_radius_unchecked(lambda: f64, p_a: f64, p_b: f64) -> f64 {
    lambda * (p_a - p_b)
}
