//! [`Nnm`]: nearest-neighbour mixing (Allouah et al. 2023).

use rayon::prelude::*;
use ward_core::Update;
use ward_fl::RoundContext;

use super::{PreAggregator, PreOutput};
use crate::RobustError;
use crate::common::{like, rows};
use crate::distance::pairwise_sq_dists;
use crate::error::need_updates;

/// Nearest-neighbour mixing (Allouah, Farhadkhani, Guerraoui, Gupta, Pinot &
/// Stephan 2023, "Fixing by Mixing", Algorithm 1): each update is replaced by the mean
/// of its `n - f` nearest updates in squared Euclidean distance, itself included (ties
/// by index, as `rules_numpy.nnm`'s stable argsort).
///
/// Assumption: `n > 2f`, i.e. `n >= 2f+1` (an honest majority: the paper's guarantees
/// for the rule after it hold only then; with fewer, a Byzantine majority of each
/// neighbourhood could be mixed in). One distance matrix (parallel, `f64`); memory O(n d)
/// for the `n` mixed updates it hands on.
///
/// # Shapes
/// - `n` updates of length `d` in, `n` out (output `i` is input `i`'s neighbourhood
///   mean).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nnm {
    f: usize,
}

impl Nnm {
    /// NNM with `f` Byzantine updates (mixes over `n - f` neighbours).
    pub fn new(f: usize) -> Self {
        Self { f }
    }

    /// The number of Byzantine updates.
    pub fn f(&self) -> usize {
        self.f
    }

    /// Checks `n >= 2f+1`.
    pub fn check(&self, n: usize) -> Result<(), RobustError> {
        need_updates("nnm", Some(self.f), "2f+1", 2 * self.f + 1, n)
    }

    /// The `n - f` nearest neighbours of every row (itself included).
    pub(crate) fn neighbours(&self, rows: &[&[f32]]) -> Vec<Vec<usize>> {
        let n = rows.len();
        let k = n - self.f;
        let dist = pairwise_sq_dists(rows);
        (0..n)
            .map(|i| {
                let mut order: Vec<usize> = (0..n).collect();
                order.sort_by(|&a, &b| dist[i * n + a].total_cmp(&dist[i * n + b]));
                order.truncate(k);
                order
            })
            .collect()
    }
}

/// Rows summed in `f32` before each `f64` flush in [`mix`].
const FLUSH: usize = 16;

/// Coordinates per task in [`mix`].
const MIX_CHUNK: usize = 1024;

/// Outputs accumulated at once in [`mix`] (kept in registers).
const LANES: usize = 32;

/// `out[i] = mean of rows[nb[i]]` for every `i`, parallel over coordinate chunks (each
/// task reads a chunk of every row from memory once, then from cache for every
/// output). Sums in `f32` over groups of [`FLUSH`] rows, then in `f64`.
///
/// # Shapes
/// - `rows`: `n` slices of length `d`; `nb`: `n` index lists; returns `n x d`.
fn mix(rows: &[&[f32]], nb: &[Vec<usize>]) -> Vec<Vec<f32>> {
    let d = rows.first().map_or(0, |r| r.len());
    let mut out: Vec<Vec<f32>> = nb.iter().map(|_| vec![0f32; d]).collect();
    let chunks = d.div_ceil(MIX_CHUNK);
    // Split every output into chunks; task c owns chunk c of every output.
    let mut per_chunk: Vec<Vec<&mut [f32]>> = (0..chunks).map(|_| Vec::new()).collect();
    for o in &mut out {
        for (c, part) in o.chunks_mut(MIX_CHUNK).enumerate() {
            per_chunk[c].push(part);
        }
    }
    per_chunk
        .into_par_iter()
        .enumerate()
        .for_each(|(c, parts)| {
            let start = c * MIX_CHUNK;
            for (part, idx) in parts.into_iter().zip(nb) {
                let m = idx.len() as f64;
                let (blocks, tail) = part.as_chunks_mut::<LANES>();
                // LANES outputs stay in registers while every neighbour's values stream in.
                for (b, ob) in blocks.iter_mut().enumerate() {
                    let at = start + b * LANES;
                    let mut acc64 = [0f64; LANES];
                    for group in idx.chunks(FLUSH) {
                        let mut acc = [0f32; LANES];
                        for &j in group {
                            let x = &rows[j][at..at + LANES];
                            for l in 0..LANES {
                                acc[l] += x[l];
                            }
                        }
                        for l in 0..LANES {
                            acc64[l] += f64::from(acc[l]);
                        }
                    }
                    for l in 0..LANES {
                        ob[l] = (acc64[l] / m) as f32;
                    }
                }
                let at = start + blocks.len() * LANES;
                for (k, o) in tail.iter_mut().enumerate() {
                    let s: f64 = idx.iter().map(|&j| f64::from(rows[j][at + k])).sum();
                    *o = (s / m) as f32;
                }
            }
        });
    out
}

impl PreAggregator for Nnm {
    fn name(&self) -> String {
        "nnm".into()
    }

    fn min_inputs(&self) -> usize {
        2 * self.f + 1
    }

    fn apply(&self, updates: &[Update], ctx: &RoundContext<'_>) -> Result<PreOutput, RobustError> {
        self.check(updates.len())?;
        let rows = rows(updates, ctx)?;
        let nb = self.neighbours(&rows);
        let mixed = mix(&rows, &nb);
        let out = updates
            .iter()
            .zip(mixed)
            .map(|(u, v)| {
                Ok(Update {
                    params: like(ctx.global, v)?,
                    ..u.clone()
                })
            })
            .collect::<Result<Vec<_>, RobustError>>()?;
        Ok(PreOutput {
            updates: out,
            sources: (0..updates.len()).map(|i| vec![i]).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::{assert_close, upds, zeros};

    #[test]
    fn nnm_by_hand() {
        // f = 1, n = 4 (3 nearest, itself included), 1-D values 0, 1, 3, 10:
        // 0 -> {0, 1, 3} mean 4/3; 1 -> {1, 0, 3} 4/3; 3 -> {3, 1, 0} 4/3;
        // 10 -> {10, 3, 1} 14/3.
        let g = zeros(1);
        let out = Nnm::new(1)
            .apply(
                &upds(&[vec![0.], vec![1.], vec![3.], vec![10.]]),
                &RoundContext::new(1, &g),
            )
            .unwrap();
        let v: Vec<f32> = out.updates.iter().map(|u| u.params.values()[0]).collect();
        let (a, b) = ((4.0f64 / 3.0) as f32, (14.0f64 / 3.0) as f32);
        assert_eq!(v, vec![a, a, a, b]);
        assert_eq!(
            Nnm::new(4).check(4).unwrap_err().to_string(),
            "nnm with f = 4 needs n >= 2f+1 = 9 updates, got 4"
        );
        // n = 2f exactly: no honest majority, refused.
        assert!(Nnm::new(2).check(4).is_err());
        Nnm::new(2).check(5).unwrap();
    }

    /// numpy reference: `rules_numpy.nnm(X, f=2)` on
    /// X = default_rng(12).standard_normal((6, 3), float32) (see `crate::reference`).
    #[test]
    fn nnm_matches_numpy_reference() {
        let (x, _, want_rows) = crate::reference::nnm_case();
        let g = zeros(3);
        let out = Nnm::new(2)
            .apply(&upds(&x), &RoundContext::new(1, &g))
            .unwrap();
        for (u, w) in out.updates.iter().zip(&want_rows) {
            assert_close(u.params.values(), w, 1e-6);
        }
    }
}
