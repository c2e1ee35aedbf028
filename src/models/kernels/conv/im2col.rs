//! The im2col block of the convolutions the implicit path does not cover (output rows that
//! do not fill whole vectors, unit-stride ones narrower than their input): row (c, i, j) of
//! the block holds, for every output pixel, the input pixel that kernel offset (i, j) of
//! channel c multiplies.

use super::{Geometry, Window};

impl Geometry {
    /// Writes image `x`'s im2col block into `columns` (rows of `width` values) at column
    /// `offset`: row (c, i, j), column p = (y, x) holds `x[c, y*sh + i*dh - top, x*sw + j*dw -
    /// left]`, or 0 in the padding.
    pub(super) fn im2col(&self, x: &[f32], columns: &mut [f32], width: usize, offset: usize) {
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
