//! [`Mean`]: the unweighted mean (the non-robust baseline).

use ward_core::Update;
use ward_fl::{Aggregate, Aggregator, FlError, RoundContext};

use crate::RobustError;
use crate::common::{like, rows, weighted_sum};
use crate::error::need_updates;

/// The unweighted mean of the updates, `(1/n) sum_i x_i`, accumulated in `f64`.
///
/// Ignores `num_examples` (use [`ward_fl::FedAvg`] for the example-weighted mean).
/// Not robust: one update placed far enough moves it arbitrarily (breakdown point 0).
/// Memory O(d).
///
/// # Shapes
/// - updates: `n >= 1` vectors of length `d`; aggregate: `d`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mean;

impl Mean {
    /// Checks `n >= 1` (the mean has no breakdown assumption: it is not robust).
    pub fn check(&self, n: usize) -> Result<(), RobustError> {
        need_updates("mean", None, "1", 1, n)
    }
}

impl Aggregator for Mean {
    fn name(&self) -> String {
        "mean".into()
    }

    fn aggregate(&self, updates: &[Update], ctx: &RoundContext<'_>) -> Result<Aggregate, FlError> {
        self.check(updates.len())?;
        let rows = rows(updates, ctx)?;
        let w = vec![1.0 / rows.len() as f64; rows.len()];
        Ok(Aggregate::plain(like(ctx.global, weighted_sum(&rows, &w))?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::{upds, zeros};

    #[test]
    fn mean_by_hand_ignores_example_counts() {
        // ([1, 2] + [3, 6] + [8, 1]) / 3 = [4, 3], whatever num_examples says.
        let mut u = upds(&[vec![1., 2.], vec![3., 6.], vec![8., 1.]]);
        u[0].num_examples = 100;
        let g = zeros(2);
        let a = Mean.aggregate(&u, &RoundContext::new(1, &g)).unwrap();
        assert_eq!(a.params.values(), &[4.0, 3.0]);
        assert_eq!(a.selected, None);
    }
}
