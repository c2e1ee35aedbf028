//! The CIFAR ResNet of depth 6k + 2 in the layout of bearpaw/pytorch-classification, which
//! the paper's `archs/cifar_resnet.py` copies.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear, LinearConfig};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::{BasicBlock, batch_norm, conv, conv_bn_then, fold, global_average};
use crate::error::{Error, Result, check_positive};
use crate::models::{ImageClassifier, Normalize, kernels};

/// Input of the CIFAR ResNet: its final 8x8 average pool assumes 32x32 images.
const CIFAR_INPUT: [usize; 3] = [3, 32, 32];

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
        // Fresh weights draw from Burn's process-wide generator: under its one lock, so that
        // a seeded initialization or training elsewhere in the process stays reproducible.
        let _generator = crate::smoothing::lock_generator();
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
    /// unfolded network's to float rounding (`tests/it/models.rs` checks PyTorch's to 1e-4);
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
        // The widest activation: 16 channels of 32 x 32 f32 (or its 32 x 16 x 16 and 64 x 8 x
        // 8), per image.
        let widest = 16 * 32 * 32 * 4;
        kernels::in_chunks(images, widest, |images| {
            let x = self.normalize.forward(images);
            let mut x = conv_bn_then(&self.conv1, &self.bn1, x, None, true);
            for block in self.layer1.iter().chain(&self.layer2).chain(&self.layer3) {
                x = block.forward(x);
            }
            self.fc.forward(global_average(x))
        })
    }

    fn input_shape(&self) -> &[usize] {
        &CIFAR_INPUT
    }

    fn num_classes(&self) -> usize {
        self.classes
    }
}
