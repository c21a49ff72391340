//! The deployment seams: sites supplied from outside the library, and one site's learner
//! built and rolled back on its own.

use ward_experiment::{EngineOptions, Experiment, Quiet, site_learner};
use ward_fl::{FitInstructions, LocalWork, SiteHandle};

fn experiment(sets: &[&str]) -> Experiment {
    let sets: Vec<String> = sets.iter().map(|s| (*s).to_string()).collect();
    Experiment::default_with(&sets).expect("the default experiment loads")
}

/// Sites built by `site_learner` from the spec and each site's data alone, handed to
/// `prepare_with_sites`, give the same run bit for bit as the library's own sites.
#[test]
fn externally_supplied_sites_give_the_same_run() {
    let exp = experiment(&["federation.rounds=3", "federation.strategy=scaffold"]);
    let opts = EngineOptions::default();
    let own = exp.prepare(opts).unwrap().run(&mut Quiet).unwrap();

    let prepared = exp.prepare(opts).unwrap();
    let sim = prepared.simulation();
    let sites: Vec<Box<dyn SiteHandle>> = sim
        .data
        .sites
        .iter()
        .enumerate()
        .map(|(i, d)| site_learner(exp.spec(), &sim.arch, i, d.clone(), opts).unwrap())
        .collect();
    let outside = exp
        .prepare_with_sites(opts, sites)
        .unwrap()
        .run(&mut Quiet)
        .unwrap();
    assert_eq!(own.trained.global, outside.trained.global);
    assert_eq!(own.summary.per_site, outside.summary.per_site);
    assert_eq!(own.records.len(), outside.records.len());
}

/// The supplied sites must be the experiment's sites, by name and order.
#[test]
fn supplied_sites_of_another_federation_are_refused() {
    let exp = experiment(&["federation.rounds=1"]);
    let opts = EngineOptions::default();
    let prepared = exp.prepare(opts).unwrap();
    let sim = prepared.simulation();
    let mut sites: Vec<Box<dyn SiteHandle>> = sim
        .data
        .sites
        .iter()
        .enumerate()
        .map(|(i, d)| site_learner(exp.spec(), &sim.arch, i, d.clone(), opts).unwrap())
        .collect();
    sites.swap(0, 1);
    let err = exp.prepare_with_sites(opts, sites).unwrap_err().to_string();
    assert!(
        err.contains("not this experiment's sites") && err.contains("Cleveland"),
        "{err}"
    );
    // No sites at all is the same mistake, naming the sites the experiment has.
    let err = exp
        .prepare_with_sites(opts, Vec::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not this experiment's sites") && err.contains("Cleveland"),
        "{err}"
    );
}

/// A site saves its state after a round and, asked by a resumed coordinator to redo
/// the next round, rolls back to it: the redone round's update equals the first try's.
#[test]
fn a_site_rolls_back_to_the_round_it_is_asked_for() {
    let exp = experiment(&["train.local-steps=7"]);
    let opts = EngineOptions::default();
    let prepared = exp.prepare(opts).unwrap();
    let sim = prepared.simulation();
    let data = sim.data.sites[2].clone();
    let mut site = site_learner(exp.spec(), &sim.arch, 2, data, opts).unwrap();
    let global = sim.federation.global().clone();
    let ins = |round| FitInstructions {
        round,
        work: LocalWork::Steps(7),
        prox_mu: None,
        server_control: None,
        report_start_loss: false,
    };
    let first = site.fit(&global, &ins(1)).unwrap();
    let after_round_1 = site.save_state().unwrap();
    let second = site.fit(&first.params, &ins(2)).unwrap();
    // Another round 2 without rolling back draws the next batches: it differs.
    let drifted = site.fit(&first.params, &ins(2)).unwrap();
    assert_ne!(second.params, drifted.params);
    site.load_state(&after_round_1).unwrap();
    let again = site.fit(&first.params, &ins(2)).unwrap();
    assert_eq!(second.params, again.params);
    assert_eq!(second.num_examples, again.num_examples);
}
