//! `smoothing`: the paper's experiments from the command line, after its scripts
//! (`train.py`, `certify.py`, `predict.py`, `analyze.py`).
//!
//! ```text
//! smoothing train   --dataset digits --arch small_cnn --sigma 0.25 --epochs 20 --out runs/digits
//! smoothing train-denoiser --dataset digits --model runs/clean/model.bpk --sigma 0.25 --out runs/denoiser
//! smoothing certify --dataset digits --model runs/clean/model.bpk --denoiser runs/denoiser/denoiser.bpk --sigma 0.25 --n 10000 --out logs/denoised.tsv
//! smoothing certify --dataset digits --model runs/digits/model.bpk --sigma 0.25 --n 10000 --out logs/digits_0.25.tsv
//! smoothing predict --dataset digits --model runs/digits/model.bpk --sigma 0.25 --n 1000 --out logs/digits_0.25.predict.tsv
//! smoothing analyze logs/digits_0.25.tsv --out analysis/digits
//! smoothing merge   --out logs/all.tsv logs/shard0.tsv logs/shard1.tsv
//! smoothing status  logs/shard0.tsv logs/shard1.tsv
//! smoothing attack  --dataset digits --model runs/digits/model.bpk --sigma 0.25 --log logs/digits_0.25.tsv --multiples 1.5,2 --out attacks/digits
//! ```
//! Every command that runs a model takes `--backend` (flex, ndarray, libtorch, cuda or vulkan,
//! among those compiled in; by default the fastest for the device) and `--device` (cpu,
//! cuda:K or vulkan:K; cuda:0 by default in a build with `--features cuda`), and prints the
//! backend it runs on. On the CubeCL backends (cuda, vulkan) the compiled kernels and
//! autotune results are kept between runs (`--kernel-cache`), and certify and predict run one
//! pass of each batch size before their first row.

mod analyze;
mod attack;
mod certify;
mod common;
mod denoise;
mod predict;
mod progress;
mod run;
mod status;
mod train;

use analyze::*;
use attack::*;
use certify::*;
use denoise::*;
use predict::*;
use status::*;
use train::*;

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use clap::{Args, Parser, Subcommand};
use randomized_smoothing::models::kernels::Isa;
use randomized_smoothing::runtime::{BackendKind, BackendTask, DeviceKind, Runtime};
use randomized_smoothing::workflow::jobs::merge_logs;

pub(crate) type Failure = Box<dyn std::error::Error>;

#[derive(Parser)]
#[command(
    version,
    about = "Certified robustness by randomized smoothing (Cohen et al., 2019)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Backend: flex, ndarray, libtorch, cuda or vulkan, among those compiled in (cargo
    /// features flex, ndarray, tch, cuda, vulkan). Default: the fastest compiled in for the
    /// device (on the CPU libtorch, else flex; on an NVIDIA GPU cuda, else libtorch).
    #[arg(long, global = true)]
    backend: Option<BackendKind>,
    /// Device: cpu, cuda (the first NVIDIA GPU), cuda:K, vulkan (the first Vulkan GPU) or
    /// vulkan:K. Default: cuda:0 in a build with the `cuda` feature, else cpu.
    #[arg(long, global = true)]
    device: Option<DeviceKind>,
    /// CubeCL backends (cuda, vulkan): the folder that keeps their compiled kernels and
    /// autotune results between runs. Default: randomized-smoothing/kernels in the user's
    /// cache folder ($XDG_CACHE_HOME, else ~/.cache); `off` leaves CubeCL's own settings
    /// (autotune results under the nearest target/ folder, kernels not kept).
    #[cfg(any(feature = "cuda", feature = "vulkan"))]
    #[arg(long, global = true, value_name = "DIR|off")]
    kernel_cache: Option<PathBuf>,
}

/// A command that runs a model, on the backend `--backend` and `--device` choose.
enum Work<'a> {
    Train(&'a TrainArgs),
    TrainDenoiser(&'a TrainDenoiserArgs),
    Certify(&'a CertifyArgs),
    Predict(&'a PredictArgs),
    Attack(&'a AttackArgs),
}

impl BackendTask for Work<'_> {
    type Output = Result<(), Failure>;

    fn run<B: Backend>(self, device: B::Device) -> Result<(), Failure> {
        match self {
            Work::Train(a) => run_train::<B>(a, &device),
            Work::TrainDenoiser(a) => run_train_denoiser::<B>(a, &device),
            Work::Certify(a) => run_certify::<B>(a, &device),
            Work::Predict(a) => run_predict::<B>(a, &device),
            Work::Attack(a) => run_attack::<B>(a, &device),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Train a base classifier with Gaussian data augmentation (the paper's train.py).
    Train(TrainArgs),
    /// Train a denoiser in front of a fixed classifier, for denoised smoothing (Salman et
    /// al. 2020): certify and predict take it as --denoiser.
    TrainDenoiser(TrainDenoiserArgs),
    /// CERTIFY each selected example; one TSV row per example (certify.py's format).
    Certify(CertifyArgs),
    /// PREDICT each selected example; one TSV row per example (predict.py's format).
    Predict(PredictArgs),
    /// Certified-accuracy tables, Appendix D lower bounds and plots from certification logs.
    Analyze(AnalyzeArgs),
    /// Merge the logs of a sharded run into one, refusing duplicate rows.
    Merge(MergeArgs),
    /// How far the shards of a run have got: rows done and expected per shard, the rate,
    /// the time left and the shards with no log yet.
    Status(StatusArgs),
    /// Attack certified examples with PGD against the smoothed classifier at multiples of
    /// their certified radius (Appendix J.3), or the base classifier with DeepFool.
    Attack(AttackArgs),
}

#[derive(Args)]
struct MergeArgs {
    /// The merged log.
    #[arg(long)]
    out: PathBuf,
    /// The shards' logs.
    #[arg(required = true)]
    logs: Vec<PathBuf>,
}

/// Runs `work` on the backend and device the command line chose, after saying which.
fn on_backend(cli: &Cli, work: Work) -> Result<(), Failure> {
    let device = cli.device.unwrap_or_else(DeviceKind::preferred);
    let runtime = Runtime::new(cli.backend, device)?;
    // A cap that names no instruction set is refused here, not ignored by the kernels.
    let cap = Isa::cap().map_err(|e| randomized_smoothing::Error::InvalidParameter {
        name: Isa::CAP_VARIABLE,
        reason: e.to_string(),
    })?;
    match cap {
        Some(cap) => eprintln!(
            "backend: {runtime}; CPU kernels: {} (capped at {cap})",
            Isa::active()
        ),
        None => eprintln!("backend: {runtime}; CPU kernels: {}", Isa::active()),
    }
    #[cfg(any(feature = "cuda", feature = "vulkan"))]
    if runtime.compiles_kernels() {
        use randomized_smoothing::runtime::{KernelCache, check_cubecl_settings};
        let cache = match cli.kernel_cache.as_deref() {
            Some(dir) if dir == std::path::Path::new("off") => None,
            Some(dir) => Some(KernelCache::new(dir)),
            None => KernelCache::user_default(),
        };
        match cache {
            Some(cache) => {
                cache.install()?;
                eprintln!("kernel cache: {}", cache.dir().display());
            }
            // CubeCL would panic on a malformed file at its first kernel; say so now.
            None => {
                check_cubecl_settings()?;
                eprintln!("kernel cache: CubeCL's own settings");
            }
        }
    }
    runtime.run(work)
}

fn main() {
    // Reuse freed memory rather than fault in fresh pages for every layer's output.
    randomized_smoothing::runtime::keep_freed_memory();
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Train(a) => on_backend(&cli, Work::Train(a)),
        Command::TrainDenoiser(a) => on_backend(&cli, Work::TrainDenoiser(a)),
        Command::Certify(a) => on_backend(&cli, Work::Certify(a)),
        Command::Predict(a) => on_backend(&cli, Work::Predict(a)),
        Command::Analyze(a) => run_analyze(a),
        Command::Attack(a) => on_backend(&cli, Work::Attack(a)),
        Command::Status(a) => run_status(a),
        Command::Merge(a) => merge_logs(&a.logs, &a.out)
            .map(|n| println!("{n} rows in {}", a.out.display()))
            .map_err(Into::into),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
