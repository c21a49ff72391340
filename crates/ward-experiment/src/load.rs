//! Loading experiment files: a thin wrapper of [`ward_core::config::load_file`] (TOML
//! text + `--set` overrides → a [`ward_core::config::CheckedSpec`], errors naming the file, the line and the
//! dotted key) that turns its errors into user errors.

use std::path::Path;

use ward_core::config;

use crate::{Error, Result};

pub use config::Loaded;

fn user(e: config::LoadError) -> Error {
    Error::User(e.to_string())
}

/// The built-in default experiment with `sets` applied.
///
/// # Errors
/// [`Error::User`] naming the `--set` and the key when an override does not fit.
pub fn default_experiment(sets: &[String]) -> Result<Loaded> {
    config::default_experiment(sets).map_err(user)
}

/// Reads and checks an experiment file, applying `sets`.
///
/// # Errors
/// [`Error::User`] naming the file, the line and the dotted key (or the `--set`).
pub fn load(path: &Path, sets: &[String]) -> Result<Loaded> {
    config::load_file(path, sets).map_err(user)
}
