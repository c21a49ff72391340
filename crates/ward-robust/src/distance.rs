//! The pairwise squared-distance matrix behind Krum, Multi-Krum, Bulyan and NNM.
//!
//! Distances are summed over the differences `x_i - x_j` (not from the Gram matrix,
//! which cancels catastrophically when the vectors are complete models close to each
//! other): in `f32` over blocks of [`BLOCK`] coordinates, then in `f64` across blocks.
//! A block whose `f32` sum overflows (updates near `1e19` and beyond) is summed again
//! in `f64`, so far-away Byzantine vectors get large finite distances, not `inf`.
//! Parallel over chunks of coordinates; each task keeps its own `n x n` partial sums.

use rayon::prelude::*;

/// Coordinates summed in `f32` before the `f64` accumulation.
pub(crate) const BLOCK: usize = 256;

/// The `n x n` matrix of squared Euclidean distances, row-major, `f64`, with a zero
/// diagonal.
///
/// # Shapes
/// - `rows`: `n` slices of length `d`; returns `n * n` values.
pub(crate) fn pairwise_sq_dists(rows: &[&[f32]]) -> Vec<f64> {
    let n = rows.len();
    let d = rows.first().map_or(0, |r| r.len());
    if n < 2 || d == 0 {
        return vec![0.0; n * n];
    }
    // About 128 KiB of rows per task (they stay in L2 while every pair is formed).
    let chunk = ((32_768 / n).max(BLOCK) / BLOCK) * BLOCK;
    let pairs: Vec<(usize, usize)> = (0..n)
        .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
        .collect();
    let upper = (0..d.div_ceil(chunk))
        .into_par_iter()
        .fold(
            || vec![0f64; pairs.len()],
            |mut acc, c| {
                let start = c * chunk;
                let end = (start + chunk).min(d);
                let mut b = start;
                while b < end {
                    let e = (b + BLOCK).min(end);
                    let row = |i: usize| &rows[i][b..e];
                    let mut add = |i: usize, j: usize, s: f32| {
                        acc[pair_index(n, i, j)] += finite_or_f64(s, row(i), row(j));
                    };
                    // Rows two at a time against four at a time (2x4 tiles), the rest
                    // pair by pair.
                    let mut i = 0;
                    while i + 1 < n {
                        add(i, i + 1, sq_dist_f32(row(i), row(i + 1)));
                        let mut j = i + 2;
                        while j + 4 <= n {
                            let s = sq_dist_2x4(
                                [row(i), row(i + 1)],
                                [row(j), row(j + 1), row(j + 2), row(j + 3)],
                            );
                            for (a, sa) in s.iter().enumerate() {
                                for (t, &v) in sa.iter().enumerate() {
                                    add(i + a, j + t, v);
                                }
                            }
                            j += 4;
                        }
                        for j in j..n {
                            add(i, j, sq_dist_f32(row(i), row(j)));
                            add(i + 1, j, sq_dist_f32(row(i + 1), row(j)));
                        }
                        i += 2;
                    }
                    b = e;
                }
                acc
            },
        )
        .reduce(
            || vec![0f64; pairs.len()],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(b) {
                    *x += y;
                }
                a
            },
        );
    let mut m = vec![0f64; n * n];
    for (&(i, j), &v) in pairs.iter().zip(&upper) {
        m[i * n + j] = v;
        m[j * n + i] = v;
    }
    m
}

/// Index of pair `(i, j)`, `i < j`, in the row-major upper triangle.
fn pair_index(n: usize, i: usize, j: usize) -> usize {
    i * n - i * (i + 1) / 2 + (j - i - 1)
}

/// `s` as `f64`, or the block summed again in `f64` when the `f32` sum overflowed.
#[inline]
fn finite_or_f64(s: f32, a: &[f32], b: &[f32]) -> f64 {
    if s.is_finite() {
        f64::from(s)
    } else {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| {
                let t = f64::from(x) - f64::from(y);
                t * t
            })
            .sum()
    }
}

const LANES: usize = 8;

/// `||a - b||^2` in `f32` with [`LANES`] independent partial sums.
#[inline]
fn sq_dist_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (ac, ar) = a.as_chunks::<LANES>();
    let (bc, br) = b.as_chunks::<LANES>();
    for (x, y) in ac.iter().zip(bc) {
        for l in 0..LANES {
            let t = x[l] - y[l];
            acc[l] += t * t;
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (&x, &y) in ar.iter().zip(br) {
        let t = x - y;
        s += t * t;
    }
    s
}

/// `||a_s - b_t||^2` for two `a_s` and four `b_t` at once (each loaded vector serves
/// several pairs; 8 accumulators of 4 lanes stay in registers).
#[inline]
fn sq_dist_2x4(a: [&[f32]; 2], b: [&[f32]; 4]) -> [[f32; 4]; 2] {
    let mut acc = [[[0f32; 4]; 4]; 2];
    let ac = a.map(|r| r.as_chunks::<4>().0);
    let bc = b.map(|r| r.as_chunks::<4>().0);
    let len = ac[0].len();
    for k in 0..len {
        let x = [&ac[0][k], &ac[1][k]];
        let y = [&bc[0][k], &bc[1][k], &bc[2][k], &bc[3][k]];
        for s in 0..2 {
            for t in 0..4 {
                for l in 0..4 {
                    let u = x[s][l] - y[t][l];
                    acc[s][t][l] += u * u;
                }
            }
        }
    }
    let tail = len * 4;
    let mut out = [[0f32; 4]; 2];
    for s in 0..2 {
        for t in 0..4 {
            let mut v: f32 = acc[s][t].iter().sum();
            for (&x, &y) in a[s][tail..].iter().zip(&b[t][tail..]) {
                let u = x - y;
                v += u * u;
            }
            out[s][t] = v;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_by_hand() {
        // x0 = [0, 0], x1 = [3, 4], x2 = [1, 1]:
        // |x0-x1|^2 = 9 + 16 = 25; |x0-x2|^2 = 1 + 1 = 2; |x1-x2|^2 = 4 + 9 = 13.
        let rows: [&[f32]; 3] = [&[0., 0.], &[3., 4.], &[1., 1.]];
        let m = pairwise_sq_dists(&rows);
        assert_eq!(m, vec![0., 25., 2., 25., 0., 13., 2., 13., 0.]);
    }

    #[test]
    fn many_rows_and_long_vectors_match_f64_sums() {
        // 9 rows (two 1x4 tiles and a tail), d = 1000 (several blocks, a ragged end).
        let n = 9;
        let d = 1000;
        let rows: Vec<Vec<f32>> = (0..n)
            .map(|i| {
                (0..d)
                    .map(|k| ((i * 31 + k * 7) % 13) as f32 * 0.25 - 1.0)
                    .collect()
            })
            .collect();
        let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        let m = pairwise_sq_dists(&refs);
        for i in 0..n {
            for j in 0..n {
                let want: f64 = (0..d)
                    .map(|k| (f64::from(rows[i][k]) - f64::from(rows[j][k])).powi(2))
                    .sum();
                assert!(
                    (m[i * n + j] - want).abs() <= 1e-9 * want.max(1.0),
                    "{i} {j}"
                );
            }
        }
    }

    #[test]
    fn huge_finite_values_give_finite_distances() {
        // (1e30 - 0)^2 = 1e60 overflows f32 but not f64.
        let rows: [&[f32]; 2] = [&[1e30, 0.0], &[0.0, 0.0]];
        let m = pairwise_sq_dists(&rows);
        assert!((m[1] / 1e60 - 1.0).abs() < 1e-6, "{}", m[1]);
    }
}
