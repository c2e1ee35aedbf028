//! The crate's one error type.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

/// Everything that can go wrong in this crate.
///
/// Invalid arguments are reported before any work is done; the only errors raised
/// mid-computation are those that reveal a broken base classifier.
///
/// # Example
/// ```
/// use randomized_smoothing::{Error, Gaussian};
///
/// let err = Gaussian::new(-1.0).unwrap_err();
/// assert!(matches!(err, Error::InvalidSigma(s) if s == -1.0));
/// ```
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum Error {
    /// The noise level must be finite and strictly positive.
    #[error("sigma must be finite and > 0, got {0}")]
    InvalidSigma(f64),

    /// A failure probability or significance level must lie strictly between 0 and 1.
    #[error("{name} must lie in (0, 1), got {value}")]
    InvalidProbability {
        /// Which parameter was wrong (`"alpha"`, `"p"`, ...).
        name: &'static str,
        /// The rejected value.
        value: f64,
    },

    /// A count (sample size, batch size, number of classes, ...) that must be positive was zero.
    #[error("{0} must be at least 1")]
    ZeroCount(&'static str),

    /// A number of successes larger than the number of trials.
    #[error("{successes} successes out of {trials} trials")]
    SuccessesExceedTrials {
        /// Number of successes.
        successes: u64,
        /// Number of trials.
        trials: u64,
    },

    /// With this many samples the procedure could never succeed at this alpha, so every
    /// input would abstain. The paper's code silently abstains in this case.
    #[error(
        "{procedure} with n = {n} can never succeed at alpha = {alpha}: at least {min_n} samples are needed"
    )]
    SampleSizeTooSmall {
        /// `"certify"` or `"predict"`.
        procedure: &'static str,
        /// The sample size given.
        n: u64,
        /// The significance level given.
        alpha: f64,
        /// The smallest sample size for which the procedure can succeed at this alpha.
        min_n: u64,
    },

    /// An input contained NaN or an infinite value.
    #[error("input contains a non-finite value ({0})")]
    NonFiniteInput(f64),

    /// An input whose shape the base classifier cannot take.
    #[error("input shape {got:?} does not match the classifier's input shape {expected:?}")]
    ShapeMismatch {
        /// The shape the classifier takes (one example, no batch dimension).
        expected: Vec<usize>,
        /// The shape that was given.
        got: Vec<usize>,
    },

    /// The base classifier answered a class index outside `0..num_classes`.
    #[error(
        "the base classifier answered {out_of_range} of {total} samples with a class outside 0..{num_classes}"
    )]
    ClassOutOfRange {
        /// The classifier's declared number of classes.
        num_classes: usize,
        /// How many samples received an out-of-range class.
        out_of_range: u64,
        /// How many samples were classified.
        total: u64,
    },

    /// The base classifier returned a batch of the wrong length.
    #[error("the base classifier returned {got} decisions for a batch of {expected}")]
    BatchLengthMismatch {
        /// The batch size sent.
        expected: usize,
        /// The number of decisions returned.
        got: usize,
    },

    /// A class label given by the caller is outside `0..num_classes`.
    #[error("class {class} is outside 0..{num_classes}")]
    InvalidClass {
        /// The label given.
        class: usize,
        /// The number of classes.
        num_classes: usize,
    },

    /// A data file that does not have the expected format (truncated, wrong field count,
    /// values out of range, ...).
    #[error("malformed {format} data at {location}: {reason}")]
    MalformedData {
        /// The format expected, e.g. `"digits CSV"`.
        format: &'static str,
        /// Where the problem is (line, record or byte offset).
        location: String,
        /// What is wrong.
        reason: String,
    },

    /// A log row that no single run writes: an example a second time (two runs appended to one
    /// log, or logs concatenated), or one outside the run's selection (another shard's or another
    /// job's rows). Every reader of a log refuses it, since counting such a log would count an
    /// example twice or mix runs.
    #[error("{}line {line}: example {example} {fault}", log.as_deref().map_or_else(String::new, |p| format!("{}, ", p.display())))]
    RejectedRow {
        /// The log, where known (readers of bytes do not know it).
        log: Option<PathBuf>,
        /// The row's line, from 1 for the header.
        line: usize,
        /// The row's example.
        example: usize,
        /// Why it cannot be there.
        fault: RowFault,
    },

    /// A log (or folder) that another run is writing: its lock is held. `holder` is what the
    /// lock file says of that run (`pid PID on HOST`), where it says anything.
    #[error("{} is being written by another run{}: wait for it to end, or write elsewhere", path.display(), holder.as_deref().map_or_else(String::new, |h| format!(" ({h})")))]
    Locked {
        /// The log or folder.
        path: PathBuf,
        /// The run holding the lock, as its lock file records it.
        holder: Option<String>,
    },

    /// A file or folder that cannot be read or written; the operating system's error is the
    /// [`source`](std::error::Error::source).
    #[error("I/O error{}{}: {source}", .op.map_or_else(String::new, |op| format!(" {op}")), on(*.op, .path.as_deref()))]
    Io {
        /// What was being done, where known.
        op: Option<IoOperation>,
        /// The file or folder, where known.
        path: Option<PathBuf>,
        /// The operating system's error.
        #[source]
        source: IoError,
    },

    /// A model file that cannot be read: missing, not a PyTorch or Burn file, or truncated.
    #[error("cannot read model file {path}: {reason}")]
    UnreadableCheckpoint {
        /// The file.
        path: String,
        /// What the reader reported.
        reason: String,
    },

    /// A checkpoint whose bytes changed after it was written: a zip entry (a tensor's storage,
    /// `archive/data/<key>`, or the pickle) whose CRC-32 differs from the one the archive
    /// records for it.
    #[error(
        "model file {path} is corrupted: entry {entry} has CRC-32 {actual:08x}, the archive records {expected:08x}"
    )]
    CorruptedCheckpoint {
        /// The file.
        path: String,
        /// The zip entry.
        entry: String,
        /// The CRC-32 the archive records.
        expected: u32,
        /// The CRC-32 of the entry's bytes.
        actual: u32,
    },

    /// A file the crate wrote (a model file, a run manifest) whose bytes no longer match the
    /// SHA-256 it recorded when it was written.
    #[error("{} is corrupted: its {part} have SHA-256 {actual}, the file records {expected}", path.display())]
    CorruptedFile {
        /// The file.
        path: PathBuf,
        /// What the digest covers.
        part: String,
        /// The digest the file records.
        expected: String,
        /// The digest of the bytes found.
        actual: String,
    },

    /// A run whose settings differ from those a log was started with (its manifest, see
    /// [`crate::workflow::manifest`]); neither file was changed.
    #[error("{} was written with other settings: {}", log.display(), differences.join("; "))]
    RunMismatch {
        /// The log.
        log: PathBuf,
        /// One line per differing field.
        differences: Vec<String>,
    },

    /// A PyTorch checkpoint without the `arch` field that names its architecture.
    #[error(
        "checkpoint {path} does not name its architecture (no 'arch' field): give it (--arch, or build the model and call load_into)"
    )]
    MissingArchitecture {
        /// The file.
        path: String,
    },

    /// An architecture name that the crate does not build.
    #[error(
        "unknown architecture {0:?}: expected cifar_resnet20, cifar_resnet110 (any cifar_resnet<6k+2>) or resnet50"
    )]
    UnknownArchitecture(String),

    /// The checkpoint's tensors do not have the names the model expects. Names are the
    /// checkpoint's own (with any prefix such as `1.module.`), sorted.
    #[error(
        "checkpoint does not match the model (another architecture or width?): {}",
        key_summary(missing, unexpected)
    )]
    CheckpointKeys {
        /// Tensors the model needs that the checkpoint lacks.
        missing: Vec<String>,
        /// Tensors in the checkpoint that the model has no place for.
        unexpected: Vec<String>,
    },

    /// A checkpoint tensor whose shape differs from the model's parameter of that name.
    #[error("checkpoint tensor {key} has shape {got:?}, the model expects {expected:?}")]
    CheckpointShape {
        /// The checkpoint's name for the tensor.
        key: String,
        /// The shape the model expects (in the checkpoint's layout).
        expected: Vec<usize>,
        /// The shape found in the checkpoint.
        got: Vec<usize>,
    },

    /// A device the runtime was asked for cannot be reached: no driver, no such device, or a
    /// library built without it (a CPU-only libtorch asked for CUDA).
    #[error("device {device} is unavailable: {reason}")]
    DeviceUnavailable {
        /// The device asked for (`cuda:0`, `vulkan:1`, `cpu`).
        device: String,
        /// What is missing, and what was found instead.
        reason: String,
    },

    /// A file that is not a valid ONNX model: not ONNX's protobuf, a graph whose nodes are
    /// not in order, or one its parser (onnx-ir) rejects or fails on.
    #[error("{model} is not a valid ONNX model: {reason}")]
    MalformedOnnx {
        /// The file (or `<bytes>`).
        model: String,
        /// What the parser reported.
        reason: String,
    },

    /// A valid ONNX model that [`crate::models::OnnxModel`] does not run: an operator, data
    /// type, attribute or input it does not support, or a graph whose trial run on zeros
    /// fails. Raised at load, never mid-run.
    #[error("cannot run the ONNX model {model}: {}{reason}", node.as_deref().map_or_else(String::new, |n| format!("node {n}: ")))]
    UnsupportedOnnx {
        /// The file (or `<bytes>`).
        model: String,
        /// The node to blame, where one is.
        node: Option<String>,
        /// What is not supported.
        reason: String,
    },

    /// Any other parameter outside its domain.
    #[error("invalid {name}: {reason}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Why a log row is refused ([`Error::RejectedRow`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RowFault {
    /// The example has a row already: at `first_line`, of the log `first_log` where that is
    /// another file (a shard merged with another), else of the same log.
    Repeated {
        /// The line of the first row.
        first_line: usize,
        /// The other log holding it, if it is not the same one.
        first_log: Option<PathBuf>,
    },
    /// The example is not one the run selects (its `skip`, `max` and shard).
    NotSelected,
}

impl fmt::Display for RowFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowFault::Repeated {
                first_line,
                first_log: None,
            } => write!(f, "appears a second time (first at line {first_line})"),
            RowFault::Repeated {
                first_line,
                first_log: Some(log),
            } => write!(
                f,
                "appears a second time (first in {}, line {first_line})",
                log.display()
            ),
            RowFault::NotSelected => write!(
                f,
                "is not in the run's selection (its skip, max and shard): the row is of another run"
            ),
        }
    }
}

/// The operating system's error behind [`Error::Io`], shared so that [`enum@Error`] stays `Clone`;
/// two compare equal when they have the same kind and message.
///
/// # Example
/// ```
/// use std::error::Error as _;
/// use randomized_smoothing::data::load_mnist;
///
/// let err = load_mnist("no/such/images", "no/such/labels").unwrap_err();
/// let source = err.source().and_then(|s| s.downcast_ref::<randomized_smoothing::IoError>());
/// assert_eq!(source.map(|s| s.kind()), Some(std::io::ErrorKind::NotFound));
/// ```
#[derive(Debug, Clone)]
pub struct IoError(Arc<std::io::Error>);

impl IoError {
    /// The kind of the operating system's error.
    pub fn kind(&self) -> std::io::ErrorKind {
        self.0.kind()
    }

    /// The operating system's error itself.
    pub fn get_ref(&self) -> &std::io::Error {
        &self.0
    }
}

impl From<std::io::Error> for IoError {
    fn from(e: std::io::Error) -> Self {
        Self(Arc::new(e))
    }
}

impl PartialEq for IoError {
    fn eq(&self, other: &Self) -> bool {
        self.kind() == other.kind() && self.0.to_string() == other.0.to_string()
    }
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for IoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// The path of an I/O error for its message: " PATH" after an operation ("writing PATH"),
/// " on PATH" without one.
fn on(op: Option<IoOperation>, path: Option<&Path>) -> String {
    match (op, path) {
        (Some(_), Some(p)) => format!(" {}", p.display()),
        (None, Some(p)) => format!(" on {}", p.display()),
        (_, None) => String::new(),
    }
}

/// What was being done to a file or folder when an [`Error::Io`] happened: its message reads
/// "I/O error writing PATH: ...".
///
/// # Example
/// ```
/// use randomized_smoothing::data::load_mnist;
/// use randomized_smoothing::{Error, IoOperation};
///
/// let err = load_mnist("no/such/images", "no/such/labels").unwrap_err();
/// assert!(matches!(err, Error::Io { op: Some(IoOperation::Open), .. }));
/// assert!(err.to_string().starts_with("I/O error opening no/such/images: "));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IoOperation {
    /// Opening a file to read or append to it.
    Open,
    /// Reading a file.
    Read,
    /// Creating a file (replacing any).
    Create,
    /// Writing (appending to, truncating) a file.
    Write,
    /// Renaming a finished temporary file onto the path.
    Rename,
    /// Removing a file.
    Remove,
    /// Creating a folder and its parents.
    CreateFolder,
    /// Listing a folder.
    ListFolder,
    /// Reading a path's metadata, or making it absolute.
    Inspect,
    /// Taking a file's advisory lock.
    Lock,
}

impl fmt::Display for IoOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IoOperation::Open => "opening",
            IoOperation::Read => "reading",
            IoOperation::Create => "creating",
            IoOperation::Write => "writing",
            IoOperation::Rename => "renaming onto",
            IoOperation::Remove => "removing",
            IoOperation::CreateFolder => "creating the folder",
            IoOperation::ListFolder => "listing",
            IoOperation::Inspect => "inspecting",
            IoOperation::Lock => "locking",
        })
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io {
            op: None,
            path: None,
            source: e.into(),
        }
    }
}

impl Error {
    /// An I/O error of `op` on `path`.
    pub(crate) fn io(op: IoOperation, path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            op: Some(op),
            path: Some(path.as_ref().to_path_buf()),
            source: source.into(),
        }
    }

    /// This error as one that happened in the file `path`: an I/O error or a refused row
    /// without a file gets it, and a malformed record's location is prefixed with it (`PATH, line 5`); other
    /// errors are unchanged. For readers of bytes used on a file.
    pub(crate) fn in_file(self, path: &Path) -> Self {
        match self {
            Error::Io {
                op,
                path: None,
                source,
            } => Error::Io {
                op: op.or(Some(IoOperation::Read)),
                path: Some(path.to_path_buf()),
                source,
            },
            Error::RejectedRow {
                log: None,
                line,
                example,
                fault,
            } => Error::RejectedRow {
                log: Some(path.to_path_buf()),
                line,
                example,
                fault,
            },
            Error::MalformedData {
                format,
                location,
                reason,
            } => Error::MalformedData {
                format,
                location: format!("{}, {location}", path.display()),
                reason,
            },
            other => other,
        }
    }

    /// A failure, reported as an I/O error on `path`, of a library that writes or reads files
    /// and gives only a message (the plotting and checkpoint libraries).
    pub(crate) fn io_other(
        op: IoOperation,
        path: impl AsRef<Path>,
        message: impl fmt::Display,
    ) -> Self {
        Self::io(op, path, std::io::Error::other(message.to_string()))
    }
}

/// Shorthand for `Result<T, randomized_smoothing::Error>`.
///
/// # Example
/// ```
/// fn sigma() -> randomized_smoothing::Result<f64> {
///     Ok(randomized_smoothing::Gaussian::new(0.5)?.sigma())
/// }
/// assert_eq!(sigma(), Ok(0.5));
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Checks that `value` is a probability strictly inside (0, 1).
pub(crate) fn check_open_unit(name: &'static str, value: f64) -> Result<f64> {
    if value > 0.0 && value < 1.0 {
        Ok(value)
    } else {
        Err(Error::InvalidProbability { name, value })
    }
}

/// Checks that a length or multiple (a radius, a step) is finite and positive.
pub(crate) fn check_finite_positive(name: &'static str, value: f64) -> Result<f64> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(Error::InvalidParameter {
            name,
            reason: format!("must be finite and positive, got {value}"),
        })
    }
}

/// Checks that a count is at least one.
pub(crate) fn check_positive(name: &'static str, value: u64) -> Result<u64> {
    if value == 0 {
        Err(Error::ZeroCount(name))
    } else {
        Ok(value)
    }
}

/// `sigma` (or another noise scale) if it is finite and positive.
pub(crate) fn check_sigma(sigma: f64) -> Result<f64> {
    if sigma.is_finite() && sigma > 0.0 {
        Ok(sigma)
    } else {
        Err(Error::InvalidSigma(sigma))
    }
}

/// The key lists of [`Error::CheckpointKeys`] for a message: counts, and the first few keys of
/// each list (a ResNet's full list runs to thousands of characters; the error keeps it whole).
fn key_summary(missing: &[String], unexpected: &[String]) -> String {
    const SHOWN: usize = 4;
    let list = |keys: &[String], what: &str| {
        let mut text = format!("{} {what}", keys.len());
        if !keys.is_empty() {
            let first: Vec<&str> = keys.iter().take(SHOWN).map(String::as_str).collect();
            text.push_str(&format!(" ({}", first.join(", ")));
            if keys.len() > SHOWN {
                text.push_str(&format!(", and {} more", keys.len() - SHOWN));
            }
            text.push(')');
        }
        text
    };
    format!(
        "{}; {}",
        list(missing, "missing keys"),
        list(unexpected, "unexpected keys")
    )
}
