//! `smoothing certify`: CERTIFY over a data split, one log row per example.

use burn::tensor::backend::Backend;
use clap::Args;
use randomized_smoothing::CertifyConfig;
use randomized_smoothing::workflow::jobs::certify_dataset_packed;

use super::Failure;
use super::common::*;
use super::run::Run;

#[derive(Args)]
pub(crate) struct CertifyArgs {
    #[command(flatten)]
    pub(crate) data: DataArgs,
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    #[command(flatten)]
    pub(crate) job: JobArgs,
    /// Samples for selecting the class.
    #[arg(long, default_value_t = 100)]
    pub(crate) n0: u64,
    /// Samples for estimating its probability.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) n: u64,
    /// The two-sided certificate: bound the runner-up's probability too, alpha split
    /// between the two bounds (beyond the paper; never below its radius at alpha/2).
    #[arg(long)]
    pub(crate) two_sided: bool,
}

pub(crate) fn run_certify<B: Backend>(
    args: &CertifyArgs,
    device: &B::Device,
) -> Result<(), Failure> {
    let mut run = Run::<B>::new(
        "certify",
        &args.data,
        &args.model,
        &args.job,
        args.n0 + args.n,
        device,
    )?;
    let config = CertifyConfig::default()
        .n0(args.n0)
        .n(args.n)
        .alpha(args.job.alpha)
        .batch_size(args.job.batch)
        .two_sided(args.two_sided)
        .check()?;
    // Bound to the log before any row is written: a rerun with other settings is refused,
    // and a second run while this one holds the lock.
    let _lock = manifest::<B>("certify", &args.data, &args.model, &args.job, device)?
        .set("n0", args.n0)
        .set("n", args.n)
        .set("two_sided", args.two_sided)
        .attach(&run.job.output)?;
    run.warm_up(&args.job, &[args.n0, args.n], device)?;
    let rows = certify_dataset_packed(
        &run.smoothed,
        &*run.data,
        &config,
        &run.job,
        args.job.pack,
        device,
        |row, done, total| {
            let message = format!("last: idx {} radius {:.3}", row.idx, row.radius);
            run.progress.row(done, total, message);
        },
    )?;
    run.progress.finish();
    let correct = rows.iter().filter(|r| r.correct).count();
    println!(
        "{} rows in {}; certified correct (r >= 0): {correct} ({:.3})",
        rows.len(),
        run.job.output.display(),
        correct as f64 / rows.len().max(1) as f64
    );
    Ok(())
}
