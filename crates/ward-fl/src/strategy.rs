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
    /// The previous round's aggregate update (the aggregate minus that round's global
    /// model, before the server optimizer), for rules with
    /// [`Aggregator::uses_history`]: that of the last round that aggregated, `None`
    /// before the first.
    pub previous_update: Option<&'a Params>,
}

impl<'a> RoundContext<'a> {
    /// A context with no server update.
    pub fn new(round: usize, global: &'a Params) -> Self {
        Self {
            round,
            global,
            server_update: None,
            previous_update: None,
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

    /// Whether the rule reads [`RoundContext::previous_update`] (e.g. centered clipping
    /// starts from it). The federation then keeps each round's aggregate update, in its
    /// checkpoint too.
    fn uses_history(&self) -> bool {
        false
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

/// The metric a site reports for q-FFL: its mean loss on its training data under the
/// global model it was sent, before local training (`F_k`).
pub const START_LOSS: &str = "start_loss";

/// q-FFL's aggregation (Li, Sanjabi, Beirami and Smith, ICLR 2020, "Fair Resource
/// Allocation in Federated Learning", Algorithm 2 q-FedAvg). From the global model `w`,
/// each update's local model `w_k` and start loss `F_k` ([`START_LOSS`] in its
/// metrics): `Delta w_k = L (w - w_k)`, `h_k = q F_k^(q-1) |Delta w_k|^2 + L F_k^q`,
/// and the aggregate is `w - sum_k F_k^q Delta w_k / sum_k h_k` (accumulated in `f64`).
/// With `q = 0`, `h_k = L` and the aggregate is the plain mean of the `w_k`: FedAvg with
/// uniform site weights. The weight reported per update is `L F_k^q / sum_j h_j`, the
/// share of `w - w_k` the step takes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QFedAvg {
    /// The fairness exponent q (>= 0).
    pub q: f64,
    /// The Lipschitz estimate L (> 0; the paper's code uses `1 / lr`).
    pub lipschitz: f64,
}

impl QFedAvg {
    /// `F_k` of `u`, checked (finite, >= 0; > 0 where `q` is in (0, 1), whose
    /// `F^(q-1)` is infinite at 0).
    fn start_loss(&self, u: &Update) -> Result<f64, FlError> {
        let f = u.metrics.get(START_LOSS).copied().ok_or_else(|| {
            FlError::Config(format!(
                "q-FFL: the update of site {} carries no {START_LOSS} (its loss before local training)",
                u.site
            ))
        })?;
        let zero_ok = self.q == 0.0 || self.q >= 1.0;
        if !f.is_finite() || f < 0.0 || (f == 0.0 && !zero_ok) {
            return Err(FlError::Config(format!(
                "q-FFL: site {} reported {START_LOSS} = {f}; it must be finite and > 0",
                u.site
            )));
        }
        Ok(f)
    }
}

impl Aggregator for QFedAvg {
    fn name(&self) -> String {
        "qffl".into()
    }

    fn aggregate(&self, updates: &[Update], ctx: &RoundContext<'_>) -> Result<Aggregate, FlError> {
        if updates.is_empty() {
            return Err(FlError::NoUpdates);
        }
        let (q, l) = (self.q, self.lipschitz);
        let global = ctx.global;
        let mut num = vec![0f64; global.len()];
        let mut h_sum = 0f64;
        let mut fq_all = Vec::with_capacity(updates.len());
        for u in updates {
            global.check_same_layout(&u.params)?;
            let f = self.start_loss(u)?;
            let fq = if q == 0.0 { 1.0 } else { f.powf(q) };
            let mut sq = 0f64;
            for ((n, &w), &wk) in num.iter_mut().zip(global.values()).zip(u.params.values()) {
                let d = l * (f64::from(w) - f64::from(wk));
                sq += d * d;
                *n += fq * d;
            }
            h_sum += if q == 0.0 {
                l
            } else {
                q * f.powf(q - 1.0) * sq + l * fq
            };
            fq_all.push(fq);
        }
        let values = global
            .values()
            .iter()
            .zip(&num)
            .map(|(&w, &n)| (f64::from(w) - n / h_sum) as f32)
            .collect();
        Ok(Aggregate {
            params: Params::new(global.layout().clone(), values)?,
            selected: None,
            weights: Some(fq_all.iter().map(|fq| l * fq / h_sum).collect()),
        })
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

    fn with_loss(v: Vec<f32>, n: usize, f: f64) -> Update {
        let mut u = upd(v, n);
        u.metrics.insert(START_LOSS.into(), f);
        u
    }

    /// One q-FedAvg step by hand, q = 1, L = 2, w = [1, 0]:
    /// site 1: w_1 = [0, 1], F_1 = 0.5: Delta_1 = 2 (w - w_1) = [2, -2], |Delta_1|^2 = 8,
    ///   h_1 = 1 * 0.5^0 * 8 + 2 * 0.5 = 9;
    /// site 2: w_2 = [1, 2], F_2 = 2: Delta_2 = [0, -4], |Delta_2|^2 = 16,
    ///   h_2 = 16 + 2 * 2 = 20;
    /// sum F^q Delta = 0.5 [2, -2] + 2 [0, -4] = [1, -9]; sum h = 29;
    /// w+ = [1 - 1/29, 0 + 9/29] = [0.9655172, 0.3103448].
    /// Weights L F^q / sum h: [1/29, 4/29].
    #[test]
    fn qffl_step_by_hand() {
        let g = Params::from_flat(vec![1.0, 0.0]);
        let a = QFedAvg {
            q: 1.0,
            lipschitz: 2.0,
        }
        .aggregate(
            &[
                with_loss(vec![0.0, 1.0], 10, 0.5),
                with_loss(vec![1.0, 2.0], 1, 2.0),
            ],
            &RoundContext::new(1, &g),
        )
        .unwrap();
        assert_eq!(
            a.params.values(),
            &[(1.0 - 1.0 / 29.0) as f32, (9.0 / 29.0) as f32]
        );
        let w = a.weights.unwrap();
        assert!((w[0] - 1.0 / 29.0).abs() < 1e-15 && (w[1] - 4.0 / 29.0).abs() < 1e-15);
        // q = 2, same updates: F^q = [0.25, 4], h = [2*0.5*8 + 2*0.25, 2*2*16 + 2*4]
        // = [8.5, 72]; sum F^q Delta = [0.5, -0.5] + [0, -16] = [0.5, -16.5]; sum h = 80.5.
        let a2 = QFedAvg {
            q: 2.0,
            lipschitz: 2.0,
        }
        .aggregate(
            &[
                with_loss(vec![0.0, 1.0], 10, 0.5),
                with_loss(vec![1.0, 2.0], 1, 2.0),
            ],
            &RoundContext::new(1, &g),
        )
        .unwrap();
        assert_eq!(
            a2.params.values(),
            &[(1.0 - 0.5 / 80.5) as f32, (16.5 / 80.5) as f32]
        );
    }

    /// q = 0: h_k = L, the step is the plain mean of the local models whatever the
    /// losses, L and the example counts (FedAvg with uniform site weights).
    #[test]
    fn qffl_with_q_zero_is_uniform_fedavg() {
        let g = Params::from_flat(vec![0.3, -1.2, 2.0]);
        let ups = [
            with_loss(vec![1.0, 0.5, -0.25], 1, 0.7),
            with_loss(vec![-2.0, 4.0, 0.125], 100, 3.0),
            with_loss(vec![0.5, -1.5, 8.0], 7, 0.01),
        ];
        let uniform: Vec<Update> = ups
            .iter()
            .map(|u| Update {
                num_examples: 1,
                ..u.clone()
            })
            .collect();
        let want = FedAvg
            .aggregate(&uniform, &RoundContext::new(1, &g))
            .unwrap();
        // By hand: the means [-1/6, 1, 7.875/3].
        assert_eq!(want.params.values(), &[-1.0 / 6.0, 1.0, 2.625]);
        for l in [1.0, 1000.0, 0.37] {
            let a = QFedAvg {
                q: 0.0,
                lipschitz: l,
            }
            .aggregate(&ups, &RoundContext::new(1, &g))
            .unwrap();
            for (x, y) in a.params.values().iter().zip(want.params.values()) {
                assert!(
                    (x - y).abs() <= 1e-6 * y.abs().max(1.0),
                    "L {l}: {x} vs {y}"
                );
            }
            for w in a.weights.unwrap() {
                assert!((w - 1.0 / 3.0).abs() < 1e-15);
            }
        }
        // An update without its start loss is refused, naming the metric.
        let missing = upd(vec![0.0, 0.0, 0.0], 1);
        let e = QFedAvg {
            q: 1.0,
            lipschitz: 1.0,
        }
        .aggregate(&[missing], &RoundContext::new(1, &g))
        .unwrap_err();
        assert!(e.to_string().contains(START_LOSS), "{e}");
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
