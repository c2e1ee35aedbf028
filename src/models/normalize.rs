//! Per-channel normalization as a model's first layer.

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use crate::error::{Error, Result};

/// CIFAR-10 channel means used by the paper's code.
const CIFAR10_MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
/// CIFAR-10 channel standard deviations used by the paper's code.
const CIFAR10_STD: [f32; 3] = [0.2023, 0.1994, 0.2010];
/// ImageNet channel means (torchvision's).
const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (torchvision's).
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Per-channel normalization `(x - mean) / std`, holding no trainable state (as the paper's
/// `NormalizeLayer`, whose tensors are not in the checkpoint).
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use randomized_smoothing::models::Normalize;
///
/// let device = Default::default();
/// let n = Normalize::new(&[0.5], &[0.25])?;
/// let y = n.forward(Tensor::<NdArray, 4>::ones([1, 1, 2, 2], &device));
/// assert_eq!(y.into_data().to_vec::<f32>().unwrap(), vec![2.0; 4]);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Module, Debug, Clone)]
pub struct Normalize {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl Normalize {
    /// Normalization with the given per-channel means and standard deviations.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if the slices are empty or differ in length, a mean is
    /// not finite, or a standard deviation is not finite and positive.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::models::Normalize;
    ///
    /// assert!(Normalize::new(&[0.5, 0.5], &[0.2]).is_err());
    /// assert!(Normalize::new(&[0.5], &[0.0]).is_err());
    /// assert_eq!(Normalize::new(&[0.1307], &[0.3081])?.channels(), 1);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn new(mean: &[f32], std: &[f32]) -> Result<Self> {
        let bad = |reason: String| Error::InvalidParameter {
            name: "normalization",
            reason,
        };
        if mean.is_empty() || mean.len() != std.len() {
            return Err(bad(format!(
                "{} means and {} standard deviations: need one of each per channel",
                mean.len(),
                std.len()
            )));
        }
        if let Some(m) = mean.iter().find(|m| !m.is_finite()) {
            return Err(bad(format!("mean {m} is not finite")));
        }
        if let Some(s) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(bad(format!("standard deviation {s} is not finite and > 0")));
        }
        Ok(Self {
            mean: mean.to_vec(),
            std: std.to_vec(),
        })
    }

    /// Normalization for a `channels`-channel network; a single mean and standard deviation
    /// apply to every channel.
    ///
    /// # Errors
    /// As [`new`](Self::new), and [`Error::InvalidParameter`] if the number of values is
    /// neither 1 nor `channels`.
    pub(crate) fn for_channels(mean: &[f32], std: &[f32], channels: usize) -> Result<Self> {
        let per_channel = |v: &[f32]| {
            if v.len() == 1 {
                vec![v[0]; channels]
            } else {
                v.to_vec()
            }
        };
        let normalize = Self::new(&per_channel(mean), &per_channel(std))?;
        if normalize.channels() != channels {
            return Err(Error::InvalidParameter {
                name: "normalization",
                reason: format!(
                    "{} values for a {channels}-channel network",
                    normalize.channels()
                ),
            });
        }
        Ok(normalize)
    }

    /// The CIFAR-10 normalization of the paper's code: mean (0.4914, 0.4822, 0.4465),
    /// std (0.2023, 0.1994, 0.2010).
    ///
    /// # Example
    /// ```
    /// assert_eq!(randomized_smoothing::models::Normalize::cifar10().channels(), 3);
    /// ```
    pub fn cifar10() -> Self {
        Self {
            mean: CIFAR10_MEAN.to_vec(),
            std: CIFAR10_STD.to_vec(),
        }
    }

    /// The ImageNet normalization: mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225).
    ///
    /// # Example
    /// ```
    /// assert_eq!(randomized_smoothing::models::Normalize::imagenet().mean(), &[0.485, 0.456, 0.406]);
    /// ```
    pub fn imagenet() -> Self {
        Self {
            mean: IMAGENET_MEAN.to_vec(),
            std: IMAGENET_STD.to_vec(),
        }
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.mean.len()
    }

    /// Per-channel means.
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// Per-channel standard deviations.
    pub fn std(&self) -> &[f32] {
        &self.std
    }

    /// Applies the normalization to `[batch, channels, height, width]`.
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use burn::tensor::Tensor;
    /// use randomized_smoothing::models::Normalize;
    ///
    /// let y = Normalize::new(&[0.0], &[2.0])?.forward(Tensor::<NdArray, 4>::ones([1, 1, 1, 1], &Default::default()));
    /// assert_eq!(y.into_scalar(), 0.5);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn forward<B: Backend>(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let device = x.device();
        let [batch, c, h, w] = x.dims();
        // Each image is one row and the statistics one row repeated per pixel, rather than
        // a `[1, c, 1, 1]` broadcast: the same arithmetic, element for element, but a row
        // broadcast is the pattern every CPU backend vectorizes (Burn's Flex takes a
        // per-element strided path for the other, 90 times slower: docs/benchmarks.md).
        // The rows are expanded on the device: only the `c` values cross from the host.
        // In the input's float type, so that a half-precision batch stays in half precision.
        let dtype = x.dtype();
        let row = |values: &[f32]| {
            let data = TensorData::new(values.to_vec(), [1, c, 1, 1]);
            Tensor::<B, 4>::from_data(data, (&device, dtype))
                .expand([1, c, h, w])
                .reshape([1, c * h * w])
        };
        ((x.reshape([batch, c * h * w]) - row(&self.mean)) / row(&self.std))
            .reshape([batch, c, h, w])
    }
}
