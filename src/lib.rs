#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod accuracy;
pub mod analysis;
pub mod attack;
pub mod binomial;
mod classifier;
pub mod data;
mod error;
pub mod jobs;
pub mod models;
pub mod normal;
pub mod plot;
pub mod projection;
pub mod radius;
pub mod records;
pub mod runtime;
mod sampling;
pub mod sequential;
mod smoothing;
mod special;
pub mod train;

pub use classifier::{BaseClassifier, LinearClassifier, LogitsClassifier};
pub use error::{Error, Result};
pub use sampling::{Gaussian, Laplace, NoiseDistribution, Norm, Uniform};
pub use sequential::{Sequential, SequentialConfig, SequentialParams, Verdict};
pub use smoothing::{
    AbstainReason, Certification, CertifyConfig, CertifyParams, Estimate, MAX_SAMPLES,
    PredictConfig, PredictParams, Prediction, SmoothedClassifier, TopTwoTest,
};
