//! Data sets: images as `f32` pixels in [0, 1] with integer labels.
//!
//! The crate embeds the UCI "Optical Recognition of Handwritten Digits" test set (E. Alpaydin,
//! C. Kaynak, 1998; CC BY 4.0), 1,797 grayscale 8x8 digits, as shipped with scikit-learn, so
//! the quickstart runs with no download. It also reads MNIST's IDX files (plain or gzipped)
//! and CIFAR-10's binary batches into memory ([`Dataset`]), and image folders (ImageNet's, or
//! your own, with a [`FolderTransform`]) lazily ([`ImageFolder`]); both are an
//! [`ImageSource`], which is what jobs and training read.
//!
//! # Example
//! ```
//! let (train, test) = randomized_smoothing::data::digits()?.split_at(1_437)?;
//! assert_eq!(train.len() + test.len(), 1_797);
//! # Ok::<(), randomized_smoothing::Error>(())
//! ```

#[cfg(feature = "image")]
mod image_folder;
mod mnist;

#[cfg(feature = "image")]
pub use image_folder::ImageFolder;
pub use mnist::{load_mnist, load_mnist_capped, read_mnist};

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use burn::config::Config;
use rand::Rng;

use crate::error::{Error, IoOperation, Result};

/// How an image folder ([`ImageFolder`]) turns files into model inputs: the input size, the
/// resize before the central crop, the channels and the training crops. A model trained on a
/// folder records it in its card (`models::ModelCard::input`), so certification reads the
/// images exactly as training did.
///
/// # Example
/// ```
/// use randomized_smoothing::data::FolderTransform;
///
/// // 32x32 grayscale inputs from images of any size; training crops as at test time.
/// let t = FolderTransform::new(32).with_channels(1);
/// assert_eq!((t.resize_to(), t.shape()), (32, [1, 32, 32]));
/// // ImageNet's: shorter side 256, central 224 crop, random resized crops for training.
/// let imagenet = FolderTransform::imagenet();
/// assert_eq!((imagenet.resize_to(), imagenet.random_resized_crop), (256, true));
/// ```
#[derive(Config, Debug, PartialEq)]
pub struct FolderTransform {
    /// Side of the square model input: the central crop, after resizing.
    pub size: u32,
    /// Length the shorter side is resized to before the central crop (at least `size`);
    /// `None` resizes it to `size`, so the crop keeps the whole shorter side.
    pub resize: Option<u32>,
    /// 3 for RGB, 1 for grayscale (ITU-R 601 luma, as PIL's `convert("L")`).
    #[config(default = 3)]
    pub channels: usize,
    /// Training reads a random resized crop and flip (ImageNet's, as torchvision's
    /// `RandomResizedCrop` and `RandomHorizontalFlip`); otherwise the test transform.
    #[config(default = false)]
    pub random_resized_crop: bool,
}

impl FolderTransform {
    /// The paper's ImageNet transforms: resize 256, crop 224, RGB, random resized crops.
    pub fn imagenet() -> Self {
        Self::new(224)
            .with_resize(Some(256))
            .with_random_resized_crop(true)
    }

    /// The shorter side's length before the central crop.
    pub fn resize_to(&self) -> u32 {
        self.resize.unwrap_or(self.size)
    }

    /// The shape of one input, `[channels, size, size]`.
    pub fn shape(&self) -> [usize; 3] {
        [self.channels, self.size as usize, self.size as usize]
    }

    /// Checks the sizes and channels.
    ///
    /// # Errors
    /// [`Error::ZeroCount`] for a zero size; [`Error::InvalidParameter`] for a resize below
    /// the size or channels other than 1 and 3.
    pub fn check(&self) -> Result<()> {
        crate::error::check_positive("size", u64::from(self.size))?;
        if self.resize_to() < self.size {
            return Err(Error::InvalidParameter {
                name: "resize",
                reason: format!("{} is below the crop {}", self.resize_to(), self.size),
            });
        }
        if self.channels != 1 && self.channels != 3 {
            return Err(Error::InvalidParameter {
                name: "channels",
                reason: format!("{}: images have 1 (grayscale) or 3 (RGB)", self.channels),
            });
        }
        Ok(())
    }
}

/// Labelled images read one at a time: held in memory ([`Dataset`]) or decoded from disk
/// when asked for ([`ImageFolder`]). The jobs and the training loop read through it, so a
/// data set larger than memory works like a small one.
///
/// # Contract
/// For `i < len()`, [`load`](Self::load) returns the `image_shape().iter().product()`
/// pixels of example `i` in [0, 1], channel-first and row-major, the same on every call, and
/// `label(i) < num_classes()`. [`load_train`](Self::load_train) may instead return a random
/// augmentation drawn from `rng` (and only from it, so training is reproducible); by default
/// it is `load`. Indices at or past `len()` may panic, like slice indexing.
///
/// # Example
/// ```
/// use randomized_smoothing::data::{ImageSource, digits};
///
/// fn mean_pixel(source: &dyn ImageSource, i: usize) -> randomized_smoothing::Result<f32> {
///     let pixels = source.load(i)?;
///     Ok(pixels.iter().sum::<f32>() / pixels.len() as f32)
/// }
/// assert!(mean_pixel(&digits()?, 0)? > 0.0);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub trait ImageSource: Sync {
    /// Number of examples.
    fn len(&self) -> usize;

    /// True if there are no examples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape of one image, `[channels, height, width]`.
    fn image_shape(&self) -> &[usize];

    /// Number of classes.
    fn num_classes(&self) -> usize;

    /// The label of example `i`.
    fn label(&self, i: usize) -> usize;

    /// The pixels of example `i` (the test-time view).
    ///
    /// # Errors
    /// Whatever reading the example can fail with, e.g. [`Error::MalformedData`] for an
    /// image file that does not decode.
    fn load(&self, i: usize) -> Result<Cow<'_, [f32]>>;

    /// The pixels of example `i` as training sees them, randomly augmented from `rng`.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    fn load_train(&self, i: usize, rng: &mut dyn Rng) -> Result<Cow<'_, [f32]>> {
        let _ = rng;
        self.load(i)
    }
}

impl ImageSource for Dataset {
    fn len(&self) -> usize {
        Dataset::len(self)
    }

    fn image_shape(&self) -> &[usize] {
        Dataset::image_shape(self)
    }

    fn num_classes(&self) -> usize {
        Dataset::num_classes(self)
    }

    fn label(&self, i: usize) -> usize {
        Dataset::label(self, i)
    }

    fn load(&self, i: usize) -> Result<Cow<'_, [f32]>> {
        Ok(Cow::Borrowed(self.image(i)))
    }
}

/// Images of one shape, each with a class label.
///
/// # Example
/// ```
/// let digits = randomized_smoothing::data::digits()?;
/// assert_eq!((digits.len(), digits.image_shape(), digits.num_classes()), (1_797, &[1, 8, 8][..], 10));
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pixels: Vec<f32>,
    labels: Vec<usize>,
    image_shape: Vec<usize>,
    num_classes: usize,
}

impl Dataset {
    /// A data set from row-major pixels (`labels.len()` images of `image_shape`) and labels.
    ///
    /// # Errors
    /// [`Error::MalformedData`] if the pixel count does not match, a pixel lies outside
    /// [0, 1] or is not finite, or a label is not below `num_classes`.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::data::Dataset;
    ///
    /// let d = Dataset::new(vec![0.0, 0.5, 1.0, 0.25], vec![1, 0], vec![2], 2)?;
    /// assert_eq!(d.image(1), &[1.0, 0.25]);
    /// assert!(Dataset::new(vec![0.0; 3], vec![1, 0], vec![2], 2).is_err());
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn new(
        pixels: Vec<f32>,
        labels: Vec<usize>,
        image_shape: Vec<usize>,
        num_classes: usize,
    ) -> Result<Self> {
        let malformed = |reason: String| Error::MalformedData {
            format: "dataset",
            location: "pixels".into(),
            reason,
        };
        let per_image: usize = image_shape.iter().product();
        if per_image == 0 || pixels.len() != per_image * labels.len() {
            return Err(malformed(format!(
                "{} pixels for {} images of shape {image_shape:?}",
                pixels.len(),
                labels.len()
            )));
        }
        if let Some(p) = pixels.iter().find(|p| !(0.0..=1.0).contains(*p)) {
            return Err(malformed(format!("pixel value {p} outside [0, 1]")));
        }
        if let Some(l) = labels.iter().find(|&&l| l >= num_classes) {
            return Err(Error::InvalidClass {
                class: *l,
                num_classes,
            });
        }
        Ok(Self {
            pixels,
            labels,
            image_shape,
            num_classes,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True if there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The shape of one image, `[channels, height, width]`.
    pub fn image_shape(&self) -> &[usize] {
        &self.image_shape
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// The pixels of image `i`, row-major.
    ///
    /// # Panics
    /// If `i >= len()`, like slice indexing.
    ///
    /// # Example
    /// ```
    /// let digits = randomized_smoothing::data::digits()?;
    /// assert_eq!(digits.image(0).len(), 64);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.pixels.len() / self.labels.len();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// The label of image `i`.
    ///
    /// # Example
    /// ```
    /// assert_eq!(randomized_smoothing::data::digits()?.label(0), 0);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn label(&self, i: usize) -> usize {
        self.labels[i]
    }

    /// All labels.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// Splits into the first `at` images and the rest.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `at > len()`.
    ///
    /// # Example
    /// ```
    /// let (train, test) = randomized_smoothing::data::digits()?.split_at(1_437)?;
    /// assert_eq!((train.len(), test.len()), (1_437, 360));
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn split_at(&self, at: usize) -> Result<(Dataset, Dataset)> {
        if at > self.len() {
            return Err(Error::InvalidParameter {
                name: "at",
                reason: format!("cannot split {} images at {at}", self.len()),
            });
        }
        let n = self.pixels.len() / self.labels.len().max(1);
        let part = |range: std::ops::Range<usize>| Dataset {
            pixels: self.pixels[range.start * n..range.end * n].to_vec(),
            labels: self.labels[range].to_vec(),
            image_shape: self.image_shape.clone(),
            num_classes: self.num_classes,
        };
        Ok((part(0..at), part(at..self.len())))
    }
}

const DIGITS_GZ: &[u8] = include_bytes!("digits.csv.gz");

/// The embedded digits data set: 1,797 images `[1, 8, 8]`, pixels scaled from 0..16 to
/// [0, 1], labels 0 to 9, in the file's order.
///
/// # Errors
/// Only if the embedded file were corrupt (see [`read_digits_csv`]).
///
/// # Example
/// ```
/// let digits = randomized_smoothing::data::digits()?;
/// assert!(digits.image(5).iter().all(|&p| (0.0..=1.0).contains(&p)));
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn digits() -> Result<Dataset> {
    read_digits_csv(flate2::read::GzDecoder::new(DIGITS_GZ))
}

/// Reads the digits CSV format: per line 64 integer pixels in 0..=16, then the label in 0..=9.
///
/// # Errors
/// [`Error::MalformedData`] naming the line for a wrong field count, a non-integer or
/// out-of-range value, or an empty file; [`Error::Io`] if reading fails (for example a
/// truncated gzip stream).
///
/// # Example
/// ```
/// use randomized_smoothing::data::read_digits_csv;
///
/// let line = format!("{}7\n", "16,".repeat(64));
/// let d = read_digits_csv(line.as_bytes())?;
/// assert_eq!((d.len(), d.label(0), d.image(0)[0]), (1, 7, 1.0));
/// assert!(read_digits_csv("1,2,3\n".as_bytes()).is_err());
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn read_digits_csv(reader: impl Read) -> Result<Dataset> {
    const FORMAT: &str = "digits CSV";
    // A row is 65 numbers of at most two digits: 200 bytes with room for spaces and CR.
    const MAX_LINE: u64 = 256;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    // Read at most the cap (and a byte, to notice more), a line at a time, each at most
    // MAX_LINE bytes: a stream without newlines or without end is refused, not held.
    let mut reader = BufReader::new(reader.take(MAX_DATA_BYTES + 1));
    let mut line = String::new();
    let mut read = 0u64;
    for i in 0.. {
        line.clear();
        let n = (&mut reader).take(MAX_LINE + 1).read_line(&mut line)? as u64;
        if n == 0 {
            break;
        }
        read += n;
        let bad = |reason: String| Error::MalformedData {
            format: FORMAT,
            location: format!("line {}", i + 1),
            reason,
        };
        if read > MAX_DATA_BYTES {
            return Err(bad(format!(
                "more than {MAX_DATA_BYTES} bytes (decompressed), the cap"
            )));
        }
        if n > MAX_LINE {
            return Err(bad(format!("longer than {MAX_LINE} bytes")));
        }
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.trim().split(',').collect();
        if fields.len() != 65 {
            return Err(bad(format!("{} fields, expected 65", fields.len())));
        }
        for (j, f) in fields.iter().enumerate() {
            let v: u8 = f
                .trim()
                .parse()
                .map_err(|_| bad(format!("field {} is not an integer: {f:?}", j + 1)))?;
            let max = if j < 64 { 16 } else { 9 };
            if v > max {
                return Err(bad(format!("field {} is {v}, above {max}", j + 1)));
            }
            if j < 64 {
                pixels.push(f32::from(v) / 16.0);
            } else {
                labels.push(usize::from(v));
            }
        }
    }
    if labels.is_empty() {
        return Err(Error::MalformedData {
            format: FORMAT,
            location: "end of file".into(),
            reason: "no images".into(),
        });
    }
    Dataset::new(pixels, labels, vec![1, 8, 8], 10)
}

/// The most bytes a data file may hold, decompressed, unless the caller sets another cap
/// ([`load_mnist_capped`], [`load_cifar10_capped`]): 1 GiB, twenty times MNIST's training
/// images (47 MB) and seven times CIFAR-10's five training batches (154 MB). A gzipped file
/// is decompressed as a stream and stopped at the cap (or, for IDX, at what its header
/// announces), so a small file that decompresses to gigabytes never fills memory.
pub const MAX_DATA_BYTES: u64 = 1 << 30;

/// A file's bytes as a stream, decompressed if it starts with the gzip magic bytes.
fn open_maybe_gzip(path: &Path) -> Result<Box<dyn Read>> {
    let mut file =
        BufReader::new(File::open(path).map_err(|e| Error::io(IoOperation::Open, path, e))?);
    let gzip = file
        .fill_buf()
        .map_err(|e| Error::io(IoOperation::Read, path, e))?
        .starts_with(&[0x1f, 0x8b]);
    Ok(if gzip {
        Box::new(flate2::bufread::GzDecoder::new(file))
    } else {
        Box::new(file)
    })
}

/// Reads `reader` (of the file at `path`, in `format`) to its end, at most `cap` bytes: a
/// stream that runs past the cap is refused after `cap + 1` bytes. Memory grows with the
/// bytes read, never with a size a file declares.
fn read_capped(
    reader: &mut dyn Read,
    cap: u64,
    path: &Path,
    format: &'static str,
) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader
        .take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(IoOperation::Read, path, e))?;
    if bytes.len() as u64 > cap {
        return Err(Error::MalformedData {
            format,
            location: path.display().to_string(),
            reason: format!(
                "more than {cap} bytes (decompressed), the cap (raise it with load_cifar10_capped)"
            ),
        });
    }
    Ok(bytes)
}

/// Bytes per CIFAR-10 record: a label byte, then 32x32 red, green and blue planes.
const CIFAR_RECORD: usize = 1 + 3 * 32 * 32;

/// Reads CIFAR-10 binary batches (the bytes of `data_batch_N.bin` or `test_batch.bin`,
/// concatenated): images `[3, 32, 32]`, pixels scaled to [0, 1].
///
/// # Errors
/// [`Error::MalformedData`] if the length is not a whole number of 3,073-byte records
/// (a truncated file) or a label is above 9.
///
/// # Example
/// ```
/// use randomized_smoothing::data::read_cifar10;
///
/// let mut record = vec![3u8];
/// record.extend(std::iter::repeat(255u8).take(3072));
/// let d = read_cifar10(&record)?;
/// assert_eq!((d.len(), d.label(0), d.image(0)[0]), (1, 3, 1.0));
/// assert!(read_cifar10(&record[..3000]).is_err());
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn read_cifar10(bytes: &[u8]) -> Result<Dataset> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(CIFAR_RECORD) {
        return Err(Error::MalformedData {
            format: "CIFAR-10 binary",
            location: format!("byte {}", bytes.len() - bytes.len() % CIFAR_RECORD),
            reason: format!(
                "{} bytes is not a whole number of {CIFAR_RECORD}-byte records (truncated file?)",
                bytes.len()
            ),
        });
    }
    let mut pixels = Vec::with_capacity(bytes.len());
    let mut labels = Vec::with_capacity(bytes.len() / CIFAR_RECORD);
    for (i, record) in bytes.chunks_exact(CIFAR_RECORD).enumerate() {
        if record[0] > 9 {
            return Err(Error::MalformedData {
                format: "CIFAR-10 binary",
                location: format!("record {i}"),
                reason: format!("label {} above 9", record[0]),
            });
        }
        labels.push(usize::from(record[0]));
        pixels.extend(record[1..].iter().map(|&p| f32::from(p) / 255.0));
    }
    Dataset::new(pixels, labels, vec![3, 32, 32], 10)
}

/// The files [`load_cifar10`] reads: `data_batch_1.bin` to `data_batch_5.bin` for the
/// training set, `test_batch.bin` for the test set.
///
/// # Example
/// ```
/// let files = randomized_smoothing::data::cifar10_files("cifar-10-batches-bin", false);
/// assert_eq!(files, [std::path::Path::new("cifar-10-batches-bin/test_batch.bin")]);
/// ```
pub fn cifar10_files(dir: impl AsRef<Path>, train: bool) -> Vec<std::path::PathBuf> {
    let names: Vec<String> = if train {
        (1..=5).map(|i| format!("data_batch_{i}.bin")).collect()
    } else {
        vec!["test_batch.bin".into()]
    };
    names.iter().map(|n| dir.as_ref().join(n)).collect()
}

/// Loads the CIFAR-10 training set (`data_batch_1.bin` to `data_batch_5.bin`) or test set
/// (`test_batch.bin`) from the folder `cifar-10-batches-bin`, at most [`MAX_DATA_BYTES`] in
/// all (decompressed, where a batch is gzipped).
///
/// # Errors
/// [`Error::Io`] for a missing file; [`Error::MalformedData`] past the cap; otherwise as
/// [`read_cifar10`].
///
/// # Example
/// ```no_run
/// let test = randomized_smoothing::data::load_cifar10("data/cifar-10-batches-bin", false)?;
/// assert_eq!(test.len(), 10_000);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn load_cifar10(dir: impl AsRef<Path>, train: bool) -> Result<Dataset> {
    load_cifar10_capped(dir, train, MAX_DATA_BYTES)
}

/// [`load_cifar10`] with a cap of `cap` bytes for all the batches together in place of
/// [`MAX_DATA_BYTES`]. The batches carry no header: each is read as a stream, stopped at
/// what is left of the cap.
pub fn load_cifar10_capped(dir: impl AsRef<Path>, train: bool, cap: u64) -> Result<Dataset> {
    let mut bytes = Vec::new();
    for path in cifar10_files(dir, train) {
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let left = cap.saturating_sub(bytes.len() as u64);
        let part = read_capped(
            &mut *open_maybe_gzip(&path)?,
            left,
            &path,
            "CIFAR-10 binary",
        )?;
        if !part.len().is_multiple_of(CIFAR_RECORD) {
            // Report the truncation against the file it is in.
            read_cifar10(&part).map_err(|e| e.in_file(Path::new(&name)))?;
        }
        bytes.extend(part);
    }
    read_cifar10(&bytes)
}
