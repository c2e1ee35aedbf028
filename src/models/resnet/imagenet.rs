//! torchvision's ImageNet ResNet-50, the paper's ImageNet base classifier.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::{Bottleneck, batch_norm, conv, conv_bn_then, fold, global_average};
use crate::error::{Error, Result, check_positive};
use crate::models::{ImageClassifier, Normalize, kernels};

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
        // Fresh weights draw from Burn's process-wide generator: under its one lock, so that
        // a seeded initialization or training elsewhere in the process stays reproducible.
        let _generator = crate::smoothing::lock_generator();
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
    /// [`CifarResNet::fold_batch_norm`](super::CifarResNet::fold_batch_norm)).
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
        let x = conv_bn_then(&self.conv1, &self.bn1, x, None, true);
        // Padding the max pool with zeros equals PyTorch's -inf padding: inputs are >= 0.
        let mut x = kernels::max_pool2d(&self.maxpool, x);
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
