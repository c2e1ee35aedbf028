//! Mutation tests of every loader: each valid file is cut at many offsets, has bytes flipped
//! (anywhere, and in its first 64 bytes, where the sizes are), is replaced by random bytes,
//! grown, and emptied. Every case must end in a typed error or in a load that passes the
//! loader's structural checks (shapes, counts, label range, finite values, or equality with
//! the original where the format carries a digest). Never a panic, a hang (each case has a
//! deadline) or an allocation sized by a damaged field: a counting allocator records the
//! largest single allocation of each case, which must stay under a bound set by the valid
//! file's own needs.
//!
//! Each test prints its number of cases, and how many loaded and how many were refused.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use burn::backend::NdArray;
use burn::tensor::Tensor;
use randomized_smoothing::data::{
    Dataset, ImageFolder, ImageSource, load_cifar10, load_cifar10_capped, load_mnist,
    load_mnist_capped, read_cifar10, read_digits_csv, read_mnist,
};
use randomized_smoothing::models::{
    ImageClassifier, Model, ModelCard, ModelConfig, PytorchCheckpoint, SmallCnnConfig,
    load_model_with_card, save_model_with_card,
};
use randomized_smoothing::workflow::manifest::Manifest;
use randomized_smoothing::workflow::records::{
    read_attack_log, read_certify_log, read_deepfool_log, read_predict_log,
};

mod common;

// ---------------------------------------------------------------------------------------
// The largest single allocation of the current thread.

struct Counting;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: the slot may be gone while a thread shuts down.
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

// SAFETY: every call is forwarded to the system allocator unchanged; the bookkeeping touches
// only a thread-local `Cell` that never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

// ---------------------------------------------------------------------------------------
// Cases and their runner.

/// SplitMix64: a small seeded generator, so every run tries the same cases.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// The damaged versions of `valid`, each named: truncations at the first 64 offsets and at
/// `each` more spread over the file, `each` files with 1 to 4 flipped bytes anywhere and
/// `each` with flips in the first 64 bytes, random bytes of three lengths, the file with
/// garbage appended or its middle repeated, and the empty file.
fn mutations(valid: &[u8], each: usize, seed: u64) -> Vec<(String, Vec<u8>)> {
    let mut mix = Mix(seed);
    let len = valid.len();
    let mut cases = vec![("empty".to_string(), Vec::new())];
    let mut cuts: Vec<usize> = (0..len.min(64)).collect();
    cuts.extend((1..=each).map(|i| i * len / (each + 1)));
    cuts.extend((0..each / 2).map(|_| mix.below(len)));
    cuts.sort_unstable();
    cuts.dedup();
    for cut in cuts.into_iter().filter(|&c| c < len) {
        cases.push((format!("cut at {cut}"), valid[..cut].to_vec()));
    }
    for (region, span) in [("anywhere", len), ("in the header", len.min(64))] {
        for _ in 0..each {
            let mut bytes = valid.to_vec();
            let mut at = Vec::new();
            for _ in 0..1 + mix.below(4) {
                let i = mix.below(span);
                bytes[i] ^= 1 + mix.below(255) as u8;
                at.push(i);
            }
            cases.push((format!("flip {region} at {at:?}"), bytes));
        }
    }
    for n in [16, 1_000, len] {
        let bytes = (0..n).map(|_| mix.next() as u8).collect();
        cases.push((format!("{n} random bytes"), bytes));
    }
    let mut grown = valid.to_vec();
    grown.extend((0..100).map(|_| mix.next() as u8));
    cases.push(("100 bytes appended".into(), grown));
    let (a, b) = (len / 3, 2 * len / 3);
    cases.push((
        "middle third repeated".into(),
        [&valid[..b], &valid[a..]].concat(),
    ));
    cases
}

/// What a case ended in: refused with a typed error, or loaded (and checked).
enum Verdict {
    Refused,
    Loaded,
}

/// Runs `load` on every case on a thread of its own with a deadline, and checks that none
/// panics, hangs, allocates more than `max_alloc` bytes at once, or loads something that
/// fails the checks inside `load` (which returns `Err` with the reason).
fn run(
    name: &str,
    cases: Vec<(String, Vec<u8>)>,
    max_alloc: usize,
    load: impl Fn(&[u8]) -> Result<Verdict, String> + Send + Sync + 'static,
) {
    let load = Arc::new(load);
    let (mut loaded, mut refused) = (0, 0);
    let total = cases.len();
    for (case, bytes) in cases {
        let (send, receive) = mpsc::channel();
        let load = Arc::clone(&load);
        std::thread::spawn(move || {
            LARGEST.with(|l| l.set(0));
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| load(&bytes)));
            let _ = send.send((outcome, LARGEST.with(Cell::get)));
        });
        let (outcome, largest) = receive
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("{name}, {case}: no answer within 20 s"));
        match outcome {
            Err(_) => panic!("{name}, {case}: the loader panicked"),
            Ok(Err(reason)) => panic!("{name}, {case}: loaded but {reason}"),
            Ok(Ok(Verdict::Loaded)) => loaded += 1,
            Ok(Ok(Verdict::Refused)) => refused += 1,
        }
        assert!(
            largest <= max_alloc,
            "{name}, {case}: an allocation of {largest} bytes (bound {max_alloc})"
        );
    }
    println!("{name}: {total} cases, {loaded} loaded and passed the checks, {refused} refused");
}

/// A fresh folder for one loader's cases.
fn scratch(name: &str) -> PathBuf {
    common::scratch_dir(&format!("mutations-{name}"))
}

/// A file for one case: a name unique to the thread, so cases never share one.
fn case_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path =
        dir.join(format!("{:?}-{name}", std::thread::current().id()).replace(['(', ')'], ""));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The structural checks of a loaded data set: counts, label range, pixels in [0, 1].
fn check_dataset(d: &Dataset, shape: &[usize], classes: usize) -> Result<Verdict, String> {
    if d.image_shape().iter().product::<usize>() != shape.iter().product::<usize>() {
        return Err(format!("images of shape {:?}", d.image_shape()));
    }
    for i in 0..d.len() {
        if d.label(i) >= classes {
            return Err(format!("label {} of example {i}", d.label(i)));
        }
        if !d.image(i).iter().all(|p| (0.0..=1.0).contains(p)) {
            return Err(format!("a pixel outside [0, 1] in example {i}"));
        }
    }
    Ok(Verdict::Loaded)
}

fn refused<T>(
    result: randomized_smoothing::Result<T>,
    check: impl FnOnce(T) -> Result<Verdict, String>,
) -> Result<Verdict, String> {
    match result {
        Ok(value) => check(value),
        Err(_) => Ok(Verdict::Refused),
    }
}

// ---------------------------------------------------------------------------------------
// Data sets.

/// IDX files of 12 images of 8x8 pixels and their labels.
fn idx_files() -> (Vec<u8>, Vec<u8>) {
    let mut images = vec![0, 0, 8, 3, 0, 0, 0, 12, 0, 0, 0, 8, 0, 0, 0, 8];
    images.extend((0..12 * 64).map(|i| (i * 37 % 256) as u8));
    let mut labels = vec![0, 0, 8, 1, 0, 0, 0, 12];
    labels.extend((0..12).map(|i| (i % 10) as u8));
    (images, labels)
}

#[test]
fn mnist_idx() {
    let (images, labels) = idx_files();
    let bound = 1 << 20;
    let valid_labels = labels.clone();
    run(
        "MNIST images (IDX)",
        mutations(&images, 60, 1),
        bound,
        move |bytes| {
            refused(read_mnist(bytes, &valid_labels), |d| {
                check_dataset(&d, &[1, 8, 8], 10)
            })
        },
    );
    run(
        "MNIST labels (IDX)",
        mutations(&labels, 30, 2),
        bound,
        move |bytes| {
            refused(read_mnist(&images, bytes), |d| {
                check_dataset(&d, &[1, 8, 8], 10)
            })
        },
    );
}

#[test]
fn mnist_idx_gzip() {
    let (images, labels) = idx_files();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&images).unwrap();
    let gz = gz.finish().unwrap();
    let dir = scratch("mnist-gz");
    let labels_path = dir.join("labels");
    std::fs::write(&labels_path, &labels).unwrap();
    run(
        "MNIST images (IDX, gzip)",
        mutations(&gz, 60, 3),
        1 << 20,
        move |bytes| {
            let path = case_file(&dir, "images.gz", bytes);
            let result = load_mnist(&path, &labels_path);
            std::fs::remove_file(path).ok();
            refused(result, |d| check_dataset(&d, &[1, 8, 8], 10))
        },
    );
}

/// Gzip bombs and lying headers: a small file whose header announces 7.8 GB, and one whose
/// stream of zeros runs 256 MB past the 2 images its header announces, are refused with at
/// most 64 MiB allocated at once (in practice a few KB: nothing is sized by the header, and
/// the stream is read only to one byte past it); a header under a lowered cap loads; a
/// CIFAR-10 batch that decompresses past the cap is refused at the cap.
#[test]
fn idx_and_cifar_bombs() {
    let dir = scratch("bombs");
    let gzip = |chunks: &[&[u8]], zeros: usize| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        for chunk in chunks {
            gz.write_all(chunk).unwrap();
        }
        let block = vec![0u8; 1 << 20];
        for _ in 0..zeros >> 20 {
            gz.write_all(&block).unwrap();
        }
        gz.finish().unwrap()
    };
    let header = |count: u32| {
        [
            &[0u8, 0, 8, 3][..],
            &count.to_be_bytes(),
            &28u32.to_be_bytes(),
            &28u32.to_be_bytes(),
        ]
        .concat()
    };
    let labels = dir.join("labels");
    std::fs::write(
        &labels,
        [&[0u8, 0, 8, 1][..], &2u32.to_be_bytes(), &[3, 4]].concat(),
    )
    .unwrap();
    let two = vec![7u8; 2 * 784];
    let cases = [
        (
            "announces 10,000,000 images",
            gzip(&[&header(10_000_000), &two], 1 << 20),
            "more than the cap",
        ),
        (
            "runs 256 MB past its header",
            gzip(&[&header(2), &two], 256 << 20),
            "runs past the 1568 bytes",
        ),
    ];
    for (case, bytes, reason) in cases {
        assert!(
            bytes.len() < 1 << 20,
            "{case}: a small file ({} bytes)",
            bytes.len()
        );
        let path = dir.join("images.gz");
        std::fs::write(&path, &bytes).unwrap();
        let (send, receive) = mpsc::channel();
        let labels = labels.clone();
        std::thread::spawn(move || {
            LARGEST.with(|l| l.set(0));
            let result = load_mnist(&path, &labels).map(|d| d.len());
            let _ = send.send((result, LARGEST.with(Cell::get)));
        });
        let (result, largest) = receive.recv_timeout(Duration::from_secs(20)).unwrap();
        match result {
            Err(e) => assert!(e.to_string().contains(reason), "{case}: {e}"),
            Ok(n) => panic!("{case}: loaded {n} images"),
        }
        assert!(
            largest <= 64 << 20,
            "{case}: an allocation of {largest} bytes"
        );
    }
    // The cap is the file's payload: 2 images of 784 bytes pass a cap of 1568, not of 1567.
    let path = dir.join("two.gz");
    std::fs::write(&path, gzip(&[&header(2), &two], 0)).unwrap();
    assert_eq!(load_mnist_capped(&path, &labels, 1568).unwrap().len(), 2);
    let refused = load_mnist_capped(&path, &labels, 1567).unwrap_err();
    assert!(
        refused.to_string().contains("more than the cap of 1567"),
        "{refused}"
    );
    assert_eq!(load_mnist(&path, &labels).unwrap().len(), 2);
    // CIFAR-10: three records, and a test batch of 4 records under a cap of 3.
    let cifar = dir.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&cifar).unwrap();
    let record = [&[5u8][..], &[9u8; 3072]].concat();
    std::fs::write(cifar.join("test_batch.bin"), gzip(&[&record.repeat(4)], 0)).unwrap();
    assert_eq!(load_cifar10(&cifar, false).unwrap().len(), 4);
    let refused = load_cifar10_capped(&cifar, false, 3 * 3073).unwrap_err();
    assert!(
        refused.to_string().contains("more than 9219 bytes"),
        "{refused}"
    );
}

/// A digits CSV bomb: 64 MB of digits without a newline (64 KB gzipped) is refused at its
/// first line, having read a few hundred bytes of it, with at most 64 MiB allocated at once.
#[test]
fn digits_csv_bomb() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let block = vec![b'1'; 1 << 20];
    for _ in 0..64 {
        gz.write_all(&block).unwrap();
    }
    let bytes = gz.finish().unwrap();
    assert!(bytes.len() < 1 << 20, "{}", bytes.len());
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        LARGEST.with(|l| l.set(0));
        let result = read_digits_csv(flate2::read::GzDecoder::new(&bytes[..])).map(|d| d.len());
        let _ = send.send((result, LARGEST.with(Cell::get)));
    });
    let (result, largest) = receive.recv_timeout(Duration::from_secs(20)).unwrap();
    let err = result.expect_err("a line of 64 MB");
    assert!(
        err.to_string().contains("line 1: longer than 256 bytes"),
        "{err}"
    );
    assert!(largest <= 64 << 20, "an allocation of {largest} bytes");
}

#[test]
fn cifar10_binary() {
    // Five records: a label byte, then 3x32x32 pixels.
    let valid: Vec<u8> = (0..5)
        .flat_map(|r| {
            std::iter::once(r as u8).chain((0..3072).map(move |i| ((i * 7 + r) % 256) as u8))
        })
        .collect();
    run(
        "CIFAR-10 binary",
        mutations(&valid, 60, 4),
        1 << 20,
        |bytes| refused(read_cifar10(bytes), |d| check_dataset(&d, &[3, 32, 32], 10)),
    );
    // The file loader, over a folder with a damaged test batch.
    let dir = scratch("cifar");
    run(
        "CIFAR-10 binary (file)",
        mutations(&valid, 10, 5),
        1 << 20,
        move |bytes| {
            let sub =
                dir.join(format!("{:?}", std::thread::current().id()).replace(['(', ')'], ""));
            std::fs::create_dir_all(&sub).unwrap();
            std::fs::write(sub.join("test_batch.bin"), bytes).unwrap();
            let result = load_cifar10(&sub, false);
            std::fs::remove_dir_all(&sub).ok();
            refused(result, |d| check_dataset(&d, &[3, 32, 32], 10))
        },
    );
}

#[test]
fn digits_csv() {
    let valid: String = (0..6)
        .map(|r| {
            let pixels: Vec<String> = (0..64).map(|i| ((i + r) % 17).to_string()).collect();
            format!("{},{}\n", pixels.join(","), r % 10)
        })
        .collect();
    run(
        "digits CSV",
        mutations(valid.as_bytes(), 60, 6),
        1 << 20,
        |bytes| {
            refused(read_digits_csv(bytes), |d| {
                check_dataset(&d, &[1, 8, 8], 10)
            })
        },
    );
}

// ---------------------------------------------------------------------------------------
// Logs.

#[test]
fn logs() {
    let certify = "idx\tlabel\tpredict\tradius\tcorrect\ttime\n\
                   0\t3\t3\t0.378\t1\t0:00:15.400000\n\
                   20\t4\t-1\t0.0\t0\t0:00:15.700000\n\
                   40\t7\t2\t0.12\t0\t0:00:14.100000\n";
    run(
        "certification log (TSV)",
        mutations(certify.as_bytes(), 60, 7),
        1 << 20,
        |bytes| {
            refused(read_certify_log(bytes), |rows| {
                for r in &rows {
                    if !(r.radius.is_finite() && r.radius >= 0.0)
                        || r.correct != (r.predict == Some(r.label))
                    {
                        return Err(format!("row {r:?}"));
                    }
                }
                Ok(Verdict::Loaded)
            })
        },
    );
    let predict = "idx\tlabel\tpredict\tcorrect\ttime\n\
                   0\t3\t3\t1\t0:00:01.500000\n\
                   1\t4\t-1\t0\t0:00:01.400000\n";
    run(
        "prediction log (TSV)",
        mutations(predict.as_bytes(), 60, 8),
        1 << 20,
        |bytes| {
            refused(read_predict_log(bytes), |rows| {
                for r in &rows {
                    if r.correct != (r.predict == Some(r.label)) {
                        return Err(format!("row {r:?}"));
                    }
                }
                Ok(Verdict::Loaded)
            })
        },
    );
    let attack = "idx\tlabel\tradius\tattack_radius\tpredict\toutcome\tdistance\ttime\n\
                  3\t1\t0.4\t0.6\t1\trobust\t0.6\t0:00:01.000000\n\
                  5\t2\t0.3\t0.45\t-1\tabstained\t0.45\t0:00:01.000000\n";
    run(
        "PGD attack log (TSV)",
        mutations(attack.as_bytes(), 60, 9),
        1 << 20,
        |bytes| {
            refused(read_attack_log(bytes), |rows| {
                for r in &rows {
                    if !(r.radius.is_finite()
                        && r.attack_radius.is_finite()
                        && r.distance.is_finite())
                    {
                        return Err(format!("row {r:?}"));
                    }
                }
                Ok(Verdict::Loaded)
            })
        },
    );
    let deepfool = "idx\tlabel\tpredict\tadversarial\tdistance\titerations\tfooled\ttime\n\
                    1\t3\t3\t2\t0.512000\t3\t1\t0:00:00.100000\n";
    run(
        "DeepFool log (TSV)",
        mutations(deepfool.as_bytes(), 60, 10),
        1 << 20,
        |bytes| {
            refused(read_deepfool_log(bytes), |rows| {
                for r in &rows {
                    if !(r.distance.is_finite() && r.distance >= 0.0) {
                        return Err(format!("row {r:?}"));
                    }
                }
                Ok(Verdict::Loaded)
            })
        },
    );
}

#[test]
fn run_manifests() {
    let dir = scratch("manifest");
    let original = Manifest::new()
        .set("command", "certify")
        .set("sigma", 0.25)
        .set("n", 100_000)
        .set("model_sha256", "9f2c");
    let valid = original.to_json();
    run(
        "run manifest (JSON)",
        mutations(valid.as_bytes(), 60, 11),
        1 << 20,
        move |bytes| {
            let log = case_file(&dir, "log.tsv", b"");
            std::fs::write(Manifest::path_of(&log), bytes).unwrap();
            let result = Manifest::of_log(&log);
            std::fs::remove_file(Manifest::path_of(&log)).ok();
            match result {
                // The manifest records its own digest: whatever loads is the original.
                Ok(Some(m)) if m == original => Ok(Verdict::Loaded),
                Ok(Some(m)) => Err(format!("a changed manifest {m:?}")),
                Ok(None) => Err("no manifest".into()),
                Err(_) => Ok(Verdict::Refused),
            }
        },
    );
}

// ---------------------------------------------------------------------------------------
// Models.

/// The forward pass of a loaded model on one zero image has finite logits.
fn finite_logits(model: &Model<NdArray>) -> Result<Verdict, String> {
    let shape = model.input_shape().to_vec();
    let input = Tensor::zeros([1, shape[0], shape[1], shape[2]], &Default::default());
    let logits: Vec<f32> = model.forward(input).into_data().to_vec().unwrap();
    if logits.iter().all(|v| v.is_finite()) {
        Ok(Verdict::Loaded)
    } else {
        Err(format!("logits {logits:?}"))
    }
}

#[test]
fn burnpack_model_files() {
    let dir = scratch("burnpack");
    let config = ModelConfig::SmallCnn(SmallCnnConfig::new([1, 8, 8], 10).with_filters(4));
    let path = dir.join("valid.bpk");
    let device = Default::default();
    save_model_with_card(
        &config.init::<NdArray>(&device).unwrap(),
        &ModelCard::new(config),
        &path,
    )
    .unwrap();
    let valid = std::fs::read(&path).unwrap();
    let mut cases = mutations(&valid, 60, 12);
    // Flips inside the model card, the JSON that sizes the model built from the file.
    let card_at = valid
        .windows(9)
        .position(|w| w == b"SmallCnn\"")
        .expect("the card");
    let mut mix = Mix(13);
    for _ in 0..40 {
        let mut bytes = valid.clone();
        let i = card_at + mix.below(60);
        bytes[i] ^= 1 + mix.below(255) as u8;
        cases.push((format!("flip in the card at {i}"), bytes));
    }
    let original: Vec<f32> = load_model_with_card::<NdArray>(&path, &device)
        .unwrap()
        .0
        .forward(Tensor::ones([1, 1, 8, 8], &device))
        .into_data()
        .to_vec()
        .unwrap();
    run("burnpack model file", cases, 4 << 20, move |bytes| {
        let file = case_file(&dir, "model.bpk", bytes);
        let result = load_model_with_card::<NdArray>(&file, &Default::default());
        std::fs::remove_file(file).ok();
        refused(result, |(model, _)| {
            // The digest covers the card and every tensor: whatever loads is the original.
            let logits: Vec<f32> = model
                .forward(Tensor::ones([1, 1, 8, 8], &Default::default()))
                .into_data()
                .to_vec()
                .unwrap();
            if logits == original {
                Ok(Verdict::Loaded)
            } else {
                Err(format!("logits {logits:?}, the original's {original:?}"))
            }
        })
    });
}

fn pytorch_cases(fixture: &str, each: usize, seed: u64) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/models")
        .join(fixture);
    let valid = std::fs::read(&path).unwrap();
    let dir = scratch(fixture);
    // The model takes 1.1 MB of weights; reading a tensor may hold it twice.
    let bound = 8 * valid.len();
    run(
        &format!("PyTorch checkpoint ({fixture})"),
        mutations(&valid, each, seed),
        bound,
        move |bytes| {
            let file = case_file(&dir, "model.pth.tar", bytes);
            let result = PytorchCheckpoint::open(&file)
                .and_then(|c| c.model::<NdArray>(&Default::default()));
            std::fs::remove_file(file).ok();
            refused(result, |model| finite_logits(&model))
        },
    );
}

#[test]
fn pytorch_zip_checkpoints() {
    pytorch_cases("cifar_resnet20.zip.pth.tar", 40, 14);
}

#[test]
fn pytorch_legacy_checkpoints() {
    pytorch_cases("cifar_resnet20.legacy.pth.tar", 40, 15);
}

/// Lying headers in PyTorch checkpoints: the first convolution's shape (16, 3, 3, 3) in the
/// pickle rewritten as (255, 255, 255, 255), 17 GB of float32, in the legacy file and in the
/// zip file (its CRC-32 recomputed, so only the lie is left). Each is refused before any
/// tensor is read, with at most 64 MiB allocated at once (the time it took is printed).
#[test]
fn pytorch_lying_shapes() {
    let dir = scratch("pytorch-lies");
    let fixture = |name: &str| {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/models")
                .join(name),
        )
        .unwrap()
    };
    let lie = |bytes: &mut Vec<u8>| {
        let shape = b"K\x10K\x03K\x03K\x03";
        let at = bytes
            .windows(shape.len())
            .position(|w| w == shape)
            .expect("the first convolution's shape");
        bytes[at..at + shape.len()].copy_from_slice(b"K\xffK\xffK\xffK\xff");
        at
    };
    let mut legacy = fixture("cifar_resnet20.legacy.pth.tar");
    lie(&mut legacy);
    let mut zip = fixture("cifar_resnet20.zip.pth.tar");
    lie(&mut zip);
    // data.pkl is the zip's first entry: its CRC-32 in the local header and the directory.
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]) as usize;
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
    // PyTorch writes a data descriptor: the local header's sizes are 0, the directory's real.
    let name = zip[30..30 + u16_at(&zip, 26)].to_vec();
    let central = zip
        .windows(name.len())
        .rposition(|w| w == &name[..])
        .unwrap()
        - 46;
    assert_eq!(u32_at(&zip, central), 0x0201_4b50);
    let start = 30 + u16_at(&zip, 26) + u16_at(&zip, 28);
    let mut crc = flate2::Crc::new();
    crc.update(&zip[start..start + u32_at(&zip, central + 20) as usize]);
    for at in [14, central + 16] {
        zip[at..at + 4].copy_from_slice(&crc.sum().to_le_bytes());
    }
    for (case, bytes) in [("legacy", legacy), ("zip", zip)] {
        let path = case_file(&dir, &format!("{case}.pth.tar"), &bytes);
        let (send, receive) = mpsc::channel();
        std::thread::spawn(move || {
            LARGEST.with(|l| l.set(0));
            let started = std::time::Instant::now();
            let result = PytorchCheckpoint::open(&path).map(|_| ());
            let _ = send.send((result, LARGEST.with(Cell::get), started.elapsed()));
        });
        let (result, largest, took) = receive.recv_timeout(Duration::from_secs(20)).unwrap();
        let err = result.expect_err(case);
        assert!(
            err.to_string()
                .contains("tensor conv1.weight declares 16913002500 bytes")
                && err.to_string().contains("more than the file can hold"),
            "{case}: {err}"
        );
        assert!(
            largest <= 64 << 20,
            "{case}: an allocation of {largest} bytes"
        );
        eprintln!("{case}: refused in {took:?}, largest allocation {largest} bytes");
    }
}

// ---------------------------------------------------------------------------------------
// Image folders.

fn image_cases(format: image::ImageFormat, extension: &'static str, seed: u64) {
    let image = image::RgbImage::from_fn(40, 30, |x, y| {
        image::Rgb([(x * 6) as u8, (y * 8) as u8, 90])
    });
    let mut valid = std::io::Cursor::new(Vec::new());
    image.write_to(&mut valid, format).unwrap();
    let valid = valid.into_inner();
    let dir = scratch(extension);
    // The decoder holds the 40x30 image a few times over. A damaged size in a PNG header
    // fails its chunk's CRC; a JPEG may announce at most 1,024 pixels per byte of file
    // (about 1.2 million here), so no case allocates more than a few megabytes.
    run(
        &format!("image folder ({extension})"),
        mutations(&valid, 60, seed),
        16 << 20,
        move |bytes| {
            let root =
                dir.join(format!("{:?}", std::thread::current().id()).replace(['(', ')'], ""));
            std::fs::create_dir_all(root.join("a")).unwrap();
            std::fs::write(root.join(format!("a/x.{extension}")), bytes).unwrap();
            let result = ImageFolder::open(&root)
                .and_then(|f| f.with_sizes(32, 24))
                .and_then(|f| f.load(0).map(|pixels| pixels.into_owned()));
            std::fs::remove_dir_all(&root).ok();
            refused(result, |pixels| {
                if pixels.len() == 3 * 24 * 24 && pixels.iter().all(|p| (0.0..=1.0).contains(p)) {
                    Ok(Verdict::Loaded)
                } else {
                    Err(format!("{} pixels", pixels.len()))
                }
            })
        },
    );
}

/// Image bombs: a 40x30 PNG and JPEG whose headers announce 16,000 x 16,000 pixels (768 MB
/// of RGB; the PNG's header CRC recomputed, so only the lie is left) are refused before the
/// decoder allocates for them, with at most 64 MiB allocated at once.
#[test]
fn image_bombs() {
    let image = image::RgbImage::from_fn(40, 30, |x, y| {
        image::Rgb([(x * 6) as u8, (y * 8) as u8, 90])
    });
    let encoded = |format| {
        let mut bytes = std::io::Cursor::new(Vec::new());
        image.write_to(&mut bytes, format).unwrap();
        bytes.into_inner()
    };
    let side = 16_000u32;
    let mut png = encoded(image::ImageFormat::Png);
    // IHDR: length, type, then width and height at 16 and 20; its CRC-32 after 13 bytes.
    assert_eq!(&png[12..16], b"IHDR");
    png[16..20].copy_from_slice(&side.to_be_bytes());
    png[20..24].copy_from_slice(&side.to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&png[12..29]);
    png[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    let mut jpeg = encoded(image::ImageFormat::Jpeg);
    // The frame header (SOF0): marker, length, precision, then height and width.
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    jpeg[sof + 5..sof + 7].copy_from_slice(&(side as u16).to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&(side as u16).to_be_bytes());
    let dir = scratch("image-bombs");
    for (extension, bytes, reason) in [
        ("png", png, "limit"),
        ("jpg", jpeg, "a 16000x16000 JPEG cannot fit in"),
    ] {
        let root = dir.join(extension);
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::write(root.join(format!("a/x.{extension}")), bytes).unwrap();
        let (send, receive) = mpsc::channel();
        std::thread::spawn(move || {
            LARGEST.with(|l| l.set(0));
            let result = ImageFolder::open(&root)
                .and_then(|f| f.with_sizes(32, 24))
                .and_then(|f| f.load(0).map(|p| p.len()));
            let _ = send.send((result, LARGEST.with(Cell::get)));
        });
        let (result, largest) = receive.recv_timeout(Duration::from_secs(20)).unwrap();
        match result {
            Err(e) => assert!(e.to_string().contains(reason), "{extension}: {e}"),
            Ok(n) => panic!("{extension}: loaded {n} pixels"),
        }
        assert!(
            largest <= 64 << 20,
            "{extension}: an allocation of {largest} bytes"
        );
    }
}

#[test]
fn image_folder_png() {
    image_cases(image::ImageFormat::Png, "png", 16);
}

#[test]
fn image_folder_jpeg() {
    image_cases(image::ImageFormat::Jpeg, "jpg", 17);
}

// ---------------------------------------------------------------------------------------
// ONNX files.

/// A mutated ONNX file (the inverted residual of `tests/fixtures/onnx`, 10 kB) is refused
/// with a typed error, or loads as a model that runs on a batch and answers one row of
/// logits per input (ONNX carries no digest: a flipped weight is another valid model).
#[cfg(feature = "onnx")]
#[test]
fn onnx_files() {
    use randomized_smoothing::models::OnnxModel;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx/mobile.legacy.onnx");
    let valid = std::fs::read(&path).unwrap();
    let dir = scratch("onnx");
    // The valid model's own needs: its file, its trial runs on a batch of 2 (24 x 16 x 16
    // floats at most per image), a few copies of each.
    let bound = 4 << 20;
    run(
        "ONNX file",
        mutations(&valid, 60, 16),
        bound,
        move |bytes| {
            let file = case_file(&dir, "model.onnx", bytes);
            let result = OnnxModel::<NdArray, 4>::from_file(&file, &Default::default());
            std::fs::remove_file(file).ok();
            refused(result, |model| {
                let shape = randomized_smoothing::BaseClassifier::input_shape(&model).to_vec();
                let dims = [3, shape[0], shape[1], shape[2]];
                let logits = model.forward(Tensor::ones(dims, &Default::default()));
                if logits.dims()[0] == 3 {
                    Ok(Verdict::Loaded)
                } else {
                    Err(format!("logits of shape {:?}", logits.dims()))
                }
            })
        },
    );
}

/// The external data of an ONNX file (the vision transformer's weights beside its graph)
/// damaged: refused, or a model that runs.
#[cfg(feature = "onnx")]
#[test]
fn onnx_external_data() {
    use randomized_smoothing::models::OnnxModel;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx");
    let graph = std::fs::read(fixtures.join("vit.external.onnx")).unwrap();
    let valid = std::fs::read(fixtures.join("vit.external.onnx.data")).unwrap();
    let dir = scratch("onnx-external");
    std::fs::write(dir.join("vit.external.onnx"), &graph).unwrap();
    run(
        "ONNX external data",
        mutations(&valid, 40, 17),
        4 << 20,
        move |bytes| {
            // The cases run one at a time: one data file, rewritten for each.
            std::fs::write(dir.join("vit.external.onnx.data"), bytes).unwrap();
            let result = OnnxModel::<NdArray, 4>::from_file(
                dir.join("vit.external.onnx"),
                &Default::default(),
            );
            refused(result, |model| {
                let logits = model.forward(Tensor::ones([2, 3, 16, 16], &Default::default()));
                if logits.dims() == [2, 4] {
                    Ok(Verdict::Loaded)
                } else {
                    Err(format!("logits of shape {:?}", logits.dims()))
                }
            })
        },
    );
}

/// Lies in ONNX files (`tests/reference/gen_onnx_fixtures.py`): an initializer declaring
/// 2^20 x 2^20 float32 (4 TiB) over 864 bytes, and external data named 1 TiB into its file.
/// Each is refused, naming the tensor, before anything of the declared size is allocated.
#[cfg(feature = "onnx")]
#[test]
fn onnx_lying_sizes() {
    use randomized_smoothing::models::OnnxModel;
    for (file, says) in [
        ("lying_shape.onnx", "declares shape [1048576, 1048576]"),
        ("lying_external.onnx", "bytes at 1099511627776"),
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/onnx")
            .join(file);
        let (send, receive) = mpsc::channel();
        std::thread::spawn(move || {
            LARGEST.with(|l| l.set(0));
            let result = OnnxModel::<NdArray, 4>::from_file(&path, &Default::default()).map(|_| ());
            let _ = send.send((result, LARGEST.with(Cell::get)));
        });
        let (result, largest) = receive.recv_timeout(Duration::from_secs(20)).unwrap();
        let err = result.expect_err(file);
        assert!(err.to_string().contains(says), "{file}: {err}");
        assert!(
            largest <= 1 << 20,
            "{file}: an allocation of {largest} bytes"
        );
    }
}
