//! Split conformal coverage over 200 random calibration / test splits of every site of
//! three datasets, and FedCP-QQ's coverage on exchangeable and on differing sites.
//!
//! For exchangeable rows and continuous scores, the coverage of the exact rank rule
//! with `{j : s(x, j) <= qhat}` sets (LAC) or randomised sets (APS, RAPS) lies in `[1 - alpha, 1 - alpha + 1 / (n + 1))` in
//! expectation over the split (`n` calibration rows); the test asks the mean over 200
//! splits to lie in that interval widened by 3 standard errors of the mean.

use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ward_core::stats;
use ward_trust::conformal::{
    Inclusion, QuantileRule, Score, SplitConformal, calibration_scores, conformal_quantile,
    prediction_set_randomized,
};
use ward_trust::fedcp_qq;

use crate::sites::{self, Site};

const SPLITS: usize = 200;
const ALPHA: f64 = 0.1;

/// Mean and standard error of the test coverage over [`SPLITS`] half / half splits, and
/// the calibration size.
fn split_coverage(site: &Site, score: Score, seed: u64) -> (f64, f64, usize) {
    let n = site.labels.len();
    let n_cal = n / 2;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut idx: Vec<usize> = (0..n).collect();
    let mut cov = Vec::with_capacity(SPLITS);
    for _ in 0..SPLITS {
        idx.shuffle(&mut rng);
        let (c, t) = idx.split_at(n_cal);
        let y: Vec<usize> = c.iter().map(|&i| site.labels[i]).collect();
        let hit = if score == Score::Lac {
            let cp = SplitConformal::calibrate(
                &site.probs.select(c),
                &y,
                score,
                ALPHA,
                QuantileRule::Exact,
            )
            .unwrap();
            let sets = cp.predict(&site.probs.select(t), Inclusion::ScoreAtMost);
            t.iter()
                .zip(&sets)
                .filter(|(i, s)| s.contains(&site.labels[**i]))
                .count()
        } else {
            // APS and RAPS randomised (a two-class APS score is otherwise 1 for the
            // second class: a point mass that breaks the upper bound).
            let u: Vec<f64> = (0..n_cal).map(|_| rng.random::<f64>()).collect();
            let s = calibration_scores(&site.probs.select(c), &y, score, Some(&u)).unwrap();
            let q = conformal_quantile(&s, ALPHA, QuantileRule::Exact).unwrap();
            t.iter()
                .filter(|&&i| {
                    prediction_set_randomized(site.probs.row(i), score, q, rng.random::<f64>())
                        .contains(&site.labels[i])
                })
                .count()
        };
        cov.push(hit as f64 / t.len() as f64);
    }
    let se = stats::std(&cov).unwrap() / (SPLITS as f64).sqrt();
    (stats::mean(&cov).unwrap(), se, n_cal)
}

fn check_dataset(name: &str, sites: &[Site], scores: &[Score]) -> Vec<String> {
    let mut lines = Vec::new();
    for (s, site) in sites.iter().enumerate() {
        for (j, &score) in scores.iter().enumerate() {
            let (mean, se, n) = split_coverage(site, score, 1000 + (10 * s + j) as u64);
            let (lo, hi) = (1.0 - ALPHA, 1.0 - ALPHA + 1.0 / (n + 1) as f64);
            let line = format!(
                "{name} {} (n_cal {n}) {}: coverage {mean:.4} +- {se:.4}, bounds [{lo:.4}, {hi:.4}]",
                site.name,
                score.name()
            );
            assert!(
                mean >= lo - 3.0 * se && mean <= hi + 3.0 * se,
                "outside the band: {line}"
            );
            lines.push(line);
        }
    }
    lines
}

#[allow(clippy::print_stderr)]
fn show(lines: &[String]) {
    for l in lines {
        eprintln!("{l}");
    }
}

/// Every site of Fed-Heart-Disease (binary: LAC, APS), breast cancer over three
/// Dirichlet sites (LAC, APS) and three synthetic 4-class sites that differ in shift and
/// temperature (LAC, APS, RAPS with k_reg 1, lambda 0.1).
#[test]
fn split_conformal_coverage_holds_at_every_site() {
    let mut lines = check_dataset("heart", &sites::heart(), &[Score::Lac, Score::Aps]);
    lines.extend(check_dataset(
        "breast",
        &sites::breast_cancer(),
        &[Score::Lac, Score::Aps],
    ));
    let raps = Score::Raps {
        k_reg: 1,
        lambda: 0.1,
    };
    lines.extend(check_dataset(
        "synth",
        &sites::synthetic(7, &[(300, 0.0, 1.0), (240, 1.5, 1.5), (160, -1.0, 0.7)]),
        &[Score::Lac, Score::Aps, raps],
    ));
    show(&lines);
    assert_eq!(lines.len(), 4 * 2 + 3 * 2 + 3 * 3);
}

/// FedCP-QQ on four exchangeable sites (one synthetic distribution, rows dealt at
/// random: 100 calibration rows per site, the other 400 rows the test set): the mean
/// coverage over 200 deals matches the plan's exact coverage within 3 standard errors.
/// Then on the four heart hospitals, which are not exchangeable: the per-site coverage
/// of the one federated threshold is reported (no guarantee holds there).
#[test]
fn fedcp_qq_coverage_on_exchangeable_sites_and_per_site_on_heart() {
    let pool = sites::synthetic(11, &[(800, 0.0, 1.2)]).remove(0);
    let scores = calibration_scores(&pool.probs, &pool.labels, Score::Aps, None).unwrap();
    let plan = fedcp_qq::plan(ALPHA, &[100; 4]).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut idx: Vec<usize> = (0..800).collect();
    let mut cov = Vec::new();
    for _ in 0..SPLITS {
        idx.shuffle(&mut rng);
        let local: Vec<f64> = (0..4)
            .map(|s| {
                let site: Vec<f64> = idx[100 * s..100 * (s + 1)]
                    .iter()
                    .map(|&i| scores[i])
                    .collect();
                fedcp_qq::local_quantile(&plan, s, &site).unwrap()
            })
            .collect();
        let q = fedcp_qq::aggregate(&plan, &local).unwrap();
        let hit = idx[400..].iter().filter(|&&i| scores[i] <= q).count();
        cov.push(hit as f64 / 400.0);
    }
    let (mean, se) = (
        stats::mean(&cov).unwrap(),
        stats::std(&cov).unwrap() / (SPLITS as f64).sqrt(),
    );
    let mut lines = vec![format!(
        "fedcp-qq exchangeable: plan l {:?} k {} coverage {:.4}; measured {mean:.4} +- {se:.4}",
        plan.local_rank, plan.k, plan.coverage
    )];
    assert!(plan.coverage >= 1.0 - ALPHA);
    assert!((mean - plan.coverage).abs() <= 3.0 * se, "{}", lines[0]);

    // Heart: each hospital's calibration half sends one number; per-site coverage of
    // the threshold on its own test half, one split (seeded).
    let heart = sites::heart();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let halves: Vec<(Vec<usize>, Vec<usize>)> = heart
        .iter()
        .map(|s| {
            let mut i: Vec<usize> = (0..s.labels.len()).collect();
            i.shuffle(&mut rng);
            let (c, t) = i.split_at(i.len() / 2);
            (c.to_vec(), t.to_vec())
        })
        .collect();
    let sizes: Vec<usize> = halves.iter().map(|h| h.0.len()).collect();
    let plan = fedcp_qq::plan(ALPHA, &sizes).unwrap();
    let local: Vec<f64> = heart
        .iter()
        .zip(&halves)
        .enumerate()
        .map(|(j, (s, (c, _)))| {
            let y: Vec<usize> = c.iter().map(|&i| s.labels[i]).collect();
            let sc = calibration_scores(&s.probs.select(c), &y, Score::Lac, None).unwrap();
            fedcp_qq::local_quantile(&plan, j, &sc).unwrap()
        })
        .collect();
    let q = fedcp_qq::aggregate(&plan, &local).unwrap();
    for (s, (_, t)) in heart.iter().zip(&halves) {
        let y: Vec<usize> = t.iter().map(|&i| s.labels[i]).collect();
        let sc = calibration_scores(&s.probs.select(t), &y, Score::Lac, None).unwrap();
        let c = sc.iter().filter(|&&v| v <= q).count() as f64 / sc.len() as f64;
        assert!((0.0..=1.0).contains(&c));
        lines.push(format!(
            "fedcp-qq heart {} (n_cal {}): coverage {c:.3} at target {:.2} (plan {:.4}, no guarantee across differing sites)",
            s.name,
            sizes[lines.len() - 1],
            1.0 - ALPHA,
            plan.coverage
        ));
    }
    show(&lines);
}

/// Mondrian (class-conditional) LAC on a synthetic 4-class site of 1200 rows: over 200
/// half / half splits, the coverage within every class is at least 1 - alpha (3
/// standard errors); the per-class calibration sizes vary with the split, so only the
/// lower bound is checked.
#[test]
fn mondrian_coverage_holds_within_every_class() {
    use ward_trust::conformal::Mondrian;
    let site = sites::synthetic(13, &[(1200, 1.0, 1.0)]).remove(0);
    let n = site.labels.len();
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let mut idx: Vec<usize> = (0..n).collect();
    let mut per_class: Vec<Vec<f64>> = vec![Vec::new(); 4];
    for _ in 0..SPLITS {
        idx.shuffle(&mut rng);
        let (c, t) = idx.split_at(n / 2);
        let y: Vec<usize> = c.iter().map(|&i| site.labels[i]).collect();
        let m = Mondrian::calibrate(
            &site.probs.select(c),
            &y,
            Score::Lac,
            ALPHA,
            QuantileRule::Exact,
        )
        .unwrap();
        for (j, cov) in per_class.iter_mut().enumerate() {
            let rows: Vec<usize> = t.iter().copied().filter(|&i| site.labels[i] == j).collect();
            let hit = rows
                .iter()
                .filter(|&&i| m.prediction_set(site.probs.row(i)).contains(&j))
                .count();
            cov.push(hit as f64 / rows.len() as f64);
        }
    }
    let mut lines = Vec::new();
    for (j, cov) in per_class.iter().enumerate() {
        let (mean, se) = (
            stats::mean(cov).unwrap(),
            stats::std(cov).unwrap() / (SPLITS as f64).sqrt(),
        );
        let line = format!("mondrian synth class {j}: coverage {mean:.4} +- {se:.4}");
        assert!(mean >= 1.0 - ALPHA - 3.0 * se, "{line}");
        lines.push(line);
    }
    show(&lines);
}
