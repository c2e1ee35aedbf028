//! Empirical robustness: attacks that show how tight the certificates are.
//!
//! - [`pgd()`]: projected gradient ascent in l2 against the *smoothed* classifier, as in the
//!   paper's Appendix J.3 (after Li et al. 2018): each step follows the normalized gradient of
//!   the base classifier's cross-entropy averaged over `m` noise draws, then projects onto the
//!   l2 ball of the attack radius and the pixel box. [`Objective::LossOfMean`] is the stronger
//!   objective of Salman et al. (2019), the cross-entropy of the noise-averaged softmax.
//! - [`deepfool()`]: DeepFool in l2 (Moosavi-Dezfooli et al. 2016) against the base classifier,
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
//! use randomized_smoothing::attack::{PgdConfig, pgd};
//! use randomized_smoothing::{Gaussian, LinearClassifier};
//!
//! type B = Autodiff<NdArray>;
//! let device = Default::default();
//! // Class 1 where x0 > 0: the point (0.3, 0) is 0.3 from the boundary.
//! let f = LinearClassifier::<B>::new(&[1.0, 0.0], 0.0, &device)?;
//! let x = Tensor::<B, 1>::from_floats([0.3, 0.0], &device);
//! let config = PgdConfig::new(0.5).samples(64).pixel_range(None).check()?;
//! let adversarial = pgd(|b| f.logits(b), &Gaussian::new(0.25)?, x, 1, &config, 0)?;
//! let moved: Vec<f32> = adversarial.into_data().to_vec().unwrap();
//! assert!((moved[0] - (0.3 - 0.5)).abs() < 1e-3 && moved[1].abs() < 1e-3);
//! # Ok::<(), randomized_smoothing::Error>(())
//! ```

mod deepfool;
mod pgd;

pub use deepfool::{DeepFool, DeepFoolConfig, DeepFoolValidConfig, deepfool};
pub use pgd::{Objective, PgdConfig, PgdValidConfig, pgd, pgd_batch};

use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

use crate::error::{Error, Result};

/// Checks an attack's pixel range: finite bounds, lo < hi.
pub(super) fn check_range(range: Option<(f32, f32)>) -> Result<()> {
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

/// Checks one input (no batch dimension) for an attack on a model taking rank-`D` batches.
pub(super) fn check_input<B: AutodiffBackend, const K: usize, const D: usize>(
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
pub(super) fn batch_shape<const K: usize, const D: usize>(
    dims: [usize; K],
    rows: usize,
) -> [usize; D] {
    let mut shape = [rows; D];
    shape[1..].copy_from_slice(&dims);
    shape
}

/// The l2 norm of `t` as a tensor of shape `[1; K]`, on the device.
pub(super) fn l2_norm<B: burn::tensor::backend::Backend, const K: usize>(
    t: Tensor<B, K>,
) -> Tensor<B, K> {
    t.square().sum().sqrt().reshape([1; K])
}

pub(super) fn check_logits(dims: [usize; 2], rows: usize, label: usize) -> Result<()> {
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
