//! Burn's [`Conv2d`] as register-tile products over the zero-padded input (or an im2col
//! block), with the bias, a residual and ReLU applied to each tile before it is stored.
//!
//! Burn 0.21's Flex runs a 3x3 convolution through a serial NCHW-to-NHWC copy, per-tile GEMMs
//! of at most 512 output pixels and a scattered write-back: 17-50 GFLOP/s on the 2-core test
//! machine for the CIFAR ResNets' layers, and the batch norm, residual and ReLU that follow
//! are three more passes over the output. [`conv2d_fused`] instead splits the batch into
//! groups of images and, for each group, either pads the images once and reads each depth's
//! vectors from them by offset (the "same" unit-stride convolutions whose rows fill whole
//! vectors, nearly all of a ResNet's work; strided ones from the padded images dealt into
//! phase planes, see [`Geometry::implicit`]) or lays out an im2col block, multiplies by the
//! weight with the [`tile`](super::tile) kernel of the CPU's instruction set, and writes each
//! tile, bias, residual and ReLU applied, where it lies in the NCHW output. The groups run in
//! parallel on rayon's pool. `examples/conv_layers.rs` measures it per layer shape.
//!
//! It computes the same sums as Burn's convolution in another order, so outputs agree to
//! rounding (about 1e-6 relative), not bit for bit; every instruction set gives the same bits.

use burn::nn::conv::Conv2d;
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

use super::tile::{self, Columns, Epilogue, Isa, Order, PackedWeight, Strip, tile_shape};
use super::{Values, Window, explicit_padding, on_host};

mod im2col;

/// Output pixels per task of the thread pool: images whose output is smaller are grouped
/// until a group has about this many, so that the tasks of 8x8 outputs are not mostly
/// overhead, while a batch still splits into many more tasks than threads.
const IMAGE_GROUP_PIXELS: usize = 256;

/// Output pixels per group of an implicit convolution, whose padded images take the place of
/// an im2col block: few enough to stay in L2 and to give the threads many tasks, enough for
/// whole tiles. (3,072, three 32 x 32 images to a group, left too few tasks per chunk of
/// [`in_chunks`](super::in_chunks) for two threads and ran ResNet-110 10% slower.)
const IMPLICIT_GROUP_PIXELS: usize = 1024;

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
    conv2d_fused(conv, input, None, false)
}

/// `conv` applied to `input`, plus `residual` (a tensor of the output's shape) if given, then
/// ReLU if `relu`: a residual block's `relu(conv(x) + shortcut)` or a plain `relu(conv(x))`
/// in one pass over the output.
///
/// Where the kernel runs (as for [`conv2d`], and for a residual of the output's shape and
/// dtype), the addition and the ReLU are applied to each output while it is in registers;
/// otherwise Burn's convolution, addition and ReLU run one after another.
///
/// # Example
/// ```
/// use burn::backend::Flex;
/// use burn::nn::PaddingConfig2d;
/// use burn::nn::conv::Conv2dConfig;
/// use burn::tensor::activation::relu;
/// use burn::tensor::{Distribution, Tensor};
/// use randomized_smoothing::models::kernels;
///
/// let device = Default::default();
/// let layer = Conv2dConfig::new([4, 4], [3, 3])
///     .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
///     .init::<Flex>(&device);
/// let x = Tensor::<Flex, 4>::random([2, 4, 8, 8], Distribution::Default, &device);
/// let fused = kernels::conv2d_fused(&layer, x.clone(), Some(x.clone()), true);
/// let apart = relu(layer.forward(x.clone()) + x);
/// let gap = (fused - apart).abs().max().into_scalar();
/// assert!(gap < 1e-4, "{gap}");
/// ```
pub fn conv2d_fused<B: Backend>(
    conv: &Conv2d<B>,
    input: Tensor<B, 4>,
    residual: Option<Tensor<B, 4>>,
    relu: bool,
) -> Tensor<B, 4> {
    conv2d_with(Isa::active(), conv, input, residual, relu)
}

/// [`conv2d_fused`] with the tiles of `isa`, which runs on this CPU.
fn conv2d_with<B: Backend>(
    isa: Isa,
    conv: &Conv2d<B>,
    input: Tensor<B, 4>,
    residual: Option<Tensor<B, 4>>,
    apply_relu: bool,
) -> Tensor<B, 4> {
    let geometry = Geometry::of(conv, &input).filter(|g| {
        residual
            .as_ref()
            .is_none_or(|r| r.dims() == g.output_shape() && r.dtype() == DType::F32)
    });
    let Some(geometry) = geometry else {
        let y = conv.forward(input);
        let y = match residual {
            Some(r) => y + r,
            None => y,
        };
        return if apply_relu { relu(y) } else { y };
    };
    let device = input.device();
    let x = Values::of(input);
    let weight = Values::of(conv.weight.val());
    let bias = conv.bias.as_ref().map(|b| Values::of(b.val()));
    let residual = residual.map(Values::of);
    let epilogue = Epilogue {
        pixels: 0,
        bias: bias.as_ref().map(Values::as_slice),
        residual: residual.as_ref().map(Values::as_slice),
        relu: apply_relu,
    };
    let output = geometry.convolve(
        geometry.tiles_for(isa),
        x.as_slice(),
        weight.as_slice(),
        epilogue,
    );
    Tensor::from_data(TensorData::new(output, geometry.output_shape()), &device)
}

/// `dst.copy_from_slice(src)` for the short rows of an image, inline: a call to `memcpy` per
/// row of 32 pixels took 7% of a ResNet's time.
#[inline]
fn copy_row(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len());
    let (dst8, dst_rest) = dst.as_chunks_mut::<8>();
    let (src8, src_rest) = src.as_chunks::<8>();
    for (d, s) in dst8.iter_mut().zip(src8) {
        *d = *s;
    }
    for (d, s) in dst_rest.iter_mut().zip(src_rest) {
        *d = *s;
    }
}

/// Deals the first pixels of an image row into the two phase rows of a stride-2 implicit
/// convolution (`row`, whose phase-0 row starts at 0 and phase-1 row at `phase_plane`, each
/// `width` long), `left` columns of padding before it, and returns how many it dealt: pixel
/// pairs as long as both phase rows have room. In the compiler's vector shuffles: the
/// general loop of [`Geometry::deal`], one pixel at a time, took a third of the ResNets'
/// downsampling layers.
fn deal_pairs(
    line: &[f32],
    row: &mut [f32],
    phase_plane: usize,
    width: usize,
    left: usize,
) -> usize {
    let (even, odd) = row.split_at_mut(phase_plane.min(row.len()));
    // Pixel 2t lies in padded column 2t + left, pixel 2t + 1 in the next one.
    let (first, second) = if left.is_multiple_of(2) {
        (even.get_mut(left / 2..width), odd.get_mut(left / 2..width))
    } else {
        (
            odd.get_mut(left / 2..width),
            even.get_mut(left / 2 + 1..width),
        )
    };
    let (Some(first), Some(second)) = (first, second) else {
        return 0;
    };
    let (pairs, _) = line.as_chunks::<2>();
    let n = pairs.len().min(first.len()).min(second.len());
    for (([a, b], f), s) in pairs[..n]
        .iter()
        .zip(first.iter_mut())
        .zip(second.iter_mut())
    {
        *f = *a;
        *s = *b;
    }
    2 * n
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

    /// The phase plane `[height, width]` of an implicit convolution, where one pays: output
    /// rows cut into vectors of `lanes` pixels with at most 1/8 of their lanes past the row's
    /// end (which are computed and not stored), for unit strides with output rows as wide as
    /// the input's (the "same" convolutions that hold nearly all of a ResNet's work) and for
    /// every larger stride: rows of 32 and 16 pixels, and MNIST's 28 and 14 (in 16 + 12 and
    /// 14 of 16 lanes), but not 8 in 16 lanes, where an im2col block is cheaper.
    ///
    /// With unit strides the one phase plane is the zero-padded image plane. With strides
    /// `[sh, sw]` the padded plane is dealt into `sh * sw` phase planes, phase `(a, b)`
    /// holding padded pixels `(sh * u + a, sw * v + b)` at `(u, v)`: output pixel `(y, x)`
    /// reads padded pixel `(sh * y + i * dh, sw * x + j * dw)` at depth `(c, i, j)`, which is
    /// `(y + i * dh / sh, x + j * dw / sw)` of phase `(i * dh % sh, j * dw % sw)`, so that
    /// consecutive output pixels read consecutive values again and a strided convolution
    /// runs through the same tiles as a unit-stride one (twice as fast as through im2col for
    /// the ResNets' downsampling layers).
    fn implicit(&self, lanes: usize) -> Option<[usize; 2]> {
        let Window {
            kernel: [kh, kw],
            stride: [sh, sw],
            dilation: [dh, dw],
            out: [oh, ow],
            ..
        } = self.window;
        let plane = [oh + (kh - 1) * dh / sh, ow + (kw - 1) * dw / sw];
        let unit = [sh, sw] == [1, 1];
        ((!unit || ow == self.width) && 7 * ow.next_multiple_of(lanes) <= 8 * ow).then_some(plane)
    }

    /// The tiles to run this convolution with, given the most capable set `isa`: AVX2's
    /// 8-lane tiles in place of AVX-512's where only their rows fill whole vectors (the 8x8
    /// layers of the CIFAR ResNets, implicit with 8 lanes and an im2col block with 16; on a
    /// Zen 4 core the 8-lane tiles ran them at 95 GFLOP/s, the 16-lane ones at 81). Every set
    /// gives the same bits, so the choice changes only the speed.
    fn tiles_for(&self, isa: Isa) -> Isa {
        let lanes = |isa| tile_shape(isa).lanes;
        if isa == Isa::Avx512
            && self.implicit(lanes(Isa::Avx512)).is_none()
            && self.implicit(lanes(Isa::Avx2)).is_some()
        {
            Isa::Avx2
        } else {
            isa
        }
    }

    /// Images per task of the thread pool and per product: enough for about `pixels` output
    /// pixels but at most a quarter of each thread's share of the batch (so that the threads
    /// stay busy to the end), and among the counts at most that large, one whose strips fill
    /// whole tiles of `vectors` if there is one (16 strips of a 16 x 16 image leave a tile of
    /// 3 one-third full; 3 images fill 16 tiles).
    fn images_per_group(&self, pixels: usize, strips_per_image: usize, vectors: usize) -> usize {
        let share = self.batch / (4 * rayon::current_num_threads());
        let most = (pixels / self.pixels()).clamp(1, share.max(1));
        (most.div_ceil(2)..=most)
            .find(|images| (images * strips_per_image).is_multiple_of(vectors))
            .unwrap_or(most)
    }

    /// Deals the images `x` (NCHW) into the phase planes `[hp, wp]` of an implicit
    /// convolution (see [`Geometry::implicit`]), `sh * sw` of them per channel, in `rows`:
    /// with unit strides a copy of each row into the padded plane. Writes only the pixels
    /// some output reads: what lies in the padding, or past the planes, keeps the zeros
    /// `rows` was made with.
    fn deal(&self, x: &[f32], rows: &mut [f32], [hp, wp]: [usize; 2]) {
        let [sh, sw] = self.window.stride;
        let [top, left] = self.window.pad_start;
        let phase_plane = hp * wp;
        let plane = self.height * self.width;
        for (c, source) in x.chunks_exact(plane).enumerate() {
            let channel = c * sh * sw * phase_plane;
            for (y, line) in source.chunks_exact(self.width).enumerate() {
                let row = y + top;
                if row / sh >= hp {
                    continue;
                }
                // The row's start in phase plane (row % sh, 0).
                let base = channel + (row % sh) * sw * phase_plane + row / sh * wp;
                // Whole runs where the stride allows, then pixel by pixel.
                let dealt = match sw {
                    1 => {
                        let n = self.width.min(wp.saturating_sub(left));
                        copy_row(&mut rows[base + left..][..n], &line[..n]);
                        n
                    }
                    2 => deal_pairs(line, &mut rows[base..], phase_plane, wp, left),
                    _ => 0,
                };
                for (x, &value) in line.iter().enumerate().skip(dealt) {
                    let column = x + left;
                    if column / sw < wp {
                        rows[base + (column % sw) * phase_plane + column / sw] = value;
                    }
                }
            }
        }
    }

    /// The convolution of NCHW `x` with OIHW `weight`, followed by `epilogue` (bias,
    /// residual, ReLU), as NCHW, with the tiles of `isa`.
    ///
    /// A tile's depth `k` = (c, i, j) reads, for each strip of output pixels, a vector at an
    /// offset of its own. Where [`Geometry::implicit`] applies, that vector lies in the image
    /// itself, zero-padded once per group: output pixel (y, x) reads padded pixel (y + i*dh,
    /// x + j*dw), so with padded rows of width `wp` the vector for `k` is the padded plane `c`
    /// from `i*dh*wp + j*dw` past the strip's first pixel, and no im2col matrix is written.
    /// Elsewhere the vectors are those of an im2col matrix of the group's images.
    fn convolve(&self, isa: Isa, x: &[f32], weight: &[f32], epilogue: Epilogue) -> Vec<f32> {
        let Window {
            kernel: [kh, kw],
            dilation: [dh, dw],
            out: [oh, ow],
            ..
        } = self.window;
        let pixels = self.pixels();
        let depth = self.depth();
        let plane = self.height * self.width;
        let image_in = self.channels * plane;
        let image_out = self.out_channels * pixels;
        assert_eq!(x.len(), self.batch * image_in, "input matches its geometry");
        assert_eq!(weight.len(), self.out_channels * depth, "weight matches");
        assert!(epilogue.bias.is_none_or(|b| b.len() == self.out_channels));
        assert!(
            epilogue
                .residual
                .is_none_or(|r| r.len() == self.batch * image_out)
        );
        let shape = tile_shape(isa);
        let lanes = shape.lanes;
        let packed = PackedWeight::new(weight, self.out_channels, depth, shape.rows);
        let implicit = self.implicit(lanes);
        let strip = |column, at, len| Strip { column, at, len };
        // Per group: the strips of output pixels, where each depth's vectors start, the row
        // stride of an im2col block (none for an implicit convolution), the values a group's
        // columns span (with a vector to spare, as a strip's last vector may read past the
        // last pixel it stores) and the loop order.
        let (per_group, strips, offsets, im2col_stride, span, order) = match implicit {
            Some([hp, wp]) => {
                let row_strips = ow.div_ceil(lanes);
                let per_group =
                    self.images_per_group(IMPLICIT_GROUP_PIXELS, oh * row_strips, shape.vectors);
                let [sh, sw] = self.window.stride;
                let phase_plane = hp * wp;
                let padded_image = self.channels * sh * sw * phase_plane;
                let strips: Vec<Strip> = (0..per_group)
                    .flat_map(|n| (0..oh).map(move |y| (n, y)))
                    .flat_map(|(n, y)| {
                        (0..ow).step_by(lanes).map(move |x0| {
                            strip(
                                n * padded_image + y * wp + x0,
                                n * image_out + y * ow + x0,
                                lanes.min(ow - x0),
                            )
                        })
                    })
                    .collect();
                let offsets: Vec<usize> = (0..self.channels)
                    .flat_map(|c| {
                        (0..kh).flat_map(move |i| {
                            (0..kw).map(move |j| {
                                let (row, col) = (i * dh, j * dw);
                                let phase = (row % sh) * sw + col % sw;
                                (c * sh * sw + phase) * phase_plane + row / sh * wp + col / sw
                            })
                        })
                    })
                    .collect();
                let span = per_group * padded_image + lanes;
                (per_group, strips, offsets, 0, span, Order::WeightsOutside)
            }
            None => {
                let per_group = self.images_per_group(
                    IMAGE_GROUP_PIXELS,
                    pixels.div_ceil(lanes),
                    shape.vectors,
                );
                let strips: Vec<Strip> = (0..per_group)
                    .flat_map(|n| {
                        (0..pixels).step_by(lanes).map(move |p0| {
                            strip(n * pixels + p0, n * image_out + p0, lanes.min(pixels - p0))
                        })
                    })
                    .collect();
                let stride = (per_group * pixels + lanes).next_multiple_of(16);
                let offsets = (0..depth).map(|k| k * stride).collect();
                (
                    per_group,
                    strips,
                    offsets,
                    stride,
                    depth * stride,
                    Order::StripsOutside,
                )
            }
        };
        let strips_per_image = strips.len() / per_group;
        let epilogue = Epilogue { pixels, ..epilogue };
        let total = self.batch * image_out;
        let mut output = Vec::<f32>::with_capacity(total);
        output.spare_capacity_mut()[..total]
            .par_chunks_mut(per_group * image_out)
            .enumerate()
            .for_each_init(
                // Zeroed once: the padding of an implicit convolution's planes (and the spare
                // vector past the columns) is never written again.
                || vec![0.0f32; span],
                |rows, (group, out)| {
                    let images = out.len() / image_out;
                    let first = group * per_group;
                    let inputs = &x[first * image_in..(first + images) * image_in];
                    let epilogue = Epilogue {
                        residual: epilogue
                            .residual
                            .map(|r| &r[first * image_out..(first + images) * image_out]),
                        ..epilogue
                    };
                    match implicit {
                        Some(phase_plane) => self.deal(inputs, rows, phase_plane),
                        None => {
                            for (image, x) in inputs.chunks_exact(image_in).enumerate() {
                                self.im2col(x, rows, im2col_stride, image * pixels);
                            }
                        }
                    }
                    // SAFETY: `isa` came from `Isa::active` or from a test that checked it
                    // runs here; every strip's column plus `offsets[k]` plus a vector is
                    // inside the `span` values of `rows` (the last padded plane, or the last
                    // im2col row, with a vector to spare); the strips of the group's
                    // `images` store into its outputs (and read its residuals), which `out`
                    // and the epilogue's residual hold.
                    unsafe {
                        tile::product(
                            isa,
                            &packed,
                            Columns {
                                b: rows.as_ptr(),
                                offsets: &offsets,
                                strips: &strips[..images * strips_per_image],
                            },
                            order,
                            &epilogue,
                            out.as_mut_ptr().cast(),
                        )
                    };
                },
            );
        // SAFETY: the groups cover `0..total`; in each, the strips cover every output pixel
        // of every image, and each tile stores every channel of its strips: all `total`
        // values were written.
        unsafe { output.set_len(total) };
        output
    }
}

#[cfg(all(test, feature = "flex", feature = "ndarray"))]
mod tests;
