//! The experiment workflow over the library: training with Gaussian augmentation or the
//! objectives of later work ([`train`], [`objective`]), training denoisers ([`denoise`]),
//! certification, prediction and attack jobs over data sets that can be resumed and sharded
//! ([`jobs`], [`attacks`]) with one writer per log ([`lock`]), warming a backend's kernels up before a job ([`warm_up`]), their
//! logs ([`records`]) and run manifests ([`manifest`]), certified-accuracy tables
//! ([`analysis`]) and plots ([`plot`]).

pub mod analysis;
pub mod attacks;
mod checkpoints;
pub mod denoise;
mod epochs;
pub mod jobs;
pub mod lock;
pub mod manifest;
mod merge;
pub mod objective;
#[cfg(feature = "plot")]
pub mod plot;
pub mod records;
mod selection;
pub mod train;
pub mod warm_up;
