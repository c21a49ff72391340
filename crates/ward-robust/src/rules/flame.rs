//! [`Flame`] (Nguyen et al. 2022).

use rand_distr::{Distribution, Normal};
use ward_core::Update;
use ward_fl::{Aggregate, Aggregator, FlError, RoundContext};

use crate::RobustError;
use crate::cluster::{cosine_distances, global_plus, gram, hdbscan_majority, median, round_rng};
use crate::common::{like, rows, sq_dists_to};
use crate::error::{bad_param, need_updates};

const RULE: &str = "flame";
const SALT: u64 = 0xF1A3_0000_0000_0003;

/// FLAME (Nguyen et al. 2022, "FLAME: Taming Backdoors in Federated Learning", USENIX
/// Security, Algorithm 1):
///
/// 1. cluster the local models `W_i` by HDBSCAN on the cosine distances `1 - cos(W_i,
///    W_j)` with minimum cluster size `n/2 + 1` (integer division); the cluster is
///    admitted, the rest (noise) is not. `min_samples = 1` and
///    `allow_single_cluster = True`, which the paper does not state, as the common
///    reimplementations with the `hdbscan` package; exact implementation in
///    `crate::cluster::hdbscan_majority` (checked against scikit-learn's HDBSCAN);
/// 2. `S` = the median of the Euclidean distances `e_i = ||W_i - G||` of all `n` models
///    to the global model `G`;
/// 3. each admitted model clipped to distance `S`: `G + (W_i - G) min(1, S / e_i)`;
/// 4. their mean plus Gaussian noise of standard deviation `lambda S` on every
///    coordinate (default `lambda = 0.001`, the paper's value for its image and
///    word-prediction tasks; `lambda = 0` adds none).
///
/// Randomness: the noise comes from ChaCha8 seeded with the configured `seed` and the
/// round, so the rule keeps no state and a resumed run adds the same noise.
///
/// Assumption: `n >= 2`; the cluster always holds a majority, so with fewer than `n/2`
/// Byzantine updates some honest ones are admitted and `S` is an honest distance: the
/// output stays within `S` (plus the noise) of the global model. `selected` holds the
/// admitted indices. Unweighted. Memory O(n^2 + d).
///
/// # Shapes
/// - updates: `n` vectors of length `d`; aggregate: `d`; `selected`: `> n/2` indices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Flame {
    lambda: f64,
    seed: u64,
}

impl Flame {
    /// FLAME with noise level `lambda >= 0` (0.001 in the paper), noise seeded by `seed`.
    pub fn new(lambda: f64, seed: u64) -> Result<Self, RobustError> {
        if !(lambda.is_finite() && lambda >= 0.0) {
            return Err(bad_param(RULE, "lambda", lambda, "must be a number >= 0"));
        }
        Ok(Self { lambda, seed })
    }

    /// The noise level.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    /// Checks `n >= 2`.
    pub fn check(&self, n: usize) -> Result<(), RobustError> {
        need_updates(RULE, None, "2", 2, n)
    }

    fn run(&self, updates: &[Update], ctx: &RoundContext<'_>) -> Result<Aggregate, RobustError> {
        self.check(updates.len())?;
        let rows = rows(updates, ctx)?;
        let n = rows.len();
        let g = ctx.global.values();
        let dist = cosine_distances(&gram(&rows, None), n);
        let admitted = hdbscan_majority(&dist, n, n / 2 + 1);
        let g64: Vec<f64> = g.iter().map(|&v| f64::from(v)).collect();
        let e: Vec<f64> = sq_dists_to(&rows, &g64).iter().map(|v| v.sqrt()).collect();
        let s = median(&e);
        let mut w = vec![0f64; n];
        for &i in &admitted {
            let clip = if e[i] > s && e[i] > 0.0 {
                s / e[i]
            } else {
                1.0
            };
            w[i] = clip / admitted.len() as f64;
        }
        let mut values = global_plus(&rows, g, &w);
        let sigma = self.lambda * s;
        if sigma > 0.0 {
            let normal = Normal::new(0.0, sigma).map_err(|e| RobustError::Unusable {
                rule: RULE.into(),
                reason: format!("noise std lambda * S = {sigma}: {e}"),
            })?;
            let mut rng = round_rng(self.seed, ctx.round, SALT);
            for v in &mut values {
                *v = (f64::from(*v) + normal.sample(&mut rng)) as f32;
            }
        }
        Ok(Aggregate {
            params: like(ctx.global, values)?,
            selected: Some(admitted),
            weights: None,
        })
    }
}

impl Aggregator for Flame {
    fn name(&self) -> String {
        RULE.into()
    }

    fn min_updates(&self) -> usize {
        2
    }

    fn aggregate(&self, updates: &[Update], ctx: &RoundContext<'_>) -> Result<Aggregate, FlError> {
        Ok(self.run(updates, ctx)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::{assert_close, upds, zeros};

    /// By hand, global 0, lambda 0: four models near +x, (1, 0), (1, 0.1), (2, 0.1),
    /// (1, -0.1), and one backdoor-like model along +y, (0, 3). n = 5, min cluster size
    /// 3. Cosine distances: d01 = 0.0050, d02 = 0.00125, d03 = 0.0050, d12 = 0.00125,
    /// d13 = 0.0198, d23 = 0.0112, to (0, 3) at least 0.90. Core distances (nearest
    /// other) 0.00125, 0.00125, 0.00125, 0.0050, 0.9005. The single-linkage tree of the
    /// mutual reachabilities sheds {4} at 0.9005, then {3} at 0.0050 (the rest, 3 points,
    /// is still a cluster), then {0, 1, 2} splits at 0.00125 into pieces below 3: those
    /// three leave last and are the cluster (scikit-learn 1.9.1's HDBSCAN gives labels
    /// [0, 0, 0, -1, -1] too). Distances to G: 1, 1.005, 2.0025, 1.005, 3: median S =
    /// sqrt(1.01). (2, 0.1) is clipped by c = S / sqrt(4.01); the mean of the three is
    /// ((2 + 2c) / 3, 0.1 (1 + c) / 3).
    #[test]
    fn flame_by_hand() {
        let g = zeros(2);
        let x = [
            vec![1., 0.],
            vec![1., 0.1],
            vec![2., 0.1],
            vec![1., -0.1],
            vec![0., 3.],
        ];
        let a = Flame::new(0.0, 0)
            .unwrap()
            .aggregate(&upds(&x), &RoundContext::new(1, &g))
            .unwrap();
        assert_eq!(a.selected, Some(vec![0, 1, 2]));
        let c = 1.01f64.sqrt() / 4.01f64.sqrt();
        let want = [(2.0 + 2.0 * c) / 3.0, 0.1 * (1.0 + c) / 3.0];
        assert_close(a.params.values(), &[want[0] as f32, want[1] as f32], 1e-6);
    }

    /// scikit-learn 1.9.1 reference: `HDBSCAN(min_cluster_size=n//2+1, min_samples=2,
    /// metric="precomputed", allow_single_cluster=True)` (scikit-learn counts the point
    /// itself in `min_samples`, so 2 there is the `hdbscan` package's 1) on the cosine
    /// distances of the cases in `crate::reference::flame_cases`.
    #[test]
    fn admitted_sets_match_scikit_learn_hdbscan() {
        for (x, want) in crate::reference::flame_cases() {
            let g = zeros(x[0].len());
            let a = Flame::new(0.0, 0)
                .unwrap()
                .aggregate(&upds(&x), &RoundContext::new(1, &g))
                .unwrap();
            assert_eq!(a.selected, Some(want));
        }
    }

    /// The noise: std lambda * S per coordinate, the same for the same (seed, round),
    /// different for another round. Eight copies of (3, 4, 0, ...) (d = 2000): S = 5,
    /// lambda = 0.01 -> std 0.05 around the copy.
    #[test]
    fn noise_has_std_lambda_s_and_follows_seed_and_round() {
        let d = 2000;
        let mut v = vec![0.0f32; d];
        v[0] = 3.0;
        v[1] = 4.0;
        let x = vec![v.clone(); 8];
        let g = zeros(d);
        let rule = Flame::new(0.01, 7).unwrap();
        let a = rule
            .aggregate(&upds(&x), &RoundContext::new(2, &g))
            .unwrap();
        let b = rule
            .aggregate(&upds(&x), &RoundContext::new(2, &g))
            .unwrap();
        let c = rule
            .aggregate(&upds(&x), &RoundContext::new(3, &g))
            .unwrap();
        assert_eq!(a, b);
        assert_ne!(a.params, c.params);
        let noise: Vec<f64> = a
            .params
            .values()
            .iter()
            .zip(&v)
            .map(|(&y, &x)| f64::from(y) - f64::from(x))
            .collect();
        let mean = noise.iter().sum::<f64>() / d as f64;
        let sd = (noise.iter().map(|z| (z - mean).powi(2)).sum::<f64>() / d as f64).sqrt();
        // sd of a sample of 2000: within 10 % of 0.05 with overwhelming probability.
        assert!(
            (sd - 0.05).abs() < 0.005 && mean.abs() < 0.005,
            "{mean} {sd}"
        );
        assert_eq!(
            Flame::new(-1.0, 0).unwrap_err().to_string(),
            "flame: lambda = -1: must be a number >= 0"
        );
    }
}
