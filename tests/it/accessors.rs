//! The accessors and defaults of the public types, one test per module: what their doc
//! examples asserted before those examples were kept for types and procedures only (doc
//! tests are compiled one by one; these compile once).
//!
//! The defaults checked here are the paper's (CERTIFY's n0 = 100, n = 100,000,
//! alpha = 0.001) and those the docs state for the attacks and training.

use randomized_smoothing::Error;

/// From `src/attack/deepfool.rs`.
#[test]
fn attack_deepfool() -> Result<(), Error> {
    {
        assert_eq!(
            randomized_smoothing::attack::DeepFoolConfig::default()
                .check()?
                .max_iterations(),
            50
        );
    }
    {
        assert_eq!(
            randomized_smoothing::attack::DeepFoolConfig::default()
                .check()?
                .overshoot(),
            0.02
        );
    }
    {
        assert_eq!(
            randomized_smoothing::attack::DeepFoolConfig::default()
                .check()?
                .candidates(),
            10
        );
    }
    {
        use randomized_smoothing::attack::DeepFoolConfig;

        assert_eq!(
            DeepFoolConfig::default()
                .pixel_range(None)
                .check()?
                .pixel_range(),
            None
        );
    }
    Ok(())
}

/// From `src/attack/pgd.rs`.
#[test]
fn attack_pgd() -> Result<(), Error> {
    {
        assert_eq!(
            randomized_smoothing::attack::PgdConfig::new(0.5)
                .check()?
                .radius(),
            0.5
        );
    }
    {
        assert_eq!(
            randomized_smoothing::attack::PgdConfig::new(0.5)
                .check()?
                .steps(),
            20
        );
    }
    {
        assert_eq!(
            randomized_smoothing::attack::PgdConfig::new(0.5)
                .check()?
                .samples(),
            128
        );
    }
    {
        assert_eq!(
            randomized_smoothing::attack::PgdConfig::new(0.5)
                .check()?
                .batch_size(),
            128
        );
    }
    {
        use randomized_smoothing::attack::{Objective, PgdConfig};

        assert_eq!(
            PgdConfig::new(0.5).check()?.objective(),
            Objective::MeanLoss
        );
    }
    {
        use randomized_smoothing::attack::PgdConfig;

        assert_eq!(
            PgdConfig::new(0.5).pixel_range(None).check()?.pixel_range(),
            None
        );
    }
    Ok(())
}

/// From `src/certificate/projection.rs`.
#[test]
fn certificate_projection() -> Result<(), Error> {
    {
        let s =
            randomized_smoothing::certificate::projection::LoggedSettings::new(0.25, 10_000, 0.01)?;
        assert_eq!(s.sigma(), 0.25);
    }
    {
        let s =
            randomized_smoothing::certificate::projection::LoggedSettings::new(0.25, 10_000, 0.01)?;
        assert_eq!(s.n(), 10_000);
    }
    {
        let s =
            randomized_smoothing::certificate::projection::LoggedSettings::new(0.25, 10_000, 0.01)?;
        assert_eq!(s.alpha(), 0.01);
    }
    {
        use randomized_smoothing::certificate::projection::{Projection, RadiusBound};

        assert_eq!(Projection::new(500, 0.01, RadiusBound::Cohen)?.n(), 500);
    }
    {
        use randomized_smoothing::certificate::projection::{Projection, RadiusBound};

        assert_eq!(
            Projection::new(500, 0.01, RadiusBound::Cohen)?.alpha(),
            0.01
        );
    }
    {
        use randomized_smoothing::certificate::projection::{Projection, RadiusBound};

        assert_eq!(
            Projection::new(500, 0.01, RadiusBound::Li)?.bound(),
            RadiusBound::Li
        );
    }
    Ok(())
}

/// From `src/data/mod.rs`.
#[test]
fn data_mod() -> Result<(), Error> {
    {
        assert_eq!(randomized_smoothing::data::digits()?.len(), 1_797);
    }
    {
        assert!(!randomized_smoothing::data::digits()?.is_empty());
    }
    {
        assert_eq!(
            randomized_smoothing::data::digits()?.image_shape(),
            &[1, 8, 8]
        );
    }
    {
        assert_eq!(randomized_smoothing::data::digits()?.num_classes(), 10);
    }
    {
        assert_eq!(randomized_smoothing::data::digits()?.labels().len(), 1_797);
    }
    Ok(())
}

/// From `src/models/normalize.rs`.
#[test]
fn models_normalize() -> Result<(), Error> {
    {
        assert_eq!(
            randomized_smoothing::models::Normalize::new(&[0.5], &[0.5])?.channels(),
            1
        );
    }
    {
        assert_eq!(
            randomized_smoothing::models::Normalize::new(&[0.5], &[0.2])?.mean(),
            &[0.5]
        );
    }
    {
        assert_eq!(
            randomized_smoothing::models::Normalize::new(&[0.5], &[0.2])?.std(),
            &[0.2]
        );
    }
    Ok(())
}

/// From `src/smoothing/base.rs`.
#[test]
fn smoothing_base() -> Result<(), Error> {
    {
        use burn::backend::NdArray;
        use randomized_smoothing::LinearClassifier;

        let f = LinearClassifier::<NdArray>::new(&[1.0, 2.0], 0.0, &Default::default())?;
        assert_eq!(f.weights(), &[1.0, 2.0]);
    }
    {
        use burn::backend::NdArray;
        use randomized_smoothing::LinearClassifier;

        let f = LinearClassifier::<NdArray>::new(&[1.0], -0.25, &Default::default())?;
        assert_eq!(f.bias(), -0.25);
    }
    Ok(())
}

/// From `src/smoothing/noise.rs`.
#[test]
fn smoothing_noise() -> Result<(), Error> {
    {
        use randomized_smoothing::Gaussian;

        assert_eq!(Gaussian::new(1.0)?.sigma(), 1.0);
    }
    {
        assert_eq!(randomized_smoothing::Laplace::new(1.0)?.scale(), 1.0);
    }
    {
        assert_eq!(randomized_smoothing::Uniform::new(0.5)?.half_width(), 0.5);
    }
    Ok(())
}

/// From `src/smoothing/params.rs`.
#[test]
fn smoothing_params() -> Result<(), Error> {
    {
        use randomized_smoothing::CertifyConfig;
        assert_eq!(CertifyConfig::default().check()?.n0(), 100);
    }
    {
        use randomized_smoothing::CertifyConfig;
        assert_eq!(CertifyConfig::default().check()?.n(), 100_000);
    }
    {
        use randomized_smoothing::CertifyConfig;
        assert_eq!(CertifyConfig::default().check()?.alpha(), 0.001);
    }
    {
        use randomized_smoothing::CertifyConfig;
        assert_eq!(
            CertifyConfig::default()
                .batch_size(50)
                .check()?
                .batch_size(),
            50
        );
    }
    {
        use randomized_smoothing::CertifyConfig;
        assert!(!CertifyConfig::default().check()?.is_two_sided());
    }
    {
        use randomized_smoothing::PredictConfig;
        assert_eq!(PredictConfig::default().check()?.n(), 100_000);
    }
    {
        use randomized_smoothing::PredictConfig;
        assert_eq!(PredictConfig::default().check()?.alpha(), 0.001);
    }
    {
        use randomized_smoothing::PredictConfig;
        assert_eq!(PredictConfig::default().check()?.batch_size(), 400);
    }
    Ok(())
}

/// From `src/smoothing/sequential.rs`.
#[test]
fn smoothing_sequential() -> Result<(), Error> {
    {
        use randomized_smoothing::SequentialConfig;
        assert_eq!(SequentialConfig::default().check()?.n0(), 100);
    }
    {
        use randomized_smoothing::SequentialConfig;
        assert_eq!(SequentialConfig::default().check()?.alpha(), 0.001);
    }
    {
        use randomized_smoothing::SequentialConfig;
        assert_eq!(SequentialConfig::default().check()?.batch_size(), 400);
    }
    {
        use randomized_smoothing::SequentialConfig;
        assert_eq!(SequentialConfig::default().check()?.tolerance(), 0.01);
    }
    Ok(())
}

/// From `src/smoothing/smoothed.rs`.
#[test]
fn smoothing_smoothed() -> Result<(), Error> {
    {
        use burn::backend::NdArray;
        use randomized_smoothing::{
            BaseClassifier, Gaussian, LinearClassifier, SmoothedClassifier,
        };

        let base = LinearClassifier::<NdArray>::new(&[1.0], 0.0, &Default::default())?;
        let smoothed = SmoothedClassifier::new(base, Gaussian::new(0.25)?);
        assert_eq!(smoothed.base().num_classes(), 2);
    }
    {
        use burn::backend::NdArray;
        use randomized_smoothing::{Gaussian, LinearClassifier, SmoothedClassifier};

        let base = LinearClassifier::<NdArray>::new(&[1.0], 0.0, &Default::default())?;
        let smoothed = SmoothedClassifier::new(base, Gaussian::new(0.25)?);
        assert_eq!(*smoothed.noise(), Gaussian::new(0.25)?);
    }
    Ok(())
}

/// From `src/workflow/analysis.rs`.
#[test]
fn workflow_analysis() -> Result<(), Error> {
    {
        use randomized_smoothing::{
            certificate::accuracy::Outcome, workflow::analysis::CertifiedAccuracyTable,
        };
        let t = CertifiedAccuracyTable::new(
            &[0.5],
            &[(
                "a",
                &[Outcome {
                    correct: true,
                    radius: 1.0,
                }][..],
            )],
        )?;
        assert_eq!(t.radii(), &[0.5]);
    }
    Ok(())
}

/// From `src/workflow/attacks.rs`.
#[test]
fn workflow_attacks() -> Result<(), Error> {
    {
        use randomized_smoothing::{attack::PgdConfig, workflow::attacks::AttackPlan};

        assert_eq!(AttackPlan::new(2.0, PgdConfig::new(1.0))?.multiple(), 2.0);
    }
    Ok(())
}

/// From `src/workflow/train.rs`.
#[test]
fn workflow_train() -> Result<(), Error> {
    {
        use randomized_smoothing::workflow::train::TrainConfig;
        assert_eq!(TrainConfig::new(0.12).check()?.sigma(), 0.12);
    }
    {
        use randomized_smoothing::workflow::train::TrainConfig;
        assert_eq!(TrainConfig::new(0.12).epochs(3).check()?.epochs(), 3);
    }
    {
        use randomized_smoothing::workflow::train::TrainConfig;
        assert_eq!(TrainConfig::new(0.12).check()?.batch_size(), 256);
    }
    Ok(())
}
