//! Quickstart: train, smooth and certify a digit classifier end to end, on the CPU, in a few
//! minutes.
//!
//! Trains a small CNN with Gaussian data augmentation (sigma = 0.25, pixels in [0, 1]) on
//! the first 1,437 of the 1,797 digits embedded in the crate, then runs the paper's CERTIFY
//! (n0 = 100, n = 10,000, alpha = 0.001) on the 360 held-out digits. Writes the certification
//! log in the paper's TSV format to `target/quickstart/certify_digits_sigma_0.25.tsv` and
//! prints the certified accuracy with its Appendix D lower bound; plots it to
//! `target/quickstart/certified_accuracy.svg` and `.png`.
//!
//! Run with `cargo run --release --example quickstart`; `-- --seed K` trains from another
//! initialization and noise stream (the README averages seeds 0, 1 and 2).

use std::fs;
use std::path::PathBuf;
use std::time::Instant;

use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use burn::tensor::backend::Backend;
use randomized_smoothing::certificate::accuracy::{
    AccuracyBound, approximate_certified_accuracy, certified_accuracy_lower_bound,
};
use randomized_smoothing::data::digits;
use randomized_smoothing::models::SmallCnnConfig;
use randomized_smoothing::workflow::jobs::{Job, Selection, Shard, certify_dataset};
use randomized_smoothing::workflow::plot::{Curve, plot_certified_accuracy};
use randomized_smoothing::workflow::train::{TrainConfig, train};
use randomized_smoothing::{CertifyConfig, Gaussian, SmoothedClassifier};

mod common;

const SIGMA: f64 = 0.25;
// 32 filters and 60 epochs (16 and 20 at first, then 24 and 40): at r = 0.75, where nearly
// every noisy sample must be right, wider networks trained longer certify more digits, and
// with the crate's convolution kernels Flex certifies all 360 in about two minutes
// (README; variants measured in docs/benchmarks.md).
const FILTERS: usize = 32;
const EPOCHS: usize = 60;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Reuse freed memory rather than fault in fresh pages for every layer's output.
    randomized_smoothing::runtime::keep_freed_memory();
    let seed: u64 = match std::env::args().skip(1).collect::<Vec<_>>().as_slice() {
        [] => 0,
        [flag, k] if flag == "--seed" => k.parse()?,
        _ => return Err("usage: quickstart [--seed K]".into()),
    };
    let device: burn::tensor::Device<Flex> = Default::default();
    let (train_set, test_set) = digits()?.split_at(1_437)?;

    // Normalization statistics of the training pixels, for the model's first layer.
    let pixels: Vec<f32> = (0..train_set.len())
        .flat_map(|i| train_set.image(i).to_vec())
        .collect();
    let mean = pixels.iter().sum::<f32>() / pixels.len() as f32;
    let std = (pixels.iter().map(|p| (p - mean).powi(2)).sum::<f32>() / pixels.len() as f32).sqrt();

    eprintln!(
        "training a small CNN on {} digits with Gaussian augmentation, sigma = {SIGMA}",
        train_set.len()
    );
    let model = SmallCnnConfig::new([1, 8, 8], 10)
        .with_filters(FILTERS)
        .with_mean(vec![mean])
        .with_std(vec![std]);
    // Seed the backend's generator, which initializes the weights: the run is reproducible.
    // Training and certification run on Flex, the crate's default CPU backend: the fastest
    // of Burn's pure-Rust CPU backends for this network (docs/benchmarks.md).
    <Autodiff<Flex> as Backend>::seed(&Default::default(), seed);
    let trained_on = model.init::<Autodiff<Flex>>(&Default::default())?;
    let config = TrainConfig::new(SIGMA)
        .epochs(EPOCHS)
        .batch_size(64)
        .lr(0.1)
        .lr_schedule(EPOCHS * 2 / 3, 0.1)
        .check()?;
    let trained = train(
        trained_on,
        &train_set,
        &test_set,
        &config,
        None,
        seed,
        |e| {
            eprintln!(
                "  epoch {:>2}: {:.1} s, train acc {:.3}, held-out acc under noise {:.3}",
                e.epoch,
                e.time.as_secs_f64(),
                e.train_acc,
                e.test_acc
            );
        },
    )?;

    let base = trained.valid();
    let smoothed = SmoothedClassifier::new(base, Gaussian::new(SIGMA)?);
    let certify = CertifyConfig::default()
        .n0(100)
        .n(10_000)
        .alpha(0.001)
        .batch_size(1_000)
        .check()?;

    let output = PathBuf::from(format!(
        "target/quickstart/certify_digits_sigma_{SIGMA}.tsv"
    ));
    // A fresh log: an existing one would be resumed, and it belongs to a previous model.
    let _ = fs::remove_file(&output);
    let job = Job {
        selection: Selection::new(1, None, Shard::whole())?,
        seed,
        output: output.clone(),
    };
    eprintln!(
        "certifying {} held-out digits: n0 = {}, n = {}, alpha = {}",
        test_set.len(),
        certify.n0(),
        certify.n(),
        certify.alpha()
    );
    let start = Instant::now();
    let rows = certify_dataset(
        &smoothed,
        &test_set,
        &certify,
        &job,
        &device,
        |_, done, total| {
            if done % 40 == 0 || done == total {
                eprintln!(
                    "  {done:>3}/{total} digits, {:.0} s",
                    start.elapsed().as_secs_f64()
                );
            }
        },
    )?;
    let outcomes: Vec<_> = rows.iter().map(|r| r.outcome()).collect();
    let samples = test_set.len() as f64 * (certify.n0() + certify.n()) as f64;
    println!(
        "\ncertified {} digits in {:.0} s ({:.0} noisy samples/s); log: {}\n",
        test_set.len(),
        start.elapsed().as_secs_f64(),
        samples / start.elapsed().as_secs_f64(),
        output.display()
    );
    common::print_certified_accuracy(&outcomes, &[0.0, 0.25, 0.5, 0.75], certify.alpha())?;

    // Certified accuracy against radius, with its Appendix D lower bound, as SVG and PNG.
    let grid: Vec<f64> = (0..=90).map(|i| i as f64 * 0.01).collect();
    let curve = approximate_certified_accuracy(&outcomes, &grid)?;
    let lower = curve
        .iter()
        .map(|&a| {
            certified_accuracy_lower_bound(
                a,
                outcomes.len() as u64,
                certify.alpha(),
                0.001,
                AccuracyBound::default(),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let curves = [
        Curve::new(
            format!("sigma = {SIGMA}"),
            grid.iter().copied().zip(curve).collect(),
        ),
        Curve::new(
            format!(
                "lower bound (Appendix D, {}, rho = 0.001)",
                AccuracyBound::default().name()
            ),
            grid.iter().copied().zip(lower).collect(),
        )
        .dashed(),
    ];
    for ext in ["svg", "png"] {
        let path = PathBuf::from(format!("target/quickstart/certified_accuracy.{ext}"));
        plot_certified_accuracy(&curves, "digits, small CNN, n = 10,000", &path)?;
        println!("plot: {}", path.display());
    }
    Ok(())
}
