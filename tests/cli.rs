//! The `smoothing` program end to end: train, certify (sharded and whole), merge, predict,
//! analyze. Kept small: a 1-epoch model, a few examples, n = 200.
#![cfg(feature = "cli")]

use std::path::{Path, PathBuf};
use std::process::Command;

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

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rs-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Rows without the time column, which differs between runs.
fn rows_without_time(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.rsplit_once('\t').unwrap().0.to_string())
        .collect()
}

#[test]
fn train_certify_shards_merge_predict_analyze() {
    let dir = scratch("workflow");
    smoothing(
        &dir,
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
            "run",
        ],
    );
    assert!(dir.join("run/model.bpk").exists());
    assert!(dir.join("run/checkpoints/log.tsv").exists());

    let certify = |extra: &[&str]| {
        let mut args = vec![
            "certify",
            "--dataset",
            "digits",
            "--arch",
            "small_cnn",
            "--model",
            "run/model.bpk",
            "--sigma",
            "0.25",
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
        smoothing(&dir, &args)
    };
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

    // Merging a shard twice is refused.
    let out = Command::new(env!("CARGO_BIN_EXE_smoothing"))
        .current_dir(&dir)
        .args(["merge", "--out", "bad.tsv", "s0.tsv", "s0.tsv"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("appears twice"));

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
}
