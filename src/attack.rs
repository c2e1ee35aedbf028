//! Empirical robustness: attacks that show how tight the certificates are.
//!
//! - [`pgd`]: projected gradient ascent in l2 against the *smoothed* classifier, as in the
//!   paper's Appendix J.3 (after Li et al. 2018): each step follows the normalized gradient of
//!   the base classifier's cross-entropy averaged over `m` noise draws, then projects onto the
//!   l2 ball of the attack radius and the pixel box. [`Objective::LossOfMean`] is the stronger
//!   objective of Salman et al. (2019), the cross-entropy of the noise-averaged softmax.
//! - [`deepfool`]: DeepFool in l2 (Moosavi-Dezfooli et al. 2016) against the base classifier,
//!   which the paper uses on an undefended network for an empirical upper bound on robust
//!   accuracy.
//!
//! Both take the model as a function from a batch of inputs to logits on an autodiff
//! backend, so any Burn model (or hand-written function) on any backend can be attacked.
//! Whether an attack on the smoothed classifier succeeded is for PREDICT to judge at the
//! adversarial point, not a single noisy forward pass.
//!
//! # Example
//! ```
//! use burn::backend::{Autodiff, NdArray};
//! use burn::tensor::Tensor;
//! use rand::{SeedableRng, rngs::StdRng};
//! use randomized_smoothing::attack::{PgdParams, pgd};
//! use randomized_smoothing::{Gaussian, LinearClassifier};
//!
//! type B = Autodiff<NdArray>;
//! let device = Default::default();
//! // Class 1 where x0 > 0: the point (0.3, 0) is 0.3 from the boundary.
//! let f = LinearClassifier::<B>::new(&[1.0, 0.0], 0.0, &device)?;
//! let x = Tensor::<B, 1>::from_floats([0.3, 0.0], &device);
//! let config = PgdParams::new(0.5).samples(64).pixel_range(None).check()?;
//! let adversarial = pgd(|b| f.logits(b), &Gaussian::new(0.25)?, x, 1, &config, &mut StdRng::seed_from_u64(0))?;
//! let moved: Vec<f32> = adversarial.into_data().to_vec().unwrap();
//! assert!((moved[0] - (0.3 - 0.5)).abs() < 1e-3 && moved[1].abs() < 1e-3);
//! # Ok::<(), randomized_smoothing::Error>(())
//! ```

use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor, TensorData};
use rand::Rng;

use crate::error::{Error, Result, check_finite_positive, check_positive};
use crate::smoothing::NoiseDistribution;
use crate::smoothing::sampling::device_noise;
use crate::stats::seed::split_mix;

/// What PGD ascends at each step.
///
/// # Example
/// ```
/// use randomized_smoothing::attack::{Objective, PgdParams};
///
/// let c = PgdParams::new(0.5).objective(Objective::LossOfMean).check()?;
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

/// Settings of [`pgd`], checked by [`PgdParams::check`].
///
/// Defaults: 20 steps of `2.5 * radius / steps` (Madry et al.'s rule: enough to cross the
/// ball and move along its surface), `m = 128` noise draws per step in batches of 128, the
/// [`Objective::MeanLoss`] of Appendix J.3, and pixels kept in `[0, 1]`.
///
/// # Example
/// ```
/// use randomized_smoothing::attack::PgdParams;
///
/// let c = PgdParams::new(1.0).steps(10).check()?;
/// assert_eq!((c.steps(), c.step_size()), (10, 0.25));
/// assert!(PgdParams::new(0.0).check().is_err());
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PgdParams {
    radius: f64,
    steps: usize,
    step_size: Option<f64>,
    samples: usize,
    batch_size: usize,
    objective: Objective,
    pixel_range: Option<(f32, f32)>,
}

impl PgdParams {
    /// An attack within the l2 ball of `radius`, with the default settings.
    ///
    /// # Example
    /// ```
    /// assert!(randomized_smoothing::attack::PgdParams::new(0.5).check().is_ok());
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
    /// let c = randomized_smoothing::attack::PgdParams::new(0.5).radius(0.75).check()?;
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
    /// assert!(randomized_smoothing::attack::PgdParams::new(0.5).steps(0).check().is_err());
    /// ```
    pub fn steps(mut self, steps: usize) -> Self {
        self.steps = steps;
        self
    }

    /// The l2 length of each step (default `2.5 * radius / steps`).
    ///
    /// # Example
    /// ```
    /// let c = randomized_smoothing::attack::PgdParams::new(0.5).step_size(0.1).check()?;
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
    /// assert!(randomized_smoothing::attack::PgdParams::new(0.5).samples(0).check().is_err());
    /// ```
    pub fn samples(mut self, samples: usize) -> Self {
        self.samples = samples;
        self
    }

    /// At most this many noisy copies per forward pass.
    ///
    /// # Example
    /// ```
    /// assert!(randomized_smoothing::attack::PgdParams::new(0.5).batch_size(0).check().is_err());
    /// ```
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// The objective ascended.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::attack::{Objective, PgdParams};
    ///
    /// assert!(PgdParams::new(0.5).objective(Objective::MeanLoss).check().is_ok());
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
    /// use randomized_smoothing::attack::PgdParams;
    ///
    /// assert!(PgdParams::new(0.5).pixel_range(None).check().is_ok());
    /// assert!(PgdParams::new(0.5).pixel_range(Some((1.0, 0.0))).check().is_err());
    /// ```
    pub fn pixel_range(mut self, range: Option<(f32, f32)>) -> Self {
        self.pixel_range = range;
        self
    }

    /// Validates the settings.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless the radius and step size are finite and positive
    /// and the pixel range is finite and non-empty; [`Error::ZeroCount`] for zero steps,
    /// samples or batch size.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::attack::PgdParams;
    ///
    /// assert!(PgdParams::new(f64::NAN).check().is_err());
    /// assert!(PgdParams::new(0.5).step_size(-1.0).check().is_err());
    /// ```
    pub fn check(mut self) -> Result<PgdConfig> {
        check_finite_positive("radius", self.radius)?;
        check_positive("steps", self.steps as u64)?;
        check_positive("samples", self.samples as u64)?;
        check_positive("batch_size", self.batch_size as u64)?;
        let step = *self
            .step_size
            .get_or_insert(2.5 * self.radius / self.steps as f64);
        check_finite_positive("step_size", step)?;
        check_range(self.pixel_range)?;
        Ok(PgdConfig(self))
    }
}

fn check_range(range: Option<(f32, f32)>) -> Result<()> {
    match range {
        Some((lo, hi)) if !(lo.is_finite() && hi.is_finite() && lo < hi) => {
            Err(Error::InvalidParameter {
                name: "pixel_range",
                reason: format!("needs finite lo < hi, got ({lo}, {hi})"),
            })
        }
        _ => Ok(()),
    }
}

/// Validated settings of [`pgd`].
///
/// # Example
/// ```
/// let c = randomized_smoothing::attack::PgdParams::new(0.5).samples(32).check()?;
/// assert_eq!((c.radius(), c.samples(), c.pixel_range()), (0.5, 32, Some((0.0, 1.0))));
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PgdConfig(PgdParams);

impl PgdConfig {
    /// The attack radius (l2).
    ///
    /// # Example
    /// ```
    /// assert_eq!(randomized_smoothing::attack::PgdParams::new(0.5).check()?.radius(), 0.5);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn radius(&self) -> f64 {
        self.0.radius
    }

    /// Number of steps.
    ///
    /// # Example
    /// ```
    /// assert_eq!(randomized_smoothing::attack::PgdParams::new(0.5).check()?.steps(), 20);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn steps(&self) -> usize {
        self.0.steps
    }

    /// Length of each step.
    ///
    /// # Example
    /// ```
    /// assert_eq!(randomized_smoothing::attack::PgdParams::new(0.4).check()?.step_size(), 0.05);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn step_size(&self) -> f64 {
        self.0.step_size.expect("set by check")
    }

    /// Noise draws per step.
    ///
    /// # Example
    /// ```
    /// assert_eq!(randomized_smoothing::attack::PgdParams::new(0.5).check()?.samples(), 128);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn samples(&self) -> usize {
        self.0.samples
    }

    /// Largest batch per forward pass.
    ///
    /// # Example
    /// ```
    /// assert_eq!(randomized_smoothing::attack::PgdParams::new(0.5).check()?.batch_size(), 128);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn batch_size(&self) -> usize {
        self.0.batch_size
    }

    /// The objective.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::attack::{Objective, PgdParams};
    ///
    /// assert_eq!(PgdParams::new(0.5).check()?.objective(), Objective::MeanLoss);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn objective(&self) -> Objective {
        self.0.objective
    }

    /// The pixel box, if any.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::attack::PgdParams;
    ///
    /// assert_eq!(PgdParams::new(0.5).pixel_range(None).check()?.pixel_range(), None);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn pixel_range(&self) -> Option<(f32, f32)> {
        self.0.pixel_range
    }
}

/// Checks one input (no batch dimension) for an attack on a model taking rank-`D` batches.
fn check_input<B: AutodiffBackend, const K: usize, const D: usize>(
    x: &Tensor<B, K>,
    range: Option<(f32, f32)>,
) -> Result<()> {
    if K + 1 != D {
        return Err(Error::InvalidParameter {
            name: "x",
            reason: format!("an input of rank {K} cannot feed batches of rank {D}"),
        });
    }
    let pixels: Vec<f32> = x.to_data().iter::<f32>().collect();
    if let Some(bad) = pixels.iter().find(|v| !v.is_finite()) {
        return Err(Error::NonFiniteInput(f64::from(*bad)));
    }
    if let Some((lo, hi)) = range
        && let Some(out) = pixels.iter().find(|v| !(lo..=hi).contains(*v))
    {
        return Err(Error::InvalidParameter {
            name: "x",
            reason: format!("pixel {out} lies outside the attack's range [{lo}, {hi}]"),
        });
    }
    Ok(())
}

/// The batch shape `[rows, dims...]` for an input of shape `dims`.
fn batch_shape<const K: usize, const D: usize>(dims: [usize; K], rows: usize) -> [usize; D] {
    let mut shape = [rows; D];
    shape[1..].copy_from_slice(&dims);
    shape
}

/// The l2 norm of `t` as a tensor of shape `[1; K]`, on the device.
fn l2_norm<B: burn::tensor::backend::Backend, const K: usize>(t: Tensor<B, K>) -> Tensor<B, K> {
    t.square().sum().sqrt().reshape([1; K])
}

fn check_logits(dims: [usize; 2], rows: usize, label: usize) -> Result<()> {
    if dims[0] != rows {
        return Err(Error::BatchLengthMismatch {
            expected: rows,
            got: dims[0],
        });
    }
    if label >= dims[1] {
        return Err(Error::InvalidClass {
            class: label,
            num_classes: dims[1],
        });
    }
    Ok(())
}

/// PGD in l2 against the smoothed classifier of `logits` under `noise` (Appendix J.3):
/// returns an input within `config.radius()` of `x` (and in the pixel range) that ascends the
/// chosen [`Objective`] for the true class `label`.
///
/// `x` is one input without batch dimension; `logits` maps a batch `[rows, x's shape...]` to
/// `[rows, classes]`. Each step draws `m` fresh noise samples on the device (a stream seeded
/// from `rng`, so the attack is reproducible), sums their gradients in batches, takes a step
/// of fixed length along the normalized gradient and projects back onto the ball, then the
/// box. Nothing is read back to the host inside the loop.
///
/// # Errors
/// [`Error::InvalidParameter`] if the ranks of `x` and the batches do not match or `x` lies
/// outside the pixel range; [`Error::NonFiniteInput`]; [`Error::InvalidClass`] for a label
/// outside the logits; [`Error::BatchLengthMismatch`] if `logits` returns the wrong number
/// of rows.
///
/// # Example
/// ```
/// use burn::backend::{Autodiff, NdArray};
/// use burn::tensor::Tensor;
/// use rand::{SeedableRng, rngs::StdRng};
/// use randomized_smoothing::attack::{PgdParams, pgd};
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
/// let config = PgdParams::new(0.2).samples(16).check()?;
/// let adv = pgd(logits, &Gaussian::new(0.1)?, x.clone(), 1, &config, &mut StdRng::seed_from_u64(1))?;
/// // It moved the full radius, straight down (the gradient's direction), within the box.
/// let d: Vec<f32> = (adv - x).into_data().to_vec().unwrap();
/// assert!(d.iter().all(|v| (v + 0.1).abs() < 1e-4), "{d:?}");
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn pgd<B, N, F, R, const K: usize, const D: usize>(
    logits: F,
    noise: &N,
    x: Tensor<B, K>,
    label: usize,
    config: &PgdConfig,
    rng: &mut R,
) -> Result<Tensor<B, K>>
where
    B: AutodiffBackend,
    N: NoiseDistribution,
    F: Fn(Tensor<B, D>) -> Tensor<B, 2>,
    R: Rng + ?Sized,
{
    check_input::<B, K, D>(&x, config.pixel_range())?;
    let device = x.device();
    let dims = x.dims();
    let seed = rng.next_u64();
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

/// Settings of [`deepfool`], checked by [`DeepFoolParams::check`].
///
/// Defaults as in the authors' implementation: at most 50 iterations, an overshoot of
/// 0.02, the 10 classes with the largest logits at the input as candidates; pixels kept in
/// `[0, 1]`.
///
/// # Example
/// ```
/// use randomized_smoothing::attack::DeepFoolParams;
///
/// let c = DeepFoolParams::default().max_iterations(100).check()?;
/// assert_eq!((c.max_iterations(), c.overshoot(), c.candidates()), (100, 0.02, 10));
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DeepFoolParams {
    max_iterations: usize,
    overshoot: f64,
    candidates: usize,
    pixel_range: Option<(f32, f32)>,
}

impl Default for DeepFoolParams {
    fn default() -> Self {
        Self {
            max_iterations: 50,
            overshoot: 0.02,
            candidates: 10,
            pixel_range: Some((0.0, 1.0)),
        }
    }
}

impl DeepFoolParams {
    /// Largest number of linearization steps.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::attack::DeepFoolParams;
    ///
    /// assert!(DeepFoolParams::default().max_iterations(0).check().is_err());
    /// ```
    pub fn max_iterations(mut self, max_iterations: usize) -> Self {
        self.max_iterations = max_iterations;
        self
    }

    /// How far past each linearized boundary to step, as a fraction of the total step.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::attack::DeepFoolParams;
    ///
    /// assert!(DeepFoolParams::default().overshoot(-0.1).check().is_err());
    /// ```
    pub fn overshoot(mut self, overshoot: f64) -> Self {
        self.overshoot = overshoot;
        self
    }

    /// How many classes (those with the largest logits at the input, the input's own
    /// included) are tried as targets.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::attack::DeepFoolParams;
    ///
    /// assert!(DeepFoolParams::default().candidates(1).check().is_err());
    /// ```
    pub fn candidates(mut self, candidates: usize) -> Self {
        self.candidates = candidates;
        self
    }

    /// The box the adversarial input is kept in (`None`: unbounded).
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::attack::DeepFoolParams;
    ///
    /// assert!(DeepFoolParams::default().pixel_range(None).check().is_ok());
    /// ```
    pub fn pixel_range(mut self, range: Option<(f32, f32)>) -> Self {
        self.pixel_range = range;
        self
    }

    /// Validates the settings.
    ///
    /// # Errors
    /// [`Error::ZeroCount`] for zero iterations; [`Error::InvalidParameter`] for a negative
    /// or non-finite overshoot, fewer than two candidates or an empty pixel range.
    ///
    /// # Example
    /// ```
    /// assert!(randomized_smoothing::attack::DeepFoolParams::default().check().is_ok());
    /// ```
    pub fn check(self) -> Result<DeepFoolConfig> {
        check_positive("max_iterations", self.max_iterations as u64)?;
        if !(self.overshoot.is_finite() && self.overshoot >= 0.0) {
            return Err(Error::InvalidParameter {
                name: "overshoot",
                reason: format!("must be finite and non-negative, got {}", self.overshoot),
            });
        }
        if self.candidates < 2 {
            return Err(Error::InvalidParameter {
                name: "candidates",
                reason: format!(
                    "needs the input's class and one other, got {}",
                    self.candidates
                ),
            });
        }
        check_range(self.pixel_range)?;
        Ok(DeepFoolConfig(self))
    }
}

/// Validated settings of [`deepfool`].
///
/// # Example
/// ```
/// let c = randomized_smoothing::attack::DeepFoolParams::default().check()?;
/// assert_eq!(c.pixel_range(), Some((0.0, 1.0)));
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DeepFoolConfig(DeepFoolParams);

impl DeepFoolConfig {
    /// Largest number of iterations.
    ///
    /// # Example
    /// ```
    /// assert_eq!(randomized_smoothing::attack::DeepFoolParams::default().check()?.max_iterations(), 50);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn max_iterations(&self) -> usize {
        self.0.max_iterations
    }

    /// The overshoot.
    ///
    /// # Example
    /// ```
    /// assert_eq!(randomized_smoothing::attack::DeepFoolParams::default().check()?.overshoot(), 0.02);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn overshoot(&self) -> f64 {
        self.0.overshoot
    }

    /// Number of candidate classes.
    ///
    /// # Example
    /// ```
    /// assert_eq!(randomized_smoothing::attack::DeepFoolParams::default().check()?.candidates(), 10);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn candidates(&self) -> usize {
        self.0.candidates
    }

    /// The pixel box, if any.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::attack::DeepFoolParams;
    ///
    /// assert_eq!(DeepFoolParams::default().pixel_range(None).check()?.pixel_range(), None);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn pixel_range(&self) -> Option<(f32, f32)> {
        self.0.pixel_range
    }
}

/// What [`deepfool`] found.
#[derive(Debug, Clone)]
pub struct DeepFool<B: AutodiffBackend, const K: usize> {
    /// The last iterate: an adversarial example if [`fooled`](Self::fooled).
    pub adversarial: Tensor<B, K>,
    /// The classifier's class at the input.
    pub original: usize,
    /// Its class at `adversarial`.
    pub class: usize,
    /// The l2 distance from the input to `adversarial`.
    pub distance: f64,
    /// Linearization steps taken.
    pub iterations: usize,
}

impl<B: AutodiffBackend, const K: usize> DeepFool<B, K> {
    /// Whether the class changed.
    ///
    /// # Example
    /// ```
    /// use burn::backend::{Autodiff, NdArray};
    /// use burn::tensor::Tensor;
    /// use randomized_smoothing::attack::DeepFool;
    ///
    /// let r = DeepFool::<Autodiff<NdArray>, 1> {
    ///     adversarial: Tensor::zeros([2], &Default::default()),
    ///     original: 0, class: 1, distance: 0.3, iterations: 2,
    /// };
    /// assert!(r.fooled());
    /// ```
    pub fn fooled(&self) -> bool {
        self.class != self.original
    }
}

/// DeepFool in l2 (Moosavi-Dezfooli et al. 2016) against the classifier `logits`: repeatedly
/// linearizes the logits around the current point and steps to the nearest linearized
/// boundary between the input's class and a candidate class, until the class changes (or
/// the iteration budget runs out). Each iteration takes the gradients of all candidate
/// logits in one backward pass over a batch of copies.
///
/// # Errors
/// As [`pgd`].
///
/// # Example
/// ```
/// use burn::backend::{Autodiff, NdArray};
/// use burn::tensor::Tensor;
/// use randomized_smoothing::attack::{DeepFoolParams, deepfool};
/// use randomized_smoothing::LinearClassifier;
///
/// type B = Autodiff<NdArray>;
/// let device = Default::default();
/// let f = LinearClassifier::<B>::new(&[3.0, 4.0], -2.5, &device)?; // boundary 0.5 from the origin
/// let config = DeepFoolParams::default().pixel_range(None).check()?;
/// let r = deepfool(|b| f.logits(b), Tensor::<B, 1>::zeros([2], &device), &config)?;
/// assert!(r.fooled() && r.iterations == 1);
/// assert!((r.distance - 0.5 * 1.02).abs() < 1e-3); // the distance, plus the overshoot
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn deepfool<B, F, const K: usize, const D: usize>(
    logits: F,
    x: Tensor<B, K>,
    config: &DeepFoolConfig,
) -> Result<DeepFool<B, K>>
where
    B: AutodiffBackend,
    F: Fn(Tensor<B, D>) -> Tensor<B, 2>,
{
    check_input::<B, K, D>(&x, config.pixel_range())?;
    let device = x.device();
    let dims = x.dims();
    let x0 = x.inner();
    let host_logits = |t: Tensor<B, 2>| -> Vec<f64> { t.into_data().iter::<f64>().collect() };
    let first = logits(Tensor::from_inner(x0.clone()).unsqueeze::<D>());
    check_logits(first.dims(), 1, 0)?;
    let scores = host_logits(first);
    let classes = scores.len();
    let mut order: Vec<usize> = (0..classes).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let original = order[0];
    let candidates: Vec<usize> = order.into_iter().take(config.candidates()).collect();
    let k = candidates.len();
    let index = Tensor::<B, 2, Int>::from_data(
        TensorData::new(candidates.iter().map(|&c| c as i64).collect(), [k, 1]),
        &device,
    );
    let mut total = x0.zeros_like();
    let mut point = x0.clone();
    let mut iterations = 0;
    loop {
        // The candidates' logits at the point, and their gradients (row j: class candidates[j]).
        let copies = Tensor::<B, D>::from_inner(
            point
                .clone()
                .unsqueeze::<D>()
                .expand(batch_shape::<K, D>(dims, k)),
        )
        .require_grad();
        let out = logits(copies.clone());
        check_logits(out.dims(), k, original)?;
        let picked = out.clone().gather(1, index.clone());
        let at_point = host_logits(out.narrow(0, 0, 1));
        let class = argmax(&at_point);
        if class != original || iterations == config.max_iterations() || k < 2 {
            let distance = host_l2_norm(point.clone() - x0.clone());
            return Ok(DeepFool {
                adversarial: Tensor::from_inner(point),
                original,
                class,
                distance,
                iterations,
            });
        }
        let grads = picked.sum().backward();
        let g = copies.grad(&grads).expect("the copies track gradients");
        let g = g.flatten::<2>(1, D - 1);
        let shape = g.dims();
        let w = g.clone() - g.narrow(0, 0, 1).expand(shape);
        let w_norms: Vec<f64> = w
            .clone()
            .square()
            .sum_dim(1)
            .sqrt()
            .into_data()
            .iter::<f64>()
            .collect();
        let f0 = at_point[original];
        // The nearest linearized boundary (skipping classes with a zero gradient difference).
        let Some((j, distance)) = (1..k)
            .filter(|&j| w_norms[j] > 0.0)
            .map(|j| (j, (at_point[candidates[j]] - f0).abs() / w_norms[j]))
            .min_by(|a, b| a.1.total_cmp(&b.1))
        else {
            // Flat in every direction: no step to take.
            iterations = config.max_iterations();
            continue;
        };
        let step = w.narrow(0, j, 1).reshape(dims) * ((distance + 1e-4) / w_norms[j]) as f32;
        total = total + step;
        point = x0.clone() + total.clone() * (1.0 + config.overshoot()) as f32;
        if let Some((lo, hi)) = config.pixel_range() {
            point = point.clamp(lo, hi);
        }
        iterations += 1;
    }
}

fn argmax(values: &[f64]) -> usize {
    (0..values.len())
        .max_by(|&a, &b| values[a].total_cmp(&values[b]).then(b.cmp(&a)))
        .unwrap_or(0)
}

/// The l2 norm of `t`, read back to the host (once per attacked input, for its log row).
pub(crate) fn host_l2_norm<B: burn::tensor::backend::Backend, const K: usize>(
    t: Tensor<B, K>,
) -> f64 {
    t.into_data()
        .iter::<f64>()
        .map(|v| v * v)
        .sum::<f64>()
        .sqrt()
}
