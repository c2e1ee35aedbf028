//! Host-memory kernels for the two layers the crate's models spend most of their CPU time in:
//! Burn's [`Conv2d`](burn::nn::conv::Conv2d) and [`MaxPool2d`](burn::nn::pool::MaxPool2d).
//!
//! A certificate is 100,100 forward passes, so the forward pass *is* the cost of
//! certification. On Flex, Burn's default pure-Rust CPU backend, convolutions took about 80%
//! of a ResNet's forward pass at 17-50 GFLOP/s and a 2x2 max pool 20 ns per output on the
//! 2-core test machine; [`conv2d`] runs the same layers at 50-100 GFLOP/s and [`max_pool2d`]
//! several times faster, which takes the CIFAR ResNets from about half of PyTorch's speed to
//! PyTorch's (docs/benchmarks.md).
//!
//! Each function reads the layer's own fields and applies the kernel only where it applies
//! and pays: f32 tensors of a backend whose tensors live in host memory (Flex, NdArray), in
//! the configurations the kernel covers. Everything else, and every autodiff backend
//! (training, attacks) whose backward pass Burn's own operations provide, goes through the
//! layer's `forward` unchanged. The models call these functions in place of `forward`; users'
//! own models on Flex or NdArray can too.

mod conv;
mod pool;

pub use conv::conv2d;
pub use pool::max_pool2d;

use burn::tensor::TensorData;
use burn::tensor::backend::Backend;

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
