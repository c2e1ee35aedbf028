//! The `smoothing` program end to end: train, certify (sharded and whole), merge, predict,
//! analyze, attack. Kept small: a 1-epoch model, a few examples, n = 200.
#![cfg(feature = "cli")]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use randomized_smoothing::workflow::manifest::Manifest;

mod common;
use common::{rows_without_time, swapped};

/// A fresh folder for one test's runs.
fn scratch(name: &str) -> PathBuf {
    common::scratch_dir(&format!("cli-{name}"))
}

fn smoothing(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_smoothing"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "smoothing {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `smoothing` in `dir` with `args`, which must succeed; returns its stderr (not a
/// terminal here, as in a batch job).
fn smoothing_stderr(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_smoothing"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "smoothing {args:?} failed:\n{stderr}");
    stderr
}

/// Runs `smoothing` in `dir` with `args`, which must fail; returns its stderr.
fn refused<S: AsRef<OsStr>>(dir: &Path, args: impl IntoIterator<Item = S>) -> String {
    let args: Vec<S> = args.into_iter().collect();
    let out = Command::new(env!("CARGO_BIN_EXE_smoothing"))
        .current_dir(dir)
        .args(&args)
        .output()
        .unwrap();
    let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
    assert!(!out.status.success(), "smoothing {shown:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn train_certify_shards_merge_predict_analyze() {
    let dir = scratch("workflow");
    train_digits(&dir, "run");
    assert!(dir.join("run/model.bpk").exists());
    assert!(dir.join("run/checkpoints/log.tsv").exists());

    let certify = |extra: &[&str]| smoothing(&dir, &certify_args("0.25", extra));
    certify(&["--out", "whole.tsv"]);
    certify(&["--shard", "0/2", "--out", "s0.tsv"]);
    certify(&["--shard", "1/2", "--out", "s1.tsv"]);
    smoothing(&dir, &["merge", "--out", "merged.tsv", "s1.tsv", "s0.tsv"]);
    let whole = rows_without_time(&dir.join("whole.tsv"));
    assert_eq!(whole.len(), 7, "{whole:?}");
    assert_eq!(whole[0], "idx\tlabel\tpredict\tradius\tcorrect");
    assert!(whole[1].starts_with("0\t"));
    assert!(whole[2].starts_with("7\t"));
    assert_eq!(rows_without_time(&dir.join("merged.tsv")), whole);
    // The merged shards carry the manifest the whole run wrote.
    let manifest = |log: &str| std::fs::read_to_string(dir.join(format!("{log}.manifest.json")));
    assert_eq!(
        manifest("merged.tsv").unwrap(),
        manifest("whole.tsv").unwrap()
    );
    assert!(
        manifest("whole.tsv")
            .unwrap()
            .contains("\"sigma\": \"0.25\"")
    );

    // A rerun into the same log with another sigma is refused, naming the field, and leaves
    // the log as it was (it used to append rows certified at the other sigma).
    let before = std::fs::read(dir.join("whole.tsv")).unwrap();
    let stderr = refused(&dir, certify_args("0.5", &["--out", "whole.tsv"]));
    assert!(
        stderr.contains("sigma: the log has 0.25, this run 0.5"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(dir.join("whole.tsv")).unwrap(), before);
    // The same settings resume, with nothing left to do.
    certify(&["--out", "whole.tsv"]);
    assert_eq!(std::fs::read(dir.join("whole.tsv")).unwrap(), before);
    // status: rows done and expected per shard, the time left, missing shards. A shard cut
    // back by a row reads as in progress.
    let text = std::fs::read_to_string(dir.join("s1.tsv")).unwrap();
    let cut = &text[..text.trim_end().rfind('\n').unwrap() + 1];
    std::fs::write(dir.join("p1.tsv"), cut).unwrap();
    Manifest::of_log(&dir.join("s1.tsv"))
        .unwrap()
        .unwrap()
        .write_beside(&dir.join("p1.tsv"))
        .unwrap();
    let status = smoothing(&dir, &["status", "s0.tsv", "p1.tsv"]);
    assert!(status.contains("shard 0/2: 3/3 rows, done"), "{status}");
    assert!(status.contains("shard 1/2: 2/3 rows, "), "{status}");
    assert!(status.contains(" s per row, eta "), "{status}");
    assert!(
        status.contains("total: 5/6 rows in 2 of 2 shards"),
        "{status}"
    );
    let status = smoothing(&dir, &["status", "s0.tsv", "nowhere.tsv"]);
    assert!(
        status.contains("missing shards (no log or manifest): 1/2"),
        "{status}"
    );
    // Shards of different runs do not merge.
    smoothing(
        &dir,
        &certify_args("0.5", &["--shard", "1/2", "--out", "h1.tsv"]),
    );
    let stderr = refused(&dir, ["merge", "--out", "mixed.tsv", "s0.tsv", "h1.tsv"]);
    assert!(stderr.contains("sigma"), "{stderr}");

    // The CPU backends draw the same host noise stream: NdArray, given the same seeds, sees
    // the same noisy inputs as Flex (the default), so only floating-point rounding in the
    // network can move a count. Same predictions, radii within 0.02.
    certify(&["--backend", "ndarray", "--out", "ndarray.tsv"]);
    let ndarray = rows_without_time(&dir.join("ndarray.tsv"));
    assert_eq!(ndarray.len(), whole.len());
    for (a, b) in whole.iter().zip(&ndarray).skip(1) {
        let (a, b): (Vec<&str>, Vec<&str>) = (a.split('\t').collect(), b.split('\t').collect());
        assert_eq!(
            (a[0], a[1], a[2], a[4]),
            (b[0], b[1], b[2], b[4]),
            "{a:?} vs {b:?}"
        );
        let (ra, rb): (f64, f64) = (a[3].parse().unwrap(), b[3].parse().unwrap());
        assert!((ra - rb).abs() <= 0.02, "{a:?} vs {b:?}");
    }
    // Each noisy copy on the CPU is a function of the example's seed and its number alone:
    // another batch size gives the same rows.
    smoothing(
        &dir,
        &swapped(
            &certify_args("0.25", &["--out", "b37.tsv"]),
            &[("100", "37")],
        ),
    );
    assert_eq!(rows_without_time(&dir.join("b37.tsv")), whole);
    // And so do examples whose samples share forward passes.
    certify(&["--pack", "4", "--out", "packed.tsv"]);
    assert_eq!(rows_without_time(&dir.join("packed.tsv")), whole);

    // Half precision runs on LibTorch (and CUDA): the crate's CPU kernels compute in f32,
    // so Flex refuses it. On LibTorch the bf16 network answers as the f32 one on the same
    // noisy inputs, but for near ties, and the manifest says which precision ran.
    let flex = [
        "--backend",
        "flex",
        "--precision",
        "bf16",
        "--out",
        "never.tsv",
    ];
    let stderr = refused(&dir, certify_args("0.25", &flex));
    assert!(
        stderr.contains("runs on libtorch, cuda or vulkan"),
        "{stderr}"
    );
    if cfg!(feature = "tch") {
        certify(&[
            "--backend",
            "libtorch",
            "--precision",
            "bf16",
            "--out",
            "bf16.tsv",
        ]);
        let half = rows_without_time(&dir.join("bf16.tsv"));
        assert_eq!(half.len(), whole.len());
        let same = half
            .iter()
            .zip(&whole)
            .filter(|(a, b)| a.split('\t').nth(2) == b.split('\t').nth(2))
            .count();
        assert!(same + 1 >= whole.len(), "{half:?} against {whole:?}");
        let manifest = Manifest::of_log(&dir.join("bf16.tsv")).unwrap().unwrap();
        assert_eq!(manifest.settings()["precision"], "bf16");
    }

    // A backend that cannot run on the device, or is not compiled in, is refused up front.
    for (flags, message) in [
        (
            ["--backend", "ndarray", "--device", "cuda:0"],
            "does not run on cuda:0",
        ),
        (["--backend", "flex", "--device", "gpu"], "unknown device"),
    ] {
        let certify = ["certify", "--dataset", "digits", "--model", "run/model.bpk"];
        let job = ["--sigma", "0.25", "--out", "never.tsv"];
        let stderr = refused(&dir, certify.iter().chain(&job).chain(&flags));
        assert!(stderr.contains(message), "{flags:?}: {stderr}");
    }
    assert!(!dir.join("never.tsv").exists());

    // Flags that contradict the model file, a model for other images, and a model file with
    // a changed byte are refused before any row is written.
    for (flags, message) in [
        (
            vec!["--filters", "16"],
            "holds a small CNN of 32 filters, but --filters says 16",
        ),
        (
            vec!["--arch", "cifar_resnet20"],
            "holds a small_cnn, but --arch says cifar_resnet20",
        ),
    ] {
        let mut args = certify_args("0.25", &["--out", "never.tsv"]);
        args.extend(flags);
        let stderr = refused(&dir, &args);
        assert!(stderr.contains(message), "{stderr}");
    }
    let resnet = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/models/cifar_resnet20.zip.pth.tar")
        .display()
        .to_string();
    let args = swapped(
        &certify_args("0.25", &["--out", "never.tsv"]),
        &[("run/model.bpk", resnet.as_str())],
    );
    let stderr = refused(&dir, &args);
    assert!(
        stderr.contains("takes 3x32x32 images, the digits data are 1x8x8"),
        "{stderr}"
    );
    let mut bytes = std::fs::read(dir.join("run/model.bpk")).unwrap();
    let at = bytes.len() / 2; // inside a weight tensor
    bytes[at] ^= 0x10;
    std::fs::write(dir.join("flipped.bpk"), &bytes).unwrap();
    let args = swapped(
        &certify_args("0.25", &["--out", "never.tsv"]),
        &[("run/model.bpk", "flipped.bpk")],
    );
    let stderr = refused(&dir, &args);
    assert!(stderr.contains("flipped.bpk is corrupted"), "{stderr}");
    assert!(!dir.join("never.tsv").exists());

    // Without a terminal (a batch job) progress comes as lines on stderr: every example
    // with --progress-every 0, with the rate and the time left.
    let stderr = smoothing_stderr(
        &dir,
        &certify_args("0.25", &["--progress-every", "0", "--out", "progress.tsv"]),
    );
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("certify: "))
        .collect();
    assert_eq!(lines.len(), 6, "{stderr}");
    assert!(
        lines[0].starts_with("certify: 1/6 examples (16.7%), "),
        "{stderr}"
    );
    assert!(
        lines[5].starts_with("certify: 6/6 examples (100.0%), "),
        "{stderr}"
    );
    assert!(lines[5].contains(" samples/s, eta 0:00:00"), "{stderr}");
    // Errors that say what to do: an unknown architecture lists them all, an epoch
    // checkpoint points at the model file, labels must match the logs.
    let stderr = refused(
        &dir,
        [
            "train",
            "--dataset",
            "digits",
            "--arch",
            "resnet18",
            "--sigma",
            "0.25",
            "--out",
            "x",
        ],
    );
    assert!(
        stderr.contains("expected small_cnn, cifar_resnet20"),
        "{stderr}"
    );
    let args = swapped(
        &certify_args("0.25", &["--out", "never.tsv"]),
        &[("run/model.bpk", "run/checkpoints/model-1.mpk")],
    );
    let stderr = refused(&dir, &args);
    assert!(stderr.contains("is a training checkpoint"), "{stderr}");
    let stderr = refused(
        &dir,
        ["analyze", "whole.tsv", "--labels", "a,b", "--out", "x"],
    );
    assert!(
        stderr.contains("--labels gives 2 names for 1 logs"),
        "{stderr}"
    );

    // Merging a shard twice is refused.
    let stderr = refused(&dir, ["merge", "--out", "bad.tsv", "s0.tsv", "s0.tsv"]);
    assert!(stderr.contains("appears a second time"), "{stderr}");

    smoothing(
        &dir,
        &[
            "predict",
            "--dataset",
            "digits",
            "--arch",
            "small_cnn",
            "--model",
            "run/model.bpk",
            "--sigma",
            "0.25",
            "--n",
            "200",
            "--alpha",
            "0.01",
            "--max",
            "3",
            "--out",
            "p.tsv",
        ],
    );
    let predict = rows_without_time(&dir.join("p.tsv"));
    assert_eq!(predict.len(), 4);
    assert_eq!(predict[0], "idx\tlabel\tpredict\tcorrect");

    let table = smoothing(
        &dir,
        &[
            "analyze",
            "whole.tsv",
            "--radii",
            "0,0.5",
            "--out",
            "analysis",
        ],
    );
    assert!(table.contains("r = 0.50"), "{table}");
    for file in [
        "table.md",
        "table.tex",
        "curves.tsv",
        "certified_accuracy.svg",
        "certified_accuracy.png",
    ] {
        assert!(
            dir.join("analysis").join(file).metadata().unwrap().len() > 0,
            "{file}"
        );
    }
    let png = std::fs::read(dir.join("analysis/certified_accuracy.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // The Appendix D bound is named in the legend: the exact binomial one by default, as in
    // the examples' tables.
    let svg = std::fs::read_to_string(dir.join("analysis/certified_accuracy.svg")).unwrap();
    assert!(
        svg.contains("lower bound (exact binomial, rho = 0.001)"),
        "legend"
    );
    // analyze took sigma, n and alpha from the log's manifest (so it could also write the
    // comparisons), and refuses a flag that contradicts it.
    let md = std::fs::read_to_string(dir.join("analysis/comparisons.md")).unwrap();
    assert!(
        md.contains("Logged with sigma = 0.25, n = 200, alpha = 0.01."),
        "{md}"
    );
    let stderr = refused(
        &dir,
        [
            "analyze",
            "whole.tsv",
            "--alpha",
            "0.001",
            "--out",
            "analysis",
        ],
    );
    assert!(
        stderr.contains("--alpha says 0.001, but the manifest of whole.tsv records 0.01"),
        "{stderr}"
    );
}

/// A digits small CNN (8 filters) with fresh weights at `path`, saved as `train` wrote models
/// before model cards: the run-time `Model`, without a card, so that it loads only with
/// `--arch small_cnn --filters 8`.
fn save_cardless_model(path: &Path) {
    use burn::backend::NdArray;
    use randomized_smoothing::models::{Model, SmallCnnConfig, save_model};
    let config = SmallCnnConfig::new([1, 8, 8], 10)
        .with_filters(8)
        .with_mean(vec![0.3])
        .with_std(vec![0.35]);
    save_model(
        &Model::SmallCnn(config.init::<NdArray>(&Default::default()).unwrap()),
        path,
    )
    .unwrap();
}

/// A burnpack file without a model card (written by `save_model`, or by an older version)
/// still loads when the flags say what it holds, and only then.
#[test]
fn a_model_file_without_a_card_needs_the_flags() {
    let dir = scratch("cardless");
    save_cardless_model(&dir.join("old.bpk"));
    let certify = |flags: &[&'static str]| {
        let mut args = vec![
            "certify",
            "--dataset",
            "digits",
            "--model",
            "old.bpk",
            "--sigma",
            "0.25",
            "--n0",
            "10",
            "--n",
            "100",
            "--max",
            "1",
            "--out",
            "old.tsv",
        ];
        args.extend(flags);
        args
    };
    let stderr = refused(&dir, certify(&[]));
    assert!(stderr.contains("has no model card"), "{stderr}");
    // The default width (32 filters) does not fit the file's tensors.
    let stderr = refused(&dir, certify(&["--arch", "small_cnn"]));
    assert!(stderr.contains("has shape"), "{stderr}");
    smoothing(&dir, &certify(&["--arch", "small_cnn", "--filters", "8"]));
    assert_eq!(rows_without_time(&dir.join("old.tsv")).len(), 2);
}

/// The arguments of the workflow test's certification at `sigma`, then `extra`.
fn certify_args<'a>(sigma: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    // No --arch or --filters: the model file written by `train` describes its model.
    let mut args = vec![
        "certify",
        "--dataset",
        "digits",
        "--model",
        "run/model.bpk",
        "--sigma",
        sigma,
        "--n0",
        "20",
        "--n",
        "200",
        "--alpha",
        "0.01",
        "--batch",
        "100",
        "--skip",
        "7",
        "--max",
        "6",
    ];
    args.extend_from_slice(extra);
    args
}

/// `analyze` on the paper's released CIFAR-10 logs reproduces the figures of
/// ../shared/data/README.md (to the table's two decimals).
#[test]
fn analyze_reproduces_the_paper_logs() {
    let logs = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/reference-certify/cifar10/resnet110");
    let dir = scratch("analyze");
    let log = |s: &str| {
        logs.join(format!("noise_{s}/test/sigma_{s}"))
            .display()
            .to_string()
    };
    let (a, b, c, d) = (log("0.12"), log("0.25"), log("0.50"), log("1.00"));
    let table = smoothing(
        &dir,
        &[
            "analyze",
            &a,
            &b,
            &c,
            &d,
            "--labels",
            "0.12,0.25,0.50,1.00",
            "--radii",
            "0,0.25,0.5,0.75,1,1.25,1.5",
            // Each log's own alpha (tests/it/reference_logs.rs finds them from the radii).
            "--alpha",
            "0.001,0.01,0.01,0.01",
            "--sigmas",
            "0.12,0.25,0.5,1",
            "--project-n",
            "100000",
            "--project-alpha",
            "0.001",
            "--out",
            "out",
        ],
    );
    // From ../shared/data/README.md: 0.814 0.586 0 ...; 0.748 0.600 0.428 0.266 0 ...;
    // 0.652 0.546 0.414 0.320 0.234 0.152 0.094; 0.472 0.392 0.340 0.278 0.216 0.174 0.140.
    for expected in [
        "| 0.12 | **0.81** | 0.59 | 0.00 | 0.00 | 0.00 | 0.00 | 0.00 |",
        "| 0.25 | 0.75 | **0.60** | **0.43** | 0.27 | 0.00 | 0.00 | 0.00 |",
        "| 0.50 | 0.65 | 0.55 | 0.41 | **0.32** | **0.23** | 0.15 | 0.09 |",
        "| 1.00 | 0.47 | 0.39 | 0.34 | 0.28 | 0.22 | **0.17** | **0.14** |",
    ] {
        assert!(table.contains(expected), "missing {expected}\nin\n{table}");
    }
    let curves = std::fs::read_to_string(dir.join("out/curves.tsv")).unwrap();
    assert!(
        curves.contains("0.50\t0.50\t0.4140\t"),
        "{}",
        &curves[..200]
    );
    // The average certified radius (MACER's ACR) of each log; an awk one-liner over the
    // sigma = 0.50 log (mean of radius * correct) gives 0.5375, 0.538 to three decimals.
    assert!(
        table.contains("0.50: average certified radius 0.538"),
        "{table}"
    );
    // The four logs certify the same 500 images: paired comparisons against the first.
    let paired = std::fs::read_to_string(dir.join("out/paired.md")).unwrap();
    assert!(
        paired.contains("500 examples, the same in every log"),
        "{paired}"
    );
    assert!(paired.contains("| 0.12 | 0.270 | - |"), "{paired}");
    assert!(paired.contains("| 0.50 | 0.538 | "), "{paired}");
    // The lower bound drawn and tabulated is the one --bound names: the exact binomial
    // tail by default, above Bernstein's (which the same row gives with --bound bernstein).
    let lower = |curves: &str| -> f64 {
        let row = curves
            .lines()
            .find(|l| l.starts_with("0.50\t0.50\t"))
            .unwrap();
        row.split('\t').nth(3).unwrap().parse().unwrap()
    };
    let exact = lower(&curves);
    let mut bernstein_args = vec!["analyze", &a, &b, &c, &d];
    bernstein_args.extend([
        "--labels",
        "0.12,0.25,0.50,1.00",
        "--alpha",
        "0.001,0.01,0.01,0.01",
        "--bound",
        "bernstein",
        "--out",
        "bernstein",
    ]);
    smoothing(&dir, &bernstein_args);
    let bernstein = lower(&std::fs::read_to_string(dir.join("bernstein/curves.tsv")).unwrap());
    assert!(exact > bernstein, "exact {exact}, Bernstein {bernstein}");
    // Each log was projected with its own alpha: with one alpha for all, the counts of
    // either the sigma = 0.12 log or the others could not be recovered.
    let md = std::fs::read_to_string(dir.join("out/comparisons.md")).unwrap();
    for expected in [
        "Logged with sigma = 0.12, n = 100000, alpha = 0.001.",
        "Logged with sigma = 1, n = 100000, alpha = 0.01.",
    ] {
        assert!(md.contains(expected), "missing {expected}");
    }
}

/// `analyze --sigmas` writes the paper's Figure 5 (left) and Figure 8 comparisons; projected
/// to its own n and alpha a log keeps its table; a log with other settings is refused.
#[test]
fn analyze_writes_the_paper_comparisons() {
    let log = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/reference-certify/cifar10/resnet110/noise_0.25/test/sigma_0.25")
        .display()
        .to_string();
    let dir = scratch("comparisons");
    let args = |alpha: &'static str, sigmas: &'static str| {
        let mut a = vec![
            "analyze",
            &log,
            "--labels",
            "cifar 0.25",
            "--sigmas",
            sigmas,
        ];
        a.extend([
            "--alpha",
            alpha,
            "--radii",
            "0,0.25,0.5,0.75,1",
            "--out",
            "out",
        ]);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |a: Vec<String>| {
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        smoothing(&dir, &refs)
    };
    // This released log was certified at alpha = 0.01 (see tests/it/reference_logs.rs).
    run(args("0.01", "0.25"));
    let md = std::fs::read_to_string(dir.join("out/comparisons.md")).unwrap();
    for expected in [
        // Figure 5 (left) at p_A = 0.9: Phi^-1(0.9) = 1.2816 for Theorem 1.
        "| Cohen et al. (Theorem 1) | 0.253 | 0.524 | 0.842 | 1.282 |",
        // The log's own table (0.748 0.600 0.428 0.266 0), recomputed from recovered counts.
        "| n = 100000 | **0.75** | **0.60** | **0.43** | **0.27** | 0.00 |",
        "| alpha = 0.01 | **0.75** | **0.60** | **0.43** | **0.27** |",
    ] {
        assert!(md.contains(expected), "missing {expected}\nin\n{md}");
    }
    for file in [
        "radius_bounds.png",
        "cifar_0.25_bounds.svg",
        "cifar_0.25_n.png",
        "cifar_0.25_alpha.png",
    ] {
        assert!(dir.join("out").join(file).exists(), "{file}");
    }
    let fails = |a: Vec<String>| refused(&dir, a);
    assert!(fails(args("0.001", "0.25")).contains("these settings"));
    assert!(fails(args("0.01", "0.25,0.5")).contains("--sigmas gives 2 values for 1 logs"));
}

/// `attack`: PGD at multiples of the certified radius, resumable; DeepFool on the base model.
#[test]
fn attack_certified_examples() {
    let dir = scratch("attack");
    let model = [
        "--arch",
        "small_cnn",
        "--filters",
        "8",
        "--model",
        "run/model.bpk",
    ];
    let common = [
        "--dataset",
        "digits",
        "--sigma",
        "0.25",
        "--skip",
        "60",
        "--batch",
        "500",
    ];
    smoothing(
        &dir,
        &[
            "train",
            "--dataset",
            "digits",
            "--filters",
            "8",
            "--sigma",
            "0.25",
            "--epochs",
            "3",
            "--batch",
            "64",
            "--out",
            "run",
        ],
    );
    let mut certify = vec!["certify", "--n", "1000", "--out", "cert.tsv"];
    certify.extend(model);
    certify.extend(common);
    smoothing(&dir, &certify);
    let certified = std::fs::read_to_string(dir.join("cert.tsv")).unwrap();
    let correct = certified
        .lines()
        .skip(1)
        .filter(|l| l.split('\t').nth(4) == Some("1"))
        .count();
    let mut attack = vec![
        "attack",
        "--log",
        "cert.tsv",
        "--multiples",
        "0.5,3",
        "--steps",
        "5",
    ];
    attack.extend(["--samples", "16", "--n", "500", "--out", "atk"]);
    attack.extend(model);
    attack.extend(common);
    let summary = smoothing(&dir, &attack);
    assert!(
        summary.contains(&format!("| 0.5 R | {correct} | 0 (0.000) |")),
        "{summary}"
    );
    assert!(summary.contains("| 3 R |"), "{summary}");
    let rows = rows_without_time(&dir.join("atk/pgd_3R.tsv"));
    assert_eq!(rows.len(), correct + 1, "{rows:?}");
    // A rerun finds every row done and appends none.
    smoothing(&dir, &attack);
    assert_eq!(rows_without_time(&dir.join("atk/pgd_3R.tsv")), rows);
    // PREDICT's samples of three adversarial inputs at a time share forward passes; the
    // rows are the same.
    let mut packed = swapped(&attack, &[("atk", "atk_packed")]);
    packed.extend(["--pack", "3"]);
    smoothing(&dir, &packed);
    assert_eq!(rows_without_time(&dir.join("atk_packed/pgd_3R.tsv")), rows);
    // A rerun into the folder with another objective is refused (its rows would be
    // summarized as one objective's), and so is a certification log of another sigma.
    let mut other_objective = attack.clone();
    other_objective.extend(["--objective", "loss-of-mean"]);
    let stderr = refused(&dir, &other_objective);
    assert!(
        stderr.contains("objective: the log has mean-loss, this run loss-of-mean"),
        "{stderr}"
    );
    assert_eq!(rows_without_time(&dir.join("atk/pgd_3R.tsv")), rows);
    let other_sigma = swapped(&attack, &[("0.25", "0.5"), ("atk", "atk_half")]);
    let stderr = refused(&dir, &other_sigma);
    assert!(
        stderr.contains("sigma: the log has 0.25, this run 0.5"),
        "{stderr}"
    );
    assert!(!dir.join("atk_half/pgd_3R.tsv").exists());
    // A certification log of another data set (the trust issue's MNIST log attacked on the
    // digits) is refused: here the same rows under a manifest that names MNIST.
    std::fs::copy(dir.join("cert.tsv"), dir.join("mnist.tsv")).unwrap();
    let mnist = Manifest::of_log(&dir.join("cert.tsv"))
        .unwrap()
        .unwrap()
        .set("dataset", "mnist");
    mnist.write_beside(&dir.join("mnist.tsv")).unwrap();
    let other_data = swapped(&attack, &[("cert.tsv", "mnist.tsv"), ("atk", "atk_mnist")]);
    let stderr = refused(&dir, &other_data);
    assert!(
        stderr.contains("dataset: the log has mnist, this run digits"),
        "{stderr}"
    );
    assert!(!dir.join("atk_mnist/pgd_3R.tsv").exists());
    let mut deepfool = vec!["attack", "--method", "deepfool", "--out", "df"];
    deepfool.extend(model);
    deepfool.extend(["--dataset", "digits", "--skip", "60", "--batch", "500"]);
    // A flag of the other method, or a sigma DeepFool would not use, is refused rather than
    // ignored.
    for (flag, value, message) in [
        ("--sigma", "0.25", "--sigma applies to --method pgd only"),
        ("--steps", "5", "--steps applies to --method pgd only"),
    ] {
        let mut args = deepfool.clone();
        args.extend([flag, value]);
        let stderr = refused(&dir, &args);
        assert!(stderr.contains(message), "{stderr}");
    }
    let mut args = attack.clone();
    args.extend(["--overshoot", "0.1"]);
    let stderr = refused(&dir, &args);
    assert!(
        stderr.contains("--overshoot applies to --method deepfool only"),
        "{stderr}"
    );
    let mut args = deepfool.clone();
    args.extend(["--pack", "2"]);
    let stderr = refused(&dir, &args);
    assert!(stderr.contains("DeepFool has none"), "{stderr}");
    let summary = smoothing(&dir, &deepfool);
    assert!(summary.contains("| 0 |"), "{summary}");
    assert_eq!(rows_without_time(&dir.join("df/deepfool.tsv")).len(), 7);
    // analyze --deepfool adds the undefended row: correct, and no class change within r.
    let table = smoothing(
        &dir,
        &[
            "analyze",
            "cert.tsv",
            "--radii",
            "0,0.25,1,1.5",
            "--deepfool",
            "df/deepfool.tsv",
            "--deepfool-label",
            "clean",
            "--out",
            "an",
        ],
    );
    let log = std::fs::read_to_string(dir.join("df/deepfool.tsv")).unwrap();
    let rows: Vec<Vec<&str>> = log
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect())
        .collect();
    let robust = |r: f64| {
        let hits = rows
            .iter()
            .filter(|f| f[1] == f[2] && (f[6] == "0" || f[4].parse::<f64>().unwrap() > r))
            .count();
        hits as f64 / rows.len() as f64
    };
    let row = [0.0, 0.25, 1.0, 1.5]
        .iter()
        .fold("| clean |".to_string(), |row, &r| {
            row + &format!(" _{:.2}_ |", robust(r))
        });
    assert!(table.contains(&row), "{row} not in\n{table}");
    assert!(dir.join("an/certified_accuracy.png").exists());
    // A log of another kind is refused.
    let stderr = refused(
        &dir,
        [
            "analyze",
            "cert.tsv",
            "--deepfool",
            "cert.tsv",
            "--out",
            "an",
        ],
    );
    assert!(stderr.contains("DeepFool log"), "{stderr}");
    // PGD without a certification log is refused.
    let stderr = refused(
        &dir,
        ["attack", "--out", "x"].iter().chain(&model).chain(&common),
    );
    assert!(stderr.contains("needs --log"), "{stderr}");
}

/// Your own data set: an image folder of any image size, read as the flags say, trained and
/// certified; the model file records how its images are read, so certify needs no flags, and
/// one that contradicts it is refused.
#[test]
fn own_image_folder_end_to_end() {
    use image::{Rgb, RgbImage};
    use randomized_smoothing::data::FolderTransform;
    use randomized_smoothing::models::read_model_card;
    let dir = scratch("folder");
    // Two classes of 12x12 colour images: dark and bright, with a pseudo-random texture.
    for (split, count) in [("train", 24), ("test", 6)] {
        for (class, level) in [("bright", 200u32), ("dark", 50)] {
            let folder = dir.join(format!("data/{split}/{class}"));
            std::fs::create_dir_all(&folder).unwrap();
            for i in 0..count {
                let image = RgbImage::from_fn(12, 12, |x, y| {
                    let t = (x * 7 + y * 13 + i * 31) % 40;
                    let v = (level + t) as u8;
                    Rgb([v, v.saturating_sub(10), v])
                });
                image.save(folder.join(format!("{i}.png"))).unwrap();
            }
        }
    }
    let data = ["--dataset", "folder", "--data", "data"];
    let mut train = vec!["train"];
    train.extend(data);
    train.extend(["--image-size", "8", "--channels", "1", "--filters", "8"]);
    train.extend([
        "--sigma", "0.25", "--epochs", "4", "--batch", "8", "--out", "run",
    ]);
    smoothing(&dir, &train);
    let card = read_model_card(dir.join("run/model.bpk")).unwrap().unwrap();
    assert_eq!(card.input, Some(FolderTransform::new(8).with_channels(1)));
    assert_eq!(card.model.input_shape(), [1, 8, 8]);

    let mut certify = vec!["certify"];
    certify.extend(data);
    certify.extend([
        "--model",
        "run/model.bpk",
        "--sigma",
        "0.25",
        "--n0",
        "20",
        "--n",
        "200",
    ]);
    certify.extend(["--alpha", "0.01", "--out", "c.tsv"]);
    smoothing(&dir, &certify);
    let rows = rows_without_time(&dir.join("c.tsv"));
    assert_eq!(rows.len(), 13, "{rows:?}");
    let correct = rows.iter().filter(|r| r.ends_with("\t1")).count();
    assert!(correct >= 10, "{correct} of 12 certified correct: {rows:?}");

    let mut contradicting = certify.clone();
    contradicting.extend(["--channels", "3"]);
    let stderr = refused(&dir, &contradicting);
    assert!(
        stderr.contains("--channels contradicts the model file"),
        "{stderr}"
    );
    let stderr = refused(
        &dir,
        [
            "train",
            "--dataset",
            "folder",
            "--data",
            "data",
            "--sigma",
            "0.25",
            "--out",
            "x",
        ],
    );
    assert!(
        stderr.contains("--dataset folder needs --image-size"),
        "{stderr}"
    );
}

/// `train --objective`: flags of another objective are refused, the model file's card
/// records the objective and its settings, and rerunning into the folder with another
/// objective is refused instead of resuming.
#[test]
fn train_objectives() {
    let dir = scratch("objectives");
    let base = [
        "train",
        "--dataset",
        "digits",
        "--filters",
        "4",
        "--sigma",
        "0.25",
        "--epochs",
        "1",
        "--batch",
        "256",
        "--out",
        "run",
    ];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        base.iter().copied().chain(extra.iter().copied()).collect()
    };
    let stderr = refused(&dir, with(&["--objective", "macer", "--eta", "0.5"]));
    assert!(
        stderr.contains("--eta applies to --objective consistency only"),
        "{stderr}"
    );
    let stderr = refused(&dir, with(&["--epsilon", "0.5"]));
    assert!(
        stderr.contains("--epsilon applies to --objective smoothadv only"),
        "{stderr}"
    );
    let stderr = refused(&dir, with(&["--objective", "consistency", "--copies", "1"]));
    assert!(stderr.contains("m >= 2"), "{stderr}");
    smoothing(
        &dir,
        &with(&["--objective", "consistency", "--lambda", "5"]),
    );
    let card = randomized_smoothing::models::read_model_card(dir.join("run/model.bpk")).unwrap();
    let training = card.unwrap().training.unwrap();
    assert_eq!(
        training.objective,
        "consistency (m = 2, lambda = 5, eta = 0.5)"
    );
    let stderr = refused(&dir, with(&["--objective", "macer"]));
    assert!(stderr.contains("objective is macer (k = 16"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Denoised smoothing from the command line: `train-denoiser` in front of a clean
/// classifier, then `certify --denoiser`; the log's manifest names the denoiser, so a rerun
/// without it (or with another) is refused rather than mixed into the log.
#[test]
fn denoised_smoothing() {
    let dir = scratch("denoiser");
    smoothing(
        &dir,
        &[
            "train",
            "--dataset",
            "digits",
            "--filters",
            "4",
            "--sigma",
            "0",
            "--epochs",
            "1",
            "--batch",
            "256",
            "--out",
            "run",
        ],
    );
    let train = |objective: &'static str, out: &'static str, extra: &[&'static str]| {
        let mut args = vec![
            "train-denoiser",
            "--dataset",
            "digits",
            "--model",
            "run/model.bpk",
            "--sigma",
            "0.25",
            "--epochs",
            "1",
            "--batch",
            "256",
            "--depth",
            "3",
            "--width",
            "8",
            "--objective",
            objective,
            "--out",
            out,
        ];
        args.extend_from_slice(extra);
        args
    };
    let stderr = smoothing_stderr(&dir, &train("mse", "mse", &[]));
    assert!(
        stderr.contains("DnCNN depth 3, width 8; objective: mse"),
        "{stderr}"
    );
    // Stability training from the MSE denoiser; its card says so.
    smoothing(
        &dir,
        &train("stability", "stab", &["--init", "mse/denoiser.bpk"]),
    );
    let card = randomized_smoothing::models::read_denoiser_card(dir.join("stab/denoiser.bpk"))
        .unwrap()
        .unwrap();
    let training = card.training.unwrap();
    assert!(
        training.objective.starts_with("stability"),
        "{}",
        training.objective
    );
    assert!(
        training.objective.contains("from denoiser sha256"),
        "{}",
        training.objective
    );
    assert_eq!((card.denoiser.depth, training.sigma), (3, 0.25));
    // --init fixes the architecture.
    let stderr = refused(
        &dir,
        swapped(
            &train("stability", "stab2", &["--init", "mse/denoiser.bpk"]),
            &[("8", "16")],
        ),
    );
    assert!(
        stderr.contains("--depth and --width must agree"),
        "{stderr}"
    );

    let mut args = certify_args(
        "0.25",
        &["--denoiser", "stab/denoiser.bpk", "--out", "d.tsv"],
    );
    smoothing(&dir, &args);
    // The header and 6 rows.
    assert_eq!(rows_without_time(&dir.join("d.tsv")).len(), 7);
    let text = std::fs::read_to_string(Manifest::path_of(&dir.join("d.tsv"))).unwrap();
    let manifest = Manifest::from_json(&text).unwrap();
    assert!(manifest.settings().contains_key("denoiser_sha256"));
    // The same log without the denoiser, or with another, is another experiment.
    args.truncate(args.len() - 4);
    args.extend_from_slice(&["--out", "d.tsv"]);
    let stderr = refused(&dir, &args);
    assert!(stderr.contains("denoiser_sha256"), "{stderr}");
    let stderr = refused(
        &dir,
        certify_args(
            "0.25",
            &["--denoiser", "mse/denoiser.bpk", "--out", "d.tsv"],
        ),
    );
    assert!(stderr.contains("denoiser_sha256"), "{stderr}");
    // A denoiser is not a classifier, and attack takes none.
    let stderr = refused(
        &dir,
        swapped(
            &certify_args("0.25", &["--out", "e.tsv"]),
            &[("run/model.bpk", "mse/denoiser.bpk")],
        ),
    );
    assert!(
        stderr.contains("is a denoiser, not a classifier"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// On a CubeCL backend (Vulkan: in CI, Mesa's lavapipe on the CPU), `certify` keeps the
/// compiled kernels and autotune results in the folder `--kernel-cache` names, warms every
/// batch size up before the first row, and a second (warm) run writes the same rows; a
/// malformed `cubecl.toml` is a clear error, not CubeCL's panic.
#[cfg(feature = "vulkan")]
#[test]
fn cubecl_kernel_cache_and_warm_up() {
    let dir = scratch("cubecl");
    save_cardless_model(&dir.join("model.bpk"));
    let certify = |out: &'static str, extra: &[&'static str]| {
        let mut args = vec![
            "--backend",
            "vulkan",
            "--device",
            "cpu",
            "certify",
            "--dataset",
            "digits",
            "--model",
            "model.bpk",
            "--arch",
            "small_cnn",
            "--filters",
            "8",
            "--sigma",
            "0.25",
            "--n0",
            "20",
            "--n",
            "200",
            "--batch",
            "100",
            "--pack",
            "2",
            "--max",
            "3",
            "--out",
            out,
        ];
        args.extend(extra);
        args
    };
    // A device that is not there stops the run with the driver's answer, before any row.
    let mut absent = certify("absent.tsv", &[]);
    absent[3] = "vulkan:99";
    let out = Command::new(env!("CARGO_BIN_EXE_smoothing"))
        .current_dir(&dir)
        .args(&absent)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("device vulkan:99 is unavailable: Vulkan has no discrete GPU number 99"),
        "{stderr}"
    );
    assert!(!dir.join("absent.tsv").exists());

    let stderr = smoothing_stderr(&dir, &certify("cold.tsv", &["--kernel-cache", "kernels"]));
    assert!(stderr.contains("backend: vulkan on cpu"), "{stderr}");
    assert!(
        stderr.contains(&format!("kernel cache: {}", Path::new("kernels").display())),
        "{stderr}"
    );
    // Groups of one and two examples: 20 and 40 selection samples, full passes of 100.
    assert!(
        stderr.contains("warm-up: batch sizes 100, 40, 20 in"),
        "{stderr}"
    );
    let files = |sub: &str| -> usize {
        fn count(p: &Path) -> usize {
            std::fs::read_dir(p).map_or(0, |entries| {
                entries
                    .flatten()
                    .map(|e| {
                        if e.path().is_dir() {
                            count(&e.path())
                        } else {
                            1
                        }
                    })
                    .sum()
            })
        }
        count(&dir.join("kernels").join(sub))
    };
    // The compiled SPIR-V kernels are kept (CubeCL keeps none by default).
    assert!(files("vulkan") > 0, "no compiled kernels kept");
    let warm = smoothing_stderr(&dir, &certify("warm.tsv", &["--kernel-cache", "kernels"]));
    assert!(warm.contains("warm-up:"), "{warm}");
    assert_eq!(
        rows_without_time(&dir.join("warm.tsv")),
        rows_without_time(&dir.join("cold.tsv"))
    );
    let skipped = smoothing_stderr(
        &dir,
        &certify(
            "skipped.tsv",
            &["--no-warm-up", "--kernel-cache", "kernels"],
        ),
    );
    assert!(!skipped.contains("warm-up:"), "{skipped}");
    assert_eq!(
        rows_without_time(&dir.join("skipped.tsv")),
        rows_without_time(&dir.join("cold.tsv"))
    );
    // Half precision on a CubeCL backend: f16 answers as f32 on the same noise, but for
    // near ties; Vulkan has no bf16, which is refused rather than left to panic in wgpu.
    smoothing_stderr(
        &dir,
        &certify(
            "f16.tsv",
            &["--precision", "f16", "--kernel-cache", "kernels"],
        ),
    );
    let (half, full) = (
        rows_without_time(&dir.join("f16.tsv")),
        rows_without_time(&dir.join("cold.tsv")),
    );
    let same = half
        .iter()
        .zip(&full)
        .filter(|(a, b)| a.split('\t').nth(2) == b.split('\t').nth(2))
        .count();
    assert!(
        same + 1 >= full.len() && full.len() == 4,
        "{half:?} against {full:?}"
    );
    let stderr = refused(&dir, certify("bf16.tsv", &["--precision", "bf16"]));
    assert!(stderr.contains("use f16"), "{stderr}");
    std::fs::write(dir.join("cubecl.toml"), "[autotune\nlevel = 1\n").unwrap();
    for cache in ["kernels", "off"] {
        let stderr = refused(&dir, certify("bad.tsv", &["--kernel-cache", cache]));
        assert!(
            stderr.contains("malformed CubeCL settings (TOML)"),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// The cap on the CPU kernels' instruction set (`RANDOMIZED_SMOOTHING_ISA`): a value that
/// names none is refused before any work, with the variable named; one that does is obeyed
/// and reported. (That every SIMD cap gives the same bits is the kernels' unit test.)
#[test]
fn kernel_instruction_set_cap() {
    let dir = scratch("isa");
    let train = [
        "train",
        "--dataset",
        "digits",
        "--sigma",
        "0.25",
        "--epochs",
        "1",
    ];
    let run = |isa: &str, out: &str| {
        Command::new(env!("CARGO_BIN_EXE_smoothing"))
            .current_dir(&dir)
            .env("RANDOMIZED_SMOOTHING_ISA", isa)
            .args(train)
            .args(["--batch", "64", "--out", out])
            .output()
            .unwrap()
    };
    let refused = run("sse9", "typo");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("invalid RANDOMIZED_SMOOTHING_ISA: unknown instruction set \"sse9\""),
        "{stderr}"
    );
    assert!(!dir.join("typo").exists(), "nothing is written");
    let capped = run("portable", "capped");
    let stderr = String::from_utf8_lossy(&capped.stderr);
    assert!(capped.status.success(), "{stderr}");
    assert!(
        stderr.contains("CPU kernels: portable (capped at portable)"),
        "{stderr}"
    );
}

/// A 1-epoch model of the digits in `dir/out` (`out/model.bpk`).
/// `certify` with the model of [`train_digits`] (sigma 0.25, n0 = 20, alpha = 0.01): `n`
/// samples in batches of `batch`, the first `max` test digits, logged to `out`.
fn certify_digits(
    n: &'static str,
    batch: &'static str,
    max: &'static str,
    out: &'static str,
) -> Vec<&'static str> {
    vec![
        "certify",
        "--dataset",
        "digits",
        "--model",
        "run/model.bpk",
        "--sigma",
        "0.25",
        "--n0",
        "20",
        "--n",
        n,
        "--alpha",
        "0.01",
        "--batch",
        batch,
        "--max",
        max,
        "--out",
        out,
    ]
}

fn train_digits(dir: &Path, out: &str) {
    smoothing(
        dir,
        &[
            "train",
            "--dataset",
            "digits",
            "--sigma",
            "0.25",
            "--epochs",
            "1",
            "--batch",
            "64",
            "--out",
            out,
        ],
    );
}

/// Two runs on one log at once (a requeued Slurm task whose first copy still runs, a job
/// submitted twice): the second is refused at once, naming the first, and the log is then
/// exactly a single run's.
#[test]
fn two_runs_on_one_log() {
    let dir = scratch("lock");
    train_digits(&dir, "run");
    let certify = |out: &str| -> Vec<String> {
        [
            "certify",
            "--dataset",
            "digits",
            "--model",
            "run/model.bpk",
            "--sigma",
            "0.25",
            "--n0",
            "50",
            "--n",
            "5000",
            "--alpha",
            "0.01",
            "--batch",
            "500",
            "--max",
            "60",
            "--out",
            out,
        ]
        .map(str::to_string)
        .to_vec()
    };
    let mut first = Command::new(env!("CARGO_BIN_EXE_smoothing"))
        .current_dir(&dir)
        .args(certify("both.tsv"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The first run holds the lock once its lock file names it.
    let pid = format!("pid {} on", first.id());
    let lock = dir.join("both.tsv.lock");
    let start = std::time::Instant::now();
    while !std::fs::read_to_string(&lock).is_ok_and(|s| s.starts_with(&pid)) {
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first run ended early"
        );
        assert!(
            start.elapsed().as_secs() < 120,
            "the first run never took its lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let stderr = refused(&dir, certify("both.tsv"));
    assert!(
        stderr.contains("both.tsv is being written by another run (") && stderr.contains(&pid),
        "{stderr}"
    );
    assert!(
        first.try_wait().unwrap().is_none(),
        "refused while the first still runs"
    );
    assert!(first.wait().unwrap().success());
    smoothing(
        &dir,
        &certify("single.tsv")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let (both, single) = (
        rows_without_time(&dir.join("both.tsv")),
        rows_without_time(&dir.join("single.tsv")),
    );
    assert_eq!(both.len(), 61, "a header and 60 rows, none twice");
    assert_eq!(both, single);
    // The lock file left behind blocks nothing: a rerun resumes (all done) and succeeds.
    smoothing(
        &dir,
        &certify("both.tsv")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(rows_without_time(&dir.join("both.tsv")), single);
}

/// A file system that fills up mid-run (here `RLIMIT_FSIZE`, which CI's root user cannot
/// bypass, with SIGXFSZ ignored so that the write fails with EFBIG instead of killing the
/// process): the error names the log, and the log resumes to exactly a whole run's rows.
#[test]
fn a_full_disk_names_the_log_and_leaves_it_resumable() {
    let dir = scratch("full");
    train_digits(&dir, "run");
    let certify = |out| certify_digits("100", "120", "300", out);
    // 8 blocks of 512 bytes: room for the manifest, not for 300 rows.
    let limited = Command::new("sh")
        .current_dir(&dir)
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 8; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_smoothing"))
        .args(certify("full.tsv"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&limited.stderr);
    assert!(!limited.status.success(), "{stderr}");
    assert!(
        stderr.contains("I/O error writing full.tsv") && stderr.contains("File too large"),
        "{stderr}"
    );
    let partial = rows_without_time(&dir.join("full.tsv"));
    assert!(
        partial.len() > 1 && partial.len() < 301,
        "{}",
        partial.len()
    );
    smoothing(&dir, &certify("full.tsv"));
    smoothing(&dir, &certify("whole.tsv"));
    let resumed = rows_without_time(&dir.join("full.tsv"));
    assert_eq!(resumed.len(), 301);
    assert_eq!(resumed, rows_without_time(&dir.join("whole.tsv")));
}

/// A log that no single run writes (an example twice, another shard's example, another log
/// appended) is refused by every reader: resuming, `analyze`, `status`, `merge` and
/// `attack`, each naming the file, the line and the example.
#[test]
fn every_reader_refuses_a_log_no_run_writes() {
    let dir = scratch("rows");
    train_digits(&dir, "run");
    let certify = |out, shard| {
        let mut args = certify_digits("200", "220", "6", out);
        args.extend(["--shard", shard]);
        args
    };
    smoothing(&dir, &certify("s0.tsv", "0/2"));
    smoothing(&dir, &certify("s1.tsv", "1/2"));
    // A damaged copy of a shard's log, with its manifest.
    let damage = |name: &str, extra: &str| {
        let log = std::fs::read_to_string(dir.join("s0.tsv")).unwrap();
        std::fs::write(dir.join(name), format!("{log}{extra}")).unwrap();
        std::fs::copy(
            dir.join("s0.tsv.manifest.json"),
            dir.join(format!("{name}.manifest.json")),
        )
        .unwrap();
    };
    let s0 = std::fs::read_to_string(dir.join("s0.tsv")).unwrap();
    let s1 = std::fs::read_to_string(dir.join("s1.tsv")).unwrap();
    let first_row = |log: &str| format!("{}\n", log.lines().nth(1).unwrap());
    // Shard 0 holds examples 0, 2, 4 (lines 2-4): a second copy of example 0 is line 5.
    damage("twice.tsv", &first_row(&s0));
    // Example 1 belongs to shard 1.
    damage("foreign.tsv", &first_row(&s1));
    // Another log appended whole, header and all.
    damage("appended.tsv", &s1);
    let readers = |log: &'static str| -> Vec<Vec<&'static str>> {
        vec![
            certify(log, "0/2").to_vec(),
            vec!["analyze", log, "--out", "analysis"],
            vec!["status", log],
            vec!["merge", "--out", "merged.tsv", log, "s1.tsv"],
            vec![
                "attack",
                "--log",
                log,
                "--dataset",
                "digits",
                "--model",
                "run/model.bpk",
                "--sigma",
                "0.25",
                "--max",
                "6",
                "--shard",
                "0/2",
                "--steps",
                "1",
                "--samples",
                "4",
                "--n",
                "100",
                "--out",
                "atk",
            ],
        ]
    };
    for (log, expected) in [
        (
            "twice.tsv",
            "twice.tsv, line 5: example 0 appears a second time (first at line 2)",
        ),
        (
            "foreign.tsv",
            "foreign.tsv, line 5: example 1 is not in the run's selection",
        ),
        (
            "appended.tsv",
            "appended.tsv, line 5: a header line among the rows",
        ),
    ] {
        for args in readers(log) {
            let stderr = refused(&dir, &args);
            assert!(stderr.contains(expected), "{args:?}: {stderr}");
        }
    }
    // Merging a shard with itself names both places of the example.
    let stderr = refused(&dir, ["merge", "--out", "bad.tsv", "s0.tsv", "s0.tsv"]);
    assert!(
        stderr
            .contains("s0.tsv, line 2: example 0 appears a second time (first in s0.tsv, line 2)"),
        "{stderr}"
    );
    // The undamaged shards still merge, and nothing above wrote to them.
    assert_eq!(std::fs::read_to_string(dir.join("s0.tsv")).unwrap(), s0);
    smoothing(&dir, &["merge", "--out", "merged.tsv", "s0.tsv", "s1.tsv"]);
    assert_eq!(rows_without_time(&dir.join("merged.tsv")).len(), 7);
}

/// The program run as a user without write access to the test's files: as itself when it is
/// not root, else (CI runs as root, which no permission stops) as `nobody` through `setpriv`.
fn unprivileged(dir: &Path, args: &[&str]) -> std::process::Output {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let mut command = if root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_smoothing"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_smoothing"))
    };
    command.current_dir(dir).args(args).output().unwrap()
}

/// A folder the run cannot write, a log it cannot append to, and an output folder that is
/// missing or cannot be made: each error names the path and what was being done, the log is
/// left as it was, and a rerun with the permission back resumes to exactly a whole run's rows.
#[test]
fn unwritable_and_missing_folders_name_the_path_and_leave_the_log_resumable() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("folders");
    train_digits(&dir, "run");
    let certify = |out| certify_digits("200", "220", "6", out);
    // An output folder that does not exist is made, parents and all.
    smoothing(&dir, &certify("missing/deeper/whole.tsv"));
    let whole = rows_without_time(&dir.join("missing/deeper/whole.tsv"));
    assert_eq!(whole.len(), 7);
    // A log cut after three rows, as a killed run leaves it, with its manifest and lock file.
    smoothing(&dir, &certify("ro/log.tsv"));
    let log = dir.join("ro/log.tsv");
    let full = std::fs::read_to_string(&log).unwrap();
    let cut: String = full.lines().take(4).map(|l| format!("{l}\n")).collect();
    std::fs::write(&log, &cut).unwrap();
    let mode = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    let refused_unprivileged = |expected: &str| {
        let out = unprivileged(&dir, &certify("ro/log.tsv"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(
            stderr.contains(expected) && stderr.contains("Permission denied"),
            "{stderr}"
        );
        assert_eq!(std::fs::read_to_string(&log).unwrap(), cut);
    };
    // A read-only folder: its lock file cannot be opened.
    mode(&dir.join("ro"), 0o555);
    refused_unprivileged("I/O error opening ro/log.tsv.lock");
    // A writable folder with a read-only log: the log cannot be opened to append.
    mode(&dir.join("ro"), 0o777);
    std::fs::remove_file(dir.join("ro/log.tsv.lock")).unwrap();
    mode(&log, 0o444);
    refused_unprivileged("I/O error opening ro/log.tsv:");
    // With the permission back, the run resumes.
    mode(&log, 0o644);
    smoothing(&dir, &certify("ro/log.tsv"));
    assert_eq!(rows_without_time(&log), whole);
    // A folder that cannot be made, since a file has its name.
    std::fs::write(dir.join("taken"), "").unwrap();
    let stderr = refused(&dir, certify("taken/log.tsv"));
    assert!(
        stderr.contains("I/O error creating the folder taken: File exists"),
        "{stderr}"
    );
}

/// `--model FILE.onnx`: a model exported from PyTorch, certified and predicted on the digits
/// as any other; a file the crate does not run, and flags that only the crate's own models
/// take, are refused before any row.
#[test]
fn certify_and_predict_an_onnx_model() {
    let dir = scratch("onnx");
    let model =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx/digits_cnn.legacy.onnx");
    let model = model.to_str().unwrap();
    let run = |command: &str, out: &str, extra: &[&str]| {
        let mut args = vec![
            command,
            "--dataset",
            "digits",
            "--model",
            model,
            "--sigma",
            "0.25",
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[
            "--alpha", "0.01", "--batch", "50", "--max", "3", "--out", out,
        ]);
        args.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let args = run("certify", "certify.tsv", &["--n0", "20", "--n", "100"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let said = smoothing(&dir, &args);
    assert!(said.contains("3 rows"), "{said}");
    let log = std::fs::read_to_string(dir.join("certify.tsv")).unwrap();
    assert_eq!(
        log.lines().filter(|l| !l.starts_with('#')).count(),
        4,
        "{log}"
    );
    let args = run("predict", "predict.tsv", &["--n", "100"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    smoothing(&dir, &args);
    let log = std::fs::read_to_string(dir.join("predict.tsv")).unwrap();
    assert_eq!(
        log.lines().filter(|l| !l.starts_with('#')).count(),
        4,
        "{log}"
    );

    let softplus =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx/softplus.legacy.onnx");
    let mut args = run("certify", "refused.tsv", &["--n", "100"]);
    args[4] = softplus.to_str().unwrap().to_string();
    let said = refused(&dir, &args);
    assert!(
        said.contains("Softplus") || said.contains("softplus"),
        "{said}"
    );
    let args = run(
        "certify",
        "refused.tsv",
        &["--n", "100", "--arch", "small_cnn"],
    );
    let said = refused(&dir, &args);
    assert!(said.contains("--arch"), "{said}");
    let args = run(
        "certify",
        "refused.tsv",
        &["--n", "100", "--mean", "0.5,0.5", "--std", "1,1"],
    );
    let said = refused(&dir, &args);
    assert!(said.contains("2 channels"), "{said}");
    assert!(!dir.join("refused.tsv").exists());

    // A graph exported without its normalization, behind --mean/--std (in the manifest).
    let args = run(
        "certify",
        "normalized.tsv",
        &["--n0", "20", "--n", "100", "--mean", "0.5", "--std", "0.25"],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    smoothing(&dir, &args);
    let manifest = std::fs::read_to_string(dir.join("normalized.tsv.manifest.json")).unwrap();
    assert!(manifest.contains("mean [0.5] std [0.25]"), "{manifest}");

    // PGD through the interpreter on the autodiff backend, on the examples certify.tsv
    // certified correctly.
    let mut args = run(
        "attack",
        "atk",
        &[
            "--log",
            "certify.tsv",
            "--multiples",
            "0.5",
            "--steps",
            "2",
            "--samples",
            "4",
            "--n",
            "100",
        ],
    );
    let max = args.iter().position(|a| a == "--max").unwrap();
    args.drain(max..max + 2);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    smoothing(&dir, &args);
    let correct = std::fs::read_to_string(dir.join("certify.tsv"))
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| l.split('\t').nth(4) == Some("1"))
        .count();
    let attacked = std::fs::read_to_string(dir.join("atk/pgd_0.5R.tsv")).unwrap();
    assert!(correct >= 1);
    assert_eq!(attacked.lines().skip(1).count(), correct, "{attacked}");
}
