//! What the options beyond the paper buy on a trained model: forward passes saved by the
//! sequential procedures, and radius gained by the two-sided certificate.
//!
//! Two setups:
//! - `sequential_savings [EVERY]` trains the quickstart's digit classifier (small CNN,
//!   sigma = 0.25, 20 epochs) and uses every `EVERY`-th held-out digit (default 6: 60 digits);
//! - `sequential_savings mnist DATA_DIR MODEL SIGMA [COUNT]` loads a small CNN (16 filters)
//!   that `smoothing train --dataset mnist` wrote, and uses `COUNT` (default 20) images spread
//!   evenly over the held-out 2,000 of `DATA_DIR`'s t10k files.
//!
//! On each input, at alpha = 0.001:
//! - CERTIFY with n0 = 100, n = 100,000 (the paper's procedure), one-sided and two-sided on
//!   the same samples (same seed);
//! - `certify_at_radius` at r = sigma and 2 sigma (looks at 100, 200, ..., 100,000 samples);
//! - `certify_budgeted` with a radius tolerance of 0.02.
//!
//! Then times the fixed-radius test at r = sigma on all inputs one at a time and packed
//! (`certify_at_radius_many`).
//!
//! Prints per-procedure totals as a Markdown table. Runs on Flex, or on the GPU when built
//! with `--features cuda`.

use std::time::Instant;

use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use randomized_smoothing::data::{Dataset, digits, load_mnist};
use randomized_smoothing::models::{Model, SmallCnnConfig, load_model, transfer};
use randomized_smoothing::workflow::train::{TrainConfig, train};
use randomized_smoothing::{
    CertifyConfig, Gaussian, SequentialConfig, SmoothedClassifier, Verdict,
};

// Inference (and so all sampling) on the GPU with `--features cuda`, else on Flex;
// the digits model is trained on Flex either way and copied over.
#[cfg(feature = "cuda")]
type B = burn::backend::Cuda;
#[cfg(not(feature = "cuda"))]
type B = burn::backend::Flex;

type Setup = (Model<B>, Dataset, f64, Vec<usize>, String);

/// The quickstart's digit model, trained here, and every `every`-th held-out digit.
fn digits_setup(every: usize) -> Result<Setup, Box<dyn std::error::Error>> {
    const SIGMA: f64 = 0.25;
    let (train_set, test_set) = digits()?.split_at(1_437)?;
    let config = SmallCnnConfig::new([1, 8, 8], 10)
        .with_filters(16)
        .with_mean(vec![0.3])
        .with_std(vec![0.35]);
    <Autodiff<Flex> as Backend>::seed(&Default::default(), 0);
    let model = config.init::<Autodiff<Flex>>(&Default::default())?;
    let params = TrainConfig::new(SIGMA)
        .epochs(20)
        .batch_size(64)
        .lr(0.1)
        .lr_schedule(13, 0.1)
        .check()?;
    let trained = train(model, &train_set, &test_set, &params, None, 0, |_| {})?;
    let base = transfer(&trained.valid(), config.init::<B>(&Default::default())?)?;
    let indices = (0..test_set.len()).step_by(every).collect::<Vec<_>>();
    let what = format!("{} held-out digits (every {every}-th)", indices.len());
    Ok((Model::SmallCnn(base), test_set, SIGMA, indices, what))
}

/// A small CNN trained by the CLI on MNIST (normalization and split as the CLI's).
fn mnist_setup(args: &[String]) -> Result<Setup, Box<dyn std::error::Error>> {
    let [dir, model, sigma, rest @ ..] = args else {
        return Err("usage: sequential_savings mnist DATA_DIR MODEL SIGMA [COUNT]".into());
    };
    let count: usize = rest.first().map_or(Ok(20), |c| c.parse())?;
    let dir = std::path::Path::new(dir);
    let all = load_mnist(
        dir.join("t10k-images-idx3-ubyte.gz"),
        dir.join("t10k-labels-idx1-ubyte.gz"),
    )?;
    let (_, test_set) = all.split_at(8_000)?;
    let config = SmallCnnConfig::new([1, 28, 28], 10)
        .with_filters(16)
        .with_mean(vec![0.1307])
        .with_std(vec![0.3081]);
    // The CLI saves the run-time `Model` enum, whose keys carry the variant's name.
    let fresh = Model::SmallCnn(config.init::<B>(&Default::default())?);
    let base = load_model(fresh, model)?;
    let step = (test_set.len() / count.max(1)).max(1);
    let indices = (0..test_set.len())
        .step_by(step)
        .take(count)
        .collect::<Vec<_>>();
    let what = format!("{} held-out MNIST images (every {step}-th)", indices.len());
    Ok((base, test_set, sigma.parse()?, indices, what))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Reuse freed memory rather than fault in fresh pages for every layer's output.
    randomized_smoothing::runtime::keep_freed_memory();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (base, test_set, sigma, indices, what) = match args.first().map(String::as_str) {
        Some("mnist") => mnist_setup(&args[1..])?,
        every => digits_setup(every.map_or(Ok(6), str::parse)?)?,
    };
    let shape: [usize; 3] = test_set.image_shape().try_into()?;
    let device = Default::default();
    let smoothed = SmoothedClassifier::new(base, Gaussian::new(sigma)?);

    let fixed = CertifyConfig::default().batch_size(1_000).check()?;
    let two_sided = CertifyConfig::default()
        .batch_size(1_000)
        .two_sided(true)
        .check()?;
    let sequential = SequentialConfig::default().batch_size(1_000).check()?;
    let budgeted = SequentialConfig::default()
        .batch_size(1_000)
        .tolerance(0.02)
        .check()?;
    let radii = [sigma, 2.0 * sigma];

    let mut fixed_radius = Vec::new();
    let mut two_sided_radius = Vec::new();
    let mut budgeted_radius = Vec::new();
    let mut budgeted_samples = 0u64;
    // Per radius: (certified by CERTIFY, also by the sequential test, samples the sequential
    // test spent on those inputs, samples in all).
    let mut at_radius = vec![(0u64, 0u64, 0u64, 0u64); radii.len()];
    let start = Instant::now();
    for (done, &i) in indices.iter().enumerate() {
        let x = || {
            Tensor::<B, 3>::from_data(TensorData::new(test_set.image(i).to_vec(), shape), &device)
        };
        let label = test_set.label(i);
        let correct_radius = |class: Option<usize>, radius: Option<f64>| {
            (class == Some(label)).then(|| radius.unwrap_or(0.0))
        };
        let seed = 1_000 + i as u64;
        let c = smoothed.certify(x(), &fixed, seed)?;
        let fixed_r = correct_radius(c.class(), c.radius());
        fixed_radius.push(fixed_r);
        let c = smoothed.certify(x(), &two_sided, seed)?;
        two_sided_radius.push(correct_radius(c.class(), c.radius()));
        let b = smoothed.certify_budgeted(x(), &budgeted, seed)?;
        budgeted_radius.push(correct_radius(b.verdict.class(), b.verdict.radius()));
        budgeted_samples += b.samples;
        for (k, &r) in radii.iter().enumerate() {
            let d = smoothed.certify_at_radius(x(), r, &sequential, seed)?;
            let certified = d.verdict == Verdict::Certified && d.estimate.candidate == label;
            let fixed_certified = fixed_r.is_some_and(|radius| radius >= r);
            let entry = &mut at_radius[k];
            entry.3 += d.samples;
            if fixed_certified {
                entry.0 += 1;
                entry.1 += u64::from(certified);
                entry.2 += d.samples;
            }
        }
        eprintln!(
            "  {}/{} inputs, {:.0} s",
            done + 1,
            indices.len(),
            start.elapsed().as_secs_f64()
        );
    }

    let m = indices.len() as f64;
    let accuracy = |radii: &[Option<f64>], r: f64| {
        radii.iter().filter(|x| x.is_some_and(|x| x >= r)).count() as f64 / m
    };
    let mean = |radii: &[Option<f64>]| radii.iter().map(|x| x.unwrap_or(0.0)).sum::<f64>() / m;
    let fixed_cost = (fixed.n0() + fixed.n()) as f64;
    println!("\n{what}, sigma = {sigma}, alpha = 0.001\n");
    let at = [sigma, 2.0 * sigma, 3.0 * sigma];
    println!(
        "| procedure | forward passes per input | certified acc. r={} | r={} | r={} | mean radius (correct) |",
        at[0], at[1], at[2]
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (name, radii, cost) in [
        ("CERTIFY, n = 100,000", &fixed_radius, fixed_cost),
        (
            "CERTIFY two-sided, n = 100,000",
            &two_sided_radius,
            fixed_cost,
        ),
        (
            "certify_budgeted, tolerance 0.02",
            &budgeted_radius,
            budgeted_samples as f64 / m,
        ),
    ] {
        println!(
            "| {name} | {cost:.0} | {:.3} | {:.3} | {:.3} | {:.4} |",
            accuracy(radii, at[0]),
            accuracy(radii, at[1]),
            accuracy(radii, at[2]),
            mean(radii)
        );
    }
    println!(
        "\n| radius | certified by CERTIFY | also by certify_at_radius | its forward passes on them (mean) | saving | its mean over all inputs |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    for (k, &r) in radii.iter().enumerate() {
        let (certified, agreed, spent, all) = at_radius[k];
        let (per, saving) = if certified == 0 {
            ("-".to_string(), "-".to_string())
        } else {
            let per = spent as f64 / certified as f64;
            (format!("{per:.0}"), format!("{:.0}x", fixed_cost / per))
        };
        println!(
            "| {r} | {certified} | {agreed} | {per} | {saving} | {:.0} |",
            all as f64 / m
        );
    }

    // The fixed-radius test at r = sigma once more, one input at a time and with all inputs
    // packed into shared forward passes (`certify_at_radius_many`): the later looks hold few
    // samples per input, which packing gathers into full batches.
    let inputs: Vec<_> = indices
        .iter()
        .map(|&i| {
            let x = Tensor::<B, 3>::from_data(
                TensorData::new(test_set.image(i).to_vec(), shape),
                &device,
            );
            (x, 1_000 + i as u64)
        })
        .collect();
    let start = Instant::now();
    let alone = inputs
        .iter()
        .map(|(x, seed)| smoothed.certify_at_radius(x.clone(), sigma, &sequential, *seed))
        .collect::<Result<Vec<_>, _>>()?;
    let alone_time = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let packed = smoothed.certify_at_radius_many(inputs, sigma, &sequential)?;
    let packed_time = start.elapsed().as_secs_f64();
    println!(
        "\n| certify_at_radius, r = {sigma}, {} inputs | one at a time | packed | speed-up | same answers |",
        indices.len()
    );
    println!("| --- | ---: | ---: | ---: | --- |");
    println!(
        "| wall time | {alone_time:.2} s | {packed_time:.2} s | {:.2}x | {} |",
        alone_time / packed_time,
        if alone == packed { "yes" } else { "no" }
    );
    Ok(())
}
