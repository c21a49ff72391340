//! [`run_round`]: one whole SecAgg+ round in this process, with chosen dropouts, every
//! message sent through `postcard` (encoded by its sender, decoded by its receiver), and
//! the time and the bytes of each stage measured. Used by the tests and by
//! `ward bench secagg`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::client::SecAggClient;
use super::graph::CommunicationGraph;
use super::params::SecAggParams;
use super::server::{SecAggOutput, SecAggServer};
use crate::SecAggError;

/// When a site leaves the round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DropPoint {
    /// Before advertising keys: it never takes part.
    BeforeKeys,
    /// After advertising keys, before sharing them.
    AfterKeys,
    /// After sharing keys, before sending its masked input: the server must remove its
    /// pairwise masks (the costly case; the one the Flower anchor measures).
    AfterShares,
    /// After sending its masked input, before answering the unmask request.
    AfterMaskedInput,
}

/// Settings of the driver (not of the protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundOptions {
    /// Seed of the sites' key material (each site gets its own ChaCha20 stream).
    pub seed: u64,
    /// Mask expansion and per-neighbour key agreement on the rayon pool.
    pub parallel: bool,
}

impl Default for RoundOptions {
    fn default() -> Self {
        Self {
            seed: 0,
            parallel: true,
        }
    }
}

/// Time and traffic of one stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageStats {
    /// `advertise_keys`, `share_keys`, `masked_input` or `unmask`.
    pub name: &'static str,
    /// Wall time of the stage (sites one after another, then the server), transport
    /// included.
    pub wall_s: f64,
    /// Sum of the sites' compute.
    pub sites_s: f64,
    /// The slowest site's compute.
    pub site_max_s: f64,
    /// The server's compute.
    pub server_s: f64,
    /// Encoding and decoding the messages.
    pub transport_s: f64,
    /// Bytes sent by sites to the server.
    pub up_bytes: u64,
    /// Bytes sent by the server to sites.
    pub down_bytes: u64,
}

/// What a round gave and cost.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundReport {
    /// The server's result.
    pub output: SecAggOutput,
    /// Wall time of the four stages together (inputs are made outside it).
    pub wall_s: f64,
    /// The four stages.
    pub stages: Vec<StageStats>,
    /// Bytes each site sent (`postcard` messages), by site.
    pub up_bytes: Vec<u64>,
    /// Bytes each site received, by site.
    pub down_bytes: Vec<u64>,
}

impl RoundReport {
    /// Mean bytes sent by a site that finished the round.
    pub fn up_bytes_per_survivor(&self) -> f64 {
        mean(
            self.output
                .survivors
                .iter()
                .map(|&s| self.up_bytes[s as usize]),
        )
    }

    /// Mean bytes received by a site that finished the round.
    pub fn down_bytes_per_survivor(&self) -> f64 {
        mean(
            self.output
                .survivors
                .iter()
                .map(|&s| self.down_bytes[s as usize]),
        )
    }

    /// Sum of all sites' compute over the round.
    pub fn sites_s(&self) -> f64 {
        self.stages.iter().map(|s| s.sites_s).sum()
    }

    /// The server's compute over the round.
    pub fn server_s(&self) -> f64 {
        self.stages.iter().map(|s| s.server_s).sum()
    }
}

fn mean(it: impl Iterator<Item = u64>) -> f64 {
    let (mut s, mut n) = (0f64, 0usize);
    for v in it {
        s += v as f64;
        n += 1;
    }
    if n == 0 { 0.0 } else { s / n as f64 }
}

/// Sends `msg` over the stand-in wire: encodes and decodes it, counting bytes and time.
fn wire<T: Serialize + DeserializeOwned>(
    msg: &T,
    bytes: &mut u64,
    secs: &mut f64,
) -> Result<T, SecAggError> {
    let t = Instant::now();
    let b = postcard::to_allocvec(msg)
        .map_err(|e| SecAggError::protocol(format!("encoding a message: {e}")))?;
    let back = postcard::from_bytes(&b)
        .map_err(|e| SecAggError::protocol(format!("decoding a message: {e}")))?;
    *secs += t.elapsed().as_secs_f64();
    *bytes += b.len() as u64;
    Ok(back)
}

/// Each site's key seed: 32 bytes of its own ChaCha20 stream of `seed`.
fn site_seed(seed: u64, site: u32) -> [u8; 32] {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    rng.set_stream(u64::from(site) + 1);
    let mut s = [0u8; 32];
    rng.fill_bytes(&mut s);
    s
}

/// Per-stage bookkeeping.
struct Meter {
    stats: StageStats,
    start: Instant,
}

impl Meter {
    fn new(name: &'static str) -> Self {
        Self {
            stats: StageStats {
                name,
                wall_s: 0.0,
                sites_s: 0.0,
                site_max_s: 0.0,
                server_s: 0.0,
                transport_s: 0.0,
                up_bytes: 0,
                down_bytes: 0,
            },
            start: Instant::now(),
        }
    }

    fn site<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let r = f();
        let s = t.elapsed().as_secs_f64();
        self.stats.sites_s += s;
        self.stats.site_max_s = self.stats.site_max_s.max(s);
        r
    }

    fn server<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let r = f();
        self.stats.server_s += t.elapsed().as_secs_f64();
        r
    }

    /// Ends the stage; returns the wall time outside `excluded` seconds.
    fn done(mut self, excluded: f64) -> StageStats {
        self.stats.wall_s = self.start.elapsed().as_secs_f64() - excluded;
        self.stats
    }
}

/// Runs one round for `params.sites` sites, site `i`'s update being `input(i)` (called
/// once per site that sends a masked input, outside the timing), with the sites of
/// `dropouts` leaving at the given points.
///
/// # Errors
/// Any protocol error: too many dropouts ([`SecAggError::Dropouts`]), an input
/// of the wrong length or with NaN values, parameter errors.
pub fn run_round(
    params: &SecAggParams,
    dropouts: &BTreeMap<u32, DropPoint>,
    opts: &RoundOptions,
    input: impl Fn(u32) -> Vec<f32>,
) -> Result<RoundReport, SecAggError> {
    params.validate()?;
    let n = params.sites as usize;
    let live = |site: u32, point: DropPoint| dropouts.get(&site).is_none_or(|&d| d > point);
    let mut server = SecAggServer::new(params)?.parallel(opts.parallel);
    let mut clients: Vec<SecAggClient> = (0..params.sites)
        .map(|s| Ok(SecAggClient::new(params, s, site_seed(opts.seed, s))?.parallel(opts.parallel)))
        .collect::<Result<_, SecAggError>>()?;
    let mut up = vec![0u64; n];
    let mut down = vec![0u64; n];
    let mut stages = Vec::with_capacity(4);
    let round_start = Instant::now();

    // Stage 1: advertise keys.
    let mut m = Meter::new("advertise_keys");
    for c in clients
        .iter_mut()
        .filter(|c| live(c.site(), DropPoint::BeforeKeys))
    {
        let s = c.site();
        let msg = m.site(|| c.advertise_keys())?;
        let msg = wire(&msg, &mut up[s as usize], &mut m.stats.transport_s)?;
        m.server(|| server.receive_keys(s, msg))?;
    }
    stages.push(m.done(0.0));

    // Stage 2: share keys.
    let mut m = Meter::new("share_keys");
    let keys = m.server(|| server.broadcast_keys())?;
    for (&s, msg) in &keys {
        let msg = wire(msg, &mut down[s as usize], &mut m.stats.transport_s)?;
        if live(s, DropPoint::AfterKeys) {
            let reply = m.site(|| clients[s as usize].share_keys(&msg))?;
            let reply = wire(&reply, &mut up[s as usize], &mut m.stats.transport_s)?;
            m.server(|| server.receive_shares(s, reply))?;
        }
    }
    stages.push(m.done(0.0));

    // Stage 3: masked input.
    let mut m = Meter::new("masked_input");
    let mut excluded = 0.0;
    let forwarded = m.server(|| server.forward_shares())?;
    for (&s, msg) in &forwarded {
        let msg = wire(msg, &mut down[s as usize], &mut m.stats.transport_s)?;
        if live(s, DropPoint::AfterShares) {
            let t = Instant::now();
            let x = input(s);
            excluded += t.elapsed().as_secs_f64();
            let reply = m.site(|| clients[s as usize].masked_input(&msg, &x))?;
            drop(x);
            let reply = wire(&reply, &mut up[s as usize], &mut m.stats.transport_s)?;
            m.server(|| server.receive_masked(s, reply))?;
        }
    }
    stages.push(m.done(excluded));

    // Stage 4: unmask.
    let mut m = Meter::new("unmask");
    let requests = m.server(|| server.unmask_requests())?;
    for (&s, msg) in &requests {
        let msg = wire(msg, &mut down[s as usize], &mut m.stats.transport_s)?;
        if live(s, DropPoint::AfterMaskedInput) {
            let reply = m.site(|| clients[s as usize].unmask(&msg))?;
            let reply = wire(&reply, &mut up[s as usize], &mut m.stats.transport_s)?;
            m.server(|| server.receive_unmask(s, reply))?;
        }
    }
    let output = m.server(|| server.finish())?;
    stages.push(m.done(0.0));
    let wall_s = round_start.elapsed().as_secs_f64() - excluded;
    Ok(RoundReport {
        output,
        wall_s,
        stages,
        up_bytes: up,
        down_bytes: down,
    })
}

/// Picks `count` sites to drop, as the Flower anchor does: in a seeded random order,
/// a site is taken only if afterwards every site still has at least `threshold` live
/// members in its neighbourhood (itself included), so the round can finish; and, beyond
/// the anchor, only if the remaining sites stay connected (a split round is aborted, see
/// [`SecAggError::Disconnected`]).
///
/// # Errors
/// Parameter errors.
pub fn choose_dropouts(
    params: &SecAggParams,
    count: usize,
    seed: u64,
) -> Result<Vec<u32>, SecAggError> {
    let g = CommunicationGraph::new(params)?;
    let t = params.threshold as usize;
    let mut order: Vec<u32> = (0..params.sites).collect();
    order.shuffle(&mut ChaCha20Rng::seed_from_u64(seed));
    let mut dropped = BTreeSet::new();
    for c in order {
        if dropped.len() == count {
            break;
        }
        dropped.insert(c);
        let ok = (0..params.sites).all(|v| {
            let alive = g
                .neighbours(v)
                .iter()
                .filter(|w| !dropped.contains(*w))
                .count()
                + usize::from(!dropped.contains(&v));
            alive >= t
        }) && g.connected_without(&dropped);
        if !ok {
            dropped.remove(&c);
        }
    }
    Ok(dropped.into_iter().collect())
}
