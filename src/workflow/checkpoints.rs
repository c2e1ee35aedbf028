//! A training run's folder, shared by every trainer in the workflow (base classifiers,
//! denoisers): the settings it was started with, one model and optimizer checkpoint per
//! epoch, the log, resumption after the last complete epoch and pruning of old epochs.
//!
//! ```text
//! settings.tsv    name<TAB>value per line: what shapes the epochs (a rerun must match)
//! log.tsv         a header, then one line per epoch; its 7th column is the test accuracy
//! model-N.mpk     the model after epoch N (the latest kept ones, and the best epoch's)
//! optim-N.mpk     the optimizer after epoch N (the latest kept ones)
//! settings.tsv.lock  the lock a run holds on the folder (see `workflow::lock`)
//! ```

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::module::AutodiffModule;
use burn::optim::Optimizer;
use burn::record::{DefaultRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;

use super::lock::RunLock;
use crate::error::{Error, IoOperation, Result};

/// The checkpoint folder of one training run.
pub(crate) struct RunFolder<'a> {
    dir: &'a Path,
    keep: usize,
    recorder: DefaultRecorder,
    /// Held while the run trains: a second training into the folder is refused.
    _lock: RunLock,
}

impl<'a> RunFolder<'a> {
    /// Opens (creating it if need be) the folder of a run with `settings` (`name\tvalue`
    /// lines), keeping the checkpoints of the latest `keep` epochs.
    ///
    /// # Errors
    /// [`Error::Locked`] if another run is training into the folder; [`Error::RunMismatch`]
    /// if the folder holds a run started with other settings (its epochs would mix two
    /// trainings), naming each difference; [`Error::Io`].
    pub(crate) fn open(dir: &'a Path, settings: &str, keep: usize) -> Result<Self> {
        fs::create_dir_all(dir).map_err(|e| Error::io(IoOperation::CreateFolder, dir, e))?;
        let lock = RunLock::acquire(&dir.join("settings.tsv"))?;
        check_settings(dir, settings)?;
        Ok(Self {
            dir,
            keep,
            recorder: DefaultRecorder::new(),
            _lock: lock,
        })
    }

    /// The model and optimizer after the last complete epoch, and that epoch (0 with the
    /// given ones if the folder has none).
    ///
    /// # Errors
    /// [`Error::Io`] if a checkpoint cannot be read.
    pub(crate) fn resume<B, M, O>(
        &self,
        model: M,
        optim: O,
        device: &B::Device,
    ) -> Result<(M, O, usize)>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
        O: Optimizer<M, B>,
    {
        let Some(epoch) = last_checkpoint(self.dir) else {
            return Ok((model, optim, 0));
        };
        let (model_file, optim_file) = checkpoint_files(self.dir, epoch);
        let model = model
            .load_file(&model_file, &self.recorder, device)
            .map_err(|e| Error::io_other(IoOperation::Read, &model_file, e))?;
        let record = self
            .recorder
            .load(optim_file.clone(), device)
            .map_err(|e| Error::io_other(IoOperation::Read, &optim_file, e))?;
        Ok((model, optim.load_record(record), epoch))
    }

    /// Saves `epoch`'s model and optimizer, appends its line to the log (with `header` first
    /// in a new log) and prunes the epochs no longer kept.
    ///
    /// # Errors
    /// [`Error::Io`] if a file cannot be written or removed.
    pub(crate) fn save<B, M, O>(
        &self,
        epoch: usize,
        model: &M,
        optim: &O,
        header: &str,
        line: &str,
    ) -> Result<()>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
        O: Optimizer<M, B>,
    {
        let (model_file, optim_file) = checkpoint_files(self.dir, epoch);
        model
            .clone()
            .save_file(&model_file, &self.recorder)
            .map_err(|e| Error::io_other(IoOperation::Write, &model_file, e))?;
        self.recorder
            .record(optim.to_record(), optim_file.clone())
            .map_err(|e| Error::io_other(IoOperation::Write, &optim_file, e))?;
        let log_path = self.dir.join("log.tsv");
        let fresh = !log_path.exists();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| Error::io(IoOperation::Open, &log_path, e))?;
        if fresh {
            writeln!(log, "{header}").map_err(|e| Error::io(IoOperation::Write, &log_path, e))?;
        }
        writeln!(log, "{line}").map_err(|e| Error::io(IoOperation::Write, &log_path, e))?;
        drop(log);
        prune_checkpoints(self.dir, epoch, self.keep)
    }
}

/// `name\tvalue` lines of a run's settings.
pub(crate) fn settings_lines(fields: &[(&str, String)]) -> String {
    fields.iter().map(|(k, v)| format!("{k}\t{v}\n")).collect()
}

/// The model and optimizer checkpoint files of `epoch` in `dir` (the recorder adds its
/// extension).
fn checkpoint_files(dir: &Path, epoch: usize) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("model-{epoch}")),
        dir.join(format!("optim-{epoch}")),
    )
}

/// Deletes the checkpoints a resumed run no longer needs: the optimizer state of all but the
/// latest `keep` epochs, and their models too, except the model of the epoch with the best
/// test accuracy in `log.tsv` (the first such epoch on a tie).
fn prune_checkpoints(dir: &Path, latest: usize, keep: usize) -> Result<()> {
    let best = fs::read_to_string(dir.join("log.tsv"))
        .ok()
        .and_then(|log| {
            log.lines()
                .skip(1)
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split('\t').collect();
                    Some((
                        fields.first()?.parse::<usize>().ok()?,
                        fields.get(6)?.parse::<f64>().ok()?,
                    ))
                })
                .fold(
                    None,
                    |best: Option<(usize, f64)>, (epoch, acc)| match best {
                        Some((_, b)) if b >= acc => best,
                        _ => Some((epoch, acc)),
                    },
                )
        })
        .map(|(epoch, _)| epoch);
    let remove = |path: PathBuf| match fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io(IoOperation::Remove, &path, e))
        }
        _ => Ok(()),
    };
    for epoch in 1..=latest.saturating_sub(keep) {
        remove(dir.join(format!("optim-{epoch}.mpk")))?;
        if Some(epoch) != best {
            remove(dir.join(format!("model-{epoch}.mpk")))?;
        }
    }
    Ok(())
}

/// Records the run's settings in `dir/settings.tsv`, or refuses to resume a run that was
/// started with other ones ([`Error::RunMismatch`], naming each difference).
fn check_settings(dir: &Path, ours: &str) -> Result<()> {
    let path = dir.join("settings.tsv");
    match fs::read_to_string(&path) {
        Ok(theirs) if theirs == ours => Ok(()),
        Ok(theirs) => {
            let fields = |text: &str| -> Vec<(String, String)> {
                text.lines()
                    .filter_map(|l| l.split_once('\t'))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            };
            let (ours, theirs) = (fields(ours), fields(&theirs));
            let mut differences: Vec<String> = ours
                .iter()
                .filter_map(|(k, v)| match theirs.iter().find(|(tk, _)| tk == k) {
                    Some((_, tv)) if tv == v => None,
                    Some((_, tv)) => Some(format!("{k} is {v}, the run was started with {tv}")),
                    None => Some(format!("{k} is {v}, the run recorded none")),
                })
                .collect();
            if differences.is_empty() {
                differences.push("the settings file is malformed".into());
            }
            Err(Error::RunMismatch {
                log: path,
                differences,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::write(&path, ours).map_err(|e| Error::io(IoOperation::Write, &path, e))
        }
        Err(e) => Err(Error::io(IoOperation::Read, &path, e)),
    }
}

/// The last epoch with a complete checkpoint in `dir`, if any.
fn last_checkpoint(dir: &Path) -> Option<usize> {
    let entries = fs::read_dir(dir).ok()?;
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|name| {
            name.strip_prefix("optim-")?
                .strip_suffix(".mpk")?
                .parse::<usize>()
                .ok()
        })
        .filter(|epoch| dir.join(format!("model-{epoch}.mpk")).exists())
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_another_run_trains_into_is_refused() {
        let dir = std::env::temp_dir().join(format!("rs-run-folder-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        // Another process's lock: an open file description of its own, locked by hand.
        let other = fs::File::create(dir.join("settings.tsv.lock")).unwrap();
        other.try_lock().unwrap();
        match RunFolder::open(&dir, "sigma\t0.25\n", 1) {
            Err(Error::Locked { path, .. }) => assert_eq!(path, dir.join("settings.tsv")),
            Err(e) => panic!("expected Locked, got {e}"),
            Ok(_) => panic!("expected Locked, got the folder"),
        }
        drop(other);
        assert!(RunFolder::open(&dir, "sigma\t0.25\n", 1).is_ok());
        fs::remove_dir_all(&dir).ok();
    }
}
