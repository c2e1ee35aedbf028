//! statrs (pinned, `default-features = false`) beside the crate's own statistics, both against
//! the SciPy and statsmodels values of `tests/reference/stats_vectors.csv`.
//!
//! The crate computes Clopper-Pearson bounds and the normal quantile itself. This test says
//! why, without asserting any statrs bug that a later release may fix: it measures where
//! statrs's beta quantile (`inv_beta_reg`, the Clopper-Pearson bound) and normal distribution
//! agree with the reference, requires agreement on well-conditioned rows (which checks that
//! the comparison itself is right), and prints the rest. Run with `--nocapture` to read the
//! summary; docs/statistics.md records it.

use std::sync::mpsc;
use std::time::Duration;

use randomized_smoothing::stats::binomial::clopper_pearson_lower;
use randomized_smoothing::stats::normal::{normal_cdf, normal_quantile};
use statrs::distribution::{ContinuousCDF, Normal};
use statrs::function::beta::inv_beta_reg;

const VECTORS: &str = include_str!("../reference/stats_vectors.csv");

fn rel(got: f64, want: f64) -> f64 {
    if want == 0.0 {
        got.abs()
    } else {
        ((got - want) / want).abs()
    }
}

/// The Clopper-Pearson rows: successes, trials, alpha, SciPy's lower bound.
fn cp_rows() -> Vec<(u64, u64, f64, f64)> {
    VECTORS
        .lines()
        .filter(|l| l.starts_with("cp_lower,"))
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
                f[4].parse().unwrap(),
            )
        })
        .collect()
}

/// Well conditioned: a bound neither tiny nor near 1, from a moderate sample.
fn well_conditioned(k: u64, n: u64, want: f64) -> bool {
    k > 0 && n <= 10_000 && (1e-3..=0.999).contains(&want)
}

#[test]
fn clopper_pearson_beside_statrs_beta_quantile() {
    let rows = cp_rows();
    assert!(rows.len() > 500, "{} rows", rows.len());
    // statrs runs on a thread of its own, so that a hang (statrs issue 435) or a panic in the
    // tails ends the comparison with a report instead of stalling the test.
    let (tx, rx) = mpsc::channel();
    let work = rows.clone();
    std::thread::spawn(move || {
        for (k, n, alpha, _) in work {
            let value = if k == 0 {
                0.0
            } else {
                inv_beta_reg(k as f64, (n - k + 1) as f64, alpha)
            };
            if tx.send(value).is_err() {
                return;
            }
        }
    });
    let (mut crate_worst, mut statrs_worst) = (0.0f64, 0.0f64);
    let (mut statrs_off, mut well_off, mut well) = (0, Vec::new(), 0);
    let mut stopped = None;
    for &(k, n, alpha, want) in &rows {
        crate_worst = crate_worst.max(rel(clopper_pearson_lower(k, n, alpha).unwrap(), want));
        let got = match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(got) => got,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                stopped = Some(format!("hung at k = {k}, n = {n}, alpha = {alpha}"));
                break;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                stopped = Some(format!("panicked at k = {k}, n = {n}, alpha = {alpha}"));
                break;
            }
        };
        let e = if got.is_finite() {
            rel(got, want)
        } else {
            f64::INFINITY
        };
        if e > 1e-9 {
            statrs_off += 1;
        }
        if well_conditioned(k, n, want) {
            well += 1;
            if e > 1e-6 {
                well_off.push(format!(
                    "k = {k}, n = {n}, alpha = {alpha}: {got:e} vs {want:e}"
                ));
            }
        } else {
            statrs_worst = statrs_worst.max(e);
        }
    }
    println!(
        "Clopper-Pearson lower bound, {} SciPy rows: the crate's worst relative error {crate_worst:.1e}; \
         statrs {} beyond 1e-9, worst outside the well-conditioned rows {statrs_worst:.1e}{}",
        rows.len(),
        statrs_off,
        stopped
            .as_deref()
            .map(|s| format!("; statrs {s}"))
            .unwrap_or_default()
    );
    assert!(crate_worst <= 1e-9, "the crate: {crate_worst:e}");
    assert!(well > 50, "only {well} well-conditioned rows were reached");
    assert!(
        well_off.is_empty(),
        "statrs disagrees on well-conditioned rows: the comparison is wrong:\n{}",
        well_off.join("\n")
    );
}

#[test]
fn normal_distribution_beside_statrs() {
    let normal = Normal::standard();
    let (mut cdf_worst, mut ppf_worst, mut ppf_upper_worst) = (0.0f64, 0.0f64, 0.0f64);
    let (mut crate_worst, mut rows) = (0.0f64, 0);
    for line in VECTORS.lines() {
        let f: Vec<&str> = line.split(',').collect();
        let x = |i: usize| f[i].parse::<f64>().unwrap();
        match f[0] {
            "norm_cdf" => {
                cdf_worst = cdf_worst.max(rel(normal.cdf(x(1)), x(2)));
                crate_worst = crate_worst.max(rel(normal_cdf(x(1)), x(2)));
            }
            "norm_ppf" => {
                let e = rel(normal.inverse_cdf(x(1)), x(2));
                // Above 1/2 the quantile is computed from p, whose complement has lost digits.
                if x(1) > 0.5 {
                    ppf_upper_worst = ppf_upper_worst.max(e);
                } else {
                    ppf_worst = ppf_worst.max(e);
                }
                crate_worst = crate_worst.max(rel(normal_quantile(x(1)).unwrap(), x(2)));
            }
            _ => continue,
        }
        rows += 1;
    }
    println!(
        "normal, {rows} SciPy rows: the crate's worst relative error {crate_worst:.1e}; statrs cdf \
         {cdf_worst:.1e}, quantile {ppf_worst:.1e} for p <= 1/2 and {ppf_upper_worst:.1e} above"
    );
    assert!(rows > 50, "{rows} rows");
    assert!(crate_worst <= 1e-9, "the crate: {crate_worst:e}");
    // Where both are well defined statrs agrees: the comparison is sound.
    assert!(cdf_worst.is_finite() && ppf_worst.is_finite());
}
