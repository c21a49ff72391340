//! [`SignGuard`] (Xu et al. 2022).

use rand::RngExt;
use ward_core::Update;
use ward_fl::{Aggregate, Aggregator, FlError, RoundContext};

use crate::RobustError;
use crate::cluster::{estimate_bandwidth, global_plus, mean_shift, median, round_rng};
use crate::common::{like, rows, sq_dists_to};
use crate::error::need_updates;

const RULE: &str = "signguard";
const SALT: u64 = 0x5160_0000_0000_0002;
/// Norm filter bounds relative to the median norm (the authors' code).
const LOW: f64 = 0.1;
const HIGH: f64 = 3.0;
/// Share of the coordinates whose signs are counted (the authors' code).
const SHARE: f64 = 0.1;
/// `estimate_bandwidth` quantile and sample size (the authors' code).
const QUANTILE: f64 = 0.5;
const BANDWIDTH_SAMPLES: usize = 50;

/// SignGuard (Xu, Huang, Song & Lan 2022, "SignGuard: Byzantine-robust Federated
/// Learning through Collaborative Malicious Gradient Filtering", ICDCS, Algorithm 1),
/// as the authors' `signguard_multiclass` (github.com/JianXu95/SignGuard), on deltas
/// `g_i = x_i - global`:
///
/// 1. norm filter: with `M` the median of `||g_i||`, keep `0.1 M < ||g_i|| < 3 M`;
/// 2. sign clustering: on a random contiguous block of `max(1, floor(0.1 d))`
///    coordinates, each update's shares of positive, zero and negative signs, each
///    feature divided by its maximum over the updates (+1e-8); mean shift on these
///    features (flat kernel, bin seeding, orphans left out; bandwidth by
///    scikit-learn's `estimate_bandwidth(quantile=0.5, n_samples=50)`; exact
///    implementation in `crate::cluster`, no clustering crate: `n` is the round's
///    updates), and keep the largest cluster;
/// 3. average the updates kept by both, each clipped to norm `M`.
///
/// `selected` holds the indices kept by both filters. Randomness (the coordinate block,
/// and the bandwidth sample when `n > 50`) comes from ChaCha8 seeded with the
/// configured `seed` and the round, so the rule keeps no state and a resumed run draws
/// the same.
///
/// Assumption: `n >= 1`; robustness needs an honest majority (then `M` is an honest
/// norm and no output is longer than `M`). A round where no update passes both
/// filters is an error (the authors' code would average nothing). Unweighted.
///
/// # Shapes
/// - updates: `n` vectors of length `d`; aggregate: `d`; `selected`: `<= n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignGuard {
    seed: u64,
}

impl SignGuard {
    /// SignGuard drawing its coordinate block from `seed` and the round.
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }

    /// Checks `n >= 1`.
    pub fn check(&self, n: usize) -> Result<(), RobustError> {
        need_updates(RULE, None, "1", 1, n)
    }

    fn run(&self, updates: &[Update], ctx: &RoundContext<'_>) -> Result<Aggregate, RobustError> {
        self.check(updates.len())?;
        let rows = rows(updates, ctx)?;
        let n = rows.len();
        let g = ctx.global.values();
        let d = g.len();
        let g64: Vec<f64> = g.iter().map(|&v| f64::from(v)).collect();
        let norms: Vec<f64> = sq_dists_to(&rows, &g64).iter().map(|v| v.sqrt()).collect();
        let m = median(&norms);
        let by_norm: Vec<bool> = norms.iter().map(|&v| v > LOW * m && v < HIGH * m).collect();
        let mut rng = round_rng(self.seed, ctx.round, SALT);
        let b = ((SHARE * d as f64) as usize).clamp(1, d.max(1));
        let start = rng.random_range(0..=d - b);
        let mut feats: Vec<Vec<f64>> = rows
            .iter()
            .map(|r| {
                let (mut pos, mut zero, mut neg) = (0usize, 0usize, 0usize);
                for (&x, &gk) in r[start..start + b].iter().zip(&g[start..start + b]) {
                    let v = f64::from(x) - f64::from(gk);
                    if v > 0.0 {
                        pos += 1;
                    } else if v < 0.0 {
                        neg += 1;
                    } else {
                        zero += 1;
                    }
                }
                [pos, zero, neg]
                    .iter()
                    .map(|&c| c as f64 / b as f64)
                    .collect()
            })
            .collect();
        for k in 0..3 {
            let max = feats.iter().map(|f| f[k]).fold(f64::NEG_INFINITY, f64::max);
            for f in &mut feats {
                f[k] /= max + 1e-8;
            }
        }
        let bandwidth = if n <= BANDWIDTH_SAMPLES {
            estimate_bandwidth(&feats, QUANTILE)
        } else {
            let idx = rand::seq::index::sample(&mut rng, n, BANDWIDTH_SAMPLES);
            let sample: Vec<Vec<f64>> = idx.iter().map(|i| feats[i].clone()).collect();
            estimate_bandwidth(&sample, QUANTILE)
        };
        let labels = mean_shift(&feats, bandwidth);
        let clusters = labels.iter().flatten().max().map_or(0, |&l| l + 1);
        let counts: Vec<usize> = (0..clusters)
            .map(|c| labels.iter().filter(|&&l| l == Some(c)).count())
            .collect();
        // np.argmax: the first (strongest) of the largest clusters.
        let largest = counts
            .iter()
            .enumerate()
            .fold(None, |best: Option<(usize, usize)>, (c, &k)| match best {
                Some((_, bk)) if bk >= k => best,
                _ => Some((c, k)),
            })
            .map(|(c, _)| c);
        let chosen: Vec<usize> = (0..n)
            .filter(|&i| by_norm[i] && largest.is_some() && labels[i] == largest)
            .collect();
        if chosen.is_empty() {
            return Err(RobustError::Unusable {
                rule: RULE.into(),
                reason: format!(
                    "no update passes both filters (norm within (0.1, 3) x the median {m:.4e}: \
                     {} of {n}; in the largest sign cluster: {})",
                    by_norm.iter().filter(|&&k| k).count(),
                    largest.map_or(0, |c| counts[c])
                ),
            });
        }
        let mut a = vec![0f64; n];
        for &i in &chosen {
            let clip = if norms[i] > m && norms[i] > 0.0 {
                m / norms[i]
            } else {
                1.0
            };
            a[i] = clip / chosen.len() as f64;
        }
        Ok(Aggregate {
            params: like(ctx.global, global_plus(&rows, g, &a))?,
            selected: Some(chosen),
            weights: None,
        })
    }
}

impl Aggregator for SignGuard {
    fn name(&self) -> String {
        RULE.into()
    }

    fn aggregate(&self, updates: &[Update], ctx: &RoundContext<'_>) -> Result<Aggregate, FlError> {
        Ok(self.run(updates, ctx)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::{assert_close, upds, zeros};

    /// By hand, d = 10 (the sign block is 1 coordinate), global 0. Six honest updates
    /// with every coordinate +1 except one at +2 (norms sqrt(13) = 3.606), one update at
    /// 20 x that (norm 72.1, above 3 M) and one sign-flipped honest update (norm 3.606,
    /// all signs negative). Median norm M = 3.606. Sign features: six (1, 0, 0)-like
    /// rows and the flipped one at (0, 0, 1) (the scaled one is (1, 0, 0) too) -> the
    /// largest mean-shift cluster is the seven positive rows; the norm filter drops the
    /// scaled one. Kept: the six honest ones, none clipped (norm = M): their mean.
    #[test]
    fn signguard_by_hand() {
        let honest: Vec<Vec<f32>> = (0..6)
            .map(|i| (0..10).map(|k| if k == i { 2.0 } else { 1.0 }).collect())
            .collect();
        let mut x = honest.clone();
        x.push(honest[0].iter().map(|v| 20.0 * v).collect());
        x.push(honest[1].iter().map(|v| -v).collect());
        let g = zeros(10);
        let a = SignGuard::new(3)
            .aggregate(&upds(&x), &RoundContext::new(1, &g))
            .unwrap();
        assert_eq!(a.selected, Some(vec![0, 1, 2, 3, 4, 5]));
        let want: Vec<f32> = (0..10)
            .map(|k| if k < 6 { 7.0 / 6.0 } else { 1.0 })
            .collect();
        assert_close(a.params.values(), &want, 1e-6);
    }

    /// Clipping: a kept update longer than the median norm is scaled down to it.
    /// Three 1-D updates 1, 2, 2.5 (d = 1, all positive): M = 2, all pass the norm
    /// filter (0.2 < |g| < 6) and share one sign cluster; 2.5 is clipped to 2, so the
    /// aggregate is (1 + 2 + 2) / 3.
    #[test]
    fn signguard_clips_to_the_median_norm() {
        let g = zeros(1);
        let a = SignGuard::new(0)
            .aggregate(
                &upds(&[vec![1.], vec![2.], vec![2.5]]),
                &RoundContext::new(1, &g),
            )
            .unwrap();
        assert_eq!(a.selected, Some(vec![0, 1, 2]));
        assert_close(a.params.values(), &[5.0 / 3.0], 1e-6);
    }

    #[test]
    fn nothing_kept_is_an_error() {
        // Every delta zero: the median norm is 0 and no norm lies strictly above
        // 0.1 x 0, so the norm filter keeps nothing.
        let g = zeros(2);
        let err = SignGuard::new(0)
            .aggregate(
                &upds(&[vec![0., 0.], vec![0., 0.]]),
                &RoundContext::new(1, &g),
            )
            .unwrap_err();
        assert!(
            err.to_string().contains("no update passes both filters"),
            "{err}"
        );
    }
}
