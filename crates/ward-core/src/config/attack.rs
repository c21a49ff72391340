//! `[attack]`: the simulated poisoning attack and the compromised sites.

use serde::{Deserialize, Serialize};

use super::*;

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

pub(super) fn default_from_round() -> usize {
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

impl AttackSpec {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
