//! Residual networks in the layouts of the paper's checkpoints: the CIFAR ResNet of
//! bearpaw/pytorch-classification (which the paper's `archs/cifar_resnet.py` copies) and
//! torchvision's ImageNet ResNet-50. Field names follow the PyTorch modules' names, so that
//! checkpoint keys map one to one (the shortcut's `downsample.0` / `downsample.1` become
//! `downsample.conv` / `downsample.bn`).

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;

use super::{ImageClassifier, Normalize};
use crate::error::{Error, Result, check_positive};

/// Input of the CIFAR ResNet: its final 8x8 average pool assumes 32x32 images.
const CIFAR_INPUT: [usize; 3] = [3, 32, 32];

/// A bias-free square convolution with "same"-style padding `k / 2`, initialised as both
/// reference implementations do: normal with std `sqrt(2 / (k * k * out_channels))`.
fn conv<B: Backend>(
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

fn batch_norm<B: Backend>(channels: usize, device: &B::Device) -> BatchNorm<B> {
    BatchNormConfig::new(channels).init(device)
}

/// A convolution followed by its batch norm, unless that was folded into the convolution.
fn conv_bn<B: Backend>(
    conv: &Conv2d<B>,
    bn: &Option<BatchNorm<B>>,
    x: Tensor<B, 4>,
) -> Tensor<B, 4> {
    let y = super::kernels::conv2d(conv, x);
    match bn {
        Some(bn) => bn.forward(y),
        None => y,
    }
}

/// Folds an inference-mode batch norm into the convolution before it:
/// `bn(conv(x)) = conv'(x)` with weights scaled by `gamma / sqrt(var + eps)` per output
/// channel and bias `beta - mean * gamma / sqrt(var + eps)` (plus the scaled old bias).
fn fold<B: Backend>(
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
        let y = relu(conv_bn(&self.conv1, &self.bn1, x));
        let y = conv_bn(&self.conv2, &self.bn2, y);
        relu(y + shortcut)
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
        let y = relu(conv_bn(&self.conv1, &self.bn1, x));
        let y = relu(conv_bn(&self.conv2, &self.bn2, y));
        let y = conv_bn(&self.conv3, &self.bn3, y);
        relu(y + shortcut)
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
fn global_average<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 2> {
    let [b, c, _, _] = x.dims();
    x.mean_dim(3).mean_dim(2).reshape([b, c])
}

/// Configuration of [`CifarResNet`].
///
/// # Example
/// ```
/// use randomized_smoothing::models::CifarResNetConfig;
///
/// let config = CifarResNetConfig::new(110);
/// assert_eq!(config.blocks_per_stage()?, 18);
/// assert!(CifarResNetConfig::new(21).blocks_per_stage().is_err());
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Config, Debug)]
pub struct CifarResNetConfig {
    /// Depth `6k + 2` (20, 32, 44, 56, 110, ...): `k` basic blocks in each of three stages.
    pub depth: usize,
    /// Number of classes.
    #[config(default = 10)]
    pub classes: usize,
    /// Per-channel means of the normalization layer (CIFAR-10's by default).
    #[config(default = "vec![0.4914, 0.4822, 0.4465]")]
    pub mean: Vec<f32>,
    /// Per-channel standard deviations of the normalization layer (CIFAR-10's by default).
    #[config(default = "vec![0.2023, 0.1994, 0.2010]")]
    pub std: Vec<f32>,
}

impl CifarResNetConfig {
    /// Blocks per stage, `(depth - 2) / 6`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless the depth is `6k + 2` with `k >= 1`.
    ///
    /// # Example
    /// ```
    /// assert_eq!(randomized_smoothing::models::CifarResNetConfig::new(20).blocks_per_stage()?, 3);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn blocks_per_stage(&self) -> Result<usize> {
        if self.depth < 8 || !(self.depth - 2).is_multiple_of(6) {
            return Err(Error::InvalidParameter {
                name: "depth",
                reason: format!(
                    "{} is not 6k + 2 with k >= 1 (20, 32, 44, 56, 110, ...)",
                    self.depth
                ),
            });
        }
        Ok((self.depth - 2) / 6)
    }

    /// Builds the network on `device`.
    ///
    /// # Errors
    /// As [`blocks_per_stage`](Self::blocks_per_stage); [`Error::ZeroCount`] for zero
    /// classes; [`Error::InvalidParameter`] for a normalization that is not 3 channels.
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use randomized_smoothing::models::CifarResNetConfig;
    ///
    /// let net = CifarResNetConfig::new(20).init::<NdArray>(&Default::default())?;
    /// // PyTorch's 272,474 parameters, plus 1,568 BatchNorm running statistics.
    /// assert_eq!(burn::module::Module::num_params(&net), 272_474 + 1_568);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<CifarResNet<B>> {
        let blocks = self.blocks_per_stage()?;
        check_positive("classes", self.classes as u64)?;
        let normalize = Normalize::for_channels(&self.mean, &self.std, 3)?;
        let stage = |cin: usize, cout: usize, stride: usize| -> Vec<BasicBlock<B>> {
            (0..blocks)
                .map(|i| {
                    if i == 0 {
                        BasicBlock::new([cin, cout], stride, device)
                    } else {
                        BasicBlock::new([cout, cout], 1, device)
                    }
                })
                .collect()
        };
        Ok(CifarResNet {
            normalize,
            conv1: conv([3, 16], 3, 1, device),
            bn1: Some(batch_norm(16, device)),
            layer1: stage(16, 16, 1),
            layer2: stage(16, 32, 2),
            layer3: stage(32, 64, 2),
            fc: LinearConfig::new(64, self.classes).init(device),
            classes: self.classes,
        })
    }
}

/// The paper's CIFAR-10 network (`cifar_resnet20`, `cifar_resnet110`): normalization, a 3x3
/// stem with 16 channels, three stages of basic blocks with 16, 32 and 64 channels (stride 2
/// at the start of the last two), global average pooling over the final 8x8 map and a
/// linear head. Takes 3x32x32 images.
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use randomized_smoothing::models::{CifarResNetConfig, ImageClassifier};
///
/// let device = Default::default();
/// let net = CifarResNetConfig::new(20).init::<NdArray>(&device)?;
/// assert_eq!(net.forward(Tensor::zeros([2, 3, 32, 32], &device)).dims(), [2, 10]);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Module, Debug)]
pub struct CifarResNet<B: Backend> {
    normalize: Normalize,
    conv1: Conv2d<B>,
    bn1: Option<BatchNorm<B>>,
    layer1: Vec<BasicBlock<B>>,
    layer2: Vec<BasicBlock<B>>,
    layer3: Vec<BasicBlock<B>>,
    fc: Linear<B>,
    classes: usize,
}

impl<B: Backend> CifarResNet<B> {
    /// The same network for inference, faster: each batch norm, in inference mode (running
    /// statistics), is folded into the convolution before it. The logits agree with the
    /// unfolded network's to float rounding (`tests/models.rs` checks PyTorch's to 1e-4);
    /// on NdArray the forward pass runs about 20% faster. The folded network has no batch
    /// norm to train and no longer matches PyTorch checkpoints' keys: fold after loading.
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use burn::tensor::{Distribution, Tensor};
    /// use randomized_smoothing::models::{CifarResNetConfig, ImageClassifier};
    ///
    /// let device = Default::default();
    /// let net = CifarResNetConfig::new(20).init::<NdArray>(&device)?;
    /// let x = Tensor::<NdArray, 4>::random([2, 3, 32, 32], Distribution::Default, &device);
    /// let before = net.forward(x.clone());
    /// let after = net.fold_batch_norm().forward(x);
    /// assert!((before - after).abs().max().into_scalar() < 1e-4);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn fold_batch_norm(self) -> Self {
        let (conv1, bn1) = fold(self.conv1, self.bn1);
        let blocks = |layer: Vec<BasicBlock<B>>| {
            layer.into_iter().map(BasicBlock::fold_batch_norm).collect()
        };
        Self {
            normalize: self.normalize,
            conv1,
            bn1,
            layer1: blocks(self.layer1),
            layer2: blocks(self.layer2),
            layer3: blocks(self.layer3),
            fc: self.fc,
            classes: self.classes,
        }
    }
}

impl<B: Backend> ImageClassifier<B> for CifarResNet<B> {
    fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let x = self.normalize.forward(images);
        let mut x = relu(conv_bn(&self.conv1, &self.bn1, x));
        for block in self.layer1.iter().chain(&self.layer2).chain(&self.layer3) {
            x = block.forward(x);
        }
        self.fc.forward(global_average(x))
    }

    fn input_shape(&self) -> &[usize] {
        &CIFAR_INPUT
    }

    fn num_classes(&self) -> usize {
        self.classes
    }
}

/// Configuration of [`ResNet`]: torchvision's ResNet-50 by default, with knobs for smaller
/// variants of the same layout (fewer channels, fewer classes, smaller images).
///
/// # Example
/// ```
/// use randomized_smoothing::models::ResNetConfig;
///
/// let resnet50 = ResNetConfig::new();
/// assert_eq!((resnet50.layers, resnet50.width, resnet50.classes), ([3, 4, 6, 3], 64, 1000));
/// ```
#[derive(Config, Debug)]
pub struct ResNetConfig {
    /// Bottleneck blocks in each of the four stages.
    #[config(default = "[3, 4, 6, 3]")]
    pub layers: [usize; 4],
    /// Channels of the stem; stage `i` has `width * 2^i` planes and `4 * width * 2^i` outputs.
    #[config(default = 64)]
    pub width: usize,
    /// Number of classes.
    #[config(default = 1000)]
    pub classes: usize,
    /// Height and width of the (square) input images.
    #[config(default = 224)]
    pub image_size: usize,
    /// Per-channel means of the normalization layer (ImageNet's by default).
    #[config(default = "vec![0.485, 0.456, 0.406]")]
    pub mean: Vec<f32>,
    /// Per-channel standard deviations of the normalization layer (ImageNet's by default).
    #[config(default = "vec![0.229, 0.224, 0.225]")]
    pub std: Vec<f32>,
}

impl ResNetConfig {
    /// Builds the network on `device`.
    ///
    /// # Errors
    /// [`Error::ZeroCount`] for a zero stage, width or class count;
    /// [`Error::InvalidParameter`] for images smaller than 32x32 (five halvings) or a
    /// normalization that is not 3 channels.
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use randomized_smoothing::models::ResNetConfig;
    ///
    /// let net = ResNetConfig::new().with_width(8).with_classes(10).with_image_size(64)
    ///     .init::<NdArray>(&Default::default())?;
    /// assert!(burn::module::Module::num_params(&net) < 500_000);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<ResNet<B>> {
        for n in self.layers {
            check_positive("blocks per stage", n as u64)?;
        }
        check_positive("width", self.width as u64)?;
        check_positive("classes", self.classes as u64)?;
        if self.image_size < 32 {
            return Err(Error::InvalidParameter {
                name: "image_size",
                reason: format!(
                    "{} is below 32, the network's total stride",
                    self.image_size
                ),
            });
        }
        let normalize = Normalize::for_channels(&self.mean, &self.std, 3)?;
        let mut inputs = self.width;
        let mut stages = Vec::with_capacity(4);
        for (i, &n) in self.layers.iter().enumerate() {
            let planes = self.width << i;
            let stride = if i == 0 { 1 } else { 2 };
            let blocks: Vec<Bottleneck<B>> = (0..n)
                .map(|b| {
                    let block =
                        Bottleneck::new(inputs, planes, if b == 0 { stride } else { 1 }, device);
                    inputs = planes * Bottleneck::<B>::EXPANSION;
                    block
                })
                .collect();
            stages.push(blocks);
        }
        let [layer1, layer2, layer3, layer4]: [Vec<Bottleneck<B>>; 4] =
            stages.try_into().expect("four stages");
        Ok(ResNet {
            normalize,
            conv1: conv([3, self.width], 7, 2, device),
            bn1: Some(batch_norm(self.width, device)),
            maxpool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            layer1,
            layer2,
            layer3,
            layer4,
            fc: LinearConfig::new(inputs, self.classes).init(device),
            input_shape: vec![3, self.image_size, self.image_size],
            classes: self.classes,
        })
    }
}

/// ImageNet ResNet in torchvision's layout (ResNet-50 by default, `resnet50` in the paper's
/// code): normalization, a 7x7 stride-2 stem, 3x3 stride-2 max pooling, four stages of
/// bottleneck blocks, global average pooling and a linear head.
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use randomized_smoothing::models::{ImageClassifier, ResNetConfig};
///
/// let device = Default::default();
/// let net = ResNetConfig::new().with_width(4).with_classes(5).with_image_size(32).init::<NdArray>(&device)?;
/// assert_eq!(net.forward(Tensor::zeros([2, 3, 32, 32], &device)).dims(), [2, 5]);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Module, Debug)]
pub struct ResNet<B: Backend> {
    normalize: Normalize,
    conv1: Conv2d<B>,
    bn1: Option<BatchNorm<B>>,
    maxpool: MaxPool2d,
    layer1: Vec<Bottleneck<B>>,
    layer2: Vec<Bottleneck<B>>,
    layer3: Vec<Bottleneck<B>>,
    layer4: Vec<Bottleneck<B>>,
    fc: Linear<B>,
    input_shape: Vec<usize>,
    classes: usize,
}

impl<B: Backend> ResNet<B> {
    /// The same network for inference, with batch norms folded into the convolutions (see
    /// [`CifarResNet::fold_batch_norm`]).
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use randomized_smoothing::models::ResNetConfig;
    ///
    /// let net = ResNetConfig::new().with_width(4).with_classes(5).with_image_size(32)
    ///     .init::<NdArray>(&Default::default())?;
    /// let folded = net.fold_batch_norm();
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn fold_batch_norm(self) -> Self {
        let (conv1, bn1) = fold(self.conv1, self.bn1);
        let blocks = |layer: Vec<Bottleneck<B>>| {
            layer.into_iter().map(Bottleneck::fold_batch_norm).collect()
        };
        Self {
            normalize: self.normalize,
            conv1,
            bn1,
            maxpool: self.maxpool,
            layer1: blocks(self.layer1),
            layer2: blocks(self.layer2),
            layer3: blocks(self.layer3),
            layer4: blocks(self.layer4),
            fc: self.fc,
            input_shape: self.input_shape,
            classes: self.classes,
        }
    }
}

impl<B: Backend> ImageClassifier<B> for ResNet<B> {
    fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let x = self.normalize.forward(images);
        let x = relu(conv_bn(&self.conv1, &self.bn1, x));
        // Padding the max pool with zeros equals PyTorch's -inf padding: inputs are >= 0.
        let mut x = super::kernels::max_pool2d(&self.maxpool, x);
        for block in self
            .layer1
            .iter()
            .chain(&self.layer2)
            .chain(&self.layer3)
            .chain(&self.layer4)
        {
            x = block.forward(x);
        }
        self.fc.forward(global_average(x))
    }

    fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    fn num_classes(&self) -> usize {
        self.classes
    }
}
