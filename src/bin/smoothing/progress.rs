//! Progress of the commands' long jobs: a bar on a terminal, lines on stderr without one.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Prints a line above the progress bar, or to stderr when the bar is hidden (not a
/// terminal), so that logs of batch jobs keep it.
pub(crate) fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

pub(crate) fn progress(len: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{elapsed_precise}} [{{bar:40}}] {{pos}}/{{len}} {unit} (eta {{eta}}) {{msg}}"
        ))
        .expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_secs(1));
    bar
}

/// A job's progress over its rows: a bar on a terminal; without one (a Slurm job, a pipe),
/// which hides the bar, a line on stderr every `every` and after the last row, with the
/// rows done, the rate (rows and noisy samples per second, over this run's rows: a resumed
/// run's earlier rows took no time here) and the time left.
pub(crate) struct Progress {
    bar: ProgressBar,
    what: String,
    samples_per_row: u64,
    every: Duration,
    started: Instant,
    last_line: Option<Instant>,
    done_before: Option<usize>,
}

impl Progress {
    /// Progress of `what` (`certify`, ...), whose rows each draw `samples_per_row` noisy
    /// samples (0 when that varies).
    pub(crate) fn new(what: &str, total: usize, samples_per_row: u64, every: Duration) -> Self {
        Self {
            bar: progress(total as u64, "examples"),
            what: what.to_string(),
            samples_per_row,
            every,
            started: Instant::now(),
            last_line: None,
            done_before: None,
        }
    }

    /// Row `done` of `total` is written; `message` describes it for the bar.
    pub(crate) fn row(&mut self, done: usize, total: usize, message: String) {
        self.bar.set_length(total as u64);
        self.bar.set_position(done as u64);
        self.bar.set_message(message);
        let done_before = *self.done_before.get_or_insert(done.saturating_sub(1));
        let due = self.last_line.is_none_or(|t| t.elapsed() >= self.every);
        if self.bar.is_hidden() && (due || done == total) {
            self.last_line = Some(Instant::now());
            eprintln!("{}", self.line(done - done_before, done, total));
        }
    }

    fn line(&self, new: usize, done: usize, total: usize) -> String {
        let seconds = self.started.elapsed().as_secs_f64().max(1e-9);
        let rate = new as f64 / seconds;
        let mut line = format!(
            "{}: {done}/{total} examples ({:.1}%), {rate:.3} examples/s",
            self.what,
            100.0 * done as f64 / total.max(1) as f64
        );
        if self.samples_per_row > 0 {
            line.push_str(&format!(
                ", {:.0} samples/s",
                rate * self.samples_per_row as f64
            ));
        }
        let left = (total - done) as f64 / rate.max(1e-9);
        line.push_str(&format!(", eta {}", clock(left)));
        line
    }

    /// Prints `line` above the bar, or to stderr when the bar is hidden.
    pub(crate) fn say(&self, line: String) {
        say(&self.bar, line);
    }

    /// Starts the clock again, after work that is not the rows' (a warm-up), so that the
    /// rate and the time left count the rows alone.
    pub(crate) fn restart(&mut self) {
        self.started = Instant::now();
        self.bar.reset();
    }

    pub(crate) fn finish(self) {
        self.bar.finish_and_clear();
    }
}

/// Seconds as h:mm:ss (rounded; capped far beyond any run).
pub(crate) fn clock(seconds: f64) -> String {
    let s = seconds.round().min(1e9) as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}
