//! Helpers shared by the rules: the updates as row slices, parallel means and sums.

use rayon::prelude::*;
use ward_core::{Params, Update};
use ward_fl::RoundContext;

use crate::RobustError;

/// Coordinates per parallel task in the streaming passes (means, weighted sums).
pub(crate) const CHUNK: usize = 8192;

/// The updates' parameter vectors as rows, each checked against the global model's
/// layout.
///
/// # Shapes
/// - returns `n` slices of length `d = ctx.global.len()`.
pub(crate) fn rows<'a>(
    updates: &'a [Update],
    ctx: &RoundContext<'_>,
) -> Result<Vec<&'a [f32]>, RobustError> {
    if updates.is_empty() {
        return Err(RobustError::NoUpdates);
    }
    for u in updates {
        ctx.global.check_same_layout(&u.params)?;
    }
    Ok(updates.iter().map(|u| u.params.values()).collect())
}

/// `values` with the global model's layout.
pub(crate) fn like(global: &Params, values: Vec<f32>) -> Result<Params, RobustError> {
    Ok(Params::new(global.layout().clone(), values)?)
}

/// `sum_i w_i rows[i]` per coordinate, accumulated in `f64`; parallel over coordinate
/// chunks, one pass over the rows. Rows with weight 0 are not read.
///
/// # Shapes
/// - `rows`: `n` slices of length `d`; `weights`: `n`; returns `d` values.
pub(crate) fn weighted_sum_f64(rows: &[&[f32]], weights: &[f64]) -> Vec<f64> {
    let d = rows.first().map_or(0, |r| r.len());
    let mut out = vec![0f64; d];
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, acc)| {
        let start = c * CHUNK;
        let len = acc.len();
        for (r, &w) in rows.iter().zip(weights) {
            if w == 0.0 {
                continue;
            }
            for (a, &x) in acc.iter_mut().zip(&r[start..start + len]) {
                *a += w * f64::from(x);
            }
        }
    });
    out
}

/// [`weighted_sum_f64`] rounded to `f32`.
///
/// # Shapes
/// - `rows`: `n` slices of length `d`; `weights`: `n`; returns `d` values.
pub(crate) fn weighted_sum(rows: &[&[f32]], weights: &[f64]) -> Vec<f32> {
    to_f32(&weighted_sum_f64(rows, weights))
}

/// `f64` values rounded to `f32`.
pub(crate) fn to_f32(v: &[f64]) -> Vec<f32> {
    v.par_iter().map(|&x| x as f32).collect()
}

/// `||rows[i] - center||^2` for every row, in `f64`, in one parallel pass (each task
/// reads a chunk of `center` once for all rows).
///
/// # Shapes
/// - `rows`: `n` slices of length `d`; `center`: `d`; returns `n` values.
pub(crate) fn sq_dists_to(rows: &[&[f32]], center: &[f64]) -> Vec<f64> {
    let n = rows.len();
    center
        .par_chunks(CHUNK)
        .enumerate()
        .fold(
            || vec![0f64; n],
            |mut acc, (c, z)| {
                let start = c * CHUNK;
                for (a, r) in acc.iter_mut().zip(rows) {
                    *a += r[start..start + z.len()]
                        .iter()
                        .zip(z)
                        .map(|(&x, &y)| {
                            let t = f64::from(x) - y;
                            t * t
                        })
                        .sum::<f64>();
                }
                acc
            },
        )
        .reduce(
            || vec![0f64; n],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(b) {
                    *x += y;
                }
                a
            },
        )
}

/// The unweighted mean of the rows `idx` (f64 accumulation).
///
/// # Shapes
/// - `rows`: `n` slices of length `d`; returns `d` values.
pub(crate) fn mean_of(rows: &[&[f32]], idx: &[usize]) -> Vec<f32> {
    let picked: Vec<&[f32]> = idx.iter().map(|&i| rows[i]).collect();
    let w = vec![1.0 / idx.len() as f64; idx.len()];
    weighted_sum(&picked, &w)
}

#[cfg(test)]
pub(crate) mod testing {
    //! Test helpers: updates from plain vectors.
    use ward_core::{Metrics, Params, Update};

    /// An update with `values` from site `site`, one example.
    pub(crate) fn upd(site: usize, values: &[f32]) -> Update {
        Update {
            site,
            params: Params::from_flat(values.to_vec()),
            num_examples: 1,
            metrics: Metrics::new(),
            control_delta: None,
        }
    }

    /// Updates from rows.
    pub(crate) fn upds(rows: &[Vec<f32>]) -> Vec<Update> {
        rows.iter().enumerate().map(|(i, r)| upd(i, r)).collect()
    }

    /// Zeros of length `d` (the global model of a test).
    pub(crate) fn zeros(d: usize) -> Params {
        Params::from_flat(vec![0.0; d])
    }

    /// `|a - b| <= tol` for every coordinate.
    #[track_caller]
    pub(crate) fn assert_close(a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len(), "lengths");
        for (k, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tol * (1.0 + y.abs()),
                "coordinate {k}: {x} vs {y}\n{a:?}\n{b:?}"
            );
        }
    }
}
