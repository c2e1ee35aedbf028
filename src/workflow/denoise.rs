//! Training a denoiser for denoised smoothing (Salman et al. 2020): a [`Denoiser`] in front
//! of a fixed classifier, so that smoothing `classifier(denoiser(x + noise))` certifies a
//! classifier that was never trained with noise. Two objectives, after the paper and its
//! `train_denoiser.py`:
//!
//! | objective | loss (x an image, d ~ N(0, sigma^2 I), D the denoiser, f the classifier) |
//! | --- | --- |
//! | [`DenoiserObjective::Mse`] | `mean((D(x + d) - x)^2)`: reconstruction, no classifier involved |
//! | [`DenoiserObjective::Stability`] | `CE(f(D(x + d)), argmax f(x))`: the classifier's decision on the denoised image is its decision on the clean one, gradients through the frozen `f` |
//!
//! Neither needs labels; the paper found the stability objective, started from an
//! MSE-trained denoiser ("Stab+MSE"), the best. The classifier is never updated. Adam,
//! the paper's optimizer, with a step schedule; checkpoints every epoch and resumption as
//! [`train`](crate::workflow::train::train)'s, with the same log columns: the loss is the
//! objective's and the accuracy is the classifier's on denoised noisy images against the
//! labels.
//!
//! # Example
//! ```
//! use burn::backend::{Autodiff, NdArray};
//! use randomized_smoothing::data::digits;
//! use randomized_smoothing::models::{DncnnConfig, SmallCnnConfig};
//! use randomized_smoothing::workflow::denoise::{DenoiserObjective, DenoiserTrainConfig, train_denoiser};
//!
//! type B = Autodiff<NdArray>;
//! let device = Default::default();
//! let (train_set, test_set) = digits()?.split_at(1_437)?;
//! let classifier = SmallCnnConfig::new([1, 8, 8], 10).with_filters(4).init::<B>(&device)?;
//! let denoiser = DncnnConfig::new([1, 8, 8]).with_depth(3).with_width(8).init::<B>(&device)?;
//! let config = DenoiserTrainConfig::new(0.25, DenoiserObjective::Stability).epochs(1).batch_size(256).check()?;
//! let mut log = Vec::new();
//! let _trained = train_denoiser(denoiser, &classifier, &train_set, &test_set, &config, None, 0, |e| log.push(e.clone()))?;
//! assert!(log[0].train_loss.is_finite());
//! # Ok::<(), randomized_smoothing::Error>(())
//! ```

use std::fmt;
use std::path::Path;

use burn::module::AutodiffModule;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::AdamConfig;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor};

use crate::data::ImageSource;
use crate::error::{Error, Result, check_positive, check_sigma};
use crate::models::{Denoiser, ImageClassifier, weights_digest};
use crate::workflow::checkpoints::{RunFolder, settings_lines};
use crate::workflow::epochs::{Augment, EpochLoop, EpochTotals, Schedule, batch};
use crate::workflow::objective::add_noise;
use crate::workflow::train::EpochReport;

/// What a denoiser is trained to do.
///
/// # Example
/// ```
/// use randomized_smoothing::workflow::denoise::DenoiserObjective;
///
/// assert_eq!(DenoiserObjective::Mse.name(), "mse");
/// assert!(DenoiserObjective::Stability.to_string().starts_with("stability"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenoiserObjective {
    /// Mean squared error between the denoised noisy image and the clean one.
    Mse,
    /// Cross-entropy of the frozen classifier on the denoised noisy image against its own
    /// decision on the clean image (Salman et al. 2020's stability objective).
    Stability,
}

impl DenoiserObjective {
    /// The name the command line takes: `mse` or `stability`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Mse => "mse",
            Self::Stability => "stability",
        }
    }

    /// The mean loss of a batch and the classifier's logits on its denoised images, with
    /// gradients to the denoiser only (the classifier is frozen by the caller).
    fn batch_loss<B: Backend, D: Denoiser<B>, C: ImageClassifier<B>>(
        &self,
        denoiser: &D,
        classifier: &C,
        clean: Tensor<B, 4>,
        sigma: f64,
    ) -> (Tensor<B, 1>, Tensor<B, 2>) {
        let denoised = denoiser.denoise(add_noise(clean.clone(), sigma));
        match self {
            Self::Mse => {
                let logits = classifier.forward(denoised.clone().detach());
                let loss = (denoised - clean).powi_scalar(2).mean();
                (loss, logits)
            }
            Self::Stability => {
                let batch = clean.dims()[0];
                let target: Tensor<B, 1, Int> = classifier
                    .forward(clean)
                    .detach()
                    .argmax(1)
                    .reshape([batch]);
                let logits = classifier.forward(denoised);
                let loss = CrossEntropyLossConfig::new()
                    .init(&logits.device())
                    .forward(logits.clone(), target);
                (loss, logits)
            }
        }
    }
}

impl fmt::Display for DenoiserObjective {
    /// The name and what it measures, as recorded in a denoiser file's card.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Mse => f.write_str("mse (squared error to the clean image)"),
            Self::Stability => f.write_str(
                "stability (cross-entropy of the classifier on denoised noisy images against \
                 its clean decision)",
            ),
        }
    }
}

/// Unchecked denoiser-training hyperparameters; [`check`](Self::check) them into a
/// [`DenoiserTrainValidConfig`].
///
/// Defaults are Salman et al.'s `train_denoiser.py`: 90 epochs, batch 256, Adam at learning
/// rate 1e-3 divided by 10 every 30 epochs. (For the stability objective started from an
/// MSE-trained denoiser the paper lowers the rate: 1e-5 on ImageNet.)
///
/// # Example
/// ```
/// use randomized_smoothing::workflow::denoise::{DenoiserObjective, DenoiserTrainConfig};
///
/// let c = DenoiserTrainConfig::new(0.25, DenoiserObjective::Mse).check()?;
/// assert_eq!((c.epochs(), c.batch_size(), c.lr_at(0), c.lr_at(30)), (90, 256, 1e-3, 1e-4));
/// assert!(DenoiserTrainConfig::new(0.0, DenoiserObjective::Mse).check().is_err());
/// assert!(DenoiserTrainConfig::new(0.25, DenoiserObjective::Mse).lr(0.0).check().is_err());
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DenoiserTrainConfig {
    sigma: f64,
    objective: DenoiserObjective,
    schedule: Schedule,
}

impl DenoiserTrainConfig {
    /// The paper's settings for a denoiser of `N(0, sigma^2 I)` noise trained with
    /// `objective`.
    pub fn new(sigma: f64, objective: DenoiserObjective) -> Self {
        Self {
            sigma,
            objective,
            schedule: Schedule::new(1e-3),
        }
    }

    /// Number of epochs.
    pub fn epochs(mut self, epochs: usize) -> Self {
        self.schedule.epochs = epochs;
        self
    }

    /// Batch size.
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.schedule.batch_size = batch_size;
        self
    }

    /// Initial learning rate of Adam.
    pub fn lr(mut self, lr: f64) -> Self {
        self.schedule.lr = lr;
        self
    }

    /// Multiply the learning rate by `gamma` every `step` epochs.
    pub fn lr_schedule(mut self, step: usize, gamma: f64) -> Self {
        self.schedule.lr_step = step;
        self.schedule.lr_gamma = gamma;
        self
    }

    /// How many of the latest epochs keep their checkpoints (at least 1; 2 by default).
    pub fn keep_checkpoints(mut self, last: usize) -> Self {
        self.schedule.keep_checkpoints = last;
        self
    }

    /// Validates the parameters.
    ///
    /// # Errors
    /// [`Error::InvalidSigma`] for a sigma that is not finite and positive (a denoiser of no
    /// noise has nothing to learn); [`Error::ZeroCount`] for zero epochs, batch size,
    /// schedule step or checkpoints kept; [`Error::InvalidParameter`] for a learning rate
    /// that is not finite and positive or a gamma outside (0, 1].
    pub fn check(self) -> Result<DenoiserTrainValidConfig> {
        check_sigma(self.sigma)?;
        self.schedule.check()?;
        Ok(DenoiserTrainValidConfig(self))
    }
}

/// Validated denoiser-training hyperparameters, made by [`DenoiserTrainConfig::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct DenoiserTrainValidConfig(DenoiserTrainConfig);

impl DenoiserTrainValidConfig {
    /// Noise level the denoiser removes.
    pub fn sigma(&self) -> f64 {
        self.0.sigma
    }

    /// The training objective.
    pub fn objective(&self) -> DenoiserObjective {
        self.0.objective
    }

    /// Number of epochs.
    pub fn epochs(&self) -> usize {
        self.0.schedule.epochs
    }

    /// Batch size.
    pub fn batch_size(&self) -> usize {
        self.0.schedule.batch_size
    }

    /// The learning rate in epoch `epoch` (counted from 0).
    pub fn lr_at(&self, epoch: usize) -> f64 {
        self.0.schedule.lr_at(epoch)
    }
}

/// Mean loss and accuracy (against the labels) of `classifier(denoiser(x + noise))` on
/// `data`.
fn evaluate<B, D, C, S>(
    denoiser: &D,
    classifier: &C,
    data: &S,
    config: &DenoiserTrainValidConfig,
    device: &B::Device,
) -> Result<(f64, f64)>
where
    B: Backend,
    D: Denoiser<B>,
    C: ImageClassifier<B>,
    S: ImageSource + ?Sized,
{
    let mut totals = EpochTotals::<B>::new(device);
    let all: Vec<usize> = (0..data.len()).collect();
    for chunk in all.chunks(config.batch_size()) {
        let (x, y) = batch::<B, S>(data, chunk, Augment::default(), None, device)?;
        let (loss, logits) = config
            .objective()
            .batch_loss(denoiser, classifier, x, config.sigma());
        totals.add(loss, logits, y);
    }
    let (loss_sum, correct) = totals.read();
    Ok((
        loss_sum / data.len() as f64,
        correct as f64 / data.len() as f64,
    ))
}

/// Trains `denoiser` in front of `classifier` (which stays as it is) on `train_set` with
/// the configured objective at the configured sigma, evaluating on `test_set` after every
/// epoch and calling `on_epoch` with the report.
///
/// With a `checkpoints` folder, the denoiser and optimizer are saved there after every epoch
/// and a later call resumes after the last complete epoch, as
/// [`train`](crate::workflow::train::train) does. The folder's `settings.tsv` records the
/// settings, the seed and SHA-256 digests of the classifier's weights and of the denoiser's
/// initial weights; resuming with any of them changed (more epochs aside) is refused.
/// Shuffling and noise derive from `(seed, epoch)`.
///
/// # Errors
/// [`Error::InvalidParameter`] if the data sets differ in image shape or classes, or the
/// denoiser or classifier does not take their images; [`Error::Io`] if a checkpoint cannot
/// be written or read; [`Error::RunMismatch`] if the folder holds a run started otherwise.
///
/// # Example
/// See the [module documentation](self).
#[allow(clippy::too_many_arguments)]
pub fn train_denoiser<B, D, C, S>(
    denoiser: D,
    classifier: &C,
    train_set: &S,
    test_set: &S,
    config: &DenoiserTrainValidConfig,
    checkpoints: Option<&Path>,
    seed: u64,
    on_epoch: impl FnMut(&EpochReport),
) -> Result<D>
where
    B: AutodiffBackend,
    D: AutodiffModule<B> + Denoiser<B>,
    D::InnerModule: Denoiser<B::InnerBackend>,
    C: AutodiffModule<B> + ImageClassifier<B>,
    C::InnerModule: ImageClassifier<B::InnerBackend>,
    S: ImageSource + ?Sized,
{
    let shape = train_set.image_shape();
    if shape != test_set.image_shape() || train_set.num_classes() != test_set.num_classes() {
        return Err(Error::InvalidParameter {
            name: "test_set",
            reason: "train and test sets differ in image shape or classes".into(),
        });
    }
    if denoiser.image_shape() != shape || classifier.input_shape() != shape {
        return Err(Error::InvalidParameter {
            name: "denoiser",
            reason: format!(
                "the data are {shape:?} images; the denoiser takes {:?}, the classifier {:?}",
                denoiser.image_shape(),
                classifier.input_shape()
            ),
        });
    }
    check_positive("train_set", train_set.len() as u64)?;
    let device = denoiser.devices().into_iter().next().unwrap_or_default();
    // Frozen: gradients flow through the classifier to the denoiser, never into it.
    let frozen = classifier.clone().no_grad();
    let c = &config.0;
    let mut settings = vec![
        ("sigma", c.sigma.to_string()),
        ("objective", c.objective.name().to_string()),
    ];
    settings.extend(c.schedule.settings());
    settings.extend([
        ("seed", seed.to_string()),
        ("classifier_sha256", weights_digest(classifier)?),
        ("initial_denoiser_sha256", weights_digest(&denoiser)?),
    ]);
    let folder = checkpoints
        .map(|dir| RunFolder::open(dir, &settings_lines(&settings), c.schedule.keep_checkpoints))
        .transpose()?;
    let epochs = EpochLoop {
        train_set,
        schedule: &c.schedule,
        augment: Augment::default(),
        seed,
        folder,
    };
    epochs.run(
        denoiser,
        AdamConfig::new().with_epsilon(1e-8).init::<B, D>(),
        &device,
        |denoiser, x, _labels, _epoch| {
            Ok(config
                .objective()
                .batch_loss(denoiser, &frozen, x, config.sigma()))
        },
        |denoiser| {
            evaluate(
                &denoiser.valid(),
                &frozen.valid(),
                test_set,
                config,
                &device,
            )
        },
        on_epoch,
    )
}
