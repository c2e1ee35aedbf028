//! The training objectives beyond Gaussian augmentation: their formulas against scalar
//! arithmetic in f64, the tensor normal quantile against the crate's scalar one, and each
//! objective in the training loop on a few batches of digits (finite, decreasing loss;
//! exact resumption; a resumed run with another objective refused).

use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use randomized_smoothing::Error;
use randomized_smoothing::data::digits;
use randomized_smoothing::models::SmallCnnConfig;
use randomized_smoothing::smoothing::lock_generator;
use randomized_smoothing::stats::normal::{normal_cdf, normal_quantile as scalar_quantile};
use randomized_smoothing::workflow::objective::{
    Consistency, Macer, Objective, SmoothAdv, normal_quantile,
};
use randomized_smoothing::workflow::train::{EpochReport, TrainConfig, train};

type B = Autodiff<Flex>;

fn floats<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

fn labels(values: Vec<i64>) -> Tensor<B, 1, Int> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), &Default::default())
}

fn scalar(t: Tensor<B, 1>) -> f64 {
    f64::from(t.into_scalar())
}

fn softmax(logits: &[f64]) -> Vec<f64> {
    let max = logits.iter().cloned().fold(f64::MIN, f64::max);
    let e: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|v| v / sum).collect()
}

#[test]
fn normal_quantile_matches_the_scalar_quantile_with_its_gradient() {
    let mut ps: Vec<f64> = vec![1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.02, 0.1, 0.3, 0.5];
    ps.extend(ps.clone().iter().map(|p| 1.0 - p));
    ps.extend((1..100).map(|i| i as f64 / 100.0));
    let p = floats(ps.iter().map(|&p| p as f32).collect(), [ps.len()]).require_grad();
    let z = normal_quantile(p.clone());
    let grads = z.clone().sum().backward();
    let gradient: Vec<f32> = p.grad(&grads).unwrap().into_data().to_vec().unwrap();
    let z: Vec<f32> = z.into_data().to_vec().unwrap();
    for ((&p, z), g) in ps.iter().zip(z).zip(gradient) {
        // The exact quantile of the f32 the tensor holds.
        let p32 = f64::from(p as f32);
        let exact = scalar_quantile(p32).unwrap();
        let tolerance = if (1e-3..=1.0 - 1e-3).contains(&p32) {
            1e-4
        } else {
            5e-4
        };
        assert!(
            (f64::from(z) - exact).abs() < tolerance,
            "PhiInv({p}) = {z}, exact {exact}"
        );
        // d PhiInv / dp = 1 / phi(PhiInv(p)).
        let density = (-exact * exact / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let expected = 1.0 / density;
        assert!(
            (f64::from(g) - expected).abs() < 2e-2 * expected,
            "gradient at {p}: {g}, expected {expected}"
        );
    }
    // A start without the Newton step (A&S alone, error up to 4.5e-4) would fail here.
    let sharp = scalar(normal_quantile(floats(vec![0.8], [1])));
    assert!(
        (sharp - scalar_quantile(0.8).unwrap()).abs() < 2e-5,
        "{sharp}"
    );
}

#[test]
fn consistency_loss_is_the_papers_formula() {
    // Two copies of a batch of two, three classes.
    let logits = [
        [1.0, 0.0, -1.0],
        [0.2, 0.3, 0.1],
        [0.5, 0.5, 0.0],
        [-1.0, 2.0, 0.0],
    ];
    let y = [0usize, 1];
    let c = Consistency {
        copies: 2,
        lambda: 3.0,
        eta: 0.7,
    };
    let got = c
        .loss(
            floats(logits.iter().flatten().map(|&v| v as f32).collect(), [4, 3]),
            labels(y.iter().map(|&v| v as i64).collect()),
        )
        .unwrap();
    let mut ce = 0.0;
    let mut kl = 0.0;
    let mut entropy = 0.0;
    for j in 0..2 {
        let p: Vec<Vec<f64>> = (0..2).map(|i| softmax(&logits[i * 2 + j])).collect();
        let mean: Vec<f64> = (0..3).map(|c| (p[0][c] + p[1][c]) / 2.0).collect();
        for p_i in &p {
            ce -= p_i[y[j]].ln() / 4.0;
            kl += (0..3)
                .map(|c| mean[c] * (mean[c] / p_i[c]).ln())
                .sum::<f64>()
                / 4.0;
        }
        entropy -= (0..3).map(|c| mean[c] * mean[c].ln()).sum::<f64>() / 2.0;
    }
    let expected = ce + 3.0 * kl + 0.7 * entropy;
    assert!((scalar(got) - expected).abs() < 1e-5, "{expected}");
}

#[test]
fn macer_loss_is_the_papers_formula() {
    // Two copies of a batch of three, three classes: example 0 classified correctly within
    // the margin (hinged), example 1 misclassified (no hinge), example 2 correct but with a
    // margin beyond gamma (no hinge).
    let logits = [
        [0.3, 0.1, 0.0],
        [0.0, 0.2, 0.1],
        [3.0, 0.0, 0.0],
        [0.2, 0.0, 0.1],
        [0.3, 0.1, 0.0],
        [3.0, 0.0, 0.0],
    ];
    let y = [0usize, 2, 0];
    let m = Macer {
        samples: 2,
        lambda: 2.0,
        gamma: 1.5,
        beta: 4.0,
        deferred: 0,
    };
    let sigma = 0.5;
    let got = m
        .loss(
            floats(logits.iter().flatten().map(|&v| v as f32).collect(), [6, 3]),
            labels(y.iter().map(|&v| v as i64).collect()),
            sigma,
        )
        .unwrap();
    let mut classification = 0.0;
    let mut hinge = 0.0;
    let mut hinged = 0;
    for j in 0..3 {
        let rows = [logits[j], logits[3 + j]];
        let mean = |scale: f64| -> Vec<f64> {
            let p: Vec<Vec<f64>> = rows
                .iter()
                .map(|r| softmax(&r.map(|v| v * scale)))
                .collect();
            (0..3).map(|c| (p[0][c] + p[1][c]) / 2.0).collect()
        };
        classification -= mean(1.0)[y[j]].ln() / 3.0;
        let sharp = mean(m.beta);
        let mut order: Vec<usize> = (0..3).collect();
        order.sort_by(|a, b| sharp[*b].total_cmp(&sharp[*a]));
        let xi =
            scalar_quantile(sharp[order[0]]).unwrap() - scalar_quantile(sharp[order[1]]).unwrap();
        if order[0] == y[j] && xi <= m.gamma {
            hinge += (m.gamma - xi) / 3.0;
            hinged += 1;
        }
    }
    assert_eq!(hinged, 1, "the case covers one hinged example");
    let expected = classification + m.lambda * sigma / 2.0 * hinge;
    let got = scalar(got);
    assert!((got - expected).abs() < 1e-4, "{got} vs {expected}");
    // Logits of the wrong length for the labels are an error, not a panic.
    assert!(matches!(
        m.loss(floats(vec![0.0; 15], [5, 3]), labels(vec![0, 1, 2]), sigma),
        Err(Error::InvalidParameter { name: "logits", .. })
    ));
}

/// Trains a small CNN on the 1,437 training digits (23 batches of 64) for `epochs` epochs
/// with `objective`, checkpointing to `dir`.
fn run(
    objective: Objective,
    epochs: usize,
    dir: &std::path::Path,
) -> Result<Vec<EpochReport>, Error> {
    let device = Default::default();
    let (train_set, test_set) = digits().unwrap().split_at(1_437).unwrap();
    B::seed(&device, 0);
    let model = SmallCnnConfig::new([1, 8, 8], 10)
        .with_filters(16)
        .init::<B>(&device)
        .unwrap();
    let config = TrainConfig::new(0.25)
        .epochs(epochs)
        .batch_size(64)
        .lr(0.1)
        .objective(objective)
        .check()?;
    let mut reports = Vec::new();
    train(model, &train_set, &test_set, &config, Some(dir), 3, |e| {
        reports.push(e.clone())
    })?;
    Ok(reports)
}

#[test]
fn each_objective_learns_and_resumes_exactly() {
    let _generator = lock_generator();
    let objectives = [
        Objective::Consistency(Consistency::default()),
        // At the default lambda = 12 this tiny network collapses to one class within an
        // epoch (docs/training.md); lambda = 1 keeps the hinge and learns.
        Objective::Macer(Macer {
            samples: 4,
            lambda: 1.0,
            ..Macer::default()
        }),
        // An 8x8 digit has an l2 norm near 4: the CIFAR default of epsilon = 1 stalls it.
        Objective::SmoothAdv(SmoothAdv {
            epsilon: 0.25,
            warmup: 2,
            ..SmoothAdv::default()
        }),
    ];
    for objective in objectives {
        let name = objective.name();
        let whole = crate::common::scratch_dir(&format!("objective-{name}-whole"));
        let split = crate::common::scratch_dir(&format!("objective-{name}-split"));
        let reports = run(objective, 4, &whole).unwrap();
        let losses: Vec<f64> = reports.iter().map(|r| r.train_loss).collect();
        assert!(losses.iter().all(|l| l.is_finite()), "{name}: {losses:?}");
        assert!(
            losses[3] < 0.8 * losses[0],
            "{name}: the loss did not fall: {losses:?}"
        );
        // Two epochs, then two more from the checkpoint: the same epochs as one run.
        let first = run(objective, 2, &split).unwrap();
        let rest = run(objective, 4, &split).unwrap();
        let resumed: Vec<(usize, f64, f64)> = first
            .iter()
            .chain(&rest)
            .map(|r| (r.epoch, r.train_loss, r.test_acc))
            .collect();
        let straight: Vec<(usize, f64, f64)> = reports
            .iter()
            .map(|r| (r.epoch, r.train_loss, r.test_acc))
            .collect();
        assert_eq!(resumed, straight, "{name}");
        // Resuming with another objective would mix two trainings.
        let err = run(Objective::Gaussian, 5, &split).unwrap_err();
        match err {
            Error::RunMismatch { differences, .. } => {
                assert_eq!(differences.len(), 1, "{differences:?}");
                assert!(
                    differences[0].starts_with("objective is gaussian"),
                    "{differences:?}"
                );
            }
            other => panic!("{name}: {other}"),
        }
        let _ = std::fs::remove_dir_all(whole);
        let _ = std::fs::remove_dir_all(split);
    }
}

#[test]
fn objective_settings_are_checked() {
    let bad = [
        Objective::Consistency(Consistency {
            copies: 1,
            ..Default::default()
        }),
        Objective::Consistency(Consistency {
            lambda: f64::NAN,
            ..Default::default()
        }),
        Objective::Macer(Macer {
            gamma: 0.0,
            ..Default::default()
        }),
        Objective::Macer(Macer {
            beta: -1.0,
            ..Default::default()
        }),
        Objective::SmoothAdv(SmoothAdv {
            steps: 0,
            ..Default::default()
        }),
        Objective::SmoothAdv(SmoothAdv {
            epsilon: f64::INFINITY,
            ..Default::default()
        }),
    ];
    for objective in bad {
        assert!(
            matches!(
                TrainConfig::new(0.25).objective(objective).check(),
                Err(Error::InvalidParameter { .. })
            ),
            "{objective}"
        );
    }
    assert!(
        TrainConfig::new(0.0)
            .objective(Objective::Gaussian)
            .check()
            .is_ok()
    );
    assert_eq!(
        Objective::Macer(Macer::default()).to_string(),
        "macer (k = 16, lambda = 12, gamma = 8, beta = 16, deferred = 0)"
    );
    // The quantile's scalar twin agrees with the CDF it inverts.
    assert!((normal_cdf(scalar_quantile(0.9).unwrap()) - 0.9).abs() < 1e-12);
}

// Denoised smoothing (Salman et al. 2020): a denoiser trained in front of a fixed
// classifier, and the composition smoothed.

mod denoised {
    use super::*;
    use burn::module::AutodiffModule;
    use randomized_smoothing::models::{Denoised, Dncnn};
    use randomized_smoothing::models::{
        DenoiserCard, DncnnConfig, ImageClassifier, ModelCard, ModelConfig, SmallCnn,
        load_denoiser, load_model_with_card, save_denoiser, save_model_with_card,
    };
    use randomized_smoothing::workflow::denoise::{
        DenoiserObjective, DenoiserTrainConfig, train_denoiser,
    };
    use randomized_smoothing::{Gaussian, SmoothedClassifier};

    /// A small CNN trained on clean digits (sigma 0): the "off-the-shelf" classifier.
    fn clean_classifier() -> SmallCnn<B> {
        let device = Default::default();
        let (train_set, test_set) = digits().unwrap().split_at(1_437).unwrap();
        B::seed(&device, 0);
        let model = SmallCnnConfig::new([1, 8, 8], 10)
            .with_filters(16)
            .init::<B>(&device)
            .unwrap();
        let config = TrainConfig::new(0.0)
            .epochs(3)
            .batch_size(64)
            .lr(0.1)
            .check()
            .unwrap();
        train(model, &train_set, &test_set, &config, None, 0, |_| {}).unwrap()
    }

    fn denoise(
        classifier: &SmallCnn<B>,
        start: Option<Dncnn<B>>,
        objective: DenoiserObjective,
        epochs: usize,
        dir: Option<&std::path::Path>,
    ) -> Result<(Dncnn<B>, Vec<EpochReport>), Error> {
        let device = Default::default();
        let (train_set, test_set) = digits().unwrap().split_at(1_437).unwrap();
        B::seed(&device, 1);
        let denoiser = match start {
            Some(d) => d,
            None => DncnnConfig::new([1, 8, 8])
                .with_depth(4)
                .with_width(16)
                .init::<B>(&device)?,
        };
        let config = DenoiserTrainConfig::new(0.25, objective)
            .epochs(epochs)
            .batch_size(64)
            .check()?;
        let mut reports = Vec::new();
        let trained = train_denoiser(
            denoiser,
            classifier,
            &train_set,
            &test_set,
            &config,
            dir,
            5,
            |e| reports.push(e.clone()),
        )?;
        Ok((trained, reports))
    }

    #[test]
    fn an_untrained_denoiser_is_the_identity_under_smoothing() {
        let _generator = lock_generator();
        // The last convolution starts at zero: f(D(x + e)) is f(x + e) exactly, so the
        // same seed gives the same counts. A denoiser applied before the noise, or noise
        // drawn differently for the composition, would not.
        let device = Default::default();
        let classifier = clean_classifier().valid();
        let denoiser = DncnnConfig::new([1, 8, 8]).init::<Flex>(&device).unwrap();
        let x = digits().unwrap().split_at(1_437).unwrap().1;
        let image: Tensor<Flex, 3> = Tensor::from_data(
            TensorData::new(
                randomized_smoothing::data::ImageSource::load(&x, 3)
                    .unwrap()
                    .into_owned(),
                [1, 8, 8],
            ),
            &device,
        );
        let plain = SmoothedClassifier::new(classifier.clone(), Gaussian::new(0.5).unwrap());
        let composed = SmoothedClassifier::new(
            Denoised::new(denoiser, classifier).unwrap(),
            Gaussian::new(0.5).unwrap(),
        );
        let a = plain.sample_counts(image.clone(), 2_000, 500, 9).unwrap();
        let b = composed.sample_counts(image, 2_000, 500, 9).unwrap();
        assert_eq!(a, b);
        // At sigma 0.5 the clean classifier is unsure: several classes appear, so equal
        // counts are not a single class answered everywhere.
        assert!(a.iter().filter(|&&c| c > 0).count() >= 2, "{a:?}");
    }

    #[test]
    fn denoisers_learn_resume_exactly_and_help_the_classifier() {
        let _generator = lock_generator();
        let classifier = clean_classifier();
        let whole = crate::common::scratch_dir("denoiser-whole");
        let (mse, mse_log) =
            denoise(&classifier, None, DenoiserObjective::Mse, 4, Some(&whole)).unwrap();
        let mse_test: Vec<f64> = mse_log.iter().map(|r| r.test_loss).collect();
        // The noisy image's own squared error is sigma^2 = 0.0625 per pixel; four epochs
        // remove more than 40% of it (measured: 0.029).
        assert!(mse_test[3] < 0.6 * 0.0625, "{mse_test:?}");
        assert!(mse_test[3] < mse_test[0], "{mse_test:?}");

        // Two epochs, then two more from the checkpoint: the same as four at once.
        let split = crate::common::scratch_dir("denoiser-split");
        let (_, first) =
            denoise(&classifier, None, DenoiserObjective::Mse, 2, Some(&split)).unwrap();
        let (_, rest) =
            denoise(&classifier, None, DenoiserObjective::Mse, 4, Some(&split)).unwrap();
        let key = |r: &EpochReport| (r.epoch, r.train_loss, r.test_loss, r.test_acc);
        assert_eq!(
            first.iter().chain(&rest).map(key).collect::<Vec<_>>(),
            mse_log.iter().map(key).collect::<Vec<_>>()
        );
        // The folder belongs to this classifier and this objective.
        let err = denoise(
            &classifier,
            None,
            DenoiserObjective::Stability,
            5,
            Some(&split),
        )
        .unwrap_err();
        assert!(
            matches!(&err, Error::RunMismatch { differences, .. }
                if differences.len() == 1 && differences[0].starts_with("objective is stability")),
            "{err}"
        );
        let other = {
            let device = Default::default();
            B::seed(&device, 42);
            SmallCnnConfig::new([1, 8, 8], 10)
                .with_filters(16)
                .init::<B>(&device)
                .unwrap()
        };
        let err = denoise(&other, None, DenoiserObjective::Mse, 5, Some(&split)).unwrap_err();
        assert!(
            matches!(&err, Error::RunMismatch { differences, .. }
                if differences.len() == 1 && differences[0].starts_with("classifier_sha256")),
            "{err}"
        );

        // Stability training from the MSE denoiser raises the classifier's accuracy on
        // denoised noisy images.
        let (_, stab_log) = denoise(
            &classifier,
            Some(mse),
            DenoiserObjective::Stability,
            2,
            None,
        )
        .unwrap();
        let (mse_acc, stab_acc) = (mse_log[3].test_acc, stab_log[1].test_acc);
        assert!(stab_log.iter().all(|r| r.train_loss.is_finite()));
        // Measured: 0.57 against 0.43.
        assert!(
            stab_acc > mse_acc + 0.05,
            "stability {stab_acc}, mse {mse_acc}"
        );
        let _ = std::fs::remove_dir_all(whole);
        let _ = std::fs::remove_dir_all(split);
    }

    #[test]
    fn denoiser_files_round_trip_and_are_not_classifiers() {
        let _generator = lock_generator();
        let device = Default::default();
        let dir = crate::common::scratch_dir("denoiser-files");
        let config = DncnnConfig::new([1, 8, 8]).with_depth(3).with_width(4);
        B::seed(&device, 3);
        let denoiser = config.init::<Flex>(&device).unwrap();
        let path = dir.join("denoiser.bpk");
        save_denoiser(&denoiser, &DenoiserCard::new(config.clone()), &path).unwrap();
        let (loaded, card) = load_denoiser::<Flex>(&path, &device).unwrap();
        assert_eq!((card.denoiser.depth, card.denoiser.width), (3, 4));
        let x = Tensor::<Flex, 4>::ones([2, 1, 8, 8], &device) * 0.5;
        use randomized_smoothing::models::Denoiser;
        assert_eq!(
            denoiser.denoise(x.clone()).into_data(),
            loaded.denoise(x).into_data()
        );
        // A card that describes other images is refused.
        let wrong = DenoiserCard::new(DncnnConfig::new([1, 4, 4]));
        assert!(matches!(
            save_denoiser(&denoiser, &wrong, dir.join("wrong.bpk")),
            Err(Error::InvalidParameter { .. })
        ));
        // Neither file passes for the other kind.
        let model_config = ModelConfig::SmallCnn(SmallCnnConfig::new([1, 8, 8], 10));
        let classifier_path = dir.join("classifier.bpk");
        let classifier = model_config.init::<Flex>(&device).unwrap();
        assert_eq!(classifier.input_shape(), &[1, 8, 8]);
        save_model_with_card(&classifier, &ModelCard::new(model_config), &classifier_path).unwrap();
        let err = load_denoiser::<Flex>(&classifier_path, &device).unwrap_err();
        assert!(err.to_string().contains("holds a classifier"), "{err}");
        let err = load_model_with_card::<Flex>(&path, &device).unwrap_err();
        assert!(err.to_string().contains("holds a denoiser"), "{err}");
        // A changed byte in the weights is caught by the digest.
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0x40;
        std::fs::write(&path, bytes).unwrap();
        assert!(matches!(
            load_denoiser::<Flex>(&path, &device),
            Err(Error::CorruptedFile { .. })
        ));
        let _ = std::fs::remove_dir_all(dir);
    }
}
