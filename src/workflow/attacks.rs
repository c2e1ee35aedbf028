//! Attacks over a data set as long jobs, with the selection, seeds, flushed rows and
//! resumption of [`jobs`](super::jobs): PGD against the smoothed classifier at multiples of
//! each certified radius, and DeepFool against the base classifier.

use std::collections::BTreeMap;
use std::time::Instant;

use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};

use super::jobs::{Job, example_seed, image, run_groups, run_job};
use super::records::{AttackOutcome, AttackRecord, CertifyRecord, DeepFoolRecord};
use crate::attack::{DeepFoolValidConfig, PgdConfig, deepfool, host_l2_norm, pgd};
use crate::data::ImageSource;
use crate::error::{Error, Result, check_finite_positive};
use crate::smoothing::NoiseDistribution;
use crate::smoothing::base::BaseClassifier;
use crate::smoothing::{PredictValidConfig, SmoothedClassifier};
use crate::stats::seed::split_mix;

/// The attack of [`attack_dataset`]: PGD settings whose radius is replaced, per example, by
/// a multiple of its certified radius.
///
/// # Example
/// ```
/// use randomized_smoothing::attack::PgdConfig;
/// use randomized_smoothing::workflow::attacks::AttackPlan;
///
/// let plan = AttackPlan::new(1.5, PgdConfig::new(1.0).samples(32))?;
/// assert_eq!(plan.multiple(), 1.5);
/// assert!(AttackPlan::new(0.0, PgdConfig::new(1.0)).is_err());
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct AttackPlan {
    multiple: f64,
    pgd: PgdConfig,
}

impl AttackPlan {
    /// Attacks at `multiple` times each certified radius with the other settings of `pgd`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless `multiple` is finite and positive, or if `pgd` is
    /// invalid.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::attack::PgdConfig;
    /// use randomized_smoothing::workflow::attacks::AttackPlan;
    ///
    /// assert!(AttackPlan::new(2.0, PgdConfig::new(1.0).steps(0)).is_err());
    /// ```
    pub fn new(multiple: f64, pgd: PgdConfig) -> Result<Self> {
        check_finite_positive("multiple", multiple)?;
        pgd.clone().check()?;
        Ok(Self { multiple, pgd })
    }

    /// The multiple of the certified radius.
    pub fn multiple(&self) -> f64 {
        self.multiple
    }
}

/// One PGD run of [`attack_dataset`] over a data set: which examples (those a certification
/// log certified correctly), how they are attacked and judged, and the job that selects,
/// seeds and logs them.
#[derive(Debug, Clone)]
pub struct AttackJob<'a> {
    /// The certification log's rows; those certified correctly with a radius R > 0 are
    /// attacked.
    pub certified: &'a [CertifyRecord],
    /// The radius multiple and PGD's settings.
    pub plan: AttackPlan,
    /// PREDICT's settings for judging each adversarial input.
    pub predict: PredictValidConfig,
    /// The selection, the seed and the log file.
    pub job: Job,
}

/// Attacks each example that a certification log certified correctly (radius R > 0) with PGD
/// against the smoothed classifier at radius `multiple * R`, and judges the adversarial input
/// with PREDICT; one flushed row per example in the job's log, resumable as
/// [`certify_dataset`](super::jobs::certify_dataset)'s. Gradients are taken through `logits` on the autodiff backend `T`
/// (the base classifier's logits, any backend), PREDICT runs on `smoothed`.
///
/// # Errors
/// [`Error::InvalidParameter`] for a log row outside the data set; otherwise those of
/// [`pgd`], [`SmoothedClassifier::predict`] and the log files.
///
/// # Example
/// ```
/// use burn::backend::{Autodiff, NdArray};
/// use burn::tensor::Tensor;
/// use randomized_smoothing::attack::PgdConfig;
/// use randomized_smoothing::workflow::attacks::{AttackJob, AttackPlan, attack_dataset};
/// use randomized_smoothing::workflow::jobs::{Job, Selection, Shard};
/// use randomized_smoothing::workflow::records::CertifyRecord;
/// use randomized_smoothing::{Gaussian, LogitsClassifier, PredictConfig, SmoothedClassifier};
///
/// // Class 1 for bright images, on both backends.
/// fn scores<B: burn::tensor::backend::Backend>(x: Tensor<B, 4>) -> Tensor<B, 2> {
///     let m = x.flatten::<2>(1, 3).mean_dim(1).sub_scalar(0.3).mul_scalar(10.0);
///     Tensor::cat(vec![m.zeros_like(), m], 1)
/// }
/// let data = randomized_smoothing::data::digits()?;
/// let base = LogitsClassifier::new([1, 8, 8], 2, scores::<NdArray>)?;
/// let smoothed = SmoothedClassifier::new(base, Gaussian::new(0.1)?);
/// let row = CertifyRecord { idx: 0, label: data.label(0), predict: Some(data.label(0)),
///                           radius: 0.2, correct: true, time: Default::default() };
/// let output = std::env::temp_dir().join(format!("doc-attack-{}.tsv", std::process::id()));
/// let attack = AttackJob {
///     certified: &[row],
///     plan: AttackPlan::new(2.0, PgdConfig::new(1.0).samples(8).steps(2))?,
///     predict: PredictConfig::default().n(100).check()?,
///     job: Job { selection: Selection::new(1, None, Shard::whole())?, seed: 0, output: output.clone() },
/// };
/// let devices = (&Default::default(), &Default::default());
/// let rows = attack_dataset(&smoothed, scores::<Autodiff<NdArray>>, &data, &attack, devices, |_, _, _| {})?;
/// assert_eq!((rows.len(), rows[0].attack_radius), (1, 0.4));
/// assert!(rows[0].distance <= 0.4 + 1e-6);
/// # std::fs::remove_file(output).ok();
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn attack_dataset<B, C, N, S, T, F>(
    smoothed: &SmoothedClassifier<C, N>,
    logits: F,
    data: &S,
    attack: &AttackJob<'_>,
    devices: (&B::Device, &T::Device),
    on_row: impl FnMut(&AttackRecord, usize, usize),
) -> Result<Vec<AttackRecord>>
where
    B: Backend,
    C: BaseClassifier<4, Backend = B>,
    N: NoiseDistribution,
    S: ImageSource + ?Sized,
    T: AutodiffBackend,
    F: Fn(Tensor<T, 4>) -> Tensor<T, 2>,
{
    attack_dataset_packed(smoothed, logits, data, attack, 1, devices, on_row)
}

/// [`attack_dataset`] with the examples taken `inputs_per_pass` at a time: each is attacked
/// alone, then PREDICT judges the group's adversarial inputs together
/// ([`SmoothedClassifier::predict_many`]), their samples packed into full forward passes.
/// On the CPU backends every row but its time is the one [`attack_dataset`] writes; the
/// rows of a group are written together, in index order, each with the group's time divided
/// among its examples.
///
/// # Errors
/// As [`attack_dataset`]; [`Error::ZeroCount`] for zero inputs per pass.
pub fn attack_dataset_packed<B, C, N, S, T, F>(
    smoothed: &SmoothedClassifier<C, N>,
    logits: F,
    data: &S,
    attack: &AttackJob<'_>,
    inputs_per_pass: usize,
    devices: (&B::Device, &T::Device),
    on_row: impl FnMut(&AttackRecord, usize, usize),
) -> Result<Vec<AttackRecord>>
where
    B: Backend,
    C: BaseClassifier<4, Backend = B>,
    N: NoiseDistribution,
    S: ImageSource + ?Sized,
    T: AutodiffBackend,
    F: Fn(Tensor<T, 4>) -> Tensor<T, 2>,
{
    let AttackJob {
        certified,
        plan,
        predict,
        job,
    } = attack;
    let mut radii = BTreeMap::new();
    for row in certified.iter().filter(|r| r.correct && r.radius > 0.0) {
        if row.idx >= data.len() {
            return Err(Error::InvalidParameter {
                name: "certified",
                reason: format!("log row {} is outside the {} examples", row.idx, data.len()),
            });
        }
        radii.insert(row.idx, row.radius);
    }
    let indices: Vec<usize> = job
        .selection
        .indices(data.len())
        .into_iter()
        .filter(|i| radii.contains_key(i))
        .collect();
    run_groups(
        &indices,
        job,
        inputs_per_pass,
        |group| {
            let images = group
                .iter()
                .map(|&idx| image::<T, S>(data, idx, devices.1))
                .collect::<Result<Vec<_>>>()?;
            // Timed from the loaded images on, as certify's rows are.
            let started = Instant::now();
            // (attack radius, distance) of each example, and PREDICT's inputs.
            let mut attacked = Vec::with_capacity(group.len());
            let mut judged = Vec::with_capacity(group.len());
            for (&idx, x) in group.iter().zip(images) {
                let attack_radius = plan.multiple * radii[&idx];
                let config = plan.pgd.clone().radius(attack_radius).check()?;
                // The attack and the prediction at its result draw independent noise.
                let seed = example_seed(job.seed, idx);
                let label = data.label(idx);
                let adversarial = pgd(&logits, smoothed.noise(), x.clone(), label, &config, seed)?;
                attacked.push((attack_radius, host_l2_norm(adversarial.clone() - x)));
                let at = Tensor::<B, 3>::from_data(adversarial.into_data(), devices.0);
                judged.push((at, split_mix(seed)));
            }
            let predictions = smoothed.predict_many(judged, predict)?;
            let time = started.elapsed() / group.len() as u32;
            Ok(group
                .iter()
                .zip(attacked)
                .zip(predictions)
                .map(|((&idx, (attack_radius, distance)), prediction)| {
                    let (label, predicted) = (data.label(idx), prediction.class());
                    AttackRecord {
                        idx,
                        label,
                        radius: radii[&idx],
                        attack_radius,
                        predict: predicted,
                        outcome: AttackOutcome::of(predicted, label),
                        distance,
                        time,
                    }
                })
                .collect())
        },
        on_row,
    )
}

/// Runs [`deepfool`] on the base classifier `logits` for each selected example; one flushed
/// row per example, resumable as [`certify_dataset`](super::jobs::certify_dataset)'s.
///
/// # Errors
/// Those of [`deepfool`] and the log files.
///
/// # Example
/// ```
/// use burn::backend::{Autodiff, NdArray};
/// use burn::tensor::Tensor;
/// use randomized_smoothing::attack::DeepFoolConfig;
/// use randomized_smoothing::workflow::attacks::deepfool_dataset;
/// use randomized_smoothing::workflow::jobs::{Job, Selection, Shard};
///
/// type T = Autodiff<NdArray>;
/// let logits = |x: Tensor<T, 4>| {
///     let m = x.flatten::<2>(1, 3).mean_dim(1).sub_scalar(0.3);
///     Tensor::cat(vec![m.zeros_like(), m], 1)
/// };
/// let data = randomized_smoothing::data::digits()?;
/// let output = std::env::temp_dir().join(format!("doc-deepfool-{}.tsv", std::process::id()));
/// let job = Job { selection: Selection::new(100, Some(3), Shard::whole())?, seed: 0, output: output.clone() };
/// let rows = deepfool_dataset(logits, &data, &DeepFoolConfig::default().check()?, &job,
///                             &Default::default(), |_, _, _| {})?;
/// assert_eq!(rows.len(), 3);
/// assert!(rows.iter().all(|r| r.fooled && r.distance < 8.0 * 0.3));
/// # std::fs::remove_file(output).ok();
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn deepfool_dataset<S, T, F>(
    logits: F,
    data: &S,
    config: &DeepFoolValidConfig,
    job: &Job,
    device: &T::Device,
    on_row: impl FnMut(&DeepFoolRecord, usize, usize),
) -> Result<Vec<DeepFoolRecord>>
where
    S: ImageSource + ?Sized,
    T: AutodiffBackend,
    F: Fn(Tensor<T, 4>) -> Tensor<T, 2>,
{
    run_job(
        data,
        job,
        |idx| {
            let x = image::<T, S>(data, idx, device)?;
            let started = Instant::now();
            let result = deepfool(&logits, x, config)?;
            Ok(DeepFoolRecord {
                idx,
                label: data.label(idx),
                predict: result.original,
                adversarial: result.class,
                distance: result.distance,
                iterations: result.iterations,
                fooled: result.fooled(),
                time: started.elapsed(),
            })
        },
        on_row,
    )
}
