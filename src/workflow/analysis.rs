//! Tables of certified accuracy against radius for several certification runs, as the
//! paper's `analyze.py` produces them: Markdown and LaTeX, the best run at each radius marked.
//!
//! # Example
//! ```
//! use randomized_smoothing::certificate::accuracy::Outcome;
//! use randomized_smoothing::workflow::analysis::CertifiedAccuracyTable;
//!
//! let a = [Outcome { correct: true, radius: 0.6 }, Outcome { correct: false, radius: 0.0 }];
//! let b = [Outcome { correct: true, radius: 0.3 }, Outcome { correct: true, radius: 0.2 }];
//! let table = CertifiedAccuracyTable::new(&[0.0, 0.5], &[("sigma = 0.5", &a[..]), ("sigma = 0.25", &b[..])])?;
//! assert_eq!(table.accuracy(1, 0), 1.0);
//! assert!(table.to_markdown().contains("| sigma = 0.25 | **1.00** | 0.00 |"));
//! # Ok::<(), randomized_smoothing::Error>(())
//! ```

use crate::certificate::accuracy::{Outcome, approximate_certified_accuracy};
use crate::error::{Error, Result};

/// Approximate certified accuracy of several runs (rows) at several radii (columns).
///
/// # Example
/// ```
/// use randomized_smoothing::certificate::accuracy::Outcome;
/// use randomized_smoothing::workflow::analysis::CertifiedAccuracyTable;
///
/// let run = [Outcome { correct: true, radius: 0.3 }];
/// let table = CertifiedAccuracyTable::new(&[0.0, 0.25], &[("run", &run[..])])?;
/// assert_eq!(table.radii(), &[0.0, 0.25]);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CertifiedAccuracyTable {
    radii: Vec<f64>,
    names: Vec<String>,
    accuracy: Vec<Vec<f64>>,
    // Rows that are not certificates (e.g. an attack's empirical robust accuracy): shown
    // in italics after the runs, never marked best.
    references: Vec<(String, Vec<f64>)>,
}

impl CertifiedAccuracyTable {
    /// Computes the table from named runs.
    ///
    /// # Errors
    /// [`Error::ZeroCount`] for no radii, no runs or a run without outcomes;
    /// [`Error::InvalidParameter`] for a NaN radius.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::workflow::analysis::CertifiedAccuracyTable;
    ///
    /// assert!(CertifiedAccuracyTable::new(&[0.0], &[]).is_err());
    /// ```
    pub fn new(radii: &[f64], runs: &[(&str, &[Outcome])]) -> Result<Self> {
        if radii.is_empty() {
            return Err(Error::ZeroCount("radii"));
        }
        if runs.is_empty() {
            return Err(Error::ZeroCount("runs"));
        }
        let accuracy = runs
            .iter()
            .map(|(_, outcomes)| approximate_certified_accuracy(outcomes, radii))
            .collect::<Result<_>>()?;
        Ok(Self {
            radii: radii.to_vec(),
            names: runs.iter().map(|(name, _)| name.to_string()).collect(),
            accuracy,
            references: Vec::new(),
        })
    }

    /// Adds a reference row that is not a certificate, such as the empirical robust accuracy
    /// of an undefended network under an attack (an upper bound on its true robust
    /// accuracy; the dashed black line of the paper's Figure 6). `accuracy_at` gives its
    /// value at each radius of the table. Reference rows come after the runs, in italics,
    /// and are never marked best.
    ///
    /// # Errors
    /// The first error of `accuracy_at`; [`Error::InvalidParameter`] if it returns a value
    /// outside `[0, 1]`.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::{certificate::accuracy::Outcome, workflow::analysis::CertifiedAccuracyTable};
    /// let t = CertifiedAccuracyTable::new(&[0.0, 0.5], &[("a", &[Outcome { correct: true, radius: 0.3 }][..])])?
    ///     .with_reference("undefended", |r| Ok(if r < 0.4 { 1.0 } else { 0.5 }))?;
    /// assert!(t.to_markdown().ends_with("| undefended | _1.00_ | _0.50_ |\n"));
    /// assert!(t.to_markdown().contains("| a | **1.00** | 0.00 |"));
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn with_reference(
        mut self,
        name: impl Into<String>,
        accuracy_at: impl Fn(f64) -> Result<f64>,
    ) -> Result<Self> {
        let row = self
            .radii
            .iter()
            .map(|&r| accuracy_at(r))
            .collect::<Result<Vec<f64>>>()?;
        if let Some(bad) = row.iter().find(|a| !(0.0..=1.0).contains(*a)) {
            return Err(Error::InvalidParameter {
                name: "accuracy",
                reason: format!("reference accuracy {bad} is not in [0, 1]"),
            });
        }
        self.references.push((name.into(), row));
        Ok(self)
    }

    /// The radii (columns).
    pub fn radii(&self) -> &[f64] {
        &self.radii
    }

    /// The certified accuracy of run `run` at radius number `radius`.
    ///
    /// # Panics
    /// If either index is out of range.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::{certificate::accuracy::Outcome, workflow::analysis::CertifiedAccuracyTable};
    /// let t = CertifiedAccuracyTable::new(&[0.5], &[("a", &[Outcome { correct: true, radius: 1.0 }][..])])?;
    /// assert_eq!(t.accuracy(0, 0), 1.0);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn accuracy(&self, run: usize, radius: usize) -> f64 {
        self.accuracy[run][radius]
    }

    /// Whether run `run` is (one of) the best at radius number `radius`, as displayed with
    /// two decimals.
    fn is_best(&self, run: usize, radius: usize) -> bool {
        let shown = |v: f64| (v * 100.0).round() as i64;
        let best = self
            .accuracy
            .iter()
            .map(|row| shown(row[radius]))
            .max()
            .unwrap_or(0);
        best > 0 && shown(self.accuracy[run][radius]) == best
    }

    /// A Markdown table, accuracies with two decimals, the best at each radius in bold.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::{certificate::accuracy::Outcome, workflow::analysis::CertifiedAccuracyTable};
    /// let t = CertifiedAccuracyTable::new(&[0.5], &[("a", &[Outcome { correct: true, radius: 1.0 }][..])])?;
    /// assert_eq!(t.to_markdown(), "| | r = 0.50 |\n| --- | --- |\n| a | **1.00** |\n");
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn to_markdown(&self) -> String {
        let mut out = String::from("| |");
        self.radii
            .iter()
            .for_each(|r| out.push_str(&format!(" r = {r:.2} |")));
        out.push_str("\n| --- |");
        self.radii.iter().for_each(|_| out.push_str(" --- |"));
        out.push('\n');
        for (i, name) in self.names.iter().enumerate() {
            out.push_str(&format!("| {name} |"));
            for j in 0..self.radii.len() {
                let v = format!("{:.2}", self.accuracy[i][j]);
                out.push_str(&if self.is_best(i, j) {
                    format!(" **{v}** |")
                } else {
                    format!(" {v} |")
                });
            }
            out.push('\n');
        }
        for (name, row) in &self.references {
            out.push_str(&format!("| {name} |"));
            row.iter()
                .for_each(|v| out.push_str(&format!(" _{v:.2}_ |")));
            out.push('\n');
        }
        out
    }

    /// A LaTeX `tabular`, the best at each radius in `\textbf`.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::{certificate::accuracy::Outcome, workflow::analysis::CertifiedAccuracyTable};
    /// let t = CertifiedAccuracyTable::new(&[0.5], &[("a", &[Outcome { correct: true, radius: 1.0 }][..])])?;
    /// assert!(t.to_latex().contains(r"a & \textbf{1.00} \\"));
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn to_latex(&self) -> String {
        let escape = |s: &str| {
            s.replace('_', r"\_")
                .replace('%', r"\%")
                .replace('&', r"\&")
        };
        let mut out = format!(
            "\\begin{{tabular}}{{l{}}}\n\\toprule\n",
            "c".repeat(self.radii.len())
        );
        out.push_str(
            &self
                .radii
                .iter()
                .map(|r| format!(" & $r = {r:.2}$"))
                .collect::<String>(),
        );
        out.push_str(" \\\\\n\\midrule\n");
        for (i, name) in self.names.iter().enumerate() {
            out.push_str(&escape(name));
            for j in 0..self.radii.len() {
                let v = format!("{:.2}", self.accuracy[i][j]);
                out.push_str(&if self.is_best(i, j) {
                    format!(" & \\textbf{{{v}}}")
                } else {
                    format!(" & {v}")
                });
            }
            out.push_str(" \\\\\n");
        }
        for (name, row) in &self.references {
            out.push_str(&escape(name));
            row.iter()
                .for_each(|v| out.push_str(&format!(" & \\textit{{{v:.2}}}")));
            out.push_str(" \\\\\n");
        }
        out.push_str("\\bottomrule\n\\end{tabular}\n");
        out
    }
}
