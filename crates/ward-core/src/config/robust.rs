//! `[robust]`: the aggregation rule as a typed variant ([`AggregationRule`]) whose own
//! options are the only keys it accepts, and the pre-aggregators.
//!
//! The file keeps its flat form (`aggregator = "krum"`, `f = 1`): the tag is read
//! first, then the rest of the table is deserialised as that rule's options struct
//! (`deny_unknown_fields`), so a key of another rule (`tau` with krum) is refused by
//! name at its own line. `f`, `pre` and `seed` are shared: `f` is the threat model of
//! the rule and of the `nnm` pre-aggregator, `seed` feeds the rule's and bucketing's
//! random draws. The command line (`ward aggregate --rule NAME --f ..`) builds the same
//! type through [`RobustSpec::from_name`].

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, MapAccess};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use super::tagged::{self, Tagged};
use super::{check, positive};
use crate::ConfigError;

/// Aggregation rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AggregatorKind {
    /// Mean weighted by examples (McMahan et al. 2017).
    #[default]
    Fedavg,
    /// Unweighted mean.
    Mean,
    /// Coordinate-wise median (n >= 2f+1).
    Median,
    /// Coordinate-wise trimmed mean, `f` cut per side (n >= 2f+1).
    TrimmedMean,
    /// Krum (Blanchard et al. 2017; n >= 2f+3).
    Krum,
    /// Multi-Krum: mean of the `m` best Krum scores (n >= 2f+3).
    MultiKrum,
    /// Bulyan (El Mhamdi et al. 2018; n >= 4f+3).
    Bulyan,
    /// Geometric median by smoothed Weiszfeld (RFA, Pillutla et al. 2022).
    GeometricMedian,
    /// Centered clipping (Karimireddy et al. 2021): clipping around the previous
    /// round's aggregate update.
    CenteredClipping,
    /// Clipped mean: centered clipping with its centre at the global model every
    /// round (no history).
    ClippedMean,
    /// FLTrust (Cao et al. 2021): trust scores from the server's update on its root
    /// sample (`robust.root-samples`).
    Fltrust,
    /// Divide-and-Conquer (Shejwalkar & Houmansadr 2021; n >= 2f+1).
    Dnc,
    /// SignGuard (Xu et al. 2022): norm filter + sign clustering.
    Signguard,
    /// Clipped clustering (Li et al. 2023): median-norm clipping + 2 clusters.
    ClippedClustering,
    /// FLAME (Nguyen et al. 2022): HDBSCAN + clipping + noise.
    Flame,
}

impl AggregatorKind {
    /// Name as written in configs and results.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fedavg => "fedavg",
            Self::Mean => "mean",
            Self::Median => "median",
            Self::TrimmedMean => "trimmed-mean",
            Self::Krum => "krum",
            Self::MultiKrum => "multi-krum",
            Self::Bulyan => "bulyan",
            Self::GeometricMedian => "geometric-median",
            Self::CenteredClipping => "centered-clipping",
            Self::ClippedMean => "clipped-mean",
            Self::Fltrust => "fltrust",
            Self::Dnc => "dnc",
            Self::Signguard => "signguard",
            Self::ClippedClustering => "clipped-clustering",
            Self::Flame => "flame",
        }
    }

    /// Every rule, in the order of [`AggregatorKind::as_str`]'s match.
    pub const ALL: [Self; 15] = [
        Self::Fedavg,
        Self::Mean,
        Self::Median,
        Self::TrimmedMean,
        Self::Krum,
        Self::MultiKrum,
        Self::Bulyan,
        Self::GeometricMedian,
        Self::CenteredClipping,
        Self::ClippedMean,
        Self::Fltrust,
        Self::Dnc,
        Self::Signguard,
        Self::ClippedClustering,
        Self::Flame,
    ];

    /// The rule named `name` (as written in configs), if there is one.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether the rule needs the number of Byzantine sites `f`.
    pub fn takes_f(self) -> bool {
        matches!(
            self,
            Self::TrimmedMean | Self::Krum | Self::MultiKrum | Self::Bulyan | Self::Dnc
        )
    }

    /// Whether the rule may be given `f` without needing it (median then refuses
    /// `n < 2f + 1`).
    pub fn may_take_f(self) -> bool {
        self == Self::Median
    }

    /// Whether the rule draws at random (from `robust.seed` and the round).
    pub fn takes_seed(self) -> bool {
        matches!(self, Self::Dnc | Self::Signguard | Self::Flame)
    }
}

impl fmt::Display for AggregatorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The options of a rule that has none of its own (it still takes the shared `f`,
/// `pre` and `seed` where they apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoOptions {}

/// `multi-krum`'s options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MultiKrumOptions {
    /// How many of the best-scored updates are averaged (>= 1; default n - f).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m: Option<usize>,
}

/// `geometric-median`'s options (smoothed Weiszfeld).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GeometricMedianOptions {
    /// The iteration limit (>= 1; default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<usize>,
    /// The smoothing `eps` (> 0; default 1e-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eps: Option<f64>,
}

/// `centered-clipping`'s options.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CenteredClippingOptions {
    /// The clipping radius tau (> 0; default: each round, the median distance of the
    /// updates from the starting centre, which an honest majority bounds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tau: Option<f64>,
    /// Iterations (>= 1; default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<usize>,
}

/// `clipped-mean`'s options.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClippedMeanOptions {
    /// The clipping radius tau (> 0).
    pub tau: f64,
    /// Iterations (>= 1; default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<usize>,
}

/// `fltrust`'s options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FltrustOptions {
    /// Training rows drawn (with the run seed) from the sites' training data into the
    /// server's root sample, and removed from the sites. Required in an experiment;
    /// `ward aggregate` takes the server's update instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_samples: Option<usize>,
}

/// `dnc`'s options.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DncOptions {
    /// Iterations (>= 1; default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<usize>,
    /// Coordinates subsampled per iteration (>= 1; default 10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subsample_dim: Option<usize>,
    /// The filtering fraction c (floor(c f) updates removed; >= 0, default 1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_fraction: Option<f64>,
}

/// `flame`'s options.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FlameOptions {
    /// The noise level lambda (noise std lambda x the median distance; >= 0, default
    /// 0.001).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda: Option<f64>,
}

/// An aggregation rule with its own options: the one table of per-rule options, read
/// by the experiment file, `ward aggregate` and `ward_robust::build_rule` alike.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum AggregationRule {
    /// Mean weighted by examples (McMahan et al. 2017).
    #[default]
    Fedavg,
    /// Unweighted mean.
    Mean,
    /// Coordinate-wise median (with `f`: n >= 2f+1).
    Median,
    /// Coordinate-wise trimmed mean, `f` cut per side (n >= 2f+1).
    TrimmedMean,
    /// Krum (Blanchard et al. 2017; n >= 2f+3).
    Krum,
    /// Multi-Krum: mean of the `m` best Krum scores (n >= 2f+3).
    MultiKrum(MultiKrumOptions),
    /// Bulyan (El Mhamdi et al. 2018; n >= 4f+3).
    Bulyan,
    /// Geometric median by smoothed Weiszfeld (RFA, Pillutla et al. 2022).
    GeometricMedian(GeometricMedianOptions),
    /// Centered clipping (Karimireddy et al. 2021), centred on the previous round's
    /// aggregate update.
    CenteredClipping(CenteredClippingOptions),
    /// Clipped mean: centered clipping centred on the global model every round.
    ClippedMean(ClippedMeanOptions),
    /// FLTrust (Cao et al. 2021).
    Fltrust(FltrustOptions),
    /// Divide-and-Conquer (Shejwalkar & Houmansadr 2021; n >= 2f+1).
    Dnc(DncOptions),
    /// SignGuard (Xu et al. 2022).
    Signguard,
    /// Clipped clustering (Li et al. 2023).
    ClippedClustering,
    /// FLAME (Nguyen et al. 2022).
    Flame(FlameOptions),
}

impl AggregationRule {
    /// The rule's name tag.
    pub fn kind(&self) -> AggregatorKind {
        use AggregatorKind as K;
        match self {
            Self::Fedavg => K::Fedavg,
            Self::Mean => K::Mean,
            Self::Median => K::Median,
            Self::TrimmedMean => K::TrimmedMean,
            Self::Krum => K::Krum,
            Self::MultiKrum(_) => K::MultiKrum,
            Self::Bulyan => K::Bulyan,
            Self::GeometricMedian(_) => K::GeometricMedian,
            Self::CenteredClipping(_) => K::CenteredClipping,
            Self::ClippedMean(_) => K::ClippedMean,
            Self::Fltrust(_) => K::Fltrust,
            Self::Dnc(_) => K::Dnc,
            Self::Signguard => K::Signguard,
            Self::ClippedClustering => K::ClippedClustering,
            Self::Flame(_) => K::Flame,
        }
    }

    /// The rule `kind` with every option at its default; an error naming the option
    /// for a rule with a required one (clipped-mean's `tau`).
    ///
    /// ```
    /// use ward_core::config::{AggregationRule, AggregatorKind};
    ///
    /// assert_eq!(AggregationRule::defaults(AggregatorKind::Krum)?, AggregationRule::Krum);
    /// let e = AggregationRule::defaults(AggregatorKind::ClippedMean).unwrap_err();
    /// assert_eq!(e.to_string(), "tau: is required for aggregator \"clipped-mean\"");
    /// Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn defaults(kind: AggregatorKind) -> Result<Self, ConfigError> {
        tagged::defaults::<RobustSpec>(kind)
    }

    /// The rule `kind` with its options read from `d` (a map of the rule's own keys).
    fn deserialize_options<'de, D: Deserializer<'de>>(
        kind: AggregatorKind,
        d: D,
    ) -> Result<Self, D::Error> {
        use AggregatorKind as K;
        let none = |d: D| NoOptions::deserialize(d).map(|_| ());
        Ok(match kind {
            K::Fedavg => none(d).map(|()| Self::Fedavg)?,
            K::Mean => none(d).map(|()| Self::Mean)?,
            K::Median => none(d).map(|()| Self::Median)?,
            K::TrimmedMean => none(d).map(|()| Self::TrimmedMean)?,
            K::Krum => none(d).map(|()| Self::Krum)?,
            K::MultiKrum => Self::MultiKrum(MultiKrumOptions::deserialize(d)?),
            K::Bulyan => none(d).map(|()| Self::Bulyan)?,
            K::GeometricMedian => Self::GeometricMedian(GeometricMedianOptions::deserialize(d)?),
            K::CenteredClipping => Self::CenteredClipping(CenteredClippingOptions::deserialize(d)?),
            K::ClippedMean => Self::ClippedMean(ClippedMeanOptions::deserialize(d)?),
            K::Fltrust => Self::Fltrust(FltrustOptions::deserialize(d)?),
            K::Dnc => Self::Dnc(DncOptions::deserialize(d)?),
            K::Signguard => none(d).map(|()| Self::Signguard)?,
            K::ClippedClustering => none(d).map(|()| Self::ClippedClustering)?,
            K::Flame => Self::Flame(FlameOptions::deserialize(d)?),
        })
    }

    /// The rule's own options as a TOML table (empty for rules without any).
    fn options_table(&self) -> Result<toml::Table, toml::ser::Error> {
        match self {
            Self::MultiKrum(o) => toml::Table::try_from(o),
            Self::GeometricMedian(o) => toml::Table::try_from(o),
            Self::CenteredClipping(o) => toml::Table::try_from(o),
            Self::ClippedMean(o) => toml::Table::try_from(o),
            Self::Fltrust(o) => toml::Table::try_from(o),
            Self::Dnc(o) => toml::Table::try_from(o),
            Self::Flame(o) => toml::Table::try_from(o),
            _ => Ok(toml::Table::new()),
        }
    }

    /// Checks the ranges of the rule's own options; keys are `prefix` + the option.
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let key = |k: &str| format!("{prefix}{k}");
        let at_least_one = |v: Option<usize>, k: &str| {
            check(v.is_none_or(|v| v >= 1), &key(k), || "must be >= 1".into())
        };
        match *self {
            Self::MultiKrum(o) => at_least_one(o.m, "m"),
            Self::GeometricMedian(o) => {
                at_least_one(o.iterations, "iterations")?;
                o.eps.map_or(Ok(()), |e| positive(e, &key("eps")))
            }
            Self::CenteredClipping(o) => {
                o.tau.map_or(Ok(()), |t| positive(t, &key("tau")))?;
                at_least_one(o.iterations, "iterations")
            }
            Self::ClippedMean(o) => {
                positive(o.tau, &key("tau"))?;
                at_least_one(o.iterations, "iterations")
            }
            Self::Fltrust(o) => check(o.root_samples != Some(0), &key("root-samples"), || {
                "must be >= 1".into()
            }),
            Self::Dnc(o) => {
                at_least_one(o.iterations, "iterations")?;
                at_least_one(o.subsample_dim, "subsample-dim")?;
                match o.filter_fraction {
                    Some(c) => check(c.is_finite() && c >= 0.0, &key("filter-fraction"), || {
                        format!("{c}: must be a number >= 0")
                    }),
                    None => Ok(()),
                }
            }
            Self::Flame(o) => match o.lambda {
                Some(l) => check(l.is_finite() && l >= 0.0, &key("lambda"), || {
                    format!("{l}: must be a number >= 0")
                }),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }
}

/// A pre-aggregator, parsed from its `robust.pre` entry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PreAggregatorSpec {
    /// Nearest-neighbour mixing (Allouah et al. 2023), with `robust.f`.
    Nnm,
    /// Bucketing (Karimireddy et al. 2022) with buckets of this size.
    Bucketing(usize),
    /// Norm clipping of each update's delta to this radius.
    Clip(f64),
}

impl PreAggregatorSpec {
    /// Parses `"nnm"`, `"bucketing:S"` or `"clip:C"`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        match s.split_once(':') {
            None if s == "nnm" => Ok(Self::Nnm),
            Some(("bucketing", v)) => match v.trim().parse::<usize>() {
                Ok(n) if n >= 1 => Ok(Self::Bucketing(n)),
                _ => Err(format!("{s:?}: the bucket size must be an integer >= 1")),
            },
            Some(("clip", v)) => match v.trim().parse::<f64>() {
                Ok(c) if c.is_finite() && c > 0.0 => Ok(Self::Clip(c)),
                _ => Err(format!("{s:?}: the clipping radius must be a number > 0")),
            },
            _ => Err(format!(
                "{s:?} is not a pre-aggregator: expected \"nnm\", \"bucketing:S\" or \"clip:C\""
            )),
        }
    }
}

impl FromStr for PreAggregatorSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

impl fmt::Display for PreAggregatorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Nnm => f.write_str("nnm"),
            Self::Bucketing(s) => write!(f, "bucketing:{s}"),
            Self::Clip(c) => write!(f, "clip:{c}"),
        }
    }
}

impl Serialize for PreAggregatorSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PreAggregatorSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(de::Error::custom)
    }
}

/// `[robust]`: the aggregation rule, the shared `f` and `seed`, and the pre-aggregators.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RobustSpec {
    /// The rule and its own options (`aggregator = "..."` and the rule's keys).
    pub rule: AggregationRule,
    /// Byzantine sites to tolerate: needed by trimmed-mean, krum, multi-krum, bulyan,
    /// dnc and the `nnm` pre-aggregator; optional for median.
    pub f: Option<usize>,
    /// Pre-aggregators applied in order (`"nnm"`, `"bucketing:S"`, `"clip:C"`).
    pub pre: Vec<PreAggregatorSpec>,
    /// Seed of the rule's random draws (dnc, signguard, flame, bucketing), combined with
    /// the round; default: the experiment's `seed`.
    pub seed: Option<u64>,
}

/// The order keys are written in (the rule's own options between the shared ones).
const KEY_ORDER: [&str; 11] = [
    "f",
    "m",
    "tau",
    "iterations",
    "eps",
    "pre",
    "seed",
    "lambda",
    "subsample-dim",
    "filter-fraction",
    "root-samples",
];

impl RobustSpec {
    /// The rule's name tag.
    pub fn aggregator(&self) -> AggregatorKind {
        self.rule.kind()
    }

    /// FLTrust's `root-samples`, when the rule is FLTrust and gives it.
    pub fn root_samples(&self) -> Option<usize> {
        match self.rule {
            AggregationRule::Fltrust(o) => o.root_samples,
            _ => None,
        }
    }

    /// The rule `name` with `options` (keys as in `[robust]`, e.g. `f`, `tau`,
    /// `subsample-dim`, `pre`), read by the same code as the experiment file: options
    /// of other rules are refused by name, and [`RobustSpec::check_options`] checks who
    /// uses `f` and `seed` (value ranges are left to the rules' constructors). Error keys
    /// are the bare option names (`tau`), `aggregator` for the name.
    ///
    /// ```
    /// use ward_core::config::{AggregatorKind, RobustSpec};
    ///
    /// let mut opts = toml::Table::new();
    /// opts.insert("f".into(), 1.into());
    /// let spec = RobustSpec::from_name("krum", opts.clone())?;
    /// assert_eq!((spec.aggregator(), spec.f), (AggregatorKind::Krum, Some(1)));
    /// opts.insert("tau".into(), 1.0.into());
    /// let e = RobustSpec::from_name("krum", opts).unwrap_err();
    /// assert_eq!(
    ///     e.to_string(),
    ///     "tau: is not an option of aggregator \"krum\" (it has none of its own)"
    /// );
    /// Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_name(name: &str, options: toml::Table) -> Result<Self, ConfigError> {
        if AggregatorKind::from_name(name).is_none() {
            return Err(ConfigError::new(
                "aggregator",
                format!(
                    "unknown aggregation rule {name:?}: expected one of {}",
                    AggregatorKind::ALL.map(AggregatorKind::as_str).join(", ")
                ),
            ));
        }
        let mut table = toml::Table::new();
        table.insert("aggregator".into(), name.into());
        table.extend(options);
        let spec: Self = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| super::load::serde_error(&e))?;
        spec.check_options("")?;
        Ok(spec)
    }

    /// Whether `f` and `seed` are given where the rule or a pre-aggregator uses them,
    /// and only there; keys are `prefix` + the option (`robust.` in an experiment).
    pub fn check_options(&self, prefix: &str) -> Result<(), ConfigError> {
        let a = self.aggregator();
        let key = |k: &str| format!("{prefix}{k}");
        let nnm = self.pre.contains(&PreAggregatorSpec::Nnm);
        match self.f {
            None if a.takes_f() || nnm => {
                return Err(ConfigError::new(
                    key("f"),
                    format!(
                        "is required for {} (the number of Byzantine sites to tolerate)",
                        if a.takes_f() { a.as_str() } else { "nnm" }
                    ),
                ));
            }
            Some(_) if !(a.takes_f() || a.may_take_f() || nnm) => {
                return Err(ConfigError::new(
                    key("f"),
                    format!("is not used by aggregator \"{a}\""),
                ));
            }
            _ => {}
        }
        if self.seed.is_some() {
            let bucketing = self
                .pre
                .iter()
                .any(|p| matches!(p, PreAggregatorSpec::Bucketing(_)));
            check(a.takes_seed() || bucketing, &key("seed"), || {
                format!(
                    "is not used by aggregator \"{a}\" (only dnc, signguard, flame and bucketing draw at random)"
                )
            })?;
        }
        Ok(())
    }

    /// Checks `[robust]` as part of an experiment: [`RobustSpec::check_options`], the
    /// ranges of the rule's options, and FLTrust's root sample.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.check_options("robust.")?;
        self.rule.validate("robust.")?;
        if let AggregationRule::Fltrust(FltrustOptions { root_samples: None }) = self.rule {
            return Err(ConfigError::new(
                "robust.root-samples",
                "is required for fltrust: the number of training rows the server holds as its root sample (e.g. 100)",
            ));
        }
        Ok(())
    }
}

impl Serialize for RobustSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut own = self
            .rule
            .options_table()
            .map_err(serde::ser::Error::custom)?;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("aggregator", &self.aggregator())?;
        for k in KEY_ORDER {
            match k {
                "f" => {
                    if let Some(f) = self.f {
                        m.serialize_entry(k, &f)?;
                    }
                }
                "pre" => {
                    if !self.pre.is_empty() {
                        m.serialize_entry(k, &self.pre)?;
                    }
                }
                "seed" => {
                    if let Some(seed) = self.seed {
                        m.serialize_entry(k, &seed)?;
                    }
                }
                _ => {
                    if let Some(v) = own.remove(k) {
                        m.serialize_entry(k, &v)?;
                    }
                }
            }
        }
        // An option not in KEY_ORDER still gets written.
        for (k, v) in &own {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for RobustSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        tagged::deserialize(d)
    }
}

/// `f`, `pre` and `seed`, read beside the rule's own options.
#[derive(Default)]
pub(super) struct Shared {
    f: Option<usize>,
    pre: Option<Vec<PreAggregatorSpec>>,
    seed: Option<u64>,
}

impl Tagged for RobustSpec {
    const TAG: &'static str = "aggregator";
    const WHAT: &'static str = "aggregator";
    const OPTIONS: &'static [&'static str] = &KEY_ORDER;
    const SHARED: &'static [&'static str] = &["f", "pre", "seed"];
    type Kind = AggregatorKind;
    type Shared = Shared;
    type Variant = AggregationRule;

    fn default_kind() -> Option<AggregatorKind> {
        Some(AggregatorKind::Fedavg)
    }

    fn read_shared<'de, A: MapAccess<'de>>(
        shared: &mut Shared,
        key: &str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        match key {
            "f" => shared.f = Some(map.next_value()?),
            "pre" => shared.pre = Some(map.next_value()?),
            _ => shared.seed = Some(map.next_value()?),
        }
        Ok(())
    }

    fn variant<'de, D: Deserializer<'de>>(
        kind: AggregatorKind,
        d: D,
    ) -> Result<AggregationRule, D::Error> {
        AggregationRule::deserialize_options(kind, d)
    }

    fn assemble(rule: AggregationRule, shared: Shared) -> Self {
        Self {
            rule,
            f: shared.f,
            pre: shared.pre.unwrap_or_default(),
            seed: shared.seed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    #[test]
    fn every_rule_round_trips_with_every_option() {
        let cases = [
            "aggregator = \"fedavg\"",
            "aggregator = \"median\"\nf = 1",
            "aggregator = \"multi-krum\"\nf = 1\nm = 2\npre = [\"nnm\", \"bucketing:2\", \"clip:0.5\"]\nseed = 4",
            "aggregator = \"geometric-median\"\niterations = 3\neps = 0.000001",
            "aggregator = \"centered-clipping\"\ntau = 1.5\niterations = 2",
            "aggregator = \"centered-clipping\"",
            "aggregator = \"clipped-mean\"\ntau = 1.5\niterations = 2",
            "aggregator = \"fltrust\"\nroot-samples = 50",
            "aggregator = \"dnc\"\nf = 1\niterations = 2\nseed = 3\nsubsample-dim = 100\nfilter-fraction = 1.5",
            "aggregator = \"flame\"\nseed = 1\nlambda = 0.01",
            "aggregator = \"signguard\"",
        ];
        for text in cases {
            let spec: RobustSpec = toml::from_str(text).unwrap();
            let back = toml::to_string(&spec).unwrap();
            assert_eq!(back.trim_end(), text, "{text}");
            assert_eq!(toml::from_str::<RobustSpec>(&back).unwrap(), spec);
            spec.check_options("robust.").unwrap();
        }
        // The tag may come after the options.
        let late: RobustSpec =
            toml::from_str("tau = 2.0\naggregator = \"centered-clipping\"").unwrap();
        assert_eq!(
            late.rule,
            AggregationRule::CenteredClipping(CenteredClippingOptions {
                tau: Some(2.0),
                iterations: None
            })
        );
        assert_eq!(
            toml::from_str::<RobustSpec>("").unwrap(),
            RobustSpec::default()
        );
    }

    /// A key of one rule given to another is refused by name, with the rule's own keys.
    #[test]
    fn keys_of_other_rules_are_refused_by_name() {
        let msg = |text: &str| {
            toml::from_str::<RobustSpec>(text)
                .unwrap_err()
                .message()
                .to_string()
        };
        assert_eq!(
            msg("aggregator = \"krum\"\ntau = 1.0"),
            "unknown field `tau`: is not an option of aggregator \"krum\" (it has none of its own)"
        );
        assert_eq!(
            msg("aggregator = \"dnc\"\nlambda = 1.0"),
            "unknown field `lambda`: is not an option of aggregator \"dnc\" (its own: iterations, subsample-dim, filter-fraction)"
        );
        assert_eq!(
            msg("m = 1\naggregator = \"flame\""),
            "unknown field `m`: is not an option of aggregator \"flame\" (its own: lambda)"
        );
        assert!(msg("aggregator = \"clipped-mean\"").starts_with("missing field `tau`"));
        assert!(msg("aggregator = \"krum\"\npre = [\"bucketing:0\"]").contains("bucket size"));
    }

    #[test]
    fn from_name_builds_the_same_type_and_checks_it() {
        let spec = RobustSpec::from_name("multi-krum", table("f = 1\nm = 2")).unwrap();
        assert_eq!(
            spec,
            toml::from_str("aggregator = \"multi-krum\"\nf = 1\nm = 2").unwrap()
        );
        let err = |name: &str, opts: &str| {
            RobustSpec::from_name(name, table(opts))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("mode", ""),
            "aggregator: unknown aggregation rule \"mode\": expected one of fedavg, mean, median, trimmed-mean, krum, multi-krum, bulyan, geometric-median, centered-clipping, clipped-mean, fltrust, dnc, signguard, clipped-clustering, flame"
        );
        assert_eq!(
            err("krum", ""),
            "f: is required for krum (the number of Byzantine sites to tolerate)"
        );
        assert_eq!(
            err("geometric-median", "f = 1"),
            "f: is not used by aggregator \"geometric-median\""
        );
        assert_eq!(
            err("signguard", "lambda = 0.1"),
            "lambda: is not an option of aggregator \"signguard\" (it has none of its own)"
        );
        assert_eq!(
            err("clipped-mean", ""),
            "tau: is required for aggregator \"clipped-mean\""
        );
        RobustSpec::from_name("centered-clipping", table("")).unwrap();
        // Ranges are checked with the experiment (and by the rules' constructors).
        let cc = RobustSpec::from_name("centered-clipping", table("tau = 0.0")).unwrap();
        assert_eq!(
            cc.validate().unwrap_err().to_string(),
            "robust.tau: must be a finite number > 0, got 0"
        );
        assert_eq!(
            err("mean", "pre = [\"nnm\"]"),
            "f: is required for nnm (the number of Byzantine sites to tolerate)"
        );
        assert_eq!(
            err("mean", "pre = [\"nnm\", \"bucketing:0\"]"),
            "pre[1]: \"bucketing:0\": the bucket size must be an integer >= 1"
        );
        RobustSpec::from_name("mean", table("f = 1\npre = [\"nnm\"]")).unwrap();
        RobustSpec::from_name("median", table("f = 1")).unwrap();
    }

    #[test]
    fn pre_aggregators_parse_and_print() {
        assert_eq!(
            PreAggregatorSpec::parse(" bucketing:3"),
            Ok(PreAggregatorSpec::Bucketing(3))
        );
        assert_eq!(
            PreAggregatorSpec::parse("clip:2.5"),
            Ok(PreAggregatorSpec::Clip(2.5))
        );
        assert_eq!(PreAggregatorSpec::Bucketing(2).to_string(), "bucketing:2");
        assert_eq!(
            PreAggregatorSpec::parse("nnm:1"),
            Err("\"nnm:1\" is not a pre-aggregator: expected \"nnm\", \"bucketing:S\" or \"clip:C\"".into())
        );
    }
}
