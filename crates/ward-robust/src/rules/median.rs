//! [`Median`]: the coordinate-wise median.

use ward_core::Update;
use ward_fl::{Aggregate, Aggregator, FlError, RoundContext};

use crate::RobustError;
use crate::common::{like, rows};
use crate::coordinate::{Reduce, coordinatewise};
use crate::error::need_updates;

/// Coordinate-wise median (Yin et al. 2018): per coordinate, the middle of the `n`
/// values; for even `n` the mean of the two middle values (as `numpy.median`).
///
/// Breakdown assumption: it tolerates `f` Byzantine updates when `n >= 2f+1` (an honest
/// majority per coordinate keeps the median inside the honest values' range). Built
/// with [`Median::new`] it states no `f` and accepts any `n >= 1`; built with
/// [`Median::tolerating`] it refuses fewer than `2f+1` updates. Unweighted:
/// `num_examples` is ignored.
///
/// Streams over coordinates in chunks, in parallel (no `(d, n)` copy; memory O(d) plus a
/// small buffer per thread).
///
/// # Shapes
/// - updates: `n` vectors of length `d`; aggregate: `d`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Median {
    f: Option<usize>,
}

impl Median {
    /// The median with no stated `f` (accepts any `n >= 1`).
    pub fn new() -> Self {
        Self { f: None }
    }

    /// The median configured to tolerate `f` Byzantine updates (needs `n >= 2f+1`).
    pub fn tolerating(f: usize) -> Self {
        Self { f: Some(f) }
    }

    /// The stated number of Byzantine updates, if any.
    pub fn f(&self) -> Option<usize> {
        self.f
    }

    /// Checks the breakdown assumption `n >= 2f+1` (`n >= 1` without `f`).
    pub fn check(&self, n: usize) -> Result<(), RobustError> {
        match self.f {
            Some(f) => need_updates("median", Some(f), "2f+1", 2 * f + 1, n),
            None => need_updates("median", None, "1", 1, n),
        }
    }
}

impl Aggregator for Median {
    fn name(&self) -> String {
        "median".into()
    }

    fn min_updates(&self) -> usize {
        self.f.map_or(1, |f| 2 * f + 1)
    }

    fn aggregate(&self, updates: &[Update], ctx: &RoundContext<'_>) -> Result<Aggregate, FlError> {
        self.check(updates.len())?;
        let rows = rows(updates, ctx)?;
        let out = coordinatewise(&rows, Reduce::Median);
        Ok(Aggregate::plain(like(ctx.global, out)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::{upds, zeros};

    #[test]
    fn median_by_hand_odd_and_even() {
        // Coordinate 0: {1, 5, 3} -> 3; coordinate 1: {10, -2, 4} -> 4.
        let g = zeros(2);
        let ctx = RoundContext::new(1, &g);
        let a = Median::new()
            .aggregate(&upds(&[vec![1., 10.], vec![5., -2.], vec![3., 4.]]), &ctx)
            .unwrap();
        assert_eq!(a.params.values(), &[3.0, 4.0]);
        // Even n: {1, 5, 3, 100} -> (3 + 5) / 2 = 4; {10, -2, 4, 0} -> (0 + 4) / 2 = 2.
        let a = Median::new()
            .aggregate(
                &upds(&[vec![1., 10.], vec![5., -2.], vec![3., 4.], vec![100., 0.]]),
                &ctx,
            )
            .unwrap();
        assert_eq!(a.params.values(), &[4.0, 2.0]);
    }

    /// numpy reference: `rules_numpy.coord_median` (../shared/anchors/aggregation) on
    /// X = default_rng(5).standard_normal((6, 5), float32), values pasted below.
    #[test]
    fn median_matches_numpy_reference() {
        let (x, want) = crate::reference::median_case();
        let g = zeros(want.len());
        let a = Median::new()
            .aggregate(&upds(&x), &RoundContext::new(1, &g))
            .unwrap();
        crate::common::testing::assert_close(a.params.values(), &want, 1e-6);
    }

    #[test]
    fn assumption_is_enforced() {
        let m = Median::tolerating(2);
        assert_eq!(m.min_updates(), 5);
        assert_eq!(
            m.check(4).unwrap_err().to_string(),
            "median with f = 2 needs n >= 2f+1 = 5 updates, got 4"
        );
        let g = zeros(1);
        let err = m
            .aggregate(&upds(&[vec![1.], vec![2.]]), &RoundContext::new(1, &g))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "federation config: median with f = 2 needs n >= 2f+1 = 5 updates, got 2"
        );
        assert_eq!(Median::new().min_updates(), 1);
    }
}
