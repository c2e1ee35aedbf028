#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod attack;
pub mod certificate;
pub mod data;
mod digest;
mod error;
pub mod models;
pub mod runtime;
pub mod smoothing;
pub mod stats;
pub mod workflow;

pub use error::{Error, IoError, IoOperation, Result, RowFault};
pub use smoothing::{
    AbstainReason, BaseClassifier, Certification, CertifyConfig, CertifyValidConfig, Estimate,
    Gaussian, Laplace, LinearClassifier, LogitsClassifier, MAX_SAMPLES, NoiseDistribution, Norm,
    PredictConfig, PredictValidConfig, Prediction, Sequential, SequentialConfig,
    SequentialValidConfig, SmoothedClassifier, Uniform, Verdict,
};
pub use stats::hung_fithian::TopTwoTest;
