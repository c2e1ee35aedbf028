//! Architectures by name, as the paper's `arch` strings, and a model chosen at run time.

use std::fmt;
use std::str::FromStr;

use burn::config::Config;
use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::{
    CifarResNet, CifarResNetConfig, ImageClassifier, ResNet, ResNetConfig, SmallCnn, SmallCnnConfig,
};
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
        self.config(classes).init(device)
    }

    /// The configuration of this network with `classes` outputs and the paper's
    /// normalization (CIFAR-10's or ImageNet's).
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::models::Architecture;
    ///
    /// let config = Architecture::CIFAR_RESNET110.config(10);
    /// assert_eq!(config.arch(), "cifar_resnet110");
    /// assert_eq!(config.input_shape(), [3, 32, 32]);
    /// ```
    pub fn config(&self, classes: usize) -> ModelConfig {
        match *self {
            Self::CifarResNet { depth } => {
                ModelConfig::CifarResNet(CifarResNetConfig::new(depth).with_classes(classes))
            }
            Self::ResNet50 => ModelConfig::ResNet(ResNetConfig::new().with_classes(classes)),
        }
    }
}

/// The configuration of any of the crate's image models: what a model file written by
/// [`save_model_with_card`](super::save_model_with_card) stores beside the weights, in Burn's
/// `Config` serialization (JSON), so that the file alone rebuilds its model.
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use burn::config::Config;
/// use randomized_smoothing::models::{ImageClassifier, ModelConfig, SmallCnnConfig};
///
/// let config = ModelConfig::SmallCnn(SmallCnnConfig::new([1, 8, 8], 10).with_filters(16));
/// let text = serde_json::to_string(&config).unwrap();
/// let back: ModelConfig = serde_json::from_str(&text).unwrap();
/// assert_eq!(back.arch(), "small_cnn");
/// assert_eq!(back.init::<NdArray>(&Default::default())?.input_shape(), &[1, 8, 8]);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Config, Debug)]
pub enum ModelConfig {
    /// A CIFAR ResNet.
    CifarResNet(CifarResNetConfig),
    /// An ImageNet ResNet.
    ResNet(ResNetConfig),
    /// The small CNN.
    SmallCnn(SmallCnnConfig),
}

impl ModelConfig {
    /// Builds the model with fresh weights.
    ///
    /// # Errors
    /// Those of the architecture's own `init`: [`Error::InvalidParameter`] or
    /// [`Error::ZeroCount`] for a configuration it cannot build.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<Model<B>> {
        Ok(match self {
            Self::CifarResNet(c) => Model::CifarResNet(c.init(device)?),
            Self::ResNet(c) => Model::ResNet(c.init(device)?),
            Self::SmallCnn(c) => Model::SmallCnn(c.init(device)?),
        })
    }

    /// The architecture's name as the command line takes it: `small_cnn`, `cifar_resnet<depth>`,
    /// `resnet50`, or `resnet` for an ImageNet ResNet of other stages or width.
    pub fn arch(&self) -> String {
        match self {
            Self::CifarResNet(c) => format!("cifar_resnet{}", c.depth),
            Self::ResNet(c) if c.layers == [3, 4, 6, 3] && c.width == 64 => "resnet50".into(),
            Self::ResNet(_) => "resnet".into(),
            Self::SmallCnn(_) => "small_cnn".into(),
        }
    }

    /// Shape of one input image, `[channels, height, width]`.
    pub fn input_shape(&self) -> [usize; 3] {
        match self {
            Self::CifarResNet(_) => [3, 32, 32],
            Self::ResNet(c) => [3, c.image_size, c.image_size],
            Self::SmallCnn(c) => c.input_shape,
        }
    }

    /// The same configuration with another normalization (per-channel means and standard
    /// deviations of the first layer; one value stands for every channel).
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::models::Architecture;
    ///
    /// let config = Architecture::CIFAR_RESNET20.config(10).with_normalization(vec![0.5], vec![0.25]);
    /// assert!(config.init::<burn::backend::NdArray>(&Default::default()).is_ok());
    /// ```
    pub fn with_normalization(self, mean: Vec<f32>, std: Vec<f32>) -> Self {
        match self {
            Self::CifarResNet(c) => Self::CifarResNet(c.with_mean(mean).with_std(std)),
            Self::ResNet(c) => Self::ResNet(c.with_mean(mean).with_std(std)),
            Self::SmallCnn(c) => Self::SmallCnn(c.with_mean(mean).with_std(std)),
        }
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        match self {
            Self::CifarResNet(c) => c.classes,
            Self::ResNet(c) => c.classes,
            Self::SmallCnn(c) => c.classes,
        }
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
