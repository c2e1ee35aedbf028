//! `smoothing analyze`: certified-accuracy tables, Appendix D bounds and plots from logs.

use std::path::PathBuf;

use clap::Args;
use randomized_smoothing::certificate::accuracy::{
    AccuracyBound, Outcome, approximate_certified_accuracy, certified_accuracy_lower_bound,
};
use randomized_smoothing::certificate::projection::{
    LoggedSettings, Projection, RadiusBound, project,
};
use randomized_smoothing::workflow::analysis::CertifiedAccuracyTable;
use randomized_smoothing::workflow::plot::{Axes, Curve, plot_certified_accuracy, plot_curves};
use randomized_smoothing::workflow::records::{
    deepfool_robust_accuracy, read_certify_log, read_deepfool_log,
};

use super::Failure;
use super::common::*;

#[derive(Args)]
pub(crate) struct AnalyzeArgs {
    /// Certification logs (certify's TSV, or the paper's released logs).
    #[arg(required = true)]
    pub(crate) logs: Vec<PathBuf>,
    /// Names for the logs, in order (default: file names).
    #[arg(long, value_delimiter = ',')]
    pub(crate) labels: Vec<String>,
    /// Radii of the tables.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0,0.25,0.5,0.75,1,1.25,1.5,1.75,2,2.25"
    )]
    pub(crate) radii: Vec<f64>,
    /// The alpha the logs were certified with (for the Appendix D bound).
    #[arg(long, default_value_t = 0.001)]
    pub(crate) alpha: f64,
    /// Failure probability of the Appendix D bound.
    #[arg(long, default_value_t = 0.001)]
    pub(crate) rho: f64,
    /// Output folder: table.md, table.tex, curves.tsv, certified_accuracy.svg/png.
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
    /// The sigma of each log, in order. With them, analyze also writes the paper's
    /// comparisons: radius_bounds.* (Figure 5, left) and, per log, LABEL_bounds.*,
    /// LABEL_n.* and LABEL_alpha.* (Figure 8), all tabulated in comparisons.md.
    #[arg(long, value_delimiter = ',')]
    pub(crate) sigmas: Vec<f64>,
    /// The n the logs were certified with (for the comparisons).
    #[arg(long, default_value_t = 100_000)]
    pub(crate) n: u64,
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

pub(crate) fn run_analyze(args: &AnalyzeArgs) -> Result<(), Failure> {
    let mut runs: Vec<(String, Vec<Outcome>)> = Vec::new();
    for (i, path) in args.logs.iter().enumerate() {
        let outcomes = read_certify_log(open(path)?)?
            .iter()
            .map(|r| r.outcome())
            .collect();
        let label = args.labels.get(i).cloned().unwrap_or_else(|| {
            path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            )
        });
        runs.push((label, outcomes));
    }
    std::fs::create_dir_all(&args.out)?;
    let borrowed: Vec<(&str, &[Outcome])> = runs
        .iter()
        .map(|(l, o)| (l.as_str(), o.as_slice()))
        .collect();
    let mut table = CertifiedAccuracyTable::new(&args.radii, &borrowed)?;
    let deepfool = match &args.deepfool {
        Some(path) => Some(read_deepfool_log(open(path)?)?),
        None => None,
    };
    if let Some(rows) = &deepfool {
        table = table.with_reference(args.deepfool_label.as_str(), |r| {
            deepfool_robust_accuracy(rows, r)
        })?;
    }
    std::fs::write(args.out.join("table.md"), table.to_markdown())?;
    std::fs::write(args.out.join("table.tex"), table.to_latex())?;
    print!("{}", table.to_markdown());

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
    for (label, outcomes) in &runs {
        let approx = approximate_certified_accuracy(outcomes, &grid)?;
        let m = outcomes.len() as u64;
        let lower = approx
            .iter()
            .map(|&a| {
                certified_accuracy_lower_bound(a, m, args.alpha, args.rho, AccuracyBound::Bernstein)
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
                format!("{label}: lower bound (rho = {})", args.rho),
                grid.iter().copied().zip(lower).collect(),
            )
            .dashed(),
        );
    }
    std::fs::write(args.out.join("curves.tsv"), tsv)?;
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
    if !args.sigmas.is_empty() {
        write_comparisons(args, &runs)?;
    }
    Ok(())
}

/// The paper's Figure 5 (left) and Figure 8, as plots, TSVs and one Markdown file.
pub(crate) fn write_comparisons(
    args: &AnalyzeArgs,
    runs: &[(String, Vec<Outcome>)],
) -> Result<(), Failure> {
    if args.sigmas.len() != runs.len() {
        return Err(format!(
            "--sigmas gives {} values for {} logs",
            args.sigmas.len(),
            runs.len()
        )
        .into());
    }
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
    std::fs::write(args.out.join("radius_bounds.tsv"), tsv)?;
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
    for ((label, outcomes), &sigma) in runs.iter().zip(&args.sigmas) {
        let logged = LoggedSettings::new(sigma, args.n, args.alpha)?;
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
                    .map(|&b| {
                        Ok((
                            b.name().to_string(),
                            Projection::new(args.n, args.alpha, b)?,
                        ))
                    })
                    .collect::<Result<_, randomized_smoothing::Error>>()?,
            ),
            (
                "n",
                args.project_n
                    .iter()
                    .map(|&n| {
                        Ok((
                            format!("n = {n}"),
                            Projection::new(n, args.alpha, RadiusBound::Cohen)?,
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
                            Projection::new(args.n, a, RadiusBound::Cohen)?,
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
                "\n## {label}: {what}\n\nLogged with sigma = {sigma}, n = {}, alpha = {}.\n\n{}",
                args.n,
                args.alpha,
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
    std::fs::write(args.out.join("comparisons.md"), &md)?;
    println!(
        "wrote comparisons.md, radius_bounds.tsv/.svg/.png and per log _bounds, _n and _alpha plots in {}",
        args.out.display()
    );
    Ok(())
}
