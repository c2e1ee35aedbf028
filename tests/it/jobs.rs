//! Long certification jobs: kill-and-resume and shard-and-merge give the rows of one
//! uninterrupted run.

use std::path::{Path, PathBuf};

use burn::backend::NdArray;
use burn::tensor::Tensor;
use randomized_smoothing::data::{Dataset, digits};
use randomized_smoothing::workflow::jobs::{
    Job, Selection, Shard, certify_dataset, merge_logs, read_log,
};
use randomized_smoothing::workflow::records::{CertifyRecord, read_certify_log};
use randomized_smoothing::{
    CertifyConfig, CertifyValidConfig, Error, Gaussian, LogitsClassifier, RowFault,
    SmoothedClassifier,
};

type B = NdArray;

/// Logits from the mean brightness of the four quadrants: a cheap, input-dependent classifier.
fn quadrants(x: Tensor<B, 4>) -> Tensor<B, 2> {
    let pooled = burn::tensor::module::avg_pool2d(x, [4, 4], [4, 4], [0, 0], true, false);
    pooled.flatten::<2>(1, 3).mul_scalar(10.0)
}

type Forward = fn(Tensor<B, 4>) -> Tensor<B, 2>;

fn setup() -> (Forward, Dataset, CertifyValidConfig) {
    let forward = quadrants as Forward;
    let (_, test) = digits().unwrap().split_at(1_700).unwrap();
    let config = CertifyConfig::default()
        .n0(20)
        .n(300)
        .alpha(0.01)
        .batch_size(150)
        .check()
        .unwrap();
    (forward, test, config)
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rs-jobs-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Everything but the time column.
fn key(rows: &[CertifyRecord]) -> Vec<(usize, usize, Option<usize>, String, bool)> {
    rows.iter()
        .map(|r| {
            (
                r.idx,
                r.label,
                r.predict,
                format!("{:.3}", r.radius),
                r.correct,
            )
        })
        .collect()
}

fn read(path: &PathBuf) -> Vec<CertifyRecord> {
    read_certify_log(std::fs::File::open(path).unwrap()).unwrap()
}

type Smoothed = SmoothedClassifier<LogitsClassifier<B, fn(Tensor<B, 4>) -> Tensor<B, 2>, 4>>;

/// Runs (or resumes) a job and returns the number of rows it added.
fn run(
    smoothed: &Smoothed,
    data: &Dataset,
    config: &CertifyValidConfig,
    selection: Selection,
    output: &Path,
) -> Result<usize, Error> {
    let job = Job {
        selection,
        seed: 5,
        output: output.to_path_buf(),
    };
    let mut added = 0;
    certify_dataset(
        smoothed,
        data,
        config,
        &job,
        &Default::default(),
        |_, _, _| added += 1,
    )?;
    Ok(added)
}

fn smoothed() -> (Smoothed, Dataset, CertifyValidConfig) {
    let (forward, data, config) = setup();
    let base = LogitsClassifier::new([1, 8, 8], 4, forward).unwrap();
    (
        SmoothedClassifier::new(base, Gaussian::new(0.25).unwrap()),
        data,
        config,
    )
}

#[test]
fn resume_and_shards_reproduce_the_single_run() {
    let (smoothed, data, config) = smoothed();
    let selection = Selection::new(3, Some(20), Shard::whole()).unwrap();
    let d = dir("resume");

    let single = d.join("single.tsv");
    assert_eq!(
        run(&smoothed, &data, &config, selection, &single).unwrap(),
        20
    );
    let reference = read(&single);
    assert_eq!(reference.len(), 20);
    assert!(
        reference.iter().any(|r| r.predict.is_some()),
        "the toy classifier certifies something"
    );

    // Killed after 7 rows, with half of the 8th written.
    let resumed = d.join("resumed.tsv");
    let text = std::fs::read_to_string(&single).unwrap();
    let cut: usize = text.lines().take(8).map(|l| l.len() + 1).sum::<usize>() + 5;
    std::fs::write(&resumed, &text[..cut]).unwrap();
    assert_eq!(
        run(&smoothed, &data, &config, selection, &resumed).unwrap(),
        13
    );
    assert_eq!(key(&read(&resumed)), key(&reference));
    // Running a finished job again adds nothing.
    assert_eq!(
        run(&smoothed, &data, &config, selection, &resumed).unwrap(),
        0
    );
    assert_eq!(read(&resumed).len(), 20);

    // Three shards, merged.
    let shards: Vec<PathBuf> = (0..3)
        .map(|k| {
            let path = d.join(format!("shard-{k}.tsv"));
            let shard = Selection::new(3, Some(20), Shard::new(k, 3).unwrap()).unwrap();
            run(&smoothed, &data, &config, shard, &path).unwrap();
            path
        })
        .collect();
    let merged = d.join("merged.tsv");
    assert_eq!(merge_logs(&shards, &merged).unwrap(), 20);
    assert_eq!(key(&read(&merged)), key(&reference));
    // Merging a shard twice is refused.
    let err = merge_logs(&[shards[0].clone(), shards[0].clone()], &d.join("bad.tsv")).unwrap_err();
    assert!(
        matches!(&err, Error::RejectedRow { log: Some(second), line: 2, example: 0,
            fault: RowFault::Repeated { first_line: 2, first_log: Some(first) } }
            if *first == shards[0] && *second == shards[0]),
        "{err}"
    );
}

/// Two runs appended to one log leave every example twice: resuming, merging and reading
/// it as a run's log all refuse it at the second copy, and the log is left as it was.
#[test]
fn a_log_with_an_example_twice_is_refused() {
    let (smoothed, data, config) = smoothed();
    let out = dir("twice").join("log.tsv");
    let selection = Selection::new(1, Some(3), Shard::whole()).unwrap();
    run(&smoothed, &data, &config, selection, &out).unwrap();
    let once = std::fs::read_to_string(&out).unwrap();
    let twice = format!(
        "{once}{}",
        once.lines().skip(1).collect::<Vec<_>>().join("\n") + "\n"
    );
    std::fs::write(&out, &twice).unwrap();
    let refused = |err: Error| {
        assert!(
            matches!(&err, Error::RejectedRow { log: Some(log), line: 5, example: 0,
                fault: RowFault::Repeated { first_line: 2, first_log: None } } if *log == out),
            "{err}"
        );
    };
    refused(run(&smoothed, &data, &config, selection, &out).unwrap_err());
    refused(read_log::<CertifyRecord>(&out).unwrap_err());
    let err = merge_logs(&[&out], &out.with_extension("merged")).unwrap_err();
    refused(err);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), twice);
    // The reader of bytes refuses it too, without a path.
    assert!(matches!(
        read_certify_log(twice.as_bytes()).unwrap_err(),
        Error::RejectedRow {
            log: None,
            line: 5,
            ..
        }
    ));
}

#[test]
fn a_log_of_another_selection_is_not_extended() {
    let (smoothed, data, config) = smoothed();
    let out = dir("other").join("log.tsv");
    run(
        &smoothed,
        &data,
        &config,
        Selection::new(1, Some(2), Shard::whole()).unwrap(),
        &out,
    )
    .unwrap();
    let err = run(
        &smoothed,
        &data,
        &config,
        Selection::new(5, Some(2), Shard::whole()).unwrap(),
        &out,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::RejectedRow {
                line: 3,
                fault: RowFault::NotSelected,
                ..
            }
        ),
        "{err}"
    );
}

/// The warm-up runs one pass of every batch size a packed job uses (and of the other group
/// sizes a resumed or sharded job could meet), and the job's rows are those it writes
/// without a warm-up.
#[test]
fn warm_up_covers_every_pass_and_changes_no_row() {
    use randomized_smoothing::workflow::jobs::certify_dataset_packed;
    use randomized_smoothing::workflow::warm_up::{pass_sizes, warm_up};
    use std::collections::BTreeSet;
    use std::sync::{Arc, Mutex};

    let (_, data, _) = setup();
    // n0 = 50, n = 130, batch 100, 3 inputs per pass, 7 examples: groups of 3, 3 and 1.
    let config = CertifyConfig::default()
        .n0(50)
        .n(130)
        .alpha(0.01)
        .batch_size(100)
        .check()
        .unwrap();
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let record = Arc::clone(&seen);
    let base = LogitsClassifier::new([1, 8, 8], 4, move |x: Tensor<B, 4>| {
        record.lock().unwrap().insert(x.dims()[0]);
        quadrants(x)
    })
    .unwrap();
    let smoothed = SmoothedClassifier::new(base, Gaussian::new(0.25).unwrap());
    let d = dir("warm-up");
    let job = |name: &str| Job {
        selection: Selection::new(1, Some(7), Shard::whole()).unwrap(),
        seed: 5,
        output: d.join(name),
    };
    let device = Default::default();

    let cold = certify_dataset_packed(
        &smoothed,
        &data,
        &config,
        &job("cold.tsv"),
        3,
        &device,
        |_, _, _| {},
    )
    .unwrap();
    let job_passes = std::mem::take(&mut *seen.lock().unwrap());
    // Selection 150 and 50 rows, estimation 390 and 130: passes of 100, 50, 90 and 30.
    assert_eq!(job_passes, BTreeSet::from([100, 90, 50, 30]));

    let warm = warm_up(
        &smoothed,
        &data,
        &job("warm.tsv"),
        &[50, 130],
        3,
        100,
        &device,
    )
    .unwrap();
    let warm_passes = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(warm.batch_sizes, pass_sizes(&[50, 130], 7, 3, 100).unwrap());
    // One pass of each size the job runs, and no other.
    assert_eq!(warm_passes, job_passes);
    assert_eq!(warm.batch_sizes, [100, 90, 50, 30]);
    // A finished job warms nothing up; one with 2 examples left, in one group of 2, warms
    // up its passes alone: selection 100 rows, estimation 260 (passes of 100 and 60).
    let warm_for = |name: &str| warm_up(&smoothed, &data, &job(name), &[50, 130], 3, 100, &device);
    assert!(warm_for("cold.tsv").unwrap().batch_sizes.is_empty());
    let lines: Vec<String> = std::fs::read_to_string(d.join("cold.tsv"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    // The header and 5 rows, and a row cut short, which does not count.
    let partial = lines[..6].join("\n") + "\n" + &lines[6][..3];
    std::fs::write(d.join("partial.tsv"), partial).unwrap();
    assert_eq!(warm_for("partial.tsv").unwrap().batch_sizes, [100, 60]);
    seen.lock().unwrap().clear();

    let after = certify_dataset_packed(
        &smoothed,
        &data,
        &config,
        &job("warm.tsv"),
        3,
        &device,
        |_, _, _| {},
    )
    .unwrap();
    assert_eq!(key(&after), key(&cold));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn warm_up_checks_its_arguments_and_an_empty_job_warms_nothing() {
    use randomized_smoothing::workflow::warm_up::{pass_sizes, warm_up};

    assert!(matches!(
        pass_sizes(&[100], 3, 0, 400),
        Err(Error::ZeroCount(_))
    ));
    assert!(matches!(
        pass_sizes(&[100], 3, 1, 0),
        Err(Error::ZeroCount(_))
    ));
    assert!(matches!(
        pass_sizes(&[0], 3, 1, 400),
        Err(Error::ZeroCount(_))
    ));
    assert!(pass_sizes(&[100], 0, 2, 400).unwrap().is_empty());
    let (smoothed, data, _) = smoothed();
    let job = Job {
        selection: Selection::new(1, Some(0), Shard::whole()).unwrap(),
        seed: 0,
        output: "unused.tsv".into(),
    };
    let warm = warm_up(&smoothed, &data, &job, &[100], 2, 400, &Default::default()).unwrap();
    assert!(warm.batch_sizes.is_empty());
}
