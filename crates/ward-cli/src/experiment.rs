//! Loading experiment files: a thin wrapper of [`ward_core::config::load_file`] (TOML
//! text + `--set` overrides → a checked `ExperimentSpec`, errors naming the file, the
//! line and the key) that turns its errors into user errors.

use std::fmt;
use std::path::{Path, PathBuf};

use ward_core::ExperimentSpec;
use ward_core::config;

/// A mistake in the user's input (exit code 2), as opposed to an internal failure.
#[derive(Debug)]
pub(crate) struct UserError(pub(crate) String);

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UserError {}

/// A loaded experiment and where relative paths in it resolve from.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub(crate) spec: ExperimentSpec,
    pub(crate) base_dir: PathBuf,
}

impl From<config::Loaded> for Loaded {
    fn from(l: config::Loaded) -> Self {
        Self {
            spec: l.spec.into_inner(),
            base_dir: l.base_dir,
        }
    }
}

fn user(e: config::LoadError) -> UserError {
    UserError(e.to_string())
}

/// The built-in default experiment with `sets` applied.
pub(crate) fn default_experiment(sets: &[String]) -> Result<Loaded, UserError> {
    config::default_experiment(sets)
        .map(Loaded::from)
        .map_err(user)
}

/// Reads and checks an experiment file, applying `sets`.
pub(crate) fn load(path: &Path, sets: &[String]) -> Result<Loaded, UserError> {
    config::load_file(path, sets)
        .map(Loaded::from)
        .map_err(user)
}
