//! The smoothed classifier that `certify` and `predict` run: the model, behind a denoiser
//! and in a precision if asked, and what else the two commands share.

use burn::tensor::backend::Backend;
use randomized_smoothing::data::ImageSource;
use randomized_smoothing::models::{
    Cast, Denoised, Normalize, OnnxModel, Precision, cast_weights, load_denoiser,
};
use randomized_smoothing::workflow::jobs::Job;
use randomized_smoothing::workflow::warm_up::{compiles_kernels, warm_up};
use randomized_smoothing::{BaseClassifier, Gaussian, SmoothedClassifier};

use super::Failure;
use super::common::{DataArgs, JobArgs, ModelArgs, Progress, fits_data, load};

/// The base classifier of `certify` and `predict`: the model, or the model behind a
/// denoiser (`--denoiser`), chosen at run time.
pub(crate) type Base<B> = Box<dyn BaseClassifier<4, Backend = B>>;

/// The model of `--model`, behind the denoiser of `--denoiser` if given, in the precision
/// of `--precision`. A denoiser
/// trained for another sigma than `sigma` is allowed (the certificate holds for any base
/// classifier) but said.
pub(crate) fn load_base<B: Backend>(
    args: &ModelArgs,
    data: &DataArgs,
    sample: &dyn ImageSource,
    sigma: f64,
    device: &B::Device,
) -> Result<Cast<Base<B>>, Failure> {
    let precision = args.precision;
    precision.check_backend::<B>(device)?;
    if args.mean.is_some() && !args.is_onnx() {
        return Err(
            "--mean and --std normalize the inputs of an ONNX --model; the crate's own \
                    models carry their normalization"
                .into(),
        );
    }
    if args.is_onnx() {
        return load_onnx(args, data, sample, device);
    }
    let model = load(args, data, sample, device)?;
    // Batch norms folded before the cast: a running variance underflows in f16.
    let model = match precision {
        Precision::F32 => model,
        p => cast_weights(model.fold_batch_norm(), p),
    };
    let Some(path) = &args.denoiser else {
        return Ok(Cast::inputs(Box::new(model) as Base<B>, precision));
    };
    let (denoiser, card) = load_denoiser::<B>(path, device)?;
    let denoiser = cast_weights(denoiser, precision);
    if let Some(trained) = card.training.as_ref().filter(|t| t.sigma != sigma) {
        eprintln!(
            "note: {} was trained to remove noise of sigma {}, this run smooths at {sigma}",
            path.display(),
            trained.sigma
        );
    }
    Ok(Cast::inputs(
        Box::new(Denoised::new(denoiser, model)?) as Base<B>,
        precision,
    ))
}

/// An ONNX model of `--model`, as it is: in float32 and without a denoiser, which this
/// version runs only in front of the crate's own models.
fn load_onnx<B: Backend>(
    args: &ModelArgs,
    data: &DataArgs,
    sample: &dyn ImageSource,
    device: &B::Device,
) -> Result<Cast<Base<B>>, Failure> {
    if args.precision != Precision::F32 {
        return Err(format!(
            "--precision {} casts the crate's own models; an ONNX model runs in float32",
            args.precision
        )
        .into());
    }
    if args.denoiser.is_some() {
        return Err("--denoiser goes in front of the crate's own models, not an ONNX file".into());
    }
    let model = load_onnx_model(args, data, sample, device)?;
    Ok(Cast::inputs(Box::new(model) as Base<B>, Precision::F32))
}

/// The ONNX file of `--model`, behind `--mean`/`--std` if given, refused unless it fits the
/// data; `attack` loads it on an autodiff backend.
pub(crate) fn load_onnx_model<B: Backend>(
    args: &ModelArgs,
    data: &DataArgs,
    sample: &dyn ImageSource,
    device: &B::Device,
) -> Result<OnnxModel<B, 4>, Failure> {
    if args.arch.is_some() || args.filters.is_some() {
        return Err(
            "--arch and --filters build the crate's own models; an ONNX file holds its graph"
                .into(),
        );
    }
    let mut model = OnnxModel::<B, 4>::from_file(&args.model, device)?;
    if let (Some(mean), Some(std)) = (&args.mean, &args.std) {
        model = model.with_normalization(Normalize::new(mean, std)?)?;
    }
    fits_data(args, data, sample, &model)?;
    Ok(model)
}

/// What `certify` and `predict` share: the data split, the smoothed model, the job and its
/// progress bar.
pub(crate) struct Run<B: Backend> {
    pub(crate) data: Box<dyn ImageSource>,
    pub(crate) smoothed: SmoothedClassifier<Cast<Base<B>>>,
    pub(crate) job: Job,
    pub(crate) progress: Progress,
}

impl<B: Backend> Run<B> {
    pub(crate) fn new(
        command: &str,
        data: &DataArgs,
        model: &ModelArgs,
        job: &JobArgs,
        samples_per_row: u64,
        device: &B::Device,
    ) -> Result<Self, Failure> {
        let split = data.load(job.split, model.card()?.as_ref())?;
        let every = job.progress_every()?;
        let sigma = job.sigma()?;
        let smoothed = SmoothedClassifier::new(
            load_base(model, data, &*split, sigma, device)?,
            Gaussian::new(sigma)?,
        );
        let job = job.job()?;
        let total = job.selection.indices(split.len()).len();
        let progress = Progress::new(command, total, samples_per_row, every);
        Ok(Self {
            data: split,
            smoothed,
            job,
            progress,
        })
    }

    /// Before the first row, on a backend that compiles kernels (unless `--no-warm-up`):
    /// one forward pass of each batch size the job can run, each example drawing
    /// `samples_per_input` in turn; says what it ran and restarts the progress clock.
    pub(crate) fn warm_up(
        &mut self,
        args: &JobArgs,
        samples_per_input: &[u64],
        device: &B::Device,
    ) -> Result<(), Failure> {
        if args.no_warm_up || !compiles_kernels::<B>(device) {
            return Ok(());
        }
        let warm = warm_up(
            &self.smoothed,
            &*self.data,
            &self.job,
            samples_per_input,
            args.pack,
            args.batch,
            device,
        )?;
        let sizes: Vec<String> = warm.batch_sizes.iter().map(usize::to_string).collect();
        self.progress.say(format!(
            "warm-up: batch sizes {} in {:.1} s",
            sizes.join(", "),
            warm.elapsed.as_secs_f64()
        ));
        self.progress.restart();
        Ok(())
    }
}
