//! Residual networks in the layouts of the paper's checkpoints: the CIFAR ResNet of
//! bearpaw/pytorch-classification (which the paper's `archs/cifar_resnet.py` copies) and
//! torchvision's ImageNet ResNet-50. Field names follow the PyTorch modules' names, so that
//! checkpoint keys map one to one (the shortcut's `downsample.0` / `downsample.1` become
//! `downsample.conv` / `downsample.bn`).

mod cifar;
mod imagenet;

pub use cifar::{CifarResNet, CifarResNetConfig};
pub use imagenet::{ResNet, ResNetConfig};

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d};
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;

use super::kernels;

/// A bias-free square convolution with "same"-style padding `k / 2`, initialised as both
/// reference implementations do: normal with std `sqrt(2 / (k * k * out_channels))`.
pub(super) fn conv<B: Backend>(
    channels: [usize; 2],
    kernel: usize,
    stride: usize,
    device: &B::Device,
) -> Conv2d<B> {
    let pad = kernel / 2;
    Conv2dConfig::new(channels, [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .with_initializer(Initializer::KaimingNormal {
            gain: std::f64::consts::SQRT_2,
            fan_out_only: true,
        })
        .init(device)
}

pub(super) fn batch_norm<B: Backend>(channels: usize, device: &B::Device) -> BatchNorm<B> {
    BatchNormConfig::new(channels).init(device)
}

/// A convolution followed by its batch norm, unless that was folded into the convolution.
pub(super) fn conv_bn<B: Backend>(
    conv: &Conv2d<B>,
    bn: &Option<BatchNorm<B>>,
    x: Tensor<B, 4>,
) -> Tensor<B, 4> {
    conv_bn_then(conv, bn, x, None, false)
}

/// `conv` then `bn`, plus `residual`, then ReLU if `relu`. With the batch norm folded, all of
/// it is one pass of the convolution kernel ([`kernels::conv2d_fused`]).
pub(super) fn conv_bn_then<B: Backend>(
    conv: &Conv2d<B>,
    bn: &Option<BatchNorm<B>>,
    x: Tensor<B, 4>,
    residual: Option<Tensor<B, 4>>,
    apply_relu: bool,
) -> Tensor<B, 4> {
    let Some(bn) = bn else {
        return kernels::conv2d_fused(conv, x, residual, apply_relu);
    };
    let y = bn.forward(kernels::conv2d(conv, x));
    let y = match residual {
        Some(r) => y + r,
        None => y,
    };
    if apply_relu { relu(y) } else { y }
}

pub(super) fn fold<B: Backend>(
    conv: Conv2d<B>,
    bn: Option<BatchNorm<B>>,
) -> (Conv2d<B>, Option<BatchNorm<B>>) {
    let Some(bn) = bn else {
        return (conv, None);
    };
    let scale = bn.gamma.val() / (bn.running_var.value() + bn.epsilon).sqrt();
    let shift = bn.beta.val() - bn.running_mean.value() * scale.clone();
    let out = scale.dims()[0];
    let weight = conv.weight.val() * scale.clone().reshape([out, 1, 1, 1]);
    let bias = match &conv.bias {
        Some(b) => b.val() * scale + shift,
        None => shift,
    };
    let folded = Conv2d {
        weight: Param::from_tensor(weight),
        bias: Some(Param::from_tensor(bias)),
        ..conv
    };
    (folded, None)
}

/// The projection shortcut: a strided 1x1 convolution and batch norm, used where a block
/// changes the shape (PyTorch's `downsample = Sequential(conv, bn)`).
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use randomized_smoothing::models::Shortcut;
///
/// let device = Default::default();
/// let s = Shortcut::<NdArray>::new([16, 32], 2, &device);
/// assert_eq!(s.forward(Tensor::zeros([1, 16, 8, 8], &device)).dims(), [1, 32, 4, 4]);
/// ```
#[derive(Module, Debug)]
pub struct Shortcut<B: Backend> {
    conv: Conv2d<B>,
    bn: Option<BatchNorm<B>>,
}

impl<B: Backend> Shortcut<B> {
    /// A shortcut from `channels[0]` to `channels[1]` channels with the given stride.
    ///
    /// # Example
    /// ```
    /// let s = randomized_smoothing::models::Shortcut::<burn::backend::NdArray>::new([4, 8], 1, &Default::default());
    /// // Burn counts BatchNorm's running mean and variance too.
    /// assert_eq!(burn::module::Module::num_params(&s), 4 * 8 + 4 * 8);
    /// ```
    pub fn new(channels: [usize; 2], stride: usize, device: &B::Device) -> Self {
        Self {
            conv: conv(channels, 1, stride, device),
            bn: Some(batch_norm(channels[1], device)),
        }
    }

    /// Applies the shortcut.
    ///
    /// # Example
    /// ```
    /// use burn::tensor::Tensor;
    /// let device = Default::default();
    /// let s = randomized_smoothing::models::Shortcut::<burn::backend::NdArray>::new([2, 3], 1, &device);
    /// assert_eq!(s.forward(Tensor::zeros([1, 2, 5, 5], &device)).dims(), [1, 3, 5, 5]);
    /// ```
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        conv_bn(&self.conv, &self.bn, x)
    }

    /// The same function in inference mode, with the batch norm folded into the
    /// convolution (see [`CifarResNet::fold_batch_norm`]).
    ///
    /// # Example
    /// ```
    /// let s = randomized_smoothing::models::Shortcut::<burn::backend::NdArray>::new([4, 8], 1, &Default::default());
    /// assert_eq!(burn::module::Module::num_params(&s.fold_batch_norm()), 4 * 8 + 8);
    /// ```
    pub fn fold_batch_norm(self) -> Self {
        let (conv, bn) = fold(self.conv, self.bn);
        Self { conv, bn }
    }
}

/// The two-convolution residual block of the CIFAR ResNet (`BasicBlock`).
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use randomized_smoothing::models::BasicBlock;
///
/// let device = Default::default();
/// let block = BasicBlock::<NdArray>::new([16, 32], 2, &device);
/// assert_eq!(block.forward(Tensor::zeros([1, 16, 32, 32], &device)).dims(), [1, 32, 16, 16]);
/// ```
#[derive(Module, Debug)]
pub struct BasicBlock<B: Backend> {
    conv1: Conv2d<B>,
    bn1: Option<BatchNorm<B>>,
    conv2: Conv2d<B>,
    bn2: Option<BatchNorm<B>>,
    downsample: Option<Shortcut<B>>,
}

impl<B: Backend> BasicBlock<B> {
    /// A block from `channels[0]` to `channels[1]` channels; the first convolution has the
    /// stride, and a projection shortcut is added when the shape changes.
    ///
    /// # Example
    /// ```
    /// let b = randomized_smoothing::models::BasicBlock::<burn::backend::NdArray>::new([16, 16], 1, &Default::default());
    /// assert_eq!(burn::module::Module::num_params(&b), 2 * 16 * 16 * 9 + 2 * 4 * 16);
    /// ```
    pub fn new(channels: [usize; 2], stride: usize, device: &B::Device) -> Self {
        let [cin, cout] = channels;
        Self {
            conv1: conv([cin, cout], 3, stride, device),
            bn1: Some(batch_norm(cout, device)),
            conv2: conv([cout, cout], 3, 1, device),
            bn2: Some(batch_norm(cout, device)),
            downsample: (stride != 1 || cin != cout)
                .then(|| Shortcut::new(channels, stride, device)),
        }
    }

    /// Applies the block: `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`.
    ///
    /// # Example
    /// ```
    /// use burn::tensor::Tensor;
    /// let device = Default::default();
    /// let b = randomized_smoothing::models::BasicBlock::<burn::backend::NdArray>::new([4, 4], 1, &device);
    /// assert_eq!(b.forward(Tensor::zeros([2, 4, 6, 6], &device)).dims(), [2, 4, 6, 6]);
    /// ```
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let shortcut = match &self.downsample {
            Some(s) => s.forward(x.clone()),
            None => x.clone(),
        };
        let y = conv_bn_then(&self.conv1, &self.bn1, x, None, true);
        conv_bn_then(&self.conv2, &self.bn2, y, Some(shortcut), true)
    }

    /// The same function in inference mode, with batch norms folded into the convolutions
    /// (see [`CifarResNet::fold_batch_norm`]).
    ///
    /// # Example
    /// ```
    /// let b = randomized_smoothing::models::BasicBlock::<burn::backend::NdArray>::new([4, 4], 1, &Default::default());
    /// assert_eq!(burn::module::Module::num_params(&b.fold_batch_norm()), 2 * (4 * 4 * 9 + 4));
    /// ```
    pub fn fold_batch_norm(self) -> Self {
        let (conv1, bn1) = fold(self.conv1, self.bn1);
        let (conv2, bn2) = fold(self.conv2, self.bn2);
        Self {
            conv1,
            bn1,
            conv2,
            bn2,
            downsample: self.downsample.map(Shortcut::fold_batch_norm),
        }
    }
}

/// The three-convolution residual block of ResNet-50 (`Bottleneck`, torchvision's v1.5:
/// the stride is on the 3x3 convolution).
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use randomized_smoothing::models::Bottleneck;
///
/// let device = Default::default();
/// // 64 input channels, 32 "planes", 128 = 4 * 32 output channels, stride 2.
/// let block = Bottleneck::<NdArray>::new(64, 32, 2, &device);
/// assert_eq!(block.forward(Tensor::zeros([1, 64, 8, 8], &device)).dims(), [1, 128, 4, 4]);
/// ```
#[derive(Module, Debug)]
pub struct Bottleneck<B: Backend> {
    conv1: Conv2d<B>,
    bn1: Option<BatchNorm<B>>,
    conv2: Conv2d<B>,
    bn2: Option<BatchNorm<B>>,
    conv3: Conv2d<B>,
    bn3: Option<BatchNorm<B>>,
    downsample: Option<Shortcut<B>>,
}

impl<B: Backend> Bottleneck<B> {
    /// Output channels per "plane" (the last 1x1 convolution expands by this factor).
    pub const EXPANSION: usize = 4;

    /// A block from `inputs` channels through `planes` to `4 * planes` channels.
    ///
    /// # Example
    /// ```
    /// let b = randomized_smoothing::models::Bottleneck::<burn::backend::NdArray>::new(16, 4, 1, &Default::default());
    /// assert!(burn::module::Module::num_params(&b) > 0);
    /// ```
    pub fn new(inputs: usize, planes: usize, stride: usize, device: &B::Device) -> Self {
        let outputs = planes * Self::EXPANSION;
        Self {
            conv1: conv([inputs, planes], 1, 1, device),
            bn1: Some(batch_norm(planes, device)),
            conv2: conv([planes, planes], 3, stride, device),
            bn2: Some(batch_norm(planes, device)),
            conv3: conv([planes, outputs], 1, 1, device),
            bn3: Some(batch_norm(outputs, device)),
            downsample: (stride != 1 || inputs != outputs)
                .then(|| Shortcut::new([inputs, outputs], stride, device)),
        }
    }

    /// Applies the block.
    ///
    /// # Example
    /// ```
    /// use burn::tensor::Tensor;
    /// let device = Default::default();
    /// let b = randomized_smoothing::models::Bottleneck::<burn::backend::NdArray>::new(8, 2, 1, &device);
    /// assert_eq!(b.forward(Tensor::zeros([1, 8, 5, 5], &device)).dims(), [1, 8, 5, 5]);
    /// ```
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let shortcut = match &self.downsample {
            Some(s) => s.forward(x.clone()),
            None => x.clone(),
        };
        let y = conv_bn_then(&self.conv1, &self.bn1, x, None, true);
        let y = conv_bn_then(&self.conv2, &self.bn2, y, None, true);
        conv_bn_then(&self.conv3, &self.bn3, y, Some(shortcut), true)
    }

    /// The same function in inference mode, with batch norms folded into the convolutions
    /// (see [`CifarResNet::fold_batch_norm`]).
    ///
    /// # Example
    /// ```
    /// let b = randomized_smoothing::models::Bottleneck::<burn::backend::NdArray>::new(8, 2, 1, &Default::default());
    /// let folded = b.fold_batch_norm();
    /// ```
    pub fn fold_batch_norm(self) -> Self {
        let (conv1, bn1) = fold(self.conv1, self.bn1);
        let (conv2, bn2) = fold(self.conv2, self.bn2);
        let (conv3, bn3) = fold(self.conv3, self.bn3);
        Self {
            conv1,
            bn1,
            conv2,
            bn2,
            conv3,
            bn3,
            downsample: self.downsample.map(Shortcut::fold_batch_norm),
        }
    }
}

/// Global average pooling `[b, c, h, w] -> [b, c]`.
pub(super) fn global_average<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 2> {
    let [b, c, _, _] = x.dims();
    x.mean_dim(3).mean_dim(2).reshape([b, c])
}
