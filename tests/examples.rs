//! The CIFAR-10 and ImageNet examples, run end to end on tiny generated data sets: a few
//! CIFAR-10 binary records and a folder of PNG images. `cargo test` builds the examples
//! before it runs this test.

use std::path::{Path, PathBuf};
use std::process::Command;

use image::{Rgb, RgbImage};

/// The example binary `name`, built by `cargo test` next to this test's own directory.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/examples-<hash> -> target/<profile>/examples/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test`, which builds the examples",
        path.display()
    );
    path
}

/// Runs an example with `args`, asserts that it succeeded and returns its standard output.
fn run(name: &str, args: &[&str]) -> String {
    let output = Command::new(example(name))
        .args(args)
        .output()
        .expect("the example starts");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{name} {args:?} failed:\n{stderr}");
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// A scratch directory for one test, empty.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rs-examples-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// Deterministic bytes (a 64-bit LCG's high bytes).
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 56) as u8
        })
        .collect()
}

/// A CIFAR-10 binary file of `records` records: a label byte, then 3,072 pixel bytes.
fn write_cifar_batch(path: &Path, records: usize, seed: u64) {
    let mut file = Vec::new();
    for (i, pixels) in bytes(seed, records * 3072).chunks(3072).enumerate() {
        file.push((i % 10) as u8);
        file.extend_from_slice(pixels);
    }
    std::fs::write(path, file).expect("CIFAR batch written");
}

/// The log's rows without the time column (the last), which differs between runs.
fn rows_without_time(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("the log exists");
    text.lines()
        .map(|line| {
            line.rsplit_once('\t')
                .map_or(line, |(rest, _)| rest)
                .to_string()
        })
        .collect()
}

#[test]
fn cifar10_trains_saves_reloads_and_certifies() {
    let dir = scratch("cifar10");
    for i in 1..=5 {
        write_cifar_batch(&dir.join(format!("data_batch_{i}.bin")), 8, i);
    }
    write_cifar_batch(&dir.join("test_batch.bin"), 6, 0);
    let data = dir.to_str().expect("UTF-8 path");
    let (trained_log, loaded_log) = (dir.join("trained.tsv"), dir.join("loaded.tsv"));
    let model = dir.join("resnet20.bpk");
    let common = [
        "--data",
        data,
        "--sigma",
        "0.25",
        "--n0",
        "8",
        "--n",
        "40",
        "--batch",
        "20",
        "--max",
        "3",
        "--backend",
        "flex",
    ];
    let trained = run(
        "cifar10",
        &[
            &common[..],
            &["--epochs", "1", "--save", model.to_str().unwrap()],
            &["--out", trained_log.to_str().unwrap()],
        ]
        .concat(),
    );
    assert!(trained.contains("| 0.00 |"), "{trained}");
    let loaded = run(
        "cifar10",
        &[
            &common[..],
            &["--checkpoint", model.to_str().unwrap()],
            &["--out", loaded_log.to_str().unwrap()],
        ]
        .concat(),
    );
    assert!(loaded.contains("| 0.00 |"), "{loaded}");
    // A header and the three selected test images, and the saved model certifies exactly as
    // the model that was trained (same weights, same seeds).
    let rows = rows_without_time(&trained_log);
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert_eq!(rows, rows_without_time(&loaded_log));
    // Neither --checkpoint nor --epochs: a usage error, not a silent default.
    let refused = Command::new(example("cifar10"))
        .args(["--data", data, "--sigma", "0.25"])
        .output()
        .expect("the example starts");
    assert!(!refused.status.success());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn imagenet_dry_run_certifies_an_image_folder() {
    let dir = scratch("imagenet");
    for (c, class) in ["n01440764", "n01443537"].iter().enumerate() {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for i in 0..2 {
            let noise = bytes((c * 2 + i) as u64 + 1, 48 * 40 * 3);
            let image = RgbImage::from_fn(48, 40, |x, y| {
                let at = ((y * 48 + x) * 3) as usize;
                Rgb([noise[at], noise[at + 1], noise[at + 2]])
            });
            image
                .save(dir.join(class).join(format!("{i}.png")))
                .unwrap();
        }
    }
    let log = dir.join("log.tsv");
    let out = run(
        "imagenet",
        &[
            "--data",
            dir.to_str().unwrap(),
            "--random-weights",
            "--sigma",
            "0.5",
            "--n0",
            "4",
            "--n",
            "16",
            "--batch",
            "8",
            "--skip",
            "2",
            "--out",
            log.to_str().unwrap(),
            "--backend",
            "flex",
        ],
    );
    assert!(out.contains("4 images of 2 classes, 224x224"), "{out}");
    assert!(out.contains("| 0.00 |"), "{out}");
    // Every 2nd of the 4 images: a header and 2 rows, labels from the folder names' order.
    let rows = rows_without_time(&log);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(
        rows[1].starts_with("0\t0\t") && rows[2].starts_with("2\t1\t"),
        "{rows:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
