//! Models: per-channel normalization as a first layer (so that noise is added in pixel
//! space and radii are in pixel units) and a small CNN for CPU-sized grayscale inputs.
//!
//! # Example
//! ```
//! use burn::backend::NdArray;
//! use burn::tensor::Tensor;
//! use randomized_smoothing::models::{ImageClassifier, SmallCnnConfig};
//!
//! let device = Default::default();
//! let model = SmallCnnConfig::new(1, 10).init::<NdArray>(&device);
//! let logits = model.forward(Tensor::zeros([2, 1, 28, 28], &device));
//! assert_eq!(logits.dims(), [2, 10]);
//! ```

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

/// A model that maps a batch of images `[batch, channels, height, width]` with pixels in
/// [0, 1] to logits `[batch, classes]`.
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use randomized_smoothing::models::{ImageClassifier, SmallCnnConfig};
///
/// fn top<B: burn::tensor::backend::Backend, M: ImageClassifier<B>>(m: &M, x: Tensor<B, 4>) -> Tensor<B, 2, burn::tensor::Int> {
///     m.forward(x).argmax(1)
/// }
/// let device = Default::default();
/// let m = SmallCnnConfig::new(1, 3).init::<NdArray>(&device);
/// assert_eq!(top(&m, Tensor::zeros([4, 1, 8, 8], &device)).dims(), [4, 1]);
/// ```
pub trait ImageClassifier<B: Backend>: Module<B> {
    /// Logits for a batch of images.
    fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2>;
}

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
/// let n = Normalize::new(&[0.5], &[0.25]);
/// let y = n.forward(Tensor::<NdArray, 4>::ones([1, 1, 2, 2], &device));
/// assert_eq!(y.into_data().to_vec::<f32>().unwrap(), vec![2.0; 4]);
/// ```
#[derive(Module, Debug, Clone)]
pub struct Normalize {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl Normalize {
    /// Normalization with the given per-channel means and standard deviations.
    ///
    /// # Panics
    /// If the two slices differ in length or a standard deviation is not positive: these are
    /// constants of an architecture, not user input.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::models::Normalize;
    ///
    /// let cifar = Normalize::new(&[0.4914, 0.4822, 0.4465], &[0.2023, 0.1994, 0.2010]);
    /// assert_eq!(cifar.channels(), 3);
    /// ```
    pub fn new(mean: &[f32], std: &[f32]) -> Self {
        assert_eq!(mean.len(), std.len(), "one mean and one std per channel");
        assert!(
            std.iter().all(|s| *s > 0.0),
            "standard deviations must be positive"
        );
        Self {
            mean: mean.to_vec(),
            std: std.to_vec(),
        }
    }

    /// Number of channels.
    ///
    /// # Example
    /// ```
    /// assert_eq!(randomized_smoothing::models::Normalize::new(&[0.5], &[0.5]).channels(), 1);
    /// ```
    pub fn channels(&self) -> usize {
        self.mean.len()
    }

    /// Applies the normalization to `[batch, channels, height, width]`.
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use burn::tensor::Tensor;
    /// use randomized_smoothing::models::Normalize;
    ///
    /// let y = Normalize::new(&[0.0], &[2.0]).forward(Tensor::<NdArray, 4>::ones([1, 1, 1, 1], &Default::default()));
    /// assert_eq!(y.into_scalar(), 0.5);
    /// ```
    pub fn forward<B: Backend>(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let device = x.device();
        let c = self.channels();
        let mean =
            Tensor::<B, 4>::from_data(TensorData::new(self.mean.clone(), [1, c, 1, 1]), &device);
        let std =
            Tensor::<B, 4>::from_data(TensorData::new(self.std.clone(), [1, c, 1, 1]), &device);
        (x - mean) / std
    }
}

/// Configuration of [`SmallCnn`].
///
/// # Example
/// ```
/// use randomized_smoothing::models::SmallCnnConfig;
///
/// let config = SmallCnnConfig::new(1, 10).with_width(16).with_mean(vec![0.1307]).with_std(vec![0.3081]);
/// assert_eq!(config.width, 16);
/// ```
#[derive(Config, Debug)]
pub struct SmallCnnConfig {
    /// Input channels.
    pub channels: usize,
    /// Number of classes.
    pub classes: usize,
    /// Channels of the first convolutions (the last has twice as many).
    #[config(default = 32)]
    pub width: usize,
    /// Per-channel means for the normalization layer.
    #[config(default = "vec![0.5]")]
    pub mean: Vec<f32>,
    /// Per-channel standard deviations for the normalization layer.
    #[config(default = "vec![0.5]")]
    pub std: Vec<f32>,
}

impl SmallCnnConfig {
    /// Builds the model on `device`, with Burn's default initialization.
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use randomized_smoothing::models::SmallCnnConfig;
    ///
    /// let model = SmallCnnConfig::new(1, 10).init::<NdArray>(&Default::default());
    /// assert!(burn::module::Module::num_params(&model) > 10_000);
    /// ```
    pub fn init<B: Backend>(&self, device: &B::Device) -> SmallCnn<B> {
        let (w, c) = (self.width, self.channels);
        let conv = |i, o| {
            Conv2dConfig::new([i, o], [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .init(device)
        };
        let mean = if self.mean.len() == c {
            self.mean.clone()
        } else {
            vec![self.mean[0]; c]
        };
        let std = if self.std.len() == c {
            self.std.clone()
        } else {
            vec![self.std[0]; c]
        };
        SmallCnn {
            normalize: Normalize::new(&mean, &std),
            conv1: conv(c, w),
            conv2: conv(w, w),
            conv3: conv(w, 2 * w),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            gap: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            head: LinearConfig::new(2 * w, self.classes).init(device),
            relu: Relu::new(),
        }
    }
}

/// A small CNN for grayscale digits (8x8 or 28x28) on the CPU: normalization, three 3x3
/// convolutions with ReLU (max-pooling after the second and third), global average pooling
/// and a linear head.
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use randomized_smoothing::models::{ImageClassifier, SmallCnnConfig};
///
/// let device = Default::default();
/// let model = SmallCnnConfig::new(1, 10).init::<NdArray>(&device);
/// assert_eq!(model.forward(Tensor::zeros([3, 1, 8, 8], &device)).dims(), [3, 10]);
/// ```
#[derive(Module, Debug)]
pub struct SmallCnn<B: Backend> {
    normalize: Normalize,
    conv1: Conv2d<B>,
    conv2: Conv2d<B>,
    conv3: Conv2d<B>,
    pool: MaxPool2d,
    gap: AdaptiveAvgPool2d,
    head: Linear<B>,
    relu: Relu,
}

impl<B: Backend> ImageClassifier<B> for SmallCnn<B> {
    fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let x = self.normalize.forward(images);
        let x = self.relu.forward(self.conv1.forward(x));
        let x = self.pool.forward(self.relu.forward(self.conv2.forward(x)));
        let x = self.pool.forward(self.relu.forward(self.conv3.forward(x)));
        self.head.forward(self.gap.forward(x).flatten::<2>(1, 3))
    }
}
