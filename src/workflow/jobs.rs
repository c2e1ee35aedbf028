//! Certifying a data set as a long job: examples chosen by `skip`, `max` and a shard, one
//! flushed TSV row per example, resumption after the last complete row, and a merge of
//! shards that reproduces the single run row for row.
//!
//! Each example is certified with its own seed, derived from the job's seed and the
//! example's index, so a row does not depend on which shard, resumed run or machine
//! produced it.
//!
//! # Example
//! ```
//! use randomized_smoothing::workflow::jobs::{Selection, Shard};
//!
//! // Every 20th example, at most 5 of them, second of two shards.
//! let s = Selection::new(20, Some(5), Shard::parse("1/2")?)?;
//! assert_eq!(s.indices(10_000), vec![20, 60]);
//! # Ok::<(), randomized_smoothing::Error>(())
//! ```

use std::fs::{self, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use crate::data::ImageSource;
use crate::error::{Error, IoOperation, Result, check_positive};
use crate::smoothing::NoiseDistribution;
use crate::smoothing::base::BaseClassifier;
use crate::smoothing::{CertifyValidConfig, PredictValidConfig, SmoothedClassifier};
use crate::stats::seed::{GOLDEN_GAMMA, mix64};
use crate::workflow::manifest::Manifest;
use crate::workflow::records::{CertifyRecord, LogRecord, PredictRecord, read_numbered};
#[cfg(doc)]
use crate::workflow::records::{read_certify_log, read_predict_log};

pub use super::merge::merge_logs;
pub use super::selection::{Selection, Shard};

/// The seed with which example `idx` of a job seeded with `seed` is certified.
///
/// # Example
/// ```
/// use randomized_smoothing::workflow::jobs::example_seed;
///
/// assert_ne!(example_seed(0, 1), example_seed(0, 2));
/// assert_eq!(example_seed(7, 3), example_seed(7, 3));
/// ```
pub fn example_seed(seed: u64, idx: usize) -> u64 {
    // Nearby indices get unrelated seeds.
    mix64(seed ^ (idx as u64).wrapping_mul(GOLDEN_GAMMA))
}

/// A job over a data set (certification or prediction): which examples, the seed their
/// per-example seeds derive from, and the log file.
///
/// # Example
/// ```
/// use randomized_smoothing::workflow::jobs::{Job, Selection, Shard};
///
/// let job = Job { selection: Selection::new(20, Some(500), Shard::parse("0/4")?)?, seed: 0,
///                        output: "logs/sigma_0.25.shard0".into() };
/// assert_eq!(job.selection.indices(10_000).len(), 125);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The examples to certify.
    pub selection: Selection,
    /// The job's seed (see [`example_seed`]).
    pub seed: u64,
    /// The TSV log, created or resumed.
    pub output: PathBuf,
}

/// The text of the log at `path` and the length of its complete rows (up to its last
/// newline); `None` if there is no log.
fn read_log_text(path: &Path) -> Result<Option<(String, usize)>> {
    match fs::read_to_string(path) {
        Ok(text) => {
            let complete = text.rfind('\n').map_or(0, |end| end + 1);
            Ok(Some((text, complete)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(IoOperation::Read, path, e)),
    }
}

/// The examples of the complete rows of the log at `path`, from their first column whatever
/// the log's kind (the header and unreadable lines skipped; the job itself checks its rows):
/// what a job would not run again. None if there is no log.
pub(crate) fn logged_examples(path: &Path) -> Result<std::collections::BTreeSet<usize>> {
    let Some((text, complete)) = read_log_text(path)? else {
        return Ok(Default::default());
    };
    Ok(text[..complete]
        .lines()
        .filter_map(|line| line.split('\t').next()?.parse().ok())
        .collect())
}

/// Reads the log of a run at `path` with the check every reader of a run's log makes
/// (resuming, merging, `analyze`, `status`, `attack`): at most one row per example and,
/// when the log has a manifest ([`Manifest::of_log`]) that records the run's selection
/// ([`Manifest::selection`]), only rows of examples that selection holds. A log that two runs
/// appended to, or that holds another shard's or another job's rows, is refused rather than
/// counted.
///
/// # Errors
/// [`Error::RejectedRow`] (naming the file, the line and the example) for a row that the
/// log cannot hold; [`Error::MalformedData`] (its location naming the file) for a log of
/// another kind or a damaged row; [`Error::Io`] on `path` if it cannot be read; the errors of
/// [`Manifest::of_log`].
///
/// # Example
/// ```
/// use randomized_smoothing::workflow::jobs::read_log;
/// use randomized_smoothing::workflow::records::{CERTIFY_HEADER, CertifyRecord};
/// use randomized_smoothing::{Error, RowFault};
///
/// let path = std::env::temp_dir().join(format!("doc-read-log-{}.tsv", std::process::id()));
/// let row = "7\t1\t1\t0.5\t1\t0:00:01.000000\n";
/// std::fs::write(&path, format!("{CERTIFY_HEADER}\n{row}{row}")).unwrap();
/// let err = read_log::<CertifyRecord>(&path).unwrap_err();
/// assert!(matches!(&err, Error::RejectedRow { log: Some(p), line: 3, example: 7,
///     fault: RowFault::Repeated { first_line: 2, .. } } if *p == path));
/// # std::fs::remove_file(&path).ok();
/// ```
pub fn read_log<R: LogRecord>(path: &Path) -> Result<Vec<R>> {
    Ok(read_numbered_log(path)?
        .into_iter()
        .map(|(_, row)| row)
        .collect())
}

/// As [`read_log`], each row with its line.
pub(crate) fn read_numbered_log<R: LogRecord>(path: &Path) -> Result<Vec<(usize, R)>> {
    let selection = Manifest::of_log(path)?
        .map(|m| m.selection())
        .transpose()?
        .flatten();
    let file = fs::File::open(path).map_err(|e| Error::io(IoOperation::Open, path, e))?;
    read_numbered(file, |idx| selection.is_none_or(|s| s.contains(idx)))
        .map_err(|e| e.in_file(path))
}

/// The complete rows already in `path`, after cutting off a partly written last line; a row
/// of an example outside `indices` is refused.
fn resume_rows<R: LogRecord>(path: &Path, indices: &[usize]) -> Result<Vec<R>> {
    let Some((text, complete)) = read_log_text(path)? else {
        return Ok(Vec::new());
    };
    if complete < text.len() {
        // A run killed mid-write: drop the partial row so it is computed again.
        OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|file| file.set_len(complete as u64))
            .map_err(|e| Error::io(IoOperation::Write, path, e))?;
    }
    if complete == 0 {
        return Ok(Vec::new());
    }
    let selected = |idx| indices.binary_search(&idx).is_ok();
    Ok(read_numbered(&text.as_bytes()[..complete], selected)
        .map_err(|e| e.in_file(path))?
        .into_iter()
        .map(|(_, row)| row)
        .collect())
}

/// Runs `row` on every selected example not yet in the job's log, appending and flushing
/// one line per example; returns all rows of the selection, in index order.
pub(crate) fn run_job<R: LogRecord, S: ImageSource + ?Sized>(
    data: &S,
    job: &Job,
    row: impl FnMut(usize) -> Result<R>,
    on_row: impl FnMut(&R, usize, usize),
) -> Result<Vec<R>> {
    run_indices(&job.selection.indices(data.len()), job, row, on_row)
}

/// As [`run_job`], on the given (sorted) indices.
pub(crate) fn run_indices<R: LogRecord>(
    indices: &[usize],
    job: &Job,
    mut row: impl FnMut(usize) -> Result<R>,
    on_row: impl FnMut(&R, usize, usize),
) -> Result<Vec<R>> {
    run_groups(indices, job, 1, |group| Ok(vec![row(group[0])?]), on_row)
}

/// As [`run_indices`], the examples still to do taken `group` at a time (in index order) by
/// `rows`, which answers one row per example of its group, in order; the group's rows are
/// appended and flushed together.
pub(crate) fn run_groups<R: LogRecord>(
    indices: &[usize],
    job: &Job,
    group: usize,
    mut rows_of: impl FnMut(&[usize]) -> Result<Vec<R>>,
    mut on_row: impl FnMut(&R, usize, usize),
) -> Result<Vec<R>> {
    check_positive("inputs per pass", group as u64)?;
    let output = job.output.as_path();
    // Held until the last row is written: a second run on this log is refused rather than
    // appending the same examples again.
    let _lock = super::lock::RunLock::acquire(output)?;
    let mut rows: Vec<R> = resume_rows(output, indices)?;
    let done: std::collections::BTreeSet<usize> = rows.iter().map(|r| r.idx()).collect();
    let fresh = rows.is_empty() && fs::metadata(output).map_or(true, |m| m.len() == 0);
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| Error::io(IoOperation::CreateFolder, dir, e))?;
    }
    // Every write error names the log: a full disk or a read-only folder says which file.
    let written = |e| Error::io(IoOperation::Write, output, e);
    let mut file = BufWriter::new(
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(output)
            .map_err(|e| Error::io(IoOperation::Open, output, e))?,
    );
    if fresh {
        writeln!(file, "{}", R::HEADER)
            .and_then(|()| file.flush())
            .map_err(written)?;
    }
    let todo: Vec<usize> = indices
        .iter()
        .copied()
        .filter(|i| !done.contains(i))
        .collect();
    for chunk in todo.chunks(group) {
        let new = rows_of(chunk)?;
        debug_assert_eq!(new.len(), chunk.len(), "one row per example");
        new.iter()
            .try_for_each(|r| writeln!(file, "{}", r.line()))
            .and_then(|()| file.flush())
            .map_err(written)?;
        for r in new {
            rows.push(r);
            on_row(rows.last().expect("just pushed"), rows.len(), indices.len());
        }
    }
    rows.sort_by_key(|r| r.idx());
    Ok(rows)
}

/// Example `idx` of `data` as a tensor on `device`.
pub(crate) fn image<B: Backend, S: ImageSource + ?Sized>(
    data: &S,
    idx: usize,
    device: &B::Device,
) -> Result<Tensor<B, 3>> {
    let shape = data.image_shape();
    let pixels = data.load(idx)?.into_owned();
    let image = TensorData::new(pixels, [shape[0], shape[1], shape[2]]);
    Ok(Tensor::from_data(image, device))
}

/// The examples `indices` of `data` as tensors on `device`, each with its seed: the inputs
/// of a packed group.
fn seeded_images<B: Backend, S: ImageSource + ?Sized>(
    data: &S,
    indices: &[usize],
    seed: u64,
    device: &B::Device,
) -> Result<Vec<(Tensor<B, 3>, u64)>> {
    indices
        .iter()
        .map(|&idx| Ok((image::<B, S>(data, idx, device)?, example_seed(seed, idx))))
        .collect()
}

/// Certifies the selected examples of `data` on `device`, appending one flushed row per
/// example to the job's TSV log (header first). If the log already holds rows of this job, those
/// examples are skipped and the rest appended, so a killed run continues where it stopped
/// without losing or repeating a row. `on_row` sees each new row with the number done and
/// the total, for progress display.
///
/// # Errors
/// [`Error::Io`] for files; [`Error::MalformedData`] if `output` is not a certification
/// log; [`Error::InvalidParameter`] if it holds rows that are not part of this selection;
/// otherwise the errors of [`SmoothedClassifier::certify`].
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use randomized_smoothing::workflow::jobs::{Job, Selection, Shard, certify_dataset};
/// use randomized_smoothing::{CertifyConfig, Gaussian, LogitsClassifier, SmoothedClassifier};
///
/// let (_, test) = randomized_smoothing::data::digits()?.split_at(1_790)?;
/// // A toy base classifier: class 1 if the image is bright on average.
/// let base = LogitsClassifier::new([1, 8, 8], 2, |x: Tensor<NdArray, 4>| {
///     let m = x.mean_dim(3).mean_dim(2).flatten::<2>(1, 3);
///     Tensor::cat(vec![m.clone().neg().add_scalar(0.3), m.sub_scalar(0.3)], 1)
/// })?;
/// let smoothed = SmoothedClassifier::new(base, Gaussian::new(0.1)?);
/// let config = CertifyConfig::default().n(200).batch_size(200).check()?;
/// let output = std::env::temp_dir().join(format!("doc-certify-{}.tsv", std::process::id()));
/// let job = Job { selection: Selection::new(1, Some(3), Shard::whole())?, seed: 0, output };
/// let rows = certify_dataset(&smoothed, &test, &config, &job, &Default::default(), |_, _, _| {})?;
/// assert_eq!(rows.len(), 3);
/// # std::fs::remove_file(&job.output).ok();
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn certify_dataset<B, C, N, S, const D: usize>(
    smoothed: &SmoothedClassifier<C, N>,
    data: &S,
    config: &CertifyValidConfig,
    job: &Job,
    device: &B::Device,
    on_row: impl FnMut(&CertifyRecord, usize, usize),
) -> Result<Vec<CertifyRecord>>
where
    B: Backend,
    C: BaseClassifier<D, Backend = B>,
    N: NoiseDistribution,
    S: ImageSource + ?Sized,
{
    certify_dataset_packed(smoothed, data, config, job, 1, device, on_row)
}

/// [`certify_dataset`] with the samples of `inputs_per_pass` examples at a time packed into
/// full forward passes ([`SmoothedClassifier::certify_many`]): on a GPU, where a pass of 100
/// samples runs at a fraction of the rate of one of 400, the `n0` selection samples of
/// several examples fill one pass. On the CPU backends every row but its time is the one
/// [`certify_dataset`] writes. The rows of a group are written together, in index order,
/// when the group is done, and each row's time is the group's time divided among its
/// examples.
///
/// # Errors
/// As [`certify_dataset`]; [`Error::ZeroCount`] for zero inputs per pass.
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use randomized_smoothing::workflow::jobs::{Job, Selection, Shard, certify_dataset, certify_dataset_packed};
/// use randomized_smoothing::{CertifyConfig, Gaussian, LogitsClassifier, SmoothedClassifier};
///
/// let (_, test) = randomized_smoothing::data::digits()?.split_at(1_790)?;
/// let base = LogitsClassifier::new([1, 8, 8], 2, |x: Tensor<NdArray, 4>| {
///     let m = x.mean_dim(3).mean_dim(2).flatten::<2>(1, 3);
///     Tensor::cat(vec![m.clone().neg().add_scalar(0.3), m.sub_scalar(0.3)], 1)
/// })?;
/// let smoothed = SmoothedClassifier::new(base, Gaussian::new(0.1)?);
/// let config = CertifyConfig::default().n0(50).n(150).batch_size(200).check()?;
/// let dir = std::env::temp_dir();
/// let job = |name: &str| -> Result<Job, randomized_smoothing::Error> {
///     let output = dir.join(format!("doc-packed-{name}-{}.tsv", std::process::id()));
///     Ok(Job { selection: Selection::new(1, Some(5), Shard::whole())?, seed: 0, output })
/// };
/// let (alone, packed) = (job("alone")?, job("packed")?);
/// let a = certify_dataset(&smoothed, &test, &config, &alone, &Default::default(), |_, _, _| {})?;
/// let b = certify_dataset_packed(&smoothed, &test, &config, &packed, 4, &Default::default(), |_, _, _| {})?;
/// let key = |r: &randomized_smoothing::workflow::records::CertifyRecord| (r.idx, r.predict, r.radius);
/// assert_eq!(a.iter().map(key).collect::<Vec<_>>(), b.iter().map(key).collect::<Vec<_>>());
/// # std::fs::remove_file(&alone.output).ok();
/// # std::fs::remove_file(&packed.output).ok();
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn certify_dataset_packed<B, C, N, S, const D: usize>(
    smoothed: &SmoothedClassifier<C, N>,
    data: &S,
    config: &CertifyValidConfig,
    job: &Job,
    inputs_per_pass: usize,
    device: &B::Device,
    on_row: impl FnMut(&CertifyRecord, usize, usize),
) -> Result<Vec<CertifyRecord>>
where
    B: Backend,
    C: BaseClassifier<D, Backend = B>,
    N: NoiseDistribution,
    S: ImageSource + ?Sized,
{
    run_groups(
        &job.selection.indices(data.len()),
        job,
        inputs_per_pass,
        |group| {
            let inputs = seeded_images::<B, S>(data, group, job.seed, device)?;
            // Timed from the loaded images on, as the paper's certify.py times.
            let started = Instant::now();
            let certifications = smoothed.certify_many(inputs, config)?;
            let time = started.elapsed() / group.len() as u32;
            Ok(group
                .iter()
                .zip(certifications)
                .map(|(&idx, certification)| {
                    let label = data.label(idx);
                    CertifyRecord {
                        idx,
                        label,
                        predict: certification.class(),
                        radius: certification.radius().unwrap_or(0.0),
                        correct: certification.class() == Some(label),
                        time,
                    }
                })
                .collect())
        },
        on_row,
    )
}

/// Runs PREDICT on the job's examples of `data`, as [`certify_dataset`] runs CERTIFY: one
/// flushed row per example in the format of the paper's `predict.py`, resumption after the
/// last complete row, per-example seeds.
///
/// # Errors
/// As [`certify_dataset`], with [`read_predict_log`] for the existing log.
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use randomized_smoothing::data::digits;
/// use randomized_smoothing::workflow::jobs::{predict_dataset, Job, Selection, Shard};
/// use randomized_smoothing::{Gaussian, LogitsClassifier, PredictConfig, SmoothedClassifier};
///
/// // A "classifier" that answers 1 for bright images.
/// let base = LogitsClassifier::new([1, 8, 8], 2, |x: Tensor<NdArray, 4>| {
///     let m = x.flatten::<2>(1, 3).mean_dim(1);
///     Tensor::cat(vec![m.clone().neg() + 0.3, m - 0.3], 1)
/// })?;
/// let smoothed = SmoothedClassifier::new(base, Gaussian::new(0.1)?);
/// let data = digits()?;
/// let output = std::env::temp_dir().join(format!("doc-predict-{}.tsv", std::process::id()));
/// let job = Job { selection: Selection::new(1, Some(3), Shard::whole())?, seed: 0, output: output.clone() };
/// let config = PredictConfig::default().n(100).alpha(0.01).check()?;
/// let rows = predict_dataset(&smoothed, &data, &config, &job, &Default::default(), |_, _, _| {})?;
/// assert_eq!(rows.len(), 3);
/// # std::fs::remove_file(output).ok();
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn predict_dataset<B, C, N, S, const D: usize>(
    smoothed: &SmoothedClassifier<C, N>,
    data: &S,
    config: &PredictValidConfig,
    job: &Job,
    device: &B::Device,
    on_row: impl FnMut(&PredictRecord, usize, usize),
) -> Result<Vec<PredictRecord>>
where
    B: Backend,
    C: BaseClassifier<D, Backend = B>,
    N: NoiseDistribution,
    S: ImageSource + ?Sized,
{
    predict_dataset_packed(smoothed, data, config, job, 1, device, on_row)
}

/// [`predict_dataset`] with the samples of `inputs_per_pass` examples at a time packed into
/// full forward passes ([`SmoothedClassifier::predict_many`]), as
/// [`certify_dataset_packed`] packs CERTIFY's.
///
/// # Errors
/// As [`certify_dataset_packed`].
pub fn predict_dataset_packed<B, C, N, S, const D: usize>(
    smoothed: &SmoothedClassifier<C, N>,
    data: &S,
    config: &PredictValidConfig,
    job: &Job,
    inputs_per_pass: usize,
    device: &B::Device,
    on_row: impl FnMut(&PredictRecord, usize, usize),
) -> Result<Vec<PredictRecord>>
where
    B: Backend,
    C: BaseClassifier<D, Backend = B>,
    N: NoiseDistribution,
    S: ImageSource + ?Sized,
{
    run_groups(
        &job.selection.indices(data.len()),
        job,
        inputs_per_pass,
        |group| {
            let inputs = seeded_images::<B, S>(data, group, job.seed, device)?;
            let started = Instant::now();
            let predictions = smoothed.predict_many(inputs, config)?;
            let time = started.elapsed() / group.len() as u32;
            Ok(group
                .iter()
                .zip(predictions)
                .map(|(&idx, prediction)| {
                    let label = data.label(idx);
                    PredictRecord {
                        idx,
                        label,
                        predict: prediction.class(),
                        correct: prediction.class() == Some(label),
                        time,
                    }
                })
                .collect())
        },
        on_row,
    )
}
