//! Training a base classifier for smoothing, after the paper's `train.py`: fresh noise at the
//! certification sigma on every batch, SGD with momentum, step decay of the learning rate, a
//! checkpoint every epoch and resumption from the last one. The loss is the configured
//! [`Objective`]: the paper's Gaussian augmentation by default, or one of the objectives of
//! later work ([`crate::workflow::objective`]).
//!
//! # Example
//! ```
//! use burn::backend::{Autodiff, NdArray};
//! use randomized_smoothing::data::digits;
//! use randomized_smoothing::models::SmallCnnConfig;
//! use randomized_smoothing::workflow::train::{TrainConfig, train};
//!
//! let device = Default::default();
//! let (train_set, test_set) = digits()?.split_at(1_437)?;
//! let model = SmallCnnConfig::new([1, 8, 8], 10).with_filters(8).init::<Autodiff<NdArray>>(&device)?;
//! let config = TrainConfig::new(0.25).epochs(1).batch_size(128).lr(0.05).check()?;
//! let mut log = Vec::new();
//! let _trained = train(model, &train_set, &test_set, &config, None, 0, |epoch| log.push(epoch.clone()))?;
//! assert_eq!(log.len(), 1);
//! # Ok::<(), randomized_smoothing::Error>(())
//! ```

use std::path::Path;
use std::time::Duration;

use burn::module::AutodiffModule;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::SgdConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::tensor::backend::{AutodiffBackend, Backend};

use crate::data::ImageSource;
use crate::error::{Error, Result, check_positive, check_sigma};
use crate::models::ImageClassifier;
use crate::workflow::checkpoints::{RunFolder, settings_lines};
use crate::workflow::epochs::{Augment, EpochLoop, EpochTotals, Schedule, batch};
use crate::workflow::objective::{Objective, add_noise};

/// Unchecked training hyperparameters; [`check`](Self::check) them into a [`TrainValidConfig`].
///
/// Defaults are the paper's: 90 epochs, batch 256, learning rate 0.1 divided by 10 every 30
/// epochs, momentum 0.9 (no dampening, as PyTorch), weight decay 1e-4.
///
/// # Example
/// ```
/// use randomized_smoothing::workflow::train::TrainConfig;
///
/// let config = TrainConfig::new(0.5).epochs(10).check()?;
/// assert_eq!((config.epochs(), config.batch_size(), config.sigma()), (10, 256, 0.5));
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    sigma: f64,
    schedule: Schedule,
    momentum: f64,
    weight_decay: f64,
    crop_padding: usize,
    flip: bool,
    objective: Objective,
}

impl TrainConfig {
    /// The paper's settings with Gaussian augmentation at `sigma` (0 trains without noise).
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::workflow::train::TrainConfig;
    /// assert_eq!(TrainConfig::new(0.25).check()?.epochs(), 90);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn new(sigma: f64) -> Self {
        Self {
            sigma,
            schedule: Schedule::new(0.1),
            momentum: 0.9,
            weight_decay: 1e-4,
            crop_padding: 0,
            flip: false,
            objective: Objective::Gaussian,
        }
    }

    /// The training objective ([`Objective::Gaussian`], the paper's, by default).
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::workflow::objective::{Macer, Objective};
    /// use randomized_smoothing::workflow::train::TrainConfig;
    ///
    /// let macer = Objective::Macer(Macer { samples: 0, ..Default::default() });
    /// assert!(TrainConfig::new(0.25).objective(macer).check().is_err());
    /// // Objectives beyond Gaussian augmentation train the smoothed classifier: no sigma 0.
    /// assert!(TrainConfig::new(0.0).objective(Objective::Macer(Macer::default())).check().is_err());
    /// ```
    pub fn objective(mut self, objective: Objective) -> Self {
        self.objective = objective;
        self
    }

    /// Number of epochs.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::workflow::train::TrainConfig;
    /// assert!(TrainConfig::new(0.25).epochs(0).check().is_err());
    /// ```
    pub fn epochs(mut self, epochs: usize) -> Self {
        self.schedule.epochs = epochs;
        self
    }

    /// Batch size.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::workflow::train::TrainConfig;
    /// assert_eq!(TrainConfig::new(0.25).batch_size(64).check()?.batch_size(), 64);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.schedule.batch_size = batch_size;
        self
    }

    /// Initial learning rate.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::workflow::train::TrainConfig;
    /// assert!(TrainConfig::new(0.25).lr(-1.0).check().is_err());
    /// ```
    pub fn lr(mut self, lr: f64) -> Self {
        self.schedule.lr = lr;
        self
    }

    /// Multiply the learning rate by `gamma` every `step` epochs.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::workflow::train::TrainConfig;
    /// let c = TrainConfig::new(0.25).lr(1.0).lr_schedule(2, 0.5).check()?;
    /// assert_eq!((c.lr_at(0), c.lr_at(1), c.lr_at(2), c.lr_at(5)), (1.0, 1.0, 0.5, 0.25));
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn lr_schedule(mut self, step: usize, gamma: f64) -> Self {
        self.schedule.lr_step = step;
        self.schedule.lr_gamma = gamma;
        self
    }

    /// SGD momentum and L2 weight decay.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::workflow::train::TrainConfig;
    /// assert!(TrainConfig::new(0.25).sgd(1.5, 1e-4).check().is_err());
    /// ```
    pub fn sgd(mut self, momentum: f64, weight_decay: f64) -> Self {
        self.momentum = momentum;
        self.weight_decay = weight_decay;
        self
    }

    /// How many of the latest epochs keep their model and optimizer checkpoints (at least 1,
    /// which a resumed run needs; 2 by default). The epoch with the best test accuracy
    /// keeps its model too. The paper's `train.py` keeps only the latest.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::workflow::train::TrainConfig;
    /// assert_eq!(TrainConfig::new(0.25).keep_checkpoints(5).check()?.checkpoints_kept(), 5);
    /// assert!(TrainConfig::new(0.25).keep_checkpoints(0).check().is_err());
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn keep_checkpoints(mut self, last: usize) -> Self {
        self.schedule.keep_checkpoints = last;
        self
    }

    /// Data augmentation: random crops after zero padding by `padding` pixels, and random
    /// horizontal flips (the paper's CIFAR-10 setting is 4 and true).
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::workflow::train::TrainConfig;
    /// let c = TrainConfig::new(0.25).augment(4, true).check()?;
    /// assert_eq!(c.epochs(), 90);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn augment(mut self, padding: usize, flip: bool) -> Self {
        self.crop_padding = padding;
        self.flip = flip;
        self
    }

    /// Validates the parameters.
    ///
    /// # Errors
    /// [`Error::InvalidSigma`] for a negative or non-finite sigma (0 is allowed: no noise);
    /// [`Error::ZeroCount`] for zero epochs, batch size or schedule step;
    /// [`Error::InvalidParameter`] for a non-positive learning rate, momentum outside [0, 1),
    /// negative weight decay or gamma outside (0, 1].
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::workflow::train::TrainConfig;
    /// assert!(TrainConfig::new(f64::NAN).check().is_err());
    /// assert!(TrainConfig::new(0.0).check().is_ok());
    /// ```
    pub fn check(self) -> Result<TrainValidConfig> {
        if self.sigma != 0.0 {
            check_sigma(self.sigma)?;
        }
        self.schedule.check()?;
        let invalid = |name, reason: &str| {
            Err(Error::InvalidParameter {
                name,
                reason: reason.into(),
            })
        };
        if !(0.0..1.0).contains(&self.momentum) {
            return invalid("momentum", "must lie in [0, 1)");
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return invalid("weight_decay", "must be finite and non-negative");
        }
        self.objective.check(self.sigma)?;
        Ok(TrainValidConfig(self))
    }
}

/// Validated training hyperparameters, made by [`TrainConfig::check`].
///
/// # Example
/// ```
/// # use randomized_smoothing::workflow::train::TrainConfig;
/// let c = TrainConfig::new(0.12).check()?;
/// assert_eq!(c.lr_at(89), 0.1 * 0.1 * 0.1);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TrainValidConfig(TrainConfig);

impl TrainValidConfig {
    /// Noise level of the augmentation.
    pub fn sigma(&self) -> f64 {
        self.0.sigma
    }

    /// Number of epochs.
    pub fn epochs(&self) -> usize {
        self.0.schedule.epochs
    }

    /// Batch size.
    pub fn batch_size(&self) -> usize {
        self.0.schedule.batch_size
    }

    /// The training objective.
    pub fn objective(&self) -> &Objective {
        &self.0.objective
    }

    /// How many of the latest epochs keep their checkpoints.
    pub fn checkpoints_kept(&self) -> usize {
        self.0.schedule.keep_checkpoints
    }

    /// The learning rate in epoch `epoch` (counted from 0).
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::workflow::train::TrainConfig;
    /// let c = TrainConfig::new(0.12).check()?;
    /// assert_eq!((c.lr_at(29), c.lr_at(30)), (0.1, 0.1 * 0.1));
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn lr_at(&self, epoch: usize) -> f64 {
        self.0.schedule.lr_at(epoch)
    }
}

/// One epoch's line of the training log ([`to_line`](Self::to_line)), and the line a person
/// watching the run reads (`Display`: the learning rate with six decimals and no trailing
/// zeros, so that 1e-4 and 0.05 both read whole, and a schedule's 0.05 x 0.1 x 0.1 reads
/// 0.0005).
///
/// # Example
/// ```
/// use std::time::Duration;
/// use randomized_smoothing::workflow::train::EpochReport;
///
/// let e = EpochReport { epoch: 1, time: Duration::from_secs(3), lr: 0.1, train_loss: 0.5,
///                       train_acc: 0.8, test_loss: 0.6, test_acc: 0.75 };
/// assert_eq!(e.to_line(), "1\t3.000\t0.100000\t0.5000\t0.8000\t0.6000\t0.7500");
/// let e = EpochReport { epoch: 3, time: Duration::from_millis(2_540), lr: 0.05 * 0.1 * 0.1, ..e };
/// assert_eq!(
///     e.to_string(),
///     "epoch   3: 2.5 s, lr 0.0005, train loss 0.5000 acc 0.800, test loss 0.6000 acc 0.750"
/// );
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct EpochReport {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Wall time of the epoch.
    pub time: Duration,
    /// Learning rate used.
    pub lr: f64,
    /// Mean training loss (under noise).
    pub train_loss: f64,
    /// Training accuracy (under noise).
    pub train_acc: f64,
    /// Mean test loss (under noise, as in the paper's `train.py`).
    pub test_loss: f64,
    /// Test accuracy (under noise).
    pub test_acc: f64,
}

impl std::fmt::Display for EpochReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lr = format!("{:.6}", self.lr);
        let lr = lr.trim_end_matches('0').trim_end_matches('.');
        write!(
            f,
            "epoch {:>3}: {:.1} s, lr {lr}, train loss {:.4} acc {:.3}, test loss {:.4} acc {:.3}",
            self.epoch,
            self.time.as_secs_f64(),
            self.train_loss,
            self.train_acc,
            self.test_loss,
            self.test_acc
        )
    }
}

impl EpochReport {
    /// The report as a tab-separated log line.
    ///
    /// # Example
    /// ```
    /// # use std::time::Duration;
    /// # use randomized_smoothing::workflow::train::EpochReport;
    /// let e = EpochReport { epoch: 2, time: Duration::ZERO, lr: 0.01, train_loss: 1.0,
    ///                       train_acc: 0.5, test_loss: 1.0, test_acc: 0.5 };
    /// assert!(e.to_line().starts_with("2\t0.000\t0.010000\t"));
    /// ```
    pub fn to_line(&self) -> String {
        // The learning rate rounded: 0.1 * 0.1 is 0.010000000000000002 in full.
        format!(
            "{}\t{:.3}\t{:.6}\t{:.4}\t{:.4}\t{:.4}\t{:.4}",
            self.epoch,
            self.time.as_secs_f64(),
            self.lr,
            self.train_loss,
            self.train_acc,
            self.test_loss,
            self.test_acc
        )
    }
}

/// Mean loss and accuracy of `model` on `data` under Gaussian noise at sigma.
fn evaluate<B: Backend, M: ImageClassifier<B>, S: ImageSource + ?Sized>(
    model: &M,
    data: &S,
    config: &TrainValidConfig,
    device: &B::Device,
) -> Result<(f64, f64)> {
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let mut totals = EpochTotals::<B>::new(device);
    let all: Vec<usize> = (0..data.len()).collect();
    for chunk in all.chunks(config.batch_size()) {
        let (x, y) = batch::<B, S>(data, chunk, Augment::default(), None, device)?;
        let logits = model.forward(add_noise(x, config.sigma()));
        totals.add(loss_fn.forward(logits.clone(), y.clone()), logits, y);
    }
    let (loss_sum, correct) = totals.read();
    Ok((
        loss_sum / data.len() as f64,
        correct as f64 / data.len() as f64,
    ))
}

/// The settings a checkpoint folder was started with, one `name\tvalue` line each: all that
/// shapes the epochs already run, so not the number of epochs (a run may be extended) nor
/// the checkpoints kept.
fn settings(config: &TrainValidConfig, seed: u64) -> String {
    let c = &config.0;
    let mut fields = vec![
        ("sigma", c.sigma.to_string()),
        ("objective", c.objective.to_string()),
    ];
    fields.extend(c.schedule.settings());
    fields.extend([
        ("momentum", c.momentum.to_string()),
        ("weight_decay", c.weight_decay.to_string()),
        ("crop_padding", c.crop_padding.to_string()),
        ("flip", c.flip.to_string()),
        ("seed", seed.to_string()),
    ]);
    settings_lines(&fields)
}

/// Trains `model` on `train_set` with the configured [`Objective`] (Gaussian augmentation
/// by default) at the configured sigma, evaluating on `test_set` (cross-entropy and accuracy
/// under Gaussian noise, whatever the objective) after every epoch and calling `on_epoch`
/// with the report.
///
/// With a `checkpoints` folder, the model and optimizer are saved there after every epoch
/// (`model-N.mpk`, `optim-N.mpk`) and the log is appended to `log.tsv`; a later call with the
/// same folder resumes after the last complete checkpoint. The folder's `settings.tsv`
/// records the settings and seed; resuming with others (more epochs aside) is refused. Only the latest epochs'
/// checkpoints are kept ([`TrainConfig::keep_checkpoints`]), with the best epoch's model. Shuffling and noise are derived
/// from `(seed, epoch)`, so a resumed run draws what the uninterrupted one would have.
///
/// # Errors
/// [`Error::InvalidParameter`] if the two data sets have different image shapes or classes;
/// [`Error::Io`] if a checkpoint cannot be written or read; [`Error::RunMismatch`] if the
/// folder holds a run started with other settings; the objective's errors (a SmoothAdv
/// attack's) from any batch.
///
/// # Example
/// See the [module documentation](self).
pub fn train<B, M, S>(
    model: M,
    train_set: &S,
    test_set: &S,
    config: &TrainValidConfig,
    checkpoints: Option<&Path>,
    seed: u64,
    on_epoch: impl FnMut(&EpochReport),
) -> Result<M>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + ImageClassifier<B>,
    M::InnerModule: ImageClassifier<B::InnerBackend>,
    S: ImageSource + ?Sized,
{
    if train_set.image_shape() != test_set.image_shape()
        || train_set.num_classes() != test_set.num_classes()
    {
        return Err(Error::InvalidParameter {
            name: "test_set",
            reason: "train and test sets differ in image shape or classes".into(),
        });
    }
    check_positive("train_set", train_set.len() as u64)?;
    let device = model.devices().into_iter().next().unwrap_or_default();
    let params = &config.0;
    let augment = Augment {
        padding: params.crop_padding,
        flip: params.flip,
    };
    let momentum = MomentumConfig {
        momentum: params.momentum,
        dampening: 0.0,
        nesterov: false,
    };
    let sgd = SgdConfig::new()
        .with_momentum(Some(momentum))
        .with_weight_decay(Some(WeightDecayConfig::new(params.weight_decay as f32)));
    let folder = checkpoints
        .map(|dir| RunFolder::open(dir, &settings(config, seed), config.checkpoints_kept()))
        .transpose()?;
    let epochs = EpochLoop {
        train_set,
        schedule: &params.schedule,
        augment,
        seed,
        folder,
    };
    epochs.run(
        model,
        sgd.init::<B, M>(),
        &device,
        |model, x, y, epoch| {
            config
                .objective()
                .batch_loss(model, x, y, config.sigma(), epoch)
        },
        |model| evaluate(&model.valid(), test_set, config, &device),
        on_epoch,
    )
}
