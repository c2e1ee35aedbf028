//! Host-memory kernels for the two layers the crate's models spend most of their CPU time in:
//! Burn's [`Conv2d`](burn::nn::conv::Conv2d) and [`MaxPool2d`](burn::nn::pool::MaxPool2d).
//!
//! A certificate is 100,100 forward passes, so the forward pass *is* the cost of
//! certification. On Flex, Burn's default pure-Rust CPU backend, convolutions took about 80%
//! of a ResNet's forward pass at 17-50 GFLOP/s and a 2x2 max pool 20 ns per output on the
//! 2-core test machine; [`conv2d`] runs the same layers at 110-190 GFLOP/s and [`max_pool2d`]
//! several times faster (the CNNs' 2x2 pooling about 50 times), which takes the CIFAR
//! ResNets from about half of PyTorch's speed to past it (docs/benchmarks.md).
//!
//! Each function reads the layer's own fields and applies the kernel only where it applies
//! and pays: f32 tensors of a backend whose tensors live in host memory (Flex, NdArray), in
//! the configurations the kernel covers. Everything else, and every autodiff backend
//! (training, attacks) whose backward pass Burn's own operations provide, goes through the
//! layer's `forward` unchanged. The models call these functions in place of `forward`; users'
//! own models on Flex or NdArray can too.

mod conv;
mod pool;
mod tile;

pub use conv::{conv2d, conv2d_fused};
pub use pool::max_pool2d;
pub use tile::{Isa, ParseIsaError};

/// Bytes of one layer's activations that [`in_chunks`] keeps a chunk of images to: about
/// what a core's L2 and its share of L3 hold, so that each layer reads its input from cache
/// rather than memory.
const CHUNK_BYTES: usize = 2 << 20;

/// `forward(images)` applied to chunks of the batch, whose outputs are concatenated, on a
/// host backend; `forward(images)` on every other.
///
/// A batch of 400 CIFAR images is 26 MB per ResNet layer, more than the caches, so that
/// every layer streams its input from memory; chunks of images whose widest activation
/// (`activation_bytes` per image) fits in [`CHUNK_BYTES`] keep it in cache, which ran the
/// CIFAR ResNet-110 5-8% faster on the 2-core test machine. The forward pass of one image
/// never depends on the others in inference, so the output is the same.
///
/// Where fewer than four images per thread would fit (an ImageNet model's 3 MB activations),
/// the batch runs whole: the convolutions share their work out by images, and a chunk of one
/// image kept a torchvision ResNet-18 on one of the two cores.
pub fn in_chunks<B: Backend, const D: usize>(
    images: Tensor<B, D>,
    activation_bytes: usize,
    forward: impl Fn(Tensor<B, D>) -> Tensor<B, 2>,
) -> Tensor<B, 2> {
    let batch = images.dims()[0];
    let chunk = CHUNK_BYTES / activation_bytes.max(1);
    let starved = chunk < 4 * rayon::current_num_threads();
    if batch <= chunk || starved || !on_host::<B>(&images.device()) {
        return forward(images);
    }
    let outputs: Vec<_> = images.split(chunk, 0).into_iter().map(forward).collect();
    Tensor::cat(outputs, 0)
}

use burn::nn::PaddingConfig2d;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

/// Backends (as [`Backend::name`] gives them) whose tensors live in host memory, so that a
/// kernel reads them without a transfer (zero-copy on Flex), and whose own convolution and
/// pooling the kernels beat. LibTorch's CPU device keeps oneDNN's, which is faster still.
const HOST_BACKENDS: [&str; 2] = ["flex", "ndarray"];

/// Whether the kernels run for tensors on `device`. By device name, as the noise sampler
/// decides where noise is drawn: one Rust backend type may have host and GPU devices.
fn on_host<B: Backend>(device: &B::Device) -> bool {
    HOST_BACKENDS.contains(&B::name(device).as_str())
}

/// The values of `data`, which the callers checked to be f32.
fn f32_values(data: &TensorData) -> &[f32] {
    data.as_slice::<f32>()
        .expect("kernels run on tensors checked to hold f32")
}

/// The f32 values of a tensor the callers checked to hold f32: borrowed from a contiguous
/// Flex tensor (also one shared with a residual connection's other branch, whose
/// `into_data` would copy it), copied out of any other.
enum Values {
    #[cfg(feature = "flex")]
    Flex(burn::backend::flex::FlexTensor),
    Data(TensorData),
}

impl Values {
    fn of<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Self {
        #[cfg(feature = "flex")]
        {
            use burn::backend::flex::FlexTensor;
            use std::any::Any;
            let primitive: Box<dyn Any> = Box::new(tensor.clone().into_primitive().tensor());
            if let Ok(flex) = primitive.downcast::<FlexTensor>()
                && flex.as_slice::<f32>().is_some()
            {
                return Values::Flex(*flex);
            }
        }
        Values::Data(tensor.into_data())
    }

    fn as_slice(&self) -> &[f32] {
        match self {
            #[cfg(feature = "flex")]
            Values::Flex(flex) => flex
                .as_slice::<f32>()
                .expect("checked to be contiguous f32"),
            Values::Data(data) => f32_values(data),
        }
    }
}

/// Where a window (a convolution's kernel, a pooling window) slides over an image plane: the
/// geometry the convolution and the pooling share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Window {
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    /// Padding rows above and columns left of the input (those below and right only lengthen
    /// the output).
    pad_start: [usize; 2],
    /// Output height and width.
    out: [usize; 2],
}

impl Window {
    /// The window over an input of `[height, width]` with `padding` (top, left, bottom,
    /// right), or `None` for a zero size or a window wider than the padded input.
    fn new(
        [height, width]: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        dilation: [usize; 2],
        [top, left, bottom, right]: [usize; 4],
    ) -> Option<Self> {
        if [kernel, stride, dilation].concat().contains(&0) {
            return None;
        }
        let out = |size: usize, before: usize, after: usize, axis: usize| {
            let span = dilation[axis] * (kernel[axis] - 1) + 1;
            let padded = size + before + after;
            (padded >= span).then(|| (padded - span) / stride[axis] + 1)
        };
        Some(Self {
            kernel,
            stride,
            dilation,
            pad_start: [top, left],
            out: [out(height, top, bottom, 0)?, out(width, left, right, 1)?],
        })
    }

    /// Output pixels per plane.
    fn pixels(&self) -> usize {
        self.out[0] * self.out[1]
    }
}

/// `Valid` and `Explicit` padding as (top, left, bottom, right); `None` for `Same`, which
/// the layers resolve against the input size.
fn explicit_padding(padding: &PaddingConfig2d) -> Option<[usize; 4]> {
    match *padding {
        PaddingConfig2d::Valid => Some([0; 4]),
        PaddingConfig2d::Explicit(top, left, bottom, right) => Some([top, left, bottom, right]),
        PaddingConfig2d::Same => None,
    }
}
