//! Errors of the core types.

use thiserror::Error;

/// An operation on [`crate::Params`] got values that do not fit.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParamsError {
    /// The number of values differs from what the layout (or the other operand) needs.
    #[error("parameter vector has {found} values, expected {expected}")]
    LengthMismatch {
        /// Values expected.
        expected: usize,
        /// Values found.
        found: usize,
    },
    /// Same length but different tensor names or shapes.
    #[error("parameter layouts differ (tensor names or shapes)")]
    LayoutMismatch,
}

/// A configuration value is out of range or inconsistent with another.
///
/// `key` is the dotted path of the offending key (e.g. `train.lr`) so the caller can
/// point at the line of the experiment file that holds it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    /// Dotted key path, e.g. `federation.server-lr`.
    pub key: String,
    /// What is wrong and what is allowed.
    pub reason: String,
}

impl ConfigError {
    /// A new error for `key`.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }
}
