//! The standard normal distribution: its CDF `Phi` and quantile `PhiInv`.
//!
//! Certified radii are `sigma * PhiInv(p)` with `p` close to 1, where `PhiInv` is steep and
//! `1 - p` cannot be recovered from `p`. [`normal_quantile_complement`] therefore takes the
//! upper-tail probability `1 - p` directly.
//!
//! # Example
//! ```
//! use randomized_smoothing::stats::normal::{normal_cdf, normal_quantile};
//!
//! let z = normal_quantile(0.9)?;
//! assert!((normal_cdf(z) - 0.9).abs() < 1e-15);
//! # Ok::<(), randomized_smoothing::Error>(())
//! ```

use crate::error::{Error, Result};
use crate::stats::special;

/// `Phi(z) = P(Z <= z)` for a standard normal Z.
///
/// Full relative precision in the lower tail (down to about z = -38, below which it
/// underflows to 0).
///
/// # Example
/// ```
/// use randomized_smoothing::stats::normal::normal_cdf;
///
/// assert_eq!(normal_cdf(0.0), 0.5);
/// assert!((normal_cdf(1.959963984540054) - 0.975).abs() < 1e-15);
/// ```
pub fn normal_cdf(z: f64) -> f64 {
    special::normal_cdf(z)
}

/// `PhiInv(p)`, the standard normal quantile, for `p` in (0, 1).
///
/// Returns [`Error::InvalidProbability`] for `p` outside (0, 1) or NaN.
///
/// # Example
/// ```
/// use randomized_smoothing::stats::normal::normal_quantile;
///
/// let z = normal_quantile(0.975)?;
/// assert!((z - 1.959963984540054).abs() < 1e-14);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn normal_quantile(p: f64) -> Result<f64> {
    if !(p > 0.0 && p < 1.0) {
        return Err(Error::InvalidProbability {
            name: "p",
            value: p,
        });
    }
    Ok(if p <= 0.5 {
        special::normal_quantile_lower(p)
    } else {
        // 1 - p is exact for p in [1/2, 1] (Sterbenz).
        -special::normal_quantile_lower(1.0 - p)
    })
}

/// `PhiInv(1 - q)`, the standard normal quantile at the complement of `q`, for `q` in (0, 1).
///
/// Use this when the upper-tail probability is known more precisely than `1 - q` can be
/// stored, as for the Clopper-Pearson lower bounds behind certified radii.
///
/// # Example
/// ```
/// use randomized_smoothing::stats::normal::normal_quantile_complement;
///
/// // PhiInv(1 - 1e-20): 1 - 1e-20 rounds to 1.0 in f64, so this cannot be computed from p.
/// let z = normal_quantile_complement(1e-20)?;
/// assert!((z - 9.262340089798408).abs() < 1e-12);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn normal_quantile_complement(q: f64) -> Result<f64> {
    normal_quantile(q).map(|z| -z)
}
