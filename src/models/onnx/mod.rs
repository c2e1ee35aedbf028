//! Any model exported to ONNX (`torch.onnx.export`), loaded at run time and run on any Burn
//! backend, as a [`BaseClassifier`].
//!
//! [`OnnxModel::from_file`] parses the file with onnx-ir (the parser of Burn's own ONNX
//! import, read into memory rather than mapped, so that a file changed during the load
//! cannot fault the process), compiles its graph to a short program of Burn tensor
//! operations, and runs that program once on a batch of one and of two images of zeros: a
//! graph that parses but cannot run (shapes that do not fit, an operator outside the list
//! below) is refused there, with [`Error::UnsupportedOnnx`] naming the node, never
//! mid-certification. Batch norms are folded into the convolutions before them, and a
//! convolution's residual addition and ReLU are fused into it, so that on Flex and NdArray a
//! ResNet runs through the crate's kernels ([`kernels::conv2d_fused`]), in chunks of a batch
//! that keep its widest activation in cache ([`kernels::in_chunks`]), as the crate's own
//! models do.
//!
//! # What a file must be
//! One input `[batch, ...]` of float32 with a symbolic batch dimension (export with
//! `dynamic_axes={'input': {0: 'batch'}}`, or `dynamic_shapes` with `dynamo=True`; a fixed
//! batch is refused, since certification runs many batch sizes) and every other dimension
//! fixed; one output, the logits `[batch, classes]`. Normalization belongs in the graph, as
//! for every base classifier here: noise is added to what the model receives.
//!
//! # Operators
//! Written by `torch.onnx.export` with the legacy exporter (`dynamo=False`, opset 13 and
//! later) and the dynamo exporter (its default opset 18 and later), as onnx-ir 0.21 reads
//! them:
//!
//! | kind | operators |
//! | --- | --- |
//! | convolution | Conv (2-D; groups, depthwise, dilation, explicit padding), BatchNormalization (inference) |
//! | linear | Gemm (alpha = beta = 1, no transA), MatMul |
//! | elementwise | Add, Sub, Mul, Div (broadcasting), Relu, LeakyRelu, Clip (constant bounds), Sigmoid, Tanh, Exp, Erf, Sqrt, Neg, Abs, Gelu |
//! | pooling | MaxPool, AveragePool (2-D), GlobalAveragePool, ReduceMean (constant axes) |
//! | shape | Flatten, Reshape, Transpose, Concat, Unsqueeze (constant axes), Shape, Gather (on shapes), Constant, Identity, Dropout (inference) |
//! | head | Softmax |
//!
//! Anything else, `auto_pad` other than `NOTSET`/`VALID`, and tensors of a rank above 6 are
//! refused at load with the node's name.
//!
//! # What a malformed file can do
//! onnx-ir panics on some malformed graphs; the load catches the panic and answers
//! [`Error::MalformedOnnx`]. A panic caught this way cannot undo an allocation that fails:
//! a file that declares a tensor of terabytes can still abort the process.
//!
//! # Example
//! ```
//! use burn::backend::NdArray;
//! use burn::tensor::Tensor;
//! use randomized_smoothing::BaseClassifier;
//! use randomized_smoothing::models::OnnxModel;
//!
//! let device = Default::default();
//! let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/onnx/mobile.legacy.onnx");
//! let model = OnnxModel::<NdArray, 4>::from_file(path, &device)?;
//! assert_eq!(model.input_shape(), &[3, 16, 16]);
//! assert_eq!(model.num_classes(), 5);
//! let logits = model.forward(Tensor::zeros([7, 3, 16, 16], &device));
//! assert_eq!(logits.dims(), [7, 5]);
//! # Ok::<(), randomized_smoothing::Error>(())
//! ```

mod compile;
mod program;
mod vet;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorPrimitive};

use crate::error::{Error, IoOperation, Result};
use crate::models::{Normalize, kernels};
use crate::smoothing::base::{BaseClassifier, top_class};
use program::Program;

/// A model read from an ONNX file, answering the arg-max of its logits; its input has rank
/// `D` with the batch (4 for images `[batch, channels, height, width]`, 2 for feature
/// vectors).
#[derive(Clone, Debug)]
pub struct OnnxModel<B: Backend, const D: usize> {
    program: Program<B>,
    input_shape: Vec<usize>,
    num_classes: usize,
    /// Bytes of the widest tensor of the forward pass, per input: the host backends run a
    /// batch in chunks that keep it in cache ([`kernels::in_chunks`]).
    activation_bytes: usize,
    /// The per-channel normalization put in front of a graph exported without its own.
    normalize: Option<Normalize>,
    name: String,
}

impl<B: Backend, const D: usize> OnnxModel<B, D> {
    /// Reads and compiles the ONNX file at `path` for `device`; tensors stored as external
    /// data are read from the files beside it that it names.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read, [`Error::MalformedOnnx`] if it is not a
    /// valid ONNX model, [`Error::UnsupportedOnnx`] if its graph uses what the crate does not
    /// run (see the [module docs](self)) or does not take rank-`D` inputs.
    pub fn from_file(path: impl AsRef<Path>, device: &B::Device) -> Result<Self> {
        let path = path.as_ref();
        let name = path.display().to_string();
        // Read once, into memory: what is vetted is what onnx-ir parses, and a file that
        // changes meanwhile cannot fault a mapping.
        let bytes = std::fs::read(path).map_err(|e| Error::io(IoOperation::Read, path, e))?;
        let folder = path.parent().unwrap_or(Path::new("."));
        let vetted = vetted(&name, &bytes, Some(folder))?;
        drop(bytes);
        let graph = parse(&name, || {
            onnx_ir::OnnxGraphBuilder::new().parse_bytes(&vetted)
        })?;
        Self::compile(&graph, name, device)
    }

    /// As [`from_file`](Self::from_file), from the bytes of a file (which cannot name external
    /// data).
    ///
    /// # Errors
    /// As [`from_file`](Self::from_file).
    pub fn from_bytes(bytes: &[u8], device: &B::Device) -> Result<Self> {
        let name = "<bytes>".to_string();
        let vetted = vetted(&name, bytes, None)?;
        let graph = parse(&name, || {
            onnx_ir::OnnxGraphBuilder::new().parse_bytes(&vetted)
        })?;
        Self::compile(&graph, name, device)
    }

    fn compile(graph: &onnx_ir::OnnxGraph, name: String, device: &B::Device) -> Result<Self> {
        let refused = |node: Option<String>, reason: String| Error::UnsupportedOnnx {
            model: name.clone(),
            node,
            reason,
        };
        let compiled =
            compile::compile::<B>(graph, device).map_err(|r| refused(r.node, r.reason))?;
        if compiled.input_shape.len() + 1 != D {
            return Err(refused(
                None,
                format!(
                    "its input has rank {} with the batch, this model type takes rank {D}",
                    compiled.input_shape.len() + 1
                ),
            ));
        }
        let mut model = Self {
            program: compiled.program,
            input_shape: compiled.input_shape,
            num_classes: 0,
            activation_bytes: 0,
            normalize: None,
            name: name.clone(),
        };
        // A trial run at two batch sizes: every shape the graph computes is checked here,
        // and the symbolic batch is seen to be one.
        for batch in [1, 2] {
            let mut dims = vec![batch];
            dims.extend(&model.input_shape);
            let zeros =
                Tensor::<B, D>::zeros(<[usize; D]>::try_from(dims).expect("rank D"), device);
            let (out, largest) = model
                .program
                .trial(zeros.into_primitive().tensor())
                .map_err(|(node, why)| {
                    refused(
                        Some(node),
                        format!("a trial run on a batch of {batch} of zeros failed: {why}"),
                    )
                })?;
            let shape = burn::tensor::TensorMetadata::shape(&out).to_vec();
            match shape[..] {
                [b, classes] if b == batch && classes > 0 => {
                    model.num_classes = classes;
                    model.activation_bytes = largest.div_ceil(batch) * size_of::<f32>();
                }
                _ => {
                    return Err(refused(
                        None,
                        format!(
                            "on a batch of {batch} its output has shape {shape:?}, not \
                             [{batch}, classes]"
                        ),
                    ));
                }
            }
        }
        Ok(model)
    }

    /// The model behind a per-channel normalization of its images, for a graph exported
    /// without its own (its first layer expects normalized inputs): noise is then added to
    /// pixels, before `normalize`, so radii are in pixel units as for every model here.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless the inputs are images (`D` = 4) with as many
    /// channels as `normalize` has.
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use randomized_smoothing::models::{Normalize, OnnxModel};
    ///
    /// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/onnx/mobile.legacy.onnx");
    /// let model = OnnxModel::<NdArray, 4>::from_file(path, &Default::default())?
    ///     .with_normalization(Normalize::new(&[0.5; 3], &[0.25; 3])?)?;
    /// assert_eq!(model.normalization().unwrap().std(), &[0.25; 3]);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn with_normalization(mut self, normalize: Normalize) -> Result<Self> {
        if D != 4 || self.input_shape[0] != normalize.channels() {
            return Err(Error::InvalidParameter {
                name: "normalization",
                reason: format!(
                    "{} channels for inputs of shape {:?}: a normalization is per channel of \
                     images [channels, height, width]",
                    normalize.channels(),
                    self.input_shape
                ),
            });
        }
        self.normalize = Some(normalize);
        Ok(self)
    }

    /// The normalization [`with_normalization`](Self::with_normalization) put in front.
    pub fn normalization(&self) -> Option<&Normalize> {
        self.normalize.as_ref()
    }

    /// The logits `[batch, classes]` for a batch of inputs.
    pub fn forward(&self, inputs: Tensor<B, D>) -> Tensor<B, 2> {
        let inputs = match &self.normalize {
            // D is 4 here (`with_normalization` checks it).
            Some(n) => {
                let images = Tensor::<B, 4>::from_primitive(inputs.into_primitive());
                Tensor::from_primitive(n.forward(images).into_primitive())
            }
            None => inputs,
        };
        kernels::in_chunks(inputs, self.activation_bytes, |x| {
            let out = self.program.run(x.into_primitive().tensor());
            Tensor::from_primitive(TensorPrimitive::Float(out))
        })
    }

    /// Where the model came from: the file's path, or `<bytes>`.
    pub fn source(&self) -> &str {
        &self.name
    }
}

impl<B: Backend, const D: usize> BaseClassifier<D> for OnnxModel<B, D> {
    type Backend = B;

    fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    fn num_classes(&self) -> usize {
        self.num_classes
    }

    fn classify(&self, inputs: Tensor<B, D>) -> Tensor<B, 1, Int> {
        top_class(self.forward(inputs))
    }
}

/// [`vet::vet`]'s verdict as the crate's errors.
fn vetted(name: &str, bytes: &[u8], folder: Option<&Path>) -> Result<Vec<u8>> {
    vet::vet(bytes, folder).map_err(|r| {
        if r.malformed {
            Error::MalformedOnnx {
                model: name.to_string(),
                reason: r.reason,
            }
        } else {
            Error::UnsupportedOnnx {
                model: name.to_string(),
                node: r.node,
                reason: r.reason,
            }
        }
    })
}

/// onnx-ir's parse, its errors and panics as [`Error::MalformedOnnx`].
fn parse(
    name: &str,
    parse: impl FnOnce() -> std::result::Result<onnx_ir::OnnxGraph, onnx_ir::Error>,
) -> Result<onnx_ir::OnnxGraph> {
    let malformed = |reason: String| Error::MalformedOnnx {
        model: name.to_string(),
        reason,
    };
    match catch_unwind(AssertUnwindSafe(parse)) {
        Ok(Ok(graph)) => Ok(graph),
        Ok(Err(e)) => Err(malformed(e.to_string())),
        Err(panic) => Err(malformed(format!(
            "the parser failed: {}",
            program::panic_text(&*panic)
        ))),
    }
}
