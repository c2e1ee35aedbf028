//! Special functions behind the statistics: the regularized incomplete beta function, its
//! inverse, and the standard normal distribution.
//!
//! Everything here works with a probability *and* its complement, passed and returned
//! separately: near 1 the complement cannot be recovered from the probability, and both the
//! binomial tails and PhiInv need it there.

use std::f64::consts::{PI, SQRT_2};

/// ln(sqrt(2 pi)).
#[cfg(test)]
const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// The error of Stirling's approximation, `ln Gamma(m + 1) - [(m + 1/2) ln m - m + ln sqrt(2 pi)]`, for real m > 0.
///
/// Computed from the asymptotic series once m > 15, and by the exact recurrence
/// `s(m) = s(m + 1) + (m + 1/2) ln(1 + 1/m) - 1` below that, so no log-gamma (and none of its
/// cancellation between large terms) is needed.
fn stirlerr(m: f64) -> f64 {
    let mut acc = 0.0;
    let mut t = m;
    while t <= 15.0 {
        acc += (t + 0.5) * (1.0 / t).ln_1p() - 1.0;
        t += 1.0;
    }
    // Bernoulli-number series: 1/(12t) - 1/(360t^3) + 1/(1260t^5) - 1/(1680t^7) + 1/(1188t^9).
    let t2 = 1.0 / (t * t);
    acc + (1.0 / 12.0
        - t2 * (1.0 / 360.0 - t2 * (1.0 / 1260.0 - t2 * (1.0 / 1680.0 - t2 / 1188.0))))
        / t
}

/// The deviance term `x ln(x / np) + np - x`, accurate when x is close to np.
///
/// Near np it is the difference of two nearly equal large numbers; there it is summed as
/// `(x - np) v + 2x (v^3/3 + v^5/5 + ...)` with `v = (x - np) / (x + np)`.
fn bd0(x: f64, np: f64) -> f64 {
    if (x - np).abs() < 0.1 * (x + np) {
        let v = (x - np) / (x + np);
        let v2 = v * v;
        let mut sum = (x - np) * v;
        let mut term = 2.0 * x * v;
        let mut j = 1.0;
        loop {
            term *= v2;
            let next = sum + term / (2.0 * j + 1.0);
            if next == sum {
                return next;
            }
            sum = next;
            j += 1.0;
        }
    }
    x * (x / np).ln() + np - x
}

/// `x^a y^b / (a B(a, b))` for a, b > 0 and x + y = 1, both in (0, 1).
///
/// Written as a binomial density with real arguments, whose logarithm is a sum of small
/// terms (`stirlerr`, `bd0`) rather than the difference of log-gammas of size a ln a, which
/// would lose about eight digits when a and b are near 10^7.
fn beta_front(a: f64, b: f64, x: f64, y: f64) -> f64 {
    let n = a + b;
    let lc = stirlerr(n) - stirlerr(a) - stirlerr(b) - bd0(a, n * x) - bd0(b, n * y);
    // x^a y^b / B(a, b) = dbinom(a; a + b, x) * ab / (a + b), and dbinom = e^lc sqrt(n / (2 pi a b)).
    lc.exp() * (n / (2.0 * PI * a * b)).sqrt() * b / n
}

/// The beta density `x^(a-1) y^(b-1) / B(a, b)`.
pub(crate) fn beta_density(a: f64, b: f64, x: f64, y: f64) -> f64 {
    beta_front(a, b, x, y) * a / (x * y)
}

/// Continued fraction for `I_x(a, b) / front(a, b, x)`, by the modified Lentz method.
/// Converges quickly for `x < (a + 1) / (a + b + 2)`; in about sqrt(min(a, b)) terms near the mean.
fn beta_continued_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let guard = |v: f64| if v.abs() < TINY { TINY } else { v };
    let mut c = 1.0;
    let mut d = 1.0 / guard(1.0 - (a + b) * x / (a + 1.0));
    let mut h = d;
    let mut m = 1.0_f64;
    loop {
        let m2 = 2.0 * m;
        let even = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2));
        d = 1.0 / guard(1.0 + even * d);
        c = guard(1.0 + even / c);
        h *= d * c;
        let odd = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0));
        d = 1.0 / guard(1.0 + odd * d);
        c = guard(1.0 + odd / c);
        let delta = d * c;
        h *= delta;
        if (delta - 1.0).abs() <= 1e-16 || m > 5e7 {
            return h;
        }
        m += 1.0;
    }
}

/// The regularized incomplete beta function `I_x(a, b)` and its complement `1 - I_x(a, b)`.
///
/// `x` and `y = 1 - x` are passed separately so that a value close to 1 keeps its precision.
/// The smaller of the two results carries full relative precision.
pub(crate) fn beta_inc(a: f64, b: f64, x: f64, y: f64) -> (f64, f64) {
    if x <= 0.0 {
        return (0.0, 1.0);
    }
    if y <= 0.0 {
        return (1.0, 0.0);
    }
    if x < (a + 1.0) / (a + b + 2.0) {
        let w = beta_front(a, b, x, y) * beta_continued_fraction(a, b, x);
        (w, 1.0 - w)
    } else {
        let w = beta_front(b, a, y, x) * beta_continued_fraction(b, a, y);
        (1.0 - w, w)
    }
}

/// The quantile of Beta(a, b): the `(x, 1 - x)` with `I_x(a, b) = p`, where `q = 1 - p` is
/// passed separately. Both coordinates come back with full relative precision.
///
/// Safeguarded Newton iteration on the logarithm of whichever tail is matched (so that tails
/// spanning hundreds of orders of magnitude converge), in whichever of x and 1 - x is smaller.
pub(crate) fn beta_quantile(a: f64, b: f64, p: f64, q: f64) -> (f64, f64) {
    if p <= 0.0 {
        return (0.0, 1.0);
    }
    if q <= 0.0 {
        return (1.0, 0.0);
    }
    // Iterate on t = x if the root is below 1/2, else on t = 1 - x.
    let flip = beta_inc(a, b, 0.5, 0.5).0 < p;
    // Match the smaller tail: its logarithm is well conditioned.
    let lower_tail = p <= q;
    let increasing = lower_tail != flip;
    let eval = |t: f64| -> (f64, f64) {
        let (x, y) = if flip { (1.0 - t, t) } else { (t, 1.0 - t) };
        let (i, ic) = beta_inc(a, b, x, y);
        let dens = beta_density(a, b, x, y) * if flip { -1.0 } else { 1.0 };
        if lower_tail {
            (i.ln() - p.ln(), dens / i)
        } else {
            (ic.ln() - q.ln(), -dens / ic)
        }
    };

    let (mut lo, mut hi) = (0.0_f64, 0.5_f64);
    // Start from the normal approximation.
    let n = a + b;
    let mean = a / n;
    let sd = (a * b / (n * n * (n + 1.0))).sqrt();
    let z = if lower_tail {
        normal_quantile_lower(p)
    } else {
        -normal_quantile_lower(q)
    };
    let x0 = mean + z * sd;
    let mut t = if flip { 1.0 - x0 } else { x0 };
    if !(t > lo && t < hi) {
        t = 0.25;
    }
    for _ in 0..500 {
        let (g, dg) = eval(t);
        if g == 0.0 {
            break;
        }
        if (g < 0.0) == increasing {
            lo = t;
        } else {
            hi = t;
        }
        let mut next = t - g / dg;
        if !(next > lo && next < hi) {
            next = if lo == 0.0 {
                hi * 1e-3
            } else if hi > 16.0 * lo {
                (lo * hi).sqrt()
            } else {
                0.5 * (lo + hi)
            };
        }
        let step = (next - t).abs();
        t = next;
        if step <= 2e-16 * t || hi - lo <= 2e-16 * t {
            break;
        }
    }
    if flip { (1.0 - t, t) } else { (t, 1.0 - t) }
}

/// `erfc(x)` for x >= 0.
fn erfc_nonneg(x: f64) -> f64 {
    if x < 2.0 {
        // erf(x) = 2/sqrt(pi) e^{-x^2} sum_n 2^n x^{2n+1} / (2n+1)!!: positive terms, no cancellation.
        let x2 = x * x;
        let mut term = x;
        let mut sum = x;
        let mut k = 0.0;
        loop {
            k += 1.0;
            term *= 2.0 * x2 / (2.0 * k + 1.0);
            let next = sum + term;
            if next == sum {
                break;
            }
            sum = next;
        }
        1.0 - 2.0 / PI.sqrt() * (-x2).exp() * sum
    } else {
        // erfc(x) = e^{-x^2} / sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))), by Lentz.
        const TINY: f64 = 1e-300;
        let mut f = x;
        let mut c = x;
        let mut d = 0.0;
        let mut k = 1.0;
        loop {
            let a = 0.5 * k;
            d = x + a * d;
            d = 1.0 / if d == 0.0 { TINY } else { d };
            c = x + a / c;
            let delta = c * d;
            f *= delta;
            if (delta - 1.0).abs() <= 1e-16 || k > 5000.0 {
                break;
            }
            k += 1.0;
        }
        (-x * x).exp() / (PI.sqrt() * f)
    }
}

/// `Phi(z)`, the standard normal CDF, with full relative precision in the lower tail.
pub(crate) fn normal_cdf(z: f64) -> f64 {
    if z.is_nan() {
        return f64::NAN;
    }
    if z <= 0.0 {
        0.5 * erfc_nonneg(-z / SQRT_2)
    } else {
        1.0 - 0.5 * erfc_nonneg(z / SQRT_2)
    }
}

/// `PhiInv(p)` for `0 < p <= 1/2`.
pub(crate) fn normal_quantile_lower(p: f64) -> f64 {
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 0.5 {
        return 0.0;
    }
    // Abramowitz & Stegun 26.2.23 (error < 4.5e-4), then Halley's method on Phi.
    let t = (-2.0 * p.ln()).sqrt();
    let mut z = -(t
        - (2.515517 + t * (0.802853 + t * 0.010328))
            / (1.0 + t * (1.432788 + t * (0.189269 + t * 0.001308))));
    for _ in 0..8 {
        let density = (-0.5 * z * z).exp() / (2.0 * PI).sqrt();
        let u = (normal_cdf(z) - p) / density;
        let step = u / (1.0 + 0.5 * z * u);
        z -= step;
        if step.abs() <= 1e-16 * z.abs() {
            break;
        }
    }
    z
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stirlerr_matches_known_values() {
        // s(1) = ln(1!) - (1.5 ln 1 - 1 + ln sqrt(2 pi)) = 1 - ln sqrt(2 pi).
        assert!((stirlerr(1.0) - (1.0 - LN_SQRT_2PI)).abs() < 1e-15);
        // s(20) from ln(20!) = 42.335616460753485.
        let exact = 42.335_616_460_753_485 - (20.5 * 20f64.ln() - 20.0 + LN_SQRT_2PI);
        assert!((stirlerr(20.0) - exact).abs() < 1e-13);
    }

    #[test]
    fn beta_inc_closed_forms() {
        // I_x(1, b) = 1 - (1 - x)^b and I_x(a, 1) = x^a.
        // x chosen so that 1 - x is exact: the function takes both.
        for &(x, b) in &[(0.375, 5.0), (1.0 / 1048576.0, 1e6), (0.875, 2.5)] {
            let (i, ic) = beta_inc(1.0, b, x, 1.0 - x);
            let want_c = (1.0f64 - x).powf(b);
            assert!(
                (ic - want_c).abs() <= 1e-13 * want_c,
                "{x} {b}: {ic} vs {want_c}"
            );
            assert!((i + ic - 1.0).abs() < 1e-15);
            let (i2, _) = beta_inc(b, 1.0, x, 1.0 - x);
            assert!((i2 - x.powf(b)).abs() <= 1e-12 * x.powf(b));
        }
    }

    #[test]
    fn quantile_inverts_beta_inc() {
        for &(a, b, p) in &[
            (3.0, 4.0, 0.2),
            (1e5, 3.0, 1e-6),
            (2.0, 1e6, 0.999),
            (0.5, 0.5, 0.5),
        ] {
            let (x, y) = beta_quantile(a, b, p, 1.0 - p);
            let (i, _) = beta_inc(a, b, x, y);
            assert!((i - p).abs() <= 1e-12 * p, "{a} {b} {p}: I = {i}");
        }
    }
}
