//! Summary statistics on `f64` slices: [`mean`], [`std`](fn@std) (sample), [`median`],
//! [`quantile`] (numpy's default linear method), [`auc`] (ROC AUC by Mann-Whitney) and
//! [`t_interval`] (Student's t confidence interval of a mean).
//!
//! Every function returns `None` where the statistic is undefined (empty input, one value
//! for a sample std, a quantile level outside `[0, 1]`, an AUC without both classes)
//! instead of a NaN or a panic, so a caller has to say what an empty group means.
//!
//! Sums run left to right (`Iterator::sum`), so a mean here equals the same slice's
//! `iter().sum::<f64>() / len` bit for bit; numpy sums pairwise, so for long inputs the
//! last bits can differ from numpy's.
//!
//! ```
//! use ward_core::stats;
//!
//! let v = [3.0, 1.0, 4.0, 1.0, 5.0];
//! assert_eq!(stats::mean(&v), Some(2.8));
//! assert_eq!(stats::median(&v), Some(3.0));
//! assert_eq!(stats::quantile(&v, 0.25), Some(1.0));
//! assert_eq!(stats::median(&[]), None);
//! assert_eq!(stats::auc(&[0.9, 0.4], &[0.5, 0.1]), Some(0.75));
//! ```

/// The arithmetic mean, summed left to right; `None` for an empty slice. A NaN in `v`
/// gives NaN.
pub fn mean(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    Some(v.iter().sum::<f64>() / v.len() as f64)
}

/// The sample standard deviation (`n - 1` in the denominator, numpy's `ddof=1`), in two
/// passes (mean, then squared deviations); `None` for fewer than two values. A NaN in `v`
/// gives NaN.
pub fn std(v: &[f64]) -> Option<f64> {
    if v.len() < 2 {
        return None;
    }
    let m = mean(v)?;
    let ss: f64 = v.iter().map(|x| (x - m).powi(2)).sum();
    Some((ss / (v.len() - 1) as f64).sqrt())
}

/// The two-sided `level` confidence interval of the mean of `v` from Student's t
/// distribution with `n - 1` degrees of freedom: `mean ± t_{(1+level)/2, n-1} s / sqrt(n)`
/// (`s` the sample std, as `scipy.stats.t.interval(level, n - 1, mean, sem)`). Returns
/// `(mean, low, high)`; `None` for fewer than two values or `level` outside `(0, 1)`.
pub fn t_interval(v: &[f64], level: f64) -> Option<(f64, f64, f64)> {
    use statrs::distribution::{ContinuousCDF, StudentsT};
    if v.len() < 2 || !(level > 0.0 && level < 1.0) {
        return None;
    }
    let m = mean(v)?;
    let sem = std(v)? / (v.len() as f64).sqrt();
    let t = StudentsT::new(0.0, 1.0, (v.len() - 1) as f64)
        .ok()?
        .inverse_cdf(0.5 + level / 2.0);
    Some((m, m - t * sem, m + t * sem))
}

/// The values sorted ascending, or `Err(NaN)` when one of them is NaN.
fn sorted(v: &[f64]) -> Result<Vec<f64>, f64> {
    if v.iter().any(|x| x.is_nan()) {
        return Err(f64::NAN);
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    Ok(s)
}

/// The median: the middle value, or the mean of the two middle values (`0.5 * (a + b)`)
/// for an even count, as numpy's `median`; `None` for an empty slice. A NaN in `v` gives
/// NaN (as numpy).
pub fn median(v: &[f64]) -> Option<f64> {
    let n = v.len();
    if n == 0 {
        return None;
    }
    let s = match sorted(v) {
        Ok(s) => s,
        Err(nan) => return Some(nan),
    };
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    })
}

/// The `q`-quantile by linear interpolation between the closest ranks, numpy's default
/// (`method="linear"`): position `h = (n - 1) q` in the sorted values, between
/// `a = s[floor(h)]` and `b = s[floor(h) + 1]` at `t = h - floor(h)`, computed as numpy
/// does (`a + (b - a) t` for `t < 0.5`, `b - (b - a)(1 - t)` otherwise), so finite inputs
/// give numpy's result bit for bit. `None` for an empty slice or `q` outside `[0, 1]`
/// (NaN included). A NaN in `v` gives NaN (as numpy).
pub fn quantile(v: &[f64], q: f64) -> Option<f64> {
    let n = v.len();
    if n == 0 || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let s = match sorted(v) {
        Ok(s) => s,
        Err(nan) => return Some(nan),
    };
    let h = (n - 1) as f64 * q;
    let lo = h.floor();
    let i = lo as usize;
    let t = h - lo;
    let a = s[i];
    if t == 0.0 {
        return Some(a);
    }
    let b = s[(i + 1).min(n - 1)];
    let d = b - a;
    Some(if t < 0.5 {
        a + d * t
    } else {
        b - d * (1.0 - t)
    })
}

/// The ROC AUC of scores of positives against scores of negatives: the Mann-Whitney
/// statistic, the share of (positive, negative) pairs the positive scores higher, ties
/// counting one half (`-0.0` ties `0.0`). A pair with a NaN score counts as misordered
/// (zero), as the pairwise comparison `p > n` would have it. `None` unless both slices
/// hold a score.
///
/// Sorting makes it `O((p + n) log(p + n))`; the count of won pairs is exact (integers and
/// halves), so the result is the same number as the quadratic pairwise sum.
pub fn auc(positives: &[f64], negatives: &[f64]) -> Option<f64> {
    if positives.is_empty() || negatives.is_empty() {
        return None;
    }
    // `+ 0.0` turns -0.0 into 0.0, so the total order ties them as `==` does.
    let mut scored: Vec<(f64, bool)> = positives
        .iter()
        .map(|&s| (s, true))
        .chain(negatives.iter().map(|&s| (s, false)))
        .filter(|(s, _)| !s.is_nan())
        .map(|(s, p)| (s + 0.0, p))
        .collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Twice the number of won pairs: 2 per pair won outright, 1 per tie.
    let mut twice_wins: u128 = 0;
    let mut negatives_below: u128 = 0;
    let mut i = 0;
    while i < scored.len() {
        let mut j = i;
        let (mut pos, mut neg) = (0u128, 0u128);
        while j < scored.len() && scored[j].0 == scored[i].0 {
            if scored[j].1 {
                pos += 1;
            } else {
                neg += 1;
            }
            j += 1;
        }
        twice_wins += pos * (2 * negatives_below + neg);
        negatives_below += neg;
        i = j;
    }
    let pairs = (positives.len() * negatives.len()) as f64;
    Some(twice_wins as f64 * 0.5 / pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_interval_matches_scipy() {
        // scipy.stats.t.interval(0.95, 4, loc=3, scale=stats.sem([1,2,3,4,5]))
        // = (1.0367568385224393, 4.963243161477561)
        let (m, lo, hi) = t_interval(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.95).unwrap();
        assert_eq!(m, 3.0);
        assert!((lo - 1.036_756_838_522_439_3).abs() < 1e-9, "{lo}");
        assert!((hi - 4.963_243_161_477_561).abs() < 1e-9, "{hi}");
        assert_eq!(t_interval(&[1.0], 0.95), None);
        assert_eq!(t_interval(&[1.0, 2.0], 1.0), None);
    }

    /// The pairwise definition, for comparison.
    fn auc_pairwise(pos: &[f64], neg: &[f64]) -> Option<f64> {
        if pos.is_empty() || neg.is_empty() {
            return None;
        }
        let mut wins = 0.0f64;
        for p in pos {
            for n in neg {
                wins += if p > n {
                    1.0
                } else if p == n {
                    0.5
                } else {
                    0.0
                };
            }
        }
        Some(wins / (pos.len() * neg.len()) as f64)
    }

    #[test]
    fn empty_and_too_short_inputs_are_none() {
        assert_eq!(mean(&[]), None);
        assert_eq!(std(&[]), None);
        assert_eq!(std(&[1.0]), None);
        assert_eq!(median(&[]), None);
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(auc(&[], &[1.0]), None);
        assert_eq!(auc(&[1.0], &[]), None);
    }

    #[test]
    fn mean_by_hand() {
        // numpy's `mean` docs: a = [[1, 2], [3, 4]], np.mean(a) = 2.5.
        assert_eq!(mean(&[1.0, 2.0, 3.0, 4.0]), Some(2.5));
        assert_eq!(mean(&[7.0]), Some(7.0));
        // (0.1 + 0.2 + 0.3) / 3 summed left to right: 0.6000000000000001 / 3.
        assert_eq!(mean(&[0.1, 0.2, 0.3]), Some((0.1 + 0.2 + 0.3) / 3.0));
        assert!(mean(&[1.0, f64::NAN]).unwrap().is_nan());
    }

    #[test]
    fn sample_std_by_hand_and_from_the_python_docs() {
        // [1, 2, 3, 4]: mean 2.5, squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5,
        // 5 / 3, sqrt = 1.2909944487358056 (numpy 1.24: np.std([1, 2, 3, 4], ddof=1)).
        assert_eq!(std(&[1.0, 2.0, 3.0, 4.0]), Some((5.0f64 / 3.0).sqrt()));
        assert_eq!(std(&[1.0, 2.0, 3.0, 4.0]), Some(1.2909944487358056));
        // Python's `statistics.stdev` docs: stdev([1.5, 2.5, 2.5, 2.75, 3.25, 4.75])
        // = 1.0810874155219827 (numpy 1.24 with ddof=1 gives the same digits).
        let s = std(&[1.5, 2.5, 2.5, 2.75, 3.25, 4.75]).unwrap();
        assert!((s - 1.0810874155219827).abs() < 1e-15, "{s}");
        assert_eq!(std(&[3.0, 3.0, 3.0]), Some(0.0));
    }

    #[test]
    fn median_by_hand_and_from_the_numpy_docs() {
        // numpy's `median` docs: a = [[10, 7, 4], [3, 2, 1]], np.median(a) = 3.5.
        assert_eq!(median(&[10.0, 7.0, 4.0, 3.0, 2.0, 1.0]), Some(3.5));
        // Python's `statistics.median` docs: median([1, 3, 5]) = 3, median([1, 3, 5, 7]) = 4.
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[7.0, 1.0, 5.0, 3.0]), Some(4.0));
        assert_eq!(median(&[2.0]), Some(2.0));
        assert!(median(&[1.0, f64::NAN, 3.0]).unwrap().is_nan());
        // Infinities sort to the ends.
        assert_eq!(median(&[f64::INFINITY, 1.0, f64::NEG_INFINITY]), Some(1.0));
    }

    #[test]
    fn quantile_matches_numpy_linear() {
        // numpy's `quantile` docs: a = [[10, 7, 4], [3, 2, 1]], np.quantile(a, 0.5) = 3.5.
        let a = [10.0, 7.0, 4.0, 3.0, 2.0, 1.0];
        assert_eq!(quantile(&a, 0.5), Some(3.5));
        // By hand on sorted [1, 2, 3, 4, 7, 10]: h = 5 q.
        assert_eq!(quantile(&a, 0.0), Some(1.0));
        assert_eq!(quantile(&a, 1.0), Some(10.0));
        assert_eq!(quantile(&a, 0.25), Some(2.25)); // h = 1.25: 2 + 0.25 (3 - 2)
        assert_eq!(quantile(&a, 0.1), Some(1.5)); // h = 0.5: 2 - 0.5 (2 - 1)
        assert_eq!(quantile(&a, 0.9), Some(8.5)); // h = 4.5: 10 - 0.5 (10 - 7)
        // numpy 1.24.2, np.quantile([0.1, 0.2, 0.7], q), printed with repr: the rounding
        // of numpy's two-sided lerp, bit for bit.
        let b = [0.7, 0.1, 0.2];
        assert_eq!(quantile(&b, 0.3), Some(0.16));
        assert_eq!(quantile(&b, 0.75), Some(0.44999999999999996));
        assert_eq!(quantile(&b, 0.55), Some(0.25000000000000006));
        assert_eq!(quantile(&b, 0.1), Some(0.12000000000000001));
        assert_eq!(quantile(&b, 0.9), Some(0.6));
        assert_eq!(quantile(&[4.0], 0.3), Some(4.0));
        assert_eq!(quantile(&a, -0.1), None);
        assert_eq!(quantile(&a, 1.5), None);
        assert_eq!(quantile(&a, f64::NAN), None);
        assert!(quantile(&[1.0, f64::NAN], 0.5).unwrap().is_nan());
        // At an exact rank the value itself, even next to an overflowing difference.
        assert_eq!(quantile(&[-f64::MAX, f64::MAX], 0.0), Some(-f64::MAX));
    }

    #[test]
    fn auc_by_hand() {
        // scikit-learn's `roc_auc_score` docs: y_true [0, 0, 1, 1], scores
        // [0.1, 0.4, 0.35, 0.8] give 0.75: 0.35 beats 0.1, 0.8 beats both, 3 of 4 pairs.
        assert_eq!(auc(&[0.35, 0.8], &[0.1, 0.4]), Some(0.75));
        // Ties count one half: positive 0.5 ties a negative 0.5 and beats 0.2 → 1.5 / 2.
        assert_eq!(auc(&[0.5], &[0.5, 0.2]), Some(0.75));
        assert_eq!(auc(&[0.3], &[0.3]), Some(0.5));
        // -0.0 ties 0.0, as `==` says.
        assert_eq!(auc(&[-0.0], &[0.0]), Some(0.5));
        // Perfect and reversed rankings.
        assert_eq!(auc(&[2.0, 3.0], &[0.0, 1.0]), Some(1.0));
        assert_eq!(auc(&[0.0, 1.0], &[2.0, 3.0]), Some(0.0));
        // A NaN score wins no pair: positive NaN loses both; negative NaN beats the
        // positive 0.9 → pairs won: (0.9, 0.1) only, of 2 x 2.
        assert_eq!(auc(&[f64::NAN, 0.9], &[0.1, f64::NAN]), Some(0.25));
    }

    #[test]
    fn auc_equals_the_pairwise_count_bit_for_bit() {
        // Scores on a coarse grid so ties are common; lengths 1..=13 each side.
        let mut x: u64 = 12345;
        let mut next = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 33) % 7) as f64 * 0.25 - 0.5
        };
        for np in 1..=13 {
            for nn in 1..=13 {
                let pos: Vec<f64> = (0..np).map(|_| next()).collect();
                let neg: Vec<f64> = (0..nn).map(|_| next()).collect();
                let (a, b) = (auc(&pos, &neg).unwrap(), auc_pairwise(&pos, &neg).unwrap());
                assert_eq!(a.to_bits(), b.to_bits(), "{pos:?} {neg:?}");
            }
        }
    }
}
