//! Training objectives for base classifiers that are to be smoothed.
//!
//! A smoothed classifier certifies only what its base classifier gets right under noise.
//! The paper trains with Gaussian augmentation, cross-entropy on one noisy copy of each
//! example; later work trains the base classifier for the smoothed one directly:
//!
//! | objective | source | what it adds to the noisy cross-entropy | cost per example |
//! | --- | --- | --- | --- |
//! | [`Objective::Gaussian`] | Cohen et al. 2019 | nothing | 1 forward and backward pass |
//! | [`Objective::Consistency`] | Jeong & Shin 2020 | the predictions of `m` noisy copies agree, with low entropy | `m` |
//! | [`Objective::Macer`] | Zhai et al. 2020 | a hinge on the soft smoothed classifier's certified radius | `k` |
//! | [`Objective::SmoothAdv`] | Salman et al. 2019 | trains on PGD examples against the soft smoothed classifier | `m (T + 1)` |
//!
//! Each runs in [`train`](super::train::train) with its checkpoints, resumption and logs
//! ([`TrainConfig::objective`](super::train::TrainConfig::objective)); every formula is in
//! the documentation of its settings.
//!
//! # Example
//! ```
//! use randomized_smoothing::workflow::objective::{Consistency, Objective};
//! use randomized_smoothing::workflow::train::TrainConfig;
//!
//! let config = TrainConfig::new(0.5)
//!     .objective(Objective::Consistency(Consistency { lambda: 5.0, ..Default::default() }))
//!     .check()?;
//! assert_eq!(config.objective().name(), "consistency");
//! # Ok::<(), randomized_smoothing::Error>(())
//! ```

use std::fmt;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Distribution, Int, Tensor};

use crate::attack::pgd_batch;
use crate::error::{Error, Result};
use crate::models::ImageClassifier;

/// How the base classifier learns to classify noisy inputs. [`Objective::Gaussian`] is the
/// default, the paper's.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Objective {
    /// Gaussian augmentation (Cohen et al. 2019, the paper's `train.py`): the cross-entropy
    /// of the base classifier on one noisy copy of each example,
    /// `CE(f(x + d), y)`, `d ~ N(0, sigma^2 I)`.
    #[default]
    Gaussian,
    /// Consistency regularization (Jeong & Shin 2020); see [`Consistency`].
    Consistency(Consistency),
    /// MACER (Zhai et al. 2020); see [`Macer`].
    Macer(Macer),
    /// SmoothAdv (Salman et al. 2019); see [`SmoothAdv`].
    SmoothAdv(SmoothAdv),
}

/// Consistency regularization (Jeong & Shin, "Consistency Regularization for Certified
/// Robustness of Smoothed Classifiers", NeurIPS 2020), on `m` noisy copies
/// `p_i = softmax(f(x + d_i))` with mean `p = (1/m) sum_i p_i`:
///
/// `(1/m) sum_i CE(f(x + d_i), y) + lambda (1/m) sum_i KL(p || p_i) + eta H(p)`.
///
/// The KL term pulls the copies' predictions together (a smoothed classifier's vote is then
/// near-unanimous, so its lower bound `pA` is high); the entropy term keeps their mean
/// confident. Defaults are the paper's: `m = 2`, `lambda = 10`, `eta = 0.5`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Consistency {
    /// Noisy copies of each example, `m >= 2`.
    pub copies: usize,
    /// Weight of the KL term.
    pub lambda: f64,
    /// Weight of the entropy term.
    pub eta: f64,
}

impl Consistency {
    /// The loss of logits `[m * batch, classes]` of `m` noisy copies of a batch (copy `i` of
    /// example `j` at row `i * batch + j`) with labels `y` (`[batch]`).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless the logits have `m` rows per label (and some).
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use burn::tensor::{Int, Tensor};
    /// use randomized_smoothing::workflow::objective::Consistency;
    ///
    /// let device = Default::default();
    /// // Two copies that agree exactly: no KL term, only cross-entropy and entropy.
    /// let logits = Tensor::<NdArray, 2>::from_floats([[2.0, 0.0], [2.0, 0.0]], &device);
    /// let y = Tensor::<NdArray, 1, Int>::from_ints([0], &device);
    /// let c = Consistency { copies: 2, lambda: 10.0, eta: 0.0 };
    /// let ce = (1.0f32 + (-2.0f32).exp()).ln();
    /// assert!((c.loss(logits, y)?.into_scalar() - ce).abs() < 1e-6);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn loss<B: Backend>(
        &self,
        logits: Tensor<B, 2>,
        y: Tensor<B, 1, Int>,
    ) -> Result<Tensor<B, 1>> {
        let m = self.copies;
        let [batch, classes] = copies_of_batch(logits.dims(), m, y.dims()[0])?;
        let cross_entropy = CrossEntropyLossConfig::new().init(&logits.device());
        let ce = cross_entropy.forward(logits.clone(), copies(y, m));
        let log_p = log_softmax(logits, 1).reshape([m, batch, classes]);
        let mean = log_p.clone().exp().mean_dim(0);
        let log_mean = mean.clone().clamp_min(1e-12).log();
        // KL(mean || p_i), averaged over copies and examples.
        let kl = (mean.clone().expand([m, batch, classes])
            * (log_mean.clone().expand([m, batch, classes]) - log_p))
            .sum_dim(2)
            .mean();
        let entropy = (mean * log_mean).sum_dim(2).mean().neg();
        Ok(ce + kl * self.lambda + entropy * self.eta)
    }
}

impl Default for Consistency {
    fn default() -> Self {
        Self {
            copies: 2,
            lambda: 10.0,
            eta: 0.5,
        }
    }
}

/// MACER (Zhai et al., "MACER: Attack-free and Scalable Robust Training via Maximizing
/// Certified Radius", ICLR 2020). From `k` noisy copies of each example it forms the soft
/// smoothed classifier `g(x) = (1/k) sum_i softmax(f(x + d_i))` and its sharpened version
/// `g_beta` (softmax of `beta` times the logits); with `g_beta`'s top two classes `a`, `b`
/// and `xi = PhiInv(g_beta(x)_a) - PhiInv(g_beta(x)_b)` (twice the certified radius over
/// sigma), the loss is
///
/// `-log g(x)_y + lambda sigma/2 max(gamma - xi, 0)`,
///
/// the hinge taken only on examples whose top class `a` is the label and whose `xi` is at
/// most `gamma` (farther ones are safe; misclassified ones are the cross-entropy's).
/// `PhiInv` is [`normal_quantile`], which carries gradients. Defaults are the authors'
/// code's: `k = 16`, `lambda = 12`, `gamma = 8`, `beta = 16`, the hinge from the first
/// epoch (`deferred = 0`).
///
/// The hinge's gradient is about `lambda sigma beta / 2` times the cross-entropy's (24 at
/// the defaults and sigma 0.25): on a network that cannot yet tell the classes apart it
/// raises the confidence of whatever class it predicts, for every input. Small networks
/// then collapse to one class. On the digits a 16-filter CNN collapsed at `lambda = 12`
/// and 4, with or without 2 or 3 `deferred` epochs first (it had reached 58% by then), and
/// trained at `lambda = 1` (docs/training.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Macer {
    /// Noisy copies of each example, `k >= 1`.
    pub samples: usize,
    /// Weight of the radius hinge.
    pub lambda: f64,
    /// Hinge margin on `xi`.
    pub gamma: f64,
    /// Inverse temperature of the softmax in the radius.
    pub beta: f64,
    /// Epochs trained on the classification term alone before the hinge joins (a schedule
    /// later implementations offer; the authors' code has none).
    pub deferred: usize,
}

impl Macer {
    /// The loss of logits `[k * batch, classes]` of `k` noisy copies of a batch (copy `i` of
    /// example `j` at row `i * batch + j`) with labels `y` (`[batch]`), at noise level
    /// `sigma`: the classification term averaged over the batch, plus `lambda sigma / 2`
    /// times the hinges summed and divided by the batch size, as the authors' code does.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless the logits have `k` rows per label (and some).
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use burn::tensor::{Int, Tensor};
    /// use randomized_smoothing::workflow::objective::Macer;
    ///
    /// let device = Default::default();
    /// // One copy, two classes, the label on top by a small margin: the hinge is active.
    /// let logits = Tensor::<NdArray, 2>::from_floats([[0.1, 0.0]], &device);
    /// let y = Tensor::<NdArray, 1, Int>::from_ints([0], &device);
    /// let m = Macer { samples: 1, lambda: 1.0, gamma: 8.0, beta: 1.0, deferred: 0 };
    /// let with_hinge = m.loss(logits.clone(), y.clone(), 0.5)?.into_scalar();
    /// let without = Macer { lambda: 0.0, ..m }.loss(logits, y, 0.5)?.into_scalar();
    /// // xi = PhiInv(p) - PhiInv(1 - p) with p = softmax(0.1, 0) = 0.525: about 0.125.
    /// assert!((with_hinge - without - 0.25 * (8.0 - 0.1254)).abs() < 1e-3);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn loss<B: Backend>(
        &self,
        logits: Tensor<B, 2>,
        y: Tensor<B, 1, Int>,
        sigma: f64,
    ) -> Result<Tensor<B, 1>> {
        let k = self.samples;
        let [batch, classes] = copies_of_batch(logits.dims(), k, y.dims()[0])?;
        let by_copy = logits.reshape([k, batch, classes]);
        let smoothed = softmax(by_copy.clone(), 2)
            .mean_dim(0)
            .reshape([batch, classes]);
        let labels = y.reshape([batch, 1]);
        let classification = smoothed
            .clamp_min(1e-10)
            .log()
            .gather(1, labels.clone())
            .mean()
            .neg();
        let sharp = softmax(by_copy * self.beta, 2)
            .mean_dim(0)
            .reshape([batch, classes]);
        // The top two classes, chosen on values without gradient; their probabilities
        // keep it.
        let values = sharp.clone().detach();
        let top = values.clone().argmax(1);
        let is_top = top
            .clone()
            .reshape([batch])
            .one_hot::<2>(classes)
            .equal_elem(1);
        let second = values.mask_fill(is_top, -1.0).argmax(1);
        let clip = |p: Tensor<B, 2>| p.clamp(1e-7, 1.0 - 1e-7);
        let xi = normal_quantile(clip(sharp.clone().gather(1, top.clone())))
            - normal_quantile(clip(sharp.gather(1, second)));
        let active = top
            .equal(labels)
            .bool_and(xi.clone().detach().lower_equal_elem(self.gamma))
            .float();
        let hinge = (xi.neg().add_scalar(self.gamma) * active).sum() / batch as f64;
        Ok(classification + hinge * (self.lambda * sigma / 2.0))
    }
}

impl Default for Macer {
    fn default() -> Self {
        Self {
            samples: 16,
            lambda: 12.0,
            gamma: 8.0,
            beta: 16.0,
            deferred: 0,
        }
    }
}

/// SmoothAdv (Salman et al., "Provably Robust Deep Learning via Adversarially Trained
/// Smoothed Classifiers", NeurIPS 2019), its PGD variant. For each example it draws `m`
/// noise samples `d_i`, finds by `T` steps of l2 PGD ([`pgd_batch`], step `2 epsilon / T`,
/// pixels kept in `[0, 1]`) an `x'` within `epsilon` of `x` that maximizes the loss of the
/// soft smoothed classifier `-log (1/m) sum_i softmax(f(x' + d_i))_y`, and trains on
///
/// `(1/m) sum_i CE(f(x' + d_i), y)`
///
/// with the same draws. The attack radius grows linearly over the first `warmup` epochs
/// (`epsilon min(1, (epoch + 1) / warmup)`), as in the authors' code.
///
/// Defaults: one of the paper's CIFAR-10 configurations, `m = 2`, `T = 2` steps,
/// `epsilon = 1.0`, warm-up over 10 epochs; the paper searched `m` in {1, 2, 4, 8}, `T` in
/// {1, 2, 4, 8, 10} and `epsilon` in {0.25, 0.5, 1, 2}.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SmoothAdv {
    /// Noise samples per example, `m >= 1`.
    pub copies: usize,
    /// PGD steps, `T >= 1`.
    pub steps: usize,
    /// Attack radius (l2, pixels in `[0, 1]`).
    pub epsilon: f64,
    /// Epochs over which the radius grows to `epsilon` (0 or 1: from the start).
    pub warmup: usize,
}

impl Default for SmoothAdv {
    fn default() -> Self {
        Self {
            copies: 2,
            steps: 2,
            epsilon: 1.0,
            warmup: 10,
        }
    }
}

impl Objective {
    /// The objective's name as the `smoothing train --objective` flag takes it.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::workflow::objective::{Macer, Objective};
    ///
    /// assert_eq!(Objective::Macer(Macer::default()).name(), "macer");
    /// ```
    pub fn name(&self) -> &'static str {
        match self {
            Self::Gaussian => "gaussian",
            Self::Consistency(_) => "consistency",
            Self::Macer(_) => "macer",
            Self::SmoothAdv(_) => "smoothadv",
        }
    }

    /// Forward passes per example and step (the cost relative to [`Objective::Gaussian`],
    /// backward passes aside).
    pub fn passes_per_example(&self) -> usize {
        match self {
            Self::Gaussian => 1,
            Self::Consistency(c) => c.copies,
            Self::Macer(m) => m.samples,
            Self::SmoothAdv(s) => s.copies * (s.steps + 1),
        }
    }

    /// Checks the settings for training at `sigma`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for too few copies or steps, a negative, non-finite or
    /// (where it must not be) zero weight, or an objective that needs noise at `sigma = 0`.
    pub fn check(&self, sigma: f64) -> Result<()> {
        let invalid =
            |name: &'static str, reason: String| Err(Error::InvalidParameter { name, reason });
        let weight = |name: &'static str, value: f64, positive: bool| {
            if !value.is_finite() || value < 0.0 || (positive && value == 0.0) {
                let bound = if positive { "positive" } else { "non-negative" };
                invalid(name, format!("must be finite and {bound}, got {value}"))
            } else {
                Ok(())
            }
        };
        if !matches!(self, Self::Gaussian) && sigma == 0.0 {
            return invalid(
                "objective",
                format!(
                    "{} trains the smoothed classifier and needs sigma > 0",
                    self.name()
                ),
            );
        }
        match *self {
            Self::Gaussian => Ok(()),
            Self::Consistency(c) => {
                if c.copies < 2 {
                    return invalid(
                        "copies",
                        format!("consistency needs m >= 2 copies, got {}", c.copies),
                    );
                }
                weight("lambda", c.lambda, false)?;
                weight("eta", c.eta, false)
            }
            Self::Macer(m) => {
                if m.samples == 0 {
                    return invalid("samples", "MACER needs k >= 1 noise samples".into());
                }
                weight("lambda", m.lambda, false)?;
                weight("gamma", m.gamma, true)?;
                weight("beta", m.beta, true)
            }
            Self::SmoothAdv(s) => {
                if s.copies == 0 || s.steps == 0 {
                    return invalid(
                        "steps",
                        format!(
                            "SmoothAdv needs m >= 1 copies and T >= 1 steps, got m = {}, T = {}",
                            s.copies, s.steps
                        ),
                    );
                }
                weight("epsilon", s.epsilon, false)
            }
        }
    }

    /// The loss of one training batch `x` (`[batch, C, H, W]`, pixels in `[0, 1]`) with
    /// labels `y`, at noise level `sigma`, in epoch `epoch` (from 0), with the logits of one
    /// noisy copy of each example for the running accuracy. Noise comes from the backend's
    /// generator, which the training loop seeds.
    pub(crate) fn batch_loss<B, M>(
        &self,
        model: &M,
        x: Tensor<B, 4>,
        y: Tensor<B, 1, Int>,
        sigma: f64,
        epoch: usize,
    ) -> Result<(Tensor<B, 1>, Tensor<B, 2>)>
    where
        B: AutodiffBackend,
        M: ImageClassifier<B> + Module<B>,
    {
        let batch = x.dims()[0];
        let device = x.device();
        let cross_entropy = CrossEntropyLossConfig::new().init(&device);
        Ok(match *self {
            Self::Gaussian => {
                let logits = model.forward(add_noise(x, sigma));
                (cross_entropy.forward(logits.clone(), y), logits)
            }
            Self::Consistency(c) => {
                let logits = model.forward(add_noise(copies(x, c.copies), sigma));
                let first = logits.clone().narrow(0, 0, batch);
                (c.loss(logits, y)?, first)
            }
            Self::Macer(m) => {
                let logits = model.forward(add_noise(copies(x, m.samples), sigma));
                let first = logits.clone().narrow(0, 0, batch);
                let m = if epoch < m.deferred {
                    Macer { lambda: 0.0, ..m }
                } else {
                    m
                };
                (m.loss(logits, y, sigma)?, first)
            }
            Self::SmoothAdv(s) => {
                let m = s.copies;
                let epsilon = s.epsilon * ((epoch + 1) as f64 / s.warmup.max(1) as f64).min(1.0);
                let noise = Tensor::<B, 4>::random(
                    copies(x.clone(), m).shape(),
                    Distribution::Normal(0.0, sigma),
                    &device,
                );
                let frozen = model.clone().no_grad();
                let labels = y.clone().reshape([batch, 1]);
                let smoothed_loss = |point: Tensor<B, 4>| {
                    let logits = frozen.forward(copies(point, m) + noise.clone());
                    let classes = logits.dims()[1];
                    softmax(logits.reshape([m, batch, classes]), 2)
                        .mean_dim(0)
                        .reshape([batch, classes])
                        .clamp_min(1e-10)
                        .log()
                        .gather(1, labels.clone())
                        .sum()
                        .neg()
                };
                let adversarial = pgd_batch(smoothed_loss, x, epsilon, s.steps, Some((0.0, 1.0)))?;
                let logits = model.forward(copies(adversarial, m) + noise);
                let first = logits.clone().narrow(0, 0, batch);
                (cross_entropy.forward(logits, copies(y, m)), first)
            }
        })
    }
}

impl fmt::Display for Objective {
    /// The name and settings, as recorded in a model file's card.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Gaussian => f.write_str("gaussian (cross-entropy on noisy inputs)"),
            Self::Consistency(c) => write!(
                f,
                "consistency (m = {}, lambda = {}, eta = {})",
                c.copies, c.lambda, c.eta
            ),
            Self::Macer(m) => write!(
                f,
                "macer (k = {}, lambda = {}, gamma = {}, beta = {}, deferred = {})",
                m.samples, m.lambda, m.gamma, m.beta, m.deferred
            ),
            Self::SmoothAdv(s) => write!(
                f,
                "smoothadv (m = {}, T = {}, epsilon = {}, warmup = {})",
                s.copies, s.steps, s.epsilon, s.warmup
            ),
        }
    }
}

/// `m` copies of a batch stacked along the first dimension: copy `i` of example `j` at row
/// `i * batch + j`.
fn copies<B: Backend, const D: usize, K>(x: Tensor<B, D, K>, m: usize) -> Tensor<B, D, K>
where
    K: burn::tensor::BasicOps<B>,
{
    if m == 1 {
        return x;
    }
    Tensor::cat(vec![x; m], 0)
}

/// `[batch, classes]` of logits `[copies * batch, classes]` for `batch` labels.
fn copies_of_batch([rows, classes]: [usize; 2], copies: usize, batch: usize) -> Result<[usize; 2]> {
    if batch == 0 || rows != copies * batch {
        return Err(Error::InvalidParameter {
            name: "logits",
            reason: format!(
                "{rows} rows for {batch} labels and {copies} copies: expected {}",
                copies * batch
            ),
        });
    }
    Ok([batch, classes])
}

/// `x + N(0, sigma^2 I)` from the backend's generator.
pub(crate) fn add_noise<B: Backend, const D: usize>(x: Tensor<B, D>, sigma: f64) -> Tensor<B, D> {
    if sigma == 0.0 {
        return x;
    }
    let noise = Tensor::random(x.shape(), Distribution::Normal(0.0, sigma), &x.device());
    x + noise
}

/// The standard normal quantile `PhiInv(p)` of each element of `p` (in `(0, 1)`), with
/// gradient `1 / phi(PhiInv(p))`, from tensor operations (Burn has `erf` but no `erfinv`).
///
/// A rational approximation (Abramowitz & Stegun 26.2.23, absolute error below 4.5e-4)
/// gives a start `z0`, which one Newton step on `Phi(z) = p`, `z0 + (p - Phi(z0)) / phi(z0)`,
/// refines where `p` lies in `[1e-4, 1 - 1e-4]` (beyond, `Phi(z0)` in f32 is too coarse to
/// gain from it). The gradient is `1 / phi(z0)` everywhere: the value is computed from a
/// detached `p`, and `(p - detached p) / phi(z0)`, zero in value, carries the derivative. In
/// `f32` the result is within 1e-4 of the exact quantile for `p` in `[1e-3, 1 - 1e-3]` and
/// within 5e-4 out to `1e-7` (tested against [`crate::stats::normal::normal_quantile`]).
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use randomized_smoothing::workflow::objective::normal_quantile;
///
/// let p = Tensor::<NdArray, 1>::from_floats([0.5, 0.975, 0.025], &Default::default());
/// let z: Vec<f32> = normal_quantile(p).into_data().to_vec().unwrap();
/// assert!(z[0].abs() < 1e-6 && (z[1] - 1.959964).abs() < 1e-4 && (z[2] + 1.959964).abs() < 1e-4);
/// ```
pub fn normal_quantile<B: Backend, const D: usize>(p: Tensor<B, D>) -> Tensor<B, D> {
    let fixed = p.clone().detach();
    // The upper tail q = min(p, 1 - p) and its quantile t - r(t), t = sqrt(-2 log q).
    let upper = fixed.clone().greater_elem(0.5);
    let q = fixed
        .clone()
        .mask_where(upper.clone(), fixed.clone().neg().add_scalar(1.0));
    let q_small = q.clone().lower_elem(1e-4);
    let t = q.log().mul_scalar(-2.0).sqrt();
    let numerator = t.clone().mul_scalar(0.010328).add_scalar(0.802853) * t.clone() + 2.515517;
    let denominator = ((t.clone().mul_scalar(0.001308).add_scalar(0.189269) * t.clone())
        .add_scalar(1.432788)
        * t.clone())
    .add_scalar(1.0);
    let z_upper = t - numerator / denominator;
    let z0 = z_upper.clone().neg().mask_where(upper, z_upper);
    // Phi(z0) and phi(z0), held constant.
    let cdf = z0
        .clone()
        .div_scalar(std::f64::consts::SQRT_2)
        .erf()
        .add_scalar(1.0)
        .mul_scalar(0.5);
    let density = z0
        .clone()
        .square()
        .mul_scalar(-0.5)
        .exp()
        .mul_scalar(1.0 / (2.0 * std::f64::consts::PI).sqrt());
    // The Newton step where f32 computes Phi(z0) closely enough to gain from it; in the far
    // tails (q < 1e-4) 1 + erf cancels, and the start alone is closer.
    let correction = (fixed.clone() - cdf) / density.clone();
    let correction = correction.clone().mask_fill(q_small, 0.0);
    z0 + correction + (p - fixed) / density
}
