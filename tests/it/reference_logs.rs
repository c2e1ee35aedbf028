//! The paper's released CIFAR-10 certification logs (`../shared/data/reference-certify`):
//! they parse, and their certified accuracies are the figures in `../shared/data/README.md`.

use std::fs::File;
use std::path::PathBuf;

use randomized_smoothing::certificate::accuracy::{Outcome, approximate_certified_accuracy};
use randomized_smoothing::workflow::records::{CertifyRecord, read_certify_log};

fn log(noise: &str, sigma: &str) -> Vec<CertifyRecord> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/reference-certify/cifar10/resnet110")
        .join(format!("noise_{noise}/test/sigma_{sigma}"));
    let file = File::open(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (../shared must sit beside the crate)",
            path.display()
        )
    });
    read_certify_log(file).unwrap()
}

#[test]
fn certified_accuracy_of_the_released_logs() {
    let radii = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5];
    // ../shared/data/README.md, "Approximate certified accuracy computed from these 500-image logs".
    let expected: [(&str, [f64; 7]); 4] = [
        ("0.12", [0.814, 0.586, 0.0, 0.0, 0.0, 0.0, 0.0]),
        ("0.25", [0.748, 0.600, 0.428, 0.266, 0.0, 0.0, 0.0]),
        ("0.50", [0.652, 0.546, 0.414, 0.320, 0.234, 0.152, 0.094]),
        ("1.00", [0.472, 0.392, 0.340, 0.278, 0.216, 0.174, 0.140]),
    ];
    for (sigma, want) in expected {
        let rows = log(sigma, sigma);
        assert_eq!(rows.len(), 500, "sigma {sigma}");
        let outcomes: Vec<Outcome> = rows.iter().map(CertifyRecord::outcome).collect();
        let got = approximate_certified_accuracy(&outcomes, &radii).unwrap();
        for ((r, g), w) in radii.iter().zip(&got).zip(want) {
            assert!((g - w).abs() < 5e-4, "sigma {sigma}, r = {r}: {g} vs {w}");
        }
    }
}

#[test]
fn every_released_log_parses_and_round_trips() {
    for (noise, sigma) in [("0.12", "0.50"), ("0.25", "0.50"), ("1.00", "0.50")] {
        let rows = log(noise, sigma);
        assert_eq!(rows.len(), 500);
        for row in &rows {
            // Abstentions carry radius 0 and are never correct; correct rows predicted their label.
            if row.predict.is_none() {
                assert!(row.radius == 0.0 && !row.correct, "{row:?}");
            }
            assert_eq!(row.correct, row.predict == Some(row.label), "{row:?}");
            let line = row.to_line();
            let again = read_certify_log(
                format!(
                    "{}\n{line}\n",
                    randomized_smoothing::workflow::records::CERTIFY_HEADER
                )
                .as_bytes(),
            )
            .unwrap();
            assert_eq!(again[0].radius, row.radius, "{line}");
            assert_eq!(again[0].time, row.time);
        }
    }
}

#[test]
fn truncated_logs_are_errors() {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/data/reference-certify/cifar10/resnet110/noise_0.50/test/sigma_0.50"),
    )
    .unwrap();
    // Cut in the middle of a row.
    let cut = &text[..text.len() - 7];
    let err = read_certify_log(cut.as_bytes()).unwrap_err();
    assert!(
        matches!(err, randomized_smoothing::Error::MalformedData { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("line 501"), "{err}");
}

/// The paper's Table 3 layout: one row per noise level, best per radius marked.
#[test]
fn table_of_the_released_logs() {
    use randomized_smoothing::workflow::analysis::CertifiedAccuracyTable;
    let sigmas = ["0.12", "0.25", "0.50", "1.00"];
    let outcomes: Vec<Vec<Outcome>> = sigmas
        .iter()
        .map(|s| log(s, s).iter().map(CertifyRecord::outcome).collect())
        .collect();
    let names: Vec<String> = sigmas.iter().map(|s| format!("sigma = {s}")).collect();
    let runs: Vec<(&str, &[Outcome])> = names
        .iter()
        .zip(&outcomes)
        .map(|(n, o)| (n.as_str(), o.as_slice()))
        .collect();
    let table = CertifiedAccuracyTable::new(&[0.0, 0.5, 1.0, 1.5], &runs).unwrap();
    let md = table.to_markdown();
    assert!(
        md.contains("| sigma = 0.12 | **0.81** | 0.00 | 0.00 | 0.00 |"),
        "{md}"
    );
    assert!(
        md.contains("| sigma = 0.50 | 0.65 | 0.41 | **0.23** | 0.09 |"),
        "{md}"
    );
    assert!(
        md.contains("| sigma = 1.00 | 0.47 | 0.34 | 0.22 | **0.14** |"),
        "{md}"
    );
    assert!(
        table
            .to_latex()
            .contains(r"sigma = 0.25 & 0.75 & \textbf{0.43} & 0.00 & 0.00 \\")
    );
}

/// Recovering each row's count pins down the alpha a log was certified with. The released
/// logs certified at the training noise level for sigma = 0.25, 0.5 and 1.0 fit only
/// alpha = 0.01 (their largest radii, e.g. 0.978 at sigma = 0.25, are `sigma * PhiInv(0.01^(1/n))`
/// and its neighbours); the sigma = 0.12 log and the cross-noise logs at sigma = 0.5 fit
/// only (or also) the stated alpha = 0.001. A wrong count inversion would reject both.
#[test]
fn released_logs_reveal_their_alpha() {
    use randomized_smoothing::certificate::projection::LoggedSettings;
    let fits = |noise: &str, sigma: &str, alpha: f64| {
        let settings = LoggedSettings::new(sigma.parse().unwrap(), 100_000, alpha).unwrap();
        log(noise, sigma)
            .iter()
            .filter(|r| r.correct)
            .all(|r| settings.count_for(r.radius).is_ok())
    };
    for (noise, sigma, at_001, at_0001) in [
        ("0.12", "0.12", false, true),
        ("0.25", "0.25", true, false),
        ("0.50", "0.50", true, false),
        ("1.00", "1.00", true, false),
        ("0.25", "0.50", false, true),
        ("1.00", "0.50", false, true),
        ("0.12", "0.50", true, true),
    ] {
        assert_eq!(fits(noise, sigma, 0.01), at_001, "{noise}/{sigma} at 0.01");
        assert_eq!(
            fits(noise, sigma, 0.001),
            at_0001,
            "{noise}/{sigma} at 0.001"
        );
    }
}

/// Projected to its own settings, every released log gives back its radii (to the rounding
/// of the log), and under the weaker formulas of Appendix I every radius shrinks.
#[test]
fn released_logs_project_onto_themselves() {
    use randomized_smoothing::certificate::projection::{
        LoggedSettings, Projection, RadiusBound, project,
    };
    for (noise, sigma, alpha) in [("0.25", "0.25", 0.01), ("0.25", "0.50", 0.001)] {
        let outcomes: Vec<Outcome> = log(noise, sigma)
            .iter()
            .map(CertifyRecord::outcome)
            .collect();
        let settings = LoggedSettings::new(sigma.parse().unwrap(), 100_000, alpha).unwrap();
        let at = |bound| {
            project(
                &outcomes,
                &settings,
                &Projection::new(100_000, alpha, bound).unwrap(),
            )
            .unwrap()
        };
        let (same, li, lecuyer) = (
            at(RadiusBound::Cohen),
            at(RadiusBound::Li),
            at(RadiusBound::Lecuyer),
        );
        for (i, o) in outcomes.iter().enumerate() {
            assert_eq!(same[i].correct, o.correct, "row {i}");
            // Half a unit in the third significant digit, the log's rounding.
            let tolerance = if o.correct {
                0.5 * 10f64.powf(o.radius.log10().floor() - 2.0) * (1.0 + 1e-9)
            } else {
                0.0
            };
            assert!(
                (same[i].radius - o.radius).abs() <= tolerance,
                "row {i}: {:?} vs {o:?}",
                same[i]
            );
            if o.correct {
                assert!(li[i].radius < same[i].radius, "row {i}");
                assert!(lecuyer[i].radius < li[i].radius, "row {i}");
            }
        }
    }
}
