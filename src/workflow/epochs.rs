//! One training run's epochs, as every trainer of the workflow runs them (base classifiers
//! in [`train`](super::train), denoisers in [`denoise`](super::denoise)): the shared
//! hyperparameters ([`Schedule`]), the batches and their augmentation, the totals kept on the
//! device, and the loop itself ([`EpochLoop`]) with its checkpoints and reports.

use std::borrow::Cow;
use std::time::Instant;

use burn::lr_scheduler::LrScheduler;
use burn::lr_scheduler::step::{StepLrScheduler, StepLrSchedulerConfig};
use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::SliceRandom;
use rayon::prelude::*;

use crate::data::ImageSource;
use crate::error::{Error, Result, check_positive};
use crate::smoothing::lock_generator;
use crate::stats::seed::{GOLDEN_GAMMA, mix64};
use crate::workflow::checkpoints::RunFolder;
use crate::workflow::train::EpochReport;

/// What every trainer of the workflow (base classifiers, denoisers) sets alike: the epochs,
/// the batch size, the learning rate and its step decay, and how many epochs keep their
/// checkpoints. Each trainer's config holds one and offers its setters.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Schedule {
    pub(crate) epochs: usize,
    pub(crate) batch_size: usize,
    pub(crate) lr: f64,
    pub(crate) lr_step: usize,
    pub(crate) lr_gamma: f64,
    pub(crate) keep_checkpoints: usize,
}

impl Schedule {
    /// The paper's schedule from the initial rate `lr`: 90 epochs of batches of 256, the rate
    /// divided by 10 every 30 epochs, the latest 2 epochs' checkpoints kept.
    pub(crate) fn new(lr: f64) -> Self {
        Self {
            epochs: 90,
            batch_size: 256,
            lr,
            lr_step: 30,
            lr_gamma: 0.1,
            keep_checkpoints: 2,
        }
    }

    /// # Errors
    /// [`Error::ZeroCount`] for zero epochs, batch size, schedule step or checkpoints kept;
    /// [`Error::InvalidParameter`] for a learning rate that is not finite and positive or a
    /// gamma outside (0, 1].
    pub(crate) fn check(&self) -> Result<()> {
        check_positive("epochs", self.epochs as u64)?;
        check_positive("batch_size", self.batch_size as u64)?;
        check_positive("lr step", self.lr_step as u64)?;
        check_positive("checkpoints kept", self.keep_checkpoints as u64)?;
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(Error::InvalidParameter {
                name: "lr",
                reason: "must be finite and positive".into(),
            });
        }
        if !(self.lr_gamma > 0.0 && self.lr_gamma <= 1.0) {
            return Err(Error::InvalidParameter {
                name: "lr gamma",
                reason: "must lie in (0, 1]".into(),
            });
        }
        Ok(())
    }

    /// The learning rate in epoch `epoch` (counted from 0).
    pub(crate) fn lr_at(&self, epoch: usize) -> f64 {
        let mut scheduler = self.scheduler();
        for _ in 0..epoch {
            scheduler.step();
        }
        scheduler.step()
    }

    /// The step schedule as burn-optim's scheduler, stepped once per epoch: its `n`-th
    /// `step()` (from 0) is `lr * gamma^(n / step)`, the schedule of the paper's `train.py`.
    fn scheduler(&self) -> StepLrScheduler {
        StepLrSchedulerConfig::new(self.lr, self.lr_step)
            .with_gamma(self.lr_gamma)
            .init()
            // `check` has made the step positive, the only thing `init` refuses.
            .expect("a checked step schedule")
    }

    /// Its part of a run folder's settings: what shapes the epochs already run (not their
    /// number, since a run may be extended, nor the checkpoints kept).
    pub(crate) fn settings(&self) -> [(&'static str, String); 4] {
        [
            ("batch_size", self.batch_size.to_string()),
            ("lr", self.lr.to_string()),
            ("lr_step", self.lr_step.to_string()),
            ("lr_gamma", self.lr_gamma.to_string()),
        ]
    }
}

/// Header of the training log: the columns of the paper's `train.py`, named consistently
/// (its own header mixes `train loss` with `testloss`).
pub(crate) const LOG_HEADER: &str = "epoch\ttime\tlr\ttrain_loss\ttrain_acc\ttest_loss\ttest_acc";

/// A batch of images `[batch, C, H, W]` and labels from `indices`. For training
/// (`augment_seed` given) each example is read through
/// [`load_train`](ImageSource::load_train) and then randomly cropped and flipped if
/// configured; for evaluation it is read through [`load`](ImageSource::load) as is.
/// Examples are read on rayon's pool (decoding image files is the slow part), each with its
/// own generator derived from the seed, so a batch does not depend on the thread count.
pub(crate) fn batch<B: Backend, S: ImageSource + ?Sized>(
    data: &S,
    indices: &[usize],
    augment: Augment,
    augment_seed: Option<u64>,
    device: &B::Device,
) -> Result<(Tensor<B, 4>, Tensor<B, 1, Int>)> {
    let shape = data.image_shape();
    let (c, h, w) = (shape[0], shape[1], shape[2]);
    // In-memory images are borrowed, not copied, until the batch is assembled.
    let images: Vec<Cow<'_, [f32]>> = indices
        .par_iter()
        .enumerate()
        .map(|(k, &i)| match augment_seed {
            None => data.load(i),
            Some(seed) => {
                let mut rng = Xoshiro256PlusPlus::seed_from_u64(mix64(seed ^ mix64(k as u64)));
                let image = data.load_train(i, &mut rng)?;
                Ok(crop_and_flip(image, [c, h, w], augment, &mut rng))
            }
        })
        .collect::<Result<_>>()?;
    let labels: Vec<i64> = indices.iter().map(|&i| data.label(i) as i64).collect();
    Ok((
        Tensor::from_data(
            TensorData::new(images.concat(), [indices.len(), c, h, w]),
            device,
        ),
        Tensor::from_data(TensorData::new(labels, [indices.len()]), device),
    ))
}

/// Random crops and flips of training images (beyond what the data source's own
/// [`load_train`](ImageSource::load_train) does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Augment {
    /// Zero padding on each side before a random crop of the image's size (0: no crop).
    pub(crate) padding: usize,
    /// Horizontal flips with probability 1/2.
    pub(crate) flip: bool,
}

/// The paper's CIFAR-10 augmentation: a random crop of the image padded with zeros by
/// `crop_padding` on each side, and a horizontal flip with probability 1/2, as configured.
fn crop_and_flip<'a>(
    image: Cow<'a, [f32]>,
    [c, h, w]: [usize; 3],
    augment: Augment,
    rng: &mut Xoshiro256PlusPlus,
) -> Cow<'a, [f32]> {
    use rand::RngExt;
    let pad = augment.padding as i64;
    let mut offset = || {
        if pad > 0 {
            rng.random_range(-pad..=pad) as isize
        } else {
            0
        }
    };
    let (dy, dx) = (offset(), offset());
    let flip = augment.flip && rng.random::<bool>();
    if (dy, dx, flip) == (0, 0, false) {
        return image;
    }
    let mut out = Vec::with_capacity(image.len());
    for ch in 0..c {
        for y in 0..h as isize {
            for x in 0..w as isize {
                let sx = if flip { w as isize - 1 - x } else { x } + dx;
                let sy = y + dy;
                let inside = (0..h as isize).contains(&sy) && (0..w as isize).contains(&sx);
                out.push(if inside {
                    image[ch * h * w + sy as usize * w + sx as usize]
                } else {
                    0.0
                });
            }
        }
    }
    Cow::Owned(out)
}

/// Summed loss and correct predictions over an epoch, accumulated on the device.
pub(crate) struct EpochTotals<B: Backend> {
    loss: Tensor<B, 1>,
    correct: Tensor<B, 1, Int>,
}

impl<B: Backend> EpochTotals<B> {
    pub(crate) fn new(device: &B::Device) -> Self {
        Self {
            loss: Tensor::zeros([1], device),
            correct: Tensor::zeros([1], device),
        }
    }

    /// Adds a batch: its mean loss, logits `[batch, classes]` and labels `[batch]`.
    pub(crate) fn add(
        &mut self,
        mean_loss: Tensor<B, 1>,
        logits: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
    ) {
        let n = labels.dims()[0];
        self.loss = self.loss.clone() + mean_loss * n as f64;
        let hits = logits.argmax(1).reshape([n]).equal(labels).int().sum();
        self.correct = self.correct.clone() + hits;
    }

    /// The totals, read back once.
    pub(crate) fn read(self) -> (f64, i64) {
        (
            self.loss.into_scalar().elem::<f64>(),
            self.correct.into_scalar().elem::<i64>(),
        )
    }
}

/// The epochs of one training run, as every trainer of the workflow runs them: the
/// learning rate of the [`Schedule`]; the data order and the augmentation's seeds from
/// `(seed, epoch)` alone, so that a run resumed from its folder draws what the uninterrupted
/// one would have; an optimizer step per batch; the running totals kept on the device and
/// read once per epoch (reading them every batch would stall a GPU pipeline); an evaluation,
/// a checkpoint and a report after every epoch.
pub(crate) struct EpochLoop<'a, S: ?Sized> {
    pub(crate) train_set: &'a S,
    pub(crate) schedule: &'a Schedule,
    pub(crate) augment: Augment,
    pub(crate) seed: u64,
    /// The run's folder, opened with the trainer's own settings; none for no checkpoints.
    pub(crate) folder: Option<RunFolder<'a>>,
}

impl<S: ImageSource + ?Sized> EpochLoop<'_, S> {
    /// Trains `module` with `optim` from the folder's last complete epoch (or from the
    /// start): `batch_loss(module, x, y, epoch)` gives a batch's mean loss and logits, and
    /// `evaluate` the test loss and accuracy of the module after an epoch.
    ///
    /// # Errors
    /// Those of `batch_loss` and `evaluate`, of reading a batch, and [`Error::Io`] from the
    /// folder.
    pub(crate) fn run<B, M, O>(
        self,
        module: M,
        optim: O,
        device: &B::Device,
        mut batch_loss: impl FnMut(
            &M,
            Tensor<B, 4>,
            Tensor<B, 1, Int>,
            usize,
        ) -> Result<(Tensor<B, 1>, Tensor<B, 2>)>,
        mut evaluate: impl FnMut(&M) -> Result<(f64, f64)>,
        mut on_epoch: impl FnMut(&EpochReport),
    ) -> Result<M>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
        O: Optimizer<M, B>,
    {
        let (mut module, mut optim, start) = match &self.folder {
            Some(folder) => folder.resume(module, optim, device)?,
            None => (module, optim, 0),
        };
        let mut scheduler = self.schedule.scheduler();
        // A resumed run skips the learning rates of the epochs already done.
        for _ in 0..start {
            scheduler.step();
        }
        let examples = self.train_set.len();
        for epoch in start..self.schedule.epochs {
            let started = Instant::now();
            let lr = scheduler.step();
            let epoch_seed = self.seed ^ (epoch as u64).wrapping_mul(GOLDEN_GAMMA);
            // The data order and augmentation seeds from xoshiro256++, a fixed algorithm, so
            // a seed means the same epochs across upgrades of rand; the noise comes from the
            // backend's generator, whose algorithm is Burn's.
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(epoch_seed);
            // Seeded once per epoch, then drawn from by every batch (augmentation, the
            // objectives' noise, PGD's samples) and by the evaluation: no other thread may
            // seed or draw in between.
            let generator = lock_generator();
            B::seed(device, epoch_seed);
            let mut order: Vec<usize> = (0..examples).collect();
            order.shuffle(&mut rng);
            let mut totals = EpochTotals::<B::InnerBackend>::new(device);
            for chunk in order.chunks(self.schedule.batch_size) {
                let (x, y) = batch::<B, S>(
                    self.train_set,
                    chunk,
                    self.augment,
                    Some(rng.next_u64()),
                    device,
                )?;
                let (loss, logits) = batch_loss(&module, x, y.clone(), epoch)?;
                totals.add(loss.clone().inner(), logits.inner(), y.inner());
                let grads = GradientsParams::from_grads(loss.backward(), &module);
                module = optim.step(lr, module, grads);
            }
            let (loss_sum, correct) = totals.read();
            // Evaluation's noise continues the epoch's draws.
            let (test_loss, test_acc) = evaluate(&module)?;
            drop(generator);
            let report = EpochReport {
                epoch: epoch + 1,
                time: started.elapsed(),
                lr,
                train_loss: loss_sum / examples as f64,
                train_acc: correct as f64 / examples as f64,
                test_loss,
                test_acc,
            };
            if let Some(folder) = &self.folder {
                folder.save(epoch + 1, &module, &optim, LOG_HEADER, &report.to_line())?;
            }
            on_epoch(&report);
        }
        Ok(module)
    }
}
