//! GFLOP/s of the crate's convolution kernel on the CIFAR ResNets' layer shapes, for tuning
//! the kernel (end-to-end speed is `side_by_side`'s).
//!
//! ```text
//! cargo run --release --example conv_layers
//! RAYON_NUM_THREADS=1 RANDOMIZED_SMOOTHING_ISA=avx2 cargo run --release --example conv_layers
//! ```
//! Each layer is a 3x3 convolution with bias, ReLU fused, on a batch of random inputs; each
//! figure is the best of 20 runs after one warm-up (the kernel's speed, not the machine's
//! noise), as direct-convolution FLOPs per second.

use std::time::Instant;

use burn::backend::Flex;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2dConfig;
use burn::tensor::{Distribution, Tensor};
use randomized_smoothing::models::kernels::{self, Isa};

const RUNS: usize = 20;

fn main() {
    // Reuse freed memory rather than fault in fresh pages for every layer's output.
    randomized_smoothing::runtime::keep_freed_memory();
    let device = Default::default();
    println!("kernels: {}", Isa::active());
    println!("| layer | batch | GFLOP/s | ms |");
    println!("| --- | ---: | ---: | ---: |");
    // (input channels, output channels, input side, stride, batch): ResNet-110's three
    // stages, and the first layer of the second stage; then the small CNNs' layers (28 x 28
    // and 8 x 8 digits, 32 and 16 filters).
    for (cin, cout, side, stride, batch) in [
        (16, 16, 32, 1, 100),
        (32, 32, 16, 1, 400),
        (64, 64, 8, 1, 400),
        (16, 32, 32, 2, 400),
        (1, 32, 28, 1, 400),
        (32, 32, 28, 1, 400),
        (32, 64, 14, 1, 400),
        (1, 16, 8, 1, 1000),
        (16, 16, 8, 1, 1000),
        (16, 32, 4, 1, 1000),
    ] {
        let layer = Conv2dConfig::new([cin, cout], [3, 3])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init::<Flex>(&device);
        let x = Tensor::<Flex, 4>::random([batch, cin, side, side], Distribution::Default, &device);
        let out = side / stride;
        let flops = 2.0 * (batch * cout * cin * 9 * out * out) as f64;
        let _ = kernels::conv2d_fused(&layer, x.clone(), None, true);
        let best = (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                let _ = kernels::conv2d_fused(&layer, x.clone(), None, true);
                start.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        println!(
            "| {cin} -> {cout}, {side} x {side}, stride {stride} | {batch} | {:.1} | {:.2} |",
            flops / best / 1e9,
            best * 1e3
        );
    }
}
