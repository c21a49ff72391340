//! The run directory: the resolved `config.toml`, `metrics.jsonl`, `checkpoint.bin`,
//! the model files, `summary.json` and `privacy.json` (their formats live in
//! `ward-report`). [`RunDir`] creates, resumes and finishes one; [`FinishedRun`] reads a
//! finished one back for analysis (`ward robustness`, `ward privacy audit`) through the
//! same [`Experiment::prepare`](crate::Experiment::prepare) that trained it.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use ward_core::Params;
use ward_fl::{Checkpoint, EngineOptions, Federation, SiteRecord, SiteStatus};
use ward_models::ModelArch;
use ward_report::{Summary, files};

use crate::load::{self, Loaded};
use crate::privacy::PrivacyReport;
use crate::{Error, Experiment, Prepared, Result};

/// A run directory being written (a new run or a resumed one).
#[derive(Debug, Clone)]
pub struct RunDir {
    dir: PathBuf,
    /// SHA-256 of `config.toml` as written at the start of the run.
    config_hash: String,
    resume: bool,
}

/// SHA-256 of bytes, lower-case hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl RunDir {
    /// Creates `dir` for a new run of `loaded` and writes its resolved `config.toml`
    /// (every default filled in, a relative data path made absolute). Refused where
    /// `dir` already holds a run or is not a writable directory. Call it after the
    /// experiment was loaded and prepared, so that a mistake found there leaves no
    /// directory behind.
    pub fn create(dir: &Path, loaded: &Loaded) -> Result<Self> {
        if dir.join(files::CONFIG).exists() {
            return Err(Error::User(format!(
                "{} already holds a run: use `ward run --resume {}` or another --out",
                dir.display(),
                dir.display()
            )));
        }
        if dir.exists() && !dir.is_dir() {
            return Err(Error::User(format!(
                "--out {}: is a file, not a directory",
                dir.display()
            )));
        }
        let mut spec = loaded.spec.clone().into_inner();
        // The resolved config stands alone: make a relative data path absolute.
        if let Some(p) = &spec.data.path
            && p.is_relative()
        {
            let abs = loaded.base_dir.join(p);
            let abs =
                fs_err::canonicalize(&abs).map_err(|e| Error::User(format!("data.path: {e}")))?;
            spec.data.path = Some(abs);
        }
        let text = toml::to_string(&spec)
            .map_err(|e| Error::Internal(format!("writing the resolved config: {e}")))?;
        let header = "# Resolved experiment written by `ward run`: every default filled in.\n";
        let bytes = format!("{header}{text}").into_bytes();
        let created = !dir.exists();
        fs_err::create_dir_all(dir)
            .map_err(|e| Error::User(format!("--out {}: {e}", dir.display())))?;
        if let Err(e) = ward_fl::checkpoint::write_atomic(&dir.join(files::CONFIG), &bytes) {
            if created {
                let _ = fs_err::remove_dir_all(dir);
            }
            return Err(Error::User(format!("--out {}: {e}", dir.display())));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            config_hash: sha256_hex(&bytes),
            resume: false,
        })
    }

    /// Opens `dir` to resume the run it holds: its `config.toml`, loaded (the
    /// experiment as it was started), and the directory.
    pub fn resume(dir: &Path) -> Result<(Self, Loaded)> {
        let cfg = dir.join(files::CONFIG);
        if !cfg.exists() {
            return Err(Error::User(format!(
                "--resume {}: no {} there; is it a run directory?",
                dir.display(),
                files::CONFIG
            )));
        }
        let bytes = fs_err::read(&cfg)?;
        let loaded = load::load(&cfg, &[])?;
        Ok((
            Self {
                dir: dir.to_path_buf(),
                config_hash: sha256_hex(&bytes),
                resume: true,
            },
            loaded,
        ))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Prepares a run in this directory: on resume, removes temporary files of an
    /// interrupted write and restores the checkpoint (refused if it was written by
    /// another engine or for another `config.toml`), truncating `metrics.jsonl` to
    /// the checkpoint's length; otherwise starts an empty log.
    pub(crate) fn restore(&self, sim: &mut ward_fl::Simulation) -> Result<()> {
        let metrics = self.dir.join(files::METRICS);
        let ckpt = self.dir.join(files::CHECKPOINT);
        if self.resume {
            self.remove_temporary_files()?;
        }
        if !(self.resume && ckpt.exists()) {
            ward_report::truncate_metrics(&metrics, 0)?;
            return Ok(());
        }
        let c = Checkpoint::read(&ckpt).map_err(|e| Error::User(e.to_string()))?;
        if c.backend != sim.backend {
            return Err(Error::User(format!(
                "{}: written by engine {}, but this resume runs on {}; resume with the same --device and --engine",
                ckpt.display(),
                c.backend,
                sim.backend
            )));
        }
        if c.config_hash != self.config_hash {
            return Err(Error::User(format!(
                "{}: {} changed since the run started (the checkpoint was written for another experiment); restore it or start a new run",
                self.dir.display(),
                files::CONFIG
            )));
        }
        sim.federation
            .restore(&c)
            .map_err(|e| Error::User(format!("{}: {e}", ckpt.display())))?;
        ward_report::truncate_metrics(&metrics, c.metrics_len)
            .map_err(|e| Error::User(e.to_string()))?;
        tracing::info!(round = c.round(), "resumed from {}", ckpt.display());
        Ok(())
    }

    /// Temporary files of an atomic write that a kill interrupted.
    fn remove_temporary_files(&self) -> Result<()> {
        for e in fs_err::read_dir(&self.dir)? {
            let path = e?.path();
            if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(".tmp-"))
            {
                fs_err::remove_file(&path)?;
            }
        }
        Ok(())
    }

    /// After a round: its publishable rows (see [`crate::privacy::PrivacyPlan::published`])
    /// appended to `metrics.jsonl` (synced), then the
    /// checkpoint written atomically with the log's length.
    pub(crate) fn after_round(
        &self,
        fed: &Federation,
        rows: &[SiteRecord],
        backend: &str,
    ) -> Result<()> {
        let len = ward_report::append_metrics(&self.dir.join(files::METRICS), rows)?;
        let mut c = fed.snapshot()?;
        c.metrics_len = len;
        c.backend = backend.to_string();
        c.config_hash.clone_from(&self.config_hash);
        c.write_atomic(&self.dir.join(files::CHECKPOINT))?;
        Ok(())
    }

    /// Updates rejected over the whole log (earlier invocations of a resumed run
    /// included), counted from each row's typed status.
    pub fn rejected_updates(&self) -> Result<usize> {
        let path = self.dir.join(files::METRICS);
        let text = fs_err::read_to_string(&path)?;
        let mut n = 0;
        for (i, line) in text.lines().enumerate() {
            let row: ward_fl::SiteRecord = serde_json::from_str(line).map_err(|e| {
                Error::User(format!(
                    "{}:{}: not a metrics row: {e}",
                    path.display(),
                    i + 1
                ))
            })?;
            n += usize::from(matches!(row.status, SiteStatus::Rejected { .. }));
        }
        Ok(n)
    }

    /// The end of a run: the model files, `privacy.json` and `summary.json`.
    pub(crate) fn finish(
        &self,
        summary: &Summary,
        fed: &Federation,
        privacy: Option<&PrivacyReport>,
    ) -> Result<()> {
        let meta = serde_json::json!({
            "model": summary.model,
            "strategy": summary.strategy,
            "rounds": summary.rounds,
            "seed": summary.seed,
            "backend": summary.backend,
            "ward_version": ward_core::WARD_VERSION,
        })
        .to_string();
        let bytes = ward_report::params_to_safetensors(fed.global(), &meta)?;
        ward_fl::checkpoint::write_atomic(&self.dir.join(files::MODEL), &bytes)?;
        // FedBN: each site's own model (global layers + its BatchNorm layers).
        for (site, params) in fed.personalised_models() {
            let bytes = ward_report::params_to_safetensors(&params, &meta)?;
            ward_fl::checkpoint::write_atomic(&self.dir.join(site_model_file(&site)), &bytes)?;
        }
        if let Some(pr) = privacy {
            ward_report::write_json_atomic(&self.dir.join(files::PRIVACY), pr)?;
        }
        ward_report::write_json_atomic(&self.dir.join(files::SUMMARY), summary)?;
        Ok(())
    }
}

/// A finished run directory read back for analysis: its resolved experiment, the
/// federation that experiment builds (model architecture, the standardised data the
/// sites trained on) and its model files.
#[derive(Debug)]
pub struct FinishedRun {
    /// The directory.
    pub dir: PathBuf,
    /// Its `config.toml`, loaded.
    pub loaded: Loaded,
    /// The experiment (spec and raw data).
    pub experiment: Experiment,
    /// The federation as prepared for the run.
    pub prepared: Prepared,
    /// `model.safetensors`.
    pub global: Params,
}

impl FinishedRun {
    /// Loads `dir`; `command` names the command in the error for a directory without
    /// a config or a model.
    pub fn open(dir: &Path, command: &str, opts: EngineOptions) -> Result<Self> {
        let cfg = dir.join(files::CONFIG);
        if !cfg.exists() {
            return Err(Error::User(format!(
                "{}: no {} here; point {command} at a run directory written by ward run",
                dir.display(),
                files::CONFIG
            )));
        }
        let loaded = load::load(&cfg, &[])?;
        let experiment = Experiment::from_loaded(&loaded)?;
        let prepared = experiment.prepare(opts)?;
        let global = load_params(dir, files::MODEL, &prepared.simulation().arch)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            loaded,
            experiment,
            prepared,
            global,
        })
    }

    /// The resolved experiment.
    pub fn spec(&self) -> &ward_core::config::CheckedSpec {
        &self.loaded.spec
    }

    /// The model architecture.
    pub fn arch(&self) -> &ModelArch {
        &self.prepared.simulation().arch
    }

    /// The model `site` uses: its own `model.<site>.safetensors` where the run kept
    /// site layers (FedBN), the global model otherwise; with the file's name.
    pub fn site_model(&self, site: &str) -> Result<(Params, String)> {
        let own = site_model_file(site);
        if self.dir.join(&own).exists() {
            Ok((load_params(&self.dir, &own, self.arch())?, own))
        } else {
            Ok((self.global.clone(), files::MODEL.to_string()))
        }
    }
}

/// `model.<site>.safetensors`, the site name made file-safe.
pub fn site_model_file(site: &str) -> String {
    format!("model.{}.safetensors", sanitize_file_name(site))
}

/// A site name as a file-name component: ASCII letters, digits, `-`, `_`, `.`; anything
/// else becomes `_`.
pub fn sanitize_file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Reads `dir/name` as parameters of `arch`; a missing or unreadable file is the
/// user's error, naming the file.
pub fn load_params(dir: &Path, name: &str, arch: &ModelArch) -> Result<Params> {
    let path = dir.join(name);
    let bytes = fs_err::read(&path).map_err(|e| {
        Error::User(format!(
            "{e}: the run directory has no trained model (did the run finish?)"
        ))
    })?;
    let params = ward_report::params_from_safetensors_as(&bytes, &arch.layout())
        .map_err(|e| Error::User(format!("{}: {e}", path.display())))?;
    Ok(params)
}

/// `runs/<name>-<UTC timestamp>`, made unique with a counter if it exists.
pub fn default_run_dir(name: &str) -> PathBuf {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace([':', '-'], "")
        .replace('T', "-")
        .trim_end_matches('Z')
        .to_string();
    let base = PathBuf::from("runs").join(format!("{name}-{stamp}"));
    let mut dir = base.clone();
    let mut i = 1;
    while dir.exists() {
        dir = PathBuf::from(format!("{}-{i}", base.display()));
        i += 1;
    }
    dir
}
