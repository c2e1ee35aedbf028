//! The test behind PREDICT (Hung & Fithian, 2019): with `n_A` and `n_B` the two largest class
//! counts, return the top class if the two-sided binomial test of `n_A` successes in
//! `n_A + n_B` trials at p = 1/2 rejects at level alpha. Hung and Fithian show that this one
//! test bounds the probability of returning a class other than the top one by alpha, however
//! many classes there are (the paper's Proposition 1).

use crate::error::{Error, Result};
use crate::stats::binomial::binomial_test_two_sided;

/// The evidence behind a PREDICT decision: the top two counts and the test applied to them.
///
/// # Example
/// ```
/// use randomized_smoothing::TopTwoTest;
///
/// let t = TopTwoTest { top: 3, count_top: 90, runner_up: 1, count_runner_up: 10, p_value: 1e-16 };
/// assert_eq!(t.count_top + t.count_runner_up, 100);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopTwoTest {
    /// The most frequent class (lowest index among ties).
    pub top: usize,
    /// Its count.
    pub count_top: u64,
    /// The second most frequent class (the top class itself if there is only one class).
    pub runner_up: usize,
    /// Its count.
    pub count_runner_up: u64,
    /// Two-sided binomial p-value of `count_top` successes in `count_top + count_runner_up`
    /// trials at probability 1/2.
    pub p_value: f64,
}

impl TopTwoTest {
    /// The test on the class counts of one PREDICT run.
    ///
    /// # Errors
    /// [`Error::ZeroCount`] for no classes or no samples.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::TopTwoTest;
    ///
    /// let t = TopTwoTest::from_counts(&[3, 90, 7])?;
    /// assert_eq!((t.top, t.count_top, t.runner_up, t.count_runner_up), (1, 90, 2, 7));
    /// assert!(t.rejects(0.001) && !TopTwoTest::from_counts(&[6, 4])?.rejects(0.001));
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn from_counts(counts: &[u64]) -> Result<Self> {
        if counts.is_empty() {
            return Err(Error::ZeroCount("classes"));
        }
        let (top, runner_up) = top_two(counts);
        let (count_top, count_runner_up) = (counts[top], runner_up.map_or(0, |c| counts[c]));
        let p_value = binomial_test_two_sided(count_top, count_top + count_runner_up, 0.5)?;
        Ok(Self {
            top,
            count_top,
            runner_up: runner_up.unwrap_or(top),
            count_runner_up,
            p_value,
        })
    }

    /// Whether the test rejects "the top two classes are equally likely" at level `alpha`,
    /// so that PREDICT returns the top class.
    pub fn rejects(&self, alpha: f64) -> bool {
        self.p_value <= alpha
    }
}

/// Whether `n` samples could ever make the test reject at `alpha`: only if all `n` agree.
pub(crate) fn can_ever_reject(n: u64, alpha: f64) -> bool {
    binomial_test_two_sided(n, n, 0.5).is_ok_and(|p_value| p_value <= alpha)
}

/// The indices of the largest and second-largest counts (lowest index among ties); no
/// runner-up for a single class. `counts` must not be empty.
pub(crate) fn top_two(counts: &[u64]) -> (usize, Option<usize>) {
    let mut order: Vec<usize> = (0..counts.len()).collect();
    order.sort_by(|&a, &b| counts[b].cmp(&counts[a]).then(a.cmp(&b)));
    (order[0], order.get(1).copied())
}
