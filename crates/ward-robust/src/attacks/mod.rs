//! Poisoning attacks (data and model poisoning).
//!
//! - [`model`]: what a compromised site sends instead of its honest update — sign flip,
//!   scaling of the honest update, model replacement (Bagdasaryan et al. 2020: the
//!   backdoored update boosted by gamma), Gaussian noise relative to the honest norm,
//!   ALIE (Baruch et al. 2019), IPM (Xie et al. 2020), min-max and min-sum (Shejwalkar &
//!   Houmansadr 2021), Fang et al. 2020's attack on trimmed mean and median
//!   (`fang-trim`), and mimic (Karimireddy et al. 2022). Omniscient attacks read the round's honest updates through
//!   [`model::Omniscience`], which says so in the type.
//! - [`data`]: what a compromised site does to its own training data — label flipping
//!   (all-to-one, random, class swap), noisy labels at a rate, feature noise, and a
//!   tabular backdoor trigger with a target label.
//!
//! Everything works on `Params` values and `ward_data::Split`s, deterministic from the
//! caller's RNG.

pub mod data;
pub mod model;
pub mod setup;

/// Errors of attack settings and inputs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AttackError {
    /// A setting is out of range; names the setting.
    #[error("attack setting {setting}: {reason}")]
    Setting {
        /// The setting, e.g. `attack.rate`.
        setting: String,
        /// What is wrong.
        reason: String,
    },
    /// The attack needs the honest updates of the round and got none.
    #[error("attack {0} is omniscient: it needs the round's honest updates")]
    NeedsHonestUpdates(String),
    /// Vectors of different lengths.
    #[error("vector lengths differ: {0} vs {1}")]
    Length(usize, usize),
}

pub(crate) fn setting(setting: &str, reason: impl Into<String>) -> AttackError {
    AttackError::Setting {
        setting: setting.into(),
        reason: reason.into(),
    }
}
