//! [`build_rule`]: a rule (with its pre-aggregators) from the typed `[robust]` spec.

use ward_core::config::{AggregationRule, PreAggregatorSpec, RobustSpec};
use ward_fl::{Aggregator, FedAvg};

use crate::error::RobustError;
use crate::pre::{Bucketing, Composed, Nnm, NormClip, PreAggregator};
use crate::{
    Bulyan, CenteredClipping, ClippedClustering, ClippedMean, Dnc, Flame, Fltrust, GeometricMedian,
    Krum, Mean, Median, MultiKrum, SignGuard, TrimmedMean,
};

/// The rule of `spec` with its own options, wrapped in a [`Composed`] when `spec.pre`
/// is not empty. The random rules and bucketing draw from `spec.seed`, else
/// `default_seed` (the experiment's seed).
///
/// `spec` comes from an experiment's `[robust]` or from a name and options through
/// [`RobustSpec::from_name`], which refuse options the rule does not take; the rules'
/// constructors refuse out-of-range values, naming them.
///
/// ```
/// use ward_core::config::RobustSpec;
/// use ward_robust::build_rule;
///
/// let mut opts = toml::Table::new();
/// opts.insert("f".into(), 1.into());
/// opts.insert("pre".into(), toml::Value::Array(vec!["nnm".into()]));
/// let rule = build_rule(&RobustSpec::from_name("krum", opts)?, 0)?;
/// assert_eq!(rule.name(), "nnm+krum");
/// assert_eq!(rule.min_updates(), 5);
/// Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn build_rule(
    spec: &RobustSpec,
    default_seed: u64,
) -> Result<Box<dyn Aggregator>, RobustError> {
    use AggregationRule as R;
    let name = spec.aggregator().as_str();
    let seed = spec.seed.unwrap_or(default_seed);
    let need_f = || {
        spec.f.ok_or_else(|| RobustError::Option {
            rule: name.to_string(),
            reason: "needs f, the number of Byzantine updates to tolerate".into(),
        })
    };
    let rule: Box<dyn Aggregator> = match spec.rule {
        R::Fedavg => Box::new(FedAvg),
        R::Mean => Box::new(Mean),
        R::Median => Box::new(spec.f.map_or_else(Median::new, Median::tolerating)),
        R::TrimmedMean => Box::new(TrimmedMean::new(need_f()?)),
        R::Krum => Box::new(Krum::new(need_f()?)),
        R::MultiKrum(o) => Box::new(MultiKrum::new(need_f()?, o.m)?),
        R::Bulyan => Box::new(Bulyan::new(need_f()?)),
        R::GeometricMedian(o) => {
            let d = GeometricMedian::default();
            Box::new(GeometricMedian::new(
                o.eps.unwrap_or(d.eps()),
                o.iterations.unwrap_or(d.max_iter()),
                d.tol(),
            )?)
        }
        R::CenteredClipping(o) => {
            Box::new(CenteredClipping::new(o.tau, o.iterations.unwrap_or(1))?)
        }
        R::ClippedMean(o) => Box::new(ClippedMean::new(o.tau, o.iterations.unwrap_or(1))?),
        R::Fltrust(_) => Box::new(Fltrust),
        R::Dnc(o) => Box::new(Dnc::new(
            need_f()?,
            o.subsample_dim.unwrap_or(10_000),
            o.filter_fraction.unwrap_or(1.0),
            o.iterations.unwrap_or(1),
            seed,
        )?),
        R::Signguard => Box::new(SignGuard::new(seed)),
        R::ClippedClustering => Box::new(ClippedClustering),
        R::Flame(o) => Box::new(Flame::new(o.lambda.unwrap_or(0.001), seed)?),
    };
    if spec.pre.is_empty() {
        return Ok(rule);
    }
    let pre = spec
        .pre
        .iter()
        .map(|p| -> Result<Box<dyn PreAggregator>, RobustError> {
            Ok(match *p {
                PreAggregatorSpec::Nnm => {
                    Box::new(Nnm::new(spec.f.ok_or_else(|| RobustError::Option {
                        rule: "nnm".into(),
                        reason: "needs f, the number of Byzantine updates".into(),
                    })?))
                }
                PreAggregatorSpec::Bucketing(s) => Box::new(Bucketing::new(s, seed)?),
                PreAggregatorSpec::Clip(c) => Box::new(NormClip::new(c)?),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Box::new(Composed::new(pre, rule)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, opts: &str) -> RobustSpec {
        RobustSpec::from_name(name, opts.parse().unwrap()).unwrap()
    }

    #[test]
    fn every_rule_builds_with_its_options() {
        let cases = [
            ("mean", "", 1),
            ("fedavg", "", 1),
            ("median", "", 1),
            ("median", "f = 1", 3),
            ("trimmed-mean", "f = 1", 3),
            ("krum", "f = 1", 5),
            ("multi-krum", "f = 1\nm = 2", 5),
            ("bulyan", "f = 1", 7),
            ("geometric-median", "", 1),
            ("geometric-median", "iterations = 5\neps = 1e-6", 1),
            ("centered-clipping", "tau = 1.0\niterations = 3", 1),
            ("fltrust", "", 1),
            ("dnc", "f = 1", 3),
            (
                "dnc",
                "f = 1\nsubsample-dim = 100\nfilter-fraction = 2.0\niterations = 3",
                3,
            ),
            ("signguard", "", 1),
            ("clipped-clustering", "", 2),
            ("flame", "lambda = 0.01", 2),
        ];
        for (name, opts, min) in cases {
            let r = build_rule(&spec(name, opts), 0).unwrap();
            assert_eq!(r.name(), name);
            assert_eq!(r.min_updates(), min, "{name}");
        }
        let r = build_rule(
            &spec(
                "median",
                "f = 1\npre = [\"clip:1.0\", \"nnm\", \"bucketing:2\"]",
            ),
            0,
        )
        .unwrap();
        assert_eq!(r.name(), "clip+nnm+bucketing+median");
        // median with f = 1 needs 3 buckets of 2: (3 - 1) * 2 + 1 = 5 updates.
        assert_eq!(r.min_updates(), 5);
        // f given only for nnm is fine with a rule that takes none.
        let r = build_rule(&spec("mean", "f = 1\npre = [\"nnm\"]"), 0).unwrap();
        assert_eq!(r.name(), "nnm+mean");
    }

    /// Out-of-range values reach the rules' constructors, which name them.
    #[test]
    fn constructors_refuse_out_of_range_options() {
        fn msg_of(r: Result<Box<dyn Aggregator>, RobustError>) -> String {
            match r {
                Ok(r) => panic!("built {}", r.name()),
                Err(e) => e.to_string(),
            }
        }
        let msg = |name: &str, opts: &str| msg_of(build_rule(&spec(name, opts), 0));
        assert_eq!(
            msg("flame", "lambda = -0.5"),
            "flame: lambda = -0.5: must be a number >= 0"
        );
        assert_eq!(
            msg("centered-clipping", "tau = -1.0"),
            "centered-clipping: tau = -1: must be a number > 0"
        );
        assert_eq!(
            msg("multi-krum", "f = 1\nm = 0"),
            "multi-krum: m = 0: must be >= 1"
        );
        let no_f = RobustSpec {
            rule: AggregationRule::Krum,
            ..RobustSpec::default()
        };
        assert_eq!(
            msg_of(build_rule(&no_f, 0)),
            "krum: needs f, the number of Byzantine updates to tolerate"
        );
    }
}
