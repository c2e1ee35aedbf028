//! Architectures by name, as the paper's `arch` strings, and a model chosen at run time.

use std::fmt;
use std::str::FromStr;

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::{CifarResNet, CifarResNetConfig, ImageClassifier, ResNet, ResNetConfig, SmallCnn};
use crate::error::{Error, Result};

/// An architecture of the paper's code, named as its `arch` argument and checkpoint field:
/// `cifar_resnet20`, `cifar_resnet110` (any `cifar_resnet<6k+2>` is accepted) or `resnet50`.
/// The architecture also fixes the normalization: CIFAR-10's for the CIFAR ResNets,
/// ImageNet's for ResNet-50.
///
/// # Example
/// ```
/// use randomized_smoothing::models::Architecture;
///
/// let arch: Architecture = "cifar_resnet110".parse()?;
/// assert_eq!(arch, Architecture::CifarResNet { depth: 110 });
/// assert_eq!(arch.to_string(), "cifar_resnet110");
/// assert_eq!(arch.input_shape(), [3, 32, 32]);
/// assert!("resnet18".parse::<Architecture>().is_err());
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Architecture {
    /// The CIFAR ResNet of the given depth (`6k + 2`).
    CifarResNet {
        /// Number of layers with weights.
        depth: usize,
    },
    /// torchvision's ImageNet ResNet-50.
    ResNet50,
}

impl Architecture {
    /// The paper's CIFAR-10 base classifier at small scale.
    pub const CIFAR_RESNET20: Self = Self::CifarResNet { depth: 20 };
    /// The paper's CIFAR-10 base classifier.
    pub const CIFAR_RESNET110: Self = Self::CifarResNet { depth: 110 };

    /// Shape of one input image.
    ///
    /// # Example
    /// ```
    /// assert_eq!(randomized_smoothing::models::Architecture::ResNet50.input_shape(), [3, 224, 224]);
    /// ```
    pub fn input_shape(&self) -> [usize; 3] {
        match self {
            Self::CifarResNet { .. } => [3, 32, 32],
            Self::ResNet50 => [3, 224, 224],
        }
    }

    /// The number of classes of the data set the paper trained it on (10 or 1000).
    ///
    /// # Example
    /// ```
    /// assert_eq!(randomized_smoothing::models::Architecture::CIFAR_RESNET20.default_classes(), 10);
    /// ```
    pub fn default_classes(&self) -> usize {
        match self {
            Self::CifarResNet { .. } => 10,
            Self::ResNet50 => 1000,
        }
    }

    /// Builds the network with `classes` outputs and fresh weights.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a CIFAR depth that is not `6k + 2`;
    /// [`Error::ZeroCount`] for zero classes.
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use randomized_smoothing::models::{Architecture, ImageClassifier};
    ///
    /// let model = Architecture::CIFAR_RESNET20.init::<NdArray>(10, &Default::default())?;
    /// assert_eq!(model.num_classes(), 10);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn init<B: Backend>(&self, classes: usize, device: &B::Device) -> Result<Model<B>> {
        Ok(match *self {
            Self::CifarResNet { depth } => Model::CifarResNet(
                CifarResNetConfig::new(depth)
                    .with_classes(classes)
                    .init(device)?,
            ),
            Self::ResNet50 => {
                Model::ResNet(ResNetConfig::new().with_classes(classes).init(device)?)
            }
        })
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CifarResNet { depth } => write!(f, "cifar_resnet{depth}"),
            Self::ResNet50 => f.write_str("resnet50"),
        }
    }
}

impl FromStr for Architecture {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        if name == "resnet50" {
            return Ok(Self::ResNet50);
        }
        let depth = name
            .strip_prefix("cifar_resnet")
            .and_then(|d| d.parse::<usize>().ok())
            .filter(|d| *d >= 8 && (d - 2).is_multiple_of(6))
            .ok_or_else(|| Error::UnknownArchitecture(name.to_string()))?;
        Ok(Self::CifarResNet { depth })
    }
}

/// One of the crate's image models, chosen at run time (from a checkpoint's `arch` or a
/// command-line flag).
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use randomized_smoothing::models::{ImageClassifier, Model, SmallCnnConfig};
///
/// let device = Default::default();
/// let model = Model::SmallCnn(SmallCnnConfig::new([1, 8, 8], 10).init::<NdArray>(&device)?);
/// assert_eq!(model.forward(Tensor::zeros([1, 1, 8, 8], &device)).dims(), [1, 10]);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
// One model is built per run and moved rarely: the variants' size difference is harmless.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Model<B: Backend> {
    /// A CIFAR ResNet.
    CifarResNet(CifarResNet<B>),
    /// An ImageNet ResNet.
    ResNet(ResNet<B>),
    /// The small CNN.
    SmallCnn(SmallCnn<B>),
}

impl<B: Backend> Model<B> {
    /// The same model for inference, with batch norms folded into the convolutions (see
    /// [`CifarResNet::fold_batch_norm`]); the small CNN has none and is returned as is.
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use randomized_smoothing::models::Architecture;
    ///
    /// let model = Architecture::CIFAR_RESNET20.init::<NdArray>(10, &Default::default())?.fold_batch_norm();
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn fold_batch_norm(self) -> Self {
        match self {
            Self::CifarResNet(m) => Self::CifarResNet(m.fold_batch_norm()),
            Self::ResNet(m) => Self::ResNet(m.fold_batch_norm()),
            Self::SmallCnn(m) => Self::SmallCnn(m),
        }
    }
}

impl<B: Backend> ImageClassifier<B> for Model<B> {
    fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        match self {
            Self::CifarResNet(m) => m.forward(images),
            Self::ResNet(m) => m.forward(images),
            Self::SmallCnn(m) => m.forward(images),
        }
    }

    fn input_shape(&self) -> &[usize] {
        match self {
            Self::CifarResNet(m) => m.input_shape(),
            Self::ResNet(m) => m.input_shape(),
            Self::SmallCnn(m) => m.input_shape(),
        }
    }

    fn num_classes(&self) -> usize {
        match self {
            Self::CifarResNet(m) => m.num_classes(),
            Self::ResNet(m) => m.num_classes(),
            Self::SmallCnn(m) => m.num_classes(),
        }
    }
}
