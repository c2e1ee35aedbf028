//! A small CNN for grayscale digits on the CPU.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::{ImageClassifier, Normalize, kernels};
use crate::error::{Error, Result, check_positive};

/// Configuration of [`SmallCnn`].
///
/// # Example
/// ```
/// use randomized_smoothing::models::SmallCnnConfig;
///
/// let config = SmallCnnConfig::new([1, 28, 28], 10)
///     .with_filters(16)
///     .with_mean(vec![0.1307])
///     .with_std(vec![0.3081]);
/// assert_eq!(config.filters, 16);
/// ```
#[derive(Config, Debug)]
pub struct SmallCnnConfig {
    /// Shape of one image, `[channels, height, width]`; height and width at least 4 (two
    /// 2x2 poolings).
    pub input_shape: [usize; 3],
    /// Number of classes.
    pub classes: usize,
    /// Channels of the first two convolutions (the third has twice as many).
    #[config(default = 32)]
    pub filters: usize,
    /// Per-channel means for the normalization layer (one value is used for all channels).
    #[config(default = "vec![0.5]")]
    pub mean: Vec<f32>,
    /// Per-channel standard deviations for the normalization layer (likewise).
    #[config(default = "vec![0.5]")]
    pub std: Vec<f32>,
}

impl SmallCnnConfig {
    /// Builds the model on `device`, with Burn's default initialization.
    ///
    /// # Errors
    /// [`Error::ZeroCount`] for zero channels, classes or filters; [`Error::InvalidParameter`]
    /// for images smaller than 4x4 or a bad normalization.
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use randomized_smoothing::models::SmallCnnConfig;
    ///
    /// let model = SmallCnnConfig::new([1, 8, 8], 10).init::<NdArray>(&Default::default())?;
    /// assert!(burn::module::Module::num_params(&model) > 10_000);
    /// assert!(SmallCnnConfig::new([1, 2, 2], 10).init::<NdArray>(&Default::default()).is_err());
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<SmallCnn<B>> {
        // Fresh weights draw from Burn's process-wide generator: under its one lock, so that
        // a seeded initialization or training elsewhere in the process stays reproducible.
        let _generator = crate::smoothing::lock_generator();
        let [c, h, w] = self.input_shape;
        check_positive("channels", c as u64)?;
        check_positive("classes", self.classes as u64)?;
        check_positive("filters", self.filters as u64)?;
        if h < 4 || w < 4 {
            return Err(Error::InvalidParameter {
                name: "input_shape",
                reason: format!("{h}x{w} images are too small for two 2x2 poolings"),
            });
        }
        let normalize = Normalize::for_channels(&self.mean, &self.std, c)?;
        let f = self.filters;
        let conv = |i, o| {
            Conv2dConfig::new([i, o], [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .init(device)
        };
        Ok(SmallCnn {
            normalize,
            conv1: conv(c, f),
            conv2: conv(f, f),
            conv3: conv(f, 2 * f),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            gap: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            head: LinearConfig::new(2 * f, self.classes).init(device),
            relu: Relu::new(),
            input_shape: self.input_shape.to_vec(),
            classes: self.classes,
        })
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
/// let model = SmallCnnConfig::new([1, 8, 8], 10).init::<NdArray>(&device)?;
/// assert_eq!(model.forward(Tensor::zeros([3, 1, 8, 8], &device)).dims(), [3, 10]);
/// # Ok::<(), randomized_smoothing::Error>(())
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
    input_shape: Vec<usize>,
    classes: usize,
}

impl<B: Backend> ImageClassifier<B> for SmallCnn<B> {
    fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        // The widest activation, per image: the first two convolutions' outputs.
        let pixels = self.input_shape[1] * self.input_shape[2];
        let widest = self.conv1.weight.dims()[0] * pixels * 4;
        kernels::in_chunks(images, widest, |images| {
            let x = self.normalize.forward(images);
            // ReLU in the convolution's epilogue (Burn's `relu`, as `self.relu` runs it,
            // where the kernel does not apply: autodiff backends, so training is unchanged).
            let x = kernels::conv2d_fused(&self.conv1, x, None, true);
            let x = kernels::max_pool2d(
                &self.pool,
                kernels::conv2d_fused(&self.conv2, x, None, true),
            );
            let x = kernels::max_pool2d(
                &self.pool,
                kernels::conv2d_fused(&self.conv3, x, None, true),
            );
            self.head.forward(self.gap.forward(x).flatten::<2>(1, 3))
        })
    }

    fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    fn num_classes(&self) -> usize {
        self.classes
    }
}
