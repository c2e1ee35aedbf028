//! The fused convolution against Burn's, on every path and instruction set.

use super::*;
use crate::models::kernels::f32_values;
use burn::backend::{Autodiff, Flex, NdArray};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2dConfig;
use burn::tensor::{Distribution, ElementConversion};

/// Every instruction set the kernels have that runs on this CPU.
fn isas() -> Vec<Isa> {
    [Isa::Portable, Isa::Avx2, Isa::Avx512]
        .into_iter()
        .filter(|isa| isa.runs_here())
        .collect()
}

/// The largest absolute difference between the kernel's and Burn's convolution, with the
/// given options, on backend `B`, over every instruction set that runs here, with a
/// residual and ReLU (against Burn's addition and ReLU) when `fused`; panics if the kernel
/// did not run or if two SIMD instruction sets disagree in a single bit.
#[allow(clippy::too_many_arguments)]
fn gap<B: Backend>(
    input: [usize; 4],
    out_channels: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    padding: PaddingConfig2d,
    bias: bool,
    fused: bool,
) -> f32 {
    let device = Default::default();
    B::seed(&device, 7);
    let conv = Conv2dConfig::new([input[1], out_channels], kernel)
        .with_stride(stride)
        .with_dilation(dilation)
        .with_padding(padding)
        .with_bias(bias)
        .init::<B>(&device);
    let x = Tensor::<B, 4>::random(input, Distribution::Normal(0.0, 1.0), &device);
    let geometry = Geometry::of(&conv, &x).expect("the kernel applies");
    let residual = fused.then(|| {
        Tensor::<B, 4>::random(
            geometry.output_shape(),
            Distribution::Normal(0.0, 1.0),
            &device,
        )
    });
    let burns = conv.forward(x.clone());
    let burns = match &residual {
        Some(r) => relu(burns + r.clone()),
        None => burns,
    };
    let mut worst = 0.0f32;
    let mut simd: Option<TensorData> = None;
    for isa in isas() {
        let ours = conv2d_with(isa, &conv, x.clone(), residual.clone(), fused);
        assert_eq!(ours.dims(), burns.dims());
        let gap: f32 = (ours.clone() - burns.clone())
            .abs()
            .max()
            .into_scalar()
            .elem();
        worst = worst.max(gap);
        if isa >= Isa::Avx2 {
            let data = ours.into_data();
            if let Some(first) = &simd {
                assert_eq!(f32_values(first), f32_values(&data), "{isa}");
            }
            simd = Some(data);
        }
    }
    worst
}

#[test]
fn matches_burn_on_the_models_layers_and_odd_options() {
    use PaddingConfig2d::{Explicit, Same, Valid};
    // [input], out channels, kernel, stride, dilation, padding.
    let cases = [
        (
            [3, 16, 32, 32],
            16,
            [3, 3],
            [1, 1],
            [1, 1],
            Explicit(1, 1, 1, 1),
        ),
        (
            [9, 16, 32, 32],
            32,
            [3, 3],
            [2, 2],
            [1, 1],
            Explicit(1, 1, 1, 1),
        ),
        ([2, 16, 32, 32], 32, [1, 1], [2, 2], [1, 1], Valid),
        ([37, 24, 4, 4], 48, [3, 3], [1, 1], [1, 1], Same),
        ([5, 1, 8, 8], 24, [3, 3], [1, 1], [1, 1], Same),
        ([3, 2, 9, 10], 4, [4, 2], [1, 1], [1, 1], Same),
        ([3, 2, 9, 10], 4, [3, 4], [2, 3], [1, 1], Same),
        (
            [2, 3, 23, 23],
            8,
            [7, 7],
            [2, 2],
            [1, 1],
            Explicit(3, 3, 3, 3),
        ),
        (
            [3, 2, 9, 11],
            5,
            [2, 3],
            [1, 2],
            [2, 1],
            Explicit(0, 2, 1, 0),
        ),
        (
            [300, 3, 6, 7],
            4,
            [3, 2],
            [3, 1],
            [1, 3],
            Explicit(4, 0, 0, 5),
        ),
        ([2, 2, 5, 5], 3, [5, 5], [1, 1], [1, 1], Valid),
        // Implicit convolutions (unit strides, output rows as wide as the input's, wide
        // enough rows): dilated, asymmetric padding, an even kernel with `Same`.
        (
            [2, 3, 20, 24],
            9,
            [3, 3],
            [1, 1],
            [2, 1],
            Explicit(2, 1, 2, 1),
        ),
        (
            [3, 3, 20, 24],
            7,
            [3, 3],
            [1, 1],
            [1, 1],
            Explicit(0, 2, 2, 0),
        ),
        ([3, 2, 20, 20], 5, [4, 2], [1, 1], [1, 1], Same),
        (
            [3, 2, 9, 11],
            5,
            [3, 3],
            [1, 1],
            [2, 3],
            Explicit(2, 3, 2, 3),
        ),
        // The same as implicit convolutions with AVX-512's 16 lanes too (rows of 16 and
        // 32), and rows of 130 pixels, whose last strip is 2 (16 lanes) or 2 (8) pixels.
        (
            [2, 3, 20, 32],
            9,
            [3, 3],
            [1, 1],
            [2, 1],
            Explicit(2, 1, 2, 1),
        ),
        (
            [3, 3, 20, 32],
            7,
            [3, 3],
            [1, 1],
            [1, 1],
            Explicit(0, 2, 2, 0),
        ),
        ([3, 2, 20, 16], 5, [4, 2], [1, 1], [1, 1], Same),
        (
            [3, 2, 9, 16],
            5,
            [3, 3],
            [1, 1],
            [2, 3],
            Explicit(2, 3, 2, 3),
        ),
        ([2, 2, 3, 130], 9, [3, 3], [1, 1], [1, 1], Same),
        // Strided implicit convolutions (phase planes), output rows of 16 or 32: the
        // ResNets' downsampling 3x3 and 1x1 layers, an odd input side, stride 3 with
        // dilation, unequal strides with asymmetric padding, and 8-pixel rows (implicit
        // with AVX2's lanes only).
        (
            [3, 5, 32, 32],
            6,
            [3, 3],
            [2, 2],
            [1, 1],
            Explicit(1, 1, 1, 1),
        ),
        ([2, 5, 32, 32], 6, [1, 1], [2, 2], [1, 1], Valid),
        ([2, 3, 31, 31], 4, [3, 3], [2, 2], [1, 1], Same),
        (
            [2, 3, 20, 47],
            5,
            [3, 3],
            [3, 3],
            [2, 2],
            Explicit(2, 2, 2, 2),
        ),
        (
            [2, 3, 13, 64],
            5,
            [4, 3],
            [1, 2],
            [1, 1],
            Explicit(2, 1, 1, 0),
        ),
        (
            [3, 4, 16, 16],
            8,
            [3, 3],
            [2, 2],
            [1, 1],
            Explicit(1, 1, 1, 1),
        ),
    ];
    for (i, (input, out, kernel, stride, dilation, padding)) in cases.into_iter().enumerate() {
        for (bias, fused) in [(true, false), (false, false), (true, true)] {
            let p = padding.clone();
            let flex = gap::<Flex>(input, out, kernel, stride, dilation, p.clone(), bias, fused);
            let ndarray = gap::<NdArray>(input, out, kernel, stride, dilation, p, bias, fused);
            // Sums of up to 400 products of N(0, 1) inputs and Kaiming weights: rounding
            // stays near 1e-6; a misplaced pixel or channel moves outputs by O(0.1).
            assert!(flex < 1e-4 && ndarray < 1e-4, "case {i}: {flex} {ndarray}");
        }
    }
}

/// The ResNets' "same" 3x3 layers run implicitly where their rows fill whole vectors
/// (32 and 16 pixels with every instruction set, 8 with AVX2's 8 lanes) or nearly (MNIST's
/// 28), and the 8x8 layers through im2col elsewhere; rows of 20 through im2col; strided
/// layers likewise by their output rows.
#[test]
fn implicit_where_the_rows_fill_the_vectors() {
    let device = Default::default();
    let geometry = |hw: usize, stride: usize| {
        let conv = Conv2dConfig::new([4, 4], [3, 3])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init::<Flex>(&device);
        Geometry::of(&conv, &Tensor::<Flex, 4>::zeros([2, 4, hw, hw], &device)).unwrap()
    };
    for isa in [Isa::Portable, Isa::Avx2, Isa::Avx512] {
        let lanes = tile_shape(isa).lanes;
        assert!(geometry(32, 1).implicit(lanes).is_some(), "{isa}");
        assert!(geometry(16, 1).implicit(lanes).is_some(), "{isa}");
        assert_eq!(
            geometry(8, 1).implicit(lanes).is_some(),
            lanes == 8,
            "{isa}"
        );
        // Strided: dealt into phase planes, rows of the output's width.
        assert!(geometry(32, 2).implicit(lanes).is_some(), "{isa}");
        assert_eq!(
            geometry(16, 2).implicit(lanes).is_some(),
            lanes == 8,
            "{isa}"
        );
        assert!(geometry(28, 1).implicit(lanes).is_some(), "{isa}");
        assert!(geometry(20, 1).implicit(lanes).is_none(), "{isa}");
    }
}

#[test]
fn declines_what_it_does_not_cover() {
    let device = Default::default();
    let x = Tensor::<NdArray, 4>::random([1, 4, 5, 5], Distribution::Default, &device);
    let grouped = Conv2dConfig::new([4, 4], [3, 3])
        .with_groups(2)
        .init::<NdArray>(&device);
    let same = Conv2dConfig::new([4, 4], [3, 3])
        .with_padding(PaddingConfig2d::Same)
        .with_dilation([2, 1])
        .init::<NdArray>(&device);
    let too_big = Conv2dConfig::new([4, 4], [7, 7]).init::<NdArray>(&device);
    for conv in [&grouped, &same, &too_big] {
        assert_eq!(Geometry::of(conv, &x), None);
    }
    // ... and still convolves them, through Burn.
    for conv in [&grouped, &same] {
        let (ours, burns) = (conv2d(conv, x.clone()), conv.forward(x.clone()));
        ours.into_data().assert_eq(&burns.into_data(), true);
    }
    // Autodiff backends keep Burn's convolution, whose backward pass training needs.
    let device = Default::default();
    let autodiff = Conv2dConfig::new([4, 4], [3, 3]).init::<Autodiff<Flex>>(&device);
    let x = Tensor::zeros([1, 4, 5, 5], &device);
    assert_eq!(Geometry::of(&autodiff, &x), None);
}
