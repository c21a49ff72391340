//! Ward's results on disk.
//!
//! A run directory holds:
//! - `config.toml`: the resolved experiment (every default filled in);
//! - `metrics.jsonl`: one JSON object per round and site ([`ward_fl::SiteRecord`]);
//! - `summary.json`: the final scores ([`Summary`]);
//! - `model.safetensors`: the final global model, tensors named as in its layout;
//! - `checkpoint.bin`: the federation state after the last completed round.
//!
//! Every file except the append-only metrics log is written atomically
//! ([`ward_core::fsutil::write_atomic`]); CSV tables go through the `csv` crate
//! ([`write_csv_atomic`], [`read_csv`]).
//!
//! ```
//! use ward_core::Params;
//! let bytes = ward_report::params_to_safetensors(&Params::from_flat(vec![1.0, 2.0]), "{}")?;
//! let back = ward_report::params_from_safetensors(&bytes)?;
//! assert_eq!(back.values(), &[1.0, 2.0]);
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

mod csvfile;
mod heatmap;
mod lines;

pub use csvfile::{CsvTable, csv_bytes, parse_csv, read_csv, write_csv_atomic};
pub use heatmap::Heatmap;
pub use lines::LineChart;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};
use ward_core::{Layout, Params, TensorSpec};
use ward_fl::SiteRecord;

/// File names inside a run directory.
pub mod files {
    /// The resolved experiment.
    pub const CONFIG: &str = "config.toml";
    /// One JSON line per round and site.
    pub const METRICS: &str = "metrics.jsonl";
    /// Final scores.
    pub const SUMMARY: &str = "summary.json";
    /// Final global model.
    pub const MODEL: &str = "model.safetensors";
    /// Federation state after the last completed round.
    pub const CHECKPOINT: &str = "checkpoint.bin";
    /// The privacy report (runs with a privacy mechanism).
    pub const PRIVACY: &str = "privacy.json";
    /// Calibration, conformal sets, deferral, uncertainty and fairness of the final
    /// models on each site's test split (`ward run`, `ward report`).
    pub const EVIDENCE: &str = "evidence.json";
    /// The HTML report `ward report` writes by default.
    pub const REPORT: &str = "report.html";
}

/// Errors writing or reading results.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// File I/O (the message names the path).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// JSON encoding or decoding.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The error.
        source: serde_json::Error,
    },
    /// A CSV table cannot be written or read.
    #[error("{}{}: {message}", path.display(), line.map_or_else(String::new, |l| format!(":{l}")))]
    Csv {
        /// The file.
        path: PathBuf,
        /// The line, where the CSV reader knows it.
        line: Option<u64>,
        /// What is wrong.
        message: String,
    },
    /// A model file is not valid safetensors, or not a Ward model.
    #[error("model file: {0}")]
    Model(String),
    /// `metrics.jsonl` does not match the run's checkpoint (cut short or replaced).
    #[error("{0}")]
    Metrics(String),
    /// A federation error (e.g. from a checkpoint), passed on.
    #[error(transparent)]
    Fl(#[from] ward_fl::FlError),
}

/// The final scores of a run (`summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Experiment name.
    pub experiment: String,
    /// Mean of the sites' test accuracies (unweighted, FLamby's headline figure).
    pub mean_accuracy: f64,
    /// Site name → test accuracy of the final global model.
    pub per_site: BTreeMap<String, f64>,
    /// Site name → test AUC as MedMNIST reports it (binary: AUC of P(class 1);
    /// multi-class: macro one-vs-rest on the softmax probabilities; multi-label: mean
    /// per-label AUC), for sites whose test rows hold both a positive and a negative of
    /// at least one class or label.
    pub per_site_auc: BTreeMap<String, f64>,
    /// The final model scored on the dataset's held-out set as one set (a MedMNIST
    /// file's test split: every test image once, each by the model the site holding it
    /// uses); absent for datasets without one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub held_out: Option<HeldOutScore>,
    /// Personalised evaluation (only with `federation.fine-tune-steps` > 0): site name →
    /// test accuracy after local fine-tuning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub personalised_per_site: Option<BTreeMap<String, f64>>,
    /// Mean of `personalised_per_site`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub personalised_mean_accuracy: Option<f64>,
    /// Local fine-tuning steps behind the personalised scores.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fine_tune_steps: Option<usize>,
    /// Rounds run.
    pub rounds: usize,
    /// The aggregation rule (e.g. `fedavg`, `multi-krum`).
    pub aggregator: String,
    /// The simulated attack, if any (e.g. `alie`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attack: Option<String>,
    /// The sites the attack compromised.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub compromised_sites: Vec<String>,
    /// Backdoor attacks: site name → share of triggered test rows (true label not the
    /// target) classified as the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backdoor_success: Option<BTreeMap<String, f64>>,
    /// Mean of `backdoor_success`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backdoor_success_mean: Option<f64>,
    /// Run seed.
    pub seed: u64,
    /// Strategy, lower case (e.g. `fedavg`).
    pub strategy: String,
    /// Model, e.g. `logistic 13-1 (bce)`.
    pub model: String,
    /// What computed it, e.g. `cpu:native` or `cpu:burn-flex`.
    pub backend: String,
    /// Ward's version.
    pub ward_version: String,
    /// Wall time of the run in seconds (of the last invocation when resumed).
    pub wall_time_s: f64,
    /// Updates rejected over the run (NaN/Inf, wrong length, ...); `None` (null) under
    /// site-level DP, which withholds it (it depends on the sites' raw updates).
    pub rejected_updates: Option<usize>,
    /// What loading the data reported: files skipped under `on-bad-file = "skip"` (each
    /// with its reason), rows dropped for missing values, ...
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub data_warnings: Vec<String>,
    /// FLTrust's root sample (`robust.root-samples`): site → indices of the training
    /// rows (in the site's training split) moved to the server.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub root_sample: Option<BTreeMap<String, Vec<usize>>>,
    /// The privacy report (runs with a privacy mechanism): mechanisms, clip norms,
    /// noise multipliers, sampling rates, steps and (epsilon, delta) per accountant,
    /// per site and overall; also written to `privacy.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<serde_json::Value>,
}

/// Scores on a held-out set scored whole (`summary.json`'s `held_out`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldOutScore {
    /// What the set is, e.g. `the test split of pathmnist.npz (7180 images)`.
    pub what: String,
    /// Images (rows) scored.
    pub n: usize,
    /// Accuracy over them (multi-label: over every (image, label) pair).
    pub accuracy: f64,
    /// AUC over them, as `per_site_auc` defines it; `None` (null) when no class or
    /// label has both a positive and a negative.
    pub auc: Option<f64>,
}

/// Writes `value` as pretty JSON (and a final newline) to `path`, atomically with
/// [`ward_core::fsutil::write_atomic`].
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), ReportError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| ReportError::Json {
        path: path.to_path_buf(),
        source: e,
    })?;
    text.push('\n');
    ward_core::fsutil::write_atomic(path, text.as_bytes())?;
    Ok(())
}

/// Reads a JSON file; errors name it.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ReportError> {
    let text = fs_err::read_to_string(path)?;
    serde_json::from_str(&text).map_err(|e| ReportError::Json {
        path: path.to_path_buf(),
        source: e,
    })
}

/// Appends round records to `metrics.jsonl` and syncs the file; returns the file's new
/// length (for the checkpoint).
pub fn append_metrics(path: &Path, records: &[SiteRecord]) -> Result<u64, ReportError> {
    let mut buf = Vec::new();
    for r in records {
        serde_json::to_writer(&mut buf, r).map_err(|e| ReportError::Json {
            path: path.to_path_buf(),
            source: e,
        })?;
        buf.push(b'\n');
    }
    let mut f = fs_err::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(&buf)?;
    f.sync_data()?;
    Ok(f.metadata()?.len())
}

/// Cuts `metrics.jsonl` back to `len` bytes (rows of a round that did not finish), or
/// creates it empty.
pub fn truncate_metrics(path: &Path, len: u64) -> Result<(), ReportError> {
    let f = fs_err::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    let have = f.metadata()?.len();
    if have < len {
        return Err(ReportError::Metrics(format!(
            "{}: {have} bytes, but the checkpoint expects at least {len}: the metrics log was cut short or replaced, so the run cannot resume; start a new run",
            path.display()
        )));
    }
    f.set_len(len)?;
    f.sync_all()?;
    Ok(())
}

/// Encodes parameters as safetensors (f32 little-endian, tensors named by the layout),
/// with one metadata entry `ward` holding `meta` (a JSON string). Deterministic bytes.
pub fn params_to_safetensors(params: &Params, meta: &str) -> Result<Vec<u8>, ReportError> {
    let bytes: Vec<u8> = params
        .values()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let mut views = Vec::new();
    for (t, r) in params.layout().ranges() {
        let view = TensorView::new(Dtype::F32, t.shape.clone(), &bytes[r.start * 4..r.end * 4])
            .map_err(|e| ReportError::Model(e.to_string()))?;
        views.push((t.name.clone(), view));
    }
    let meta = std::collections::HashMap::from([("ward".to_string(), meta.to_string())]);
    safetensors::serialize(views, Some(meta)).map_err(|e| ReportError::Model(e.to_string()))
}

/// Decodes a safetensors file of f32 tensors into parameters, in the order the
/// `layers.N.` prefixes and then weight-before-bias give (Ward's layout order).
pub fn params_from_safetensors(bytes: &[u8]) -> Result<Params, ReportError> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| ReportError::Model(e.to_string()))?;
    let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    names.sort_by_key(|n| layout_key(n));
    let mut specs = Vec::new();
    let mut values = Vec::new();
    for name in names {
        let t = st
            .tensor(&name)
            .map_err(|e| ReportError::Model(e.to_string()))?;
        if t.dtype() != Dtype::F32 {
            return Err(ReportError::Model(format!(
                "tensor {name} is {:?}, expected F32",
                t.dtype()
            )));
        }
        values.extend(
            t.data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
        specs.push(TensorSpec {
            name,
            shape: t.shape().to_vec(),
        });
    }
    Params::new(Layout::new(specs), values).map_err(|e| ReportError::Model(e.to_string()))
}

/// Decodes a safetensors file into parameters laid out as `layout` (tensors looked up by
/// name, so any model Ward trains reads back in its own order).
///
/// # Errors
/// A tensor of `layout` missing from the file or of another shape, an extra tensor, or
/// a non-f32 tensor, each named.
pub fn params_from_safetensors_as(bytes: &[u8], layout: &Layout) -> Result<Params, ReportError> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| ReportError::Model(e.to_string()))?;
    let mut values = Vec::with_capacity(layout.numel());
    for spec in layout.tensors() {
        let t = st.tensor(&spec.name).map_err(|_| {
            ReportError::Model(format!(
                "the file has no tensor {} the model needs",
                spec.name
            ))
        })?;
        if t.dtype() != Dtype::F32 || t.shape() != spec.shape.as_slice() {
            return Err(ReportError::Model(format!(
                "tensor {} is {:?} {:?}, the model needs F32 {:?}",
                spec.name,
                t.dtype(),
                t.shape(),
                spec.shape
            )));
        }
        values.extend(
            t.data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
    }
    if st.len() != layout.tensors().len() {
        return Err(ReportError::Model(format!(
            "the file holds {} tensors, the model {}",
            st.len(),
            layout.tensors().len()
        )));
    }
    Params::new(layout.clone(), values).map_err(|e| ReportError::Model(e.to_string()))
}

fn layout_key(name: &str) -> (usize, u8, String) {
    let mut parts = name.split('.');
    let layer = match (parts.next(), parts.next()) {
        (Some("layers"), Some(n)) => n.parse().unwrap_or(usize::MAX),
        _ => usize::MAX,
    };
    let kind = if name.ends_with("weight") { 0 } else { 1 };
    (layer, kind, name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safetensors_round_trip_keeps_layout_and_bytes_are_deterministic() {
        let layout = Layout::new(vec![
            TensorSpec {
                name: "layers.0.weight".into(),
                shape: vec![2, 3],
            },
            TensorSpec {
                name: "layers.0.bias".into(),
                shape: vec![2],
            },
            TensorSpec {
                name: "layers.1.weight".into(),
                shape: vec![1, 2],
            },
            TensorSpec {
                name: "layers.1.bias".into(),
                shape: vec![1],
            },
        ]);
        let p = Params::new(layout, (0..11).map(|i| i as f32 * 0.5).collect()).unwrap();
        let a = params_to_safetensors(&p, "{\"x\":1}").unwrap();
        let b = params_to_safetensors(&p, "{\"x\":1}").unwrap();
        assert_eq!(a, b);
        assert_eq!(params_from_safetensors(&a).unwrap(), p);
        let e = params_from_safetensors(b"garbage").unwrap_err();
        assert!(
            matches!(e, ReportError::Model(_)) && e.to_string().starts_with("model file: "),
            "{e}"
        );
    }

    #[test]
    fn metrics_append_and_truncate() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(files::METRICS);
        let rec = SiteRecord {
            round: 1,
            site: "a".into(),
            status: ward_fl::SiteStatus::Accepted,
            num_examples: Some(3),
            train_loss: Some(0.5),
            update_norm: None,
            test_accuracy: None,
            test_loss: None,
            test_auc: None,
            cosine_to_aggregate: None,
            selected: None,
            aggregation_weight: None,
            compromised: None,
            clipped_values: None,
        };
        let n1 = append_metrics(&p, std::slice::from_ref(&rec)).unwrap();
        let n2 = append_metrics(&p, &[rec]).unwrap();
        assert_eq!(n2, 2 * n1);
        truncate_metrics(&p, n1).unwrap();
        let text = fs_err::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert!(text.contains("\"status\":\"accepted\""), "{text}");
        let e = truncate_metrics(&p, n2).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}: {n1} bytes, but the checkpoint expects at least {n2}: the metrics log was cut short or replaced, so the run cannot resume; start a new run",
                p.display()
            )
        );
    }
}
