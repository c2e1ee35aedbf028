#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod binomial;
mod error;
pub mod normal;
mod special;

pub use error::{Error, Result};
pub mod radius;
