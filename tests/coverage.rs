//! Statistical validity: simulated error rates of the confidence bounds, of CERTIFY and of
//! PREDICT against base classifiers with known class probabilities, each judged by a binomial
//! test at a fixed seed. Each test also shows that a broken procedure fails the same check.

mod common;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use common::{BinomialSampler, consistent_with_rate};
use rand::SeedableRng;
use rand::rngs::StdRng;
use randomized_smoothing::binomial::{clopper_pearson_lower, clopper_pearson_upper};
use randomized_smoothing::normal::{normal_cdf, normal_quantile};
use randomized_smoothing::{
    BaseClassifier, Certification, CertifyParams, Gaussian, PredictParams, SmoothedClassifier,
};

/// The Clopper-Pearson bounds miss the true p at rate at most alpha; the Wald interval
/// (normal approximation) misses more often at these (n, p) and fails the same test.
#[test]
fn clopper_pearson_coverage() {
    let mut rng = StdRng::seed_from_u64(11);
    let trials = 20_000u64;
    for &(n, p, alpha) in &[(100u64, 0.95, 0.05), (1_000, 0.99, 0.01), (30, 0.7, 0.1)] {
        let sampler = BinomialSampler::new(n, p);
        let z = normal_quantile(1.0 - alpha).unwrap();
        let (mut lower_misses, mut upper_misses, mut wald_misses) = (0, 0, 0);
        for _ in 0..trials {
            let k = sampler.sample(&mut rng);
            lower_misses += u64::from(clopper_pearson_lower(k, n, alpha).unwrap() > p);
            upper_misses += u64::from(clopper_pearson_upper(k, n, alpha).unwrap() < p);
            let hat = k as f64 / n as f64;
            wald_misses += u64::from(hat - z * (hat * (1.0 - hat) / n as f64).sqrt() > p);
        }
        assert!(
            consistent_with_rate(lower_misses, trials, alpha),
            "lower: {lower_misses}/{trials} at {n} {p}"
        );
        assert!(
            consistent_with_rate(upper_misses, trials, alpha),
            "upper: {upper_misses}/{trials} at {n} {p}"
        );
        assert!(
            !consistent_with_rate(wald_misses, trials, alpha),
            "Wald: {wald_misses}/{trials} at {n} {p}"
        );
    }
}

/// A base classifier with known class probabilities at x = 0 under N(0, 1) noise: the class
/// is the bucket of the noisy value between thresholds.
struct Buckets {
    thresholds: Vec<f32>,
    probabilities: Vec<f64>,
}

impl Buckets {
    fn new(probabilities: &[f64]) -> Self {
        let mut acc = 0.0;
        let thresholds = probabilities[..probabilities.len() - 1]
            .iter()
            .map(|p| {
                acc += p;
                normal_quantile(acc).unwrap() as f32
            })
            .collect::<Vec<_>>();
        // The exact probabilities of the f32 thresholds.
        let mut cdf: Vec<f64> = thresholds.iter().map(|&t| normal_cdf(t as f64)).collect();
        cdf.insert(0, 0.0);
        cdf.push(1.0);
        let probabilities = cdf.windows(2).map(|w| w[1] - w[0]).collect();
        Self {
            thresholds,
            probabilities,
        }
    }
}

impl<B: Backend> BaseClassifier<B, 2> for Buckets {
    fn input_shape(&self) -> &[usize] {
        &[1]
    }
    fn num_classes(&self) -> usize {
        self.probabilities.len()
    }
    fn classify(&self, inputs: Tensor<B, 2>) -> Tensor<B, 1, Int> {
        let batch = inputs.dims()[0];
        let v = inputs.reshape([batch]);
        let mut class = Tensor::<B, 1, Int>::zeros([batch], &v.device());
        for &t in &self.thresholds {
            class = class + v.clone().greater_equal_elem(t).int();
        }
        class
    }
}

/// CERTIFY's certificates are wrong (the bound exceeds the candidate's true probability) at
/// rate at most alpha. The point estimate in place of the bound fails the same test.
fn certify_false_certification_rate<B: Backend>(device: &B::Device) {
    let base = Buckets::new(&[0.15, 0.7, 0.15]);
    let truth = base.probabilities.clone();
    let g = SmoothedClassifier::<B, _, _, 2>::new(base, Gaussian::new(1.0).unwrap());
    let alpha = 0.1;
    let config = CertifyParams::default()
        .n0(20)
        .n(100)
        .alpha(alpha)
        .batch_size(100)
        .check()
        .unwrap();
    let x = Tensor::<B, 1>::zeros([1], device);
    let mut rng = StdRng::seed_from_u64(12);
    let trials = 1_000u64;
    let (mut false_certificates, mut point_estimate_misses) = (0, 0);
    for _ in 0..trials {
        let c = g.certify(x.clone(), &config, &mut rng).unwrap();
        let e = c.estimate();
        let p_true = truth[e.candidate];
        if let Certification::Certified { .. } = c {
            false_certificates += u64::from(e.p_a_lower > p_true);
        }
        point_estimate_misses += u64::from(e.count as f64 / e.n as f64 > p_true);
    }
    assert!(
        consistent_with_rate(false_certificates, trials, alpha),
        "{false_certificates}/{trials}"
    );
    assert!(
        !consistent_with_rate(point_estimate_misses, trials, alpha),
        "{point_estimate_misses}/{trials}"
    );
}

/// PREDICT returns a class other than the smoothed classifier's at rate at most alpha
/// (Proposition 1), here with two close top classes. Answering the top count without the
/// test fails the same check.
fn predict_wrong_class_rate<B: Backend>(device: &B::Device) {
    let base = Buckets::new(&[0.45, 0.4, 0.15]);
    let g = SmoothedClassifier::<B, _, _, 2>::new(base, Gaussian::new(1.0).unwrap());
    let alpha = 0.05;
    let config = PredictParams::default()
        .n(200)
        .alpha(alpha)
        .batch_size(200)
        .check()
        .unwrap();
    let x = Tensor::<B, 1>::zeros([1], device);
    let mut rng = StdRng::seed_from_u64(13);
    let trials = 1_000u64;
    let (mut wrong, mut untested_wrong) = (0, 0);
    for _ in 0..trials {
        let p = g.predict(x.clone(), &config, &mut rng).unwrap();
        wrong += u64::from(p.class().is_some_and(|c| c != 0));
        untested_wrong += u64::from(p.test().top != 0);
    }
    assert!(
        consistent_with_rate(wrong, trials, alpha),
        "{wrong}/{trials}"
    );
    assert!(
        !consistent_with_rate(untested_wrong, trials, alpha),
        "{untested_wrong}/{trials}"
    );
}

common::backend_tests!(certify_false_certification_rate, predict_wrong_class_rate);
