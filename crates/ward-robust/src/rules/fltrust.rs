//! [`Fltrust`] (Cao et al. 2021).

use rayon::prelude::*;
use ward_core::Update;
use ward_fl::{Aggregate, Aggregator, FlError, RoundContext};

use crate::RobustError;
use crate::common::{CHUNK, like, rows, weighted_sum_f64};
use crate::error::need_updates;

const RULE: &str = "fltrust";

/// FLTrust (Cao, Fang, Liu & Gong 2021, "FLTrust: Byzantine-robust Federated Learning
/// via Trust Bootstrapping", Algorithm 1, eqs. 2-4), on deltas: `g_i = x_i - global`
/// and the server's `g_0 = server_update - global`, where `ctx.server_update` is the
/// model the server trained from `global` on its small root dataset (a model, like
/// the sites' updates).
///
/// - trust score `TS_i = ReLU(cos(g_i, g_0))` (0 for a zero `g_i`);
/// - each `g_i` rescaled to `||g_0||`: `h_i = g_i ||g_0|| / ||g_i||`;
/// - aggregate `global + sum_i TS_i h_i / sum_j TS_j`.
///
/// It needs no `f` (`n >= 1`): an update pointing away from the server's direction
/// gets no weight, and none can weigh more than its rescaled norm `||g_0||`, so the
/// output stays within `||g_0||` of the global model. Unweighted: `num_examples` is
/// ignored. `weights` reports `TS_i / sum_j TS_j`.
///
/// Errors: no server update in the round, or a server update equal to the global model
/// (no direction to trust). A round where every trust score is 0 (no update has a
/// positive cosine with the server's: the paper's `sum_j TS_j` is 0) trusts nobody:
/// the aggregate is the global model unchanged and every weight is 0, which the round's
/// records show (late in training, when the server's update on its small root sample is
/// mostly noise, this happens on real data: fed-heart-disease after a dozen rounds).
///
/// # Shapes
/// - updates and `ctx.server_update`: vectors of length `d`; aggregate: `d`;
///   `weights`: `n`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fltrust;

impl Fltrust {
    /// Checks `n >= 1`.
    pub fn check(&self, n: usize) -> Result<(), RobustError> {
        need_updates(RULE, None, "1", 1, n)
    }

    fn run(&self, updates: &[Update], ctx: &RoundContext<'_>) -> Result<Aggregate, RobustError> {
        self.check(updates.len())?;
        let rows = rows(updates, ctx)?;
        let n = rows.len();
        let server = ctx.server_update.ok_or_else(|| RobustError::Unusable {
            rule: RULE.into(),
            reason: "needs the server's update on its root sample (robust.root-samples), \
                     and this round has none"
                .into(),
        })?;
        ctx.global.check_same_layout(server)?;
        let g = ctx.global.values();
        let s = server.values();
        // One pass: <g_i, g_0> and ||g_i||^2 for every i, and ||g_0||^2.
        let (dots, norms2, s2) = g
            .par_chunks(CHUNK)
            .enumerate()
            .fold(
                || (vec![0f64; n], vec![0f64; n], 0f64),
                |(mut dots, mut norms, mut s2), (c, gc)| {
                    let start = c * CHUNK;
                    let sc = &s[start..start + gc.len()];
                    let g0: Vec<f64> = sc
                        .iter()
                        .zip(gc)
                        .map(|(&a, &b)| f64::from(a) - f64::from(b))
                        .collect();
                    s2 += g0.iter().map(|v| v * v).sum::<f64>();
                    for (i, r) in rows.iter().enumerate() {
                        let (mut dot, mut nn) = (0f64, 0f64);
                        for ((&x, &b), &z) in r[start..start + gc.len()].iter().zip(gc).zip(&g0) {
                            let y = f64::from(x) - f64::from(b);
                            dot += y * z;
                            nn += y * y;
                        }
                        dots[i] += dot;
                        norms[i] += nn;
                    }
                    (dots, norms, s2)
                },
            )
            .reduce(
                || (vec![0f64; n], vec![0f64; n], 0f64),
                |mut a, b| {
                    for (x, y) in a.0.iter_mut().zip(b.0) {
                        *x += y;
                    }
                    for (x, y) in a.1.iter_mut().zip(b.1) {
                        *x += y;
                    }
                    (a.0, a.1, a.2 + b.2)
                },
            );
        let norm0 = s2.sqrt();
        if norm0 == 0.0 {
            return Err(RobustError::Unusable {
                rule: RULE.into(),
                reason: "the server update equals the global model (zero norm): there is no \
                         direction to trust"
                    .into(),
            });
        }
        let trust: Vec<f64> = dots
            .iter()
            .zip(&norms2)
            .map(|(&dot, &nn)| {
                let norm = nn.sqrt();
                if norm == 0.0 {
                    0.0
                } else {
                    (dot / (norm * norm0)).max(0.0)
                }
            })
            .collect();
        let total: f64 = trust.iter().sum();
        if total <= 0.0 {
            return Ok(Aggregate {
                params: ctx.global.clone(),
                selected: None,
                weights: Some(vec![0.0; n]),
            });
        }
        // global + sum_i a_i (x_i - global), a_i = TS_i ||g_0|| / (||g_i|| sum_j TS_j).
        let a: Vec<f64> = trust
            .iter()
            .zip(&norms2)
            .map(|(&t, &nn)| {
                if t == 0.0 {
                    0.0
                } else {
                    t * norm0 / (nn.sqrt() * total)
                }
            })
            .collect();
        let sum_a: f64 = a.iter().sum();
        let mixed = weighted_sum_f64(&rows, &a);
        let values = mixed
            .par_iter()
            .zip(g.par_iter())
            .map(|(&m, &gk)| (m + (1.0 - sum_a) * f64::from(gk)) as f32)
            .collect();
        Ok(Aggregate {
            params: like(ctx.global, values)?,
            selected: None,
            weights: Some(trust.iter().map(|t| t / total).collect()),
        })
    }
}

impl Aggregator for Fltrust {
    fn name(&self) -> String {
        RULE.into()
    }

    fn aggregate(&self, updates: &[Update], ctx: &RoundContext<'_>) -> Result<Aggregate, FlError> {
        Ok(self.run(updates, ctx)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::{assert_close, upds, zeros};
    use ward_core::Params;

    /// By hand, global 0, server g0 = (1, 0) (norm 1):
    /// g1 = (2, 0): cos 1, TS 1, rescaled (1, 0);
    /// g2 = (3, 3): cos 1/sqrt(2), TS 0.7071, rescaled (3, 3)/sqrt(18) = (0.7071, 0.7071);
    /// g3 = (-5, 1): cos < 0, TS 0.
    /// aggregate = (1*(1, 0) + 0.7071*(0.7071, 0.7071)) / 1.7071 = (1.5, 0.5) / 1.7071
    /// = (0.87868, 0.29289).
    #[test]
    fn fltrust_by_hand() {
        let g = zeros(2);
        let server = Params::from_flat(vec![1., 0.]);
        let ctx = RoundContext {
            round: 1,
            global: &g,
            server_update: Some(&server),
            previous_update: None,
        };
        let a = Fltrust
            .aggregate(&upds(&[vec![2., 0.], vec![3., 3.], vec![-5., 1.]]), &ctx)
            .unwrap();
        let s = 1.0 + 0.5f64.sqrt();
        assert_close(
            a.params.values(),
            &[(1.5 / s) as f32, (0.5 / s) as f32],
            1e-6,
        );
        let w = a.weights.unwrap();
        assert!((w[0] - 1.0 / s).abs() < 1e-12 && w[2] == 0.0, "{w:?}");
    }

    #[test]
    fn errors_name_the_reason() {
        let g = zeros(2);
        let u = upds(&[vec![-1., 0.]]);
        let err = Fltrust
            .aggregate(&u, &RoundContext::new(1, &g))
            .unwrap_err();
        // The user's terms (the key to set), not the code's (`RoundContext::server_update`).
        assert!(
            err.to_string().contains("needs the server's update")
                && err.to_string().contains("robust.root-samples")
                && !err.to_string().contains("RoundContext"),
            "{err}"
        );
        let server = Params::from_flat(vec![1., 0.]);
        let ctx = RoundContext {
            round: 1,
            global: &g,
            server_update: Some(&server),
            previous_update: None,
        };
        // No update agrees with the server: nobody is trusted, the model stays.
        let a = Fltrust.aggregate(&u, &ctx).unwrap();
        assert_eq!(a.params, g);
        assert_eq!(a.weights, Some(vec![0.0]));
        let ctx = RoundContext {
            round: 1,
            global: &g,
            server_update: Some(&g),
            previous_update: None,
        };
        let err = Fltrust.aggregate(&u, &ctx).unwrap_err();
        assert!(err.to_string().contains("zero norm"), "{err}");
    }
}
