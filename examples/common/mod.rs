//! What the examples share: the backend and device flags.

use randomized_smoothing::runtime::{DeviceKind, Runtime};

/// Takes `--backend NAME` and `--device DEVICE` out of `args` and checks them: the
/// [`Runtime`] the example runs on. Defaults: the CPU (`cuda:0` in a build with the `cuda`
/// feature) and its default backend.
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
