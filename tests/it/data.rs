//! Loaders on real files (`../shared/data`) and on small files the tests write.

use std::path::PathBuf;

use randomized_smoothing::Error;
use randomized_smoothing::data::{digits, load_cifar10, load_mnist, read_digits_csv};

fn shared(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(path)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rs-data-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn mnist_test_set_loads() {
    let d = load_mnist(
        shared("mnist/t10k-images-idx3-ubyte.gz"),
        shared("mnist/t10k-labels-idx1-ubyte.gz"),
    )
    .unwrap();
    assert_eq!(
        (d.len(), d.image_shape(), d.num_classes()),
        (10_000, &[1, 28, 28][..], 10)
    );
    // The first test digits of MNIST are 7, 2, 1, 0, 4.
    assert_eq!(&d.labels()[..5], &[7, 2, 1, 0, 4]);
    let mut per_class = [0usize; 10];
    d.labels().iter().for_each(|&l| per_class[l] += 1);
    assert_eq!(
        per_class,
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    let max = d.image(0).iter().cloned().fold(0f32, f32::max);
    assert_eq!(max, 1.0);
}

#[test]
fn truncated_mnist_is_an_error() {
    let dir = temp_dir("mnist");
    let raw = std::fs::read(shared("mnist/t10k-labels-idx1-ubyte.gz")).unwrap();
    // A gzip stream cut short cannot be decompressed.
    std::fs::write(dir.join("labels.gz"), &raw[..raw.len() / 2]).unwrap();
    let err = load_mnist(
        shared("mnist/t10k-images-idx3-ubyte.gz"),
        dir.join("labels.gz"),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    // An uncompressed file cut short fails on its announced size.
    let mut labels = vec![0, 0, 8, 1, 0, 0, 39, 16];
    labels.extend(vec![1u8; 9_999]);
    std::fs::write(dir.join("labels"), &labels).unwrap();
    let err = load_mnist(
        shared("mnist/t10k-images-idx3-ubyte.gz"),
        dir.join("labels"),
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::MalformedData { .. }) && err.to_string().contains("truncated"),
        "{err}"
    );
    let err = load_mnist(dir.join("missing"), dir.join("labels")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    // The operating system's error stays reachable as the source, and the path is named.
    let source = std::error::Error::source(&err)
        .and_then(|s| s.downcast_ref::<randomized_smoothing::IoError>())
        .expect("an I/O source");
    assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn cifar10_batches_load_and_truncation_is_reported() {
    let dir = temp_dir("cifar");
    let record = |label: u8, value: u8| {
        let mut r = vec![label];
        r.extend(std::iter::repeat_n(value, 3 * 32 * 32));
        r
    };
    std::fs::write(
        dir.join("test_batch.bin"),
        [record(3, 0), record(9, 255)].concat(),
    )
    .unwrap();
    let d = load_cifar10(&dir, false).unwrap();
    assert_eq!(
        (d.len(), d.labels(), d.image_shape()),
        (2, &[3, 9][..], &[3, 32, 32][..])
    );
    assert_eq!(d.image(1)[3071], 1.0);
    for i in 1..=5 {
        std::fs::write(dir.join(format!("data_batch_{i}.bin")), record(i, 10)).unwrap();
    }
    assert_eq!(load_cifar10(&dir, true).unwrap().labels(), &[1, 2, 3, 4, 5]);
    let mut cut = record(1, 1);
    cut.truncate(2_000);
    std::fs::write(dir.join("data_batch_3.bin"), &cut).unwrap();
    let err = load_cifar10(&dir, true).unwrap_err();
    assert!(err.to_string().contains("data_batch_3.bin"), "{err}");
    std::fs::write(dir.join("test_batch.bin"), record(11, 0)).unwrap();
    assert!(matches!(
        load_cifar10(&dir, false),
        Err(Error::MalformedData { .. })
    ));
}

#[test]
fn digits_are_embedded_and_malformed_csv_is_reported() {
    let d = digits().unwrap();
    assert_eq!((d.len(), d.image_shape()), (1_797, &[1, 8, 8][..]));
    let mut per_class = [0usize; 10];
    d.labels().iter().for_each(|&l| per_class[l] += 1);
    assert!(
        per_class.iter().all(|&c| (170..=190).contains(&c)),
        "{per_class:?}"
    );
    let line = format!("{}3", "1,".repeat(64));
    for bad in [
        format!("{line}\n{}", &line[..20]),
        line.replace(",3", ",12"),
        line.replace("1,", "17,"),
        String::new(),
    ] {
        let err = read_digits_csv(bad.as_bytes()).unwrap_err();
        assert!(matches!(err, Error::MalformedData { .. }), "{err}");
    }
}
