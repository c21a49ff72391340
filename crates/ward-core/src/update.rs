//! What a site sends back after local training, and the metrics that travel with it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Params;

/// Named scalar metrics (`train_loss`, `accuracy`, ...). Ordered, so output is stable.
pub type Metrics = BTreeMap<String, f64>;

/// Index of a site in the federation (0-based, in the order of the data's sites).
pub type SiteId = usize;

/// The result of one site's local training in one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Update {
    /// The site that produced it.
    pub site: SiteId,
    /// The site's new local model (not a delta).
    pub params: Params,
    /// Number of training examples behind the update (FedAvg's weight).
    pub num_examples: usize,
    /// Training metrics (e.g. `train_loss`, `steps`).
    pub metrics: Metrics,
    /// SCAFFOLD only: the change of the site's control variate, `c_i+ - c_i`.
    pub control_delta: Option<Params>,
}
