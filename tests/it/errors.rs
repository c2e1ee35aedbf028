//! Bad input is a typed error, never a panic or a silent wrong radius.

use burn::backend::NdArray;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{Int, Tensor};
use randomized_smoothing::certificate::accuracy::{
    AccuracyBound, Outcome, approximate_certified_accuracy, certified_accuracy_lower_bound,
};
use randomized_smoothing::certificate::{
    prior::li_radius,
    radius::{gaussian_radius, gaussian_radius_from_counts},
};
use randomized_smoothing::stats::binomial::{
    binomial_cdf, binomial_test_two_sided, clopper_pearson_lower, clopper_pearson_upper,
};
use randomized_smoothing::stats::normal::normal_quantile;
use randomized_smoothing::{
    BaseClassifier, CertifyConfig, Error, Gaussian, LinearClassifier, LogitsClassifier,
    MAX_SAMPLES, PredictConfig, SmoothedClassifier,
};

type B = NdArray;

fn linear() -> SmoothedClassifier<LinearClassifier<B>> {
    let base = LinearClassifier::new(&[1.0, 2.0], 0.0, &Default::default()).unwrap();
    SmoothedClassifier::new(base, Gaussian::new(0.5).unwrap())
}

#[test]
fn sigma_must_be_finite_and_positive() {
    for s in [0.0, -0.1, f64::NAN, f64::INFINITY] {
        assert!(
            matches!(Gaussian::new(s), Err(Error::InvalidSigma(_))),
            "{s}"
        );
        assert!(
            matches!(gaussian_radius(s, 0.9, 0.1), Err(Error::InvalidSigma(_))),
            "{s}"
        );
    }
}

#[test]
fn alpha_must_lie_in_open_unit_interval() {
    for a in [0.0, 1.0, -0.5, 2.0, f64::NAN] {
        let certify = CertifyConfig::default().alpha(a).check();
        assert!(
            matches!(
                certify,
                Err(Error::InvalidProbability { name: "alpha", .. })
            ),
            "{a}"
        );
        let predict = PredictConfig::default().alpha(a).check();
        assert!(
            matches!(
                predict,
                Err(Error::InvalidProbability { name: "alpha", .. })
            ),
            "{a}"
        );
        assert!(matches!(
            clopper_pearson_lower(1, 2, a),
            Err(Error::InvalidProbability { .. })
        ));
        assert!(matches!(
            clopper_pearson_upper(1, 2, a),
            Err(Error::InvalidProbability { .. })
        ));
        assert!(matches!(
            gaussian_radius_from_counts(1.0, 1, 2, a),
            Err(Error::InvalidProbability { .. })
        ));
    }
}

#[test]
fn zero_counts_are_rejected() {
    fn zero<T>(r: Result<T, Error>, what: &'static str) {
        assert_eq!(r.map(|_| ()), Err(Error::ZeroCount(what)));
    }
    zero(CertifyConfig::default().n0(0).check(), "n0");
    zero(CertifyConfig::default().n(0).check(), "n");
    zero(CertifyConfig::default().batch_size(0).check(), "batch_size");
    zero(PredictConfig::default().n(0).check(), "n");
    zero(PredictConfig::default().batch_size(0).check(), "batch_size");
    assert_eq!(
        clopper_pearson_lower(0, 0, 0.1),
        Err(Error::ZeroCount("trials"))
    );
    let x = Tensor::<B, 1>::zeros([2], &Default::default());
    assert_eq!(
        linear().sample_counts(x.clone(), 0, 10, 0),
        Err(Error::ZeroCount("num"))
    );
    assert_eq!(
        linear().sample_counts(x, 10, 0, 0),
        Err(Error::ZeroCount("batch_size"))
    );
}

#[test]
fn sample_sizes_that_can_never_succeed_are_rejected() {
    // alpha^(1/n) <= 1/2: for alpha = 0.001, n = 9 gives 0.464 and n = 10 gives 0.501.
    let err = CertifyConfig::default()
        .n(9)
        .alpha(0.001)
        .check()
        .unwrap_err();
    assert_eq!(
        err,
        Error::SampleSizeTooSmall {
            procedure: "certify",
            n: 9,
            alpha: 0.001,
            min_n: 10
        }
    );
    assert!(CertifyConfig::default().n(10).alpha(0.001).check().is_ok());
    // Two-sided test: p = 2^(1 - n) <= alpha needs n >= 11 at alpha = 0.001.
    let err = PredictConfig::default()
        .n(10)
        .alpha(0.001)
        .check()
        .unwrap_err();
    assert_eq!(
        err,
        Error::SampleSizeTooSmall {
            procedure: "predict",
            n: 10,
            alpha: 0.001,
            min_n: 11
        }
    );
    assert!(PredictConfig::default().n(11).alpha(0.001).check().is_ok());
    let too_many = CertifyConfig::default().n(MAX_SAMPLES + 1).check();
    assert!(matches!(
        too_many,
        Err(Error::InvalidParameter { name: "n", .. })
    ));
}

#[test]
fn non_finite_inputs_are_rejected() {
    let config = CertifyConfig::default().n(100).check().unwrap();
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let x = Tensor::<B, 1>::from_floats([0.5, bad], &Default::default());
        let err = linear().certify(x.clone(), &config, 0).unwrap_err();
        assert!(matches!(err, Error::NonFiniteInput(_)), "{err}");
        let predict = PredictConfig::default().n(100).check().unwrap();
        assert!(matches!(
            linear().predict(x, &predict, 0),
            Err(Error::NonFiniteInput(_))
        ));
    }
}

#[test]
fn wrong_input_shapes_are_rejected() {
    let config = CertifyConfig::default().n(100).check().unwrap();
    let device = Default::default();
    let err = linear()
        .certify(Tensor::<B, 1>::zeros([3], &device), &config, 0)
        .unwrap_err();
    assert_eq!(
        err,
        Error::ShapeMismatch {
            expected: vec![2],
            got: vec![3]
        }
    );
    // A batch of one is not a single input either.
    let err = linear()
        .certify(Tensor::<B, 2>::zeros([1, 2], &device), &config, 0)
        .unwrap_err();
    assert_eq!(
        err,
        Error::ShapeMismatch {
            expected: vec![2],
            got: vec![1, 2]
        }
    );
    let forward = |x: Tensor<B, 4>| x.flatten::<2>(1, 3);
    assert!(matches!(
        LogitsClassifier::new([3, 32], 10, forward),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(matches!(
        LogitsClassifier::new([3, 0, 32], 10, forward),
        Err(Error::InvalidParameter { .. })
    ));
    assert_eq!(
        LogitsClassifier::new([3, 32, 32], 0, forward).map(|_| ()),
        Err(Error::ZeroCount("num_classes"))
    );
}

/// A base classifier that answers a fixed class, or a batch of the wrong length.
struct Broken {
    answer: i64,
    short_by: usize,
}

impl BaseClassifier<2> for Broken {
    type Backend = B;

    fn input_shape(&self) -> &[usize] {
        &[2]
    }
    fn num_classes(&self) -> usize {
        3
    }
    fn classify(&self, inputs: Tensor<B, 2>) -> Tensor<B, 1, Int> {
        let batch = inputs.dims()[0] - self.short_by;
        Tensor::<B, 1, Int>::full([batch], self.answer, &inputs.device())
    }
}

#[test]
fn broken_base_classifiers_are_caught() {
    let config = CertifyConfig::default()
        .n(100)
        .batch_size(30)
        .check()
        .unwrap();
    let x = Tensor::<B, 1>::zeros([2], &Default::default());
    for answer in [3, 7, -1] {
        let g = SmoothedClassifier::new(
            Broken {
                answer,
                short_by: 0,
            },
            Gaussian::new(0.5).unwrap(),
        );
        let err = g.certify(x.clone(), &config, 0).unwrap_err();
        assert_eq!(
            err,
            Error::ClassOutOfRange {
                num_classes: 3,
                out_of_range: 100,
                total: 100
            }
        );
    }
    let g = SmoothedClassifier::new(
        Broken {
            answer: 1,
            short_by: 1,
        },
        Gaussian::new(0.5).unwrap(),
    );
    let err = g.certify(x, &config, 0).unwrap_err();
    assert_eq!(
        err,
        Error::BatchLengthMismatch {
            expected: 30,
            got: 29
        }
    );
}

/// Logits with more columns than the declared classes: the arg-max can fall outside the
/// declared range, and that is reported rather than miscounted.
#[test]
fn logits_wider_than_declared_classes_are_caught() {
    let device = Default::default();
    let conv: Conv2d<B> = Conv2dConfig::new([1, 5], [8, 8]).init(&device);
    let forward = move |x: Tensor<B, 4>| conv.forward(x).flatten::<2>(1, 3);
    let base = LogitsClassifier::new([1, 8, 8], 2, forward).unwrap();
    let g = SmoothedClassifier::new(base, Gaussian::new(1.0).unwrap());
    let counts = g.sample_counts(Tensor::<B, 3>::zeros([1, 8, 8], &device), 500, 100, 0);
    assert!(
        matches!(
            counts,
            Err(Error::ClassOutOfRange {
                num_classes: 2,
                total: 500,
                ..
            })
        ),
        "{counts:?}"
    );
}

#[test]
fn statistics_reject_out_of_domain_arguments() {
    assert_eq!(
        clopper_pearson_lower(5, 4, 0.1),
        Err(Error::SuccessesExceedTrials {
            successes: 5,
            trials: 4
        })
    );
    assert!(matches!(
        binomial_cdf(1, 3, 1.5),
        Err(Error::InvalidProbability { .. })
    ));
    assert!(matches!(
        binomial_test_two_sided(4, 3, 0.5),
        Err(Error::SuccessesExceedTrials { .. })
    ));
    assert_eq!(
        binomial_test_two_sided(0, 0, 0.5),
        Err(Error::ZeroCount("trials"))
    );
    for p in [0.0, 1.0, f64::NAN] {
        assert!(matches!(
            normal_quantile(p),
            Err(Error::InvalidProbability { .. })
        ));
    }
    // p_a must exceed p_b, both in [0, 1], summing to at most 1.
    for (pa, pb) in [
        (0.4, 0.5),
        (0.5, 0.5),
        (1.2, 0.0),
        (0.7, 0.6),
        (f64::NAN, 0.1),
    ] {
        assert!(
            matches!(
                gaussian_radius(1.0, pa, pb),
                Err(Error::InvalidParameter { .. })
            ),
            "{pa} {pb}"
        );
        assert!(
            matches!(li_radius(1.0, pa, pb), Err(Error::InvalidParameter { .. })),
            "{pa} {pb}"
        );
    }
    assert!(matches!(
        approximate_certified_accuracy(&[], &[0.0]),
        Err(Error::ZeroCount(_))
    ));
    let nan = [Outcome {
        correct: true,
        radius: f64::NAN,
    }];
    assert!(matches!(
        approximate_certified_accuracy(&nan, &[0.0]),
        Err(Error::InvalidParameter { .. })
    ));
    let bound =
        |a, m, rho| certified_accuracy_lower_bound(a, m, 0.001, rho, AccuracyBound::Bernstein);
    assert!(matches!(
        bound(1.2, 10, 0.01),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(matches!(bound(0.5, 0, 0.01), Err(Error::ZeroCount(_))));
    assert!(matches!(
        bound(0.5, 10, 1.0),
        Err(Error::InvalidProbability { name: "rho", .. })
    ));
}

#[test]
fn linear_classifier_rejects_degenerate_weights() {
    let device = Default::default();
    assert!(matches!(
        LinearClassifier::<B>::new(&[], 0.0, &device),
        Err(Error::ZeroCount(_))
    ));
    assert!(matches!(
        LinearClassifier::<B>::new(&[0.0], 0.0, &device),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(matches!(
        LinearClassifier::<B>::new(&[f64::NAN], 0.0, &device),
        Err(Error::InvalidParameter { .. })
    ));
    let f = LinearClassifier::<B>::new(&[1.0, 1.0], 0.0, &device).unwrap();
    assert!(matches!(
        f.signed_distance(&[1.0]),
        Err(Error::ShapeMismatch { .. })
    ));
}

/// `Runtime::new(Some(backend), device)` must be refused as [`Error::DeviceUnavailable`] for
/// `device`; returns the message.
#[cfg(any(feature = "cuda", feature = "tch", feature = "vulkan"))]
fn unavailable(
    backend: randomized_smoothing::runtime::BackendKind,
    device: randomized_smoothing::runtime::DeviceKind,
) -> String {
    use randomized_smoothing::runtime::Runtime;
    match Runtime::new(Some(backend), device) {
        Err(e @ Error::DeviceUnavailable { .. }) => {
            let message = e.to_string();
            assert!(
                message.contains(&format!("device {device} is unavailable")),
                "{message}"
            );
            message
        }
        other => panic!("{backend} on {device}: expected DeviceUnavailable, got {other:?}"),
    }
}

// No machine has a hundredth GPU: on one without a driver the error names the driver, on one
// with GPUs it counts them; either way Burn's backend never starts, so nothing panics.
#[cfg(feature = "cuda")]
#[test]
fn an_absent_cuda_device_is_a_typed_error() {
    use randomized_smoothing::runtime::{BackendKind, DeviceKind};
    let message = unavailable(BackendKind::Cuda, DeviceKind::Cuda(99));
    assert!(
        message.contains("no CUDA driver") || message.contains("CUDA device"),
        "{message}"
    );
}

#[cfg(feature = "tch")]
#[test]
fn an_absent_libtorch_cuda_device_is_a_typed_error() {
    use randomized_smoothing::runtime::{BackendKind, DeviceKind};
    let message = unavailable(BackendKind::LibTorch, DeviceKind::Cuda(99));
    assert!(message.contains("LibTorch sees"), "{message}");
}

#[cfg(feature = "vulkan")]
#[test]
fn an_absent_vulkan_device_is_a_typed_error() {
    use randomized_smoothing::runtime::{BackendKind, DeviceKind, Runtime};
    let message = unavailable(BackendKind::Vulkan, DeviceKind::Vulkan(99));
    assert!(
        message.contains("Vulkan has no discrete GPU number 99"),
        "{message}"
    );
    // The CPU driver CI installs (.ci/lavapipe.sh) is found, and named in the message.
    assert!(message.contains("(Cpu)"), "{message}");
    Runtime::new(Some(BackendKind::Vulkan), DeviceKind::Cpu).unwrap();
}
