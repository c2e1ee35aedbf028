//! `smoothing predict`: PREDICT over a data split, one log row per example.

use burn::tensor::backend::Backend;
use clap::Args;
use randomized_smoothing::PredictConfig;
use randomized_smoothing::workflow::jobs::predict_dataset_packed;

use super::Failure;
use super::common::*;
use super::run::Run;

#[derive(Args)]
pub(crate) struct PredictArgs {
    #[command(flatten)]
    pub(crate) data: DataArgs,
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    #[command(flatten)]
    pub(crate) job: JobArgs,
    /// Samples per prediction.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) n: u64,
}

pub(crate) fn run_predict<B: Backend>(
    args: &PredictArgs,
    device: &B::Device,
) -> Result<(), Failure> {
    let mut run = Run::<B>::new(
        "predict",
        &args.data,
        &args.model,
        &args.job,
        args.n,
        device,
    )?;
    let config = PredictConfig::default()
        .n(args.n)
        .alpha(args.job.alpha)
        .batch_size(args.job.batch)
        .check()?;
    // Bound to the log before any row is written: a rerun with other settings is refused,
    // and a second run while this one holds the lock.
    let _lock = manifest::<B>("predict", &args.data, &args.model, &args.job, device)?
        .set("n", args.n)
        .attach(&run.job.output)?;
    run.warm_up(&args.job, &[args.n], device)?;
    let rows = predict_dataset_packed(
        &run.smoothed,
        &*run.data,
        &config,
        &run.job,
        args.job.pack,
        device,
        |row, done, total| {
            run.progress
                .row(done, total, format!("last: idx {}", row.idx));
        },
    )?;
    run.progress.finish();
    let correct = rows.iter().filter(|r| r.correct).count();
    let abstain = rows.iter().filter(|r| r.predict.is_none()).count();
    println!(
        "{} rows in {}; correct {correct}, abstained {abstain}",
        rows.len(),
        run.job.output.display()
    );
    Ok(())
}
