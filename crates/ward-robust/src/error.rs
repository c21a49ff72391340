//! [`RobustError`]: what can go wrong configuring or running a robust rule.

use ward_fl::FlError;

/// Errors of robust aggregators and pre-aggregators.
///
/// Converts into [`FlError::Config`] (and [`FlError::Params`] for layout mismatches), so
/// a rule inside the round engine stops the run with the same message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RobustError {
    /// The rule's breakdown assumption does not hold for this number of updates, e.g.
    /// `bulyan with f = 2 needs n >= 4f+3 = 11 updates, got 8`.
    #[error("{}", too_few(rule, *f, formula, *need, *got))]
    TooFewUpdates {
        /// The rule (or pre-aggregator) name.
        rule: String,
        /// The number of Byzantine updates it is configured to tolerate, if it takes one.
        f: Option<usize>,
        /// The assumption as a formula in `f`, e.g. `4f+3` (empty when it has none).
        formula: String,
        /// The fewest updates the rule accepts.
        need: usize,
        /// The number of updates it got.
        got: usize,
    },
    /// A hyperparameter is out of range, e.g. `centered-clipping: tau = -1: must be > 0`.
    #[error("{rule}: {param} = {value}: {reason}")]
    Hyperparameter {
        /// The rule (or pre-aggregator) name.
        rule: String,
        /// The hyperparameter, e.g. `tau`.
        param: &'static str,
        /// Its value as given.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// A rule needs something the round does not provide (FLTrust's server update) or
    /// cannot produce a meaningful aggregate (every FLTrust trust score is 0).
    #[error("{rule}: {reason}")]
    Unusable {
        /// The rule name.
        rule: String,
        /// Why, e.g. `every trust score is 0 ...`.
        reason: String,
    },
    /// A needed option is missing.
    #[error("{rule}: {reason}")]
    Option {
        /// The rule name.
        rule: String,
        /// What is wrong, naming the option.
        reason: String,
    },
    /// No update to aggregate.
    #[error("no update to aggregate")]
    NoUpdates,
    /// The updates (or the server update) do not fit the global model.
    #[error(transparent)]
    Params(#[from] ward_core::ParamsError),
}

fn too_few(rule: &str, f: Option<usize>, formula: &str, need: usize, got: usize) -> String {
    let unit = if need == 1 { "update" } else { "updates" };
    match f {
        Some(f) if !formula.is_empty() => {
            format!("{rule} with f = {f} needs n >= {formula} = {need} {unit}, got {got}")
        }
        Some(f) => format!("{rule} with f = {f} needs n >= {need} {unit}, got {got}"),
        None => format!("{rule} needs n >= {need} {unit}, got {got}"),
    }
}

impl From<RobustError> for FlError {
    fn from(e: RobustError) -> Self {
        match e {
            RobustError::Params(p) => FlError::Params(p),
            RobustError::NoUpdates => FlError::NoUpdates,
            other => FlError::Config(other.to_string()),
        }
    }
}

/// A [`RobustError::Hyperparameter`].
pub(crate) fn bad_param(
    rule: &str,
    param: &'static str,
    value: impl std::fmt::Display,
    reason: impl Into<String>,
) -> RobustError {
    RobustError::Hyperparameter {
        rule: rule.into(),
        param,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Checks `got >= need`, else a [`RobustError::TooFewUpdates`].
pub(crate) fn need_updates(
    rule: &str,
    f: Option<usize>,
    formula: &str,
    need: usize,
    got: usize,
) -> Result<(), RobustError> {
    if got >= need {
        Ok(())
    } else {
        Err(RobustError::TooFewUpdates {
            rule: rule.into(),
            f,
            formula: formula.into(),
            need,
            got,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_rule_the_assumption_and_the_count() {
        let e = need_updates("bulyan", Some(2), "4f+3", 11, 8).unwrap_err();
        assert_eq!(
            e.to_string(),
            "bulyan with f = 2 needs n >= 4f+3 = 11 updates, got 8"
        );
        let e = need_updates("median", None, "1", 1, 0).unwrap_err();
        assert_eq!(e.to_string(), "median needs n >= 1 update, got 0");
        let fl: FlError = e.into();
        assert!(matches!(fl, FlError::Config(ref m) if m == "median needs n >= 1 update, got 0"));
        let fl: FlError = RobustError::Params(ward_core::ParamsError::LayoutMismatch).into();
        assert!(matches!(fl, FlError::Params(_)));
    }
}
