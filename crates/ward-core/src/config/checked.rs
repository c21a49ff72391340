//! [`CheckedSpec`]: an experiment that passed [`ExperimentSpec::check`], with the
//! choices the raw file states as optional keys handed out as typed variants.

use std::ops::Deref;

use serde::{Serialize, Serializer};

use super::{CentralDpSpec, DpSgdSpec, ExperimentSpec, NoiseSpec};
use crate::ConfigError;

/// An experiment whose ranges and consistency are checked. Only
/// [`ExperimentSpec::check`] makes one, so code that takes a `CheckedSpec` needs no
/// "checked by the config" fallbacks. It reads as the spec through `Deref` and
/// serialises as it (the run directory's `config.toml`).
///
/// ```
/// use ward_core::config::{ExperimentSpec, NoiseSpec};
///
/// let mut spec = ExperimentSpec::default_heart();
/// spec.privacy.dp_sgd = Some(toml::from_str("clip = 1.0\ntarget-epsilon = 2.0")?);
/// let checked = spec.check()?;
/// assert_eq!(checked.federation.rounds, 15);
/// let (_, noise) = checked.dp_sgd().unwrap();
/// assert_eq!(noise, NoiseSpec::TargetEpsilon(2.0));
/// Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedSpec {
    spec: ExperimentSpec,
    dp_sgd_noise: Option<NoiseSpec>,
    central_noise: Option<NoiseSpec>,
}

impl ExperimentSpec {
    /// Checks ranges and consistency ([`ExperimentSpec::validate`]) and returns the
    /// checked experiment; the error names the key (dotted path).
    pub fn check(self) -> Result<CheckedSpec, ConfigError> {
        self.validate()?;
        let dp_sgd_noise = self
            .privacy
            .dp_sgd
            .as_ref()
            .map(DpSgdSpec::noise)
            .transpose()?;
        let central_noise = self
            .privacy
            .central
            .as_ref()
            .map(CentralDpSpec::noise)
            .transpose()?;
        Ok(CheckedSpec {
            spec: self,
            dp_sgd_noise,
            central_noise,
        })
    }
}

impl CheckedSpec {
    /// The experiment as checked.
    pub fn spec(&self) -> &ExperimentSpec {
        &self.spec
    }

    /// The raw experiment, for edits that must be checked again.
    pub fn into_inner(self) -> ExperimentSpec {
        self.spec
    }

    /// `[privacy.dp-sgd]` with its noise, given as a multiplier or a target epsilon.
    pub fn dp_sgd(&self) -> Option<(&DpSgdSpec, NoiseSpec)> {
        self.spec.privacy.dp_sgd.as_ref().zip(self.dp_sgd_noise)
    }

    /// `[privacy.central]` with its noise, given as a multiplier or a target epsilon.
    pub fn central(&self) -> Option<(&CentralDpSpec, NoiseSpec)> {
        self.spec.privacy.central.as_ref().zip(self.central_noise)
    }
}

impl Deref for CheckedSpec {
    type Target = ExperimentSpec;

    fn deref(&self) -> &ExperimentSpec {
        &self.spec
    }
}

impl AsRef<ExperimentSpec> for CheckedSpec {
    fn as_ref(&self) -> &ExperimentSpec {
        &self.spec
    }
}

impl Serialize for CheckedSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.spec.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_typed_and_checked() {
        let with = |dp: &str, central: &str| {
            let mut spec = ExperimentSpec::default_heart();
            spec.privacy.dp_sgd = (!dp.is_empty()).then(|| toml::from_str(dp).unwrap());
            spec.privacy.central = (!central.is_empty()).then(|| toml::from_str(central).unwrap());
            spec.check()
        };
        let c = with("clip = 1.0\nnoise-multiplier = 1.3", "").unwrap();
        assert_eq!(c.dp_sgd().map(|d| d.1), Some(NoiseSpec::Multiplier(1.3)));
        assert_eq!(c.central(), None);
        let c = with("", "clip = 1.0\ntarget-epsilon = 4.0").unwrap();
        assert_eq!(
            c.central().map(|d| d.1),
            Some(NoiseSpec::TargetEpsilon(4.0))
        );
        let e = with("clip = 1.0", "").unwrap_err();
        assert_eq!(
            e.to_string(),
            "privacy.dp-sgd.noise-multiplier: give exactly one of noise-multiplier and target-epsilon"
        );
        let c = with("", "").unwrap();
        assert_eq!(
            toml::to_string(&c).unwrap(),
            toml::to_string(c.spec()).unwrap()
        );
        assert_eq!(c.into_inner(), ExperimentSpec::default_heart());
    }
}
