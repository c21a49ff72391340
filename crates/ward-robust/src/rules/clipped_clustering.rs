//! [`ClippedClustering`] (Li et al. 2023).

use ward_core::Update;
use ward_fl::{Aggregate, Aggregator, FlError, RoundContext};

use crate::RobustError;
use crate::cluster::{average_linkage_two, cosine_distances, global_plus, gram, median};
use crate::common::{like, rows, sq_dists_to};
use crate::error::need_updates;

const RULE: &str = "clipped-clustering";

/// Clipped clustering (Li, Sun & Zheng 2023, "An Experimental Study of Byzantine-Robust
/// Aggregation Schemes in Federated Learning", IEEE Trans. Big Data; `Clippedclustering`
/// in their Blades benchmark), on deltas `g_i = x_i - global`:
///
/// 1. clip every `g_i` to norm `tau` = the median of the round's `||g_i||`;
/// 2. agglomerative clustering into 2 clusters on the cosine distances `1 - cos(g_i,
///    g_j)` with average linkage (exact `O(n^3)`, as scikit-learn's
///    `AgglomerativeClustering(n_clusters=2, linkage="average")`; a zero delta has
///    cosine 0 with any other);
/// 3. aggregate `global + ` the mean of the clipped deltas of the larger cluster.
///
/// Simplification (stateless): the paper clips to the median of every norm seen so far
/// (all rounds); here `tau` is the median of this round's norms, so the rule keeps no
/// state across rounds (and resume needs none). Two clusters of equal size (even `n`)
/// are resolved towards the tighter one (smaller mean within-cluster distance), then
/// the one holding the lowest index.
///
/// Assumption: `n >= 2` (two clusters); robustness needs an honest majority, which
/// keeps `tau` an honest norm, so the output is never farther than `tau` from the
/// global model. `selected` holds the larger cluster. Unweighted. Memory O(n^2 + d).
///
/// # Shapes
/// - updates: `n` vectors of length `d`; aggregate: `d`; `selected`: `>= n/2` indices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClippedClustering;

impl ClippedClustering {
    /// Checks `n >= 2`.
    pub fn check(&self, n: usize) -> Result<(), RobustError> {
        need_updates(RULE, None, "2", 2, n)
    }

    fn run(&self, updates: &[Update], ctx: &RoundContext<'_>) -> Result<Aggregate, RobustError> {
        self.check(updates.len())?;
        let rows = rows(updates, ctx)?;
        let n = rows.len();
        let g = ctx.global.values();
        let g64: Vec<f64> = g.iter().map(|&v| f64::from(v)).collect();
        let norms: Vec<f64> = sq_dists_to(&rows, &g64).iter().map(|v| v.sqrt()).collect();
        let tau = median(&norms);
        let dist = cosine_distances(&gram(&rows, Some(g)), n);
        let (a, b) = average_linkage_two(&dist, n);
        let spread = |c: &[usize]| {
            if c.len() < 2 {
                return 0.0;
            }
            let s: f64 = c
                .iter()
                .flat_map(|&i| c.iter().map(move |&j| (i, j)))
                .map(|(i, j)| dist[i * n + j])
                .sum();
            s / (c.len() * (c.len() - 1)) as f64
        };
        let chosen = match a.len().cmp(&b.len()) {
            std::cmp::Ordering::Greater => a,
            std::cmp::Ordering::Less => b,
            std::cmp::Ordering::Equal => {
                match spread(&a).total_cmp(&spread(&b)).then(a[0].cmp(&b[0])) {
                    std::cmp::Ordering::Greater => b,
                    _ => a,
                }
            }
        };
        let mut w = vec![0f64; n];
        for &i in &chosen {
            let clip = if norms[i] > tau && norms[i] > 0.0 {
                tau / norms[i]
            } else {
                1.0
            };
            w[i] = clip / chosen.len() as f64;
        }
        Ok(Aggregate {
            params: like(ctx.global, global_plus(&rows, g, &w))?,
            selected: Some(chosen),
            weights: None,
        })
    }
}

impl Aggregator for ClippedClustering {
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

    /// By hand, global 0: three updates along +x with a little y, (1, 0.1), (2, 0),
    /// (1, -0.1), and one opposite, (-8, 0). Norms 1.005, 2, 1.005, 8: median tau =
    /// (1.005 + 2) / 2 = 1.5025. Cosine distances between the first three are below
    /// 0.01, to (-8, 0) about 2, so the clusters are {0, 1, 2} and {3}. (2, 0) is
    /// clipped to (1.5025, 0); the mean is ((1 + 1.5025 + 1) / 3, 0).
    #[test]
    fn clipped_clustering_by_hand() {
        let g = zeros(2);
        let u = upds(&[vec![1., 0.1], vec![2., 0.], vec![1., -0.1], vec![-8., 0.]]);
        let a = ClippedClustering
            .aggregate(&u, &RoundContext::new(1, &g))
            .unwrap();
        assert_eq!(a.selected, Some(vec![0, 1, 2]));
        let tau = (1.01f64.sqrt() + 2.0) / 2.0;
        assert_close(a.params.values(), &[((2.0 + tau) / 3.0) as f32, 0.0], 1e-6);
    }

    /// scikit-learn 1.9.1 reference: `AgglomerativeClustering(n_clusters=2,
    /// metric="precomputed", linkage="average").fit(D)` with `D` the cosine distances
    /// (`scipy.spatial.distance.cdist(X, X, "cosine")`) of X = rng(4).standard_normal((9, 6));
    /// its larger cluster (see `crate::reference::clipped_clustering_case`).
    #[test]
    fn clusters_match_scikit_learn() {
        let (x, big) = crate::reference::clipped_clustering_case();
        let g = zeros(x[0].len());
        let a = ClippedClustering
            .aggregate(&upds(&x), &RoundContext::new(1, &g))
            .unwrap();
        assert_eq!(a.selected, Some(big));
    }

    #[test]
    fn one_update_is_refused() {
        assert_eq!(
            ClippedClustering.check(1).unwrap_err().to_string(),
            "clipped-clustering needs n >= 2 updates, got 1"
        );
    }
}
