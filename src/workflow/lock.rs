//! One writer per log: an exclusive advisory lock that a run holds on its log (or on the
//! folder it writes into) from before it reads or writes anything there until it ends.
//!
//! Two runs on one log (a Slurm task requeued while its first copy still runs, a job
//! submitted twice, two terminals) would otherwise both resume from the same rows and both
//! append the rest, so that every example appears twice. A [`RunLock`] is the kernel's
//! `flock` on the file `<log>.lock` beside the log: a second run fails at once with
//! [`Error::Locked`], which names the log and the process the lock file says holds it. The
//! kernel drops the lock when its process ends, however it ends (`kill -9`, a node's crash
//! on a network file system once the server notices), so a lock never outlives its run and a
//! resume is never blocked by a stale one; the lock file itself stays behind, harmless.
//!
//! Where the lock holds:
//! - one machine, any local file system: always;
//! - NFS (v4, or v3 with its lock manager): Linux turns `flock` into the server's byte-range
//!   locks, so runs on different nodes exclude each other;
//! - Lustre mounted with `-o flock`: across nodes; with `-o localflock`: only between runs on
//!   one node; with neither, `flock` is refused, and the lock falls back to a file created
//!   exclusively (`O_EXCL`, which Lustre and NFS make atomic) holding the host and the
//!   process, removed when the run ends. A run killed there leaves that file behind: on the
//!   same host a later run sees that the process is gone and takes the lock over; from
//!   another host it cannot tell, and refuses, naming the file to delete.
//!
//! Locks are per process and reentrant: the program takes the lock before it writes the
//! manifest, and the library's job engine, which takes it again for the rows, shares it.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use crate::error::{Error, IoOperation, Result};

/// The locks this process holds, by lock file: how many guards share each, and its owner,
/// which lives as long as the last of them.
static HELD: Mutex<BTreeMap<PathBuf, (usize, Owner)>> = Mutex::new(BTreeMap::new());

/// An exclusive lock on a log (or folder) for the length of a run, released when dropped.
///
/// # Example
/// ```
/// use randomized_smoothing::workflow::lock::RunLock;
///
/// let dir = std::env::temp_dir().join(format!("rs-lock-doc-{}", std::process::id()));
/// let log = dir.join("certify.tsv");
/// let lock = RunLock::acquire(&log)?;
/// // The same process may take it again (the job engine does); another process may not.
/// let again = RunLock::acquire(&log)?;
/// drop((again, lock));
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug)]
#[must_use = "the lock is released when the guard is dropped"]
pub struct RunLock {
    /// The lock file, absolute: the key of [`HELD`].
    key: PathBuf,
}

#[derive(Debug)]
enum Owner {
    /// `flock` held on this open file; the kernel releases it when the file is closed (when
    /// the guard drops it, or the process ends).
    Flock(File),
    /// A file created exclusively, removed on release.
    Exclusive(PathBuf),
}

impl RunLock {
    /// Takes the lock of `target` (a log, a manifest's log, a folder a run writes into): the
    /// file `<target>.lock`, created (with its folder) if missing.
    ///
    /// # Errors
    /// [`Error::Locked`] if another process holds it; [`Error::Io`] (naming the lock file)
    /// if it cannot be created or locked.
    pub fn acquire(target: &Path) -> Result<RunLock> {
        let path = lock_path(target);
        let key =
            std::path::absolute(&path).map_err(|e| Error::io(IoOperation::Inspect, &path, e))?;
        let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((count, _)) = held.get_mut(&key) {
            *count += 1;
            return Ok(RunLock { key });
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| Error::io(IoOperation::CreateFolder, dir, e))?;
        }
        let owner = match flock(&path, target)? {
            Some(file) => Owner::Flock(file),
            None => Owner::Exclusive(exclusive(&exclusive_path(&path), target)?),
        };
        held.insert(key.clone(), (1, owner));
        Ok(RunLock { key })
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
        match held.get_mut(&self.key) {
            Some((count, _)) if *count > 1 => *count -= 1,
            _ => match held.remove(&self.key) {
                // Closing the file releases the lock. The lock file stays: deleting it would
                // let a run that opened it just before lock an unlinked file while a third
                // locks a new one.
                Some((_, Owner::Flock(file))) => drop(file),
                Some((_, Owner::Exclusive(path))) => {
                    let _ = fs::remove_file(path);
                }
                None => {}
            },
        }
    }
}

/// The lock file of `target`: `<target>.lock` beside it.
fn lock_path(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// The exclusively created file of the fallback.
fn exclusive_path(lock: &Path) -> PathBuf {
    let mut name = lock.as_os_str().to_owned();
    name.push(".owner");
    PathBuf::from(name)
}

/// Who this process is, as the lock file records it: `pid PID on HOST`.
fn holder() -> String {
    format!("pid {} on {}", std::process::id(), host())
}

fn host() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "an unknown host".into())
}

/// What a lock file says of its holder, if it says anything.
fn recorded_holder(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| line.to_string())
}

/// `flock` on `path`: the open, locked file; `None` where the file system does not lock.
fn flock(path: &Path, target: &Path) -> Result<Option<File>> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io(IoOperation::Open, path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(Error::Locked {
                path: target.to_path_buf(),
                holder: recorded_holder(path),
            });
        }
        Err(TryLockError::Error(e)) if unsupported(&e) => return Ok(None),
        Err(TryLockError::Error(e)) => return Err(Error::io(IoOperation::Lock, path, e)),
    }
    // For the error a second run reports; the lock itself is the kernel's.
    file.set_len(0)
        .and_then(|()| writeln!(file, "{}", holder()))
        .map_err(|e| Error::io(IoOperation::Write, path, e))?;
    Ok(Some(file))
}

/// Errors of a file system that has no `flock` (ENOLCK, ENOSYS, EOPNOTSUPP).
fn unsupported(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::Unsupported) || matches!(e.raw_os_error(), Some(37 | 38 | 95))
}

/// The fallback: `path` created exclusively, holding this process; a file left by a process
/// of this host that has ended is taken over, once.
fn exclusive(path: &Path, target: &Path) -> Result<PathBuf> {
    for _ in 0..2 {
        match OpenOptions::new().write(true).create_new(true).open(path) {
            Ok(mut file) => {
                writeln!(file, "{}", holder())
                    .map_err(|e| Error::io(IoOperation::Write, path, e))?;
                return Ok(path.to_path_buf());
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let recorded = recorded_holder(path);
                if recorded.as_deref().is_some_and(ended_here) {
                    fs::remove_file(path).map_err(|e| Error::io(IoOperation::Remove, path, e))?;
                    continue;
                }
                return Err(Error::Locked {
                    path: target.to_path_buf(),
                    holder: Some(format!(
                        "{} (a file system without flock: if that run has ended, delete {})",
                        recorded.unwrap_or_else(|| "another run".into()),
                        path.display()
                    )),
                });
            }
            Err(e) => return Err(Error::io(IoOperation::Create, path, e)),
        }
    }
    Err(Error::Locked {
        path: target.to_path_buf(),
        holder: recorded_holder(path),
    })
}

/// Whether `recorded` (`pid PID on HOST`) names a process of this host that no longer runs.
fn ended_here(recorded: &str) -> bool {
    let Some((pid, on)) = recorded
        .strip_prefix("pid ")
        .and_then(|rest| rest.split_once(" on "))
    else {
        return false;
    };
    on == host() && pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rs-lock-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir.join("run.tsv")
    }

    #[test]
    fn another_holder_is_refused_by_name_and_a_closed_one_never_blocks() {
        let log = scratch("flock");
        // Another process's lock: a second open file description, locked by hand.
        fs::create_dir_all(log.parent().unwrap()).unwrap();
        let other = File::create(lock_path(&log)).unwrap();
        other.try_lock().unwrap();
        fs::write(lock_path(&log), "pid 4242 on elsewhere\n").unwrap();
        match RunLock::acquire(&log) {
            Err(Error::Locked { path, holder }) => {
                assert_eq!(path, log);
                assert_eq!(holder.as_deref(), Some("pid 4242 on elsewhere"));
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        // Its process ends (the file closes): the lock file stays and blocks nothing.
        drop(other);
        let lock = RunLock::acquire(&log).unwrap();
        assert!(
            recorded_holder(&lock_path(&log))
                .unwrap()
                .contains(&std::process::id().to_string())
        );
        // Reentrant in this process; held until the last guard goes.
        let again = RunLock::acquire(&log).unwrap();
        drop(lock);
        let probe = File::open(lock_path(&log)).unwrap();
        assert!(matches!(probe.try_lock(), Err(TryLockError::WouldBlock)));
        drop(again);
        probe.try_lock().unwrap();
    }

    #[test]
    fn the_exclusive_fallback_takes_over_only_an_ended_process_of_this_host() {
        let log = scratch("excl");
        fs::create_dir_all(log.parent().unwrap()).unwrap();
        let file = exclusive_path(&lock_path(&log));
        let taken = exclusive(&file, &log).unwrap();
        // Held by this (running) process: refused.
        assert!(matches!(exclusive(&file, &log), Err(Error::Locked { .. })));
        fs::remove_file(&taken).unwrap();
        // Left by an ended process of this host: taken over. (PIDs stop below 2^22.)
        fs::write(&file, format!("pid 4194303 on {}\n", host())).unwrap();
        exclusive(&file, &log).unwrap();
        // Left on another host: refused, naming the file to delete.
        fs::write(&file, "pid 1 on another-node\n").unwrap();
        match exclusive(&file, &log) {
            Err(Error::Locked { holder, .. }) => {
                assert!(holder.unwrap().contains(&file.display().to_string()))
            }
            other => panic!("expected Locked, got {other:?}"),
        }
    }
}
