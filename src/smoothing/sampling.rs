//! The Monte Carlo loop that counts the base classifier's decisions under noise.
//!
//! The loop draws noise on the input's device, classifies in batches and accumulates the
//! class counts there; the only transfer to the host is the final count vector.

use std::mem::MaybeUninit;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use rayon::prelude::*;

use super::base::BaseClassifier;
use super::generator::lock_generator;
use super::noise::NoiseDistribution;
use crate::error::{Error, Result};
use crate::stats::seed::split_mix;

/// One input, checked and ready to be perturbed batch after batch: `[1, input_shape...]`
/// values on the host when the crate draws the noise there ([`noise_on_host`]), a tensor on
/// the device otherwise.
///
/// The input is read to the host exactly once per procedure (the check for non-finite values
/// needs it), however many batches and sampling rounds follow.
pub(crate) struct CleanInput<B: Backend, const D: usize> {
    shape: [usize; D],
    device: B::Device,
    values: Source<B, D>,
}

enum Source<B: Backend, const D: usize> {
    Host(Vec<f32>),
    Device(Tensor<B, D>),
}

impl<B: Backend, const D: usize> CleanInput<B, D> {
    /// Reads `x` once, checks that every value is finite, and makes it a batch of one of
    /// `shape` (`[1, input_shape...]`, as many values as `x`).
    pub(crate) fn new<const K: usize>(x: Tensor<B, K>, shape: [usize; D]) -> Result<Self> {
        let device = x.device();
        let values = if noise_on_host::<B>(&device) {
            // Read before any reshape: `into_data` then takes NdArray's buffer without a copy
            // when this is its only handle (a reshaped view is copied value by value).
            let values: Vec<f32> = x.into_data().iter::<f32>().collect();
            check_finite(values.iter().map(|&v| f64::from(v)))?;
            Source::Host(values)
        } else {
            check_finite(x.to_data().iter::<f64>())?;
            Source::Device(x.reshape(shape))
        };
        Ok(Self {
            shape,
            device,
            values,
        })
    }

    /// Noisy copies `first_row .. first_row + rows` of the noise stream `seed`.
    ///
    /// On the host each copy is a function of `(seed, its row number)` alone, so a stream's
    /// rows are the same whatever the batch sizes that cut it and whatever else samples
    /// meanwhile. Devices that draw from their own generator ([`device_noise`]) seed it once
    /// per batch, from `(seed, first_row)`: their rows depend on where batches start. The
    /// batch is built in the model's layout because a reshape copies on some backends.
    fn perturbed_batch<N: NoiseDistribution>(
        &self,
        noise: &N,
        rows: usize,
        seed: u64,
        first_row: u64,
    ) -> Tensor<B, D> {
        let mut shape = self.shape;
        shape[0] = rows;
        match &self.values {
            Source::Host(x) => host_batch(shape, &self.device, |values| {
                fill_perturbed_rows(noise, x, values, seed, first_row)
            }),
            Source::Device(x) => {
                let batch_seed = split_mix(seed ^ split_mix(first_row));
                x.clone().expand(shape)
                    + device_noise::<B, N, D>(noise, shape, &self.device, batch_seed)
            }
        }
    }
}

fn check_finite(mut values: impl Iterator<Item = f64>) -> Result<()> {
    match values.find(|v| !v.is_finite()) {
        Some(bad) => Err(Error::NonFiniteInput(bad)),
        None => Ok(()),
    }
}

/// Noise of `shape` drawn on `device` from the backend's generator, seeded with `seed`
/// (under [`lock_generator`], since the generator is global to the backend).
pub(crate) fn device_noise<B: Backend, N: NoiseDistribution, const D: usize>(
    noise: &N,
    shape: [usize; D],
    device: &B::Device,
    seed: u64,
) -> Tensor<B, D> {
    let _generator = lock_generator();
    B::seed(device, seed);
    noise.sample::<B, D>(shape, device)
}

/// Fills `values` with rows `first_row ..` of `x + noise` on all cores (on rayon's pool,
/// which Burn's CPU backends share), row `i` of the stream from its own generator seeded by
/// `(seed, i)`, so the result depends neither on the number of threads nor on how the
/// stream is cut into batches. `values` may be uninitialized: each row is copied from `x`
/// where its noise is added, on the thread that adds it, while it is in cache.
fn fill_perturbed_rows<N: NoiseDistribution>(
    noise: &N,
    x: &[f32],
    values: &mut [MaybeUninit<f32>],
    seed: u64,
    first_row: u64,
) {
    values
        .par_chunks_mut(x.len())
        .enumerate()
        .for_each(|(offset, row)| {
            let row = init_from(row, x);
            let row_seed = split_mix(seed ^ split_mix(first_row + offset as u64));
            noise.add_to(row, &mut Xoshiro256PlusPlus::seed_from_u64(row_seed));
        });
}

/// Writes `src` into `dst` (of the same length) and returns it as initialized.
fn init_from<'a>(dst: &'a mut [MaybeUninit<f32>], src: &[f32]) -> &'a mut [f32] {
    assert_eq!(dst.len(), src.len(), "a row has the input's length");
    for (d, s) in dst.iter_mut().zip(src) {
        d.write(*s);
    }
    // SAFETY: every element was written just above, and `MaybeUninit<f32>` has the layout
    // of `f32`.
    unsafe { &mut *(std::ptr::from_mut(dst) as *mut [f32]) }
}

/// A float tensor of `shape` on the host-memory `device`, its values written by `fill`
/// straight into the tensor's buffer where the backend allows it.
///
/// LibTorch's CPU tensors get a buffer from `torch::empty` that `fill` writes in place:
/// uploading a filled vector instead costs a `torch::zeros` (an OpenMP region whose
/// spinning workers then take a core from the noise threads) and a copy. Flex and NdArray
/// take a vector's buffer as their own, with no copy.
///
/// `fill` must write every value (or panic): the tensor is read as it leaves them.
fn host_batch<B: Backend, const D: usize>(
    shape: [usize; D],
    device: &B::Device,
    fill: impl Fn(&mut [MaybeUninit<f32>]),
) -> Tensor<B, D> {
    #[cfg(feature = "tch")]
    if let Some(tensor) = libtorch::filled_in_place::<B, D>(shape, device, &fill) {
        return tensor;
    }
    let len = shape.iter().product();
    let mut values = Vec::with_capacity(len);
    fill(&mut values.spare_capacity_mut()[..len]);
    // SAFETY: `fill` initialized the first `len` elements, as its contract says.
    unsafe { values.set_len(len) };
    Tensor::from_data(TensorData::new(values, shape), device)
}

#[cfg(feature = "tch")]
mod libtorch {
    use std::any::{Any, TypeId};
    use std::mem::MaybeUninit;

    use burn::backend::LibTorch;
    use burn::backend::libtorch::{LibTorchDevice, TchTensor};
    use burn::tensor::backend::Backend;
    use burn::tensor::{DType, Shape, Tensor, TensorPrimitive};

    /// `Some` tensor of `shape` filled in place by `fill` when `B` is LibTorch (with `f32`);
    /// `None`, without calling `fill`, otherwise. `device` is a host device
    /// ([`noise_on_host`](super::noise_on_host)), so for LibTorch its CPU: the per-batch
    /// test is one `TypeId` comparison, no device name. Generic code on stable Rust reaches
    /// LibTorch's buffer only through such a type test; the values are the same whichever
    /// path writes them.
    pub(super) fn filled_in_place<B: Backend, const D: usize>(
        shape: [usize; D],
        device: &B::Device,
        fill: &dyn Fn(&mut [MaybeUninit<f32>]),
    ) -> Option<Tensor<B, D>> {
        if TypeId::of::<B>() != TypeId::of::<LibTorch>() {
            return None;
        }
        debug_assert_eq!(B::name(device), "libtorch<cpu>", "host batches only");
        let primitive = TchTensor::empty(Shape::from(shape), LibTorchDevice::Cpu, DType::F32);
        let buffer = &primitive.tensor;
        assert!(
            buffer.is_contiguous(),
            "torch::empty gives a contiguous tensor"
        );
        // SAFETY: a fresh, contiguous CPU tensor of `numel` f32 values that nothing else
        // references yet; its memory may hold anything, hence `MaybeUninit`.
        let values = unsafe {
            std::slice::from_raw_parts_mut(
                buffer.data_ptr().cast::<MaybeUninit<f32>>(),
                buffer.numel(),
            )
        };
        fill(values);
        let tensor = Tensor::<LibTorch, D>::from_primitive(TensorPrimitive::Float(primitive));
        let tensor: Box<dyn Any> = Box::new(tensor);
        Some(
            *tensor
                .downcast::<Tensor<B, D>>()
                .expect("B is LibTorch, tested above"),
        )
    }
}
/// Names (as [`Backend::name`] gives them) of the backends whose tensors live in host memory,
/// where the crate draws noise itself on all cores (`fill_perturbed_rows`) instead of with the
/// backend's generator.
const HOST_BACKENDS: [&str; 3] = ["ndarray", "flex", "libtorch<cpu>"];

/// Whether noise for `device` is drawn on the host, by the crate's parallel generator.
///
/// The choice follows the device, not the Rust type: LibTorch's CPU and CUDA devices are one
/// type. Every CPU device of NdArray, Flex and LibTorch draws the same host stream, so a seed
/// gives the same noisy inputs on each of them; GPU devices draw from their own generator.
/// Autodiff-wrapped backends (training, attacks) draw from the backend's generator, which keeps
/// that path exercised on the CPU by the tests.
pub(crate) fn noise_on_host<B: Backend>(device: &B::Device) -> bool {
    HOST_BACKENDS.contains(&B::name(device).as_str())
}

/// One input's part of a packed sampling run: `num` noisy copies of `input` from the noise
/// stream `seed`.
pub(crate) struct Draw<'a, B: Backend, const D: usize> {
    pub(crate) input: &'a CleanInput<B, D>,
    pub(crate) num: u64,
    pub(crate) seed: u64,
}

/// Counts the base classifier's decisions on `num` noisy copies of `x`, in batches of at
/// most `batch_size`, with noise stream `seed`.
pub(crate) fn sample_counts<B, C, N, const D: usize>(
    base: &C,
    noise: &N,
    x: &CleanInput<B, D>,
    num: u64,
    batch_size: usize,
    seed: u64,
) -> Result<Vec<u64>>
where
    B: Backend,
    C: BaseClassifier<D, Backend = B>,
    N: NoiseDistribution,
{
    let draw = Draw {
        input: x,
        num,
        seed,
    };
    let mut counts = sample_counts_packed(base, noise, &[draw], batch_size)?;
    Ok(counts.pop().expect("one count vector per draw"))
}

/// The forward passes that packing draws of `sizes[0]`, `sizes[1]`, ... samples, in that
/// order, into batches of at most `batch_size` rows runs: each pass a list of segments
/// `(draw, first row, rows)`, every pass full but the last, the tail of one draw and the head
/// of the next sharing a pass. The one schedule of [`sample_counts_packed`] and of the
/// warm-up, which runs one pass of each size a job will meet
/// ([`crate::workflow::warm_up::pass_sizes`]). A batch size of zero gives no pass.
pub(crate) struct PackedPasses<'a> {
    sizes: &'a [u64],
    batch_size: usize,
    /// The next row to draw: draw `next`, its row `offset`.
    next: usize,
    offset: u64,
}

impl<'a> PackedPasses<'a> {
    pub(crate) fn new(sizes: &'a [u64], batch_size: usize) -> Self {
        Self {
            sizes,
            batch_size,
            next: 0,
            offset: 0,
        }
    }
}

impl Iterator for PackedPasses<'_> {
    type Item = Vec<(usize, u64, usize)>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut segments = Vec::new();
        let mut rows = 0;
        while rows < self.batch_size && self.next < self.sizes.len() {
            let size = self.sizes[self.next];
            let take = (size - self.offset).min((self.batch_size - rows) as u64) as usize;
            if take > 0 {
                segments.push((self.next, self.offset, take));
            }
            rows += take;
            self.offset += take as u64;
            if self.offset == size {
                self.next += 1;
                self.offset = 0;
            }
        }
        (!segments.is_empty()).then_some(segments)
    }
}

/// Counts the base classifier's decisions for several draws at once, each forward pass
/// filled up to `batch_size` rows: the tail of one draw and the head of the next share a
/// batch. With the host's noise each row is a function of its draw's `(seed, row number)`,
/// and each row's decision of that row alone (see `tests/it/smoothing.rs`), so every draw's
/// counts are what [`sample_counts`] gives it alone. The counts stay on the device until
/// the end: one transfer for all draws.
pub(crate) fn sample_counts_packed<B, C, N, const D: usize>(
    base: &C,
    noise: &N,
    draws: &[Draw<'_, B, D>],
    batch_size: usize,
) -> Result<Vec<Vec<u64>>>
where
    B: Backend,
    C: BaseClassifier<D, Backend = B>,
    N: NoiseDistribution,
{
    let Some(first) = draws.first() else {
        return Ok(Vec::new());
    };
    let device = &first.input.device;
    let classes = base.num_classes();
    let class_ids = Tensor::<B, 1, Int>::arange(0..classes as i64, device).reshape([1, classes]);
    let mut counts: Vec<Tensor<B, 1, Int>> = draws
        .iter()
        .map(|_| Tensor::zeros([classes], device))
        .collect();
    let sizes: Vec<u64> = draws.iter().map(|draw| draw.num).collect();
    for segments in PackedPasses::new(&sizes, batch_size) {
        let rows = segments.iter().map(|&(_, _, take)| take).sum();
        let inputs = packed_batch(noise, draws, &segments, rows);
        let decisions = base.classify(inputs);
        let got = decisions.dims()[0];
        if got != rows {
            return Err(Error::BatchLengthMismatch {
                expected: rows,
                got,
            });
        }
        // One-hot by comparison with 0..classes; a decision outside that range matches no
        // column and is caught by the totals below.
        let hits = decisions
            .reshape([rows, 1])
            .equal(class_ids.clone().expand([rows, classes]))
            .int();
        let mut start = 0;
        for &(d, _, take) in &segments {
            let part = if segments.len() == 1 {
                hits.clone()
            } else {
                hits.clone().slice([start..start + take, 0..classes])
            };
            counts[d] = counts[d].clone() + part.sum_dim(0).reshape([classes]);
            start += take;
        }
    }
    let all: Vec<u64> = Tensor::cat(counts, 0)
        .into_data()
        .iter::<i64>()
        .map(|c| c as u64)
        .collect();
    all.chunks(classes)
        .zip(draws)
        .map(|(counts, draw)| {
            let total: u64 = counts.iter().sum();
            if total != draw.num {
                return Err(Error::ClassOutOfRange {
                    num_classes: classes,
                    out_of_range: draw.num - total,
                    total: draw.num,
                });
            }
            Ok(counts.to_vec())
        })
        .collect()
}

/// The batch of `rows` noisy copies that `segments` (draw, first row, rows) name, in order.
fn packed_batch<B: Backend, N: NoiseDistribution, const D: usize>(
    noise: &N,
    draws: &[Draw<'_, B, D>],
    segments: &[(usize, u64, usize)],
    rows: usize,
) -> Tensor<B, D> {
    if let [(d, first_row, take)] = segments {
        let draw = &draws[*d];
        return draw
            .input
            .perturbed_batch(noise, *take, draw.seed, *first_row);
    }
    let first = draws[segments[0].0].input;
    let mut shape = first.shape;
    shape[0] = rows;
    if let Source::Host(x) = &first.values {
        let row_len = x.len();
        return host_batch(shape, &first.device, |values| {
            let mut start = 0;
            for &(d, first_row, take) in segments {
                let Source::Host(x) = &draws[d].input.values else {
                    unreachable!("inputs on one device have their values in one place")
                };
                let part = &mut values[start * row_len..(start + take) * row_len];
                fill_perturbed_rows(noise, x, part, draws[d].seed, first_row);
                start += take;
            }
        });
    }
    let parts = segments
        .iter()
        .map(|&(d, first_row, take)| {
            let draw = &draws[d];
            draw.input
                .perturbed_batch(noise, take, draw.seed, first_row)
        })
        .collect();
    Tensor::cat(parts, 0)
}
