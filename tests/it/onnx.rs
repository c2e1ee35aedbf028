//! ONNX files exported from PyTorch (`tests/reference/gen_onnx_fixtures.py`, both exporters)
//! give PyTorch's logits through `models::OnnxModel`, on every inference backend; files the
//! crate does not run are refused at load with a typed error.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use randomized_smoothing::models::OnnxModel;
use randomized_smoothing::{BaseClassifier, Error, Gaussian, SmoothedClassifier};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/onnx")
        .join(name)
}

/// The inputs and PyTorch's logits of a fixture: shapes from `STEM.json`, values as f32.
fn io(stem: &str) -> (Vec<usize>, Vec<f32>, Vec<f32>) {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture(&format!("{stem}.json"))).unwrap())
            .unwrap();
    let shape = json["input_shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let floats = |part: &str| -> Vec<f32> {
        std::fs::read(fixture(&format!("{stem}.{part}.f32")))
            .unwrap()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    };
    (shape, floats("inputs"), floats("logits"))
}

fn floats(name: &str) -> Vec<f32> {
    std::fs::read(fixture(name))
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// Largest difference between the model's logits and those of PyTorch and of ONNX Runtime
/// (on the same file), relative to max(1, |logit|).
fn max_rel_diff<B: Backend, const D: usize>(file: &str, stem: &str, device: &B::Device) -> f32 {
    let model = OnnxModel::<B, D>::from_file(fixture(file), device).unwrap();
    let (shape, inputs, torch) = io(stem);
    let ort = floats(&file.replace(".onnx", ".ort.f32"));
    assert_eq!(ort.len(), torch.len());
    let expected: Vec<f32> = torch.iter().chain(&ort).copied().collect();
    assert_eq!(model.input_shape(), &shape[1..]);
    let x = Tensor::<B, D>::from_data(TensorData::new(inputs, shape.clone()), device);
    let got = model.forward(x);
    assert_eq!(got.dims(), [shape[0], torch.len() / shape[0]]);
    let got = got.into_data().convert::<f32>().to_vec::<f32>().unwrap();
    got.iter()
        .cycle()
        .zip(&expected)
        .map(|(g, e)| (g - e).abs() / e.abs().max(1.0))
        .fold(0.0, f32::max)
}

/// As the checkpoint loaders' tests: the CPU backends agree with PyTorch to 1e-4; CubeCL's
/// matrix kernels stage f32 as TF32 (see tests/it/models.rs).
fn tolerance<B: Backend>(device: &B::Device) -> f32 {
    if B::name(device).contains("cubecl") {
        5e-3
    } else {
        1e-4
    }
}

fn paper_cifar_resnet20_legacy_export<B: Backend>(device: &B::Device) {
    let gap = max_rel_diff::<B, 4>("cifar_resnet20.legacy.onnx", "cifar_resnet20", device);
    assert!(gap < tolerance::<B>(device), "{gap}");
}

fn torchvision_resnet50_dynamo_export<B: Backend>(device: &B::Device) {
    let gap = max_rel_diff::<B, 4>("resnet50_w4.dynamo.onnx", "resnet50_w4", device);
    assert!(gap < tolerance::<B>(device), "{gap}");
}

fn inverted_residual_every_export<B: Backend>(device: &B::Device) {
    for file in [
        "mobile.legacy.onnx",
        "mobile.dynamo.onnx",
        "mobile.unfolded.onnx",
    ] {
        let gap = max_rel_diff::<B, 4>(file, "mobile", device);
        assert!(gap < tolerance::<B>(device), "{file}: {gap}");
    }
}

fn mlp_with_shape_arithmetic<B: Backend>(device: &B::Device) {
    let gap = max_rel_diff::<B, 3>("mlp.legacy.onnx", "mlp", device);
    assert!(gap < tolerance::<B>(device), "{gap}");
}

fn vision_transformer_every_export<B: Backend>(device: &B::Device) {
    for file in ["vit.legacy.onnx", "vit.dynamo.onnx", "vit.external.onnx"] {
        let gap = max_rel_diff::<B, 4>(file, "vit", device);
        assert!(gap < tolerance::<B>(device), "{file}: {gap}");
    }
}

/// A convolution read twice, once through an Identity (`Add(conv, Relu(Identity(conv)))`):
/// the ReLU stays a step of its own, since fusing it would change the Add's other operand.
/// (onnx-ir removes the Identity, so this checks the readers of one name; the compiler also
/// counts them over every name of a slot, for an Identity that reaches it.)
fn a_convolution_read_under_two_names_keeps_its_relu_apart<B: Backend>(device: &B::Device) {
    let gap = max_rel_diff::<B, 4>("conv_read_twice.onnx", "conv_read_twice", device);
    assert!(gap < tolerance::<B>(device), "{gap}");
}

crate::common::inference_backend_tests!(
    a_convolution_read_under_two_names_keeps_its_relu_apart,
    vision_transformer_every_export,
    paper_cifar_resnet20_legacy_export,
    torchvision_resnet50_dynamo_export,
    inverted_residual_every_export,
    mlp_with_shape_arithmetic
);

type B = burn::backend::NdArray;

/// The ONNX model is a base classifier like any other: certification runs on it, and gives
/// the counts of the same network built from the same file's logits.
#[test]
fn an_onnx_model_is_certified_like_any_base_classifier() {
    let device = Default::default();
    let model = OnnxModel::<B, 4>::from_file(fixture("mobile.legacy.onnx"), &device).unwrap();
    let (shape, inputs, _) = io("mobile");
    let per_image: usize = shape[1..].iter().product();
    let x = Tensor::<B, 1>::from_data(
        TensorData::new(inputs[..per_image].to_vec(), [per_image]),
        &device,
    )
    .reshape([3, 16, 16]);
    let smoothed = SmoothedClassifier::new(&model, Gaussian::new(0.25).unwrap());
    let counts = smoothed.sample_counts(x.clone(), 200, 50, 7).unwrap();
    assert_eq!(counts.iter().sum::<u64>(), 200);
    assert_eq!(counts.len(), 5);
    // Reproducible from the seed.
    assert_eq!(counts, smoothed.sample_counts(x, 200, 50, 7).unwrap());
}

fn load_error(bytes: &[u8]) -> Error {
    OnnxModel::<B, 4>::from_bytes(bytes, &Default::default()).unwrap_err()
}

#[test]
fn a_file_that_is_not_onnx_is_malformed() {
    assert!(matches!(
        load_error(b"not a protobuf at all"),
        Error::MalformedOnnx { .. }
    ));
    assert!(matches!(
        load_error(&[]),
        Error::MalformedOnnx { .. } | Error::UnsupportedOnnx { .. }
    ));
}

#[test]
fn a_truncated_file_is_refused_without_a_panic() {
    let bytes = std::fs::read(fixture("mobile.legacy.onnx")).unwrap();
    for cut in [10, bytes.len() / 3, bytes.len() / 2, bytes.len() - 7] {
        let err = load_error(&bytes[..cut]);
        assert!(
            matches!(
                err,
                Error::MalformedOnnx { .. } | Error::UnsupportedOnnx { .. }
            ),
            "cut at {cut}: {err}"
        );
    }
}

#[test]
fn a_model_of_another_rank_is_refused() {
    let err = OnnxModel::<B, 2>::from_file(fixture("mobile.legacy.onnx"), &Default::default())
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedOnnx { reason, .. } if reason.contains("rank 4")),
        "{err}"
    );
}

#[test]
fn a_missing_file_is_an_io_error() {
    let err =
        OnnxModel::<B, 4>::from_file(fixture("absent.onnx"), &Default::default()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
}

#[test]
fn an_unsupported_operator_is_refused_at_load_naming_its_node() {
    let err = OnnxModel::<B, 4>::from_file(fixture("softplus.legacy.onnx"), &Default::default())
        .unwrap_err();
    let Error::UnsupportedOnnx { node, reason, .. } = &err else {
        panic!("{err}");
    };
    assert!(
        node.as_deref()
            .is_some_and(|n| n.to_lowercase().contains("softplus")),
        "{err}"
    );
    assert!(
        reason.contains("Softplus") || reason.contains("softplus"),
        "{err}"
    );
}

#[test]
fn a_fixed_batch_is_refused_with_the_export_flag_to_use() {
    let err = OnnxModel::<B, 4>::from_file(fixture("fixed_batch.legacy.onnx"), &Default::default())
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedOnnx { reason, .. } if reason.contains("fixed batch of 2") && reason.contains("dynamic_axes")),
        "{err}"
    );
}

#[test]
fn the_digits_cnn_gives_pytorchs_logits() {
    let gap = max_rel_diff::<B, 4>("digits_cnn.legacy.onnx", "digits_cnn", &Default::default());
    assert!(gap < 1e-4, "{gap}");
}

/// The paper's CIFAR ResNet-20 in its checkpoint layout and the same weights exported to
/// ONNX certify the same images with the same rows: same class, same radius (the two forward
/// passes differ by rounding only, and the noise is the seed's).
#[cfg(feature = "pytorch")]
#[test]
fn the_paper_checkpoint_and_its_onnx_export_certify_alike() {
    use randomized_smoothing::CertifyConfig;
    use randomized_smoothing::models::PytorchCheckpoint;
    type F = burn::backend::Flex;
    let device = Default::default();
    let native = PytorchCheckpoint::open(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/models/cifar_resnet20.zip.pth.tar"),
    )
    .unwrap()
    .model::<F>(&device)
    .unwrap()
    .fold_batch_norm();
    let onnx =
        OnnxModel::<F, 4>::from_file(fixture("cifar_resnet20.legacy.onnx"), &device).unwrap();
    let config = CertifyConfig::default()
        .n0(50)
        .n(400)
        .alpha(0.01)
        .batch_size(150)
        .check()
        .unwrap();
    let (shape, inputs, _) = io("cifar_resnet20");
    let per_image: usize = shape[1..].iter().product();
    for (i, image) in inputs.chunks_exact(per_image).enumerate() {
        let x = Tensor::<F, 3>::from_data(TensorData::new(image.to_vec(), [3, 32, 32]), &device);
        let seed = 100 + i as u64;
        let a = SmoothedClassifier::new(&native, Gaussian::new(0.25).unwrap())
            .certify(x.clone(), &config, seed)
            .unwrap();
        let b = SmoothedClassifier::new(&onnx, Gaussian::new(0.25).unwrap())
            .certify(x, &config, seed)
            .unwrap();
        assert_eq!(a, b, "image {i}");
    }
}
