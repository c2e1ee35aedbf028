//! The crate's own model files (Burn's burnpack format), and the name-and-shape check that
//! every loader runs before touching a model.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn_store::{
    BurnpackStore, IdentityAdapter, ModuleAdapter, ModuleSnapshot, ModuleStore, TensorSnapshot,
};

use crate::error::{Error, Result};

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
    let path = path.as_ref();
    let mut store = BurnpackStore::from_file(path)
        .overwrite(true)
        .auto_extension(false);
    model
        .save_into(&mut store)
        .map_err(|e| Error::io_other(path, e))
}

/// Loads parameters saved by [`save_model`] into `model`, which must have the same
/// architecture.
///
/// # Errors
/// [`Error::UnreadableCheckpoint`] if the file is missing, not a burnpack file, or
/// truncated; [`Error::CheckpointKeys`] and [`Error::CheckpointShape`] if it was saved from
/// a different architecture.
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
    let unreadable = |reason: String| Error::UnreadableCheckpoint {
        path: path.display().to_string(),
        reason,
    };
    std::fs::metadata(path).map_err(|e| unreadable(e.to_string()))?;
    let mut store = BurnpackStore::from_file(path).auto_extension(false);
    let snapshots: Vec<TensorSnapshot> = store
        .get_all_snapshots()
        .map_err(|e| unreadable(e.to_string()))?
        .values()
        .cloned()
        .collect();
    let expected: BTreeMap<String, Vec<usize>> = model
        // Burnpack files keep enum variants in their paths (`CifarResNet.conv1.weight`).
        .collect(None, None, false)
        .into_iter()
        .map(|s| (s.full_path(), s.shape.to_vec()))
        .collect();
    let found: BTreeMap<String, Vec<usize>> = snapshots
        .iter()
        .map(|s| (s.full_path(), s.shape.to_vec()))
        .collect();
    check_names_and_shapes(&expected, &found, "")?;
    apply_checked(model, snapshots, Box::new(IdentityAdapter), false, path)
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
/// (tensor data that cannot be read) into a typed error.
pub(super) fn apply_checked<B: Backend, M: Module<B>>(
    mut model: M,
    snapshots: Vec<TensorSnapshot>,
    adapter: Box<dyn ModuleAdapter>,
    skip_enum_variants: bool,
    path: &Path,
) -> Result<M> {
    let result = model.apply(snapshots, None, Some(adapter), skip_enum_variants);
    if let Some(e) = result.errors.first() {
        return Err(Error::UnreadableCheckpoint {
            path: path.display().to_string(),
            reason: e.to_string(),
        });
    }
    if let Some((key, _)) = result.missing.first() {
        return Err(Error::CheckpointKeys {
            missing: vec![key.clone()],
            unexpected: Vec::new(),
        });
    }
    Ok(model)
}
