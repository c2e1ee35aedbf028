//! ImageNet end to end: certify validation images with the paper's ImageNet ResNet-50 and
//! print certified accuracy.
//!
//! ```text
//! # the paper's model (its models/imagenet/resnet50/noise_0.25/checkpoint.pth.tar), every
//! # 100th validation image as in the paper; a GPU is all but required at n = 100,000
//! cargo run --release --features cuda --example imagenet -- --data imagenet/val \
//!     --checkpoint checkpoint.pth.tar --sigma 0.25 --skip 100
//! ```
//! `--data` is a folder with one subfolder of JPEG or PNG images per class, in the class
//! order of the model's outputs (sorted names, as torchvision's `ImageFolder`; ImageNet's
//! `n01440764` ... `n15075141`). Images are resized (shorter side 256) and center-cropped
//! (224), as the paper's code does. Other options, with their defaults: `--resize 256`,
//! `--crop 224`, `--n0 100`, `--n 100000`, `--alpha 0.001`, `--batch 100`, `--skip 1`,
//! `--max` (all), `--seed 0`, `--out target/imagenet/certify_sigma_S.tsv`, and
//! `--backend`/`--device` as in `smoothing`. The log is the paper's TSV format, written row
//! by row; run the same command again to resume it.
//!
//! `--random-weights` in place of `--checkpoint` runs the same pipeline on a ResNet-50 with
//! its initial random weights: a dry run of the data path and the speed, whose certificates
//! mean nothing (the CI test runs it on a few generated images).

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use randomized_smoothing::data::{ImageFolder, ImageSource};
use randomized_smoothing::models::{Architecture, PytorchCheckpoint};
use randomized_smoothing::runtime::BackendTask;
use randomized_smoothing::workflow::jobs::{Job, Selection, Shard, certify_dataset};
use randomized_smoothing::{CertifyParams, Gaussian, SmoothedClassifier};

mod common;

type Failure = Box<dyn std::error::Error>;

const USAGE: &str = "imagenet --data DIR --sigma S (--checkpoint FILE | --random-weights) \
                     [--resize R] [--crop C] [--n0 N] [--n N] [--alpha A] [--batch B] \
                     [--skip K] [--max M] [--seed S] [--out FILE] [--backend B] [--device D]";

/// The run, as the flags give it.
struct Imagenet {
    data: ImageFolder,
    sigma: f64,
    /// `None` for `--random-weights`.
    checkpoint: Option<PathBuf>,
    certify: CertifyParams,
    job: Job,
}

fn main() -> Result<(), Failure> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = common::runtime_from_args(&mut args)?;
    let random_weights = match args.iter().position(|a| a == "--random-weights") {
        Some(i) => {
            args.remove(i);
            true
        }
        None => false,
    };
    let mut flag = |name: &str| common::take_flag::<String>(&mut args, name);
    let folder: PathBuf = flag("--data")?.ok_or(USAGE)?.into();
    let sigma: f64 = flag("--sigma")?.ok_or(USAGE)?.parse()?;
    let checkpoint = flag("--checkpoint")?.map(PathBuf::from);
    let number = |value: Option<String>, default: u64| value.map_or(Ok(default), |v| v.parse());
    let resize = number(flag("--resize")?, 256)? as u32;
    let crop = number(flag("--crop")?, 224)? as u32;
    let certify = CertifyParams::default()
        .n0(number(flag("--n0")?, 100)?)
        .n(number(flag("--n")?, 100_000)?)
        .alpha(flag("--alpha")?.map_or(Ok(0.001), |a| a.parse())?)
        .batch_size(number(flag("--batch")?, 100)? as usize);
    let skip = number(flag("--skip")?, 1)? as usize;
    let max = flag("--max")?.map(|m| m.parse()).transpose()?;
    let seed = number(flag("--seed")?, 0)?;
    let output = flag("--out")?.map_or_else(
        || PathBuf::from(format!("target/imagenet/certify_sigma_{sigma}.tsv")),
        PathBuf::from,
    );
    common::no_more_args(&args, USAGE)?;
    if checkpoint.is_some() == random_weights {
        return Err(format!("give either --checkpoint or --random-weights\nusage: {USAGE}").into());
    }
    if let Some(dir) = output.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let data = ImageFolder::open(&folder)?.with_sizes(resize, crop)?;
    println!("backend: {runtime}");
    println!(
        "{}: {} images of {} classes, {crop}x{crop}",
        folder.display(),
        data.len(),
        data.classes().len()
    );
    runtime.run(Imagenet {
        data,
        sigma,
        checkpoint,
        certify,
        job: Job {
            selection: Selection::new(skip, max, Shard::whole())?,
            seed,
            output,
        },
    })
}

impl BackendTask for Imagenet {
    type Output = Result<(), Failure>;

    fn run<B: Backend>(self, device: B::Device) -> Result<(), Failure> {
        let model = match &self.checkpoint {
            Some(path) => PytorchCheckpoint::open(path)?.model::<B>(&device)?,
            None => {
                eprintln!("random weights: a dry run, its certificates mean nothing");
                B::seed(&device, self.job.seed);
                let resnet50 = Architecture::ResNet50;
                resnet50.init::<B>(resnet50.default_classes(), &device)?
            }
        };
        // Inference only: batch norm folded into the convolutions.
        let smoothed = SmoothedClassifier::new(model.fold_batch_norm(), Gaussian::new(self.sigma)?);
        let certify = self.certify.check()?;
        let total = self.job.selection.indices(self.data.len()).len();
        eprintln!(
            "certifying {total} images: sigma = {}, n0 = {}, n = {}, alpha = {}",
            self.sigma,
            certify.n0(),
            certify.n(),
            certify.alpha()
        );
        let rows = certify_dataset(
            &smoothed,
            &self.data,
            &certify,
            &self.job,
            &device,
            |row, done, total| {
                let class = row.predict.map_or("abstain".into(), |c| c.to_string());
                eprintln!(
                    "  {done}/{total}: image {} label {} predicted {class} radius {:.3} in {:.1} s",
                    row.idx,
                    row.label,
                    row.radius,
                    row.time.as_secs_f64()
                );
            },
        )?;
        println!("log: {}\n", self.job.output.display());
        let outcomes: Vec<_> = rows.iter().map(|r| r.outcome()).collect();
        let radii = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0];
        common::print_certified_accuracy(&outcomes, &radii, certify.alpha())
    }
}
