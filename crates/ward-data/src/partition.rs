//! Simulated sites for data without a site column: IID, label skew, quantity skew.

use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma};
use ward_core::config::{PartitionKind, PartitionSpec};

use crate::DataError;

/// How many times a draw is repeated before `min-rows` is declared unreachable.
pub const MAX_DRAWS: usize = 100;

/// Spreads rows `0..labels.len()` over `spec.sites` simulated sites; returns each site's
/// row indices, sorted ascending. Every row goes to exactly one site.
///
/// All randomness comes from one `ChaCha8Rng::seed_from_u64(spec.seed)` stream, so the
/// result is a pure function of `labels`, `num_classes` and `spec`.
///
/// - `iid`: shuffle the rows, then cut them into contiguous near-equal shares (sizes differ
///   by at most one; the first `n mod sites` sites get the extra row).
/// - `dirichlet` (label skew): for each class in increasing order, shuffle its rows, draw
///   site shares from Dirichlet(alpha) and cut the shuffled rows by those shares.
/// - `quantity` (quantity skew): shuffle all rows, draw site shares from Dirichlet(alpha)
///   and cut by them; labels stay IID.
///
/// Shares become row counts by largest-remainder rounding (ties: lower site first).
/// Dirichlet(alpha) is drawn as normalised Gamma(alpha, 1) variables; should they all
/// underflow to zero (tiny alpha), the whole share goes to one uniformly drawn site, the
/// alpha → 0 limit. When a site gets fewer than `spec.min_rows` rows the draw is repeated
/// from the same stream, up to [`MAX_DRAWS`] times.
///
/// # Errors
/// [`DataError::Partition`] naming the setting when `sites` is 0, `alpha` is not a positive
/// finite number, a label is `>= num_classes`, there are fewer than `sites * min_rows` rows,
/// or no draw in [`MAX_DRAWS`] gives every site `min_rows` rows.
pub fn partition(
    labels: &[u32],
    num_classes: usize,
    spec: &PartitionSpec,
) -> Result<Vec<Vec<usize>>, DataError> {
    let k = spec.sites;
    let n = labels.len();
    if k == 0 {
        return Err(DataError::partition(
            "data.partition.sites",
            "must be >= 1, got 0",
        ));
    }
    if spec.kind != PartitionKind::Iid && !(spec.alpha.is_finite() && spec.alpha > 0.0) {
        return Err(DataError::partition(
            "data.partition.alpha",
            format!("must be a finite number > 0, got {}", spec.alpha),
        ));
    }
    if let Some(&bad) = labels.iter().find(|&&l| l as usize >= num_classes) {
        return Err(DataError::partition(
            "data.partition",
            format!("label {bad} is out of range for {num_classes} classes"),
        ));
    }
    if k.checked_mul(spec.min_rows).is_none_or(|need| need > n) {
        return Err(DataError::partition(
            "data.partition.min-rows",
            format!(
                "{k} sites with at least {} rows each need {} rows, but the data has {n}",
                spec.min_rows,
                k.saturating_mul(spec.min_rows)
            ),
        ));
    }

    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let gamma = match spec.kind {
        PartitionKind::Iid => None,
        _ => Some(Gamma::new(spec.alpha, 1.0).map_err(|e| {
            DataError::partition(
                "data.partition.alpha",
                format!("{e} (alpha = {})", spec.alpha),
            )
        })?),
    };

    for _ in 0..MAX_DRAWS {
        let mut sites: Vec<Vec<usize>> = vec![Vec::new(); k];
        match (spec.kind, &gamma) {
            (PartitionKind::Iid, _) | (_, None) => {
                let mut rows: Vec<usize> = (0..n).collect();
                rows.shuffle(&mut rng);
                let counts: Vec<usize> = (0..k).map(|s| n / k + usize::from(s < n % k)).collect();
                cut(&rows, &counts, &mut sites);
            }
            (PartitionKind::Dirichlet, Some(gamma)) => {
                for class in 0..num_classes {
                    let mut rows: Vec<usize> =
                        (0..n).filter(|&i| labels[i] as usize == class).collect();
                    if rows.is_empty() {
                        continue;
                    }
                    rows.shuffle(&mut rng);
                    let shares = dirichlet(gamma, k, &mut rng);
                    cut(&rows, &round_shares(rows.len(), &shares), &mut sites);
                }
            }
            (PartitionKind::Quantity, Some(gamma)) => {
                let mut rows: Vec<usize> = (0..n).collect();
                rows.shuffle(&mut rng);
                let shares = dirichlet(gamma, k, &mut rng);
                cut(&rows, &round_shares(n, &shares), &mut sites);
            }
        }
        if sites.iter().all(|s| s.len() >= spec.min_rows) {
            for s in &mut sites {
                s.sort_unstable();
            }
            return Ok(sites);
        }
    }
    let kind = match spec.kind {
        PartitionKind::Iid => "iid",
        PartitionKind::Dirichlet => "dirichlet",
        PartitionKind::Quantity => "quantity",
    };
    Err(DataError::partition(
        "data.partition.min-rows",
        format!(
            "no draw in {MAX_DRAWS} gave each of the {k} sites at least {} rows \
             (kind = \"{kind}\", alpha = {}, {n} rows); raise data.partition.alpha, \
             lower data.partition.min-rows or use fewer data.partition.sites",
            spec.min_rows, spec.alpha
        ),
    ))
}

/// One draw of Dirichlet(alpha) over `k` sites, as normalised Gamma(alpha, 1) variables.
fn dirichlet(gamma: &Gamma<f64>, k: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let g: Vec<f64> = (0..k).map(|_| gamma.sample(rng)).collect();
    let sum: f64 = g.iter().sum();
    if sum.is_finite() && sum > 0.0 {
        g.into_iter().map(|x| x / sum).collect()
    } else {
        let mut one_hot = vec![0.0; k];
        one_hot[rng.random_range(0..k)] = 1.0;
        one_hot
    }
}

/// Row counts summing to `n` from shares summing to ~1: floors, then the rows left over one
/// each to the largest fractional remainders (ties: lower index first).
pub(crate) fn round_shares(n: usize, shares: &[f64]) -> Vec<usize> {
    let exact: Vec<f64> = shares.iter().map(|&p| p.max(0.0) * n as f64).collect();
    let mut counts: Vec<usize> = exact.iter().map(|&x| (x.floor() as usize).min(n)).collect();
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by(|&a, &b| {
        let ra = exact[a] - exact[a].floor();
        let rb = exact[b] - exact[b].floor();
        rb.total_cmp(&ra)
    });
    let mut total: usize = counts.iter().sum();
    // Float error can leave the floors a row over `n`: take it back from the smallest
    // remainders that have a row.
    for &s in order.iter().rev().cycle().take(shares.len() * 2) {
        if total <= n {
            break;
        }
        if counts[s] > 0 {
            counts[s] -= 1;
            total -= 1;
        }
    }
    for &s in order.iter().cycle().take(n.saturating_sub(total)) {
        counts[s] += 1;
    }
    counts
}

/// Appends consecutive runs of `rows` of lengths `counts` to the sites.
pub(crate) fn cut(rows: &[usize], counts: &[usize], sites: &mut [Vec<usize>]) {
    let mut start = 0;
    for (site, &c) in sites.iter_mut().zip(counts) {
        let end = (start + c).min(rows.len());
        site.extend_from_slice(&rows[start..end]);
        start = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec(kind: PartitionKind, sites: usize, alpha: f64, min_rows: usize) -> PartitionSpec {
        PartitionSpec {
            kind,
            sites,
            alpha,
            seed: 43,
            min_rows,
        }
    }

    fn balanced(n: usize, classes: u32) -> Vec<u32> {
        (0..n).map(|i| i as u32 % classes).collect()
    }

    #[test]
    fn iid_gives_equal_shares_plus_or_minus_one() {
        let y = balanced(103, 2);
        let parts = partition(&y, 2, &spec(PartitionKind::Iid, 4, 0.5, 10)).unwrap();
        let sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![26, 26, 26, 25]);
        assert!(parts.iter().all(|p| p.windows(2).all(|w| w[0] < w[1])));
    }

    fn class_share(parts: &[Vec<usize>], y: &[u32], class: u32) -> Vec<f64> {
        let total = y.iter().filter(|&&l| l == class).count() as f64;
        parts
            .iter()
            .map(|p| p.iter().filter(|&&i| y[i] == class).count() as f64 / total)
            .collect()
    }

    #[test]
    fn dirichlet_skew_follows_alpha() {
        let y = balanced(2000, 2);
        // Tiny alpha: each class lands (almost) entirely on one site.
        let parts = partition(&y, 2, &spec(PartitionKind::Dirichlet, 5, 0.01, 0)).unwrap();
        for c in 0..2 {
            let top = class_share(&parts, &y, c).into_iter().fold(0.0, f64::max);
            assert!(top > 0.9, "class {c}: largest share {top}");
        }
        // Huge alpha: every site gets about 1/5 of each class.
        let parts = partition(&y, 2, &spec(PartitionKind::Dirichlet, 5, 1e5, 0)).unwrap();
        for c in 0..2 {
            for share in class_share(&parts, &y, c) {
                assert!((share - 0.2).abs() < 0.02, "class {c}: share {share}");
            }
        }
    }

    #[test]
    fn quantity_skew_varies_sizes_but_not_labels() {
        let y = balanced(3000, 2);
        let parts = partition(&y, 2, &spec(PartitionKind::Quantity, 4, 0.3, 1)).unwrap();
        let sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
        assert!(
            sizes.iter().max().unwrap() - sizes.iter().min().unwrap() > 300,
            "{sizes:?}"
        );
        for p in parts.iter().filter(|p| p.len() > 200) {
            let pos = p.iter().filter(|&&i| y[i] == 1).count() as f64 / p.len() as f64;
            assert!((pos - 0.5).abs() < 0.1, "{pos}");
        }
    }

    #[test]
    fn min_rows_is_honoured_or_an_error_names_the_setting() {
        let y = balanced(200, 2);
        let parts = partition(&y, 2, &spec(PartitionKind::Dirichlet, 4, 0.3, 20)).unwrap();
        assert!(parts.iter().all(|p| p.len() >= 20));
        // 4 x 60 > 200: impossible up front.
        let err = partition(&y, 2, &spec(PartitionKind::Iid, 4, 0.5, 60)).unwrap_err();
        assert!(err.to_string().contains("data.partition.min-rows"), "{err}");
        // Possible in principle, but alpha so small that every draw is one-site-per-class.
        let err = partition(&y, 2, &spec(PartitionKind::Dirichlet, 4, 1e-4, 40)).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("data.partition.min-rows") && msg.contains("dirichlet"),
            "{msg}"
        );
    }

    #[test]
    fn bad_settings_are_errors() {
        let y = balanced(10, 2);
        let err =
            |classes: usize, s: PartitionSpec| partition(&y, classes, &s).unwrap_err().to_string();
        assert_eq!(
            err(2, spec(PartitionKind::Iid, 0, 0.5, 0)),
            "data.partition.sites: must be >= 1, got 0"
        );
        assert_eq!(
            err(2, spec(PartitionKind::Quantity, 2, 0.0, 0)),
            "data.partition.alpha: must be a finite number > 0, got 0"
        );
        assert_eq!(
            err(2, spec(PartitionKind::Quantity, 2, f64::NAN, 0)),
            "data.partition.alpha: must be a finite number > 0, got NaN"
        );
        assert_eq!(
            err(1, spec(PartitionKind::Iid, 2, 0.5, 0)),
            "data.partition: label 1 is out of range for 1 classes"
        );
    }

    #[test]
    fn deterministic_for_a_seed() {
        let y = balanced(100, 3);
        let s = spec(PartitionKind::Dirichlet, 3, 0.5, 5);
        assert_eq!(partition(&y, 3, &s).unwrap(), partition(&y, 3, &s).unwrap());
        let other = PartitionSpec {
            seed: 44,
            ..s.clone()
        };
        assert_ne!(
            partition(&y, 3, &s).unwrap(),
            partition(&y, 3, &other).unwrap()
        );
    }

    #[test]
    fn round_shares_sums_to_n() {
        assert_eq!(round_shares(10, &[0.25, 0.25, 0.5]), vec![3, 2, 5]);
        assert_eq!(round_shares(7, &[1.0 / 3.0; 3]), vec![3, 2, 2]);
        assert_eq!(round_shares(3, &[0.0, 1.0]), vec![0, 3]);
    }

    proptest! {
        #![proptest_config(ProptestConfig { rng_seed: proptest::test_runner::RngSeed::Fixed(11), ..ProptestConfig::default() })]
        #[test]
        fn every_row_goes_to_exactly_one_site(
            y in proptest::collection::vec(0u32..3, 0..300),
            kind in prop_oneof![Just(PartitionKind::Iid), Just(PartitionKind::Dirichlet), Just(PartitionKind::Quantity)],
            sites in 1usize..8,
            alpha in 0.001f64..100.0,
            seed in any::<u64>(),
        ) {
            let s = PartitionSpec { kind, sites, alpha, seed, min_rows: 0 };
            let parts = partition(&y, 3, &s).unwrap();
            prop_assert_eq!(parts.len(), sites);
            let mut all: Vec<usize> = parts.iter().flatten().copied().collect();
            all.sort_unstable();
            prop_assert_eq!(all, (0..y.len()).collect::<Vec<_>>());
            for p in &parts {
                prop_assert!(p.windows(2).all(|w| w[0] < w[1]));
            }
        }
    }
}
