//! Training and inference throughput of the CPU backends, NdArray and Flex, on the models
//! the CPU runs use: why the CPU build trains on Flex and certifies on NdArray.
//!
//! For each model, one SGD step (forward, backward, update) on a batch of random images is
//! timed after a warm-up, and so is a forward pass; the best of five is reported.
//!
//! Run with `cargo run --release --example train_throughput`.

use std::time::Instant;

use burn::backend::{Autodiff, Flex, NdArray};
use burn::module::AutodiffModule;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, Optimizer, SgdConfig};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, Int, Tensor};
use randomized_smoothing::models::{Architecture, ImageClassifier, Model, SmallCnnConfig};

/// Images per second for a training step and for a forward pass, best of five.
fn measure<B: AutodiffBackend>(model: Model<B>, batch: usize) -> (f64, f64) {
    let device = Default::default();
    let shape = model.input_shape().to_vec();
    let classes = model.num_classes();
    let x = Tensor::<B, 4>::random(
        [batch, shape[0], shape[1], shape[2]],
        Distribution::Uniform(0.0, 1.0),
        &device,
    );
    let y = Tensor::<B, 1, Int>::arange(0..batch as i64, &device).remainder_scalar(classes as i64);
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut optim = SgdConfig::new().init::<B, Model<B>>();
    let mut model = model;
    let (mut train, mut infer) = (f64::MAX, f64::MAX);
    for round in 0..6 {
        let start = Instant::now();
        let loss = loss_fn.forward(model.forward(x.clone()), y.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(0.01, model, grads);
        let step = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let _ = model.valid().forward(x.clone().inner()).into_data();
        let forward = start.elapsed().as_secs_f64();
        // Round 0 warms up.
        if round > 0 {
            train = train.min(step);
            infer = infer.min(forward);
        }
    }
    (batch as f64 / train, batch as f64 / infer)
}

fn small_cnn<B: AutodiffBackend>(shape: [usize; 3], filters: usize) -> Model<B> {
    let config = SmallCnnConfig::new(shape, 10).with_filters(filters);
    Model::SmallCnn(config.init(&Default::default()).expect("valid config"))
}

fn resnet20<B: AutodiffBackend>() -> Model<B> {
    let arch: Architecture = "cifar_resnet20".parse().expect("known architecture");
    arch.init(10, &Default::default())
        .expect("valid architecture")
}

fn main() {
    // Reuse freed memory rather than fault in fresh pages for every layer's output.
    randomized_smoothing::runtime::keep_freed_memory();
    println!("| model | batch | backend | train step img/s | forward img/s |");
    println!("| --- | ---: | --- | ---: | ---: |");
    let row = |name: &str, batch: usize, backend: &str, (train, infer): (f64, f64)| {
        println!("| {name} | {batch} | {backend} | {train:.0} | {infer:.0} |");
    };
    for (name, shape, filters, batch) in [
        (
            "small_cnn 1x8x8, 16 filters (quickstart)",
            [1, 8, 8],
            16,
            64,
        ),
        ("small_cnn 1x28x28, 16 filters (MNIST)", [1, 28, 28], 16, 64),
    ] {
        let ndarray = measure(small_cnn::<Autodiff<NdArray>>(shape, filters), batch);
        row(name, batch, "NdArray", ndarray);
        let flex = measure(small_cnn::<Autodiff<Flex>>(shape, filters), batch);
        row(name, batch, "Flex", flex);
    }
    row(
        "cifar_resnet20",
        64,
        "NdArray",
        measure(resnet20::<Autodiff<NdArray>>(), 64),
    );
    row(
        "cifar_resnet20",
        64,
        "Flex",
        measure(resnet20::<Autodiff<Flex>>(), 64),
    );
}
