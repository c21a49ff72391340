//! [`GeometricMedian`]: RFA's smoothed Weiszfeld (Pillutla et al. 2022).

use rayon::prelude::*;
use ward_core::Update;
use ward_fl::{Aggregate, Aggregator, FlError, RoundContext};

use crate::RobustError;
use crate::common::{like, rows, sq_dists_to, to_f32, weighted_sum_f64};
use crate::error::{bad_param, need_updates};

/// The geometric median `argmin_z sum_i ||x_i - z||` by the smoothed Weiszfeld
/// iteration of RFA (Pillutla et al. 2022, Algorithm 2 with equal weights):
/// start at the mean; repeat `z <- sum_i w_i x_i / sum_i w_i` with
/// `w_i = 1 / max(eps, ||x_i - z||)`; stop when `||z_new - z|| <= tol * max(1, ||z_new||)`
/// or after `max_iter` iterations.
///
/// Breakdown point 1/2: with `f < n/2` Byzantine updates the output stays within a
/// bounded distance of the honest ones however far the others are. It needs no `f`, so
/// its only assumption is `n >= 1`. Unweighted: `num_examples` is ignored. `weights`
/// reports the final iteration's normalised Weiszfeld weights `w_i / sum_j w_j` (far
/// updates get small weights).
///
/// Every iteration is two parallel passes over the updates (distances, weighted sum),
/// accumulated in `f64`; memory O(d).
///
/// # Shapes
/// - updates: `n` vectors of length `d`; aggregate: `d`; `weights`: `n`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeometricMedian {
    eps: f64,
    max_iter: usize,
    tol: f64,
}

impl Default for GeometricMedian {
    /// `eps = 1e-8`, `max_iter = 100`, `tol = 1e-6` (the settings of the numpy
    /// reference in `../shared/anchors/aggregation`).
    fn default() -> Self {
        Self {
            eps: 1e-8,
            max_iter: 100,
            tol: 1e-6,
        }
    }
}

impl GeometricMedian {
    /// The rule with smoothing `eps > 0`, `max_iter >= 1` and tolerance `tol >= 0`.
    pub fn new(eps: f64, max_iter: usize, tol: f64) -> Result<Self, RobustError> {
        const RULE: &str = "geometric-median";
        if !(eps.is_finite() && eps > 0.0) {
            return Err(bad_param(RULE, "eps", eps, "must be a number > 0"));
        }
        if max_iter == 0 {
            return Err(bad_param(RULE, "max_iter", 0, "must be >= 1"));
        }
        if !(tol.is_finite() && tol >= 0.0) {
            return Err(bad_param(RULE, "tol", tol, "must be a number >= 0"));
        }
        Ok(Self { eps, max_iter, tol })
    }

    /// The smoothing `eps`.
    pub fn eps(&self) -> f64 {
        self.eps
    }

    /// The iteration limit.
    pub fn max_iter(&self) -> usize {
        self.max_iter
    }

    /// The relative tolerance.
    pub fn tol(&self) -> f64 {
        self.tol
    }

    /// Checks `n >= 1`.
    pub fn check(&self, n: usize) -> Result<(), RobustError> {
        need_updates("geometric-median", None, "1", 1, n)
    }

    /// The geometric median of `rows`, its final normalised weights, and the number of
    /// iterations run.
    ///
    /// # Shapes
    /// - `rows`: `n >= 1` slices of length `d`; returns `d` values, `n` weights.
    pub(crate) fn solve(&self, rows: &[&[f32]]) -> (Vec<f64>, Vec<f64>, usize) {
        let n = rows.len();
        let mut z = weighted_sum_f64(rows, &vec![1.0 / n as f64; n]);
        let mut w = vec![1.0 / n as f64; n];
        let mut it = 0;
        while it < self.max_iter {
            it += 1;
            let d2 = sq_dists_to(rows, &z);
            let raw: Vec<f64> = d2.iter().map(|&s| 1.0 / s.sqrt().max(self.eps)).collect();
            let total: f64 = raw.iter().sum();
            w = raw.iter().map(|&r| r / total).collect();
            let z_new = weighted_sum_f64(rows, &w);
            let (step2, norm2) = z_new
                .par_iter()
                .zip(z.par_iter())
                .map(|(&a, &b)| ((a - b) * (a - b), a * a))
                .reduce(|| (0.0, 0.0), |x, y| (x.0 + y.0, x.1 + y.1));
            z = z_new;
            if step2.sqrt() <= self.tol * norm2.sqrt().max(1.0) {
                break;
            }
        }
        (z, w, it)
    }
}

impl Aggregator for GeometricMedian {
    fn name(&self) -> String {
        "geometric-median".into()
    }

    fn aggregate(&self, updates: &[Update], ctx: &RoundContext<'_>) -> Result<Aggregate, FlError> {
        self.check(updates.len())?;
        let rows = rows(updates, ctx)?;
        let (z, w, _) = self.solve(&rows);
        Ok(Aggregate {
            params: like(ctx.global, to_f32(&z))?,
            selected: None,
            weights: Some(w),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::{assert_close, upds, zeros};

    /// By hand: the geometric median of three collinear points 0, 1, 10 is the middle
    /// one, 1 (the sum of distances |z| + |z - 1| + |10 - z| is smallest at z = 1).
    /// Weiszfeld converges to it from the mean 11/3.
    #[test]
    fn collinear_points_give_the_middle_one() {
        let g = zeros(1);
        let gm = GeometricMedian::new(1e-8, 1000, 1e-9).unwrap();
        let a = gm
            .aggregate(
                &upds(&[vec![0.], vec![1.], vec![10.]]),
                &RoundContext::new(1, &g),
            )
            .unwrap();
        assert!((a.params.values()[0] - 1.0).abs() < 1e-4, "{:?}", a.params);
        let w = a.weights.unwrap();
        // near z = 1 the middle point's weight 1/max(eps, |1 - z|) dominates
        assert!(w[1] > 0.99, "{w:?}");
    }

    /// One Weiszfeld step by hand: points (0,0), (4,0), (0,3); start at the mean
    /// (4/3, 1); distances: sqrt(16/9 + 1) = 5/3, sqrt(64/9 + 1) = sqrt(73)/3,
    /// sqrt(16/9 + 4) = sqrt(52)/3; z1 = sum (x_i / dist_i) / sum (1 / dist_i).
    #[test]
    fn one_step_by_hand() {
        let (d0, d1, d2) = (5.0f64 / 3.0, 73f64.sqrt() / 3.0, 52f64.sqrt() / 3.0);
        let s = 1.0 / d0 + 1.0 / d1 + 1.0 / d2;
        let want = [(4.0 / d1 / s) as f32, (3.0 / d2 / s) as f32];
        let gm = GeometricMedian::new(1e-8, 1, 0.0).unwrap();
        let g = zeros(2);
        let a = gm
            .aggregate(
                &upds(&[vec![0., 0.], vec![4., 0.], vec![0., 3.]]),
                &RoundContext::new(1, &g),
            )
            .unwrap();
        assert_close(a.params.values(), &want, 1e-6);
    }

    /// numpy reference: `rules_numpy.geometric_median(X, 100, 1e-6)` on
    /// X = default_rng(10).standard_normal((7, 3), float32) with row 6 = [50, -40, 30]
    /// (see `crate::reference`); numpy accumulates the weighted sum in float32, hence
    /// the tolerance.
    #[test]
    fn geometric_median_matches_numpy_reference() {
        let (x, want, numpy_iters) = crate::reference::geometric_median_case();
        let g = zeros(want.len());
        let gm = GeometricMedian::default();
        let refs: Vec<&[f32]> = x.iter().map(Vec::as_slice).collect();
        let (_, _, iters) = gm.solve(&refs);
        assert!(iters.abs_diff(numpy_iters) <= 2, "{iters} vs {numpy_iters}");
        let a = gm.aggregate(&upds(&x), &RoundContext::new(1, &g)).unwrap();
        assert_close(a.params.values(), &want, 2e-5);
    }

    #[test]
    fn hyperparameters_are_checked() {
        assert_eq!(
            GeometricMedian::new(0.0, 10, 1e-6).unwrap_err().to_string(),
            "geometric-median: eps = 0: must be a number > 0"
        );
        assert_eq!(
            GeometricMedian::new(1e-8, 0, 1e-6).unwrap_err().to_string(),
            "geometric-median: max_iter = 0: must be >= 1"
        );
        assert_eq!(
            GeometricMedian::new(1e-8, 1, f64::NAN)
                .unwrap_err()
                .to_string(),
            "geometric-median: tol = NaN: must be a number >= 0"
        );
    }
}
