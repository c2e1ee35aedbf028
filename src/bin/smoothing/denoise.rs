//! `smoothing train-denoiser`: a denoiser in front of a fixed classifier, for denoised
//! smoothing (Salman et al. 2020); `certify --denoiser` and `predict --denoiser` use it.

use std::path::PathBuf;

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::tensor::backend::Backend;
use clap::{Args, ValueEnum};
use randomized_smoothing::models::{
    DenoiserCard, DenoiserTraining, DncnnConfig, Precision, load_denoiser, save_denoiser,
};
use randomized_smoothing::workflow::denoise::{
    DenoiserObjective, DenoiserTrainConfig, train_denoiser,
};
use randomized_smoothing::workflow::manifest::file_digest;

use super::Failure;
use super::common::*;

#[derive(Args)]
pub(crate) struct TrainDenoiserArgs {
    #[command(flatten)]
    pub(crate) data: DataArgs,
    /// The classifier the denoiser serves (`--model`); it is never changed.
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    /// Standard deviation of the Gaussian noise to remove (the sigma it will certify at).
    #[arg(long)]
    pub(crate) sigma: f64,
    /// mse: reconstruct the clean image; stability: keep the classifier's decision on the
    /// clean image (through the frozen classifier). Salman et al.'s best is stability
    /// started from an MSE-trained denoiser (--init).
    #[arg(long, value_enum, default_value = "mse")]
    pub(crate) objective: DenoiserObjectiveArg,
    /// Passes over the training split.
    #[arg(long, default_value_t = 90)]
    pub(crate) epochs: usize,
    /// Images per Adam step (each with its own noise).
    #[arg(long, default_value_t = 256)]
    pub(crate) batch: usize,
    /// Initial learning rate of Adam.
    #[arg(long, default_value_t = 1e-3)]
    pub(crate) lr: f64,
    /// Multiply the learning rate by 0.1 every this many epochs.
    #[arg(long, default_value_t = 30)]
    pub(crate) lr_step_size: usize,
    /// Convolutions of the DnCNN [default: 5, or --init's].
    #[arg(long)]
    pub(crate) depth: Option<usize>,
    /// Channels of its hidden convolutions [default: 32, or --init's].
    #[arg(long)]
    pub(crate) width: Option<usize>,
    /// A denoiser file to start from (an MSE-trained one, for the stability objective).
    #[arg(long)]
    pub(crate) init: Option<PathBuf>,
    /// Seed of the initial weights, the data order and the noise.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Epochs whose checkpoints are kept (the latest ones), with the best epoch's.
    #[arg(long, default_value_t = 2)]
    pub(crate) keep_checkpoints: usize,
    /// Output folder: checkpoints each epoch (a rerun resumes), log.tsv, denoiser.bpk.
    #[arg(long)]
    pub(crate) out: PathBuf,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DenoiserObjectiveArg {
    /// Mean squared error to the clean image.
    Mse,
    /// Cross-entropy of the classifier on the denoised image against its clean decision.
    Stability,
}

pub(crate) fn run_train_denoiser<B: Backend>(
    args: &TrainDenoiserArgs,
    device: &B::Device,
) -> Result<(), Failure> {
    if args.model.denoiser.is_some() {
        return Err("train-denoiser starts from --init, not --denoiser".into());
    }
    if args.model.precision != Precision::F32 {
        return Err("train-denoiser trains in f32: --precision is for certify and predict".into());
    }
    let card = args.model.card()?;
    let train_set = args.data.load(Split::Train, card.as_ref())?;
    let test_set = args.data.load(Split::Test, card.as_ref())?;
    // Batch norms folded: the classifier is evaluated with its running statistics even
    // under autodiff.
    let classifier = load_weights::<Autodiff<B>>(&args.model, &args.data, &*train_set, device)?
        .fold_batch_norm();
    // The backend's generator initializes the weights: seed it for a reproducible start.
    B::seed(device, args.seed);
    let (denoiser, config) = match &args.init {
        Some(path) => {
            let (denoiser, card) = load_denoiser::<Autodiff<B>>(path, device)?;
            let c = &card.denoiser;
            if args.depth.is_some_and(|d| d != c.depth) || args.width.is_some_and(|w| w != c.width)
            {
                return Err(format!(
                    "{} holds a DnCNN of depth {} and width {}: --depth and --width must agree",
                    path.display(),
                    c.depth,
                    c.width
                )
                .into());
            }
            (denoiser, card.denoiser)
        }
        None => {
            let shape = <[usize; 3]>::try_from(train_set.image_shape())
                .map_err(|_| "a DnCNN takes [channels, height, width] images")?;
            let mut config = DncnnConfig::new(shape);
            config.depth = args.depth.unwrap_or(config.depth);
            config.width = args.width.unwrap_or(config.width);
            (config.init::<Autodiff<B>>(device)?, config)
        }
    };
    let objective = match args.objective {
        DenoiserObjectiveArg::Mse => DenoiserObjective::Mse,
        DenoiserObjectiveArg::Stability => DenoiserObjective::Stability,
    };
    let params = DenoiserTrainConfig::new(args.sigma, objective)
        .epochs(args.epochs)
        .batch_size(args.batch)
        .lr(args.lr)
        .lr_schedule(args.lr_step_size, 0.1)
        .keep_checkpoints(args.keep_checkpoints)
        .check()?;
    eprintln!(
        "denoiser: DnCNN depth {}, width {}; objective: {objective}",
        config.depth, config.width
    );
    let bar = progress(args.epochs as u64, "epochs");
    let trained = train_denoiser(
        denoiser,
        &classifier,
        &*train_set,
        &*test_set,
        &params,
        Some(&args.out.join("checkpoints")),
        args.seed,
        |e| {
            bar.set_position(e.epoch as u64);
            say(&bar, e.to_string());
        },
    )?;
    bar.finish_and_clear();
    let mut described = objective.to_string();
    if let Some(init) = &args.init {
        described.push_str(&format!(", from denoiser sha256 {}", file_digest(init)?));
    }
    let card = DenoiserCard::new(config).with_training(Some(DenoiserTraining::new(
        name_of(args.data.dataset),
        args.sigma,
        args.epochs,
        args.seed,
        described,
        file_digest(&args.model.model)?,
    )));
    let path = args.out.join("denoiser.bpk");
    save_denoiser(&trained.valid(), &card, &path)?;
    println!("saved {}", path.display());
    Ok(())
}
