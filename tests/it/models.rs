//! Model architectures and loaders against PyTorch: golden checkpoints and logits written
//! by `tests/reference/gen_model_fixtures.py`, in both serialization formats.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use burn_store::pytorch::PytorchReader;
use randomized_smoothing::models::{
    Architecture, CifarResNetConfig, ImageClassifier, Model, PytorchCheckpoint, ResNetConfig,
    load_model, pytorch_keys, save_model,
};
use randomized_smoothing::{
    BaseClassifier, Certification, CertifyConfig, Error, Gaussian, SmoothedClassifier,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/models")
        .join(name)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rs-models-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Inputs and PyTorch's logits from an `*.io.pt` file.
fn golden<B: Backend>(name: &str, device: &B::Device) -> (Tensor<B, 4>, Vec<f32>, usize) {
    let reader = PytorchReader::new(fixture(name)).unwrap();
    let get = |key: &str| reader.get(key).unwrap().to_data().unwrap();
    let inputs: TensorData = get("inputs");
    let logits = get("logits");
    let classes = logits.shape[1];
    (
        Tensor::from_data(inputs.convert::<f32>(), device),
        logits.to_vec::<f32>().unwrap(),
        classes,
    )
}

/// How far our logits may be from PyTorch's, relative to max(1, |logit|). The CPU backends
/// compute in f32 and agree to 1e-4. CubeCL's matrix kernels (CUDA and the other GPU
/// backends) stage f32 operands as TF32 on tensor cores where the device has them (its
/// `cubek-matmul` chooses so), whose 10-bit mantissa rounds each product to about 5e-4:
/// ResNet-20 measured 5.0e-4 on an H100. A wrong weight moves logits by more than 1e-2
/// (see the fresh-weights check), so either bound still catches a mistranslated model.
fn tolerance<B: Backend>(device: &B::Device) -> f32 {
    if B::name(device).contains("cubecl") {
        5e-3
    } else {
        1e-4
    }
}

/// Largest difference between our logits and PyTorch's, relative to max(1, |logit|).
fn max_rel_diff<B: Backend>(
    model: &impl ImageClassifier<B>,
    name: &str,
    device: &B::Device,
) -> f32 {
    let (inputs, expected, classes) = golden::<B>(name, device);
    let got = model.forward(inputs);
    assert_eq!(got.dims()[1], classes);
    let got = got.into_data().convert::<f32>().to_vec::<f32>().unwrap();
    assert_eq!(got.len(), expected.len());
    got.iter()
        .zip(&expected)
        .map(|(g, e)| (g - e).abs() / e.abs().max(1.0))
        .fold(0.0, f32::max)
}

fn reduced_resnet50<B: Backend>(device: &B::Device) -> randomized_smoothing::models::ResNet<B> {
    ResNetConfig::new()
        .with_width(4)
        .with_classes(10)
        .with_image_size(64)
        .init(device)
        .unwrap()
}

fn golden_cifar_resnet20_zip<B: Backend>(device: &B::Device) {
    check_cifar_resnet20::<B>("cifar_resnet20.zip.pth.tar", device);
}

fn golden_cifar_resnet20_legacy<B: Backend>(device: &B::Device) {
    check_cifar_resnet20::<B>("cifar_resnet20.legacy.pth.tar", device);
}

fn check_cifar_resnet20<B: Backend>(file: &str, device: &B::Device) {
    let checkpoint = PytorchCheckpoint::open(fixture(file)).unwrap();
    assert_eq!(checkpoint.arch(), Some("cifar_resnet20"));
    assert_eq!(checkpoint.epoch(), Some(90));
    assert_eq!(checkpoint.prefix(), "state_dict.1.");
    let model: Model<B> = checkpoint.model(device).unwrap();
    assert!(matches!(model, Model::CifarResNet(_)));
    let tol = tolerance::<B>(device);
    let diff = max_rel_diff(&model, "cifar_resnet20.io.pt", device);
    eprintln!("{file}: logits within {diff:e} of PyTorch's");
    assert!(diff < tol, "{file}: logits differ from PyTorch's by {diff}");
    let diff = max_rel_diff(&model.fold_batch_norm(), "cifar_resnet20.io.pt", device);
    eprintln!("{file}, folded: logits within {diff:e} of PyTorch's");
    assert!(
        diff < tol,
        "{file}, batch norm folded: logits differ by {diff}"
    );
    // A model with fresh weights is far off: the comparison can fail.
    let fresh = Architecture::CIFAR_RESNET20.init::<B>(10, device).unwrap();
    assert!(max_rel_diff(&fresh, "cifar_resnet20.io.pt", device) > 1e-2);
    assert!(max_rel_diff(&fresh.fold_batch_norm(), "cifar_resnet20.io.pt", device) > 1e-2);
}

fn golden_resnet50_zip<B: Backend>(device: &B::Device) {
    check_resnet50::<B>("resnet50_w4.zip.pth.tar", "state_dict.1.module.", device);
}

fn golden_resnet50_legacy<B: Backend>(device: &B::Device) {
    check_resnet50::<B>("resnet50_w4.legacy.pth.tar", "state_dict.1.module.", device);
}

fn golden_resnet50_plain_state_dict<B: Backend>(device: &B::Device) {
    check_resnet50::<B>("resnet50_w4.plain.pth", "", device);
}

fn check_resnet50<B: Backend>(file: &str, prefix: &str, device: &B::Device) {
    let checkpoint = PytorchCheckpoint::open(fixture(file)).unwrap();
    assert_eq!(checkpoint.prefix(), prefix);
    let model = checkpoint.load_into(reduced_resnet50::<B>(device)).unwrap();
    let tol = tolerance::<B>(device);
    let diff = max_rel_diff(&model, "resnet50_w4.io.pt", device);
    eprintln!("{file}: logits within {diff:e} of PyTorch's");
    assert!(diff < tol, "{file}: logits differ from PyTorch's by {diff}");
    let diff = max_rel_diff(&model.fold_batch_norm(), "resnet50_w4.io.pt", device);
    eprintln!("{file}, folded: logits within {diff:e} of PyTorch's");
    assert!(
        diff < tol,
        "{file}, batch norm folded: logits differ by {diff}"
    );
}

crate::common::inference_backend_tests!(
    golden_cifar_resnet20_zip,
    golden_cifar_resnet20_legacy,
    golden_resnet50_zip,
    golden_resnet50_legacy,
    golden_resnet50_plain_state_dict,
);

type B = burn::backend::NdArray;

/// The reduced ResNet-50 checkpoint says `arch: resnet50`, so building from the checkpoint
/// makes the full-width network, whose shapes the file does not have.
#[test]
fn arch_field_builds_full_resnet50_and_reports_shape_mismatch() {
    let checkpoint = PytorchCheckpoint::open(fixture("resnet50_w4.legacy.pth.tar")).unwrap();
    assert_eq!(checkpoint.architecture().unwrap(), Architecture::ResNet50);
    let err = checkpoint.model::<B>(&Default::default()).unwrap_err();
    assert_eq!(
        err,
        Error::CheckpointShape {
            key: "state_dict.1.module.bn1.bias".into(),
            expected: vec![64],
            got: vec![4],
        }
    );
}

#[test]
fn plain_state_dict_has_no_arch() {
    let checkpoint = PytorchCheckpoint::open(fixture("resnet50_w4.plain.pth")).unwrap();
    assert_eq!(checkpoint.arch(), None);
    let err = checkpoint.architecture().unwrap_err();
    assert!(matches!(err, Error::MissingArchitecture { .. }), "{err}");
    assert!(err.to_string().contains("give it (--arch"), "{err}");
}

/// A checkpoint of another architecture names the mismatch in a few lines, not thousands of
/// characters of keys; the error keeps every key.
#[test]
fn a_wrong_architecture_is_summarized() {
    let checkpoint = PytorchCheckpoint::open(fixture("cifar_resnet20.zip.pth.tar")).unwrap();
    let model = "cifar_resnet110"
        .parse::<randomized_smoothing::models::Architecture>()
        .unwrap()
        .init::<B>(10, &Default::default())
        .unwrap();
    let err = checkpoint.load_into(model).unwrap_err();
    let Error::CheckpointKeys { missing, .. } = &err else {
        panic!("{err}")
    };
    assert!(missing.len() > 100, "{}", missing.len());
    let text = err.to_string();
    assert!(text.len() < 500, "{} characters: {text}", text.len());
    assert!(
        text.contains(&format!("{} missing keys", missing.len())),
        "{text}"
    );
    assert!(text.contains("more"), "{text}");
}

/// The full-size architectures have exactly the keys and shapes of the paper's models, as
/// PyTorch lists them (`keys.tsv`, from the same script).
#[test]
fn full_size_architectures_match_pytorch_state_dicts() {
    let text = std::fs::read_to_string(fixture("keys.tsv")).unwrap();
    let mut manifest: BTreeMap<&str, BTreeMap<String, Vec<usize>>> = BTreeMap::new();
    for line in text.lines().skip(1) {
        let [arch, key, shape]: [&str; 3] =
            line.split('\t').collect::<Vec<_>>().try_into().unwrap();
        if key.ends_with("num_batches_tracked") {
            continue;
        }
        let prefix = if arch == "resnet50" {
            "1.module."
        } else {
            "1."
        };
        let shape = shape.split('x').map(|d| d.parse().unwrap()).collect();
        manifest
            .entry(arch)
            .or_default()
            .insert(key.strip_prefix(prefix).unwrap().to_string(), shape);
    }
    assert_eq!(manifest.len(), 2);
    let device = Default::default();
    for (arch, keys) in manifest {
        let model = arch
            .parse::<Architecture>()
            .unwrap()
            .init::<B>(if arch == "resnet50" { 1000 } else { 10 }, &device)
            .unwrap();
        let ours = pytorch_keys(&model);
        assert_eq!(ours, keys, "{arch}");
    }
}

#[test]
fn missing_file_is_an_error() {
    let err = PytorchCheckpoint::open(fixture("no-such-file.pth")).unwrap_err();
    assert!(
        matches!(err, Error::UnreadableCheckpoint { ref path, .. } if path.ends_with("no-such-file.pth")),
        "{err}"
    );
}

#[test]
fn non_pytorch_file_is_an_error() {
    let path = scratch("not-a-checkpoint.pth");
    std::fs::write(&path, "idx\tlabel\tpredict\n0\t3\t3\n").unwrap();
    let err = PytorchCheckpoint::open(&path).unwrap_err();
    assert!(matches!(err, Error::UnreadableCheckpoint { .. }), "{err}");
}

/// A file cut short, in either format, fails to open or to load, with a typed error.
#[test]
fn truncated_files_are_errors() {
    for name in [
        "cifar_resnet20.zip.pth.tar",
        "cifar_resnet20.legacy.pth.tar",
    ] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        for keep in [bytes.len() / 2, bytes.len() - 100] {
            let path = scratch(&format!("truncated-{keep}-{name}"));
            std::fs::write(&path, &bytes[..keep]).unwrap();
            let result = PytorchCheckpoint::open(&path)
                .and_then(|c| c.model::<B>(&Default::default()).map(|_| ()));
            assert!(
                matches!(result, Err(Error::UnreadableCheckpoint { .. })),
                "{name} cut at {keep}: {result:?}"
            );
        }
    }
}

/// A legacy file has no checksum, so a damaged weight loads; one that became NaN or infinite
/// is refused instead of poisoning every logit. The last four bytes of a legacy file are the
/// last value of its last storage.
#[test]
fn a_nan_weight_is_refused() {
    let mut bytes = std::fs::read(fixture("cifar_resnet20.legacy.pth.tar")).unwrap();
    let at = bytes.len() - 4;
    for (value, name) in [(f32::NAN, "nan"), (f32::INFINITY, "inf")] {
        bytes[at..].copy_from_slice(&value.to_le_bytes());
        let path = scratch(&format!("{name}-weight.pth.tar"));
        std::fs::write(&path, &bytes).unwrap();
        let result = PytorchCheckpoint::open(&path)
            .and_then(|c| c.model::<B>(&Default::default()).map(|_| ()));
        assert!(
            matches!(&result, Err(Error::UnreadableCheckpoint { reason, .. })
                if reason.contains("holds NaN or infinite values")),
            "{result:?}"
        );
    }
}

/// The case of the trust issue: 1,000 bytes flipped inside one tensor of a zip checkpoint
/// loaded without a word (logits off by 0.085); its CRC-32 now refuses it, naming the entry.
#[test]
fn flipped_bytes_in_a_zip_tensor_are_refused() {
    let mut bytes = std::fs::read(fixture("cifar_resnet20.zip.pth.tar")).unwrap();
    // The largest entry lies between the two local headers furthest apart.
    let headers: Vec<usize> = bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"PK\x03\x04")
        .map(|(i, _)| i)
        .collect();
    let (start, end) = headers
        .windows(2)
        .map(|w| (w[0], w[1]))
        .max_by_key(|(a, b)| b - a)
        .unwrap();
    assert!(end - start > 10_000, "{start}..{end}");
    let middle = (start + end) / 2;
    for b in &mut bytes[middle..middle + 1_000] {
        *b ^= 0xff;
    }
    let path = scratch("flipped.zip.pth.tar");
    std::fs::write(&path, &bytes).unwrap();
    match PytorchCheckpoint::open(&path) {
        Err(Error::CorruptedCheckpoint {
            entry,
            expected,
            actual,
            ..
        }) => {
            assert!(entry.contains("/data/"), "{entry}");
            assert_ne!(expected, actual);
        }
        other => panic!("{other:?}"),
    }
    // The intact file still opens.
    assert!(PytorchCheckpoint::open(fixture("cifar_resnet20.zip.pth.tar")).is_ok());
}

#[test]
fn unknown_arch_is_an_error() {
    for name in [
        "resnet18",
        "cifar_resnet21",
        "cifar_resnet2",
        "cifar_resnet",
    ] {
        assert_eq!(
            name.parse::<Architecture>(),
            Err(Error::UnknownArchitecture(name.into()))
        );
    }
}

/// ResNet-20's weights into ResNet-26 (one block more per stage) and ResNet-14 (one fewer):
/// every missing and unexpected key is listed by its name in the file.
#[test]
fn missing_and_unexpected_keys_are_listed() {
    let checkpoint = PytorchCheckpoint::open(fixture("cifar_resnet20.zip.pth.tar")).unwrap();
    let device = Default::default();
    let deeper = CifarResNetConfig::new(26).init::<B>(&device).unwrap();
    match checkpoint.load_into(deeper).unwrap_err() {
        Error::CheckpointKeys {
            missing,
            unexpected,
        } => {
            assert!(unexpected.is_empty());
            // 3 stages x 1 block x (2 convs + 2 BNs x 4 tensors) = 30 keys.
            assert_eq!(missing.len(), 30, "{missing:?}");
            assert!(missing.contains(&"state_dict.1.layer1.3.conv1.weight".to_string()));
            assert!(missing.contains(&"state_dict.1.layer3.3.bn2.running_var".to_string()));
        }
        other => panic!("{other:?}"),
    }
    let shallower = CifarResNetConfig::new(14).init::<B>(&device).unwrap();
    match checkpoint.load_into(shallower).unwrap_err() {
        Error::CheckpointKeys {
            missing,
            unexpected,
        } => {
            assert!(missing.is_empty());
            assert_eq!(unexpected.len(), 30, "{unexpected:?}");
            assert!(unexpected.contains(&"state_dict.1.layer2.2.bn1.weight".to_string()));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn wrong_shape_names_the_key_and_both_shapes() {
    let checkpoint = PytorchCheckpoint::open(fixture("cifar_resnet20.legacy.pth.tar")).unwrap();
    let hundred = CifarResNetConfig::new(20)
        .with_classes(100)
        .init::<B>(&Default::default())
        .unwrap();
    let err = checkpoint.load_into(hundred).unwrap_err();
    assert_eq!(
        err,
        Error::CheckpointShape {
            key: "state_dict.1.fc.bias".into(),
            expected: vec![100],
            got: vec![10],
        }
    );
    assert!(err.to_string().contains("state_dict.1.fc.bias"));
}

/// The crate's own format: a loaded model saved and read back gives identical logits; a
/// file from another architecture or a truncated one gives typed errors.
#[test]
fn burn_format_round_trip() {
    let device = Default::default();
    let model: Model<B> = PytorchCheckpoint::open(fixture("cifar_resnet20.zip.pth.tar"))
        .unwrap()
        .model(&device)
        .unwrap();
    let path = scratch("resnet20.bpk");
    save_model(&model, &path).unwrap();
    let fresh = Architecture::CIFAR_RESNET20.init::<B>(10, &device).unwrap();
    let loaded = load_model(fresh, &path).unwrap();
    let (inputs, _, _) = golden::<B>("cifar_resnet20.io.pt", &device);
    let a = model
        .forward(inputs.clone())
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    let b = loaded.forward(inputs).into_data().to_vec::<f32>().unwrap();
    assert_eq!(a, b);

    let deeper = Architecture::CifarResNet { depth: 32 }
        .init::<B>(10, &device)
        .unwrap();
    assert!(matches!(
        load_model(deeper, &path),
        Err(Error::CheckpointKeys { .. })
    ));

    let bytes = std::fs::read(&path).unwrap();
    let cut = scratch("resnet20-cut.bpk");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let fresh = Architecture::CIFAR_RESNET20.init::<B>(10, &device).unwrap();
    let result = load_model(fresh, &cut);
    assert!(
        matches!(result, Err(Error::UnreadableCheckpoint { .. })),
        "{result:?}"
    );
}

/// A loaded checkpoint is a base classifier: it certifies through `SmoothedClassifier`.
#[test]
fn loaded_checkpoint_certifies() {
    let device = Default::default();
    let model: Model<B> = PytorchCheckpoint::open(fixture("cifar_resnet20.legacy.pth.tar"))
        .unwrap()
        .model(&device)
        .unwrap();
    assert_eq!(BaseClassifier::<4>::input_shape(&model), &[3, 32, 32]);
    let (inputs, _, _) = golden::<B>("cifar_resnet20.io.pt", &device);
    let x: Tensor<B, 3> = inputs.narrow(0, 0, 1).reshape([3, 32, 32]);
    let smoothed = SmoothedClassifier::new(model, Gaussian::new(0.12).unwrap());
    let config = CertifyConfig::default()
        .n0(20)
        .n(200)
        .alpha(0.01)
        .batch_size(100)
        .check()
        .unwrap();
    let result = smoothed.certify(x, &config, 0).unwrap();
    let estimate = match result {
        Certification::Certified { estimate, .. } | Certification::Abstain { estimate, .. } => {
            estimate
        }
    };
    assert_eq!(estimate.n, 200);
    assert!(estimate.count <= 200);
}
