//! `smoothing analyze`: certified-accuracy tables, Appendix D bounds and plots from logs.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use randomized_smoothing::certificate::accuracy::{
    AccuracyBound, Outcome, PairedComparison, approximate_certified_accuracy,
    average_certified_radius, certified_accuracy_lower_bound,
};
use randomized_smoothing::certificate::projection::{
    LoggedSettings, Projection, RadiusBound, project,
};
use randomized_smoothing::workflow::analysis::CertifiedAccuracyTable;
use randomized_smoothing::workflow::jobs::read_log;
use randomized_smoothing::workflow::manifest::Manifest;
use randomized_smoothing::workflow::plot::{Axes, Curve, plot_certified_accuracy, plot_curves};
use randomized_smoothing::workflow::records::{
    CertifyRecord, DeepFoolRecord, deepfool_robust_accuracy,
};

use super::Failure;
use super::common::{create_folder, write_report};

#[derive(Args)]
pub(crate) struct AnalyzeArgs {
    /// Certification logs (certify's TSV, or the paper's released logs).
    #[arg(required = true)]
    pub(crate) logs: Vec<PathBuf>,
    /// Names for the logs, one per log in order, comma-separated (default: the file names).
    #[arg(long, value_delimiter = ',')]
    pub(crate) labels: Vec<String>,
    /// Radii of the tables.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0,0.25,0.5,0.75,1,1.25,1.5,1.75,2,2.25"
    )]
    pub(crate) radii: Vec<f64>,
    /// The alpha the logs were certified with (for the Appendix D bound and the
    /// comparisons): one value for all logs or one per log. Read from each log's manifest
    /// when it has one; for a log without, the paper's 0.001 unless given.
    #[arg(long, value_delimiter = ',')]
    pub(crate) alpha: Vec<f64>,
    /// Failure probability of the Appendix D lower bound.
    #[arg(long, default_value_t = 0.001)]
    pub(crate) rho: f64,
    /// The Appendix D lower bound: the exact binomial tail (tighter), or the paper's
    /// Bernstein inequality (Theorem 6).
    #[arg(long, value_enum, default_value = "exact")]
    pub(crate) bound: BoundKind,
    /// Output folder: table.md, table.tex, curves.tsv, certified_accuracy.svg/png, and for
    /// several logs of the same examples paired.md (average certified radius, McNemar tests
    /// against the first log).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// A DeepFool log (`attack --method deepfool`) of an undefended network: its empirical
    /// robust accuracy, an upper bound, is added to the table and drawn dashed in black
    /// (the paper's Figure 6).
    #[arg(long)]
    pub(crate) deepfool: Option<PathBuf>,
    /// Name of the --deepfool row.
    #[arg(long, default_value = "undefended (DeepFool upper bound)")]
    pub(crate) deepfool_label: String,
    /// The sigma of each log, in order (one value for all, or one per log). With every log's
    /// sigma, from its manifest or from here, analyze also writes the paper's comparisons:
    /// radius_bounds.* (Figure 5, left) and, per log, LABEL_bounds.*, LABEL_n.* and
    /// LABEL_alpha.* (Figure 8), all tabulated in comparisons.md.
    #[arg(long, value_delimiter = ',')]
    pub(crate) sigmas: Vec<f64>,
    /// The n the logs were certified with (for the comparisons): one value or one per log.
    /// Read from manifests like --alpha; the paper's 100000 for a log without.
    #[arg(long, value_delimiter = ',')]
    pub(crate) n: Vec<u64>,
    /// Sample sizes to project each log to (Figure 8, middle).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1000,10000,100000,1000000,10000000"
    )]
    pub(crate) project_n: Vec<u64>,
    /// Failure probabilities to project each log to (Figure 8, right).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.1,0.01,0.001,0.0001,0.00001"
    )]
    pub(crate) project_alpha: Vec<f64>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum BoundKind {
    /// The exact binomial tail.
    Exact,
    /// Bernstein's inequality, as the paper's Theorem 6.
    Bernstein,
}

impl From<BoundKind> for AccuracyBound {
    fn from(kind: BoundKind) -> Self {
        match kind {
            BoundKind::Exact => AccuracyBound::Binomial,
            BoundKind::Bernstein => AccuracyBound::Bernstein,
        }
    }
}

/// What a log was certified with: from its manifest, else from the flags or the paper's
/// settings. `sigma` is known only from a manifest or `--sigmas`.
struct Settings {
    sigma: Option<f64>,
    alpha: f64,
    n: u64,
}

/// The `i`-th of `count` logs' value of a flag that takes one value for all or one per log.
fn per_log<T: Copy>(
    values: &[T],
    i: usize,
    count: usize,
    flag: &str,
) -> Result<Option<T>, Failure> {
    match values.len() {
        0 => Ok(None),
        1 => Ok(Some(values[0])),
        len if len == count => Ok(Some(values[i])),
        len => Err(format!("--{flag} gives {len} values for {count} logs").into()),
    }
}

/// Each log's settings: its manifest's, where it has one (a flag that contradicts it is an
/// error), else the flags', else the paper's alpha and n. Logs without a manifest are named
/// on stderr, since their settings are then an assumption.
fn settings_of(args: &AnalyzeArgs) -> Result<Vec<Settings>, Failure> {
    let count = args.logs.len();
    let mut out = Vec::new();
    let mut assumed = Vec::new();
    for (i, log) in args.logs.iter().enumerate() {
        let flags = (
            per_log(&args.sigmas, i, count, "sigmas")?,
            per_log(&args.alpha, i, count, "alpha")?,
            per_log(&args.n, i, count, "n")?,
        );
        let Some(manifest) = Manifest::of_log(log)? else {
            assumed.push(log.display().to_string());
            out.push(Settings {
                sigma: flags.0,
                alpha: flags.1.unwrap_or(0.001),
                n: flags.2.unwrap_or(100_000),
            });
            continue;
        };
        let setting = |key: &str| -> Result<f64, Failure> {
            manifest
                .settings()
                .get(key)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| {
                    format!("the manifest of {} has no numeric {key}", log.display()).into()
                })
        };
        let (sigma, alpha, n) = (setting("sigma")?, setting("alpha")?, setting("n")?);
        for (flag, given, logged) in [
            ("sigmas", flags.0, sigma),
            ("alpha", flags.1, alpha),
            ("n", flags.2.map(|n| n as f64), n),
        ] {
            if given.is_some_and(|g| g != logged) {
                return Err(format!(
                    "--{flag} says {}, but the manifest of {} records {logged}",
                    given.unwrap_or_default(),
                    log.display()
                )
                .into());
            }
        }
        out.push(Settings {
            sigma: Some(sigma),
            alpha,
            n: n as u64,
        });
    }
    if !assumed.is_empty() {
        eprintln!(
            "no manifest (settings from the flags, else alpha = 0.001 and n = 100000): {}",
            assumed.join(", ")
        );
    }
    Ok(out)
}

pub(crate) fn run_analyze(args: &AnalyzeArgs) -> Result<(), Failure> {
    if !args.labels.is_empty() && args.labels.len() != args.logs.len() {
        return Err(format!(
            "--labels gives {} names for {} logs (one per log, in order, or none for the file names)",
            args.labels.len(),
            args.logs.len()
        )
        .into());
    }
    let settings = settings_of(args)?;
    let mut runs: Vec<(String, Vec<Outcome>)> = Vec::new();
    let mut examples: Vec<Vec<usize>> = Vec::new();
    for (i, path) in args.logs.iter().enumerate() {
        let rows = read_log::<CertifyRecord>(path)?;
        examples.push(rows.iter().map(|r| r.idx).collect());
        let outcomes = rows.iter().map(|r| r.outcome()).collect();
        let label = args
            .labels
            .get(i)
            .map(|l| l.trim().to_string())
            .unwrap_or_else(|| {
                path.file_name().map_or_else(
                    || path.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                )
            });
        runs.push((label, outcomes));
    }
    create_folder(&args.out)?;
    let borrowed: Vec<(&str, &[Outcome])> = runs
        .iter()
        .map(|(l, o)| (l.as_str(), o.as_slice()))
        .collect();
    let mut table = CertifiedAccuracyTable::new(&args.radii, &borrowed)?;
    let deepfool = match &args.deepfool {
        Some(path) => Some(read_log::<DeepFoolRecord>(path)?),
        None => None,
    };
    if let Some(rows) = &deepfool {
        table = table.with_reference(args.deepfool_label.as_str(), |r| {
            deepfool_robust_accuracy(rows, r)
        })?;
    }
    write_report(&args.out.join("table.md"), table.to_markdown())?;
    write_report(&args.out.join("table.tex"), table.to_latex())?;
    print!("{}", table.to_markdown());
    for (label, outcomes) in &runs {
        println!(
            "{label}: average certified radius {:.3}",
            average_certified_radius(outcomes)?
        );
    }
    if runs.len() > 1 {
        if examples.iter().all(|e| *e == examples[0]) {
            write_report(&args.out.join("paired.md"), paired(args, &runs)?)?;
            println!("wrote paired.md (each log against the first, same examples)");
        } else {
            eprintln!("no paired.md: the logs certify different examples");
        }
    }

    // Curves on a fine grid: the approximate certified accuracy, and its Appendix D lower
    // bound (holds with probability 1 - rho over the certification's randomness).
    let max_radius = runs
        .iter()
        .flat_map(|(_, o)| o.iter().map(|x| x.radius))
        // The DeepFool curve goes on past the certified radii: draw it over the table's.
        .chain(args.radii.iter().copied().filter(|_| deepfool.is_some()))
        .fold(0.0_f64, f64::max);
    let steps = ((max_radius / 0.01).ceil() as usize).max(1) + 1;
    let grid: Vec<f64> = (0..=steps).map(|i| i as f64 * 0.01).collect();
    let mut curves = Vec::new();
    let mut tsv = String::from("run\tradius\tcertified_accuracy\tlower_bound\n");
    for ((label, outcomes), logged) in runs.iter().zip(&settings) {
        let approx = approximate_certified_accuracy(outcomes, &grid)?;
        let m = outcomes.len() as u64;
        let lower = approx
            .iter()
            .map(|&a| {
                certified_accuracy_lower_bound(a, m, logged.alpha, args.rho, args.bound.into())
            })
            .collect::<Result<Vec<_>, _>>()?;
        for ((r, a), l) in grid.iter().zip(&approx).zip(&lower) {
            tsv.push_str(&format!("{label}\t{r:.2}\t{a:.4}\t{l:.4}\n"));
        }
        curves.push(Curve::new(
            label.clone(),
            grid.iter().copied().zip(approx).collect(),
        ));
        curves.push(
            Curve::new(
                format!(
                    "{label}: lower bound ({}, rho = {})",
                    AccuracyBound::from(args.bound).name(),
                    args.rho
                ),
                grid.iter().copied().zip(lower).collect(),
            )
            .dashed(),
        );
    }
    write_report(&args.out.join("curves.tsv"), tsv)?;
    if let Some(rows) = &deepfool {
        let points = grid
            .iter()
            .map(|&r| Ok((r, deepfool_robust_accuracy(rows, r)?)))
            .collect::<Result<_, randomized_smoothing::Error>>()?;
        curves.push(
            Curve::new(args.deepfool_label.as_str(), points)
                .dashed()
                .color(0, 0, 0),
        );
    }
    for ext in ["svg", "png"] {
        plot_certified_accuracy(
            &curves,
            "certified accuracy",
            &args.out.join(format!("certified_accuracy.{ext}")),
        )?;
    }
    println!(
        "wrote table.md, table.tex, curves.tsv, certified_accuracy.svg and .png in {}",
        args.out.display()
    );
    if settings.iter().all(|s| s.sigma.is_some()) {
        write_comparisons(args, &runs, &settings)?;
    }
    Ok(())
}

/// Each log against the first on the same examples: the average certified radius, and at
/// each radius of the table the examples only one of the two certifies, with the exact
/// McNemar p-value.
fn paired(args: &AnalyzeArgs, runs: &[(String, Vec<Outcome>)]) -> Result<String, Failure> {
    let (first_label, first) = &runs[0];
    let mut md = format!(
        "# Paired comparisons against {first_label}\n\n\
         {} examples, the same in every log. ACR: the average certified radius (0 for a wrong or \
         abstained example). Each cell `a / b, p`: the examples certified correct at that radius \
         by the first log (`{first_label}`) but not this one (a), by this one but not the first \
         (b), and the two-sided exact McNemar p-value (binomial test of b in a + b at 1/2).\n\n\
         | log | ACR |",
        first.len()
    );
    for r in &args.radii {
        md.push_str(&format!(" r = {r:.2} |"));
    }
    md.push_str("\n| --- | ---: |");
    md.push_str(&" ---: |".repeat(args.radii.len()));
    md.push('\n');
    for (i, (label, outcomes)) in runs.iter().enumerate() {
        md.push_str(&format!(
            "| {label} | {:.3} |",
            average_certified_radius(outcomes)?
        ));
        for &r in &args.radii {
            if i == 0 {
                md.push_str(" - |");
                continue;
            }
            let c = PairedComparison::new(first, outcomes, r)?;
            md.push_str(&format!(
                " {} / {}, {} |",
                c.only_first,
                c.only_second,
                significant(c.p_value)
            ));
        }
        md.push('\n');
    }
    Ok(md)
}

/// A p-value with two significant digits.
fn significant(p: f64) -> String {
    if p >= 0.01 {
        format!("{p:.2}")
    } else {
        format!("{p:.1e}")
    }
}

/// The paper's Figure 5 (left) and Figure 8, as plots, TSVs and one Markdown file.
fn write_comparisons(
    args: &AnalyzeArgs,
    runs: &[(String, Vec<Outcome>)],
    settings: &[Settings],
) -> Result<(), Failure> {
    let mut md = String::from(
        "# Comparisons (the paper's Figure 5, left, and Figure 8)\n\n\
         Radii at sigma = 1 against the lower bound p_A (p_B = 1 - p_A): radius_bounds.png.\n",
    );
    // Figure 5 (left): the three formulas against p_A at sigma = 1.
    let grid: Vec<f64> = (1..=499).map(|i| 0.5 + i as f64 * 0.001).collect();
    let mut tsv = String::from("p_a\tbound\tradius\n");
    let mut curves = Vec::new();
    for bound in RadiusBound::ALL {
        let points = grid
            .iter()
            .map(|&p| Ok((p, bound.radius(1.0, p)?)))
            .collect::<Result<Vec<_>, randomized_smoothing::Error>>()?;
        for (p, r) in &points {
            tsv.push_str(&format!("{p:.3}\t{}\t{r:.5}\n", bound.name()));
        }
        curves.push(Curve::new(bound.name(), points));
    }
    write_report(&args.out.join("radius_bounds.tsv"), tsv)?;
    md.push_str("\n| p_A | 0.6 | 0.7 | 0.8 | 0.9 | 0.99 | 0.999 |\n| --- |");
    md.push_str(&" ---: |".repeat(6));
    for bound in RadiusBound::ALL {
        md.push_str(&format!("\n| {} |", bound.name()));
        for p in [0.6, 0.7, 0.8, 0.9, 0.99, 0.999] {
            md.push_str(&format!(" {:.3} |", bound.radius(1.0, p)?));
        }
    }
    md.push('\n');
    let axes = Axes {
        title: "certified radius at sigma = 1".into(),
        x_label: "lower bound p_A on the top class's probability".into(),
        y_label: "certified l2 radius".into(),
        y_range: (0.0, 3.2),
    };
    for ext in ["svg", "png"] {
        plot_curves(
            &curves,
            &axes,
            &args.out.join(format!("radius_bounds.{ext}")),
        )?;
    }

    // Figure 8: each log under the other bounds, and projected over n and alpha.
    let steps = |outcomes: &[Outcome]| {
        let max = outcomes.iter().map(|o| o.radius).fold(0.0_f64, f64::max);
        ((max / 0.01).ceil() as usize).max(1) + 1
    };
    for ((label, outcomes), s) in runs.iter().zip(settings) {
        let (sigma, n, alpha) = (s.sigma.unwrap_or_default(), s.n, s.alpha);
        let logged = LoggedSettings::new(sigma, n, alpha)?;
        // A file-name form of the label: runs of other characters become one '_'.
        let slug = label
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join("_");
        let variants: [(&str, Vec<(String, Projection)>); 3] = [
            (
                "bounds",
                RadiusBound::ALL
                    .iter()
                    .map(|&b| Ok((b.name().to_string(), Projection::new(n, alpha, b)?)))
                    .collect::<Result<_, randomized_smoothing::Error>>()?,
            ),
            (
                "n",
                args.project_n
                    .iter()
                    .map(|&to| {
                        Ok((
                            format!("n = {to}"),
                            Projection::new(to, alpha, RadiusBound::Cohen)?,
                        ))
                    })
                    .collect::<Result<_, randomized_smoothing::Error>>()?,
            ),
            (
                "alpha",
                args.project_alpha
                    .iter()
                    .map(|&a| {
                        Ok((
                            format!("alpha = {a}"),
                            Projection::new(n, a, RadiusBound::Cohen)?,
                        ))
                    })
                    .collect::<Result<_, randomized_smoothing::Error>>()?,
            ),
        ];
        for (kind, projections) in variants {
            let projected = projections
                .iter()
                .map(|(name, p)| Ok((name.clone(), project(outcomes, &logged, p)?)))
                .collect::<Result<Vec<_>, randomized_smoothing::Error>>()?;
            let rows: Vec<(&str, &[Outcome])> = projected
                .iter()
                .map(|(n, o)| (n.as_str(), o.as_slice()))
                .collect();
            let table = CertifiedAccuracyTable::new(&args.radii, &rows)?;
            let what = match kind {
                "bounds" => "the same counts under each radius formula (Figure 8, left)",
                "n" => "projected to other n, class proportions fixed (Figure 8, middle)",
                _ => "projected to other alpha (Figure 8, right)",
            };
            md.push_str(&format!(
                "\n## {label}: {what}\n\nLogged with sigma = {sigma}, n = {n}, alpha = {alpha}.\n\n{}",
                table.to_markdown()
            ));
            let max_steps = projected.iter().map(|(_, o)| steps(o)).max().unwrap_or(1);
            let grid: Vec<f64> = (0..=max_steps).map(|i| i as f64 * 0.01).collect();
            let curves = projected
                .iter()
                .map(|(name, o)| {
                    let accuracy = approximate_certified_accuracy(o, &grid)?;
                    Ok(Curve::new(
                        name.clone(),
                        grid.iter().copied().zip(accuracy).collect(),
                    ))
                })
                .collect::<Result<Vec<_>, randomized_smoothing::Error>>()?;
            let title = format!("{label}: {what}");
            for ext in ["svg", "png"] {
                let path = args.out.join(format!("{slug}_{kind}.{ext}"));
                plot_curves(&curves, &Axes::certified_accuracy(&title), &path)?;
            }
        }
    }
    write_report(&args.out.join("comparisons.md"), &md)?;
    println!(
        "wrote comparisons.md, radius_bounds.tsv/.svg/.png and per log _bounds, _n and _alpha plots in {}",
        args.out.display()
    );
    Ok(())
}
