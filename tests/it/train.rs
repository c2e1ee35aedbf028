//! Training with Gaussian augmentation: it learns, checkpoints every epoch and resumes after
//! the last checkpoint without repeating an epoch.

use burn::backend::{Autodiff, Flex};
use randomized_smoothing::Error;
use randomized_smoothing::data::digits;
use randomized_smoothing::models::SmallCnnConfig;
use randomized_smoothing::workflow::train::{TrainConfig, train};

// The CPU build's training backend.
type B = Autodiff<Flex>;

#[test]
fn learns_checkpoints_and_resumes() {
    // Initialization and training draw from Burn's generator.
    let _generator = randomized_smoothing::smoothing::lock_generator();
    let dir = std::env::temp_dir().join(format!("rs-train-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let device = Default::default();
    let (train_set, test_set) = digits().unwrap().split_at(1_437).unwrap();
    let model = || {
        // A fixed initialization: unseeded, an unlucky draw can stall at lr 0.1.
        <B as burn::tensor::backend::Backend>::seed(&device, 0);
        SmallCnnConfig::new([1, 8, 8], 10)
            .with_filters(16)
            .init::<B>(&device)
            .unwrap()
    };
    let params = TrainConfig::new(0.25)
        .batch_size(64)
        .lr(0.1)
        .lr_schedule(3, 0.1);

    let mut epochs = Vec::new();
    let config = params.clone().epochs(3).check().unwrap();
    train(
        model(),
        &train_set,
        &test_set,
        &config,
        Some(&dir),
        1,
        |e| epochs.push(e.clone()),
    )
    .unwrap();
    assert_eq!(
        epochs.iter().map(|e| e.epoch).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(dir.join("model-3.mpk").exists() && dir.join("optim-3.mpk").exists());

    // Asked for 5 epochs with checkpoints of 3: only epochs 4 and 5 run, at the decayed rate.
    let mut resumed = Vec::new();
    let config = params.epochs(5).check().unwrap();
    train(
        model(),
        &train_set,
        &test_set,
        &config,
        Some(&dir),
        1,
        |e| resumed.push(e.clone()),
    )
    .unwrap();
    assert_eq!(
        resumed.iter().map(|e| (e.epoch, e.lr)).collect::<Vec<_>>(),
        vec![(4, 0.010000000000000002), (5, 0.010000000000000002)]
    );
    // The resumed model starts where the first run ended, well above chance.
    // (A fresh model scores about 0.12 in its first epoch, and at the decayed rate would stay there.)
    assert!(
        resumed[0].train_acc > epochs[0].train_acc + 0.1,
        "{:?} after {:?}",
        resumed[0],
        epochs
    );
    let log = std::fs::read_to_string(dir.join("log.tsv")).unwrap();
    let epochs_logged: Vec<&str> = log
        .lines()
        .skip(1)
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(epochs_logged, vec!["1", "2", "3", "4", "5"]);
    assert!(log.starts_with("epoch\ttime\tlr\ttrain_loss\ttrain_acc\ttest_loss\ttest_acc\n"));
    assert!(log.contains("\t0.010000\t"), "{log}");
    // Checkpoints kept: the last two epochs whole, and the best epoch's model.
    let accuracies: Vec<(usize, f64)> = log
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].parse().unwrap(), f[6].parse().unwrap())
        })
        .collect();
    let best = accuracies
        .iter()
        .fold((0, -1.0), |b, &(e, a)| if a > b.1 { (e, a) } else { b })
        .0;
    for epoch in 1..=5 {
        let kept = |kind: &str| dir.join(format!("{kind}-{epoch}.mpk")).exists();
        assert_eq!(kept("optim"), epoch >= 4, "optim-{epoch}");
        assert_eq!(
            kept("model"),
            epoch >= 4 || epoch == best,
            "model-{epoch} (best {best})"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_hyperparameters_are_rejected() {
    assert!(matches!(
        TrainConfig::new(-0.1).check(),
        Err(Error::InvalidSigma(_))
    ));
    assert!(matches!(
        TrainConfig::new(0.25).batch_size(0).check(),
        Err(Error::ZeroCount("batch_size"))
    ));
    assert!(matches!(
        TrainConfig::new(0.25).lr(f64::NAN).check(),
        Err(Error::InvalidParameter { name: "lr", .. })
    ));
    assert!(matches!(
        TrainConfig::new(0.25).sgd(1.0, 1e-4).check(),
        Err(Error::InvalidParameter {
            name: "momentum",
            ..
        })
    ));
    assert!(matches!(
        TrainConfig::new(0.25).lr_schedule(0, 0.1).check(),
        Err(Error::ZeroCount(_))
    ));
    let (a, _) = digits().unwrap().split_at(10).unwrap();
    let mnist_like =
        randomized_smoothing::data::Dataset::new(vec![0.0; 4], vec![0], vec![1, 2, 2], 10).unwrap();
    let model = SmallCnnConfig::new([1, 8, 8], 10)
        .with_filters(4)
        .init::<B>(&Default::default())
        .unwrap();
    let config = TrainConfig::new(0.25).epochs(1).check().unwrap();
    let err = train(model, &a, &mnist_like, &config, None, 0, |_| {}).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidParameter {
                name: "test_set",
                ..
            }
        ),
        "{err}"
    );
}
