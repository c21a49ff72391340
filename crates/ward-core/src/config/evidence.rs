//! `[evidence]`: what the run measures about its predictions after training (calibration,
//! conformal sets, deferral, fairness), and the calibration split it carves for that.

use serde::{Deserialize, Serialize};

use super::*;

/// Conformal score function (Sadinle et al. 2019 LAC; Romano et al. 2020 APS; Angelopoulos
/// et al. 2021 RAPS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConformalScoreKind {
    /// Least ambiguous set-valued classifier: `1 - p_y`.
    Lac,
    /// Adaptive prediction sets: mass of the classes ranked at or above `y`.
    #[default]
    Aps,
    /// Regularised APS: APS plus `lambda * max(0, rank - k_reg)`.
    Raps,
}

impl ConformalScoreKind {
    /// Lower-case name as written in configs and results.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lac => "lac",
            Self::Aps => "aps",
            Self::Raps => "raps",
        }
    }
}

/// `[evidence]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EvidenceSpec {
    /// Fraction of each site's training rows set aside (stratified by class, seeded by
    /// the run seed) as the site's calibration split: never trained on, never the test
    /// split. Recalibration and conformal prediction need it; unset, the run trains on
    /// every training row and the report says those sections are unavailable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration_fraction: Option<f64>,
    /// Conformal miscoverage level: sets aim to hold the true class with probability
    /// at least `1 - alpha`.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Conformal score: `lac`, `aps` or `raps`.
    #[serde(default)]
    pub score: ConformalScoreKind,
    /// RAPS: ranks up to `raps-k-reg` are not penalised.
    #[serde(default = "default_k_reg")]
    pub raps_k_reg: usize,
    /// RAPS: penalty per rank past `raps-k-reg`.
    #[serde(default = "default_raps_lambda")]
    pub raps_lambda: f64,
    /// Equal-width confidence bins of ECE, MCE and the reliability diagrams.
    #[serde(default = "default_bins")]
    pub bins: usize,
    /// The error on the cases the model keeps that the deferral policy aims for: the
    /// report states the smallest fraction deferred to a clinician that reaches it.
    #[serde(default = "default_target_error")]
    pub target_error: f64,
    /// A table column that names a group (e.g. `sex`): fairness metrics by group on
    /// each site's test rows, read from the raw (unstandardised) value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_column: Option<String>,
}

fn default_alpha() -> f64 {
    0.1
}
fn default_k_reg() -> usize {
    1
}
fn default_raps_lambda() -> f64 {
    0.01
}
fn default_bins() -> usize {
    15
}
fn default_target_error() -> f64 {
    0.05
}

impl Default for EvidenceSpec {
    fn default() -> Self {
        Self {
            calibration_fraction: None,
            alpha: default_alpha(),
            score: ConformalScoreKind::default(),
            raps_k_reg: default_k_reg(),
            raps_lambda: default_raps_lambda(),
            bins: default_bins(),
            target_error: default_target_error(),
            group_column: None,
        }
    }
}

impl EvidenceSpec {
    /// Whether every key has its default (the section is then left out of the resolved
    /// config).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(f) = self.calibration_fraction {
            check(f > 0.0 && f <= 0.5, "evidence.calibration-fraction", || {
                format!("must be in (0, 0.5], got {f}")
            })?;
        }
        check(
            self.alpha > 0.0 && self.alpha < 1.0,
            "evidence.alpha",
            || format!("must be in (0, 1), got {}", self.alpha),
        )?;
        check(
            self.raps_lambda.is_finite() && self.raps_lambda >= 0.0,
            "evidence.raps-lambda",
            || format!("must be a finite number >= 0, got {}", self.raps_lambda),
        )?;
        check(self.bins >= 1, "evidence.bins", || "must be >= 1".into())?;
        check(
            self.target_error > 0.0 && self.target_error < 1.0,
            "evidence.target-error",
            || format!("must be in (0, 1), got {}", self.target_error),
        )?;
        if let Some(c) = &self.group_column {
            check(!c.trim().is_empty(), "evidence.group-column", || {
                "must name a column".into()
            })?;
        }
        Ok(())
    }
}
