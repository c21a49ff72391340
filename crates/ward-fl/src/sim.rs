//! Simulation: every site in this process, built from an experiment.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use ward_core::ExperimentSpec;
use ward_core::config::{StandardizeKind, StrategyKind};
use ward_data::augment::Augmenter;
use ward_data::{FederatedDataset, SiteData, Split, Standardization};
use ward_models::{DenseArch, DeviceChoice, EngineKind, ModelArch, OptimizerConfig, make_engine};

use crate::{
    FederationConfig, FlError, InProcessSite, LocalWork, SiteHandle, SiteRole,
    federation::Federation,
};

/// Where and how gradients are computed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineOptions {
    /// Device (`--device`).
    pub device: DeviceChoice,
    /// Engine (`--engine`).
    pub engine: EngineKind,
}

/// A federation of in-process sites built from an experiment, ready to run.
#[derive(Debug)]
pub struct Simulation {
    /// The round engine.
    pub federation: Federation,
    /// The model.
    pub arch: ModelArch,
    /// The engine that computes gradients, e.g. `cpu:native`.
    pub backend: String,
    /// Warnings from data preparation (e.g. constant columns).
    pub warnings: Vec<String>,
    /// The standardised data the sites hold, before any data poisoning (for scoring,
    /// e.g. a backdoor's success rate on triggered test rows). With
    /// `evidence.calibration-fraction`, the training splits here are what is left after
    /// the calibration rows were set aside.
    pub data: FederatedDataset,
    /// Each site's calibration split (standardised like its test split; in site order),
    /// set aside from its training rows by `evidence.calibration-fraction`; empty
    /// without it.
    pub calibration: Vec<Split>,
}

/// Sets `fraction` of each site's training rows aside as its calibration split, with the
/// stratified rule of the train/test split ([`ward_data::train_test_split`]) and
/// the seed `site_split_seed(run seed ^ CALIBRATION_SEED, site)`: returns the data with the
/// remaining training rows (in their order) and the raw calibration splits.
pub fn carve_calibration(
    data: &FederatedDataset,
    fraction: f64,
    run_seed: u64,
) -> (FederatedDataset, Vec<Split>) {
    let mut out = data.clone();
    let mut calibration = Vec::with_capacity(data.sites.len());
    for (i, site) in out.sites.iter_mut().enumerate() {
        let seed = ward_data::site_split_seed(run_seed ^ CALIBRATION_SEED, i);
        let (keep, cal) = ward_data::train_test_split(&site.train.y, fraction, seed);
        calibration.push(site.train.select(&cal));
        site.train = site.train.select(&keep);
    }
    (out, calibration)
}

/// Mixed into the run seed for the calibration split, so it is not the train/test split's
/// stream when `seed` equals `data.split-seed`.
pub const CALIBRATION_SEED: u64 = 0xCA11_B4A7_E000_0000;

/// `calibration` standardised with the statistics `mode` takes from `data`'s training
/// splits (the same transform as the test splits get).
fn standardize_calibration(
    data: &FederatedDataset,
    calibration: Vec<Split>,
    mode: Standardization,
) -> Vec<Split> {
    let mut as_test = data.clone();
    for (site, cal) in as_test.sites.iter_mut().zip(calibration) {
        site.test = cal;
    }
    as_test
        .standardized(mode)
        .sites
        .into_iter()
        .map(|s| s.test)
        .collect()
}

/// Rewrites a site's (standardised) training split before the federation starts: data
/// poisoning of a compromised site, `(site index, site data, number of classes)`.
pub type DataPoisoner<'a> = &'a dyn Fn(usize, &mut SiteData, usize) -> Result<(), FlError>;

/// The local work a round asks for, from `[train]`.
pub fn local_work(spec: &ExperimentSpec) -> LocalWork {
    match (spec.train.local_steps, spec.train.local_epochs) {
        (_, Some(e)) => LocalWork::Epochs(e),
        (Some(s), None) => LocalWork::Steps(s),
        (None, None) => LocalWork::Steps(100),
    }
}

/// Builds the simulation for `spec` on `data` (raw features; standardised here with
/// training statistics: pooled for the pooled baseline and for
/// `data.standardize = "global"`, per site otherwise).
///
/// Seeds: the initial model comes from ChaCha stream 0 of `spec.seed`, site `i`'s batch
/// order from stream `i + 1`, and site selection from the last stream.
pub fn build_simulation(
    spec: &ExperimentSpec,
    data: &FederatedDataset,
    opts: EngineOptions,
) -> Result<Simulation, FlError> {
    build_simulation_with(spec, data, opts, None)
}

/// [`build_simulation`], with the training splits of some sites rewritten by `poison`
/// (after standardisation) before the sites are built.
pub fn build_simulation_with(
    spec: &ExperimentSpec,
    data: &FederatedDataset,
    opts: EngineOptions,
    poison: Option<DataPoisoner<'_>>,
) -> Result<Simulation, FlError> {
    let strategy = spec.federation.strategy;
    let mode =
        if strategy == StrategyKind::Pooled || spec.data.standardize == StandardizeKind::Global {
            Standardization::Pooled
        } else {
            Standardization::PerSite
        };
    let (data, calibration) = match spec.evidence.calibration_fraction {
        Some(f) => {
            let (kept, raw) = carve_calibration(data, f, spec.seed);
            let cal = standardize_calibration(&kept, raw, mode);
            (std::borrow::Cow::Owned(kept), cal)
        }
        None => (std::borrow::Cow::Borrowed(data), Vec::new()),
    };
    let ds = data.standardized(mode);
    let arch = model_arch(spec, &ds)?;
    if strategy == StrategyKind::Fedbn && !arch.has_batch_norm() {
        return Err(FlError::Config(format!(
            "federation.strategy = \"fedbn\" keeps BatchNorm layers at each site, but the model {} has none (FedBN with GroupNorm is not defined): set model.norm = \"batch\"",
            arch.describe()
        )));
    }
    let mut site_data: Vec<SiteData> = ds.sites.clone();
    if let Some(p) = poison {
        for (i, s) in site_data.iter_mut().enumerate() {
            p(i, s, ds.num_classes)?;
        }
    }
    let mut roles: Vec<SiteRole> = Vec::new();
    match strategy {
        StrategyKind::Pooled => {
            roles.extend(site_data.iter().map(|_| SiteRole {
                trains: false,
                evaluated: true,
            }));
            let pooled = ds.pooled_train();
            let empty = Split {
                x: ward_data::Matrix {
                    rows: 0,
                    cols: pooled.x.cols,
                    data: Vec::new(),
                },
                y: Vec::new(),
            };
            site_data.push(SiteData {
                name: "pooled".into(),
                train: pooled,
                test: empty,
            });
            roles.push(SiteRole {
                trains: true,
                evaluated: false,
            });
        }
        StrategyKind::Local => {
            let want = spec.federation.local_site.as_deref().unwrap_or_default();
            let names: Vec<&str> = site_data.iter().map(|s| s.name.as_str()).collect();
            if !names.contains(&want) {
                return Err(FlError::Config(format!(
                    "federation.local-site = {want:?} is not a site of this dataset; its sites are {names:?}"
                )));
            }
            roles.extend(site_data.iter().map(|s| SiteRole {
                trains: s.name == want,
                evaluated: true,
            }));
        }
        _ => roles.extend(site_data.iter().map(|_| SiteRole {
            trains: true,
            evaluated: true,
        })),
    }
    let mut backend = String::new();
    let mut sites: Vec<Box<dyn SiteHandle>> = Vec::with_capacity(site_data.len());
    for (i, d) in site_data.into_iter().enumerate() {
        if roles[i].trains && d.train.y.is_empty() {
            return Err(FlError::Site {
                site: d.name,
                reason: "has no training rows".into(),
            });
        }
        let site = site_learner(spec, &arch, i, d, opts)?;
        backend = site.backend();
        sites.push(Box::new(site));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    rng.set_stream(0);
    let initial = arch.init(&mut rng);
    let config = FederationConfig::from_spec(&spec.federation, local_work(spec));
    let federation = Federation::new(sites, roles, config, initial, spec.seed)?;
    Ok(Simulation {
        federation,
        arch,
        backend,
        warnings: ds.warnings.clone(),
        data: ds,
        calibration,
    })
}

/// The model an experiment trains on `ds` (standardised data: feature count, classes,
/// image shape and task).
pub fn model_arch(spec: &ExperimentSpec, ds: &FederatedDataset) -> Result<ModelArch, FlError> {
    Ok(match ds.image {
        Some((shape, task)) => ModelArch::conv_from_spec(
            &spec.model,
            shape,
            task.outputs(),
            matches!(task, ward_data::ImageTask::MultiLabel { .. }),
        )
        .map_err(|e| FlError::Config(e.to_string()))?
        .into(),
        None => DenseArch::from_spec(
            &spec.model,
            spec.train.loss,
            ds.feature_names.len(),
            ds.num_classes,
        )
        .map_err(|e| FlError::Config(e.to_string()))?
        .into(),
    })
}

/// One site's learner, built from the checked spec and that site's data alone (the
/// site side of a deployment builds exactly this): `index` is the site's place in the
/// federation and numbers its random streams (batch order: stream `index + 1` of the
/// run seed; augmentation: its own stream). FedBN keeps the model's normalisation
/// layers at the site. Its state is saved and restored with
/// [`SiteHandle::save_state`] / [`SiteHandle::load_state`].
pub fn site_learner(
    spec: &ExperimentSpec,
    arch: &ModelArch,
    index: usize,
    data: SiteData,
    opts: EngineOptions,
) -> Result<InProcessSite, FlError> {
    let fedbn = if spec.federation.strategy == StrategyKind::Fedbn {
        arch.norm_ranges()
    } else {
        Vec::new()
    };
    let engine =
        make_engine(arch, opts.device, opts.engine).map_err(|e| FlError::Config(e.to_string()))?;
    let mut site = InProcessSite::new(
        data,
        arch.clone(),
        engine,
        OptimizerConfig::from_spec(&spec.train),
        spec.train.batch_size,
        spec.seed,
        index as u64 + 1,
    )
    .with_fedbn(fedbn);
    if let Some(shape) = arch.image_shape() {
        // Augmentation draws from its own ChaCha stream of the run seed per site.
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ 0xA06_u64);
        rng.set_stream(index as u64 + 1);
        let seed = rand::Rng::next_u64(&mut rng);
        let augmenter = Augmenter::new(spec.train.augment.clone(), shape, seed)
            .map_err(|e| FlError::Config(e.to_string()))?;
        site = site.with_augmenter(augmenter);
    }
    Ok(site)
}
