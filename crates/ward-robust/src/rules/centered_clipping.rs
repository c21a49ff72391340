//! [`CenteredClipping`] (Karimireddy et al. 2021).

use rayon::prelude::*;
use ward_core::Update;
use ward_fl::{Aggregate, Aggregator, FlError, RoundContext};

use crate::RobustError;
use crate::common::{CHUNK, like, rows, sq_dists_to, to_f32};
use crate::error::{bad_param, need_updates};

/// Centered clipping (Karimireddy, He & Jaggi 2021, "Learning from History for
/// Byzantine Robust Optimization", eq. 2), on the deltas `y_i = x_i - global`:
/// `v` starts at 0 and, `iterations` times,
/// `v <- v + (1/n) sum_i clip_tau(y_i - v)`, with `clip_tau(y) = y min(1, tau/||y||)`.
/// The aggregate model is `global + v`.
///
/// Each update moves the centre by at most `tau / n`, so `f` Byzantine updates move
/// each iteration's result by at most `f tau / n` however far they are: the output
/// stays within `iterations * tau` of the global model. It needs no `f` (`n >= 1`).
/// Unweighted: `num_examples` is ignored. `weights` reports the last iteration's
/// clipping factors `min(1, tau / ||y_i - v||)` (1 = not clipped).
///
/// Two parallel passes over the updates per iteration; memory O(d) (the deltas are
/// never materialised: the centre is kept as a model, `global + v`, in `f64`).
///
/// # Shapes
/// - updates: `n` vectors of length `d`; aggregate: `d`; `weights`: `n`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CenteredClipping {
    tau: f64,
    iterations: usize,
}

impl CenteredClipping {
    /// Centered clipping with radius `tau > 0` and `iterations >= 1`.
    pub fn new(tau: f64, iterations: usize) -> Result<Self, RobustError> {
        if !(tau.is_finite() && tau > 0.0) {
            return Err(bad_param(
                "centered-clipping",
                "tau",
                tau,
                "must be a number > 0",
            ));
        }
        if iterations == 0 {
            return Err(bad_param(
                "centered-clipping",
                "iterations",
                0,
                "must be >= 1",
            ));
        }
        Ok(Self { tau, iterations })
    }

    /// The clipping radius.
    pub fn tau(&self) -> f64 {
        self.tau
    }

    /// The number of iterations.
    pub fn iterations(&self) -> usize {
        self.iterations
    }

    /// Checks `n >= 1`.
    pub fn check(&self, n: usize) -> Result<(), RobustError> {
        need_updates("centered-clipping", None, "1", 1, n)
    }
}

impl Aggregator for CenteredClipping {
    fn name(&self) -> String {
        "centered-clipping".into()
    }

    fn aggregate(&self, updates: &[Update], ctx: &RoundContext<'_>) -> Result<Aggregate, FlError> {
        self.check(updates.len())?;
        let rows = rows(updates, ctx)?;
        let n = rows.len() as f64;
        // The centre `global + v`, with v = 0 at the start.
        let mut center: Vec<f64> = ctx.global.values().iter().map(|&g| f64::from(g)).collect();
        let mut factors = vec![1.0; rows.len()];
        for _ in 0..self.iterations {
            let d2 = sq_dists_to(&rows, &center);
            factors = d2
                .iter()
                .map(|&s| {
                    let r = s.sqrt();
                    if r > 0.0 {
                        (self.tau / r).min(1.0)
                    } else {
                        1.0
                    }
                })
                .collect();
            // centre += (1/n) sum_i c_i (x_i - centre)
            let w: Vec<f64> = factors.iter().map(|c| c / n).collect();
            center.par_chunks_mut(CHUNK).enumerate().for_each(|(c, z)| {
                let start = c * CHUNK;
                let mut acc = vec![0f64; z.len()];
                for (r, &wi) in rows.iter().zip(&w) {
                    for ((a, &x), &zk) in
                        acc.iter_mut().zip(&r[start..start + z.len()]).zip(z.iter())
                    {
                        *a += wi * (f64::from(x) - zk);
                    }
                }
                for (zk, a) in z.iter_mut().zip(acc) {
                    *zk += a;
                }
            });
        }
        Ok(Aggregate {
            params: like(ctx.global, to_f32(&center))?,
            selected: None,
            weights: Some(factors),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::{assert_close, upds, zeros};
    use ward_core::Params;

    /// By hand, tau = 1, one iteration, global (1, 1), models (1, 1) + (3, 4) and
    /// (1, 1) + (0.5, 0): deltas (3, 4) (norm 5, clipped to (0.6, 0.8)) and (0.5, 0)
    /// (norm 0.5, kept). v = ((0.6, 0.8) + (0.5, 0)) / 2 = (0.55, 0.4);
    /// aggregate = global + v = (1.55, 1.4).
    #[test]
    fn one_iteration_by_hand() {
        let g = Params::from_flat(vec![1., 1.]);
        let cc = CenteredClipping::new(1.0, 1).unwrap();
        let a = cc
            .aggregate(
                &upds(&[vec![4., 5.], vec![1.5, 1.]]),
                &RoundContext::new(1, &g),
            )
            .unwrap();
        assert_close(a.params.values(), &[1.55, 1.4], 1e-7);
        assert_eq!(a.weights, Some(vec![0.2, 1.0]));
    }

    /// numpy reference: `rules_numpy.centered_clipping(X, tau=1.0, iters=3)` on
    /// X = 3 * default_rng(11).standard_normal((6, 4), float32), global 0 (see
    /// `crate::reference`); numpy accumulates in float32, hence the tolerance.
    #[test]
    fn centered_clipping_matches_numpy_reference() {
        let (x, want) = crate::reference::centered_clipping_case();
        let g = zeros(want.len());
        let a = CenteredClipping::new(1.0, 3)
            .unwrap()
            .aggregate(&upds(&x), &RoundContext::new(1, &g))
            .unwrap();
        assert_close(a.params.values(), &want, 1e-5);
    }

    #[test]
    fn hyperparameters_are_checked() {
        assert_eq!(
            CenteredClipping::new(-1.0, 1).unwrap_err().to_string(),
            "centered-clipping: tau = -1: must be a number > 0"
        );
        assert_eq!(
            CenteredClipping::new(1.0, 0).unwrap_err().to_string(),
            "centered-clipping: iterations = 0: must be >= 1"
        );
    }
}
