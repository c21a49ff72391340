//! [`CenteredClipping`] (Karimireddy et al. 2021) and the [`ClippedMean`] it reduces to
//! without history.

use rayon::prelude::*;
use ward_core::Update;
use ward_fl::{Aggregate, Aggregator, FlError, RoundContext};

use crate::RobustError;
use crate::common::{CHUNK, like, rows, sq_dists_to, to_f32};
use crate::error::{bad_param, need_updates};

/// Centered clipping as published (Karimireddy, He & Jaggi 2021, "Learning from History
/// for Byzantine Robust Optimization", eq. 2 and Algorithm 2), on the deltas
/// `y_i = x_i - global`: the centre `v` starts at **the previous round's aggregate
/// update** (`RoundContext::previous_update`, kept by the federation and in its
/// checkpoint; 0 in the first round) and, `iterations` times,
/// `v <- v + (1/n) sum_i clip_tau(y_i - v)`, with `clip_tau(y) = y min(1, tau/||y||)`.
/// The aggregate model is `global + v`.
///
/// `tau`: fixed, or (`None`) chosen each round as the median of `||y_i - v_0||`, the
/// updates' distances from the starting centre. While fewer than half the updates are
/// Byzantine, that median lies between two honest distances, so it follows the honest
/// updates' spread without knowing which they are.
///
/// Each update moves the centre by at most `tau / n` per iteration, so `f` Byzantine
/// updates move it by at most `f tau / n` however far they are. It needs no `f`
/// (`n >= 1`). Unweighted: `num_examples` is ignored. `weights` reports the last
/// iteration's clipping factors `min(1, tau / ||y_i - v||)` (1 = not clipped).
///
/// The paper pairs the rule with worker momentum; Ward's sites send their local models
/// (several local steps), so the history here is the server's previous aggregate.
///
/// Two parallel passes over the updates per iteration; memory O(d) (the deltas are
/// never materialised: the centre is kept as a model, `global + v`, in `f64`).
///
/// # Shapes
/// - updates: `n` vectors of length `d`; aggregate: `d`; `weights`: `n`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CenteredClipping {
    tau: Option<f64>,
    iterations: usize,
}

impl CenteredClipping {
    /// Centered clipping with radius `tau > 0` (`None`: the median distance from the
    /// starting centre, each round) and `iterations >= 1`.
    pub fn new(tau: Option<f64>, iterations: usize) -> Result<Self, RobustError> {
        check_radius("centered-clipping", tau, iterations)?;
        Ok(Self { tau, iterations })
    }

    /// The fixed clipping radius, if one was given.
    pub fn tau(&self) -> Option<f64> {
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

    fn uses_history(&self) -> bool {
        true
    }

    fn aggregate(&self, updates: &[Update], ctx: &RoundContext<'_>) -> Result<Aggregate, FlError> {
        self.check(updates.len())?;
        let rows = rows(updates, ctx)?;
        let global = ctx.global.values();
        let center: Vec<f64> = match ctx.previous_update {
            Some(p) => {
                p.check_same_layout(ctx.global)?;
                global
                    .iter()
                    .zip(p.values())
                    .map(|(&g, &v)| f64::from(g) + f64::from(v))
                    .collect()
            }
            None => global.iter().map(|&g| f64::from(g)).collect(),
        };
        let (center, factors) = clip_iterate(&rows, center, self.tau, self.iterations);
        Ok(Aggregate {
            params: like(ctx.global, to_f32(&center))?,
            selected: None,
            weights: Some(factors),
        })
    }
}

/// The clipped mean: [`CenteredClipping`]'s iteration with the centre starting at the
/// global model (delta 0) every round, so it keeps no history. This is what Ward called
/// centered clipping before the centre carried over between rounds; with one iteration
/// it is the mean of the deltas clipped to norm `tau`.
///
/// The output stays within `iterations * tau` of the global model. Unweighted.
/// `weights` reports the last iteration's clipping factors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClippedMean {
    tau: f64,
    iterations: usize,
}

impl ClippedMean {
    /// The clipped mean with radius `tau > 0` and `iterations >= 1`.
    pub fn new(tau: f64, iterations: usize) -> Result<Self, RobustError> {
        check_radius("clipped-mean", Some(tau), iterations)?;
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
        need_updates("clipped-mean", None, "1", 1, n)
    }
}

impl Aggregator for ClippedMean {
    fn name(&self) -> String {
        "clipped-mean".into()
    }

    fn aggregate(&self, updates: &[Update], ctx: &RoundContext<'_>) -> Result<Aggregate, FlError> {
        self.check(updates.len())?;
        let rows = rows(updates, ctx)?;
        let center: Vec<f64> = ctx.global.values().iter().map(|&g| f64::from(g)).collect();
        let (center, factors) = clip_iterate(&rows, center, Some(self.tau), self.iterations);
        Ok(Aggregate {
            params: like(ctx.global, to_f32(&center))?,
            selected: None,
            weights: Some(factors),
        })
    }
}

fn check_radius(rule: &str, tau: Option<f64>, iterations: usize) -> Result<(), RobustError> {
    if let Some(tau) = tau
        && !(tau.is_finite() && tau > 0.0)
    {
        return Err(bad_param(rule, "tau", tau, "must be a number > 0"));
    }
    if iterations == 0 {
        return Err(bad_param(rule, "iterations", 0, "must be >= 1"));
    }
    Ok(())
}

/// The median of `v` (the mean of the two middle values for an even length).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        0.5 * (v[m - 1] + v[m])
    }
}

/// `iterations` steps of `center += (1/n) sum_i c_i (x_i - center)` with
/// `c_i = min(1, tau / ||x_i - center||)`; `tau` `None` is the median distance from the
/// starting centre. Returns the centre and the last step's factors.
fn clip_iterate(
    rows: &[&[f32]],
    mut center: Vec<f64>,
    tau: Option<f64>,
    iterations: usize,
) -> (Vec<f64>, Vec<f64>) {
    let n = rows.len() as f64;
    let mut factors = vec![1.0; rows.len()];
    let mut tau = tau;
    for _ in 0..iterations {
        let dist: Vec<f64> = sq_dists_to(rows, &center)
            .into_iter()
            .map(f64::sqrt)
            .collect();
        let t = *tau.get_or_insert_with(|| median(dist.clone()));
        factors = dist
            .iter()
            .map(|&r| if r > t { t / r } else { 1.0 })
            .collect();
        // centre += (1/n) sum_i c_i (x_i - centre)
        let w: Vec<f64> = factors.iter().map(|c| c / n).collect();
        center.par_chunks_mut(CHUNK).enumerate().for_each(|(c, z)| {
            let start = c * CHUNK;
            let mut acc = vec![0f64; z.len()];
            for (r, &wi) in rows.iter().zip(&w) {
                for ((a, &x), &zk) in acc.iter_mut().zip(&r[start..start + z.len()]).zip(z.iter()) {
                    *a += wi * (f64::from(x) - zk);
                }
            }
            for (zk, a) in z.iter_mut().zip(acc) {
                *zk += a;
            }
        });
    }
    (center, factors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::{assert_close, upds, zeros};
    use ward_core::Params;

    /// By hand, tau = 1, one iteration, global (1, 1), models (1, 1) + (3, 4) and
    /// (1, 1) + (0.5, 0): deltas (3, 4) (norm 5, clipped to (0.6, 0.8)) and (0.5, 0)
    /// (norm 0.5, kept). v = ((0.6, 0.8) + (0.5, 0)) / 2 = (0.55, 0.4);
    /// aggregate = global + v = (1.55, 1.4). Without history both rules agree.
    #[test]
    fn one_iteration_by_hand() {
        let g = Params::from_flat(vec![1., 1.]);
        let u = upds(&[vec![4., 5.], vec![1.5, 1.]]);
        let ctx = RoundContext::new(1, &g);
        let rules: [Box<dyn Aggregator>; 2] = [
            Box::new(ClippedMean::new(1.0, 1).unwrap()),
            Box::new(CenteredClipping::new(Some(1.0), 1).unwrap()),
        ];
        for rule in rules {
            let a = rule.aggregate(&u, &ctx).unwrap();
            assert_close(a.params.values(), &[1.55, 1.4], 1e-7);
            assert_eq!(a.weights, Some(vec![0.2, 1.0]));
        }
    }

    /// Two rounds by hand, tau = 1, one iteration.
    ///
    /// Round 1: global 0, deltas (3, 4) and (0.5, 0): as in `one_iteration_by_hand`,
    /// v = (0.55, 0.4), the aggregate update the federation keeps.
    ///
    /// Round 2: global (1, 1), deltas y1 = (0.55, 2.4) and y2 = (0.85, 0.8).
    /// - Centered clipping starts at v0 = (0.55, 0.4): y1 - v0 = (0, 2) (norm 2,
    ///   clipped to (0, 1)); y2 - v0 = (0.3, 0.4) (norm 0.5, kept).
    ///   v = v0 + ((0, 1) + (0.3, 0.4)) / 2 = (0.7, 1.1); aggregate (1.7, 2.1).
    /// - The clipped mean starts at 0: ||y1|| = sqrt(6.0625) = 2.462214,
    ///   ||y2|| = sqrt(1.3625) = 1.167262; v = (y1/2.462214 + y2/1.167262) / 2
    ///   = ((0.223377, 0.974729) + (0.728200, 0.685365)) / 2 = (0.475789, 0.830047);
    ///   aggregate (1.475789, 1.830047).
    #[test]
    fn two_rounds_by_hand_history_changes_the_result() {
        let cc = CenteredClipping::new(Some(1.0), 1).unwrap();
        let cm = ClippedMean::new(1.0, 1).unwrap();
        let g1 = zeros(2);
        let a1 = cc
            .aggregate(
                &upds(&[vec![3., 4.], vec![0.5, 0.]]),
                &RoundContext::new(1, &g1),
            )
            .unwrap();
        assert_close(a1.params.values(), &[0.55, 0.4], 1e-7);
        let previous = a1.params.sub(&g1).unwrap();

        let g2 = Params::from_flat(vec![1., 1.]);
        let u2 = upds(&[vec![1.55, 3.4], vec![1.85, 1.8]]);
        let ctx2 = RoundContext {
            previous_update: Some(&previous),
            ..RoundContext::new(2, &g2)
        };
        let a2 = cc.aggregate(&u2, &ctx2).unwrap();
        assert_close(a2.params.values(), &[1.7, 2.1], 1e-6);
        assert_eq!(a2.weights.as_deref().map(|w| w[1]), Some(1.0));
        assert_close(&[a2.weights.unwrap()[0] as f32], &[0.5], 1e-7);
        // The clipped mean ignores the history: the same context gives its own answer.
        let m2 = cm.aggregate(&u2, &ctx2).unwrap();
        assert_close(m2.params.values(), &[1.475789, 1.830047], 1e-5);
        // And centered clipping without history is the clipped mean.
        let fresh = cc.aggregate(&u2, &RoundContext::new(2, &g2)).unwrap();
        assert_eq!(fresh.params, m2.params);
    }

    /// tau from the median distance: deltas at distances 1, 2 and 10 from the centre
    /// (0): tau = 2, so only the outlier is clipped (to norm 2):
    /// v = ((1, 0) + (0, 2) + (2, 0)) / 3 = (1, 2/3).
    #[test]
    fn default_tau_is_the_median_distance() {
        let g = zeros(2);
        let u = upds(&[vec![1., 0.], vec![0., 2.], vec![10., 0.]]);
        let a = CenteredClipping::new(None, 1)
            .unwrap()
            .aggregate(&u, &RoundContext::new(1, &g))
            .unwrap();
        assert_close(a.params.values(), &[1.0, 2.0 / 3.0], 1e-6);
        assert_eq!(a.weights, Some(vec![1.0, 1.0, 0.2]));
        assert_eq!(median(vec![3.0, 1.0, 2.0, 10.0]), 2.5);
    }

    /// A previous update of another layout is an error, not a silent misuse.
    #[test]
    fn previous_update_of_another_layout_is_refused() {
        let g = zeros(2);
        let prev = zeros(3);
        let ctx = RoundContext {
            previous_update: Some(&prev),
            ..RoundContext::new(2, &g)
        };
        let e = CenteredClipping::new(None, 1)
            .unwrap()
            .aggregate(&upds(&[vec![1., 0.]]), &ctx);
        assert!(e.is_err());
    }

    /// numpy reference: `rules_numpy.centered_clipping(X, tau=1.0, iters=3)` on
    /// X = 3 * default_rng(11).standard_normal((6, 4), float32), global 0 (see
    /// `crate::reference`; the numpy function starts at 0, i.e. the clipped mean);
    /// numpy accumulates in float32, hence the tolerance.
    #[test]
    fn clipped_mean_matches_numpy_reference() {
        let (x, want) = crate::reference::centered_clipping_case();
        let g = zeros(want.len());
        let a = ClippedMean::new(1.0, 3)
            .unwrap()
            .aggregate(&upds(&x), &RoundContext::new(1, &g))
            .unwrap();
        assert_close(a.params.values(), &want, 1e-5);
    }

    #[test]
    fn hyperparameters_are_checked() {
        assert_eq!(
            CenteredClipping::new(Some(-1.0), 1)
                .unwrap_err()
                .to_string(),
            "centered-clipping: tau = -1: must be a number > 0"
        );
        assert_eq!(
            ClippedMean::new(1.0, 0).unwrap_err().to_string(),
            "clipped-mean: iterations = 0: must be >= 1"
        );
    }
}
