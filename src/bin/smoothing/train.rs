//! `smoothing train`: a base classifier trained with Gaussian data augmentation.

use std::path::PathBuf;

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::tensor::backend::Backend;
use clap::Args;
use randomized_smoothing::models::{ModelCard, TrainingSummary, save_model_with_card};
use randomized_smoothing::workflow::train::{TrainConfig, train};

use super::Failure;
use super::common::*;

#[derive(Args)]
pub(crate) struct TrainArgs {
    #[command(flatten)]
    pub(crate) data: DataArgs,
    /// Architecture: small_cnn, cifar_resnet20, cifar_resnet110 (any cifar_resnet<6k+2>) or
    /// resnet50. The model file records it, with the width and normalization.
    #[arg(long, default_value = "small_cnn")]
    pub(crate) arch: String,
    /// Channels of the small CNN's first two convolutions (the third has twice as many).
    #[arg(long, default_value_t = 32)]
    pub(crate) filters: usize,
    /// Per-channel means of the model's normalization layer, comma-separated (one value for
    /// all channels) [default: the data set's; for --dataset folder 0.5; the paper's for
    /// the CIFAR and ImageNet ResNets]. Recorded in the model file.
    #[arg(long, value_delimiter = ',')]
    pub(crate) mean: Option<Vec<f32>>,
    /// Per-channel standard deviations of the normalization layer, as --mean [default: the
    /// data set's; for --dataset folder 0.25].
    #[arg(long, value_delimiter = ',')]
    pub(crate) std: Option<Vec<f32>>,
    /// Standard deviation of the Gaussian augmentation noise.
    #[arg(long)]
    pub(crate) sigma: f64,
    /// Passes over the training split.
    #[arg(long, default_value_t = 90)]
    pub(crate) epochs: usize,
    /// Examples per SGD step (each with its own noise).
    #[arg(long, default_value_t = 256)]
    pub(crate) batch: usize,
    /// Initial learning rate of SGD (momentum 0.9, weight decay 1e-4).
    #[arg(long, default_value_t = 0.1)]
    pub(crate) lr: f64,
    /// Multiply the learning rate by 0.1 every this many epochs.
    #[arg(long, default_value_t = 30)]
    pub(crate) lr_step_size: usize,
    /// Random crop padding and horizontal flips (the paper's CIFAR-10 augmentation).
    #[arg(long)]
    pub(crate) augment: bool,
    /// Seed of the initial weights, the data order, the crops and the augmentation noise.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Epochs whose model and optimizer checkpoints are kept (the latest ones; a resumed run
    /// needs the last). The best epoch's model (by test accuracy) is kept too.
    #[arg(long, default_value_t = 2)]
    pub(crate) keep_checkpoints: usize,
    /// Output folder: checkpoints each epoch (a rerun resumes), log.tsv, model.bpk.
    #[arg(long)]
    pub(crate) out: PathBuf,
}

pub(crate) fn run_train<B: Backend>(args: &TrainArgs, device: &B::Device) -> Result<(), Failure> {
    let train_set = args.data.load(Split::Train, None)?;
    let test_set = args.data.load(Split::Test, None)?;
    // The backend's generator initializes the weights: seed it for a reproducible start.
    B::seed(device, args.seed);
    let mut config = config_for(&args.arch, args.filters, &args.data, &*train_set)?;
    match (&args.mean, &args.std) {
        (Some(mean), Some(std)) => config = config.with_normalization(mean.clone(), std.clone()),
        (None, None) => {}
        _ => return Err("--mean and --std go together".into()),
    }
    let model = config.init::<Autodiff<B>>(device)?;
    let mut params = TrainConfig::new(args.sigma)
        .epochs(args.epochs)
        .batch_size(args.batch)
        .lr(args.lr)
        .lr_schedule(args.lr_step_size, 0.1)
        .keep_checkpoints(args.keep_checkpoints);
    if args.augment {
        params = params.augment(4, true);
    }
    let params = params.check()?;
    let bar = progress(args.epochs as u64, "epochs");
    let trained = train(
        model,
        &*train_set,
        &*test_set,
        &params,
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
    let card = ModelCard::new(config)
        .with_training(Some(TrainingSummary::new(
            name_of(args.data.dataset),
            args.sigma,
            args.epochs,
            args.seed,
        )))
        .with_input(args.data.transform(None)?);
    save_model_with_card(&trained.valid(), &card, &path)?;
    println!("saved {}", path.display());
    Ok(())
}
