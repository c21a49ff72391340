//! A finished run directory read back for analysis (`ward robustness`, `ward privacy
//! audit`): its resolved experiment, its data, the simulation it describes and its
//! model files.

use std::path::{Path, PathBuf};

use anyhow::Result;
use ward_core::{ExperimentSpec, Params};
use ward_data::FederatedDataset;
use ward_fl::{EngineOptions, Simulation, build_simulation};
use ward_models::ModelArch;
use ward_report::files;

use crate::experiment::{self, UserError};
use crate::runner;

/// A run directory written by `ward run`, loaded.
#[derive(Debug)]
pub(crate) struct RunDir {
    /// The directory.
    pub(crate) dir: PathBuf,
    /// Its `config.toml`, resolved.
    pub(crate) spec: ExperimentSpec,
    /// The data as loaded (raw features).
    pub(crate) data: FederatedDataset,
    /// The simulation the experiment builds (model architecture, standardised data).
    pub(crate) sim: Simulation,
    /// `model.safetensors`.
    pub(crate) global: Params,
}

impl RunDir {
    /// Loads `dir`; `command` names the command in the error for a directory without
    /// a config.
    pub(crate) fn open(dir: &Path, command: &str, opts: EngineOptions) -> Result<Self> {
        let cfg = dir.join(files::CONFIG);
        if !cfg.exists() {
            return Err(UserError(format!(
                "{}: no {} here; point {command} at a run directory written by ward run",
                dir.display(),
                files::CONFIG
            ))
            .into());
        }
        let loaded = experiment::load(&cfg, &[])?;
        let spec = loaded.spec;
        let data = runner::load_data(&spec, &loaded.base_dir)?;
        let sim = build_simulation(&spec, &data, opts).map_err(|e| UserError(e.to_string()))?;
        let global = load_params(dir, files::MODEL, &sim.arch)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            spec,
            data,
            sim,
            global,
        })
    }

    /// The model `site` uses: its own `model.<site>.safetensors` where the run kept
    /// site layers (FedBN), the global model otherwise; with the file's name.
    pub(crate) fn site_model(&self, site: &str) -> Result<(Params, String)> {
        let own = site_model_file(site);
        if self.dir.join(&own).exists() {
            Ok((load_params(&self.dir, &own, &self.sim.arch)?, own))
        } else {
            Ok((self.global.clone(), files::MODEL.to_string()))
        }
    }
}

/// `model.<site>.safetensors`, the site name made file-safe.
pub(crate) fn site_model_file(site: &str) -> String {
    format!("model.{}.safetensors", runner::sanitize_file_name(site))
}

/// Reads `dir/name` as parameters of `arch`.
pub(crate) fn load_params(dir: &Path, name: &str, arch: &ModelArch) -> Result<Params> {
    let path = dir.join(name);
    let bytes = fs_err::read(&path)?;
    let params = ward_report::params_from_safetensors_as(&bytes, &arch.layout())
        .map_err(|e| UserError(format!("{}: {e}", path.display())))?;
    Ok(params)
}
