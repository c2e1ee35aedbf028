//! PyTorch checkpoints, read with burn-store's reader (zip and legacy serialization).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use burn::module::{Module, ParamId};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, TensorData};
use burn_store::pytorch::PytorchReader;
use burn_store::pytorch::lazy_data::LazyDataSource;
use burn_store::pytorch::pickle_reader::{
    Object, PickleError, read_pickle, read_pickle_with_data, skip_pickle,
};
use burn_store::pytorch::reader::PickleValue;
use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot, PyTorchToBurnAdapter, TensorSnapshot};

use super::files::{apply_checked, check_names_and_shapes};
use super::zip_crc::{self, ZipFault};
use super::{Architecture, Model};
use crate::error::{Error, Result};

/// Dictionaries that training scripts wrap a state dict in; the paper's uses `state_dict`.
const WRAPPERS: [&str; 3] = ["state_dict", "model_state_dict", "model"];

/// Prefixes that wrappers of the network add to every key, stripped in this order:
/// `1.` from the paper's `Sequential(NormalizeLayer, net)`, `module.` from `DataParallel`.
const PREFIXES: [&str; 2] = ["1.", "module."];

/// A PyTorch checkpoint or state dict, opened and indexed but not yet loaded into a model.
///
/// Reads what `torch.save` writes, in both serialization formats (the zip format of
/// PyTorch >= 1.6 and the legacy format the paper's 2019 models were saved in):
/// - the paper's training checkpoints `{'epoch', 'arch', 'state_dict', 'optimizer'}`, whose
///   keys start with `1.` (CIFAR: `Sequential(NormalizeLayer, net)`) or `1.module.`
///   (ImageNet, where the net was wrapped in `DataParallel`);
/// - plain state dicts, such as torchvision's ResNet-50 weights (no prefix).
///
/// Wrapper prefixes are stripped, BatchNorm's `num_batches_tracked` counters and the
/// optimizer state are ignored, and tensors are converted to `f32`.
///
/// # Example
/// ```no_run
/// use burn::backend::NdArray;
/// use randomized_smoothing::models::{ImageClassifier, PytorchCheckpoint};
///
/// let checkpoint = PytorchCheckpoint::open("models/cifar10/resnet110/noise_0.25/checkpoint.pth.tar")?;
/// assert_eq!(checkpoint.arch(), Some("cifar_resnet110"));
/// let model = checkpoint.model::<NdArray>(&Default::default())?;
/// assert_eq!(model.num_classes(), 10);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub struct PytorchCheckpoint {
    path: PathBuf,
    arch: Option<String>,
    epoch: Option<i64>,
    /// What was stripped from every key: wrapper dictionary and module prefixes.
    prefix: String,
    /// Tensors by their key without the prefix, in PyTorch's naming.
    tensors: BTreeMap<String, TensorSnapshot>,
}

impl std::fmt::Debug for PytorchCheckpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PytorchCheckpoint")
            .field("path", &self.path)
            .field("arch", &self.arch)
            .field("epoch", &self.epoch)
            .field("prefix", &self.prefix)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl PytorchCheckpoint {
    /// Opens a checkpoint and indexes its tensors; tensor data is read when loaded.
    ///
    /// # Errors
    /// [`Error::UnreadableCheckpoint`] if the file is missing, is not a PyTorch file
    /// (or is a whole pickled model rather than a state dict), is truncated, or holds no
    /// tensors.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::{Error, models::PytorchCheckpoint};
    ///
    /// let err = PytorchCheckpoint::open("no/such/checkpoint.pth.tar").unwrap_err();
    /// assert!(matches!(err, Error::UnreadableCheckpoint { .. }));
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let unreadable = |reason: String| Error::UnreadableCheckpoint {
            path: path.display().to_string(),
            reason,
        };
        // The reader does not distinguish a missing file from a malformed one; say which.
        let mut file = File::open(path).map_err(|e| unreadable(e.to_string()))?;
        // Nor does it check the zip format's checksums: verify them before reading.
        let mut inflated = 0;
        if zip_crc::is_zip(&mut file).map_err(|e| unreadable(e.to_string()))? {
            inflated = zip_crc::verify(&mut file)
                .map_err(|fault| match fault {
                    ZipFault::Malformed(reason) => unreadable(reason),
                    ZipFault::Checksum {
                        entry,
                        expected,
                        actual,
                    } => Error::CorruptedCheckpoint {
                        path: path.display().to_string(),
                        entry,
                        expected,
                        actual,
                    },
                })?
                .inflated;
        }
        let reader = PytorchReader::new(path).map_err(|e| unreadable(e.to_string()))?;
        let legacy = reader.metadata().is_legacy_format();
        let mut all: BTreeMap<String, TensorSnapshot> = reader.into_tensors().into_iter().collect();

        let mut prefix = String::new();
        if let Some(wrapper) = WRAPPERS
            .iter()
            .find(|w| all.keys().any(|k| k.starts_with(&format!("{w}."))))
        {
            prefix = format!("{wrapper}.");
            all = strip(all, &prefix);
        }
        for p in PREFIXES {
            if !all.is_empty() && all.keys().all(|k| k.starts_with(p)) {
                prefix.push_str(p);
                all = strip(all, p);
            }
        }
        all.retain(|k, _| !k.ends_with("num_batches_tracked"));
        if all.is_empty() {
            return Err(unreadable("no tensors found".into()));
        }
        // burn-store sizes a tensor's buffer by the shape its pickle declares: no tensor can
        // be larger than the file (or, zipped, its declared inflated bytes), so a damaged
        // or lying shape is refused here rather than allocated.
        let room = file
            .metadata()
            .map_err(|e| unreadable(e.to_string()))?
            .len()
            + inflated;
        if let Some((key, bytes)) = all
            .iter()
            .map(|(k, t)| {
                let elements = t
                    .shape
                    .as_slice()
                    .iter()
                    .try_fold(1u64, |n, &d| n.checked_mul(d as u64));
                let bytes = elements.and_then(|n| n.checked_mul(t.dtype.size() as u64));
                (k, bytes)
            })
            .find(|(_, bytes)| bytes.is_none_or(|b| b > room))
        {
            return Err(unreadable(format!(
                "tensor {key} declares {} bytes, more than the file can hold",
                bytes.map_or_else(|| "over 2^64".into(), |b| b.to_string())
            )));
        }

        let (arch, epoch) = if legacy {
            inspect_legacy(path).map_err(unreadable)?
        } else {
            let field = |key: &str| PytorchReader::read_pickle_data(path, Some(key)).ok();
            let arch = match field("arch") {
                Some(PickleValue::String(s)) => Some(s),
                _ => None,
            };
            let epoch = match field("epoch") {
                Some(PickleValue::Int(e)) => Some(e),
                _ => None,
            };
            (arch, epoch)
        };
        Ok(Self {
            path: path.to_path_buf(),
            arch,
            epoch,
            prefix,
            tensors: all,
        })
    }

    /// The checkpoint's `arch` field, if it has one (the paper's checkpoints do).
    pub fn arch(&self) -> Option<&str> {
        self.arch.as_deref()
    }

    /// The checkpoint's `epoch` field, if it has one.
    pub fn epoch(&self) -> Option<i64> {
        self.epoch
    }

    /// What was stripped from every key, e.g. `"state_dict.1.module."` for the paper's
    /// ImageNet checkpoints, `""` for a plain torchvision state dict.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Keys of the network's tensors without the prefix (`conv1.weight`,
    /// `layer1.0.downsample.0.weight`, ...), sorted, with their shapes.
    ///
    /// # Example
    /// ```no_run
    /// let c = randomized_smoothing::models::PytorchCheckpoint::open("checkpoint.pth.tar")?;
    /// for (key, shape) in c.tensors() {
    ///     println!("{key}: {shape:?}");
    /// }
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn tensors(&self) -> impl Iterator<Item = (&str, Vec<usize>)> {
        self.tensors
            .iter()
            .map(|(k, t)| (k.as_str(), t.shape.to_vec()))
    }

    /// The architecture named by the `arch` field.
    ///
    /// # Errors
    /// [`Error::MissingArchitecture`] if the field is missing; [`Error::UnknownArchitecture`]
    /// if it names an architecture the
    /// crate does not build.
    ///
    /// # Example
    /// ```no_run
    /// use randomized_smoothing::models::{Architecture, PytorchCheckpoint};
    /// let c = PytorchCheckpoint::open("checkpoint.pth.tar")?;
    /// assert_eq!(c.architecture()?, Architecture::ResNet50);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn architecture(&self) -> Result<Architecture> {
        match &self.arch {
            Some(a) => a.parse(),
            None => Err(Error::MissingArchitecture {
                path: self.path.display().to_string(),
            }),
        }
    }

    /// Builds the model the checkpoint's `arch` names, with as many classes as its `fc`
    /// layer has outputs, and loads the weights into it.
    ///
    /// # Errors
    /// As [`architecture`](Self::architecture) and [`load_into`](Self::load_into).
    ///
    /// # Example
    /// ```no_run
    /// use burn::backend::NdArray;
    /// use randomized_smoothing::models::PytorchCheckpoint;
    ///
    /// let model = PytorchCheckpoint::open("checkpoint.pth.tar")?.model::<NdArray>(&Default::default())?;
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn model<B: Backend>(&self, device: &B::Device) -> Result<Model<B>> {
        let arch = self.architecture()?;
        let classes = self
            .tensors
            .get("fc.weight")
            .map(|t| t.shape[0])
            .unwrap_or_else(|| arch.default_classes());
        self.load_into(arch.init(classes, device)?)
    }

    /// Loads the checkpoint's weights into `model`, whose parameters must correspond one to
    /// one, by name and shape, to the checkpoint's tensors.
    ///
    /// Names are matched after PyTorch's conventions are translated: BatchNorm's
    /// `weight`/`bias` are Burn's `gamma`/`beta`, linear weights are transposed, and a
    /// shortcut's `downsample.0` / `downsample.1` are the crate's `downsample.conv` /
    /// `downsample.bn`.
    ///
    /// # Errors
    /// [`Error::CheckpointKeys`] listing every missing and every unexpected key;
    /// [`Error::CheckpointShape`] naming the first key whose shape differs, with both shapes;
    /// [`Error::UnreadableCheckpoint`] if tensor data cannot be read (a truncated file).
    ///
    /// # Example
    /// ```no_run
    /// use burn::backend::NdArray;
    /// use randomized_smoothing::models::{PytorchCheckpoint, ResNetConfig};
    ///
    /// // torchvision's ResNet-50 weights: a plain state dict, no `arch` field.
    /// let net = ResNetConfig::new().init::<NdArray>(&Default::default())?;
    /// let net = PytorchCheckpoint::open("resnet50-0676ba61.pth")?.load_into(net)?;
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn load_into<B: Backend, M: Module<B>>(&self, model: M) -> Result<M> {
        let expected = pytorch_keys(&model);
        let found: BTreeMap<String, Vec<usize>> = self
            .tensors
            .iter()
            .map(|(k, t)| (k.clone(), t.shape.to_vec()))
            .collect();
        check_names_and_shapes(&expected, &found, &self.prefix)?;

        let snapshots = self
            .tensors
            .iter()
            .map(|(key, t)| as_f32_snapshot(t, &to_burn_name(key)))
            .collect();
        apply_checked(
            model,
            snapshots,
            Box::new(PyTorchToBurnAdapter),
            true,
            &self.path,
        )
    }
}

/// The state-dict keys, with their shapes, that a PyTorch checkpoint must hold (after its
/// prefix) to load into `model`: what `model.state_dict()` would list in PyTorch, less
/// BatchNorm's `num_batches_tracked` counters.
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use randomized_smoothing::models::{pytorch_keys, CifarResNetConfig};
///
/// let net = CifarResNetConfig::new(20).init::<NdArray>(&Default::default())?;
/// let keys = pytorch_keys(&net);
/// assert_eq!(keys["fc.weight"], vec![10, 64]);
/// assert_eq!(keys["layer2.0.downsample.0.weight"], vec![32, 16, 1, 1]);
/// assert_eq!(keys["layer3.2.bn2.running_var"], vec![64]);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn pytorch_keys<B: Backend, M: Module<B>>(model: &M) -> BTreeMap<String, Vec<usize>> {
    model
        .collect(None, Some(Box::new(BurnToPyTorchAdapter)), true)
        .into_iter()
        .map(|s| (to_pytorch_name(&s.full_path()), s.shape.to_vec()))
        .collect()
}

/// `arch` and `epoch` of a legacy-format file, after checking that its tensor data is all
/// there.
///
/// burn-store's `read_pickle_data` reads only the zip format's fields, and its legacy
/// reader fills storages that lie past the end of the file with zeros instead of failing:
/// a truncated 2019 checkpoint would load as a silently wrong model. So walk the format here
/// with burn-store's own unpickler: magic number, protocol version and system info, the main
/// object, then the list of storage keys in file order, then the storages. Parsing the main
/// object with a data source records each storage's extent; reading the last storage then
/// fails exactly when the file is cut short.
fn inspect_legacy(path: &Path) -> std::result::Result<(Option<String>, Option<i64>), String> {
    let io = |e: std::io::Error| e.to_string();
    let pickle = |e: PickleError| e.to_string();
    let mut reader = BufReader::new(File::open(path).map_err(io)?);
    for _ in 0..3 {
        read_pickle(&mut reader).map_err(pickle)?;
    }
    let main = reader.stream_position().map_err(io)?;
    skip_pickle(&mut reader).map_err(pickle)?;
    let keys: Vec<String> = match read_pickle(&mut reader).map_err(pickle)? {
        Object::List(keys) => keys
            .into_iter()
            .filter_map(|k| match k {
                Object::String(s) => Some(s),
                _ => None,
            })
            .collect(),
        _ => return Err("no storage key list after the main object".into()),
    };
    let data_start = reader.stream_position().map_err(io)?;
    let file_size = reader.seek(SeekFrom::End(0)).map_err(io)?;
    let source =
        LazyDataSource::from_legacy_multi_storage(path, data_start, file_size - data_start);
    if let LazyDataSource::LegacyMultiStorage(s) = &source {
        s.lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .set_storage_keys(keys.clone());
    }
    let source = Arc::new(source);
    reader.seek(SeekFrom::Start(main)).map_err(io)?;
    let object = read_pickle_with_data(&mut reader, source.clone()).map_err(pickle)?;
    if let Some(last) = keys.last() {
        source.read(last).map_err(|e| {
            format!(
                "storage {last}, the last in the file, cannot be read ({e}): the file is truncated"
            )
        })?;
    }
    let Object::Dict(fields) = object else {
        return Ok((None, None));
    };
    let arch = match fields.get("arch") {
        Some(Object::String(s)) => Some(s.clone()),
        _ => None,
    };
    let epoch = match fields.get("epoch") {
        Some(Object::Int(e)) => Some(*e),
        _ => None,
    };
    Ok((arch, epoch))
}

fn strip(
    tensors: BTreeMap<String, TensorSnapshot>,
    prefix: &str,
) -> BTreeMap<String, TensorSnapshot> {
    tensors
        .into_iter()
        .filter_map(|(k, t)| k.strip_prefix(prefix).map(|s| (s.to_string(), t)))
        .collect()
}

/// PyTorch's `downsample.0` / `downsample.1` (a `Sequential`) to the crate's field names.
fn to_burn_name(key: &str) -> String {
    key.replace(".downsample.0.", ".downsample.conv.")
        .replace(".downsample.1.", ".downsample.bn.")
}

fn to_pytorch_name(path: &str) -> String {
    path.replace(".downsample.conv.", ".downsample.0.")
        .replace(".downsample.bn.", ".downsample.1.")
}

/// A snapshot under the crate's name whose data is converted to `f32` when read, so that
/// half- or double-precision checkpoints load into `f32` models.
fn as_f32_snapshot(t: &TensorSnapshot, name: &str) -> TensorSnapshot {
    let source = t.clone_data_fn();
    TensorSnapshot::from_closure(
        Rc::new(move || source().map(|d: TensorData| d.convert::<f32>())),
        DType::F32,
        t.shape.clone(),
        name.split('.').map(str::to_string).collect(),
        Vec::new(),
        ParamId::new(),
    )
}
