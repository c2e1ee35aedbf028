//! Half precision for the base classifier: its weights and each noisy batch in `f16` or
//! `bf16`, while the noise is drawn and added to the image in `f32`.
//!
//! The certificate needs only the base classifier's decisions, not their precision: a half
//! precision network is another base classifier, and CERTIFY's guarantee holds for it as it
//! does for any. What changes is which classifier is certified; the crate's tests check that
//! its decisions follow the `f32` network's on all but near-tie samples.
//!
//! Fold batch norms first ([`Model::fold_batch_norm`](super::Model::fold_batch_norm)): a
//! running variance underflows in `f16`. Half precision is for LibTorch (CPU and CUDA),
//! Burn's CUDA backend and Vulkan (`f16` only); the crate's own CPU kernels on Flex read
//! `f32` ([`Precision::check_backend`]).

use std::fmt;
use std::str::FromStr;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{FloatDType, Int, Tensor};

use crate::error::{Error, Result};
use crate::smoothing::base::BaseClassifier;

/// The floating-point format the base classifier computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Single precision: the weights as trained.
    #[default]
    F32,
    /// IEEE half precision (5 exponent bits): the range of activations is limited to 65,504.
    F16,
    /// bfloat16 (8 exponent bits, `f32`'s range, 8 significant bits).
    Bf16,
}

impl Precision {
    /// Burn's float type for this precision.
    pub fn dtype(self) -> FloatDType {
        match self {
            Self::F32 => FloatDType::F32,
            Self::F16 => FloatDType::F16,
            Self::Bf16 => FloatDType::BF16,
        }
    }

    /// Checks that backend `B` computes in this precision on `device`, before a [`Cast`]
    /// would find out: Flex and NdArray compute in `f32` (the crate's CPU kernels read it),
    /// and wgpu (the `vulkan` feature) has no `bf16` type, so its shaders would fail
    /// validation, a panic inside wgpu.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the backend.
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use randomized_smoothing::models::Precision;
    ///
    /// let device = Default::default();
    /// assert!(Precision::F32.check_backend::<NdArray>(&device).is_ok());
    /// assert!(Precision::Bf16.check_backend::<NdArray>(&device).is_err());
    /// ```
    pub fn check_backend<B: Backend>(self, device: &B::Device) -> Result<()> {
        let backend = B::name(device);
        let reason = if self != Self::F32 && ["flex", "ndarray"].contains(&backend.as_str()) {
            format!("{self} runs on libtorch, cuda or vulkan; {backend} computes in f32")
        } else if self == Self::Bf16 && backend.contains("wgpu") {
            format!("bf16 does not run on {backend}: use f16")
        } else {
            return Ok(());
        };
        Err(Error::InvalidParameter {
            name: "precision",
            reason,
        })
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
        })
    }
}

impl FromStr for Precision {
    type Err = Error;

    /// `f32`, `f16` or `bf16`.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::models::Precision;
    ///
    /// assert_eq!("bf16".parse::<Precision>()?, Precision::Bf16);
    /// assert!("f8".parse::<Precision>().is_err());
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(Self::F32),
            "f16" => Ok(Self::F16),
            "bf16" => Ok(Self::Bf16),
            _ => Err(Error::InvalidParameter {
                name: "precision",
                reason: format!("unknown precision {s:?}: expected f32, f16 or bf16"),
            }),
        }
    }
}

/// Casts every float parameter and buffer of `module`.
struct CastFloats(FloatDType);

impl<B: Backend> ModuleMapper<B> for CastFloats {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let dtype = self.0;
        param.map(|tensor| tensor.cast(dtype))
    }
}

/// `module` with its float weights in `precision` (unchanged for [`Precision::F32`]).
pub fn cast_weights<B: Backend, M: Module<B>>(module: M, precision: Precision) -> M {
    if precision == Precision::F32 {
        return module;
    }
    module.map(&mut CastFloats(precision.dtype()))
}

/// A base classifier that computes in `precision`: each batch of noisy inputs, drawn and
/// perturbed in `f32`, is cast before the wrapped classifier sees it. Build it with
/// [`Cast::module`] from a Burn module (its weights are cast too), or with [`Cast::inputs`]
/// around a classifier whose modules were cast with [`cast_weights`].
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use randomized_smoothing::models::{Cast, Precision, SmallCnnConfig};
/// use randomized_smoothing::BaseClassifier;
///
/// let model = SmallCnnConfig::new([1, 8, 8], 10).init::<NdArray>(&Default::default())?;
/// // f32 changes nothing; half precision needs LibTorch or CUDA.
/// let same = Cast::module(model, Precision::F32);
/// assert_eq!((same.num_classes(), same.precision()), (10, Precision::F32));
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Cast<C> {
    inner: C,
    precision: Precision,
}

impl<C> Cast<C> {
    /// `model` with its weights and inputs in `precision`.
    pub fn module<B: Backend>(model: C, precision: Precision) -> Self
    where
        C: Module<B>,
    {
        Self {
            inner: cast_weights(model, precision),
            precision,
        }
    }

    /// `classifier` with its inputs in `precision`; its weights must already be (see
    /// [`cast_weights`]), or the backend computes in the wider of the two types (LibTorch) or
    /// refuses to mix them.
    pub fn inputs(classifier: C, precision: Precision) -> Self {
        Self {
            inner: classifier,
            precision,
        }
    }

    /// The precision of the inputs.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The wrapped classifier.
    pub fn inner(&self) -> &C {
        &self.inner
    }
}

impl<const D: usize, C: BaseClassifier<D>> BaseClassifier<D> for Cast<C> {
    type Backend = C::Backend;

    fn input_shape(&self) -> &[usize] {
        self.inner.input_shape()
    }

    fn num_classes(&self) -> usize {
        self.inner.num_classes()
    }

    fn classify(&self, inputs: Tensor<Self::Backend, D>) -> Tensor<Self::Backend, 1, Int> {
        match self.precision {
            Precision::F32 => self.inner.classify(inputs),
            p => self.inner.classify(inputs.cast(p.dtype())),
        }
    }
}
