//! Aggregation and server optimizers.
//!
//! A round's accepted updates go through an [`Aggregator`] (here [`FedAvg`]: the mean of
//! the local models weighted by examples) and a [`ServerOptimizer`] that turns the
//! aggregate into the next global model: [`ServerOpt::Replace`] (FedAvg, FedProx,
//! Cyclic), [`ServerOpt::Sgd`] (SCAFFOLD's server learning rate) and the FedOpt family
//! (Reddi et al. 2021, Algorithm 2: FedAdam, FedYogi, FedAdagrad).

use serde::{Deserialize, Serialize};
use ward_core::{Params, Update};

use crate::FlError;

/// What an aggregator may know about the round besides the updates.
#[derive(Debug, Clone, Copy)]
pub struct RoundContext<'a> {
    /// The round (from 1).
    pub round: usize,
    /// The global model the sites started from.
    pub global: &'a Params,
    /// A trusted update computed by the server on its own root data (FLTrust), if any.
    pub server_update: Option<&'a Params>,
}

impl<'a> RoundContext<'a> {
    /// A context with no server update.
    pub fn new(round: usize, global: &'a Params) -> Self {
        Self {
            round,
            global,
            server_update: None,
        }
    }
}

/// The result of an aggregation: the aggregate model, plus, for rules that select or
/// weight updates, which ones and how (indices into the `updates` slice), so the round's
/// audit can record which site was excluded and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// The aggregate (a model, like the updates' params).
    pub params: Params,
    /// Indices of the updates the rule kept (rules that select, e.g. Krum).
    pub selected: Option<Vec<usize>>,
    /// Weight the rule gave each update (rules that weight, e.g. FLTrust).
    pub weights: Option<Vec<f64>>,
}

impl Aggregate {
    /// An aggregate without selection or weights.
    pub fn plain(params: Params) -> Self {
        Self {
            params,
            selected: None,
            weights: None,
        }
    }
}

/// Combines a round's accepted updates into one model. Implemented by [`FedAvg`] and by
/// every robust rule.
pub trait Aggregator {
    /// Name as written in configs and results (kebab-case, e.g. `fedavg`, `multi-krum`).
    fn name(&self) -> String;

    /// The fewest updates this rule accepts; fewer is an error before aggregation
    /// (a rule's breakdown assumption, e.g. `n >= 2f + 3` for Krum).
    fn min_updates(&self) -> usize {
        1
    }

    /// The aggregate of `updates` (non-empty, already validated: same layout, finite).
    fn aggregate(&self, updates: &[Update], ctx: &RoundContext<'_>) -> Result<Aggregate, FlError>;
}

/// Rewrites the updates of compromised sites before aggregation (model poisoning, for
/// research in simulation). Implemented by `ward-robust`'s attacks.
pub trait UpdateAttack {
    /// Name as written in configs (kebab-case).
    fn name(&self) -> String;

    /// Rewrites in place the updates with `compromised[k] == true`. `updates` are the
    /// round's valid updates in site order; `sites_in_round` counts the sites that sent
    /// them. Omniscient attacks may read the other (honest) updates.
    fn rewrite(
        &mut self,
        round: usize,
        global: &Params,
        updates: &mut [Update],
        compromised: &[bool],
    ) -> Result<(), FlError>;

    /// The attack's state (RNG), for the checkpoint.
    fn save_state(&self) -> Result<Vec<u8>, FlError>;

    /// Restores what [`UpdateAttack::save_state`] wrote.
    fn load_state(&mut self, state: &[u8]) -> Result<(), FlError>;
}

/// A stateful server-side mechanism that replaces the aggregation rule, e.g. central
/// DP (clip every update, add noise to the sum). Its state (clip norm, RNG) is
/// checkpointed with the server. Implemented in `ward-cli` over `ward-privacy`.
pub trait ServerMechanism {
    /// Name as written in results (e.g. `central-dp`).
    fn name(&self) -> String;

    /// The round's aggregate from its accepted, validated updates.
    fn aggregate(
        &mut self,
        updates: &[Update],
        ctx: &RoundContext<'_>,
    ) -> Result<Aggregate, FlError>;

    /// The mechanism's state, for the checkpoint.
    fn save_state(&self) -> Result<Vec<u8>, FlError>;

    /// Restores what [`ServerMechanism::save_state`] wrote.
    fn load_state(&mut self, state: &[u8]) -> Result<(), FlError>;
}

/// FedAvg's aggregation (McMahan et al. 2017): `sum_k n_k w_k / sum_k n_k`.
///
/// Accumulates in `f64` in one pass over the updates, so memory is O(model).
#[derive(Debug, Clone, Copy, Default)]
pub struct FedAvg;

impl Aggregator for FedAvg {
    fn name(&self) -> String {
        "fedavg".into()
    }

    fn aggregate(&self, updates: &[Update], ctx: &RoundContext<'_>) -> Result<Aggregate, FlError> {
        weighted_mean(
            updates.iter().map(|u| (&u.params, u.num_examples)),
            ctx.global,
        )
        .map(Aggregate::plain)
    }
}

/// `sum_k n_k v_k / sum_k n_k` over `(v_k, n_k)`, accumulated in `f64`. Updates with
/// `n_k = 0` carry no weight; if every weight is 0 the plain mean is taken.
pub fn weighted_mean<'a>(
    items: impl Iterator<Item = (&'a Params, usize)> + Clone,
    like: &Params,
) -> Result<Params, FlError> {
    let total: usize = items.clone().map(|(_, n)| n).sum();
    let count = items.clone().count();
    if count == 0 {
        return Err(FlError::NoUpdates);
    }
    let mut acc = vec![0f64; like.len()];
    for (p, n) in items {
        like.check_same_layout(p)?;
        let w = if total == 0 {
            1.0 / count as f64
        } else {
            n as f64 / total as f64
        };
        for (a, &v) in acc.iter_mut().zip(p.values()) {
            *a += w * f64::from(v);
        }
    }
    let values = acc.into_iter().map(|v| v as f32).collect();
    Ok(Params::new(like.layout().clone(), values)?)
}

/// Which FedOpt variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FedOptKind {
    /// `v = b2 v + (1-b2) d^2`.
    Adam,
    /// `v = v - (1-b2) d^2 sign(v - d^2)`.
    Yogi,
    /// `v = v + d^2`.
    Adagrad,
}

/// Turns the aggregate into the next global model; its state is checkpointed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServerOpt {
    /// The aggregate becomes the global model.
    Replace,
    /// `x = x + lr (aggregate - x)` (SCAFFOLD's global step size).
    Sgd {
        /// Server learning rate.
        lr: f32,
    },
    /// FedOpt (Reddi et al. 2021, Algorithm 2), with `d = aggregate - x`:
    /// `m = b1 m + (1-b1) d`; `v` by [`FedOptKind`]; `x = x + lr m / (sqrt(v) + tau)`.
    /// `m` starts at 0 and `v` at `tau^2`; no bias correction (as in the paper).
    FedOpt {
        /// Variant.
        kind: FedOptKind,
        /// Server learning rate (eta).
        lr: f32,
        /// beta1.
        beta1: f32,
        /// beta2 (unused by Adagrad).
        beta2: f32,
        /// tau.
        tau: f32,
        /// First moment (empty until the first round).
        m: Vec<f32>,
        /// Second moment (empty until the first round).
        v: Vec<f32>,
    },
}

/// Applies the server step of a strategy to the aggregate.
pub trait ServerOptimizer {
    /// The next global model from the current one and the round's aggregate.
    fn step(&mut self, global: &Params, aggregate: &Params) -> Result<Params, FlError>;
}

impl ServerOptimizer for ServerOpt {
    fn step(&mut self, global: &Params, aggregate: &Params) -> Result<Params, FlError> {
        global.check_same_layout(aggregate)?;
        match self {
            ServerOpt::Replace => Ok(aggregate.clone()),
            ServerOpt::Sgd { lr } => {
                let mut next = global.clone();
                for (x, &a) in next.values_mut().iter_mut().zip(aggregate.values()) {
                    *x += *lr * (a - *x);
                }
                Ok(next)
            }
            ServerOpt::FedOpt {
                kind,
                lr,
                beta1,
                beta2,
                tau,
                m,
                v,
            } => {
                let n = global.len();
                if m.is_empty() {
                    *m = vec![0.0; n];
                    *v = vec![*tau * *tau; n];
                }
                let mut next = global.clone();
                for (((x, &a), m), v) in next
                    .values_mut()
                    .iter_mut()
                    .zip(aggregate.values())
                    .zip(m.iter_mut())
                    .zip(v.iter_mut())
                {
                    let d = a - *x;
                    *m = *beta1 * *m + (1.0 - *beta1) * d;
                    let d2 = d * d;
                    *v = match kind {
                        FedOptKind::Adam => *beta2 * *v + (1.0 - *beta2) * d2,
                        FedOptKind::Yogi => *v - (1.0 - *beta2) * d2 * (*v - d2).signum(),
                        FedOptKind::Adagrad => *v + d2,
                    };
                    *x += *lr * *m / (v.sqrt() + *tau);
                }
                Ok(next)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ward_core::Metrics;

    fn upd(v: Vec<f32>, n: usize) -> Update {
        Update {
            site: 0,
            params: Params::from_flat(v),
            num_examples: n,
            metrics: Metrics::new(),
            control_delta: None,
        }
    }

    #[test]
    fn fedavg_weights_by_examples() {
        // (1*[2, 0] + 3*[4, 8]) / 4 = [3.5, 6]
        let g = Params::from_flat(vec![0.0, 0.0]);
        let a = FedAvg
            .aggregate(
                &[upd(vec![2.0, 0.0], 1), upd(vec![4.0, 8.0], 3)],
                &RoundContext::new(1, &g),
            )
            .unwrap();
        assert_eq!(a.params.values(), &[3.5, 6.0]);
    }

    /// One FedAdam step by hand (Reddi et al. 2021, Alg. 2), x = 1, aggregate 3.5,
    /// eta 0.01, b1 0.9, b2 0.999, tau 1e-8:
    /// d = 2.5; m = 0.1 * 2.5 = 0.25; v = 0.999 * 1e-16 + 0.001 * 6.25 = 0.00625;
    /// x = 1 + 0.01 * 0.25 / (sqrt(0.00625) + 1e-8) = 1 + 0.0025 / 0.0790569 = 1.0316228.
    #[test]
    fn fedadam_step_by_hand() {
        let mut o = ServerOpt::FedOpt {
            kind: FedOptKind::Adam,
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            tau: 1e-8,
            m: vec![],
            v: vec![],
        };
        let next = o
            .step(&Params::from_flat(vec![1.0]), &Params::from_flat(vec![3.5]))
            .unwrap();
        assert!((next.values()[0] - 1.031_622_8).abs() < 1e-6, "{next:?}");
        // Second step with d = 0 (aggregate equals x): m = 0.225, v = 0.00624375,
        // x += 0.01 * 0.225 / 0.0790174 = 0.0284747.
        let x1 = next.values()[0];
        let next2 = o.step(&next, &next.clone()).unwrap();
        assert!((next2.values()[0] - (x1 + 0.028_474_7)).abs() < 1e-5);
    }

    /// FedYogi and FedAdagrad's second moments by hand from v0 = tau^2 = 0.01 (tau 0.1):
    /// d = 1: Yogi v = 0.01 - 0.001 * 1 * sign(0.01 - 1) = 0.011; Adagrad v = 1.01.
    /// x = 0 + 1 * 0.1 / (sqrt(v) + 0.1).
    #[test]
    fn fedyogi_and_fedadagrad_by_hand() {
        for (kind, v) in [(FedOptKind::Yogi, 0.011f32), (FedOptKind::Adagrad, 1.01)] {
            let mut o = ServerOpt::FedOpt {
                kind,
                lr: 1.0,
                beta1: 0.9,
                beta2: 0.999,
                tau: 0.1,
                m: vec![],
                v: vec![],
            };
            let next = o
                .step(&Params::from_flat(vec![0.0]), &Params::from_flat(vec![1.0]))
                .unwrap();
            let want = 0.1 / (v.sqrt() + 0.1);
            assert!((next.values()[0] - want).abs() < 1e-6, "{kind:?}");
        }
    }

    #[test]
    fn server_sgd_interpolates() {
        let mut o = ServerOpt::Sgd { lr: 0.5 };
        let n = o
            .step(&Params::from_flat(vec![2.0]), &Params::from_flat(vec![4.0]))
            .unwrap();
        assert_eq!(n.values(), &[3.0]);
    }
}
