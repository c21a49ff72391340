//! [`SecAggServer`]: the server's side of a SecAgg+ round.

use std::collections::{BTreeMap, BTreeSet};

use curve25519_dalek::Scalar;
use rayon::prelude::*;
use x25519_dalek::PublicKey;

use super::crypto::{self, Mask};
use super::graph::{CommunicationGraph, check_site};
use super::messages::{
    AdvertiseKeys, EncryptedShares, ForwardedShares, MaskedInput, NeighbourKeys, RevealedShare,
    ShareKeys, SiteKeys, UnmaskRequest, UnmaskResponse,
};
use super::params::SecAggParams;
use crate::SecAggError;

/// Largest share ciphertext accepted: the postcard payload (at most 74 bytes) and the
/// 16-byte tag, with room to spare.
const MAX_CIPHERTEXT: usize = 256;

/// Where the server is in the round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Keys,
    Shares,
    Masked,
    Unmask,
    Done,
}

/// The result of a round: the sum of the survivors' updates.
#[derive(Debug, Clone, PartialEq)]
pub struct SecAggOutput {
    /// The sum of the surviving sites' (clipped, quantised) updates, dequantised.
    pub sum: Vec<f32>,
    /// Sites whose masked input is in the sum, sorted.
    pub survivors: Vec<u32>,
    /// Sites that shared keys but sent no masked input (their masks were removed).
    pub dropped: Vec<u32>,
}

/// The server's state machine for one round. Feed it each stage's messages with
/// `receive_*` (the sender as the transport authenticated it), then close the stage with
/// the next call ([`broadcast_keys`](Self::broadcast_keys),
/// [`forward_shares`](Self::forward_shares), [`unmask_requests`](Self::unmask_requests),
/// [`finish`](Self::finish)); sites that did not answer by then count as dropped.
///
/// It never asks for, and refuses to store, both the self-mask-seed shares and the
/// mask-key shares of one site.
#[derive(Debug)]
pub struct SecAggServer {
    params: SecAggParams,
    graph: CommunicationGraph,
    stage: Stage,
    /// U1: sites that advertised keys.
    keys: BTreeMap<u32, SiteKeys>,
    /// U2: sites that shared keys, with their ciphertexts.
    shares: BTreeMap<u32, Vec<EncryptedShares>>,
    /// For each site of U2, its neighbours in U2 (the sites it masked with).
    partners: BTreeMap<u32, Vec<u32>>,
    /// U3: sites whose masked input arrived.
    masked: BTreeSet<u32>,
    sum: Vec<u32>,
    requests: BTreeMap<u32, UnmaskRequest>,
    answered: BTreeSet<u32>,
    /// Shares of the self-mask seeds of survivors: site -> (holder, share).
    seed_shares: BTreeMap<u32, Vec<(u32, Scalar)>>,
    /// Shares of the mask-key secrets of dropped sites.
    key_shares: BTreeMap<u32, Vec<(u32, Scalar)>>,
    parallel: bool,
}

impl SecAggServer {
    /// The server of a round with `params`.
    ///
    /// # Errors
    /// Parameter errors.
    pub fn new(params: &SecAggParams) -> Result<Self, SecAggError> {
        let graph = CommunicationGraph::new(params)?;
        Ok(Self {
            params: *params,
            graph,
            stage: Stage::Keys,
            keys: BTreeMap::new(),
            shares: BTreeMap::new(),
            partners: BTreeMap::new(),
            masked: BTreeSet::new(),
            sum: vec![0; params.dim],
            requests: BTreeMap::new(),
            answered: BTreeSet::new(),
            seed_shares: BTreeMap::new(),
            key_shares: BTreeMap::new(),
            parallel: true,
        })
    }

    /// Whether mask removal runs on the rayon pool (default) or on this thread.
    #[must_use]
    pub fn parallel(mut self, parallel: bool) -> Self {
        self.parallel = parallel;
        self
    }

    /// The round's communication graph.
    pub fn graph(&self) -> &CommunicationGraph {
        &self.graph
    }

    fn expect(&self, stage: Stage, call: &str) -> Result<(), SecAggError> {
        if self.stage != stage {
            return Err(SecAggError::protocol(format!(
                "server: {call} called in stage {:?} (expected {stage:?})",
                self.stage
            )));
        }
        Ok(())
    }

    /// `site`'s neighbours that are in `set`.
    fn live_neighbours<'a>(
        &'a self,
        site: u32,
        set: &'a impl Fn(u32) -> bool,
    ) -> impl Iterator<Item = u32> + 'a {
        self.graph
            .neighbours(site)
            .iter()
            .copied()
            .filter(move |&v| set(v))
    }

    /// Stage 1: `from`'s public keys.
    ///
    /// # Errors
    /// Out of stage, unknown or repeated sender, two equal keys.
    pub fn receive_keys(&mut self, from: u32, msg: AdvertiseKeys) -> Result<(), SecAggError> {
        self.expect(Stage::Keys, "receive_keys")?;
        check_site(&self.params, from)?;
        if self.keys.contains_key(&from) {
            return Err(SecAggError::protocol(format!(
                "server: site {from} advertised keys twice"
            )));
        }
        if msg.enc_key == msg.mask_key {
            return Err(SecAggError::protocol(format!(
                "server: site {from} advertised the same key for encryption and masking"
            )));
        }
        self.keys.insert(
            from,
            SiteKeys {
                site: from,
                enc_key: msg.enc_key,
                mask_key: msg.mask_key,
            },
        );
        Ok(())
    }

    /// Closes stage 1: for each site that advertised keys, its neighbours' keys.
    ///
    /// # Errors
    /// [`SecAggError::Dropouts`] when a site has fewer than `t - 1` neighbours
    /// with keys.
    pub fn broadcast_keys(&mut self) -> Result<BTreeMap<u32, NeighbourKeys>, SecAggError> {
        self.expect(Stage::Keys, "broadcast_keys")?;
        let t = self.params.threshold as usize;
        let has = |v: u32| self.keys.contains_key(&v);
        let mut out = BTreeMap::new();
        for &u in self.keys.keys() {
            let keys: Vec<SiteKeys> = self
                .live_neighbours(u, &has)
                .map(|v| self.keys[&v].clone())
                .collect();
            if keys.len() + 1 < t {
                return Err(SecAggError::Dropouts {
                    site: u,
                    what: "sharing the keys (neighbours that advertised keys)".into(),
                    answered: keys.len() + 1,
                    needed: t,
                });
            }
            out.insert(u, NeighbourKeys { keys });
        }
        if out.is_empty() {
            return Err(SecAggError::protocol("no site advertised keys"));
        }
        self.stage = Stage::Shares;
        Ok(out)
    }

    /// Stage 2: `from`'s encrypted shares, one for each of its neighbours with keys.
    ///
    /// # Errors
    /// Out of stage, a sender that did not advertise keys or sends twice, ciphertexts
    /// not exactly for its neighbours with keys, an oversized ciphertext.
    pub fn receive_shares(&mut self, from: u32, msg: ShareKeys) -> Result<(), SecAggError> {
        self.expect(Stage::Shares, "receive_shares")?;
        check_site(&self.params, from)?;
        if !self.keys.contains_key(&from) {
            return Err(SecAggError::protocol(format!(
                "server: site {from} shared keys without advertising them"
            )));
        }
        if self.shares.contains_key(&from) {
            return Err(SecAggError::protocol(format!(
                "server: site {from} shared keys twice"
            )));
        }
        let has = |v: u32| self.keys.contains_key(&v);
        let expected: Vec<u32> = self.live_neighbours(from, &has).collect();
        let mut got: Vec<u32> = msg.shares.iter().map(|s| s.peer).collect();
        got.sort_unstable();
        if got != expected {
            return Err(SecAggError::protocol(format!(
                "server: site {from} sent shares for sites {got:?}; its neighbours with keys are {expected:?}"
            )));
        }
        if let Some(s) = msg
            .shares
            .iter()
            .find(|s| s.ciphertext.len() > MAX_CIPHERTEXT)
        {
            return Err(SecAggError::protocol(format!(
                "server: site {from}'s ciphertext for site {} has {} bytes (at most {MAX_CIPHERTEXT})",
                s.peer,
                s.ciphertext.len()
            )));
        }
        self.shares.insert(from, msg.shares);
        Ok(())
    }

    /// Closes stage 2: for each site that shared keys, the ciphertexts its neighbours
    /// made for it.
    ///
    /// # Errors
    /// [`SecAggError::Dropouts`] when a site has fewer than `t - 1` neighbours
    /// that shared keys.
    pub fn forward_shares(&mut self) -> Result<BTreeMap<u32, ForwardedShares>, SecAggError> {
        self.expect(Stage::Shares, "forward_shares")?;
        let t = self.params.threshold as usize;
        let has = |v: u32| self.shares.contains_key(&v);
        let mut out = BTreeMap::new();
        let mut partners = BTreeMap::new();
        for &v in self.shares.keys() {
            let from: Vec<u32> = self.live_neighbours(v, &has).collect();
            if from.len() + 1 < t {
                return Err(SecAggError::Dropouts {
                    site: v,
                    what: "masking (neighbours that shared keys)".into(),
                    answered: from.len() + 1,
                    needed: t,
                });
            }
            let shares = from
                .iter()
                .filter_map(|u| {
                    self.shares[u]
                        .iter()
                        .find(|s| s.peer == v)
                        .map(|s| EncryptedShares {
                            peer: *u,
                            ciphertext: s.ciphertext.clone(),
                        })
                })
                .collect();
            out.insert(v, ForwardedShares { shares });
            partners.insert(v, from);
        }
        if out.is_empty() {
            return Err(SecAggError::protocol("no site shared keys"));
        }
        self.partners = partners;
        self.stage = Stage::Masked;
        Ok(out)
    }

    /// Stage 3: `from`'s masked input, added into the running sum.
    ///
    /// # Errors
    /// Out of stage, a sender that did not share keys or sends twice, a vector of the
    /// wrong length.
    pub fn receive_masked(&mut self, from: u32, msg: MaskedInput) -> Result<(), SecAggError> {
        self.expect(Stage::Masked, "receive_masked")?;
        check_site(&self.params, from)?;
        if !self.partners.contains_key(&from) {
            return Err(SecAggError::protocol(format!(
                "server: site {from} sent a masked input without sharing keys"
            )));
        }
        if self.masked.contains(&from) {
            return Err(SecAggError::protocol(format!(
                "server: site {from} sent its masked input twice"
            )));
        }
        if msg.masked.0.len() != self.params.dim {
            return Err(SecAggError::protocol(format!(
                "server: site {from}'s masked input has {} values, the round aggregates {}",
                msg.masked.0.len(),
                self.params.dim
            )));
        }
        let add = |(a, b): (&mut u32, &u32)| *a = a.wrapping_add(*b);
        if self.parallel {
            self.sum.par_iter_mut().zip(&msg.masked.0).for_each(add);
        } else {
            self.sum.iter_mut().zip(&msg.masked.0).for_each(add);
        }
        self.masked.insert(from);
        Ok(())
    }

    /// Sites that shared keys but sent no masked input.
    fn dropped(&self) -> BTreeSet<u32> {
        self.partners
            .keys()
            .copied()
            .filter(|v| !self.masked.contains(v))
            .collect()
    }

    /// Closes stage 3: for each survivor, which neighbours' seed shares (survivors,
    /// itself included) and which neighbours' key shares (dropped) to reveal.
    ///
    /// # Errors
    /// No masked input at all, or a site whose secret can no longer be rebuilt: fewer
    /// than `t` holders of its shares survive ([`SecAggError::Dropouts`]).
    pub fn unmask_requests(&mut self) -> Result<BTreeMap<u32, UnmaskRequest>, SecAggError> {
        self.expect(Stage::Masked, "unmask_requests")?;
        if self.masked.is_empty() {
            return Err(SecAggError::protocol("no site sent its masked input"));
        }
        let t = self.params.threshold as usize;
        let dropped = self.dropped();
        // Holders of u's shares: u and its neighbours with keys (all of them got one).
        for &u in self.partners.keys() {
            let has = |v: u32| self.keys.contains_key(&v) && self.masked.contains(&v);
            let alive =
                self.live_neighbours(u, &has).count() + usize::from(self.masked.contains(&u));
            if alive < t {
                let what = if dropped.contains(&u) {
                    "the mask key (to remove the masks of a dropped site)"
                } else {
                    "the self-mask seed"
                };
                return Err(SecAggError::Dropouts {
                    site: u,
                    what: what.into(),
                    answered: alive,
                    needed: t,
                });
            }
        }
        self.refuse_split_survivors()?;
        let mut out = BTreeMap::new();
        for &v in &self.masked {
            let mut survivors: Vec<u32> = self.partners[&v]
                .iter()
                .copied()
                .filter(|w| self.masked.contains(w))
                .collect();
            survivors.push(v);
            survivors.sort_unstable();
            let gone: Vec<u32> = self.partners[&v]
                .iter()
                .copied()
                .filter(|w| dropped.contains(w))
                .collect();
            out.insert(
                v,
                UnmaskRequest {
                    survivors,
                    dropped: gone,
                },
            );
        }
        self.requests = out.clone();
        self.stage = Stage::Unmask;
        Ok(out)
    }

    /// [`SecAggError::Disconnected`] unless the survivors (the sites that sent masked
    /// inputs) form one connected graph under the masks they share: in a split graph the
    /// pairwise masks cancel within each piece, so the revealed self-mask seeds would
    /// give the server each piece's partial sum (Bell et al. 2020 need the survivors'
    /// graph connected).
    fn refuse_split_survivors(&self) -> Result<(), SecAggError> {
        let Some(&first) = self.masked.iter().next() else {
            return Ok(());
        };
        let mut seen = BTreeSet::from([first]);
        let mut todo = vec![first];
        while let Some(v) = todo.pop() {
            for &w in self.partners.get(&v).into_iter().flatten() {
                if self.masked.contains(&w) && seen.insert(w) {
                    todo.push(w);
                }
            }
        }
        if seen.len() == self.masked.len() {
            return Ok(());
        }
        // Count the pieces for the message.
        let mut pieces = 1;
        let mut left: BTreeSet<u32> = self.masked.difference(&seen).copied().collect();
        while let Some(&start) = left.iter().next() {
            pieces += 1;
            let mut todo = vec![start];
            left.remove(&start);
            while let Some(v) = todo.pop() {
                for &w in self.partners.get(&v).into_iter().flatten() {
                    if left.remove(&w) {
                        todo.push(w);
                    }
                }
            }
        }
        Err(SecAggError::Disconnected {
            pieces,
            group: seen.into_iter().collect(),
        })
    }

    /// Stage 4: `from`'s revealed shares.
    ///
    /// # Errors
    /// Out of stage, a sender that was not asked or answers twice, an answer that does not
    /// match its request exactly (it would otherwise let one site's two kinds of share
    /// meet here), a share value out of the field.
    pub fn receive_unmask(&mut self, from: u32, msg: UnmaskResponse) -> Result<(), SecAggError> {
        self.expect(Stage::Unmask, "receive_unmask")?;
        check_site(&self.params, from)?;
        let Some(req) = self.requests.get(&from) else {
            return Err(SecAggError::protocol(format!(
                "server: site {from} sent shares without being asked"
            )));
        };
        if self.answered.contains(&from) {
            return Err(SecAggError::protocol(format!(
                "server: site {from} answered the unmask request twice"
            )));
        }
        let sites = |v: &[RevealedShare]| v.iter().map(|s| s.site).collect::<Vec<_>>();
        if sites(&msg.seed_shares) != req.survivors || sites(&msg.key_shares) != req.dropped {
            return Err(SecAggError::protocol(format!(
                "server: site {from}'s unmask response does not answer its request (seed shares \
                 of {:?} and key shares of {:?} asked)",
                req.survivors, req.dropped
            )));
        }
        let decode = |s: &RevealedShare| {
            crypto::scalar_from_wire(
                s.value,
                &format!("server: site {from}'s share of site {}", s.site),
            )
            .map(|v| (s.site, v))
        };
        let seeds: Vec<(u32, Scalar)> = msg
            .seed_shares
            .iter()
            .map(decode)
            .collect::<Result<_, _>>()?;
        let keys: Vec<(u32, Scalar)> = msg
            .key_shares
            .iter()
            .map(decode)
            .collect::<Result<_, _>>()?;
        // Requests are disjoint by construction; this check keeps the invariant whatever
        // the request logic becomes.
        let both = seeds
            .iter()
            .find(|(s, _)| self.key_shares.contains_key(s))
            .or_else(|| keys.iter().find(|(s, _)| self.seed_shares.contains_key(s)));
        if let Some((site, _)) = both {
            return Err(SecAggError::protocol(format!(
                "server: site {from}'s shares would give the server both kinds of share of \
                 site {site}: refused"
            )));
        }
        for (site, v) in seeds {
            self.seed_shares.entry(site).or_default().push((from, v));
        }
        for (site, v) in keys {
            self.key_shares.entry(site).or_default().push((from, v));
        }
        self.answered.insert(from);
        Ok(())
    }

    /// Closes stage 4: rebuilds the survivors' self-mask seeds and the dropped sites'
    /// mask keys, removes every mask from the sum and dequantises it.
    ///
    /// # Errors
    /// [`SecAggError::Dropouts`] when fewer than `t` shares of some secret came
    /// back (naming the site, how many answered and how many were needed); a rebuilt
    /// mask key that does not match the site's advertised key (a corrupted share).
    pub fn finish(&mut self) -> Result<SecAggOutput, SecAggError> {
        self.expect(Stage::Unmask, "finish")?;
        let t = self.params.threshold as usize;
        let round = self.params.round;
        let dropped = self.dropped();
        let need = |site: u32, got: usize, what: &str| {
            if got < t {
                Err(SecAggError::Dropouts {
                    site,
                    what: what.into(),
                    answered: got,
                    needed: t,
                })
            } else {
                Ok(())
            }
        };
        for &u in &self.masked {
            need(
                u,
                self.seed_shares.get(&u).map_or(0, Vec::len),
                "the self-mask seed",
            )?;
        }
        for &u in &dropped {
            need(
                u,
                self.key_shares.get(&u).map_or(0, Vec::len),
                "the mask key (to remove the masks of a dropped site)",
            )?;
        }
        let survivors: Vec<u32> = self.masked.iter().copied().collect();
        let self_mask = |&u: &u32| -> Result<Mask, SecAggError> {
            let b = crypto::combine(&self.seed_shares[&u][..t])?;
            Ok(Mask {
                seed: crypto::self_mask_seed(&b, round, u),
                negate: true,
            })
        };
        let dropped_v: Vec<u32> = dropped.iter().copied().collect();
        let pair_masks = |&u: &u32| -> Result<Vec<Mask>, SecAggError> {
            let m = crypto::combine(&self.key_shares[&u][..t])?;
            let sk = crypto::mask_secret(&m, round, u);
            if PublicKey::from(&sk).to_bytes() != self.keys[&u].mask_key {
                return Err(SecAggError::protocol(format!(
                    "the mask key rebuilt for dropped site {u} does not match the key it \
                     advertised (a corrupted share)"
                )));
            }
            self.partners[&u]
                .iter()
                .filter(|v| self.masked.contains(v))
                .map(|&v| {
                    let shared = crypto::agree(&sk, &self.keys[&v].mask_key, v, "mask")?;
                    // y_v holds +PRG(s_uv) when v < u: remove it with the opposite sign.
                    Ok(Mask {
                        seed: crypto::pair_mask_seed(&shared, round, u, v),
                        negate: v < u,
                    })
                })
                .collect()
        };
        let (selfs, pairs): (Result<Vec<Mask>, _>, Result<Vec<Vec<Mask>>, _>) = if self.parallel {
            (
                survivors.par_iter().map(self_mask).collect(),
                dropped_v.par_iter().map(pair_masks).collect(),
            )
        } else {
            (
                survivors.iter().map(self_mask).collect(),
                dropped_v.iter().map(pair_masks).collect(),
            )
        };
        let mut masks = selfs?;
        masks.extend(pairs?.into_iter().flatten());
        let mut z = std::mem::take(&mut self.sum);
        crypto::apply_masks(self.params.prg, &masks, &mut z, self.parallel);
        let count = survivors.len() as u32;
        self.stage = Stage::Done;
        Ok(SecAggOutput {
            sum: self.params.quantizer.dequantize_sum(&z, count),
            survivors,
            dropped: dropped_v,
        })
    }
}
