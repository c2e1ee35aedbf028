//! Merging the logs of a job's shards into the log of the whole job, row for row, with the
//! shards' common manifest.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::{Error, IoOperation, Result, RowFault};
use crate::workflow::jobs::read_numbered_log;
use crate::workflow::manifest::Manifest;
use crate::workflow::records::{CertifyRecord, LogRecord, PREDICT_HEADER, PredictRecord};
#[cfg(doc)]
use crate::workflow::{jobs::read_log, records::read_certify_log};

/// Merges certification or prediction logs (the shards of one job; the first file's header
/// says which) into one log at `output`, rows in
/// index order, and returns the number of rows.
///
/// When the shards have run manifests ([`Manifest`]), they must agree in everything but the
/// shard, and the merged log gets their manifest as shard `0/1`, which is what a whole run
/// of the same job would have written.
///
/// # Errors
/// [`Error::RejectedRow`] if two logs (or one) hold the same example, or a shard's log holds
/// an example outside its shard ([`read_log`]'s check); [`Error::RunMismatch`] if
/// the shards' manifests differ in more than the shard, or only some shards have one; the
/// errors of [`read_certify_log`] and [`Error::Io`] for files.
///
/// # Example
/// ```
/// use randomized_smoothing::workflow::jobs::merge_logs;
///
/// let dir = std::env::temp_dir().join(format!("doc-merge-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let header = randomized_smoothing::workflow::records::CERTIFY_HEADER;
/// std::fs::write(dir.join("a"), format!("{header}\n2\t1\t1\t0.5\t1\t0:00:01.000000\n")).unwrap();
/// std::fs::write(dir.join("b"), format!("{header}\n1\t0\t-1\t0.0\t0\t0:00:01.000000\n")).unwrap();
/// assert_eq!(merge_logs(&[dir.join("a"), dir.join("b")], &dir.join("all"))?, 2);
/// assert!(std::fs::read_to_string(dir.join("all")).unwrap().lines().nth(1).unwrap().starts_with("1\t"));
/// # std::fs::remove_dir_all(dir).ok();
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn merge_logs(inputs: &[impl AsRef<Path>], output: &Path) -> Result<usize> {
    let _lock = super::lock::RunLock::acquire(output)?;
    let manifest = merged_manifest(inputs)?;
    let first = inputs.first().map(|p| p.as_ref());
    let header = match first {
        Some(path) => fs::read_to_string(path)
            .map_err(|e| Error::io(IoOperation::Read, path, e))?
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
        None => return Err(Error::ZeroCount("inputs")),
    };
    let rows = if header.trim_end() == PREDICT_HEADER {
        merge::<PredictRecord>(inputs, output)?
    } else {
        merge::<CertifyRecord>(inputs, output)?
    };
    if let Some(manifest) = manifest {
        manifest.write_beside(output)?;
    }
    Ok(rows)
}

/// The manifest of the merged log: the shards' common manifest as shard `0/1`, or none when
/// no shard has one.
fn merged_manifest(inputs: &[impl AsRef<Path>]) -> Result<Option<Manifest>> {
    let mut merged: Option<Manifest> = None;
    let mut without = Vec::new();
    for input in inputs {
        let log = input.as_ref();
        let Some(shard) = Manifest::of_log(log)? else {
            without.push(log.display().to_string());
            continue;
        };
        let whole = shard.set("shard", "0/1");
        match &merged {
            None => merged = Some(whole),
            Some(first) => {
                let differences = whole.differences(first);
                if !differences.is_empty() {
                    return Err(Error::RunMismatch {
                        log: log.to_path_buf(),
                        differences,
                    });
                }
            }
        }
    }
    match (&merged, without.first()) {
        (Some(_), Some(log)) => Err(Error::RunMismatch {
            log: log.into(),
            differences: vec![
                "this shard has no manifest while others have one: they may be of another run"
                    .into(),
            ],
        }),
        _ => Ok(merged),
    }
}

fn merge<R: LogRecord>(inputs: &[impl AsRef<Path>], output: &Path) -> Result<usize> {
    // Each example's row, with the log and line it came from.
    let mut rows: BTreeMap<usize, (R, &Path, usize)> = BTreeMap::new();
    for input in inputs {
        let path = input.as_ref();
        for (line, row) in read_numbered_log::<R>(path)? {
            let example = row.idx();
            if let Some((_, first, first_line)) = rows.get(&example) {
                return Err(Error::RejectedRow {
                    log: Some(path.to_path_buf()),
                    line,
                    example,
                    fault: RowFault::Repeated {
                        first_line: *first_line,
                        first_log: Some(first.to_path_buf()),
                    },
                });
            }
            rows.insert(example, (row, path, line));
        }
    }
    let written = |e| Error::io(IoOperation::Write, output, e);
    let create = |e| Error::io(IoOperation::Create, output, e);
    let mut out = BufWriter::new(File::create(output).map_err(create)?);
    writeln!(out, "{}", R::HEADER).map_err(written)?;
    for (row, _, _) in rows.values() {
        writeln!(out, "{}", row.line()).map_err(written)?;
    }
    out.flush().map_err(written)?;
    Ok(rows.len())
}
