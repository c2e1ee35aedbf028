//! Certification logs in the paper's TSV format, so that outputs of this crate and of the
//! paper's `certify.py` can be read, merged and analysed alike.
//!
//! A log is a header `idx\tlabel\tpredict\tradius\tcorrect\ttime` and one row per example;
//! `predict` is -1 and `radius` 0.0 on abstention; `radius` is written with three
//! significant digits (Python's `"{:.3}"`) and `time` as `H:MM:SS.ffffff`. Reading also accepts
//! the plain seconds (`15.4`) of the paper's released CIFAR-10 logs. Prediction logs
//! (`idx\tlabel\tpredict\tcorrect\ttime`) are written by [`PredictRecord`].
//!
//! # Example
//! ```
//! use std::time::Duration;
//! use randomized_smoothing::workflow::records::{CertifyRecord, read_certify_log, CERTIFY_HEADER};
//!
//! let row = CertifyRecord { idx: 3, label: 7, predict: Some(7), radius: 0.41234, correct: true,
//!                           time: Duration::from_micros(2_500_000) };
//! assert_eq!(row.to_line(), "3\t7\t7\t0.412\t1\t0:00:02.500000");
//! let log = format!("{CERTIFY_HEADER}\n{}\n", row.to_line());
//! assert_eq!(read_certify_log(log.as_bytes())?[0].radius, 0.412);
//! # Ok::<(), randomized_smoothing::Error>(())
//! ```

use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

use crate::certificate::accuracy::Outcome;
use crate::error::{Error, Result};

/// The header line of a certification log.
///
/// # Example
/// ```
/// assert!(randomized_smoothing::workflow::records::CERTIFY_HEADER.starts_with("idx\tlabel"));
/// ```
pub const CERTIFY_HEADER: &str = "idx\tlabel\tpredict\tradius\tcorrect\ttime";

/// One row of a certification log.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use randomized_smoothing::workflow::records::CertifyRecord;
///
/// let abstained = CertifyRecord { idx: 0, label: 1, predict: None, radius: 0.0, correct: false,
///                                 time: Duration::from_secs(15) };
/// assert_eq!(abstained.to_line(), "0\t1\t-1\t0.0\t0\t0:00:15.000000");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CertifyRecord {
    /// Index of the example in its data set.
    pub idx: usize,
    /// True label.
    pub label: usize,
    /// Certified class, `None` on abstention.
    pub predict: Option<usize>,
    /// Certified radius (0 on abstention).
    pub radius: f64,
    /// Whether the certified class is the label.
    pub correct: bool,
    /// Time spent on the example.
    pub time: Duration,
}

impl CertifyRecord {
    /// The row as the paper's `certify.py` writes it (no trailing newline).
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use randomized_smoothing::workflow::records::CertifyRecord;
    ///
    /// let r = CertifyRecord { idx: 20, label: 7, predict: Some(7), radius: 1.23456, correct: true,
    ///                         time: Duration::from_millis(151_238) };
    /// assert_eq!(r.to_line(), "20\t7\t7\t1.23\t1\t0:02:31.238000");
    /// ```
    pub fn to_line(&self) -> String {
        let predict = self.predict.map_or("-1".to_string(), |p| p.to_string());
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            self.idx,
            self.label,
            predict,
            format_radius(self.radius),
            u8::from(self.correct),
            format_duration(self.time)
        )
    }

    /// The row as an [`Outcome`] for the accuracy functions.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use randomized_smoothing::workflow::records::CertifyRecord;
    ///
    /// let r = CertifyRecord { idx: 0, label: 2, predict: Some(2), radius: 0.5, correct: true,
    ///                         time: Duration::ZERO };
    /// assert!(r.outcome().certified_at(0.5));
    /// ```
    pub fn outcome(&self) -> Outcome {
        Outcome {
            correct: self.correct,
            radius: self.radius,
        }
    }
}

/// The header line of a prediction log.
///
/// # Example
/// ```
/// assert_eq!(randomized_smoothing::workflow::records::PREDICT_HEADER, "idx\tlabel\tpredict\tcorrect\ttime");
/// ```
pub const PREDICT_HEADER: &str = "idx\tlabel\tpredict\tcorrect\ttime";

/// One row of a prediction log, as the paper's `predict.py` writes it.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use randomized_smoothing::workflow::records::PredictRecord;
///
/// let row = PredictRecord { idx: 5, label: 3, predict: None, correct: false, time: Duration::from_millis(150) };
/// assert_eq!(row.to_line(), "5\t3\t-1\t0\t0:00:00.150000");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PredictRecord {
    /// Index of the example in its data set.
    pub idx: usize,
    /// True label.
    pub label: usize,
    /// Predicted class, `None` on abstention.
    pub predict: Option<usize>,
    /// Whether the prediction is the label.
    pub correct: bool,
    /// Time spent on the example.
    pub time: Duration,
}

impl PredictRecord {
    /// The row as a tab-separated line (no trailing newline).
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use randomized_smoothing::workflow::records::PredictRecord;
    ///
    /// let row = PredictRecord { idx: 0, label: 1, predict: Some(1), correct: true, time: Duration::ZERO };
    /// assert_eq!(row.to_line(), "0\t1\t1\t1\t0:00:00.000000");
    /// ```
    pub fn to_line(&self) -> String {
        let predict = self.predict.map_or("-1".to_string(), |p| p.to_string());
        format!(
            "{}\t{}\t{predict}\t{}\t{}",
            self.idx,
            self.label,
            u8::from(self.correct),
            format_duration(self.time)
        )
    }
}

/// A radius with three significant digits, as Python's `"{:.3}".format(r)`.
///
/// # Example
/// ```
/// use randomized_smoothing::workflow::records::format_radius;
///
/// assert_eq!(format_radius(0.0), "0.0");
/// assert_eq!(format_radius(0.37849), "0.378");
/// assert_eq!(format_radius(1.0), "1.0");
/// assert_eq!(format_radius(12.345), "12.3");
/// assert_eq!(format_radius(0.0001234), "0.000123");
/// assert_eq!(format_radius(0.00001234), "1.23e-05");
/// ```
pub fn format_radius(r: f64) -> String {
    const DIGITS: i32 = 3;
    if r == 0.0 {
        return "0.0".into();
    }
    if !r.is_finite() {
        return format!("{r}").to_lowercase();
    }
    // The decimal exponent after rounding to three significant digits.
    let sci = format!("{:.*e}", (DIGITS - 1) as usize, r);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    // Fixed notation only while one digit after the point fits in the three digits.
    if (-4..DIGITS - 1).contains(&exp) {
        let decimals = (DIGITS - 1 - exp) as usize;
        let fixed = format!("{r:.decimals$}");
        // Trailing zeros go, but one digit stays after the point.
        let trimmed = fixed.trim_end_matches('0');
        if trimmed.ends_with('.') {
            format!("{trimmed}0")
        } else {
            trimmed.to_string()
        }
    } else {
        let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

/// A duration as `H:MM:SS.ffffff` (Python's `str(timedelta)` with the fraction always shown).
///
/// # Example
/// ```
/// use std::time::Duration;
/// use randomized_smoothing::workflow::records::format_duration;
///
/// assert_eq!(format_duration(Duration::from_micros(3_723_000_001)), "1:02:03.000001");
/// ```
pub fn format_duration(d: Duration) -> String {
    let micros = d.as_micros();
    let (secs, frac) = (micros / 1_000_000, micros % 1_000_000);
    format!(
        "{}:{:02}:{:02}.{frac:06}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Parses `H:MM:SS[.ffffff]` or plain seconds (`15.4`).
///
/// # Errors
/// [`Error::MalformedData`] for anything else.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use randomized_smoothing::workflow::records::parse_duration;
///
/// assert_eq!(parse_duration("0:02:31.238689")?, Duration::from_micros(151_238_689));
/// assert_eq!(parse_duration("0:00:15")?, Duration::from_secs(15));
/// assert_eq!(parse_duration("15.4")?, Duration::from_millis(15_400));
/// assert!(parse_duration("soon").is_err());
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn parse_duration(s: &str) -> Result<Duration> {
    let bad = || Error::MalformedData {
        format: "duration",
        location: format!("{s:?}"),
        reason: "expected H:MM:SS.ffffff or seconds".into(),
    };
    let seconds = |v: &str| -> Result<f64> {
        v.parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .ok_or_else(bad)
    };
    let parts: Vec<&str> = s.trim().split(':').collect();
    let total = match parts.as_slice() {
        [secs] => seconds(secs)?,
        [h, m, secs] => {
            let h: u64 = h.parse().map_err(|_| bad())?;
            let m: u64 = m.parse().map_err(|_| bad())?;
            h as f64 * 3600.0 + m as f64 * 60.0 + seconds(secs)?
        }
        _ => return Err(bad()),
    };
    Ok(Duration::from_micros((total * 1e6).round() as u64))
}

/// Reads a certification log: the header, then one row per example.
///
/// # Errors
/// [`Error::MalformedData`] naming the line for a missing or different header, a row with
/// the wrong number of fields (as in a truncated file), or a field that does not parse;
/// [`Error::Io`] if reading fails.
///
/// # Example
/// ```
/// use randomized_smoothing::workflow::records::read_certify_log;
///
/// let log = "idx\tlabel\tpredict\tradius\tcorrect\ttime\n0\t3\t3\t0.378\t1\t15.4\n40\t4\t-1\t0.0\t0\t15.7\n";
/// let rows = read_certify_log(log.as_bytes())?;
/// assert_eq!((rows.len(), rows[1].predict), (2, None));
/// assert!(read_certify_log("idx\tlabel\n".as_bytes()).is_err());
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn read_certify_log(reader: impl Read) -> Result<Vec<CertifyRecord>> {
    read_rows(reader, "certification log", CERTIFY_HEADER, |f, bad| {
        let radius: f64 = f[3]
            .parse()
            .map_err(|_| bad(format!("radius {:?} is not a number", f[3])))?;
        if radius.is_nan() || radius < 0.0 {
            return Err(bad(format!("radius {radius} is not a non-negative number")));
        }
        Ok(CertifyRecord {
            idx: unsigned(f, 0, bad)?,
            label: unsigned(f, 1, bad)?,
            predict: prediction(f, 2, bad)?,
            radius,
            correct: flag(f, 4, bad)?,
            time: duration(f, 5, bad)?,
        })
    })
}

/// Reads a prediction log in the format of the paper's `predict.py` (header
/// `idx label predict correct time`, tab-separated; `predict` is -1 on abstention).
///
/// # Errors
/// As [`read_certify_log`].
///
/// # Example
/// ```
/// use randomized_smoothing::workflow::records::read_predict_log;
///
/// let log = "idx\tlabel\tpredict\tcorrect\ttime\n0\t3\t3\t1\t0:00:01.500000\n1\t4\t-1\t0\t0:00:01.400000\n";
/// let rows = read_predict_log(log.as_bytes())?;
/// assert_eq!((rows.len(), rows[0].correct, rows[1].predict), (2, true, None));
/// assert!(read_predict_log("idx\tlabel\tpredict\tcorrect\ttime\n0\t3\n".as_bytes()).is_err());
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn read_predict_log(reader: impl Read) -> Result<Vec<PredictRecord>> {
    read_rows(reader, "prediction log", PREDICT_HEADER, |f, bad| {
        Ok(PredictRecord {
            idx: unsigned(f, 0, bad)?,
            label: unsigned(f, 1, bad)?,
            predict: prediction(f, 2, bad)?,
            correct: flag(f, 3, bad)?,
            time: duration(f, 4, bad)?,
        })
    })
}

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
/// As [`read_certify_log`].
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
    read_rows(reader, "attack log", ATTACK_HEADER, |f, bad| {
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
    })
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
/// [`Error::ZeroCount`] for no rows; [`Error::InvalidParameter`] for a NaN or negative `r`.
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
/// As [`read_certify_log`].
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
    read_rows(reader, "DeepFool log", DEEPFOOL_HEADER, |f, bad| {
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
    })
}

/// A finite, non-negative number.
fn length(f: &[&str], j: usize, bad: Bad) -> Result<f64> {
    match f[j].parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(bad(format!(
            "field {} is not a non-negative number: {:?}",
            j + 1,
            f[j]
        ))),
    }
}

type Bad<'a> = &'a dyn Fn(String) -> Error;

/// Reads a tab-separated log with the given header, one record per non-empty line.
fn read_rows<T>(
    reader: impl Read,
    format: &'static str,
    expected_header: &str,
    parse: impl Fn(&[&str], Bad) -> Result<T>,
) -> Result<Vec<T>> {
    let mut lines = BufReader::new(reader).lines();
    let header = lines.next().transpose()?.unwrap_or_default();
    if header.trim_end() != expected_header {
        return Err(Error::MalformedData {
            format,
            location: "line 1".into(),
            reason: format!("header {header:?}, expected {expected_header:?}"),
        });
    }
    let columns = expected_header.split('\t').count();
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| Error::MalformedData {
            format,
            location: format!("line {}", i + 2),
            reason,
        };
        let fields: Vec<&str> = line.trim_end().split('\t').collect();
        if fields.len() != columns {
            return Err(bad(format!("{} fields, expected {columns}", fields.len())));
        }
        rows.push(parse(&fields, &bad)?);
    }
    Ok(rows)
}

fn integer(f: &[&str], j: usize, bad: Bad) -> Result<i64> {
    f[j].parse::<i64>()
        .map_err(|_| bad(format!("field {} is not an integer: {:?}", j + 1, f[j])))
}

fn unsigned(f: &[&str], j: usize, bad: Bad) -> Result<usize> {
    usize::try_from(integer(f, j, bad)?).map_err(|_| bad(format!("field {} is negative", j + 1)))
}

/// A class, or -1 for an abstention.
fn prediction(f: &[&str], j: usize, bad: Bad) -> Result<Option<usize>> {
    match integer(f, j, bad)? {
        -1 => Ok(None),
        p => usize::try_from(p)
            .map(Some)
            .map_err(|_| bad(format!("predict {p} is neither -1 nor a class"))),
    }
}

fn flag(f: &[&str], j: usize, bad: Bad) -> Result<bool> {
    match integer(f, j, bad)? {
        0 => Ok(false),
        1 => Ok(true),
        c => Err(bad(format!("correct is {c}, expected 0 or 1"))),
    }
}

fn duration(f: &[&str], j: usize, bad: Bad) -> Result<Duration> {
    parse_duration(f[j]).map_err(|_| bad(format!("time {:?} is not a duration", f[j])))
}
