//! The paper's two log formats: `certify.py`'s certification log and `predict.py`'s
//! prediction log.

use std::io::Read;
use std::time::Duration;

use super::{Bad, duration, flag, format_duration, format_radius, prediction, unsigned};
use super::{LogRecord, read_all};
use crate::certificate::accuracy::Outcome;
use crate::error::Result;

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

/// Reads a certification log: the header, then one row per example.
///
/// # Errors
/// [`Error::MalformedData`](crate::Error::MalformedData) naming the line for a missing or different header, a row with
/// the wrong number of fields (as in a truncated file), or a field that does not parse;
/// [`Error::Io`](crate::Error::Io) if reading fails.
///
/// # Example
/// ```
/// use randomized_smoothing::workflow::records::read_certify_log;
///
/// let log = "idx\tlabel\tpredict\tradius\tcorrect\ttime\n0\t3\t3\t0.378\t1\t15.4\n40\t4\t-1\t0.0\t0\t15.7\n";
/// let rows = read_certify_log(log.as_bytes())?;
/// assert_eq!((rows.len(), rows[1].predict), (2, None));
/// assert!(read_certify_log("idx\tlabel\n".as_bytes()).is_err());
/// // A row marked correct whose prediction is not its label: a damaged digit.
/// assert!(read_certify_log("idx\tlabel\tpredict\tradius\tcorrect\ttime\n0\t3\t5\t0.3\t1\t1.0\n".as_bytes()).is_err());
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn read_certify_log(reader: impl Read) -> Result<Vec<CertifyRecord>> {
    read_all(reader)
}

impl LogRecord for CertifyRecord {
    const HEADER: &'static str = CERTIFY_HEADER;
    const FORMAT: &'static str = "certification log";

    fn idx(&self) -> usize {
        self.idx
    }

    fn line(&self) -> String {
        self.to_line()
    }

    fn from_fields(f: &[&str], bad: Bad) -> Result<Self> {
        let radius: f64 = f[3]
            .parse()
            .map_err(|_| bad(format!("radius {:?} is not a number", f[3])))?;
        if !(radius.is_finite() && radius >= 0.0) {
            return Err(bad(format!(
                "radius {radius} is not a finite non-negative number"
            )));
        }
        let (label, predict, correct) = judged(f, [1, 2, 4], bad)?;
        Ok(CertifyRecord {
            idx: unsigned(f, 0, bad)?,
            label,
            predict,
            radius,
            correct,
            time: duration(f, 5, bad)?,
        })
    }
}

/// The label, prediction and `correct` flag of a row (at the columns given), which must agree:
/// a row is correct exactly when it predicts its label. A damaged digit in any of the three
/// breaks that, and is refused instead of counting an example wrongly.
fn judged(f: &[&str], [l, p, c]: [usize; 3], bad: Bad) -> Result<(usize, Option<usize>, bool)> {
    let (label, predict, correct) = (
        unsigned(f, l, bad)?,
        prediction(f, p, bad)?,
        flag(f, c, bad)?,
    );
    if correct != (predict == Some(label)) {
        return Err(bad(format!(
            "correct is {}, but the prediction {} and the label {label} say otherwise",
            u8::from(correct),
            predict.map_or("-1 (abstain)".to_string(), |p| p.to_string())
        )));
    }
    Ok((label, predict, correct))
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
    read_all(reader)
}

impl LogRecord for PredictRecord {
    const HEADER: &'static str = PREDICT_HEADER;
    const FORMAT: &'static str = "prediction log";

    fn idx(&self) -> usize {
        self.idx
    }

    fn line(&self) -> String {
        self.to_line()
    }

    fn from_fields(f: &[&str], bad: Bad) -> Result<Self> {
        let (label, predict, correct) = judged(f, [1, 2, 3], bad)?;
        Ok(PredictRecord {
            idx: unsigned(f, 0, bad)?,
            label,
            predict,
            correct,
            time: duration(f, 4, bad)?,
        })
    }
}
