//! [`NormClip`]: clip each update's delta to a norm.

use rayon::prelude::*;
use ward_core::{Params, Update};
use ward_fl::RoundContext;

use super::{PreAggregator, PreOutput};
use crate::RobustError;
use crate::common::{like, rows};
use crate::error::bad_param;

/// Norm clipping: each delta `y_i = x_i - global` longer than `c` is scaled to norm
/// `c`: `x_i <- global + y_i min(1, c / ||y_i||)` (norms in `f64`). Bounds any single
/// update's pull, so composed with the mean no update moves the aggregate by more
/// than `c / n`.
///
/// # Shapes
/// - `n` updates of length `d` in, `n` out (output `i` is input `i` clipped).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NormClip {
    c: f64,
}

impl NormClip {
    /// Clipping to radius `c > 0`.
    pub fn new(c: f64) -> Result<Self, RobustError> {
        if !(c.is_finite() && c > 0.0) {
            return Err(bad_param(
                "clip",
                "c",
                c,
                "the clipping radius must be a number > 0",
            ));
        }
        Ok(Self { c })
    }

    /// The radius.
    pub fn radius(&self) -> f64 {
        self.c
    }
}

impl PreAggregator for NormClip {
    fn name(&self) -> String {
        "clip".into()
    }

    fn apply(&self, updates: &[Update], ctx: &RoundContext<'_>) -> Result<PreOutput, RobustError> {
        let rows = rows(updates, ctx)?;
        let g = ctx.global.values();
        let out = updates
            .iter()
            .zip(&rows)
            .map(|(u, r)| {
                let norm = r
                    .par_iter()
                    .zip(g.par_iter())
                    .map(|(&x, &b)| {
                        let t = f64::from(x) - f64::from(b);
                        t * t
                    })
                    .sum::<f64>()
                    .sqrt();
                let params: Params = if norm > self.c {
                    let scale = self.c / norm;
                    let v = r
                        .par_iter()
                        .zip(g.par_iter())
                        .map(|(&x, &b)| {
                            (f64::from(b) + (f64::from(x) - f64::from(b)) * scale) as f32
                        })
                        .collect();
                    like(ctx.global, v)?
                } else {
                    u.params.clone()
                };
                Ok(Update {
                    params,
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
    use crate::common::testing::upds;

    #[test]
    fn clipping_by_hand() {
        // global (1, 1); deltas (3, 4) (norm 5 -> scaled by 2/5 to (1.2, 1.6)) and
        // (1, 0) (norm 1 <= 2, kept). Models: (2.2, 2.6) and (2, 1).
        let g = Params::from_flat(vec![1., 1.]);
        let out = NormClip::new(2.0)
            .unwrap()
            .apply(
                &upds(&[vec![4., 5.], vec![2., 1.]]),
                &RoundContext::new(1, &g),
            )
            .unwrap();
        assert_eq!(out.updates[0].params.values(), &[2.2, 2.6]);
        assert_eq!(out.updates[1].params.values(), &[2.0, 1.0]);
        assert_eq!(out.sources, vec![vec![0], vec![1]]);
        assert_eq!(
            NormClip::new(0.0).unwrap_err().to_string(),
            "clip: c = 0: the clipping radius must be a number > 0"
        );
    }
}
