//! The Slurm recipe of `examples/slurm/` on a real Slurm: a sharded certification as a job
//! array with a dependent merge gives the rows of one uninterrupted run; a task requeued in
//! the middle of its log resumes it without losing, repeating or mixing a row; a failed shard
//! keeps the merge from running; a second submission of a running job is refused by the
//! shards' locks, and doubles no row.
//!
//! `.ci/slurm.sh` installs and starts a single-node Slurm. Where none answers, the test skips
//! with a message, except under CI (`CI=true`), where that is a failure.
#![cfg(feature = "cli")]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::rows_without_time as rows;

fn slurm_answers() -> bool {
    Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty())
}

fn run(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .current_dir(dir)
        .env("SMOOTHING", env!("CARGO_BIN_EXE_smoothing"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A job's state as `scontrol` reports it (jobs stay listed for MinJobAge after ending).
fn state(job: &str) -> String {
    let out = Command::new("scontrol")
        .args(["show", "job", job])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .find_map(|f| f.strip_prefix("JobState="))
        .unwrap_or("GONE")
        .to_string()
}

/// Waits until `job` has ended, and returns its final state.
fn wait(job: &str, limit: Duration) -> String {
    let started = Instant::now();
    loop {
        let s = state(job);
        if ![
            "PENDING",
            "RUNNING",
            "CONFIGURING",
            "COMPLETING",
            "REQUEUED",
        ]
        .contains(&s.as_str())
        {
            return s;
        }
        assert!(
            started.elapsed() < limit,
            "job {job} still {s} after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn sharded_certify_array_with_requeue_and_merge() {
    if !slurm_answers() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI: no Slurm answers (sinfo); .ci/slurm.sh should have started one"
        );
        eprintln!("skipped: no Slurm answers here (run .ci/slurm.sh as root to start one)");
        return;
    }
    let dir = common::scratch_dir("slurm-array");
    let smoothing = env!("CARGO_BIN_EXE_smoothing");
    let submit = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/slurm/submit.sh");
    let submit = submit.to_str().unwrap();
    run(
        &dir,
        smoothing,
        &[
            "train",
            "--dataset",
            "digits",
            "--filters",
            "8",
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
    // Nine examples, three per shard, each about a second of sampling: slow enough to
    // requeue a task in the middle of its log.
    let certify = [
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
        "100000",
        "--alpha",
        "0.01",
        "--batch",
        "1000",
        "--skip",
        "40",
        "--max",
        "9",
    ];
    let mut single = certify.to_vec();
    single.extend(["--out", "single.tsv"]);
    run(&dir, smoothing, &single);
    let reference = rows(&dir.join("single.tsv"));
    assert_eq!(reference.len(), 10);

    let submitted = |out: &str, args: &[&str]| -> (String, String) {
        let mut all = vec![submit, out, "3"];
        all.extend(args);
        let ids = run(&dir, "bash", &all);
        let (array, merge) = ids.trim().split_once(' ').unwrap();
        (array.to_string(), merge.to_string())
    };

    // The plain array: the merged log is the single run's, row for row.
    let (_, merge) = submitted("plain", &certify);
    assert_eq!(wait(&merge, Duration::from_secs(300)), "COMPLETED");
    assert_eq!(rows(&dir.join("plain/all.tsv")), reference);
    let status = run(
        &dir,
        smoothing,
        &[
            "status",
            "plain/shard_0.tsv",
            "plain/shard_1.tsv",
            "plain/shard_2.tsv",
        ],
    );
    assert!(
        status.contains("total: 9/9 rows in 3 of 3 shards"),
        "{status}"
    );

    // Task 1 requeued once its log holds a row: it restarts under the same job id (so the
    // afterok merge still follows) and resumes after that row.
    let (array, merge) = submitted("requeued", &certify);
    let log = dir.join("requeued/shard_1.tsv");
    let started = Instant::now();
    while rows(&log).len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "task 1 wrote no row"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let task = format!("{array}_1");
    assert!(rows(&log).len() < 4, "task 1 finished before the requeue");
    run(&dir, "scontrol", &["requeue", &task]);
    // Slurm holds a requeued job for about two minutes before it may start again; let it
    // start now (what an administrator could do; a preempted task on a real cluster waits).
    let started = Instant::now();
    while state(&task) != "PENDING" {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "task 1 not requeued"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    run(
        &dir,
        "scontrol",
        &["update", &format!("jobid={task}"), "StartTime=now"],
    );
    assert_eq!(wait(&merge, Duration::from_secs(300)), "COMPLETED");
    let shown = String::from_utf8_lossy(
        &Command::new("scontrol")
            .args(["show", "job", &task])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(
        shown.contains("Restarts=1"),
        "task 1 was not restarted:\n{shown}"
    );
    assert_eq!(rows(&log).len(), 4, "shard 1 lost or repeated a row");
    assert_eq!(rows(&dir.join("requeued/all.tsv")), reference);

    // Every shard fails (no such model): the merge never runs.
    let broken = common::swapped(&certify, &[("run/model.bpk", "missing.bpk")]);
    let (array, merge) = submitted("failed", &broken);
    for k in 0..3 {
        assert_eq!(
            wait(&format!("{array}_{k}"), Duration::from_secs(120)),
            "FAILED"
        );
    }
    let merge_state = wait(&merge, Duration::from_secs(120));
    assert!(
        merge_state == "CANCELLED" || merge_state == "GONE",
        "merge {merge_state}"
    );
    assert!(!dir.join("failed/all.tsv").exists());

    // The same job submitted twice (what a double submission, or a requeue onto another node
    // while the first copy still runs, does): once the first copy of every shard has written
    // a row, the second copies start beside them, each is refused by its shard's lock, and
    // the second merge never runs. Six examples a shard leave the first copies seconds to go.
    let longer = common::swapped(&certify, &[("40", "20"), ("9", "18")]);
    let (first, first_merge) = submitted("twice", &longer);
    let shard_log = |k: usize| dir.join(format!("twice/shard_{k}.tsv"));
    let started = Instant::now();
    while (0..3).any(|k| rows(&shard_log(k)).len() < 2) {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "a first copy wrote no row"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut second_args = vec![submit, "twice", "3"];
    second_args.extend(&longer);
    let second = Command::new("bash")
        .current_dir(&dir)
        .env("SMOOTHING", smoothing)
        .env("SBATCH_ARGS", "--output=twice/second_%a.out")
        .args(&second_args)
        .output()
        .unwrap();
    assert!(second.status.success());
    let ids = String::from_utf8_lossy(&second.stdout).into_owned();
    let (second, second_merge) = ids.trim().split_once(' ').unwrap();
    for k in 0..3 {
        assert_eq!(
            wait(&format!("{second}_{k}"), Duration::from_secs(120)),
            "FAILED",
            "the second copy of shard {k} ran"
        );
        let said = std::fs::read_to_string(dir.join(format!("twice/second_{k}.out"))).unwrap();
        assert!(
            said.contains(&format!(
                "twice/shard_{k}.tsv is being written by another run (pid "
            )),
            "{said}"
        );
    }
    assert_eq!(wait(&first_merge, Duration::from_secs(300)), "COMPLETED");
    for k in 0..3 {
        assert_eq!(
            wait(&format!("{first}_{k}"), Duration::from_secs(10)),
            "COMPLETED"
        );
        assert_eq!(
            rows(&shard_log(k)).len(),
            7,
            "shard {k} lost or repeated a row"
        );
    }
    let merge_state = wait(second_merge, Duration::from_secs(120));
    assert!(
        merge_state == "CANCELLED" || merge_state == "GONE",
        "second merge {merge_state}"
    );
    // Rows are per example: every other one is the single run's.
    let all = rows(&dir.join("twice/all.tsv"));
    assert_eq!(all.len(), 19);
    let every_40th: Vec<&String> = std::iter::once(&all[0])
        .chain(all[1..].iter().step_by(2))
        .collect();
    assert_eq!(every_40th, reference.iter().collect::<Vec<_>>());
    // A later rerun of the whole submission resumes every shard (nothing left) and merges the
    // same rows.
    let (_, rerun_merge) = submitted("twice", &longer);
    assert_eq!(wait(&rerun_merge, Duration::from_secs(300)), "COMPLETED");
    assert_eq!(rows(&dir.join("twice/all.tsv")), all);

    // A lost shard resubmitted alone, as docs/workflow.md says (an array of one task, still
    // shard 2 of 3), then the merge after it: the same rows again.
    std::fs::remove_file(shard_log(2)).unwrap();
    std::fs::remove_file(dir.join("twice/shard_2.tsv.manifest.json")).unwrap();
    let script = |name: &str| format!("{}/examples/slurm/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut resubmit = vec![
        "--parsable",
        "--array=2",
        "--requeue",
        "--output=twice/again_%a.out",
    ];
    let shard_script = script("shard.sbatch");
    resubmit.extend([shard_script.as_str(), "twice", "3"]);
    resubmit.extend(&longer);
    let again = run(&dir, "sbatch", &resubmit);
    let after = format!("--dependency=afterok:{}", again.trim());
    let merge_script = script("merge.sbatch");
    let merge = run(
        &dir,
        "sbatch",
        &[
            "--parsable",
            &after,
            "--output=twice/again_merge.out",
            &merge_script,
            "twice",
            "3",
        ],
    );
    assert_eq!(wait(merge.trim(), Duration::from_secs(300)), "COMPLETED");
    assert_eq!(rows(&shard_log(2)).len(), 7);
    assert_eq!(rows(&dir.join("twice/all.tsv")), all);
    let _ = std::fs::remove_dir_all(&dir);
}
