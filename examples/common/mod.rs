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
    Ok(Runtime::new(backend, device)?)
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
    println!("| radius | certified accuracy | lower bound (Appendix D, rho = 0.001) |");
    println!("| --- | --- | --- |");
    for (r, a) in radii.iter().zip(&approx) {
        let m = outcomes.len() as u64;
        let bound = certified_accuracy_lower_bound(*a, m, alpha, 0.001, AccuracyBound::Binomial)?;
        println!("| {r:.2} | {a:.3} | {bound:.3} |");
    }
    Ok(())
}
