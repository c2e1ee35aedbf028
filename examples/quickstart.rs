//! Quickstart: certify held-out handwritten digits end to end, on the CPU, in seconds.
//!
//! Fits a nearest-centroid base classifier on the first 1,437 of the 1,797 embedded 8x8
//! digits, smooths it with Gaussian noise (sigma = 0.25, pixels in [0, 1]) and runs the
//! paper's CERTIFY (n0 = 100, n = 10,000, alpha = 0.001) on the 360 held-out digits, then
//! prints the approximate certified accuracy and its Appendix D lower bound.
//!
//! Run with `cargo run --release --example quickstart`.

use std::time::Instant;

use burn::backend::NdArray;
use burn::tensor::{Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use randomized_smoothing::accuracy::{
    AccuracyBound, Outcome, approximate_certified_accuracy, certified_accuracy_lower_bound,
};
use randomized_smoothing::data::{Dataset, digits};
use randomized_smoothing::{CertifyParams, Gaussian, LogitsClassifier, SmoothedClassifier};

type B = NdArray;

/// Class means of the training images, as a `[classes, pixels]` tensor.
fn class_means(train: &Dataset, device: &burn::backend::ndarray::NdArrayDevice) -> Tensor<B, 2> {
    let d = train.image(0).len();
    let mut sums = vec![0f32; train.num_classes() * d];
    let mut counts = vec![0f32; train.num_classes()];
    for i in 0..train.len() {
        let c = train.label(i);
        counts[c] += 1.0;
        sums[c * d..(c + 1) * d]
            .iter_mut()
            .zip(train.image(i))
            .for_each(|(s, p)| *s += p);
    }
    for (c, n) in counts.iter().enumerate() {
        sums[c * d..(c + 1) * d]
            .iter_mut()
            .for_each(|s| *s /= n.max(1.0));
    }
    Tensor::from_data(TensorData::new(sums, [train.num_classes(), d]), device)
}

fn main() -> Result<(), randomized_smoothing::Error> {
    let device = Default::default();
    let (train, test) = digits()?.split_at(1_437)?;

    // Nearest centroid: logits -||x - mu_c||^2 + ||x||^2 = 2 x.mu_c - ||mu_c||^2.
    let means = class_means(&train, &device);
    let norms = means
        .clone()
        .powf_scalar(2.0)
        .sum_dim(1)
        .reshape([1, train.num_classes()]);
    let means_t = means.transpose();
    let base = LogitsClassifier::new([1, 8, 8], 10, move |x: Tensor<B, 4>| {
        x.flatten::<2>(1, 3).matmul(means_t.clone()).mul_scalar(2.0) - norms.clone()
    })?;
    let sigma = 0.25;
    let smoothed = SmoothedClassifier::new(base, Gaussian::new(sigma)?);
    let config = CertifyParams::default()
        .n0(100)
        .n(10_000)
        .alpha(0.001)
        .batch_size(2_000)
        .check()?;

    eprintln!(
        "certifying {} held-out digits: sigma = {sigma}, n0 = {}, n = {}, alpha = {}",
        test.len(),
        config.n0(),
        config.n(),
        config.alpha()
    );
    let start = Instant::now();
    let mut outcomes = Vec::with_capacity(test.len());
    for i in 0..test.len() {
        let x =
            Tensor::<B, 3>::from_data(TensorData::new(test.image(i).to_vec(), [1, 8, 8]), &device);
        // One seed per example: any example can be re-run on its own.
        let certification = smoothed.certify(x, &config, &mut StdRng::seed_from_u64(i as u64))?;
        outcomes.push(Outcome::new(&certification, test.label(i)));
        if (i + 1) % 60 == 0 || i + 1 == test.len() {
            eprintln!(
                "  {:>3}/{} examples, {:.1} s",
                i + 1,
                test.len(),
                start.elapsed().as_secs_f64()
            );
        }
    }
    let samples = test.len() as f64 * (config.n0() + config.n()) as f64;
    println!(
        "\n{} examples, {:.0} noisy samples/s on NdArray\n",
        test.len(),
        samples / start.elapsed().as_secs_f64()
    );

    let radii = [0.0, 0.25, 0.5, 0.75, 1.0];
    let approx = approximate_certified_accuracy(&outcomes, &radii)?;
    println!("| radius | certified accuracy | lower bound (Appendix D, rho = 0.001) |");
    println!("| --- | --- | --- |");
    for (r, a) in radii.iter().zip(&approx) {
        let m = outcomes.len() as u64;
        let bound =
            certified_accuracy_lower_bound(*a, m, config.alpha(), 0.001, AccuracyBound::Binomial)?;
        println!("| {r:.2} | {a:.3} | {bound:.3} |");
    }
    Ok(())
}
