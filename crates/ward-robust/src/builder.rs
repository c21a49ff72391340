//! [`rule_from_name`]: a rule (with its pre-aggregators) from a name and options.

use ward_fl::{Aggregator, FedAvg};

use crate::error::RobustError;
use crate::pre::{Bucketing, Composed, Nnm, NormClip, PreAggregator, PreSpec};
use crate::{
    Bulyan, CenteredClipping, ClippedClustering, Dnc, Flame, Fltrust, GeometricMedian, Krum, Mean,
    Median, MultiKrum, SignGuard, TrimmedMean,
};

/// Options of [`rule_from_name`]; each rule uses some and refuses the others.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleOptions {
    /// Byzantine updates to tolerate: required by `trimmed-mean` (cut per side),
    /// `krum`, `multi-krum`, `bulyan` and the `nnm` pre-aggregator; optional for
    /// `median` (then it refuses `n < 2f+1`).
    pub f: Option<usize>,
    /// `multi-krum`: updates averaged (default `n - f`).
    pub m: Option<usize>,
    /// `centered-clipping`: the clipping radius (required, > 0).
    pub tau: Option<f64>,
    /// `centered-clipping`: iterations (default 1); `geometric-median`: the iteration
    /// limit (default 100).
    pub iterations: Option<usize>,
    /// `geometric-median`: the smoothing `eps` (default 1e-8).
    pub eps: Option<f64>,
    /// `dnc`: the subsample dimension `b` (default 10000; all coordinates when `b >= d`).
    pub b: Option<usize>,
    /// `dnc`: the filtering fraction `c` (default 1.0: `floor(c f)` updates removed).
    pub c: Option<f64>,
    /// `flame`: the noise level `lambda` (default 0.001; noise std `lambda * S`).
    pub lambda: Option<f64>,
    /// Seed of the `bucketing` pre-aggregator's shuffle and of the random draws of
    /// `dnc`, `signguard` and `flame` (combined with the round number).
    pub seed: u64,
    /// Pre-aggregators, applied in order before the rule.
    pub pre: Vec<PreSpec>,
}

/// The rule `name` (kebab-case) configured by `opts`, wrapped in a [`Composed`] when
/// `opts.pre` is not empty.
///
/// Names: `mean` (unweighted), `fedavg` (example-weighted), `median`, `trimmed-mean`,
/// `krum`, `multi-krum`, `geometric-median`, `bulyan`, `centered-clipping`, `fltrust`,
/// `dnc` (`f`, `b`, `c`, `iterations`), `signguard`, `clipped-clustering`, `flame`
/// (`lambda`).
/// A missing required option, an option the rule does not use, or an out-of-range
/// value is an error naming it.
///
/// ```
/// use ward_robust::{PreSpec, RuleOptions, rule_from_name};
///
/// let opts = RuleOptions { f: Some(1), pre: vec![PreSpec::Nnm], ..RuleOptions::default() };
/// let rule = rule_from_name("krum", &opts)?;
/// assert_eq!(rule.name(), "nnm+krum");
/// assert_eq!(rule.min_updates(), 5);
/// assert!(rule_from_name("krum", &RuleOptions::default()).is_err());
/// Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn rule_from_name(name: &str, opts: &RuleOptions) -> Result<Box<dyn Aggregator>, RobustError> {
    let option = |reason: String| RobustError::Option {
        rule: name.to_string(),
        reason,
    };
    let need_f = || {
        opts.f.ok_or_else(|| {
            option("needs f, the number of Byzantine updates to tolerate (--f N)".into())
        })
    };
    // Options used by each rule; anything else given is refused.
    let uses: &[&str] = match name {
        "median" => &["f"],
        "trimmed-mean" | "krum" | "bulyan" => &["f"],
        "multi-krum" => &["f", "m"],
        "centered-clipping" => &["tau", "iterations"],
        "geometric-median" => &["iterations", "eps"],
        "dnc" => &["f", "iterations", "b", "c"],
        "flame" => &["lambda"],
        _ => &[],
    };
    let nnm = opts.pre.contains(&PreSpec::Nnm);
    let given = [
        ("f", opts.f.is_some() && !nnm),
        ("m", opts.m.is_some()),
        ("tau", opts.tau.is_some()),
        ("iterations", opts.iterations.is_some()),
        ("eps", opts.eps.is_some()),
        ("b", opts.b.is_some()),
        ("c", opts.c.is_some()),
        ("lambda", opts.lambda.is_some()),
    ];
    let rule: Box<dyn Aggregator> = match name {
        "mean" => Box::new(Mean),
        "fedavg" => Box::new(FedAvg),
        "median" => Box::new(opts.f.map_or_else(Median::new, Median::tolerating)),
        "trimmed-mean" => Box::new(TrimmedMean::new(need_f()?)),
        "krum" => Box::new(Krum::new(need_f()?)),
        "multi-krum" => Box::new(MultiKrum::new(need_f()?, opts.m)?),
        "bulyan" => Box::new(Bulyan::new(need_f()?)),
        "geometric-median" => {
            let d = GeometricMedian::default();
            Box::new(GeometricMedian::new(
                opts.eps.unwrap_or(d.eps()),
                opts.iterations.unwrap_or(d.max_iter()),
                d.tol(),
            )?)
        }
        "centered-clipping" => {
            let tau = opts.tau.ok_or_else(|| {
                option("needs tau, the clipping radius (--tau T, e.g. 1.0)".into())
            })?;
            Box::new(CenteredClipping::new(tau, opts.iterations.unwrap_or(1))?)
        }
        "fltrust" => Box::new(Fltrust),
        "dnc" => Box::new(Dnc::new(
            need_f()?,
            opts.b.unwrap_or(10_000),
            opts.c.unwrap_or(1.0),
            opts.iterations.unwrap_or(1),
            opts.seed,
        )?),
        "signguard" => Box::new(SignGuard::new(opts.seed)),
        "clipped-clustering" => Box::new(ClippedClustering),
        "flame" => Box::new(Flame::new(opts.lambda.unwrap_or(0.001), opts.seed)?),
        other => return Err(RobustError::UnknownRule(other.to_string())),
    };
    for (opt, set) in given {
        if set && !uses.contains(&opt) {
            return Err(option(format!("does not use the option {opt}")));
        }
    }
    if opts.pre.is_empty() {
        return Ok(rule);
    }
    let pre = opts
        .pre
        .iter()
        .map(|p| -> Result<Box<dyn PreAggregator>, RobustError> {
            Ok(match *p {
                PreSpec::Nnm => Box::new(Nnm::new(opts.f.ok_or_else(|| RobustError::Option {
                    rule: "nnm".into(),
                    reason: "needs f, the number of Byzantine updates (--f N)".into(),
                })?)),
                PreSpec::Bucketing(s) => Box::new(Bucketing::new(s, opts.seed)?),
                PreSpec::Clip(c) => Box::new(NormClip::new(c)?),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Box::new(Composed::new(pre, rule)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> RuleOptions {
        RuleOptions::default()
    }

    #[test]
    fn every_name_builds_with_its_options() {
        let f1 = RuleOptions {
            f: Some(1),
            ..opts()
        };
        let cases: Vec<(&str, RuleOptions, usize)> = vec![
            ("mean", opts(), 1),
            ("fedavg", opts(), 1),
            ("median", opts(), 1),
            ("median", f1.clone(), 3),
            ("trimmed-mean", f1.clone(), 3),
            ("krum", f1.clone(), 5),
            (
                "multi-krum",
                RuleOptions {
                    m: Some(2),
                    ..f1.clone()
                },
                5,
            ),
            ("bulyan", f1.clone(), 7),
            ("geometric-median", opts(), 1),
            (
                "centered-clipping",
                RuleOptions {
                    tau: Some(1.0),
                    iterations: Some(3),
                    ..opts()
                },
                1,
            ),
            ("fltrust", opts(), 1),
            ("dnc", f1.clone(), 3),
            (
                "dnc",
                RuleOptions {
                    b: Some(100),
                    c: Some(2.0),
                    iterations: Some(3),
                    ..f1.clone()
                },
                3,
            ),
            ("signguard", opts(), 1),
            ("clipped-clustering", opts(), 2),
            (
                "flame",
                RuleOptions {
                    lambda: Some(0.01),
                    ..opts()
                },
                2,
            ),
        ];
        for (name, o, min) in cases {
            let r = rule_from_name(name, &o).unwrap();
            assert_eq!(r.name(), name);
            assert_eq!(r.min_updates(), min, "{name}");
        }
        let r = rule_from_name(
            "median",
            &RuleOptions {
                f: Some(1),
                pre: vec![PreSpec::Clip(1.0), PreSpec::Nnm, PreSpec::Bucketing(2)],
                ..opts()
            },
        )
        .unwrap();
        assert_eq!(r.name(), "clip+nnm+bucketing+median");
        // median with f = 1 needs 3 buckets of 2: (3 - 1) * 2 + 1 = 5 updates.
        assert_eq!(r.min_updates(), 5);
    }

    #[test]
    fn bad_names_and_options_are_refused_with_their_reason() {
        let msg = |name: &str, o: RuleOptions| match rule_from_name(name, &o) {
            Ok(r) => panic!("{name}: built {}", r.name()),
            Err(e) => e.to_string(),
        };
        assert!(
            msg("mode", opts())
                .starts_with("unknown aggregation rule \"mode\": expected one of mean, fedavg")
        );
        assert_eq!(
            msg("krum", opts()),
            "krum: needs f, the number of Byzantine updates to tolerate (--f N)"
        );
        assert_eq!(
            msg(
                "geometric-median",
                RuleOptions {
                    f: Some(1),
                    ..opts()
                }
            ),
            "geometric-median: does not use the option f"
        );
        assert_eq!(
            msg(
                "krum",
                RuleOptions {
                    f: Some(1),
                    tau: Some(1.0),
                    ..opts()
                }
            ),
            "krum: does not use the option tau"
        );
        assert_eq!(
            msg("dnc", opts()),
            "dnc: needs f, the number of Byzantine updates to tolerate (--f N)"
        );
        assert_eq!(
            msg(
                "flame",
                RuleOptions {
                    lambda: Some(-0.5),
                    ..opts()
                }
            ),
            "flame: lambda = -0.5: must be a number >= 0"
        );
        assert_eq!(
            msg(
                "signguard",
                RuleOptions {
                    lambda: Some(0.1),
                    ..opts()
                }
            ),
            "signguard: does not use the option lambda"
        );
        assert_eq!(
            msg("centered-clipping", opts()),
            "centered-clipping: needs tau, the clipping radius (--tau T, e.g. 1.0)"
        );
        assert_eq!(
            msg(
                "centered-clipping",
                RuleOptions {
                    tau: Some(0.0),
                    ..opts()
                }
            ),
            "centered-clipping: tau = 0: must be a number > 0"
        );
        assert_eq!(
            msg(
                "multi-krum",
                RuleOptions {
                    f: Some(1),
                    m: Some(0),
                    ..opts()
                }
            ),
            "multi-krum: m = 0: must be >= 1"
        );
        assert_eq!(
            msg(
                "mean",
                RuleOptions {
                    pre: vec![PreSpec::Nnm],
                    ..opts()
                }
            ),
            "nnm: needs f, the number of Byzantine updates (--f N)"
        );
        // f given only for nnm is fine with a rule that takes none
        assert!(
            rule_from_name(
                "mean",
                &RuleOptions {
                    f: Some(1),
                    pre: vec![PreSpec::Nnm],
                    ..opts()
                }
            )
            .is_ok()
        );
    }
}
