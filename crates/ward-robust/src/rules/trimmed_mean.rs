//! [`TrimmedMean`]: the coordinate-wise trimmed mean.

use ward_core::Update;
use ward_fl::{Aggregate, Aggregator, FlError, RoundContext};

use crate::RobustError;
use crate::common::{like, rows};
use crate::coordinate::{Reduce, coordinatewise};
use crate::error::need_updates;

/// Coordinate-wise trimmed mean (Yin et al. 2018; Flower's `FedTrimmedAvg` cuts a
/// fraction instead): per coordinate, drop the `f` lowest and the `f` highest of the
/// `n` values and average the remaining `n - 2f`.
///
/// Breakdown assumption: `n >= 2f+1` (at least one value is left, and with at most `f`
/// Byzantine updates every kept value lies within the honest values' range). With
/// `f = 0` it is the plain mean. Unweighted: `num_examples` is ignored.
///
/// Streams over coordinates in chunks, in parallel (no `(d, n)` copy).
///
/// # Shapes
/// - updates: `n` vectors of length `d`; aggregate: `d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrimmedMean {
    f: usize,
}

impl TrimmedMean {
    /// The trimmed mean cutting `f` values per side.
    pub fn new(f: usize) -> Self {
        Self { f }
    }

    /// Values cut per side.
    pub fn f(&self) -> usize {
        self.f
    }

    /// Checks the breakdown assumption `n >= 2f+1`.
    pub fn check(&self, n: usize) -> Result<(), RobustError> {
        need_updates("trimmed-mean", Some(self.f), "2f+1", 2 * self.f + 1, n)
    }
}

impl Aggregator for TrimmedMean {
    fn name(&self) -> String {
        "trimmed-mean".into()
    }

    fn min_updates(&self) -> usize {
        2 * self.f + 1
    }

    fn aggregate(&self, updates: &[Update], ctx: &RoundContext<'_>) -> Result<Aggregate, FlError> {
        self.check(updates.len())?;
        let rows = rows(updates, ctx)?;
        let out = coordinatewise(&rows, Reduce::Trimmed(self.f));
        Ok(Aggregate::plain(like(ctx.global, out)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::{assert_close, upds, zeros};

    #[test]
    fn trimmed_mean_by_hand() {
        // f = 1, n = 5. Coordinate 0: {4, -100, 1, 2, 3} -> drop -100 and 4 -> (1+2+3)/3 = 2.
        // Coordinate 1: {0, 0, 9, 1, 50} -> drop one 0 and 50 -> (0+9+1)/3 = 10/3.
        let g = zeros(2);
        let a = TrimmedMean::new(1)
            .aggregate(
                &upds(&[
                    vec![4., 0.],
                    vec![-100., 0.],
                    vec![1., 9.],
                    vec![2., 1.],
                    vec![3., 50.],
                ]),
                &RoundContext::new(1, &g),
            )
            .unwrap();
        assert_eq!(a.params.values(), &[2.0, (10.0f64 / 3.0) as f32]);
    }

    /// numpy reference: `rules_numpy.trimmed_mean(X, f=2)` on
    /// X = default_rng(6).standard_normal((7, 5), float32) (see `crate::reference`).
    #[test]
    fn trimmed_mean_matches_numpy_reference() {
        let (x, want) = crate::reference::trimmed_mean_case();
        let g = zeros(want.len());
        let a = TrimmedMean::new(2)
            .aggregate(&upds(&x), &RoundContext::new(1, &g))
            .unwrap();
        assert_close(a.params.values(), &want, 1e-6);
    }

    #[test]
    fn assumption_is_enforced() {
        assert_eq!(TrimmedMean::new(3).min_updates(), 7);
        assert_eq!(
            TrimmedMean::new(3).check(6).unwrap_err().to_string(),
            "trimmed-mean with f = 3 needs n >= 2f+1 = 7 updates, got 6"
        );
        assert!(TrimmedMean::new(3).check(7).is_ok());
    }
}
