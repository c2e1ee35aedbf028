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

mod common;

type Failure = Box<dyn std::error::Error>;

const USAGE: &str = "imagenet --data DIR --sigma S (--checkpoint FILE | --random-weights) \
                     [--resize R] [--crop C] [--n0 N] [--n N] [--alpha A] [--batch B] \
                     [--skip K] [--max M] [--seed S] [--out FILE] [--backend B] [--device D]";

/// The run, as the flags give it.
struct Imagenet {
    data: ImageFolder,
    /// `None` for `--random-weights`.
    checkpoint: Option<PathBuf>,
    run: common::CertifyRun,
}

fn main() -> Result<(), Failure> {
    // Reuse freed memory rather than fault in fresh pages for every layer's output.
    randomized_smoothing::runtime::keep_freed_memory();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = common::runtime_from_args(&mut args)?;
    let random_weights = match args.iter().position(|a| a == "--random-weights") {
        Some(i) => {
            args.remove(i);
            true
        }
        None => false,
    };
    let run = common::CertifyRun::from_args(&mut args, "imagenet", 100)?;
    let mut flag = |name: &str| common::take_flag::<String>(&mut args, name);
    let folder: PathBuf = flag("--data")?.ok_or(USAGE)?.into();
    let checkpoint = flag("--checkpoint")?.map(PathBuf::from);
    let size = |value: Option<String>, default: u32| value.map_or(Ok(default), |v| v.parse());
    let resize = size(flag("--resize")?, 256)?;
    let crop = size(flag("--crop")?, 224)?;
    common::no_more_args(&args, USAGE)?;
    if checkpoint.is_some() == random_weights {
        return Err(format!("give either --checkpoint or --random-weights\nusage: {USAGE}").into());
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
        checkpoint,
        run,
    })
}

impl BackendTask for Imagenet {
    type Output = Result<(), Failure>;

    fn run<B: Backend>(self, device: B::Device) -> Result<(), Failure> {
        let model = match &self.checkpoint {
            Some(path) => PytorchCheckpoint::open(path)?.model::<B>(&device)?,
            None => {
                eprintln!("random weights: a dry run, its certificates mean nothing");
                B::seed(&device, self.run.job.seed);
                let resnet50 = Architecture::ResNet50;
                resnet50.init::<B>(resnet50.default_classes(), &device)?
            }
        };
        let radii = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0];
        self.run.run(model, &self.data, &device, &radii)
    }
}
