//! Property tests of the radius theorem on the two-class linear classifier, where the
//! smoothed classifier is known in closed form (the paper's Propositions 3 to 5, Theorem 2).

use burn::backend::NdArray;
use proptest::prelude::*;
use randomized_smoothing::LinearClassifier;
use randomized_smoothing::certificate::{
    prior::{lecuyer_radius, li_radius},
    radius::gaussian_radius,
};
use randomized_smoothing::stats::normal::normal_quantile;

fn linear(w: &[f64], b: f64) -> LinearClassifier<NdArray> {
    LinearClassifier::new(w, b, &Default::default()).unwrap()
}

/// Weights with a norm bounded away from zero, a bias and a point, in dimension 1 to 6.
fn setup() -> impl Strategy<Value = (Vec<f64>, f64, Vec<f64>, f64)> {
    (1usize..=6)
        .prop_flat_map(|d| {
            (
                prop::collection::vec(-3.0..3.0f64, d),
                -2.0..2.0f64,
                prop::collection::vec(-2.0..2.0f64, d),
                0.05..2.0f64,
            )
        })
        .prop_filter("non-degenerate weights", |(w, ..)| {
            w.iter().map(|v| v * v).sum::<f64>() > 0.01
        })
}

fn add_scaled(x: &[f64], dir: &[f64], t: f64) -> Vec<f64> {
    x.iter().zip(dir).map(|(a, b)| a + t * b).collect()
}

fn unit(w: &[f64]) -> Vec<f64> {
    let n = w.iter().map(|v| v * v).sum::<f64>().sqrt();
    w.iter().map(|v| v / n).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Proposition 3: the smoothed linear classifier equals the base classifier.
    #[test]
    fn smoothed_linear_equals_base((w, b, x, sigma) in setup()) {
        let f = linear(&w, b);
        let d = f.signed_distance(&x).unwrap();
        prop_assume!(d.abs() > 1e-9);
        let p = f.class_probabilities(&x, sigma).unwrap();
        let smoothed = usize::from(p[1] > p[0]);
        prop_assert_eq!(smoothed, f.decide(&x).unwrap());
    }

    /// Proposition 4: Theorem 1 with the exact p_A certifies exactly the distance to the
    /// decision boundary.
    #[test]
    fn exact_radius_is_distance_to_boundary((w, b, x, sigma) in setup()) {
        let f = linear(&w, b);
        let dist = f.signed_distance(&x).unwrap().abs();
        prop_assume!(dist > 1e-6 && dist / sigma < 8.0);
        let p = f.class_probabilities(&x, sigma).unwrap();
        let (pa, pb) = if p[1] > p[0] { (p[1], p[0]) } else { (p[0], p[1]) };
        let r = gaussian_radius(sigma, pa, pb).unwrap();
        // p_A near 1 is stored with absolute error 1e-16, which moves PhiInv(p_A) by
        // 1e-16 / phi(PhiInv(p_A)): the tolerance allows for that conditioning and no more.
        let z = dist / sigma;
        let conditioning = 2e-16 / ((-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt());
        prop_assert!((r - dist).abs() <= 1e-10 * dist + sigma * conditioning,
            "radius {} vs distance {}", r, dist);
    }

    /// Proposition 5: a perturbation just beyond the certified radius, towards the boundary,
    /// changes the smoothed prediction; any perturbation inside it does not.
    #[test]
    fn perturbation_beyond_radius_flips((w, b, x, sigma) in setup(), eps in 1e-6..0.1f64,
                                        dir in prop::collection::vec(-1.0..1.0f64, 6)) {
        let f = linear(&w, b);
        let sd = f.signed_distance(&x).unwrap();
        prop_assume!(sd.abs() > 1e-6 && sd.abs() / sigma < 7.0);
        let p = f.class_probabilities(&x, sigma).unwrap();
        let (pa, pb) = if p[1] > p[0] { (p[1], p[0]) } else { (p[0], p[1]) };
        let r = gaussian_radius(sigma, pa, pb).unwrap();
        let class = f.decide(&x).unwrap();
        let smoothed = |z: &[f64]| {
            let q = f.class_probabilities(z, sigma).unwrap();
            usize::from(q[1] > q[0])
        };
        // Towards the boundary, by r + eps.
        let toward = unit(&w).into_iter().map(|v| -sd.signum() * v).collect::<Vec<_>>();
        let beyond = add_scaled(&x, &toward, r + eps);
        prop_assert_ne!(smoothed(&beyond), class);
        // Any direction, by (1 - eps) r: same prediction.
        let dir = &dir[..w.len()];
        prop_assume!(dir.iter().map(|v| v * v).sum::<f64>() > 1e-6);
        let inside = add_scaled(&x, &unit(dir), (1.0 - eps) * r);
        prop_assert_eq!(smoothed(&inside), class);
    }

    /// Theorem 2: for any p_A and any perturbation longer than sigma * PhiInv(p_A), the
    /// worst-case linear classifier consistent with p_A is fooled at x + delta.
    #[test]
    fn worst_case_linear_classifier_reaches_boundary(
        pa in 0.5001..0.99999f64, sigma in 0.05..2.0f64, excess in 1e-4..0.5f64,
        delta_dir in prop::collection::vec(-1.0..1.0f64, 1..6),
    ) {
        let norm = delta_dir.iter().map(|v| v * v).sum::<f64>().sqrt();
        prop_assume!(norm > 1e-3);
        let x = vec![0.3; delta_dir.len()];
        let r = sigma * normal_quantile(pa).unwrap();
        let delta: Vec<f64> = delta_dir.iter().map(|v| v / norm * (r + excess)).collect();
        let dn = r + excess;
        // f*(z) = class 1 iff delta.(z - x) < sigma ||delta|| PhiInv(p_A).
        let w: Vec<f64> = delta.iter().map(|v| -v).collect();
        let b = delta.iter().zip(&x).map(|(d, xi)| d * xi).sum::<f64>() + sigma * dn * normal_quantile(pa).unwrap();
        let f = linear(&w, b);
        let at_x = f.class_probabilities(&x, sigma).unwrap();
        prop_assert!((at_x[1] - pa).abs() < 1e-9, "consistent with p_A: {} vs {}", at_x[1], pa);
        let moved = add_scaled(&x, &delta, 1.0);
        let at_moved = f.class_probabilities(&moved, sigma).unwrap();
        prop_assert!(at_moved[1] < 0.5, "g(x + delta) must change: P = {}", at_moved[1]);
    }

    /// The radius grows with p_A (at p_B = 1 - p_A) and with sigma.
    #[test]
    fn radius_monotone(p1 in 0.5001..0.999999f64, p2 in 0.5001..0.999999f64,
                       s1 in 0.01..2.0f64, s2 in 0.01..2.0f64) {
        let (plo, phi) = if p1 <= p2 { (p1, p2) } else { (p2, p1) };
        let (slo, shi) = if s1 <= s2 { (s1, s2) } else { (s2, s1) };
        prop_assert!(gaussian_radius(slo, plo, 1.0 - plo).unwrap() <= gaussian_radius(slo, phi, 1.0 - phi).unwrap());
        prop_assert!(gaussian_radius(slo, plo, 1.0 - plo).unwrap() <= gaussian_radius(shi, plo, 1.0 - plo).unwrap());
    }

    /// Figure 5 (left): Lecuyer et al. <= Li et al. <= Theorem 1.
    #[test]
    fn prior_radii_are_smaller(pa in 0.51..0.9999f64, spread in 0.0..1.0f64, sigma in 0.1..1.0f64) {
        let pb = (1.0 - pa) * spread;
        prop_assume!(pb < pa);
        let ours = gaussian_radius(sigma, pa, pb).unwrap();
        let li = li_radius(sigma, pa, pb).unwrap();
        let lecuyer = lecuyer_radius(sigma, pa, pb).unwrap();
        prop_assert!(li <= ours * (1.0 + 1e-9), "li {} ours {}", li, ours);
        prop_assert!(lecuyer <= li * (1.0 + 1e-9), "lecuyer {} li {}", lecuyer, li);
    }
}

/// Spot values of the prior guarantees at p_B = 1 - p_A, against the maximisations done by
/// brute force over a fine grid here (an independent evaluation of the Appendix I formulas).
#[test]
fn prior_radii_match_brute_force() {
    for &(pa, sigma) in &[(0.6, 0.5), (0.9, 1.0), (0.99, 0.25), (0.999, 1.0)] {
        let pb: f64 = 1.0 - pa;
        let lec = (1..200_000)
            .map(|i| i as f64 / 200_000.0)
            .filter(|&b| b < (0.5 * (pa / pb).ln()).min(1.0))
            .map(|b| b / (2.0 * (1.25 * (1.0 + b.exp()) / (pa - (2.0 * b).exp() * pb)).ln()).sqrt())
            .fold(0.0, f64::max)
            * sigma;
        let li = (1..200_000)
            .map(|i| 1.0 + i as f64 / 2_000.0)
            .map(|b| {
                let m = ((pa.powf(1.0 - b) + pb.powf(1.0 - b)) / 2.0).powf(1.0 / (1.0 - b));
                -(2.0 / b) * (1.0 - pa - pb + 2.0 * m).ln()
            })
            .fold(0.0, f64::max)
            .sqrt()
            * sigma;
        let got_lec = lecuyer_radius(sigma, pa, pb).unwrap();
        let got_li = li_radius(sigma, pa, pb).unwrap();
        assert!(
            got_lec >= lec * (1.0 - 1e-6) && got_lec <= lec * (1.0 + 1e-3),
            "{pa}: {got_lec} vs {lec}"
        );
        assert!(
            got_li >= li * (1.0 - 1e-6) && got_li <= li * (1.0 + 1e-3),
            "{pa}: {got_li} vs {li}"
        );
    }
}
