//! [`SecAggError`]: what can go wrong setting up or running a secure-aggregation round.

/// Errors of secure aggregation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SecAggError {
    /// A parameter is out of range, e.g. `threshold = 1: must be at least 2`.
    #[error("{param} = {value}: {reason}")]
    Parameter {
        /// The parameter, e.g. `threshold`.
        param: &'static str,
        /// Its value as given.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// The protocol failed (a bad or unexpected message, a failed check).
    #[error("secure aggregation: {0}")]
    Protocol(String),
    /// The round cannot go on: too few sites of one site's neighbourhood are left for
    /// the threshold (too many dropouts).
    #[error(
        "secure aggregation: too many dropouts: {what} of site {site} needs {needed} sites \
         of its neighbourhood (the threshold), {answered} answered"
    )]
    Dropouts {
        /// The site whose secret (or whose masking) cannot go on.
        site: u32,
        /// What is missing, e.g. `the self-mask seed`.
        what: String,
        /// Sites of its neighbourhood (itself included) that are left.
        answered: usize,
        /// The threshold.
        needed: usize,
    },
    /// The survivors' graph (the sites that sent masked inputs, joined where they masked
    /// with each other) falls apart: unmasking would give the server each piece's sum,
    /// a partial sum of fewer sites than the round's. The round is aborted.
    #[error(
        "secure aggregation: the surviving sites fall into {pieces} groups that share no          pairwise mask (sites {group:?} are one): unmasking would reveal each group's          partial sum; the round is aborted"
    )]
    Disconnected {
        /// How many groups the survivors form.
        pieces: usize,
        /// The group of the lowest-numbered survivor.
        group: Vec<u32>,
    },
    /// A ciphertext of Shamir shares failed authentication (tampered with, or not made
    /// with the pairwise key of the sites it claims).
    #[error(
        "secure aggregation: the share ciphertext from site {from} to site {to} failed \
         authentication (tampered with or encrypted with another key)"
    )]
    Authentication {
        /// The site the ciphertext claims to come from.
        from: u32,
        /// The site that tried to decrypt it.
        to: u32,
    },
}

impl SecAggError {
    /// A [`SecAggError::Parameter`] for `param = value`.
    pub fn parameter(param: &'static str, value: impl std::fmt::Display, reason: &str) -> Self {
        Self::Parameter {
            param,
            value: value.to_string(),
            reason: reason.to_string(),
        }
    }

    /// A [`SecAggError::Protocol`] from a message.
    pub(crate) fn protocol(msg: impl Into<String>) -> Self {
        Self::Protocol(msg.into())
    }
}
