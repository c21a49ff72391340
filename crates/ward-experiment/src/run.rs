//! Running one experiment: [`Experiment`] (a checked spec and its data) →
//! [`Experiment::prepare`] (the federation, built once) → [`Prepared::run`] (the rounds,
//! reported to an [`Observer`], optionally persisted in a [`RunDir`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use ward_core::config::CheckedSpec;
use ward_core::{ExperimentSpec, Params, WARD_VERSION};
use ward_data::FederatedDataset;
use ward_fl::{EngineOptions, RoundReport, Simulation, SiteHandle, SiteRecord};
use ward_report::Summary;

use crate::RunDir;
use crate::load::{self, Loaded};
use crate::privacy::{self, PrivacyPlan, PrivacyReport};
use crate::{Error, Result, build};

/// What a front end sees of a run while it goes: a progress bar, a log, later the
/// status page and the metrics endpoint. Every method has an empty default.
pub trait Observer {
    /// A run begins: `label` (the strategy), rounds already done (a resume) and in all.
    fn run_started(&mut self, label: &str, done: usize, rounds: usize) {
        let _ = (label, done, rounds);
    }
    /// A round finished (its report, with every site's record).
    fn round_finished(&mut self, report: &RoundReport) {
        let _ = report;
    }
    /// The run's rounds are over (the final scoring follows).
    fn run_finished(&mut self) {}
    /// A warning the user should see (data preparation, the privacy budget).
    fn warning(&mut self, message: &str) {
        tracing::warn!("{message}");
    }
    /// A line of a command's output (tables, results) for the user.
    fn line(&mut self, line: &str) {
        let _ = line;
    }
    /// Progress of a long command: `done` of `total` units, `what` is running now.
    fn step(&mut self, done: usize, total: usize, what: &str) {
        let _ = (done, total, what);
    }
}

/// An observer that ignores everything (warnings go to `tracing`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl Observer for Quiet {}

/// An experiment: its checked spec and its data, loaded.
#[derive(Debug, Clone)]
pub struct Experiment {
    spec: CheckedSpec,
    data: FederatedDataset,
}

impl Experiment {
    /// Loads an experiment file with `--set` overrides, and its data.
    pub fn load(path: &Path, sets: &[String]) -> Result<Self> {
        Self::from_loaded(&load::load(path, sets)?)
    }

    /// The built-in default experiment (FedAvg on the four-hospital heart-disease
    /// cohort) with `sets` applied, and its data.
    pub fn default_with(sets: &[String]) -> Result<Self> {
        Self::from_loaded(&load::default_experiment(sets)?)
    }

    /// A loaded spec's data read from where its relative paths resolve.
    pub fn from_loaded(loaded: &Loaded) -> Result<Self> {
        let data = load_data(&loaded.spec, &loaded.base_dir)?;
        Ok(Self::new(loaded.spec.clone(), data))
    }

    /// A checked spec (see [`ExperimentSpec::check`]) and data loaded for it.
    pub fn new(spec: CheckedSpec, data: FederatedDataset) -> Self {
        Self { spec, data }
    }

    /// The checked spec.
    pub fn spec(&self) -> &CheckedSpec {
        &self.spec
    }

    /// The data (raw features, as loaded).
    pub fn data(&self) -> &FederatedDataset {
        &self.data
    }

    /// Builds the federation once: data (standardised), model, engine, strategy,
    /// attack, aggregator, FLTrust root sample and privacy mechanisms.
    pub fn prepare(&self, opts: EngineOptions) -> Result<Prepared> {
        prepare(&self.spec, &self.data, opts)
    }

    /// [`Experiment::prepare`] with the sites supplied from outside (a coordinator
    /// passes remote sites): one handle per site of the data, in the data's order and
    /// with its names. The sites must have been built by [`site_learner`] from the
    /// same spec (or speak for such a learner).
    pub fn prepare_with_sites(
        &self,
        opts: EngineOptions,
        sites: Vec<Box<dyn SiteHandle>>,
    ) -> Result<Prepared> {
        let mut prepared = self.prepare(opts)?;
        prepared
            .sim
            .federation
            .replace_sites(sites)
            .map_err(|e| Error::User(e.to_string()))?;
        Ok(prepared)
    }
}

/// [`Experiment::prepare`] on a borrowed spec and data (grids and tables run many
/// variants of one dataset without copying it).
pub fn prepare(
    spec: &CheckedSpec,
    data: &FederatedDataset,
    opts: EngineOptions,
) -> Result<Prepared> {
    let spec = build::resolve_patch(spec, data)?;
    let (mut sim, compromised, root_sample) =
        build::build(&spec, data, opts).map_err(|e| Error::User(e.to_string()))?;
    let plan = privacy::install(&spec, &mut sim)?;
    Ok(Prepared {
        spec,
        sim,
        opts,
        compromised,
        root_sample,
        plan,
    })
}

/// Prepares and runs `spec` on `data` in memory, quietly.
pub fn run_quietly(
    spec: &CheckedSpec,
    data: &FederatedDataset,
    opts: EngineOptions,
) -> Result<Outcome> {
    prepare(spec, data, opts)?.run(&mut Quiet)
}

/// The site side of the deployment seam: one site's learner built from the checked
/// spec and that site's local data alone (`index` is the site's place in the
/// federation, which numbers its random streams). Its state (batch order, RNG,
/// optimizer, SCAFFOLD control, DP accountant) is saved and restored per round with
/// [`SiteHandle::save_state`] / [`SiteHandle::load_state`], independently of the
/// coordinator.
pub fn site_learner(
    spec: &CheckedSpec,
    arch: &ward_models::ModelArch,
    index: usize,
    site: ward_data::SiteData,
    opts: EngineOptions,
) -> Result<Box<dyn SiteHandle>> {
    let learner = ward_fl::site_learner(spec, arch, index, site, opts)
        .map_err(|e| Error::User(e.to_string()))?;
    Ok(Box::new(learner))
}

/// Loads the data of an experiment; errors are the user's.
pub fn load_data(spec: &ExperimentSpec, base_dir: &Path) -> Result<FederatedDataset> {
    ward_data::load(&spec.data, base_dir).map_err(|e| Error::User(format!("data: {e}")))
}

/// A federation built from an experiment, ready to run.
#[derive(Debug)]
pub struct Prepared {
    spec: CheckedSpec,
    sim: Simulation,
    opts: EngineOptions,
    compromised: Vec<bool>,
    root_sample: Option<BTreeMap<String, Vec<usize>>>,
    plan: PrivacyPlan,
}

/// What a finished run gives back.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// What `summary.json` holds.
    pub summary: Summary,
    /// Every round's site records (in-memory runs only; a run directory has them in
    /// metrics.jsonl).
    pub records: Vec<SiteRecord>,
    /// The privacy report (runs with a privacy mechanism).
    pub privacy: Option<PrivacyReport>,
    /// The trained model(s) and the standardised data they saw.
    pub trained: Trained,
}

impl Outcome {
    /// The privacy report as terminal lines (empty without a mechanism).
    pub fn privacy_lines(&self) -> Vec<String> {
        self.privacy
            .as_ref()
            .map(PrivacyReport::lines)
            .unwrap_or_default()
    }
}

/// What a run trained, beside its summary.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The final global model.
    pub global: Params,
    /// Each site's own model where the run kept site layers (FedBN); empty otherwise.
    pub site_models: Vec<(String, Params)>,
    /// The data as the sites held it (standardised; FLTrust's root rows removed;
    /// before any data poisoning).
    pub data: FederatedDataset,
}

impl Prepared {
    /// The spec as run (an image backdoor's patch resolved to trigger pixels).
    pub fn spec(&self) -> &CheckedSpec {
        &self.spec
    }

    /// The built simulation (model architecture, standardised data, round engine).
    pub fn simulation(&self) -> &Simulation {
        &self.sim
    }

    /// Warnings from data preparation.
    pub fn warnings(&self) -> &[String] {
        &self.sim.warnings
    }

    /// Runs every round in memory and scores the result.
    pub fn run(self, obs: &mut dyn Observer) -> Result<Outcome> {
        self.run_in(None, obs)
    }

    /// Runs (or, where the directory holds a checkpoint, resumes) the rounds with a
    /// run directory: metrics and a checkpoint after every round, the model files,
    /// `summary.json` and `privacy.json` at the end.
    pub fn run_in(mut self, dir: Option<&RunDir>, obs: &mut dyn Observer) -> Result<Outcome> {
        let start = Instant::now();
        if let Some(d) = dir {
            for w in &self.sim.warnings {
                obs.warning(w);
            }
            d.restore(&mut self.sim)?;
        }
        let fed = &mut self.sim.federation;
        obs.run_started(
            self.spec.federation.strategy.as_str(),
            fed.round(),
            fed.config().rounds,
        );
        let mut records = Vec::new();
        let mut rejected = 0usize;
        let mut stopped = None;
        for w in self.plan.warnings() {
            obs.warning(w);
        }
        while !fed.is_done() {
            if self.plan.is_on()
                && let Some(msg) = privacy::budget_stop(&self.spec, &self.plan, fed)?
            {
                obs.warning(&msg);
                stopped = Some(msg);
                break;
            }
            // Too many secure-aggregation dropouts come from the experiment's settings.
            let report = fed.run_round().map_err(|e| match e {
                ward_fl::FlError::SecAgg { .. } => Error::User(format!("privacy.secagg: {e}")),
                e => e.into(),
            })?;
            rejected += report.rejected();
            match dir {
                Some(d) => {
                    d.after_round(fed, &self.plan.published(&report.sites), &self.sim.backend)?
                }
                None => records.extend(report.sites.iter().cloned()),
            }
            obs.round_finished(&report);
        }
        obs.run_finished();
        if let Some(d) = dir {
            // Count rejections over the whole log (earlier invocations included).
            rejected = d.rejected_updates()?;
        }
        let mut summary = self.summarise(rejected, start)?;
        let fed = &mut self.sim.federation;
        let privacy = if self.plan.is_on() {
            Some(privacy::report(&self.spec, &self.plan, fed, stopped)?)
        } else {
            None
        };
        summary.privacy = privacy.as_ref().map(serde_json::to_value).transpose()?;
        let fed = &self.sim.federation;
        if let Some(d) = dir {
            d.finish(&summary, fed, privacy.as_ref())?;
        }
        let trained = Trained {
            global: fed.global().clone(),
            site_models: fed.personalised_models(),
            data: self.sim.data,
        };
        Ok(Outcome {
            summary,
            records,
            privacy,
            trained,
        })
    }

    /// Scores the final model and builds the summary.
    fn summarise(&mut self, rejected: usize, start: Instant) -> Result<Summary> {
        let spec = &self.spec;
        let fed = &mut self.sim.federation;
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
            return Err(Error::Internal(
                "no site has test data to score the model on".into(),
            ));
        }
        let steps = spec.federation.fine_tune_steps;
        let (personalised, personalised_mean) = if steps > 0 {
            let mut m = BTreeMap::new();
            for (i, e) in fed.fine_tune_and_evaluate(steps)? {
                m.insert(names[i].clone(), e.accuracy);
            }
            let mean = m.values().sum::<f64>() / m.len().max(1) as f64;
            (Some(m), Some(mean))
        } else {
            (None, None)
        };
        let mean_accuracy = per_site.values().sum::<f64>() / per_site.len() as f64;
        let held_out = self.held_out_score()?;
        let backdoor = self.backdoor_success(&per_site)?;
        let backdoor_mean = backdoor
            .as_ref()
            .filter(|m| !m.is_empty())
            .map(|m| m.values().sum::<f64>() / m.len() as f64);
        let fed = &self.sim.federation;
        Ok(Summary {
            experiment: spec.name.clone(),
            mean_accuracy,
            per_site,
            per_site_auc,
            held_out,
            personalised_per_site: personalised,
            personalised_mean_accuracy: personalised_mean,
            fine_tune_steps: (steps > 0).then_some(steps),
            rounds: fed.round(),
            aggregator: fed.aggregator_name(),
            attack: spec.attack.as_ref().map(|a| a.kind().as_str().to_string()),
            compromised_sites: names
                .iter()
                .zip(&self.compromised)
                .filter(|(_, c)| **c)
                .map(|(n, _)| n.clone())
                .collect(),
            backdoor_success: backdoor,
            backdoor_success_mean: backdoor_mean,
            seed: spec.seed,
            strategy: spec.federation.strategy.as_str().to_string(),
            model: self.sim.arch.describe(),
            backend: self.sim.backend.clone(),
            ward_version: WARD_VERSION.to_string(),
            wall_time_s: start.elapsed().as_secs_f64(),
            rejected_updates: (!self.plan.site_level()).then_some(rejected),
            data_warnings: self.sim.warnings.clone(),
            root_sample: self.root_sample.clone(),
            privacy: None,
        })
    }

    /// The final model on the data's held-out set (every site's test rows together, a
    /// MedMNIST file's test split) scored as one set: each row by the model its site
    /// uses (the global model, or with FedBN the site's own layers in it), the logits
    /// concatenated and scored once, so the AUC is the AUC of the whole set, not a mean
    /// of sites' AUCs. `None` when the data has no held-out set.
    fn held_out_score(&self) -> Result<Option<ward_report::HeldOutScore>> {
        let Some(what) = &self.sim.data.held_out else {
            return Ok(None);
        };
        let arch = &self.sim.arch;
        let fed = &self.sim.federation;
        let mut engine = ward_models::make_engine(arch, self.opts.device, self.opts.engine)?;
        let own: BTreeMap<String, Params> = fed.personalised_models().into_iter().collect();
        let (mut z, mut y) = (Vec::new(), Vec::new());
        for site in &self.sim.data.sites {
            let rows = site.test.y.len();
            if rows == 0 {
                continue;
            }
            let params = own.get(&site.name).unwrap_or_else(|| fed.global());
            z.extend(engine.logits(params.values(), &site.test.x.data, rows)?);
            y.extend_from_slice(&site.test.y);
        }
        let e = ward_models::score_logits(&z, &y, arch.loss())?;
        Ok(Some(ward_report::HeldOutScore {
            what: what.clone(),
            n: e.n,
            accuracy: e.accuracy,
            auc: e.auc,
        }))
    }

    /// A backdoor's success rate per scored site: the share of triggered test rows the
    /// model assigns the attacker's target.
    fn backdoor_success(
        &self,
        per_site: &BTreeMap<String, f64>,
    ) -> Result<Option<BTreeMap<String, f64>>> {
        let Some(trigger) = self
            .spec
            .attack
            .as_ref()
            .and_then(ward_robust::attacks::setup::trigger)
        else {
            return Ok(None);
        };
        let arch = &self.sim.arch;
        let mut engine = ward_models::make_engine(arch, self.opts.device, self.opts.engine)?;
        let mut m = BTreeMap::new();
        for site in &self.sim.data.sites {
            if !per_site.contains_key(&site.name) {
                continue;
            }
            let mut t = trigger.triggered_test_set(&site.test);
            if t.y.is_empty() {
                continue;
            }
            t.y.iter_mut().for_each(|y| *y = trigger.target);
            let global = self.sim.federation.global().values();
            let e = ward_models::evaluate(engine.as_mut(), global, &t, arch.loss())?;
            m.insert(site.name.clone(), e.accuracy);
        }
        Ok(Some(m))
    }
}
