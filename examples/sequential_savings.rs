//! What the options beyond the paper buy on a trained model: forward passes saved by the
//! sequential procedures, and radius gained by the two-sided certificate.
//!
//! Trains the quickstart's digit classifier (small CNN, sigma = 0.25, 20 epochs), then on
//! every `EVERY`-th held-out digit runs, at alpha = 0.001:
//! - CERTIFY with n0 = 100, n = 100,000 (the paper's procedure), one-sided and two-sided on
//!   the same samples (same seed);
//! - `certify_at_radius` at r = 0.25 and 0.5 (looks at 100, 200, ..., 100,000 samples);
//! - `certify_budgeted` with a radius tolerance of 0.02.
//!
//! Prints per-procedure totals as a Markdown table.
//!
//! Run with `cargo run --release --example sequential_savings [EVERY]` (default 6: 60 digits).

use std::time::Instant;

use burn::backend::{Autodiff, Flex, NdArray};
use burn::module::AutodiffModule;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use randomized_smoothing::data::digits;
use randomized_smoothing::models::{SmallCnnConfig, transfer};
use randomized_smoothing::train::{TrainParams, train};
use randomized_smoothing::{
    CertifyParams, Gaussian, SequentialParams, SmoothedClassifier, Verdict,
};

const SIGMA: f64 = 0.25;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let every: usize = std::env::args().nth(1).map_or(Ok(6), |a| a.parse())?;
    let (train_set, test_set) = digits()?.split_at(1_437)?;
    let config = SmallCnnConfig::new([1, 8, 8], 10)
        .with_filters(16)
        .with_mean(vec![0.3])
        .with_std(vec![0.35]);
    <Autodiff<Flex> as Backend>::seed(&Default::default(), 0);
    let model = config.init::<Autodiff<Flex>>(&Default::default())?;
    let params = TrainParams::new(SIGMA)
        .epochs(20)
        .batch_size(64)
        .lr(0.1)
        .lr_schedule(13, 0.1)
        .check()?;
    let trained = train(model, &train_set, &test_set, &params, None, 0, |_| {})?;
    let device = Default::default();
    let base = transfer(&trained.valid(), config.init::<NdArray>(&device)?)?;
    let smoothed = SmoothedClassifier::new(base, Gaussian::new(SIGMA)?);

    let fixed = CertifyParams::default().batch_size(1_000).check()?;
    let two_sided = CertifyParams::default()
        .batch_size(1_000)
        .two_sided(true)
        .check()?;
    let sequential = SequentialParams::default().batch_size(1_000).check()?;
    let budgeted = SequentialParams::default()
        .batch_size(1_000)
        .tolerance(0.02)
        .check()?;
    let radii = [0.25, 0.5];

    let indices: Vec<usize> = (0..test_set.len()).step_by(every).collect();
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
            Tensor::<NdArray, 3>::from_data(
                TensorData::new(test_set.image(i).to_vec(), [1, 8, 8]),
                &device,
            )
        };
        let label = test_set.label(i);
        let correct_radius = |class: Option<usize>, radius: Option<f64>| {
            (class == Some(label)).then(|| radius.unwrap_or(0.0))
        };
        let seed = 1_000 + i as u64;
        let c = smoothed.certify(x(), &fixed, &mut StdRng::seed_from_u64(seed))?;
        let fixed_r = correct_radius(c.class(), c.radius());
        fixed_radius.push(fixed_r);
        let c = smoothed.certify(x(), &two_sided, &mut StdRng::seed_from_u64(seed))?;
        two_sided_radius.push(correct_radius(c.class(), c.radius()));
        let b = smoothed.certify_budgeted(x(), &budgeted, &mut StdRng::seed_from_u64(seed))?;
        budgeted_radius.push(correct_radius(b.verdict.class(), b.verdict.radius()));
        budgeted_samples += b.samples;
        for (k, &r) in radii.iter().enumerate() {
            let d = smoothed.certify_at_radius(
                x(),
                r,
                &sequential,
                &mut StdRng::seed_from_u64(seed),
            )?;
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
            "  {}/{} digits, {:.0} s",
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
    println!(
        "\n{} held-out digits (every {every}-th), sigma = {SIGMA}, alpha = 0.001\n",
        indices.len()
    );
    println!(
        "| procedure | forward passes per input | certified acc. r=0.25 | r=0.5 | r=0.75 | mean radius (correct) |"
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
            accuracy(radii, 0.25),
            accuracy(radii, 0.5),
            accuracy(radii, 0.75),
            mean(radii)
        );
    }
    println!(
        "\n| radius | certified by CERTIFY | also by certify_at_radius | its forward passes on them (mean) | saving | its mean over all inputs |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    for (k, &r) in radii.iter().enumerate() {
        let (certified, agreed, spent, all) = at_radius[k];
        let per = spent as f64 / certified.max(1) as f64;
        println!(
            "| {r} | {certified} | {agreed} | {per:.0} | {:.0}x | {:.0} |",
            fixed_cost / per,
            all as f64 / m
        );
    }
    Ok(())
}
