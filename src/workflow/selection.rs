//! Which examples of a data set a job runs: every `skip`-th, at most `max` of them, then one
//! shard of those ([`Selection`], [`Shard`]).
//!
//! # Example
//! ```
//! use randomized_smoothing::workflow::jobs::{Selection, Shard};
//!
//! // Every 20th example, at most 5 of them, second of two shards.
//! let s = Selection::new(20, Some(5), Shard::parse("1/2")?)?;
//! assert_eq!(s.indices(10_000), vec![20, 60]);
//! # Ok::<(), randomized_smoothing::Error>(())
//! ```

use std::str::FromStr;

use crate::error::{Error, Result, check_positive};

/// Shard `index` of `count` (`k/N` on the command line, k from 0).
///
/// # Example
/// ```
/// use randomized_smoothing::workflow::jobs::Shard;
///
/// assert_eq!(Shard::parse("2/4")?, Shard::new(2, 4)?);
/// assert!(Shard::parse("4/4").is_err());
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: usize,
    count: usize,
}

impl Shard {
    /// This shard's index, from 0.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The number of shards.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Shard `index` of `count`.
    ///
    /// # Errors
    /// [`Error::ZeroCount`] for zero shards, [`Error::InvalidParameter`] if `index >= count`.
    ///
    /// # Example
    /// ```
    /// assert!(randomized_smoothing::workflow::jobs::Shard::new(0, 0).is_err());
    /// ```
    pub fn new(index: usize, count: usize) -> Result<Self> {
        check_positive("shards", count as u64)?;
        if index >= count {
            return Err(Error::InvalidParameter {
                name: "shard",
                reason: format!("index {index} of {count} shards (indices start at 0)"),
            });
        }
        Ok(Self { index, count })
    }

    /// The whole job as one shard.
    ///
    /// # Example
    /// ```
    /// assert_eq!(randomized_smoothing::workflow::jobs::Shard::whole(), randomized_smoothing::workflow::jobs::Shard::new(0, 1).unwrap());
    /// ```
    pub fn whole() -> Self {
        Self { index: 0, count: 1 }
    }

    /// Parses `k/N`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for anything else, or as [`Shard::new`].
    ///
    /// # Example
    /// ```
    /// assert!(randomized_smoothing::workflow::jobs::Shard::parse("1-3").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || Error::InvalidParameter {
            name: "shard",
            reason: format!("{text:?} is not of the form k/N"),
        };
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        Self::new(
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        )
    }
}

impl FromStr for Shard {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// Which examples of a data set a job certifies.
///
/// # Example
/// ```
/// use randomized_smoothing::workflow::jobs::{Selection, Shard};
///
/// let all = Selection::new(1, None, Shard::whole())?;
/// assert_eq!(all.indices(3), vec![0, 1, 2]);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selection {
    skip: usize,
    max: Option<usize>,
    shard: Shard,
}

impl Selection {
    /// Every `skip`-th example from the first, at most `max` of them (a count, not an index:
    /// the paper's `certify.py` compares `max` with the index), then those of `shard`.
    ///
    /// # Errors
    /// [`Error::ZeroCount`] for `skip = 0`.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::workflow::jobs::{Selection, Shard};
    ///
    /// // The paper's CIFAR-10 runs: every 20th test image, 500 images.
    /// let s = Selection::new(20, Some(500), Shard::whole())?;
    /// assert_eq!(s.indices(10_000).len(), 500);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn new(skip: usize, max: Option<usize>, shard: Shard) -> Result<Self> {
        check_positive("skip", skip as u64)?;
        Ok(Self { skip, max, shard })
    }

    /// The selected indices of a data set of `len` examples, in increasing order.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::workflow::jobs::{Selection, Shard};
    ///
    /// // Examples 0, 2 and 4; shard 0 of 2 takes the first and the third.
    /// let s = Selection::new(2, Some(3), Shard::new(0, 2)?)?;
    /// assert_eq!(s.indices(100), vec![0, 4]);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn indices(&self, len: usize) -> Vec<usize> {
        (0..len)
            .step_by(self.skip)
            .take(self.max.unwrap_or(usize::MAX))
            .enumerate()
            .filter(|(position, _)| position % self.shard.count == self.shard.index)
            .map(|(_, idx)| idx)
            .collect()
    }

    /// Whether example `idx` is selected in a data set long enough to hold it: what
    /// [`indices`](Self::indices) answers for any `len > idx`, without knowing the data set.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::workflow::jobs::{Selection, Shard};
    ///
    /// let s = Selection::new(2, Some(3), Shard::new(0, 2)?)?;
    /// assert!((0..10).filter(|&i| s.contains(i)).eq(s.indices(100)));
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn contains(&self, idx: usize) -> bool {
        let position = idx / self.skip;
        idx.is_multiple_of(self.skip)
            && self.max.is_none_or(|max| position < max)
            && position % self.shard.count == self.shard.index
    }
}
