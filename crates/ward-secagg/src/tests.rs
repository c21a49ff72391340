//! Protocol tests: correctness, dropouts, tampering, the masks' distribution, the
//! never-both rule, malformed messages.

use std::collections::BTreeMap;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use statrs::distribution::{ChiSquared, ContinuousCDF};

use super::*;
use crate::SecAggError;

/// Site `s`'s update: `d` values uniform in `[-c, c]` (seeded per site).
fn update(s: u32, d: usize, c: f32) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(1000 + u64::from(s));
    (0..d).map(|_| rng.random_range(-c..=c)).collect()
}

/// Plain `f64` sum of the updates of `sites`.
fn plain_sum(sites: &[u32], d: usize, c: f32) -> Vec<f64> {
    let mut acc = vec![0f64; d];
    for &s in sites {
        for (a, v) in acc.iter_mut().zip(update(s, d, c)) {
            *a += f64::from(v);
        }
    }
    acc
}

/// Largest coordinate error of `got` against the plain sum of `sites`.
fn max_err(got: &[f32], sites: &[u32], d: usize, c: f32) -> f64 {
    plain_sum(sites, d, c)
        .iter()
        .zip(got)
        .map(|(e, &g)| (f64::from(g) - e).abs())
        .fold(0.0, f64::max)
}

/// The bound of the quantiser plus half an f32 ulp of the largest possible sum.
fn bound(p: &SecAggParams, count: u32) -> f64 {
    let sum_max = f64::from(count) * f64::from(p.quantizer.clip);
    p.quantizer.error_bound(count) + sum_max * f64::from(f32::EPSILON) / 2.0
}

fn run(
    p: &SecAggParams,
    drops: &BTreeMap<u32, DropPoint>,
    c: f32,
) -> Result<RoundReport, SecAggError> {
    run_round(p, drops, &RoundOptions::default(), |s| update(s, p.dim, c))
}

#[test]
fn unmasked_sum_equals_plain_sum_within_quantisation_bound() {
    for rounding in [Rounding::Deterministic, Rounding::Stochastic] {
        for k in [4, 9] {
            // Coarse 12-bit levels so the quantisation error is well above f32 rounding.
            let p = SecAggParams::complete(10, 3000)
                .with_neighbours(k)
                .with_quantizer(Quantizer::new(2.0, 12, rounding).unwrap());
            let r = run(&p, &BTreeMap::new(), 2.0).unwrap();
            let all: Vec<u32> = (0..10).collect();
            assert_eq!(r.output.survivors, all);
            let err = max_err(&r.output.sum, &all, p.dim, 2.0);
            let b = bound(&p, 10);
            assert!(
                err <= b,
                "k={k} {rounding:?}: error {err} above the bound {b}"
            );
            // The bound is tight enough to mean something: errors reach a good part of it.
            assert!(err > b / 20.0, "k={k} {rounding:?}: {err} vs {b}");
        }
    }
}

#[test]
fn parallel_and_sequential_rounds_agree() {
    let p = SecAggParams::complete(6, 40_000)
        .with_neighbours(2)
        .with_threshold(2);
    let drops = BTreeMap::from([(3, DropPoint::AfterShares)]);
    let a = run_round(
        &p,
        &drops,
        &RoundOptions {
            seed: 5,
            parallel: true,
        },
        |s| update(s, p.dim, 1.0),
    )
    .unwrap();
    let b = run_round(
        &p,
        &drops,
        &RoundOptions {
            seed: 5,
            parallel: false,
        },
        |s| update(s, p.dim, 1.0),
    )
    .unwrap();
    assert_eq!(a.output, b.output);
}

#[test]
fn dropouts_below_the_threshold_recover_the_survivors_sum() {
    // SecAgg+ graph: 12 sites, 4 neighbours, threshold 3.
    let p = SecAggParams::complete(12, 2000)
        .with_neighbours(4)
        .with_threshold(3)
        .with_round(3, 11);
    let mut drops: BTreeMap<u32, DropPoint> = choose_dropouts(&p, 2, 1)
        .unwrap()
        .into_iter()
        .map(|s| (s, DropPoint::AfterShares))
        .collect();
    assert_eq!(drops.len(), 2);
    // One more site leaves before sharing keys: nobody masks with it.
    let early = (0..12).find(|s| !drops.contains_key(s)).unwrap();
    drops.insert(early, DropPoint::AfterKeys);
    let r = run(&p, &drops, 1.0).unwrap();
    let survivors: Vec<u32> = (0..12).filter(|s| !drops.contains_key(s)).collect();
    assert_eq!(r.output.survivors, survivors);
    let late: Vec<u32> = drops
        .iter()
        .filter(|(_, d)| **d == DropPoint::AfterShares)
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(r.output.dropped, late);
    let err = max_err(&r.output.sum, &survivors, p.dim, 1.0);
    assert!(err <= bound(&p, survivors.len() as u32), "{err}");
}

#[test]
fn a_site_leaving_after_its_masked_input_is_still_in_the_sum() {
    let p = SecAggParams::complete(7, 500).with_threshold(4);
    let drops = BTreeMap::from([
        (2, DropPoint::AfterMaskedInput),
        (5, DropPoint::AfterShares),
    ]);
    let r = run(&p, &drops, 1.0).unwrap();
    let survivors = [0, 1, 2, 3, 4, 6];
    assert_eq!(r.output.survivors, survivors);
    assert!(max_err(&r.output.sum, &survivors, p.dim, 1.0) <= bound(&p, 6));
}

#[test]
fn too_many_dropouts_is_a_clear_error() {
    // Ring (2 neighbours), threshold 2: two ring neighbours dropping together leave the
    // first with one live member of its neighbourhood (the other neighbour).
    let p = SecAggParams::complete(10, 100)
        .with_neighbours(2)
        .with_threshold(2)
        .with_round(0, 4);
    let g = CommunicationGraph::new(&p).unwrap();
    let a = 0;
    let b = g.neighbours(a)[0];
    let drops = BTreeMap::from([(a, DropPoint::AfterShares), (b, DropPoint::AfterShares)]);
    let e = run(&p, &drops, 1.0).unwrap_err();
    match &e {
        SecAggError::Dropouts {
            site,
            answered,
            needed,
            ..
        } => {
            assert!(*site == a || *site == b, "{e}");
            assert_eq!((*answered, *needed), (1, 2), "{e}");
        }
        other => panic!("expected a dropout error, got {other}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("too many dropouts") && msg.contains("1 answered"),
        "{msg}"
    );

    // Complete graph of 5, threshold 3: three sites gone after sharing keys.
    let p = SecAggParams::complete(5, 10).with_threshold(3);
    let drops: BTreeMap<u32, DropPoint> = [0, 1, 2]
        .into_iter()
        .map(|s| (s, DropPoint::AfterShares))
        .collect();
    let e = run(&p, &drops, 1.0).unwrap_err();
    assert!(
        matches!(
            e,
            SecAggError::Dropouts {
                answered: 2,
                needed: 3,
                ..
            }
        ),
        "{e}"
    );

    // Too few answers at the very end: both ring neighbours of a survivor leave after
    // their masked input, so its self-mask seed has one share (its own).
    let p = SecAggParams::complete(10, 100)
        .with_neighbours(2)
        .with_threshold(2)
        .with_round(0, 4);
    let [l, r] = [g.neighbours(a)[0], g.neighbours(a)[1]];
    let drops = BTreeMap::from([
        (l, DropPoint::AfterMaskedInput),
        (r, DropPoint::AfterMaskedInput),
    ]);
    let e = run(&p, &drops, 1.0).unwrap_err();
    assert!(
        matches!(e, SecAggError::Dropouts { site, answered: 1, needed: 2, .. } if site == a),
        "{e}"
    );
    assert!(e.to_string().contains("self-mask seed"), "{e}");
}

/// A round stepped by hand up to the masked inputs: the server and the clients, with
/// the forwarded shares of stage 3.
struct Manual {
    server: SecAggServer,
    clients: Vec<SecAggClient>,
    forwarded: BTreeMap<u32, ForwardedShares>,
    /// Each site's advertised mask key, as the server saw it.
    mask_keys: BTreeMap<u32, [u8; 32]>,
}

fn manual(p: &SecAggParams) -> Manual {
    let mut server = SecAggServer::new(p).unwrap();
    let mut clients: Vec<SecAggClient> = (0..p.sites)
        .map(|s| SecAggClient::new(p, s, [s as u8 + 1; 32]).unwrap())
        .collect();
    let mut mask_keys = BTreeMap::new();
    for c in &mut clients {
        let m = c.advertise_keys().unwrap();
        mask_keys.insert(c.site(), m.mask_key);
        server.receive_keys(c.site(), m).unwrap();
    }
    let keys = server.broadcast_keys().unwrap();
    for c in &mut clients {
        let m = c.share_keys(&keys[&c.site()]).unwrap();
        server.receive_shares(c.site(), m).unwrap();
    }
    let forwarded = server.forward_shares().unwrap();
    Manual {
        server,
        clients,
        forwarded,
        mask_keys,
    }
}

#[test]
fn a_tampered_ciphertext_is_rejected_naming_its_sender() {
    let p = SecAggParams::complete(4, 8);
    let mut m = manual(&p);
    let mut msg = m.forwarded[&2].clone();
    let from = msg.shares[1].peer;
    let last = msg.shares[1].ciphertext.len() - 1;
    msg.shares[1].ciphertext[last] ^= 0x40;
    let e = m.clients[2].masked_input(&msg, &[0.0; 8]).unwrap_err();
    assert_eq!(e, SecAggError::Authentication { from, to: 2 });
    assert!(
        e.to_string()
            .contains(&format!("from site {from} to site 2")),
        "{e}"
    );
    // A ciphertext moved to another site's slot (a replay) fails as well.
    let mut msg = m.forwarded[&2].clone();
    msg.shares[0].ciphertext = msg.shares[1].ciphertext.clone();
    let e = m.clients[2].masked_input(&msg, &[0.0; 8]).unwrap_err();
    assert!(
        matches!(e, SecAggError::Authentication { to: 2, .. }),
        "{e}"
    );
    // The untouched message still works.
    m.clients[2]
        .masked_input(&m.forwarded[&2], &[0.0; 8])
        .unwrap();
}

/// Chi-square statistic and p-value of `counts` against equal expected counts.
fn chi_square_uniform(counts: &[u64]) -> (f64, f64) {
    let total: u64 = counts.iter().sum();
    let e = total as f64 / counts.len() as f64;
    let stat: f64 = counts.iter().map(|&o| (o as f64 - e).powi(2) / e).sum();
    let dof = (counts.len() - 1) as f64;
    (stat, 1.0 - ChiSquared::new(dof).unwrap().cdf(stat))
}

/// Histogram of the top 8 bits of each word (256 bins).
fn top_byte_histogram(v: &[u32]) -> Vec<u64> {
    let mut h = vec![0u64; 256];
    for &x in v {
        h[(x >> 24) as usize] += 1;
    }
    h
}

/// Site 0's masked input for an update of `d` copies of `x` (other sites send zeros).
fn masked_view(x: f32, d: usize, seed: u8) -> (Vec<u32>, Vec<u32>) {
    let p = SecAggParams::complete(3, d)
        .with_quantizer(Quantizer::new(1.0, 20, Rounding::Deterministic).unwrap());
    let mut server = SecAggServer::new(&p).unwrap();
    let mut clients: Vec<SecAggClient> = (0..3)
        .map(|s| SecAggClient::new(&p, s, [seed.wrapping_add(s as u8); 32]).unwrap())
        .collect();
    for c in &mut clients {
        let m = c.advertise_keys().unwrap();
        server.receive_keys(c.site(), m).unwrap();
    }
    let keys = server.broadcast_keys().unwrap();
    for c in &mut clients {
        let m = c.share_keys(&keys[&c.site()]).unwrap();
        server.receive_shares(c.site(), m).unwrap();
    }
    let fwd = server.forward_shares().unwrap();
    let y = clients[0]
        .masked_input(&fwd[&0], &vec![x; d])
        .unwrap()
        .masked
        .0;
    let mut q = vec![0u32; d];
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    p.quantizer
        .quantize_into(&vec![x; d], &mut rng, &mut q)
        .unwrap();
    (y, q)
}

#[test]
fn the_servers_view_of_a_masked_update_is_uniform_whatever_the_update() {
    // Two opposite updates (all -1 and all +1, the two ends of the range): the server's
    // view of site 0's masked vector is uniform over Z_2^32 in both cases (chi-square
    // on the top byte, 255 degrees of freedom), and the two views have the same
    // distribution (chi-square test of homogeneity of the two histograms).
    let d = 100_000;
    let (lo, q_lo) = masked_view(-1.0, d, 10);
    let (hi, _) = masked_view(1.0, d, 50);
    let (h_lo, h_hi) = (top_byte_histogram(&lo), top_byte_histogram(&hi));
    let (s_lo, p_lo) = chi_square_uniform(&h_lo);
    let (s_hi, p_hi) = chi_square_uniform(&h_hi);
    assert!(
        p_lo > 1e-3 && p_hi > 1e-3,
        "uniformity rejected: {s_lo} (p {p_lo}), {s_hi} (p {p_hi})"
    );
    // Homogeneity: 2 x 256 contingency table, 255 degrees of freedom.
    let mut stat = 0.0;
    for (a, b) in h_lo.iter().zip(&h_hi) {
        let e = (*a + *b) as f64 / 2.0;
        if e > 0.0 {
            stat += (*a as f64 - e).powi(2) / e + (*b as f64 - e).powi(2) / e;
        }
    }
    let p_h = 1.0 - ChiSquared::new(255.0).unwrap().cdf(stat);
    assert!(
        p_h > 1e-3,
        "the two views differ: chi-square {stat} (p {p_h})"
    );
    // The test has power: the unmasked quantised update (one level, all in one bin) is
    // rejected outright.
    let (s_q, p_q) = chi_square_uniform(&top_byte_histogram(&q_lo));
    assert!(p_q < 1e-12, "{s_q} {p_q}");
    // And the mean of the masked words is that of a uniform word, 2^31 - 0.5, within 5
    // standard errors (sd of a uniform word 2^32 / sqrt(12)).
    let mean = lo.iter().map(|&x| f64::from(x)).sum::<f64>() / d as f64;
    let se = 4_294_967_296.0 / 12f64.sqrt() / (d as f64).sqrt();
    assert!((mean - 2_147_483_647.5).abs() < 5.0 * se, "{mean}");
}

/// Steps `m` through the masked inputs of every site but `skip`, returning the requests.
fn to_unmask(m: &mut Manual, skip: &[u32]) -> BTreeMap<u32, UnmaskRequest> {
    for c in &mut m.clients {
        if skip.contains(&c.site()) {
            continue;
        }
        let y = c.masked_input(&m.forwarded[&c.site()], &[0.5; 8]).unwrap();
        m.server.receive_masked(c.site(), y).unwrap();
    }
    m.server.unmask_requests().unwrap()
}

#[test]
fn the_client_refuses_to_reveal_both_kinds_of_share_of_one_site() {
    let p = SecAggParams::complete(5, 8).with_threshold(3);
    let mut m = manual(&p);
    let req = to_unmask(&mut m, &[4]);
    assert_eq!(req[&0].dropped, vec![4]);
    // A server asking site 0 for the seed share and the key share of site 1.
    let bad = UnmaskRequest {
        survivors: vec![0, 1, 2, 3],
        dropped: vec![1, 4],
    };
    let e = m.clients[0].unmask(&bad).unwrap_err().to_string();
    assert!(
        e.contains("both") && e.contains("site 1") && e.contains("refused"),
        "{e}"
    );
    // Naming the site itself as dropped is refused too.
    let bad = UnmaskRequest {
        survivors: vec![1, 2, 3],
        dropped: vec![0, 4],
    };
    let e = m.clients[0].unmask(&bad).unwrap_err().to_string();
    assert!(e.contains("names this site as dropped"), "{e}");
    // The honest request is answered, once; a second request (which could ask for the
    // other kind of share) is refused.
    let ok = m.clients[0].unmask(&req[&0]).unwrap();
    assert_eq!(ok.key_shares.len(), 1);
    assert_eq!(ok.seed_shares.len(), 4);
    let flip = UnmaskRequest {
        survivors: vec![0, 1, 2, 3, 4],
        dropped: vec![],
    };
    let e = m.clients[0].unmask(&flip).unwrap_err().to_string();
    assert!(e.contains("already answered"), "{e}");
    // The server refuses a response whose kinds of share differ from its request.
    let mut swapped = ok.clone();
    std::mem::swap(&mut swapped.seed_shares, &mut swapped.key_shares);
    let e = m.server.receive_unmask(0, swapped).unwrap_err().to_string();
    assert!(e.contains("does not answer its request"), "{e}");
    m.server.receive_unmask(0, ok).unwrap();
}

#[test]
fn malformed_and_out_of_range_messages_are_errors() {
    let p = SecAggParams::complete(4, 8)
        .with_threshold(2)
        .allowing_minority_threshold(true);
    let mut server = SecAggServer::new(&p).unwrap();
    let mut c0 = SecAggClient::new(&p, 0, [1; 32]).unwrap();
    // Out of order.
    let e = c0
        .share_keys(&NeighbourKeys { keys: vec![] })
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "secure aggregation: site 0: share_keys called in stage Fresh (expected Advertised)"
    );
    let adv = c0.advertise_keys().unwrap();
    // A sender out of range.
    let e = server.receive_keys(7, adv.clone()).unwrap_err().to_string();
    assert!(e.contains("site 7 is out of range"), "{e}");
    server.receive_keys(0, adv.clone()).unwrap();
    assert!(
        server
            .receive_keys(0, adv)
            .unwrap_err()
            .to_string()
            .contains("twice")
    );
    // A low-order public key from a neighbour.
    let bad = NeighbourKeys {
        keys: vec![SiteKeys {
            site: 1,
            enc_key: [0; 32],
            mask_key: [1; 32],
        }],
    };
    let e = c0.share_keys(&bad).unwrap_err().to_string();
    assert!(e.contains("low-order"), "{e}");
    // Keys of a site that is not a neighbour (out of range here).
    let mut c1 = SecAggClient::new(&p, 1, [2; 32]).unwrap();
    c1.advertise_keys().unwrap();
    let bad = NeighbourKeys {
        keys: vec![SiteKeys {
            site: 9,
            enc_key: [9; 32],
            mask_key: [8; 32],
        }],
    };
    assert!(
        c1.share_keys(&bad)
            .unwrap_err()
            .to_string()
            .contains("not one of its neighbours")
    );

    // A whole round by hand for the later stages.
    let mut m = manual(&p);
    // An update of the wrong length, and a NaN.
    let e = m.clients[0]
        .masked_input(&m.forwarded[&0], &[0.0; 7])
        .unwrap_err()
        .to_string();
    assert!(e.contains("7 values") && e.contains("aggregates 8"), "{e}");
    let mut x = [0.0f32; 8];
    x[3] = f32::NAN;
    let e = m.clients[0]
        .masked_input(&m.forwarded[&0], &x)
        .unwrap_err()
        .to_string();
    assert!(e.contains("coordinate 3 is NaN"), "{e}");
    // A masked vector of the wrong length at the server.
    let e = m
        .server
        .receive_masked(
            1,
            MaskedInput {
                masked: RingVector(vec![0; 9]),
            },
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("9 values"), "{e}");
    // Garbage bytes on the wire decode to an error, not a panic.
    let e = postcard::from_bytes::<ShareKeys>(&[200, 1, 2]).unwrap_err();
    assert_eq!(e, postcard::Error::DeserializeUnexpectedEnd, "{e}");
    let e = postcard::from_bytes::<UnmaskRequest>(&[]).unwrap_err();
    assert_eq!(e, postcard::Error::DeserializeUnexpectedEnd, "{e}");
    // A share ciphertext for a site that is not a neighbour with keys.
    let mut server = SecAggServer::new(&p).unwrap();
    for s in 0..4 {
        let mut c = SecAggClient::new(&p, s, [s as u8 + 9; 32]).unwrap();
        server.receive_keys(s, c.advertise_keys().unwrap()).unwrap();
    }
    server.broadcast_keys().unwrap();
    let e = server
        .receive_shares(
            0,
            ShareKeys {
                shares: vec![EncryptedShares {
                    peer: 0,
                    ciphertext: vec![0; 82],
                }],
            },
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("sent shares for sites [0]"), "{e}");

    // A share value above the group order in an unmask response.
    let mut m = manual(&p);
    let req = to_unmask(&mut m, &[]);
    let mut resp = m.clients[0].unmask(&req[&0]).unwrap();
    resp.seed_shares[0].value = [0xff; 32];
    let e = m.server.receive_unmask(0, resp).unwrap_err().to_string();
    assert!(e.contains("not a field element"), "{e}");
    // Parameters out of range.
    let e = SecAggParams::complete(4, 8)
        .with_threshold(5)
        .validate()
        .unwrap_err()
        .to_string();
    assert!(e.contains("threshold = 5"), "{e}");
}

#[test]
fn bytes_per_site_match_the_hand_count() {
    // Complete graph of 5 sites (ids < 128: one-byte varints), d = 1000, no dropouts.
    // Up: AdvertiseKeys 64; ShareKeys 1 + 4 x (1 peer + 1 length + 82 ciphertext), the
    // ciphertext being the payload (1 + 1 + 32 + 32) and the 16-byte tag; MaskedInput 2
    // (varint 4000) + 4000; UnmaskResponse 1 + 5 x 33 seed shares + 1 (no key shares).
    // Total 64 + 337 + 4002 + 167 = 4570.
    // Down: NeighbourKeys 1 + 4 x (1 + 64) = 261; ForwardedShares 1 + 4 x 84 = 337;
    // UnmaskRequest 1 + 5 + 1 = 7. Total 605.
    let p = SecAggParams::complete(5, 1000).with_threshold(3);
    let r = run(&p, &BTreeMap::new(), 1.0).unwrap();
    assert!(r.up_bytes.iter().all(|&b| b == 4570), "{:?}", r.up_bytes);
    assert!(r.down_bytes.iter().all(|&b| b == 605), "{:?}", r.down_bytes);
    assert_eq!(r.up_bytes_per_survivor(), 4570.0);
    assert_eq!(r.stages.len(), 4);
}

#[test]
fn the_dropout_choice_keeps_every_neighbourhood_at_the_threshold() {
    // H(20, 4), threshold 2 (a minority threshold, allowed explicitly to leave room for
    // dropouts): three dropouts leave every neighbourhood at the threshold and the
    // survivors connected (H(n, 4) stays connected after removing 3 sites).
    let p = SecAggParams::complete(20, 4)
        .with_neighbours(4)
        .with_threshold(2)
        .allowing_minority_threshold(true)
        .with_round(0, 9);
    let g = CommunicationGraph::new(&p).unwrap();
    let d = choose_dropouts(&p, 3, 3).unwrap();
    assert_eq!(d.len(), 3);
    let gone: std::collections::BTreeSet<u32> = d.iter().copied().collect();
    for v in 0..20 {
        let alive = g
            .neighbours(v)
            .iter()
            .filter(|w| !gone.contains(*w))
            .count()
            + usize::from(!gone.contains(&v));
        assert!(alive >= 2, "site {v}: {alive} of its neighbourhood left");
    }
    assert!(g.connected_without(&gone));
    // On a ring (2 neighbours) a second dropout would split the survivors (two
    // non-adjacent sites) or leave a dropped site's shares below the threshold (two
    // adjacent ones): only one is chosen.
    let ring = p.with_neighbours(2).with_threshold(2);
    assert_eq!(choose_dropouts(&ring, 4, 3).unwrap().len(), 1);
}

/// Two sites of a 6-ring that are not neighbours and share no neighbour: dropping both
/// splits the survivors in two.
fn opposite_pair(g: &CommunicationGraph) -> (u32, u32) {
    (0..6u32)
        .flat_map(|a| (a + 1..6).map(move |b| (a, b)))
        .find(|&(a, b)| {
            !g.neighbours(a).contains(&b)
                && !g.neighbours(a).iter().any(|w| g.neighbours(b).contains(w))
        })
        .unwrap()
}

/// Issue 13, item 4: on a ring of 6 (k 2, t 2) two opposite sites dropping after
/// sharing their keys leave every neighbourhood at the threshold, so the server used to
/// unmask: the survivors then form two groups that share no pairwise mask, and each
/// group's masks cancel in its own sum, so the revealed self-mask seeds gave the server
/// each group's partial sum. Now the round is aborted before any share is revealed.
#[test]
fn survivors_that_split_abort_the_round_before_unmasking() {
    let p = SecAggParams::complete(6, 16)
        .with_neighbours(2)
        .with_threshold(2)
        .with_round(1, 5);
    let g = CommunicationGraph::new(&p).unwrap();
    // Two opposite sites (not neighbours, no neighbour in common): every other site
    // keeps itself and one neighbour (the threshold), but the ring falls in two.
    let (a, b) = opposite_pair(&g);
    assert!(!g.connected_without(&[a, b].into_iter().collect()));
    let drops: BTreeMap<u32, DropPoint> =
        [(a, DropPoint::AfterShares), (b, DropPoint::AfterShares)].into();
    let e = run(&p, &drops, 1.0).unwrap_err();
    match &e {
        SecAggError::Disconnected { pieces, group } => {
            assert_eq!(*pieces, 2, "{e}");
            assert_eq!(group.len(), 2, "{e}");
        }
        other => panic!("expected Disconnected, got {other}"),
    }
    assert!(e.to_string().contains("partial sum"), "{e}");
    // One site dropping leaves a connected path: the round finishes with the other five.
    let one: BTreeMap<u32, DropPoint> = [(a, DropPoint::AfterShares)].into();
    let r = run(&p, &one, 1.0).unwrap();
    assert_eq!(r.output.survivors.len(), 5);
}

/// Issue 13 item 4, the leak itself: on the same split ring, a server without the
/// connectivity check (Ward's before this fix, and Flower's) sends each survivor the
/// requests it always sends (seed shares of its surviving neighbours and itself, key
/// shares of its dropped neighbours); each request is consistent, so every client
/// answers. With those shares the server removes one piece's self masks and the masks
/// that piece shares with the dropped sites; the piece's pairwise masks cancel in its
/// own sum, so it reads the piece's partial sum: here the sum of 2 of the 6 updates,
/// equal to their plain sum within the quantiser's bound. Today's server refuses to
/// send those requests at all.
#[test]
fn a_split_round_would_reveal_each_pieces_partial_sum() {
    let p = SecAggParams::complete(6, 16)
        .with_neighbours(2)
        .with_threshold(2)
        .with_round(1, 5);
    let g = CommunicationGraph::new(&p).unwrap();
    let (a, b) = opposite_pair(&g);
    let dropped = [a, b];
    let alive: Vec<u32> = (0..6).filter(|s| !dropped.contains(s)).collect();
    // The protocol up to the masked inputs, keeping what the server sees.
    let Manual {
        mut server,
        mut clients,
        forwarded,
        mask_keys,
    } = manual(&p);
    let mut masked = BTreeMap::new();
    for &s in &alive {
        let c = &mut clients[s as usize];
        let y = c
            .masked_input(&forwarded[&s], &update(s, p.dim, 1.0))
            .unwrap();
        masked.insert(s, y.masked.0.clone());
        server.receive_masked(s, y).unwrap();
    }
    // After the fix: refused before any share is asked for.
    assert!(matches!(
        server.unmask_requests(),
        Err(SecAggError::Disconnected { pieces: 2, .. })
    ));
    // Before it: the usual requests, answered.
    let mut seed_shares: BTreeMap<u32, Vec<(u32, curve25519_dalek::Scalar)>> = BTreeMap::new();
    let mut key_shares: BTreeMap<u32, Vec<(u32, curve25519_dalek::Scalar)>> = BTreeMap::new();
    for &v in &alive {
        let nb = g.neighbours(v);
        let mut survivors: Vec<u32> = nb.iter().copied().filter(|w| alive.contains(w)).collect();
        survivors.push(v);
        survivors.sort_unstable();
        let gone: Vec<u32> = nb.iter().copied().filter(|w| dropped.contains(w)).collect();
        let req = UnmaskRequest {
            survivors,
            dropped: gone,
        };
        let resp = clients[v as usize].unmask(&req).unwrap();
        for r in resp.seed_shares {
            let x = crypto::scalar_from_wire(r.value, "seed share").unwrap();
            seed_shares.entry(r.site).or_default().push((v, x));
        }
        for r in resp.key_shares {
            let x = crypto::scalar_from_wire(r.value, "key share").unwrap();
            key_shares.entry(r.site).or_default().push((v, x));
        }
    }
    // One piece: the survivors reachable from the first without the dropped sites.
    let mut piece = vec![alive[0]];
    let mut i = 0;
    while i < piece.len() {
        for &w in g.neighbours(piece[i]) {
            if alive.contains(&w) && !piece.contains(&w) {
                piece.push(w);
            }
        }
        i += 1;
    }
    piece.sort_unstable();
    assert_eq!(piece.len(), 2, "{piece:?}");
    let round = p.round;
    let mut masks = Vec::new();
    for &u in &piece {
        let seed = crypto::combine(&seed_shares[&u][..2]).unwrap();
        masks.push(crypto::Mask {
            seed: crypto::self_mask_seed(&seed, round, u),
            negate: true,
        });
    }
    for &u in &dropped {
        let m = crypto::combine(&key_shares[&u][..2]).unwrap();
        let sk = crypto::mask_secret(&m, round, u);
        for &v in g.neighbours(u).iter().filter(|v| piece.contains(v)) {
            let shared = crypto::agree(&sk, &mask_keys[&v], v, "mask").unwrap();
            masks.push(crypto::Mask {
                seed: crypto::pair_mask_seed(&shared, round, u, v),
                negate: v < u,
            });
        }
    }
    let mut z = vec![0u32; p.dim];
    for &u in &piece {
        for (acc, &w) in z.iter_mut().zip(&masked[&u]) {
            *acc = acc.wrapping_add(w);
        }
    }
    crypto::apply_masks(p.prg, &masks, &mut z, false);
    let partial = p.quantizer.dequantize_sum(&z, 2);
    let err = max_err(&partial, &piece, p.dim, 1.0);
    assert!(err <= bound(&p, 2), "partial sum of {piece:?} off by {err}");
}

/// One neighbour pairs the sites off (each pair's sum would be unmaskable): refused.
#[test]
fn one_neighbour_is_refused_beyond_two_sites() {
    let e = SecAggParams::complete(6, 4)
        .with_neighbours(1)
        .with_threshold(2)
        .validate()
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("neighbours = 1: one neighbour splits 6 sites"),
        "{e}"
    );
    SecAggParams::complete(2, 4).validate().unwrap();
}

/// Issue 13 item 4: `2t <= k + 1` is refused by default (a lying server could collect
/// both kinds of share of one site from two halves of its neighbourhood), and allowed
/// only when asked for. k = 4: t = 2 gives 4 <= 5, refused; t = 3 (the majority) runs.
#[test]
fn a_minority_threshold_is_refused_unless_allowed() {
    let p = SecAggParams::complete(10, 4)
        .with_neighbours(4)
        .with_threshold(2);
    let e = p.validate().unwrap_err().to_string();
    assert!(
        e.contains("threshold = 2") && e.contains("neighbours + 1 = 5"),
        "{e}"
    );
    assert!(e.contains("use at least 3"), "{e}");
    p.allowing_minority_threshold(true).validate().unwrap();
    p.with_threshold(3).validate().unwrap();
    // The complete graph of 10: Flower's round(n / 2) = 5 is a minority of 10.
    let flower = SecAggParams::complete(10, 4).with_threshold(5);
    assert!(
        flower
            .validate()
            .is_err_and(|e| e.to_string().contains("2 * threshold"))
    );
    assert_eq!(SecAggParams::complete(10, 4).threshold, 6);
    SecAggParams::complete(10, 4).validate().unwrap();
}

/// The degree rule: a union bound over the n sites of `P[Bin(k + 1, 1 - dropout) < t]`
/// with the majority threshold. By hand: k = 2, t = 2, dropout 0.2:
/// `P[Bin(3, 0.8) < 2] = 0.2^3 + 3 * 0.8 * 0.2^2 = 0.104`, so for 10 sites the union
/// bound is 1.04. Without dropouts k = 2 suffices;
/// the recommended k grows with the dropout rate and stays below n; a rate no k can
/// carry gives `None`.
#[test]
fn recommended_neighbours_follow_the_binomial_rule() {
    assert_eq!(SecAggParams::recommended_neighbours(10, 0.0, 20), Some(2));
    let k = SecAggParams::recommended_neighbours(100, 0.1, 20).unwrap();
    let k_more = SecAggParams::recommended_neighbours(100, 0.2, 20).unwrap();
    assert!(k > 2 && k_more > k && k_more < 100, "{k} {k_more}");
    // Check the chosen k against the rule directly, and k - 2 (same parity) against it.
    let tail = |k: u32| {
        let t = SecAggParams::majority(k);
        (0..t)
            .map(|i| {
                let c = (0..i).fold(1.0, |c, j| c * f64::from(k + 1 - j) / f64::from(j + 1));
                c * 0.9f64.powi(i as i32) * 0.1f64.powi((k + 1 - i) as i32)
            })
            .sum::<f64>()
    };
    assert!(100.0 * tail(k) <= 2f64.powi(-20), "{}", tail(k));
    assert!(100.0 * tail(k - 1) > 2f64.powi(-20) || 100.0 * tail(k - 2) > 2f64.powi(-20));
    // 10 sites, dropout 0.2, 2^-1: n P[Bin(k + 1, 0.8) < t] by hand (t = 2, 3, 4 for
    // k = 2, 4, 6; odd k is allowed for even n too): k = 2: 1.04, k = 3: 1.808,
    // k = 4: 0.5792, k = 5: 0.9888, k = 6: 0.33344 <= 0.5. So k = 6.
    assert_eq!(SecAggParams::recommended_neighbours(10, 0.2, 1), Some(6));
    // Nobody ever survives: no k helps.
    assert_eq!(SecAggParams::recommended_neighbours(10, 1.0, 20), None);
}
