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
use ward_secagg::{MaskPrg, Quantizer, SecAggParams, SecAggServer};

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
}

impl SecAggSettings {
    /// The public settings of round `round` with `sites` participants of vectors of
    /// length `dim`.
    pub fn params(&self, sites: u32, dim: usize, round: usize) -> SecAggParams {
        let mut p = SecAggParams::complete(sites, dim)
            .with_quantizer(self.quantizer)
            .with_prg(self.prg);
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
    let total: usize = n.iter().sum();
    let weight = |k: usize| {
        if total == 0 {
            1.0 / f64::from(m)
        } else {
            n[k] as f64 / total as f64
        }
    };
    let name = |i: usize| names[i].clone();
    let mut up = vec![0u64; selected.len()];
    let mut down = vec![0u64; selected.len()];
    // Participants still in the round, by index in the round.
    let mut live: BTreeSet<u32> = BTreeSet::new();
    let mut dropped: Vec<(u32, String)> = Vec::new();
    let mut clipped: BTreeMap<String, usize> = BTreeMap::new();
    let leave = |k: u32, why: String, records: &mut [SiteRecord], dropped: &mut Vec<_>| {
        let i = selected[k as usize];
        if settings.dropouts(m, round).contains(&k) {
            tracing::info!(round, site = records[i].site, "secure aggregation: {why}");
        } else {
            tracing::warn!(round, site = records[i].site, "secure aggregation: {why}");
        }
        records[i].status = SiteStatus::Dropped {
            reason: why.clone(),
        };
        dropped.push((k, why));
    };

    // 1. Fit: each site trains and keeps its weighted update.
    for (k, &i) in selected.iter().enumerate() {
        let sa = SecAggInstructions {
            params,
            index: k as u32,
            weight: weight(k),
        };
        match sites[i].secagg_fit(global, ins, &sa) {
            Err(e) => {
                tracing::warn!(round, site = sites[i].name(), "site failed: {e}");
                records[i].status = SiteStatus::Failed {
                    reason: e.to_string(),
                };
                dropped.push((k as u32, format!("failed to train: {e}")));
            }
            Ok(r) => {
                records[i].num_examples = Some(r.num_examples);
                records[i].train_loss = r.train_loss;
                records[i].clipped_values = Some(r.clipped_values);
                clipped.insert(name(i), r.clipped_values);
                if r.clipped_values > 0 {
                    tracing::warn!(
                        round,
                        site = sites[i].name(),
                        "secure aggregation: {} values of the weighted update were outside [-clip, clip] = +-{} and were clipped (raise privacy.secagg.clip)",
                        r.clipped_values,
                        params.quantizer.clip
                    );
                }
                live.insert(k as u32);
            }
        }
    }
    let record = |live: &BTreeSet<u32>, dropped: &[(u32, String)], up: &[u64], down: &[u64]| {
        let w: f64 = live.iter().map(|&k| weight(k as usize)).sum();
        SecAggRoundRecord {
            round,
            neighbours: params.neighbours,
            threshold: params.threshold,
            survivors: live.iter().map(|&k| name(selected[k as usize])).collect(),
            dropped: dropped
                .iter()
                .map(|(k, why)| (name(selected[*k as usize]), why.clone()))
                .collect(),
            up_bytes: (0..selected.len())
                .map(|k| (name(selected[k]), up[k]))
                .collect(),
            down_bytes: (0..selected.len())
                .map(|k| (name(selected[k]), down[k]))
                .collect(),
            clipped_values: clipped.clone(),
            survivor_weight: w,
            error_bound: if w > 0.0 {
                params.quantizer.error_bound(live.len() as u32) / w
            } else {
                0.0
            },
        }
    };
    if live.is_empty() {
        tracing::warn!(round, "no site trained this round: global model unchanged");
        return Ok(SecureOutcome {
            aggregate: None,
            aggregated: 0,
            record: record(&live, &dropped, &up, &down),
        });
    }
    let mut server = SecAggServer::new(&params)
        .map_err(fail)?
        .parallel(global.len() >= 1 << 16);

    // 2. Advertise keys.
    for k in live.clone() {
        let s = &mut sites[selected[k as usize]];
        let sent = s
            .secagg_advertise_keys()
            .and_then(|msg| wire(&msg, &mut up[k as usize]));
        let why = match sent.map(|msg| server.receive_keys(k, msg)) {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        live.remove(&k);
        leave(k, format!("advertising keys: {why}"), records, &mut dropped);
    }

    // 3. Share keys.
    let keys = server.broadcast_keys().map_err(fail)?;
    for (k, msg) in keys {
        if !live.contains(&k) {
            continue;
        }
        let s = &mut sites[selected[k as usize]];
        let sent = wire(&msg, &mut down[k as usize])
            .and_then(|msg| s.secagg_share_keys(&msg))
            .and_then(|reply| wire(&reply, &mut up[k as usize]));
        let why = match sent.map(|reply| server.receive_shares(k, reply)) {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        live.remove(&k);
        leave(k, format!("sharing keys: {why}"), records, &mut dropped);
    }
    // Simulated dropouts: these sites leave after sharing keys.
    for k in settings.dropouts(m, round) {
        if live.remove(&k) {
            leave(
                k,
                "dropped after sharing keys (simulated: privacy.secagg.dropout)".into(),
                records,
                &mut dropped,
            );
        }
    }

    // 4. Masked input.
    let forwarded = server.forward_shares().map_err(fail)?;
    for (k, msg) in forwarded {
        if !live.contains(&k) {
            continue;
        }
        let s = &mut sites[selected[k as usize]];
        let sent = wire(&msg, &mut down[k as usize])
            .and_then(|msg| s.secagg_masked_input(&msg))
            .and_then(|reply| wire(&reply, &mut up[k as usize]));
        let why = match sent.map(|reply| server.receive_masked(k, reply)) {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        live.remove(&k);
        leave(
            k,
            format!("masking its update: {why}"),
            records,
            &mut dropped,
        );
    }

    // 5. Unmask. A survivor that fails here is still in the sum (its masked input
    // arrived); the others' shares rebuild what is needed.
    let requests = server.unmask_requests().map_err(fail)?;
    for (k, msg) in requests {
        let s = &mut sites[selected[k as usize]];
        let sent = wire(&msg, &mut down[k as usize])
            .and_then(|msg| s.secagg_unmask(&msg))
            .and_then(|reply| wire(&reply, &mut up[k as usize]));
        let why = match sent.map(|reply| server.receive_unmask(k, reply)) {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        tracing::warn!(
            round,
            site = sites[selected[k as usize]].name(),
            "secure aggregation: no unmask answer: {why}"
        );
    }
    let out = server.finish().map_err(fail)?;
    let survivors: BTreeSet<u32> = out.survivors.iter().copied().collect();
    debug_assert_eq!(survivors, live);
    let w: f64 = survivors.iter().map(|&k| weight(k as usize)).sum();
    for &k in &survivors {
        records[selected[k as usize]].status = SiteStatus::Accepted;
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
        record: record(&survivors, &dropped, &up, &down),
    })
}
