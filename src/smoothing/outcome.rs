//! What PREDICT and CERTIFY return: a class or an abstention, with the evidence behind it.

use crate::certificate::accuracy::Outcome;
use crate::stats::hung_fithian::TopTwoTest;

/// Why a procedure abstained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AbstainReason {
    /// CERTIFY: the lower confidence bound on the candidate class's probability is at most 1/2.
    LowConfidence,
    /// PREDICT: the top two counts are not significantly different at level alpha.
    NotSignificant,
}

/// The outcome of PREDICT.
///
/// With probability at least `1 - alpha` it is either the smoothed classifier's class or an
/// abstention (the paper's Proposition 1).
///
/// # Example
/// ```
/// use randomized_smoothing::{AbstainReason, Prediction, TopTwoTest};
///
/// let test = TopTwoTest { top: 0, count_top: 6, runner_up: 1, count_runner_up: 4, p_value: 0.75 };
/// let p = Prediction::Abstain { reason: AbstainReason::NotSignificant, test };
/// assert_eq!(p.class(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Prediction {
    /// The predicted class.
    Class {
        /// The class.
        class: usize,
        /// The test that decided it.
        test: TopTwoTest,
    },
    /// No prediction.
    Abstain {
        /// Why.
        reason: AbstainReason,
        /// The test that failed.
        test: TopTwoTest,
    },
}

impl Prediction {
    /// The predicted class, or `None` on abstention.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::{Prediction, TopTwoTest};
    /// let test = TopTwoTest { top: 2, count_top: 100, runner_up: 0, count_runner_up: 0, p_value: 1e-30 };
    /// assert_eq!(Prediction::Class { class: 2, test }.class(), Some(2));
    /// ```
    pub fn class(&self) -> Option<usize> {
        match self {
            Prediction::Class { class, .. } => Some(*class),
            Prediction::Abstain { .. } => None,
        }
    }

    /// The evidence.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::{Prediction, TopTwoTest};
    /// let test = TopTwoTest { top: 2, count_top: 100, runner_up: 0, count_runner_up: 0, p_value: 1e-30 };
    /// assert_eq!(Prediction::Class { class: 2, test }.test().count_top, 100);
    /// ```
    pub fn test(&self) -> &TopTwoTest {
        match self {
            Prediction::Class { test, .. } | Prediction::Abstain { test, .. } => test,
        }
    }
}

/// The estimate behind a CERTIFY decision.
///
/// # Example
/// ```
/// use randomized_smoothing::Estimate;
///
/// let e = Estimate { candidate: 7, count: 990, n: 1_000, p_a_lower: 0.97, p_b_upper: 0.03 };
/// assert!(e.p_a_lower < e.count as f64 / e.n as f64);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The class chosen from the `n0` selection samples.
    pub candidate: usize,
    /// Its count among the `n` fresh estimation samples.
    pub count: u64,
    /// The number of estimation samples.
    pub n: u64,
    /// Lower confidence bound on its probability (one-sided Clopper-Pearson at level
    /// `1 - alpha`, or `1 - alpha/2` for the two-sided certificate).
    pub p_a_lower: f64,
    /// Upper confidence bound on every other class's probability: `1 - p_a_lower` for the
    /// paper's certificate; for the two-sided one, the Clopper-Pearson upper bound on the
    /// largest other count at level `1 - alpha/2`, capped at `1 - p_a_lower`.
    pub p_b_upper: f64,
}

/// The outcome of CERTIFY.
///
/// With probability at least `1 - alpha`, a certified class is the smoothed classifier's
/// prediction at every point within `radius` of the input (the paper's Proposition 2).
///
/// # Example
/// ```
/// use randomized_smoothing::{Certification, Estimate};
///
/// let estimate = Estimate { candidate: 1, count: 1_000, n: 1_000, p_a_lower: 0.993, p_b_upper: 0.007 };
/// let c = Certification::Certified { class: 1, radius: 0.61, estimate };
/// assert_eq!((c.class(), c.radius()), (Some(1), Some(0.61)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Certification {
    /// A class with its certified radius.
    Certified {
        /// The class.
        class: usize,
        /// The certified radius, in the noise's norm and the input's units.
        radius: f64,
        /// The estimate it rests on.
        estimate: Estimate,
    },
    /// No certificate.
    Abstain {
        /// Why.
        reason: AbstainReason,
        /// The estimate that was not confident enough.
        estimate: Estimate,
    },
}

impl Certification {
    /// The outcome for an example whose true label is `label`, as the certified-accuracy
    /// statistics count it: correct only when certified with that label, radius 0 on
    /// abstention.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::certificate::accuracy::Outcome;
    /// use randomized_smoothing::{Certification, Estimate};
    ///
    /// let estimate = Estimate { candidate: 3, count: 990, n: 1_000, p_a_lower: 0.98, p_b_upper: 0.02 };
    /// let c = Certification::Certified { class: 3, radius: 0.5, estimate };
    /// assert_eq!(c.outcome(3), Outcome { correct: true, radius: 0.5 });
    /// assert_eq!(c.outcome(4).correct, false);
    /// ```
    pub fn outcome(&self, label: usize) -> Outcome {
        match self {
            Certification::Certified { class, radius, .. } => Outcome {
                correct: *class == label,
                radius: *radius,
            },
            Certification::Abstain { .. } => Outcome {
                correct: false,
                radius: 0.0,
            },
        }
    }

    /// The certified class, or `None` on abstention.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::{AbstainReason, Certification, Estimate};
    /// let estimate = Estimate { candidate: 1, count: 400, n: 1_000, p_a_lower: 0.36, p_b_upper: 0.64 };
    /// let c = Certification::Abstain { reason: AbstainReason::LowConfidence, estimate };
    /// assert_eq!(c.class(), None);
    /// ```
    pub fn class(&self) -> Option<usize> {
        match self {
            Certification::Certified { class, .. } => Some(*class),
            Certification::Abstain { .. } => None,
        }
    }

    /// The certified radius, or `None` on abstention.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::{AbstainReason, Certification, Estimate};
    /// let estimate = Estimate { candidate: 1, count: 400, n: 1_000, p_a_lower: 0.36, p_b_upper: 0.64 };
    /// let c = Certification::Abstain { reason: AbstainReason::LowConfidence, estimate };
    /// assert_eq!(c.radius(), None);
    /// ```
    pub fn radius(&self) -> Option<f64> {
        match self {
            Certification::Certified { radius, .. } => Some(*radius),
            Certification::Abstain { .. } => None,
        }
    }

    /// The estimate behind the decision.
    ///
    /// # Example
    /// ```
    /// # use randomized_smoothing::{Certification, Estimate};
    /// let estimate = Estimate { candidate: 1, count: 1_000, n: 1_000, p_a_lower: 0.993, p_b_upper: 0.007 };
    /// let c = Certification::Certified { class: 1, radius: 0.61, estimate };
    /// assert_eq!(c.estimate().count, 1_000);
    /// ```
    pub fn estimate(&self) -> &Estimate {
        match self {
            Certification::Certified { estimate, .. } | Certification::Abstain { estimate, .. } => {
                estimate
            }
        }
    }
}
