//! Secure aggregation: SecAgg+ (Bell, Bonawitz, Gascón, Lepoint and Raykova, "Secure
//! Single-Server Aggregation with (Poly)Logarithmic Overhead", CCS 2020), building on
//! SecAgg (Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving Machine
//! Learning", CCS 2017). The server learns the sum of the sites' updates and nothing
//! else about any one of them, and the sum survives sites dropping out.
//!
//! # The protocol
//!
//! The sites `0..n` and the server share [`SecAggParams`]: the number of sites, the
//! number `k` of neighbours of each site in the [`CommunicationGraph`] (a Harary graph
//! with randomly relabelled nodes, as in Bell et al.; `k = n - 1` is the complete graph
//! of Bonawitz et al.), the Shamir threshold `t`, the vector length and the
//! [`Quantizer`]. A site's *neighbourhood* is its `k` neighbours and itself. One round:
//!
//! 1. **Advertise keys** ([`SecAggClient::advertise_keys`]). Each site `u` makes two X25519
//!    key pairs: `c_u` to encrypt shares, and `s_u` for pairwise masks, whose secret key is
//!    derived by HKDF from a random element `m_u` of the prime field (the scalar field of
//!    Curve25519), so that rebuilding `m_u` rebuilds the key. It sends both public keys.
//!    The server forwards to each site its neighbours' keys
//!    ([`SecAggServer::broadcast_keys`]).
//! 2. **Share keys** ([`SecAggClient::share_keys`]). `u` draws its self-mask seed `b_u` (a
//!    field element) and Shamir-splits `m_u` and `b_u` (vsss-rs, threshold `t`) among its
//!    neighbourhood, the share of site `v` being the polynomial at `x = v + 1`. For each
//!    neighbour `v` it encrypts `v`'s two shares with ChaCha20-Poly1305 under the key
//!    HKDF-SHA256(X25519(c_u, c_v), round, u, v): one key per direction, used once, with
//!    the round and both ids also in the associated data. The server routes each
//!    ciphertext to its receiver ([`SecAggServer::forward_shares`]). It cannot read them.
//! 3. **Masked input** ([`SecAggClient::masked_input`]). `u` decrypts its neighbours' shares
//!    (a failed tag is [`crate::SecAggError::Authentication`], naming the sender),
//!    quantises its update `x_u` to `q_u` in `Z_{2^32}` and sends
//!    `y_u = q_u + PRG(b_u) + sum over v of ±PRG(s_uv)` (mod `2^32`), over the neighbours
//!    `v` that shared keys, with `s_uv` = HKDF(X25519(s_u, s_v), round, min, max) and the
//!    sign `+` for `u < v`, `-` for `u > v`: the pairwise masks cancel in the sum. PRG is a
//!    ChaCha stream ([`MaskPrg`], ChaCha12 by default) of the seed, one word a coordinate.
//! 4. **Unmasking** ([`SecAggServer::unmask_requests`], [`SecAggClient::unmask`],
//!    [`SecAggServer::finish`]). The server adds the masked inputs it got (survivors) and
//!    asks each survivor for its shares of the survivors' `b` and of the dropped sites'
//!    `m` (dropped: shared keys, sent no masked input). With `t` shares of each it
//!    rebuilds the survivors' self masks and the dropped sites' mask keys, from which it
//!    recomputes their pairwise masks with the survivors; removing all of them leaves
//!    `sum of q_u` over the survivors, which it dequantises. It checks each rebuilt mask key
//!    against the public key the site advertised.
//!
//! Dropouts are recovered as long as every site whose secret is needed keeps `t` live
//! members of its neighbourhood; otherwise the round stops with
//! [`crate::SecAggError::Dropouts`] (which site, what for, how many answered, how
//! many were needed), and the server says so as soon as it knows
//! ([`SecAggServer::unmask_requests`]), before asking for any share.
//!
//! **Never both shares of one site.** If the server held `t` shares of both `b_u` and
//! `m_u`, it could remove every mask of `y_u` and read `u`'s update. So each request asks
//! for seed shares of survivors and key shares of dropped sites only; the client refuses a
//! request that names one site in both lists, that names itself as dropped, or that
//! comes a second time in the round; and the server refuses a response that does not
//! match its request or that would give it both kinds for one site.
//!
//! Quantisation and its error bound are in [`Quantizer`]; [`run_round`] runs a whole
//! round in this process (tests, `ward bench secagg`), sending every message through
//! `postcard` and measuring time and bytes per stage.
//!
//! # Threat model
//!
//! Honest-but-curious server and sites (the semi-honest model of Bonawitz et al. and
//! Bell et al.): everyone follows the protocol, the server tries to learn a site's update
//! from what it sees. What it sees of one site's input is `y_u`, which is uniform over
//! `Z_{2^32}^d` whatever `x_u` is (the self mask alone is a one-time pad; the test
//! `the_servers_view_of_a_masked_update_is_uniform_whatever_the_update` checks the
//! distribution), and the shares it is given, fewer than `t` of any secret it must not
//! rebuild. A coalition of the server with fewer than `t` members of each neighbourhood
//! learns nothing beyond the sum of the honest survivors; Bell et al. show that with `k`
//! logarithmic in `n` and `t` chosen as in their paper this holds with high probability
//! over the random graph, for a bounded fraction of corrupt sites; with the complete graph
//! a threshold above `n/2` is Bonawitz et al.'s setting. A sparse graph with a small `k`
//! (Flower's example: 2 neighbours, threshold 2) is fast but tolerates only `t - 1 = 1`
//! colluding site in a neighbourhood: the two neighbours of a site together hold `t`
//! shares of its mask key.
//!
//! Not covered: a malicious server that sends different sites inconsistent views of who
//! dropped (Bonawitz et al.'s round 3 consistency check with signatures and a PKI, not
//! implemented: each client enforces the never-both rule for its own shares only), sites
//! that send wrong shares or out-of-range inputs (a rebuilt mask key is checked against
//! its public key, a rebuilt self-mask seed cannot be), and transport security: the
//! messages must travel over authenticated channels (the server's `receive_*` take the
//! sender from the transport). The sum itself is revealed: combine with differential
//! privacy when the sum must not reveal a site either. Keys are fresh each round and
//! bound to [`SecAggParams::round`].
//!
//! # Example
//!
//! ```
//! use std::collections::BTreeMap;
//! use ward_secagg::{DropPoint, RoundOptions, SecAggParams, run_round};
//!
//! // 10 sites, 4 neighbours each, threshold 3; site 7 leaves after sharing keys.
//! let params = SecAggParams::complete(10, 3).with_neighbours(4).with_threshold(3);
//! let drops = BTreeMap::from([(7, DropPoint::AfterShares)]);
//! let report = run_round(&params, &drops, &RoundOptions::default(), |site| {
//!     vec![site as f32 / 10.0, -1.0, 0.5]
//! })?;
//! // The sum over the 9 survivors: sum of site / 10 = (45 - 7) / 10 = 3.8, -9, 4.5.
//! let bound = params.quantizer.error_bound(9) + 1e-5;
//! for (got, want) in report.output.sum.iter().zip([3.8, -9.0, 4.5]) {
//!     assert!((f64::from(*got) - want).abs() <= bound);
//! }
//! assert_eq!(report.output.dropped, vec![7]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod client;
mod crypto;
mod driver;
mod error;
mod graph;
mod messages;
mod params;
mod quantize;
mod server;

pub use client::SecAggClient;
pub use driver::{DropPoint, RoundOptions, RoundReport, StageStats, choose_dropouts, run_round};
pub use error::SecAggError;
pub use graph::CommunicationGraph;
pub use messages::{
    AdvertiseKeys, EncryptedShares, ForwardedShares, MaskedInput, NeighbourKeys, RevealedShare,
    RingVector, ShareKeys, SiteKeys, UnmaskRequest, UnmaskResponse,
};
pub use params::{MaskPrg, SecAggParams};
pub use quantize::{Quantizer, Rounding};
pub use server::{SecAggOutput, SecAggServer};

#[cfg(test)]
mod tests;
