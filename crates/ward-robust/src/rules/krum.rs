//! [`Krum`] and [`MultiKrum`] (Blanchard et al. 2017).

use ward_core::Update;
use ward_fl::{Aggregate, Aggregator, FlError, RoundContext};

use crate::RobustError;
use crate::common::{like, mean_of, rows};
use crate::distance::pairwise_sq_dists;
use crate::error::{bad_param, need_updates};

/// Krum scores of the vectors `idx` (a subset of the `n` rows of the distance matrix
/// `dist`): for each, the sum of the squared distances to its `k = n' - f - 2` nearest
/// others within the subset (`n' = idx.len()`; `k` at least 1 and at most `n' - 1`, as
/// `rules_numpy.krum_scores`).
///
/// # Shapes
/// - `dist`: `n x n` row-major; `idx`: `n'` distinct indices; returns `n'` scores.
pub(crate) fn krum_scores(dist: &[f64], n: usize, idx: &[usize], f: usize) -> Vec<f64> {
    let np = idx.len();
    let k = np.saturating_sub(f + 2).max(1).min(np.saturating_sub(1));
    let mut others = Vec::with_capacity(np);
    idx.iter()
        .map(|&a| {
            others.clear();
            others.extend(idx.iter().filter(|&&b| b != a).map(|&b| dist[a * n + b]));
            if k == 0 {
                return 0.0;
            }
            others.select_nth_unstable_by(k - 1, f64::total_cmp);
            others[..k].iter().sum()
        })
        .collect()
}

/// Orders the candidates `idx` (with their Krum `scores`) best first: lower score; on an
/// exact tie (which Bulyan's late steps produce whenever `k = 1`, since two mutual
/// nearest neighbours score the same) the smaller summed distance to all of `idx` (the
/// more central), then the lexicographically smaller vector, then the lower index. So
/// the choice depends on the vectors, not on their order (`rules_numpy` takes the first
/// index instead; the two differ only on exact ties).
pub(crate) fn krum_cmp<'a>(
    scores: &'a [f64],
    dist: &'a [f64],
    n: usize,
    idx: &'a [usize],
    rows: &'a [&[f32]],
) -> impl Fn(usize, usize) -> std::cmp::Ordering + 'a {
    move |a, b| {
        scores[a].total_cmp(&scores[b]).then_with(|| {
            let total = |p: usize| idx.iter().map(|&q| dist[idx[p] * n + q]).sum::<f64>();
            total(a)
                .total_cmp(&total(b))
                .then_with(|| {
                    let (x, y) = (rows[idx[a]], rows[idx[b]]);
                    x.iter()
                        .zip(y.iter())
                        .map(|(u, v)| u.total_cmp(v))
                        .find(|o| o.is_ne())
                        .unwrap_or(std::cmp::Ordering::Equal)
                })
                .then(idx[a].cmp(&idx[b]))
        })
    }
}

/// The position in `idx` of the best Krum candidate (see [`krum_cmp`]).
pub(crate) fn krum_best(dist: &[f64], n: usize, idx: &[usize], f: usize, rows: &[&[f32]]) -> usize {
    let scores = krum_scores(dist, n, idx, f);
    let cmp = krum_cmp(&scores, dist, n, idx, rows);
    (0..idx.len()).min_by(|&a, &b| cmp(a, b)).unwrap_or(0)
}

/// Krum (Blanchard et al. 2017): the update whose summed squared distance to its
/// `n - f - 2` nearest neighbours is smallest.
///
/// Breakdown assumption: `n >= 2f+3` (Blanchard et al., Proposition 1, need
/// `2f + 2 < n`). The aggregate is one of the updates, so with at most `f` Byzantine
/// updates it stays within a bounded distance of the honest ones; `selected` holds its
/// index. Unweighted: `num_examples` is ignored. Exact ties in score go to the more
/// central vector (see `krum_cmp`), so the choice does not depend on the order.
///
/// Computes the `n x n` distance matrix once (parallel, `f64` accumulation); memory
/// O(n^2 + d).
///
/// # Shapes
/// - updates: `n` vectors of length `d`; aggregate: `d`; `selected`: 1 index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Krum {
    f: usize,
}

impl Krum {
    /// Krum tolerating `f` Byzantine updates.
    pub fn new(f: usize) -> Self {
        Self { f }
    }

    /// The number of Byzantine updates tolerated.
    pub fn f(&self) -> usize {
        self.f
    }

    /// Checks the breakdown assumption `n >= 2f+3`.
    pub fn check(&self, n: usize) -> Result<(), RobustError> {
        need_updates("krum", Some(self.f), "2f+3", 2 * self.f + 3, n)
    }
}

impl Aggregator for Krum {
    fn name(&self) -> String {
        "krum".into()
    }

    fn min_updates(&self) -> usize {
        2 * self.f + 3
    }

    fn aggregate(&self, updates: &[Update], ctx: &RoundContext<'_>) -> Result<Aggregate, FlError> {
        self.check(updates.len())?;
        let rows = rows(updates, ctx)?;
        let n = rows.len();
        let dist = pairwise_sq_dists(&rows);
        let all: Vec<usize> = (0..n).collect();
        let best = krum_best(&dist, n, &all, self.f, &rows);
        Ok(Aggregate {
            params: like(ctx.global, rows[best].to_vec())?,
            selected: Some(vec![best]),
            weights: None,
        })
    }
}

/// Multi-Krum (Blanchard et al. 2017; El Mhamdi et al. 2018): the mean of the `m`
/// updates with the lowest Krum scores (default `m = n - f`).
///
/// Breakdown assumption: `n >= 2f+3`, and `1 <= m <= n - f`. With `f = 0` and `m = n`
/// it is the plain mean. `selected` holds the `m` indices, ascending. Unweighted:
/// `num_examples` is ignored. Exact ties in score are broken as in [`Krum`].
///
/// # Shapes
/// - updates: `n` vectors of length `d`; aggregate: `d`; `selected`: `m` indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultiKrum {
    f: usize,
    m: Option<usize>,
}

impl MultiKrum {
    /// Multi-Krum tolerating `f`, averaging `m` updates (`None`: `n - f`). Refuses
    /// `m = 0`; `m > n - f` is refused when the round's `n` is known.
    pub fn new(f: usize, m: Option<usize>) -> Result<Self, RobustError> {
        if m == Some(0) {
            return Err(bad_param("multi-krum", "m", 0, "must be >= 1"));
        }
        Ok(Self { f, m })
    }

    /// The number of Byzantine updates tolerated.
    pub fn f(&self) -> usize {
        self.f
    }

    /// The number of updates averaged for `n` updates.
    pub fn m_for(&self, n: usize) -> usize {
        self.m.unwrap_or(n.saturating_sub(self.f))
    }

    /// Checks `n >= 2f+3` and `m <= n - f`.
    pub fn check(&self, n: usize) -> Result<(), RobustError> {
        need_updates("multi-krum", Some(self.f), "2f+3", 2 * self.f + 3, n)?;
        let m = self.m_for(n);
        if m > n - self.f {
            return Err(bad_param(
                "multi-krum",
                "m",
                m,
                format!(
                    "must be <= n - f = {} with n = {n} updates and f = {}",
                    n - self.f,
                    self.f
                ),
            ));
        }
        Ok(())
    }
}

impl Aggregator for MultiKrum {
    fn name(&self) -> String {
        "multi-krum".into()
    }

    fn min_updates(&self) -> usize {
        (2 * self.f + 3).max(self.m.map_or(0, |m| m + self.f))
    }

    fn aggregate(&self, updates: &[Update], ctx: &RoundContext<'_>) -> Result<Aggregate, FlError> {
        self.check(updates.len())?;
        let rows = rows(updates, ctx)?;
        let n = rows.len();
        let dist = pairwise_sq_dists(&rows);
        let all: Vec<usize> = (0..n).collect();
        let scores = krum_scores(&dist, n, &all, self.f);
        let mut order = all.clone();
        let cmp = krum_cmp(&scores, &dist, n, &all, &rows);
        order.sort_by(|&a, &b| cmp(a, b));
        let mut chosen = order[..self.m_for(n)].to_vec();
        chosen.sort_unstable();
        Ok(Aggregate {
            params: like(ctx.global, mean_of(&rows, &chosen))?,
            selected: Some(chosen),
            weights: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::{assert_close, upds, zeros};

    /// By hand, f = 1, n = 5 (k = n - f - 2 = 2 nearest), 1-D values 0, 1, 2, 3, 10:
    /// squared distances from 0: 1, 4, 9, 100 -> score 1 + 4 = 5;
    /// from 1: 1, 1, 4, 81 -> 2; from 2: 4, 1, 1, 64 -> 2; from 3: 9, 4, 1, 49 -> 5;
    /// from 10: 100, 81, 64, 49 -> 113. Minimum 2, tied by 1 and 2; summed distances
    /// to all: 1 -> 1+1+4+81 = 87, 2 -> 4+1+1+64 = 70, so 2 (the more central) wins.
    #[test]
    fn krum_by_hand() {
        let g = zeros(1);
        let u = upds(&[vec![0.], vec![1.], vec![2.], vec![3.], vec![10.]]);
        let a = Krum::new(1)
            .aggregate(&u, &RoundContext::new(1, &g))
            .unwrap();
        assert_eq!(a.params.values(), &[2.0]);
        assert_eq!(a.selected, Some(vec![2]));
        // Multi-Krum, default m = n - f = 4: the four lowest scores are indices 1, 2
        // (2 each), 0 and 3 (5 each) -> mean (0 + 1 + 2 + 3) / 4 = 1.5.
        let a = MultiKrum::new(1, None)
            .unwrap()
            .aggregate(&u, &RoundContext::new(1, &g))
            .unwrap();
        assert_eq!(a.params.values(), &[1.5]);
        assert_eq!(a.selected, Some(vec![0, 1, 2, 3]));
    }

    /// numpy reference: `rules_numpy.krum(X, f=1)` on
    /// X = default_rng(7).standard_normal((7, 4), float32) (see `crate::reference`).
    #[test]
    fn krum_matches_numpy_reference() {
        let (x, want, idx) = crate::reference::krum_case();
        let g = zeros(want.len());
        let a = Krum::new(1)
            .aggregate(&upds(&x), &RoundContext::new(1, &g))
            .unwrap();
        assert_eq!(a.params.values(), &want[..]);
        assert_eq!(a.selected, Some(vec![idx]));
    }

    /// numpy reference: `rules_numpy.multi_krum(X, f=1, m=4)` on
    /// X = default_rng(8).standard_normal((7, 4), float32) (see `crate::reference`).
    #[test]
    fn multi_krum_matches_numpy_reference() {
        let (x, want, idx) = crate::reference::multi_krum_case();
        let g = zeros(want.len());
        let a = MultiKrum::new(1, Some(4))
            .unwrap()
            .aggregate(&upds(&x), &RoundContext::new(1, &g))
            .unwrap();
        assert_close(a.params.values(), &want, 1e-6);
        assert_eq!(a.selected, Some(idx));
    }

    #[test]
    fn assumptions_and_hyperparameters_are_enforced() {
        assert_eq!(Krum::new(2).min_updates(), 7);
        assert_eq!(
            Krum::new(2).check(6).unwrap_err().to_string(),
            "krum with f = 2 needs n >= 2f+3 = 7 updates, got 6"
        );
        assert_eq!(
            MultiKrum::new(1, Some(0)).unwrap_err().to_string(),
            "multi-krum: m = 0: must be >= 1"
        );
        let mk = MultiKrum::new(1, Some(5)).unwrap();
        assert_eq!(mk.min_updates(), 6);
        assert_eq!(
            mk.check(5).unwrap_err().to_string(),
            "multi-krum: m = 5: must be <= n - f = 4 with n = 5 updates and f = 1"
        );
        assert!(mk.check(6).is_ok());
    }
}
