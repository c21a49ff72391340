//! [`PrivacyError`]: what can go wrong configuring or running a privacy mechanism.

/// Errors of the privacy mechanisms, accountants and secure aggregation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PrivacyError {
    /// A parameter is out of range, e.g. `q = 1.5: must be in (0, 1]`.
    #[error("{param} = {value}: {reason}")]
    Parameter {
        /// The parameter, e.g. `sigma`.
        param: &'static str,
        /// Its value as given.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// An accountant could not produce a value (e.g. no noise multiplier reaches the
    /// target epsilon within the search range).
    #[error("accountant {accountant}: {reason}")]
    Accountant {
        /// `rdp` or `prv`.
        accountant: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// The configured privacy budget would be exceeded.
    #[error("privacy budget: {0}")]
    Budget(String),
    /// Secure aggregation failed ([`ward_secagg::SecAggError`]).
    #[error(transparent)]
    SecAgg(#[from] ward_secagg::SecAggError),
}

impl PrivacyError {
    /// A [`PrivacyError::Parameter`] for `param = value`.
    pub fn parameter(param: &'static str, value: impl std::fmt::Display, reason: &str) -> Self {
        Self::Parameter {
            param,
            value: value.to_string(),
            reason: reason.to_string(),
        }
    }
}
