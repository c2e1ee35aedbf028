//! `smoothing train`: a base classifier trained for smoothing, with Gaussian augmentation or
//! another objective.

use std::path::PathBuf;

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::tensor::backend::Backend;
use clap::{Args, ValueEnum};
use randomized_smoothing::models::{ModelCard, TrainingSummary, save_model_with_card};
use randomized_smoothing::workflow::objective::{Consistency, Macer, Objective, SmoothAdv};
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
    /// Training objective (docs/training.md): Gaussian augmentation (the paper's),
    /// consistency regularization (Jeong & Shin 2020), MACER (Zhai et al. 2020) or SmoothAdv
    /// (Salman et al. 2019).
    #[arg(long, value_enum, default_value = "gaussian")]
    pub(crate) objective: ObjectiveArg,
    /// Consistency, MACER, SmoothAdv: noisy copies of each example (m, k, m) [default: 2,
    /// 16, 2].
    #[arg(long)]
    pub(crate) copies: Option<usize>,
    /// Consistency, MACER: weight of the KL term or of the radius hinge [default: 10, 12].
    #[arg(long)]
    pub(crate) lambda: Option<f64>,
    /// Consistency: weight of the entropy term [default: 0.5].
    #[arg(long)]
    pub(crate) eta: Option<f64>,
    /// MACER: hinge margin [default: 8].
    #[arg(long)]
    pub(crate) gamma: Option<f64>,
    /// MACER: inverse temperature of the softmax in the radius [default: 16].
    #[arg(long)]
    pub(crate) beta: Option<f64>,
    /// MACER: epochs trained on the classification term alone before the hinge joins
    /// [default: 0].
    #[arg(long)]
    pub(crate) deferred: Option<usize>,
    /// SmoothAdv: PGD steps [default: 2].
    #[arg(long)]
    pub(crate) attack_steps: Option<usize>,
    /// SmoothAdv: attack radius, l2 in pixels [default: 1].
    #[arg(long)]
    pub(crate) epsilon: Option<f64>,
    /// SmoothAdv: epochs over which the attack radius grows to --epsilon [default: 10].
    #[arg(long)]
    pub(crate) warmup: Option<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ObjectiveArg {
    /// Cross-entropy on one noisy copy (Cohen et al. 2019).
    Gaussian,
    /// Cross-entropy plus agreement of m noisy copies (Jeong & Shin 2020).
    Consistency,
    /// Cross-entropy of the soft smoothed classifier plus a certified-radius hinge.
    Macer,
    /// Cross-entropy on PGD examples against the soft smoothed classifier.
    Smoothadv,
}

/// The objective the flags describe; flags of other objectives are refused rather than
/// ignored.
fn objective(args: &TrainArgs) -> Result<Objective, Failure> {
    let given = [
        (
            "--copies",
            args.copies.is_some(),
            &["consistency", "macer", "smoothadv"][..],
        ),
        (
            "--lambda",
            args.lambda.is_some(),
            &["consistency", "macer"][..],
        ),
        ("--eta", args.eta.is_some(), &["consistency"][..]),
        ("--gamma", args.gamma.is_some(), &["macer"][..]),
        ("--beta", args.beta.is_some(), &["macer"][..]),
        ("--deferred", args.deferred.is_some(), &["macer"][..]),
        (
            "--attack-steps",
            args.attack_steps.is_some(),
            &["smoothadv"][..],
        ),
        ("--epsilon", args.epsilon.is_some(), &["smoothadv"][..]),
        ("--warmup", args.warmup.is_some(), &["smoothadv"][..]),
    ];
    let name = args
        .objective
        .to_possible_value()
        .map(|v| v.get_name().to_string());
    let name = name.as_deref().unwrap_or_default();
    if let Some((flag, _, owners)) = given
        .iter()
        .find(|(_, g, owners)| *g && !owners.contains(&name))
    {
        return Err(format!("{flag} applies to --objective {} only", owners.join(" or ")).into());
    }
    Ok(match args.objective {
        ObjectiveArg::Gaussian => Objective::Gaussian,
        ObjectiveArg::Consistency => {
            let d = Consistency::default();
            Objective::Consistency(Consistency {
                copies: args.copies.unwrap_or(d.copies),
                lambda: args.lambda.unwrap_or(d.lambda),
                eta: args.eta.unwrap_or(d.eta),
            })
        }
        ObjectiveArg::Macer => {
            let d = Macer::default();
            Objective::Macer(Macer {
                samples: args.copies.unwrap_or(d.samples),
                lambda: args.lambda.unwrap_or(d.lambda),
                gamma: args.gamma.unwrap_or(d.gamma),
                beta: args.beta.unwrap_or(d.beta),
                deferred: args.deferred.unwrap_or(d.deferred),
            })
        }
        ObjectiveArg::Smoothadv => {
            let d = SmoothAdv::default();
            Objective::SmoothAdv(SmoothAdv {
                copies: args.copies.unwrap_or(d.copies),
                steps: args.attack_steps.unwrap_or(d.steps),
                epsilon: args.epsilon.unwrap_or(d.epsilon),
                warmup: args.warmup.unwrap_or(d.warmup),
            })
        }
    })
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
        .keep_checkpoints(args.keep_checkpoints)
        .objective(objective(args)?);
    if args.augment {
        params = params.augment(4, true);
    }
    let params = params.check()?;
    eprintln!("objective: {}", params.objective());
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
            say(&bar, e.to_string());
        },
    )?;
    bar.finish_and_clear();
    let path = args.out.join("model.bpk");
    let card = ModelCard::new(config)
        .with_training(Some(
            TrainingSummary::new(
                name_of(args.data.dataset),
                args.sigma,
                args.epochs,
                args.seed,
            )
            .with_objective(params.objective().to_string()),
        ))
        .with_input(args.data.transform(None)?);
    save_model_with_card(&trained.valid(), &card, &path)?;
    println!("saved {}", path.display());
    Ok(())
}
