//! Coordinate-wise order statistics (median, trimmed mean, Bulyan's second phase),
//! streaming over coordinates in chunks, parallel over chunks with rayon.
//!
//! Two kernels, picked by `n` (the number of rows):
//! - `n` up to [`NETWORK_MAX`]: copy a chunk of every row into an `n x C`
//!   buffer and sort each column with a sorting network (Batcher's odd-even merge sort,
//!   whose compare-exchanges are element-wise min/max over whole rows, so they
//!   vectorise);
//! - larger `n`: transpose a chunk into a `C x n` buffer and use `select_nth_unstable`
//!   per coordinate.
//!
//! Either way no `(d, n)` copy is made: memory is `O(n C)` per thread.

use rayon::prelude::*;

/// What to compute per coordinate from its `n` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reduce {
    /// The median (even `n`: the mean of the two middle values, as numpy).
    Median,
    /// The mean after dropping the `f` lowest and `f` highest values.
    Trimmed(usize),
    /// The mean of the `beta` values closest to the median (Bulyan).
    NearMedian(usize),
}

/// Largest `n` for the sorting-network kernel (measured: at n = 100 the network,
/// about 1100 compare-exchanges of whole rows, is still 2x faster than selection).
pub(crate) const NETWORK_MAX: usize = 128;

/// Coordinates per task of the select kernel.
const SELECT_CHUNK: usize = 256;

/// `reduce` applied to every coordinate of `rows`.
///
/// # Shapes
/// - `rows`: `n >= 1` slices of length `d`; returns `d` values.
pub(crate) fn coordinatewise(rows: &[&[f32]], reduce: Reduce) -> Vec<f32> {
    if rows.len() <= NETWORK_MAX {
        by_network(rows, reduce)
    } else {
        by_selection(rows, reduce)
    }
}

/// The sorting-network kernel of [`coordinatewise`].
fn by_network(rows: &[&[f32]], reduce: Reduce) -> Vec<f32> {
    let n = rows.len();
    let d = rows.first().map_or(0, |r| r.len());
    let mut out = vec![0f32; d];
    if n == 0 || d == 0 {
        return out;
    }
    let net = batcher_network(n);
    let chunk = network_chunk(n);
    out.par_chunks_mut(chunk).enumerate().for_each_init(
        || vec![0f32; n * chunk],
        |buf, (c, o)| {
            let len = o.len();
            let start = c * chunk;
            let buf = &mut buf[..n * len];
            for (i, r) in rows.iter().enumerate() {
                buf[i * len..(i + 1) * len].copy_from_slice(&r[start..start + len]);
            }
            for &(a, b) in &net {
                compare_exchange_rows(buf, len, a, b);
            }
            finish_sorted(buf, n, len, reduce, o);
        },
    );
    out
}

/// The transpose-and-select kernel of [`coordinatewise`].
fn by_selection(rows: &[&[f32]], reduce: Reduce) -> Vec<f32> {
    let n = rows.len();
    let d = rows.first().map_or(0, |r| r.len());
    let mut out = vec![0f32; d];
    if n == 0 || d == 0 {
        return out;
    }
    out.par_chunks_mut(SELECT_CHUNK).enumerate().for_each_init(
        || vec![0f32; n * SELECT_CHUNK],
        |buf, (c, o)| {
            let len = o.len();
            let start = c * SELECT_CHUNK;
            let buf = &mut buf[..n * len];
            for (i, r) in rows.iter().enumerate() {
                for (k, &v) in r[start..start + len].iter().enumerate() {
                    buf[k * n + i] = v;
                }
            }
            for (k, o) in o.iter_mut().enumerate() {
                *o = select_reduce(&mut buf[k * n..(k + 1) * n], reduce);
            }
        },
    );
    out
}

/// Columns per chunk of the network kernel: about 128 KiB of buffer (it stays in L2),
/// between 64 and 1024, a multiple of 64.
fn network_chunk(n: usize) -> usize {
    ((32_768 / n).clamp(64, 1024) / 64) * 64
}

/// The compare-exchanges of Batcher's odd-even merge sort for `n` wires (any `n`:
/// comparators touching a wire `>= n` are dropped, which is the network for the next
/// power of two with `+inf` padding at the end). Pairs `(a, b)` with `a < b`.
pub(crate) fn batcher_network(n: usize) -> Vec<(usize, usize)> {
    let mut net = Vec::new();
    let mut p = 1;
    while p < n {
        let mut k = p;
        while k >= 1 {
            let mut j = k % p;
            while j + k < n {
                for i in 0..k.min(n - j - k) {
                    if (i + j) / (2 * p) == (i + j + k) / (2 * p) {
                        net.push((i + j, i + j + k));
                    }
                }
                j += 2 * k;
            }
            k /= 2;
        }
        p *= 2;
    }
    net
}

/// Row `a` becomes the element-wise min and row `b` the max of the two (`a < b`).
#[inline]
fn compare_exchange_rows(buf: &mut [f32], len: usize, a: usize, b: usize) {
    let (lo, hi) = buf.split_at_mut(b * len);
    let ra = &mut lo[a * len..(a + 1) * len];
    let rb = &mut hi[..len];
    // Eight lanes at a time through local arrays, written back whole: `u < v ? u : v`
    // then compiles to minps/maxps (inputs are finite). Writing each lane in place lets
    // LLVM turn the no-op half of the stores into per-lane branches (10x slower).
    let (ca, ta) = ra.as_chunks_mut::<8>();
    let (cb, tb) = rb.as_chunks_mut::<8>();
    for (xa, ya) in ca.iter_mut().zip(cb.iter_mut()) {
        let mut lo = [0f32; 8];
        let mut hi = [0f32; 8];
        for l in 0..8 {
            let (u, v) = (xa[l], ya[l]);
            lo[l] = if u < v { u } else { v };
            hi[l] = if u < v { v } else { u };
        }
        *xa = lo;
        *ya = hi;
    }
    for (x, y) in ta.iter_mut().zip(tb.iter_mut()) {
        let (u, v) = (*x, *y);
        let (lo, hi) = if u < v { (u, v) } else { (v, u) };
        *x = lo;
        *y = hi;
    }
}

/// The output of each column of an `n x len` buffer whose columns are sorted.
fn finish_sorted(buf: &[f32], n: usize, len: usize, reduce: Reduce, out: &mut [f32]) {
    let row = |i: usize| &buf[i * len..(i + 1) * len];
    match reduce {
        Reduce::Median => {
            if n % 2 == 1 {
                out.copy_from_slice(row(n / 2));
            } else {
                for ((o, &a), &b) in out.iter_mut().zip(row(n / 2 - 1)).zip(row(n / 2)) {
                    *o = ((f64::from(a) + f64::from(b)) / 2.0) as f32;
                }
            }
        }
        Reduce::Trimmed(f) => {
            let mut acc = vec![0f64; len];
            for i in f..n - f {
                for (a, &v) in acc.iter_mut().zip(row(i)) {
                    *a += f64::from(v);
                }
            }
            let m = (n - 2 * f) as f64;
            for (o, a) in out.iter_mut().zip(acc) {
                *o = (a / m) as f32;
            }
        }
        Reduce::NearMedian(beta) => {
            // The beta values nearest the median form a window of sorted rows that holds
            // one of the middle rows; of the candidate windows, take the one whose
            // farther end is nearest (the leftmost on ties, as `near_median_sorted`).
            // The search runs row-wise over all columns at once.
            let beta = beta.clamp(1, n);
            let (mlo, mhi) = ((n - 1) / 2, n / 2);
            let med: Vec<f64> = row(mlo)
                .iter()
                .zip(row(mhi))
                .map(|(&a, &b)| (f64::from(a) + f64::from(b)) / 2.0)
                .collect();
            let first = (mlo + 1).saturating_sub(beta);
            let last = mhi.min(n - beta);
            let mut best_cost = vec![f64::INFINITY; len];
            let mut best_l = vec![first; len];
            for l in first..=last {
                let (a, b) = (row(l), row(l + beta - 1));
                for k in 0..len {
                    let c = (med[k] - f64::from(a[k])).max(f64::from(b[k]) - med[k]);
                    if c < best_cost[k] {
                        best_cost[k] = c;
                        best_l[k] = l;
                    }
                }
            }
            for (k, (o, &l)) in out.iter_mut().zip(&best_l).enumerate() {
                let s: f64 = (l..l + beta).map(|i| f64::from(buf[i * len + k])).sum();
                *o = (s / beta as f64) as f32;
            }
        }
    }
}

/// `reduce` of one coordinate's values by selection (reorders `col`).
fn select_reduce(col: &mut [f32], reduce: Reduce) -> f32 {
    match reduce {
        Reduce::Median => select_median(col) as f32,
        Reduce::Trimmed(f) => {
            let n = col.len();
            let middle: &[f32] = if f == 0 {
                col
            } else {
                let (_, _, right) = col.select_nth_unstable_by(f - 1, f32::total_cmp);
                // `right` holds the n - f largest; drop its f largest.
                let keep = right.len() - f;
                right.select_nth_unstable_by(keep, f32::total_cmp);
                &right[..keep]
            };
            let s: f64 = middle.iter().map(|&v| f64::from(v)).sum();
            (s / (n - 2 * f) as f64) as f32
        }
        Reduce::NearMedian(beta) => {
            let med = select_median(col);
            // Deviations from the median in f64 order, values kept alongside.
            let beta = beta.min(col.len());
            let (near, nth, _) = col.select_nth_unstable_by(beta - 1, |a, b| {
                (f64::from(*a) - med)
                    .abs()
                    .total_cmp(&(f64::from(*b) - med).abs())
            });
            let s: f64 = near.iter().map(|&v| f64::from(v)).sum::<f64>() + f64::from(*nth);
            (s / beta as f64) as f32
        }
    }
}

/// The median by selection (reorders `col`; even length: mean of the two middles).
fn select_median(col: &mut [f32]) -> f64 {
    let n = col.len();
    let (left, mid, _) = col.select_nth_unstable_by(n / 2, f32::total_cmp);
    let upper = f64::from(*mid);
    if n % 2 == 1 {
        upper
    } else {
        let lower = left.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        (f64::from(lower) + upper) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The median of a sorted slice (even length: mean of the two middle values).
    fn median_sorted(v: &[f32]) -> f64 {
        let n = v.len();
        if n % 2 == 1 {
            f64::from(v[n / 2])
        } else {
            (f64::from(v[n / 2 - 1]) + f64::from(v[n / 2])) / 2.0
        }
    }

    /// Mean of the `beta` values of a sorted slice closest to its median: they form a
    /// window around the median, grown one value at a time towards the closer side.
    fn near_median_sorted(v: &[f32], beta: usize) -> f32 {
        let n = v.len();
        let med = median_sorted(v);
        // Window [l, r): start empty at the first value >= med.
        let mut r = v.partition_point(|&x| f64::from(x) < med);
        let mut l = r;
        let mut sum = 0f64;
        for _ in 0..beta.min(n) {
            let take_left = if l == 0 {
                false
            } else if r == n {
                true
            } else {
                med - f64::from(v[l - 1]) <= f64::from(v[r]) - med
            };
            if take_left {
                l -= 1;
                sum += f64::from(v[l]);
            } else {
                sum += f64::from(v[r]);
                r += 1;
            }
        }
        (sum / beta as f64) as f32
    }

    /// The reference: sort each column and read the answer off the sorted values.
    fn reference(rows: &[Vec<f32>], reduce: Reduce) -> Vec<f32> {
        let d = rows[0].len();
        (0..d)
            .map(|k| {
                let mut col: Vec<f32> = rows.iter().map(|r| r[k]).collect();
                col.sort_by(f32::total_cmp);
                match reduce {
                    Reduce::Median => median_sorted(&col) as f32,
                    Reduce::Trimmed(f) => {
                        let m = &col[f..col.len() - f];
                        (m.iter().map(|&v| f64::from(v)).sum::<f64>() / m.len() as f64) as f32
                    }
                    Reduce::NearMedian(b) => near_median_sorted(&col, b),
                }
            })
            .collect()
    }

    #[test]
    fn batcher_sorts_every_binary_input_up_to_12_wires() {
        // 0-1 principle (Knuth, TAOCP 5.3.4): a comparator network sorts every input
        // iff it sorts every 0-1 input.
        for n in 1..=12usize {
            let net = batcher_network(n);
            for bits in 0u32..(1 << n) {
                let mut v: Vec<u8> = (0..n).map(|i| ((bits >> i) & 1) as u8).collect();
                for &(a, b) in &net {
                    if v[a] > v[b] {
                        v.swap(a, b);
                    }
                }
                assert!(v.windows(2).all(|w| w[0] <= w[1]), "n = {n}, bits {bits:b}");
            }
        }
        // Batcher's network has 19 comparators for 8 wires (Knuth, TAOCP 5.3.4, Fig. 52).
        assert_eq!(batcher_network(8).len(), 19);
    }

    #[test]
    fn near_median_by_hand() {
        // sorted [0, 1, 2, 10, 11]: median 2; the 3 closest are 1 (|1|), 0 (|2|), and
        // 2 itself (0) -> (0 + 1 + 2) / 3 = 1.
        assert_eq!(near_median_sorted(&[0., 1., 2., 10., 11.], 3), 1.0);
        // sorted [0, 4, 6, 7]: median 5; the 2 closest are 4 and 6 -> 5.
        assert_eq!(near_median_sorted(&[0., 4., 6., 7.], 2), 5.0);
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            rng_seed: proptest::test_runner::RngSeed::Fixed(17),
            cases: 64,
            ..ProptestConfig::default()
        })]

        /// Both kernels equal sort-then-read, for every reduce.
        #[test]
        fn kernels_equal_sorting(
            n in 1usize..40,
            d in 1usize..300,
            seed in any::<u64>(),
            which in 0usize..3,
        ) {
            let mut s = seed;
            let mut next = || {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                if which == 2 {
                    // distinct values: which of two equidistant values is "closest" is
                    // not defined, so keep ties out of the near-median comparison
                    (s >> 40) as f32 / 1024.0 - 8192.0
                } else {
                    // integers in [-8, 8): many ties, which the kernels must handle too
                    ((s >> 33) % 16) as f32 - 8.0
                }
            };
            let rows: Vec<Vec<f32>> = (0..n).map(|_| (0..d).map(|_| next()).collect()).collect();
            let reduce = match which {
                0 => Reduce::Median,
                1 => Reduce::Trimmed((n - 1) / 2 / 2),
                _ => Reduce::NearMedian(n.div_ceil(2)),
            };
            let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
            let want = reference(&rows, reduce);
            prop_assert_eq!(&by_network(&refs, reduce), &want);
            prop_assert_eq!(&by_selection(&refs, reduce), &want);
            prop_assert_eq!(coordinatewise(&refs, reduce), want);
        }
    }
}
