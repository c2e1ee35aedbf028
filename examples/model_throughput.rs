//! Throughput of the paper's architectures: forward images/s and CERTIFY samples/s.
//!
//! ```text
//! cargo run --release --example model_throughput                     # Flex (CPU)
//! cargo run --release --example model_throughput -- --backend ndarray
//! cargo run --release --features cuda --example model_throughput     # CUDA
//! cargo run --release --example model_throughput -- cifar_resnet110 100,400
//! cargo run --release --example model_throughput -- cifar_resnet110 400 folded
//! ```
//! `--backend` and `--device` choose among the backends compiled in, as in `smoothing`.
//! Arguments: architectures (comma-separated, default `cifar_resnet20,cifar_resnet110`) and
//! batch sizes (default `100,400`), then the variants (default `built,folded`): each
//! architecture as built and with its batch norms folded into the convolutions (as `smoothing`
//! runs it). On Flex the built variant is slow (Burn's broadcast batch norm), so timing the
//! kernels alone names `folded`. Weights are random: speed does not depend on them. Each
//! figure is the median of 5 timed repetitions after one warm-up. Figures go in
//! docs/benchmarks.md.

use std::time::Instant;

use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use randomized_smoothing::models::{Architecture, ImageClassifier};
use randomized_smoothing::runtime::BackendTask;
use randomized_smoothing::{Gaussian, SmoothedClassifier};

mod common;

type Failure = Box<dyn std::error::Error>;

const REPEATS: usize = 5;

/// Median seconds of `REPEATS` runs of `f`, after one warm-up run.
fn median_secs(mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..REPEATS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[REPEATS / 2]
}

fn main() -> Result<(), Failure> {
    // Reuse freed memory rather than fault in fresh pages for every layer's output.
    randomized_smoothing::runtime::keep_freed_memory();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = common::runtime_from_args(&mut args)?;
    let archs = args
        .first()
        .map(String::as_str)
        .unwrap_or("cifar_resnet20,cifar_resnet110")
        .to_string();
    let batches: Vec<usize> = args
        .get(1)
        .map(String::as_str)
        .unwrap_or("100,400")
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let mut variants = Vec::new();
    for variant in args
        .get(2)
        .map(String::as_str)
        .unwrap_or("built,folded")
        .split(',')
    {
        variants.push(match variant {
            "built" => false,
            "folded" => true,
            other => return Err(format!("unknown variant {other:?}: built or folded").into()),
        });
    }
    println!("backend: {runtime}");
    runtime.run(Throughput {
        archs,
        batches,
        variants,
    })
}

/// The measurement, on whichever backend the runtime names.
struct Throughput {
    archs: String,
    batches: Vec<usize>,
    /// Whether each variant folds the batch norms.
    variants: Vec<bool>,
}

impl BackendTask for Throughput {
    type Output = Result<(), Failure>;

    fn run<B: Backend>(self, device: B::Device) -> Result<(), Failure> {
        measure::<B>(&self.archs, &self.batches, &self.variants, &device)
    }
}

fn measure<B: Backend>(
    archs: &str,
    batches: &[usize],
    variants: &[bool],
    device: &B::Device,
) -> Result<(), Failure> {
    B::seed(device, 0);
    println!("| architecture | batch | forward images/s | certify samples/s |");
    println!("| --- | ---: | ---: | ---: |");
    let variants = archs
        .split(',')
        .flat_map(|name| variants.iter().map(move |&folded| (name, folded)));
    for (name, folded) in variants {
        let arch: Architecture = name.parse()?;
        let model = arch.init::<B>(arch.default_classes(), device)?;
        let (model, name) = if folded {
            (
                model.fold_batch_norm(),
                format!("{name}, batch norm folded"),
            )
        } else {
            (model, name.to_string())
        };
        let shape = arch.input_shape();
        let smoothed = SmoothedClassifier::new(model, Gaussian::new(0.25)?);
        let x = Tensor::<B, 3>::random(shape, Distribution::Default, device);
        for &batch in batches {
            let inputs = Tensor::<B, 4>::random(
                [batch, shape[0], shape[1], shape[2]],
                Distribution::Default,
                device,
            );
            // Forward, arg-max and read-back of a ready batch.
            let forward = median_secs(|| {
                smoothed
                    .base()
                    .forward(inputs.clone())
                    .argmax(1)
                    .into_data();
            });
            // The certification sampling loop: noise on the device, forward, counting.
            let samples = 2 * batch as u64;
            // A new noise stream for each call.
            let mut seed = 0u64;
            let certify = median_secs(|| {
                smoothed
                    .sample_counts(x.clone(), samples, batch, next(&mut seed))
                    .expect("valid arguments");
            });
            println!(
                "| {name} | {batch} | {:.0} | {:.0} |",
                batch as f64 / forward,
                samples as f64 / certify
            );
        }
    }
    Ok(())
}

/// Steps `seed` and returns it: a fresh noise stream per call.
fn next(seed: &mut u64) -> u64 {
    *seed += 1;
    *seed
}
