//! `[attack]`: the simulated poisoning attack as a typed variant ([`AttackMethod`])
//! whose own options are the only keys it accepts, and the compromised sites.
//!
//! The file keeps its flat form (`kind = "backdoor"`, `target = 0`, ...): `kind` is read
//! first, `sites`, `f` and `from-round` are shared, and the rest of the table is the
//! attack's options struct, so `std` with `backdoor` is refused by name at its line.

use std::fmt;

use serde::de::{Deserializer, MapAccess};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use super::tagged::{self, Tagged};
use super::*;

/// A simulated poisoning attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttackKind {
    /// Model: sends `-scale * update`.
    SignFlip,
    /// Model: scales the attacker's honest update (a boost with no poisoned training;
    /// for Bagdasaryan et al.'s model replacement use `model-replacement`).
    Scale,
    /// Model: sends Gaussian noise whose norm is `scale` times the attacker's honest
    /// update norm.
    Gaussian,
    /// Model, omniscient: ALIE (Baruch et al. 2019).
    Alie,
    /// Model, omniscient: inner-product manipulation (Xie et al. 2020).
    Ipm,
    /// Model, omniscient: min-max (Shejwalkar & Houmansadr 2021).
    MinMax,
    /// Model, omniscient: min-sum (Shejwalkar & Houmansadr 2021).
    MinSum,
    /// Model, omniscient: Fang et al. 2020's attack on trimmed mean and median (refused
    /// against the Krum family, which it was not built for).
    FangTrim,
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
    /// Data and model: model replacement (Bagdasaryan et al. 2020): the backdoor data
    /// attack, its update boosted by gamma (n/f under unweighted rules, total over the
    /// attackers' examples under FedAvg).
    ModelReplacement,
}

impl fmt::Display for AttackKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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
            Self::FangTrim => "fang-trim",
            Self::Mimic => "mimic",
            Self::AllToOne => "all-to-one",
            Self::RandomFlip => "random-flip",
            Self::Swap => "swap",
            Self::NoisyLabels => "noisy-labels",
            Self::FeatureNoise => "feature-noise",
            Self::Backdoor => "backdoor",
            Self::ModelReplacement => "model-replacement",
        }
    }

    /// Whether the attack rewrites training data (model replacement does both: it
    /// poisons the data and boosts the update).
    pub fn is_data_attack(self) -> bool {
        matches!(
            self,
            Self::AllToOne
                | Self::RandomFlip
                | Self::Swap
                | Self::NoisyLabels
                | Self::FeatureNoise
                | Self::Backdoor
                | Self::ModelReplacement
        )
    }

    /// Whether the attack plants a backdoor (its success is measured on triggered test
    /// rows).
    pub fn is_backdoor(self) -> bool {
        matches!(self, Self::Backdoor | Self::ModelReplacement)
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

/// `sign-flip`'s and `scale`'s options.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ScaleOptions {
    /// `sign-flip` factor (> 0, default 1) or `scale` factor (> 0, default: the total
    /// over the attackers' examples).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<f64>,
}

/// `feature-noise`'s options.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NoiseOptions {
    /// The noise's standard deviation (> 0).
    pub std: f64,
}

/// `gaussian`'s options.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GaussianOptions {
    /// The noise's expected norm over the attacker's honest update norm (> 0): each
    /// coordinate is `N(0, (scale ||own|| / sqrt(d))^2)`.
    pub scale: f64,
}

/// `alie`'s options.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AlieOptions {
    /// z, the standard deviations sent from the honest mean (finite, required: the
    /// paper's `Phi^-1((n - s)/n)`, `s = floor(n/2 + 1) - f`, is 0 for small
    /// federations, e.g. n = 4, f = 1, where the attack would send the honest mean).
    pub z: f64,
}

/// `ipm`'s options.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct IpmOptions {
    /// epsilon (> 0, default 0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epsilon: Option<f64>,
}

/// `min-max`'s and `min-sum`'s options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PerturbationOptions {
    /// The perturbation direction.
    #[serde(default)]
    pub perturbation: PerturbationKind,
}

/// `all-to-one`'s options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TargetOptions {
    /// The class every label becomes.
    pub target: u32,
}

/// `swap`'s options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SwapOptions {
    /// The two classes exchanged (default [0, 1]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap: Option<[u32; 2]>,
}

/// `noisy-labels`' options.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RateOptions {
    /// The flip probability, in [0, 1].
    pub rate: f64,
}

/// `backdoor`'s options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BackdoorOptions {
    /// The class triggered rows are labelled with.
    pub target: u32,
    /// The share of poisoned rows, in (0, 1].
    pub rate: f64,
    /// The trigger pattern (tables).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trigger: Vec<TriggerFeature>,
    /// On images: a square patch in the bottom-right corner of every channel (and
    /// slice), instead of `trigger`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<PatchSpec>,
}

/// A poisoning attack with its own options.
#[derive(Debug, Clone, PartialEq)]
pub enum AttackMethod {
    /// Model: sends `-scale * update`.
    SignFlip(ScaleOptions),
    /// Model: scales the attacker's honest update.
    Scale(ScaleOptions),
    /// Model: sends Gaussian noise relative to the honest update norm.
    Gaussian(GaussianOptions),
    /// Model, omniscient: ALIE (Baruch et al. 2019).
    Alie(AlieOptions),
    /// Model, omniscient: inner-product manipulation (Xie et al. 2020).
    Ipm(IpmOptions),
    /// Model, omniscient: min-max (Shejwalkar & Houmansadr 2021).
    MinMax(PerturbationOptions),
    /// Model, omniscient: min-sum (Shejwalkar & Houmansadr 2021).
    MinSum(PerturbationOptions),
    /// Model, omniscient: Fang et al. 2020 on trimmed mean and median.
    FangTrim,
    /// Model, omniscient: mimic (Karimireddy et al. 2022).
    Mimic,
    /// Data: every label becomes `target`.
    AllToOne(TargetOptions),
    /// Data: every label becomes a random other class.
    RandomFlip,
    /// Data: classes `swap = [a, b]` exchange labels.
    Swap(SwapOptions),
    /// Data: each label flips to a random other class with probability `rate`.
    NoisyLabels(RateOptions),
    /// Data: Gaussian noise `N(0, std^2)` on every (standardised) feature.
    FeatureNoise(NoiseOptions),
    /// Data: backdoor trigger on a share `rate` of the rows, labelled `target`.
    Backdoor(BackdoorOptions),
    /// Data and model: the backdoor, its update boosted (Bagdasaryan et al. 2020).
    ModelReplacement(BackdoorOptions),
}

impl AttackMethod {
    /// The attack's name tag.
    pub fn kind(&self) -> AttackKind {
        use AttackKind as K;
        match self {
            Self::SignFlip(_) => K::SignFlip,
            Self::Scale(_) => K::Scale,
            Self::Gaussian(_) => K::Gaussian,
            Self::Alie(_) => K::Alie,
            Self::Ipm(_) => K::Ipm,
            Self::MinMax(_) => K::MinMax,
            Self::MinSum(_) => K::MinSum,
            Self::FangTrim => K::FangTrim,
            Self::Mimic => K::Mimic,
            Self::AllToOne(_) => K::AllToOne,
            Self::RandomFlip => K::RandomFlip,
            Self::Swap(_) => K::Swap,
            Self::NoisyLabels(_) => K::NoisyLabels,
            Self::FeatureNoise(_) => K::FeatureNoise,
            Self::Backdoor(_) => K::Backdoor,
            Self::ModelReplacement(_) => K::ModelReplacement,
        }
    }

    /// The attack `kind` with every option at its default; an error naming the first
    /// required option of an attack that has one (e.g. `gaussian`'s `scale`).
    ///
    /// ```
    /// use ward_core::config::{AttackKind, AttackMethod};
    ///
    /// assert_eq!(AttackMethod::defaults(AttackKind::FangTrim)?, AttackMethod::FangTrim);
    /// let e = AttackMethod::defaults(AttackKind::Gaussian).unwrap_err();
    /// assert_eq!(e.to_string(), "scale: is required for attack \"gaussian\"");
    /// Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn defaults(kind: AttackKind) -> Result<Self, ConfigError> {
        tagged::defaults::<AttackSpec>(kind)
    }

    fn deserialize_options<'de, D: Deserializer<'de>>(
        kind: AttackKind,
        d: D,
    ) -> Result<Self, D::Error> {
        use AttackKind as K;
        let none = |d: D| NoOptions::deserialize(d).map(|_| ());
        Ok(match kind {
            K::SignFlip => Self::SignFlip(ScaleOptions::deserialize(d)?),
            K::Scale => Self::Scale(ScaleOptions::deserialize(d)?),
            K::Gaussian => Self::Gaussian(GaussianOptions::deserialize(d)?),
            K::Alie => Self::Alie(AlieOptions::deserialize(d)?),
            K::Ipm => Self::Ipm(IpmOptions::deserialize(d)?),
            K::MinMax => Self::MinMax(PerturbationOptions::deserialize(d)?),
            K::MinSum => Self::MinSum(PerturbationOptions::deserialize(d)?),
            K::FangTrim => none(d).map(|()| Self::FangTrim)?,
            K::Mimic => none(d).map(|()| Self::Mimic)?,
            K::AllToOne => Self::AllToOne(TargetOptions::deserialize(d)?),
            K::RandomFlip => none(d).map(|()| Self::RandomFlip)?,
            K::Swap => Self::Swap(SwapOptions::deserialize(d)?),
            K::NoisyLabels => Self::NoisyLabels(RateOptions::deserialize(d)?),
            K::FeatureNoise => Self::FeatureNoise(NoiseOptions::deserialize(d)?),
            K::Backdoor => Self::Backdoor(BackdoorOptions::deserialize(d)?),
            K::ModelReplacement => Self::ModelReplacement(BackdoorOptions::deserialize(d)?),
        })
    }

    /// The attack's own options as a TOML table (empty for attacks without any).
    fn options_table(&self) -> Result<toml::Table, toml::ser::Error> {
        match self {
            Self::SignFlip(o) | Self::Scale(o) => toml::Table::try_from(o),
            Self::Gaussian(o) => toml::Table::try_from(o),
            Self::FeatureNoise(o) => toml::Table::try_from(o),
            Self::Alie(o) => toml::Table::try_from(o),
            Self::Ipm(o) => toml::Table::try_from(o),
            Self::MinMax(o) | Self::MinSum(o) => toml::Table::try_from(o),
            Self::AllToOne(o) => toml::Table::try_from(o),
            Self::Swap(o) => toml::Table::try_from(o),
            Self::NoisyLabels(o) => toml::Table::try_from(o),
            Self::Backdoor(o) | Self::ModelReplacement(o) => toml::Table::try_from(o),
            Self::FangTrim | Self::Mimic | Self::RandomFlip => Ok(toml::Table::new()),
        }
    }
}

/// `[attack]`: which sites are compromised, from when, and what they do.
#[derive(Debug, Clone, PartialEq)]
pub struct AttackSpec {
    /// The attack and its own options (`kind = "..."` and the attack's keys).
    pub method: AttackMethod,
    /// Compromised sites by name. Give either `sites` or `f`.
    pub sites: Vec<String>,
    /// Number of compromised sites, chosen from the run seed (recorded in the results).
    pub f: Option<usize>,
    /// First round of the attack (model attacks; data attacks poison from round 1).
    pub from_round: usize,
}

/// The order keys are written in (the attack's own options after the shared ones).
const KEY_ORDER: [&str; 10] = [
    "scale",
    "std",
    "z",
    "epsilon",
    "perturbation",
    "target",
    "swap",
    "rate",
    "trigger",
    "patch",
];

/// `sites`, `f` and `from-round`, read beside the attack's own options.
pub(super) struct Shared {
    sites: Vec<String>,
    f: Option<usize>,
    from_round: usize,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            sites: Vec::new(),
            f: None,
            from_round: default_from_round(),
        }
    }
}

impl Tagged for AttackSpec {
    const TAG: &'static str = "kind";
    const WHAT: &'static str = "attack";
    const OPTIONS: &'static [&'static str] = &KEY_ORDER;
    const SHARED: &'static [&'static str] = &["sites", "f", "from-round"];
    type Kind = AttackKind;
    type Shared = Shared;
    type Variant = AttackMethod;

    fn default_kind() -> Option<AttackKind> {
        None
    }

    /// Earlier versions wrote `perturbation = "std"` into every resolved `config.toml`;
    /// a run directory of theirs still resumes.
    fn legacy_default(key: &str, value: &toml::Value) -> bool {
        key == "perturbation" && value.as_str() == Some("std")
    }

    fn read_shared<'de, A: MapAccess<'de>>(
        shared: &mut Shared,
        key: &str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        match key {
            "sites" => shared.sites = map.next_value()?,
            "f" => shared.f = Some(map.next_value()?),
            _ => shared.from_round = map.next_value()?,
        }
        Ok(())
    }

    fn variant<'de, D: Deserializer<'de>>(
        kind: AttackKind,
        d: D,
    ) -> Result<AttackMethod, D::Error> {
        AttackMethod::deserialize_options(kind, d)
    }

    fn assemble(method: AttackMethod, shared: Shared) -> Self {
        Self {
            method,
            sites: shared.sites,
            f: shared.f,
            from_round: shared.from_round,
        }
    }
}

impl<'de> Deserialize<'de> for AttackSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        tagged::deserialize(d)
    }
}

impl Serialize for AttackSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut own = self
            .method
            .options_table()
            .map_err(serde::ser::Error::custom)?;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("kind", &self.kind())?;
        if !self.sites.is_empty() {
            m.serialize_entry("sites", &self.sites)?;
        }
        if let Some(f) = self.f {
            m.serialize_entry("f", &f)?;
        }
        m.serialize_entry("from-round", &self.from_round)?;
        for k in KEY_ORDER {
            if let Some(v) = own.remove(k) {
                m.serialize_entry(k, &v)?;
            }
        }
        for (k, v) in &own {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
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
    /// `method` by `f` sites drawn from the seed, from round 1.
    pub fn new(method: AttackMethod, f: usize) -> Self {
        Self {
            method,
            sites: Vec::new(),
            f: Some(f),
            from_round: default_from_round(),
        }
    }

    /// The attack's name tag.
    pub fn kind(&self) -> AttackKind {
        self.method.kind()
    }
}

impl AttackSpec {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let k = self.kind();
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
        use AttackMethod as M;
        match &self.method {
            M::SignFlip(o) | M::Scale(o) => o.scale.map_or(Ok(()), |v| positive(v, "attack.scale")),
            M::Gaussian(o) => positive(o.scale, "attack.scale"),
            M::FeatureNoise(o) => positive(o.std, "attack.std"),
            M::Alie(o) => check(o.z.is_finite(), "attack.z", || {
                format!("must be finite, got {}", o.z)
            }),
            M::Ipm(o) => o.epsilon.map_or(Ok(()), |v| positive(v, "attack.epsilon")),
            M::NoisyLabels(o) => check((0.0..=1.0).contains(&o.rate), "attack.rate", || {
                format!("must be in [0, 1], got {}", o.rate)
            }),
            M::Backdoor(b) | M::ModelReplacement(b) => b.validate(),
            M::MinMax(_)
            | M::MinSum(_)
            | M::FangTrim
            | M::Mimic
            | M::AllToOne(_)
            | M::RandomFlip
            | M::Swap(_) => Ok(()),
        }
    }
}

impl BackdoorOptions {
    fn validate(&self) -> Result<(), ConfigError> {
        check(self.rate > 0.0 && self.rate <= 1.0, "attack.rate", || {
            format!("must be in (0, 1], got {}", self.rate)
        })?;
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
        )
    }
}
