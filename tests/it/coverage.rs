//! Statistical validity: simulated error rates of the confidence bounds, of CERTIFY and of
//! PREDICT against base classifiers with known class probabilities, each judged by a binomial
//! test at a fixed seed. Each test also shows that a broken procedure fails the same check.

use crate::common::{BinomialSampler, consistent_with_rate};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use std::marker::PhantomData;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use randomized_smoothing::stats::binomial::{clopper_pearson_lower, clopper_pearson_upper};
use randomized_smoothing::stats::normal::{normal_cdf, normal_quantile};
use randomized_smoothing::{
    BaseClassifier, Certification, CertifyConfig, Gaussian, PredictConfig, SmoothedClassifier,
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
struct Buckets<B> {
    thresholds: Vec<f32>,
    probabilities: Vec<f64>,
    backend: PhantomData<B>,
}

impl<B> Buckets<B> {
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
            backend: PhantomData,
        }
    }
}

impl<B: Backend> BaseClassifier<2> for Buckets<B> {
    type Backend = B;

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
    let base = Buckets::<B>::new(&[0.15, 0.7, 0.15]);
    let truth = base.probabilities.clone();
    let g = SmoothedClassifier::new(base, Gaussian::new(1.0).unwrap());
    let alpha = 0.1;
    let config = CertifyConfig::default()
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
        let c = g.certify(x.clone(), &config, rng.next_u64()).unwrap();
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
    let base = Buckets::<B>::new(&[0.45, 0.4, 0.15]);
    let g = SmoothedClassifier::new(base, Gaussian::new(1.0).unwrap());
    let alpha = 0.05;
    let config = PredictConfig::default()
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
        let p = g.predict(x.clone(), &config, rng.next_u64()).unwrap();
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

crate::common::backend_tests!(certify_false_certification_rate, predict_wrong_class_rate);

// ---- Beyond the paper: two-sided certificate, l1 noises, sequential procedures ----

mod beyond_the_paper {
    use super::*;
    use burn::backend::NdArray;
    use randomized_smoothing::certificate::radius::gaussian_radius;
    use randomized_smoothing::stats::binomial::clopper_pearson_lower;
    use randomized_smoothing::{
        Laplace, LinearClassifier, NoiseDistribution, SequentialConfig, Uniform, Verdict,
    };

    type B = NdArray;

    /// The two-sided certificate's bounds are wrong (p_a_lower above the candidate's true
    /// probability, or p_b_upper below some other class's) at rate at most alpha. Taking the
    /// runner-up's observed frequency for p_b, with no bound, fails the same test.
    #[test]
    fn two_sided_certificate_is_valid() {
        let base = Buckets::<B>::new(&[0.5, 0.3, 0.1, 0.1]);
        let truth = base.probabilities.clone();
        let g = SmoothedClassifier::new(base, Gaussian::new(1.0).unwrap());
        let alpha = 0.1;
        let n = 500;
        let config = CertifyConfig::default()
            .n0(20)
            .n(n)
            .alpha(alpha)
            .batch_size(500)
            .two_sided(true)
            .check()
            .unwrap();
        let x = Tensor::<B, 1>::zeros([1], &Default::default());
        let mut rng = StdRng::seed_from_u64(21);
        let trials = 1_000u64;
        let (mut wrong, mut naive_wrong, mut certified) = (0, 0, 0);
        for _ in 0..trials {
            let c = g.certify(x.clone(), &config, rng.next_u64()).unwrap();
            let e = c.estimate();
            let max_other = (0..truth.len())
                .filter(|&k| k != e.candidate)
                .map(|k| truth[k])
                .fold(0.0, f64::max);
            if let Certification::Certified { .. } = c {
                certified += 1;
                wrong += u64::from(e.p_a_lower > truth[e.candidate] || e.p_b_upper < max_other);
            }
            // The naive version: p_a_lower at alpha, p_b the runner-up's frequency.
            let counts = g.sample_counts(x.clone(), n, 500, rng.next_u64()).unwrap();
            let runner_up = (1..4).map(|k| counts[k]).max().unwrap();
            let p_a = clopper_pearson_lower(counts[0], n, alpha).unwrap();
            naive_wrong += u64::from(p_a > truth[0] || (runner_up as f64 / n as f64) < truth[1]);
        }
        assert!(certified > trials / 2, "{certified}");
        assert!(
            consistent_with_rate(wrong, trials, alpha),
            "{wrong}/{trials}"
        );
        assert!(
            !consistent_with_rate(naive_wrong, trials, alpha),
            "{naive_wrong}/{trials}"
        );
    }

    /// With probability spread over several classes, the two-sided certificate certifies
    /// where the paper's abstains, and on the same samples it is never below the paper's
    /// radius at alpha/2.
    #[test]
    fn two_sided_certificate_is_at_least_the_papers_at_half_alpha() {
        let base = Buckets::<B>::new(&[0.45, 0.2, 0.2, 0.15]);
        let g = SmoothedClassifier::new(base, Gaussian::new(1.0).unwrap());
        let x = Tensor::<B, 1>::zeros([1], &Default::default());
        let params = CertifyConfig::default().n(10_000).batch_size(10_000);
        let one = params.alpha(0.0005).check().unwrap();
        let two = params.alpha(0.001).two_sided(true).check().unwrap();
        for seed in 0..5 {
            let paper = g.certify(x.clone(), &one, seed).unwrap();
            let ours = g.certify(x.clone(), &two, seed).unwrap();
            assert_eq!(paper.class(), None, "p_a < 1/2: the paper abstains");
            let r = ours.radius().expect("two-sided certifies");
            // sigma/2 (PhiInv(0.45) - PhiInv(0.2)) = 0.358 at the true probabilities.
            assert!(0.25 < r && r < 0.358, "{r}");
        }
        let base = Buckets::<B>::new(&[0.8, 0.1, 0.1]);
        let g = SmoothedClassifier::new(base, Gaussian::new(1.0).unwrap());
        for seed in 0..5 {
            let paper = g.certify(x.clone(), &one, seed).unwrap();
            let ours = g.certify(x.clone(), &two, seed).unwrap();
            assert_eq!(
                ours.estimate().count,
                paper.estimate().count,
                "same samples"
            );
            assert!(ours.radius().unwrap() > paper.radius().unwrap());
        }
    }

    /// Draws `rows` noise values through both paths: the device sampler (which the autodiff
    /// backend uses) and the host one (NdArray's).
    fn draws<N: NoiseDistribution>(noise: &N) -> [Vec<f32>; 2] {
        use burn::backend::Autodiff;
        let device = Default::default();
        let _generator = randomized_smoothing::smoothing::lock_generator();
        <Autodiff<B> as burn::tensor::backend::Backend>::seed(&device, 5);
        let on_device = noise
            .sample::<Autodiff<B>, 1>([200_000], &device)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let mut on_host = vec![0.0f32; 200_000];
        noise.add_to(
            &mut on_host,
            &mut rand::rngs::Xoshiro256PlusPlus::seed_from_u64(6),
        );
        [on_device, on_host]
    }

    #[test]
    fn laplace_and_uniform_noise_have_their_distributions() {
        let lambda = 0.5f64;
        for e in draws(&Laplace::new(lambda).unwrap()) {
            let n = e.len() as f64;
            let mean_abs = e.iter().map(|v| v.abs() as f64).sum::<f64>() / n;
            let var = e.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / n;
            let beyond = e.iter().filter(|v| v.abs() as f64 > lambda * 2.0).count() as f64 / n;
            assert!((mean_abs - lambda).abs() < 0.01, "E|e| = {mean_abs}");
            assert!((var - 2.0 * lambda * lambda).abs() < 0.02, "Var = {var}");
            // P(|e| > 2 lambda) = e^-2.
            assert!((beyond - (-2.0f64).exp()).abs() < 0.004, "{beyond}");
        }
        for e in draws(&Uniform::new(lambda).unwrap()) {
            let n = e.len() as f64;
            let var = e.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / n;
            assert!(e.iter().all(|v| v.abs() as f64 <= lambda));
            assert!((var - lambda * lambda / 3.0).abs() < 0.002, "Var = {var}");
        }
    }

    /// Laplace and uniform CERTIFY on a half-space, where the radius formulas are exact:
    /// the certified l1 radius exceeds the true distance at rate at most alpha. Taking the
    /// Gaussian formula at the same variance instead over-certifies and fails.
    #[test]
    fn l1_certificates_are_valid_on_a_half_space() {
        let device = Default::default();
        let alpha = 0.1;
        let config = CertifyConfig::default()
            .n0(20)
            .n(200)
            .alpha(alpha)
            .batch_size(200)
            .check()
            .unwrap();
        let (lambda, t) = (0.5, 0.5);
        let x = Tensor::<B, 1>::from_floats([t as f32], &device);
        let trials = 600u64;
        let mut rng = StdRng::seed_from_u64(31);
        let linear = || LinearClassifier::<B>::new(&[1.0], 0.0, &device).unwrap();
        let laplace = SmoothedClassifier::new(linear(), Laplace::new(lambda).unwrap());
        let uniform = SmoothedClassifier::new(linear(), Uniform::new(lambda).unwrap());
        let (mut laplace_wrong, mut uniform_wrong, mut gaussian_formula_wrong) = (0, 0, 0);
        for _ in 0..trials {
            let c = laplace.certify(x.clone(), &config, rng.next_u64()).unwrap();
            laplace_wrong += u64::from(c.radius().is_some_and(|r| r > t));
            let e = c.estimate();
            let sigma = lambda * std::f64::consts::SQRT_2;
            let r = gaussian_radius(sigma, e.p_a_lower, e.p_b_upper).unwrap_or(0.0);
            gaussian_formula_wrong += u64::from(r > t);
            let c = uniform.certify(x.clone(), &config, rng.next_u64()).unwrap();
            uniform_wrong += u64::from(c.radius().is_some_and(|r| r > t));
        }
        assert!(
            consistent_with_rate(laplace_wrong, trials, alpha),
            "{laplace_wrong}"
        );
        assert!(
            consistent_with_rate(uniform_wrong, trials, alpha),
            "{uniform_wrong}"
        );
        assert!(
            !consistent_with_rate(gaussian_formula_wrong, trials, alpha),
            "{gaussian_formula_wrong}"
        );
    }

    /// At the worst case, a true probability exactly at the one the radius needs, the
    /// sequential test certifies at rate at most alpha over all its looks. Testing every look
    /// at level alpha (no union bound) fails the same check.
    #[test]
    fn sequential_test_is_valid_over_all_looks() {
        let (sigma, r) = (1.0, 0.5);
        let p_star = normal_cdf(r / sigma);
        let base = Buckets::<B>::new(&[p_star, 1.0 - p_star]);
        let p_true = base.probabilities[0];
        let g = SmoothedClassifier::new(base, Gaussian::new(sigma).unwrap());
        let alpha = 0.1;
        let config = SequentialConfig::default()
            .n0(10)
            .samples(100, 3_200)
            .alpha(alpha)
            .batch_size(3_200)
            .check()
            .unwrap();
        let looks = config.looks();
        assert_eq!(looks.len(), 6);
        let x = Tensor::<B, 1>::zeros([1], &Default::default());
        let mut rng = StdRng::seed_from_u64(41);
        let trials = 600u64;
        let mut wrong = 0;
        for _ in 0..trials {
            let d = g
                .certify_at_radius(x.clone(), r, &config, rng.next_u64())
                .unwrap();
            wrong += u64::from(d.verdict == Verdict::Certified && d.estimate.candidate == 0);
        }
        assert!(
            consistent_with_rate(wrong, trials, alpha),
            "{wrong}/{trials}"
        );
        // The same looks, each at level alpha.
        let mut naive_wrong = 0;
        for _ in 0..trials {
            let (mut count, mut drawn) = (0, 0);
            for &n in &looks {
                count += BinomialSampler::new(n - drawn, p_true).sample(&mut rng);
                drawn = n;
                if clopper_pearson_lower(count, n, alpha).unwrap() >= p_star {
                    naive_wrong += 1;
                    break;
                }
            }
        }
        assert!(
            !consistent_with_rate(naive_wrong, trials, alpha),
            "{naive_wrong}/{trials}"
        );
    }

    /// On a clear input the sequential test decides at its first look (at least 10x fewer
    /// samples than CERTIFY's 100,100), and the budgeted estimate stops early on an input
    /// whose radius is settled, with valid radii throughout.
    #[test]
    fn sequential_procedures_save_samples_and_stay_valid() {
        let x = Tensor::<B, 1>::zeros([1], &Default::default());
        let clear = Buckets::<B>::new(&[0.99, 0.01]);
        let g = SmoothedClassifier::new(clear, Gaussian::new(1.0).unwrap());
        let config = SequentialConfig::default()
            .batch_size(10_000)
            .check()
            .unwrap();
        let d = g.certify_at_radius(x.clone(), 0.5, &config, 1).unwrap();
        assert_eq!(
            (d.verdict, d.looks, d.samples),
            (Verdict::Certified, 1, 200)
        );

        let middling = Buckets::<B>::new(&[0.8, 0.2]);
        let p_true = middling.probabilities[0];
        let g = SmoothedClassifier::new(middling, Gaussian::new(1.0).unwrap());
        let alpha = 0.1;
        let config = SequentialConfig::default()
            .samples(100, 25_600)
            .alpha(alpha)
            .tolerance(0.1)
            .batch_size(25_600)
            .check()
            .unwrap();
        let mut rng = StdRng::seed_from_u64(51);
        let trials = 400u64;
        let (mut wrong, mut samples) = (0, 0);
        for _ in 0..trials {
            let s = g
                .certify_budgeted(x.clone(), &config, rng.next_u64())
                .unwrap();
            wrong += u64::from(s.verdict.class().is_some() && s.estimate.p_a_lower > p_true);
            samples += s.samples;
        }
        assert!(
            consistent_with_rate(wrong, trials, alpha),
            "{wrong}/{trials}"
        );
        let mean = samples as f64 / trials as f64;
        assert!(mean < 25_700.0 / 2.0, "mean samples {mean}");
    }
}
