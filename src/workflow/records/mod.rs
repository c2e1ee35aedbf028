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

mod attack;
mod paper;

pub use attack::{
    ATTACK_HEADER, AttackOutcome, AttackRecord, DEEPFOOL_HEADER, DeepFoolRecord,
    deepfool_robust_accuracy, read_attack_log, read_deepfool_log,
};
pub use paper::{
    CERTIFY_HEADER, CertifyRecord, PREDICT_HEADER, PredictRecord, read_certify_log,
    read_predict_log,
};

use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

use crate::error::{Error, Result, RowFault};

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

/// A finite, non-negative number.
pub(super) fn length(f: &[&str], j: usize, bad: Bad) -> Result<f64> {
    match f[j].parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(bad(format!(
            "field {} is not a non-negative number: {:?}",
            j + 1,
            f[j]
        ))),
    }
}

/// A row of one of the crate's logs: certification ([`CertifyRecord`]), prediction
/// ([`PredictRecord`]), PGD attack ([`AttackRecord`]) and DeepFool ([`DeepFoolRecord`]).
///
/// Every log is a header and then at most one row per example, the example's index in its
/// first column; its readers ([`read_certify_log`] and the others, [`read_numbered`], and
/// [`jobs::read_log`](crate::workflow::jobs::read_log) for a run's file) refuse a second row
/// of an example ([`Error::RejectedRow`]), which is what two runs appending to one log leave.
/// The trait is sealed: the crate's readers and writers depend on the four formats.
pub trait LogRecord: Sized + sealed::Sealed {
    /// The log's header line.
    const HEADER: &'static str;
    /// The log's name in errors, e.g. `"certification log"`.
    const FORMAT: &'static str;
    /// The example's index.
    fn idx(&self) -> usize;
    /// The row as written to the log (no newline).
    fn line(&self) -> String;
    /// Parses a row's fields (as many as the header has); `bad` makes the error of this line.
    #[doc(hidden)]
    fn from_fields(fields: &[&str], bad: Bad) -> Result<Self>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::CertifyRecord {}
    impl Sealed for super::PredictRecord {}
    impl Sealed for super::AttackRecord {}
    impl Sealed for super::DeepFoolRecord {}
}

#[doc(hidden)]
pub type Bad<'a> = &'a dyn Fn(String) -> Error;

/// All rows of a log, in file order.
pub(super) fn read_all<R: LogRecord>(reader: impl Read) -> Result<Vec<R>> {
    Ok(read_numbered(reader, |_| true)?
        .into_iter()
        .map(|(_, row)| row)
        .collect())
}

/// Reads a log of `R` rows, each with its line (the header is line 1), in file order; blank
/// lines are skipped. A row whose example `selected` refuses, or an example's second row, is
/// an error, as is a header line among the rows (another log appended to this one).
///
/// # Errors
/// [`Error::MalformedData`] for a wrong header, field count or field;
/// [`Error::RejectedRow`] for a row of an example seen before ([`RowFault::Repeated`]) or
/// not selected ([`RowFault::NotSelected`]); [`Error::Io`] if reading fails (and for text
/// that is not UTF-8).
///
/// # Example
/// ```
/// use randomized_smoothing::workflow::records::{CERTIFY_HEADER, CertifyRecord, read_numbered};
/// use randomized_smoothing::{Error, RowFault};
///
/// let row = |i: usize| format!("{i}\t1\t1\t0.5\t1\t0:00:01.000000\n");
/// let log = format!("{CERTIFY_HEADER}\n{}{}", row(0), row(2));
/// let rows = read_numbered::<CertifyRecord>(log.as_bytes(), |i| i % 2 == 0)?;
/// assert_eq!((rows[1].0, rows[1].1.idx), (3, 2));
///
/// // Two runs appended to one log: the second copy of example 0 is refused.
/// let twice = format!("{log}{}", row(0));
/// let err = read_numbered::<CertifyRecord>(twice.as_bytes(), |_| true).unwrap_err();
/// assert!(matches!(err, Error::RejectedRow { line: 4, example: 0,
///     fault: RowFault::Repeated { first_line: 2, .. }, .. }));
/// // Example 1 is not in this run's selection.
/// let foreign = format!("{log}{}", row(1));
/// let err = read_numbered::<CertifyRecord>(foreign.as_bytes(), |i| i % 2 == 0).unwrap_err();
/// assert!(matches!(err, Error::RejectedRow { example: 1, fault: RowFault::NotSelected, .. }));
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn read_numbered<R: LogRecord>(
    reader: impl Read,
    selected: impl Fn(usize) -> bool,
) -> Result<Vec<(usize, R)>> {
    let format = R::FORMAT;
    let expected_header = R::HEADER;
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
    let mut first_line_of = std::collections::HashMap::new();
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate() {
        let line = line?;
        let number = i + 2;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| Error::MalformedData {
            format,
            location: format!("line {number}"),
            reason,
        };
        if line.starts_with("idx\t") {
            return Err(bad(
                "a header line among the rows: another log was appended to this one".into(),
            ));
        }
        let fields: Vec<&str> = line.trim_end().split('\t').collect();
        if fields.len() != columns {
            return Err(bad(format!(
                "{} fields, expected {columns} (a row of another kind of log?)",
                fields.len()
            )));
        }
        let example = unsigned(&fields, 0, &bad)?;
        let rejected = |fault| Error::RejectedRow {
            log: None,
            line: number,
            example,
            fault,
        };
        if let Some(&first_line) = first_line_of.get(&example) {
            return Err(rejected(RowFault::Repeated {
                first_line,
                first_log: None,
            }));
        }
        if !selected(example) {
            return Err(rejected(RowFault::NotSelected));
        }
        first_line_of.insert(example, number);
        rows.push((number, R::from_fields(&fields, &bad)?));
    }
    Ok(rows)
}

pub(super) fn integer(f: &[&str], j: usize, bad: Bad) -> Result<i64> {
    f[j].parse::<i64>()
        .map_err(|_| bad(format!("field {} is not an integer: {:?}", j + 1, f[j])))
}

pub(super) fn unsigned(f: &[&str], j: usize, bad: Bad) -> Result<usize> {
    usize::try_from(integer(f, j, bad)?).map_err(|_| bad(format!("field {} is negative", j + 1)))
}

/// A class, or -1 for an abstention.
pub(super) fn prediction(f: &[&str], j: usize, bad: Bad) -> Result<Option<usize>> {
    match integer(f, j, bad)? {
        -1 => Ok(None),
        p => usize::try_from(p)
            .map(Some)
            .map_err(|_| bad(format!("predict {p} is neither -1 nor a class"))),
    }
}

pub(super) fn flag(f: &[&str], j: usize, bad: Bad) -> Result<bool> {
    match integer(f, j, bad)? {
        0 => Ok(false),
        1 => Ok(true),
        c => Err(bad(format!("correct is {c}, expected 0 or 1"))),
    }
}

pub(super) fn duration(f: &[&str], j: usize, bad: Bad) -> Result<Duration> {
    parse_duration(f[j]).map_err(|_| bad(format!("time {:?} is not a duration", f[j])))
}
