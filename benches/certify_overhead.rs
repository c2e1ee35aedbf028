//! What the smoothing machinery (noise, counting, statistics) adds to the base classifier's
//! forward pass: samples per second of one CERTIFY estimation batch against the raw forward
//! pass of the same small CNN at the same batch size, on 3x32x32 inputs, on each CPU backend
//! compiled in (Flex, NdArray, and LibTorch with `--features tch`).
//!
//! A first group times the Gaussian noise alone against rand_distr's sampler.
//!
//! Run with `cargo bench --bench certify_overhead` (`-- flex` for one backend's group);
//! figures go in docs/benchmarks.md.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::{StdRng, Xoshiro256PlusPlus};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution as _, StandardNormal};
use randomized_smoothing::models::kernels::{conv2d, max_pool2d};
use randomized_smoothing::{
    BaseClassifier, CertifyConfig, Gaussian, LogitsClassifier, NoiseDistribution,
    SmoothedClassifier,
};
use std::time::Duration;

/// Two conv blocks and a linear head: a CPU-sized CIFAR-10 classifier.
#[derive(Module, Debug)]
struct SmallCnn<B: Backend> {
    conv1: Conv2d<B>,
    conv2: Conv2d<B>,
    pool: MaxPool2d,
    gap: AdaptiveAvgPool2d,
    head: Linear<B>,
    relu: Relu,
}

impl<B: Backend> SmallCnn<B> {
    fn new(device: &B::Device) -> Self {
        let conv = |i, o| {
            Conv2dConfig::new([i, o], [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .init(device)
        };
        Self {
            conv1: conv(3, 16),
            conv2: conv(16, 32),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            gap: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            head: LinearConfig::new(32, 10).init(device),
            relu: Relu::new(),
        }
    }

    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        // The crate's kernels, as its own models run them on Flex and NdArray (Burn's layers
        // elsewhere).
        let x = max_pool2d(&self.pool, self.relu.forward(conv2d(&self.conv1, x)));
        let x = max_pool2d(&self.pool, self.relu.forward(conv2d(&self.conv2, x)));
        self.head.forward(self.gap.forward(x).flatten::<2>(1, 3))
    }
}

/// The noise alone, one core: a CIFAR-sized row of 3,072 values from the crate's Gaussian
/// (its vectorized ziggurat) against rand_distr's scalar `StandardNormal`, the sampler it
/// replaced, on the same generator.
fn bench_normals(c: &mut Criterion) {
    let mut group = c.benchmark_group("normals/row_3072");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(3072));
    let mut row = vec![0.5f32; 3072];
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
    let gaussian = Gaussian::new(0.25).unwrap();
    group.bench_function("crate_ziggurat", |b| {
        b.iter(|| gaussian.add_to(&mut row, &mut rng))
    });
    group.bench_function("rand_distr", |b| {
        b.iter(|| {
            for v in row.iter_mut() {
                let z: f32 = StandardNormal.sample(&mut rng);
                *v += 0.25 * z;
            }
        })
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    bench_backend::<burn::backend::Flex>(c, "flex", Default::default());
    bench_backend::<burn::backend::NdArray>(c, "ndarray", Default::default());
    #[cfg(feature = "tch")]
    bench_backend::<burn::backend::LibTorch>(
        c,
        "libtorch",
        burn::backend::libtorch::LibTorchDevice::Cpu,
    );
}

fn bench_backend<B: Backend>(c: &mut Criterion, backend: &str, device: B::Device) {
    let model = SmallCnn::<B>::new(&device);
    let base =
        LogitsClassifier::new([3, 32, 32], 10, move |x: Tensor<B, 4>| model.forward(x)).unwrap();
    let smoothed = SmoothedClassifier::new(base, Gaussian::new(0.25).unwrap());
    // Each call gets a tensor of its own, as a job's freshly loaded example is (outside the
    // timing): a clone shares its buffer, and NdArray reads a shared buffer value by value.
    let x = Tensor::<B, 3>::random([3, 32, 32], Distribution::Default, &device).into_data();
    let fresh_input = || Tensor::<B, 3>::from_data(x.clone(), &device);
    let ignore = LogitsClassifier::new([3, 32, 32], 10, |x: Tensor<B, 4>| {
        Tensor::<B, 2>::zeros([x.dims()[0], 10], &x.device())
    })
    .unwrap();
    let null = SmoothedClassifier::new(ignore, Gaussian::new(0.25).unwrap());

    let mut group = c.benchmark_group(format!("{backend}/small_cnn_3x32x32"));
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8))
        .warm_up_time(Duration::from_secs(2));
    for batch in [100usize, 400] {
        group.throughput(Throughput::Elements(batch as u64));
        // The base classifier alone on a ready batch: forward, arg-max, read back.
        let inputs = Tensor::<B, 4>::random([batch, 3, 32, 32], Distribution::Default, &device);
        group.bench_with_input(BenchmarkId::new("forward", batch), &batch, |b, _| {
            b.iter(|| smoothed.base().classify(inputs.clone()).into_data())
        });
        // The machinery alone: the same sampling loop around a base classifier that ignores
        // its input (noise, batching, counting, the count transfer).
        let mut rng = StdRng::seed_from_u64(0);
        group.bench_with_input(BenchmarkId::new("machinery", batch), &batch, |b, &batch| {
            b.iter_batched(
                fresh_input,
                |x| {
                    null.sample_counts(x, batch as u64, batch, rng.next_u64())
                        .unwrap()
                },
                BatchSize::SmallInput,
            )
        });
        // One batch of smoothing: seeded noise, add, forward, counting, the count transfer.
        let mut rng = StdRng::seed_from_u64(0);
        group.bench_with_input(
            BenchmarkId::new("sample_counts", batch),
            &batch,
            |b, &batch| {
                b.iter_batched(
                    fresh_input,
                    |x| {
                        smoothed
                            .sample_counts(x, batch as u64, batch, rng.next_u64())
                            .unwrap()
                    },
                    BatchSize::SmallInput,
                )
            },
        );
        // Full CERTIFY with n0 = batch / 4 and n = 4 batches, reported per sample.
        let n = 4 * batch as u64;
        let config = CertifyConfig::default()
            .n0(batch as u64 / 4)
            .n(n)
            .batch_size(batch)
            .check()
            .unwrap();
        group.throughput(Throughput::Elements(n + batch as u64 / 4));
        group.bench_with_input(BenchmarkId::new("certify", batch), &batch, |b, _| {
            b.iter_batched(
                fresh_input,
                |x| smoothed.certify(x, &config, rng.next_u64()).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench_normals, bench);
criterion_main!(benches);
