//! MNIST's IDX files, from bytes in memory or from files (plain or gzipped), read by one
//! header-first reader: the header is checked (its magic number, a cap on what it announces,
//! as many labels as images) before any payload is read, then exactly the payload it
//! announces is read as a stream, and a stream that runs past it is refused.

use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

use super::{Dataset, MAX_DATA_BYTES, open_maybe_gzip};
use crate::error::{Error, IoOperation, Result};

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;

/// An IDX stream whose header has been read and checked.
struct IdxFile<R> {
    dims: Vec<usize>,
    reader: R,
    /// The file, for I/O errors (none for bytes in memory, which cannot fail to read).
    path: Option<PathBuf>,
    what: &'static str,
}

impl<R: Read> IdxFile<R> {
    /// Reads the header of `reader` (magic `magic`, `what` in errors), refusing one that
    /// announces more than `cap` payload bytes before any of them is read.
    fn open(
        mut reader: R,
        path: Option<&Path>,
        magic: u32,
        what: &'static str,
        cap: u64,
    ) -> Result<Self> {
        let bad = |reason: String| malformed(what, reason);
        let io = |e| io_error(path, e);
        let mut word = || -> Result<u32> {
            let mut b = [0u8; 4];
            match reader.read_exact(&mut b) {
                Ok(()) => Ok(u32::from_be_bytes(b)),
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                    Err(bad("file ends inside the header".into()))
                }
                Err(e) => Err(io(e)),
            }
        };
        let found = word()?;
        if found != magic {
            return Err(bad(format!(
                "magic number {found:#010x}, expected {magic:#010x}"
            )));
        }
        let rank = (magic & 0xff) as usize;
        let dims: Vec<usize> = (0..rank)
            .map(|_| word().map(|d| d as usize))
            .collect::<Result<_>>()?;
        // Checked: a damaged header can announce more bytes than a u64 counts.
        let announced = dims.iter().try_fold(1u64, |n, &d| n.checked_mul(d as u64));
        if announced.is_none_or(|bytes| bytes > cap) {
            return Err(bad(format!(
                "the header announces {dims:?} items, more than the cap of {cap} bytes \
                 (raise it with load_mnist_capped)"
            )));
        }
        Ok(Self {
            dims,
            reader,
            path: path.map(Path::to_path_buf),
            what,
        })
    }

    /// The payload: exactly the bytes the header announces, refused if the stream is shorter
    /// or runs past them (which, for gzip, also checks its CRC).
    fn payload(mut self) -> Result<Vec<u8>> {
        let expected: usize = self.dims.iter().product();
        let io = |e| io_error(self.path.as_deref(), e);
        let mut payload = Vec::new();
        (&mut self.reader)
            .take(expected as u64)
            .read_to_end(&mut payload)
            .map_err(io)?;
        if payload.len() != expected {
            return Err(malformed(
                self.what,
                format!(
                    "{} bytes of data, the header announces {expected} (truncated file?)",
                    payload.len()
                ),
            ));
        }
        let mut past = [0u8; 1];
        match self.reader.read(&mut past).map_err(io)? {
            0 => Ok(payload),
            _ => Err(malformed(
                self.what,
                format!("the data runs past the {expected} bytes the header announces"),
            )),
        }
    }
}

fn malformed(what: &str, reason: String) -> Error {
    Error::MalformedData {
        format: "MNIST IDX",
        location: what.to_string(),
        reason,
    }
}

fn io_error(path: Option<&Path>, e: std::io::Error) -> Error {
    match path {
        Some(path) => Error::io(IoOperation::Read, path, e),
        None => e.into(),
    }
}

/// The data set of two checked headers: as many labels as images, then both payloads.
fn mnist<I: Read, L: Read>(images: IdxFile<I>, labels: IdxFile<L>) -> Result<Dataset> {
    if images.dims[0] != labels.dims[0] {
        return Err(malformed(
            "labels",
            format!("{} labels for {} images", labels.dims[0], images.dims[0]),
        ));
    }
    let shape = vec![1, images.dims[1], images.dims[2]];
    let labels = labels.payload()?;
    let pixels = images.payload()?;
    let pixels = pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
    let labels = labels.iter().map(|&l| usize::from(l)).collect();
    Dataset::new(pixels, labels, shape, 10)
}

/// Reads MNIST from the bytes of an IDX image file and an IDX label file (uncompressed):
/// images `[1, rows, cols]`, pixels scaled from 0..=255 to [0, 1].
///
/// # Errors
/// [`Error::MalformedData`] for a wrong magic number, a truncated file or one longer than its
/// header, different image and label counts, or a label above 9.
///
/// # Example
/// ```
/// use randomized_smoothing::data::read_mnist;
///
/// // Two 2x2 images, in the IDX format.
/// let images = [&[0u8, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2][..], &[0, 255, 0, 255, 1, 2, 3, 4]].concat();
/// let labels = [0u8, 0, 8, 1, 0, 0, 0, 2, 7, 1];
/// let d = read_mnist(&images, &labels)?;
/// assert_eq!((d.len(), d.image_shape(), d.label(0)), (2, &[1, 2, 2][..], 7));
/// assert_eq!(d.image(0)[1], 1.0);
/// assert!(read_mnist(&images[..20], &labels).is_err()); // truncated
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn read_mnist(images: &[u8], labels: &[u8]) -> Result<Dataset> {
    // The bytes are in memory already: no cap beyond their own length.
    let cap = u64::MAX;
    mnist(
        IdxFile::open(images, None, IMAGES_MAGIC, "images", cap)?,
        IdxFile::open(labels, None, LABELS_MAGIC, "labels", cap)?,
    )
}

/// Loads MNIST from an IDX image file and an IDX label file, gzipped or not (as
/// `t10k-images-idx3-ubyte.gz` and `t10k-labels-idx1-ubyte.gz`), each at most
/// [`MAX_DATA_BYTES`] decompressed.
///
/// # Errors
/// [`Error::Io`] if a file cannot be read or decompressed; otherwise as [`read_mnist`], and
/// [`Error::MalformedData`] for a header that announces more than the cap.
///
/// # Example
/// ```no_run
/// let test = randomized_smoothing::data::load_mnist(
///     "../shared/data/mnist/t10k-images-idx3-ubyte.gz",
///     "../shared/data/mnist/t10k-labels-idx1-ubyte.gz",
/// )?;
/// assert_eq!(test.len(), 10_000);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn load_mnist(images: impl AsRef<Path>, labels: impl AsRef<Path>) -> Result<Dataset> {
    load_mnist_capped(images, labels, MAX_DATA_BYTES)
}

/// [`load_mnist`] with a cap of `cap` bytes per file (decompressed) in place of
/// [`MAX_DATA_BYTES`], for larger IDX data. Both headers are read and checked (the cap, and
/// as many labels as images) before either payload, and each payload is read as a stream of
/// exactly the size its header announces.
pub fn load_mnist_capped(
    images: impl AsRef<Path>,
    labels: impl AsRef<Path>,
    cap: u64,
) -> Result<Dataset> {
    let open = |path: &Path, magic, what| {
        IdxFile::open(open_maybe_gzip(path)?, Some(path), magic, what, cap)
    };
    mnist(
        open(images.as_ref(), IMAGES_MAGIC, "images")?,
        open(labels.as_ref(), LABELS_MAGIC, "labels")?,
    )
}
