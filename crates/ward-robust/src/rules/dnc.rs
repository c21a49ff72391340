//! [`Dnc`]: Divide-and-Conquer (Shejwalkar & Houmansadr 2021).

use ward_core::Update;
use ward_fl::{Aggregate, Aggregator, FlError, RoundContext};

use crate::RobustError;
use crate::cluster::{gram, round_rng, top_eigen};
use crate::common::{like, mean_of, rows};
use crate::error::{bad_param, need_updates};

const RULE: &str = "dnc";
const SALT: u64 = 0xD1C0_0000_0000_0001;

/// Divide-and-Conquer (Shejwalkar & Houmansadr 2021, "Manipulating the Byzantine:
/// Optimizing Model Poisoning Attacks and Defenses for Federated Learning", NDSS,
/// Algorithm 2). For each of `niters` iterations:
///
/// 1. draw `b` of the `d` coordinates at random (all of them when `b >= d`);
/// 2. centre the subsampled updates on their mean `mu`;
/// 3. take the top right singular vector `v` of the centred `n x b` matrix;
/// 4. score each update `s_i = ((x_i - mu) . v)^2`;
/// 5. keep the `n - floor(c f)` lowest scores;
///
/// then aggregate the mean of the updates kept in every iteration (the intersection).
/// `v` comes from the top eigenvector `u` of the `n x n` Gram matrix `C C^T` (Jacobi),
/// since `C v = sigma u`: the scores are `sigma^2 u_i^2`, without a `b x b` matrix.
///
/// Defaults `b = 10000`, `c = 1.0`, `niters = 1` (the Blades benchmark's
/// implementation; the paper's Algorithm 2 leaves them as inputs).
///
/// Randomness: the coordinate subsets come from ChaCha8 seeded with the configured
/// `seed` and the round number, so the rule keeps no state and a resumed run draws
/// the same subsets. The draw does not depend on the order of the updates.
///
/// Breakdown assumption: an honest majority, `n >= 2f+1` (the spectral filter finds the
/// direction the Byzantine updates push along only when they are a minority), which
/// also keeps `n - floor(c f) >= 1` for `c <= 1`. With `f = 0` it is the plain mean.
/// `selected` holds the kept indices. Unweighted. Memory O(n^2 + n b).
///
/// # Shapes
/// - updates: `n` vectors of length `d`; aggregate: `d`; `selected`: `<= n - floor(c f)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dnc {
    f: usize,
    b: usize,
    c: f64,
    niters: usize,
    seed: u64,
}

impl Dnc {
    /// DnC tolerating `f` Byzantine updates, subsample dimension `b >= 1`, filtering
    /// fraction `c` in `[0, n/f)` (checked per round), `niters >= 1` iterations, coordinate
    /// draws seeded by `seed`.
    pub fn new(f: usize, b: usize, c: f64, niters: usize, seed: u64) -> Result<Self, RobustError> {
        if b == 0 {
            return Err(bad_param(RULE, "b", b, "must be >= 1"));
        }
        if !(c.is_finite() && c >= 0.0) {
            return Err(bad_param(RULE, "c", c, "must be a number >= 0"));
        }
        if niters == 0 {
            return Err(bad_param(RULE, "iterations", niters, "must be >= 1"));
        }
        Ok(Self {
            f,
            b,
            c,
            niters,
            seed,
        })
    }

    /// DnC with the defaults `b = 10000`, `c = 1.0`, `niters = 1`.
    pub fn with_defaults(f: usize, seed: u64) -> Self {
        Self {
            f,
            b: 10_000,
            c: 1.0,
            niters: 1,
            seed,
        }
    }

    /// The updates removed per iteration, `floor(c f)`.
    pub fn removed(&self) -> usize {
        (self.c * self.f as f64).floor() as usize
    }

    /// Checks `n >= 2f+1` and `n - floor(c f) >= 1`.
    pub fn check(&self, n: usize) -> Result<(), RobustError> {
        need_updates(RULE, Some(self.f), "2f+1", 2 * self.f + 1, n)?;
        if self.removed() >= n {
            return Err(bad_param(
                RULE,
                "c",
                self.c,
                format!(
                    "removes floor(c f) = {} of {n} updates: nothing would be left",
                    self.removed()
                ),
            ));
        }
        Ok(())
    }

    fn run(&self, updates: &[Update], ctx: &RoundContext<'_>) -> Result<Aggregate, RobustError> {
        self.check(updates.len())?;
        let rows = rows(updates, ctx)?;
        let n = rows.len();
        let d = ctx.global.len();
        let keep = n - self.removed();
        let mut rng = round_rng(self.seed, ctx.round, SALT);
        let mut good = vec![true; n];
        for _ in 0..self.niters {
            let sub: Vec<Vec<f32>> = if self.b >= d {
                rows.iter().map(|r| r.to_vec()).collect()
            } else {
                let mut idx = rand::seq::index::sample(&mut rng, d, self.b).into_vec();
                idx.sort_unstable();
                rows.iter()
                    .map(|r| idx.iter().map(|&k| r[k]).collect())
                    .collect()
            };
            let sub_rows: Vec<&[f32]> = sub.iter().map(Vec::as_slice).collect();
            let bdim = sub_rows[0].len();
            let mu: Vec<f32> = (0..bdim)
                .map(|k| (sub_rows.iter().map(|r| f64::from(r[k])).sum::<f64>() / n as f64) as f32)
                .collect();
            let g = gram(&sub_rows, Some(&mu));
            let (sigma2, u) = top_eigen(&g, n);
            let scores: Vec<f64> = u.iter().map(|ui| sigma2.max(0.0) * ui * ui).collect();
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
            let mut kept = vec![false; n];
            for &i in &order[..keep] {
                kept[i] = true;
            }
            for (g, k) in good.iter_mut().zip(kept) {
                *g &= k;
            }
        }
        let chosen: Vec<usize> = (0..n).filter(|&i| good[i]).collect();
        if chosen.is_empty() {
            return Err(RobustError::Unusable {
                rule: RULE.into(),
                reason: format!(
                    "no update was kept in all {} iterations (the intersection is empty)",
                    self.niters
                ),
            });
        }
        Ok(Aggregate {
            params: like(ctx.global, mean_of(&rows, &chosen))?,
            selected: Some(chosen),
            weights: None,
        })
    }
}

impl Aggregator for Dnc {
    fn name(&self) -> String {
        RULE.into()
    }

    fn min_updates(&self) -> usize {
        (2 * self.f + 1).max(self.removed() + 1)
    }

    fn aggregate(&self, updates: &[Update], ctx: &RoundContext<'_>) -> Result<Aggregate, FlError> {
        Ok(self.run(updates, ctx)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::{assert_close, upds, zeros};

    /// By hand, f = 1, all coordinates (b >= d), rows (0, 0), (1, 0), (-1, 0), (0, 10):
    /// mean (0, 2.5); centred (0, -2.5), (1, -2.5), (-1, -2.5), (0, 7.5). The top right
    /// singular vector is (0, 1) (column variances: x 2, y 75, no covariance), so the
    /// scores are 6.25, 6.25, 6.25, 56.25: the last row is dropped and the aggregate is
    /// the mean of the first three, (0, 0).
    #[test]
    fn dnc_by_hand() {
        let g = zeros(2);
        let u = upds(&[vec![0., 0.], vec![1., 0.], vec![-1., 0.], vec![0., 10.]]);
        let a = Dnc::with_defaults(1, 0)
            .aggregate(&u, &RoundContext::new(1, &g))
            .unwrap();
        assert_eq!(a.selected, Some(vec![0, 1, 2]));
        assert_close(a.params.values(), &[0.0, 0.0], 1e-7);
    }

    /// numpy reference (numpy 2.4.6, `np.linalg.svd`): X = rng(3).standard_normal((7, 5))
    /// with row 2 replaced by 4 * ones; f = 2, c = 1, all coordinates.
    /// `s = ((X - X.mean(0)) @ Vt[0])**2` = [0.1209, 0.2194, 61.1365, 3.3605, 8.4536,
    /// 4.7682, 0.0062]: the two largest are rows 2 and 4, the rest are kept.
    #[test]
    fn dnc_matches_numpy_svd_scores() {
        let (x, keep) = crate::reference::dnc_case();
        let g = zeros(x[0].len());
        let a = Dnc::new(2, 100, 1.0, 1, 0)
            .unwrap()
            .aggregate(&upds(&x), &RoundContext::new(1, &g))
            .unwrap();
        assert_eq!(a.selected, Some(keep.clone()));
        let want = mean_of(&x.iter().map(Vec::as_slice).collect::<Vec<_>>(), &keep);
        assert_close(a.params.values(), &want, 1e-6);
    }

    #[test]
    fn subsets_depend_on_seed_and_round_only() {
        // 3 of 50 coordinates; a large outlier in coordinate 7 only is seen or not
        // depending on the draw, but the same (seed, round) gives the same result.
        let mut x: Vec<Vec<f32>> = (0..7)
            .map(|i| (0..50).map(|k| ((i * 7 + k) % 5) as f32 * 0.1).collect())
            .collect();
        x[3][7] = 100.0;
        let g = zeros(50);
        let rule = Dnc::new(1, 3, 1.0, 2, 42).unwrap();
        let a = rule
            .aggregate(&upds(&x), &RoundContext::new(4, &g))
            .unwrap();
        let b = rule
            .aggregate(&upds(&x), &RoundContext::new(4, &g))
            .unwrap();
        assert_eq!(a, b);
        // Over many rounds, some draw sees coordinate 7 and drops row 3, and some draw
        // does not (it then drops another row): the subsets really change by round.
        let dropped3 = (1..40)
            .filter(|&r| {
                let a = rule
                    .aggregate(&upds(&x), &RoundContext::new(r, &g))
                    .unwrap();
                !a.selected.unwrap().contains(&3)
            })
            .count();
        assert!(dropped3 > 0 && dropped3 < 39, "{dropped3}");
    }

    #[test]
    fn assumptions_and_hyperparameters_are_enforced() {
        let r = Dnc::with_defaults(2, 0);
        assert_eq!(r.min_updates(), 5);
        assert_eq!(
            r.check(4).unwrap_err().to_string(),
            "dnc with f = 2 needs n >= 2f+1 = 5 updates, got 4"
        );
        assert_eq!(
            Dnc::new(1, 0, 1.0, 1, 0).unwrap_err().to_string(),
            "dnc: b = 0: must be >= 1"
        );
        assert_eq!(
            Dnc::new(1, 5, -1.0, 1, 0).unwrap_err().to_string(),
            "dnc: c = -1: must be a number >= 0"
        );
        assert_eq!(
            Dnc::new(1, 5, 3.0, 1, 0)
                .unwrap()
                .check(3)
                .unwrap_err()
                .to_string(),
            "dnc: c = 3: removes floor(c f) = 3 of 3 updates: nothing would be left"
        );
    }
}
