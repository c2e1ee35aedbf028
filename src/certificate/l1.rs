//! Certified l1 radii of the noise families other than the Gaussian: Laplace noise (Teng, Lee &
//! Yuan, 2020) and uniform noise (Lee et al., 2019; Yang et al., 2020).

use super::radius::check_pair;
use crate::error::{Result, check_sigma};

/// The l1 radius of Laplace smoothing with scale `lambda` (Teng, Lee & Yuan, ICLR 2020,
/// Theorem 1): `max(lambda/2 ln(p_a/p_b), -lambda ln(1 - p_a + p_b))`. With `p_b = 1 - p_a`
/// it is `lambda ln(1 / (2 (1 - p_a)))`, which is exact for a half-space in one dimension.
///
/// # Errors
/// As [`gaussian_radius`](super::radius::gaussian_radius).
///
/// # Example
/// ```
/// use randomized_smoothing::certificate::l1::laplace_radius;
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
/// As [`gaussian_radius`](super::radius::gaussian_radius).
///
/// # Example
/// ```
/// use randomized_smoothing::certificate::l1::uniform_radius;
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
