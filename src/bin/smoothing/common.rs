//! What the commands share: data, model and job arguments, and the run manifest they make.
//! Progress display lives in [`super::progress`], re-exported here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use burn::tensor::backend::Backend;
use clap::{Args, ValueEnum};
use randomized_smoothing::BaseClassifier;
use randomized_smoothing::data::{
    Dataset, FolderTransform, ImageFolder, ImageSource, cifar10_files, digits, load_cifar10,
    load_mnist,
};
use randomized_smoothing::models::{
    Architecture, Model, ModelCard, ModelConfig, Precision, PytorchCheckpoint, SmallCnnConfig,
    load_model, load_model_with_card, read_denoiser_card, read_model_card,
};
use randomized_smoothing::workflow::jobs::{Job, Selection, Shard};
use randomized_smoothing::workflow::manifest::{
    Manifest, file_digest, files_digest, listing_digest,
};

use super::Failure;
pub(crate) use super::progress::*;

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
    /// Your own images in --data: train/ and test/, one sub-folder per class (JPEG, PNG),
    /// read as --image-size, --resize, --channels and --random-resized-crop say (a model
    /// file trained on them records these).
    Folder,
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
    /// Folder of the data set's files (mnist, cifar10, imagenet, folder).
    #[arg(long)]
    pub(crate) data: Option<PathBuf>,
    /// --dataset folder: side of the square model input, in pixels (the central crop).
    #[arg(long)]
    pub(crate) image_size: Option<u32>,
    /// --dataset folder: length the shorter side is resized to before the central crop
    /// [default: --image-size, so the crop keeps the whole shorter side].
    #[arg(long)]
    pub(crate) resize: Option<u32>,
    /// --dataset folder: 3 for RGB, 1 for grayscale [default: 3].
    #[arg(long)]
    pub(crate) channels: Option<usize>,
    /// --dataset folder: train on ImageNet-style random resized crops and flips instead of
    /// the test transform.
    #[arg(long)]
    pub(crate) random_resized_crop: bool,
}

impl DataArgs {
    /// How a folder's images are read: the model card's transform, where the model file has
    /// one (a flag that contradicts it is an error), else the flags'. `None` for the data
    /// sets that fix their own.
    pub(crate) fn transform(
        &self,
        card: Option<&ModelCard>,
    ) -> Result<Option<FolderTransform>, Failure> {
        let given = self.image_size.is_some()
            || self.resize.is_some()
            || self.channels.is_some()
            || self.random_resized_crop;
        match self.dataset {
            DatasetName::Folder => {}
            DatasetName::Imagenet if !given => return Ok(Some(FolderTransform::imagenet())),
            _ if given => {
                return Err(
                    "--image-size, --resize, --channels and --random-resized-crop \
                            are for --dataset folder"
                        .into(),
                );
            }
            _ => return Ok(None),
        }
        if let Some(recorded) = card.and_then(|c| c.input.clone()) {
            let contradicts = [
                (
                    "--image-size",
                    self.image_size.is_some_and(|s| s != recorded.size),
                ),
                (
                    "--resize",
                    self.resize.is_some_and(|r| r != recorded.resize_to()),
                ),
                (
                    "--channels",
                    self.channels.is_some_and(|c| c != recorded.channels),
                ),
                (
                    "--random-resized-crop",
                    self.random_resized_crop && !recorded.random_resized_crop,
                ),
            ];
            if let Some((flag, _)) = contradicts.iter().find(|(_, differs)| *differs) {
                return Err(format!(
                    "{flag} contradicts the model file, which was trained on {}",
                    serde_json::to_string(&recorded)?
                )
                .into());
            }
            return Ok(Some(recorded));
        }
        let size = self.image_size.ok_or(
            "--dataset folder needs --image-size (or a model file trained on a folder, which \
             records it)",
        )?;
        let transform = FolderTransform::new(size)
            .with_resize(self.resize)
            .with_channels(self.channels.unwrap_or(3))
            .with_random_resized_crop(self.random_resized_crop);
        transform.check()?;
        Ok(Some(transform))
    }

    /// The `split` of the data set, read through the folder transform that `card` (the model
    /// file's, if any) or the flags give.
    pub(crate) fn load(
        &self,
        split: Split,
        card: Option<&ModelCard>,
    ) -> Result<Box<dyn ImageSource>, Failure> {
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
                let all = load_mnist(
                    mnist_file(d, "t10k-images-idx3-ubyte"),
                    mnist_file(d, "t10k-labels-idx1-ubyte"),
                )?;
                pick(all.split_at(8_000)?)
            }
            DatasetName::Cifar10 => load_cifar10(dir()?, split == Split::Train)?,
            DatasetName::Imagenet | DatasetName::Folder => {
                let transform = self
                    .transform(card)?
                    .ok_or("an image folder needs a transform")?;
                let folder = self.folder(split)?;
                return Ok(Box::new(
                    ImageFolder::open(folder)?.with_transform(transform)?,
                ));
            }
        }))
    }

    /// A digest of the files the `split` is read from, for the manifest: SHA-256 over the
    /// MNIST or CIFAR-10 files, over the listing (names and sizes) of an image folder; the
    /// embedded digits change only with the crate.
    pub(crate) fn digest(&self, split: Split) -> Result<String, Failure> {
        let dir = || self.data.as_deref().ok_or("this data set needs --data DIR");
        Ok(match self.dataset {
            DatasetName::Digits => "embedded".into(),
            DatasetName::Mnist => files_digest(&[
                mnist_file(dir()?, "t10k-images-idx3-ubyte"),
                mnist_file(dir()?, "t10k-labels-idx1-ubyte"),
            ])?,
            DatasetName::Cifar10 => files_digest(&cifar10_files(dir()?, split == Split::Train))?,
            DatasetName::Imagenet | DatasetName::Folder => listing_digest(&self.folder(split)?)?,
        })
    }

    /// The folder of a split of an image-folder data set.
    pub(crate) fn folder(&self, split: Split) -> Result<PathBuf, Failure> {
        let dir = self
            .data
            .as_deref()
            .ok_or("this data set needs --data DIR")?;
        Ok(dir.join(match (self.dataset, split) {
            (_, Split::Train) => "train",
            (DatasetName::Imagenet, Split::Test) => "val",
            (_, Split::Test) => "test",
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
            DatasetName::Folder => (0.5, 0.25),
        }
    }
}

/// An MNIST file in `dir`: plain if there, else gzipped.
fn mnist_file(dir: &Path, stem: &str) -> PathBuf {
    let plain = dir.join(stem);
    if plain.exists() {
        plain
    } else {
        dir.join(format!("{stem}.gz"))
    }
}

#[derive(Args)]
pub(crate) struct ModelArgs {
    /// Architecture: small_cnn, cifar_resnet20, cifar_resnet110 (any cifar_resnet<6k+2>) or
    /// resnet50. Only needed for files that do not say: a model file written by `train`
    /// carries its configuration, and a PyTorch checkpoint its `arch` field.
    #[arg(long)]
    pub(crate) arch: Option<String>,
    /// Channels of the small CNN's first convolutions, for a .bpk file without a model card
    /// (default 32): the value `train --filters` was given. Files `train` writes now carry it.
    #[arg(long)]
    pub(crate) filters: Option<usize>,
    /// Weights: a burnpack file written by `train` (.bpk), a PyTorch checkpoint in the
    /// paper's layout (.pth, .pth.tar, .pt), or any model exported to ONNX (.onnx, with a
    /// symbolic batch; normalization inside, as for every model here).
    #[arg(long)]
    pub(crate) model: PathBuf,
    /// certify, predict, attack with an ONNX --model exported without its normalization: the
    /// per-channel mean to subtract from pixels in [0, 1] (comma-separated), so that noise
    /// is added in pixel space, before it.
    #[arg(long, value_delimiter = ',', requires = "std")]
    pub(crate) mean: Option<Vec<f32>>,
    /// With --mean: the per-channel standard deviation to divide by.
    #[arg(long, value_delimiter = ',', requires = "mean")]
    pub(crate) std: Option<Vec<f32>>,
    /// A denoiser (written by `train-denoiser`) to put in front of the model: certify or
    /// predict `model(denoiser(x + noise))`, denoised smoothing (Salman et al. 2020).
    #[arg(long)]
    pub(crate) denoiser: Option<PathBuf>,
    /// certify, predict: the format the model (and denoiser) compute in: f32, or f16 / bf16
    /// (weights and each noisy batch cast, the noise drawn and added in f32, batch norms
    /// folded first). On LibTorch, CUDA and Vulkan (f16 only); the certificate is then the half-precision
    /// network's.
    #[arg(long, default_value = "f32")]
    pub(crate) precision: Precision,
    /// The card, once read: reading it verifies the whole file's digest, and a run asks for
    /// it several times (the data transform, the model, the manifest).
    #[arg(skip)]
    card_read: std::sync::OnceLock<Option<ModelCard>>,
}

impl ModelArgs {
    fn is_burnpack(&self) -> bool {
        self.model.extension().is_some_and(|e| e == "bpk")
    }

    /// Whether `--model` is an ONNX file, which `certify` and `predict` run as it is.
    pub(crate) fn is_onnx(&self) -> bool {
        self.model.extension().is_some_and(|e| e == "onnx")
    }

    /// The card of a .bpk file, refusing flags that contradict it; read and checked once.
    pub(crate) fn card(&self) -> Result<Option<ModelCard>, Failure> {
        if let Some(card) = self.card_read.get() {
            return Ok(card.clone());
        }
        let card = self.read_card()?;
        Ok(self.card_read.get_or_init(|| card).clone())
    }

    fn read_card(&self) -> Result<Option<ModelCard>, Failure> {
        if !self.is_burnpack() {
            return Ok(None);
        }
        let Some(card) = read_model_card(&self.model)? else {
            if read_denoiser_card(&self.model)?.is_some() {
                return Err(format!(
                    "{} is a denoiser, not a classifier: give it as --denoiser, with the \
                     classifier as --model",
                    self.model.display()
                )
                .into());
            }
            return Ok(None);
        };
        let arch = card.model.arch();
        if let Some(flag) = self.arch.as_deref().filter(|a| *a != arch) {
            return Err(format!(
                "{} holds a {arch}, but --arch says {flag}",
                self.model.display()
            )
            .into());
        }
        if let Some(flag) = self.filters {
            match &card.model {
                ModelConfig::SmallCnn(c) if c.filters == flag => {}
                ModelConfig::SmallCnn(c) => {
                    return Err(format!(
                        "{} holds a small CNN of {} filters, but --filters says {flag}",
                        self.model.display(),
                        c.filters
                    )
                    .into());
                }
                _ => {
                    return Err(format!(
                        "--filters is for a small CNN; {} holds a {arch}",
                        self.model.display()
                    )
                    .into());
                }
            }
        }
        Ok(Some(card))
    }

    /// The architecture as the run will build it, for the manifest: the card's full
    /// configuration, else the flags, else the checkpoint's own `arch`.
    pub(crate) fn describe(&self) -> Result<String, Failure> {
        if let Some(card) = self.card()? {
            return Ok(serde_json::to_string(&card.model)?);
        }
        Ok(match (&self.arch, self.filters) {
            (Some(arch), Some(f)) if arch == "small_cnn" => format!("small_cnn, {f} filters"),
            (Some(arch), _) => arch.clone(),
            (None, _) if self.is_onnx() => "ONNX file".into(),
            (None, _) => "from the checkpoint".into(),
        })
    }
}

/// The configuration of a fresh `arch` model for `sample`'s images and classes: a small CNN
/// of `filters` with the data set's normalization, or one of the paper's architectures.
pub(crate) fn config_for(
    arch: &str,
    filters: usize,
    data: &DataArgs,
    sample: &dyn ImageSource,
) -> Result<ModelConfig, Failure> {
    if arch == "small_cnn" {
        let (mean, std) = data.normalization();
        let shape = sample.image_shape();
        let shape = <[usize; 3]>::try_from(shape).map_err(|_| {
            format!("a small CNN takes [channels, height, width] images, not {shape:?}")
        })?;
        return Ok(ModelConfig::SmallCnn(
            SmallCnnConfig::new(shape, sample.num_classes())
                .with_filters(filters)
                .with_mean(vec![mean])
                .with_std(vec![std]),
        ));
    }
    let arch: Architecture = arch.parse().map_err(|_| {
        format!(
            "unknown architecture {arch:?}: expected small_cnn, cifar_resnet20, cifar_resnet110 \
             (any cifar_resnet<6k+2>) or resnet50"
        )
    })?;
    Ok(arch.config(sample.num_classes()))
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

/// The model of `--model` (built from its card, its `arch` field or the flags), refused
/// unless it takes the data's images and has a class for each of the data's labels.
pub(crate) fn load_weights<BK: Backend>(
    args: &ModelArgs,
    data: &DataArgs,
    sample: &dyn ImageSource,
    device: &BK::Device,
) -> Result<Model<BK>, Failure> {
    let build = |arch: &str| {
        config_for(arch, args.filters.unwrap_or(32), data, sample)?
            .init(device)
            .map_err(Failure::from)
    };
    if args.model.extension().is_some_and(|e| e == "mpk") {
        return Err(format!(
            "{} is a training checkpoint (one epoch's Burn record, without its configuration), \
             not a model file: give the model.bpk that train writes beside checkpoints/",
            args.model.display()
        )
        .into());
    }
    let model = if args.is_burnpack() {
        match args.card()? {
            Some(_) => load_model_with_card(&args.model, device)?.0,
            None => {
                let arch = args.arch.as_deref().ok_or(
                    "this .bpk file has no model card (written by an older version): give \
                     --arch (and --filters for a small CNN)",
                )?;
                load_model(build(arch)?, &args.model)?
            }
        }
    } else {
        let checkpoint = PytorchCheckpoint::open(&args.model)?;
        match &args.arch {
            Some(arch) => checkpoint.load_into(build(arch)?)?,
            None => checkpoint.model(device)?,
        }
    };
    fits_data(args, data, sample, &model)?;
    Ok(model)
}

/// Refuses a model unless it takes the data's images and has a class for each label.
pub(crate) fn fits_data<B: Backend>(
    args: &ModelArgs,
    data: &DataArgs,
    sample: &dyn ImageSource,
    model: &dyn BaseClassifier<4, Backend = B>,
) -> Result<(), Failure> {
    if model.input_shape() != sample.image_shape() {
        return Err(format!(
            "{} takes {} images, the {} data are {}",
            args.model.display(),
            shape_text(model.input_shape()),
            name_of(data.dataset),
            shape_text(sample.image_shape())
        )
        .into());
    }
    if model.num_classes() < sample.num_classes() {
        return Err(format!(
            "{} has {} classes, the {} data have {}",
            args.model.display(),
            model.num_classes(),
            name_of(data.dataset),
            sample.num_classes()
        )
        .into());
    }
    Ok(())
}

/// `[1, 28, 28]` as `1x28x28`.
fn shape_text(shape: &[usize]) -> String {
    shape
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join("x")
}

#[derive(Args)]
pub(crate) struct JobArgs {
    /// Noise level sigma of the smoothed classifier, in pixel units (pixels lie in [0, 1]).
    /// Required by certify, predict and PGD; DeepFool attacks the base classifier and
    /// takes none.
    #[arg(long)]
    pub(crate) sigma: Option<f64>,
    /// Failure probability of each certificate or prediction (the paper's alpha).
    #[arg(long, default_value_t = 0.001)]
    pub(crate) alpha: f64,
    /// Noisy copies of an example pushed through the model at once. Larger batches run
    /// faster until memory runs out; the noise, hence every row, depends on it (it is in
    /// the manifest).
    #[arg(long, default_value_t = 400)]
    pub(crate) batch: usize,
    /// Take every skip-th example (certify.py's --skip).
    #[arg(long, default_value_t = 1)]
    pub(crate) skip: usize,
    /// At most this many examples of the split, after --skip (a count, unlike certify.py's
    /// index). PGD attacks those among them that the log certified correctly.
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
    /// certify, predict, attack (PGD's PREDICT): examples whose noisy samples share forward
    /// passes (each pass filled up to --batch with the samples of the next examples). On the
    /// CPU the rows are the same with any value; on a GPU, where a small pass runs at a
    /// fraction of a full one's rate, it pays, and the rows depend on it as they do on
    /// --batch.
    #[arg(long, default_value_t = 1)]
    pub(crate) pack: usize,
    /// certify, predict: skip the warm-up that CubeCL backends (cuda, vulkan) run before the
    /// first row, one forward pass of each batch size the job can use, so that compiling and
    /// autotuning kernels is not charged to the first rows (the CPU backends need none).
    #[arg(long)]
    pub(crate) no_warm_up: bool,
    /// Seconds between progress lines on stderr when it is not a terminal (a batch job, a
    /// pipe), where the progress bar is hidden; 0 prints a line per example.
    #[arg(long, default_value_t = 60.0)]
    pub(crate) progress_every: f64,
}

impl JobArgs {
    pub(crate) fn sigma(&self) -> Result<f64, Failure> {
        self.sigma
            .ok_or_else(|| "--sigma is required: the noise level of the smoothed classifier".into())
    }

    pub(crate) fn progress_every(&self) -> Result<Duration, Failure> {
        Duration::try_from_secs_f64(self.progress_every)
            .map_err(|_| "--progress-every takes a number of seconds, 0 or more".into())
    }

    pub(crate) fn job(&self) -> Result<Job, Failure> {
        Ok(Job {
            selection: Selection::new(self.skip, self.max, Shard::parse(&self.shard)?)?,
            seed: self.seed,
            output: self.out.clone(),
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
    let mut manifest = Manifest::new()
        .set("command", command)
        .set("backend", B::name(device))
        .set("device", format!("{device:?}"))
        .set("precision", model.precision)
        .set("model_sha256", file_digest(&model.model)?)
        .set("arch", model.describe()?)
        .set("dataset", name_of(data.dataset))
        .set(
            "data",
            data.data
                .as_deref()
                .map_or_else(|| "embedded".into(), |d| d.display().to_string()),
        )
        .set("split", name_of(job.split))
        .set("data_sha256", data.digest(job.split)?)
        .set(
            "transform",
            match data.transform(model.card()?.as_ref())? {
                Some(t) => serde_json::to_string(&t)?,
                None => "fixed by the data set".into(),
            },
        )
        .set("noise", "gaussian")
        .set(
            "sigma",
            job.sigma.map_or_else(|| "none".into(), |s| s.to_string()),
        )
        .set("alpha", job.alpha)
        .set("batch", job.batch)
        .set("seed", job.seed)
        .set("skip", job.skip)
        .set(
            "max",
            job.max.map_or_else(|| "all".into(), |m| m.to_string()),
        )
        .set("shard", &job.shard);
    // Only when given, so that the logs of runs without them keep their manifests.
    if let Some(denoiser) = &model.denoiser {
        manifest = manifest.set("denoiser_sha256", file_digest(denoiser)?);
    }
    if let (Some(mean), Some(std)) = (&model.mean, &model.std) {
        manifest = manifest.set("normalization", format!("mean {mean:?} std {std:?}"));
    }
    if job.pack > 1 {
        manifest = manifest.set("pack", job.pack);
    }
    Ok(manifest)
}

/// Writes a report file, the error naming it (std's errors name no path).
pub(crate) fn write_report(path: &Path, contents: impl AsRef<[u8]>) -> Result<(), Failure> {
    std::fs::write(path, contents)
        .map_err(|e| format!("I/O error writing {}: {e}", path.display()).into())
}

/// Creates an output folder and its parents, the error naming it.
pub(crate) fn create_folder(path: &Path) -> Result<(), Failure> {
    std::fs::create_dir_all(path)
        .map_err(|e| format!("I/O error creating the folder {}: {e}", path.display()).into())
}
