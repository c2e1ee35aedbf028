//! PGD in l2 against the smoothed classifier: the paper's Appendix J.3 attack, and Salman et
//! al.'s stronger objective.

use burn::tensor::Tensor;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::backend::AutodiffBackend;

use super::{batch_shape, check_input, check_logits, check_range, l2_norm};
use crate::error::{Error, Result, check_finite_positive, check_positive};
use crate::smoothing::NoiseDistribution;
use crate::smoothing::sampling::device_noise;
use crate::stats::seed::{Streams, split_mix};

/// What PGD ascends at each step.
///
/// # Example
/// ```
/// use randomized_smoothing::attack::{Objective, PgdConfig};
///
/// let c = PgdConfig::new(0.5).objective(Objective::LossOfMean).check()?;
/// assert_eq!(c.objective(), Objective::LossOfMean);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Objective {
    /// The paper's Appendix J.3: the mean over noise draws of the base classifier's
    /// cross-entropy, `E[-log softmax(f(x + d + e))_y]`.
    #[default]
    MeanLoss,
    /// Salman et al. (2019): the cross-entropy of the mean softmax,
    /// `-log E[softmax(f(x + d + e))_y]`, which targets the smoothed classifier's own
    /// class probabilities and is the stronger attack.
    LossOfMean,
}

/// Settings of [`pgd`], checked by [`PgdConfig::check`].
///
/// Defaults: 20 steps of `2.5 * radius / steps` (Madry et al.'s rule: enough to cross the
/// ball and move along its surface), `m = 128` noise draws per step in batches of 128, the
/// [`Objective::MeanLoss`] of Appendix J.3, and pixels kept in `[0, 1]`.
///
/// # Example
/// ```
/// use randomized_smoothing::attack::PgdConfig;
///
/// let c = PgdConfig::new(1.0).steps(10).check()?;
/// assert_eq!((c.steps(), c.step_size()), (10, 0.25));
/// assert!(PgdConfig::new(0.0).check().is_err());
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PgdConfig {
    radius: f64,
    steps: usize,
    step_size: Option<f64>,
    samples: usize,
    batch_size: usize,
    objective: Objective,
    pixel_range: Option<(f32, f32)>,
}

impl PgdConfig {
    /// An attack within the l2 ball of `radius`, with the default settings.
    ///
    /// # Example
    /// ```
    /// assert!(randomized_smoothing::attack::PgdConfig::new(0.5).check().is_ok());
    /// ```
    pub fn new(radius: f64) -> Self {
        Self {
            radius,
            steps: 20,
            step_size: None,
            samples: 128,
            batch_size: 128,
            objective: Objective::MeanLoss,
            pixel_range: Some((0.0, 1.0)),
        }
    }

    /// The attack radius (replacing the one given to [`new`](Self::new)).
    ///
    /// # Example
    /// ```
    /// let c = randomized_smoothing::attack::PgdConfig::new(0.5).radius(0.75).check()?;
    /// assert_eq!(c.radius(), 0.75);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn radius(mut self, radius: f64) -> Self {
        self.radius = radius;
        self
    }

    /// Number of PGD steps.
    ///
    /// # Example
    /// ```
    /// assert!(randomized_smoothing::attack::PgdConfig::new(0.5).steps(0).check().is_err());
    /// ```
    pub fn steps(mut self, steps: usize) -> Self {
        self.steps = steps;
        self
    }

    /// The l2 length of each step (default `2.5 * radius / steps`).
    ///
    /// # Example
    /// ```
    /// let c = randomized_smoothing::attack::PgdConfig::new(0.5).step_size(0.1).check()?;
    /// assert_eq!(c.step_size(), 0.1);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn step_size(mut self, step_size: f64) -> Self {
        self.step_size = Some(step_size);
        self
    }

    /// Noise draws `m` per step.
    ///
    /// # Example
    /// ```
    /// assert!(randomized_smoothing::attack::PgdConfig::new(0.5).samples(0).check().is_err());
    /// ```
    pub fn samples(mut self, samples: usize) -> Self {
        self.samples = samples;
        self
    }

    /// At most this many noisy copies per forward pass.
    ///
    /// # Example
    /// ```
    /// assert!(randomized_smoothing::attack::PgdConfig::new(0.5).batch_size(0).check().is_err());
    /// ```
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// The objective ascended.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::attack::{Objective, PgdConfig};
    ///
    /// assert!(PgdConfig::new(0.5).objective(Objective::MeanLoss).check().is_ok());
    /// ```
    pub fn objective(mut self, objective: Objective) -> Self {
        self.objective = objective;
        self
    }

    /// The box the adversarial input is kept in (`None`: unbounded, e.g. for features that
    /// are not pixels).
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::attack::PgdConfig;
    ///
    /// assert!(PgdConfig::new(0.5).pixel_range(None).check().is_ok());
    /// assert!(PgdConfig::new(0.5).pixel_range(Some((1.0, 0.0))).check().is_err());
    /// ```
    pub fn pixel_range(mut self, range: Option<(f32, f32)>) -> Self {
        self.pixel_range = range;
        self
    }

    /// Validates the settings.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`](crate::Error::InvalidParameter) unless the radius and step size are finite and positive
    /// and the pixel range is finite and non-empty; [`Error::ZeroCount`](crate::Error::ZeroCount) for zero steps,
    /// samples or batch size.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::attack::PgdConfig;
    ///
    /// assert!(PgdConfig::new(f64::NAN).check().is_err());
    /// assert!(PgdConfig::new(0.5).step_size(-1.0).check().is_err());
    /// ```
    pub fn check(mut self) -> Result<PgdValidConfig> {
        check_finite_positive("radius", self.radius)?;
        check_positive("steps", self.steps as u64)?;
        check_positive("samples", self.samples as u64)?;
        check_positive("batch_size", self.batch_size as u64)?;
        let step = *self
            .step_size
            .get_or_insert(2.5 * self.radius / self.steps as f64);
        check_finite_positive("step_size", step)?;
        check_range(self.pixel_range)?;
        Ok(PgdValidConfig(self))
    }
}

/// Validated settings of [`pgd`].
///
/// # Example
/// ```
/// let c = randomized_smoothing::attack::PgdConfig::new(0.5).samples(32).check()?;
/// assert_eq!((c.radius(), c.samples(), c.pixel_range()), (0.5, 32, Some((0.0, 1.0))));
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PgdValidConfig(PgdConfig);

impl PgdValidConfig {
    /// The attack radius (l2).
    pub fn radius(&self) -> f64 {
        self.0.radius
    }

    /// Number of steps.
    pub fn steps(&self) -> usize {
        self.0.steps
    }

    /// Length of each step.
    ///
    /// # Example
    /// ```
    /// assert_eq!(randomized_smoothing::attack::PgdConfig::new(0.4).check()?.step_size(), 0.05);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn step_size(&self) -> f64 {
        self.0.step_size.expect("set by check")
    }

    /// Noise draws per step.
    pub fn samples(&self) -> usize {
        self.0.samples
    }

    /// Largest batch per forward pass.
    pub fn batch_size(&self) -> usize {
        self.0.batch_size
    }

    /// The objective.
    pub fn objective(&self) -> Objective {
        self.0.objective
    }

    /// The pixel box, if any.
    pub fn pixel_range(&self) -> Option<(f32, f32)> {
        self.0.pixel_range
    }
}

/// PGD in l2 against the smoothed classifier of `logits` under `noise` (Appendix J.3):
/// returns an input within `config.radius()` of `x` (and in the pixel range) that ascends the
/// chosen [`Objective`] for the true class `label`.
///
/// `x` is one input without batch dimension; `logits` maps a batch `[rows, x's shape...]` to
/// `[rows, classes]`. Each step draws `m` fresh noise samples on the device (a stream seeded
/// from `seed`, so the attack is reproducible), sums their gradients in batches, takes a step
/// of fixed length along the normalized gradient and projects back onto the ball, then the
/// box. Nothing is read back to the host inside the loop.
///
/// # Errors
/// [`Error::InvalidParameter`](crate::Error::InvalidParameter) if the ranks of `x` and the batches do not match or `x` lies
/// outside the pixel range; [`Error::NonFiniteInput`](crate::Error::NonFiniteInput); [`Error::InvalidClass`](crate::Error::InvalidClass) for a label
/// outside the logits; [`Error::BatchLengthMismatch`](crate::Error::BatchLengthMismatch) if `logits` returns the wrong number
/// of rows.
///
/// # Example
/// ```
/// use burn::backend::{Autodiff, NdArray};
/// use burn::tensor::Tensor;
/// use randomized_smoothing::attack::{PgdConfig, pgd};
/// use randomized_smoothing::Gaussian;
///
/// type B = Autodiff<NdArray>;
/// let device = Default::default();
/// // A two-class "network": logits (0, 4 * (mean pixel - 0.5)).
/// let logits = |x: Tensor<B, 2>| {
///     let s = x.mean_dim(1).sub_scalar(0.5).mul_scalar(4.0);
///     Tensor::cat(vec![s.zeros_like(), s], 1)
/// };
/// let x = Tensor::<B, 1>::from_floats([0.7; 4], &device);
/// let config = PgdConfig::new(0.2).samples(16).check()?;
/// let adv = pgd(logits, &Gaussian::new(0.1)?, x.clone(), 1, &config, 1)?;
/// // It moved the full radius, straight down (the gradient's direction), within the box.
/// let d: Vec<f32> = (adv - x).into_data().to_vec().unwrap();
/// assert!(d.iter().all(|v| (v + 0.1).abs() < 1e-4), "{d:?}");
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn pgd<B, N, F, const K: usize, const D: usize>(
    logits: F,
    noise: &N,
    x: Tensor<B, K>,
    label: usize,
    config: &PgdValidConfig,
    seed: u64,
) -> Result<Tensor<B, K>>
where
    B: AutodiffBackend,
    N: NoiseDistribution,
    F: Fn(Tensor<B, D>) -> Tensor<B, 2>,
{
    check_input::<B, K, D>(&x, config.pixel_range())?;
    let device = x.device();
    let dims = x.dims();
    let seed = Streams::new(seed).next();
    let x0 = x.inner();
    let mut delta = x0.zeros_like();
    let radius = config.radius() as f32;
    let mut draw = 0u64;
    for _ in 0..config.steps() {
        let point = Tensor::<B, K>::from_inner(x0.clone() + delta.clone()).require_grad();
        let mut gradient = delta.zeros_like();
        let mut remaining = config.samples();
        while remaining > 0 {
            let rows = remaining.min(config.batch_size());
            let shape = batch_shape::<K, D>(dims, rows);
            let drawn = device_noise::<B, N, D>(noise, shape, &device, split_mix(seed ^ draw));
            draw += 1;
            let out = logits(point.clone().unsqueeze::<D>().expand(shape) + drawn);
            check_logits(out.dims(), rows, label)?;
            // Both objectives are ascended through minus a sum over draws: of the label's
            // log-probability (mean loss), or of its probability (loss of the mean, whose
            // gradient is that sum's over the positive mean probability: the same direction).
            let target = match config.objective() {
                Objective::MeanLoss => log_softmax(out, 1),
                Objective::LossOfMean => softmax(out, 1),
            };
            let loss = target.narrow(1, label, 1).sum().neg();
            let grads = loss.backward();
            gradient = gradient
                + point
                    .grad(&grads)
                    .expect("the attacked point tracks gradients");
            remaining -= rows;
        }
        // A zero gradient (saturated softmax) leaves the point where it is.
        let norm = l2_norm(gradient.clone()).clamp_min(1e-12);
        let step = gradient / norm.expand(dims) * config.step_size() as f32;
        delta = delta + step;
        // Project onto the ball, then the box (which only shortens the step).
        let scale = l2_norm(delta.clone()).clamp_min(radius).recip() * radius;
        delta = delta * scale.expand(dims);
        if let Some((lo, hi)) = config.pixel_range() {
            delta = (x0.clone() + delta).clamp(lo, hi) - x0.clone();
        }
    }
    Ok(Tensor::from_inner(x0 + delta))
}

/// l2 PGD on a batch, for adversarial training (Salman et al.'s SmoothAdv): returns inputs
/// within `radius` of each row of `x` (and in the pixel range) that ascend `loss`, after
/// `steps` steps of `2 * radius / steps` along each row's normalized gradient, each
/// projected back onto the row's ball, then the box, starting from `x`.
///
/// `loss` maps a batch like `x` to a scalar whose rows contribute independently (a sum or
/// mean of per-example losses), so one backward pass gives every row its own gradient. Only
/// the batch is tracked: a model that `loss` runs should be
/// [`no_grad`](burn::module::Module::no_grad), so that no parameter gradient is computed.
/// Unlike [`pgd`], which draws fresh noise at each step, `loss` decides what noise it adds:
/// SmoothAdv keeps the same draws through the attack and the training step.
///
/// # Errors
/// [`Error::InvalidParameter`](crate::Error::InvalidParameter) for a negative or non-finite
/// radius, zero steps or an invalid pixel range.
///
/// # Example
/// ```
/// use burn::backend::{Autodiff, NdArray};
/// use burn::tensor::Tensor;
/// use randomized_smoothing::attack::pgd_batch;
///
/// type B = Autodiff<NdArray>;
/// let device = Default::default();
/// // Ascending the sum of the rows' first values moves each row along (1, 0) only.
/// let x = Tensor::<B, 2>::from_floats([[0.2, 0.5], [0.5, 0.5]], &device);
/// let adv = pgd_batch(|b: Tensor<B, 2>| b.narrow(1, 0, 1).sum(), x, 0.25, 4, Some((0.0, 1.0)))?;
/// let moved: Vec<f32> = adv.into_data().to_vec().unwrap();
/// assert!(moved.iter().zip([0.45, 0.5, 0.75, 0.5]).all(|(a, b)| (a - b).abs() < 1e-6));
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn pgd_batch<B: AutodiffBackend, const D: usize>(
    loss: impl Fn(Tensor<B, D>) -> Tensor<B, 1>,
    x: Tensor<B, D>,
    radius: f64,
    steps: usize,
    pixel_range: Option<(f32, f32)>,
) -> Result<Tensor<B, D>> {
    if !(radius.is_finite() && radius >= 0.0) {
        return Err(Error::InvalidParameter {
            name: "radius",
            reason: format!("must be finite and non-negative, got {radius}"),
        });
    }
    check_positive("steps", steps as u64)?;
    check_range(pixel_range)?;
    let x0 = x.inner();
    if radius == 0.0 {
        return Ok(Tensor::from_inner(x0));
    }
    let dims = x0.dims();
    // Per-row norms broadcast as [rows, 1, ..., 1].
    let mut row_shape = [1; D];
    row_shape[0] = dims[0];
    let row_norms = |t: Tensor<B::InnerBackend, D>| {
        t.square()
            .flatten::<2>(1, D - 1)
            .sum_dim(1)
            .sqrt()
            .reshape(row_shape)
    };
    let radius = radius as f32;
    let step_size = 2.0 * radius / steps as f32;
    let mut delta = x0.zeros_like();
    for _ in 0..steps {
        let point = Tensor::<B, D>::from_inner(x0.clone() + delta.clone()).require_grad();
        let grads = loss(point.clone()).backward();
        let gradient = point
            .grad(&grads)
            .expect("the attacked batch tracks gradients");
        // A zero gradient (saturated softmax) leaves its row where it is.
        let norm = row_norms(gradient.clone()).clamp_min(1e-12);
        delta = delta + gradient / norm.expand(dims) * step_size;
        let scale = row_norms(delta.clone()).clamp_min(radius).recip() * radius;
        delta = delta * scale.expand(dims);
        if let Some((lo, hi)) = pixel_range {
            delta = (x0.clone() + delta).clamp(lo, hi) - x0.clone();
        }
    }
    Ok(Tensor::from_inner(x0 + delta))
}
