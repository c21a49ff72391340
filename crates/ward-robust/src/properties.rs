//! Laws every rule must obey, checked with proptest (fixed seeds): order does not
//! matter, `n` copies of one update give that update, the rules that reduce to the
//! mean do, and `f` Byzantine updates at `+-1e30` cannot drag the output away (the
//! breakdown bound).

use proptest::prelude::*;
use ward_core::{Params, Update};
use ward_fl::{Aggregate, Aggregator, RoundContext};

use crate::common::testing::upds;
use crate::pre::{Bucketing, Composed, Nnm, NormClip};
use crate::{
    Bulyan, CenteredClipping, ClippedClustering, ClippedMean, Dnc, Flame, Fltrust, GeometricMedian,
    Krum, Mean, Median, MultiKrum, SignGuard, TrimmedMean,
};

fn config(seed: u64) -> ProptestConfig {
    ProptestConfig {
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        cases: 48,
        ..ProptestConfig::default()
    }
}

/// Every rule with `f = 1` (all need at most 7 updates).
fn rules() -> Vec<Box<dyn Aggregator>> {
    vec![
        Box::new(Mean),
        Box::new(Median::new()),
        Box::new(Median::tolerating(1)),
        Box::new(TrimmedMean::new(1)),
        Box::new(Krum::new(1)),
        Box::new(MultiKrum::new(1, None).unwrap()),
        Box::new(MultiKrum::new(1, Some(2)).unwrap()),
        Box::new(Bulyan::new(1)),
        Box::new(GeometricMedian::default()),
        Box::new(CenteredClipping::new(Some(2.0), 3).unwrap()),
        Box::new(CenteredClipping::new(None, 1).unwrap()),
        Box::new(ClippedMean::new(2.0, 3).unwrap()),
        Box::new(Fltrust),
        // b = 5 < d for most cases: the subsampled path; 2 iterations intersect.
        Box::new(Dnc::new(1, 5, 1.0, 2, 11).unwrap()),
        Box::new(Dnc::with_defaults(1, 0)),
        Box::new(SignGuard::new(3)),
        Box::new(ClippedClustering),
        // lambda = 0: the laws below hold exactly; the noise is tested in flame.rs.
        Box::new(Flame::new(0.0, 5).unwrap()),
        Box::new(Composed::new(
            vec![Box::new(Nnm::new(1))],
            Box::new(Krum::new(1)),
        )),
        Box::new(Composed::new(
            vec![Box::new(NormClip::new(3.0).unwrap())],
            Box::new(Median::new()),
        )),
    ]
}

fn agg(rule: &dyn Aggregator, u: &[Update], global: &Params, server: &Params) -> Aggregate {
    let ctx = RoundContext {
        round: 3,
        global,
        server_update: Some(server),
        previous_update: None,
    };
    rule.aggregate(u, &ctx)
        .unwrap_or_else(|e| panic!("{}: {e}", rule.name()))
}

/// `n` rows of length `d` with values in [-10, 10].
fn matrix(
    n: std::ops::Range<usize>,
    d: std::ops::Range<usize>,
) -> impl Strategy<Value = Vec<Vec<f32>>> {
    (n, d)
        .prop_flat_map(|(n, d)| prop::collection::vec(prop::collection::vec(-10.0f32..10.0, d), n))
}

fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
    a.iter()
        .zip(b)
        .all(|(x, y)| (x - y).abs() <= tol * (1.0 + y.abs()))
}

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt()
}

proptest! {
    #![proptest_config(config(1))]

    /// Permuting the updates permutes nothing in the result: the same aggregate, and
    /// the selected indices are the permuted images of the original selection.
    #[test]
    fn order_does_not_matter(
        x in matrix(7..12, 1..24),
        server in prop::collection::vec(-10.0f32..10.0, 24),
        perm_seed in any::<u64>(),
    ) {
        let n = x.len();
        let d = x[0].len();
        // Which of two identical updates is "selected" is a matter of index.
        prop_assume!((0..n).all(|i| (0..i).all(|j| x[i] != x[j])));
        let global = Params::from_flat(vec![0.5; d]);
        let server = Params::from_flat(server[..d].to_vec());
        // a permutation from the seed (Fisher-Yates with an LCG)
        let mut perm: Vec<usize> = (0..n).collect();
        let mut s = perm_seed;
        for i in (1..n).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            perm.swap(i, (s >> 33) as usize % (i + 1));
        }
        let u = upds(&x);
        let pu: Vec<Update> = perm.iter().map(|&i| u[i].clone()).collect();
        for rule in rules() {
            // SignGuard refuses a round where no update passes both filters: then the
            // permuted round must be refused too.
            let ctx = RoundContext { round: 3, global: &global, server_update: Some(&server), previous_update: None };
            if rule.name() == "signguard" && rule.aggregate(&u, &ctx).is_err() {
                match rule.aggregate(&pu, &ctx) {
                    Err(e) => prop_assert!(
                        e.to_string().contains("no update passes both filters"),
                        "{e}"
                    ),
                    Ok(_) => prop_assert!(false, "signguard accepted the permuted round"),
                }
                continue;
            }
            let a = agg(rule.as_ref(), &u, &global, &server);
            let b = agg(rule.as_ref(), &pu, &global, &server);
            prop_assert!(close(a.params.values(), b.params.values(), 1e-5),
                "{}: {:?} vs {:?}", rule.name(), a.params.values(), b.params.values());
            // After NNM, distinct updates with the same neighbourhood become identical,
            // so which of them Krum selects is a matter of index: compare params only.
            let mixed = rule.name().starts_with("nnm+");
            if let (Some(sa), Some(sb), false) = (&a.selected, &b.selected, mixed) {
                let mut back: Vec<usize> = sb.iter().map(|&k| perm[k]).collect();
                back.sort_unstable();
                prop_assert_eq!(sa, &back, "{}", rule.name());
            }
            if let (Some(wa), Some(wb)) = (&a.weights, &b.weights) {
                for (k, &w) in wb.iter().enumerate() {
                    prop_assert!((wa[perm[k]] - w).abs() <= 1e-9 * (1.0 + w.abs()), "{}", rule.name());
                }
            }
        }
    }

    /// `n` copies of one update aggregate to that update (for FLTrust the server update
    /// is that update's delta's direction and length, so rescaling changes nothing;
    /// centered clipping's radius covers the delta).
    #[test]
    fn copies_of_one_update_give_that_update(
        v in prop::collection::vec(-10.0f32..10.0, 1..24),
        n in 7usize..11,
    ) {
        let d = v.len();
        let global = Params::from_flat(vec![0.0; d]);
        let server = Params::from_flat(v.clone());
        let u = upds(&vec![v.clone(); n]);
        for rule in rules() {
            let name = rule.name();
            if (matches!(name.as_str(), "fltrust" | "signguard") && norm(&v) == 0.0)
                || (name.starts_with("clip+") && norm(&v) > 3.0)
            {
                // a zero server delta is refused (FLTrust), a zero median norm filters
                // everything (SignGuard); clipping shortens a long v
                continue;
            }
            let a = agg(rule.as_ref(), &u, &global, &server);
            if matches!(name.as_str(), "centered-clipping" | "clipped-mean") && norm(&v) > 2.0 {
                // v is reached only when it lies within tau of the global model
                continue;
            }

            prop_assert!(close(a.params.values(), &v, 1e-6), "{}: {:?}", name, a.params.values());
        }
        // centered clipping with a radius that covers v: exact in one iteration
        let cc = CenteredClipping::new(Some(1e3), 1).unwrap();
        prop_assert!(close(agg(&cc, &u, &global, &server).params.values(), &v, 1e-6));
    }

    /// Where the rule guarantees it, the result is the plain mean: trimmed mean with
    /// f = 0, Multi-Krum with f = 0 and m = n, centered clipping whose radius covers
    /// every delta (one step from 0 is the mean delta), NNM with f = 0 (every update
    /// becomes the mean), bucketing whose size divides n, and the median of n <= 2.
    #[test]
    fn rules_that_reduce_to_the_mean_do(x in matrix(1..10, 1..20), s in 1usize..4) {
        let n = x.len();
        let d = x[0].len();
        let global = Params::from_flat(vec![0.0; d]);
        let u = upds(&x);
        let mean = agg(&Mean, &u, &global, &global);
        let mut same: Vec<Box<dyn Aggregator>> = vec![
            Box::new(TrimmedMean::new(0)),
            Box::new(CenteredClipping::new(Some(1e6), 1).unwrap()),
            Box::new(ClippedMean::new(1e6, 1).unwrap()),
            Box::new(Composed::new(vec![Box::new(Nnm::new(0))], Box::new(Mean))),
            // DnC with f = 0 removes nothing.
            Box::new(Dnc::new(0, 3, 1.0, 2, 1).unwrap()),
        ];
        if n >= 3 {
            same.push(Box::new(MultiKrum::new(0, Some(n)).unwrap()));
        }
        if n % s == 0 {
            same.push(Box::new(Composed::new(
                vec![Box::new(Bucketing::new(s, 9).unwrap())],
                Box::new(Mean),
            )));
        }
        if n <= 2 {
            same.push(Box::new(Median::new()));
        }
        for rule in same {
            let a = agg(rule.as_ref(), &u, &global, &global);
            prop_assert!(close(a.params.values(), mean.params.values(), 1e-5),
                "{}: {:?} vs mean {:?}", rule.name(), a.params.values(), mean.params.values());
        }
    }

    /// f Byzantine updates at +-1e30 (finite) do not break the rules: coordinate-wise
    /// and selecting rules stay inside the honest updates' bounding box (and select only
    /// honest ones); geometric median stays within its breakdown bound of the honest
    /// mean; centered clipping within iterations * tau of the global model; FLTrust
    /// within ||g0|| of it.
    #[test]
    fn byzantine_updates_far_away_cannot_drag_the_output(
        honest in matrix(9..14, 1..16),
        f in 1usize..3,
        signs in prop::collection::vec(any::<bool>(), 16),
    ) {
        let d = honest[0].len();
        let h = honest.len();
        let byz: Vec<f32> = (0..d).map(|k| if signs[k] { 1e30 } else { -1e30 }).collect();
        // Byzantine updates first, so "pick the first" tie-breaking cannot help.
        let mut x = vec![byz; f];
        x.extend(honest.iter().cloned());
        let n = x.len();
        let u = upds(&x);
        let global = Params::from_flat(vec![0.0; d]);
        let server = Params::from_flat(honest[0].clone());
        let lo: Vec<f32> = (0..d).map(|k| honest.iter().map(|r| r[k]).fold(f32::INFINITY, f32::min)).collect();
        let hi: Vec<f32> = (0..d).map(|k| honest.iter().map(|r| r[k]).fold(f32::NEG_INFINITY, f32::max)).collect();
        let in_box = |v: &[f32]| v.iter().enumerate().all(|(k, &y)| y >= lo[k] - 1e-4 && y <= hi[k] + 1e-4);
        let boxed: Vec<Box<dyn Aggregator>> = vec![
            Box::new(Median::tolerating(f)),
            Box::new(TrimmedMean::new(f)),
            Box::new(Krum::new(f)),
            Box::new(MultiKrum::new(f, None).unwrap()),
            Box::new(Composed::new(vec![Box::new(Nnm::new(f))], Box::new(Krum::new(f)))),
        ];
        for rule in boxed {
            let a = agg(rule.as_ref(), &u, &global, &server);
            prop_assert!(in_box(a.params.values()), "{}: {:?}", rule.name(), a.params.values());
            if let Some(sel) = &a.selected {
                prop_assert!(sel.iter().all(|&i| i >= f), "{} selected {:?}", rule.name(), sel);
            }
        }
        if n >= 4 * f + 3 {
            // Bulyan's guarantee is on the output: its late Krum steps score by the
            // single nearest neighbour, where f identical Byzantine copies (distance 0)
            // can be selected; the coordinate phase then discards them.
            let a = agg(&Bulyan::new(f), &u, &global, &server);
            prop_assert!(in_box(a.params.values()), "bulyan: {:?}", a.params.values());
        }
        // Geometric median: ||z - mean_h|| <= (2 (n - f) / (n - 2f)) max_i ||h_i - mean_h||
        // (Minsker 2015, Lemma 2.1 with alpha = f/n), plus slack for stopping at tol.
        let mean_h: Vec<f32> = (0..d).map(|k| honest.iter().map(|r| r[k]).sum::<f32>() / h as f32).collect();
        let radius = honest.iter().map(|r| {
            norm(&r.iter().zip(&mean_h).map(|(a, b)| a - b).collect::<Vec<_>>())
        }).fold(0.0, f64::max);
        let gm = agg(&GeometricMedian::default(), &u, &global, &server);
        let off = norm(&gm.params.values().iter().zip(&mean_h).map(|(a, b)| a - b).collect::<Vec<_>>());
        let bound = 2.0 * (n - f) as f64 / (n - 2 * f) as f64 * radius;
        prop_assert!(off <= bound + 1e-3, "geometric median {off} > {bound}");
        let w = gm.weights.unwrap();
        prop_assert!(w[..f].iter().all(|&wi| wi < 1e-20), "{w:?}");
        // Centered clipping: each iteration moves by at most tau.
        for rule in [
            &CenteredClipping::new(Some(2.0), 3).unwrap() as &dyn Aggregator,
            &ClippedMean::new(2.0, 3).unwrap(),
        ] {
            let cc = agg(rule, &u, &global, &server);
            prop_assert!(norm(cc.params.values()) <= 6.0 * (1.0 + 1e-6));
        }
        // FLTrust: every rescaled delta has the server's norm, so their convex
        // combination stays within it.
        let ft = agg(&Fltrust, &u, &global, &server);
        prop_assert!(norm(ft.params.values()) <= norm(server.values()) * (1.0 + 1e-6) + 1e-6);
        // DnC: the Byzantine copies dominate the top singular direction and score
        // highest, so exactly the honest updates are kept.
        for dnc in [Dnc::with_defaults(f, 0), Dnc::new(f, 4, 1.0, 3, 9).unwrap()] {
            let a = agg(&dnc, &u, &global, &server);
            prop_assert!(in_box(a.params.values()), "dnc: {:?}", a.params.values());
            prop_assert_eq!(a.selected, Some((f..n).collect::<Vec<_>>()));
        }
        // SignGuard, clipped clustering and FLAME clip to a median norm, which an
        // honest majority keeps an honest norm: the output is no longer than the
        // longest honest update. SignGuard's norm filter drops the Byzantine ones.
        let longest = honest.iter().map(|r| norm(r)).fold(0.0, f64::max);
        let sg = agg(&SignGuard::new(1), &u, &global, &server);
        prop_assert!(norm(sg.params.values()) <= longest * (1.0 + 1e-6), "signguard");
        prop_assert!(sg.selected.unwrap().iter().all(|&i| i >= f));
        for rule in [&ClippedClustering as &dyn Aggregator, &Flame::new(0.0, 1).unwrap()] {
            let a = agg(rule, &u, &global, &server);
            prop_assert!(norm(a.params.values()) <= longest * (1.0 + 1e-6), "{}", rule.name());
        }
    }
}

proptest! {
    #![proptest_config(config(2))]

    /// Fewer updates than a rule's assumption needs is an error naming the assumption,
    /// never an aggregate.
    #[test]
    fn assumption_violations_are_errors_with_their_formula(f in 0usize..4, short in 1usize..4) {
        let cases: Vec<(Box<dyn Aggregator>, &str, usize)> = vec![
            (Box::new(Median::tolerating(f)), "2f+1", 2 * f + 1),
            (Box::new(TrimmedMean::new(f)), "2f+1", 2 * f + 1),
            (Box::new(Krum::new(f)), "2f+3", 2 * f + 3),
            (Box::new(MultiKrum::new(f, None).unwrap()), "2f+3", 2 * f + 3),
            (Box::new(Bulyan::new(f)), "4f+3", 4 * f + 3),
            (Box::new(Dnc::with_defaults(f, 0)), "2f+1", 2 * f + 1),
        ];
        for (rule, formula, need) in cases {
            prop_assert_eq!(rule.min_updates(), need);
            let n = need.saturating_sub(short);
            if n == 0 {
                continue;
            }
            let g = Params::from_flat(vec![0.0]);
            let u = upds(&vec![vec![1.0]; n]);
            let err = rule.aggregate(&u, &RoundContext::new(1, &g)).unwrap_err().to_string();
            let want = format!(
                "federation config: {} with f = {f} needs n >= {formula} = {need} updates, got {n}",
                rule.name()
            );
            prop_assert_eq!(err, want);
        }
    }
}
