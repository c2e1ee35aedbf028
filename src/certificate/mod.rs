//! Certificates from probabilities, in `f64` and free of Burn: the paper's Theorem 1
//! ([`radius`]), the earlier bounds it is compared with ([`prior`], Appendix I), the l1 radii
//! of Laplace and uniform noise ([`l1`]), certified accuracy with its Appendix D lower bound
//! ([`accuracy`]), and the projection of logged runs to other settings ([`projection`]).

pub mod accuracy;
pub mod l1;
pub mod prior;
pub mod projection;
pub mod radius;
