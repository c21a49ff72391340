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
    /// Secure aggregation failed (too many dropouts, a bad message, a failed check).
    #[error("secure aggregation: {0}")]
    SecAgg(String),
    /// Secure aggregation cannot go on: too few sites of one site's neighbourhood are
    /// left for the threshold (too many dropouts).
    #[error(
        "secure aggregation: too many dropouts: {what} of site {site} needs {needed} sites \
         of its neighbourhood (the threshold), {answered} answered"
    )]
    SecAggDropouts {
        /// The site whose secret (or whose masking) cannot go on.
        site: u32,
        /// What is missing, e.g. `the self-mask seed`.
        what: String,
        /// Sites of its neighbourhood (itself included) that are left.
        answered: usize,
        /// The threshold.
        needed: usize,
    },
    /// A ciphertext of Shamir shares failed authentication (tampered with, or not made
    /// with the pairwise key of the sites it claims).
    #[error(
        "secure aggregation: the share ciphertext from site {from} to site {to} failed \
         authentication (tampered with or encrypted with another key)"
    )]
    SecAggAuthentication {
        /// The site the ciphertext claims to come from.
        from: u32,
        /// The site that tried to decrypt it.
        to: u32,
    },
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

    /// A [`PrivacyError::SecAgg`] from a message.
    pub(crate) fn secagg(msg: impl Into<String>) -> Self {
        Self::SecAgg(msg.into())
    }
}
