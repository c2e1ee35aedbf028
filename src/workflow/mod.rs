//! The experiment workflow over the library: training with Gaussian augmentation ([`train`]),
//! certification, prediction and attack jobs over data sets that can be resumed and sharded
//! ([`jobs`], [`attacks`]), their logs ([`records`]) and run manifests ([`manifest`]), certified-accuracy tables ([`analysis`]) and plots
//! ([`plot`]).

pub mod analysis;
pub mod attacks;
pub mod jobs;
pub mod manifest;
pub mod objective;
#[cfg(feature = "plot")]
pub mod plot;
pub mod records;
pub mod train;
