//! The crate's error.

/// Everything that can go wrong in `ward-trust`: each message names the bad value and
/// why it is refused, so a front end can show it as it is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// An input array has the wrong shape or size.
    #[error("{0}")]
    Shape(String),
    /// A value is not what it must be (NaN, a probability outside [0, 1], a row that
    /// does not sum to 1, a label out of range).
    #[error("{0}")]
    Value(String),
    /// A parameter (alpha, number of bins, k_reg, lambda) is out of range.
    #[error("{name}: {reason}")]
    Parameter {
        /// The parameter.
        name: &'static str,
        /// Why it is refused.
        reason: String,
    },
    /// Too few calibration rows for the requested guarantee.
    #[error("{0}")]
    TooFewRows(String),
    /// A fit did not converge.
    #[error("{0}")]
    NoConvergence(String),
}

impl TrustError {
    /// A [`TrustError::Parameter`].
    pub(crate) fn param(name: &'static str, reason: impl Into<String>) -> Self {
        Self::Parameter {
            name,
            reason: reason.into(),
        }
    }
}
