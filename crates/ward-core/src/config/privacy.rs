//! `[privacy]`: record-level DP-SGD, site-level central DP and secure aggregation.

use serde::{Deserialize, Serialize};

use super::*;

/// `[privacy]`: differential-privacy mechanisms and their accounting.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PrivacySpec {
    /// `[privacy.dp-sgd]`: record-level DP-SGD at every training site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dp_sgd: Option<DpSgdSpec>,
    /// `[privacy.central]`: site-level central DP for federated averaging.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub central: Option<CentralDpSpec>,
    /// `[privacy.secagg]`: secure aggregation (SecAgg+) of the sites' updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secagg: Option<SecAggSpec>,
}

impl PrivacySpec {
    /// Whether no privacy mechanism is configured.
    pub fn is_off(&self) -> bool {
        self.dp_sgd.is_none() && self.central.is_none() && self.secagg.is_none()
    }
}

/// The stream cipher that expands secure aggregation's mask seeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecAggPrgKind {
    /// ChaCha with 8 rounds.
    Chacha8,
    /// ChaCha with 12 rounds (the default).
    #[default]
    Chacha12,
    /// ChaCha with 20 rounds.
    Chacha20,
}

/// `[privacy.secagg]`: secure aggregation, SecAgg+ (Bell et al. 2020, building on
/// Bonawitz et al. 2017): each site sends only its weighted update, quantised and
/// masked; the server learns the sum over the sites that finished the round and
/// nothing else about any one of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SecAggSpec {
    /// Neighbours of each site in the communication graph (>= 1; default: every other
    /// site of the round, the complete graph of Bonawitz et al.).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neighbours: Option<u32>,
    /// Shamir threshold: shares that rebuild a site's secrets (>= 2; default: the
    /// majority of a neighbourhood, `floor((k + 1) / 2) + 1` for `k` neighbours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u32>,
    /// Quantiser range: each coordinate a site sends (its example-weighted update)
    /// is clipped to `[-clip, clip]` (> 0, default 8).
    #[serde(default = "default_secagg_clip")]
    pub clip: f64,
    /// Bits per coordinate: `2^bits` quantisation levels (1..=31, default 22).
    #[serde(default = "default_secagg_bits")]
    pub bits: u32,
    /// Mask generator: `chacha8`, `chacha12` (default) or `chacha20`.
    #[serde(default)]
    pub prg: SecAggPrgKind,
    /// Simulation only: the fraction of each round's participating sites (rounded
    /// down) that drop after sharing keys, chosen from the run seed and the round, to
    /// exercise dropout recovery. In [0, 1), default 0.
    #[serde(default)]
    pub dropout: f64,
    /// Accept a threshold with `2 * threshold <= neighbours + 1` (default false: such a
    /// threshold lets a server that lies about who dropped unmask a site's update; it
    /// is safe only against a server that follows the protocol).
    #[serde(default)]
    pub allow_minority_threshold: bool,
}

pub(super) fn default_secagg_clip() -> f64 {
    8.0
}
pub(super) fn default_secagg_bits() -> u32 {
    22
}

impl Default for SecAggSpec {
    fn default() -> Self {
        Self {
            neighbours: None,
            threshold: None,
            clip: default_secagg_clip(),
            bits: default_secagg_bits(),
            prg: SecAggPrgKind::default(),
            dropout: 0.0,
            allow_minority_threshold: false,
        }
    }
}

impl SecAggSpec {
    /// Checks ranges and what secure aggregation cannot run with: the server sees only
    /// the sum of the updates, so rules and mechanisms that need each update are refused.
    pub(super) fn validate(&self, spec: &ExperimentSpec) -> Result<(), ConfigError> {
        const T: &str = "privacy.secagg";
        check(
            self.clip.is_finite() && self.clip > 0.0 && self.clip <= f64::from(f32::MAX),
            "privacy.secagg.clip",
            || format!("must be a finite number > 0, got {}", self.clip),
        )?;
        check((1..=31).contains(&self.bits), "privacy.secagg.bits", || {
            format!(
                "must be in 1..=31 (values live in the ring 2^32), got {}",
                self.bits
            )
        })?;
        if let Some(k) = self.neighbours {
            check(k >= 1, "privacy.secagg.neighbours", || {
                "must be >= 1".into()
            })?;
        }
        if let Some(t) = self.threshold {
            check(t >= 2, "privacy.secagg.threshold", || {
                format!("must be >= 2 (one share would reveal the secret), got {t}")
            })?;
            if let Some(k) = self.neighbours {
                check(t <= k + 1, "privacy.secagg.threshold", || {
                    format!(
                        "must be at most neighbours + 1 = {} (a neighbourhood holds {} shares), got {t}",
                        k + 1,
                        k + 1
                    )
                })?;
                check(
                    2 * t > k + 1 || self.allow_minority_threshold,
                    "privacy.secagg.threshold",
                    || {
                        format!(
                            "2 * threshold must exceed neighbours + 1 = {} (else a server that lies about who dropped can collect both kinds of share of one site from two halves of its neighbourhood), got {t}; use at least {}, or set privacy.secagg.allow-minority-threshold = true to accept that risk",
                            k + 1,
                            k.div_ceil(2) + 1
                        )
                    },
                )?;
            }
        }
        unit_interval(self.dropout, "privacy.secagg.dropout")?;
        let strategy = spec.federation.strategy;
        check(
            !matches!(strategy, StrategyKind::Pooled | StrategyKind::Local),
            T,
            || {
                format!(
                    "secure aggregation needs a federation; strategy \"{}\" is a baseline",
                    strategy.as_str()
                )
            },
        )?;
        check(strategy != StrategyKind::Scaffold, T, || {
            "SCAFFOLD's control variates would reach the server unmasked; secure aggregation is refused with federation.strategy = \"scaffold\"".into()
        })?;
        check(strategy != StrategyKind::Fedbn, T, || {
            "FedBN keeps BatchNorm layers at the sites, so the sum of the updates is not FedBN's aggregate; secure aggregation is refused with federation.strategy = \"fedbn\"".into()
        })?;
        check(strategy != StrategyKind::Cyclic, T, || {
            "cyclic trains one site per round: the sum of one update is that update; secure aggregation needs at least 2 sites per round".into()
        })?;
        if let Some(k) = spec.federation.sites_per_round {
            check(k >= 2, "federation.sites-per-round", || {
                format!(
                    "secure aggregation needs at least 2 sites per round (the sum of one update is that update), got {k}"
                )
            })?;
        }
        let rule = spec.robust.aggregator();
        check(
            rule == AggregatorKind::Fedavg && spec.robust.pre.is_empty(),
            T,
            || {
                format!(
                    "the server sees only the sum of the updates, so robust.aggregator = \"{}\"{} cannot run: robust rules and pre-aggregators need each update (use \"fedavg\")",
                    rule.as_str(),
                    if spec.robust.pre.is_empty() {
                        ""
                    } else {
                        " with pre-aggregators"
                    }
                )
            },
        )?;
        check(spec.attack.is_none(), T, || {
            "[attack] rewrites or reads individual updates at the server, which secure aggregation hides: the two are refused together".into()
        })?;
        check(spec.privacy.central.is_none(), T, || {
            "[privacy.central] clips and noises each update at the server, which secure aggregation hides: the two are refused together (site-side clipping with noise on the sum is future work)".into()
        })?;
        Ok(())
    }
}

/// Which privacy accountant computes epsilon (and calibrates the noise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccountantChoice {
    /// Rényi DP (Mironov 2017; subsampled Gaussian, Mironov et al. 2019).
    #[default]
    Rdp,
    /// Privacy random variables (Gopi et al. 2021).
    Prv,
}

/// How DP-SGD draws batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DpSamplingKind {
    /// Each example independently with rate `batch-size / rows`.
    #[default]
    Poisson,
    /// Exactly `batch-size` examples without replacement, accounted under substitution
    /// of one example (Wang, Balle & Kasiviswanathan 2019; the rows per site are public).
    FixedSize,
}

/// How central DP draws each round's sites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SiteSamplingKind {
    /// Each training site joins a round independently with probability
    /// `q = federation.sites-per-round / training sites` (1 without `sites-per-round`);
    /// the noisy sum is divided by the expected count `q * sites`. Accounted under
    /// adding or removing one site (McMahan et al. 2018).
    #[default]
    Poisson,
    /// Exactly `federation.sites-per-round` sites without replacement, the sum divided
    /// by that number. Accounted under substitution of one site.
    Fixed,
}

/// `[privacy.dp-sgd]`: record-level DP-SGD (Abadi et al. 2016) at every training site.
/// The logical batch size is `train.batch-size` (expected size under Poisson sampling).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DpSgdSpec {
    /// Per-example gradient clip norm (> 0).
    pub clip: f64,
    /// Noise multiplier sigma (noise std / clip, >= 0). Give this or `target-epsilon`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_multiplier: Option<f64>,
    /// Calibrate sigma per site so that its epsilon after every planned step is at most
    /// this (> 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_epsilon: Option<f64>,
    /// delta of the (epsilon, delta) guarantee, in (0, 1).
    #[serde(default = "default_delta")]
    pub delta: f64,
    /// `poisson` (default) or `fixed-size`.
    #[serde(default)]
    pub sampling: DpSamplingKind,
    /// `rdp` (default) or `prv`: calibrates the noise and checks the budget.
    #[serde(default)]
    pub accountant: AccountantChoice,
    /// Virtual batches: at most this many rows per backward pass (>= 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_batch: Option<usize>,
    /// Privacy budget: the run stops before a round that would take any site's epsilon
    /// above this (> 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<f64>,
}

/// `[privacy.central]`: site-level central DP for federated averaging (McMahan et al.
/// 2018), fixed or adaptive clipping (Andrew et al. 2021).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CentralDpSpec {
    /// Clip norm of each site's update (fixed), or its initial value (adaptive), > 0.
    pub clip: f64,
    /// Adaptive clipping: the clip norm tracks `target-quantile` of the update norms.
    #[serde(default)]
    pub adaptive: bool,
    /// Adaptive: the fraction of updates to leave unclipped, in (0, 1).
    #[serde(default = "default_target_quantile")]
    pub target_quantile: f64,
    /// Adaptive: learning rate eta of the geometric clip update (> 0).
    #[serde(default = "default_clip_lr")]
    pub clip_lr: f64,
    /// Adaptive: std of the noise on the count of unclipped updates (default: sites per
    /// round / 20, as in the paper); must exceed `noise-multiplier / 2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_noise: Option<f64>,
    /// Noise multiplier z of the mechanism (>= 0). Give this or `target-epsilon`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_multiplier: Option<f64>,
    /// Calibrate z so that the site-level epsilon after every round is at most this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_epsilon: Option<f64>,
    /// delta of the site-level guarantee, in (0, 1).
    #[serde(default = "default_delta")]
    pub delta: f64,
    /// `rdp` (default) or `prv`.
    #[serde(default)]
    pub accountant: AccountantChoice,
    /// Site-level privacy budget: the run stops before a round that would exceed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<f64>,
    /// `poisson` (default) or `fixed`: how each round's sites are drawn.
    #[serde(default)]
    pub site_sampling: SiteSamplingKind,
}

pub(super) fn default_delta() -> f64 {
    1e-5
}
pub(super) fn default_target_quantile() -> f64 {
    0.5
}
pub(super) fn default_clip_lr() -> f64 {
    0.2
}

/// `noise-multiplier` xor `target-epsilon`, `delta` and `budget` of a privacy table.
/// How the noise of a DP mechanism is given: its multiplier, or the epsilon it is
/// calibrated to. The file gives exactly one of `noise-multiplier` and
/// `target-epsilon`; [`crate::config::CheckedSpec`] hands out this typed choice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NoiseSpec {
    /// `noise-multiplier`: the noise std over the clip norm (>= 0).
    Multiplier(f64),
    /// `target-epsilon`: calibrate the multiplier so that epsilon after every planned
    /// step (or round) is at most this (> 0).
    TargetEpsilon(f64),
}

/// `noise-multiplier` xor `target-epsilon`, `delta` and `budget` of a privacy table;
/// the typed noise.
pub(super) fn check_noise(
    table: &str,
    noise: Option<f64>,
    target: Option<f64>,
    delta: f64,
    budget: Option<f64>,
) -> Result<NoiseSpec, ConfigError> {
    let spec = match (noise, target) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(ConfigError::new(
                format!("{table}.noise-multiplier"),
                "give exactly one of noise-multiplier and target-epsilon",
            ));
        }
        (Some(z), None) => {
            check(
                z.is_finite() && z >= 0.0,
                &format!("{table}.noise-multiplier"),
                || format!("must be a finite number >= 0, got {z}"),
            )?;
            NoiseSpec::Multiplier(z)
        }
        (None, Some(e)) => {
            positive(e, &format!("{table}.target-epsilon"))?;
            NoiseSpec::TargetEpsilon(e)
        }
    };
    check(
        delta > 0.0 && delta < 1.0,
        &format!("{table}.delta"),
        || format!("must be in (0, 1), got {delta}"),
    )?;
    if let Some(b) = budget {
        positive(b, &format!("{table}.budget"))?;
    }
    Ok(spec)
}

impl DpSgdSpec {
    /// The typed noise, or the error naming the key when not exactly one of
    /// `noise-multiplier` and `target-epsilon` is given (or either is out of range).
    pub fn noise(&self) -> Result<NoiseSpec, ConfigError> {
        check_noise(
            "privacy.dp-sgd",
            self.noise_multiplier,
            self.target_epsilon,
            self.delta,
            self.budget,
        )
    }
}

impl CentralDpSpec {
    /// The typed noise, or the error naming the key when not exactly one of
    /// `noise-multiplier` and `target-epsilon` is given (or either is out of range).
    pub fn noise(&self) -> Result<NoiseSpec, ConfigError> {
        check_noise(
            "privacy.central",
            self.noise_multiplier,
            self.target_epsilon,
            self.delta,
            self.budget,
        )
    }
}

impl PrivacySpec {
    pub(super) fn validate(&self, spec: &ExperimentSpec) -> Result<(), ConfigError> {
        if let Some(d) = &self.dp_sgd {
            positive(d.clip, "privacy.dp-sgd.clip")?;
            d.noise()?;
            check(
                d.physical_batch != Some(0),
                "privacy.dp-sgd.physical-batch",
                || "must be >= 1".into(),
            )?;
            let norm = spec
                .model
                .norm
                .unwrap_or(if spec.model.kind == ModelKind::Resnet18 {
                    NormKind::Batch
                } else {
                    NormKind::None
                });
            check(norm != NormKind::Batch, "privacy.dp-sgd", || {
                "DP-SGD clips each example's gradient, but BatchNorm's batch statistics mix examples: use model.norm = \"group\" or \"none\"".into()
            })?;
            check(spec.train.augment.is_off(), "privacy.dp-sgd", || {
                "DP-SGD with train.augment is not supported".into()
            })?;
        }
        if let Some(c) = &self.central {
            positive(c.clip, "privacy.central.clip")?;
            c.noise()?;
            if c.adaptive {
                check(
                    c.target_quantile > 0.0 && c.target_quantile < 1.0,
                    "privacy.central.target-quantile",
                    || format!("must be in (0, 1), got {}", c.target_quantile),
                )?;
                positive(c.clip_lr, "privacy.central.clip-lr")?;
                if let Some(s) = c.count_noise {
                    check(
                        s.is_finite() && s >= 0.0,
                        "privacy.central.count-noise",
                        || format!("must be a finite number >= 0, got {s}"),
                    )?;
                }
            }
            let strategy = spec.federation.strategy;
            check(
                !matches!(strategy, StrategyKind::Pooled | StrategyKind::Local),
                "privacy.central",
                || {
                    format!(
                        "central DP needs a federation; strategy \"{}\" is a baseline",
                        strategy.as_str()
                    )
                },
            )?;
            check(strategy != StrategyKind::Cyclic, "privacy.central", || {
                "cyclic visits the sites in a fixed shuffled order, which neither site sampling that central DP is accounted for (poisson, fixed) describes; central DP is refused with cyclic".into()
            })?;
            check(
                strategy != StrategyKind::Scaffold,
                "privacy.central",
                || {
                    "SCAFFOLD's control variates would reach the server without clipping or noise; central DP is refused with scaffold".into()
                },
            )?;
            let rule = spec.robust.aggregator();
            check(
                matches!(rule, AggregatorKind::Fedavg | AggregatorKind::Mean)
                    && spec.robust.pre.is_empty(),
                "privacy.central",
                || {
                    format!(
                        "central DP replaces aggregation with a clipped, noised mean; it cannot be combined with robust.aggregator = \"{}\" or pre-aggregators (use \"fedavg\" or \"mean\")",
                        rule.as_str()
                    )
                },
            )?;
        }
        if let Some(s) = &self.secagg {
            s.validate(spec)?;
        }
        Ok(())
    }
}
