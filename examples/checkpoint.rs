//! Loads a checkpoint in the paper's layout (`{'epoch', 'arch', 'state_dict', 'optimizer'}`,
//! zip or legacy serialization) and certifies images with it.
//!
//! ```text
//! cargo run --release --example checkpoint -- PATH [n] [images] [sigma]
//! cargo run --release --features cuda --example checkpoint -- PATH 100000 10 0.25
//! cargo run --release --features tch --example checkpoint -- PATH 1000 2 0.25 --backend libtorch
//! ```
//! `--backend` and `--device` choose among the backends compiled in, as in `smoothing`.
//! Defaults: n = 1,000, 2 images, sigma = 0.25, n0 = 100, alpha = 0.001, batch 400. The
//! images are seeded random pixels (the weights decide the answer; this shows the loading
//! and the certification path and measures its speed). To generate full-size checkpoints with
//! random weights: `python3 tests/reference/gen_model_fixtures.py --full DIR`.

use std::time::Instant;

use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use randomized_smoothing::models::{ImageClassifier, PytorchCheckpoint};
use randomized_smoothing::runtime::BackendTask;
use randomized_smoothing::{Certification, CertifyConfig, Gaussian, SmoothedClassifier};

mod common;

type Failure = Box<dyn std::error::Error>;

fn main() -> Result<(), Failure> {
    // Reuse freed memory rather than fault in fresh pages for every layer's output.
    randomized_smoothing::runtime::keep_freed_memory();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = common::runtime_from_args(&mut args)?;
    let run = Run {
        path: args
            .first()
            .ok_or("usage: checkpoint PATH [n] [images] [sigma] [--backend B] [--device D]")?
            .clone(),
        n: args.get(1).map_or(Ok(1_000), |s| s.parse())?,
        images: args.get(2).map_or(Ok(2), |s| s.parse())?,
        sigma: args.get(3).map_or(Ok(0.25), |s| s.parse())?,
    };
    println!("backend: {runtime}");
    runtime.run(run)
}

/// The example's settings; run on whichever backend the runtime names.
struct Run {
    path: String,
    n: u64,
    images: usize,
    sigma: f64,
}

impl BackendTask for Run {
    type Output = Result<(), Failure>;

    fn run<B: Backend>(self, device: B::Device) -> Result<(), Failure> {
        certify_images::<B>(&self, &device)
    }
}

fn certify_images<B: Backend>(run: &Run, device: &B::Device) -> Result<(), Failure> {
    let Run {
        path,
        n,
        images,
        sigma,
    } = run;
    let (n, images, sigma) = (*n, *images, *sigma);

    let start = Instant::now();
    let checkpoint = PytorchCheckpoint::open(path)?;
    // Inference only: fold batch norms into the convolutions (same logits, faster).
    let model = checkpoint.model::<B>(device)?.fold_batch_norm();
    println!(
        "{path}: arch {:?}, epoch {:?}, key prefix {:?}, {} tensors; loaded in {:.2} s",
        checkpoint.arch(),
        checkpoint.epoch(),
        checkpoint.prefix(),
        checkpoint.tensors().count(),
        start.elapsed().as_secs_f64()
    );
    let shape = model.input_shape().to_vec();
    let smoothed = SmoothedClassifier::new(model, Gaussian::new(sigma)?);
    let config = CertifyConfig::default().n(n).batch_size(400).check()?;
    B::seed(device, 1);
    for i in 0..images {
        let x = Tensor::<B, 3>::random(
            [shape[0], shape[1], shape[2]],
            Distribution::Default,
            device,
        );
        let start = Instant::now();
        let result = smoothed.certify(x, &config, i as u64)?;
        let secs = start.elapsed().as_secs_f64();
        let samples = config.n0() + config.n();
        let answer = match result {
            Certification::Certified { class, radius, .. } => {
                format!("class {class}, radius {radius:.3}")
            }
            Certification::Abstain { reason, .. } => format!("abstain ({reason:?})"),
        };
        println!(
            "image {i}: {answer}; {samples} samples in {secs:.2} s ({:.0} samples/s)",
            samples as f64 / secs
        );
    }
    Ok(())
}
