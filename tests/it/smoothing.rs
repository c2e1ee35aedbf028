//! PREDICT and CERTIFY through Burn, on every enabled backend.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use randomized_smoothing::{
    AbstainReason, BaseClassifier, CertifyConfig, Gaussian, LinearClassifier, PredictConfig,
    SmoothedClassifier,
};

fn smoothed<B: Backend>(device: &B::Device, sigma: f64) -> SmoothedClassifier<LinearClassifier<B>> {
    // Boundary x0 + x1 = 1; distance of (a, a) to it is |2a - 1| / sqrt(2).
    let base = LinearClassifier::new(&[1.0, 1.0], -1.0, device).unwrap();
    SmoothedClassifier::new(base, Gaussian::new(sigma).unwrap())
}

fn point<B: Backend>(device: &B::Device, a: f32) -> Tensor<B, 1> {
    Tensor::from_floats([a, a], device)
}

/// Proposition 4 in Monte Carlo: the certified radius is sound (below the distance to the
/// boundary) and close to it with n = 20,000 (the Clopper-Pearson bound costs a few percent).
fn certify_radius_close_to_distance<B: Backend>(device: &B::Device) {
    let config = CertifyConfig::default()
        .n(20_000)
        .batch_size(5_000)
        .check()
        .unwrap();
    for (sigma, a, seed) in [(0.25, 0.8, 1), (0.5, 0.0, 2), (1.0, 1.9, 3)] {
        let g = smoothed::<B>(device, sigma);
        let dist = ((2.0 * a as f64 - 1.0) / 2f64.sqrt()).abs();
        let c = g.certify(point::<B>(device, a), &config, seed).unwrap();
        assert_eq!(c.class(), Some(usize::from(a > 0.5)));
        let r = c.radius().unwrap();
        assert!(
            r < dist && r > 0.9 * dist,
            "sigma {sigma}: radius {r}, distance {dist}"
        );
    }
}

/// Proposition 3: away from the boundary PREDICT returns the base classifier's class.
fn predict_matches_base_away_from_boundary<B: Backend>(device: &B::Device) {
    let config = PredictConfig::default()
        .n(2_000)
        .batch_size(1_000)
        .check()
        .unwrap();
    let g = smoothed::<B>(device, 0.5);
    let mut rng = StdRng::seed_from_u64(4);
    for a in [-1.0f32, 0.2, 0.8, 2.0] {
        let p = g
            .predict(point::<B>(device, a), &config, rng.next_u64())
            .unwrap();
        assert_eq!(p.class(), Some(usize::from(a > 0.5)), "at {a}: {p:?}");
    }
}

/// On the boundary both classes have probability 1/2: PREDICT abstains (it may answer with
/// probability alpha at most) and CERTIFY abstains.
fn abstains_on_boundary<B: Backend>(device: &B::Device) {
    let g = smoothed::<B>(device, 0.5);
    let mut rng = StdRng::seed_from_u64(5);
    let config = PredictConfig::default().n(2_000).check().unwrap();
    let p = g
        .predict(point::<B>(device, 0.5), &config, rng.next_u64())
        .unwrap();
    assert!(
        matches!(
            p,
            randomized_smoothing::Prediction::Abstain {
                reason: AbstainReason::NotSignificant,
                ..
            }
        ),
        "{p:?}"
    );
    let config = CertifyConfig::default().n(2_000).check().unwrap();
    let c = g
        .certify(point::<B>(device, 0.5), &config, rng.next_u64())
        .unwrap();
    assert_eq!(c.class(), None);
    assert!(c.estimate().p_a_lower < 0.5);
}

/// The counts follow Binomial(n, Phi(d / sigma)): within 5 standard deviations.
fn counts_follow_exact_probabilities<B: Backend>(device: &B::Device) {
    let g = smoothed::<B>(device, 0.5);
    let n = 50_000u64;
    let counts = g
        .sample_counts(point::<B>(device, 0.7), n, 7_000, 6)
        .unwrap();
    let p = g.base().class_probabilities(&[0.7, 0.7], 0.5).unwrap()[1];
    let sd = (n as f64 * p * (1.0 - p)).sqrt();
    assert!(
        (counts[1] as f64 - n as f64 * p).abs() < 5.0 * sd,
        "{counts:?} vs p = {p}"
    );
    assert_eq!(counts.iter().sum::<u64>(), n);
}

/// A result is a function of the rng's state (and batch size); another seed gives other noise.
fn reproducible_from_seed<B: Backend>(device: &B::Device) {
    let g = smoothed::<B>(device, 1.0);
    let config = CertifyConfig::default()
        .n(5_000)
        .batch_size(700)
        .check()
        .unwrap();
    let run = |seed| g.certify(point::<B>(device, 0.9), &config, seed).unwrap();
    assert_eq!(run(7), run(7));
    assert_ne!(run(7).estimate().count, run(8).estimate().count);
}

/// The selection and estimation samples are independent draws: with n0 = n, the two counts
/// differ (they would coincide if the estimation reused the selection noise).
fn selection_and_estimation_use_fresh_noise<B: Backend>(device: &B::Device) {
    struct Recorder<B: Backend> {
        inner: LinearClassifier<B>,
        seen: std::cell::RefCell<Vec<Vec<u64>>>,
    }
    impl<B: Backend> BaseClassifier<2> for Recorder<B> {
        type Backend = B;

        fn input_shape(&self) -> &[usize] {
            self.inner.input_shape()
        }
        fn num_classes(&self) -> usize {
            2
        }
        fn classify(&self, inputs: Tensor<B, 2>) -> Tensor<B, 1, Int> {
            let out = self.inner.classify(inputs);
            // Test-only host read, to compare the two phases' decisions.
            let v = out.to_data().iter::<i64>().map(|c| c as u64).collect();
            self.seen.borrow_mut().push(v);
            out
        }
    }
    let base = Recorder {
        inner: LinearClassifier::new(&[1.0, 1.0], -1.0, device).unwrap(),
        seen: Default::default(),
    };
    let g = SmoothedClassifier::new(base, Gaussian::new(1.0).unwrap());
    let config = CertifyConfig::default()
        .n0(500)
        .n(500)
        .batch_size(500)
        .check()
        .unwrap();
    g.certify(point::<B>(device, 0.6), &config, 9).unwrap();
    let seen = g.base().seen.borrow();
    assert_eq!(seen.len(), 2);
    assert_ne!(seen[0], seen[1]);
}

crate::common::backend_tests!(
    certify_radius_close_to_distance,
    predict_matches_base_away_from_boundary,
    abstains_on_boundary,
    counts_follow_exact_probabilities,
    reproducible_from_seed,
    selection_and_estimation_use_fresh_noise,
);

/// The noisy inputs a seed gives on `B`: the base classifier reads them back.
fn noisy_inputs<B: Backend>(device: &B::Device, seed: u64) -> Vec<f32> {
    noisy_inputs_in_batches::<B>(device, seed, 100)
}

/// The 250 noisy inputs a seed gives on `B` in batches of at most `batch_size`.
fn noisy_inputs_in_batches<B: Backend>(
    device: &B::Device,
    seed: u64,
    batch_size: usize,
) -> Vec<f32> {
    struct Reader<B: Backend> {
        shape: Vec<usize>,
        seen: std::cell::RefCell<Vec<f32>>,
        _backend: std::marker::PhantomData<B>,
    }
    impl<B: Backend> BaseClassifier<2> for Reader<B> {
        type Backend = B;

        fn input_shape(&self) -> &[usize] {
            &self.shape
        }
        fn num_classes(&self) -> usize {
            2
        }
        fn classify(&self, inputs: Tensor<B, 2>) -> Tensor<B, 1, Int> {
            let rows = inputs.dims()[0];
            // Test-only host read of the batch.
            self.seen
                .borrow_mut()
                .extend(inputs.to_data().iter::<f32>());
            Tensor::zeros([rows], &inputs.device())
        }
    }
    let reader = Reader::<B> {
        shape: vec![3],
        seen: Default::default(),
        _backend: std::marker::PhantomData,
    };
    let g = SmoothedClassifier::new(reader, Gaussian::new(0.5).unwrap());
    let x = Tensor::<B, 1>::from_floats([0.1, 0.2, 0.3], device);
    g.sample_counts(x, 250, batch_size, seed).unwrap();
    g.base().seen.take()
}

/// Every CPU backend draws the same host noise stream, so a seed gives bit-identical noisy
/// inputs on NdArray, Flex and (with `tch`) LibTorch's CPU device: changing the CPU backend
/// never changes the noise silently.
#[test]
fn cpu_backends_share_the_noise_stream() {
    let ndarray = noisy_inputs::<burn::backend::NdArray>(&Default::default(), 3);
    assert_eq!(ndarray.len(), 750);
    assert_eq!(
        noisy_inputs::<burn::backend::Flex>(&Default::default(), 3),
        ndarray
    );
    #[cfg(feature = "tch")]
    assert_eq!(
        noisy_inputs::<burn::backend::LibTorch>(&Default::default(), 3),
        ndarray
    );
    // A different seed, a different stream; and the noise has the requested spread.
    assert_ne!(
        noisy_inputs::<burn::backend::NdArray>(&Default::default(), 4),
        ndarray
    );
    let var = ndarray
        .chunks(3)
        .flat_map(|row| {
            row.iter()
                .zip([0.1f32, 0.2, 0.3])
                .map(|(v, m)| (v - m).powi(2))
        })
        .sum::<f32>()
        / 750.0;
    assert!((var - 0.25).abs() < 0.05, "variance {var}");
}

/// On the CPU backends each noisy copy is a function of the seed and its number in the
/// stream alone: cutting the stream into other batches gives the same copies, in order.
#[test]
fn host_noise_does_not_depend_on_the_batch_size() {
    fn check<B: Backend>() {
        let device = Default::default();
        let whole = noisy_inputs_in_batches::<B>(&device, 11, 250);
        for batch_size in [1, 7, 100, 249] {
            assert_eq!(
                noisy_inputs_in_batches::<B>(&device, 11, batch_size),
                whole,
                "{} at batch {batch_size}",
                std::any::type_name::<B>()
            );
        }
    }
    check::<burn::backend::NdArray>();
    check::<burn::backend::Flex>();
    #[cfg(feature = "tch")]
    check::<burn::backend::LibTorch>();
}

/// So a certificate of a real network is the same at any batch size: the same samples, and
/// a network whose decision on a sample does not depend on the other samples in its batch
/// (the crate's convolution kernels and LibTorch's on the CPU compute each image alone).
#[test]
fn certificates_do_not_depend_on_the_batch_size() {
    use randomized_smoothing::CertifyConfig;
    use randomized_smoothing::data::{ImageSource, digits};
    use randomized_smoothing::models::{ModelConfig, SmallCnnConfig, load_model};

    fn check<B: Backend>() {
        let device = Default::default();
        // The digits network of docs/attacks.md, trained at sigma 0.25; at sigma 1 it
        // answers several classes, so equal counts say something.
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/attacks/digits/model.bpk");
        let config = SmallCnnConfig::new([1, 8, 8], 10)
            .with_filters(16)
            .with_mean(vec![0.3])
            .with_std(vec![0.35]);
        let model = ModelConfig::SmallCnn(config).init::<B>(&device).unwrap();
        let model = load_model(model, &path).unwrap();
        let g = SmoothedClassifier::new(model, Gaussian::new(1.0).unwrap());
        let data = digits().unwrap();
        for idx in [0, 1, 2] {
            let x = Tensor::<B, 3>::from_data(
                burn::tensor::TensorData::new(data.load(idx).unwrap().into_owned(), [1, 8, 8]),
                &device,
            );
            let counts = |batch_size| g.sample_counts(x.clone(), 2_000, batch_size, 21).unwrap();
            let whole = counts(1_000);
            assert!(whole.iter().filter(|&&c| c >= 20).count() >= 2, "{whole:?}");
            for batch_size in [400, 150] {
                assert_eq!(counts(batch_size), whole, "image {idx}, batch {batch_size}");
            }
            let certify = |batch_size| {
                let config = CertifyConfig::default()
                    .n0(100)
                    .n(2_000)
                    .batch_size(batch_size)
                    .check()
                    .unwrap();
                g.certify(x.clone(), &config, 21 + idx as u64).unwrap()
            };
            assert_eq!(certify(400), certify(150), "image {idx}");
        }
    }
    check::<burn::backend::NdArray>();
    check::<burn::backend::Flex>();
    #[cfg(feature = "tch")]
    check::<burn::backend::LibTorch>();
}

/// CERTIFY and PREDICT of several inputs with their samples packed into shared forward
/// passes answer what each input's own procedure answers with its seed: the batches mix the
/// tail of one input's samples with the head of the next (batch 150 against n0 = 100 and
/// n = 500), and the selection samples of several inputs share a pass. So do the sequential
/// procedures, whose later rounds pack the inputs still undecided.
#[test]
fn packed_inputs_answer_as_each_alone() {
    use randomized_smoothing::data::{ImageSource, digits};
    use randomized_smoothing::models::{ModelConfig, SmallCnnConfig, load_model};
    use randomized_smoothing::{CertifyConfig, PredictConfig, SequentialConfig};

    /// Each input's own answer, by `alone` with its seed.
    fn each_alone<B: Backend, T>(
        inputs: &[(Tensor<B, 3>, u64)],
        alone: impl Fn(Tensor<B, 3>, u64) -> T,
    ) -> Vec<T> {
        inputs
            .iter()
            .map(|(x, seed)| alone(x.clone(), *seed))
            .collect()
    }

    fn check<B: Backend>() {
        let device = Default::default();
        let config = SmallCnnConfig::new([1, 8, 8], 10)
            .with_filters(16)
            .with_mean(vec![0.3])
            .with_std(vec![0.35]);
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/attacks/digits/model.bpk");
        let model = load_model(
            ModelConfig::SmallCnn(config).init::<B>(&device).unwrap(),
            &path,
        )
        .unwrap();
        // sigma 0.5: some certificates and some abstentions, so equality says something.
        let g = SmoothedClassifier::new(model, Gaussian::new(0.5).unwrap());
        let data = digits().unwrap();
        let inputs: Vec<(Tensor<B, 3>, u64)> = (0..7)
            .map(|idx| {
                let pixels = data.load(idx).unwrap().into_owned();
                let x =
                    Tensor::from_data(burn::tensor::TensorData::new(pixels, [1, 8, 8]), &device);
                (x, 100 + idx as u64)
            })
            .collect();
        let certify = CertifyConfig::default()
            .n0(100)
            .n(500)
            .alpha(0.01)
            .batch_size(150)
            .check()
            .unwrap();
        let packed = g.certify_many(inputs.clone(), &certify).unwrap();
        let alone = each_alone(&inputs, |x, seed| g.certify(x, &certify, seed).unwrap());
        assert_eq!(packed, alone, "{}", std::any::type_name::<B>());
        assert!(
            alone.iter().any(|c| c.class().is_none()) && alone.iter().any(|c| c.class().is_some()),
            "{alone:?}"
        );
        let predict = PredictConfig::default()
            .n(260)
            .batch_size(150)
            .check()
            .unwrap();
        let packed = g.predict_many(inputs.clone(), &predict).unwrap();
        let alone = each_alone(&inputs, |x, seed| g.predict(x, &predict, seed).unwrap());
        assert_eq!(packed, alone, "{}", std::any::type_name::<B>());
        // The sequential procedures: inputs leave the rounds at different looks, and the
        // rounds after that pack only those still undecided.
        let sequential = SequentialConfig::default()
            .samples(100, 3_200)
            .alpha(0.01)
            .batch_size(150)
            .check()
            .unwrap();
        let packed = g
            .certify_at_radius_many(inputs.clone(), 0.5, &sequential)
            .unwrap();
        let alone = each_alone(&inputs, |x, seed| {
            g.certify_at_radius(x, 0.5, &sequential, seed).unwrap()
        });
        assert_eq!(packed, alone, "{}", std::any::type_name::<B>());
        let looks: std::collections::BTreeSet<usize> = alone.iter().map(|s| s.looks).collect();
        assert!(looks.len() >= 2, "{alone:?}");
        // A coarse tolerance, so that some radii settle before the last look.
        let budgeted = SequentialConfig::default()
            .samples(100, 12_800)
            .alpha(0.01)
            .batch_size(150)
            .tolerance(0.15)
            .check()
            .unwrap();
        let packed = g.certify_budgeted_many(inputs.clone(), &budgeted).unwrap();
        let alone = each_alone(&inputs, |x, seed| {
            g.certify_budgeted(x, &budgeted, seed).unwrap()
        });
        assert_eq!(packed, alone, "{}", std::any::type_name::<B>());
        let looks: std::collections::BTreeSet<usize> = alone.iter().map(|s| s.looks).collect();
        assert!(looks.len() >= 2, "{alone:?}");
    }
    check::<burn::backend::NdArray>();
    check::<burn::backend::Flex>();
    #[cfg(feature = "tch")]
    check::<burn::backend::LibTorch>();
}

/// Half precision: the digits network with its weights and each noisy batch cast to `bf16`
/// or `f16` (`models::Cast`) samples the same noisy inputs (drawn and added to the image in
/// `f32` on the host) and decides nearly every one as in `f32`. Some decisions do change (a
/// cast that did nothing, or a network that computed in `f32` after all, would change
/// none), but few: the counts move by at most 2% of the samples, and the top class stays.
#[cfg(feature = "tch")]
#[test]
fn half_precision_counts_follow_f32_on_libtorch() {
    half_precision_counts_follow_f32::<burn::backend::LibTorch>(&[Precision::Bf16, Precision::F16]);
}

/// As on LibTorch, on a CubeCL backend (in CI, Vulkan on Mesa's lavapipe). Vulkan has no
/// bf16 type.
#[cfg(feature = "vulkan")]
#[test]
fn half_precision_counts_follow_f32_on_vulkan() {
    half_precision_counts_follow_f32::<burn::backend::Vulkan>(&[Precision::F16]);
}

#[cfg(any(feature = "tch", feature = "vulkan"))]
use randomized_smoothing::models::Precision;

#[cfg(any(feature = "tch", feature = "vulkan"))]
fn half_precision_counts_follow_f32<B: Backend>(precisions: &[Precision]) {
    use randomized_smoothing::data::{ImageSource, digits};
    use randomized_smoothing::models::{Cast, ModelConfig, SmallCnnConfig, load_model};

    let device = Default::default();
    let config = SmallCnnConfig::new([1, 8, 8], 10)
        .with_filters(16)
        .with_mean(vec![0.3])
        .with_std(vec![0.35]);
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/attacks/digits/model.bpk");
    let model = ModelConfig::SmallCnn(config).init::<B>(&device).unwrap();
    let model = load_model(model, &path).unwrap().fold_batch_norm();
    let smoothed = |precision| {
        SmoothedClassifier::new(
            Cast::module(model.clone(), precision),
            Gaussian::new(0.5).unwrap(),
        )
    };
    let data = digits().unwrap();
    const N: u64 = 4_000;
    for &precision in precisions {
        let (full, half) = (smoothed(Precision::F32), smoothed(precision));
        let mut moved_in_all = 0;
        for idx in 0..7 {
            let pixels = data.load(idx).unwrap().into_owned();
            let x = Tensor::<B, 3>::from_data(
                burn::tensor::TensorData::new(pixels, [1, 8, 8]),
                &device,
            );
            let reference = full
                .sample_counts(x.clone(), N, 400, 5 + idx as u64)
                .unwrap();
            let counts = half.sample_counts(x, N, 400, 5 + idx as u64).unwrap();
            let moved = reference
                .iter()
                .zip(&counts)
                .map(|(a, b)| a.abs_diff(*b))
                .sum::<u64>()
                / 2;
            assert!(
                moved <= N / 50,
                "{precision} digit {idx}: {reference:?} {counts:?}"
            );
            let top = |c: &[u64]| (0..c.len()).max_by_key(|&k| c[k]);
            assert_eq!(top(&reference), top(&counts), "{precision} digit {idx}");
            moved_in_all += moved;
        }
        assert!(moved_in_all > 0, "{precision}: no decision changed");
    }
}
