//! The round engine.

use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use ward_core::config::{FederationSpec, StrategyKind};
use ward_core::{Params, Update};
use ward_models::Evaluation;

use crate::secagg::{SecAggRoundRecord, SecAggSettings, secure_round};
use crate::site::{FitInstructions, LocalWork, SiteHandle};
use crate::strategy::{
    Aggregate, Aggregator, FedAvg, FedOptKind, QFedAvg, RoundContext, ServerMechanism, ServerOpt,
    ServerOptimizer, UpdateAttack,
};
use crate::{FlError, checkpoint::Checkpoint};

/// A site's role in the federation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteRole {
    /// Takes part in training.
    pub trains: bool,
    /// Is scored (its test split) when the global model is evaluated.
    pub evaluated: bool,
}

/// The federation's settings, resolved from the experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct FederationConfig {
    /// Strategy.
    pub strategy: StrategyKind,
    /// Rounds to run.
    pub rounds: usize,
    /// Sites sampled per round (None: all training sites).
    pub sites_per_round: Option<usize>,
    /// Local work per round.
    pub work: LocalWork,
    /// FedProx mu.
    pub mu: Option<f32>,
    /// Server optimizer (with fresh state).
    pub server: ServerOpt,
    /// Evaluate every this many rounds (0: final round only).
    pub eval_every: usize,
    /// q-FFL's aggregation (strategy `qffl`): it replaces FedAvg, and every site
    /// reports its loss before local training
    /// ([`START_LOSS`](crate::strategy::START_LOSS)).
    pub qffl: Option<QFedAvg>,
}

impl FederationConfig {
    /// From the `[federation]` section, the resolved local work and the local learning
    /// rate (`train.lr`: q-FFL's default L is its inverse).
    pub fn from_spec(spec: &FederationSpec, work: LocalWork, train_lr: f64) -> Self {
        let fedopt = |kind| ServerOpt::FedOpt {
            kind,
            lr: spec.server_lr.unwrap_or(1.0) as f32,
            beta1: spec.beta1 as f32,
            beta2: spec.beta2 as f32,
            tau: spec.tau as f32,
            m: Vec::new(),
            v: Vec::new(),
        };
        let server = match spec.strategy {
            StrategyKind::Fedadam => fedopt(FedOptKind::Adam),
            StrategyKind::Fedyogi => fedopt(FedOptKind::Yogi),
            StrategyKind::Fedadagrad => fedopt(FedOptKind::Adagrad),
            StrategyKind::Scaffold => ServerOpt::Sgd {
                lr: spec.server_lr.unwrap_or(1.0) as f32,
            },
            _ => ServerOpt::Replace,
        };
        Self {
            strategy: spec.strategy,
            rounds: spec.rounds,
            sites_per_round: spec.sites_per_round,
            work,
            mu: spec.mu.map(|m| m as f32),
            server,
            eval_every: spec.eval_every,
            qffl: spec
                .qffl(train_lr)
                .map(|(q, lipschitz)| QFedAvg { q, lipschitz }),
        }
    }
}

/// What happened to one site in one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SiteStatus {
    /// Not selected this round.
    Idle,
    /// Its update was aggregated.
    Accepted,
    /// Its update was rejected (and not aggregated).
    Rejected {
        /// Why.
        reason: String,
    },
    /// It failed to train (error reported by the site).
    Failed {
        /// The error.
        reason: String,
    },
    /// Site-level DP: what happened to the site this round (selected or not, accepted
    /// or not) is withheld from the published log, as are its update statistics; the
    /// guarantee covers the released model only if these stay unpublished.
    Withheld,
    /// Secure aggregation: it left the round before its masked input reached the
    /// server (simulated or real), so its update is not in the sum; the protocol
    /// removed its masks.
    Dropped {
        /// When and why.
        reason: String,
    },
}

/// One site's record of one round (one line of `metrics.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteRecord {
    /// Round (from 1).
    pub round: usize,
    /// Site name.
    pub site: String,
    /// What happened to its update.
    pub status: SiteStatus,
    /// Training examples behind its update.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_examples: Option<usize>,
    /// Mean local training loss.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_loss: Option<f64>,
    /// L2 norm of `local - global`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_norm: Option<f64>,
    /// The new global model's test accuracy on this site (evaluated rounds only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_accuracy: Option<f64>,
    /// The new global model's test loss on this site.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_loss: Option<f64>,
    /// The new global model's test AUC on this site (see [`Evaluation::auc`]: binary,
    /// macro one-vs-rest for multi-class, mean per-label for multi-label).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_auc: Option<f64>,
    /// Cosine similarity of this site's update (`local - global`) with the aggregate's
    /// (`aggregate - global`): a low or negative value flags an outlier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cosine_to_aggregate: Option<f64>,
    /// Whether the aggregation rule kept this update (rules that select).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selected: Option<bool>,
    /// The weight the aggregation rule gave this update (rules that weight).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregation_weight: Option<f64>,
    /// Whether the site is compromised by the simulated attack (attack runs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compromised: Option<bool>,
    /// Secure aggregation: coordinates of the site's weighted update outside the
    /// quantiser's range, clipped by the site before masking (the site reports the
    /// count; the server never sees the update).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clipped_values: Option<usize>,
}

impl SiteRecord {
    /// What may be published of this record under site-level DP: the round, the site
    /// and the released model's scores on the site's held-out test rows; its status
    /// becomes [`SiteStatus::Withheld`] and every statistic of its raw update (training
    /// rows used, loss, update norm, cosine, selection, weight, clipped values) is
    /// dropped. The simulated attack's `compromised` label (set by the experiment, not
    /// derived from data) is kept.
    #[must_use]
    pub fn withheld(&self) -> Self {
        Self {
            round: self.round,
            site: self.site.clone(),
            status: SiteStatus::Withheld,
            num_examples: None,
            train_loss: None,
            update_norm: None,
            test_accuracy: self.test_accuracy,
            test_loss: self.test_loss,
            test_auc: self.test_auc,
            cosine_to_aggregate: None,
            selected: None,
            aggregation_weight: None,
            compromised: self.compromised,
            clipped_values: None,
        }
    }
}

/// The outcome of one round.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundReport {
    /// Round (from 1).
    pub round: usize,
    /// One record per site, in site order.
    pub sites: Vec<SiteRecord>,
    /// Number of updates aggregated.
    pub aggregated: usize,
}

impl RoundReport {
    /// Updates rejected this round (by status, never by the log's text).
    pub fn rejected(&self) -> usize {
        self.sites
            .iter()
            .filter(|r| matches!(r.status, SiteStatus::Rejected { .. }))
            .count()
    }

    /// Mean test accuracy over the sites scored this round (`None` where none was).
    pub fn mean_accuracy(&self) -> Option<f64> {
        let accs: Vec<f64> = self.sites.iter().filter_map(|r| r.test_accuracy).collect();
        (!accs.is_empty()).then(|| accs.iter().sum::<f64>() / accs.len() as f64)
    }
}

/// Federation state between rounds (checkpointed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ServerState {
    pub(crate) round: usize,
    pub(crate) global: Params,
    pub(crate) server: ServerOpt,
    pub(crate) control: Option<Params>,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) cycle: Vec<usize>,
    pub(crate) cycle_pos: usize,
    pub(crate) attack: Vec<u8>,
    /// The server mechanism's state (central DP: clip norm, noise RNG).
    pub(crate) mechanism: Vec<u8>,
    /// Secure aggregation's round records (None: secure aggregation is off).
    pub(crate) secagg: Option<Vec<SecAggRoundRecord>>,
    /// The last aggregate update (aggregate minus global), kept only for an
    /// aggregator with [`Aggregator::uses_history`].
    pub(crate) previous_update: Option<Params>,
}

/// The round engine: runs rounds over [`SiteHandle`]s with a strategy.
///
/// One round: select sites → send the global model → local fit → validate (length,
/// layout, NaN/Inf) → aggregate (FedAvg weighting) → server optimizer → evaluate.
/// A rejected or failed update is recorded in the round's report and never aggregated.
pub struct Federation {
    sites: Vec<Box<dyn SiteHandle>>,
    roles: Vec<SiteRole>,
    config: FederationConfig,
    aggregator: Box<dyn Aggregator>,
    attack: Option<Box<dyn UpdateAttack>>,
    mechanism: Option<Box<dyn ServerMechanism>>,
    compromised: Option<Vec<bool>>,
    state: ServerState,
    /// FLTrust: the server's own trainer on its root sample (see
    /// [`Federation::set_root_trainer`]).
    root: Option<Box<dyn SiteHandle>>,
    /// Secure aggregation (see [`Federation::enable_secagg`]).
    secagg: Option<SecAggSettings>,
    /// Poisson site sampling's inclusion probability (see
    /// [`Federation::use_poisson_sampling`]).
    poisson: Option<f64>,
}

impl std::fmt::Debug for Federation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Federation")
            .field(
                "sites",
                &self.sites.iter().map(|s| s.name()).collect::<Vec<_>>(),
            )
            .field("config", &self.config)
            .field("aggregator", &self.aggregator.name())
            .field("round", &self.state.round)
            .finish()
    }
}

impl Federation {
    /// A federation starting from `initial`, with selection randomness from `seed`.
    pub fn new(
        sites: Vec<Box<dyn SiteHandle>>,
        roles: Vec<SiteRole>,
        config: FederationConfig,
        initial: Params,
        seed: u64,
    ) -> Result<Self, FlError> {
        if sites.len() != roles.len() {
            return Err(FlError::Config(format!(
                "{} sites but {} roles",
                sites.len(),
                roles.len()
            )));
        }
        let trainers = roles.iter().filter(|r| r.trains).count();
        if trainers == 0 {
            return Err(FlError::Config("no site trains".into()));
        }
        if let Some(k) = config.sites_per_round
            && k > trainers
        {
            return Err(FlError::Config(format!(
                "federation.sites-per-round = {k}, but only {trainers} sites train"
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(u64::MAX);
        let control = (config.strategy == StrategyKind::Scaffold).then(|| initial.zeros_like());
        let server = config.server.clone();
        let aggregator: Box<dyn Aggregator> = match config.qffl {
            Some(q) => Box::new(q),
            None => Box::new(FedAvg),
        };
        Ok(Self {
            sites,
            roles,
            config,
            aggregator,
            attack: None,
            mechanism: None,
            compromised: None,
            state: ServerState {
                round: 0,
                global: initial,
                server,
                control,
                rng,
                cycle: Vec::new(),
                cycle_pos: 0,
                attack: Vec::new(),
                mechanism: Vec::new(),
                secagg: None,
                previous_update: None,
            },
            root: None,
            secagg: None,
            poisson: None,
        })
    }

    /// Sites that train (every site but evaluation-only ones).
    pub fn trainers(&self) -> usize {
        self.roles.iter().filter(|r| r.trains).count()
    }

    /// Sites that train in each round: one for cyclic, `federation.sites-per-round`
    /// (at most the trainers) otherwise, every trainer by default. The one place this
    /// is computed.
    pub fn sites_per_round(&self) -> usize {
        let trainers = self.trainers();
        match self.config.strategy {
            StrategyKind::Cyclic => 1,
            _ => self
                .config
                .sites_per_round
                .unwrap_or(trainers)
                .min(trainers),
        }
    }

    /// Draws each round's sites by Poisson sampling: every training site joins
    /// independently with probability `q` (a round may have none), instead of a
    /// fixed-size draw of `sites_per_round`. What central DP's add-or-remove-one-site
    /// accounting assumes (McMahan et al. 2018). Refused after the first round, with
    /// cyclic, and for `q` outside (0, 1].
    pub fn use_poisson_sampling(&mut self, q: f64) -> Result<(), FlError> {
        if self.state.round > 0 {
            return Err(FlError::Config(
                "site sampling can only be chosen before the first round".into(),
            ));
        }
        if !(q > 0.0 && q <= 1.0) {
            return Err(FlError::Config(format!(
                "Poisson site sampling rate {q}: must be in (0, 1]"
            )));
        }
        if self.config.strategy == StrategyKind::Cyclic {
            return Err(FlError::Config(
                "cyclic visits one site at a time: Poisson site sampling does not apply".into(),
            ));
        }
        self.poisson = Some(q);
        Ok(())
    }

    /// Poisson site sampling's inclusion probability, if it is on.
    pub fn poisson_rate(&self) -> Option<f64> {
        self.poisson
    }

    /// Replaces the sites with handles supplied from outside (the coordinator of a
    /// deployment passes remote sites): as many as there are, with the same names in the
    /// same order. Refused after the first round.
    pub fn replace_sites(&mut self, sites: Vec<Box<dyn SiteHandle>>) -> Result<(), FlError> {
        if self.state.round > 0 {
            return Err(FlError::Config(
                "sites can only be replaced before the first round".into(),
            ));
        }
        let want: Vec<&str> = self.sites.iter().map(|s| s.name()).collect();
        let got: Vec<&str> = sites.iter().map(|s| s.name()).collect();
        if want != got {
            return Err(FlError::Config(format!(
                "the supplied sites {got:?} are not this experiment's sites {want:?} (same names, same order)"
            )));
        }
        self.sites = sites;
        Ok(())
    }

    /// Replaces the aggregation rule (FedAvg by default). Refused if the rule needs more
    /// updates per round than the federation can give.
    pub fn set_aggregator(&mut self, aggregator: Box<dyn Aggregator>) -> Result<(), FlError> {
        self.refuse_with_secagg(&format!("the aggregation rule {}", aggregator.name()))?;
        if self.config.qffl.is_some() {
            return Err(FlError::Config(format!(
                "q-FFL is its own aggregation rule; it cannot be replaced by {}",
                aggregator.name()
            )));
        }
        let per_round = self.sites_per_round();
        if per_round < aggregator.min_updates() {
            return Err(FlError::Config(format!(
                "aggregator {} needs at least {} updates per round, but {per_round} sites train per round",
                aggregator.name(),
                aggregator.min_updates()
            )));
        }
        self.aggregator = aggregator;
        Ok(())
    }

    /// Installs a model-poisoning attack run by the sites with `compromised[i]` (one
    /// flag per site, in site order).
    pub fn set_attack(
        &mut self,
        attack: Box<dyn UpdateAttack>,
        compromised: Vec<bool>,
    ) -> Result<(), FlError> {
        self.refuse_with_secagg(&format!("the attack {}", attack.name()))?;
        if compromised.len() != self.sites.len() {
            return Err(FlError::Config(format!(
                "{} compromised flags for {} sites",
                compromised.len(),
                self.sites.len()
            )));
        }
        self.state.attack = attack.save_state()?;
        self.attack = Some(attack);
        self.compromised = Some(compromised);
        Ok(())
    }

    /// Gives the server a trainer on its own root data (FLTrust, Cao et al. 2021): each
    /// round, before aggregation, it trains from the global model with the round's local
    /// work (and FedProx mu), and its model is the aggregator's
    /// [`RoundContext::server_update`]. It is not a site: never selected, evaluated or
    /// recorded; its state (batch order, optimizer) is checkpointed after the sites'.
    pub fn set_root_trainer(&mut self, trainer: Box<dyn SiteHandle>) {
        self.root = Some(trainer);
    }

    /// Installs a server mechanism (central DP) that replaces the aggregation rule.
    /// Refused unless the rule is `fedavg` or `mean`: central DP's guarantee is for the
    /// clipped, noised mean, and robust rules would change what is released.
    pub fn set_mechanism(&mut self, mechanism: Box<dyn ServerMechanism>) -> Result<(), FlError> {
        self.refuse_with_secagg(&format!("the server mechanism {}", mechanism.name()))?;
        let rule = self.aggregator.name();
        if rule != "fedavg" && rule != "mean" {
            return Err(FlError::Config(format!(
                "{} replaces aggregation with a clipped, noised mean; it cannot be combined with the robust aggregator {rule} (use robust.aggregator = \"fedavg\" or \"mean\")",
                mechanism.name()
            )));
        }
        self.state.mechanism = mechanism.save_state()?;
        self.mechanism = Some(mechanism);
        Ok(())
    }

    /// The server mechanism's current state (what its `save_state` wrote), if one is
    /// installed.
    pub fn mechanism_state(&self) -> Option<&[u8]> {
        self.mechanism
            .as_ref()
            .map(|_| self.state.mechanism.as_slice())
    }

    fn refuse_with_secagg(&self, what: &str) -> Result<(), FlError> {
        if self.secagg.is_some() {
            return Err(FlError::Config(format!(
                "{what} needs each site's update, which secure aggregation hides"
            )));
        }
        Ok(())
    }

    /// Switches the federation to secure aggregation (SecAgg+) with `settings`: the
    /// server receives only masked, quantised, example-weighted updates and aggregates
    /// their sum (see [`crate::secagg`]). Refused with SCAFFOLD, FedBN, cyclic or a
    /// baseline, with an aggregation rule other than FedAvg, an attack, a server
    /// mechanism or a root trainer (they need each update), when fewer than 2 sites
    /// train per round, when the protocol's settings do not fit the round's sites, and
    /// by any training site that does not run secure aggregation.
    pub fn enable_secagg(&mut self, settings: SecAggSettings) -> Result<(), FlError> {
        let refuse = |why: String| Err(FlError::Config(format!("secure aggregation: {why}")));
        let strategy = self.config.strategy;
        if matches!(
            strategy,
            StrategyKind::Scaffold
                | StrategyKind::Fedbn
                | StrategyKind::Cyclic
                | StrategyKind::Pooled
                | StrategyKind::Local
        ) {
            return refuse(format!("not available with strategy {}", strategy.as_str()));
        }
        let rule = self.aggregator.name();
        if rule != "fedavg" {
            return refuse(format!(
                "the aggregation rule {rule} needs each update; only fedavg runs on the sum"
            ));
        }
        if self.attack.is_some() || self.mechanism.is_some() || self.root.is_some() {
            return refuse(
                "an attack, a server mechanism or a root trainer needs each update".into(),
            );
        }
        let per_round = self.sites_per_round();
        if per_round < 2 {
            return refuse(format!(
                "{per_round} site(s) train per round; the sum of one update is that update"
            ));
        }
        let params = settings.params(per_round as u32, self.state.global.len(), 1);
        params.validate().map_err(|e| {
            FlError::Config(format!(
                "secure aggregation with {per_round} sites per round: {e}"
            ))
        })?;
        for i in 0..self.sites.len() {
            if self.roles[i].trains {
                self.sites[i].enable_secagg()?;
            }
        }
        self.secagg = Some(settings);
        self.state.secagg = Some(Vec::new());
        Ok(())
    }

    /// Secure aggregation's settings, if it is on.
    pub fn secagg_settings(&self) -> Option<&SecAggSettings> {
        self.secagg.as_ref()
    }

    /// Secure aggregation's record of every round run so far (empty when it is off).
    pub fn secagg_rounds(&self) -> &[SecAggRoundRecord] {
        self.state.secagg.as_deref().unwrap_or_default()
    }

    /// Switches site `i`'s local training to DP-SGD with `config`.
    pub fn enable_dp_sgd(
        &mut self,
        i: usize,
        config: ward_models::dp::DpSgdConfig,
    ) -> Result<(), FlError> {
        let n = self.sites.len();
        self.sites
            .get_mut(i)
            .ok_or_else(|| FlError::Config(format!("site {i} of {n}")))?
            .enable_dp_sgd(config)
    }

    /// Every site's DP-SGD state (None for sites without DP-SGD), in site order.
    pub fn dp_sgd_states(&self) -> Vec<Option<ward_models::dp::DpSgd>> {
        self.sites.iter().map(|s| s.dp_sgd().cloned()).collect()
    }

    /// Every site's number of training examples, in site order.
    pub fn num_train(&self) -> Vec<usize> {
        self.sites.iter().map(|s| s.num_train()).collect()
    }

    /// Marks sites as compromised in the round records without an update attack (data
    /// poisoning happens inside the sites).
    pub fn set_compromised(&mut self, compromised: Vec<bool>) -> Result<(), FlError> {
        if compromised.len() != self.sites.len() {
            return Err(FlError::Config(format!(
                "{} compromised flags for {} sites",
                compromised.len(),
                self.sites.len()
            )));
        }
        self.compromised = Some(compromised);
        Ok(())
    }

    /// The aggregation rule's name.
    pub fn aggregator_name(&self) -> String {
        match &self.mechanism {
            Some(m) => format!("{}({})", m.name(), self.aggregator.name()),
            None => self.aggregator.name(),
        }
    }

    /// Rounds completed.
    pub fn round(&self) -> usize {
        self.state.round
    }

    /// Whether every configured round has run.
    pub fn is_done(&self) -> bool {
        self.state.round >= self.config.rounds
    }

    /// The current global model.
    pub fn global(&self) -> &Params {
        &self.state.global
    }

    /// The settings.
    pub fn config(&self) -> &FederationConfig {
        &self.config
    }

    /// `(site, model)` for every site that keeps layers of its own (FedBN): the global
    /// model with that site's layers.
    pub fn personalised_models(&self) -> Vec<(String, Params)> {
        self.sites
            .iter()
            .filter(|s| s.keeps_local_layers())
            .map(|s| (s.name().to_string(), s.personalised(self.global())))
            .collect()
    }

    /// The sites' names, in order.
    pub fn site_names(&self) -> Vec<String> {
        self.sites.iter().map(|s| s.name().to_string()).collect()
    }

    /// The sites' roles, in order.
    pub fn roles(&self) -> &[SiteRole] {
        &self.roles
    }

    fn select(&mut self) -> Vec<usize> {
        let trainers: Vec<usize> = (0..self.sites.len())
            .filter(|&i| self.roles[i].trains)
            .collect();
        if self.config.strategy == StrategyKind::Cyclic {
            if self.state.cycle_pos >= self.state.cycle.len() {
                self.state.cycle = trainers;
                self.state.cycle.shuffle(&mut self.state.rng);
                self.state.cycle_pos = 0;
            }
            let s = self.state.cycle[self.state.cycle_pos];
            self.state.cycle_pos += 1;
            return vec![s];
        }
        if let Some(q) = self.poisson {
            return trainers
                .into_iter()
                .filter(|_| self.state.rng.random_bool(q))
                .collect();
        }
        match self.config.sites_per_round {
            Some(k) if k < trainers.len() => {
                let mut picked: Vec<usize> =
                    rand::seq::index::sample(&mut self.state.rng, trainers.len(), k)
                        .into_iter()
                        .map(|i| trainers[i])
                        .collect();
                picked.sort_unstable();
                picked
            }
            _ => trainers,
        }
    }

    /// Checks an update before aggregation: same layout as the global model, every
    /// value finite (and the SCAFFOLD control delta too).
    pub fn validate(&self, update: &Update) -> Result<(), String> {
        let g = &self.state.global;
        if update.params.len() != g.len() {
            return Err(format!(
                "wrong length: {} values, expected {}",
                update.params.len(),
                g.len()
            ));
        }
        if update.params.layout() != g.layout() {
            return Err("wrong layout: tensor names or shapes differ".into());
        }
        if let Some(i) = update.params.first_non_finite() {
            return Err(format!(
                "non-finite value {} at index {i}",
                update.params.values()[i]
            ));
        }
        if self.config.strategy == StrategyKind::Scaffold {
            match &update.control_delta {
                None => return Err("SCAFFOLD update without a control delta".into()),
                Some(c) if c.len() != g.len() => {
                    return Err(format!(
                        "control delta has {} values, expected {}",
                        c.len(),
                        g.len()
                    ));
                }
                Some(c) => {
                    if let Some(i) = c.first_non_finite() {
                        return Err(format!("non-finite control delta at index {i}"));
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs the next round.
    pub fn run_round(&mut self) -> Result<RoundReport, FlError> {
        if self.is_done() {
            return Err(FlError::Config(format!(
                "all {} rounds have run",
                self.config.rounds
            )));
        }
        let round = self.state.round + 1;
        let selected = self.select();
        let ins = FitInstructions {
            round,
            work: self.config.work,
            prox_mu: self.config.mu,
            server_control: self.state.control.clone(),
            report_start_loss: self.config.qffl.is_some(),
        };
        let mut records = self.new_records(round);
        if let Some(settings) = self.secagg {
            return self.run_secure_round(&settings, round, &selected, &ins, records);
        }
        let accepted = self.collect_updates(round, &selected, &ins, &mut records)?;
        let accepted = self.apply_attack(round, accepted, &mut records)?;
        if !accepted.is_empty() && accepted.len() < self.aggregator.min_updates() {
            return Err(FlError::Config(format!(
                "round {round}: only {} valid updates, but aggregator {} needs at least {}",
                accepted.len(),
                self.aggregator.name(),
                self.aggregator.min_updates()
            )));
        }
        // A server mechanism (central DP) releases every round, updates or not: a
        // round skipped when nobody took part would reveal that.
        if !accepted.is_empty() || self.mechanism.is_some() {
            self.aggregate_and_step(round, &ins, &accepted, &mut records)?;
        } else {
            tracing::warn!(round, "no valid update this round: global model unchanged");
        }
        self.finish_round(round, records, accepted.len())
    }

    /// A blank record of round `round` for every site (with its compromised flag, where
    /// an attack runs).
    fn new_records(&self, round: usize) -> Vec<SiteRecord> {
        let mut records: Vec<SiteRecord> = self
            .sites
            .iter()
            .map(|s| SiteRecord {
                round,
                site: s.name().to_string(),
                status: SiteStatus::Idle,
                num_examples: None,
                train_loss: None,
                update_norm: None,
                test_accuracy: None,
                test_loss: None,
                test_auc: None,
                cosine_to_aggregate: None,
                selected: None,
                aggregation_weight: None,
                compromised: None,
                clipped_values: None,
            })
            .collect();
        if let Some(c) = &self.compromised {
            for (r, &c) in records.iter_mut().zip(c) {
                r.compromised = Some(c);
            }
        }
        records
    }

    /// Round `round` under secure aggregation: the secure sum's aggregate (if any)
    /// through the server optimizer, then the round's end.
    fn run_secure_round(
        &mut self,
        settings: &SecAggSettings,
        round: usize,
        selected: &[usize],
        ins: &FitInstructions,
        mut records: Vec<SiteRecord>,
    ) -> Result<RoundReport, FlError> {
        let out = secure_round(
            &mut self.sites,
            selected,
            settings,
            &self.state.global,
            ins,
            round,
            &mut records,
        )?;
        if let Some(agg) = &out.aggregate {
            self.state.global = self.state.server.step(&self.state.global, agg)?;
        }
        self.state.secagg.get_or_insert_default().push(out.record);
        self.finish_round(round, records, out.aggregated)
    }

    /// Each selected site trains; the valid updates, in site order. Failed and rejected
    /// sites are marked in `records`.
    fn collect_updates(
        &mut self,
        round: usize,
        selected: &[usize],
        ins: &FitInstructions,
        records: &mut [SiteRecord],
    ) -> Result<Vec<Update>, FlError> {
        let mut accepted: Vec<Update> = Vec::with_capacity(selected.len());
        for &i in selected {
            let global = &self.state.global;
            match self.sites[i].fit(global, ins) {
                Err(e) => {
                    tracing::warn!(round, site = self.sites[i].name(), "site failed: {e}");
                    records[i].status = SiteStatus::Failed {
                        reason: e.to_string(),
                    };
                }
                Ok(mut u) => {
                    u.site = i;
                    records[i].num_examples = Some(u.num_examples);
                    records[i].train_loss = u.metrics.get("train_loss").copied();
                    match self.validate(&u) {
                        Err(reason) => {
                            tracing::warn!(
                                round,
                                site = self.sites[i].name(),
                                "update rejected: {reason}"
                            );
                            records[i].status = SiteStatus::Rejected { reason };
                        }
                        Ok(()) => {
                            records[i].update_norm =
                                Some(u.params.sub(&self.state.global)?.l2_norm());
                            records[i].status = SiteStatus::Accepted;
                            accepted.push(u);
                        }
                    }
                }
            }
        }
        Ok(accepted)
    }

    /// Lets the attack (if any) rewrite the compromised sites' updates, then validates
    /// the rewritten set again: an invalid crafted update is rejected in `records`.
    fn apply_attack(
        &mut self,
        round: usize,
        mut accepted: Vec<Update>,
        records: &mut [SiteRecord],
    ) -> Result<Vec<Update>, FlError> {
        if let (Some(attack), Some(flags)) = (self.attack.as_mut(), self.compromised.as_ref()) {
            let flags: Vec<bool> = accepted.iter().map(|u| flags[u.site]).collect();
            if flags.iter().any(|&c| c) {
                attack.rewrite(round, &self.state.global, &mut accepted, &flags)?;
                self.state.attack = attack.save_state()?;
                // A crafted update is validated like any other: nothing invalid reaches
                // the aggregator.
                let mut kept = Vec::with_capacity(accepted.len());
                for u in accepted {
                    match self.validate(&u) {
                        Ok(()) => {
                            records[u.site].update_norm =
                                Some(u.params.sub(&self.state.global)?.l2_norm());
                            kept.push(u);
                        }
                        Err(reason) => {
                            records[u.site].status = SiteStatus::Rejected { reason };
                            records[u.site].update_norm = None;
                        }
                    }
                }
                accepted = kept;
            }
        }
        Ok(accepted)
    }

    /// The server's own update on its root sample (FLTrust), checked; `None` without a
    /// root trainer.
    fn root_update(
        &mut self,
        round: usize,
        ins: &FitInstructions,
    ) -> Result<Option<Params>, FlError> {
        let Some(root) = self.root.as_mut() else {
            return Ok(None);
        };
        let root_ins = FitInstructions {
            server_control: None,
            ..ins.clone()
        };
        let u = root.fit(&self.state.global, &root_ins)?;
        if let Some(i) = u.params.first_non_finite() {
            return Err(FlError::Config(format!(
                "round {round}: the server's update on its root sample has a non-finite value at index {i}"
            )));
        }
        u.params.check_same_layout(&self.state.global)?;
        Ok(Some(u.params))
    }

    /// Aggregates the (non-empty) `accepted` updates, records how each relates to the
    /// aggregate, and steps the server optimizer (and SCAFFOLD's control variate) to the
    /// next global model.
    fn aggregate_and_step(
        &mut self,
        round: usize,
        ins: &FitInstructions,
        accepted: &[Update],
        records: &mut [SiteRecord],
    ) -> Result<(), FlError> {
        let server_update = self.root_update(round, ins)?;
        let ctx = RoundContext {
            round,
            global: &self.state.global,
            server_update: server_update.as_ref(),
            previous_update: self.state.previous_update.as_ref(),
        };
        let agg = match self.mechanism.as_mut() {
            Some(m) => {
                let a = m.aggregate(accepted, &ctx)?;
                self.state.mechanism = m.save_state()?;
                a
            }
            None => {
                let a = self.aggregator.aggregate(accepted, &ctx)?;
                if self.aggregator.uses_history() {
                    self.state.previous_update = Some(a.params.sub(&self.state.global)?);
                }
                a
            }
        };
        self.record_aggregate(accepted, &agg, records)?;
        let next = self.state.server.step(&self.state.global, &agg.params)?;
        if let Some(c) = &mut self.state.control {
            // c = c + (1/N) sum_{i in S} delta c_i (Karimireddy et al. 2020, Alg. 1).
            let n = self.roles.iter().filter(|r| r.trains).count() as f32;
            for u in accepted {
                if let Some(d) = &u.control_delta {
                    c.axpy(1.0 / n, d)?;
                }
            }
        }
        self.state.global = next;
        Ok(())
    }

    /// Each accepted update's cosine to the aggregate update, and whether the aggregator
    /// selected it and with what weight, in its site's record.
    fn record_aggregate(
        &self,
        accepted: &[Update],
        agg: &Aggregate,
        records: &mut [SiteRecord],
    ) -> Result<(), FlError> {
        let agg_delta = agg.params.sub(&self.state.global)?;
        let agg_norm = agg_delta.l2_norm();
        for (k, u) in accepted.iter().enumerate() {
            let rec = &mut records[u.site];
            let d = u.params.sub(&self.state.global)?;
            let denom = d.l2_norm() * agg_norm;
            rec.cosine_to_aggregate =
                (denom > 0.0).then(|| d.dot(&agg_delta).unwrap_or(0.0) / denom);
            if let Some(sel) = &agg.selected {
                rec.selected = Some(sel.contains(&k));
            }
            if let Some(w) = &agg.weights {
                rec.aggregation_weight = w.get(k).copied();
            }
        }
        Ok(())
    }

    /// Ends round `round`: counts it, evaluates where due, and reports.
    fn finish_round(
        &mut self,
        round: usize,
        mut records: Vec<SiteRecord>,
        aggregated: usize,
    ) -> Result<RoundReport, FlError> {
        self.state.round = round;
        let evaluate = self.is_done()
            || (self.config.eval_every > 0 && round.is_multiple_of(self.config.eval_every));
        if evaluate {
            for (i, e) in self.evaluate()? {
                records[i].test_accuracy = Some(e.accuracy);
                records[i].test_loss = Some(e.loss);
                records[i].test_auc = e.auc;
            }
        }
        Ok(RoundReport {
            round,
            sites: records,
            aggregated,
        })
    }

    /// Scores the global model on every evaluated site: `(site index, evaluation)`.
    pub fn evaluate(&mut self) -> Result<Vec<(usize, Evaluation)>, FlError> {
        let mut out = Vec::new();
        for i in 0..self.sites.len() {
            if self.roles[i].evaluated && self.sites[i].num_test() > 0 {
                out.push((i, self.sites[i].evaluate(&self.state.global)?));
            }
        }
        Ok(out)
    }

    /// Personalised evaluation: each evaluated site that also trains fine-tunes the
    /// global model for `steps` local steps and is scored on its own test split.
    pub fn fine_tune_and_evaluate(
        &mut self,
        steps: usize,
    ) -> Result<Vec<(usize, Evaluation)>, FlError> {
        let mut out = Vec::new();
        for i in 0..self.sites.len() {
            if self.roles[i].evaluated && self.roles[i].trains && self.sites[i].num_test() > 0 {
                let g = self.state.global.clone();
                out.push((i, self.sites[i].fine_tune_and_evaluate(&g, steps)?));
            }
        }
        Ok(out)
    }

    /// The whole federation state (server and sites) for a checkpoint.
    pub fn snapshot(&self) -> Result<Checkpoint, FlError> {
        let mut sites = self
            .sites
            .iter()
            .map(|s| s.save_state())
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(root) = &self.root {
            sites.push(root.save_state()?);
        }
        Ok(Checkpoint::new(self.state.clone(), sites))
    }

    /// Restores a checkpoint taken from a federation with the same sites and settings.
    pub fn restore(&mut self, checkpoint: &Checkpoint) -> Result<(), FlError> {
        let (state, sites) = checkpoint.parts();
        let expected = self.sites.len() + usize::from(self.root.is_some());
        if sites.len() != expected {
            return Err(FlError::Checkpoint(format!(
                "checkpoint holds {} site states, the federation has {} (sites, plus the server's root trainer where FLTrust runs)",
                sites.len(),
                expected
            )));
        }
        let (sites, root_state) = sites.split_at(self.sites.len());
        if let (Some(root), Some(bytes)) = (self.root.as_mut(), root_state.first()) {
            root.load_state(bytes)?;
        }
        state
            .global
            .check_same_layout(&self.state.global)
            .map_err(|e| FlError::Checkpoint(format!("checkpointed model: {e}")))?;
        if std::mem::discriminant(&state.server) != std::mem::discriminant(&self.config.server) {
            return Err(FlError::Checkpoint(
                "checkpoint was written by another strategy".into(),
            ));
        }
        if state.secagg.is_some() != self.secagg.is_some() {
            return Err(FlError::Checkpoint(
                "the checkpoint and this run differ in secure aggregation (on in one, off in the other)".into(),
            ));
        }
        for (site, bytes) in self.sites.iter_mut().zip(sites) {
            site.load_state(bytes)?;
        }
        if let Some(a) = self.attack.as_mut() {
            a.load_state(&state.attack)?;
        }
        if let Some(m) = self.mechanism.as_mut() {
            m.load_state(&state.mechanism)?;
        }
        self.state = state.clone();
        Ok(())
    }
}
