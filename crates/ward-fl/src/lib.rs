//! Ward's round engine.
//!
//! - [`SiteHandle`]: what the coordinator can ask of a site; [`InProcessSite`] runs a
//!   site in this process (simulation). Deployment plugs in a network client.
//! - [`Federation`]: runs rounds (select → fit → validate → aggregate → server step →
//!   evaluate), records per-site outcomes, and snapshots its whole state into a
//!   [`Checkpoint`] after every round.
//! - Strategies: [`FedAvg`] aggregation with [`ServerOpt`] (replace for FedAvg, FedProx
//!   and Cyclic; server SGD for SCAFFOLD; FedAdam/FedYogi/FedAdagrad), FedProx's
//!   proximal term and SCAFFOLD's control variates on the site side.
//! - [`secagg`]: secure aggregation (SecAgg+ from `ward_secagg`) over the
//!   [`SiteHandle`] protocol steps ([`Federation::enable_secagg`]): the server sums
//!   masked, example-weighted updates and never sees one site's update.
//!
//! ```
//! use ward_core::{Metrics, Params, Update};
//! use ward_fl::{Aggregator, FedAvg, RoundContext};
//!
//! let global = Params::from_flat(vec![0.0]);
//! let u = |v: f32, n| Update { site: 0, params: Params::from_flat(vec![v]), num_examples: n,
//!     metrics: Metrics::new(), control_delta: None };
//! let agg = FedAvg.aggregate(&[u(1.0, 1), u(3.0, 3)], &RoundContext::new(1, &global))?;
//! assert_eq!(agg.params.values(), &[2.5]);
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod checkpoint;
mod federation;
pub mod secagg;
mod sim;
mod site;
mod strategy;

pub use checkpoint::Checkpoint;
pub use federation::{Federation, FederationConfig, RoundReport, SiteRecord, SiteRole, SiteStatus};
pub use secagg::{SecAggFitReport, SecAggInstructions, SecAggRoundRecord, SecAggSettings};
pub use sim::{
    CALIBRATION_SEED, DataPoisoner, EngineOptions, Simulation, build_simulation,
    build_simulation_with, carve_calibration, local_work, model_arch, site_learner,
};
pub use site::{FitInstructions, InProcessSite, LocalWork, SiteHandle};
pub use strategy::{
    Aggregate, Aggregator, FedAvg, FedOptKind, RoundContext, ServerMechanism, ServerOpt,
    ServerOptimizer, UpdateAttack, weighted_mean,
};

/// Errors of the round engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlError {
    /// The federation's settings do not fit its sites.
    #[error("federation config: {0}")]
    Config(String),
    /// A site failed.
    #[error("site {site}: {reason}")]
    Site {
        /// Site name.
        site: String,
        /// What went wrong.
        reason: String,
    },
    /// Aggregation was asked for with no update.
    #[error("no update to aggregate")]
    NoUpdates,
    /// Parameters did not fit.
    #[error(transparent)]
    Params(#[from] ward_core::ParamsError),
    /// A checkpoint could not be read or written.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// File I/O.
    #[error("{0}")]
    Io(String),
    /// Secure aggregation could not finish a round (too many dropouts:
    /// [`ward_secagg::SecAggError::Dropouts`], or a protocol error).
    #[error("round {round}: {source} (sites are numbered in the round: {})", numbered(.sites))]
    SecAgg {
        /// The round (from 1).
        round: usize,
        /// The protocol's reason (it names sites by their number in the round).
        #[source]
        source: ward_secagg::SecAggError,
        /// The round's sites, in the protocol's numbering.
        sites: Vec<String>,
    },
}

/// `0 = a, 1 = b, ...`.
fn numbered(sites: &[String]) -> String {
    sites
        .iter()
        .enumerate()
        .map(|(k, s)| format!("{k} = {s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl From<std::io::Error> for FlError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e.to_string())
    }
}

impl FlError {
    pub(crate) fn site(name: &str, e: impl std::fmt::Display) -> Self {
        Self::Site {
            site: name.to_string(),
            reason: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests;
