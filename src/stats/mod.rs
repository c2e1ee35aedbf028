//! Statistics in `f64`, free of Burn: the binomial distribution with its Clopper-Pearson
//! bounds, the Hung-Fithian test behind PREDICT, the standard normal distribution, the seed
//! mixing every random stream of the crate derives from, and the vectorized sampler of the
//! Gaussian noise drawn on the CPU.

pub mod binomial;
pub mod hung_fithian;
pub mod normal;
pub(crate) mod seed;
pub(crate) mod special;
pub(crate) mod ziggurat;
