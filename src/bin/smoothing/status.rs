//! `smoothing status`: how far the shards of a run have got, from their logs and manifests.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use randomized_smoothing::data::{ImageFolder, ImageSource};
use randomized_smoothing::workflow::jobs::{Shard, read_log};
use randomized_smoothing::workflow::manifest::Manifest;
use randomized_smoothing::workflow::records::{CertifyRecord, PredictRecord};

use super::Failure;
use super::common::*;

#[derive(Args)]
pub(crate) struct StatusArgs {
    /// The shards' logs (e.g. OUT/shard_*.tsv of examples/slurm/submit.sh); a shard whose log
    /// does not exist yet is reported as not started.
    #[arg(required = true)]
    pub(crate) logs: Vec<PathBuf>,
}

/// One shard's state: rows done of the rows its selection holds, and seconds per row.
struct ShardState {
    shard: String,
    done: usize,
    total: usize,
    seconds_per_row: Option<f64>,
}

pub(crate) fn run_status(args: &StatusArgs) -> Result<(), Failure> {
    let mut states = Vec::new();
    let mut shards_of_run = None;
    for log in &args.logs {
        let Some(manifest) = Manifest::of_log(log)? else {
            println!("{}: no log or manifest yet", log.display());
            continue;
        };
        let setting = |key: &str| -> Result<&str, Failure> {
            manifest
                .settings()
                .get(key)
                .map(String::as_str)
                .ok_or_else(|| format!("the manifest of {} has no {key}", log.display()).into())
        };
        let selection = manifest.selection()?.ok_or_else(|| {
            format!(
                "the manifest of {} has no skip, max and shard",
                log.display()
            )
        })?;
        shards_of_run = Some(Shard::parse(setting("shard")?)?.count());
        let total = selection.indices(split_len(&manifest)?).len();
        let times: Vec<f64> = if setting("command")? == "predict" {
            read_log::<PredictRecord>(log)?
                .iter()
                .map(|r| r.time.as_secs_f64())
                .collect()
        } else {
            read_log::<CertifyRecord>(log)?
                .iter()
                .map(|r| r.time.as_secs_f64())
                .collect()
        };
        states.push(ShardState {
            shard: setting("shard")?.to_string(),
            done: times.len(),
            total,
            seconds_per_row: (!times.is_empty())
                .then(|| times.iter().sum::<f64>() / times.len() as f64),
        });
    }
    let mut eta = 0.0_f64;
    for s in &states {
        let left = s.total.saturating_sub(s.done);
        let line = match (left, s.seconds_per_row) {
            (0, _) => "done".to_string(),
            (_, Some(t)) => {
                eta = eta.max(left as f64 * t);
                format!("{t:.2} s per row, eta {}", clock(left as f64 * t))
            }
            (_, None) => "no row yet".to_string(),
        };
        println!("shard {}: {}/{} rows, {line}", s.shard, s.done, s.total);
    }
    if let Some(count) = shards_of_run {
        let present: Vec<usize> = states
            .iter()
            .filter_map(|s| Shard::parse(&s.shard).ok().map(|k| k.index()))
            .collect();
        let missing: Vec<String> = (0..count)
            .filter(|k| !present.contains(k))
            .map(|k| format!("{k}/{count}"))
            .collect();
        if !missing.is_empty() {
            println!(
                "missing shards (no log or manifest): {}",
                missing.join(", ")
            );
        }
        let (done, total): (usize, usize) = states
            .iter()
            .fold((0, 0), |(d, t), s| (d + s.done, t + s.total));
        println!(
            "total: {done}/{total} rows in {} of {count} shards; eta {} (the slowest shard, at its own rate)",
            states.len(),
            clock(eta)
        );
    }
    Ok(())
}

/// The size of the split a manifest's run read.
fn split_len(manifest: &Manifest) -> Result<usize, Failure> {
    let get = |key: &str| {
        manifest
            .settings()
            .get(key)
            .map(String::as_str)
            .unwrap_or("")
    };
    let dataset = DatasetName::from_str(get("dataset"), false)?;
    let split = Split::from_str(get("split"), false)?;
    let data = match get("data") {
        "embedded" => None,
        dir => Some(PathBuf::from(dir)),
    };
    let args = DataArgs {
        dataset,
        data,
        image_size: None,
        resize: None,
        channels: None,
        random_resized_crop: false,
    };
    Ok(match dataset {
        // Listing the folder is enough; no transform is needed to count.
        DatasetName::Imagenet | DatasetName::Folder => {
            ImageFolder::open(args.folder(split)?)?.len()
        }
        _ => args.load(split, None)?.len(),
    })
}
