//! ImageNet-style image folders, decoded on demand with the paper's transforms.

use std::borrow::Cow;
use std::fs;
use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::{DynamicImage, RgbImage};
use rand::{Rng, RngExt};

use super::{FolderTransform, ImageSource};
use crate::error::{Error, IoOperation, Result, check_positive};

const FORMAT: &str = "image folder";

/// File extensions read as images (compared case-insensitively), as torchvision's
/// `ImageFolder` would for the formats this crate decodes.
const EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// An image folder in torchvision's `ImageFolder` layout: one sub-folder per class, classes
/// numbered in sorted order of their names, JPEG and PNG files inside. Images are decoded
/// when read, so a 50,000-image validation set costs no memory up front.
///
/// Pixels are RGB in [0, 1] (grayscale images are expanded to three channels), shape
/// `[3, crop, crop]`, with the transforms of the paper's ImageNet code:
/// - [`load`](ImageSource::load) (test): resize the shorter side to `resize` (256), then
///   take the central `crop` x `crop` (224) square;
/// - [`load_train`](ImageSource::load_train): a random resized crop (scale 0.08 to 1 of the
///   area, aspect ratio 3/4 to 4/3, resized to `crop`) and a horizontal flip with
///   probability 1/2, as torchvision's `RandomResizedCrop` and `RandomHorizontalFlip`.
///
/// Resizing uses a bilinear filter that widens with the scale factor when shrinking, like
/// PIL's antialiased bilinear resize behind torchvision.
///
/// # Example
/// ```no_run
/// use randomized_smoothing::data::{ImageFolder, ImageSource};
///
/// let val = ImageFolder::open("imagenet/val")?;
/// assert_eq!((val.num_classes(), val.image_shape()), (1_000, &[3, 224, 224][..]));
/// let pixels = val.load(0)?;
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ImageFolder {
    files: Vec<PathBuf>,
    labels: Vec<usize>,
    classes: Vec<String>,
    transform: FolderTransform,
    shape: [usize; 3],
}

impl ImageFolder {
    /// Lists the folder `root`: its sub-folders are the classes (sorted by name), the JPEG
    /// and PNG files in each are its examples (sorted by name); other files are ignored.
    /// Sizes are ImageNet's: resize 256, crop 224.
    ///
    /// # Errors
    /// [`Error::Io`] if `root` cannot be read; [`Error::MalformedData`] if it has no class
    /// folders or a class folder holds no image.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::{Error, data::ImageFolder};
    ///
    /// let empty = std::env::temp_dir().join("rs-doc-empty-image-folder");
    /// std::fs::create_dir_all(&empty)?;
    /// assert!(matches!(ImageFolder::open(&empty), Err(Error::MalformedData { .. })));
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        let mut classes: Vec<(String, PathBuf)> = Vec::new();
        for entry in fs::read_dir(root).map_err(|e| Error::io(IoOperation::ListFolder, root, e))? {
            let entry = entry.map_err(|e| Error::io(IoOperation::ListFolder, root, e))?;
            if entry.path().is_dir() {
                classes.push((
                    entry.file_name().to_string_lossy().into_owned(),
                    entry.path(),
                ));
            }
        }
        if classes.is_empty() {
            return Err(malformed(root, "no class folders".into()));
        }
        classes.sort();
        let (mut files, mut labels) = (Vec::new(), Vec::new());
        for (label, (name, dir)) in classes.iter().enumerate() {
            let mut images: Vec<PathBuf> = fs::read_dir(dir)
                .map_err(|e| Error::io(IoOperation::ListFolder, dir, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && is_image(p))
                .collect();
            if images.is_empty() {
                return Err(malformed(
                    dir,
                    format!("class {name} holds no JPEG or PNG file"),
                ));
            }
            images.sort();
            labels.extend(std::iter::repeat_n(label, images.len()));
            files.extend(images);
        }
        Ok(Self {
            files,
            labels,
            classes: classes.into_iter().map(|(name, _)| name).collect(),
            transform: FolderTransform::imagenet(),
            shape: [3, 224, 224],
        })
    }

    /// Reads the images with `transform` instead of ImageNet's: your own data set's size,
    /// channels and training crops.
    ///
    /// # Errors
    /// Those of [`FolderTransform::check`].
    ///
    /// # Example
    /// ```no_run
    /// # use randomized_smoothing::data::{FolderTransform, ImageFolder, ImageSource};
    /// let gray = ImageFolder::open("my-data/test")?.with_transform(FolderTransform::new(28).with_channels(1))?;
    /// assert_eq!(gray.image_shape(), &[1, 28, 28]);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn with_transform(mut self, transform: FolderTransform) -> Result<Self> {
        transform.check()?;
        self.shape = transform.shape();
        self.transform = transform;
        Ok(self)
    }

    /// The transform the images are read with.
    pub fn transform(&self) -> &FolderTransform {
        &self.transform
    }

    /// Changes the test-time resize (shorter side) and the crop size of both transforms.
    ///
    /// # Errors
    /// [`Error::ZeroCount`] for a zero size; [`Error::InvalidParameter`] if `crop > resize`.
    ///
    /// # Example
    /// ```no_run
    /// # use randomized_smoothing::data::{ImageFolder, ImageSource};
    /// let small = ImageFolder::open("imagenet/val")?.with_sizes(72, 64)?;
    /// assert_eq!(small.image_shape(), &[3, 64, 64]);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn with_sizes(self, resize: u32, crop: u32) -> Result<Self> {
        check_positive("crop", u64::from(crop))?;
        if crop > resize {
            return Err(Error::InvalidParameter {
                name: "crop",
                reason: format!("crop {crop} larger than the resize {resize}"),
            });
        }
        let transform = FolderTransform {
            size: crop,
            resize: Some(resize),
            ..self.transform.clone()
        };
        self.with_transform(transform)
    }

    /// The class names, in label order.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The file of example `i`.
    ///
    /// # Example
    /// ```no_run
    /// # use randomized_smoothing::data::ImageFolder;
    /// let val = ImageFolder::open("imagenet/val")?;
    /// println!("{}", val.path(0).display());
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn path(&self, i: usize) -> &Path {
        &self.files[i]
    }

    fn decode(&self, i: usize) -> Result<RgbImage> {
        let path = &self.files[i];
        let bytes = fs::read(path).map_err(|e| Error::io(IoOperation::Read, path, e))?;
        if bytes.starts_with(&[0xFF, 0xD8]) && !jpeg_is_complete(&bytes) {
            return Err(malformed(
                path,
                "JPEG ends before its last scan does (truncated file?)".into(),
            ));
        }
        let open = || {
            image::ImageReader::new(std::io::Cursor::new(&bytes))
                .with_guessed_format()
                .map_err(|e| malformed(path, e.to_string()))
        };
        if bytes.starts_with(&[0xFF, 0xD8]) {
            // JPEG has no checksum: a damaged frame header can announce any size, and the
            // decoder allocates for it before finding the data short. No real JPEG holds
            // more than about 100 pixels per byte (an 8x8 block costs at least a few bits).
            let (w, h) = open()?
                .into_dimensions()
                .map_err(|e| malformed(path, e.to_string()))?;
            if u64::from(w) * u64::from(h) > MAX_JPEG_PIXELS_PER_BYTE * bytes.len() as u64 {
                return Err(malformed(
                    path,
                    format!(
                        "a {w}x{h} JPEG cannot fit in {} bytes (damaged header?)",
                        bytes.len()
                    ),
                ));
            }
        }
        let mut reader = open()?;
        reader.limits(decoder_limits());
        let image = reader
            .decode()
            .map_err(|e| malformed(path, e.to_string()))?;
        Ok(match image {
            DynamicImage::ImageRgb8(rgb) => rgb,
            other => other.to_rgb8(),
        })
    }
}

impl ImageSource for ImageFolder {
    fn len(&self) -> usize {
        self.files.len()
    }

    fn image_shape(&self) -> &[usize] {
        &self.shape
    }

    fn num_classes(&self) -> usize {
        self.classes.len()
    }

    fn label(&self, i: usize) -> usize {
        self.labels[i]
    }

    fn load(&self, i: usize) -> Result<Cow<'_, [f32]>> {
        let image = self.decode(i)?;
        let (w, h) = image.dimensions();
        let (resize, crop) = (self.transform.resize_to(), self.transform.size);
        // Shorter side to `resize`, the other in proportion (torchvision truncates). An image
        // already of that size is left as it is, as PIL leaves it.
        let (rw, rh) = if w <= h {
            (
                resize,
                (u64::from(h) * u64::from(resize) / u64::from(w)) as u32,
            )
        } else {
            (
                (u64::from(w) * u64::from(resize) / u64::from(h)) as u32,
                resize,
            )
        };
        let resized = if (rw, rh) == (w, h) {
            image
        } else {
            image::imageops::resize(&image, rw, rh, FilterType::Triangle)
        };
        // torchvision's center crop rounds the offset to the nearest pixel.
        let top = ((rh - crop) as f64 / 2.0).round() as u32;
        let left = ((rw - crop) as f64 / 2.0).round() as u32;
        let crop = image::imageops::crop_imm(&resized, left, top, crop, crop);
        Ok(Cow::Owned(to_chw(
            &crop.to_image(),
            false,
            self.transform.channels,
        )))
    }

    fn load_train(&self, i: usize, rng: &mut dyn Rng) -> Result<Cow<'_, [f32]>> {
        if !self.transform.random_resized_crop {
            return self.load(i);
        }
        let image = self.decode(i)?;
        let [left, top, w, h] = random_resized_crop(image.width(), image.height(), rng);
        let region = image::imageops::crop_imm(&image, left, top, w, h).to_image();
        let size = self.transform.size;
        let resized = image::imageops::resize(&region, size, size, FilterType::Triangle);
        let flip = rng.random::<bool>();
        Ok(Cow::Owned(to_chw(&resized, flip, self.transform.channels)))
    }
}

/// torchvision's `RandomResizedCrop.get_params` with scale (0.08, 1) and ratio (3/4, 4/3):
/// up to ten tries at a random area and log-uniform aspect ratio, else the largest central
/// crop within the ratio bounds. Returns `[left, top, width, height]`.
fn random_resized_crop(width: u32, height: u32, rng: &mut dyn Rng) -> [u32; 4] {
    let (w, h) = (f64::from(width), f64::from(height));
    let area = w * h;
    let (log_lo, log_hi) = ((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln());
    for _ in 0..10 {
        let target = area * rng.random_range(0.08..1.0);
        let ratio = rng.random_range(log_lo..log_hi).exp();
        let cw = (target * ratio).sqrt().round();
        let ch = (target / ratio).sqrt().round();
        if cw > 0.0 && ch > 0.0 && cw <= w && ch <= h {
            let (cw, ch) = (cw as u32, ch as u32);
            let top = rng.random_range(0..=height - ch);
            let left = rng.random_range(0..=width - cw);
            return [left, top, cw, ch];
        }
    }
    let ratio = w / h;
    let (cw, ch) = if ratio < 3.0 / 4.0 {
        (width, (w / (3.0 / 4.0)).round().min(h) as u32)
    } else if ratio > 4.0 / 3.0 {
        ((h * 4.0 / 3.0).round().min(w) as u32, height)
    } else {
        (width, height)
    };
    [(width - cw) / 2, (height - ch) / 2, cw, ch]
}

/// Ten times the most pixels per byte a JPEG can hold (see `decode`).
const MAX_JPEG_PIXELS_PER_BYTE: u64 = 1_024;

/// What the decoder may allocate for one image: a header is read before the pixels, and a
/// damaged one can announce any size. 16,384 pixels a side and 256 MiB hold every ImageNet
/// image (the largest are a few thousand pixels a side) with room to spare.
fn decoder_limits() -> image::Limits {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(16_384);
    limits.max_image_height = Some(16_384);
    limits.max_alloc = Some(256 << 20);
    limits
}

/// Whether a JPEG's last scan is followed by the end-of-image marker. The decoder fills a
/// truncated scan with gray and reports no error (PIL, behind torchvision, refuses such
/// files). Inside scan data a 0xFF byte is always followed by 0x00 or a restart marker, so
/// the markers found here are real; an embedded thumbnail's end marker comes before the main
/// image's scans and does not count.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    last_scan.is_some_and(|start| bytes[start..].windows(2).any(|w| w == [0xFF, 0xD9]))
}

/// RGB bytes to channel-first pixels in [0, 1], optionally mirrored left to right: three
/// channels, or one of ITU-R 601 luma (PIL's `convert("L")`, rounded the same way).
fn to_chw(image: &RgbImage, flip: bool, channels: usize) -> Vec<f32> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let mut out = vec![0.0; channels * w * h];
    for (x, y, pixel) in image.enumerate_pixels() {
        let x = if flip { w - 1 - x as usize } else { x as usize };
        let at = y as usize * w + x;
        if channels == 1 {
            let [r, g, b] = pixel.0.map(u32::from);
            let luma = (r * 299 + g * 587 + b * 114 + 500) / 1000;
            out[at] = luma as f32 / 255.0;
        } else {
            for c in 0..3 {
                out[c * w * h + at] = f32::from(pixel[c]) / 255.0;
            }
        }
    }
    out
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

fn malformed(path: &Path, reason: String) -> Error {
    Error::MalformedData {
        format: FORMAT,
        location: path.display().to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// A JPEG whose frame header announces 16,000 x 16,000 pixels in a file of a few
    /// hundred bytes is refused before the decoder allocates 768 MB for it.
    #[test]
    fn a_jpeg_announcing_more_pixels_than_it_can_hold_is_refused() {
        let image = RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut bytes = std::io::Cursor::new(Vec::new());
        image
            .write_to(&mut bytes, image::ImageFormat::Jpeg)
            .unwrap();
        let mut bytes = bytes.into_inner();
        // Baseline frame header: FF C0, length (2), precision (1), height (2), width (2).
        let sof = bytes.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        bytes[sof + 5..sof + 9].copy_from_slice(&[0x3E, 0x80, 0x3E, 0x80]);
        let dir = std::env::temp_dir().join(format!("rs-jpeg-header-{}", std::process::id()));
        fs::create_dir_all(dir.join("a")).unwrap();
        fs::write(dir.join("a/big.jpg"), &bytes).unwrap();
        let err = ImageFolder::open(&dir).unwrap().load(0).unwrap_err();
        fs::remove_dir_all(&dir).ok();
        assert!(
            err.to_string().contains("a 16000x16000 JPEG cannot fit"),
            "{err}"
        );
    }

    #[test]
    fn jpeg_completeness_looks_for_the_end_marker_after_the_last_scan() {
        let scan = [0xFF, 0xD8, 0xFF, 0xDA, 1, 2, 0xFF, 0x00, 3];
        assert!(!jpeg_is_complete(&scan));
        assert!(jpeg_is_complete(&[&scan[..], &[0xFF, 0xD9]].concat()));
        // Trailing bytes after the end marker are allowed.
        assert!(jpeg_is_complete(&[&scan[..], &[0xFF, 0xD9, 7, 7]].concat()));
        // A thumbnail's end marker before the main scan does not count.
        assert!(!jpeg_is_complete(
            &[&[0xFF, 0xD8, 0xFF, 0xD9][..], &scan[2..]].concat()
        ));
    }

    #[test]
    fn random_resized_crops_stay_inside_and_respect_the_ratio_bounds() {
        let mut rng = StdRng::seed_from_u64(3);
        for (w, h) in [(500, 375), (64, 64), (1000, 40), (40, 1000), (1, 1)] {
            for _ in 0..200 {
                let [left, top, cw, ch] = random_resized_crop(w, h, &mut rng);
                assert!(cw >= 1 && ch >= 1 && left + cw <= w && top + ch <= h);
            }
        }
        // A very wide image falls back to the central crop at ratio 4/3.
        let mut rng = StdRng::seed_from_u64(0);
        let [left, top, cw, ch] = random_resized_crop(1000, 30, &mut rng);
        assert_eq!((cw, ch), (40, 30));
        assert_eq!((left, top), (480, 0));
    }
}
