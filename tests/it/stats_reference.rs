//! Cross-check of the statistics against SciPy / statsmodels values written by
//! `tests/reference/gen_stats_vectors.py` (committed with its output).

use randomized_smoothing::certificate::radius::gaussian_radius_from_counts;
use randomized_smoothing::stats::binomial::{
    binomial_cdf, binomial_tail_at_least, binomial_test_two_sided, clopper_pearson_lower,
    clopper_pearson_lower_complement, clopper_pearson_upper,
};
use randomized_smoothing::stats::normal::{normal_cdf, normal_quantile};
use randomized_smoothing::workflow::records::format_radius;

const VECTORS: &str = include_str!("../reference/stats_vectors.csv");
const REL: f64 = 1e-9;

fn close(got: f64, want: f64) -> bool {
    if want == 0.0 {
        got.abs() <= 1e-300
    } else {
        ((got - want) / want).abs() <= REL
    }
}

#[test]
fn agrees_with_scipy_and_statsmodels() {
    let mut failures = Vec::new();
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for line in VECTORS.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split(',').collect();
        let u = |i: usize| f[i].parse::<u64>().unwrap();
        let x = |i: usize| f[i].parse::<f64>().unwrap();
        let mut check = |got: f64, want: f64| {
            if !close(got, want) {
                failures.push(format!("{line}: got {got:e}"));
            }
        };
        match f[0] {
            "cp_lower" => {
                check(clopper_pearson_lower(u(1), u(2), x(3)).unwrap(), x(4));
                check(
                    clopper_pearson_lower_complement(u(1), u(2), x(3)).unwrap(),
                    x(5),
                );
            }
            "cp_upper" => check(clopper_pearson_upper(u(1), u(2), x(3)).unwrap(), x(4)),
            "radius" => check(
                gaussian_radius_from_counts(x(4), u(1), u(2), x(3))
                    .unwrap()
                    .unwrap(),
                x(5),
            ),
            "binomtest" => check(binomial_test_two_sided(u(1), u(2), x(3)).unwrap(), x(4)),
            "binom_cdf" => check(binomial_cdf(u(1), u(2), x(3)).unwrap(), x(4)),
            "binom_sf" => check(binomial_tail_at_least(u(1), u(2), x(3)).unwrap(), x(4)),
            "norm_cdf" => check(normal_cdf(x(1)), x(2)),
            "norm_ppf" => check(normal_quantile(x(1)).unwrap(), x(2)),
            "radius_fmt" => {
                if format_radius(x(1)) != f[2] {
                    failures.push(format!("{line}: formatted as {}", format_radius(x(1))));
                }
            }
            other => panic!("unknown row kind {other}"),
        }
        *counts.entry(f[0]).or_default() += 1;
    }
    assert!(counts.values().sum::<usize>() > 4000, "{counts:?}");
    assert!(
        failures.is_empty(),
        "{} of the rows disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
