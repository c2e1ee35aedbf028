//! Warming a backend up before a data-set job: one forward pass of every batch size the job
//! can run, before its first row is timed.
//!
//! A CubeCL backend (`cuda`, `vulkan`) compiles and autotunes kernels the first time it meets
//! a shape: seconds to minutes (docs/benchmarks.md), which a job would otherwise charge to its
//! first rows' time and to its progress rate. The CPU backends compile nothing, and a program
//! can skip the warm-up there ([`compiles_kernels`]).

use std::time::{Duration, Instant};

use burn::tensor::backend::Backend;

use super::jobs::{Job, image, logged_examples};
use crate::data::ImageSource;
use crate::error::{Result, check_positive};
use crate::smoothing::sampling::PackedPasses;
use crate::smoothing::{BaseClassifier, NoiseDistribution, SmoothedClassifier};

/// The seed of the warm-up's noise: any will do, since its counts are thrown away and no
/// row's noise depends on what was drawn before it.
const WARM_UP_SEED: u64 = 0x5741_524d;

/// What a warm-up ran: the batch sizes, largest first, and the time they took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmUp {
    /// One forward pass of each of these sizes ran.
    pub batch_sizes: Vec<usize>,
    /// Their total time: on a cold CubeCL backend, mostly compiling and autotuning.
    pub elapsed: Duration,
}

/// The batch sizes of the forward passes that a packed data-set job of `examples` examples
/// runs: groups of `inputs_per_pass` and one of the rest, each group drawing, one packed run
/// after the other, each count of `samples_per_input` per input (CERTIFY: `[n0, n]`;
/// PREDICT: `[n]`), in passes of `batch_size` and one last pass of the rest. Largest first.
///
/// # Errors
/// [`Error::ZeroCount`](crate::Error::ZeroCount) for zero inputs per pass, batch size, or count.
///
/// # Example
/// ```
/// use randomized_smoothing::workflow::warm_up::pass_sizes;
///
/// // CERTIFY at n0 = 100, n = 100,000, batch 400, 10 examples 4 at a time: the groups of
/// // 4 fill passes of 400; the last group, of 2, selects in a pass of 200.
/// assert_eq!(pass_sizes(&[100, 100_000], 10, 4, 400)?, [400, 200]);
/// // One example at a time: a selection pass of 100, and full passes.
/// assert_eq!(pass_sizes(&[100, 100_000], 10, 1, 400)?, [400, 100]);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn pass_sizes(
    samples_per_input: &[u64],
    examples: usize,
    inputs_per_pass: usize,
    batch_size: usize,
) -> Result<Vec<usize>> {
    let group = check_positive("inputs per pass", inputs_per_pass as u64)? as usize;
    check_positive("batch size", batch_size as u64)?;
    // The group sizes that `jobs::run_groups` cuts the examples into.
    let groups = [
        (examples >= group).then_some(group),
        Some(examples % group).filter(|&rest| rest > 0),
    ];
    let mut sizes = std::collections::BTreeSet::new();
    for &samples in samples_per_input {
        check_positive("samples per input", samples)?;
        for inputs in groups.into_iter().flatten() {
            // The sampling loop's own schedule (a step per pass the job will run, which
            // costs nothing beside running them).
            for pass in PackedPasses::new(&vec![samples; inputs], batch_size) {
                sizes.insert(pass.iter().map(|&(_, _, rows)| rows).sum::<usize>());
            }
        }
    }
    Ok(sizes.into_iter().rev().collect())
}

/// Runs one forward pass of each of the [`pass_sizes`] that the job's examples not yet in
/// its log will run, on noisy copies of the first of them, through the whole sampling loop
/// (noise, model, counting, the read-back of the counts), and throws the counts away. The
/// job's rows are unchanged: each row's noise is a function of its example's seed alone on
/// the CPU, and GPU generators are reseeded for each pass.
///
/// The examples in the log are read from the first column of its complete rows, whatever
/// the log's kind; the job itself checks the rows.
///
/// # Errors
/// As [`pass_sizes`]; [`Error::Io`](crate::Error::Io) for a log that exists but cannot be read; the
/// errors of loading the example and of [`SmoothedClassifier::sample_counts`]. A job with no
/// example left warms nothing up.
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use randomized_smoothing::workflow::jobs::{Job, Selection, Shard};
/// use randomized_smoothing::workflow::warm_up::warm_up;
/// use randomized_smoothing::{Gaussian, LogitsClassifier, SmoothedClassifier};
///
/// let data = randomized_smoothing::data::digits()?;
/// let base = LogitsClassifier::new([1, 8, 8], 2, |x: Tensor<NdArray, 4>| {
///     let m = x.flatten::<2>(1, 3).mean_dim(1);
///     Tensor::cat(vec![m.clone().neg() + 0.3, m - 0.3], 1)
/// })?;
/// let smoothed = SmoothedClassifier::new(base, Gaussian::new(0.25)?);
/// let job = Job { selection: Selection::new(1, Some(5), Shard::whole())?, seed: 0, output: "unused.tsv".into() };
/// let warm = warm_up(&smoothed, &data, &job, &[100, 1_000], 2, 400, &Default::default())?;
/// assert_eq!(warm.batch_sizes, [400, 200, 100]);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn warm_up<B, C, N, S, const D: usize>(
    smoothed: &SmoothedClassifier<C, N>,
    data: &S,
    job: &Job,
    samples_per_input: &[u64],
    inputs_per_pass: usize,
    batch_size: usize,
    device: &B::Device,
) -> Result<WarmUp>
where
    B: Backend,
    C: BaseClassifier<D, Backend = B>,
    N: NoiseDistribution,
    S: ImageSource + ?Sized,
{
    let done = logged_examples(&job.output)?;
    let pending: Vec<usize> = job
        .selection
        .indices(data.len())
        .into_iter()
        .filter(|idx| !done.contains(idx))
        .collect();
    let batch_sizes = pass_sizes(
        samples_per_input,
        pending.len(),
        inputs_per_pass,
        batch_size,
    )?;
    let started = Instant::now();
    let Some(&first) = pending.first() else {
        return Ok(WarmUp {
            batch_sizes: Vec::new(),
            elapsed: Duration::ZERO,
        });
    };
    let x = image::<B, S>(data, first, device)?;
    for &size in &batch_sizes {
        smoothed.sample_counts(x.clone(), size as u64, size, WARM_UP_SEED)?;
    }
    Ok(WarmUp {
        batch_sizes,
        elapsed: started.elapsed(),
    })
}

/// Whether backend `B` compiles kernels at run time on `device` (Burn's CubeCL backends),
/// so that a job gains from a [`warm_up`]: the CPU backends and LibTorch do not.
pub fn compiles_kernels<B: Backend>(device: &B::Device) -> bool {
    B::name(device).contains("cubecl")
}
