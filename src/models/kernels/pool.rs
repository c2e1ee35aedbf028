//! Burn's [`MaxPool2d`] as a plain loop over output pixels, one plane per task, and the CNNs'
//! 2x2 window of stride 2 as a loop over pairs of rows that the compiler vectorizes.
//!
//! Flex 0.21 pools a `[1000, 16, 8, 8]` batch 2x2 in about 5 ms, 20 ns per output, a quarter
//! of the digits CNN's forward pass; the general loop took about 3 ns per output, the
//! row-pair loop 0.4 ns (a `[400, 32, 28, 28]` batch in 1 ms) on the 2-core test machine.

use burn::nn::pool::MaxPool2d;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

use super::{Values, Window, explicit_padding, on_host};

/// Output values per parallel task: small planes (2x2, 4x4) are grouped so that a task
/// outweighs rayon's scheduling.
const VALUES_PER_TASK: usize = 4096;

/// Applies `pool` to `input` (`[batch, channels, height, width]`), as [`MaxPool2d::forward`]
/// does.
///
/// On Flex and NdArray, with explicit or no padding and floor rounding, it runs the crate's
/// loop (see the [module docs](super)); otherwise, and on every other backend, it calls
/// [`MaxPool2d::forward`]. Padding counts as minus infinity, as in Burn and PyTorch.
///
/// # Example
/// ```
/// use burn::backend::Flex;
/// use burn::nn::pool::MaxPool2dConfig;
/// use burn::tensor::{Tensor, TensorData};
/// use randomized_smoothing::models::kernels;
///
/// let device = Default::default();
/// let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
/// let x = Tensor::<Flex, 4>::from_data([[[[1.0, 5.0, 2.0, 0.0], [3.0, 4.0, 8.0, 7.0]]]], &device);
/// let y = kernels::max_pool2d(&pool, x);
/// y.into_data().assert_eq(&TensorData::from([[[[5.0f32, 8.0]]]]), false);
/// ```
pub fn max_pool2d<B: Backend>(pool: &MaxPool2d, input: Tensor<B, 4>) -> Tensor<B, 4> {
    match Pooling::of(pool, &input) {
        Some(pooling) => {
            let device = input.device();
            let x = Values::of(input);
            let output = pooling.pool(x.as_slice());
            Tensor::from_data(TensorData::new(output, pooling.output_shape()), &device)
        }
        None => pool.forward(input),
    }
}

/// Shapes and options of one pooling the loop can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pooling {
    planes: usize,
    channels: usize,
    height: usize,
    width: usize,
    window: Window,
}

impl Pooling {
    /// The pooling of `pool` over `input`, or `None` where the loop does not apply: another
    /// backend or dtype, `Same` padding, ceiling rounding, an empty batch, or shapes Burn
    /// itself would reject (which then reports them).
    fn of<B: Backend>(pool: &MaxPool2d, input: &Tensor<B, 4>) -> Option<Self> {
        if !on_host::<B>(&input.device()) || input.dtype() != DType::F32 || pool.ceil_mode {
            return None;
        }
        let [batch, channels, height, width] = input.dims();
        let padding = explicit_padding(&pool.padding)?;
        let window = Window::new(
            [height, width],
            pool.kernel_size,
            pool.stride,
            pool.dilation,
            padding,
        )?;
        // A window wholly inside the padding would have no input to take the maximum of.
        let [top, left, bottom, right] = padding;
        let [dh, dw] = pool.dilation;
        let [kh, kw] = pool.kernel_size;
        if batch * channels == 0
            || top.max(bottom) > dh * (kh - 1)
            || left.max(right) > dw * (kw - 1)
        {
            return None;
        }
        Some(Self {
            planes: batch * channels,
            channels,
            height,
            width,
            window,
        })
    }

    fn output_shape(&self) -> [usize; 4] {
        let [out_height, out_width] = self.window.out;
        [
            self.planes / self.channels,
            self.channels,
            out_height,
            out_width,
        ]
    }

    /// The maxima over every window of every plane of `x`.
    fn pool(&self, x: &[f32]) -> Vec<f32> {
        let plane_in = self.height * self.width;
        let plane_out = self.window.pixels();
        assert_eq!(x.len(), self.planes * plane_in, "input matches its window");
        let planes_per_task = (VALUES_PER_TASK / plane_out).max(1);
        let halving = self.is_halving();
        let mut output = vec![0.0f32; self.planes * plane_out];
        output
            .par_chunks_mut(planes_per_task * plane_out)
            .enumerate()
            .for_each(|(task, out)| {
                let first = task * planes_per_task;
                for (plane, out) in out.chunks_exact_mut(plane_out).enumerate() {
                    let x = &x[(first + plane) * plane_in..][..plane_in];
                    if halving {
                        self.halve_plane(x, out);
                    } else {
                        self.pool_plane(x, out);
                    }
                }
            });
        output
    }

    /// Whether the window is the CNNs' 2x2 with stride 2 and no padding or dilation, which
    /// [`Self::halve_plane`] runs.
    fn is_halving(&self) -> bool {
        let Window {
            kernel,
            stride,
            dilation,
            pad_start,
            ..
        } = self.window;
        kernel == [2, 2] && stride == [2, 2] && dilation == [1, 1] && pad_start == [0, 0]
    }

    /// [`Self::pool_plane`] for a 2x2 window of stride 2 without padding: the same maxima,
    /// taken in the same order (so the same bits, NaN and signed zeros included), from two
    /// whole rows at a time. Without the general loop's index arithmetic and bounds checks
    /// the compiler vectorizes it: the general loop took 8 ms of the 28 x 28 CNN's 70 ms for
    /// its first 2x2 pooling at batch 400 on the 2-core test machine.
    fn halve_plane(&self, x: &[f32], out: &mut [f32]) {
        let out_width = self.window.out[1];
        for (oy, out) in out.chunks_exact_mut(out_width).enumerate() {
            let upper = &x[2 * oy * self.width..][..2 * out_width];
            let lower = &x[(2 * oy + 1) * self.width..][..2 * out_width];
            let (upper, _) = upper.as_chunks::<2>();
            let (lower, _) = lower.as_chunks::<2>();
            for ((value, [a, b]), [c, d]) in out.iter_mut().zip(upper).zip(lower) {
                *value = f32::NEG_INFINITY.max(*a).max(*b).max(*c).max(*d);
            }
        }
    }

    fn pool_plane(&self, x: &[f32], out: &mut [f32]) {
        let Window {
            kernel: [kh, kw],
            stride: [sh, sw],
            dilation: [dh, dw],
            pad_start: [top, left],
            out: [_, out_width],
        } = self.window;
        for (oy, out) in out.chunks_exact_mut(out_width).enumerate() {
            for (ox, value) in out.iter_mut().enumerate() {
                let mut max = f32::NEG_INFINITY;
                for i in 0..kh {
                    // Rows in the padding wrap to huge indices and are skipped.
                    let iy = (oy * sh + i * dh).wrapping_sub(top);
                    if iy >= self.height {
                        continue;
                    }
                    let row = &x[iy * self.width..][..self.width];
                    for j in 0..kw {
                        let ix = (ox * sw + j * dw).wrapping_sub(left);
                        if ix < self.width {
                            max = max.max(row[ix]);
                        }
                    }
                }
                *value = max;
            }
        }
    }
}

#[cfg(all(test, feature = "flex", feature = "ndarray"))]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex, NdArray};
    use burn::nn::PaddingConfig2d;
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::Distribution;

    fn agrees_with_burn<B: Backend>(input: [usize; 4], pool: &MaxPool2d) {
        let device = Default::default();
        B::seed(&device, 3);
        let x = Tensor::<B, 4>::random(input, Distribution::Normal(0.0, 1.0), &device);
        assert!(Pooling::of(pool, &x).is_some(), "the loop applies");
        let ours = max_pool2d(pool, x.clone());
        // A maximum is exact: any difference is a wrong window.
        ours.into_data()
            .assert_eq(&pool.forward(x).into_data(), true);
    }

    #[test]
    fn the_halving_loop_takes_the_general_loops_maxima() {
        // Odd sides (a last row and column that no window reads) and the values whose maxima
        // depend on order: NaN, signed zeros, infinities.
        let (height, width) = (7, 9);
        let specials = [
            f32::NAN,
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1.5,
            -2.5,
        ];
        let x: Vec<f32> = (0..height * width)
            .map(|i| specials[(i * 5 + i / 3) % specials.len()])
            .collect();
        // One window wholly NaN (the general loop gives -inf there).
        let mut x = x;
        for i in [0, 1, width, width + 1] {
            x[i] = f32::NAN;
        }
        let pooling = Pooling {
            planes: 1,
            channels: 1,
            height,
            width,
            window: Window::new([height, width], [2, 2], [2, 2], [1, 1], [0; 4]).unwrap(),
        };
        assert!(pooling.is_halving());
        let (mut halved, mut general) = (vec![0.0; 12], vec![0.0; 12]);
        pooling.halve_plane(&x, &mut halved);
        pooling.pool_plane(&x, &mut general);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&halved), bits(&general));
        assert!(
            general.iter().any(|v| v.is_infinite()),
            "the cases reach the specials"
        );
    }

    #[test]
    fn matches_burn() {
        use PaddingConfig2d::{Explicit, Valid};
        // [input], kernel, stride, dilation, padding.
        let cases = [
            ([7, 16, 8, 8], [2, 2], [2, 2], [1, 1], Valid),
            ([3, 24, 4, 4], [2, 2], [2, 2], [1, 1], Valid),
            ([2, 3, 9, 7], [2, 2], [2, 2], [1, 1], Valid),
            ([2, 4, 16, 16], [3, 3], [2, 2], [1, 1], Explicit(1, 1, 1, 1)),
            ([2, 2, 9, 11], [3, 2], [1, 3], [2, 1], Explicit(2, 0, 1, 1)),
            ([600, 5, 5, 5], [5, 5], [1, 1], [1, 1], Valid),
        ];
        for (input, kernel, stride, dilation, padding) in cases {
            let pool = MaxPool2dConfig::new(kernel)
                .with_strides(stride)
                .with_dilation(dilation)
                .with_padding(padding)
                .init();
            agrees_with_burn::<Flex>(input, &pool);
            agrees_with_burn::<NdArray>(input, &pool);
        }
    }

    #[test]
    fn declines_what_it_does_not_cover() {
        let device = Default::default();
        let x = Tensor::<Flex, 4>::zeros([1, 2, 6, 6], &device);
        let ceil = MaxPool2dConfig::new([2, 2]).with_ceil_mode(true).init();
        let same = MaxPool2dConfig::new([3, 3])
            .with_padding(PaddingConfig2d::Same)
            .init();
        for pool in [&ceil, &same] {
            assert_eq!(Pooling::of(pool, &x), None);
            assert_eq!(
                max_pool2d(pool, x.clone()).dims(),
                pool.forward(x.clone()).dims()
            );
        }
        let x = Tensor::<Autodiff<Flex>, 4>::zeros([1, 2, 6, 6], &device);
        let plain = MaxPool2dConfig::new([2, 2]).init();
        assert_eq!(Pooling::of(&plain, &x), None);
    }
}
