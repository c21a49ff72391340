//! The experiment file (`experiment.toml`): typed, strict, and checked before training.
//!
//! Every struct denies unknown keys and uses kebab-case names. Parsing gives the raw
//! [`ExperimentSpec`]; [`ExperimentSpec::validate`] checks ranges and consistency and
//! names the offending key on error. Every key is documented in `docs/config.md`; a
//! test keeps the two in step.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ConfigError;

mod load;
mod robust;

pub use load::{DEFAULT_SOURCE, LoadError, Loaded, default_experiment, load_file, load_str};
pub use robust::{
    AggregationRule, AggregatorKind, CenteredClippingOptions, DncOptions, FlameOptions,
    FltrustOptions, GeometricMedianOptions, MultiKrumOptions, NoOptions, PreAggregatorSpec,
    RobustSpec,
};

/// A whole experiment: data, model, local training and federation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ExperimentSpec {
    /// Experiment name; used for the default run directory `runs/<name>-<timestamp>`.
    #[serde(default = "default_name")]
    pub name: String,
    /// Run seed: model initialisation, batch order, client sampling. Not the data split.
    #[serde(default)]
    pub seed: u64,
    /// Where the data comes from and how it is split into sites.
    pub data: DataSpec,
    /// The model.
    #[serde(default)]
    pub model: ModelSpec,
    /// Local training at each site.
    #[serde(default)]
    pub train: TrainSpec,
    /// Rounds and the federated strategy.
    #[serde(default)]
    pub federation: FederationSpec,
    /// The aggregation rule (FedAvg unless a robust rule is chosen).
    #[serde(default)]
    pub robust: RobustSpec,
    /// A simulated poisoning attack (none unless given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attack: Option<AttackSpec>,
    /// Differential privacy: record-level DP-SGD at the sites and/or site-level central
    /// DP at the server (none unless given).
    #[serde(default, skip_serializing_if = "PrivacySpec::is_off")]
    pub privacy: PrivacySpec,
}

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
}

fn default_secagg_clip() -> f64 {
    8.0
}
fn default_secagg_bits() -> u32 {
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
        }
    }
}

impl SecAggSpec {
    /// Checks ranges and what secure aggregation cannot run with: the server sees only
    /// the sum of the updates, so rules and mechanisms that need each update are refused.
    fn validate(&self, spec: &ExperimentSpec) -> Result<(), ConfigError> {
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
    /// Exactly `batch-size` examples without replacement (accounted as Poisson, as
    /// Opacus does: an approximation).
    FixedSize,
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
}

fn default_delta() -> f64 {
    1e-5
}
fn default_target_quantile() -> f64 {
    0.5
}
fn default_clip_lr() -> f64 {
    0.2
}

/// `noise-multiplier` xor `target-epsilon`, `delta` and `budget` of a privacy table.
fn check_noise(
    table: &str,
    noise: Option<f64>,
    target: Option<f64>,
    delta: f64,
    budget: Option<f64>,
) -> Result<(), ConfigError> {
    match (noise, target) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(ConfigError::new(
                format!("{table}.noise-multiplier"),
                "give exactly one of noise-multiplier and target-epsilon",
            ));
        }
        (Some(z), None) => check(
            z.is_finite() && z >= 0.0,
            &format!("{table}.noise-multiplier"),
            || format!("must be a finite number >= 0, got {z}"),
        )?,
        (None, Some(e)) => positive(e, &format!("{table}.target-epsilon"))?,
    }
    check(
        delta > 0.0 && delta < 1.0,
        &format!("{table}.delta"),
        || format!("must be in (0, 1), got {delta}"),
    )?;
    if let Some(b) = budget {
        positive(b, &format!("{table}.budget"))?;
    }
    Ok(())
}

impl PrivacySpec {
    fn validate(&self, spec: &ExperimentSpec) -> Result<(), ConfigError> {
        if let Some(d) = &self.dp_sgd {
            positive(d.clip, "privacy.dp-sgd.clip")?;
            check_noise(
                "privacy.dp-sgd",
                d.noise_multiplier,
                d.target_epsilon,
                d.delta,
                d.budget,
            )?;
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
            check_noise(
                "privacy.central",
                c.noise_multiplier,
                c.target_epsilon,
                c.delta,
                c.budget,
            )?;
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

/// A simulated poisoning attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttackKind {
    /// Model: sends `-scale * update`.
    SignFlip,
    /// Model: scales the update (model replacement when `scale` is absent).
    Scale,
    /// Model: sends Gaussian noise `N(0, std^2)`.
    Gaussian,
    /// Model, omniscient: ALIE (Baruch et al. 2019).
    Alie,
    /// Model, omniscient: inner-product manipulation (Xie et al. 2020).
    Ipm,
    /// Model, omniscient: min-max (Shejwalkar & Houmansadr 2021).
    MinMax,
    /// Model, omniscient: min-sum (Shejwalkar & Houmansadr 2021).
    MinSum,
    /// Model, omniscient: Fang et al. 2020 on coordinate-wise rules.
    Fang,
    /// Model, omniscient: mimic (Karimireddy et al. 2022).
    Mimic,
    /// Data: every label becomes `target`.
    AllToOne,
    /// Data: every label becomes a random other class.
    RandomFlip,
    /// Data: classes `swap = [a, b]` exchange labels.
    Swap,
    /// Data: each label flips to a random other class with probability `rate`.
    NoisyLabels,
    /// Data: Gaussian noise `N(0, std^2)` on every (standardised) feature.
    FeatureNoise,
    /// Data: backdoor trigger on a share `rate` of the rows, labelled `target`.
    Backdoor,
}

impl AttackKind {
    /// Name as written in configs and results.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignFlip => "sign-flip",
            Self::Scale => "scale",
            Self::Gaussian => "gaussian",
            Self::Alie => "alie",
            Self::Ipm => "ipm",
            Self::MinMax => "min-max",
            Self::MinSum => "min-sum",
            Self::Fang => "fang",
            Self::Mimic => "mimic",
            Self::AllToOne => "all-to-one",
            Self::RandomFlip => "random-flip",
            Self::Swap => "swap",
            Self::NoisyLabels => "noisy-labels",
            Self::FeatureNoise => "feature-noise",
            Self::Backdoor => "backdoor",
        }
    }

    /// Whether the attack rewrites training data (otherwise it rewrites updates).
    pub fn is_data_attack(self) -> bool {
        matches!(
            self,
            Self::AllToOne
                | Self::RandomFlip
                | Self::Swap
                | Self::NoisyLabels
                | Self::FeatureNoise
                | Self::Backdoor
        )
    }
}

/// Perturbation direction of min-max and min-sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PerturbationKind {
    /// `-std` of the honest updates.
    #[default]
    Std,
    /// `-mean/|mean|`.
    UnitVector,
    /// `-sign(mean)`.
    Sign,
}

/// One feature of a backdoor trigger (index in the model's feature order, and value in
/// standardised units).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TriggerFeature {
    /// Feature index (0-based, in `ward data describe` order).
    pub feature: usize,
    /// Value set on triggered rows (standardised units).
    pub value: f64,
}

/// `[attack]`: which sites are compromised, from when, and what they do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AttackSpec {
    /// The attack.
    pub kind: AttackKind,
    /// Compromised sites by name. Give either `sites` or `f`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sites: Vec<String>,
    /// Number of compromised sites, chosen from the run seed (recorded in the results).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub f: Option<usize>,
    /// First round of the attack (model attacks; data attacks poison from round 1).
    #[serde(default = "default_from_round")]
    pub from_round: usize,
    /// `sign-flip` factor (default 1) or `scale` factor (default: model replacement).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<f64>,
    /// `gaussian` / `feature-noise` standard deviation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<f64>,
    /// `alie` z (default: the paper's z from n and f).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub z: Option<f64>,
    /// `ipm` epsilon (default 0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epsilon: Option<f64>,
    /// `min-max` / `min-sum` perturbation.
    #[serde(default)]
    pub perturbation: PerturbationKind,
    /// `all-to-one` / `backdoor` target class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<u32>,
    /// `swap`: the two classes exchanged (default [0, 1]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap: Option<[u32; 2]>,
    /// `noisy-labels` flip probability / `backdoor` share of poisoned rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// `backdoor` trigger pattern.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trigger: Vec<TriggerFeature>,
    /// `backdoor` on images: a square patch in the bottom-right corner of every channel
    /// (and slice), instead of `trigger`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<PatchSpec>,
}

/// `attack.patch`: an image backdoor trigger (Gu et al. 2017's BadNets pattern).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PatchSpec {
    /// Side of the square in pixels.
    pub size: usize,
    /// Pixel value set inside the patch, in [0, 1].
    pub value: f64,
}

impl PatchSpec {
    /// The patch as trigger features of images of `channels x depth x height x width`
    /// (row-major, channel first): the bottom-right `size x size` square of every
    /// channel and slice.
    pub fn features(
        &self,
        channels: usize,
        depth: usize,
        height: usize,
        width: usize,
    ) -> Vec<TriggerFeature> {
        let mut out = Vec::new();
        for plane in 0..channels * depth {
            for y in height.saturating_sub(self.size)..height {
                for x in width.saturating_sub(self.size)..width {
                    out.push(TriggerFeature {
                        feature: (plane * height + y) * width + x,
                        value: self.value,
                    });
                }
            }
        }
        out
    }
}

fn default_from_round() -> usize {
    1
}

impl AttackSpec {
    /// An attack of `kind` by `f` sites drawn from the seed, from round 1, every other
    /// setting at its default (set the ones `kind` requires before validating).
    pub fn new(kind: AttackKind, f: usize) -> Self {
        Self {
            kind,
            sites: Vec::new(),
            f: Some(f),
            from_round: default_from_round(),
            scale: None,
            std: None,
            z: None,
            epsilon: None,
            perturbation: PerturbationKind::Std,
            target: None,
            swap: None,
            rate: None,
            trigger: Vec::new(),
            patch: None,
        }
    }
}

fn default_name() -> String {
    "experiment".into()
}

/// Which dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// Built in: UCI heart disease, four hospitals, FLamby's Fed-Heart-Disease protocol.
    FedHeartDisease,
    /// Built in: Breast Cancer Wisconsin (Diagnostic); no sites, so it needs `[data.partition]`.
    BreastCancer,
    /// A CSV file described by the keys of `[data]`.
    Csv,
    /// MedMNIST-layout `.npz` images (`data.path`: one file, partitioned by
    /// `[data.partition]`, or a folder of `<site>.npz` files, one site each), described
    /// by `[data.images]`.
    Medmnist,
    /// Synthetic multi-site scanner-shift images generated in-process from `[data.synth]`
    /// (the same generator as `ward data synth`).
    Synth,
    /// PNG/JPEG images in class folders (`data.path/<class>/*`), or with
    /// `data.reader.site-folders = true` one folder per site (`data.path/<site>/<class>/*`).
    ImageFolder,
    /// NIfTI volumes (`.nii`, `.nii.gz`) or their axial slices, listed with their labels
    /// in the CSV `data.path` (`file,label`).
    Nifti,
    /// DICOM images (one file per image) or series (one folder per series), labelled by
    /// the CSV `data.path` (`file,label` or `sop_instance_uid,label`).
    Dicom,
}

impl DatasetKind {
    /// The name as written in the experiment file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FedHeartDisease => "fed-heart-disease",
            Self::BreastCancer => "breast-cancer",
            Self::Csv => "csv",
            Self::Medmnist => "medmnist",
            Self::Synth => "synth",
            Self::ImageFolder => "image-folder",
            Self::Nifti => "nifti",
            Self::Dicom => "dicom",
        }
    }

    /// Whether the dataset is read from image files by `[data.reader]`.
    pub fn uses_reader(self) -> bool {
        matches!(self, Self::ImageFolder | Self::Nifti | Self::Dicom)
    }

    /// Whether the dataset holds images (trained with `model.kind = "cnn"` or
    /// `"resnet18"`).
    pub fn is_image(self) -> bool {
        matches!(
            self,
            Self::Medmnist | Self::Synth | Self::ImageFolder | Self::Nifti | Self::Dicom
        )
    }
}

/// How rows with a missing value are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MissingPolicy {
    /// Drop every row with a missing value in a used column.
    #[default]
    Drop,
    /// Fill numeric columns with the training split's mean, categorical ones with its most
    /// frequent level (per site). Rows with a missing target or site are still dropped.
    Impute,
}

/// Which training statistics standardise the features of federated and local runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StandardizeKind {
    /// Each site with its own training mean and std (FLamby's protocol).
    #[default]
    PerSite,
    /// Every site with the mean and std of all sites' training rows together, as a
    /// federation computes them from per-site counts, sums and sums of squares (no row
    /// leaves its site). The pooled baseline always uses these.
    Global,
}

/// One categorical column, one-hot encoded without its reference level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CategoricalSpec {
    /// Column name in the CSV header.
    pub column: String,
    /// The reference level: it gets no indicator column.
    pub reference: String,
    /// The other levels, in the order of their indicator columns. Empty: every level seen
    /// in the file except the reference, sorted. A value outside `reference` and `levels`
    /// is an error.
    #[serde(default)]
    pub levels: Vec<String>,
}

/// How the target column becomes a label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TargetSpec {
    /// Column name in the CSV header.
    pub column: String,
    /// Rule: `"> 0"`, `">= 1"`, `"< 5"`, `"<= 2"`, `"== M"`, `"!= 0"` (binary label: 1 where
    /// the rule holds), or `"class"` (integer class labels 0..k-1 as written).
    #[serde(default = "default_rule")]
    pub rule: String,
}

fn default_rule() -> String {
    "class".into()
}

/// How rows without a site column are spread over simulated sites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionKind {
    /// Shuffle, then equal shares.
    Iid,
    /// Per class, site shares drawn from Dirichlet(alpha): label skew.
    Dirichlet,
    /// Site sizes drawn from Dirichlet(alpha), labels IID: quantity skew.
    Quantity,
}

/// Partitioning of a dataset that has no site column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PartitionSpec {
    /// The partitioner.
    pub kind: PartitionKind,
    /// Number of simulated sites (>= 1).
    pub sites: usize,
    /// Dirichlet concentration for `dirichlet` and `quantity` (> 0; smaller is more skewed).
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Seed of the partition (fixed, independent of the run seed).
    #[serde(default = "default_split_seed")]
    pub seed: u64,
    /// Minimum rows per site; the draw is repeated (up to 100 times) until it holds.
    #[serde(default = "default_min_rows")]
    pub min_rows: usize,
}

fn default_alpha() -> f64 {
    0.5
}
fn default_min_rows() -> usize {
    10
}
fn default_split_seed() -> u64 {
    43
}
fn default_test_fraction() -> f64 {
    0.34
}
fn default_missing_tokens() -> Vec<String> {
    vec![String::new(), "NA".into(), "?".into()]
}

/// `[data]`: the dataset, its columns, its sites and its train/test split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DataSpec {
    /// `fed-heart-disease`, `breast-cancer` or `csv`.
    pub dataset: DatasetKind,
    /// CSV path (`csv` only), relative to the experiment file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Numeric feature columns (`csv` only), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub numeric: Vec<String>,
    /// Categorical feature columns (`csv` only), one-hot after the numeric ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categorical: Vec<CategoricalSpec>,
    /// The target (`csv` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetSpec>,
    /// Column naming each row's site (`csv` only). Without it, `[data.partition]` is needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_column: Option<String>,
    /// Field values that mean "missing" (`csv` only).
    #[serde(default = "default_missing_tokens")]
    pub missing_values: Vec<String>,
    /// Missing-value policy.
    #[serde(default)]
    pub missing: MissingPolicy,
    /// Share of each site's rows held out for testing, in (0, 1).
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    /// Seed of the train/test split (fixed, independent of the run seed).
    #[serde(default = "default_split_seed")]
    pub split_seed: u64,
    /// Partitioning for data without sites.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<PartitionSpec>,
    /// Feature standardisation for federated and local runs: `per-site` or `global`.
    #[serde(default)]
    pub standardize: StandardizeKind,
    /// `[data.images]`: what image files hold (image datasets only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<ImageDataSpec>,
    /// `[data.synth]`: the synthetic scanner-shift generator (`dataset = "synth"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synth: Option<SynthDataSpec>,
    /// `[data.reader]`: how image files are read (`image-folder`, `nifti`, `dicom`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reader: Option<ReaderSpec>,
}

/// `[data.reader]`: the output size and reading options of the image-file readers
/// (`dataset = "image-folder"`, `"nifti"`, `"dicom"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ReaderSpec {
    /// Output rows: every image is resized to `height x width`.
    pub height: usize,
    /// Output columns.
    pub width: usize,
    /// Output slices of 3D images (NIfTI volumes, DICOM series); required for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<usize>,
    /// `image-folder`: `grey` (one channel) or `rgb`.
    #[serde(default)]
    pub color: ColorKind,
    /// `image-folder`: `data.path/<site>/<class>/*` instead of `data.path/<class>/*`.
    #[serde(default)]
    pub site_folders: bool,
    /// `nifti`: one 2D image per axial slice (each with its volume's label) instead of
    /// one 3D image per volume.
    #[serde(default)]
    pub slices: bool,
    /// `dicom`: the CSV lists series folders (one 3D image each) instead of files.
    #[serde(default)]
    pub series: bool,
    /// `dicom`: the folder the CSV's `file` keys are relative to, or that is scanned
    /// for `sop_instance_uid` keys (default: the CSV's folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
    /// `linear` (bi/trilinear) or `nearest` resizing.
    #[serde(default)]
    pub resample: ResampleKind,
    /// `nifti`, `dicom`: how raw values map onto `[0, 1]`: `min-max` (per image or
    /// volume), `range` (`data.reader.range = [low, high]`), and for DICOM
    /// `file-window` (the file's Window Center/Width) or `window`
    /// (`data.reader.window = [center, width]`).
    #[serde(default)]
    pub intensity: IntensityKind,
    /// `[center, width]` for `intensity = "window"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<[f64; 2]>,
    /// `[low, high]` for `intensity = "range"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<[f64; 2]>,
}

/// Colour of images read from PNG/JPEG folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ColorKind {
    /// One channel (BT.709 luma).
    #[default]
    Grey,
    /// Three channels.
    Rgb,
}

/// Resizing filter of the image readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResampleKind {
    /// Bilinear (2D) or trilinear (3D).
    #[default]
    Linear,
    /// Nearest neighbour.
    Nearest,
}

/// How NIfTI/DICOM values map onto `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IntensityKind {
    /// Minimum to 0, maximum to 1, per image (per volume for 3D images).
    #[default]
    MinMax,
    /// `data.reader.range = [low, high]`, clamped.
    Range,
    /// DICOM: the file's own Window Center/Width and VOI LUT Function.
    FileWindow,
    /// DICOM: `data.reader.window = [center, width]` for every file.
    Window,
}

/// What the labels of an image dataset mean; stated, never guessed from array shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageTaskKind {
    /// One class per image in `0..classes`.
    #[default]
    MultiClass,
    /// One 0/1 label per image.
    Binary,
    /// `labels` independent 0/1 labels per image.
    MultiLabel,
}

/// Whether images are 2D pictures or 3D volumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Dims {
    /// `(N, H, W)` or `(N, H, W, C)`.
    #[default]
    #[serde(rename = "2d")]
    D2,
    /// `(N, D, H, W)`.
    #[serde(rename = "3d")]
    D3,
}

/// What to do with a file that cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BadFilePolicy {
    /// Stop the run, naming the file and the reason.
    #[default]
    Fail,
    /// Skip the file, and list it with the reason in the run's warnings.
    Skip,
}

/// `[data.images]`: the layout and meaning of image files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ImageDataSpec {
    /// `multi-class`, `binary` or `multi-label`.
    #[serde(default)]
    pub task: ImageTaskKind,
    /// Number of classes (`multi-class`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<usize>,
    /// Number of labels per image (`multi-label`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<usize>,
    /// `2d` or `3d`.
    #[serde(default)]
    pub dims: Dims,
    /// `fail` or `skip` for a file that cannot be read.
    #[serde(default)]
    pub on_bad_file: BadFilePolicy,
}

/// `[data.synth]`: the synthetic multi-site scanner-shift generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SynthDataSpec {
    /// Number of sites (each with its own acquisition profile).
    #[serde(default = "default_synth_sites")]
    pub sites: usize,
    /// Images per site (train + val + test).
    #[serde(default = "default_synth_per_site")]
    pub per_site: usize,
    /// Image side in pixels.
    #[serde(default = "default_synth_size")]
    pub size: usize,
    /// Number of lesion classes.
    #[serde(default = "default_synth_classes")]
    pub classes: usize,
    /// Generator seed (fixed, independent of the run seed).
    #[serde(default)]
    pub seed: u64,
}

fn default_synth_sites() -> usize {
    4
}
fn default_synth_per_site() -> usize {
    600
}
fn default_synth_size() -> usize {
    28
}
fn default_synth_classes() -> usize {
    4
}

impl Default for SynthDataSpec {
    fn default() -> Self {
        Self {
            sites: default_synth_sites(),
            per_site: default_synth_per_site(),
            size: default_synth_size(),
            classes: default_synth_classes(),
            seed: 0,
        }
    }
}

/// Model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Logistic (binary) or softmax (multi-class) regression.
    #[default]
    Logistic,
    /// Multi-layer perceptron with `hidden` layers.
    Mlp,
    /// Small CNN: conv blocks of `channels` (3x3 conv, norm, ReLU, max-pool 2), a hidden
    /// dense layer of `hidden[0]` units, the output layer (image datasets).
    Cnn,
    /// ResNet-18 (BasicBlock, widths `width`, 2, 4, 8 x `width`), small-image stem.
    Resnet18,
}

/// Normalisation layers of a CNN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NormKind {
    /// None.
    None,
    /// BatchNorm (running statistics are buffers in the model; FedBN keeps them local).
    Batch,
    /// GroupNorm with `model.groups` groups (per-sample; DP-SGD compatible).
    Group,
}

/// Hidden-layer activation of an MLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    /// max(0, x).
    #[default]
    Relu,
    /// tanh(x).
    Tanh,
}

/// `[model]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ModelSpec {
    /// `logistic` or `mlp`.
    #[serde(default)]
    pub kind: ModelKind,
    /// Hidden layer sizes (`mlp` only), e.g. `[32, 16]`.
    #[serde(default)]
    pub hidden: Vec<usize>,
    /// Hidden activation (`mlp` only).
    #[serde(default)]
    pub activation: Activation,
    /// Conv block widths (`cnn`; default `[32, 64]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<usize>,
    /// Base width (`resnet18`; default 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<usize>,
    /// `none`, `batch` or `group` (default: `none` for `cnn`, `batch` for `resnet18`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub norm: Option<NormKind>,
    /// GroupNorm groups (default 8, or fewer where a layer is narrower).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<usize>,
}

/// Local optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// SGD with optional momentum and weight decay (PyTorch semantics).
    #[default]
    Sgd,
    /// Adam (Kingma & Ba 2015; PyTorch semantics, L2 weight decay).
    Adam,
}

/// Training loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// Binary cross-entropy for two classes, cross-entropy for more.
    #[default]
    Auto,
    /// Binary cross-entropy on one logit.
    Bce,
    /// Softmax cross-entropy on one logit per class.
    CrossEntropy,
}

/// `[train]`: local training at each site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TrainSpec {
    /// `sgd` or `adam`.
    #[serde(default)]
    pub optimizer: OptimizerKind,
    /// Local learning rate (> 0).
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// SGD momentum in [0, 1).
    #[serde(default)]
    pub momentum: f64,
    /// L2 weight decay (>= 0).
    #[serde(default)]
    pub weight_decay: f64,
    /// Adam beta1 in [0, 1).
    #[serde(default = "default_beta1")]
    pub beta1: f64,
    /// Adam beta2 in [0, 1).
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    /// Adam epsilon (> 0).
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Mini-batch size (>= 1). The last batch of a pass may be smaller (no drop-last).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Local optimizer steps per round (100 when neither this nor `local-epochs` is
    /// given). At most one of `local-steps`, `local-epochs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_steps: Option<usize>,
    /// Local passes over the site's training data per round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_epochs: Option<usize>,
    /// Loss: `auto`, `bce` or `cross-entropy`.
    #[serde(default)]
    pub loss: LossKind,
    /// `[train.augment]`: image augmentation during local training.
    #[serde(default, skip_serializing_if = "AugmentSpec::is_off")]
    pub augment: AugmentSpec,
}

/// `[train.augment]`: random image augmentation of every training batch (image datasets;
/// drawn from the site's seeded stream, so runs repeat exactly).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AugmentSpec {
    /// Horizontal flip with probability 1/2.
    #[serde(default)]
    pub flip: bool,
    /// Rotation by a uniform angle in `±rotate` degrees (bilinear, edges clamped).
    #[serde(default)]
    pub rotate: f64,
    /// Brightness jitter: add a uniform offset in `±brightness`.
    #[serde(default)]
    pub brightness: f64,
    /// Contrast jitter: scale deviations from the image mean by a factor in `1 ± contrast`.
    #[serde(default)]
    pub contrast: f64,
}

impl AugmentSpec {
    /// Whether no augmentation is asked for.
    pub fn is_off(&self) -> bool {
        *self == Self::default()
    }
}

fn default_lr() -> f64 {
    0.001
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_eps() -> f64 {
    1e-8
}
fn default_batch() -> usize {
    4
}

impl Default for TrainSpec {
    fn default() -> Self {
        Self {
            optimizer: OptimizerKind::Sgd,
            lr: default_lr(),
            momentum: 0.0,
            weight_decay: 0.0,
            beta1: default_beta1(),
            beta2: default_beta2(),
            eps: default_eps(),
            batch_size: default_batch(),
            local_steps: Some(100),
            local_epochs: None,
            loss: LossKind::Auto,
            augment: AugmentSpec::default(),
        }
    }
}

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

fn default_rounds() -> usize {
    15
}
fn default_eval_every() -> usize {
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
            local_site: None,
            fine_tune_steps: 0,
            eval_every: default_eval_every(),
        }
    }
}

fn check(cond: bool, key: &str, reason: impl FnOnce() -> String) -> Result<(), ConfigError> {
    if cond {
        Ok(())
    } else {
        Err(ConfigError::new(key, reason()))
    }
}

fn unit_interval(v: f64, key: &str) -> Result<(), ConfigError> {
    check((0.0..1.0).contains(&v), key, || {
        format!("must be in [0, 1), got {v}")
    })
}

fn positive(v: f64, key: &str) -> Result<(), ConfigError> {
    check(v.is_finite() && v > 0.0, key, || {
        format!("must be a finite number > 0, got {v}")
    })
}

impl ExperimentSpec {
    /// The default experiment: fed-heart-disease, FedAvg, FLamby's settings (SGD lr 0.001,
    /// batch 4, 100 local steps per round, 15 rounds).
    pub fn default_heart() -> Self {
        Self {
            name: "fed-heart-disease-fedavg".into(),
            seed: 0,
            data: DataSpec::builtin(DatasetKind::FedHeartDisease),
            model: ModelSpec::default(),
            train: TrainSpec::default(),
            federation: FederationSpec::default(),
            robust: RobustSpec::default(),
            attack: None,
            privacy: PrivacySpec::default(),
        }
    }

    /// Checks ranges and consistency. The error names the key (dotted path).
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(!self.name.trim().is_empty(), "name", || {
            "must not be empty".into()
        })?;
        check(
            self.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            "name",
            || {
                format!(
                    "{:?} may only hold ASCII letters, digits, '-', '_' and '.' (it names the run directory)",
                    self.name
                )
            },
        )?;
        self.data.validate()?;
        self.model.validate()?;
        self.train.validate()?;
        self.federation.validate()?;
        self.robust.validate()?;
        let image = self.data.dataset.is_image();
        check(image == self.model.is_conv(), "model.kind", || {
            if image {
                format!(
                    "{} holds images: use kind = \"cnn\" or \"resnet18\"",
                    self.data.dataset.as_str()
                )
            } else {
                format!(
                    "{} is a table: use kind = \"logistic\" or \"mlp\"",
                    self.data.dataset.as_str()
                )
            }
        })?;
        check(
            image || self.train.augment.is_off(),
            "train.augment",
            || "augmentation is for image datasets".into(),
        )?;
        if self.federation.strategy == StrategyKind::Fedbn {
            let norm = self
                .model
                .norm
                .unwrap_or(if self.model.kind == ModelKind::Resnet18 {
                    NormKind::Batch
                } else {
                    NormKind::None
                });
            check(norm == NormKind::Batch, "federation.strategy", || {
                format!(
                    "fedbn keeps BatchNorm layers at each site, but this model has {}: set model.norm = \"batch\"",
                    match norm {
                        NormKind::Group => "GroupNorm (FedBN with GroupNorm is not defined)",
                        _ => "no normalisation layers",
                    }
                )
            })?;
        }
        self.privacy.validate(self)?;
        if let Some(a) = &self.attack {
            a.validate()?;
            if matches!(
                self.federation.strategy,
                StrategyKind::Pooled | StrategyKind::Local
            ) {
                return Err(ConfigError::new(
                    "attack.kind",
                    format!(
                        "attacks need a federation; strategy \"{}\" is a baseline",
                        self.federation.strategy.as_str()
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl DataSpec {
    /// A built-in dataset with default split settings.
    pub fn builtin(dataset: DatasetKind) -> Self {
        Self {
            dataset,
            path: None,
            numeric: Vec::new(),
            categorical: Vec::new(),
            target: None,
            site_column: None,
            missing_values: default_missing_tokens(),
            missing: MissingPolicy::Drop,
            test_fraction: default_test_fraction(),
            split_seed: default_split_seed(),
            partition: None,
            standardize: StandardizeKind::PerSite,
            images: None,
            synth: None,
            reader: None,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        check(
            self.test_fraction > 0.0 && self.test_fraction < 1.0,
            "data.test-fraction",
            || format!("must be in (0, 1), got {}", self.test_fraction),
        )?;
        let csv_only: [(&str, bool); 5] = [
            ("data.path", self.path.is_some()),
            ("data.numeric", !self.numeric.is_empty()),
            ("data.categorical", !self.categorical.is_empty()),
            ("data.target", self.target.is_some()),
            ("data.site-column", self.site_column.is_some()),
        ];
        match self.dataset {
            DatasetKind::Csv => {
                check(self.path.is_some(), "data.path", || {
                    "is required when data.dataset = \"csv\"".into()
                })?;
                check(self.target.is_some(), "data.target", || {
                    "is required when data.dataset = \"csv\"".into()
                })?;
                check(
                    !self.numeric.is_empty() || !self.categorical.is_empty(),
                    "data.numeric",
                    || "a csv dataset needs at least one numeric or categorical column".into(),
                )?;
                check(
                    self.site_column.is_some() || self.partition.is_some(),
                    "data.partition",
                    || "a csv dataset without data.site-column needs [data.partition]".into(),
                )?;
                check(
                    !(self.site_column.is_some() && self.partition.is_some()),
                    "data.partition",
                    || "give either data.site-column or [data.partition], not both".into(),
                )?;
            }
            DatasetKind::Medmnist => {
                check(self.path.is_some(), "data.path", || {
                    "is required when data.dataset = \"medmnist\": a .npz file or a folder of <site>.npz files".into()
                })?;
                let images = self.images.ok_or_else(|| {
                    ConfigError::new(
                        "data.images",
                        "is required when data.dataset = \"medmnist\": state task (multi-class, binary, multi-label), classes or labels, and dims (2d, 3d)",
                    )
                })?;
                images.validate()?;
            }
            DatasetKind::Synth => {
                check(self.path.is_none(), "data.path", || {
                    "is not used by data.dataset = \"synth\" (it generates its images from [data.synth])".into()
                })?;
                check(self.images.is_none(), "data.images", || {
                    "is not used by data.dataset = \"synth\": its task is multi-class 2D with data.synth.classes".into()
                })?;
                let s = self.synth.unwrap_or_default();
                check((1..=64).contains(&s.sites), "data.synth.sites", || {
                    format!("must be in 1..=64, got {}", s.sites)
                })?;
                check(s.per_site >= 20, "data.synth.per-site", || {
                    format!(
                        "must be >= 20 (train, val and test need images), got {}",
                        s.per_site
                    )
                })?;
                check((16..=256).contains(&s.size), "data.synth.size", || {
                    format!("must be in 16..=256, got {}", s.size)
                })?;
                check((2..=8).contains(&s.classes), "data.synth.classes", || {
                    format!("must be in 2..=8, got {}", s.classes)
                })?;
            }
            kind if kind.uses_reader() => self.validate_reader(kind)?,
            builtin => {
                for (key, set) in csv_only {
                    check(!set, key, || {
                        format!(
                            "is only for data.dataset = \"csv\"; {} defines its own columns",
                            builtin.as_str()
                        )
                    })?;
                }
                if builtin == DatasetKind::BreastCancer {
                    check(self.partition.is_some(), "data.partition", || {
                        "breast-cancer has no sites: add [data.partition] (kind = \"iid\", \"dirichlet\" or \"quantity\")".into()
                    })?;
                }
                if builtin == DatasetKind::FedHeartDisease {
                    check(self.partition.is_none(), "data.partition", || {
                        "fed-heart-disease has four natural sites; remove [data.partition]".into()
                    })?;
                }
            }
        }
        if !self.dataset.is_image() {
            check(self.images.is_none(), "data.images", || {
                format!("is only for image datasets, not {}", self.dataset.as_str())
            })?;
        }
        check(
            self.synth.is_none() || self.dataset == DatasetKind::Synth,
            "data.synth",
            || "is only for data.dataset = \"synth\"".into(),
        )?;
        check(
            self.reader.is_none() || self.dataset.uses_reader(),
            "data.reader",
            || "is only for data.dataset = \"image-folder\", \"nifti\" or \"dicom\"".into(),
        )?;
        if let Some(p) = &self.partition {
            check(p.sites >= 1, "data.partition.sites", || {
                format!("must be >= 1, got {}", p.sites)
            })?;
            positive(p.alpha, "data.partition.alpha")?;
        }
        Ok(())
    }
}

impl AttackSpec {
    fn validate(&self) -> Result<(), ConfigError> {
        let k = self.kind;
        match (self.sites.is_empty(), self.f) {
            (true, None) => {
                return Err(ConfigError::new(
                    "attack.f",
                    "give the compromised sites: attack.sites = [names] or attack.f = N",
                ));
            }
            (false, Some(_)) => {
                return Err(ConfigError::new(
                    "attack.f",
                    "give either attack.sites or attack.f, not both",
                ));
            }
            (true, Some(0)) => return Err(ConfigError::new("attack.f", "must be >= 1")),
            _ => {}
        }
        check(self.from_round >= 1, "attack.from-round", || {
            "must be >= 1 (rounds count from 1)".into()
        })?;
        check(
            !(k.is_data_attack() && self.from_round != 1),
            "attack.from-round",
            || format!("{} poisons the training data from round 1", k.as_str()),
        )?;
        let only = |key: &str, set: bool, ok: bool| {
            check(!set || ok, key, || {
                format!("does not apply to attack \"{}\"", k.as_str())
            })
        };
        use AttackKind as A;
        only(
            "attack.scale",
            self.scale.is_some(),
            matches!(k, A::SignFlip | A::Scale),
        )?;
        only(
            "attack.std",
            self.std.is_some(),
            matches!(k, A::Gaussian | A::FeatureNoise),
        )?;
        only("attack.z", self.z.is_some(), k == A::Alie)?;
        only("attack.epsilon", self.epsilon.is_some(), k == A::Ipm)?;
        only(
            "attack.target",
            self.target.is_some(),
            matches!(k, A::AllToOne | A::Backdoor),
        )?;
        only("attack.swap", self.swap.is_some(), k == A::Swap)?;
        only(
            "attack.rate",
            self.rate.is_some(),
            matches!(k, A::NoisyLabels | A::Backdoor),
        )?;
        only("attack.trigger", !self.trigger.is_empty(), k == A::Backdoor)?;
        only("attack.patch", self.patch.is_some(), k == A::Backdoor)?;
        if let Some(v) = self.scale {
            positive(v, "attack.scale")?;
        }
        if let Some(v) = self.epsilon {
            positive(v, "attack.epsilon")?;
        }
        if let Some(z) = self.z {
            check(z.is_finite(), "attack.z", || {
                format!("must be finite, got {z}")
            })?;
        }
        match k {
            A::Gaussian | A::FeatureNoise => match self.std {
                Some(v) => positive(v, "attack.std")?,
                None => {
                    return Err(ConfigError::new(
                        "attack.std",
                        format!("is required for {}", k.as_str()),
                    ));
                }
            },
            A::AllToOne | A::Backdoor if self.target.is_none() => {
                return Err(ConfigError::new(
                    "attack.target",
                    format!("is required for {}", k.as_str()),
                ));
            }
            A::NoisyLabels => match self.rate {
                Some(r) => check((0.0..=1.0).contains(&r), "attack.rate", || {
                    format!("must be in [0, 1], got {r}")
                })?,
                None => {
                    return Err(ConfigError::new(
                        "attack.rate",
                        "is required for noisy-labels",
                    ));
                }
            },
            _ => {}
        }
        if k == A::Backdoor {
            match self.rate {
                Some(r) => check(r > 0.0 && r <= 1.0, "attack.rate", || {
                    format!("must be in (0, 1], got {r}")
                })?,
                None => {
                    return Err(ConfigError::new(
                        "attack.rate",
                        "is required for backdoor (share of poisoned rows)",
                    ));
                }
            }
            check(
                self.trigger.is_empty() != self.patch.is_none(),
                "attack.trigger",
                || {
                    "backdoor needs exactly one of trigger (tables, e.g. trigger = [{ feature = 3, value = 4.0 }]) and patch (images, e.g. patch = { size = 3, value = 1.0 })".into()
                },
            )?;
            if let Some(p) = self.patch {
                check(p.size >= 1, "attack.patch.size", || "must be >= 1".into())?;
                check((0.0..=1.0).contains(&p.value), "attack.patch.value", || {
                    format!("must be in [0, 1], got {}", p.value)
                })?;
            }
            check(
                self.trigger.iter().all(|t| t.value.is_finite()),
                "attack.trigger",
                || "values must be finite".into(),
            )?;
        }
        Ok(())
    }
}

impl DataSpec {
    /// Checks `[data.images]` and `[data.reader]` of an image-file dataset.
    fn validate_reader(&self, kind: DatasetKind) -> Result<(), ConfigError> {
        let name = kind.as_str();
        let what = match kind {
            DatasetKind::ImageFolder => "the folder of class (or site) folders",
            _ => "the label CSV",
        };
        check(self.path.is_some(), "data.path", || {
            format!("is required when data.dataset = \"{name}\": {what}")
        })?;
        let images = self.images.ok_or_else(|| {
            ConfigError::new(
                "data.images",
                format!("is required when data.dataset = \"{name}\": state task, classes or labels, and dims"),
            )
        })?;
        images.validate()?;
        let r = self.reader.as_ref().ok_or_else(|| {
            ConfigError::new(
                "data.reader",
                format!("is required when data.dataset = \"{name}\": at least height and width"),
            )
        })?;
        check((1..=4096).contains(&r.height), "data.reader.height", || {
            format!("must be in 1..=4096, got {}", r.height)
        })?;
        check((1..=4096).contains(&r.width), "data.reader.width", || {
            format!("must be in 1..=4096, got {}", r.width)
        })?;
        let only = |set: bool, key: &str, for_kind: DatasetKind| {
            check(!set || kind == for_kind, key, || {
                format!("is only for data.dataset = \"{}\"", for_kind.as_str())
            })
        };
        only(
            r.site_folders,
            "data.reader.site-folders",
            DatasetKind::ImageFolder,
        )?;
        only(
            r.color != ColorKind::Grey,
            "data.reader.color",
            DatasetKind::ImageFolder,
        )?;
        only(r.slices, "data.reader.slices", DatasetKind::Nifti)?;
        only(r.series, "data.reader.series", DatasetKind::Dicom)?;
        only(r.root.is_some(), "data.reader.root", DatasetKind::Dicom)?;
        let is_3d = match kind {
            DatasetKind::Nifti => !r.slices,
            DatasetKind::Dicom => r.series,
            _ => false,
        };
        check(
            (images.dims == Dims::D3) == is_3d,
            "data.images.dims",
            || {
                format!(
                    "must be \"{}\": {name} with these reader settings gives {} images",
                    if is_3d { "3d" } else { "2d" },
                    if is_3d { "3D" } else { "2D" }
                )
            },
        )?;
        if is_3d {
            check(
                r.depth.is_some_and(|d| (1..=1024).contains(&d)),
                "data.reader.depth",
                || "is required for 3D images, in 1..=1024".into(),
            )?;
        } else {
            check(r.depth.is_none(), "data.reader.depth", || {
                "is only for 3D images (nifti volumes, dicom series)".into()
            })?;
        }
        if kind == DatasetKind::ImageFolder {
            check(
                images.task == ImageTaskKind::MultiClass,
                "data.images.task",
                || {
                    "image-folder labels come from the class folders: use task = \"multi-class\""
                        .into()
                },
            )?;
            check(
                r.intensity == IntensityKind::MinMax && r.range.is_none() && r.window.is_none(),
                "data.reader.intensity",
                || "is not used by image-folder (8-bit images map to [0, 1] by /255)".into(),
            )?;
        }
        match r.intensity {
            IntensityKind::Range => {
                let ok = r
                    .range
                    .is_some_and(|[lo, hi]| lo.is_finite() && hi.is_finite() && lo < hi);
                check(ok, "data.reader.range", || {
                    "intensity = \"range\" needs range = [low, high] with finite low < high".into()
                })?;
            }
            IntensityKind::Window => {
                let ok = r
                    .window
                    .is_some_and(|[c, w]| c.is_finite() && w.is_finite() && w >= 1.0);
                check(ok, "data.reader.window", || {
                    "intensity = \"window\" needs window = [center, width] with width >= 1".into()
                })?;
            }
            IntensityKind::FileWindow => {
                check(kind == DatasetKind::Dicom, "data.reader.intensity", || {
                    "\"file-window\" is only for dicom".into()
                })?
            }
            IntensityKind::MinMax => {}
        }
        check(
            r.range.is_none() || r.intensity == IntensityKind::Range,
            "data.reader.range",
            || "is only for intensity = \"range\"".into(),
        )?;
        check(
            r.window.is_none() || r.intensity == IntensityKind::Window,
            "data.reader.window",
            || "is only for intensity = \"window\"".into(),
        )?;
        check(
            r.intensity != IntensityKind::Window || kind == DatasetKind::Dicom,
            "data.reader.intensity",
            || "\"window\" is only for dicom".into(),
        )?;
        check(
            !(r.site_folders && self.partition.is_some()),
            "data.partition",
            || "site folders already give the sites; remove [data.partition]".into(),
        )
    }
}

impl ImageDataSpec {
    fn validate(&self) -> Result<(), ConfigError> {
        match self.task {
            ImageTaskKind::MultiClass => {
                check(
                    self.classes.is_some_and(|c| c >= 2),
                    "data.images.classes",
                    || "a multi-class task needs classes >= 2".into(),
                )?;
                check(self.labels.is_none(), "data.images.labels", || {
                    "is only for task = \"multi-label\"".into()
                })
            }
            ImageTaskKind::Binary => {
                check(
                    self.classes.is_none_or(|c| c == 2),
                    "data.images.classes",
                    || "a binary task has 2 classes".into(),
                )?;
                check(self.labels.is_none(), "data.images.labels", || {
                    "is only for task = \"multi-label\"".into()
                })
            }
            ImageTaskKind::MultiLabel => {
                check(
                    self.labels.is_some_and(|l| l >= 1),
                    "data.images.labels",
                    || "a multi-label task needs labels >= 1".into(),
                )?;
                check(self.classes.is_none(), "data.images.classes", || {
                    "is only for multi-class and binary tasks".into()
                })
            }
        }
    }
}

impl ModelSpec {
    /// Whether this is a convolutional network (for image datasets).
    pub fn is_conv(&self) -> bool {
        matches!(self.kind, ModelKind::Cnn | ModelKind::Resnet18)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !self.is_conv() {
            for (key, set) in [
                ("model.channels", !self.channels.is_empty()),
                ("model.norm", self.norm.is_some()),
                ("model.groups", self.groups.is_some()),
            ] {
                check(!set, key, || {
                    "is only for kind = \"cnn\" or \"resnet18\"".into()
                })?;
            }
        }
        check(self.groups.is_none_or(|g| g > 0), "model.groups", || {
            "must be >= 1".into()
        })?;
        match self.kind {
            ModelKind::Logistic => check(self.hidden.is_empty(), "model.hidden", || {
                "is only for kind = \"mlp\" or \"cnn\"".into()
            }),
            ModelKind::Cnn => {
                check(self.hidden.len() <= 1, "model.hidden", || {
                    "a cnn has one hidden dense layer: hidden = [128]".into()
                })?;
                check(
                    self.channels.iter().all(|&c| c > 0) && self.hidden.iter().all(|&h| h > 0),
                    "model.channels",
                    || "widths must be >= 1".into(),
                )?;
                check(self.width.is_none(), "model.width", || {
                    "is only for kind = \"resnet18\"".into()
                })
            }
            ModelKind::Resnet18 => {
                check(
                    self.hidden.is_empty() && self.channels.is_empty(),
                    "model.channels",
                    || "resnet18 takes model.width, not channels or hidden".into(),
                )?;
                check(self.width.is_none_or(|w| w > 0), "model.width", || {
                    "must be >= 1".into()
                })
            }
            ModelKind::Mlp => {
                check(!self.hidden.is_empty(), "model.hidden", || {
                    "an mlp needs at least one hidden layer, e.g. hidden = [32]".into()
                })?;
                check(self.hidden.iter().all(|&h| h > 0), "model.hidden", || {
                    format!("layer sizes must be >= 1, got {:?}", self.hidden)
                })
            }
        }
    }
}

impl TrainSpec {
    fn validate(&self) -> Result<(), ConfigError> {
        positive(self.lr, "train.lr")?;
        unit_interval(self.momentum, "train.momentum")?;
        check(
            self.weight_decay.is_finite() && self.weight_decay >= 0.0,
            "train.weight-decay",
            || format!("must be >= 0, got {}", self.weight_decay),
        )?;
        unit_interval(self.beta1, "train.beta1")?;
        unit_interval(self.beta2, "train.beta2")?;
        positive(self.eps, "train.eps")?;
        check(self.batch_size >= 1, "train.batch-size", || {
            "must be >= 1".into()
        })?;
        let a = self.augment;
        for (key, v, max) in [
            ("train.augment.rotate", a.rotate, 180.0),
            ("train.augment.brightness", a.brightness, 1.0),
            ("train.augment.contrast", a.contrast, 1.0),
        ] {
            check(v.is_finite() && (0.0..=max).contains(&v), key, || {
                format!("must be in [0, {max}], got {v}")
            })?;
        }
        match (self.local_steps, self.local_epochs) {
            (Some(_), Some(_)) => Err(ConfigError::new(
                "train.local-epochs",
                "give either local-steps or local-epochs, not both",
            )),
            (Some(0), None) => Err(ConfigError::new("train.local-steps", "must be >= 1")),
            (None, Some(0)) => Err(ConfigError::new("train.local-epochs", "must be >= 1")),
            _ => Ok(()),
        }
    }
}

impl FederationSpec {
    fn validate(&self) -> Result<(), ConfigError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_experiment_is_valid_and_round_trips_through_toml() {
        let spec = ExperimentSpec::default_heart();
        spec.validate().unwrap();
        let text = toml::to_string(&spec).unwrap();
        let back: ExperimentSpec = toml::from_str(&text).unwrap();
        assert_eq!(back, spec);
    }

    /// `[privacy.secagg]`: defaults from an empty table, ranges named by key, and
    /// every combination that needs individual updates refused naming
    /// `privacy.secagg` and the other key.
    #[test]
    fn secagg_defaults_ranges_and_refusals_name_their_key() {
        let with = |extra: &str| -> ExperimentSpec {
            toml::from_str(&format!(
                "[data]\ndataset = \"fed-heart-disease\"\n{extra}\n[privacy.secagg]\n"
            ))
            .unwrap()
        };
        let spec = with("");
        // The library's defaults (ward_privacy::secagg::Quantizer::default: clip 8,
        // 22 bits; MaskPrg::default: ChaCha12).
        assert_eq!(spec.privacy.secagg, Some(SecAggSpec::default()));
        assert_eq!(SecAggSpec::default().clip, 8.0);
        assert_eq!(SecAggSpec::default().bits, 22);
        spec.validate().unwrap();
        let bad = |f: &dyn Fn(&mut SecAggSpec)| {
            let mut spec = with("");
            f(spec.privacy.secagg.as_mut().unwrap());
            spec.validate().unwrap_err()
        };
        assert_eq!(bad(&|s| s.clip = 0.0).key, "privacy.secagg.clip");
        assert_eq!(bad(&|s| s.clip = f64::NAN).key, "privacy.secagg.clip");
        assert_eq!(bad(&|s| s.bits = 32).key, "privacy.secagg.bits");
        assert_eq!(bad(&|s| s.bits = 0).key, "privacy.secagg.bits");
        assert_eq!(
            bad(&|s| s.neighbours = Some(0)).key,
            "privacy.secagg.neighbours"
        );
        assert_eq!(
            bad(&|s| s.threshold = Some(1)).key,
            "privacy.secagg.threshold"
        );
        let e = bad(&|s| {
            s.neighbours = Some(2);
            s.threshold = Some(4);
        });
        assert_eq!(e.key, "privacy.secagg.threshold");
        assert_eq!(bad(&|s| s.dropout = 1.0).key, "privacy.secagg.dropout");
        assert_eq!(bad(&|s| s.dropout = -0.1).key, "privacy.secagg.dropout");
        let refused = |extra: &str, want: &str| {
            let e = with(extra).validate().unwrap_err();
            assert_eq!(e.key, "privacy.secagg", "{extra}: {e}");
            assert!(e.to_string().contains(want), "{extra}: {e}");
        };
        refused(
            "[robust]\naggregator = \"krum\"\nf = 1",
            "robust.aggregator = \"krum\"",
        );
        refused(
            "[robust]\naggregator = \"mean\"",
            "robust.aggregator = \"mean\"",
        );
        refused("[robust]\npre = [\"nnm\"]\nf = 1", "pre-aggregators");
        refused("[attack]\nkind = \"sign-flip\"\nf = 1", "[attack]");
        refused(
            "[privacy.central]\nclip = 1.0\nnoise-multiplier = 1.0",
            "[privacy.central]",
        );
        refused(
            "[federation]\nstrategy = \"scaffold\"\nserver-lr = 1.0",
            "scaffold",
        );
        refused("[federation]\nstrategy = \"pooled\"", "baseline");
        refused("[federation]\nstrategy = \"cyclic\"", "at least 2 sites");
        let e = with("[federation]\nsites-per-round = 1")
            .validate()
            .unwrap_err();
        assert_eq!(e.key, "federation.sites-per-round");
        // DP-SGD at the sites with masking on top is fine.
        with("[privacy.dp-sgd]\nclip = 1.0\nnoise-multiplier = 1.0")
            .validate()
            .unwrap();
    }

    #[test]
    fn unknown_key_is_rejected() {
        let err = toml::from_str::<ExperimentSpec>(
            "[data]\ndataset = \"fed-heart-disease\"\n[train]\nlearning-rate = 0.1\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("learning-rate"), "{err}");
    }

    #[test]
    fn out_of_range_values_name_their_key() {
        let mut spec = ExperimentSpec::default_heart();
        spec.train.lr = -1.0;
        assert_eq!(spec.validate().unwrap_err().key, "train.lr");
        let mut spec = ExperimentSpec::default_heart();
        spec.federation.strategy = StrategyKind::Fedadam;
        assert_eq!(spec.validate().unwrap_err().key, "federation.server-lr");
        spec.federation.server_lr = Some(0.01);
        spec.validate().unwrap();
        spec.federation.mu = Some(0.1);
        assert_eq!(spec.validate().unwrap_err().key, "federation.mu");
        let mut spec = ExperimentSpec::default_heart();
        spec.train.local_epochs = Some(1);
        assert_eq!(spec.validate().unwrap_err().key, "train.local-epochs");
        let mut spec = ExperimentSpec::default_heart();
        spec.data.dataset = DatasetKind::BreastCancer;
        assert_eq!(spec.validate().unwrap_err().key, "data.partition");
    }

    #[test]
    fn robust_and_attack_settings_are_checked() {
        // Parse errors (a key of another rule) and check errors alike name the key.
        let parse = |t: &str| {
            let text = format!("[data]\ndataset = \"fed-heart-disease\"\n{t}");
            load_str("x.toml", &text, &[], ".".into())
                .map(|_| ())
                .map_err(|e| e.as_config().expect("a config error").key.clone())
        };
        assert_eq!(
            parse("[robust]\naggregator = \"krum\"\n"),
            Err("robust.f".into())
        );
        assert_eq!(parse("[robust]\naggregator = \"krum\"\nf = 1\n"), Ok(()));
        // median takes f optionally (it then refuses rounds with n < 2f+1).
        assert_eq!(parse("[robust]\naggregator = \"median\"\nf = 1\n"), Ok(()));
        assert_eq!(
            parse("[robust]\naggregator = \"mean\"\nf = 1\n"),
            Err("robust.f".into())
        );
        assert_eq!(
            parse("[robust]\naggregator = \"median\"\npre = [\"bucketing:0\"]\n"),
            Err("robust.pre[0]".into())
        );
        assert_eq!(
            parse("[robust]\naggregator = \"centered-clipping\"\n"),
            Err("robust.tau".into())
        );
        assert_eq!(
            parse("[robust]\naggregator = \"dnc\"\n"),
            Err("robust.f".into())
        );
        assert_eq!(
            parse(
                "[robust]\naggregator = \"dnc\"\nf = 1\nsubsample-dim = 100\nfilter-fraction = 1.0\niterations = 2\nseed = 3\n"
            ),
            Ok(())
        );
        assert_eq!(
            parse("[robust]\naggregator = \"median\"\nseed = 3\n"),
            Err("robust.seed".into())
        );
        assert_eq!(
            parse("[robust]\naggregator = \"flame\"\nlambda = -1.0\n"),
            Err("robust.lambda".into())
        );
        assert_eq!(
            parse("[robust]\naggregator = \"signguard\"\nlambda = 0.1\n"),
            Err("robust.lambda".into())
        );
        assert_eq!(
            parse("[robust]\naggregator = \"fltrust\"\n"),
            Err("robust.root-samples".into())
        );
        assert_eq!(
            parse("[robust]\naggregator = \"fltrust\"\nroot-samples = 50\n"),
            Ok(())
        );
        assert_eq!(
            parse("[robust]\naggregator = \"krum\"\nf = 1\nroot-samples = 50\n"),
            Err("robust.root-samples".into())
        );
        assert_eq!(parse("[attack]\nkind = \"alie\"\n"), Err("attack.f".into()));
        assert_eq!(parse("[attack]\nkind = \"alie\"\nf = 1\n"), Ok(()));
        assert_eq!(
            parse("[attack]\nkind = \"alie\"\nf = 1\nstd = 1.0\n"),
            Err("attack.std".into())
        );
        assert_eq!(
            parse("[attack]\nkind = \"backdoor\"\nsites = [\"Hungary\"]\ntarget = 1\nrate = 0.5\n"),
            Err("attack.trigger".into())
        );
        assert_eq!(
            parse("[attack]\nkind = \"swap\"\nf = 1\nfrom-round = 3\n"),
            Err("attack.from-round".into())
        );
        assert_eq!(
            PreAggregatorSpec::parse("clip:2.5"),
            Ok(PreAggregatorSpec::Clip(2.5))
        );
    }
    /// Every key of the config types, as dotted paths, from a spec where every optional
    /// key is set (built without `..Default::default()`, so a new field must be added
    /// here and therefore documented).
    fn all_keys() -> Vec<String> {
        let spec = ExperimentSpec {
            name: "n".into(),
            seed: 1,
            data: DataSpec {
                dataset: DatasetKind::Csv,
                path: Some("x.csv".into()),
                numeric: vec!["a".into()],
                categorical: vec![CategoricalSpec {
                    column: "c".into(),
                    reference: "r".into(),
                    levels: vec!["l".into()],
                }],
                target: Some(TargetSpec {
                    column: "t".into(),
                    rule: "> 0".into(),
                }),
                site_column: Some("s".into()),
                missing_values: vec![String::new()],
                missing: MissingPolicy::Impute,
                test_fraction: 0.3,
                split_seed: 1,
                partition: Some(PartitionSpec {
                    kind: PartitionKind::Dirichlet,
                    sites: 2,
                    alpha: 1.0,
                    seed: 1,
                    min_rows: 1,
                }),
                standardize: StandardizeKind::Global,
                images: Some(ImageDataSpec {
                    task: ImageTaskKind::MultiClass,
                    classes: Some(2),
                    labels: Some(2),
                    dims: Dims::D2,
                    on_bad_file: BadFilePolicy::Skip,
                }),
                synth: Some(SynthDataSpec::default()),
                reader: Some(ReaderSpec {
                    height: 8,
                    width: 8,
                    depth: Some(2),
                    color: ColorKind::Rgb,
                    site_folders: true,
                    slices: true,
                    series: true,
                    root: Some("r".into()),
                    resample: ResampleKind::Nearest,
                    intensity: IntensityKind::Window,
                    window: Some([40.0, 400.0]),
                    range: Some([0.0, 1.0]),
                }),
            },
            model: ModelSpec {
                kind: ModelKind::Mlp,
                hidden: vec![3],
                activation: Activation::Tanh,
                channels: vec![4],
                width: Some(4),
                norm: Some(NormKind::Batch),
                groups: Some(2),
            },
            train: TrainSpec {
                optimizer: OptimizerKind::Adam,
                lr: 0.1,
                momentum: 0.1,
                weight_decay: 0.1,
                beta1: 0.9,
                beta2: 0.9,
                eps: 1e-8,
                batch_size: 2,
                local_steps: Some(1),
                local_epochs: Some(1),
                loss: LossKind::Bce,
                augment: AugmentSpec {
                    flip: true,
                    rotate: 1.0,
                    brightness: 0.1,
                    contrast: 0.1,
                },
            },
            federation: FederationSpec {
                strategy: StrategyKind::Fedprox,
                rounds: 2,
                sites_per_round: Some(1),
                mu: Some(0.1),
                server_lr: Some(0.1),
                beta1: 0.9,
                beta2: 0.9,
                tau: 0.1,
                local_site: Some("a".into()),
                fine_tune_steps: 1,
                eval_every: 1,
            },
            robust: RobustSpec {
                rule: AggregationRule::MultiKrum(MultiKrumOptions { m: Some(2) }),
                f: Some(1),
                pre: vec![PreAggregatorSpec::Nnm],
                seed: Some(1),
            },
            attack: Some(AttackSpec {
                kind: AttackKind::Backdoor,
                sites: vec!["a".into()],
                f: Some(1),
                from_round: 1,
                scale: Some(1.0),
                std: Some(1.0),
                z: Some(1.0),
                epsilon: Some(1.0),
                perturbation: PerturbationKind::Sign,
                target: Some(1),
                swap: Some([0, 1]),
                rate: Some(0.5),
                trigger: vec![TriggerFeature {
                    feature: 0,
                    value: 1.0,
                }],
                patch: Some(PatchSpec {
                    size: 3,
                    value: 1.0,
                }),
            }),
            privacy: PrivacySpec {
                dp_sgd: Some(DpSgdSpec {
                    clip: 1.0,
                    noise_multiplier: Some(1.0),
                    target_epsilon: Some(1.0),
                    delta: 1e-5,
                    sampling: DpSamplingKind::FixedSize,
                    accountant: AccountantChoice::Prv,
                    physical_batch: Some(2),
                    budget: Some(1.0),
                }),
                central: Some(CentralDpSpec {
                    clip: 1.0,
                    adaptive: true,
                    target_quantile: 0.5,
                    clip_lr: 0.2,
                    count_noise: Some(1.0),
                    noise_multiplier: Some(1.0),
                    target_epsilon: Some(1.0),
                    delta: 1e-5,
                    accountant: AccountantChoice::Rdp,
                    budget: Some(1.0),
                }),
                secagg: Some(SecAggSpec {
                    neighbours: Some(2),
                    threshold: Some(2),
                    clip: 1.0,
                    bits: 16,
                    prg: SecAggPrgKind::Chacha8,
                    dropout: 0.25,
                }),
            },
        };
        fn walk(prefix: &str, v: &toml::Value, out: &mut Vec<String>) {
            match v {
                toml::Value::Table(t) => {
                    for (k, v) in t {
                        let key = if prefix.is_empty() {
                            k.clone()
                        } else {
                            format!("{prefix}.{k}")
                        };
                        out.push(key.clone());
                        walk(&key, v, out);
                    }
                }
                toml::Value::Array(a) => {
                    if let Some(first @ toml::Value::Table(_)) = a.first() {
                        walk(prefix, first, out);
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk("", &toml::Value::try_from(&spec).unwrap(), &mut out);
        // Each aggregation rule takes its own keys: walk one of each with all set.
        let rules = [
            AggregationRule::GeometricMedian(GeometricMedianOptions {
                iterations: Some(1),
                eps: Some(1e-8),
            }),
            AggregationRule::CenteredClipping(CenteredClippingOptions {
                tau: 1.0,
                iterations: Some(1),
            }),
            AggregationRule::Fltrust(FltrustOptions {
                root_samples: Some(1),
            }),
            AggregationRule::Dnc(DncOptions {
                iterations: Some(1),
                subsample_dim: Some(1),
                filter_fraction: Some(1.0),
            }),
            AggregationRule::Flame(FlameOptions { lambda: Some(0.1) }),
        ];
        for rule in rules {
            let r = RobustSpec {
                rule,
                ..RobustSpec::default()
            };
            walk("robust", &toml::Value::try_from(&r).unwrap(), &mut out);
        }
        out.dedup();
        // Sections themselves are headings of their own, not keys.
        out.retain(|k| {
            ![
                "data",
                "model",
                "train",
                "federation",
                "robust",
                "attack",
                "privacy",
            ]
            .contains(&k.as_str())
        });
        out.sort();
        out.dedup();
        out
    }

    /// The bottom-right 2x2 of a 3x3 image: row-major indices 4, 5, 7, 8; a second
    /// channel adds 9 to each.
    #[test]
    fn patch_features_by_hand() {
        let p = PatchSpec {
            size: 2,
            value: 1.0,
        };
        let f: Vec<usize> = p.features(2, 1, 3, 3).iter().map(|t| t.feature).collect();
        assert_eq!(f, vec![4, 5, 7, 8, 13, 14, 16, 17]);
    }

    #[test]
    fn docs_cover_every_key() {
        let doc = include_str!("../../../docs/config.md");
        let documented: Vec<String> = doc
            .lines()
            .filter_map(|l| l.strip_prefix("### `"))
            .filter_map(|l| l.strip_suffix('`'))
            .map(str::to_string)
            .collect();
        let keys = all_keys();
        assert!(keys.len() > 40, "{keys:?}");
        for k in &keys {
            assert!(
                documented.contains(k),
                "docs/config.md does not document `{k}`"
            );
        }
        for d in &documented {
            assert!(
                keys.contains(d),
                "docs/config.md documents `{d}`, which the config types do not have"
            );
        }
    }
}
