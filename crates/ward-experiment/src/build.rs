//! Building a run: the federation of an experiment with its attack, aggregator and
//! FLTrust root sample installed (the one place where an experiment becomes a
//! [`Simulation`]).

use std::collections::BTreeMap;

use ward_core::ExperimentSpec;
use ward_core::config::CheckedSpec;
use ward_data::FederatedDataset;
use ward_fl::{EngineOptions, Simulation, build_simulation_with};

use crate::{Error, Result};

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
pub(crate) type Built = (Simulation, Vec<bool>, Option<BTreeMap<String, Vec<usize>>>);

/// Builds the simulation with the experiment's aggregator, attack and (FLTrust) root
/// trainer installed.
pub(crate) fn build(
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
            // The data the sites hold is what they train on: the root rows left them
            // (so `ward privacy audit` counts as members only rows a site trained on).
            for (&i, rows) in plan {
                let sd = &mut sim.data.sites[i];
                let keep: Vec<usize> = (0..sd.train.len())
                    .filter(|r| rows.binary_search(r).is_err())
                    .collect();
                sd.train = sd.train.select(&keep);
            }
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
    // Model replacement has both halves: backdoored data, then the boosted update.
    let weighted = spec.robust.aggregator() == ward_core::config::AggregatorKind::Fedavg;
    let data_attack = setup::data_attack(attack);
    let model_attack = setup::model_attack(attack, weighted);
    let mut sim = match &data_attack {
        Some(da) => {
            let poison = |i: usize, sd: &mut ward_data::SiteData, k: usize| {
                take_root(i, sd);
                setup::poison_site(da, &flags, spec.seed, i, sd, k)
            };
            build_simulation_with(spec, data, opts, Some(&poison))?
        }
        None => {
            let root_only = |i: usize, sd: &mut ward_data::SiteData, _k: usize| {
                take_root(i, sd);
                Ok::<(), ward_fl::FlError>(())
            };
            build_simulation_with(spec, data, opts, Some(&root_only))?
        }
    };
    match model_attack {
        Some(ma) => sim.federation.set_attack(
            Box::new(setup::ModelPoisoning::new(ma, attack.from_round, spec.seed)),
            flags.clone(),
        )?,
        None if data_attack.is_some() => sim.federation.set_compromised(flags.clone())?,
        None => {
            return Err(ward_fl::FlError::Config(format!(
                "attack {} is neither a data nor a model attack",
                attack.kind().as_str()
            )));
        }
    }
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

/// `spec` with an image backdoor's (or model replacement's) `attack.patch` turned into
/// trigger pixels for the data's image shape.
pub(crate) fn resolve_patch(spec: &CheckedSpec, data: &FederatedDataset) -> Result<CheckedSpec> {
    use ward_core::config::AttackMethod as M;
    let has_patch = matches!(
        spec.attack.as_ref().map(|a| &a.method),
        Some(M::Backdoor(b) | M::ModelReplacement(b)) if b.patch.is_some()
    );
    if !has_patch {
        return Ok(spec.clone());
    }
    let mut spec = spec.clone().into_inner();
    if let Some(M::Backdoor(a) | M::ModelReplacement(a)) =
        spec.attack.as_mut().map(|a| &mut a.method)
        && let Some(p) = a.patch.take()
    {
        let Some((s, _)) = data.image else {
            return Err(Error::User(
                "attack.patch is an image trigger; this dataset is a table: use attack.trigger"
                    .into(),
            ));
        };
        if p.size > s.height.min(s.width) {
            return Err(Error::User(format!(
                "attack.patch.size = {} does not fit images of {s}",
                p.size
            )));
        }
        a.trigger = p.features(s.channels, s.depth, s.height, s.width);
    }
    Ok(spec.check()?)
}
