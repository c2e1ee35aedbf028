//! Data sets: images as `f32` pixels in [0, 1] with integer labels.
//!
//! The crate embeds the UCI "Optical Recognition of Handwritten Digits" test set (E. Alpaydin,
//! C. Kaynak, 1998; CC BY 4.0), 1,797 grayscale 8x8 digits, as shipped with scikit-learn, so
//! the quickstart runs with no download.
//!
//! # Example
//! ```
//! let (train, test) = randomized_smoothing::data::digits()?.split_at(1_437)?;
//! assert_eq!(train.len() + test.len(), 1_797);
//! # Ok::<(), randomized_smoothing::Error>(())
//! ```

use std::io::{BufRead, BufReader, Read};

use crate::error::{Error, Result};

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
    ///
    /// # Example
    /// ```
    /// assert_eq!(randomized_smoothing::data::digits()?.len(), 1_797);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True if there are no images.
    ///
    /// # Example
    /// ```
    /// assert!(!randomized_smoothing::data::digits()?.is_empty());
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The shape of one image, `[channels, height, width]`.
    ///
    /// # Example
    /// ```
    /// assert_eq!(randomized_smoothing::data::digits()?.image_shape(), &[1, 8, 8]);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn image_shape(&self) -> &[usize] {
        &self.image_shape
    }

    /// Number of classes.
    ///
    /// # Example
    /// ```
    /// assert_eq!(randomized_smoothing::data::digits()?.num_classes(), 10);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
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
    ///
    /// # Example
    /// ```
    /// assert_eq!(randomized_smoothing::data::digits()?.labels().len(), 1_797);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
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
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (i, line) in BufReader::new(reader).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| Error::MalformedData {
            format: FORMAT,
            location: format!("line {}", i + 1),
            reason,
        };
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
