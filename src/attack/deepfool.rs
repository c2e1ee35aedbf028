//! DeepFool in l2 against the base classifier (Moosavi-Dezfooli et al. 2016), which the paper
//! runs on an undefended network for an empirical upper bound on robust accuracy.

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor, TensorData};

use super::{batch_shape, check_input, check_logits, check_range, host_l2_norm};
use crate::error::{Error, Result, check_positive};

/// Settings of [`deepfool`], checked by [`DeepFoolConfig::check`].
///
/// Defaults as in the authors' implementation: at most 50 iterations, an overshoot of
/// 0.02, the 10 classes with the largest logits at the input as candidates; pixels kept in
/// `[0, 1]`.
///
/// # Example
/// ```
/// use randomized_smoothing::attack::DeepFoolConfig;
///
/// let c = DeepFoolConfig::default().max_iterations(100).check()?;
/// assert_eq!((c.max_iterations(), c.overshoot(), c.candidates()), (100, 0.02, 10));
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DeepFoolConfig {
    max_iterations: usize,
    overshoot: f64,
    candidates: usize,
    pixel_range: Option<(f32, f32)>,
}

impl Default for DeepFoolConfig {
    fn default() -> Self {
        Self {
            max_iterations: 50,
            overshoot: 0.02,
            candidates: 10,
            pixel_range: Some((0.0, 1.0)),
        }
    }
}

impl DeepFoolConfig {
    /// Largest number of linearization steps.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::attack::DeepFoolConfig;
    ///
    /// assert!(DeepFoolConfig::default().max_iterations(0).check().is_err());
    /// ```
    pub fn max_iterations(mut self, max_iterations: usize) -> Self {
        self.max_iterations = max_iterations;
        self
    }

    /// How far past each linearized boundary to step, as a fraction of the total step.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::attack::DeepFoolConfig;
    ///
    /// assert!(DeepFoolConfig::default().overshoot(-0.1).check().is_err());
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
    /// use randomized_smoothing::attack::DeepFoolConfig;
    ///
    /// assert!(DeepFoolConfig::default().candidates(1).check().is_err());
    /// ```
    pub fn candidates(mut self, candidates: usize) -> Self {
        self.candidates = candidates;
        self
    }

    /// The box the adversarial input is kept in (`None`: unbounded).
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::attack::DeepFoolConfig;
    ///
    /// assert!(DeepFoolConfig::default().pixel_range(None).check().is_ok());
    /// ```
    pub fn pixel_range(mut self, range: Option<(f32, f32)>) -> Self {
        self.pixel_range = range;
        self
    }

    /// Validates the settings.
    ///
    /// # Errors
    /// [`Error::ZeroCount`](crate::Error::ZeroCount) for zero iterations; [`Error::InvalidParameter`](crate::Error::InvalidParameter) for a negative
    /// or non-finite overshoot, fewer than two candidates or an empty pixel range.
    ///
    /// # Example
    /// ```
    /// assert!(randomized_smoothing::attack::DeepFoolConfig::default().check().is_ok());
    /// ```
    pub fn check(self) -> Result<DeepFoolValidConfig> {
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
        Ok(DeepFoolValidConfig(self))
    }
}

/// Validated settings of [`deepfool`].
///
/// # Example
/// ```
/// let c = randomized_smoothing::attack::DeepFoolConfig::default().check()?;
/// assert_eq!(c.pixel_range(), Some((0.0, 1.0)));
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DeepFoolValidConfig(DeepFoolConfig);

impl DeepFoolValidConfig {
    /// Largest number of iterations.
    pub fn max_iterations(&self) -> usize {
        self.0.max_iterations
    }

    /// The overshoot.
    pub fn overshoot(&self) -> f64 {
        self.0.overshoot
    }

    /// Number of candidate classes.
    pub fn candidates(&self) -> usize {
        self.0.candidates
    }

    /// The pixel box, if any.
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
/// As [`pgd`](fn@super::pgd).
///
/// # Example
/// ```
/// use burn::backend::{Autodiff, NdArray};
/// use burn::tensor::Tensor;
/// use randomized_smoothing::attack::{DeepFoolConfig, deepfool};
/// use randomized_smoothing::LinearClassifier;
///
/// type B = Autodiff<NdArray>;
/// let device = Default::default();
/// let f = LinearClassifier::<B>::new(&[3.0, 4.0], -2.5, &device)?; // boundary 0.5 from the origin
/// let config = DeepFoolConfig::default().pixel_range(None).check()?;
/// let r = deepfool(|b| f.logits(b), Tensor::<B, 1>::zeros([2], &device), &config)?;
/// assert!(r.fooled() && r.iterations == 1);
/// assert!((r.distance - 0.5 * 1.02).abs() < 1e-3); // the distance, plus the overshoot
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn deepfool<B, F, const K: usize, const D: usize>(
    logits: F,
    x: Tensor<B, K>,
    config: &DeepFoolValidConfig,
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
