//! `smoothing attack`: PGD on the smoothed classifier, or DeepFool on the base classifier.

use std::path::PathBuf;

use burn::backend::Autodiff;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use clap::{Args, ValueEnum};
use randomized_smoothing::attack::{DeepFoolConfig, Objective, PgdConfig};
use randomized_smoothing::models::{ImageClassifier, Precision};
use randomized_smoothing::workflow::attacks::{
    AttackJob, AttackPlan, attack_dataset_packed, deepfool_dataset,
};
use randomized_smoothing::workflow::jobs::read_log;
use randomized_smoothing::workflow::manifest::Manifest;
use randomized_smoothing::workflow::records::{
    AttackOutcome, CertifyRecord, deepfool_robust_accuracy,
};
use randomized_smoothing::{BaseClassifier, Error, Gaussian, PredictConfig, SmoothedClassifier};

use super::Failure;
use super::common::*;
use super::run::load_onnx_model;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Method {
    /// PGD in l2 against the smoothed classifier (needs --log).
    Pgd,
    /// DeepFool in l2 against the base classifier.
    Deepfool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ObjectiveArg {
    /// Appendix J.3: the mean over noise draws of the cross-entropy.
    MeanLoss,
    /// Salman et al. (2019): the cross-entropy of the mean softmax (stronger).
    LossOfMean,
}

#[derive(Args)]
// The job's --out is a folder here, not a log.
#[command(mut_arg("out", |a| a.help("Output folder: pgd_<multiple>R.tsv or deepfool.tsv (a rerun resumes them), and summary.md")))]
pub(crate) struct AttackArgs {
    #[command(flatten)]
    pub(crate) data: DataArgs,
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    /// --out is a folder here: pgd_{m}R.tsv (m the multiple) or deepfool.tsv, and summary.md.
    #[command(flatten)]
    pub(crate) job: JobArgs,
    /// The attack.
    #[arg(long, value_enum, default_value = "pgd")]
    pub(crate) method: Method,
    /// PGD: the certification log of this model and sigma (certify's output): the examples
    /// it certified correctly are attacked, at multiples of their radius. Required by PGD.
    #[arg(long)]
    pub(crate) log: Option<PathBuf>,
    /// PGD: multiples of the certified radius to attack at [default: 1.5,2].
    #[arg(long, value_delimiter = ',')]
    pub(crate) multiples: Option<Vec<f64>>,
    /// PGD: gradient steps [default: 20].
    #[arg(long)]
    pub(crate) steps: Option<usize>,
    /// PGD: step length in pixel units [default: 2.5 * attack radius / steps].
    #[arg(long)]
    pub(crate) step_size: Option<f64>,
    /// PGD: noise draws per step to estimate the smoothed classifier's gradient [default: 128].
    #[arg(long)]
    pub(crate) samples: Option<usize>,
    /// PGD: the objective [default: mean-loss].
    #[arg(long, value_enum)]
    pub(crate) objective: Option<ObjectiveArg>,
    /// PGD: PREDICT's noise samples at each adversarial input [default: 10000].
    #[arg(long)]
    pub(crate) n: Option<u64>,
    /// DeepFool: radii of the robust-accuracy summary [default: 0,0.25,0.5,0.75,1,1.25,1.5].
    #[arg(long, value_delimiter = ',')]
    pub(crate) radii: Option<Vec<f64>>,
    /// DeepFool: largest number of linearization steps [default: 50].
    #[arg(long)]
    pub(crate) max_iterations: Option<usize>,
    /// DeepFool: overshoot past the boundary, as a fraction of the step [default: 0.02].
    #[arg(long)]
    pub(crate) overshoot: Option<f64>,
}

/// Refuses flags of the other method, which would otherwise be ignored without a word.
fn check_method_flags(args: &AttackArgs) -> Result<(), Failure> {
    let pgd_only = [
        ("--sigma", args.job.sigma.is_some()),
        ("--log", args.log.is_some()),
        ("--multiples", args.multiples.is_some()),
        ("--steps", args.steps.is_some()),
        ("--step-size", args.step_size.is_some()),
        ("--samples", args.samples.is_some()),
        ("--objective", args.objective.is_some()),
        ("--n", args.n.is_some()),
    ];
    let deepfool_only = [
        ("--radii", args.radii.is_some()),
        ("--max-iterations", args.max_iterations.is_some()),
        ("--overshoot", args.overshoot.is_some()),
    ];
    let (other, method): (&[(&str, bool)], &str) = match args.method {
        Method::Pgd => (&deepfool_only, "deepfool"),
        Method::Deepfool => (&pgd_only, "pgd"),
    };
    match other.iter().find(|(_, given)| *given) {
        Some((flag, _)) => Err(format!(
            "{flag} applies to --method {method} only{}",
            if *flag == "--sigma" {
                " (DeepFool attacks the base classifier, which has no noise)"
            } else {
                ""
            }
        )
        .into()),
        None => Ok(()),
    }
}

pub(crate) fn run_attack<B: Backend>(args: &AttackArgs, device: &B::Device) -> Result<(), Failure> {
    check_method_flags(args)?;
    if args.model.denoiser.is_some() {
        return Err("attack does not take --denoiser: it attacks the model itself".into());
    }
    if args.model.precision != Precision::F32 {
        return Err("attack computes in f32: --precision is for certify and predict".into());
    }
    if args.job.pack != 1 && args.method == Method::Deepfool {
        return Err("--pack packs PREDICT's samples; DeepFool has none".into());
    }
    let data = args
        .data
        .load(args.job.split, args.model.card()?.as_ref())?;
    // Gradients through autodiff on the same backend; batch norms folded, so that they use
    // their running statistics under autodiff too.
    type Logits<B> = Box<dyn Fn(Tensor<Autodiff<B>, 4>) -> Tensor<Autodiff<B>, 2>>;
    let logits: Logits<B> = if args.model.is_onnx() {
        // The interpreter runs Burn's own operations on autodiff, gradients included.
        let model = load_onnx_model::<Autodiff<B>>(&args.model, &args.data, &*data, device)?;
        Box::new(move |x| model.forward(x))
    } else {
        if args.model.mean.is_some() {
            return Err("--mean and --std normalize the inputs of an ONNX --model".into());
        }
        let attacked =
            load_weights::<Autodiff<B>>(&args.model, &args.data, &*data, device)?.fold_batch_norm();
        Box::new(move |x| attacked.forward(x))
    };
    let logits = |x: Tensor<Autodiff<B>, 4>| logits(x);
    let out = args.job.out.clone();
    create_folder(&out)?;
    let mut summary = String::new();
    let mut job = args.job.job()?;
    let every = args.job.progress_every()?;
    // What every output log of this run depends on; each method adds its own settings.
    let manifest = manifest::<B>("attack", &args.data, &args.model, &args.job, device)?;
    if args.method == Method::Deepfool {
        job.output = out.join("deepfool.tsv");
        let mut config = DeepFoolConfig::default();
        if let Some(k) = args.max_iterations {
            config = config.max_iterations(k);
        }
        if let Some(o) = args.overshoot {
            config = config.overshoot(o);
        }
        let config = config.check()?;
        let _lock = manifest
            .clone()
            .set("method", "deepfool")
            .set("max_iterations", config.max_iterations())
            .set("overshoot", config.overshoot())
            .set("candidates", config.candidates())
            .attach(&job.output)?;
        let total = job.selection.indices(data.len()).len();
        let mut progress = Progress::new("deepfool", total, 0, every);
        let rows = deepfool_dataset(logits, &*data, &config, &job, device, |row, done, total| {
            let message = format!("last: idx {} distance {:.3}", row.idx, row.distance);
            progress.row(done, total, message);
        })?;
        progress.finish();
        let m = rows.len().max(1) as f64;
        let fooled = rows.iter().filter(|r| r.fooled).count();
        let mut distances: Vec<f64> = rows
            .iter()
            .filter(|r| r.fooled)
            .map(|r| r.distance)
            .collect();
        distances.sort_by(f64::total_cmp);
        let median = distances
            .get(distances.len() / 2)
            .copied()
            .unwrap_or(f64::NAN);
        summary.push_str(&format!(
            "# DeepFool (l2) on the base classifier\n\n{} examples; clean accuracy {:.3}; \
             fooled {fooled} ({:.3}); median distance when fooled {median:.3}.\n\n\
             Empirical robust accuracy (an upper bound on the true one): correct, and no \
             other class found within r.\n\n",
            rows.len(),
            rows.iter().filter(|r| r.predict == r.label).count() as f64 / m,
            fooled as f64 / m,
        ));
        // An empty selection (a shard past the end) has no accuracy to tabulate.
        if !rows.is_empty() {
            summary.push_str("| r | robust accuracy |\n| ---: | ---: |\n");
            let radii = args
                .radii
                .clone()
                .unwrap_or_else(|| vec![0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5]);
            for &r in &radii {
                let robust = deepfool_robust_accuracy(&rows, r)?;
                summary.push_str(&format!("| {r} | {robust:.3} |\n"));
            }
        }
    } else {
        let log = args
            .log
            .as_ref()
            .ok_or("--method pgd needs --log (certify's output)")?;
        // The log must be of this model, data and noise: its labels and radii are this
        // run's ground truth.
        match Manifest::of_log(log)? {
            Some(certifying) => {
                let keys = [
                    "model_sha256",
                    "dataset",
                    "data",
                    "data_sha256",
                    "split",
                    "noise",
                    "sigma",
                ];
                let differences = manifest.differences_in(&certifying, &keys);
                if !differences.is_empty() {
                    return Err(Error::RunMismatch {
                        log: log.clone(),
                        differences,
                    }
                    .into());
                }
            }
            None => eprintln!(
                "warning: {} has no manifest; cannot check that it certified this model, data and sigma",
                log.display()
            ),
        }
        let certified = read_log::<CertifyRecord>(log)?;
        let (steps, samples, n) = (
            args.steps.unwrap_or(20),
            args.samples.unwrap_or(128),
            args.n.unwrap_or(10_000),
        );
        let objective = args.objective.unwrap_or(ObjectiveArg::MeanLoss);
        let multiples = args.multiples.clone().unwrap_or_else(|| vec![1.5, 2.0]);
        let sigma = args.job.sigma()?;
        let base: Box<dyn BaseClassifier<4, Backend = B>> = if args.model.is_onnx() {
            Box::new(load_onnx_model::<B>(
                &args.model,
                &args.data,
                &*data,
                device,
            )?)
        } else {
            Box::new(load::<B>(&args.model, &args.data, &*data, device)?)
        };
        let smoothed = SmoothedClassifier::new(base, Gaussian::new(sigma)?);
        let predict = PredictConfig::default()
            .n(n)
            .alpha(args.job.alpha)
            .batch_size(args.job.batch)
            .check()?;
        let mut pgd = PgdConfig::new(1.0)
            .steps(steps)
            .samples(samples)
            .batch_size(args.job.batch.min(samples))
            .objective(match objective {
                ObjectiveArg::MeanLoss => Objective::MeanLoss,
                ObjectiveArg::LossOfMean => Objective::LossOfMean,
            });
        if let Some(step) = args.step_size {
            pgd = pgd.step_size(step);
        }
        summary.push_str(&format!(
            "# PGD (l2) against the smoothed classifier\n\nsigma = {}, {} steps, m = {}, \
             objective {}, PREDICT with n = {} at alpha = {}; examples certified correct in {}.\n\n\
             | attack radius | examples | fooled | abstained | robust |\n| --- | ---: | ---: | ---: | ---: |\n",
            sigma,
            steps,
            samples,
            match objective {
                ObjectiveArg::MeanLoss => "mean loss (Appendix J.3)",
                ObjectiveArg::LossOfMean => "loss of the mean (Salman et al.)",
            },
            n,
            args.job.alpha,
            log.display()
        ));
        for &multiple in &multiples {
            job.output = out.join(format!("pgd_{multiple}R.tsv"));
            let _lock = manifest
                .clone()
                .set("method", "pgd")
                .set("multiple", multiple)
                .set("objective", name_of(objective))
                .set("steps", steps)
                .set(
                    "step_size",
                    args.step_size
                        .map_or_else(|| "2.5 radius / steps".into(), |s| s.to_string()),
                )
                .set("samples", samples)
                .set("n", n)
                .attach(&job.output)?;
            let attack = AttackJob {
                certified: &certified,
                plan: AttackPlan::new(multiple, pgd.clone())?,
                predict,
                job: job.clone(),
            };
            // Its length comes with the first row: which examples are attacked is the
            // library's rule (certified correctly with R > 0), not repeated here.
            let mut progress = Progress::new(&format!("pgd at {multiple}R"), 0, 0, every);
            let rows = attack_dataset_packed(
                &smoothed,
                logits,
                &*data,
                &attack,
                args.job.pack,
                (device, device),
                |row, done, total| {
                    let message = format!("last: idx {} {}", row.idx, row.outcome.name());
                    progress.row(done, total, message);
                },
            )?;
            progress.finish();
            let m = rows.len().max(1) as f64;
            let rate = |o: AttackOutcome| {
                let k = rows.iter().filter(|r| r.outcome == o).count();
                format!("{k} ({:.3})", k as f64 / m)
            };
            summary.push_str(&format!(
                "| {multiple} R | {} | {} | {} | {} |\n",
                rows.len(),
                rate(AttackOutcome::Fooled),
                rate(AttackOutcome::Abstained),
                rate(AttackOutcome::Robust)
            ));
        }
    }
    write_report(&out.join("summary.md"), &summary)?;
    print!("{summary}");
    Ok(())
}
