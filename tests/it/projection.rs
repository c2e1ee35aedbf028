//! Projections of a certification log to other settings (`projection`): count recovery
//! from rounded radii, projections checked against CERTIFY's own formula, and errors.

use randomized_smoothing::certificate::accuracy::Outcome;
use randomized_smoothing::certificate::projection::{
    LoggedSettings, Projection, RadiusBound, project,
};
use randomized_smoothing::certificate::{
    prior::{lecuyer_radius, li_radius},
    radius::gaussian_radius_from_counts,
};
use randomized_smoothing::stats::normal::normal_cdf;

/// The radius as the paper's log writes it: three significant digits.
fn logged(radius: f64) -> f64 {
    format!("{radius:.3}").parse().unwrap_or(radius)
}

fn round3(x: f64) -> f64 {
    let scale = 10f64.powf(2.0 - x.log10().floor());
    (x * scale).round() / scale
}

#[test]
fn counts_are_recovered_from_rounded_radii() {
    for (sigma, n, alpha) in [
        (0.25, 100_000, 0.001),
        (0.5, 10_000, 0.01),
        (1.0, 1_000, 0.1),
    ] {
        let settings = LoggedSettings::new(sigma, n, alpha).unwrap();
        let mut exact = 0;
        for n_a in (n / 2..=n).step_by((n / 997) as usize).chain(n - 20..=n) {
            let Some(radius) = gaussian_radius_from_counts(sigma, n_a, n, alpha).unwrap() else {
                continue;
            };
            let written = round3(radius);
            let k = settings.count_for(written).unwrap();
            let again = gaussian_radius_from_counts(sigma, k, n, alpha)
                .unwrap()
                .unwrap();
            // The recovered count reproduces the logged radius, and is the true one wherever
            // neighbouring counts differ by more than the rounding (near n_a = n they do).
            assert_eq!(round3(again), written, "n_a = {n_a}, k = {k}");
            assert!(k.abs_diff(n_a) <= n / 1_000 + 1, "n_a = {n_a}, k = {k}");
            if n - n_a <= 3 {
                assert_eq!(k, n_a);
            }
            exact += usize::from(k == n_a);
        }
        assert!(exact > 20, "sigma {sigma}: only {exact} exact recoveries");
    }
    // Python's "{:.3}" formatting, which the records module mirrors, rounds the same way.
    assert_eq!(logged(0.412_34), round3(0.412_34));
}

/// Projecting to n' and alpha' is CERTIFY's formula at the scaled count, for each bound.
#[test]
fn projections_follow_the_scaled_count() {
    let (sigma, n, alpha) = (0.5, 100_000, 0.001);
    let settings = LoggedSettings::new(sigma, n, alpha).unwrap();
    let counts = [99_990, 99_000, 95_000, 80_000, 60_000, 50_600];
    let rows: Vec<Outcome> = counts
        .iter()
        .map(|&k| Outcome {
            correct: true,
            radius: round3(
                gaussian_radius_from_counts(sigma, k, n, alpha)
                    .unwrap()
                    .unwrap(),
            ),
        })
        .collect();
    for (n2, alpha2) in [(1_000, 0.001), (10_000, 0.01), (1_000_000, 0.0001)] {
        let cohen = project(
            &rows,
            &settings,
            &Projection::new(n2, alpha2, RadiusBound::Cohen).unwrap(),
        )
        .unwrap();
        let li = project(
            &rows,
            &settings,
            &Projection::new(n2, alpha2, RadiusBound::Li).unwrap(),
        )
        .unwrap();
        let lecuyer = project(
            &rows,
            &settings,
            &Projection::new(n2, alpha2, RadiusBound::Lecuyer).unwrap(),
        )
        .unwrap();
        for (i, &k) in counts.iter().enumerate() {
            // The recovered count may be off by a few of 100,000 (rounding): allow that much.
            let scaled = |k: u64| ((k as f64) * n2 as f64 / n as f64).round() as u64;
            let radius =
                |k: u64| gaussian_radius_from_counts(sigma, scaled(k), n2, alpha2).unwrap();
            let (lo, hi) = (radius(k.saturating_sub(60)), radius((k + 60).min(n)));
            match (lo, hi) {
                (Some(lo), Some(hi)) => {
                    assert!(cohen[i].correct, "n' = {n2}, k = {k}");
                    assert!(
                        lo - 1e-12 <= cohen[i].radius && cohen[i].radius <= hi + 1e-12,
                        "n' = {n2}, k = {k}"
                    );
                    // The same p_A under the weaker formulas (p_A read back from Theorem 1).
                    let p_a = normal_cdf(cohen[i].radius / sigma);
                    let li_want = li_radius(sigma, p_a, 1.0 - p_a).unwrap();
                    let lecuyer_want = lecuyer_radius(sigma, p_a, 1.0 - p_a).unwrap();
                    assert!((li[i].radius - li_want).abs() < 1e-6, "{li:?} vs {li_want}");
                    assert!((lecuyer[i].radius - lecuyer_want).abs() < 1e-6);
                    assert!(lecuyer[i].radius < li[i].radius && li[i].radius < cohen[i].radius);
                }
                (None, None) => assert_eq!(
                    cohen[i],
                    Outcome {
                        correct: false,
                        radius: 0.0
                    }
                ),
                _ => {}
            }
        }
    }
}

#[test]
fn bad_settings_and_foreign_logs_are_errors() {
    assert!(LoggedSettings::new(f64::NAN, 100, 0.01).is_err());
    assert!(LoggedSettings::new(0.25, 100, 0.0).is_err());
    assert!(Projection::new(0, 0.01, RadiusBound::Cohen).is_err());
    assert!(Projection::new(10, f64::NAN, RadiusBound::Cohen).is_err());
    let settings = LoggedSettings::new(0.25, 1_000, 0.001).unwrap();
    for bad in [f64::NAN, f64::INFINITY, -0.1, 0.0] {
        assert!(settings.count_for(bad).is_err(), "{bad}");
    }
    // Beyond the largest radius n = 1,000 can give at sigma = 0.25 (0.25 * PhiInv(0.001^(1/1000)) = 0.68).
    let err = settings.count_for(0.9).unwrap_err();
    assert!(err.to_string().contains("these settings"), "{err}");
    let rows = [Outcome {
        correct: true,
        radius: 0.9,
    }];
    assert!(
        project(
            &rows,
            &settings,
            &Projection::new(100, 0.001, RadiusBound::Cohen).unwrap()
        )
        .is_err()
    );
    // Rows that abstained or were wrong pass through untouched, whatever their radius.
    let wrong = [Outcome {
        correct: false,
        radius: 0.3,
    }];
    assert_eq!(
        project(
            &wrong,
            &settings,
            &Projection::new(100, 0.001, RadiusBound::Li).unwrap()
        )
        .unwrap(),
        wrong
    );
    assert!(RadiusBound::Cohen.radius(0.25, 0.4).is_err());
    assert!(RadiusBound::Cohen.radius(0.0, 0.9).is_err());
}
