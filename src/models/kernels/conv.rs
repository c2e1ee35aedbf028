//! Burn's [`Conv2d`] through one im2col matrix and one GEMM per group of images.
//!
//! Burn 0.21's Flex runs a 3x3 convolution through a serial NCHW-to-NHWC copy, per-tile GEMMs
//! of at most 512 output pixels and a scattered write-back: 17-50 GFLOP/s on the 2-core test
//! machine for the CIFAR ResNets' layers. [`conv2d`] instead lays out one im2col matrix per
//! group of images straight from NCHW, multiplies it by the weight matrix with the `gemm`
//! crate (the library Flex itself calls) into a column-major product, which *is* the NCHW
//! output of each image, and runs the groups in parallel on rayon's pool: 50-100 GFLOP/s on
//! the same layers.
//!
//! It computes the same sums as Burn's convolution in another order, so outputs agree to
//! rounding (about 1e-6 relative), not bit for bit.

use burn::nn::conv::Conv2d;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

use super::{Window, explicit_padding, f32_values, on_host};

/// Output pixels per GEMM: images whose output is smaller are stacked side by side until one
/// product has about this many rows. Measured on the ResNets' and the digits CNN's layers:
/// below it, the GEMM's packing dominates 4x4 and 8x8 outputs; above it, the im2col block
/// leaves the cache.
const PIXELS_PER_PRODUCT: usize = 256;

/// Applies `conv` to `input` (`[batch, channels, height, width]`), as [`Conv2d::forward`] does.
///
/// On Flex and NdArray, for one-group convolutions, it runs the crate's kernel (see the
/// [module docs](super)); otherwise, and on every other backend (autodiff ones included), it
/// calls [`Conv2d::forward`]. Either way the result is the same convolution.
///
/// # Example
/// ```
/// use burn::backend::Flex;
/// use burn::nn::PaddingConfig2d;
/// use burn::nn::conv::Conv2dConfig;
/// use burn::tensor::{Distribution, Tensor};
/// use randomized_smoothing::models::kernels;
///
/// let device = Default::default();
/// let layer = Conv2dConfig::new([3, 8], [3, 3])
///     .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
///     .init::<Flex>(&device);
/// let x = Tensor::<Flex, 4>::random([2, 3, 9, 9], Distribution::Default, &device);
/// let ours = kernels::conv2d(&layer, x.clone());
/// let burns = layer.forward(x);
/// assert_eq!(ours.dims(), [2, 8, 9, 9]);
/// let gap = (ours - burns).abs().max().into_scalar();
/// assert!(gap < 1e-4, "{gap}");
/// ```
pub fn conv2d<B: Backend>(conv: &Conv2d<B>, input: Tensor<B, 4>) -> Tensor<B, 4> {
    match Geometry::of(conv, &input) {
        Some(geometry) => {
            let device = input.device();
            let x = input.into_data();
            let weight = conv.weight.val().into_data();
            let bias = conv.bias.as_ref().map(|b| b.val().into_data());
            let output = geometry.convolve(
                f32_values(&x),
                f32_values(&weight),
                bias.as_ref().map(f32_values),
            );
            Tensor::from_data(TensorData::new(output, geometry.output_shape()), &device)
        }
        None => conv.forward(input),
    }
}

/// Padding before and after an axis of `size` for Burn's `PaddingConfig2d::Same` (and ONNX's
/// `SAME_UPPER`): output `ceil(size / stride)`, the odd pixel of padding after.
fn same(size: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = size.div_ceil(stride);
    let total = (out.saturating_sub(1) * stride + kernel).saturating_sub(size);
    (total / 2, total - total / 2)
}

/// Shapes and options of one convolution the kernel can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Geometry {
    batch: usize,
    channels: usize,
    height: usize,
    width: usize,
    out_channels: usize,
    window: Window,
}

impl Geometry {
    /// The geometry of `conv` applied to `input`, or `None` where the kernel does not apply:
    /// another backend, another dtype, groups, `Same` padding with dilation, an empty tensor,
    /// or shapes Burn itself would reject (which then reports them).
    fn of<B: Backend>(conv: &Conv2d<B>, input: &Tensor<B, 4>) -> Option<Self> {
        if !on_host::<B>(&input.device()) || conv.groups != 1 {
            return None;
        }
        let weight = conv.weight.val();
        if input.dtype() != DType::F32 || weight.dtype() != DType::F32 {
            return None;
        }
        let [batch, channels, height, width] = input.dims();
        let [out_channels, in_channels, kh, kw] = weight.dims();
        if in_channels != channels || [batch, channels, out_channels].contains(&0) {
            return None;
        }
        if let Some(bias) = &conv.bias
            && (bias.dims() != [out_channels] || bias.val().dtype() != DType::F32)
        {
            return None;
        }
        let [sh, sw] = conv.stride;
        let padding = match explicit_padding(&conv.padding) {
            Some(padding) => padding,
            // Burn's rule, which leaves dilation out: that case stays with Burn.
            None if conv.dilation == [1, 1] && sh * sw > 0 => {
                let ((top, bottom), (left, right)) = (same(height, kh, sh), same(width, kw, sw));
                [top, left, bottom, right]
            }
            None => return None,
        };
        let window = Window::new(
            [height, width],
            [kh, kw],
            conv.stride,
            conv.dilation,
            padding,
        )?;
        Some(Self {
            batch,
            channels,
            height,
            width,
            out_channels,
            window,
        })
    }

    fn output_shape(&self) -> [usize; 4] {
        let [out_height, out_width] = self.window.out;
        [self.batch, self.out_channels, out_height, out_width]
    }

    /// Output pixels per image.
    fn pixels(&self) -> usize {
        self.window.pixels()
    }

    /// Rows of the im2col matrix: one per (input channel, kernel row, kernel column), in the
    /// order of the weight's memory, so that the weight is the GEMM's matrix as it lies.
    fn depth(&self) -> usize {
        self.channels * self.window.kernel[0] * self.window.kernel[1]
    }

    /// The convolution of NCHW `x` with OIHW `weight` plus `bias`, as NCHW.
    fn convolve(&self, x: &[f32], weight: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
        let pixels = self.pixels();
        let depth = self.depth();
        let image_in = self.channels * self.height * self.width;
        let image_out = self.out_channels * pixels;
        assert_eq!(x.len(), self.batch * image_in, "input matches its geometry");
        assert_eq!(weight.len(), self.out_channels * depth, "weight matches");
        let per_product = (PIXELS_PER_PRODUCT / pixels).clamp(1, self.batch);
        let mut output = vec![0.0f32; self.batch * image_out];
        output
            .par_chunks_mut(per_product * image_out)
            .enumerate()
            .for_each_init(
                || (Vec::new(), Vec::new()),
                |(columns, stacked), (chunk, out)| {
                    let images = out.len() / image_out;
                    let first = chunk * per_product;
                    let inputs = &x[first * image_in..(first + images) * image_in];
                    self.product(inputs, images, weight, bias, columns, stacked, out);
                },
            );
        output
    }

    /// Convolves `images` consecutive images `inputs` into `out`, with `columns` and `stacked`
    /// as scratch space.
    #[allow(clippy::too_many_arguments)]
    fn product(
        &self,
        inputs: &[f32],
        images: usize,
        weight: &[f32],
        bias: Option<&[f32]>,
        columns: &mut Vec<f32>,
        stacked: &mut Vec<f32>,
        out: &mut [f32],
    ) {
        let pixels = self.pixels();
        let depth = self.depth();
        let width = images * pixels;
        let image_in = self.channels * self.height * self.width;
        columns.resize(depth * width, 0.0);
        for (image, x) in inputs.chunks_exact(image_in).enumerate() {
            self.im2col(x, columns, width, image * pixels);
        }
        // One image writes its product straight into the output; several share one product,
        // whose column c holds channel c of every image side by side, and are copied out.
        let product: &mut [f32] = if images == 1 {
            out
        } else {
            stacked.resize(self.out_channels * width, 0.0);
            stacked
        };
        if let Some(bias) = bias {
            for (row, &b) in product.chunks_exact_mut(width).zip(bias) {
                row.fill(b);
            }
        }
        // The product P (width x out_channels) = C^T W^T, column-major: P[p, o] at
        // o * width + p. C^T is the im2col matrix read column-major (C^T[p, r] at
        // r * width + p) and W^T the OIHW weight (W^T[r, o] at o * depth + r).
        //
        // SAFETY: `product` holds `out_channels * width` values, `columns` `depth * width`
        // and `weight` `out_channels * depth` (asserted in `convolve`), so every index the
        // strides above reach for m < width, n < out_channels, k < depth is in bounds; the
        // three do not overlap, as `product` is borrowed mutably.
        unsafe {
            gemm::gemm(
                width,
                self.out_channels,
                depth,
                product.as_mut_ptr(),
                width as isize,
                1,
                bias.is_some(),
                columns.as_ptr(),
                width as isize,
                1,
                weight.as_ptr(),
                depth as isize,
                1,
                1.0,
                1.0,
                false,
                false,
                false,
                // The images' groups already occupy every thread.
                gemm::Parallelism::None,
            );
        }
        if images > 1 {
            for (image, out) in out.chunks_exact_mut(self.out_channels * pixels).enumerate() {
                for (channel, out) in out.chunks_exact_mut(pixels).enumerate() {
                    let start = channel * width + image * pixels;
                    out.copy_from_slice(&stacked[start..start + pixels]);
                }
            }
        }
    }

    /// Writes image `x`'s im2col block into `columns` (rows of `width` values) at column
    /// `offset`: row (c, i, j), column p = (y, x) holds `x[c, y*sh + i*dh - top, x*sw + j*dw -
    /// left]`, or 0 in the padding.
    fn im2col(&self, x: &[f32], columns: &mut [f32], width: usize, offset: usize) {
        let Window {
            kernel: [kh, kw],
            stride: [sh, sw],
            dilation: [dh, dw],
            pad_start: [top, left],
            out: [_, ow],
        } = self.window;
        let pixels = self.pixels();
        // Output columns whose input column lies inside the image, for kernel column j:
        // left <= ox*sw + j*dw < width + left.
        let valid_columns = |j: usize| {
            let shift = j * dw;
            let low = left.saturating_sub(shift).div_ceil(sw).min(ow);
            let high = if self.width + left > shift {
                ((self.width + left - shift - 1) / sw + 1).min(ow)
            } else {
                0
            };
            (low, high.max(low))
        };
        // With unit strides and output rows as wide as input rows (the "same" 3x3 convolutions
        // of every ResNet), a whole im2col row is the input plane shifted by a constant: one
        // copy, then zeros where the shift wrapped a row's ends or left the image.
        let shifted_plane = sh == 1 && sw == 1 && ow == self.width;
        for c in 0..self.channels {
            let plane = &x[c * self.height * self.width..][..self.height * self.width];
            for i in 0..kh {
                for j in 0..kw {
                    let row = ((c * kh + i) * kw + j) * width + offset;
                    let row = &mut columns[row..row + pixels];
                    let (low, high) = valid_columns(j);
                    if shifted_plane {
                        self.shift_plane(plane, row, [i * dh, j * dw], (low, high));
                        continue;
                    }
                    for (oy, segment) in row.chunks_exact_mut(ow).enumerate() {
                        let iy = (oy * sh + i * dh).wrapping_sub(top);
                        if iy >= self.height {
                            // Above the image (wrapped below zero) or below it.
                            segment.fill(0.0);
                            continue;
                        }
                        let source = &plane[iy * self.width..][..self.width];
                        segment[..low].fill(0.0);
                        segment[high..].fill(0.0);
                        let first = low * sw + j * dw - left;
                        if sw == 1 {
                            segment[low..high].copy_from_slice(&source[first..first + high - low]);
                        } else {
                            for (value, ix) in
                                segment[low..high].iter_mut().zip((first..).step_by(sw))
                            {
                                *value = source[ix];
                            }
                        }
                    }
                }
            }
        }
    }

    /// One im2col row of a unit-stride convolution whose output rows are as wide as the
    /// input's: `row[p] = plane[p + delta]`, `delta = (down - top) * width + right - left`
    /// for kernel offsets `down = i * dh` and `right = j * dw`, and zero in the output rows
    /// that fall outside the image and outside the output columns `low..high` that land in it.
    fn shift_plane(
        &self,
        plane: &[f32],
        row: &mut [f32],
        [down, right]: [usize; 2],
        (low, high): (usize, usize),
    ) {
        let [top, left] = self.window.pad_start;
        let (w, out_height) = (self.width, self.window.out[0]);
        // Output rows landing in the image: top <= oy + down < height + top.
        let first = top.saturating_sub(down).min(out_height);
        let end = (self.height + top)
            .saturating_sub(down)
            .clamp(first, out_height);
        row[..first * w].fill(0.0);
        row[end * w..].fill(0.0);
        if first == end {
            return;
        }
        let delta = (down as isize - top as isize) * w as isize + right as isize - left as isize;
        // Pixels whose source would fall before or after the plane lie in columns outside
        // `low..high`, which are zeroed below.
        let start = ((first * w) as isize).max(-delta) as usize;
        let stop = ((end * w) as isize).min(plane.len() as isize - delta) as usize;
        if start < stop {
            let from = (start as isize + delta) as usize;
            row[start..stop].copy_from_slice(&plane[from..from + (stop - start)]);
        }
        for line in row[first * w..end * w].chunks_exact_mut(w) {
            line[..low].fill(0.0);
            line[high..].fill(0.0);
        }
    }
}

#[cfg(all(test, feature = "flex", feature = "ndarray"))]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex, NdArray};
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::{Distribution, ElementConversion};

    /// The largest absolute difference between the kernel's and Burn's convolution, with the
    /// given options, on backend `B`; panics if the kernel did not run.
    fn gap<B: Backend>(
        input: [usize; 4],
        out_channels: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        dilation: [usize; 2],
        padding: PaddingConfig2d,
        bias: bool,
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
        assert!(Geometry::of(&conv, &x).is_some(), "the kernel applies");
        let ours = conv2d(&conv, x.clone());
        let burns = conv.forward(x);
        assert_eq!(ours.dims(), burns.dims());
        (ours - burns).abs().max().into_scalar().elem()
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
            (
                [3, 2, 9, 11],
                5,
                [3, 3],
                [1, 1],
                [2, 3],
                Explicit(2, 3, 2, 3),
            ),
        ];
        for (i, (input, out, kernel, stride, dilation, padding)) in cases.into_iter().enumerate() {
            for bias in [true, false] {
                let p = padding.clone();
                let flex = gap::<Flex>(input, out, kernel, stride, dilation, p.clone(), bias);
                let ndarray = gap::<NdArray>(input, out, kernel, stride, dilation, p, bias);
                // Sums of up to 400 products of N(0, 1) inputs and Kaiming weights: rounding
                // stays near 1e-6; a misplaced pixel or channel moves outputs by O(0.1).
                assert!(flex < 1e-4 && ndarray < 1e-4, "case {i}: {flex} {ndarray}");
            }
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
}
