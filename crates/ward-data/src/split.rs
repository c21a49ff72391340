//! The per-site train/test split (FLamby's rule: stratified when every class allows it).

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Number of test rows for `n` rows: `ceil(test_fraction * n)`, clamped to `0..=n`.
///
/// A tolerance of `1e-9` keeps float error from rounding an exact product up
/// (`0.3 * 10` is `3.0000000000000004` in `f64`, and must give 3).
pub fn test_size(n: usize, test_fraction: f64) -> usize {
    let raw = (test_fraction * n as f64 - 1e-9).ceil();
    if raw.is_nan() || raw <= 0.0 {
        0
    } else if raw >= n as f64 {
        n
    } else {
        // In (0, n): exact in usize.
        raw as usize
    }
}

/// The split seed of site `site_index`: `split_seed ^ (site_index << 32)`.
///
/// Each site is split by its own stream, so two sites with the same label pattern get
/// different splits, and a site's split depends only on `data.split-seed`, its index and
/// its own labels — never on other sites, the run seed or the strategy.
pub fn site_split_seed(split_seed: u64, site_index: usize) -> u64 {
    split_seed ^ ((site_index as u64) << 32)
}

/// Splits rows `0..labels.len()` into (train, test) row indices, both sorted ascending.
///
/// The test set has [`test_size`]`(n, test_fraction)` rows. The split is stratified by
/// label only when every class present has more than 2 rows (FLamby's rule); otherwise it
/// is a plain random split. Stratified: class `c` with `n_c` rows gets
/// `floor(n_test * n_c / n)` test rows and the rows still missing go, one each, to the
/// classes with the largest remainder `(n_test * n_c) mod n` (ties: lower class first);
/// within a class the test rows are the first of a shuffle of its rows by
/// `ChaCha8Rng::seed_from_u64(seed)`, classes taken in increasing order. Plain: the first
/// `n_test` rows of a shuffle of all rows.
///
/// Deterministic: the result depends only on `labels`, `test_fraction` and `seed`.
pub fn train_test_split(labels: &[u32], test_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let n = labels.len();
    let n_test = test_size(n, test_fraction);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);

    // Rows of each class present, in increasing label order (a sorted list, no hashing).
    let mut classes: Vec<(u32, Vec<usize>)> = Vec::new();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| labels[i]);
    for i in order {
        match classes.last_mut() {
            Some((label, rows)) if *label == labels[i] => rows.push(i),
            _ => classes.push((labels[i], vec![i])),
        }
    }
    let stratify = !classes.is_empty() && classes.iter().all(|(_, rows)| rows.len() > 2);

    let mut is_test = vec![false; n];
    if stratify {
        // n_test * n_c <= n * n fits in u128 for any slice length.
        let share = |n_c: usize| n_test as u128 * n_c as u128;
        let mut take: Vec<usize> = classes
            .iter()
            .map(|(_, rows)| (share(rows.len()) / n as u128) as usize)
            .collect();
        let mut left = n_test - take.iter().sum::<usize>();
        let mut by_remainder: Vec<usize> = (0..classes.len()).collect();
        // Stable sort: equal remainders keep increasing class order.
        by_remainder.sort_by_key(|&k| std::cmp::Reverse(share(classes[k].1.len()) % n as u128));
        for k in by_remainder {
            if left == 0 {
                break;
            }
            take[k] += 1;
            left -= 1;
        }
        for ((_, rows), k) in classes.iter_mut().zip(take) {
            rows.shuffle(&mut rng);
            for &i in rows.iter().take(k) {
                is_test[i] = true;
            }
        }
    } else {
        let mut rows: Vec<usize> = (0..n).collect();
        rows.shuffle(&mut rng);
        for &i in rows.iter().take(n_test) {
            is_test[i] = true;
        }
    }
    (0..n).partition(|&i| !is_test[i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn test_size_is_a_robust_ceiling() {
        // The FLamby heart-disease site sizes and the brief's reference values.
        assert_eq!(test_size(304, 0.34), 104);
        assert_eq!(test_size(260, 0.34), 89);
        assert_eq!(test_size(46, 0.34), 16);
        assert_eq!(test_size(130, 0.34), 45);
        // 0.3 * 10 = 3.0000000000000004 in f64.
        assert_eq!(test_size(10, 0.3), 3);
        assert_eq!(test_size(10, 0.31), 4);
        assert_eq!(test_size(0, 0.5), 0);
        assert_eq!(test_size(5, 1.0), 5);
        assert_eq!(test_size(5, f64::NAN), 0);
    }

    fn labels(counts: &[usize]) -> Vec<u32> {
        // Interleaved so that classes are not contiguous.
        let mut out = Vec::new();
        let mut left = counts.to_vec();
        while left.iter().any(|&c| c > 0) {
            for (c, l) in left.iter_mut().enumerate() {
                if *l > 0 {
                    out.push(c as u32);
                    *l -= 1;
                }
            }
        }
        out
    }

    #[test]
    fn sizes_stratification_and_sorting() {
        // 139 positives of 304 (Cleveland's balance): test 104 = floor(104*165/304) = 56
        // negatives (rem 136) + floor(104*139/304) = 47 positives (rem 168) + 1 to the
        // positives (larger remainder) = 56 + 48.
        let y = labels(&[165, 139]);
        let (train, test) = train_test_split(&y, 0.34, 43);
        assert_eq!((train.len(), test.len()), (200, 104));
        let pos = test.iter().filter(|&&i| y[i] == 1).count();
        assert_eq!(pos, 48);
        assert!(train.windows(2).all(|w| w[0] < w[1]));
        assert!(test.windows(2).all(|w| w[0] < w[1]));
        let mut all: Vec<usize> = train.iter().chain(&test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..304).collect::<Vec<_>>());
    }

    #[test]
    fn ties_in_the_remainder_go_to_the_lower_class() {
        // n = 12 in 3 classes of 4, n_test = 2: each share is 2*4/12 = 0 rem 8, all tied,
        // so the two rows go to classes 0 and 1.
        let y = labels(&[4, 4, 4]);
        let (_, test) = train_test_split(&y, 2.0 / 12.0, 1);
        let per: Vec<usize> = (0..3)
            .map(|c| test.iter().filter(|&&i| y[i] == c).count())
            .collect();
        assert_eq!(per, vec![1, 1, 0]);
    }

    #[test]
    fn a_class_with_two_rows_disables_stratification() {
        // 45 positives, 1 negative: Switzerland. Plain split, sizes still 30/16.
        let y = labels(&[1, 45]);
        let (train, test) = train_test_split(&y, 0.34, 43);
        assert_eq!((train.len(), test.len()), (30, 16));
        // With a plain split the lone negative lands in test with probability 16/46 (~70
        // of 200 seeds). A stratified split would give it floor(16*1/46) = 0 rows with
        // remainder 16, less than the positives' 16*45 mod 46 = 30, so never.
        let in_test = (0..200)
            .filter(|&s| train_test_split(&y, 0.34, s).1.contains(&0))
            .count();
        assert!((30..110).contains(&in_test), "{in_test}");
    }

    #[test]
    fn depends_only_on_the_seed() {
        let y = labels(&[60, 40]);
        assert_eq!(train_test_split(&y, 0.34, 7), train_test_split(&y, 0.34, 7));
        assert_ne!(train_test_split(&y, 0.34, 7), train_test_split(&y, 0.34, 8));
        assert_ne!(site_split_seed(43, 0), site_split_seed(43, 1));
        assert_eq!(site_split_seed(43, 0), 43);
    }

    proptest! {
        #![proptest_config(ProptestConfig { rng_seed: proptest::test_runner::RngSeed::Fixed(7), ..ProptestConfig::default() })]
        #[test]
        fn split_is_a_partition_with_the_right_test_size(
            y in proptest::collection::vec(0u32..4, 0..200),
            f in 0.01f64..0.99,
            seed in any::<u64>(),
        ) {
            let (train, test) = train_test_split(&y, f, seed);
            prop_assert_eq!(test.len(), test_size(y.len(), f));
            let mut all: Vec<usize> = train.iter().chain(&test).copied().collect();
            all.sort_unstable();
            prop_assert_eq!(all, (0..y.len()).collect::<Vec<_>>());
        }
    }
}
