//! The crate's own model files (Burn's burnpack format), and the name-and-shape check that
//! every loader runs before touching a model.
//!
//! A file the crate writes carries, in the burnpack metadata, a SHA-256 of its tensors
//! (names, types, shapes and bytes) and of its model card, if any; loading recomputes it, so
//! a changed byte anywhere in the weights is refused rather than loaded (burnpack itself has
//! no checksum). A model card ([`ModelCard`]) is the model's full configuration plus how it
//! was trained, so that [`load_model_with_card`] rebuilds the model from the file alone.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use burn::config::Config;
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn_store::{
    BurnpackStore, IdentityAdapter, ModuleAdapter, ModuleSnapshot, ModuleStore, TensorSnapshot,
};

use super::{Dncnn, DncnnConfig, ImageClassifier, Model, ModelConfig};
use crate::data::FolderTransform;
use crate::digest::Hasher;
use crate::error::{Error, IoOperation, Result};

/// Burnpack metadata key of the model card (its JSON).
const CARD_KEY: &str = "randomized_smoothing.card";
/// Burnpack metadata key of a denoiser's card (its JSON), in place of a model card.
const DENOISER_CARD_KEY: &str = "randomized_smoothing.denoiser_card";
/// Burnpack metadata key of the SHA-256 of the card and the tensors.
const DIGEST_KEY: &str = "randomized_smoothing.sha256";

/// What a model file says about its model: the configuration that rebuilds it and, for a
/// model trained by [`crate::workflow::train`], how it was trained.
///
/// # Example
/// ```
/// use randomized_smoothing::models::{ModelCard, ModelConfig, SmallCnnConfig, TrainingSummary};
///
/// let card = ModelCard::new(ModelConfig::SmallCnn(SmallCnnConfig::new([1, 8, 8], 10)))
///     .with_training(Some(TrainingSummary::new("digits".into(), 0.25, 20, 0)));
/// assert_eq!(card.training.as_ref().map(|t| t.noise.as_str()), Some("gaussian"));
/// ```
#[derive(Config, Debug)]
pub struct ModelCard {
    /// The model's configuration: architecture, width, classes, input shape, normalization.
    pub model: ModelConfig,
    /// How the weights were trained, when the crate trained them.
    pub training: Option<TrainingSummary>,
    /// How images are read into the model, for a model trained on an image folder: the
    /// size, resize, channels and training crops, which certification must repeat.
    pub input: Option<FolderTransform>,
}

/// How a model was trained: the data, the augmentation noise and the objective.
#[derive(Config, Debug)]
pub struct TrainingSummary {
    /// The data set's name, as the `smoothing` program takes it.
    pub dataset: String,
    /// Standard deviation of the augmentation noise.
    pub sigma: f64,
    /// Epochs trained.
    pub epochs: usize,
    /// The training seed.
    pub seed: u64,
    /// The augmentation noise's family.
    #[config(default = "String::from(\"gaussian\")")]
    pub noise: String,
    /// The training objective.
    #[config(default = "String::from(\"cross-entropy on noisy inputs\")")]
    pub objective: String,
}

/// What a denoiser file says about its denoiser: the configuration that rebuilds it and, for
/// one trained by [`crate::workflow::denoise`], how it was trained.
///
/// # Example
/// ```
/// use randomized_smoothing::models::{DenoiserCard, DncnnConfig};
///
/// let card = DenoiserCard::new(DncnnConfig::new([1, 28, 28]));
/// assert!(card.training.is_none());
/// ```
#[derive(Config, Debug)]
pub struct DenoiserCard {
    /// The denoiser's configuration.
    pub denoiser: DncnnConfig,
    /// How the weights were trained, when the crate trained them.
    pub training: Option<DenoiserTraining>,
}

/// How a denoiser was trained: the data, the noise, the objective and the classifier.
#[derive(Config, Debug)]
pub struct DenoiserTraining {
    /// The data set's name, as the `smoothing` program takes it.
    pub dataset: String,
    /// Standard deviation of the Gaussian noise it removes.
    pub sigma: f64,
    /// Epochs trained.
    pub epochs: usize,
    /// The training seed.
    pub seed: u64,
    /// The training objective, with its settings.
    pub objective: String,
    /// SHA-256 of the classifier's file that the training evaluated (and, for the stability
    /// objective, trained against).
    pub classifier_sha256: String,
}

/// Saves `model`'s parameters and buffers to `path` in Burn's burnpack format, replacing
/// any file there.
///
/// # Errors
/// [`Error::Io`] if the file cannot be written.
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use randomized_smoothing::models::{load_model, save_model, SmallCnnConfig};
///
/// let device = Default::default();
/// let config = SmallCnnConfig::new([1, 8, 8], 10);
/// let path = std::env::temp_dir().join("rs-doc-small-cnn.bpk");
/// save_model(&config.init::<NdArray>(&device)?, &path)?;
/// let model = load_model(config.init::<NdArray>(&device)?, &path)?;
/// # std::fs::remove_file(&path).ok();
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn save_model<B: Backend, M: Module<B>>(model: &M, path: impl AsRef<Path>) -> Result<()> {
    save(model, None, path.as_ref())
}

/// Saves one of the crate's image models with its card, so that [`load_model_with_card`]
/// (and `smoothing certify --model FILE`) rebuilds it from the file alone.
///
/// # Errors
/// [`Error::InvalidParameter`] if the card describes another input shape or number of
/// classes than the model has; [`Error::Io`] if the file cannot be written.
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use randomized_smoothing::models::{
///     ImageClassifier, ModelCard, ModelConfig, SmallCnnConfig, load_model_with_card, save_model_with_card,
/// };
///
/// let device = Default::default();
/// let config = ModelConfig::SmallCnn(SmallCnnConfig::new([1, 8, 8], 10).with_filters(8));
/// let path = std::env::temp_dir().join("rs-doc-card.bpk");
/// save_model_with_card(&config.init::<NdArray>(&device)?, &ModelCard::new(config), &path)?;
/// let (model, card) = load_model_with_card::<NdArray>(&path, &device)?;
/// assert_eq!((card.model.arch(), model.input_shape()), ("small_cnn".to_string(), &[1, 8, 8][..]));
/// # std::fs::remove_file(&path).ok();
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn save_model_with_card<B: Backend>(
    model: &Model<B>,
    card: &ModelCard,
    path: impl AsRef<Path>,
) -> Result<()> {
    let (shape, classes) = (card.model.input_shape(), card.model.classes());
    if model.input_shape() != shape || model.num_classes() != classes {
        return Err(Error::InvalidParameter {
            name: "card",
            reason: format!(
                "it describes {shape:?} inputs and {classes} classes, the model has {:?} and {}",
                model.input_shape(),
                model.num_classes()
            ),
        });
    }
    let json = serde_json::to_string(card).map_err(|e| Error::InvalidParameter {
        name: "card",
        reason: e.to_string(),
    })?;
    save(model, Some((CARD_KEY, json)), path.as_ref())
}

/// Saves a denoiser with its card, so that [`load_denoiser`] (and `smoothing certify
/// --denoiser FILE`) rebuilds it from the file alone.
///
/// # Errors
/// [`Error::InvalidParameter`] if the card describes other images than the denoiser takes;
/// [`Error::Io`] if the file cannot be written.
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use randomized_smoothing::models::{DenoiserCard, DncnnConfig, load_denoiser, load_model_with_card, save_denoiser};
///
/// let device = Default::default();
/// let config = DncnnConfig::new([1, 8, 8]).with_width(4);
/// let path = std::env::temp_dir().join("rs-doc-denoiser.bpk");
/// save_denoiser(&config.init::<NdArray>(&device)?, &DenoiserCard::new(config), &path)?;
/// let (_denoiser, card) = load_denoiser::<NdArray>(&path, &device)?;
/// assert_eq!(card.denoiser.width, 4);
/// // A denoiser is not a classifier.
/// assert!(load_model_with_card::<NdArray>(&path, &device).is_err());
/// # std::fs::remove_file(&path).ok();
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn save_denoiser<B: Backend>(
    denoiser: &Dncnn<B>,
    card: &DenoiserCard,
    path: impl AsRef<Path>,
) -> Result<()> {
    use super::Denoiser;
    if denoiser.image_shape() != card.denoiser.image_shape {
        return Err(Error::InvalidParameter {
            name: "card",
            reason: format!(
                "it describes {:?} images, the denoiser takes {:?}",
                card.denoiser.image_shape,
                denoiser.image_shape()
            ),
        });
    }
    let json = serde_json::to_string(card).map_err(|e| Error::InvalidParameter {
        name: "card",
        reason: e.to_string(),
    })?;
    save(denoiser, Some((DENOISER_CARD_KEY, json)), path.as_ref())
}

/// Rebuilds a denoiser from a file written by [`save_denoiser`]: its card's configuration,
/// with the file's weights.
///
/// # Errors
/// [`Error::UnreadableCheckpoint`] for a file without a denoiser card (a classifier's file,
/// say), and the errors of [`load_model`].
pub fn load_denoiser<B: Backend>(
    path: impl AsRef<Path>,
    device: &B::Device,
) -> Result<(Dncnn<B>, DenoiserCard)> {
    let path = path.as_ref();
    let mut file = VerifiedFile::read(path)?;
    let card = file
        .denoiser
        .take()
        .ok_or_else(|| Error::UnreadableCheckpoint {
            path: path.display().to_string(),
            reason: if file.card.is_some() {
                "it holds a classifier, not a denoiser".into()
            } else {
                "it has no denoiser card (save_denoiser writes one)".into()
            },
        })?;
    let denoiser = file.load_into(card.denoiser.init(device)?, path)?;
    Ok((denoiser, card))
}

fn save<B: Backend, M: Module<B>>(
    model: &M,
    card: Option<(&str, String)>,
    path: &Path,
) -> Result<()> {
    let json = card.as_ref().map(|(_, json)| json.as_str());
    let digest = digest_of(json, &model.collect(None, None, false), path)?;
    let mut store = BurnpackStore::from_file(path)
        .overwrite(true)
        .auto_extension(false)
        .metadata(DIGEST_KEY, digest);
    if let Some((key, card)) = card {
        store = store.metadata(key, card);
    }
    model
        .save_into(&mut store)
        .map_err(|e| Error::io_other(IoOperation::Write, path, e))
}

/// The card of a model file written by [`save_model_with_card`], or `None` for a burnpack
/// file without one (written by [`save_model`], or by an older version of the crate). The
/// file's digest is checked first, so a card is never read from a damaged file.
///
/// # Errors
/// [`Error::UnreadableCheckpoint`] if the file is missing, not a burnpack file, truncated, or
/// its card is not a [`ModelCard`]; [`Error::CorruptedFile`] if its digest does not match.
pub fn read_model_card(path: impl AsRef<Path>) -> Result<Option<ModelCard>> {
    Ok(VerifiedFile::read(path.as_ref())?.card)
}

/// The card of a denoiser file written by [`save_denoiser`], or `None` for a burnpack file
/// without one (a classifier's, say). The file's digest is checked first.
///
/// # Errors
/// Those of [`read_model_card`].
pub fn read_denoiser_card(path: impl AsRef<Path>) -> Result<Option<DenoiserCard>> {
    Ok(VerifiedFile::read(path.as_ref())?.denoiser)
}

/// A burnpack file whose digest, if it records one, matched: its card (a model's or a
/// denoiser's) and tensors.
struct VerifiedFile {
    card: Option<ModelCard>,
    denoiser: Option<DenoiserCard>,
    snapshots: Vec<TensorSnapshot>,
}

impl VerifiedFile {
    fn read(path: &Path) -> Result<Self> {
        let unreadable = |reason: String| Error::UnreadableCheckpoint {
            path: path.display().to_string(),
            reason,
        };
        // Our own header check first: it bounds every size before burn-store allocates.
        let metadata = burnpack_metadata(path)?;
        let mut store = BurnpackStore::from_file(path).auto_extension(false);
        let snapshots: Vec<TensorSnapshot> = store
            .get_all_snapshots()
            .map_err(|e| unreadable(e.to_string()))?
            .values()
            .cloned()
            .collect();
        let card_json = match (metadata.get(CARD_KEY), metadata.get(DENOISER_CARD_KEY)) {
            (Some(_), Some(_)) => {
                return Err(unreadable(
                    "it has both a model card and a denoiser card".into(),
                ));
            }
            (model, denoiser) => model.or(denoiser).map(String::as_str),
        };
        match metadata.get(DIGEST_KEY) {
            Some(recorded) => {
                let actual = digest_of(card_json, &snapshots, path)?;
                if actual != *recorded {
                    return Err(Error::CorruptedFile {
                        path: path.to_path_buf(),
                        part: "tensors and model card".into(),
                        expected: recorded.clone(),
                        actual,
                    });
                }
            }
            // The crate writes a card only with a digest: one without was not written by it
            // whole, and a card is what sizes the model built from it.
            None if card_json.is_some() => {
                return Err(unreadable("it has a model card but no digest".into()));
            }
            None => {}
        }
        fn parse<T: burn::serde::de::DeserializeOwned>(
            json: Option<&String>,
            unreadable: impl Fn(String) -> Error,
        ) -> Result<Option<T>> {
            json.map(|json| serde_json::from_str(json).map_err(|e| unreadable(e.to_string())))
                .transpose()
        }
        Ok(Self {
            card: parse(metadata.get(CARD_KEY), |e| {
                unreadable(format!("its model card: {e}"))
            })?,
            denoiser: parse(metadata.get(DENOISER_CARD_KEY), |e| {
                unreadable(format!("its denoiser card: {e}"))
            })?,
            snapshots,
        })
    }

    /// Loads the tensors into `model` after checking their names and shapes.
    fn load_into<B: Backend, M: Module<B>>(self, model: M, path: &Path) -> Result<M> {
        let expected: BTreeMap<String, Vec<usize>> = model
            // Burnpack files keep enum variants in their paths (`CifarResNet.conv1.weight`).
            .collect(None, None, false)
            .into_iter()
            .map(|s| (s.full_path(), s.shape.to_vec()))
            .collect();
        let found: BTreeMap<String, Vec<usize>> = self
            .snapshots
            .iter()
            .map(|s| (s.full_path(), s.shape.to_vec()))
            .collect();
        check_names_and_shapes(&expected, &found, "")?;
        apply_checked(
            model,
            self.snapshots,
            Box::new(IdentityAdapter),
            false,
            path,
        )
    }
}

/// Rebuilds a model from a file written by [`save_model_with_card`]: its card's configuration,
/// with the file's weights.
///
/// # Errors
/// [`Error::UnreadableCheckpoint`] for a file without a card (then build the model yourself
/// and use [`load_model`]), and the errors of [`read_model_card`] and [`load_model`].
pub fn load_model_with_card<B: Backend>(
    path: impl AsRef<Path>,
    device: &B::Device,
) -> Result<(Model<B>, ModelCard)> {
    let path = path.as_ref();
    let mut file = VerifiedFile::read(path)?;
    let card = file
        .card
        .take()
        .ok_or_else(|| Error::UnreadableCheckpoint {
            path: path.display().to_string(),
            reason: if file.denoiser.is_some() {
                "it holds a denoiser, not a classifier (load_denoiser reads it)".into()
            } else {
                "it has no model card (saved by save_model or an older version): build the \
                 model and use load_model"
                    .into()
            },
        })?;
    let model = file.load_into(card.model.init(device)?, path)?;
    Ok((model, card))
}

/// Loads parameters saved by [`save_model`] into `model`, which must have the same
/// architecture.
///
/// # Errors
/// [`Error::UnreadableCheckpoint`] if the file is missing, not a burnpack file, or
/// truncated; [`Error::CheckpointKeys`] and [`Error::CheckpointShape`] if it was saved from
/// a different architecture; [`Error::CorruptedFile`] if its tensors or card no longer match
/// the digest the crate wrote (files without one, written by other programs, load
/// unverified).
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use randomized_smoothing::{Error, models::{load_model, SmallCnnConfig}};
///
/// let model = SmallCnnConfig::new([1, 8, 8], 10).init::<NdArray>(&Default::default())?;
/// let err = load_model(model, "no/such/model.bpk").unwrap_err();
/// assert!(matches!(err, Error::UnreadableCheckpoint { .. }));
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn load_model<B: Backend, M: Module<B>>(model: M, path: impl AsRef<Path>) -> Result<M> {
    let path = path.as_ref();
    VerifiedFile::read(path)?.load_into(model, path)
}

/// The SHA-256 of a module's parameters and buffers (names, types, shapes and bytes), as a
/// model file records it without a card: what identifies a set of weights in a run's
/// settings.
///
/// # Errors
/// [`Error::UnreadableCheckpoint`] if a tensor cannot be read back.
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use randomized_smoothing::models::{SmallCnnConfig, weights_digest};
///
/// let device = Default::default();
/// let a = SmallCnnConfig::new([1, 8, 8], 10).init::<NdArray>(&device)?;
/// let b = SmallCnnConfig::new([1, 8, 8], 10).init::<NdArray>(&device)?;
/// assert_eq!(weights_digest(&a)?, weights_digest(&a.clone())?);
/// assert_ne!(weights_digest(&a)?, weights_digest(&b)?);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn weights_digest<B: Backend, M: Module<B>>(module: &M) -> Result<String> {
    digest_of(
        None,
        &module.collect(None, None, false),
        Path::new("(model in memory)"),
    )
}

/// The SHA-256 that a model file records: the card's JSON, then each tensor in name order
/// (name, type, shape, bytes), every piece length-prefixed.
fn digest_of(card: Option<&str>, snapshots: &[TensorSnapshot], path: &Path) -> Result<String> {
    let mut h = Hasher::default();
    h.field(card.unwrap_or("").as_bytes());
    let mut sorted: Vec<(String, &TensorSnapshot)> =
        snapshots.iter().map(|s| (s.full_path(), s)).collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, snapshot) in sorted {
        let data = snapshot
            .to_data()
            .map_err(|e| Error::UnreadableCheckpoint {
                path: path.display().to_string(),
                reason: format!("tensor {name}: {e:?}"),
            })?;
        h.field(name.as_bytes());
        h.field(format!("{:?}", data.dtype).as_bytes());
        let shape: Vec<u8> = data
            .shape
            .iter()
            .flat_map(|d| (*d as u64).to_le_bytes())
            .collect();
        h.field(&shape);
        h.field(data.as_bytes());
    }
    Ok(h.hex())
}

/// The string metadata of a burnpack file (burn-store does not expose it): the header
/// (magic, format version, metadata size), then the CBOR metadata, whose `metadata` map holds
/// the strings. The metadata size is checked against the file's length before anything is
/// allocated by it.
fn burnpack_metadata(path: &Path) -> Result<BTreeMap<String, String>> {
    const MAGIC: u32 = 0x4255_524E;
    const HEADER: usize = 10;
    let unreadable = |reason: String| Error::UnreadableCheckpoint {
        path: path.display().to_string(),
        reason,
    };
    let mut file = File::open(path).map_err(|e| unreadable(e.to_string()))?;
    let length = file
        .metadata()
        .map_err(|e| unreadable(e.to_string()))?
        .len();
    let mut header = [0u8; HEADER];
    file.read_exact(&mut header)
        .map_err(|_| unreadable("shorter than a burnpack header".into()))?;
    let magic = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let version = u16::from_le_bytes([header[4], header[5]]);
    let size = u32::from_le_bytes([header[6], header[7], header[8], header[9]]) as u64;
    if magic != MAGIC {
        return Err(unreadable(
            "not a burnpack file (wrong magic number)".into(),
        ));
    }
    if version != 1 {
        return Err(unreadable(format!(
            "burnpack format version {version}, expected 1"
        )));
    }
    if HEADER as u64 + size > length {
        return Err(unreadable(format!(
            "truncated: {size} bytes of metadata announced, {length} bytes in the file"
        )));
    }
    let mut bytes = vec![0u8; size as usize];
    file.read_exact(&mut bytes)
        .map_err(|e| unreadable(e.to_string()))?;
    let value: ciborium::Value =
        ciborium::de::from_reader_with_recursion_limit(bytes.as_slice(), 128)
            .map_err(|e| unreadable(format!("metadata: {e}")))?;
    let text = |v: &ciborium::Value| v.as_text().map(str::to_string);
    let mut out = BTreeMap::new();
    let entries = value.as_map().map(Vec::as_slice).unwrap_or_default();
    for (key, strings) in entries {
        if text(key).as_deref() != Some("metadata") {
            continue;
        }
        for (k, v) in strings
            .as_map()
            .ok_or_else(|| unreadable("metadata is not a map".into()))?
        {
            match (text(k), text(v)) {
                (Some(k), Some(v)) => out.insert(k, v),
                _ => return Err(unreadable("metadata holds a value that is not text".into())),
            };
        }
    }
    Ok(out)
}

/// Copies the parameters and buffers of `from` into `into`, a model of the same
/// architecture on any backend or device.
///
/// This is how a model trained on one backend is certified on another: the CPU build
/// trains on Flex, whose gradients are fast, and certifies on NdArray, whose forward pass
/// is (see `docs/benchmarks.md`).
///
/// # Errors
/// [`Error::CheckpointKeys`] or [`Error::CheckpointShape`] if the architectures differ.
///
/// # Example
/// ```
/// use burn::backend::{Flex, NdArray};
/// use burn::tensor::Tensor;
/// use randomized_smoothing::models::{ImageClassifier, SmallCnnConfig, transfer};
///
/// let config = SmallCnnConfig::new([1, 8, 8], 10);
/// let trained = config.init::<Flex>(&Default::default())?;
/// let copy = transfer(&trained, config.init::<NdArray>(&Default::default())?)?;
/// let x = [[[[0.5_f32; 8]; 8]]];
/// let a = trained.forward(Tensor::from_data(x, &Default::default())).into_data();
/// let b = copy.forward(Tensor::from_data(x, &Default::default())).into_data();
/// a.assert_approx_eq::<f32>(&b, burn::tensor::Tolerance::default());
/// assert!(transfer(&trained, SmallCnnConfig::new([1, 8, 8], 3).init::<NdArray>(&Default::default())?).is_err());
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn transfer<B1, B2, M1, M2>(from: &M1, into: M2) -> Result<M2>
where
    B1: Backend,
    B2: Backend,
    M1: Module<B1>,
    M2: Module<B2>,
{
    let snapshots = from.collect(None, None, false);
    let shapes = |s: &[TensorSnapshot]| -> BTreeMap<String, Vec<usize>> {
        s.iter()
            .map(|s| (s.full_path(), s.shape.to_vec()))
            .collect()
    };
    check_names_and_shapes(
        &shapes(&into.collect(None, None, false)),
        &shapes(&snapshots),
        "",
    )?;
    apply_checked(
        into,
        snapshots,
        Box::new(IdentityAdapter),
        false,
        Path::new("(model in memory)"),
    )
}

/// Compares a model's tensors with a file's, both by name (in the file's naming) and shape.
/// `prefix` is prepended to names in the error, so they read as the file's own keys.
pub(super) fn check_names_and_shapes(
    expected: &BTreeMap<String, Vec<usize>>,
    found: &BTreeMap<String, Vec<usize>>,
    prefix: &str,
) -> Result<()> {
    let missing: Vec<String> = expected
        .keys()
        .filter(|k| !found.contains_key(*k))
        .map(|k| format!("{prefix}{k}"))
        .collect();
    let unexpected: Vec<String> = found
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .map(|k| format!("{prefix}{k}"))
        .collect();
    if !missing.is_empty() || !unexpected.is_empty() {
        return Err(Error::CheckpointKeys {
            missing,
            unexpected,
        });
    }
    for (key, shape) in expected {
        if found[key] != *shape {
            return Err(Error::CheckpointShape {
                key: format!("{prefix}{key}"),
                expected: shape.clone(),
                got: found[key].clone(),
            });
        }
    }
    Ok(())
}

/// Applies snapshots whose names and shapes were checked, turning any remaining failure
/// (tensor data that cannot be read, a NaN or infinite weight) into a typed error.
pub(super) fn apply_checked<B: Backend, M: Module<B>>(
    mut model: M,
    snapshots: Vec<TensorSnapshot>,
    adapter: Box<dyn ModuleAdapter>,
    skip_enum_variants: bool,
    path: &Path,
) -> Result<M> {
    let unreadable = |reason: String| Error::UnreadableCheckpoint {
        path: path.display().to_string(),
        reason,
    };
    // A trained network has finite weights; a NaN or infinity is a damaged file (a legacy
    // PyTorch file has no checksum) and would poison every logit it reaches.
    for snapshot in &snapshots {
        let data = snapshot
            .to_data()
            .map_err(|e| unreadable(format!("tensor {}: {e:?}", snapshot.full_path())))?;
        if data.dtype.is_float() && !data.iter::<f32>().all(f32::is_finite) {
            return Err(unreadable(format!(
                "tensor {} holds NaN or infinite values",
                snapshot.full_path()
            )));
        }
    }
    let result = model.apply(snapshots, None, Some(adapter), skip_enum_variants);
    if let Some(e) = result.errors.first() {
        return Err(unreadable(e.to_string()));
    }
    if let Some((key, _)) = result.missing.first() {
        return Err(Error::CheckpointKeys {
            missing: vec![key.clone()],
            unexpected: Vec::new(),
        });
    }
    Ok(model)
}
