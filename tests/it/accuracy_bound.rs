//! Coverage of the Appendix D lower bounds on the true certified accuracy, simulated in the
//! worst case the theorem allows: every example that is not truly certified is certified
//! anyway with probability exactly alpha.

use crate::common::{BinomialSampler, consistent_with_rate};
use rand::SeedableRng;
use rand::rngs::StdRng;
use randomized_smoothing::certificate::accuracy::{AccuracyBound, certified_accuracy_lower_bound};

/// What the paper's released analysis code computes (see `certified_accuracy_lower_bound`).
fn released_code_bound(approx: f64, m: u64, alpha: f64, rho: f64) -> f64 {
    let (m, log) = (m as f64, (1.0 / rho).ln());
    approx - alpha - (alpha * (1.0 - alpha) * log / m).sqrt() - log / (3.0 * m)
}

/// Simulates `trials` test sets of `m` examples of which `good` are truly certified (and
/// always reported so) and returns how often each bound exceeds the true accuracy.
fn misses(m: u64, good: u64, alpha: f64, rho: f64, trials: u64, seed: u64) -> [u64; 3] {
    let sampler = BinomialSampler::new(m - good, alpha);
    let mut rng = StdRng::seed_from_u64(seed);
    let truth = good as f64 / m as f64;
    let mut out = [0; 3];
    for _ in 0..trials {
        let approx = (good + sampler.sample(&mut rng)) as f64 / m as f64;
        let bounds = [
            certified_accuracy_lower_bound(approx, m, alpha, rho, AccuracyBound::Bernstein)
                .unwrap(),
            certified_accuracy_lower_bound(approx, m, alpha, rho, AccuracyBound::Binomial).unwrap(),
            released_code_bound(approx, m, alpha, rho),
        ];
        for (o, b) in out.iter_mut().zip(bounds) {
            *o += u64::from(b > truth + 1e-12);
        }
    }
    out
}

/// Both bounds cover at rate 1 - rho. With many uncertified examples, the released code's
/// bound (square-root term without Bernstein's factor 2) does not: this is why the crate
/// departs from it.
#[test]
fn bounds_cover_and_released_formula_does_not() {
    let (rho, trials) = (0.001, 20_000);
    let [bernstein, binomial, released] = misses(100_000, 0, 0.05, rho, trials, 21);
    assert!(
        consistent_with_rate(bernstein, trials, rho),
        "Bernstein {bernstein}/{trials}"
    );
    assert!(
        consistent_with_rate(binomial, trials, rho),
        "binomial {binomial}/{trials}"
    );
    assert!(
        !consistent_with_rate(released, trials, rho),
        "released {released}/{trials}"
    );
}

/// A realistic test set: 500 examples, 60% truly certified, alpha = rho = 0.01.
#[test]
fn bounds_cover_on_a_mixed_test_set() {
    let (rho, trials) = (0.01, 20_000);
    let [bernstein, binomial, _] = misses(500, 300, 0.01, rho, trials, 22);
    assert!(
        consistent_with_rate(bernstein, trials, rho),
        "Bernstein {bernstein}/{trials}"
    );
    assert!(
        consistent_with_rate(binomial, trials, rho),
        "binomial {binomial}/{trials}"
    );
}

/// The bounds lie below the approximate accuracy, the binomial one above Bernstein's, and
/// both shrink as the confidence 1 - rho grows.
#[test]
fn bounds_are_ordered() {
    for &(approx, m, alpha) in &[(0.6, 500u64, 0.001), (0.9, 10_000, 0.001), (0.3, 100, 0.05)] {
        let mut previous = [f64::INFINITY; 2];
        for rho in [0.1, 0.01, 0.001, 1e-6] {
            let b = certified_accuracy_lower_bound(approx, m, alpha, rho, AccuracyBound::Bernstein)
                .unwrap();
            let e = certified_accuracy_lower_bound(approx, m, alpha, rho, AccuracyBound::Binomial)
                .unwrap();
            assert!(b <= e && e <= approx, "{approx} {m} {alpha} {rho}: {b} {e}");
            assert!(b <= previous[0] && e <= previous[1]);
            previous = [b, e];
        }
    }
}
