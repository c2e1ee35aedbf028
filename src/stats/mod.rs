//! Statistics in `f64`, free of Burn: the binomial distribution with its Clopper-Pearson
//! bounds, the Hung-Fithian test behind PREDICT, the standard normal distribution, and the
//! seed mixing every random stream of the crate derives from.

pub mod binomial;
pub mod hung_fithian;
pub mod normal;
pub(crate) mod seed;
pub(crate) mod special;
