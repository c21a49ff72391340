//! Running one experiment: in memory (for tables and benchmarks) or with a run
//! directory (checkpoint after every round, resumable).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use ward_core::{ExperimentSpec, WARD_VERSION};
use ward_data::FederatedDataset;
use ward_fl::{Checkpoint, EngineOptions, Simulation, SiteStatus, build_simulation_with};
use ward_report::{Summary, files};

use crate::experiment::UserError;

/// What a finished run gives back.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) summary: Summary,
    /// Every round's site records (in-memory runs only; a run directory has them in
    /// metrics.jsonl).
    pub(crate) records: Vec<ward_fl::SiteRecord>,
    /// The privacy report as terminal lines (runs with a privacy mechanism).
    pub(crate) privacy_lines: Vec<String>,
    /// The trained model(s) and the standardised data they saw (for audits that score
    /// in-memory runs, e.g. `ward privacy audit`'s shadow models).
    pub(crate) trained: Trained,
}

/// What a run trained, beside its summary.
#[derive(Debug, Clone)]
pub(crate) struct Trained {
    /// The final global model.
    pub(crate) global: ward_core::Params,
    /// Each site's own model where the run kept site layers (FedBN); empty otherwise.
    pub(crate) site_models: Vec<(String, ward_core::Params)>,
    /// The data as the sites held it (standardised; before any data poisoning).
    pub(crate) data: FederatedDataset,
}

/// Where a run writes (or nothing, for in-memory runs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Persist<'a> {
    pub(crate) dir: &'a Path,
    /// Continue from the directory's checkpoint.
    pub(crate) resume: bool,
}

/// Loads the data of an experiment; errors are the user's.
pub(crate) fn load_data(spec: &ExperimentSpec, base_dir: &Path) -> Result<FederatedDataset> {
    ward_data::load(&spec.data, base_dir).map_err(|e| UserError(format!("data: {e}")).into())
}

/// ChaCha stream of the run seed that draws FLTrust's root sample, and seeds the
/// server's trainer on it.
const ROOT_STREAM: u64 = 0x5EED_0000_F17F;

/// FLTrust's root sample (`robust.root-samples`): `k` rows drawn uniformly over all the
/// sites' training rows with the run seed; site index → its row indices (ascending,
/// into the site's training split). Every site keeps at least one training row.
fn root_plan(
    spec: &ExperimentSpec,
    data: &FederatedDataset,
) -> Result<Option<BTreeMap<usize, Vec<usize>>>, ward_fl::FlError> {
    use rand::SeedableRng;
    let Some(k) = spec.robust.root_samples() else {
        return Ok(None);
    };
    let sizes: Vec<usize> = data.sites.iter().map(|s| s.train.y.len()).collect();
    let total: usize = sizes.iter().sum();
    if k >= total {
        return Err(ward_fl::FlError::Config(format!(
            "robust.root-samples = {k}, but the sites hold only {total} training rows: the root sample must be a small part of them"
        )));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(spec.seed);
    rng.set_stream(ROOT_STREAM);
    let mut picked = rand::seq::index::sample(&mut rng, total, k).into_vec();
    picked.sort_unstable();
    let mut plan: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut start = 0;
    let mut site = 0;
    for p in picked {
        while p >= start + sizes[site] {
            start += sizes[site];
            site += 1;
        }
        plan.entry(site).or_default().push(p - start);
    }
    for (&i, rows) in &plan {
        if rows.len() >= sizes[i] {
            return Err(ward_fl::FlError::Config(format!(
                "robust.root-samples = {k} would take every training row of site {} ({} rows): draw fewer",
                data.sites[i].name, sizes[i]
            )));
        }
    }
    Ok(Some(plan))
}

/// The built simulation, the compromised flags (one per site; all false without an
/// attack) and FLTrust's root sample (site name → training rows), if any.
type Built = (Simulation, Vec<bool>, Option<BTreeMap<String, Vec<usize>>>);

/// Builds the simulation with the experiment's aggregator, attack and (FLTrust) root
/// trainer installed.
fn build(
    spec: &ExperimentSpec,
    data: &FederatedDataset,
    opts: EngineOptions,
) -> Result<Built, ward_fl::FlError> {
    let plan = root_plan(spec, data)?;
    let taken: std::cell::RefCell<Vec<ward_data::Split>> = std::cell::RefCell::new(Vec::new());
    let take_root = |i: usize, sd: &mut ward_data::SiteData| {
        if let Some(rows) = plan.as_ref().and_then(|p| p.get(&i)) {
            let keep: Vec<usize> = (0..sd.train.len())
                .filter(|r| rows.binary_search(r).is_err())
                .collect();
            taken.borrow_mut().push(sd.train.select(rows));
            sd.train = sd.train.select(&keep);
        }
    };
    let (mut sim, flags) = build_attacked(spec, data, opts, &take_root)?;
    let root = match &plan {
        None => None,
        Some(plan) => {
            let parts = taken.into_inner();
            let cols = parts.first().map_or(0, |p| p.x.cols);
            let mut train = ward_data::Split {
                x: ward_data::Matrix {
                    rows: 0,
                    cols,
                    data: Vec::new(),
                },
                y: Vec::new(),
            };
            for p in parts {
                train.x.rows += p.x.rows;
                train.x.data.extend(p.x.data);
                train.y.extend(p.y);
            }
            let test = ward_data::Split {
                x: ward_data::Matrix {
                    rows: 0,
                    cols,
                    data: Vec::new(),
                },
                y: Vec::new(),
            };
            let engine = ward_models::make_engine(&sim.arch, opts.device, opts.engine)
                .map_err(|e| ward_fl::FlError::Config(e.to_string()))?;
            let trainer = ward_fl::InProcessSite::new(
                ward_data::SiteData {
                    name: "server-root-sample".into(),
                    train,
                    test,
                },
                sim.arch.clone(),
                engine,
                ward_models::OptimizerConfig::from_spec(&spec.train),
                spec.train.batch_size,
                spec.seed,
                ROOT_STREAM,
            );
            sim.federation.set_root_trainer(Box::new(trainer));
            Some(
                plan.iter()
                    .map(|(&i, rows)| (data.sites[i].name.clone(), rows.clone()))
                    .collect(),
            )
        }
    };
    install_aggregator(spec, &mut sim)?;
    Ok((sim, flags, root))
}

/// Builds the simulation with the experiment's attack installed (the aggregator comes
/// after); `take_root` removes FLTrust's root rows from each site's training split
/// before any data poisoning.
fn build_attacked(
    spec: &ExperimentSpec,
    data: &FederatedDataset,
    opts: EngineOptions,
    take_root: &dyn Fn(usize, &mut ward_data::SiteData),
) -> Result<(Simulation, Vec<bool>), ward_fl::FlError> {
    use ward_robust::attacks::setup;
    let Some(attack) = &spec.attack else {
        let root_only = |i: usize, sd: &mut ward_data::SiteData, _k: usize| {
            take_root(i, sd);
            Ok::<(), ward_fl::FlError>(())
        };
        let sim = build_simulation_with(spec, data, opts, Some(&root_only))?;
        let n = sim.federation.site_names().len();
        return Ok((sim, vec![false; n]));
    };
    // Attacks run in federated strategies only (checked by the config), where every
    // site trains.
    let names: Vec<String> = data.sites.iter().map(|s| s.name.clone()).collect();
    let flags = setup::choose_compromised(attack, &names, &vec![true; names.len()], spec.seed)?;
    let sim = match setup::data_attack(attack) {
        Some(da) => {
            let poison = |i: usize, sd: &mut ward_data::SiteData, k: usize| {
                take_root(i, sd);
                setup::poison_site(&da, &flags, spec.seed, i, sd, k)
            };
            let mut sim = build_simulation_with(spec, data, opts, Some(&poison))?;
            sim.federation.set_compromised(flags.clone())?;
            sim
        }
        None => {
            let root_only = |i: usize, sd: &mut ward_data::SiteData, _k: usize| {
                take_root(i, sd);
                Ok::<(), ward_fl::FlError>(())
            };
            let mut sim = build_simulation_with(spec, data, opts, Some(&root_only))?;
            let ma = setup::model_attack(attack).ok_or_else(|| {
                ward_fl::FlError::Config(format!(
                    "attack {} is not a model attack",
                    attack.kind().as_str()
                ))
            })?;
            sim.federation.set_attack(
                Box::new(setup::ModelPoisoning::new(ma, attack.from_round, spec.seed)),
                flags.clone(),
            )?;
            sim
        }
    };
    Ok((sim, flags))
}

/// Installs `[robust]`'s rule (FedAvg stays when none is chosen).
fn install_aggregator(spec: &ExperimentSpec, sim: &mut Simulation) -> Result<(), ward_fl::FlError> {
    if spec.robust == ward_core::config::RobustSpec::default() {
        return Ok(());
    }
    let rule = ward_robust::build_rule(&spec.robust, spec.seed)
        .map_err(|e| ward_fl::FlError::Config(format!("robust.aggregator: {e}")))?;
    sim.federation.set_aggregator(rule)
}

/// Runs `spec` on `data` to the end.
/// `spec` with an image backdoor's `attack.patch` turned into trigger pixels for the
/// data's image shape.
fn resolve_patch(spec: &ExperimentSpec, data: &FederatedDataset) -> Result<ExperimentSpec> {
    let mut spec = spec.clone();
    if let Some(ward_core::config::AttackMethod::Backdoor(a)) =
        spec.attack.as_mut().map(|a| &mut a.method)
        && let Some(p) = a.patch.take()
    {
        let Some((s, _)) = data.image else {
            return Err(UserError(
                "attack.patch is an image trigger; this dataset is a table: use attack.trigger"
                    .into(),
            )
            .into());
        };
        if p.size > s.height.min(s.width) {
            return Err(UserError(format!(
                "attack.patch.size = {} does not fit images of {s}",
                p.size
            ))
            .into());
        }
        a.trigger = p.features(s.channels, s.depth, s.height, s.width);
    }
    Ok(spec)
}

pub(crate) fn execute(
    spec: &ExperimentSpec,
    data: &FederatedDataset,
    opts: EngineOptions,
    persist: Option<Persist<'_>>,
    progress: bool,
) -> Result<Outcome> {
    let start = Instant::now();
    let resolved = resolve_patch(spec, data)?;
    let spec = &resolved;
    let (mut sim, compromised, root_sample) =
        build(spec, data, opts).map_err(|e| UserError(e.to_string()))?;
    let plan = crate::privacy::install(spec, &mut sim)?;
    if persist.is_some() {
        for w in &sim.warnings {
            tracing::warn!("{w}");
        }
    }
    let fed = &mut sim.federation;
    let mut rejected = 0usize;
    if let Some(p) = persist {
        let metrics = p.dir.join(files::METRICS);
        let ckpt = p.dir.join(files::CHECKPOINT);
        if p.resume {
            // Temporary files of an atomic write the kill interrupted.
            for e in fs_err::read_dir(p.dir)? {
                let path = e?.path();
                if path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(".tmp-"))
                {
                    fs_err::remove_file(&path)?;
                }
            }
        }
        if p.resume && ckpt.exists() {
            let c = Checkpoint::read(&ckpt).map_err(|e| UserError(e.to_string()))?;
            if c.backend != sim.backend {
                return Err(UserError(format!(
                    "{}: written by engine {}, but this resume runs on {}; resume with the same --device and --engine",
                    ckpt.display(),
                    c.backend,
                    sim.backend
                ))
                .into());
            }
            fed.restore(&c)
                .map_err(|e| UserError(format!("{}: {e}", ckpt.display())))?;
            ward_report::truncate_metrics(&metrics, c.metrics_len)?;
            tracing::info!(round = c.round(), "resumed from {}", ckpt.display());
        } else {
            ward_report::truncate_metrics(&metrics, 0)?;
        }
    }
    let bar = if progress {
        let b = ProgressBar::new(fed.config().rounds as u64);
        b.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] round {pos}/{len} {msg} ({elapsed})")
                .context("progress template")?
                .progress_chars("=> "),
        );
        b.set_prefix(spec.federation.strategy.as_str());
        b.set_position(fed.round() as u64);
        b
    } else {
        ProgressBar::hidden()
    };
    let mut records = Vec::new();
    let mut stopped = None;
    while !fed.is_done() {
        if plan.is_on()
            && let Some(msg) = crate::privacy::budget_stop(spec, &plan, fed)?
        {
            tracing::warn!("{msg}");
            stopped = Some(msg);
            break;
        }
        // Too many secure-aggregation dropouts come from the experiment's settings.
        let report = fed.run_round().map_err(|e| match e {
            ward_fl::FlError::SecAgg { .. } => {
                anyhow::Error::from(UserError(format!("privacy.secagg: {e}")))
            }
            e => e.into(),
        })?;
        rejected += report
            .sites
            .iter()
            .filter(|r| matches!(r.status, SiteStatus::Rejected { .. }))
            .count();
        if let Some(p) = persist {
            let len = ward_report::append_metrics(&p.dir.join(files::METRICS), &report.sites)?;
            let mut c = fed.snapshot()?;
            c.metrics_len = len;
            c.backend.clone_from(&sim.backend);
            c.write_atomic(&p.dir.join(files::CHECKPOINT))?;
        } else {
            records.extend(report.sites.iter().cloned());
        }
        let accs: Vec<f64> = report
            .sites
            .iter()
            .filter_map(|r| r.test_accuracy)
            .collect();
        if !accs.is_empty() {
            bar.set_message(format!(
                "mean acc {:.3}",
                accs.iter().sum::<f64>() / accs.len() as f64
            ));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if let Some(p) = persist {
        // Count rejections over the whole log (earlier invocations included).
        let text = fs_err::read_to_string(p.dir.join(files::METRICS))?;
        rejected = text.lines().filter(|l| l.contains("\"rejected\"")).count();
    }
    let names = fed.site_names();
    let mut per_site = BTreeMap::new();
    let mut per_site_auc = BTreeMap::new();
    for (i, e) in fed.evaluate()? {
        per_site.insert(names[i].clone(), e.accuracy);
        if let Some(a) = e.auc {
            per_site_auc.insert(names[i].clone(), a);
        }
    }
    if per_site.is_empty() {
        bail!("no site has test data to score the model on");
    }
    let (personalised, personalised_mean) = if spec.federation.fine_tune_steps > 0 {
        let mut m = BTreeMap::new();
        for (i, e) in fed.fine_tune_and_evaluate(spec.federation.fine_tune_steps)? {
            m.insert(names[i].clone(), e.accuracy);
        }
        let mean = m.values().sum::<f64>() / m.len().max(1) as f64;
        (Some(m), Some(mean))
    } else {
        (None, None)
    };
    let mean_accuracy = per_site.values().sum::<f64>() / per_site.len() as f64;
    let backdoor = match spec
        .attack
        .as_ref()
        .and_then(ward_robust::attacks::setup::trigger)
    {
        Some(trigger) => {
            let mut engine = ward_models::make_engine(&sim.arch, opts.device, opts.engine)?;
            let mut m = BTreeMap::new();
            for site in &sim.data.sites {
                if !per_site.contains_key(&site.name) {
                    continue;
                }
                let mut t = trigger.triggered_test_set(&site.test);
                if t.y.is_empty() {
                    continue;
                }
                t.y.iter_mut().for_each(|y| *y = trigger.target);
                let e = ward_models::evaluate(
                    engine.as_mut(),
                    fed.global().values(),
                    &t,
                    sim.arch.loss(),
                )?;
                m.insert(site.name.clone(), e.accuracy);
            }
            Some(m)
        }
        None => None,
    };
    let backdoor_mean = backdoor
        .as_ref()
        .filter(|m| !m.is_empty())
        .map(|m| m.values().sum::<f64>() / m.len() as f64);
    let privacy = if plan.is_on() {
        Some(crate::privacy::report(spec, &plan, fed, stopped)?)
    } else {
        None
    };
    let privacy_lines = privacy.as_ref().map(|p| p.lines()).unwrap_or_default();
    let global = fed.global();
    let summary = Summary {
        experiment: spec.name.clone(),
        mean_accuracy,
        per_site,
        per_site_auc,
        personalised_per_site: personalised,
        personalised_mean_accuracy: personalised_mean,
        fine_tune_steps: (spec.federation.fine_tune_steps > 0)
            .then_some(spec.federation.fine_tune_steps),
        rounds: fed.round(),
        aggregator: fed.aggregator_name(),
        attack: spec.attack.as_ref().map(|a| a.kind().as_str().to_string()),
        compromised_sites: names
            .iter()
            .zip(&compromised)
            .filter(|(_, c)| **c)
            .map(|(n, _)| n.clone())
            .collect(),
        backdoor_success: backdoor,
        backdoor_success_mean: backdoor_mean,
        seed: spec.seed,
        strategy: spec.federation.strategy.as_str().to_string(),
        model: sim.arch.describe(),
        backend: sim.backend.clone(),
        ward_version: WARD_VERSION.to_string(),
        wall_time_s: start.elapsed().as_secs_f64(),
        rejected_updates: rejected,
        data_warnings: sim.warnings.clone(),
        root_sample,
        privacy: privacy.as_ref().map(serde_json::to_value).transpose()?,
    };
    if let Some(p) = persist {
        let meta = serde_json::json!({
            "model": summary.model,
            "strategy": summary.strategy,
            "rounds": summary.rounds,
            "seed": summary.seed,
            "backend": summary.backend,
            "ward_version": WARD_VERSION,
        })
        .to_string();
        let bytes = ward_report::params_to_safetensors(global, &meta)?;
        ward_fl::checkpoint::write_atomic(&p.dir.join(files::MODEL), &bytes)?;
        // FedBN: each site's own model (global layers + its BatchNorm layers).
        for (site, params) in fed.personalised_models() {
            let bytes = ward_report::params_to_safetensors(&params, &meta)?;
            let name = format!("model.{}.safetensors", sanitize_file_name(&site));
            ward_fl::checkpoint::write_atomic(&p.dir.join(name), &bytes)?;
        }
        if let Some(pr) = &privacy {
            ward_report::write_json_atomic(&p.dir.join(files::PRIVACY), pr)?;
        }
        ward_report::write_json_atomic(&p.dir.join(files::SUMMARY), &summary)?;
    }
    let trained = Trained {
        global: global.clone(),
        site_models: fed.personalised_models(),
        data: sim.data,
    };
    Ok(Outcome {
        summary,
        records,
        trained,
        privacy_lines,
    })
}

/// A site name as a file-name component: ASCII letters, digits, `-`, `_`, `.`; anything
/// else becomes `_`.
pub(crate) fn sanitize_file_name(name: &str) -> String {
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

/// `runs/<name>-<UTC timestamp>`, made unique with a counter if it exists.
pub(crate) fn default_run_dir(name: &str) -> PathBuf {
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
