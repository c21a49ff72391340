//! Small exact numerical kernels behind DnC, SignGuard, clipped clustering and FLAME:
//! Gram matrices, the top eigenpair of a symmetric matrix, average-linkage
//! agglomerative clustering, mean shift (scikit-learn's algorithm) and HDBSCAN's
//! selection for a minimum cluster size above `n / 2`.
//!
//! They work on `n x n` matrices or `n` feature vectors (`n` = the round's updates, at
//! most a few hundred), so plain `O(n^3)` algorithms are exact and fast; no clustering
//! crate is needed for that size (linfa-clustering's mean shift and the `hdbscan`
//! crate would each add a dependency tree for a few dozen lines at this size).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::common::CHUNK;

/// A ChaCha8 generator for `(seed, round)`: rules that draw at random derive their
/// randomness from the configured seed and the round, so they keep no state and a
/// resumed run draws exactly what an uninterrupted one does.
pub(crate) fn round_rng(seed: u64, round: usize, salt: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ salt);
    rng.set_stream(round as u64);
    rng
}

/// The `n x n` Gram matrix `G_ij = <x_i - c, x_j - c>` (row-major, `f64`
/// accumulation), parallel over coordinate chunks; `center` `None` is `c = 0`.
///
/// # Shapes
/// - `rows`: `n` slices of length `d`; `center`: `d`; returns `n * n` values.
pub(crate) fn gram(rows: &[&[f32]], center: Option<&[f32]>) -> Vec<f64> {
    let n = rows.len();
    let d = rows.first().map_or(0, |r| r.len());
    let starts: Vec<usize> = (0..d).step_by(CHUNK).collect();
    let mut g = starts
        .into_par_iter()
        .fold(
            || vec![0f64; n * n],
            |mut acc, start| {
                let end = (start + CHUNK).min(d);
                let block: Vec<Vec<f64>> = rows
                    .iter()
                    .map(|r| {
                        r[start..end]
                            .iter()
                            .enumerate()
                            .map(|(k, &x)| {
                                f64::from(x) - center.map_or(0.0, |c| f64::from(c[start + k]))
                            })
                            .collect()
                    })
                    .collect();
                for i in 0..n {
                    for j in i..n {
                        let s: f64 = block[i].iter().zip(&block[j]).map(|(a, b)| a * b).sum();
                        acc[i * n + j] += s;
                    }
                }
                acc
            },
        )
        .reduce(
            || vec![0f64; n * n],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(b) {
                    *x += y;
                }
                a
            },
        );
    for i in 0..n {
        for j in 0..i {
            g[i * n + j] = g[j * n + i];
        }
    }
    g
}

/// Cosine distances `1 - cos(v_i, v_j)` from a Gram matrix, clamped to `[0, 2]`. A zero
/// vector has cosine 0 with any other vector (distance 1) and distance 0 to another
/// zero vector; the diagonal is 0.
///
/// # Shapes
/// - `gram`: `n x n`; returns `n x n`.
pub(crate) fn cosine_distances(gram: &[f64], n: usize) -> Vec<f64> {
    let mut out = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            if i == j {
                continue;
            }
            let (a, b) = (gram[i * n + i], gram[j * n + j]);
            out[i * n + j] = if a == 0.0 && b == 0.0 {
                0.0
            } else if a == 0.0 || b == 0.0 {
                1.0
            } else {
                (1.0 - gram[i * n + j] / (a.sqrt() * b.sqrt())).clamp(0.0, 2.0)
            };
        }
    }
    out
}

/// The largest eigenvalue of the symmetric `n x n` matrix `a` and a unit eigenvector,
/// by cyclic Jacobi rotations (Golub & Van Loan, "Matrix Computations", 4th ed.,
/// Algorithm 8.5.3) until the off-diagonal mass is below `1e-22` of the total.
///
/// # Shapes
/// - `a`: `n x n` row-major; returns `(lambda, v)` with `v` of length `n`.
pub(crate) fn top_eigen(a: &[f64], n: usize) -> (f64, Vec<f64>) {
    let mut m = a.to_vec();
    let mut v = vec![0f64; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let total: f64 = m.iter().map(|x| x * x).sum();
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * n + j] * m[i * n + j])
            .sum();
        if off <= 1e-22 * total || off == 0.0 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (m[q * n + q] - m[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (m[k * n + p], m[k * n + q]);
                    m[k * n + p] = c * akp - s * akq;
                    m[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (m[p * n + k], m[q * n + k]);
                    m[p * n + k] = c * apk - s * aqk;
                    m[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let best = (0..n)
        .max_by(|&i, &j| m[i * n + i].total_cmp(&m[j * n + j]))
        .unwrap_or(0);
    let vec: Vec<f64> = (0..n).map(|k| v[k * n + best]).collect();
    (m[best * n + best], vec)
}

/// Agglomerative clustering of `n` points into 2 clusters with average linkage
/// (UPGMA: the distance between clusters is the mean pairwise distance), from the
/// precomputed `n x n` distances `dist`, as scikit-learn's
/// `AgglomerativeClustering(n_clusters=2, metric="precomputed", linkage="average")`.
/// Returns the two clusters, each ascending. Needs `n >= 2`.
///
/// # Shapes
/// - `dist`: `n x n`; returns two index lists covering `0..n`.
pub(crate) fn average_linkage_two(dist: &[f64], n: usize) -> (Vec<usize>, Vec<usize>) {
    let mut clusters: Vec<Vec<usize>> = (0..n).map(|i| vec![i]).collect();
    let link = |a: &[usize], b: &[usize]| -> f64 {
        let s: f64 = a
            .iter()
            .flat_map(|&i| b.iter().map(move |&j| dist[i * n + j]))
            .sum();
        s / (a.len() * b.len()) as f64
    };
    while clusters.len() > 2 {
        let mut best = (f64::INFINITY, 0, 1);
        for a in 0..clusters.len() {
            for b in a + 1..clusters.len() {
                let l = link(&clusters[a], &clusters[b]);
                if l < best.0 {
                    best = (l, a, b);
                }
            }
        }
        let (_, a, b) = best;
        let merged = clusters.swap_remove(b);
        clusters[a].extend(merged);
        clusters[a].sort_unstable();
    }
    let mut it = clusters.into_iter();
    let first = it.next().unwrap_or_default();
    let second = it.next().unwrap_or_default();
    (first, second)
}

fn dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

/// scikit-learn's `estimate_bandwidth(X, quantile)` for `n <= n_samples` points (all
/// of them are used): the mean over the points of the distance to their
/// `max(1, floor(n * quantile))`-th nearest neighbour, the point itself counting as
/// the first.
///
/// # Shapes
/// - `x`: `n` points of equal dimension.
pub(crate) fn estimate_bandwidth(x: &[Vec<f64>], quantile: f64) -> f64 {
    let n = x.len();
    let k = ((n as f64 * quantile) as usize).max(1).min(n);
    let total: f64 = x
        .iter()
        .map(|p| {
            let mut d: Vec<f64> = x.iter().map(|q| dist(p, q)).collect();
            d.sort_by(f64::total_cmp);
            d[k - 1]
        })
        .sum();
    total / n as f64
}

/// Mean shift with a flat kernel as scikit-learn 1.x's
/// `MeanShift(bandwidth, bin_seeding=True, cluster_all=False)`: seeds on a grid of
/// cell `bandwidth` (cells rounded half to even, as `np.round`), each seed moved to
/// the mean of the points within `bandwidth` until it moves at most `1e-3 *
/// bandwidth` (300 iterations at most); centres sorted by (points within, centre)
/// descending, near-duplicates within `bandwidth` of a stronger centre dropped; each
/// point labelled with its nearest centre if within `bandwidth`, else `None` (an
/// orphan). Label 0 is the strongest centre.
///
/// `bandwidth = 0` (all points identical, or the estimate is 0) is the limit of the
/// kernel: points with equal features share a label, by count descending.
///
/// # Shapes
/// - `x`: `n` points of equal dimension; returns `n` labels.
pub(crate) fn mean_shift(x: &[Vec<f64>], bandwidth: f64) -> Vec<Option<usize>> {
    let n = x.len();
    if bandwidth <= 0.0 || !bandwidth.is_finite() {
        let mut groups: Vec<(Vec<f64>, usize)> = Vec::new();
        for p in x {
            match groups.iter_mut().find(|(c, _)| c == p) {
                Some(g) => g.1 += 1,
                None => groups.push((p.clone(), 1)),
            }
        }
        groups.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| cmp_vec(&b.0, &a.0)));
        return x
            .iter()
            .map(|p| groups.iter().position(|(c, _)| c == p))
            .collect();
    }
    // Bin seeds (sklearn's get_bin_seeds with min_bin_freq = 1); seeds are float32 there.
    let mut bins: Vec<Vec<f64>> = Vec::new();
    for p in x {
        let b: Vec<f64> = p
            .iter()
            .map(|v| (v / bandwidth).round_ties_even())
            .collect();
        if !bins.contains(&b) {
            bins.push(b);
        }
    }
    let seeds: Vec<Vec<f64>> = if bins.len() == n {
        // "Binning data failed": the data points are the seeds.
        x.to_vec()
    } else {
        bins.iter()
            .map(|b| {
                b.iter()
                    .map(|v| f64::from((v * bandwidth) as f32))
                    .collect()
            })
            .collect()
    };
    let stop = 1e-3 * bandwidth;
    let mut centres: Vec<(Vec<f64>, usize)> = Vec::new();
    for seed in seeds {
        let mut mean = seed;
        let mut within;
        let mut iters = 0;
        loop {
            let near: Vec<&Vec<f64>> = x.iter().filter(|p| dist(p, &mean) <= bandwidth).collect();
            within = near.len();
            if within == 0 {
                break;
            }
            let dim = mean.len();
            let new: Vec<f64> = (0..dim)
                .map(|k| near.iter().map(|p| p[k]).sum::<f64>() / within as f64)
                .collect();
            let moved = dist(&new, &mean);
            mean = new;
            if moved <= stop || iters == 300 {
                break;
            }
            iters += 1;
        }
        if within > 0 {
            // sklearn keys a dict by the centre: an equal centre keeps the last count.
            match centres.iter_mut().find(|(c, _)| *c == mean) {
                Some(c) => c.1 = within,
                None => centres.push((mean, within)),
            }
        }
    }
    centres.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| cmp_vec(&b.0, &a.0)));
    let mut unique = vec![true; centres.len()];
    for i in 0..centres.len() {
        if unique[i] {
            for j in 0..centres.len() {
                if j != i && dist(&centres[i].0, &centres[j].0) <= bandwidth {
                    unique[j] = false;
                }
            }
        }
    }
    let kept: Vec<&Vec<f64>> = centres
        .iter()
        .zip(&unique)
        .filter(|(_, u)| **u)
        .map(|(c, _)| &c.0)
        .collect();
    x.iter()
        .map(|p| {
            let (best, d) = kept
                .iter()
                .enumerate()
                .map(|(k, c)| (k, dist(p, c)))
                .min_by(|a, b| a.1.total_cmp(&b.1))?;
            (d <= bandwidth).then_some(best)
        })
        .collect()
}

fn cmp_vec(a: &[f64], b: &[f64]) -> std::cmp::Ordering {
    a.iter()
        .zip(b)
        .map(|(x, y)| x.total_cmp(y))
        .find(|o| o.is_ne())
        .unwrap_or(std::cmp::Ordering::Equal)
}

/// The points HDBSCAN (Campello et al. 2013; McInnes et al.'s `hdbscan` package)
/// labels as a cluster with `min_cluster_size > n / 2`, `min_samples = 1` (core
/// distance: the nearest other point) and `allow_single_cluster = True`, from the
/// precomputed `n x n` distances; everything else is noise.
///
/// With `min_cluster_size > n / 2` no split of the single-linkage tree of the mutual
/// reachability distances can leave two children of that size, so the condensed tree
/// has the root as its only cluster and excess-of-mass selects it; the `hdbscan`
/// labelling then keeps the points whose `lambda = 1 / distance` at leaving the root is
/// at least the largest such lambda. Walking the single-linkage tree from the top —
/// a child smaller than `min_cluster_size` falls out at the split's lambda, the larger
/// one goes on — that is the last node of at least `min_cluster_size` points (plus
/// any point that left at that same distance). Needs `n >= 2`, `min_cluster_size >= 2`.
/// Returns the cluster, ascending.
///
/// # Shapes
/// - `dist`: `n x n`; returns indices into `0..n`.
pub(crate) fn hdbscan_majority(dist: &[f64], n: usize, min_cluster_size: usize) -> Vec<usize> {
    if n < 2 {
        return (0..n).collect();
    }
    // Mutual reachability with min_samples = 1: core distance = nearest other point.
    let core: Vec<f64> = (0..n)
        .map(|i| {
            (0..n)
                .filter(|&j| j != i)
                .map(|j| dist[i * n + j])
                .fold(f64::INFINITY, f64::min)
        })
        .collect();
    let mr = |i: usize, j: usize| dist[i * n + j].max(core[i]).max(core[j]);
    // Prim's minimum spanning tree.
    let mut in_tree = vec![false; n];
    let mut best = vec![f64::INFINITY; n];
    let mut from = vec![0usize; n];
    let mut edges: Vec<(f64, usize, usize)> = Vec::with_capacity(n - 1);
    let mut cur = 0;
    in_tree[0] = true;
    for _ in 1..n {
        for j in 0..n {
            if !in_tree[j] {
                let w = mr(cur, j);
                if w < best[j] {
                    best[j] = w;
                    from[j] = cur;
                }
            }
        }
        let next = (0..n)
            .filter(|&j| !in_tree[j])
            .min_by(|&a, &b| best[a].total_cmp(&best[b]))
            .unwrap_or(0);
        edges.push((best[next], from[next], next));
        in_tree[next] = true;
        cur = next;
    }
    edges.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Single-linkage tree: node k < n is point k, node n + m is the m-th merge.
    let mut parent: Vec<usize> = (0..2 * n - 1).collect();
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    let mut children: Vec<(usize, usize, f64)> = Vec::with_capacity(n - 1);
    let mut size = vec![1usize; 2 * n - 1];
    for (m, &(w, a, b)) in edges.iter().enumerate() {
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        let node = n + m;
        parent[ra] = node;
        parent[rb] = node;
        size[node] = size[ra] + size[rb];
        children.push((ra, rb, w));
    }
    let lambda = |w: f64| if w > 0.0 { 1.0 / w } else { f64::INFINITY };
    let leaves = |node: usize| -> Vec<usize> {
        let mut out = Vec::new();
        let mut stack = vec![node];
        while let Some(x) = stack.pop() {
            if x < n {
                out.push(x);
            } else {
                let (a, b, _) = children[x - n];
                stack.push(a);
                stack.push(b);
            }
        }
        out
    };
    // Walk down the root cluster, recording each point's lambda at leaving it.
    let mut leave = vec![0f64; n];
    let mut node = 2 * n - 2;
    loop {
        let (a, b, w) = children[node - n];
        let l = lambda(w);
        let (big, small) = if size[a] >= size[b] { (a, b) } else { (b, a) };
        if size[big] >= min_cluster_size {
            for p in leaves(small) {
                leave[p] = l;
            }
            node = big;
        } else {
            for p in leaves(node) {
                leave[p] = l;
            }
            break;
        }
    }
    let top = leave.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (0..n).filter(|&p| leave[p] >= top).collect()
}

/// `global + sum_i a_i (x_i - global)` in `f64`, rounded to `f32`: the rules that
/// average clipped deltas.
///
/// # Shapes
/// - `rows`: `n` slices of length `d`; `global`: `d`; `a`: `n`; returns `d` values.
pub(crate) fn global_plus(rows: &[&[f32]], global: &[f32], a: &[f64]) -> Vec<f32> {
    let mixed = crate::common::weighted_sum_f64(rows, a);
    let sum_a: f64 = a.iter().sum();
    mixed
        .par_iter()
        .zip(global.par_iter())
        .map(|(&m, &g)| (m + (1.0 - sum_a) * f64::from(g)) as f32)
        .collect()
}

/// The median of `v` (mean of the two middle values for an even count), as numpy; 0 for
/// no values. [`ward_core::stats::median`], which these callers never hand a NaN (their
/// inputs are norms and distances of validated, finite updates).
pub(crate) fn median(v: &[f64]) -> f64 {
    ward_core::stats::median(v).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_eigen_by_hand() {
        // [[2, 1], [1, 2]]: eigenvalues 3 (vector (1, 1)/sqrt 2) and 1.
        let (l, v) = top_eigen(&[2.0, 1.0, 1.0, 2.0], 2);
        assert!((l - 3.0).abs() < 1e-12, "{l}");
        assert!((v[0].abs() - 0.5f64.sqrt()).abs() < 1e-12 && (v[0] - v[1]).abs() < 1e-12);
        // diag(1, 5, 2): 5 with e_2.
        let (l, v) = top_eigen(&[1., 0., 0., 0., 5., 0., 0., 0., 2.], 3);
        assert_eq!((l, v[1].abs()), (5.0, 1.0));
    }

    /// By hand: points 0, 1, 5, 6, 20 on a line; average linkage merges {0,1} (1),
    /// {5,6} (1), then {0,1}+{5,6} (mean of 5,6,4,5 = 5) before anything reaches 20
    /// (14.5 from {5,6}), leaving {20} alone.
    #[test]
    fn average_linkage_by_hand() {
        let p = [0.0f64, 1.0, 5.0, 6.0, 20.0];
        let d: Vec<f64> = p
            .iter()
            .flat_map(|a| p.iter().map(move |b| (a - b).abs()))
            .collect();
        let (a, b) = average_linkage_two(&d, 5);
        let (big, small) = if a.len() > b.len() { (a, b) } else { (b, a) };
        assert_eq!((big, small), (vec![0, 1, 2, 3], vec![4]));
    }

    /// By hand, 1-D points 0, 1, 2, 10, 11 (n = 5, min cluster size 3): core distances
    /// 1, 1, 1, 1, 1; mutual reachability = max(1, |a - b|); MST edges 1, 1, 1 (the
    /// triple and the pair), then 8. The root splits at 8 into {0,1,2} (size 3, goes on)
    /// and {10,11} (falls out at lambda 1/8); {0,1,2} then splits at 1 into pieces below
    /// 3, so all three leave at lambda 1: the cluster is {0, 1, 2}.
    #[test]
    fn hdbscan_majority_by_hand() {
        let p = [0.0f64, 1.0, 2.0, 10.0, 11.0];
        let d: Vec<f64> = p
            .iter()
            .flat_map(|a| p.iter().map(move |b| (a - b).abs()))
            .collect();
        assert_eq!(hdbscan_majority(&d, 5, 3), vec![0, 1, 2]);
        // Two points: both leave at the only split.
        assert_eq!(hdbscan_majority(&[0.0, 3.0, 3.0, 0.0], 2, 2), vec![0, 1]);
    }

    /// By hand: 1-D points 0, 0.1, 0.2, 5 with bandwidth 1: bins 0, 0, 0, 5 → seeds 0
    /// and 5; seed 0 → mean of {0, 0.1, 0.2} = 0.1 (stays), seed 5 → 5. Centres by
    /// strength: 0.1 (3 points), 5 (1 point). Labels 0, 0, 0, 1.
    #[test]
    fn mean_shift_by_hand() {
        let x: Vec<Vec<f64>> = [0.0, 0.1, 0.2, 5.0].iter().map(|&v| vec![v]).collect();
        assert_eq!(
            mean_shift(&x, 1.0),
            vec![Some(0), Some(0), Some(0), Some(1)]
        );
        // estimate_bandwidth with quantile 0.5: k = 2 (itself + nearest):
        // distances 0.1, 0.1, 0.1, 4.8 -> mean 1.275.
        assert!((estimate_bandwidth(&x, 0.5) - 1.275).abs() < 1e-12);
        // Zero bandwidth: groups of equal points, largest first.
        let y: Vec<Vec<f64>> = [1.0, 2.0, 1.0].iter().map(|&v| vec![v]).collect();
        assert_eq!(mean_shift(&y, 0.0), vec![Some(0), Some(1), Some(0)]);
    }

    /// scikit-learn 1.9.1's `estimate_bandwidth` and `MeanShift(bin_seeding=True,
    /// cluster_all=False)` (see `crate::reference::mean_shift_cases`).
    #[test]
    fn mean_shift_matches_scikit_learn() {
        for (x, bw, labels) in crate::reference::mean_shift_cases() {
            let got = estimate_bandwidth(&x, 0.5);
            assert!((got - bw).abs() < 1e-12, "{got} vs {bw}");
            assert_eq!(mean_shift(&x, bw), labels);
        }
    }

    #[test]
    fn gram_and_cosine_by_hand() {
        let a = [1.0f32, 0.0];
        let b = [1.0f32, 1.0];
        let z = [0.0f32, 0.0];
        let g = gram(&[&a, &b, &z], None);
        assert_eq!(g, vec![1., 1., 0., 1., 2., 0., 0., 0., 0.]);
        let c = cosine_distances(&g, 3);
        assert!((c[1] - (1.0 - 0.5f64.sqrt())).abs() < 1e-12);
        assert_eq!((c[2], c[8]), (1.0, 0.0));
        let g = gram(&[&a, &b], Some(&[1.0, 0.0]));
        assert_eq!(g, vec![0., 0., 0., 1.]);
    }
}
