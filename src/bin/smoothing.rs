//! `smoothing`: the paper's experiments from the command line, after its scripts
//! (`train.py`, `certify.py`, `predict.py`, `analyze.py`).
//!
//! ```text
//! smoothing train   --dataset digits --arch small_cnn --sigma 0.25 --epochs 20 --out runs/digits
//! smoothing certify --dataset digits --model runs/digits/model.bpk --sigma 0.25 --n 10000 --out logs/digits_0.25.tsv
//! smoothing predict --dataset digits --model runs/digits/model.bpk --sigma 0.25 --n 1000 --out logs/digits_0.25.predict.tsv
//! smoothing analyze logs/digits_0.25.tsv --sigmas 0.25 --n 10000 --out analysis/digits
//! smoothing merge   --out logs/all.tsv logs/shard0.tsv logs/shard1.tsv
//! smoothing attack  --dataset digits --model runs/digits/model.bpk --sigma 0.25 --log logs/digits_0.25.tsv --multiples 1.5,2 --out attacks/digits
//! ```
//! Every command that runs a model takes `--backend` (flex, ndarray, libtorch or cuda, among
//! those compiled in; by default the fastest for the device) and `--device` (cpu, or cuda:K;
//! cuda:0 by default in a build with `--features cuda`), and prints the backend it runs on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::tensor::backend::Backend;
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use randomized_smoothing::accuracy::{
    AccuracyBound, Outcome, approximate_certified_accuracy, certified_accuracy_lower_bound,
};
use randomized_smoothing::analysis::CertifiedAccuracyTable;
use randomized_smoothing::attack::{DeepFoolParams, Objective, PgdParams};
use randomized_smoothing::data::{
    Dataset, ImageFolder, ImageSource, digits, load_cifar10, load_mnist,
};
use randomized_smoothing::jobs::{
    AttackPlan, Job, Selection, Shard, attack_dataset, certify_dataset, deepfool_dataset,
    merge_logs, predict_dataset,
};
use randomized_smoothing::models::{
    Architecture, ImageClassifier, Model, PytorchCheckpoint, SmallCnnConfig, load_model, save_model,
};
use randomized_smoothing::plot::{Axes, Curve, plot_certified_accuracy, plot_curves};
use randomized_smoothing::projection::{LoggedSettings, Projection, RadiusBound, project};
use randomized_smoothing::records::{
    AttackOutcome, deepfool_robust_accuracy, read_certify_log, read_deepfool_log,
};
use randomized_smoothing::runtime::{BackendKind, BackendTask, DeviceKind, Runtime};
use randomized_smoothing::train::{TrainParams, train};
use randomized_smoothing::{CertifyParams, Gaussian, PredictParams, SmoothedClassifier};

type Failure = Box<dyn std::error::Error>;

#[derive(Parser)]
#[command(
    version,
    about = "Certified robustness by randomized smoothing (Cohen et al., 2019)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Backend: flex, ndarray, libtorch or cuda, among those compiled in (cargo features
    /// flex, ndarray, tch, cuda). Default: the fastest compiled in for the device (on the
    /// CPU libtorch, else flex; on a GPU cuda, else libtorch).
    #[arg(long, global = true)]
    backend: Option<BackendKind>,
    /// Device: cpu, cuda (the first GPU) or cuda:K. Default: cuda:0 in a build with the
    /// `cuda` feature, else cpu.
    #[arg(long, global = true)]
    device: Option<DeviceKind>,
}

/// A command that runs a model, on the backend `--backend` and `--device` choose.
enum Work<'a> {
    Train(&'a TrainArgs),
    Certify(&'a CertifyArgs),
    Predict(&'a PredictArgs),
    Attack(&'a AttackArgs),
}

impl BackendTask for Work<'_> {
    type Output = Result<(), Failure>;

    fn run<B: Backend>(self, device: B::Device) -> Result<(), Failure> {
        match self {
            Work::Train(a) => run_train::<B>(a, &device),
            Work::Certify(a) => run_certify::<B>(a, &device),
            Work::Predict(a) => run_predict::<B>(a, &device),
            Work::Attack(a) => run_attack::<B>(a, &device),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Train a base classifier with Gaussian data augmentation (the paper's train.py).
    Train(TrainArgs),
    /// CERTIFY each selected example; one TSV row per example (certify.py's format).
    Certify(CertifyArgs),
    /// PREDICT each selected example; one TSV row per example (predict.py's format).
    Predict(PredictArgs),
    /// Certified-accuracy tables, Appendix D lower bounds and plots from certification logs.
    Analyze(AnalyzeArgs),
    /// Merge the logs of a sharded run into one, refusing duplicate rows.
    Merge(MergeArgs),
    /// Attack certified examples with PGD against the smoothed classifier at multiples of
    /// their certified radius (Appendix J.3), or the base classifier with DeepFool.
    Attack(AttackArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DatasetName {
    /// The 1,797 digits embedded in the crate: train = first 1,437, test = last 360.
    Digits,
    /// MNIST test files in --data: train = first 8,000 images, test = last 2,000.
    Mnist,
    /// CIFAR-10 binary batches in --data: data_batch_1..5 (train), test_batch (test).
    Cifar10,
    /// ImageNet image folders in --data: train/ and val/, one sub-folder per class, read
    /// lazily; test images resized to 256 and center-cropped to 224, training images
    /// randomly resized-cropped to 224 and flipped.
    Imagenet,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Split {
    Train,
    Test,
}

#[derive(Args)]
struct DataArgs {
    /// Data set.
    #[arg(long, value_enum)]
    dataset: DatasetName,
    /// Folder of the data set's files (mnist, cifar10, imagenet).
    #[arg(long)]
    data: Option<PathBuf>,
}

impl DataArgs {
    fn load(&self, split: Split) -> Result<Box<dyn ImageSource>, Failure> {
        let dir = || -> Result<&Path, Failure> {
            self.data
                .as_deref()
                .ok_or_else(|| "this data set needs --data DIR".into())
        };
        let pick = |(train, test): (Dataset, Dataset)| match split {
            Split::Train => train,
            Split::Test => test,
        };
        Ok(Box::new(match self.dataset {
            DatasetName::Digits => pick(digits()?.split_at(1_437)?),
            DatasetName::Mnist => {
                let d = dir()?;
                let file = |stem: &str| {
                    let plain = d.join(stem);
                    if plain.exists() {
                        plain
                    } else {
                        d.join(format!("{stem}.gz"))
                    }
                };
                let all = load_mnist(
                    file("t10k-images-idx3-ubyte"),
                    file("t10k-labels-idx1-ubyte"),
                )?;
                pick(all.split_at(8_000)?)
            }
            DatasetName::Cifar10 => load_cifar10(dir()?, split == Split::Train)?,
            DatasetName::Imagenet => {
                let folder = match split {
                    Split::Train => "train",
                    Split::Test => "val",
                };
                return Ok(Box::new(ImageFolder::open(dir()?.join(folder))?));
            }
        }))
    }

    /// The normalization a small CNN uses for this data set (fixed per data set, so that
    /// training and certification agree without storing it).
    fn normalization(&self) -> (f32, f32) {
        match self.dataset {
            DatasetName::Digits => (0.3, 0.35),
            DatasetName::Mnist => (0.1307, 0.3081),
            DatasetName::Cifar10 => (0.47, 0.25),
            DatasetName::Imagenet => (0.45, 0.23),
        }
    }
}

#[derive(Args)]
struct ModelArgs {
    /// Architecture: small_cnn, cifar_resnet20, cifar_resnet110 (any cifar_resnet<6k+2>) or
    /// resnet50. With a PyTorch checkpoint, defaults to its `arch` field.
    #[arg(long)]
    arch: Option<String>,
    /// Channels of the small CNN's first convolutions (as given to `train`).
    #[arg(long, default_value_t = 32)]
    filters: usize,
    /// Weights: a burnpack file written by `train` (.bpk) or a PyTorch checkpoint in the
    /// paper's layout (.pth, .pth.tar, .pt).
    #[arg(long)]
    model: PathBuf,
}

fn build<BK: Backend>(
    arch: &str,
    filters: usize,
    data: &DataArgs,
    sample: &dyn ImageSource,
    device: &BK::Device,
) -> Result<Model<BK>, Failure> {
    if arch == "small_cnn" {
        let (mean, std) = data.normalization();
        let shape = sample.image_shape();
        let config = SmallCnnConfig::new([shape[0], shape[1], shape[2]], sample.num_classes())
            .with_filters(filters)
            .with_mean(vec![mean])
            .with_std(vec![std]);
        return Ok(Model::SmallCnn(config.init(device)?));
    }
    Ok(arch
        .parse::<Architecture>()?
        .init(sample.num_classes(), device)?)
}

/// The model for inference: loaded, with batch norms folded into the convolutions.
fn load<B: Backend>(
    args: &ModelArgs,
    data: &DataArgs,
    sample: &dyn ImageSource,
    device: &B::Device,
) -> Result<Model<B>, Failure> {
    Ok(load_weights(args, data, sample, device)?.fold_batch_norm())
}

fn load_weights<BK: Backend>(
    args: &ModelArgs,
    data: &DataArgs,
    sample: &dyn ImageSource,
    device: &BK::Device,
) -> Result<Model<BK>, Failure> {
    let is_burn = args.model.extension().is_some_and(|e| e == "bpk");
    if is_burn {
        let arch = args.arch.as_deref().ok_or("a .bpk model needs --arch")?;
        return Ok(load_model(
            build(arch, args.filters, data, sample, device)?,
            &args.model,
        )?);
    }
    let checkpoint = PytorchCheckpoint::open(&args.model)?;
    match &args.arch {
        Some(arch) => Ok(checkpoint.load_into(build(arch, args.filters, data, sample, device)?)?),
        None => Ok(checkpoint.model(device)?),
    }
}

#[derive(Args)]
struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Architecture (small_cnn, cifar_resnet20, cifar_resnet110, ...).
    #[arg(long, default_value = "small_cnn")]
    arch: String,
    /// Channels of the small CNN's first convolutions.
    #[arg(long, default_value_t = 32)]
    filters: usize,
    /// Standard deviation of the Gaussian augmentation noise.
    #[arg(long)]
    sigma: f64,
    #[arg(long, default_value_t = 90)]
    epochs: usize,
    #[arg(long, default_value_t = 256)]
    batch: usize,
    #[arg(long, default_value_t = 0.1)]
    lr: f64,
    /// Multiply the learning rate by 0.1 every this many epochs.
    #[arg(long, default_value_t = 30)]
    lr_step_size: usize,
    /// Random crop padding and horizontal flips (the paper's CIFAR-10 augmentation).
    #[arg(long)]
    augment: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder: checkpoints each epoch (a rerun resumes), log.tsv, model.bpk.
    #[arg(long)]
    out: PathBuf,
}

fn run_train<B: Backend>(args: &TrainArgs, device: &B::Device) -> Result<(), Failure> {
    let train_set = args.data.load(Split::Train)?;
    let test_set = args.data.load(Split::Test)?;
    // The backend's generator initializes the weights: seed it for a reproducible start.
    B::seed(device, args.seed);
    let model = build::<Autodiff<B>>(&args.arch, args.filters, &args.data, &*train_set, device)?;
    let mut params = TrainParams::new(args.sigma)
        .epochs(args.epochs)
        .batch_size(args.batch)
        .lr(args.lr)
        .lr_schedule(args.lr_step_size, 0.1);
    if args.augment {
        params = params.augment(4, true);
    }
    let config = params.check()?;
    let bar = progress(args.epochs as u64, "epochs");
    let trained = train(
        model,
        &*train_set,
        &*test_set,
        &config,
        Some(&args.out.join("checkpoints")),
        args.seed,
        |e| {
            bar.set_position(e.epoch as u64);
            say(
                &bar,
                format!(
                    "epoch {:>3}: {:.1} s, lr {:.4}, train loss {:.4} acc {:.3}, test loss {:.4} acc {:.3}",
                    e.epoch,
                    e.time.as_secs_f64(),
                    e.lr,
                    e.train_loss,
                    e.train_acc,
                    e.test_loss,
                    e.test_acc
                ),
            );
        },
    )?;
    bar.finish_and_clear();
    let path = args.out.join("model.bpk");
    save_model(&trained.valid(), &path)?;
    println!("saved {}", path.display());
    Ok(())
}

#[derive(Args)]
struct JobArgs {
    /// Noise level of the smoothed classifier.
    #[arg(long)]
    sigma: f64,
    #[arg(long, default_value_t = 0.001)]
    alpha: f64,
    #[arg(long, default_value_t = 400)]
    batch: usize,
    /// Take every skip-th example (certify.py's --skip).
    #[arg(long, default_value_t = 1)]
    skip: usize,
    /// At most this many examples (a count, unlike certify.py's index).
    #[arg(long)]
    max: Option<usize>,
    /// Run shard k of N (`k/N`, k from 0); merge the shards' logs with `merge`.
    #[arg(long, default_value = "0/1")]
    shard: String,
    /// Seed from which each example's seed derives.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Data split to run on.
    #[arg(long, value_enum, default_value = "test")]
    split: Split,
    /// The TSV log; a rerun continues after its last complete row.
    #[arg(long)]
    out: PathBuf,
}

impl JobArgs {
    fn job(&self) -> Result<Job, Failure> {
        Ok(Job {
            selection: Selection::new(self.skip, self.max, Shard::parse(&self.shard)?)?,
            seed: self.seed,
            output: self.out.clone(),
        })
    }
}

#[derive(Args)]
struct CertifyArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    job: JobArgs,
    /// Samples for selecting the class.
    #[arg(long, default_value_t = 100)]
    n0: u64,
    /// Samples for estimating its probability.
    #[arg(long, default_value_t = 100_000)]
    n: u64,
    /// The two-sided certificate: bound the runner-up's probability too, alpha split
    /// between the two bounds (beyond the paper; never below its radius at alpha/2).
    #[arg(long)]
    two_sided: bool,
}

/// Prints a line above the progress bar, or to stderr when the bar is hidden (not a
/// terminal), so that logs of batch jobs keep it.
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

fn progress(len: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{elapsed_precise}} [{{bar:40}}] {{pos}}/{{len}} {unit} (eta {{eta}}) {{msg}}"
        ))
        .expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_secs(1));
    bar
}

/// What `certify` and `predict` share: the data split, the smoothed model, the job and its
/// progress bar.
struct Run<B: Backend> {
    data: Box<dyn ImageSource>,
    smoothed: SmoothedClassifier<B, Model<B>, Gaussian, 4>,
    job: Job,
    bar: ProgressBar,
}

impl<B: Backend> Run<B> {
    fn new(
        data: &DataArgs,
        model: &ModelArgs,
        job: &JobArgs,
        device: &B::Device,
    ) -> Result<Self, Failure> {
        let split = data.load(job.split)?;
        let smoothed = SmoothedClassifier::new(
            load(model, data, &*split, device)?,
            Gaussian::new(job.sigma)?,
        );
        let job = job.job()?;
        let bar = progress(job.selection.indices(split.len()).len() as u64, "examples");
        Ok(Self {
            data: split,
            smoothed,
            job,
            bar,
        })
    }
}

fn run_certify<B: Backend>(args: &CertifyArgs, device: &B::Device) -> Result<(), Failure> {
    let Run {
        data,
        smoothed,
        job,
        bar,
    } = Run::<B>::new(&args.data, &args.model, &args.job, device)?;
    let config = CertifyParams::default()
        .n0(args.n0)
        .n(args.n)
        .alpha(args.job.alpha)
        .batch_size(args.job.batch)
        .two_sided(args.two_sided)
        .check()?;
    let rows = certify_dataset(&smoothed, &*data, &config, &job, device, |row, done, _| {
        bar.set_position(done as u64);
        bar.set_message(format!("last: idx {} radius {:.3}", row.idx, row.radius));
    })?;
    bar.finish_and_clear();
    let correct = rows.iter().filter(|r| r.correct).count();
    println!(
        "{} rows in {}; certified correct (r >= 0): {correct} ({:.3})",
        rows.len(),
        job.output.display(),
        correct as f64 / rows.len().max(1) as f64
    );
    Ok(())
}

#[derive(Args)]
struct PredictArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    job: JobArgs,
    /// Samples per prediction.
    #[arg(long, default_value_t = 100_000)]
    n: u64,
}

fn run_predict<B: Backend>(args: &PredictArgs, device: &B::Device) -> Result<(), Failure> {
    let Run {
        data,
        smoothed,
        job,
        bar,
    } = Run::<B>::new(&args.data, &args.model, &args.job, device)?;
    let config = PredictParams::default()
        .n(args.n)
        .alpha(args.job.alpha)
        .batch_size(args.job.batch)
        .check()?;
    let rows = predict_dataset(&smoothed, &*data, &config, &job, device, |_, done, _| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    let correct = rows.iter().filter(|r| r.correct).count();
    let abstain = rows.iter().filter(|r| r.predict.is_none()).count();
    println!(
        "{} rows in {}; correct {correct}, abstained {abstain}",
        rows.len(),
        job.output.display()
    );
    Ok(())
}

#[derive(Args)]
struct AnalyzeArgs {
    /// Certification logs (certify's TSV, or the paper's released logs).
    #[arg(required = true)]
    logs: Vec<PathBuf>,
    /// Names for the logs, in order (default: file names).
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// Radii of the tables.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0,0.25,0.5,0.75,1,1.25,1.5,1.75,2,2.25"
    )]
    radii: Vec<f64>,
    /// The alpha the logs were certified with (for the Appendix D bound).
    #[arg(long, default_value_t = 0.001)]
    alpha: f64,
    /// Failure probability of the Appendix D bound.
    #[arg(long, default_value_t = 0.001)]
    rho: f64,
    /// Output folder: table.md, table.tex, curves.tsv, certified_accuracy.svg/png.
    #[arg(long)]
    out: PathBuf,
    /// A DeepFool log (`attack --method deepfool`) of an undefended network: its empirical
    /// robust accuracy, an upper bound, is added to the table and drawn dashed in black
    /// (the paper's Figure 6).
    #[arg(long)]
    deepfool: Option<PathBuf>,
    /// Name of the --deepfool row.
    #[arg(long, default_value = "undefended (DeepFool upper bound)")]
    deepfool_label: String,
    /// The sigma of each log, in order. With them, analyze also writes the paper's
    /// comparisons: radius_bounds.* (Figure 5, left) and, per log, LABEL_bounds.*,
    /// LABEL_n.* and LABEL_alpha.* (Figure 8), all tabulated in comparisons.md.
    #[arg(long, value_delimiter = ',')]
    sigmas: Vec<f64>,
    /// The n the logs were certified with (for the comparisons).
    #[arg(long, default_value_t = 100_000)]
    n: u64,
    /// Sample sizes to project each log to (Figure 8, middle).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1000,10000,100000,1000000,10000000"
    )]
    project_n: Vec<u64>,
    /// Failure probabilities to project each log to (Figure 8, right).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.1,0.01,0.001,0.0001,0.00001"
    )]
    project_alpha: Vec<f64>,
}

/// Opens a file, naming it in the error.
fn open(path: &Path) -> Result<std::fs::File, Failure> {
    std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()).into())
}

fn run_analyze(args: &AnalyzeArgs) -> Result<(), Failure> {
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
fn write_comparisons(args: &AnalyzeArgs, runs: &[(String, Vec<Outcome>)]) -> Result<(), Failure> {
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

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Method {
    /// PGD in l2 against the smoothed classifier (needs --log).
    Pgd,
    /// DeepFool in l2 against the base classifier.
    Deepfool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ObjectiveArg {
    /// Appendix J.3: the mean over noise draws of the cross-entropy.
    MeanLoss,
    /// Salman et al. (2019): the cross-entropy of the mean softmax (stronger).
    LossOfMean,
}

#[derive(Args)]
// The job's --out is a folder here, not a log.
#[command(mut_arg("out", |a| a.help("Output folder: pgd_<multiple>R.tsv or deepfool.tsv (a rerun resumes them), and summary.md")))]
struct AttackArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    model: ModelArgs,
    /// --out is a folder here: pgd_<multiple>R.tsv or deepfool.tsv, and summary.md.
    #[command(flatten)]
    job: JobArgs,
    #[arg(long, value_enum, default_value = "pgd")]
    method: Method,
    /// The certification log of this model and sigma: the examples it certified correctly
    /// are attacked, at multiples of their radius.
    #[arg(long)]
    log: Option<PathBuf>,
    /// Multiples of the certified radius to attack at.
    #[arg(long, value_delimiter = ',', default_value = "1.5,2")]
    multiples: Vec<f64>,
    /// PGD steps.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// PGD step length (default 2.5 * radius / steps).
    #[arg(long)]
    step_size: Option<f64>,
    /// Noise draws per PGD step.
    #[arg(long, default_value_t = 128)]
    samples: usize,
    #[arg(long, value_enum, default_value = "mean-loss")]
    objective: ObjectiveArg,
    /// PREDICT's samples at each adversarial input.
    #[arg(long, default_value_t = 10_000)]
    n: u64,
    /// Radii of the DeepFool summary.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0,0.25,0.5,0.75,1,1.25,1.5"
    )]
    radii: Vec<f64>,
}

fn run_attack<B: Backend>(args: &AttackArgs, device: &B::Device) -> Result<(), Failure> {
    let data = args.data.load(args.job.split)?;
    // Gradients through autodiff on the same backend; batch norms folded, so that they use
    // their running statistics under autodiff too.
    let attacked =
        load_weights::<Autodiff<B>>(&args.model, &args.data, &*data, device)?.fold_batch_norm();
    let logits = |x: burn::tensor::Tensor<Autodiff<B>, 4>| attacked.forward(x);
    let out = args.job.out.clone();
    std::fs::create_dir_all(&out)?;
    let mut summary = String::new();
    let mut job = args.job.job()?;
    if args.method == Method::Deepfool {
        job.output = out.join("deepfool.tsv");
        let bar = progress(job.selection.indices(data.len()).len() as u64, "examples");
        let rows = deepfool_dataset(
            logits,
            &*data,
            &DeepFoolParams::default().check()?,
            &job,
            device,
            |row, done, _| {
                bar.set_position(done as u64);
                bar.set_message(format!(
                    "last: idx {} distance {:.3}",
                    row.idx, row.distance
                ));
            },
        )?;
        bar.finish_and_clear();
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
            for &r in &args.radii {
                let robust = deepfool_robust_accuracy(&rows, r)?;
                summary.push_str(&format!("| {r} | {robust:.3} |\n"));
            }
        }
    } else {
        let log = args
            .log
            .as_ref()
            .ok_or("--method pgd needs --log (certify's output)")?;
        let certified = read_certify_log(open(log)?)?;
        let smoothed = SmoothedClassifier::new(
            load::<B>(&args.model, &args.data, &*data, device)?,
            Gaussian::new(args.job.sigma)?,
        );
        let predict = PredictParams::default()
            .n(args.n)
            .alpha(args.job.alpha)
            .batch_size(args.job.batch)
            .check()?;
        let mut pgd = PgdParams::new(1.0)
            .steps(args.steps)
            .samples(args.samples)
            .batch_size(args.job.batch.min(args.samples))
            .objective(match args.objective {
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
            args.job.sigma,
            args.steps,
            args.samples,
            match args.objective {
                ObjectiveArg::MeanLoss => "mean loss (Appendix J.3)",
                ObjectiveArg::LossOfMean => "loss of the mean (Salman et al.)",
            },
            args.n,
            args.job.alpha,
            log.display()
        ));
        for &multiple in &args.multiples {
            let plan = AttackPlan::new(multiple, pgd.clone())?;
            job.output = out.join(format!("pgd_{multiple}R.tsv"));
            // Its length comes with the first row: which examples are attacked is the
            // library's rule (certified correctly with R > 0), not repeated here.
            let bar = progress(0, &format!("examples at {multiple}R"));
            let rows = attack_dataset(
                &smoothed,
                logits,
                &*data,
                &certified,
                &plan,
                &predict,
                &job,
                (device, device),
                |row, done, total| {
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
                    bar.set_message(format!("last: idx {} {}", row.idx, row.outcome.name()));
                },
            )?;
            bar.finish_and_clear();
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
    std::fs::write(out.join("summary.md"), &summary)?;
    print!("{summary}");
    Ok(())
}

#[derive(Args)]
struct MergeArgs {
    /// The merged log.
    #[arg(long)]
    out: PathBuf,
    /// The shards' logs.
    #[arg(required = true)]
    logs: Vec<PathBuf>,
}

/// Runs `work` on the backend and device the command line chose, after saying which.
fn on_backend(cli: &Cli, work: Work) -> Result<(), Failure> {
    let device = cli.device.unwrap_or(if cfg!(feature = "cuda") {
        DeviceKind::Cuda(0)
    } else {
        DeviceKind::Cpu
    });
    let runtime = Runtime::new(cli.backend, device)?;
    eprintln!("backend: {runtime}");
    runtime.run(work)
}

fn main() {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Train(a) => on_backend(&cli, Work::Train(a)),
        Command::Certify(a) => on_backend(&cli, Work::Certify(a)),
        Command::Predict(a) => on_backend(&cli, Work::Predict(a)),
        Command::Analyze(a) => run_analyze(a),
        Command::Attack(a) => on_backend(&cli, Work::Attack(a)),
        Command::Merge(a) => merge_logs(&a.logs, &a.out)
            .map(|n| println!("{n} rows in {}", a.out.display()))
            .map_err(Into::into),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
