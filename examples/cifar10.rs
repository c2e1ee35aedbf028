//! CIFAR-10 end to end: certify test images with the paper's CIFAR-10 model, or with a CIFAR
//! ResNet trained here with Gaussian data augmentation, and print certified accuracy.
//!
//! ```text
//! # the paper's model (its models/cifar10/resnet110/noise_0.25/checkpoint.pth.tar), every
//! # 20th test image as in the paper: 100,100 ResNet-110 passes, 8 to 10 minutes per image on a
//! # 2-core CPU (docs/benchmarks.md), seconds on a GPU
//! cargo run --release --example cifar10 -- --data cifar-10-batches-bin \
//!     --checkpoint checkpoint.pth.tar --sigma 0.25 --skip 20
//! cargo run --release --features cuda --example cifar10 -- --data cifar-10-batches-bin \
//!     --checkpoint checkpoint.pth.tar --sigma 0.25 --skip 20
//!
//! # or train a CIFAR ResNet-20 here first (the paper's recipe: SGD, lr 0.1 divided by 10
//! # every 30 epochs, random crops and flips), saving it with --save
//! cargo run --release --features cuda --example cifar10 -- --data cifar-10-batches-bin \
//!     --epochs 90 --save resnet20.bpk --sigma 0.25 --skip 20
//! ```
//! `--data` is the folder of the binary release (`data_batch_1.bin` ... `test_batch.bin`,
//! plain or gzipped). Other options, with their defaults: `--arch cifar_resnet20` (for
//! training, or to read a `.bpk` checkpoint of the crate's own), `--n0 100`, `--n 100000`,
//! `--alpha 0.001`, `--batch 400`, `--skip 1`, `--max` (all), `--seed 0`, `--out
//! target/cifar10/certify_sigma_S.tsv`, and `--backend`/`--device` as in `smoothing`. The log
//! is the paper's TSV format, written row by row; run the same command again to resume it.
//! The command-line program does the same with more options: `smoothing train` and `smoothing
//! certify --dataset cifar10`.

use std::path::PathBuf;

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::tensor::backend::Backend;
use randomized_smoothing::data::{Dataset, load_cifar10};
use randomized_smoothing::models::{
    Architecture, Model, PytorchCheckpoint, load_model, save_model,
};
use randomized_smoothing::runtime::BackendTask;
use randomized_smoothing::workflow::train::{TrainConfig, train};

mod common;

type Failure = Box<dyn std::error::Error>;

const USAGE: &str = "cifar10 --data DIR --sigma S (--checkpoint FILE | --epochs E [--save FILE]) \
                     [--arch A] [--n0 N] [--n N] [--alpha A] [--batch B] [--skip K] [--max M] \
                     [--seed S] [--out FILE] [--backend B] [--device D]";

/// The run, as the flags give it.
struct Cifar10 {
    data: PathBuf,
    checkpoint: Option<PathBuf>,
    epochs: Option<usize>,
    save: Option<PathBuf>,
    arch: Architecture,
    run: common::CertifyRun,
}

fn main() -> Result<(), Failure> {
    // Reuse freed memory rather than fault in fresh pages for every layer's output.
    randomized_smoothing::runtime::keep_freed_memory();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = common::runtime_from_args(&mut args)?;
    let run = common::CertifyRun::from_args(&mut args, "cifar10", 400)?;
    let mut flag = |name: &str| common::take_flag::<String>(&mut args, name);
    let data = flag("--data")?.ok_or(USAGE)?.into();
    let checkpoint = flag("--checkpoint")?.map(PathBuf::from);
    let epochs = flag("--epochs")?.map(|e| e.parse()).transpose()?;
    let save = flag("--save")?.map(PathBuf::from);
    let arch = flag("--arch")?.unwrap_or("cifar_resnet20".into()).parse()?;
    common::no_more_args(&args, USAGE)?;
    if checkpoint.is_some() == epochs.is_some() {
        return Err(format!("give either --checkpoint or --epochs\nusage: {USAGE}").into());
    }
    println!("backend: {runtime}");
    runtime.run(Cifar10 {
        data,
        checkpoint,
        epochs,
        save,
        arch,
        run,
    })
}

impl BackendTask for Cifar10 {
    type Output = Result<(), Failure>;

    fn run<B: Backend>(self, device: B::Device) -> Result<(), Failure> {
        let test = load_cifar10(&self.data, false)?;
        let model = match (&self.checkpoint, self.epochs) {
            (Some(path), _) if path.extension().is_some_and(|e| e == "bpk") => {
                load_model(self.arch.init::<B>(10, &device)?, path)?
            }
            (Some(path), _) => PytorchCheckpoint::open(path)?.model::<B>(&device)?,
            (None, Some(epochs)) => self.train::<B>(epochs, &test, &device)?,
            (None, None) => unreachable!("main asks for one of the two"),
        };
        let radii = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5];
        self.run.run(model, &test, &device, &radii)
    }
}

impl Cifar10 {
    /// Trains `self.arch` on the training batches with Gaussian augmentation at `self.sigma`,
    /// reporting each epoch's accuracy under noise on the test images.
    fn train<B: Backend>(
        &self,
        epochs: usize,
        test: &Dataset,
        device: &B::Device,
    ) -> Result<Model<B>, Failure> {
        let train_set = load_cifar10(&self.data, true)?;
        // The backend's generator initializes the weights: seeded, the run is reproducible.
        B::seed(device, self.run.job.seed);
        let model = self.arch.init::<Autodiff<B>>(10, device)?;
        let params = TrainConfig::new(self.run.sigma)
            .epochs(epochs)
            .augment(4, true)
            .check()?;
        eprintln!(
            "training {} on {} images for {epochs} epochs",
            self.arch,
            train_set.len()
        );
        let trained = train(
            model,
            &train_set,
            test,
            &params,
            None,
            self.run.job.seed,
            |e| {
                eprintln!(
                    "  epoch {:>3}: {:.0} s, lr {:.4}, train acc {:.3}, test acc under noise {:.3}",
                    e.epoch,
                    e.time.as_secs_f64(),
                    e.lr,
                    e.train_acc,
                    e.test_acc
                );
            },
        )?
        .valid();
        if let Some(path) = &self.save {
            save_model(&trained, path)?;
            println!("saved {}", path.display());
        }
        Ok(trained)
    }
}
