//! The library's integration tests, one module per concern, in one test binary.
//!
//! One binary links the crate and Burn's generic code for each backend once, where a binary per
//! file linked them once per file. Tests that need a process of their own stay apart: the
//! program's (`tests/cli.rs`), the examples' (`tests/examples.rs`), Slurm's (`tests/slurm.rs`),
//! the mutation tests that count allocations with their own global allocator
//! (`tests/mutations.rs`) and the layering rule, which reads only source text
//! (`tests/layers.rs`).
//!
//! Burn's generator is process-wide, so every test here that seeds it, trains or initializes a
//! model from it holds the crate's one lock on it
//! ([`randomized_smoothing::backend_generator`]), as the library's sampling and training do.
//!
//! Run one concern with a filter on its module, e.g. `cargo test --release --test it --
//! coverage::`.

#[path = "../common/mod.rs"]
mod common;

mod accessors;
mod accuracy_bound;
mod attack;
mod coverage;
mod data;
mod errors;
#[cfg(feature = "image")]
mod image_folder;
mod jobs;
#[cfg(feature = "pytorch")]
mod models;
mod objectives;
#[cfg(feature = "onnx")]
mod onnx;
mod projection;
mod properties;
mod reference_logs;
mod smoothing;
mod statrs_comparison;
mod stats_reference;
mod train;
