//! The one way to build and run a Ward experiment.
//!
//! An [`Experiment`] is a checked spec plus its loaded data; [`Experiment::prepare`]
//! builds the federation once (standardised data, model, engine, strategy, attack,
//! aggregator, FLTrust root sample, privacy mechanisms); [`Prepared::run`] drives the
//! rounds and reports them to an [`Observer`] (a progress bar, a status page), and
//! [`Prepared::run_in`] does the same with a [`RunDir`] (metrics, checkpoint after every
//! round, resume, model files, summary, privacy report). The `ward` binary, and later
//! the coordinator and the sites, use this crate and nothing below it to run anything;
//! the commands' bodies live here too ([`reproduce`], [`mod@bench`], [`grid`],
//! [`robustness`], [`audit`], [`data`], [`calc`], [`aggregate`], [`trust`]), so the binary only
//! parses arguments and prints.
//!
//! Driving a run from Rust:
//!
//! ```
//! use ward_experiment::{EngineOptions, Experiment, Quiet};
//!
//! // FedAvg on the embedded four-hospital heart-disease cohort, 3 rounds.
//! let experiment = Experiment::default_with(&["federation.rounds=3".into()])?;
//! let outcome = experiment.prepare(EngineOptions::default())?.run(&mut Quiet)?;
//! assert_eq!(outcome.summary.rounds, 3);
//! assert_eq!(outcome.summary.per_site.len(), 4);
//! assert!(outcome.summary.mean_accuracy > 0.5);
//! # Ok::<(), ward_experiment::Error>(())
//! ```

pub mod aggregate;
pub mod audit;
pub mod bench;
mod build;
pub mod calc;
pub mod data;
mod error;
pub mod evidence;
pub mod grid;
mod load;
pub mod options;
mod parallel;
pub mod privacy;
pub mod report;
pub mod reproduce;
pub mod robustness;
mod run;
mod run_dir;
pub mod trust;

pub use error::{Error, Result};
pub use load::{Loaded, default_experiment, load};
pub use run::{
    Experiment, Observer, Outcome, Prepared, Quiet, Trained, load_data, prepare, run_quietly,
    site_learner,
};
pub use run_dir::{
    FinishedRun, RunDir, default_run_dir, load_params, sanitize_file_name, site_model_file,
};
pub use ward_fl::{EngineOptions, RoundReport, SiteHandle, SiteRecord, SiteStatus};

use crate::options::EngineArgs;

/// Parses `--device` and `--engine`.
pub fn engine_options(a: &EngineArgs) -> Result<EngineOptions> {
    Ok(EngineOptions {
        device: a
            .device
            .parse()
            .map_err(|e: ward_models::ModelError| Error::User(format!("--device: {e}")))?,
        engine: a
            .engine
            .parse()
            .map_err(|e: ward_models::ModelError| Error::User(format!("--engine: {e}")))?,
    })
}

/// Sends one line of a command's output to the observer.
pub(crate) fn say(obs: &mut dyn Observer, line: impl std::fmt::Display) {
    obs.line(&line.to_string());
}
