//! What the commands share: data and model arguments, jobs and their progress bars.

use std::path::{Path, PathBuf};
use std::time::Duration;

use burn::tensor::backend::Backend;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use randomized_smoothing::data::{
    Dataset, ImageFolder, ImageSource, digits, load_cifar10, load_mnist,
};
use randomized_smoothing::models::{
    Architecture, Model, PytorchCheckpoint, SmallCnnConfig, load_model,
};
use randomized_smoothing::workflow::jobs::{Job, Selection, Shard};
use randomized_smoothing::workflow::manifest::{Manifest, file_digest};
use randomized_smoothing::{Gaussian, SmoothedClassifier};

use super::Failure;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DatasetName {
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
pub(crate) enum Split {
    Train,
    Test,
}

#[derive(Args)]
pub(crate) struct DataArgs {
    /// Data set.
    #[arg(long, value_enum)]
    pub(crate) dataset: DatasetName,
    /// Folder of the data set's files (mnist, cifar10, imagenet).
    #[arg(long)]
    pub(crate) data: Option<PathBuf>,
}

impl DataArgs {
    pub(crate) fn load(&self, split: Split) -> Result<Box<dyn ImageSource>, Failure> {
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
    pub(crate) fn normalization(&self) -> (f32, f32) {
        match self.dataset {
            DatasetName::Digits => (0.3, 0.35),
            DatasetName::Mnist => (0.1307, 0.3081),
            DatasetName::Cifar10 => (0.47, 0.25),
            DatasetName::Imagenet => (0.45, 0.23),
        }
    }
}

#[derive(Args)]
pub(crate) struct ModelArgs {
    /// Architecture: small_cnn, cifar_resnet20, cifar_resnet110 (any cifar_resnet<6k+2>) or
    /// resnet50. With a PyTorch checkpoint, defaults to its `arch` field.
    #[arg(long)]
    pub(crate) arch: Option<String>,
    /// Channels of the small CNN's first convolutions (as given to `train`).
    #[arg(long, default_value_t = 32)]
    pub(crate) filters: usize,
    /// Weights: a burnpack file written by `train` (.bpk) or a PyTorch checkpoint in the
    /// paper's layout (.pth, .pth.tar, .pt).
    #[arg(long)]
    pub(crate) model: PathBuf,
}

pub(crate) fn build<BK: Backend>(
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
pub(crate) fn load<B: Backend>(
    args: &ModelArgs,
    data: &DataArgs,
    sample: &dyn ImageSource,
    device: &B::Device,
) -> Result<Model<B>, Failure> {
    Ok(load_weights(args, data, sample, device)?.fold_batch_norm())
}

pub(crate) fn load_weights<BK: Backend>(
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
pub(crate) struct JobArgs {
    /// Noise level of the smoothed classifier.
    #[arg(long)]
    pub(crate) sigma: f64,
    #[arg(long, default_value_t = 0.001)]
    pub(crate) alpha: f64,
    #[arg(long, default_value_t = 400)]
    pub(crate) batch: usize,
    /// Take every skip-th example (certify.py's --skip).
    #[arg(long, default_value_t = 1)]
    pub(crate) skip: usize,
    /// At most this many examples (a count, unlike certify.py's index).
    #[arg(long)]
    pub(crate) max: Option<usize>,
    /// Run shard k of N (`k/N`, k from 0); merge the shards' logs with `merge`.
    #[arg(long, default_value = "0/1")]
    pub(crate) shard: String,
    /// Seed from which each example's seed derives.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Data split to run on.
    #[arg(long, value_enum, default_value = "test")]
    pub(crate) split: Split,
    /// The TSV log; a rerun continues after its last complete row.
    #[arg(long)]
    pub(crate) out: PathBuf,
}

impl JobArgs {
    pub(crate) fn job(&self) -> Result<Job, Failure> {
        Ok(Job {
            selection: Selection::new(self.skip, self.max, Shard::parse(&self.shard)?)?,
            seed: self.seed,
            output: self.out.clone(),
        })
    }
}

/// Prints a line above the progress bar, or to stderr when the bar is hidden (not a
/// terminal), so that logs of batch jobs keep it.
pub(crate) fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

pub(crate) fn progress(len: u64, unit: &str) -> ProgressBar {
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
pub(crate) struct Run<B: Backend> {
    pub(crate) data: Box<dyn ImageSource>,
    pub(crate) smoothed: SmoothedClassifier<Model<B>>,
    pub(crate) job: Job,
    pub(crate) bar: ProgressBar,
}

impl<B: Backend> Run<B> {
    pub(crate) fn new(
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

/// The name clap gives a value of an argument enum.
pub(crate) fn name_of(value: impl ValueEnum) -> String {
    value
        .to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_string())
}

/// The manifest of a `command` run over a data split (certify, predict): everything its
/// rows depend on but the command's own sample sizes, which the command adds.
pub(crate) fn manifest<B: Backend>(
    command: &str,
    data: &DataArgs,
    model: &ModelArgs,
    job: &JobArgs,
    device: &B::Device,
) -> Result<Manifest, Failure> {
    Ok(Manifest::new()
        .set("command", command)
        .set("backend", B::name(device))
        .set("device", format!("{device:?}"))
        .set(
            "precision",
            std::any::type_name::<B::FloatElem>()
                .rsplit("::")
                .next()
                .unwrap_or("?"),
        )
        .set("model_sha256", file_digest(&model.model)?)
        .set(
            "arch",
            model.arch.as_deref().unwrap_or("from the checkpoint"),
        )
        .set("filters", model.filters)
        .set("dataset", name_of(data.dataset))
        .set(
            "data",
            data.data
                .as_deref()
                .map_or_else(|| "embedded".into(), |d| d.display().to_string()),
        )
        .set("split", name_of(job.split))
        .set("noise", "gaussian")
        .set("sigma", job.sigma)
        .set("alpha", job.alpha)
        .set("batch", job.batch)
        .set("seed", job.seed)
        .set("skip", job.skip)
        .set(
            "max",
            job.max.map_or_else(|| "all".into(), |m| m.to_string()),
        )
        .set("shard", &job.shard))
}

/// Opens a file, naming it in the error.
pub(crate) fn open(path: &Path) -> Result<std::fs::File, Failure> {
    std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()).into())
}
