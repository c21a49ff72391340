//! [`SecAggClient`]: one site's side of a SecAgg+ round.

use std::collections::{BTreeMap, BTreeSet};

use curve25519_dalek::Scalar;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;
use x25519_dalek::{PublicKey, StaticSecret};

use super::crypto::{self, Mask};
use super::graph::{CommunicationGraph, check_site};
use super::messages::{
    AdvertiseKeys, EncryptedShares, ForwardedShares, MaskedInput, NeighbourKeys, RevealedShare,
    RingVector, ShareKeys, SharePayload, SiteKeys, UnmaskRequest, UnmaskResponse,
};
use super::params::SecAggParams;
use crate::SecAggError;

/// Where a client is in the round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Fresh,
    Advertised,
    Shared,
    Masked,
    Done,
}

/// The shares this site holds of one site's secrets (its own included).
#[derive(Debug, Clone, Copy)]
struct Held {
    key_share: Scalar,
    seed_share: Scalar,
}

/// One site's state machine for one round: call [`advertise_keys`](Self::advertise_keys),
/// [`share_keys`](Self::share_keys), [`masked_input`](Self::masked_input) and
/// [`unmask`](Self::unmask) in order, each with the server's previous message. Every
/// call checks what it is given and answers with an error, never a panic.
pub struct SecAggClient {
    params: SecAggParams,
    site: u32,
    neighbours: Vec<u32>,
    rng: ChaCha20Rng,
    stage: Stage,
    enc_secret: StaticSecret,
    /// `m_u`: the shared secret from which the mask key is derived.
    mask_key_secret: Scalar,
    mask_secret: StaticSecret,
    /// `b_u`: the self-mask seed.
    self_seed: Scalar,
    peers: BTreeMap<u32, SiteKeys>,
    held: BTreeMap<u32, Held>,
    partners: Vec<u32>,
    parallel: bool,
}

impl std::fmt::Debug for SecAggClient {
    /// The public state only: secrets and held shares are not printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecAggClient")
            .field("site", &self.site)
            .field("stage", &self.stage)
            .field("neighbours", &self.neighbours)
            .field("partners", &self.partners)
            .finish_non_exhaustive()
    }
}

impl SecAggClient {
    /// Site `site` of a round with `params`; its key material comes from a ChaCha20
    /// stream of `seed` (use [`SecAggClient::from_entropy`] outside simulations).
    ///
    /// # Errors
    /// Parameter errors, or `site` out of range.
    pub fn new(params: &SecAggParams, site: u32, seed: [u8; 32]) -> Result<Self, SecAggError> {
        check_site(params, site)?;
        let neighbours = CommunicationGraph::neighbours_of(params, site)?;
        let mut rng = ChaCha20Rng::from_seed(seed);
        let enc_secret = crypto::random_secret(&mut rng);
        let mask_key_secret = crypto::random_scalar(&mut rng);
        let mask_secret = crypto::mask_secret(&mask_key_secret, params.round, site);
        let self_seed = crypto::random_scalar(&mut rng);
        Ok(Self {
            params: *params,
            site,
            neighbours,
            rng,
            stage: Stage::Fresh,
            enc_secret,
            mask_key_secret,
            mask_secret,
            self_seed,
            peers: BTreeMap::new(),
            held: BTreeMap::new(),
            partners: Vec::new(),
            parallel: true,
        })
    }

    /// [`SecAggClient::new`] seeded from the operating system's entropy.
    ///
    /// # Errors
    /// As [`SecAggClient::new`].
    pub fn from_entropy(params: &SecAggParams, site: u32) -> Result<Self, SecAggError> {
        use rand::TryRng;
        let mut seed = [0u8; 32];
        rand::rngs::SysRng
            .try_fill_bytes(&mut seed)
            .map_err(|e| SecAggError::protocol(format!("no entropy from the OS: {e}")))?;
        Self::new(params, site, seed)
    }

    /// Whether mask expansion runs on the rayon pool (default) or on this thread.
    #[must_use]
    pub fn parallel(mut self, parallel: bool) -> Self {
        self.parallel = parallel;
        self
    }

    /// This site.
    pub fn site(&self) -> u32 {
        self.site
    }

    /// This site's neighbours in the communication graph.
    pub fn neighbours(&self) -> &[u32] {
        &self.neighbours
    }

    fn expect(&self, stage: Stage, call: &str) -> Result<(), SecAggError> {
        if self.stage != stage {
            return Err(SecAggError::protocol(format!(
                "site {}: {call} called in stage {:?} (expected {stage:?})",
                self.site, self.stage
            )));
        }
        Ok(())
    }

    /// Stage 1: this site's two public keys.
    ///
    /// # Errors
    /// When called out of order.
    pub fn advertise_keys(&mut self) -> Result<AdvertiseKeys, SecAggError> {
        self.expect(Stage::Fresh, "advertise_keys")?;
        self.stage = Stage::Advertised;
        Ok(AdvertiseKeys {
            enc_key: PublicKey::from(&self.enc_secret).to_bytes(),
            mask_key: PublicKey::from(&self.mask_secret).to_bytes(),
        })
    }

    /// Stage 2: Shamir-splits the mask-key secret and the self-mask seed among this
    /// site's neighbourhood (threshold `t`) and encrypts each neighbour's shares for it.
    ///
    /// # Errors
    /// A key from a site that is not a neighbour (or twice), fewer than `t` members of
    /// the neighbourhood left ([`SecAggError::Dropouts`]), a low-order key.
    pub fn share_keys(&mut self, msg: &NeighbourKeys) -> Result<ShareKeys, SecAggError> {
        self.expect(Stage::Advertised, "share_keys")?;
        let u = self.site;
        let mut peers = BTreeMap::new();
        for k in &msg.keys {
            if self.neighbours.binary_search(&k.site).is_err() {
                return Err(SecAggError::protocol(format!(
                    "site {u}: got the keys of site {}, which is not one of its neighbours",
                    k.site
                )));
            }
            if peers.insert(k.site, k.clone()).is_some() {
                return Err(SecAggError::protocol(format!(
                    "site {u}: got the keys of site {} twice",
                    k.site
                )));
            }
        }
        let t = self.params.threshold as usize;
        if peers.len() + 1 < t {
            return Err(SecAggError::Dropouts {
                site: u,
                what: "sharing the keys (neighbours that advertised keys)".into(),
                answered: peers.len() + 1,
                needed: t,
            });
        }
        let mut holders: Vec<u32> = peers.keys().copied().collect();
        holders.push(u);
        holders.sort_unstable();
        let key_shares = crypto::split(
            &self.mask_key_secret,
            self.params.threshold,
            &holders,
            &mut self.rng,
        )?;
        let seed_shares = crypto::split(
            &self.self_seed,
            self.params.threshold,
            &holders,
            &mut self.rng,
        )?;
        let round = self.params.round;
        let jobs: Vec<(u32, SharePayload, [u8; 32])> = key_shares
            .iter()
            .zip(&seed_shares)
            .filter(|((h, _), _)| *h != u)
            .map(|(&(h, ks), &(_, ss))| {
                let p = SharePayload {
                    from: u,
                    to: h,
                    key_share: ks.to_bytes(),
                    seed_share: ss.to_bytes(),
                };
                (h, p, peers[&h].enc_key)
            })
            .collect();
        let enc = &self.enc_secret;
        let encrypt = |(h, p, pk): &(u32, SharePayload, [u8; 32])| {
            let shared = crypto::agree(enc, pk, *h, "encryption")?;
            let pt = postcard::to_allocvec(p)
                .map_err(|e| SecAggError::protocol(format!("encoding shares: {e}")))?;
            Ok(EncryptedShares {
                peer: *h,
                ciphertext: crypto::seal(&shared, round, u, *h, &pt)?,
            })
        };
        let shares: Result<Vec<_>, SecAggError> = if self.parallel {
            jobs.par_iter().map(encrypt).collect()
        } else {
            jobs.iter().map(encrypt).collect()
        };
        let own = holders.iter().position(|&h| h == u).unwrap_or(0);
        self.held.insert(
            u,
            Held {
                key_share: key_shares[own].1,
                seed_share: seed_shares[own].1,
            },
        );
        self.peers = peers;
        self.stage = Stage::Shared;
        Ok(ShareKeys { shares: shares? })
    }

    /// Stage 3: decrypts the shares the neighbours sent, then quantises `update` and
    /// adds the self mask and one pairwise mask per neighbour that shared keys.
    ///
    /// # Errors
    /// A ciphertext that fails authentication ([`SecAggError::Authentication`],
    /// naming its sender), a malformed or misaddressed payload, a ciphertext from a site
    /// that did not advertise keys, too few neighbours left, an update of the wrong
    /// length or with NaN/infinite values.
    pub fn masked_input(
        &mut self,
        msg: &ForwardedShares,
        update: &[f32],
    ) -> Result<MaskedInput, SecAggError> {
        self.expect(Stage::Shared, "masked_input")?;
        let u = self.site;
        if update.len() != self.params.dim {
            return Err(SecAggError::protocol(format!(
                "site {u}: the update has {} values, the round aggregates {}",
                update.len(),
                self.params.dim
            )));
        }
        let round = self.params.round;
        let mut seen = BTreeSet::new();
        for s in &msg.shares {
            if !self.peers.contains_key(&s.peer) {
                return Err(SecAggError::protocol(format!(
                    "site {u}: got shares from site {}, which did not advertise keys to it",
                    s.peer
                )));
            }
            if !seen.insert(s.peer) {
                return Err(SecAggError::protocol(format!(
                    "site {u}: got shares from site {} twice",
                    s.peer
                )));
            }
        }
        let t = self.params.threshold as usize;
        if seen.len() + 1 < t {
            return Err(SecAggError::Dropouts {
                site: u,
                what: "masking (neighbours that shared keys)".into(),
                answered: seen.len() + 1,
                needed: t,
            });
        }
        let enc = &self.enc_secret;
        let peers = &self.peers;
        let decrypt = |s: &EncryptedShares| -> Result<(u32, Held), SecAggError> {
            let v = s.peer;
            let shared = crypto::agree(enc, &peers[&v].enc_key, v, "encryption")?;
            let pt = crypto::open(&shared, round, v, u, &s.ciphertext)?;
            let p: SharePayload = postcard::from_bytes(&pt).map_err(|e| {
                SecAggError::protocol(format!(
                    "site {u}: the shares from site {v} are malformed: {e}"
                ))
            })?;
            if p.from != v || p.to != u {
                return Err(SecAggError::protocol(format!(
                    "site {u}: the shares from site {v} are addressed from {} to {}",
                    p.from, p.to
                )));
            }
            let what = format!("site {u}: share from site {v}");
            Ok((
                v,
                Held {
                    key_share: crypto::scalar_from_wire(p.key_share, &what)?,
                    seed_share: crypto::scalar_from_wire(p.seed_share, &what)?,
                },
            ))
        };
        let mask_secret = &self.mask_secret;
        let pair = |s: &EncryptedShares| -> Result<Mask, SecAggError> {
            let v = s.peer;
            let shared = crypto::agree(mask_secret, &peers[&v].mask_key, v, "mask")?;
            Ok(Mask {
                seed: crypto::pair_mask_seed(&shared, round, u, v),
                // y_u gets +PRG(s_uv) for u < v and -PRG(s_uv) for u > v.
                negate: u > v,
            })
        };
        let (held, pairs): (Result<Vec<_>, _>, Result<Vec<_>, _>) = if self.parallel {
            (
                msg.shares.par_iter().map(decrypt).collect(),
                msg.shares.par_iter().map(pair).collect(),
            )
        } else {
            (
                msg.shares.iter().map(decrypt).collect(),
                msg.shares.iter().map(pair).collect(),
            )
        };
        let held = held?;
        let mut masks = pairs?;
        masks.push(Mask {
            seed: crypto::self_mask_seed(&self.self_seed, round, u),
            negate: false,
        });
        let mut y = vec![0u32; self.params.dim];
        self.params
            .quantizer
            .quantize_into(update, &mut self.rng, &mut y)
            .map_err(|e| match e {
                SecAggError::Protocol(m) => SecAggError::Protocol(format!("site {u}: {m}")),
                other => other,
            })?;
        crypto::apply_masks(self.params.prg, &masks, &mut y, self.parallel);
        self.held.extend(held);
        self.partners = seen.into_iter().collect();
        self.stage = Stage::Masked;
        Ok(MaskedInput {
            masked: RingVector(y),
        })
    }

    /// Stage 4: reveals the shares the server asks for: of the self-mask seed of each
    /// survivor and of the mask-key secret of each dropped neighbour. Answers one request
    /// a round.
    ///
    /// # Errors
    /// Refuses a request that names one site both as survivor and as dropped (the server
    /// would then hold both kinds of share of that site and could unmask its input), that
    /// names this site as dropped, that names a site this site holds no shares of, that
    /// has fewer than `t` survivors in the neighbourhood, or that comes a second time.
    pub fn unmask(&mut self, msg: &UnmaskRequest) -> Result<UnmaskResponse, SecAggError> {
        let u = self.site;
        if self.stage == Stage::Done {
            return Err(SecAggError::protocol(format!(
                "site {u}: already answered an unmask request this round: refused (a second \
                 request could ask for the other kind of share)"
            )));
        }
        self.expect(Stage::Masked, "unmask")?;
        let survivors: BTreeSet<u32> = msg.survivors.iter().copied().collect();
        let dropped: BTreeSet<u32> = msg.dropped.iter().copied().collect();
        if let Some(both) = survivors.intersection(&dropped).next() {
            return Err(SecAggError::protocol(format!(
                "site {u}: the unmask request asks for both the self-mask-seed share and the \
                 mask-key share of site {both}: refused (together they unmask its input)"
            )));
        }
        if dropped.contains(&u) {
            return Err(SecAggError::protocol(format!(
                "site {u}: the unmask request names this site as dropped, but it sent its \
                 masked input: refused"
            )));
        }
        if survivors.len() != msg.survivors.len() || dropped.len() != msg.dropped.len() {
            return Err(SecAggError::protocol(format!(
                "site {u}: the unmask request names a site twice"
            )));
        }
        for v in survivors.iter().chain(&dropped) {
            if !self.held.contains_key(v) {
                return Err(SecAggError::protocol(format!(
                    "site {u}: the unmask request names site {v}, of which it holds no shares"
                )));
            }
        }
        let t = self.params.threshold as usize;
        if survivors.len() < t {
            return Err(SecAggError::Dropouts {
                site: u,
                what: "unmasking (survivors named in the request)".into(),
                answered: survivors.len(),
                needed: t,
            });
        }
        let reveal = |v: &u32, key: bool| {
            let h = self.held[v];
            RevealedShare {
                site: *v,
                value: if key { h.key_share } else { h.seed_share }.to_bytes(),
            }
        };
        let out = UnmaskResponse {
            seed_shares: survivors.iter().map(|v| reveal(v, false)).collect(),
            key_shares: dropped.iter().map(|v| reveal(v, true)).collect(),
        };
        self.stage = Stage::Done;
        Ok(out)
    }

    /// The neighbours this site masked with (those that shared keys), after stage 3.
    pub fn partners(&self) -> &[u32] {
        &self.partners
    }
}
