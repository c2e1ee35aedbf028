//! The certified l2 radii that preceded the paper, for comparison (its Appendix I): Lecuyer et
//! al. (2019)'s differential-privacy bound and Li et al. (2018)'s Renyi-divergence bound. Both
//! are weaker than Theorem 1 ([`gaussian_radius`](super::radius::gaussian_radius)) for every
//! `p_a`, `p_b`.

use super::radius::check_pair;
use crate::error::{Result, check_sigma};

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
/// As [`gaussian_radius`](super::radius::gaussian_radius).
///
/// # Example
/// ```
/// use randomized_smoothing::certificate::{prior::lecuyer_radius, radius::gaussian_radius};
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
/// As [`gaussian_radius`](super::radius::gaussian_radius).
///
/// # Example
/// ```
/// use randomized_smoothing::certificate::{prior::{li_radius, lecuyer_radius}, radius::gaussian_radius};
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
