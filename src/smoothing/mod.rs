//! The smoothed classifier on Burn tensors: the base-classifier contract ([`BaseClassifier`]),
//! the noise families ([`NoiseDistribution`]), the sampling loop that counts decisions under
//! noise, and the procedures over it: PREDICT and CERTIFY ([`SmoothedClassifier`]) and the
//! sequential certification of [`sequential`].

pub(crate) mod base;
mod generator;
mod noise;
mod outcome;
mod params;
pub(crate) mod sampling;
pub mod sequential;
mod smoothed;

pub use base::{BaseClassifier, LinearClassifier, LogitsClassifier};
pub use generator::{GeneratorGuard, lock_generator};
pub use noise::{Gaussian, Laplace, NoiseDistribution, Norm, Uniform};
pub use outcome::{AbstainReason, Certification, Estimate, Prediction};
pub use params::{
    CertifyConfig, CertifyValidConfig, MAX_SAMPLES, PredictConfig, PredictValidConfig,
};
pub use sequential::{Sequential, SequentialConfig, SequentialValidConfig, Verdict};
pub use smoothed::SmoothedClassifier;

/// The version of the noise streams: bumped whenever the same seed would give other noise
/// samples, so that a log certified with one stream is never resumed with another (see
/// [`crate::workflow::manifest`]). 1: rand_distr's normals; 2: the vectorized ziggurat
/// (`stats::ziggurat`); 3: procedure streams from SplitMix64 instead of rand's `StdRng`; 4:
/// on the host, each noisy copy seeded by its row number in the stream rather than by its
/// batch and place in the batch, so rows no longer depend on the batch size.
pub const NOISE_STREAM_VERSION: u32 = 4;
