//! The crate's attack logs: PGD against the smoothed classifier at a multiple of each
//! certified radius, and DeepFool against the base classifier.

use std::io::Read;
use std::time::Duration;

use super::{Bad, duration, flag, format_duration, length, prediction, unsigned};
use super::{LogRecord, read_all};
use crate::error::{Error, Result};

/// The header line of a PGD attack log (see [`AttackRecord`]).
///
/// # Example
/// ```
/// assert!(randomized_smoothing::workflow::records::ATTACK_HEADER.contains("attack_radius"));
/// ```
pub const ATTACK_HEADER: &str =
    "idx\tlabel\tradius\tattack_radius\tpredict\toutcome\tdistance\ttime";

/// What PREDICT said at an adversarial input.
///
/// # Example
/// ```
/// use randomized_smoothing::workflow::records::AttackOutcome;
///
/// assert_eq!(AttackOutcome::of(Some(3), 3), AttackOutcome::Robust);
/// assert_eq!(AttackOutcome::of(Some(5), 3), AttackOutcome::Fooled);
/// assert_eq!(AttackOutcome::of(None, 3), AttackOutcome::Abstained);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttackOutcome {
    /// The smoothed classifier still answers the label.
    Robust,
    /// It abstains.
    Abstained,
    /// It answers another class: the attack succeeded.
    Fooled,
}

impl AttackOutcome {
    /// The outcome of PREDICT answering `predict` on an input labelled `label`.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::workflow::records::AttackOutcome;
    ///
    /// assert_eq!(AttackOutcome::of(Some(0), 1).name(), "fooled");
    /// ```
    pub fn of(predict: Option<usize>, label: usize) -> Self {
        match predict {
            Some(p) if p == label => Self::Robust,
            Some(_) => Self::Fooled,
            None => Self::Abstained,
        }
    }

    /// The word the log uses.
    ///
    /// # Example
    /// ```
    /// assert_eq!(randomized_smoothing::workflow::records::AttackOutcome::Abstained.name(), "abstained");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Self::Robust => "robust",
            Self::Abstained => "abstained",
            Self::Fooled => "fooled",
        }
    }
}

/// One row of a PGD attack log: an example certified correct at `radius`, attacked within
/// `attack_radius`, and PREDICT's answer at the adversarial input.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use randomized_smoothing::workflow::records::{AttackOutcome, AttackRecord};
///
/// let row = AttackRecord { idx: 4, label: 7, radius: 0.512, attack_radius: 0.768, predict: Some(1),
///                          outcome: AttackOutcome::Fooled, distance: 0.768, time: Duration::from_secs(3) };
/// assert_eq!(row.to_line(), "4\t7\t0.512\t0.768\t1\tfooled\t0.768000\t0:00:03.000000");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct AttackRecord {
    /// Index of the example in its data set.
    pub idx: usize,
    /// True label.
    pub label: usize,
    /// The certified radius from the certification log.
    pub radius: f64,
    /// The radius of the attack (a multiple of `radius`).
    pub attack_radius: f64,
    /// PREDICT at the adversarial input, `None` on abstention.
    pub predict: Option<usize>,
    /// What that answer means.
    pub outcome: AttackOutcome,
    /// l2 distance from the example to the adversarial input.
    pub distance: f64,
    /// Time spent on the example.
    pub time: Duration,
}

impl AttackRecord {
    /// The row as written to the log (no trailing newline).
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use randomized_smoothing::workflow::records::{AttackOutcome, AttackRecord};
    ///
    /// let row = AttackRecord { idx: 0, label: 2, radius: 0.3, attack_radius: 0.45, predict: None,
    ///                          outcome: AttackOutcome::Abstained, distance: 0.45, time: Duration::ZERO };
    /// assert!(row.to_line().contains("\t-1\tabstained\t"));
    /// ```
    pub fn to_line(&self) -> String {
        let predict = self.predict.map_or("-1".to_string(), |p| p.to_string());
        format!(
            "{}\t{}\t{}\t{}\t{predict}\t{}\t{:.6}\t{}",
            self.idx,
            self.label,
            self.radius,
            self.attack_radius,
            self.outcome.name(),
            self.distance,
            format_duration(self.time)
        )
    }
}

/// Reads a PGD attack log ([`ATTACK_HEADER`]).
///
/// # Errors
/// As [`read_certify_log`](super::read_certify_log).
///
/// # Example
/// ```
/// use randomized_smoothing::workflow::records::{read_attack_log, AttackOutcome};
///
/// let log = "idx\tlabel\tradius\tattack_radius\tpredict\toutcome\tdistance\ttime\n\
///            3\t1\t0.4\t0.6\t1\trobust\t0.6\t0:00:01.000000\n";
/// assert_eq!(read_attack_log(log.as_bytes())?[0].outcome, AttackOutcome::Robust);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn read_attack_log(reader: impl Read) -> Result<Vec<AttackRecord>> {
    read_all(reader)
}

impl LogRecord for AttackRecord {
    const HEADER: &'static str = ATTACK_HEADER;
    const FORMAT: &'static str = "attack log";

    fn idx(&self) -> usize {
        self.idx
    }

    fn line(&self) -> String {
        self.to_line()
    }

    fn from_fields(f: &[&str], bad: Bad) -> Result<Self> {
        let outcome = match f[5] {
            "robust" => AttackOutcome::Robust,
            "abstained" => AttackOutcome::Abstained,
            "fooled" => AttackOutcome::Fooled,
            other => {
                return Err(bad(format!(
                    "outcome {other:?} is not robust, abstained or fooled"
                )));
            }
        };
        Ok(AttackRecord {
            idx: unsigned(f, 0, bad)?,
            label: unsigned(f, 1, bad)?,
            radius: length(f, 2, bad)?,
            attack_radius: length(f, 3, bad)?,
            predict: prediction(f, 4, bad)?,
            outcome,
            distance: length(f, 6, bad)?,
            time: duration(f, 7, bad)?,
        })
    }
}

/// The header line of a DeepFool log (see [`DeepFoolRecord`]).
///
/// # Example
/// ```
/// assert!(randomized_smoothing::workflow::records::DEEPFOOL_HEADER.ends_with("time"));
/// ```
pub const DEEPFOOL_HEADER: &str =
    "idx\tlabel\tpredict\tadversarial\tdistance\titerations\tfooled\ttime";

/// One row of a DeepFool log: the base classifier's class at the example and at DeepFool's
/// last iterate, and the distance between them.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use randomized_smoothing::workflow::records::DeepFoolRecord;
///
/// let row = DeepFoolRecord { idx: 1, label: 3, predict: 3, adversarial: 5, distance: 0.25,
///                            iterations: 2, fooled: true, time: Duration::ZERO };
/// assert_eq!(row.to_line(), "1\t3\t3\t5\t0.250000\t2\t1\t0:00:00.000000");
/// // Fooled at distance 0.25: robust at r = 0.2, not at r = 0.25.
/// assert!(row.robust_at(0.2) && !row.robust_at(0.25));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DeepFoolRecord {
    /// Index of the example in its data set.
    pub idx: usize,
    /// True label.
    pub label: usize,
    /// The base classifier's class at the example.
    pub predict: usize,
    /// Its class at DeepFool's last iterate.
    pub adversarial: usize,
    /// l2 distance from the example to that iterate.
    pub distance: f64,
    /// DeepFool's iterations.
    pub iterations: usize,
    /// Whether the class changed.
    pub fooled: bool,
    /// Time spent on the example.
    pub time: Duration,
}

impl DeepFoolRecord {
    /// The row as written to the log (no trailing newline).
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use randomized_smoothing::workflow::records::DeepFoolRecord;
    ///
    /// let row = DeepFoolRecord { idx: 1, label: 3, predict: 2, adversarial: 2, distance: 0.0,
    ///                            iterations: 0, fooled: false, time: Duration::ZERO };
    /// assert!(row.to_line().starts_with("1\t3\t2\t2\t"));
    /// ```
    pub fn to_line(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}\t{:.6}\t{}\t{}\t{}",
            self.idx,
            self.label,
            self.predict,
            self.adversarial,
            self.distance,
            self.iterations,
            u8::from(self.fooled),
            format_duration(self.time)
        )
    }

    /// Whether this example counts towards the empirical robust accuracy at radius `r`:
    /// classified correctly, and DeepFool found no other class within `r`.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use randomized_smoothing::workflow::records::DeepFoolRecord;
    ///
    /// let wrong = DeepFoolRecord { idx: 0, label: 1, predict: 2, adversarial: 1, distance: 0.5,
    ///                              iterations: 1, fooled: true, time: Duration::ZERO };
    /// assert!(!wrong.robust_at(0.0));
    /// ```
    pub fn robust_at(&self, r: f64) -> bool {
        self.predict == self.label && (!self.fooled || self.distance > r)
    }
}

/// The empirical robust accuracy of a DeepFool run at radius `r`: the fraction of `rows`
/// classified correctly with no other class found within `r` ([`DeepFoolRecord::robust_at`]).
/// DeepFool finds *an* adversarial example, not the nearest, so this is an upper bound on
/// the base classifier's true robust accuracy.
///
/// # Errors
/// [`Error::ZeroCount`](crate::Error::ZeroCount) for no rows; [`Error::InvalidParameter`](crate::Error::InvalidParameter) for a NaN or negative `r`.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use randomized_smoothing::workflow::records::{DeepFoolRecord, deepfool_robust_accuracy};
///
/// let row = |label, distance| DeepFoolRecord { idx: 0, label, predict: 1, adversarial: 2,
///                                             distance, iterations: 2, fooled: true,
///                                             time: Duration::ZERO };
/// let rows = [row(1, 0.5), row(1, 1.0), row(3, 2.0), row(1, 2.0)];
/// assert_eq!(deepfool_robust_accuracy(&rows, 0.0)?, 0.75);
/// assert_eq!(deepfool_robust_accuracy(&rows, 0.75)?, 0.5);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn deepfool_robust_accuracy(rows: &[DeepFoolRecord], r: f64) -> Result<f64> {
    if rows.is_empty() {
        return Err(Error::ZeroCount("DeepFool rows"));
    }
    if r.is_nan() || r < 0.0 {
        return Err(Error::InvalidParameter {
            name: "radius",
            reason: format!("{r} is not a non-negative number"),
        });
    }
    let robust = rows.iter().filter(|row| row.robust_at(r)).count();
    Ok(robust as f64 / rows.len() as f64)
}

/// Reads a DeepFool log ([`DEEPFOOL_HEADER`]).
///
/// # Errors
/// As [`read_certify_log`](super::read_certify_log).
///
/// # Example
/// ```
/// use randomized_smoothing::workflow::records::read_deepfool_log;
///
/// let log = "idx\tlabel\tpredict\tadversarial\tdistance\titerations\tfooled\ttime\n\
///            0\t1\t1\t7\t0.31\t3\t1\t0:00:00.020000\n";
/// assert_eq!(read_deepfool_log(log.as_bytes())?[0].adversarial, 7);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn read_deepfool_log(reader: impl Read) -> Result<Vec<DeepFoolRecord>> {
    read_all(reader)
}

impl LogRecord for DeepFoolRecord {
    const HEADER: &'static str = DEEPFOOL_HEADER;
    const FORMAT: &'static str = "DeepFool log";

    fn idx(&self) -> usize {
        self.idx
    }

    fn line(&self) -> String {
        self.to_line()
    }

    fn from_fields(f: &[&str], bad: Bad) -> Result<Self> {
        Ok(DeepFoolRecord {
            idx: unsigned(f, 0, bad)?,
            label: unsigned(f, 1, bad)?,
            predict: unsigned(f, 2, bad)?,
            adversarial: unsigned(f, 3, bad)?,
            distance: length(f, 4, bad)?,
            iterations: unsigned(f, 5, bad)?,
            fooled: flag(f, 6, bad)?,
            time: duration(f, 7, bad)?,
        })
    }
}
