//! Models: the paper's architectures and a small CPU-sized CNN, each with per-channel
//! normalization as its first layer (so noise is added in pixel space and radii are in
//! pixel units), and loaders for PyTorch checkpoints and Burn's own format.
//!
//! | what | type | input |
//! | --- | --- | --- |
//! | CIFAR ResNet of depth 6k+2 (`cifar_resnet20`, `cifar_resnet110`) | [`CifarResNet`] | 3x32x32 |
//! | ImageNet ResNet-50, torchvision layout (`resnet50`) | [`ResNet`] | 3x224x224 |
//! | small CNN for digits / MNIST | [`SmallCnn`] | 1x8x8, 1x28x28, ... |
//! | any of the above, chosen at run time | [`Model`] | |
//! | DnCNN denoiser, for denoised smoothing | [`Dncnn`] | any image |
//! | a classifier behind a denoiser | [`Denoised`] | the classifier's |
//! | any model exported to ONNX (feature `onnx`) | `OnnxModel` | the file's |
//!
//! Every classifier here is a [`crate::BaseClassifier`] of rank 4, so it goes
//! straight into a [`SmoothedClassifier`](crate::SmoothedClassifier).
//! [`PytorchCheckpoint`] reads the checkpoints the paper's code writes (both PyTorch
//! serialization formats); [`save_model`] and [`load_model`] keep the crate's own models.
//!
//! # Example
//! ```
//! use burn::backend::NdArray;
//! use burn::tensor::Tensor;
//! use randomized_smoothing::models::{Architecture, ImageClassifier};
//!
//! let device = Default::default();
//! let model = "cifar_resnet20".parse::<Architecture>()?.init::<NdArray>(10, &device)?;
//! assert_eq!(model.input_shape(), &[3, 32, 32]);
//! let logits = model.forward(Tensor::zeros([2, 3, 32, 32], &device));
//! assert_eq!(logits.dims(), [2, 10]);
//! # Ok::<(), randomized_smoothing::Error>(())
//! ```

mod arch;
mod denoiser;
mod files;
pub mod kernels;
mod normalize;
#[cfg(feature = "onnx")]
pub mod onnx;
mod precision;
#[cfg(feature = "pytorch")]
mod pytorch;
mod resnet;
mod small_cnn;
#[cfg(feature = "pytorch")]
mod zip_crc;

pub use arch::{Architecture, Model, ModelConfig};
pub use denoiser::{Denoised, Denoiser, Dncnn, DncnnConfig};
pub use files::{
    DenoiserCard, DenoiserTraining, ModelCard, TrainingSummary, load_denoiser, load_model,
    load_model_with_card, read_denoiser_card, read_model_card, save_denoiser, save_model,
    save_model_with_card, transfer, weights_digest,
};
pub use normalize::Normalize;
#[cfg(feature = "onnx")]
pub use onnx::OnnxModel;
pub use precision::{Cast, Precision, cast_weights};
#[cfg(feature = "pytorch")]
pub use pytorch::{PytorchCheckpoint, pytorch_keys};
pub use resnet::{
    BasicBlock, Bottleneck, CifarResNet, CifarResNetConfig, ResNet, ResNetConfig, Shortcut,
};
pub use small_cnn::{SmallCnn, SmallCnnConfig};

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use crate::smoothing::base::{BaseClassifier, top_class};

/// A model that maps a batch of images `[batch, channels, height, width]` with pixels in
/// [0, 1] to logits `[batch, classes]`.
///
/// # Contract
/// [`input_shape`](Self::input_shape) is the `[channels, height, width]` the model takes
/// and [`num_classes`](Self::num_classes) the width of its logits. Normalization belongs
/// inside [`forward`](Self::forward), so that randomized smoothing, which adds noise to what
/// `forward` receives, works in pixel space.
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::{Int, Tensor};
/// use randomized_smoothing::models::{ImageClassifier, SmallCnnConfig};
///
/// fn top<B: burn::tensor::backend::Backend, M: ImageClassifier<B>>(m: &M, x: Tensor<B, 4>) -> Tensor<B, 2, Int> {
///     m.forward(x).argmax(1)
/// }
/// let device = Default::default();
/// let m = SmallCnnConfig::new([1, 8, 8], 3).init::<NdArray>(&device)?;
/// assert_eq!(top(&m, Tensor::zeros([4, 1, 8, 8], &device)).dims(), [4, 1]);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub trait ImageClassifier<B: Backend>: Module<B> {
    /// Logits for a batch of images.
    fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2>;

    /// Shape of one input image, `[channels, height, width]`.
    fn input_shape(&self) -> &[usize];

    /// Number of classes (width of the logits).
    fn num_classes(&self) -> usize;
}

/// The crate's image models are base classifiers answering the arg-max of their logits.
/// (A blanket impl over `ImageClassifier` would collide with `LogitsClassifier`'s; your own
/// models go through `LogitsClassifier`.)
macro_rules! image_base_classifier {
    ($($model:ident),*) => {$(
        impl<B: Backend> BaseClassifier<4> for $model<B> {
            type Backend = B;

            fn input_shape(&self) -> &[usize] {
                ImageClassifier::input_shape(self)
            }

            fn num_classes(&self) -> usize {
                ImageClassifier::num_classes(self)
            }

            fn classify(&self, inputs: Tensor<B, 4>) -> Tensor<B, 1, Int> {
                top_class(self.forward(inputs))
            }
        }
    )*};
}

image_base_classifier!(CifarResNet, ResNet, SmallCnn, Model);
