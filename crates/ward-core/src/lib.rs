//! Ward's shared types.
//!
//! - [`Params`]: a model as one flat `f32` vector plus a [`Layout`] of named tensors.
//!   Everything federated works on `Params`, never on engine tensors.
//! - [`Update`]: what a site returns after local training.
//! - [`Metrics`]: named scalars, ordered.
//! - [`config`]: the typed experiment file ([`ExperimentSpec`]), checked into a
//!   [`config::CheckedSpec`] by [`ExperimentSpec::check`], and loaded with errors that
//!   name file, line and key by [`config::load_file`].
//! - [`fsutil`]: [`fsutil::write_atomic`], the one atomic writer of state files.
//! - [`stats`]: mean, sample std, median, quantile and ROC AUC, with `None` on empty input.
//!
//! ```
//! use ward_core::Params;
//!
//! let global = Params::from_flat(vec![1.0, 2.0]);
//! let local = Params::from_flat(vec![1.5, 1.0]);
//! let delta = local.sub(&global)?;
//! assert_eq!(delta.values(), &[0.5, -1.0]);
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod config;
mod error;
pub mod fsutil;
mod params;
pub mod stats;
mod update;

pub use config::ExperimentSpec;
pub use error::{ConfigError, ParamsError};
pub use params::{Layout, Params, TensorSpec};
pub use update::{Metrics, SiteId, Update};

/// Ward's version, recorded in every result file.
pub const WARD_VERSION: &str = env!("CARGO_PKG_VERSION");
