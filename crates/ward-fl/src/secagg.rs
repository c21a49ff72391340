//! Secure aggregation in the round engine: SecAgg+ (`ward_secagg`) over the
//! [`SiteHandle`] protocol steps.
//!
//! A secure round, with `m` selected sites numbered `0..m` in site order:
//!
//! 1. **Fit** ([`SiteHandle::secagg_fit`]): the server sends the global model, the
//!    round's [`SecAggParams`] and each site's FedAvg weight `w_i = n_i / sum of n` over
//!    the selected sites (training examples are public). The site trains and keeps
//!    `w_i (local - global)` to itself; it answers with its example count, its training
//!    loss and how many coordinates fell outside the quantiser's range.
//! 2. **Advertise keys**, 3. **share keys**, 4. **masked input**, 5. **unmask**: the
//!    library's messages, each encoded with `postcard` by its sender and decoded by its
//!    receiver (the bytes are counted per site), routed by the server
//!    ([`ward_secagg::SecAggServer`]).
//!
//! The server gets the sum `S` of the survivors' weighted updates (survivors: sites whose
//! masked input arrived) and sets the aggregate to `global + S / W`, `W` the survivors'
//! total weight: the survivors' example-weighted mean update (FedAvg over them), to
//! within [`Quantizer::error_bound`]`(survivors) / W` per coordinate. The server
//! optimizer then steps as usual. A site that fails a step before its masked input is a
//! dropout (the protocol removes its masks); in simulation
//! [`SecAggSettings::dropout`] of the sites drop after sharing keys on purpose. Too many
//! dropouts for the threshold fail the round with [`FlError::SecAgg`] carrying the
//! library's [`SecAggError::Dropouts`].
//!
//! Everything random is drawn from the run seed, the round and the site, so a round
//! repeats bit for bit and a resumed run continues exactly.

use std::collections::{BTreeMap, BTreeSet};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use ward_core::Params;
use ward_secagg::SecAggError;
use ward_secagg::{MaskPrg, Quantizer, SecAggOutput, SecAggParams, SecAggServer};

use crate::FlError;
use crate::federation::{SiteRecord, SiteStatus};
use crate::site::{FitInstructions, SiteHandle};

/// ChaCha stream of the run seed for the graph relabelling and the simulated dropouts
/// (one sub-stream per round).
const SECAGG_STREAM: u64 = 0x5EC_A66;

/// Secure aggregation's settings for a federation (resolved from `[privacy.secagg]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SecAggSettings {
    /// Neighbours of each site in the communication graph; `None`: the complete graph.
    pub neighbours: Option<u32>,
    /// Shamir threshold; `None`: the majority of a neighbourhood
    /// ([`SecAggParams::majority`]).
    pub threshold: Option<u32>,
    /// Quantisation of what a site sends (clip range, bits, rounding).
    pub quantizer: Quantizer,
    /// Mask generator.
    pub prg: MaskPrg,
    /// Simulation only: the fraction of each round's sites (rounded down) that drop
    /// after sharing keys, chosen from `seed` and the round.
    pub dropout: f64,
    /// The run seed (graph relabelling, simulated dropouts).
    pub seed: u64,
    /// Accept `2 * threshold <= neighbours + 1` (see
    /// [`SecAggParams::minority_threshold`]).
    pub minority_threshold: bool,
}

impl SecAggSettings {
    /// The public settings of round `round` with `sites` participants of vectors of
    /// length `dim`.
    pub fn params(&self, sites: u32, dim: usize, round: usize) -> SecAggParams {
        let mut p = SecAggParams::complete(sites, dim)
            .with_quantizer(self.quantizer)
            .with_prg(self.prg)
            .allowing_minority_threshold(self.minority_threshold);
        if let Some(k) = self.neighbours {
            p = p.with_neighbours(k);
        }
        if let Some(t) = self.threshold {
            p = p.with_threshold(t);
        }
        let graph_seed = rand::Rng::next_u64(&mut self.round_rng(round));
        p.with_round(round as u64, graph_seed)
    }

    /// The round's random stream: first the graph seed, then the dropout order.
    fn round_rng(&self, round: usize) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ SECAGG_STREAM);
        rng.set_stream(round as u64);
        rng
    }

    /// The participants (indices `0..sites`) that drop after sharing keys in `round`:
    /// `floor(dropout * sites)` of them, in a seeded random order, sorted.
    pub fn dropouts(&self, sites: u32, round: usize) -> Vec<u32> {
        let count = (self.dropout * f64::from(sites)).floor() as usize;
        let mut rng = self.round_rng(round);
        let _graph_seed = rand::Rng::next_u64(&mut rng);
        let mut order: Vec<u32> = (0..sites).collect();
        order.shuffle(&mut rng);
        let mut out: Vec<u32> = order.into_iter().take(count).collect();
        out.sort_unstable();
        out
    }
}

/// What the server tells a site about its part in one secure round.
#[derive(Debug, Clone, PartialEq)]
pub struct SecAggInstructions {
    /// The round's public settings (its `round` is the federation's round).
    pub params: SecAggParams,
    /// This site's number in the round (`0..params.sites`).
    pub index: u32,
    /// The site's FedAvg weight in the round: its training examples over the selected
    /// sites' total. It sends `weight * (local - global)`.
    pub weight: f64,
}

/// A site's answer to [`SiteHandle::secagg_fit`]: public facts about its training, not
/// its update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecAggFitReport {
    /// Training examples (FedAvg's weight; public).
    pub num_examples: usize,
    /// Mean local training loss (a diagnostic sent outside the secure sum).
    pub train_loss: Option<f64>,
    /// Coordinates of the weighted update outside `[-clip, clip]`, clipped before
    /// quantisation.
    pub clipped_values: usize,
}

/// What one secure round did, for the privacy report (checkpointed with the server).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecAggRoundRecord {
    /// The round (from 1).
    pub round: usize,
    /// Neighbours of each site in this round's graph.
    pub neighbours: u32,
    /// Shamir threshold.
    pub threshold: u32,
    /// Sites whose masked input is in the sum.
    pub survivors: Vec<String>,
    /// Sites that took part but whose masked input is not in the sum (simulated or
    /// real dropouts, failed fits), with the reason.
    pub dropped: Vec<(String, String)>,
    /// Bytes each selected site sent (`postcard` messages of the four stages).
    pub up_bytes: BTreeMap<String, u64>,
    /// Bytes each selected site received.
    pub down_bytes: BTreeMap<String, u64>,
    /// Values each site that trained clipped to the quantiser's range (its own count).
    pub clipped_values: BTreeMap<String, usize>,
    /// The survivors' total weight `W`.
    pub survivor_weight: f64,
    /// Bound on each coordinate's error of the aggregate update (`S / W` against the
    /// survivors' exact weighted mean of the clipped updates):
    /// `Quantizer::error_bound(survivors) / W`, before the final `f32` rounding.
    pub error_bound: f64,
}

/// Sends `msg` over the stand-in wire: encodes and decodes it, counting its bytes.
fn wire<T: Serialize + DeserializeOwned>(msg: &T, bytes: &mut u64) -> Result<T, FlError> {
    let b = postcard::to_allocvec(msg)
        .map_err(|e| FlError::Config(format!("secure aggregation: encoding a message: {e}")))?;
    *bytes += b.len() as u64;
    postcard::from_bytes(&b)
        .map_err(|e| FlError::Config(format!("secure aggregation: decoding a message: {e}")))
}

/// What [`secure_round`] gives the round engine.
pub(crate) struct SecureOutcome {
    /// The aggregate model `global + S / W` (None: no masked input, the model stays).
    pub(crate) aggregate: Option<Params>,
    /// Updates in the sum.
    pub(crate) aggregated: usize,
    /// The round's record.
    pub(crate) record: SecAggRoundRecord,
}

/// Runs one secure round over `sites[selected]`, filling their `records`.
pub(crate) fn secure_round(
    sites: &mut [Box<dyn SiteHandle>],
    selected: &[usize],
    settings: &SecAggSettings,
    global: &Params,
    ins: &FitInstructions,
    round: usize,
    records: &mut [SiteRecord],
) -> Result<SecureOutcome, FlError> {
    let names: Vec<String> = sites.iter().map(|s| s.name().to_string()).collect();
    let fail = |source: SecAggError| FlError::SecAgg {
        round,
        source,
        sites: selected.iter().map(|&i| names[i].clone()).collect(),
    };
    let m = selected.len() as u32;
    let params = settings.params(m, global.len(), round);
    params.validate().map_err(fail)?;
    let n: Vec<usize> = selected.iter().map(|&i| sites[i].num_train()).collect();
    let mut state = RoundState::new(selected, settings, params, round, &names, &n);

    // 1. Fit: each site trains and keeps its weighted update.
    state.fit(sites, global, ins, records);
    if state.live.is_empty() {
        tracing::warn!(round, "no site trained this round: global model unchanged");
        return Ok(SecureOutcome {
            aggregate: None,
            aggregated: 0,
            record: state.record(&state.live),
        });
    }
    let mut server = SecAggServer::new(&params)
        .map_err(fail)?
        .parallel(global.len() >= 1 << 16);
    // 2. Advertise keys.
    state.advertise_keys(sites, &mut server, records);
    // 3. Share keys.
    state
        .share_keys(sites, &mut server, records)
        .map_err(fail)?;
    // Simulated dropouts: these sites leave after sharing keys.
    state.simulated_dropouts(records);
    // 4. Masked input.
    state
        .masked_inputs(sites, &mut server, records)
        .map_err(fail)?;
    // 5. Unmask.
    state.unmask(sites, &mut server).map_err(fail)?;
    let out = server.finish().map_err(fail)?;
    state.aggregate(&out, global, records)
}

/// The state of one secure round: who is still in it, who left and why, and the bytes
/// each participant sent and received. Participants are numbered `0..m` in site order
/// (`selected[k]` is participant `k`'s site).
struct RoundState<'a> {
    /// The selected sites' indices.
    selected: &'a [usize],
    /// The federation's secure-aggregation settings.
    settings: &'a SecAggSettings,
    /// The round's public settings.
    params: SecAggParams,
    /// The round (from 1).
    round: usize,
    /// Every site's name, by site index.
    names: &'a [String],
    /// Training examples of each participant.
    n: &'a [usize],
    /// The selected sites' total training examples.
    total: usize,
    /// Bytes each participant sent.
    up: Vec<u64>,
    /// Bytes each participant received.
    down: Vec<u64>,
    /// Participants still in the round.
    live: BTreeSet<u32>,
    /// Participants that left, with the reason.
    dropped: Vec<(u32, String)>,
    /// Values each site that trained clipped, by site name.
    clipped: BTreeMap<String, usize>,
}

impl<'a> RoundState<'a> {
    /// A round over `selected` before any step.
    fn new(
        selected: &'a [usize],
        settings: &'a SecAggSettings,
        params: SecAggParams,
        round: usize,
        names: &'a [String],
        n: &'a [usize],
    ) -> Self {
        Self {
            selected,
            settings,
            params,
            round,
            names,
            n,
            total: n.iter().sum(),
            up: vec![0u64; selected.len()],
            down: vec![0u64; selected.len()],
            live: BTreeSet::new(),
            dropped: Vec::new(),
            clipped: BTreeMap::new(),
        }
    }

    /// Participants in the round.
    fn m(&self) -> u32 {
        self.selected.len() as u32
    }

    /// Participant `k`'s FedAvg weight: its share of the training examples (equal
    /// shares when no site has any).
    fn weight(&self, k: usize) -> f64 {
        if self.total == 0 {
            1.0 / f64::from(self.m())
        } else {
            self.n[k] as f64 / self.total as f64
        }
    }

    /// The name of site `i` (a site index, not a participant number).
    fn name(&self, i: usize) -> String {
        self.names[i].clone()
    }

    /// Participant `k` leaves the round for reason `why` (logged as info for a simulated
    /// dropout, else as a warning); its record says it dropped.
    fn leave(&mut self, k: u32, why: String, records: &mut [SiteRecord]) {
        let round = self.round;
        let i = self.selected[k as usize];
        if self.settings.dropouts(self.m(), round).contains(&k) {
            tracing::info!(round, site = records[i].site, "secure aggregation: {why}");
        } else {
            tracing::warn!(round, site = records[i].site, "secure aggregation: {why}");
        }
        records[i].status = SiteStatus::Dropped {
            reason: why.clone(),
        };
        self.dropped.push((k, why));
    }

    /// Step 1: each site trains and keeps its weighted update; those that do are live.
    fn fit(
        &mut self,
        sites: &mut [Box<dyn SiteHandle>],
        global: &Params,
        ins: &FitInstructions,
        records: &mut [SiteRecord],
    ) {
        let round = self.round;
        for (k, &i) in self.selected.iter().enumerate() {
            let sa = SecAggInstructions {
                params: self.params,
                index: k as u32,
                weight: self.weight(k),
            };
            match sites[i].secagg_fit(global, ins, &sa) {
                Err(e) => {
                    tracing::warn!(round, site = sites[i].name(), "site failed: {e}");
                    records[i].status = SiteStatus::Failed {
                        reason: e.to_string(),
                    };
                    self.dropped
                        .push((k as u32, format!("failed to train: {e}")));
                }
                Ok(r) => {
                    records[i].num_examples = Some(r.num_examples);
                    records[i].train_loss = r.train_loss;
                    records[i].clipped_values = Some(r.clipped_values);
                    self.clipped.insert(self.name(i), r.clipped_values);
                    if r.clipped_values > 0 {
                        tracing::warn!(
                            round,
                            site = sites[i].name(),
                            "secure aggregation: {} values of the weighted update were outside [-clip, clip] = +-{} and were clipped (raise privacy.secagg.clip)",
                            r.clipped_values,
                            self.params.quantizer.clip
                        );
                    }
                    self.live.insert(k as u32);
                }
            }
        }
    }

    /// Step 2: each live participant advertises its keys; one that fails leaves.
    fn advertise_keys(
        &mut self,
        sites: &mut [Box<dyn SiteHandle>],
        server: &mut SecAggServer,
        records: &mut [SiteRecord],
    ) {
        for k in self.live.clone() {
            let s = &mut sites[self.selected[k as usize]];
            let sent = s
                .secagg_advertise_keys()
                .and_then(|msg| wire(&msg, &mut self.up[k as usize]));
            let why = match sent.map(|msg| server.receive_keys(k, msg)) {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            };
            self.live.remove(&k);
            self.leave(k, format!("advertising keys: {why}"), records);
        }
    }

    /// Step 3: the server sends each live participant its neighbours' keys and gets its
    /// shares back; one that fails leaves. `Err`: the server could not broadcast.
    fn share_keys(
        &mut self,
        sites: &mut [Box<dyn SiteHandle>],
        server: &mut SecAggServer,
        records: &mut [SiteRecord],
    ) -> Result<(), SecAggError> {
        let keys = server.broadcast_keys()?;
        for (k, msg) in keys {
            if !self.live.contains(&k) {
                continue;
            }
            let sent = self.exchange(
                sites,
                k,
                &msg,
                |s, m| s.secagg_share_keys(m),
                |k, r| server.receive_shares(k, r),
            );
            if let Err(why) = sent {
                self.live.remove(&k);
                self.leave(k, format!("sharing keys: {why}"), records);
            }
        }
        Ok(())
    }

    /// The simulated dropouts of the round that are still live leave after sharing keys.
    fn simulated_dropouts(&mut self, records: &mut [SiteRecord]) {
        for k in self.settings.dropouts(self.m(), self.round) {
            if self.live.remove(&k) {
                self.leave(
                    k,
                    "dropped after sharing keys (simulated: privacy.secagg.dropout)".into(),
                    records,
                );
            }
        }
    }

    /// Step 4: each live participant gets its forwarded shares and sends its masked
    /// input; one that fails leaves. `Err`: the server could not forward the shares.
    fn masked_inputs(
        &mut self,
        sites: &mut [Box<dyn SiteHandle>],
        server: &mut SecAggServer,
        records: &mut [SiteRecord],
    ) -> Result<(), SecAggError> {
        let forwarded = server.forward_shares()?;
        for (k, msg) in forwarded {
            if !self.live.contains(&k) {
                continue;
            }
            let sent = self.exchange(
                sites,
                k,
                &msg,
                |s, m| s.secagg_masked_input(m),
                |k, r| server.receive_masked(k, r),
            );
            if let Err(why) = sent {
                self.live.remove(&k);
                self.leave(k, format!("masking its update: {why}"), records);
            }
        }
        Ok(())
    }

    /// One exchange with participant `k`: `msg` goes over the (simulated) wire, the site
    /// answers with `ask`, the answer comes back over the wire and the server takes it
    /// with `give`; bytes are counted both ways. `Err` says why it failed.
    fn exchange<Q, R>(
        &mut self,
        sites: &mut [Box<dyn SiteHandle>],
        k: u32,
        msg: &Q,
        ask: impl FnOnce(&mut dyn SiteHandle, &Q) -> Result<R, FlError>,
        give: impl FnOnce(u32, R) -> Result<(), SecAggError>,
    ) -> Result<(), String>
    where
        Q: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let s = sites[self.selected[k as usize]].as_mut();
        let reply = wire(msg, &mut self.down[k as usize])
            .and_then(|msg| ask(s, &msg))
            .and_then(|reply| wire(&reply, &mut self.up[k as usize]))
            .map_err(|e| e.to_string())?;
        give(k, reply).map_err(|e| e.to_string())
    }

    /// Step 5: the server asks for the shares that unmask the sum. A survivor that fails
    /// here is still in the sum (its masked input arrived); the others' shares rebuild
    /// what is needed. `Err`: the server could not make its requests.
    fn unmask(
        &mut self,
        sites: &mut [Box<dyn SiteHandle>],
        server: &mut SecAggServer,
    ) -> Result<(), SecAggError> {
        let requests = server.unmask_requests()?;
        for (k, msg) in requests {
            let sent = self.exchange(
                sites,
                k,
                &msg,
                |s, m| s.secagg_unmask(m),
                |k, r| server.receive_unmask(k, r),
            );
            let Err(why) = sent else { continue };
            tracing::warn!(
                round = self.round,
                site = sites[self.selected[k as usize]].name(),
                "secure aggregation: no unmask answer: {why}"
            );
        }
        Ok(())
    }

    /// The aggregate `global + S / W` from the server's output; the survivors' records
    /// say they were accepted.
    fn aggregate(
        &self,
        out: &SecAggOutput,
        global: &Params,
        records: &mut [SiteRecord],
    ) -> Result<SecureOutcome, FlError> {
        let survivors: BTreeSet<u32> = out.survivors.iter().copied().collect();
        debug_assert_eq!(survivors, self.live);
        let w: f64 = survivors.iter().map(|&k| self.weight(k as usize)).sum();
        for &k in &survivors {
            records[self.selected[k as usize]].status = SiteStatus::Accepted;
        }
        let values = global
            .values()
            .iter()
            .zip(&out.sum)
            .map(|(&g, &s)| (f64::from(g) + f64::from(s) / w) as f32)
            .collect();
        let aggregate = Params::new(global.layout().clone(), values)?;
        Ok(SecureOutcome {
            aggregate: Some(aggregate),
            aggregated: survivors.len(),
            record: self.record(&survivors),
        })
    }

    /// The round's record with `survivors` in the sum.
    fn record(&self, survivors: &BTreeSet<u32>) -> SecAggRoundRecord {
        let w: f64 = survivors.iter().map(|&k| self.weight(k as usize)).sum();
        let name = |k: usize| self.name(self.selected[k]);
        SecAggRoundRecord {
            round: self.round,
            neighbours: self.params.neighbours,
            threshold: self.params.threshold,
            survivors: survivors.iter().map(|&k| name(k as usize)).collect(),
            dropped: self
                .dropped
                .iter()
                .map(|(k, why)| (name(*k as usize), why.clone()))
                .collect(),
            up_bytes: (0..self.selected.len())
                .map(|k| (name(k), self.up[k]))
                .collect(),
            down_bytes: (0..self.selected.len())
                .map(|k| (name(k), self.down[k]))
                .collect(),
            clipped_values: self.clipped.clone(),
            survivor_weight: w,
            error_bound: if w > 0.0 {
                self.params.quantizer.error_bound(survivors.len() as u32) / w
            } else {
                0.0
            },
        }
    }
}
