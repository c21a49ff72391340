//! The library's error: a mistake in the user's input (a front end exits with code 2)
//! or a failure of Ward or the machine (code 1).

use std::fmt::Display;

/// Everything that can stop an experiment or a command of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A mistake in the user's input: the experiment file, the data, a flag, a run
    /// directory. The message names what and where.
    #[error("{0}")]
    User(String),
    /// Reading or writing a file (the path is in the message).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The round engine.
    #[error(transparent)]
    Fl(#[from] ward_fl::FlError),
    /// Image corruptions.
    #[error(transparent)]
    Corrupt(#[from] ward_data::corrupt::CorruptError),
    /// Models and training.
    #[error(transparent)]
    Model(#[from] ward_models::ModelError),
    /// Data loading.
    #[error(transparent)]
    Data(#[from] ward_data::DataError),
    /// Run-directory formats.
    #[error(transparent)]
    Report(#[from] ward_report::ReportError),
    /// Accounting and privacy mechanisms.
    #[error(transparent)]
    Privacy(#[from] ward_privacy::PrivacyError),
    /// Robust aggregation and attacks.
    #[error(transparent)]
    Robust(#[from] ward_robust::RobustError),
    /// The experiment file (a check found after loading, e.g. a grid's variant).
    #[error(transparent)]
    Config(#[from] ward_core::ConfigError),
    /// The secure-aggregation protocol.
    #[error(transparent)]
    SecAgg(#[from] ward_privacy::secagg::SecAggError),
    /// Parameter vectors.
    #[error(transparent)]
    Params(#[from] ward_core::ParamsError),
    /// JSON encoding or decoding.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// Anything else that is not the user's mistake.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// A user error (exit code 2) with this message.
    pub fn user(msg: impl Into<String>) -> Self {
        Self::User(msg.into())
    }

    /// An internal error with this message.
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::Internal(msg.into())
    }

    /// Whether the user's input caused it (a front end exits with code 2).
    pub fn is_user(&self) -> bool {
        matches!(self, Self::User(_) | Self::Config(_))
    }
}

/// The result of this crate's functions.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds what was being done to an error, as an internal error.
pub(crate) trait Context<T> {
    /// `what: error`.
    fn context(self, what: &str) -> Result<T>;
    /// `what(): error`, the message built only on failure.
    fn with_context<F: FnOnce() -> String>(self, what: F) -> Result<T>;
}

impl<T, E: Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: &str) -> Result<T> {
        self.map_err(|e| Error::Internal(format!("{what}: {e}")))
    }

    fn with_context<F: FnOnce() -> String>(self, what: F) -> Result<T> {
        self.map_err(|e| Error::Internal(format!("{}: {e}", what())))
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, what: &str) -> Result<T> {
        self.ok_or_else(|| Error::Internal(what.to_string()))
    }

    fn with_context<F: FnOnce() -> String>(self, what: F) -> Result<T> {
        self.ok_or_else(|| Error::Internal(what()))
    }
}

/// Returns early with an internal error built like `format!` unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            return Err($crate::Error::Internal(format!($($arg)*)));
        }
    };
}
pub(crate) use ensure;

/// Returns early with an internal error built like `format!`.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::Error::Internal(format!($($arg)*)))
    };
}
pub(crate) use bail;
