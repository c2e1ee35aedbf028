//! Denoisers for denoised smoothing (Salman et al. 2020, "Denoised Smoothing: A Provable
//! Defense for Pretrained Classifiers"): a network `D` in front of a classifier `f` that was
//! never trained with noise, so that `f(D(x + e))` is accurate under Gaussian noise and its
//! smoothed version certifies.
//!
//! [`Dncnn`] is the denoiser of that paper (Zhang et al. 2017's DnCNN) at a CPU-sized depth
//! and width; [`Denoised`] is the composition `f(D(x))`, a [`BaseClassifier`] that goes
//! straight into a [`SmoothedClassifier`](crate::SmoothedClassifier).

use std::marker::PhantomData;

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, PaddingConfig2d, Relu};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use super::{ImageClassifier, kernels};
use crate::error::{Error, Result, check_positive};
use crate::smoothing::base::{BaseClassifier, top_class};

/// A model that maps a batch of noisy images `[batch, channels, height, width]` (pixels in
/// [0, 1] plus noise) to images of the same shape.
///
/// # Contract
/// [`denoise`](Self::denoise) keeps the shape, and [`image_shape`](Self::image_shape) is
/// the `[channels, height, width]` it takes. Like a base classifier it runs on the device of
/// its input, once per batch of the sampling loop, without host traffic.
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use randomized_smoothing::models::{Denoiser, DncnnConfig};
///
/// let device = Default::default();
/// let d = DncnnConfig::new([1, 8, 8]).init::<NdArray>(&device)?;
/// assert_eq!(d.denoise(Tensor::zeros([2, 1, 8, 8], &device)).dims(), [2, 1, 8, 8]);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub trait Denoiser<B: Backend>: Module<B> {
    /// The denoised batch, of the input's shape.
    fn denoise(&self, images: Tensor<B, 4>) -> Tensor<B, 4>;

    /// Shape of one image, `[channels, height, width]`.
    fn image_shape(&self) -> &[usize];
}

/// Configuration of [`Dncnn`].
///
/// # Example
/// ```
/// use randomized_smoothing::models::DncnnConfig;
///
/// let config = DncnnConfig::new([1, 28, 28]).with_depth(4).with_width(16);
/// assert_eq!((config.depth, config.width), (4, 16));
/// ```
#[derive(Config, Debug)]
pub struct DncnnConfig {
    /// Shape of one image, `[channels, height, width]`.
    pub image_shape: [usize; 3],
    /// Convolutions in all (at least 2): the first and last, and `depth - 2` between.
    /// Zhang et al. and Salman et al. use 17; 5 keeps a 28x28 denoiser within a few times
    /// the cost of the small CNN it serves.
    #[config(default = 5)]
    pub depth: usize,
    /// Channels of the hidden convolutions (64 in the papers).
    #[config(default = 32)]
    pub width: usize,
}

impl DncnnConfig {
    /// Builds the denoiser on `device`, with Burn's default initialization except for the
    /// last convolution, which starts at zero: an untrained denoiser is the identity, so
    /// training starts from the noisy image rather than from random output.
    ///
    /// # Errors
    /// [`Error::ZeroCount`] for zero channels, height, width or hidden channels;
    /// [`Error::InvalidParameter`] for a depth below 2.
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use burn::tensor::Tensor;
    /// use randomized_smoothing::models::{Denoiser, DncnnConfig};
    ///
    /// let device = Default::default();
    /// let d = DncnnConfig::new([1, 4, 4]).init::<NdArray>(&device)?;
    /// let x = Tensor::<NdArray, 4>::ones([1, 1, 4, 4], &device) * 0.3;
    /// let same = d.denoise(x.clone()).sub(x).abs().max().into_scalar();
    /// assert!(same < 1e-6);
    /// assert!(DncnnConfig::new([1, 4, 4]).with_depth(1).init::<NdArray>(&device).is_err());
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<Dncnn<B>> {
        // Fresh weights draw from Burn's process-wide generator: under its one lock, so that
        // a seeded initialization or training elsewhere in the process stays reproducible.
        let _generator = crate::smoothing::lock_generator();
        let [c, h, w] = self.image_shape;
        check_positive("channels", c as u64)?;
        check_positive("height", h as u64)?;
        check_positive("width of the images", w as u64)?;
        check_positive("hidden channels", self.width as u64)?;
        if self.depth < 2 {
            return Err(Error::InvalidParameter {
                name: "depth",
                reason: format!("a DnCNN has at least 2 convolutions, not {}", self.depth),
            });
        }
        let conv = |i, o| Conv2dConfig::new([i, o], [3, 3]).with_padding(PaddingConfig2d::Same);
        Ok(Dncnn {
            first: conv(c, self.width).init(device),
            hidden: (2..self.depth)
                .map(|_| conv(self.width, self.width).init(device))
                .collect(),
            last: conv(self.width, c)
                .with_initializer(Initializer::Zeros)
                .init(device),
            relu: Relu::new(),
            image_shape: self.image_shape.to_vec(),
        })
    }
}

/// DnCNN (Zhang et al. 2017), the denoiser of Salman et al. 2020: 3x3 convolutions with
/// ReLU between them, predicting the noise, which is subtracted from the input (residual
/// learning).
///
/// The papers put batch norm after the hidden convolutions; at the shallow depths this
/// crate runs on a CPU it is not needed to train, and without it there is nothing to fold
/// before certification.
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use randomized_smoothing::models::DncnnConfig;
///
/// let d = DncnnConfig::new([1, 28, 28]).init::<NdArray>(&Default::default())?;
/// assert_eq!(burn::module::Module::num_params(&d), 2 * (9 * 32 + 32) + 3 * (9 * 32 * 32 + 32) - 31);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Module, Debug)]
pub struct Dncnn<B: Backend> {
    first: Conv2d<B>,
    hidden: Vec<Conv2d<B>>,
    last: Conv2d<B>,
    relu: Relu,
    image_shape: Vec<usize>,
}

impl<B: Backend> Denoiser<B> for Dncnn<B> {
    fn denoise(&self, images: Tensor<B, 4>) -> Tensor<B, 4> {
        // ReLU in the convolution's epilogue (Burn's `relu`, as `self.relu` runs it, where
        // the kernel does not apply: autodiff backends, so training is unchanged).
        let mut x = kernels::conv2d_fused(&self.first, images.clone(), None, true);
        for conv in &self.hidden {
            x = kernels::conv2d_fused(conv, x, None, true);
        }
        images - kernels::conv2d(&self.last, x)
    }

    fn image_shape(&self) -> &[usize] {
        &self.image_shape
    }
}

/// A classifier behind a denoiser, `f(D(x))`: the base classifier of denoised smoothing.
///
/// Smoothing it certifies `classifier` without retraining it: noise is added before the
/// denoiser, so radii stay in the pixel space of `x`.
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use randomized_smoothing::models::{Denoised, DncnnConfig, SmallCnnConfig};
/// use randomized_smoothing::{BaseClassifier, CertifyConfig, Gaussian, SmoothedClassifier};
///
/// let device = Default::default();
/// let classifier = SmallCnnConfig::new([1, 8, 8], 10).with_filters(4).init::<NdArray>(&device)?;
/// let denoiser = DncnnConfig::new([1, 8, 8]).with_width(8).init::<NdArray>(&device)?;
/// let base = Denoised::new(denoiser, classifier)?;
/// assert_eq!((base.input_shape(), base.num_classes()), (&[1, 8, 8][..], 10));
/// let smoothed = SmoothedClassifier::new(base, Gaussian::new(0.25)?);
/// let config = CertifyConfig::default().n0(10).n(100).batch_size(50).check()?;
/// let x = Tensor::<NdArray, 3>::zeros([1, 8, 8], &device);
/// let certification = smoothed.certify(x, &config, 7)?;
/// assert!(certification.radius().unwrap_or(0.0) >= 0.0);
///
/// let wrong = DncnnConfig::new([1, 4, 4]).init::<NdArray>(&device)?;
/// let classifier = SmallCnnConfig::new([1, 8, 8], 10).init::<NdArray>(&device)?;
/// assert!(Denoised::new(wrong, classifier).is_err());
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Denoised<B, D, C> {
    denoiser: D,
    classifier: C,
    backend: PhantomData<B>,
}

impl<B: Backend, D: Denoiser<B>, C: ImageClassifier<B>> Denoised<B, D, C> {
    /// `classifier` behind `denoiser`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if the denoiser's images are not the classifier's inputs.
    pub fn new(denoiser: D, classifier: C) -> Result<Self> {
        if denoiser.image_shape() != classifier.input_shape() {
            return Err(Error::InvalidParameter {
                name: "denoiser",
                reason: format!(
                    "it takes {:?} images, the classifier {:?}",
                    denoiser.image_shape(),
                    classifier.input_shape()
                ),
            });
        }
        Ok(Self {
            denoiser,
            classifier,
            backend: PhantomData,
        })
    }

    /// The classifier's logits on the denoised batch.
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        self.classifier.forward(self.denoiser.denoise(images))
    }

    /// The denoiser.
    pub fn denoiser(&self) -> &D {
        &self.denoiser
    }

    /// The classifier.
    pub fn classifier(&self) -> &C {
        &self.classifier
    }
}

impl<B: Backend, D: Denoiser<B>, C: ImageClassifier<B>> BaseClassifier<4> for Denoised<B, D, C> {
    type Backend = B;

    fn input_shape(&self) -> &[usize] {
        self.classifier.input_shape()
    }

    fn num_classes(&self) -> usize {
        self.classifier.num_classes()
    }

    fn classify(&self, inputs: Tensor<B, 4>) -> Tensor<B, 1, Int> {
        top_class(self.forward(inputs))
    }
}
