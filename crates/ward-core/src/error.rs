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

/// A configuration value is out of range, of the wrong type, unknown, or inconsistent
/// with another.
///
/// `key` is the dotted path of the offending key (e.g. `train.lr`,
/// `data.categorical[1].reference`). Errors from [`crate::config::load_str`] and
/// [`crate::config::load_file`] also carry the file, the line of the key in it and the
/// `--set` override the value came from; they display as
/// `file:line: key: reason (from --set key=value)`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigError {
    /// Dotted key path, e.g. `federation.server-lr`.
    pub key: String,
    /// What is wrong and what is allowed.
    pub reason: String,
    /// The experiment file (or `<default experiment>`), where known.
    pub file: Option<String>,
    /// The 1-based line of the key in `file` (of its table when the key is missing).
    pub line: Option<usize>,
    /// The `--set KEY=VALUE` override that gave the value, if one did.
    pub set: Option<String>,
}

impl ConfigError {
    /// A new error for `key`, not yet placed in a file.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
            file: None,
            line: None,
            set: None,
        }
    }

    /// This error placed at `line` (if known) of `file`, and attributed to `set`.
    pub fn located(mut self, file: &str, line: Option<usize>, set: Option<String>) -> Self {
        self.file = Some(file.to_string());
        self.line = line;
        self.set = set;
        self
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(file) = &self.file {
            f.write_str(file)?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
            }
            f.write_str(": ")?;
        }
        write!(f, "{}: {}", self.key, self.reason)?;
        if let Some(set) = &self.set {
            write!(f, " (from --set {set})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}
