//! The experiment's `[privacy]` table in a run: DP-SGD at the sites, central DP at the
//! server, the budget check before each round and the privacy report.
//!
//! Accounting rules (stated in every report, each guarantee with its unit, adjacency,
//! sampling, accountant and bound type):
//! - Record-level (DP-SGD): each site is accounted over the steps it really ran (a site
//!   sampled in some rounds only runs in those), with its own sampling rate
//!   `q = batch / rows`. The sites' data are disjoint, so the federation's record-level
//!   epsilon is the MAX over sites, never a sum. No amplification by site sampling is
//!   claimed. Poisson batches: add or remove one record; fixed-size batches: sampling
//!   without replacement under substitution of one record (the rows per site public).
//! - Site-level (central DP): `rounds` compositions of the subsampled Gaussian with the
//!   mechanism's noise multiplier `z` (McMahan et al. 2018): Poisson site sampling at
//!   rate `q` with a fixed denominator under add or remove one site, or a fixed number
//!   of sites per round under substitution of one site. Amplification by sampling is
//!   claimed only because the selection stays secret: under site-level DP the run
//!   directory withholds each site's per-round status and raw-update statistics
//!   (`metrics.jsonl` rows become `withheld`).
//!
//! Secure aggregation (`[privacy.secagg]`) is not a DP mechanism: it hides each site's
//! update from the server, which learns only their sum. The report gives its settings,
//! the quantisation bound on the aggregate and, per round, the survivors, the dropped
//! sites and the bytes each site sent.
//!
//! Randomness: a simulated run draws its DP noise from streams of the run seed, which
//! `config.toml` publishes: reproducible, but no protection against whoever holds the
//! run directory. Every report says so.

use crate::{Error, Result};
use serde::Serialize;
use ward_core::ExperimentSpec;
use ward_core::config::{
    AccountantChoice, CentralDpSpec, DpSamplingKind, DpSgdSpec, SecAggPrgKind, SiteSamplingKind,
};
use ward_core::config::{CheckedSpec, NoiseSpec};
use ward_core::{Params, Update};
use ward_fl::{
    Aggregate, Federation, FlError, LocalWork, RoundContext, SecAggRoundRecord, SecAggSettings,
    ServerMechanism, Simulation, SiteRecord,
};
use ward_models::dp::{DpSgdConfig, Sampling};
use ward_privacy::accountant::{self, AccountantKind, GaussianEvent, Sampling as Accounted};
use ward_privacy::central::{CentralDp, CentralDpConfig, Clipping, SiteSampling};
use ward_privacy::secagg::{MaskPrg, Quantizer, Rounding, SecAggParams};

/// A SecAgg+ round may fail for lack of live neighbours with probability at most
/// `2^-this` under the degree rule of [`SecAggParams::recommended_neighbours`].
const SECAGG_FAILURE_BITS: u32 = 40;

/// The seed of the server's central-DP noise stream (a stream of the run seed).
const CENTRAL_STREAM: u64 = 0xCE27_DA7A;

fn kind(c: AccountantChoice) -> AccountantKind {
    match c {
        AccountantChoice::Rdp => AccountantKind::Rdp,
        AccountantChoice::Prv => AccountantKind::Prv,
    }
}

/// Epsilon of `steps` subsampled-Gaussian steps drawn by `sampling`; `None` without
/// noise (no guarantee).
fn eps(
    kind: AccountantKind,
    sampling: Accounted,
    sigma: f64,
    q: f64,
    steps: u64,
    delta: f64,
) -> Result<Option<f64>> {
    if steps == 0 {
        return Ok(Some(0.0));
    }
    if sigma == 0.0 {
        return Ok(None);
    }
    Ok(Some(accountant::epsilon(
        kind,
        &[GaussianEvent {
            sigma,
            q,
            steps,
            sampling,
        }],
        delta,
    )?))
}

/// How DP-SGD's batches are accounted.
fn batch_accounting(s: ward_models::dp::Sampling) -> Accounted {
    match s {
        Sampling::Poisson => Accounted::Poisson,
        Sampling::FixedSize => Accounted::WithoutReplacement,
    }
}

/// How central DP's site sampling is accounted.
fn site_accounting(s: &SiteSampling) -> Accounted {
    match s {
        SiteSampling::Poisson { .. } => Accounted::Poisson,
        SiteSampling::Fixed { .. } => Accounted::WithoutReplacement,
    }
}

/// Central DP as the federation's server mechanism: the aggregate is
/// `global + (sum of clipped deltas + noise) / D` with the fixed denominator `D` of its
/// site sampling.
#[derive(Debug)]
pub struct CentralMechanism {
    dp: CentralDp,
}

impl ServerMechanism for CentralMechanism {
    fn name(&self) -> String {
        "central-dp".into()
    }

    fn aggregate(
        &mut self,
        updates: &[Update],
        ctx: &RoundContext<'_>,
    ) -> Result<Aggregate, FlError> {
        let deltas = updates
            .iter()
            .map(|u| u.params.sub(ctx.global))
            .collect::<Result<Vec<Params>, _>>()?;
        let refs: Vec<&[f32]> = deltas.iter().map(Params::values).collect();
        let out = self
            .dp
            .privatise(&refs, ctx.global.len())
            .map_err(|e| FlError::Config(format!("central DP: {e}")))?;
        let mut next = ctx.global.clone();
        for (x, d) in next.values_mut().iter_mut().zip(&out.mean) {
            *x += d;
        }
        Ok(Aggregate::plain(next))
    }

    fn save_state(&self) -> Result<Vec<u8>, FlError> {
        serde_json::to_vec(&self.dp)
            .map_err(|e| FlError::Checkpoint(format!("central DP state: {e}")))
    }

    fn load_state(&mut self, state: &[u8]) -> Result<(), FlError> {
        let dp: CentralDp = serde_json::from_slice(state)
            .map_err(|e| FlError::Checkpoint(format!("central DP state does not decode: {e}")))?;
        if dp.config() != self.dp.config() {
            return Err(FlError::Checkpoint(
                "the checkpoint's central-DP settings differ from this run's".into(),
            ));
        }
        self.dp = dp;
        Ok(())
    }
}

/// One site's resolved DP-SGD settings.
#[derive(Debug, Clone)]
struct SitePlan {
    index: usize,
    name: String,
    config: DpSgdConfig,
    rows: usize,
    steps_per_round: u64,
}

/// The privacy settings of a run, resolved (noise calibrated) and installed.
#[derive(Debug, Clone, Default)]
pub struct PrivacyPlan {
    sites: Vec<SitePlan>,
    central: Option<CentralDpConfig>,
    /// Secure aggregation's settings and the sites per round.
    secagg: Option<(SecAggSettings, usize)>,
    rounds: usize,
    /// Warnings about the settings (shown before the first round and in the report).
    warnings: Vec<String>,
}

impl PrivacyPlan {
    /// Whether any mechanism is on.
    pub fn is_on(&self) -> bool {
        !self.sites.is_empty() || self.central.is_some() || self.secagg.is_some()
    }

    /// Warnings about the privacy settings, for the user.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Whether site-level (central) DP is on: the run directory then withholds every
    /// per-site statistic of the raw updates (see [`SiteRecord::withheld`]).
    pub fn site_level(&self) -> bool {
        self.central.is_some()
    }

    /// The rows of a round's report that the run directory may publish: under
    /// site-level DP each withheld, otherwise as they are.
    pub fn published(&self, rows: &[SiteRecord]) -> Vec<SiteRecord> {
        if self.site_level() {
            rows.iter().map(SiteRecord::withheld).collect()
        } else {
            rows.to_vec()
        }
    }
}

/// Steps a site with `rows` training rows takes per round under DP-SGD.
fn steps_per_round(work: LocalWork, rows: usize, batch: usize) -> u64 {
    match work {
        LocalWork::Steps(n) => n as u64,
        LocalWork::Epochs(e) => (e * rows.div_ceil(batch.max(1))) as u64,
    }
}

/// Sites that train per round, and sites that train.
fn site_sampling(fed: &Federation) -> (usize, usize) {
    (fed.sites_per_round(), fed.trainers())
}

/// Resolves `[privacy]` (calibrating noise for `target-epsilon` over every planned step)
/// and installs DP-SGD at the training sites and central DP at the server.
pub fn install(spec: &CheckedSpec, sim: &mut Simulation) -> Result<PrivacyPlan> {
    let mut plan = PrivacyPlan {
        rounds: spec.federation.rounds,
        ..PrivacyPlan::default()
    };
    let work = ward_fl::local_work(spec);
    let names = sim.federation.site_names();
    let rows = sim.federation.num_train();
    if let Some((d, noise)) = spec.dp_sgd() {
        let batch = spec.train.batch_size;
        let trains: Vec<bool> = sim.federation.roles().iter().map(|r| r.trains).collect();
        for i in 0..names.len() {
            if !trains[i] {
                continue;
            }
            let n = rows[i];
            if batch > n {
                return Err(Error::User(format!(
                    "privacy.dp-sgd: train.batch-size = {batch} exceeds site {}'s {n} training rows",
                    names[i]
                )));
            }
            let per_round = steps_per_round(work, n, batch);
            let q = batch as f64 / n as f64;
            let sigma = match noise {
                NoiseSpec::Multiplier(z) => z,
                NoiseSpec::TargetEpsilon(target) => {
                    let planned = per_round * spec.federation.rounds as u64;
                    let sampling = match d.sampling {
                        DpSamplingKind::Poisson => Accounted::Poisson,
                        DpSamplingKind::FixedSize => Accounted::WithoutReplacement,
                    };
                    accountant::calibrate_sigma(
                        kind(d.accountant),
                        target,
                        sampling,
                        q,
                        planned,
                        d.delta,
                    )
                    .map_err(|e| {
                        Error::User(format!(
                            "privacy.dp-sgd.target-epsilon: site {}: {e}",
                            names[i]
                        ))
                    })?
                }
            };
            let config = DpSgdConfig {
                clip: d.clip as f32,
                noise_multiplier: sigma,
                sampling: match d.sampling {
                    DpSamplingKind::Poisson => Sampling::Poisson,
                    DpSamplingKind::FixedSize => Sampling::FixedSize,
                },
                batch_size: batch,
                physical_batch: d.physical_batch,
            };
            sim.federation
                .enable_dp_sgd(i, config)
                .map_err(|e| Error::User(format!("privacy.dp-sgd: {e}")))?;
            plan.sites.push(SitePlan {
                index: i,
                name: names[i].clone(),
                config,
                rows: n,
                steps_per_round: per_round,
            });
        }
    }
    if let Some((c, noise)) = spec.central() {
        plan.central = Some(install_central(spec, c, noise, sim)?);
    }
    if let Some(sa) = &spec.privacy.secagg {
        let quantizer = Quantizer::new(sa.clip as f32, sa.bits, Rounding::Stochastic)
            .map_err(|e| Error::User(format!("privacy.secagg: {e}")))?;
        let settings = SecAggSettings {
            neighbours: sa.neighbours,
            threshold: sa.threshold,
            quantizer,
            prg: match sa.prg {
                SecAggPrgKind::Chacha8 => MaskPrg::ChaCha8,
                SecAggPrgKind::Chacha12 => MaskPrg::ChaCha12,
                SecAggPrgKind::Chacha20 => MaskPrg::ChaCha20,
            },
            dropout: sa.dropout,
            seed: spec.seed,
            minority_threshold: sa.allow_minority_threshold,
        };
        sim.federation
            .enable_secagg(settings)
            .map_err(|e| Error::User(format!("privacy.secagg: {e}")))?;
        let (m, _) = site_sampling(&sim.federation);
        if let Some(k) = sa.neighbours {
            let n = u32::try_from(m).unwrap_or(u32::MAX);
            match SecAggParams::recommended_neighbours(n, sa.dropout, SECAGG_FAILURE_BITS) {
                Some(rec) if k < rec => plan.warnings.push(format!(
                    "privacy.secagg.neighbours = {k} is below the {rec} that keep every neighbourhood of {m} sites at its majority threshold with dropout rate {} except with probability 2^-{SECAGG_FAILURE_BITS} (union bound over the sites of a binomial tail, after Bell et al. 2020)",
                    sa.dropout
                )),
                None if sa.dropout > 0.0 => plan.warnings.push(format!(
                    "privacy.secagg.dropout = {}: no number of neighbours keeps every neighbourhood of {m} sites at its majority threshold except with probability 2^-{SECAGG_FAILURE_BITS}",
                    sa.dropout
                )),
                _ => {}
            }
        }
        plan.secagg = Some((settings, m));
    }
    Ok(plan)
}

/// Central DP at the server: the site sampling (Poisson turned on in the federation,
/// or the fixed-size draw it already does), the noise (calibrated over every round for
/// `target-epsilon`) and the mechanism.
fn install_central(
    spec: &CheckedSpec,
    c: &CentralDpSpec,
    noise: NoiseSpec,
    sim: &mut Simulation,
) -> Result<CentralDpConfig> {
    let (m, trainers) = site_sampling(&sim.federation);
    let sampling = match c.site_sampling {
        SiteSamplingKind::Poisson => {
            let q = m as f64 / trainers as f64;
            sim.federation
                .use_poisson_sampling(q)
                .map_err(|e| Error::User(format!("privacy.central.site-sampling: {e}")))?;
            SiteSampling::Poisson { q, sites: trainers }
        }
        SiteSamplingKind::Fixed => SiteSampling::Fixed {
            per_round: m,
            sites: trainers,
        },
    };
    let z = match noise {
        NoiseSpec::Multiplier(z) => z,
        NoiseSpec::TargetEpsilon(target) => accountant::calibrate_sigma(
            kind(c.accountant),
            target,
            site_accounting(&sampling),
            sampling.rate(),
            spec.federation.rounds as u64,
            c.delta,
        )
        .map_err(|e| Error::User(format!("privacy.central.target-epsilon: {e}")))?,
    };
    let clipping = if c.adaptive {
        Clipping::Adaptive {
            initial: c.clip,
            target_quantile: c.target_quantile,
            lr: c.clip_lr,
            count_noise: c.count_noise.unwrap_or(m as f64 / 20.0),
        }
    } else {
        Clipping::Fixed { clip: c.clip }
    };
    let config = CentralDpConfig {
        clipping,
        noise_multiplier: z,
        sampling,
    };
    // A simulation: the noise comes from the (public) run seed, and the report says so.
    let dp = CentralDp::new(config, spec.seed ^ CENTRAL_STREAM)
        .map_err(|e| Error::User(format!("privacy.central: {e}")))?;
    sim.federation
        .set_mechanism(Box::new(CentralMechanism { dp }))
        .map_err(|e| Error::User(format!("privacy.central: {e}")))?;
    Ok(config)
}

/// The central-DP state of a running federation.
fn central_state(fed: &Federation) -> Result<Option<CentralDp>> {
    match fed.mechanism_state() {
        Some(b) => Ok(Some(serde_json::from_slice(b)?)),
        None => Ok(None),
    }
}

/// Why the next round must not run: `Some(message)` if it would take a site's
/// record-level epsilon, or the site-level epsilon, above its budget (assuming every
/// site runs in it, as a site sampled this round would).
pub fn budget_stop(
    spec: &ExperimentSpec,
    plan: &PrivacyPlan,
    fed: &Federation,
) -> Result<Option<String>> {
    if let Some(d) = &spec.privacy.dp_sgd
        && let Some(budget) = d.budget
    {
        let states = fed.dp_sgd_states();
        for s in &plan.sites {
            let taken = states[s.index].as_ref().map_or(0, |st| st.steps());
            let q = s.config.sample_rate(s.rows);
            let next = taken + s.steps_per_round;
            let sampling = batch_accounting(s.config.sampling);
            let e = eps(
                kind(d.accountant),
                sampling,
                s.config.noise_multiplier,
                q,
                next,
                d.delta,
            )?;
            if e.is_some_and(|e| e <= budget) {
                continue;
            }
            return Ok(Some(format!(
                "privacy budget: round {} would take site {}'s record-level epsilon to {} after {next} steps, above privacy.dp-sgd.budget = {budget} ({} accountant, delta {}); the run stops after round {}",
                fed.round() + 1,
                s.name,
                e.map_or("infinity (no noise)".to_string(), |e| format!("{e:.4}")),
                kind(d.accountant).as_str(),
                d.delta,
                fed.round()
            )));
        }
    }
    if let Some(c) = &spec.privacy.central
        && let Some(budget) = c.budget
        && let Some(config) = &plan.central
    {
        let rounds = central_state(fed)?.map_or(0, |s| s.rounds()) + 1;
        let e = eps(
            kind(c.accountant),
            site_accounting(&config.sampling),
            config.noise_multiplier,
            config.sampling.rate(),
            rounds,
            c.delta,
        )?;
        if e.is_none_or(|e| e > budget) {
            return Ok(Some(format!(
                "privacy budget: round {} would take the site-level epsilon to {} after {rounds} rounds, above privacy.central.budget = {budget} ({} accountant, delta {}); the run stops after round {}",
                fed.round() + 1,
                e.map_or("infinity (no noise)".to_string(), |e| format!("{e:.4}")),
                kind(c.accountant).as_str(),
                c.delta,
                fed.round()
            )));
        }
    }
    Ok(None)
}

/// Epsilon by each accountant (`null` where it has none: no noise, or an error, whose
/// message goes to `errors`).
#[derive(Debug, Clone, Serialize)]
pub struct Epsilons {
    rdp: Option<f64>,
    prv: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<String>,
}

fn epsilons(sampling: Accounted, sigma: f64, q: f64, steps: u64, delta: f64) -> Epsilons {
    let mut errors = Vec::new();
    let mut one = |k: AccountantKind| match eps(k, sampling, sigma, q, steps, delta) {
        Ok(e) => e,
        Err(e) => {
            errors.push(format!("{}: {e:#}", k.as_str()));
            None
        }
    };
    let rdp = one(AccountantKind::Rdp);
    let prv = one(AccountantKind::Prv);
    Epsilons { rdp, prv, errors }
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        _ => None,
    }
}

#[derive(Debug, Clone, Serialize)]
struct SiteReport {
    site: String,
    noise_multiplier: f64,
    sample_rate: f64,
    expected_batch: usize,
    training_rows: usize,
    steps: u64,
    epsilon: Epsilons,
}

/// What one guarantee covers, stated the same way for every mechanism: what a
/// neighbouring dataset differs in, how the batches or sites are drawn, which
/// accountant gives which kind of number, and what the run directory publishes.
#[derive(Debug, Clone, Serialize)]
struct Guarantee {
    /// `record` (one training row of one site) or `site` (all of one site's data).
    unit: &'static str,
    /// The neighbouring relation: add or remove one, or substitution of one.
    adjacency: &'static str,
    /// How each step's batch (record level) or each round's sites (site level) are drawn.
    sampling: String,
    /// The accountant that calibrates the noise and checks the budget.
    accountant: &'static str,
    /// What kind of number each accountant gives (a proven upper bound, or a numerical
    /// estimate with stated error).
    bound: BoundTypes,
    /// What is public alongside the guarantee (not protected by it).
    public: Vec<String>,
    /// What the run directory withholds so that the guarantee holds as stated.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    withheld: Vec<&'static str>,
    /// Where the noise comes from.
    noise_source: &'static str,
}

/// The kind of number each accountant reports.
#[derive(Debug, Clone, Serialize)]
struct BoundTypes {
    rdp: &'static str,
    prv: &'static str,
}

/// What each accountant's epsilon is, for `sampling`.
fn bound_types(sampling: Accounted) -> BoundTypes {
    BoundTypes {
        rdp: match sampling {
            Accounted::Poisson => {
                "upper bound: Renyi DP of the Poisson-subsampled Gaussian (Mironov, Talwar & Zhang 2019) converted by Balle et al. 2020"
            }
            Accounted::WithoutReplacement => {
                "upper bound: Renyi DP of the Gaussian subsampled without replacement (Wang, Balle & Kasiviswanathan 2019, Theorem 27) converted by Balle et al. 2020"
            }
        },
        prv: "numerical estimate, not a proof: privacy random variables (Gopi, Lee & Wutschitz 2021) composed on a grid; the upper estimate (eps_error 0.01 at delta - delta/1000) is reported",
    }
}

/// Simulated runs draw DP noise from the run seed.
const SEEDED_NOISE: &str = "simulation: drawn from streams of the run seed, which config.toml publishes (reproducible, but whoever holds the run directory can regenerate the noise); a deployment must seed from the operating system";

#[derive(Debug, Clone, Serialize)]
struct RecordLevel {
    guarantee: Guarantee,
    mechanism: &'static str,
    clip: f64,
    sampling: &'static str,
    physical_batch: Option<usize>,
    delta: f64,
    accountant: &'static str,
    budget: Option<f64>,
    sites: Vec<SiteReport>,
    /// Max over sites (disjoint data).
    epsilon: Epsilons,
    notes: Vec<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
struct SiteLevel {
    guarantee: Guarantee,
    mechanism: &'static str,
    clipping: &'static str,
    initial_clip: f64,
    last_clip: Option<f64>,
    min_clip: Option<f64>,
    max_clip: Option<f64>,
    next_clip: f64,
    noise_multiplier: f64,
    sum_noise_multiplier: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    count_noise: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_quantile: Option<f64>,
    site_sample_rate: f64,
    /// The fixed denominator of the released mean.
    denominator: f64,
    rounds: u64,
    delta: f64,
    accountant: &'static str,
    budget: Option<f64>,
    epsilon: Epsilons,
    notes: Vec<&'static str>,
}

/// Secure aggregation's part of the report.
#[derive(Debug, Clone, Serialize)]
struct SecureAggregation {
    guarantee: Guarantee,
    protocol: &'static str,
    /// `complete` or `k neighbours (Harary graph, relabelled each round)`.
    graph: String,
    neighbours: u32,
    threshold: u32,
    sites_per_round: usize,
    clip: f32,
    bits: u32,
    rounding: &'static str,
    prg: &'static str,
    dropout: f64,
    /// Per coordinate of the aggregate update, with every site of a round surviving:
    /// `Quantizer::error_bound(sites per round)` (the weights sum to 1).
    quantisation_error_bound: f64,
    /// The largest bound over the rounds run (dropouts divide by the survivors' weight).
    max_round_error_bound: f64,
    /// Mean bytes a selected site sent per round (postcard messages of the four stages).
    mean_up_bytes_per_site_round: f64,
    /// Values clipped to the quantiser's range, summed over sites and rounds.
    clipped_values: usize,
    rounds: Vec<SecAggRoundRecord>,
    notes: Vec<&'static str>,
}

/// The privacy report of a run (privacy.json, and `privacy` in summary.json).
#[derive(Debug, Clone, Serialize)]
pub struct PrivacyReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    record_level: Option<RecordLevel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    site_level: Option<SiteLevel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secure_aggregation: Option<SecureAggregation>,
    rounds_run: usize,
    rounds_planned: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    stopped_by_budget: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

/// Record-level DP-SGD: each site accounted over the steps it ran; the federation's
/// epsilon is the maximum over sites.
fn record_level(
    spec: &ExperimentSpec,
    d: &DpSgdSpec,
    plan: &PrivacyPlan,
    fed: &Federation,
) -> RecordLevel {
    let states = fed.dp_sgd_states();
    let mut sites = Vec::new();
    let (mut rdp, mut prv) = (Some(0.0), Some(0.0));
    let mut errors = Vec::new();
    for s in &plan.sites {
        let steps = states[s.index].as_ref().map_or(0, |st| st.steps());
        let q = s.config.sample_rate(s.rows);
        let e = epsilons(
            batch_accounting(s.config.sampling),
            s.config.noise_multiplier,
            q,
            steps,
            d.delta,
        );
        rdp = max_opt(rdp, e.rdp);
        prv = max_opt(prv, e.prv);
        errors.extend(e.errors.iter().map(|m| format!("{}: {m}", s.name)));
        sites.push(SiteReport {
            site: s.name.clone(),
            noise_multiplier: s.config.noise_multiplier,
            sample_rate: q,
            expected_batch: s.config.batch_size,
            training_rows: s.rows,
            steps,
            epsilon: e,
        });
    }
    let mut notes = vec![
        "record-level epsilon of the federation = max over sites (their data are disjoint), each site accounted over the steps it really ran",
        "no amplification by site sampling is claimed (the selection is not secret)",
        "train_loss in metrics.jsonl is a non-private diagnostic",
    ];
    if spec.federation.fine_tune_steps > 0 {
        notes.push("federation.fine-tune-steps fine-tuning is not private (its scores are local diagnostics)");
    }
    let fixed = d.sampling == DpSamplingKind::FixedSize;
    let guarantee = Guarantee {
        unit: "record: one training row of one site",
        adjacency: if fixed {
            "substitution of one record (replace one; the rows per site are public)"
        } else {
            "add or remove one record"
        },
        sampling: if fixed {
            "fixed-size: exactly batch-size rows per step, drawn without replacement; q = batch / rows".into()
        } else {
            "poisson: each row joins a step independently with q = batch / rows".into()
        },
        accountant: kind(d.accountant).as_str(),
        bound: bound_types(if fixed {
            Accounted::WithoutReplacement
        } else {
            Accounted::Poisson
        }),
        public: vec![
            "the number of training rows per site".into(),
            "the number of steps each site ran, and which rounds it trained in".into(),
            "train_loss per site and round (a non-private diagnostic)".into(),
        ],
        withheld: Vec::new(),
        noise_source: SEEDED_NOISE,
    };
    RecordLevel {
        guarantee,
        mechanism: "dp-sgd (Abadi et al. 2016): per-example clipping, Gaussian noise sigma*C on the sum, divided by the expected batch",
        clip: d.clip,
        sampling: match d.sampling {
            DpSamplingKind::Poisson => "poisson",
            DpSamplingKind::FixedSize => "fixed-size",
        },
        physical_batch: d.physical_batch,
        delta: d.delta,
        accountant: kind(d.accountant).as_str(),
        budget: d.budget,
        sites,
        epsilon: Epsilons { rdp, prv, errors },
        notes,
    }
}

/// Site-level central DP: the clip's history, the noise and the epsilon over the
/// rounds run.
fn site_level(c: &CentralDpSpec, config: &CentralDpConfig, state: &CentralDp) -> SiteLevel {
    let h = state.clip_history();
    let sampling = &config.sampling;
    let q = sampling.rate();
    let guarantee = Guarantee {
        unit: "site: all training rows of one site",
        adjacency: sampling.adjacency(),
        sampling: match *sampling {
            SiteSampling::Poisson { q, sites } => format!(
                "poisson: each of the {sites} training sites joins a round independently with q = {q}; the noisy sum is divided by the expected count q * sites = {}",
                sampling.denominator()
            ),
            SiteSampling::Fixed { per_round, sites } => format!(
                "fixed: exactly {per_round} of the {sites} training sites per round, drawn without replacement; the noisy sum is divided by {per_round}"
            ),
        },
        accountant: kind(c.accountant).as_str(),
        bound: bound_types(site_accounting(sampling)),
        public: vec![
            "the number of training sites and of training rows per site".into(),
            "the released global model after every round".into(),
            "each site's test scores of the released model, computed on its held-out test rows (those rows are not covered by the guarantee)".into(),
        ],
        withheld: vec![
            "which sites took part in each round (amplification by site sampling is claimed because this stays secret): metrics.jsonl rows read \"withheld\"",
            "each site's per-round status (accepted, rejected, failed), training loss, rows used, update norm, cosine to the aggregate and aggregation weight",
            "the count of rejected updates (summary.json rejected_updates is null)",
        ],
        noise_source: SEEDED_NOISE,
    };
    let (count_noise, target_quantile) = match config.clipping {
        Clipping::Adaptive {
            count_noise,
            target_quantile,
            ..
        } => (Some(count_noise), Some(target_quantile)),
        Clipping::Fixed { .. } => (None, None),
    };
    SiteLevel {
        guarantee,
        mechanism: "central DP for federated averaging (McMahan et al. 2018): each participating site's update clipped, Gaussian noise on the sum, divided by a fixed public denominator (adaptive clipping: centred unclipped-count bits, Andrew et al. 2021)",
        clipping: if c.adaptive {
            "adaptive (Andrew et al. 2021)"
        } else {
            "fixed"
        },
        initial_clip: c.clip,
        last_clip: h.last().copied(),
        min_clip: h.iter().copied().reduce(f64::min),
        max_clip: h.iter().copied().reduce(f64::max),
        next_clip: state.clip(),
        noise_multiplier: config.noise_multiplier,
        sum_noise_multiplier: config.sum_noise_multiplier(),
        count_noise,
        target_quantile,
        site_sample_rate: q,
        denominator: sampling.denominator(),
        rounds: state.rounds(),
        delta: c.delta,
        accountant: kind(c.accountant).as_str(),
        budget: c.budget,
        epsilon: epsilons(
            site_accounting(sampling),
            config.noise_multiplier,
            q,
            state.rounds(),
            c.delta,
        ),
        notes: vec![
            "site-level: neighbouring federations differ in one site's whole data",
            "every round releases noise, also a round in which no site took part",
            "the server (trusted curator of central DP) sees the raw updates; the guarantee covers what is released",
        ],
    }
}

/// SecAgg+'s settings and what its rounds cost.
fn secure_aggregation(settings: &SecAggSettings, m: usize, fed: &Federation) -> SecureAggregation {
    let rounds = fed.secagg_rounds().to_vec();
    let params = settings.params(m as u32, fed.global().len(), 1);
    let (bytes, count) = rounds.iter().fold((0u64, 0usize), |(b, c), r| {
        (b + r.up_bytes.values().sum::<u64>(), c + r.up_bytes.len())
    });
    let guarantee = Guarantee {
        unit: "site: its individual update",
        adjacency: "none: secure aggregation is not a differential-privacy guarantee",
        sampling: format!("{m} sites per round"),
        accountant: "none",
        bound: BoundTypes {
            rdp: "none",
            prv: "none",
        },
        public: vec![
            "the sum of the surviving sites' quantised updates (every round), and so the global model".into(),
            "which sites took part in and dropped out of each round, and the bytes each sent".into(),
            "train_loss and the count of clipped values per site (reported outside the secure sum)".into(),
        ],
        withheld: Vec::new(),
        noise_source: "no noise; keys and masks in simulation come from the run seed (reproducible, not secret)",
    };
    SecureAggregation {
        guarantee,
        protocol: "SecAgg+ (Bell et al. 2020, on Bonawitz et al. 2017): X25519 key agreement, Shamir shares encrypted with ChaCha20-Poly1305, pairwise and self masks from a ChaCha stream, dropout recovery",
        graph: if params.is_complete() {
            "complete".into()
        } else {
            format!(
                "{} neighbours (Harary graph, relabelled each round)",
                params.neighbours
            )
        },
        neighbours: params.neighbours,
        threshold: params.threshold,
        sites_per_round: m,
        clip: settings.quantizer.clip,
        bits: settings.quantizer.bits,
        rounding: "stochastic",
        prg: settings.prg.name(),
        dropout: settings.dropout,
        quantisation_error_bound: settings.quantizer.error_bound(m as u32),
        max_round_error_bound: rounds.iter().map(|r| r.error_bound).fold(0.0, f64::max),
        mean_up_bytes_per_site_round: if count == 0 {
            0.0
        } else {
            bytes as f64 / count as f64
        },
        clipped_values: rounds.iter().flat_map(|r| r.clipped_values.values()).sum(),
        rounds,
        notes: vec![
            "the server receives each site's example-weighted update only quantised and masked, and learns the sum over the survivors (honest-but-curious server and sites; see ward_privacy::secagg for the threat model)",
            "aggregate = global + sum / (survivors' weight): FedAvg over the survivors, to within the quantisation bound per coordinate",
            "the sum itself is revealed: combine with DP when it must not reveal a site either",
            "simulation: keys and masks are drawn from the run seed, the round and the site (reproducible), not from the operating system",
            "train_loss and the count of clipped values are reported by each site outside the secure sum",
        ],
    }
}

/// The report for the federation's state now.
pub fn report(
    spec: &ExperimentSpec,
    plan: &PrivacyPlan,
    fed: &Federation,
    stopped: Option<String>,
) -> Result<PrivacyReport> {
    let record_level = match &spec.privacy.dp_sgd {
        Some(d) if !plan.sites.is_empty() => Some(record_level(spec, d, plan, fed)),
        _ => None,
    };
    let site_level = match (&spec.privacy.central, &plan.central, central_state(fed)?) {
        (Some(c), Some(config), Some(state)) => Some(site_level(c, config, &state)),
        _ => None,
    };
    let secure_aggregation = plan
        .secagg
        .as_ref()
        .map(|(settings, m)| secure_aggregation(settings, *m, fed));
    Ok(PrivacyReport {
        record_level,
        site_level,
        secure_aggregation,
        rounds_run: fed.round(),
        rounds_planned: plan.rounds,
        stopped_by_budget: stopped,
        warnings: plan.warnings.clone(),
    })
}

fn fmt_eps(e: &Epsilons) -> String {
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    format!("RDP {} · PRV {}", f(e.rdp), f(e.prv))
}

impl PrivacyReport {
    /// Lines for the terminal.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(r) = &self.record_level {
            out.push(format!(
                "privacy (record-level DP-SGD, clip {}, {} sampling, delta {}): epsilon {} (max over sites; RDP: Balle et al. 2020 conversion; PRV: upper estimate)",
                r.clip,
                r.sampling,
                r.delta,
                fmt_eps(&r.epsilon)
            ));
            for s in &r.sites {
                out.push(format!(
                    "  {}: sigma {:.4}, q {:.4}, {} steps: epsilon {}",
                    s.site,
                    s.noise_multiplier,
                    s.sample_rate,
                    s.steps,
                    fmt_eps(&s.epsilon)
                ));
            }
            for e in &r.epsilon.errors {
                out.push(format!("  accountant error: {e}"));
            }
        }
        if let Some(s) = &self.site_level {
            out.push(format!(
                "privacy (site-level central DP, {} clipping, last clip {}, z {:.4}, q {:.4}, {} rounds, delta {}): epsilon {}",
                s.clipping,
                s.last_clip.map_or("-".into(), |c| format!("{c:.4}")),
                s.noise_multiplier,
                s.site_sample_rate,
                s.rounds,
                s.delta,
                fmt_eps(&s.epsilon)
            ));
            for e in &s.epsilon.errors {
                out.push(format!("  accountant error: {e}"));
            }
        }
        if let Some(s) = &self.secure_aggregation {
            let dropped: usize = s.rounds.iter().map(|r| r.dropped.len()).sum();
            out.push(format!(
                "secure aggregation (SecAgg+, {} graph, threshold {}, clip {}, {} bits): {} rounds, {dropped} site-rounds dropped, {} values clipped, aggregate within {:.3e} per coordinate, {:.0} bytes up per site and round",
                if s.graph == "complete" {
                    "complete".to_string()
                } else {
                    format!("{}-neighbour", s.neighbours)
                },
                s.threshold,
                s.clip,
                s.bits,
                s.rounds.len(),
                s.clipped_values,
                s.max_round_error_bound,
                s.mean_up_bytes_per_site_round
            ));
        }
        if let Some(m) = &self.stopped_by_budget {
            out.push(format!("stopped: {m}"));
        }
        out
    }
}
