//! [`Bulyan`] (El Mhamdi et al. 2018).

use ward_core::Update;
use ward_fl::{Aggregate, Aggregator, FlError, RoundContext};

use super::krum::krum_best;
use crate::RobustError;
use crate::common::{like, rows};
use crate::coordinate::{Reduce, coordinatewise};
use crate::distance::pairwise_sq_dists;
use crate::error::need_updates;

/// Bulyan (El Mhamdi et al. 2018), as `rules_numpy.bulyan`:
/// 1. select `theta = n - 2f` updates by running Krum (with `f`) on the remaining set
///    and moving its choice to the selection, `theta` times (the distance matrix is
///    computed once);
/// 2. per coordinate, average the `beta = theta - 2f` selected values closest to the
///    coordinate-wise median of the selection (even `theta`: the mean of the two middle
///    values).
///
/// Breakdown assumption: `n >= 4f+3`. `selected` holds the `theta` picks, ascending.
/// Exact ties in a Krum step (frequent in the late steps, where Krum scores by the
/// single nearest neighbour) go to the more central vector, not the first index.
/// Unweighted: `num_examples` is ignored.
///
/// Memory O(n^2 + d): the second phase streams over coordinates of the selected
/// updates in chunks, in parallel.
///
/// # Shapes
/// - updates: `n` vectors of length `d`; aggregate: `d`; `selected`: `n - 2f` indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bulyan {
    f: usize,
}

impl Bulyan {
    /// Bulyan tolerating `f` Byzantine updates.
    pub fn new(f: usize) -> Self {
        Self { f }
    }

    /// The number of Byzantine updates tolerated.
    pub fn f(&self) -> usize {
        self.f
    }

    /// Checks the breakdown assumption `n >= 4f+3`.
    pub fn check(&self, n: usize) -> Result<(), RobustError> {
        need_updates("bulyan", Some(self.f), "4f+3", 4 * self.f + 3, n)
    }
}

impl Aggregator for Bulyan {
    fn name(&self) -> String {
        "bulyan".into()
    }

    fn min_updates(&self) -> usize {
        4 * self.f + 3
    }

    fn aggregate(&self, updates: &[Update], ctx: &RoundContext<'_>) -> Result<Aggregate, FlError> {
        self.check(updates.len())?;
        let rows = rows(updates, ctx)?;
        let n = rows.len();
        let f = self.f;
        let theta = n - 2 * f;
        let beta = theta - 2 * f;
        let dist = pairwise_sq_dists(&rows);
        let mut remaining: Vec<usize> = (0..n).collect();
        let mut picked = Vec::with_capacity(theta);
        for _ in 0..theta {
            let j = krum_best(&dist, n, &remaining, f, &rows);
            picked.push(remaining.remove(j));
        }
        picked.sort_unstable();
        let sel: Vec<&[f32]> = picked.iter().map(|&i| rows[i]).collect();
        let out = coordinatewise(&sel, Reduce::NearMedian(beta));
        Ok(Aggregate {
            params: like(ctx.global, out)?,
            selected: Some(picked),
            weights: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::{assert_close, upds, zeros};

    /// By hand, f = 1, n = 7 (theta = 5, beta = 3), 1-D values 0, 1, 2, 3, 4, 50, -60.
    /// Krum with f = 1 scores the 7 - 1 - 2 = 4 nearest: 0 -> 1+4+9+16 = 30,
    /// 1 -> 1+1+4+9 = 15, 2 -> 1+1+4+4 = 10, 3 -> 15, 4 -> 30; 50 and -60 score
    /// thousands. Picks: 2; then on {0,1,3,4,50,-60} (k = 3): 1 -> 1+4+9 = 14,
    /// 3 -> 1+4+9 = 14, a tie broken by the summed distance to the remaining set:
    /// 1 -> 1+4+9+2401+3721 = 6136 < 3 -> 9+4+1+2209+3969 = 6192 -> 1; then
    /// {0,3,4,50,-60} (k = 2): 3 -> 1+9 = 10, 4 -> 1+16 = 17, 0 -> 9+16 = 25 -> 3; then
    /// {0,4,50,-60} (k = 1): 0 -> 16, 4 -> 16, totals 0 -> 16+2500+3600 = 6116,
    /// 4 -> 16+2116+4096 = 6228 -> 0; then {4,50,-60} (k = 1): 4 -> 46^2 = 2116,
    /// 50 -> 2116, totals 4 -> 2116+4096 = 6212, 50 -> 2116+12100 = 14216 -> 4.
    /// Selection {0, 1, 2, 3, 4}, median 2, the 3 closest values 1, 2, 3 -> mean 2.
    #[test]
    fn bulyan_by_hand() {
        let g = zeros(1);
        let u = upds(&[
            vec![0.],
            vec![1.],
            vec![2.],
            vec![3.],
            vec![4.],
            vec![50.],
            vec![-60.],
        ]);
        let a = Bulyan::new(1)
            .aggregate(&u, &RoundContext::new(1, &g))
            .unwrap();
        assert_eq!(a.params.values(), &[2.0]);
        assert_eq!(a.selected, Some(vec![0, 1, 2, 3, 4]));
    }

    /// numpy reference: `rules_numpy.bulyan(X, f=2)` on
    /// X = default_rng(9).standard_normal((11, 5), float32) (see `crate::reference`).
    #[test]
    fn bulyan_matches_numpy_reference() {
        let (x, want, picked) = crate::reference::bulyan_case();
        let g = zeros(want.len());
        let a = Bulyan::new(2)
            .aggregate(&upds(&x), &RoundContext::new(1, &g))
            .unwrap();
        assert_close(a.params.values(), &want, 1e-6);
        assert_eq!(a.selected, Some(picked));
    }

    #[test]
    fn assumption_is_enforced() {
        assert_eq!(Bulyan::new(2).min_updates(), 11);
        assert_eq!(
            Bulyan::new(2).check(8).unwrap_err().to_string(),
            "bulyan with f = 2 needs n >= 4f+3 = 11 updates, got 8"
        );
    }
}
