//! `smoothing`: the paper's experiments from the command line, after its scripts
//! (`train.py`, `certify.py`, `predict.py`, `analyze.py`).
//!
//! ```text
//! smoothing train   --dataset digits --arch small_cnn --sigma 0.25 --epochs 20 --out runs/digits
//! smoothing certify --dataset digits --model runs/digits/model.bpk --sigma 0.25 --n 10000 --out logs/digits_0.25.tsv
//! smoothing predict --dataset digits --model runs/digits/model.bpk --sigma 0.25 --n 1000 --out logs/digits_0.25.predict.tsv
//! smoothing analyze logs/digits_0.25.tsv --out analysis/digits
//! smoothing merge   --out logs/all.tsv logs/shard0.tsv logs/shard1.tsv
//! ```
//! Build with `--features cuda` to run on an NVIDIA GPU.

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
use randomized_smoothing::data::{
    Dataset, ImageFolder, ImageSource, digits, load_cifar10, load_mnist,
};
use randomized_smoothing::jobs::{
    Job, Selection, Shard, certify_dataset, merge_logs, predict_dataset,
};
use randomized_smoothing::models::{
    Architecture, Model, PytorchCheckpoint, SmallCnnConfig, load_model, save_model,
};
use randomized_smoothing::plot::{Curve, plot_certified_accuracy};
use randomized_smoothing::records::read_certify_log;
use randomized_smoothing::train::{TrainParams, train};
use randomized_smoothing::{CertifyParams, Gaussian, PredictParams, SmoothedClassifier};

/// Backend for certification and prediction.
#[cfg(feature = "cuda")]
type B = burn::backend::Cuda;
#[cfg(not(feature = "cuda"))]
type B = burn::backend::NdArray;

/// Backend for training. On the CPU it is Flex: NdArray's convolution gradients are 8-10x
/// slower, while its forward pass is the faster one (docs/benchmarks.md).
#[cfg(feature = "cuda")]
type T = Autodiff<burn::backend::Cuda>;
#[cfg(not(feature = "cuda"))]
type T = Autodiff<burn::backend::Flex>;

type Failure = Box<dyn std::error::Error>;

#[derive(Parser)]
#[command(
    version,
    about = "Certified robustness by randomized smoothing (Cohen et al., 2019)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
) -> Result<Model<BK>, Failure> {
    let device = Default::default();
    if arch == "small_cnn" {
        let (mean, std) = data.normalization();
        let shape = sample.image_shape();
        let config = SmallCnnConfig::new([shape[0], shape[1], shape[2]], sample.num_classes())
            .with_filters(filters)
            .with_mean(vec![mean])
            .with_std(vec![std]);
        return Ok(Model::SmallCnn(config.init(&device)?));
    }
    Ok(arch
        .parse::<Architecture>()?
        .init(sample.num_classes(), &device)?)
}

/// The model for inference: loaded, with batch norms folded into the convolutions.
fn load(args: &ModelArgs, data: &DataArgs, sample: &dyn ImageSource) -> Result<Model<B>, Failure> {
    Ok(load_weights(args, data, sample)?.fold_batch_norm())
}

fn load_weights(
    args: &ModelArgs,
    data: &DataArgs,
    sample: &dyn ImageSource,
) -> Result<Model<B>, Failure> {
    let is_burn = args.model.extension().is_some_and(|e| e == "bpk");
    if is_burn {
        let arch = args.arch.as_deref().ok_or("a .bpk model needs --arch")?;
        return Ok(load_model(
            build(arch, args.filters, data, sample)?,
            &args.model,
        )?);
    }
    let checkpoint = PytorchCheckpoint::open(&args.model)?;
    match &args.arch {
        Some(arch) => Ok(checkpoint.load_into(build(arch, args.filters, data, sample)?)?),
        None => Ok(checkpoint.model(&Default::default())?),
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

fn run_train(args: &TrainArgs) -> Result<(), Failure> {
    let train_set = args.data.load(Split::Train)?;
    let test_set = args.data.load(Split::Test)?;
    // The backend's generator initializes the weights: seed it for a reproducible start.
    T::seed(&Default::default(), args.seed);
    let model = build::<T>(&args.arch, args.filters, &args.data, &*train_set)?;
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
struct Run {
    data: Box<dyn ImageSource>,
    smoothed: SmoothedClassifier<B, Model<B>, Gaussian, 4>,
    job: Job,
    bar: ProgressBar,
}

impl Run {
    fn new(data: &DataArgs, model: &ModelArgs, job: &JobArgs) -> Result<Self, Failure> {
        let split = data.load(job.split)?;
        let smoothed =
            SmoothedClassifier::new(load(model, data, &*split)?, Gaussian::new(job.sigma)?);
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

fn run_certify(args: &CertifyArgs) -> Result<(), Failure> {
    let Run {
        data,
        smoothed,
        job,
        bar,
    } = Run::new(&args.data, &args.model, &args.job)?;
    let config = CertifyParams::default()
        .n0(args.n0)
        .n(args.n)
        .alpha(args.job.alpha)
        .batch_size(args.job.batch)
        .two_sided(args.two_sided)
        .check()?;
    let rows = certify_dataset(
        &smoothed,
        &*data,
        &config,
        &job,
        &Default::default(),
        |row, done, _| {
            bar.set_position(done as u64);
            bar.set_message(format!("last: idx {} radius {:.3}", row.idx, row.radius));
        },
    )?;
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

fn run_predict(args: &PredictArgs) -> Result<(), Failure> {
    let Run {
        data,
        smoothed,
        job,
        bar,
    } = Run::new(&args.data, &args.model, &args.job)?;
    let config = PredictParams::default()
        .n(args.n)
        .alpha(args.job.alpha)
        .batch_size(args.job.batch)
        .check()?;
    let rows = predict_dataset(
        &smoothed,
        &*data,
        &config,
        &job,
        &Default::default(),
        |_, done, _| bar.set_position(done as u64),
    )?;
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
}

fn run_analyze(args: &AnalyzeArgs) -> Result<(), Failure> {
    let mut runs: Vec<(String, Vec<Outcome>)> = Vec::new();
    for (i, path) in args.logs.iter().enumerate() {
        let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let outcomes = read_certify_log(file)?
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
    let table = CertifiedAccuracyTable::new(&args.radii, &borrowed)?;
    std::fs::write(args.out.join("table.md"), table.to_markdown())?;
    std::fs::write(args.out.join("table.tex"), table.to_latex())?;
    print!("{}", table.to_markdown());

    // Curves on a fine grid: the approximate certified accuracy, and its Appendix D lower
    // bound (holds with probability 1 - rho over the certification's randomness).
    let max_radius = runs
        .iter()
        .flat_map(|(_, o)| o.iter().map(|x| x.radius))
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

fn main() {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Train(a) => run_train(a),
        Command::Certify(a) => run_certify(a),
        Command::Predict(a) => run_predict(a),
        Command::Analyze(a) => run_analyze(a),
        Command::Merge(a) => merge_logs(&a.logs, &a.out)
            .map(|n| println!("{n} rows in {}", a.out.display()))
            .map_err(Into::into),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
