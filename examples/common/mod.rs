//! What the examples share: the backend and device flags.

use randomized_smoothing::runtime::{DeviceKind, Runtime};

/// Takes `--backend NAME` and `--device DEVICE` out of `args` and checks them: the
/// [`Runtime`] the example runs on. Defaults: the CPU (`cuda:0` in a build with the `cuda`
/// feature) and its default backend.
#[allow(dead_code)] // The quickstart runs on Flex only.
pub fn runtime_from_args(args: &mut Vec<String>) -> Result<Runtime, Box<dyn std::error::Error>> {
    let mut take = |flag: &str| -> Result<Option<String>, String> {
        match args.iter().position(|a| a == flag) {
            None => Ok(None),
            Some(i) if i + 1 < args.len() => {
                let value = args.remove(i + 1);
                args.remove(i);
                Ok(Some(value))
            }
            Some(_) => Err(format!("{flag} needs a value")),
        }
    };
    let backend = take("--backend")?.map(|b| b.parse()).transpose()?;
    let device = match take("--device")? {
        Some(d) => d.parse()?,
        None => DeviceKind::preferred(),
    };
    let runtime = Runtime::new(backend, device)?;
    // CubeCL's compiled kernels and autotune results kept between runs, as `smoothing` keeps
    // them (`runtime::KernelCache`).
    #[cfg(any(feature = "cuda", feature = "vulkan"))]
    if runtime.compiles_kernels()
        && let Some(cache) = randomized_smoothing::runtime::KernelCache::user_default()
    {
        cache.install()?;
    }
    Ok(runtime)
}

/// Takes `--name VALUE` out of `args` and parses it; `None` if the flag is absent.
#[allow(dead_code)] // Not every example has flags of its own.
pub fn take_flag<T>(
    args: &mut Vec<String>,
    name: &str,
) -> Result<Option<T>, Box<dyn std::error::Error>>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let Some(i) = args.iter().position(|a| a == name) else {
        return Ok(None);
    };
    if i + 1 >= args.len() {
        return Err(format!("{name} needs a value").into());
    }
    let value = args.remove(i + 1);
    args.remove(i);
    value
        .parse()
        .map(Some)
        .map_err(|e| format!("{name} {value}: {e}").into())
}

/// Fails on anything left in `args` after an example took its flags: a misspelt flag must not
/// be silently ignored.
#[allow(dead_code)]
pub fn no_more_args(args: &[String], usage: &str) -> Result<(), Box<dyn std::error::Error>> {
    match args.first() {
        None => Ok(()),
        Some(arg) => Err(format!("unexpected argument {arg}\nusage: {usage}").into()),
    }
}

/// Prints certified accuracy at `radii` with its Appendix D lower bound (rho = 0.001) as a
/// Markdown table, from the outcomes of a certification at level `alpha`.
#[allow(dead_code)]
pub fn print_certified_accuracy(
    outcomes: &[randomized_smoothing::certificate::accuracy::Outcome],
    radii: &[f64],
    alpha: f64,
) -> Result<(), Box<dyn std::error::Error>> {
    use randomized_smoothing::certificate::accuracy::{
        AccuracyBound, approximate_certified_accuracy, certified_accuracy_lower_bound,
    };
    let approx = approximate_certified_accuracy(outcomes, radii)?;
    let kind = AccuracyBound::default();
    println!(
        "| radius | certified accuracy | lower bound (Appendix D, {}, rho = 0.001) |",
        kind.name()
    );
    println!("| --- | --- | --- |");
    for (r, a) in radii.iter().zip(&approx) {
        let m = outcomes.len() as u64;
        let bound = certified_accuracy_lower_bound(*a, m, alpha, 0.001, kind)?;
        println!("| {r:.2} | {a:.3} | {bound:.3} |");
    }
    Ok(())
}

/// What the data-set examples (`cifar10`, `imagenet`) share: sigma, the CERTIFY flags and the
/// job, and the certification run with its report.
#[allow(dead_code)]
pub struct CertifyRun {
    pub sigma: f64,
    pub certify: randomized_smoothing::CertifyConfig,
    pub job: randomized_smoothing::workflow::jobs::Job,
}

#[allow(dead_code)]
impl CertifyRun {
    /// Takes `--sigma` (required), `--n0` (100), `--n` (100,000), `--alpha` (0.001), `--batch`
    /// (`batch`), `--skip` (1), `--max` (all), `--seed` (0) and `--out`
    /// (`target/NAME/certify_sigma_S.tsv`, its folder created) out of `args`.
    pub fn from_args(
        args: &mut Vec<String>,
        name: &str,
        batch: usize,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        use randomized_smoothing::workflow::jobs::{Job, Selection, Shard};
        let mut flag = |flag: &str| take_flag::<String>(args, flag);
        let sigma: f64 = flag("--sigma")?.ok_or("--sigma S is required")?.parse()?;
        let number = |value: Option<String>, default: u64| value.map_or(Ok(default), |v| v.parse());
        let certify = randomized_smoothing::CertifyConfig::default()
            .n0(number(flag("--n0")?, 100)?)
            .n(number(flag("--n")?, 100_000)?)
            .alpha(flag("--alpha")?.map_or(Ok(0.001), |a| a.parse())?)
            .batch_size(number(flag("--batch")?, batch as u64)? as usize);
        let skip = number(flag("--skip")?, 1)? as usize;
        let max = flag("--max")?.map(|m| m.parse()).transpose()?;
        let seed = number(flag("--seed")?, 0)?;
        let output = flag("--out")?.map_or_else(
            || std::path::PathBuf::from(format!("target/{name}/certify_sigma_{sigma}.tsv")),
            std::path::PathBuf::from,
        );
        if let Some(dir) = output.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let job = Job {
            selection: Selection::new(skip, max, Shard::whole())?,
            seed,
            output,
        };
        Ok(Self {
            sigma,
            certify,
            job,
        })
    }

    /// Certifies the job's images of `data` with `model` (batch norm folded, inference only)
    /// smoothed at sigma, printing each row as it is logged, then certified accuracy at
    /// `radii` with its Appendix D lower bound.
    pub fn run<B: burn::tensor::backend::Backend, S>(
        &self,
        model: randomized_smoothing::models::Model<B>,
        data: &S,
        device: &B::Device,
        radii: &[f64],
    ) -> Result<(), Box<dyn std::error::Error>>
    where
        S: randomized_smoothing::data::ImageSource + ?Sized,
    {
        use randomized_smoothing::{Gaussian, SmoothedClassifier};
        let smoothed = SmoothedClassifier::new(model.fold_batch_norm(), Gaussian::new(self.sigma)?);
        let certify = self.certify.check()?;
        let total = self.job.selection.indices(data.len()).len();
        eprintln!(
            "certifying {total} images: sigma = {}, n0 = {}, n = {}, alpha = {}",
            self.sigma,
            certify.n0(),
            certify.n(),
            certify.alpha()
        );
        let rows = randomized_smoothing::workflow::jobs::certify_dataset(
            &smoothed,
            data,
            &certify,
            &self.job,
            device,
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
        print_certified_accuracy(&outcomes, radii, certify.alpha())
    }
}
