//! ImageNet-style image folders on small files the tests write: layout, transforms, errors,
//! and that jobs and training read them lazily.

use std::path::{Path, PathBuf};

use burn::backend::{Autodiff, Flex, NdArray};
use burn::tensor::Tensor;
use image::{GrayImage, ImageFormat, Luma, Rgb, RgbImage};
use rand::SeedableRng;
use rand::rngs::StdRng;
use randomized_smoothing::data::{ImageFolder, ImageSource};
use randomized_smoothing::models::SmallCnnConfig;
use randomized_smoothing::workflow::jobs::{Job, Selection, Shard, certify_dataset};
use randomized_smoothing::workflow::train::{TrainConfig, train};
use randomized_smoothing::{CertifyConfig, Error, Gaussian, LogitsClassifier, SmoothedClassifier};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rs-folder-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// 512 x 256, black on the left half and pure red on the right half.
fn half_red() -> RgbImage {
    RgbImage::from_fn(512, 256, |x, _| {
        if x < 256 {
            Rgb([0, 0, 0])
        } else {
            Rgb([255, 0, 0])
        }
    })
}

/// Two classes, written in reverse order of their names, with a stray text file.
fn two_classes(root: &Path) {
    for class in ["b_red", "a_gray"] {
        std::fs::create_dir_all(root.join(class)).unwrap();
    }
    half_red().save(root.join("b_red/2.png")).unwrap();
    half_red()
        .save_with_format(root.join("b_red/1.JPEG"), ImageFormat::Jpeg)
        .unwrap();
    GrayImage::from_pixel(300, 400, Luma([51]))
        .save(root.join("a_gray/x.png"))
        .unwrap();
    std::fs::write(root.join("a_gray/notes.txt"), "not an image").unwrap();
}

#[test]
fn classes_are_sorted_folders_and_other_files_are_ignored() {
    let root = temp_dir("layout");
    two_classes(&root);
    let folder = ImageFolder::open(&root).unwrap();
    assert_eq!(folder.classes(), &["a_gray", "b_red"]);
    assert_eq!(folder.len(), 3);
    assert_eq!(
        (folder.image_shape(), folder.num_classes()),
        (&[3, 224, 224][..], 2)
    );
    let labels: Vec<usize> = (0..3).map(|i| folder.label(i)).collect();
    assert_eq!(labels, [0, 1, 1]);
    assert!(folder.path(1).ends_with("b_red/1.JPEG"));
}

#[test]
fn test_transform_resizes_the_short_side_and_crops_the_centre() {
    let root = temp_dir("centre");
    two_classes(&root);
    let folder = ImageFolder::open(&root).unwrap();
    let (n, side) = (224 * 224, 224);
    // Grayscale expands to three equal channels; a constant image stays constant.
    let gray = folder.load(0).unwrap();
    assert_eq!(gray.len(), 3 * n);
    assert!(gray.iter().all(|&p| (p - 0.2).abs() < 1e-6), "51/255");
    // 512x256 keeps its size (short side 256), and the central 224 columns start at 144:
    // the red edge at x = 256 falls at column 112 of the crop.
    let red = folder.load(2).unwrap();
    for y in [0, 100, 223] {
        let row = y * side;
        assert_eq!(red[row + 100], 0.0, "left of the edge is black");
        assert_eq!(red[row + 124], 1.0, "right of the edge is red");
        assert_eq!(red[n + row + 124], 0.0, "green channel");
        assert_eq!(red[2 * n + row + 124], 0.0, "blue channel");
    }
    let small = folder.with_sizes(128, 64).unwrap();
    let red = small.load(2).unwrap();
    assert_eq!(red.len(), 3 * 64 * 64);
    // Resized to 256x128; the crop starts at 96, so the edge (x = 128) is at column 32.
    assert!(red[10 * 64 + 28] < 0.05 && red[10 * 64 + 36] > 0.95);
    // The JPEG decodes to the same picture, up to compression.
    let folder = ImageFolder::open(&root).unwrap();
    let (jpeg, png) = (folder.load(1).unwrap(), folder.load(2).unwrap());
    let worst = jpeg
        .iter()
        .zip(png.iter())
        .enumerate()
        .filter(|(i, _)| (i % side).abs_diff(112) > 8)
        .map(|(_, (a, b))| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(worst < 0.1, "JPEG differs by {worst}");
}

#[test]
fn train_transform_is_random_reproducible_and_in_range() {
    let root = temp_dir("train");
    two_classes(&root);
    let folder = ImageFolder::open(&root).unwrap();
    let draw = |seed| {
        folder
            .load_train(2, &mut StdRng::seed_from_u64(seed))
            .unwrap()
            .into_owned()
    };
    let a = draw(1);
    assert_eq!(a.len(), 3 * 224 * 224);
    assert!(a.iter().all(|p| (0.0..=1.0).contains(p)));
    assert_eq!(a, draw(1));
    // Over many draws, crops land on both sides of the edge and flips mirror it: the red
    // share of the first column takes both extreme values.
    let first_column_red: Vec<f32> = (0..40)
        .map(|seed| {
            let x = draw(seed);
            (0..224).map(|y| x[y * 224]).sum::<f32>() / 224.0
        })
        .collect();
    assert!(first_column_red.iter().any(|&r| r > 0.99));
    assert!(first_column_red.iter().any(|&r| r < 0.01));
    assert!((2..40).any(|seed| draw(seed) != a));
}

#[test]
fn bad_folders_and_files_are_typed_errors() {
    let missing = ImageFolder::open("no/such/folder").unwrap_err();
    assert!(matches!(missing, Error::Io { .. }), "{missing}");
    let root = temp_dir("bad");
    assert!(matches!(
        ImageFolder::open(&root),
        Err(Error::MalformedData { .. })
    ));
    std::fs::create_dir_all(root.join("empty")).unwrap();
    let err = ImageFolder::open(&root).unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");

    let root = temp_dir("truncated");
    std::fs::create_dir_all(root.join("c")).unwrap();
    // Cuts at several points of a JPEG and a PNG, and a file that only claims to be a PNG.
    let cut = |name: &str, format, fraction: f64| {
        let path = root.join("c").join(name);
        half_red().save_with_format(&path, format).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let keep = (bytes.len() as f64 * fraction) as usize;
        std::fs::write(&path, &bytes[..keep]).unwrap();
    };
    cut("a.jpg", ImageFormat::Jpeg, 0.3);
    cut("b.jpg", ImageFormat::Jpeg, 0.9);
    cut("c.jpg", ImageFormat::Jpeg, 0.05);
    cut("d.png", ImageFormat::Png, 0.5);
    cut("e.png", ImageFormat::Png, 0.97);
    std::fs::write(root.join("c/f.png"), b"\x89PNG but not really").unwrap();
    let folder = ImageFolder::open(&root).unwrap();
    assert_eq!(folder.len(), 6);
    for i in 0..folder.len() {
        match folder.load(i) {
            Err(Error::MalformedData { location, .. }) => {
                assert!(location.contains(folder.path(i).to_str().unwrap()))
            }
            Err(other) => panic!("{}: {other}", folder.path(i).display()),
            Ok(_) => panic!("{} loaded", folder.path(i).display()),
        }
    }
    assert!(folder.with_sizes(200, 224).is_err());
}

#[test]
fn jobs_and_training_read_folders_lazily() {
    let root = temp_dir("jobs");
    two_classes(&root);
    let folder = ImageFolder::open(&root)
        .unwrap()
        .with_sizes(36, 32)
        .unwrap();
    // Class 1 if the image has any red: the right answer on all three images.
    let base = LogitsClassifier::new([3, 32, 32], 2, |x: Tensor<NdArray, 4>| {
        let [n, _, h, w] = x.dims();
        let red = x
            .clone()
            .slice([0..n, 0..1, 0..h, 0..w])
            .mean_dim(3)
            .mean_dim(2);
        let green = x.slice([0..n, 1..2, 0..h, 0..w]).mean_dim(3).mean_dim(2);
        let score = (red - green).flatten::<2>(1, 3) * 100.0 - 1.0;
        Tensor::cat(vec![score.clone().neg(), score], 1)
    })
    .unwrap();
    let smoothed = SmoothedClassifier::new(base, Gaussian::new(0.05).unwrap());
    let config = CertifyConfig::default().n(1_000).check().unwrap();
    let job = Job {
        selection: Selection::new(1, None, Shard::whole()).unwrap(),
        seed: 0,
        output: root.join("certify.tsv"),
    };
    let rows = certify_dataset(
        &smoothed,
        &folder,
        &config,
        &job,
        &Default::default(),
        |_, _, _| {},
    )
    .unwrap();
    assert_eq!(rows.iter().filter(|r| r.correct).count(), 3);

    let model = SmallCnnConfig::new([3, 32, 32], 2)
        .with_filters(4)
        .init::<Autodiff<Flex>>(&Default::default())
        .unwrap();
    let params = TrainConfig::new(0.25)
        .epochs(2)
        .batch_size(2)
        .check()
        .unwrap();
    let mut epochs = 0;
    train(model, &folder, &folder, &params, None, 0, |_| epochs += 1).unwrap();
    assert_eq!(epochs, 2);
}
