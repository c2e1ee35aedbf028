//! Attacks (`attack`): PGD on the smoothed classifier and DeepFool on the base classifier.
//!
//! On the two-class linear classifier the certificate is exact, so PGD must succeed just
//! beyond the certified radius and never inside it; on a trained digits model no attack
//! inside the certified radius may change the smoothed prediction.

use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use randomized_smoothing::attack::{DeepFoolConfig, Objective, PgdConfig, deepfool, pgd};
use randomized_smoothing::data::digits;
use randomized_smoothing::models::{ImageClassifier, SmallCnnConfig};
use randomized_smoothing::workflow::train::{TrainConfig, train};
use randomized_smoothing::{
    CertifyConfig, Error, Gaussian, LinearClassifier, PredictConfig, SmoothedClassifier,
};

/// Generates a test per autodiff backend for generic `fn name<B: AutodiffBackend>(device)`.
macro_rules! autodiff_backend_tests {
    ($($name:ident),* $(,)?) => {
        mod autodiff_ndarray {
            $(#[test] fn $name() { super::$name::<burn::backend::Autodiff<burn::backend::NdArray>>(&Default::default()); })*
        }
        mod autodiff_flex {
            $(#[test] fn $name() { super::$name::<burn::backend::Autodiff<burn::backend::Flex>>(&Default::default()); })*
        }
        #[cfg(feature = "cuda")]
        mod autodiff_cuda {
            $(#[test] fn $name() { super::$name::<burn::backend::Autodiff<burn::backend::Cuda>>(&Default::default()); })*
        }
        #[cfg(feature = "vulkan")]
        mod autodiff_vulkan {
            $(#[test] fn $name() { super::$name::<burn::backend::Autodiff<burn::backend::Vulkan>>(&Default::default()); })*
        }
    };
}

autodiff_backend_tests!(
    pgd_on_a_linear_classifier_is_tight,
    deepfool_finds_the_linear_boundary,
    bad_inputs_are_errors
);

/// 12 random linear classifiers in 10 dimensions, each with a point 0.5 from its boundary on
/// class 1's side. With sigma = 0.25, CERTIFY (n = 100,000) certifies a radius just below
/// 0.5; PGD at that radius must never make PREDICT answer class 0, and at 1.1 times the true
/// distance it must, every time.
fn pgd_on_a_linear_classifier_is_tight<B: AutodiffBackend>(device: &B::Device) {
    let mut rng = StdRng::seed_from_u64(7);
    let sigma = 0.25;
    let noise = Gaussian::new(sigma).unwrap();
    let certify = CertifyConfig::default().batch_size(10_000).check().unwrap();
    let predict = PredictConfig::default()
        .n(10_000)
        .batch_size(10_000)
        .check()
        .unwrap();
    let (mut fooled_inside, mut fooled_beyond, mut certified) = (0, 0, 0);
    for trial in 0..12 {
        let w: Vec<f64> = (0..10).map(|_| rng.random_range(-1.0..1.0)).collect();
        let norm = w.iter().map(|v| v * v).sum::<f64>().sqrt();
        let x: Vec<f64> = (0..10).map(|_| rng.random_range(-1.0..1.0)).collect();
        // The bias that puts x at distance 0.5 on the positive side.
        let bias = 0.5 * norm - w.iter().zip(&x).map(|(a, b)| a * b).sum::<f64>();
        let f = LinearClassifier::<B>::new(&w, bias, device).unwrap();
        assert!((f.signed_distance(&x).unwrap() - 0.5).abs() < 1e-9);
        let smoothed = SmoothedClassifier::new(f.clone(), noise);
        let input = || {
            Tensor::<B, 1>::from_data(
                TensorData::new(x.iter().map(|&v| v as f32).collect(), [10]),
                device,
            )
        };
        let c = smoothed.certify(input(), &certify, trial).unwrap();
        assert_eq!(c.class(), Some(1));
        let r = c.radius().unwrap();
        assert!(r < 0.5 && r > 0.45, "certified {r}");
        certified += 1;
        for (radius, inside) in [(r, true), (0.55, false)] {
            let config = PgdConfig::new(radius)
                .samples(64)
                .pixel_range(None)
                .check()
                .unwrap();
            let adversarial =
                pgd(|b| f.logits(b), &noise, input(), 1, &config, 100 + trial).unwrap();
            let moved: Vec<f32> = (adversarial.clone() - input())
                .into_data()
                .to_vec()
                .unwrap();
            let length = moved
                .iter()
                .map(|v| f64::from(*v).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!(length <= radius * (1.0 + 1e-5), "moved {length} > {radius}");
            let p = smoothed
                .predict(adversarial, &predict, 200 + trial)
                .unwrap();
            if p.class() == Some(0) {
                if inside {
                    fooled_inside += 1;
                } else {
                    fooled_beyond += 1;
                }
            }
        }
    }
    assert_eq!(certified, 12);
    assert_eq!(
        fooled_inside, 0,
        "PGD changed the prediction inside the certified radius"
    );
    assert_eq!(fooled_beyond, 12, "PGD failed just beyond the exact radius");
}

/// DeepFool reaches a linear boundary in one step, at the distance (plus the overshoot).
fn deepfool_finds_the_linear_boundary<B: AutodiffBackend>(device: &B::Device) {
    let mut rng = StdRng::seed_from_u64(3);
    for _ in 0..10 {
        let w: Vec<f64> = (0..6).map(|_| rng.random_range(-1.0..1.0)).collect();
        let x: Vec<f64> = (0..6).map(|_| rng.random_range(-1.0..1.0)).collect();
        let bias = rng.random_range(-1.0..1.0);
        let f = LinearClassifier::<B>::new(&w, bias, device).unwrap();
        let distance = f.signed_distance(&x).unwrap().abs();
        let input = Tensor::<B, 1>::from_data(
            TensorData::new(x.iter().map(|&v| v as f32).collect(), [6]),
            device,
        );
        let config = DeepFoolConfig::default().pixel_range(None).check().unwrap();
        let r = deepfool(|b| f.logits(b), input, &config).unwrap();
        assert!(r.fooled() && r.iterations == 1, "{r:?}");
        assert!(
            (r.distance - distance * 1.02).abs() < 1e-3 * (1.0 + distance),
            "{} vs {distance}",
            r.distance
        );
        let at: Vec<f64> = r.adversarial.into_data().iter::<f64>().collect();
        assert_eq!(f.decide(&at).unwrap(), r.class);
    }
}

fn bad_inputs_are_errors<B: AutodiffBackend>(device: &B::Device) {
    let f = LinearClassifier::<B>::new(&[1.0, 0.0], 0.0, device).unwrap();
    let noise = Gaussian::new(0.25).unwrap();
    let config = PgdConfig::new(0.5).samples(8).check().unwrap();
    let run =
        |x: Tensor<B, 1>, label: usize| pgd(|b| f.logits(b), &noise, x, label, &config, 0).err();
    let ok = || Tensor::<B, 1>::from_floats([0.5, 0.5], device);
    assert!(matches!(
        run(Tensor::from_floats([f32::NAN, 0.5], device), 1),
        Some(Error::NonFiniteInput(_))
    ));
    assert!(matches!(
        run(Tensor::from_floats([1.5, 0.5], device), 1),
        Some(Error::InvalidParameter { name: "x", .. })
    ));
    assert!(matches!(
        run(ok(), 2),
        Some(Error::InvalidClass {
            class: 2,
            num_classes: 2
        })
    ));
    assert!(run(ok(), 1).is_none());
    // An input of the wrong rank for the model's batches.
    let rank = pgd(
        |b: Tensor<B, 3>| b.flatten::<2>(1, 2),
        &noise,
        ok(),
        0,
        &config,
        0,
    );
    assert!(matches!(
        rank,
        Err(Error::InvalidParameter { name: "x", .. })
    ));
    let df = DeepFoolConfig::default().check().unwrap();
    assert!(matches!(
        deepfool(
            |b| f.logits(b),
            Tensor::<B, 1>::from_floats([f32::INFINITY, 0.0], device),
            &df
        ),
        Err(Error::NonFiniteInput(_))
    ));
}

/// On a digits CNN (trained 8 epochs with noise sigma = 0.25): PGD with m = 32 at half the
/// certified radius and at the certified radius never changes PREDICT's answer, for either
/// objective; far outside (radius 2.5) it changes most answers, so the attack is real; and
/// DeepFool fools the base classifier on most digits at a small distance.
#[test]
fn attacks_on_a_trained_digits_model() {
    // Initialization, training and PGD's samples draw from Burn's generator.
    let _generator = randomized_smoothing::smoothing::lock_generator();
    type T = Autodiff<Flex>;
    let device = Default::default();
    let (train_set, test_set) = digits().unwrap().split_at(1_437).unwrap();
    <T as Backend>::seed(&device, 0);
    let config = SmallCnnConfig::new([1, 8, 8], 10)
        .with_filters(16)
        .with_mean(vec![0.3])
        .with_std(vec![0.35]);
    let params = TrainConfig::new(0.25)
        .epochs(8)
        .batch_size(64)
        .lr(0.1)
        .check()
        .unwrap();
    let model = train(
        config.init::<T>(&device).unwrap(),
        &train_set,
        &test_set,
        &params,
        None,
        0,
        |_| {},
    )
    .unwrap();
    let inference = model.valid();
    let noise = Gaussian::new(0.25).unwrap();
    let smoothed = SmoothedClassifier::new(inference, noise);
    let certify = CertifyConfig::default()
        .n(10_000)
        .batch_size(2_000)
        .check()
        .unwrap();
    let predict = PredictConfig::default()
        .n(2_000)
        .batch_size(2_000)
        .check()
        .unwrap();
    let (mut attacked, mut fooled_inside, mut fooled_far, mut deepfooled) = (0, 0, 0, 0);
    let mut distances = Vec::new();
    for i in (0..test_set.len()).step_by(40).take(9) {
        let x = || {
            Tensor::<T, 3>::from_data(
                TensorData::new(test_set.image(i).to_vec(), [1, 8, 8]),
                &device,
            )
        };
        let label = test_set.label(i);
        let df = deepfool(
            |b| model.forward(b),
            x(),
            &DeepFoolConfig::default().check().unwrap(),
        )
        .unwrap();
        if df.fooled() {
            deepfooled += 1;
            distances.push(df.distance);
            let class = model
                .forward(df.adversarial.clone().unsqueeze::<4>())
                .argmax(1)
                .into_scalar();
            assert_eq!(class as usize, df.class);
        }
        let c = smoothed.certify(x().inner(), &certify, i as u64).unwrap();
        let Some(r) = c.radius().filter(|_| c.class() == Some(label)) else {
            continue;
        };
        attacked += 1;
        for (radius, objective, inside) in [
            (0.5 * r, Objective::MeanLoss, true),
            (r, Objective::MeanLoss, true),
            (r, Objective::LossOfMean, true),
            (2.5, Objective::LossOfMean, false),
        ] {
            let config = PgdConfig::new(radius)
                .samples(32)
                .steps(10)
                .objective(objective)
                .check()
                .unwrap();
            let adversarial =
                pgd(|b| model.forward(b), &noise, x(), label, &config, i as u64).unwrap();
            let p = smoothed
                .predict(adversarial.inner(), &predict, i as u64 + 1)
                .unwrap();
            let fooled = p.class().is_some_and(|c| c != label);
            if inside {
                fooled_inside += usize::from(fooled);
            } else {
                fooled_far += usize::from(p.class() != Some(label));
            }
        }
    }
    assert!(attacked >= 6, "only {attacked} digits certified");
    assert_eq!(
        fooled_inside, 0,
        "an attack inside the certified radius changed the prediction"
    );
    assert!(
        fooled_far * 2 > attacked,
        "radius 2.5 changed only {fooled_far} of {attacked}"
    );
    assert!(deepfooled >= 8, "DeepFool fooled {deepfooled} of 9");
    let mean = distances.iter().sum::<f64>() / distances.len() as f64;
    assert!(mean < 2.0, "mean DeepFool distance {mean}");
}
