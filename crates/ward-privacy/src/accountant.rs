//! Privacy accountants for the subsampled Gaussian mechanism (in progress: the API is
//! fixed, the implementation lands with the accountant work).

use serde::{Deserialize, Serialize};

use crate::PrivacyError;

/// Which accountant computes epsilon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccountantKind {
    /// Rényi DP (Mironov 2017; subsampled Gaussian, Mironov et al. 2019).
    #[default]
    Rdp,
    /// Privacy random variables (Gopi et al. 2021).
    Prv,
}

impl AccountantKind {
    /// The name as written in configs and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rdp => "rdp",
            Self::Prv => "prv",
        }
    }
}

/// `steps` compositions of the Poisson-subsampled Gaussian mechanism with noise
/// multiplier `sigma` and sample rate `q`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GaussianEvent {
    /// Noise multiplier (noise std / clip norm).
    pub sigma: f64,
    /// Sampling rate in (0, 1].
    pub q: f64,
    /// Number of steps.
    pub steps: u64,
}

/// Epsilon at `delta` after composing every event.
pub fn epsilon(
    kind: AccountantKind,
    events: &[GaussianEvent],
    delta: f64,
) -> Result<f64, PrivacyError> {
    let _ = (events, delta);
    Err(PrivacyError::Accountant {
        accountant: kind.as_str(),
        reason: "not implemented yet".into(),
    })
}

/// The smallest noise multiplier (to 1e-4) whose epsilon after `steps` steps at rate
/// `q` is at most `target_epsilon` at `delta`.
pub fn calibrate_sigma(
    kind: AccountantKind,
    target_epsilon: f64,
    q: f64,
    steps: u64,
    delta: f64,
) -> Result<f64, PrivacyError> {
    let _ = (target_epsilon, q, steps, delta);
    Err(PrivacyError::Accountant {
        accountant: kind.as_str(),
        reason: "not implemented yet".into(),
    })
}
