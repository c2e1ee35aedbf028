//! Samples per second of the crate's certification sampling loop against PyTorch's, side by
//! side in one run, on the CPU or on a GPU.
//!
//! ```text
//! eval "$(bash .ci/libtorch.sh --python)"      # torch 2.9.0: the reference, and libtorch
//! cargo run --release --example side_by_side -- --python target/torch-venv/bin/python
//! cargo run --release --features tch --example side_by_side -- --python target/torch-venv/bin/python
//! # On an NVIDIA GPU, against PyTorch on the same GPU (its python needs a CUDA torch):
//! side_by_side --python python3 --backend cuda --device cuda:0 --precisions f32,f16,bf16 \
//!     --workloads cifar_resnet110,resnet50 --samples 20000
//! ```
//! Options: `--workloads a,b,...` (default: the five of the CPU speed issue; also `resnet50`),
//! `--repeats N` (default 5), `--threads N` (default: all cores, for both sides), `--batch N`
//! (default: the workload's), `--samples N` (noisy samples per timing; default: the
//! workload's, a few batches, sized for the CPU).
//!
//! With `--backend B` (and `--device D`, default cpu), the crate runs on that one backend in
//! each precision of `--precisions` (default f32; f16 and bf16 as `smoothing --precision`
//! runs them: batch norm folded, weights cast, the noise drawn and added in f32 and each batch
//! cast), and PyTorch runs on the same GPU when D is `cuda:K` (with `cudnn.benchmark`), else
//! on the CPU: in eval mode, folded, and under `torch.autocast` in each half precision asked
//! for. Each row adds the seconds per image that the paper's n = 100,000 (plus n0 = 100)
//! takes at that rate, beside the paper's 15 s (ResNet-110) and 110 s (ResNet-50) on an RTX
//! 2080 Ti.
//!
//! For each workload, the crate's `sample_counts` (noise, forward pass, arg-max, counts; batch
//! norm folded) runs on every CPU backend compiled in (Flex, NdArray, and LibTorch with the
//! `tch` feature), and `benches/reference/torch_sampling.py` runs the paper's `_sample_noise`
//! loop in PyTorch, as users run it (eval mode) and with batch norm folded by torch.fx, and
//! with the forward pass of ONNX Runtime (the model exported by `torch.onnx.export`, dynamic
//! batch, a CPU session with the same threads and spinning off), the fastest CPU runtime; the
//! same exported file also runs in the crate itself (`models::OnnxModel`, "ONNX file"). The
//! engines take turns: one warm-up each, then `repeats` rounds in which each engine is timed
//! once, so that drifts of the shared machine hit all of them alike. It prints the CPU, its
//! vector extensions and the instruction set of the crate's kernels (capped by
//! `RANDOMIZED_SMOOTHING_ISA=avx2` to measure the AVX2 path on an AVX-512 machine), the median
//! and the range of samples/s, the ratios of medians to PyTorch eval and to ONNX Runtime, and
//! the share of the cores' FMA peak at the clock /proc/cpuinfo reports that the model's
//! direct-convolution FLOPs at that rate are. Weights are random: speed does not depend on
//! them. Figures go in docs/benchmarks.md.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use randomized_smoothing::models::{
    Architecture, Cast, ImageClassifier, Model, OnnxModel, Precision, SmallCnnConfig,
};
use randomized_smoothing::runtime::{BackendKind, BackendTask, DeviceKind, Runtime};
use randomized_smoothing::{BaseClassifier, Gaussian, SmoothedClassifier};

type Failure = Box<dyn std::error::Error>;

/// A workload of the benchmark: a model, a batch size, and how many batches one timing runs.
#[derive(Clone, Copy)]
struct Workload {
    name: &'static str,
    batch: usize,
    batches: usize,
}

const WORKLOADS: [Workload; 6] = [
    Workload {
        name: "small_cnn_8x8_16",
        batch: 1000,
        batches: 10,
    },
    Workload {
        name: "small_cnn_28x28_16",
        batch: 400,
        batches: 5,
    },
    Workload {
        name: "small_cnn_28x28_32",
        batch: 400,
        batches: 3,
    },
    Workload {
        name: "cifar_resnet20",
        batch: 400,
        batches: 2,
    },
    Workload {
        name: "cifar_resnet110",
        batch: 400,
        batches: 1,
    },
    Workload {
        name: "resnet50",
        batch: 16,
        batches: 1,
    },
];

impl Workload {
    fn samples(&self) -> u64 {
        (self.batch * self.batches) as u64
    }

    /// The PyTorch modes to compare with: batch norm folded only where there is some.
    fn torch_modes(&self) -> &'static [&'static str] {
        if self.name.starts_with("small_cnn") {
            &["eval"]
        } else {
            &["eval", "folded"]
        }
    }

    /// FLOPs of one forward pass, counted as a direct convolution computes them (two per
    /// multiply-add of the convolutions and the linear head; normalization, pooling, biases
    /// and activations left out), so that a Winograd kernel could exceed the FMA peak.
    fn flops(&self) -> Result<f64, Failure> {
        // Multiply-adds of a k x k convolution to `side` x `side` outputs.
        let conv = |cin: usize, cout: usize, k: usize, side: usize| {
            (cin * cout * k * k * side * side) as f64
        };
        let macs = if let Some(rest) = self.name.strip_prefix("small_cnn_") {
            let (size, filters) = rest.split_once('_').ok_or("bad small_cnn name")?;
            let side: usize = size.split('x').next().ok_or("bad size")?.parse()?;
            let f: usize = filters.parse()?;
            conv(1, f, 3, side)
                + conv(f, f, 3, side)
                + conv(f, 2 * f, 3, side / 2)
                + (2 * f * 10) as f64
        } else if let Some(depth) = self.name.strip_prefix("cifar_resnet") {
            let blocks = (depth.parse::<usize>()? - 2) / 6;
            let mut macs = conv(3, 16, 3, 32);
            for stage in 0..3 {
                let (c, side) = (16 << stage, 32 >> stage);
                for block in 0..blocks {
                    let cin = if stage > 0 && block == 0 { c / 2 } else { c };
                    macs += conv(cin, c, 3, side) + conv(c, c, 3, side);
                    if cin != c {
                        macs += conv(cin, c, 1, side);
                    }
                }
            }
            macs + 64.0 * 10.0
        } else if self.name == "resnet50" {
            let mut macs = conv(3, 64, 7, 112);
            let mut inputs = 64;
            for (stage, blocks) in [3usize, 4, 6, 3].into_iter().enumerate() {
                let (planes, side) = (64 << stage, 56 >> stage);
                for block in 0..blocks {
                    // torchvision's v1.5: the stride on the 3x3 convolution, whose input is
                    // the previous stage's size in the first block.
                    macs += conv(
                        inputs,
                        planes,
                        1,
                        if stage > 0 && block == 0 {
                            2 * side
                        } else {
                            side
                        },
                    );
                    macs += conv(planes, planes, 3, side) + conv(planes, 4 * planes, 1, side);
                    if block == 0 {
                        macs += conv(inputs, 4 * planes, 1, side);
                    }
                    inputs = 4 * planes;
                }
            }
            macs + 2048.0 * 1000.0
        } else {
            return Err(format!("no FLOP count for {}", self.name).into());
        };
        Ok(2.0 * macs)
    }

    /// The crate's model for this workload, batch norm folded as `smoothing certify` does.
    fn model<B: Backend>(&self, device: &B::Device) -> Result<Model<B>, Failure> {
        if let Some(rest) = self.name.strip_prefix("small_cnn_") {
            let (size, filters) = rest.split_once('_').ok_or("bad small_cnn name")?;
            let side: usize = size.split('x').next().ok_or("bad size")?.parse()?;
            let config = SmallCnnConfig::new([1, side, side], 10).with_filters(filters.parse()?);
            return Ok(Model::SmallCnn(config.init(device)?));
        }
        let arch: Architecture = self.name.parse()?;
        Ok(arch
            .init::<B>(arch.default_classes(), device)?
            .fold_batch_norm())
    }
}

/// Times `samples` noisy samples of the crate's sampling loop on backend `B`.
type Timer = Box<dyn FnMut(u64) -> Result<f64, Failure>>;

fn crate_timer<B: Backend>(
    workload: &Workload,
    device: B::Device,
    precision: Precision,
) -> Result<Timer, Failure> {
    B::seed(&device, 0);
    let model = workload.model::<B>(&device)?;
    let x = Tensor::<B, 3>::random(
        ImageClassifier::input_shape(&model).to_vec(),
        Distribution::Default,
        &device,
    );
    let smoothed = SmoothedClassifier::new(Cast::module(model, precision), Gaussian::new(0.25)?);
    Ok(sampling_timer(smoothed, x, workload.batch))
}

/// Times `smoothed.sample_counts` at `x`, in batches of `batch`, a new noise stream per call.
fn sampling_timer<C: BaseClassifier<4> + 'static>(
    smoothed: SmoothedClassifier<C>,
    x: Tensor<C::Backend, 3>,
    batch: usize,
) -> Timer {
    let mut seed = 0u64;
    Box::new(move |samples| {
        let start = Instant::now();
        let counts = smoothed.sample_counts(x.clone(), samples, batch, next(&mut seed))?;
        let elapsed = start.elapsed().as_secs_f64();
        assert_eq!(counts.iter().sum::<u64>(), samples);
        Ok(elapsed)
    })
}

/// The PyTorch reference, kept running and asked for one timing at a time.
struct Reference {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    banner: String,
}

impl Reference {
    /// Starts the reference on `device` (`cpu` or `cuda:K`).
    fn start(python: &str, threads: usize, device: &str) -> Result<Self, Failure> {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/benches/reference/torch_sampling.py"
        );
        let mut child = Command::new(python)
            .args([script, "--serve", "--threads", &threads.to_string()])
            .args(["--device", device])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {python}: {e}"))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut banner = String::new();
        stdout.read_line(&mut banner)?;
        let banner = banner
            .trim()
            .strip_prefix("ready ")
            .ok_or_else(|| format!("the reference did not start: {banner:?}"))?
            .to_string();
        Ok(Self {
            child,
            stdin,
            stdout,
            banner,
        })
    }

    /// Writes the workload's PyTorch model to `path` as ONNX, exported as ONNX Runtime's
    /// engine exports it.
    fn export(&mut self, workload: &Workload, path: &std::path::Path) -> Result<(), Failure> {
        writeln!(self.stdin, "export {} {}", workload.name, path.display())?;
        self.stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        if line.trim() != "ok" {
            return Err(format!("the reference answered {line:?}").into());
        }
        Ok(())
    }

    fn time(&mut self, workload: &Workload, mode: &str, samples: u64) -> Result<f64, Failure> {
        writeln!(
            self.stdin,
            "{} {mode} {} {samples}",
            workload.name, workload.batch
        )?;
        self.stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        line.trim()
            .parse()
            .map_err(|_| format!("the reference answered {line:?}").into())
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Times one run of an engine, in seconds; the reference serves the PyTorch engines.
type Run = Box<dyn FnMut(&mut Reference) -> Result<f64, Failure>>;

/// One engine of the comparison and its samples/s figures.
struct Engine {
    label: String,
    run: Run,
    rates: Vec<f64>,
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The first value of `key` in /proc/cpuinfo.
fn cpuinfo(key: &str) -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .filter(|l| l.starts_with(key))
        .find_map(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// The CPU's model, its vector extensions, and the instruction set of the crate's kernels.
fn cpu_model() -> String {
    let name = cpuinfo("model name").unwrap_or_else(|| "unknown CPU".into());
    let flags = cpuinfo("flags").unwrap_or_default();
    let extensions: Vec<&str> = flags
        .split_whitespace()
        .filter(|f| {
            [
                "avx2",
                "fma",
                "avx512f",
                "avx512vl",
                "avx512_bf16",
                "avx512_vnni",
            ]
            .contains(f)
        })
        .collect();
    format!(
        "{name} ({}); the crate's kernels: {}",
        extensions.join(" "),
        randomized_smoothing::models::kernels::Isa::active()
    )
}

/// The FMA peak of `threads` cores at the clock /proc/cpuinfo reports, in FLOP/s, and how it
/// is reckoned: two 256-bit FMA pipes a core (8 lanes x 2 FLOP x 2 = 32 FLOP a cycle), as on
/// AMD's Zen 2 to Zen 4 (whose AVX-512 runs on the same pipes) and Intel's AVX2 cores.
fn fma_peak(threads: usize) -> (f64, String) {
    let mhz: f64 = cpuinfo("cpu MHz")
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    let peak = threads as f64 * 32.0 * mhz * 1e6;
    (
        peak,
        format!(
            "FMA peak {threads} cores x 32 FLOP/cycle x {:.2} GHz (/proc/cpuinfo) = {:.0} GFLOP/s",
            mhz / 1e3,
            peak / 1e9
        ),
    )
}

/// The crate's timers on the backend a [`Runtime`] names, one per precision.
struct Timers<'a> {
    workload: Workload,
    precisions: &'a [Precision],
}

impl BackendTask for Timers<'_> {
    type Output = Result<Vec<(Precision, Timer)>, Failure>;

    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        self.precisions
            .iter()
            .map(|&p| Ok((p, crate_timer::<B>(&self.workload, device.clone(), p)?)))
            .collect()
    }
}

/// The crate on `runtime` in each of `precisions`, then PyTorch (eval, folded, and autocast
/// in each half precision asked for).
fn engines_on(
    workload: Workload,
    samples: u64,
    runtime: Runtime,
    precisions: &[Precision],
) -> Result<Vec<Engine>, Failure> {
    let mut engines = Vec::new();
    for (precision, mut timer) in runtime.run(Timers {
        workload,
        precisions,
    })? {
        engines.push(Engine {
            label: format!("crate, {}, {precision}", runtime.backend()),
            run: Box::new(move |_| timer(samples)),
            rates: Vec::new(),
        });
    }
    let autocast = precisions.iter().filter_map(|p| match p {
        Precision::F32 => None,
        Precision::F16 => Some("autocast-f16"),
        Precision::Bf16 => Some("autocast-bf16"),
    });
    let on_cpu = matches!(runtime.device(), DeviceKind::Cpu);
    let modes = workload.torch_modes().iter().copied().chain(autocast);
    let modes = modes.chain(on_cpu.then_some("onnxruntime"));
    engines.extend(torch_engines(workload, modes, samples));
    Ok(engines)
}

/// PyTorch's engines for `workload`, one per reference mode.
fn torch_engines(
    workload: Workload,
    modes: impl Iterator<Item = &'static str>,
    samples: u64,
) -> impl Iterator<Item = Engine> {
    modes.map(move |mode| Engine {
        label: match mode {
            "onnxruntime" => ONNX_RUNTIME.to_string(),
            _ => format!("PyTorch, {mode}"),
        },
        run: Box::new(move |reference| reference.time(&workload, mode, samples)),
        rates: Vec::new(),
    })
}

/// Times the crate's sampling loop on the ONNX file at `path` (`models::OnnxModel`), on `B`.
fn onnx_timer<B: Backend>(
    workload: &Workload,
    path: &std::path::Path,
    device: B::Device,
) -> Result<Timer, Failure> {
    B::seed(&device, 0);
    let model = OnnxModel::<B, 4>::from_file(path, &device)?;
    let shape = BaseClassifier::input_shape(&model).to_vec();
    let x = Tensor::<B, 3>::random(shape, Distribution::Default, &device);
    let smoothed = SmoothedClassifier::new(model, Gaussian::new(0.25)?);
    Ok(sampling_timer(smoothed, x, workload.batch))
}

fn engines_for(
    workload: Workload,
    samples: u64,
    reference: &mut Reference,
) -> Result<Vec<Engine>, Failure> {
    let mut engines = Vec::new();
    let mut add_crate = |label: &str, mut timer: Timer| {
        engines.push(Engine {
            label: label.to_string(),
            run: Box::new(move |_| timer(samples)),
            rates: Vec::new(),
        })
    };
    let f32 = Precision::F32;
    add_crate(
        "crate, Flex",
        crate_timer::<burn::backend::Flex>(&workload, Default::default(), f32)?,
    );
    // The PyTorch model ONNX Runtime runs, as a file the crate interprets.
    let onnx = std::env::temp_dir().join(format!(
        "side-by-side-{}-{}.onnx",
        workload.name,
        std::process::id()
    ));
    reference.export(&workload, &onnx)?;
    add_crate(
        "crate, Flex, ONNX file",
        onnx_timer::<burn::backend::Flex>(&workload, &onnx, Default::default())?,
    );
    #[cfg(feature = "tch")]
    add_crate(
        "crate, LibTorch, ONNX file",
        onnx_timer::<burn::backend::LibTorch>(
            &workload,
            &onnx,
            burn::backend::libtorch::LibTorchDevice::Cpu,
        )?,
    );
    let _ = std::fs::remove_file(&onnx);
    #[cfg(feature = "ndarray")]
    add_crate(
        "crate, NdArray",
        crate_timer::<burn::backend::NdArray>(&workload, Default::default(), f32)?,
    );
    #[cfg(feature = "tch")]
    add_crate(
        "crate, LibTorch",
        crate_timer::<burn::backend::LibTorch>(
            &workload,
            burn::backend::libtorch::LibTorchDevice::Cpu,
            f32,
        )?,
    );
    let modes = workload
        .torch_modes()
        .iter()
        .copied()
        .chain(["onnxruntime"]);
    engines.extend(torch_engines(workload, modes, samples));
    Ok(engines)
}

/// The label of ONNX Runtime's engine: the workload's PyTorch model exported to ONNX, run by
/// an ONNX Runtime CPU session in the reference process.
const ONNX_RUNTIME: &str = "ONNX Runtime";

fn main() -> Result<(), Failure> {
    // Reuse freed memory rather than fault in fresh pages for every layer's output.
    randomized_smoothing::runtime::keep_freed_memory();
    let mut python = None;
    let mut names: Vec<String> = WORKLOADS[..5].iter().map(|w| w.name.to_string()).collect();
    let mut repeats = 5usize;
    let mut threads = std::thread::available_parallelism().map_or(1, usize::from);
    let mut backend: Option<BackendKind> = None;
    let mut device = DeviceKind::Cpu;
    let mut precisions = vec![Precision::F32];
    let mut samples: Option<u64> = None;
    let mut batch: Option<usize> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--python" => python = Some(value()?),
            "--workloads" => names = value()?.split(',').map(str::to_string).collect(),
            "--repeats" => repeats = value()?.parse()?,
            "--threads" => threads = value()?.parse()?,
            "--backend" => backend = Some(value()?.parse()?),
            "--device" => device = value()?.parse()?,
            "--precisions" => {
                precisions = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--samples" => samples = Some(value()?.parse()?),
            "--batch" => batch = Some(value()?.parse()?),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let python = python.ok_or("--python PATH is required: the interpreter with torch 2.9.0")?;
    // Both sides get the same threads: rayon (Flex, NdArray, the crate's noise) and OpenMP
    // (LibTorch) read these before their pools start.
    // SAFETY: no other thread exists yet.
    unsafe {
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
        std::env::set_var("OMP_NUM_THREADS", threads.to_string());
    }
    // One backend on one device, or every CPU backend compiled in.
    let runtime = backend.map(|b| Runtime::new(Some(b), device)).transpose()?;
    // CubeCL's compiled kernels and autotune results kept between runs, as `smoothing` keeps
    // them; the untimed first run of each engine pays for what is not yet kept.
    #[cfg(any(feature = "cuda", feature = "vulkan"))]
    if let Some(runtime) = runtime
        && runtime.compiles_kernels()
        && let Some(cache) = randomized_smoothing::runtime::KernelCache::user_default()
    {
        cache.install()?;
    }
    let torch_device = match device {
        DeviceKind::Cuda(k) => format!("cuda:{k}"),
        _ => "cpu".to_string(),
    };
    let mut reference = Reference::start(&python, threads, &torch_device)?;
    match runtime {
        Some(runtime) => println!(
            "crate: {runtime} ({}); CPU: {}; reference: {}",
            precisions
                .iter()
                .map(Precision::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            cpu_model(),
            reference.banner
        ),
        None => println!(
            "CPU: {}; {threads} threads each; {}",
            cpu_model(),
            reference.banner
        ),
    }
    let (peak, reckoning) = fma_peak(threads);
    println!(
        "median samples/s of {repeats} interleaved repeats (min-max); ratios of medians; {reckoning}; \
         share of it = samples/s x the model's direct-convolution FLOPs / peak\n"
    );
    println!(
        "| workload | batch | engine | samples/s | min-max | x PyTorch eval | x ONNX Runtime | FMA peak | s per image at n = 100,000 |"
    );
    println!("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for name in &names {
        let mut workload = *WORKLOADS
            .iter()
            .find(|w| w.name == name)
            .ok_or_else(|| format!("unknown workload {name}"))?;
        if let Some(batch) = batch {
            workload.batch = batch;
        }
        let flops = workload.flops()?;
        let samples = samples.unwrap_or_else(|| workload.samples());
        let mut engines = match runtime {
            Some(runtime) => engines_on(workload, samples, runtime, &precisions)?,
            None => engines_for(workload, samples, &mut reference)?,
        };
        // Progress on stderr, so that a run stopped at a time limit still shows what each
        // engine's first run cost (on a GPU, mostly compiling kernels) and the rates so far.
        for engine in &mut engines {
            let seconds = (engine.run)(&mut reference)?; // warm-up
            eprintln!(
                "{}: {}: warm-up {seconds:.2} s",
                workload.name, engine.label
            );
        }
        for round in 1..=repeats {
            for engine in &mut engines {
                let seconds = (engine.run)(&mut reference)?;
                engine.rates.push(samples as f64 / seconds);
                eprintln!(
                    "{}: {}: round {round}: {:.0} samples/s",
                    workload.name,
                    engine.label,
                    samples as f64 / seconds
                );
            }
        }
        let median_of = |label: &str| {
            engines
                .iter()
                .find(|e| e.label == label)
                .map(|e| median(&e.rates))
        };
        let baseline = median_of("PyTorch, eval").ok_or("no PyTorch baseline")?;
        let onnx = median_of(ONNX_RUNTIME);
        for engine in &engines {
            let lo = engine.rates.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = engine.rates.iter().copied().fold(0.0, f64::max);
            let m = median(&engine.rates);
            let to_onnx = onnx.map_or("-".to_string(), |o| format!("{:.2}x", m / o));
            println!(
                "| {} | {} | {} | {m:.0} | {lo:.0}-{hi:.0} | {:.2}x | {to_onnx} | {:.2} | {:.2} |",
                workload.name,
                workload.batch,
                engine.label,
                m / baseline,
                m * flops / peak,
                100_100.0 / m
            );
        }
    }
    Ok(())
}

/// Steps `seed` and returns it: a fresh noise stream per call.
fn next(seed: &mut u64) -> u64 {
    *seed += 1;
    *seed
}
