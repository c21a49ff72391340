//! `[federation]`: rounds, sampling and the strategy.

use serde::{Deserialize, Serialize};

use super::*;

/// Federated strategy, or a non-federated baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyKind {
    /// FedAvg (McMahan et al. 2017): average of local models weighted by examples.
    #[default]
    Fedavg,
    /// FedProx (Li et al. 2020): FedAvg with a proximal term `mu/2 |w - w_global|^2`.
    Fedprox,
    /// SCAFFOLD (Karimireddy et al. 2020), option II control variates.
    Scaffold,
    /// FedAdam (Reddi et al. 2021).
    Fedadam,
    /// FedYogi (Reddi et al. 2021).
    Fedyogi,
    /// FedAdagrad (Reddi et al. 2021).
    Fedadagrad,
    /// FedBN (Li et al. 2021): FedAvg, but BatchNorm layers (affine parameters and
    /// running statistics) stay at each site.
    Fedbn,
    /// q-FFL (Li, Sanjabi, Beirami and Smith, ICLR 2020, Algorithm 2 q-FedAvg): sites
    /// with a higher loss weigh more, by `federation.q` (q = 0 is FedAvg with uniform
    /// site weights).
    Qffl,
    /// Cyclic: one site per round, order reshuffled each cycle.
    Cyclic,
    /// Baseline: all sites' training data pooled at one place.
    Pooled,
    /// Baseline: one site trains alone (`federation.local-site`), scored on every site.
    Local,
}

impl StrategyKind {
    /// Lower-case name as written in configs and results.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fedavg => "fedavg",
            Self::Fedprox => "fedprox",
            Self::Scaffold => "scaffold",
            Self::Fedadam => "fedadam",
            Self::Fedyogi => "fedyogi",
            Self::Fedadagrad => "fedadagrad",
            Self::Fedbn => "fedbn",
            Self::Qffl => "qffl",
            Self::Cyclic => "cyclic",
            Self::Pooled => "pooled",
            Self::Local => "local",
        }
    }

    /// Whether this is a FedOpt server optimizer (FedAdam, FedYogi, FedAdagrad).
    pub fn is_fedopt(self) -> bool {
        matches!(self, Self::Fedadam | Self::Fedyogi | Self::Fedadagrad)
    }
}

/// `[federation]`: rounds, sampling and the strategy's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FederationSpec {
    /// Strategy or baseline.
    #[serde(default)]
    pub strategy: StrategyKind,
    /// Number of rounds (>= 1). Rounds count from 1.
    #[serde(default = "default_rounds")]
    pub rounds: usize,
    /// Sites sampled per round (uniformly, without replacement). Absent: all sites.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sites_per_round: Option<usize>,
    /// FedProx proximal weight mu (> 0, `fedprox` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mu: Option<f64>,
    /// Server learning rate (`scaffold`, `fedadam`, `fedyogi`, `fedadagrad`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_lr: Option<f64>,
    /// Server beta1 (FedOpt), in [0, 1).
    #[serde(default = "default_beta1")]
    pub beta1: f64,
    /// Server beta2 (FedAdam, FedYogi), in [0, 1).
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    /// Server adaptivity tau (FedOpt, > 0).
    #[serde(default = "default_eps")]
    pub tau: f64,
    /// q-FFL's fairness exponent q (>= 0; `qffl` only, required there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<f64>,
    /// q-FFL's Lipschitz estimate L (> 0; `qffl` only): `Delta w_k = L (w - w_k)`.
    /// Absent: `1 / train.lr`, as in the paper's code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qffl_lipschitz: Option<f64>,
    /// Local baseline only: the site that trains (its name as in the data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_site: Option<String>,
    /// After the last round, each site fine-tunes the global model for this many local
    /// steps and is also scored on its own test set (personalised evaluation). 0: off.
    #[serde(default)]
    pub fine_tune_steps: usize,
    /// Evaluate the global model on every site's test set every this many rounds (0: only
    /// after the last round). The final round is always evaluated.
    #[serde(default = "default_eval_every")]
    pub eval_every: usize,
}

pub(super) fn default_rounds() -> usize {
    15
}
pub(super) fn default_eval_every() -> usize {
    1
}

impl Default for FederationSpec {
    fn default() -> Self {
        Self {
            strategy: StrategyKind::Fedavg,
            rounds: default_rounds(),
            sites_per_round: None,
            mu: None,
            server_lr: None,
            beta1: default_beta1(),
            beta2: default_beta2(),
            tau: default_eps(),
            q: None,
            qffl_lipschitz: None,
            local_site: None,
            fine_tune_steps: 0,
            eval_every: default_eval_every(),
        }
    }
}

impl FederationSpec {
    /// q-FFL's `(q, L)` where the strategy is `qffl`, with L defaulting to
    /// `1 / train_lr` (the paper's code).
    pub fn qffl(&self, train_lr: f64) -> Option<(f64, f64)> {
        (self.strategy == StrategyKind::Qffl).then(|| {
            (
                self.q.unwrap_or(0.0),
                self.qffl_lipschitz.unwrap_or(1.0 / train_lr),
            )
        })
    }

    fn validate_qffl(&self) -> Result<(), ConfigError> {
        let s = self.strategy;
        let only = |key: &str| {
            ConfigError::new(
                key,
                format!("is only for strategy \"qffl\", not \"{}\"", s.as_str()),
            )
        };
        if s != StrategyKind::Qffl {
            if self.q.is_some() {
                return Err(only("federation.q"));
            }
            if self.qffl_lipschitz.is_some() {
                return Err(only("federation.qffl-lipschitz"));
            }
            return Ok(());
        }
        let Some(q) = self.q else {
            return Err(ConfigError::new(
                "federation.q",
                "is required for strategy \"qffl\" (e.g. q = 1; q = 0 is FedAvg with uniform site weights)",
            ));
        };
        check(q.is_finite() && q >= 0.0, "federation.q", || {
            format!("must be a finite number >= 0, got {q}")
        })?;
        if let Some(l) = self.qffl_lipschitz {
            positive(l, "federation.qffl-lipschitz")?;
        }
        Ok(())
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let s = self.strategy;
        check(self.rounds >= 1, "federation.rounds", || {
            "must be >= 1".into()
        })?;
        if let Some(k) = self.sites_per_round {
            check(k >= 1, "federation.sites-per-round", || {
                "must be >= 1".into()
            })?;
            check(
                !matches!(
                    s,
                    StrategyKind::Cyclic | StrategyKind::Pooled | StrategyKind::Local
                ),
                "federation.sites-per-round",
                || format!("does not apply to strategy \"{}\"", s.as_str()),
            )?;
        }
        match (s, self.mu) {
            (StrategyKind::Fedprox, None) => {
                return Err(ConfigError::new(
                    "federation.mu",
                    "is required for strategy \"fedprox\" (e.g. mu = 0.01)",
                ));
            }
            (StrategyKind::Fedprox, Some(mu)) => positive(mu, "federation.mu")?,
            (_, Some(_)) => {
                return Err(ConfigError::new(
                    "federation.mu",
                    format!("is only for fedprox, not \"{}\"", s.as_str()),
                ));
            }
            _ => {}
        }
        let takes_server_lr = s.is_fedopt() || s == StrategyKind::Scaffold;
        match self.server_lr {
            Some(lr) if takes_server_lr => positive(lr, "federation.server-lr")?,
            Some(_) => {
                return Err(ConfigError::new(
                    "federation.server-lr",
                    format!(
                        "is only for scaffold, fedadam, fedyogi and fedadagrad, not \"{}\"",
                        s.as_str()
                    ),
                ));
            }
            None if s.is_fedopt() => {
                return Err(ConfigError::new(
                    "federation.server-lr",
                    format!("is required for strategy \"{}\"", s.as_str()),
                ));
            }
            None => {}
        }
        self.validate_qffl()?;
        unit_interval(self.beta1, "federation.beta1")?;
        unit_interval(self.beta2, "federation.beta2")?;
        positive(self.tau, "federation.tau")?;
        match (s, &self.local_site) {
            (StrategyKind::Local, None) => Err(ConfigError::new(
                "federation.local-site",
                "is required for strategy \"local\" (the name of the site that trains)",
            )),
            (StrategyKind::Local, Some(_)) | (_, None) => Ok(()),
            (_, Some(_)) => Err(ConfigError::new(
                "federation.local-site",
                format!("is only for strategy \"local\", not \"{}\"", s.as_str()),
            )),
        }
    }
}
