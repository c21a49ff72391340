//! Calibration metrics: ECE (equal-width and adaptive bins), MCE, classwise ECE, Brier
//! score, NLL, accuracy and the reliability diagram's data.
//!
//! # Conventions
//! - **Confidence** is the top-label probability `max_j p_ij`; the **prediction** is the
//!   first class that reaches it (numpy's `argmax`).
//! - **Equal-width bins** (Guo et al. 2017, 15 by default): edges `i / B` computed as
//!   numpy's `linspace(0, 1, B + 1)` (`i * (1 / B)`, the last edge exactly 1); bin `b` is
//!   `(edge_b, edge_{b+1}]` and the first bin also holds 0. This is the reference code of
//!   Guo et al. (`ECELoss` in gpleiss/temperature_scaling: `conf > lo & conf <= hi`) and
//!   of netcal's default binning; a top-label confidence is never 0, so the first bin's
//!   closed end only matters for classwise ECE.
//! - **ECE** = `sum_b |B_b| / n * |acc(B_b) - conf(B_b)|`; **MCE** = `max_b |acc - conf|`
//!   over non-empty bins. Empty bins weigh nothing.
//! - **Adaptive ECE** (equal-mass bins, Nixon et al. 2019's adaptive binning applied to
//!   the top label): the rows sorted by (confidence, correct) and split into `B` groups
//!   whose sizes differ by at most one, the larger first (numpy's `array_split`); then
//!   the ECE formula. Ties are broken by correctness, so the value does not depend on row
//!   order.
//! - **Classwise ECE** (Kull et al. 2019): the mean over classes `j` of the equal-width
//!   ECE of the one-vs-rest problem "confidence" `p_ij`, "accuracy" `1[y_i = j]`.
//! - **Brier score**: `mean_i sum_j (p_ij - 1[y_i = j])^2`, not divided by `k` (so a
//!   binary task scores twice sklearn's `brier_score_loss`, which uses the positive
//!   class only).
//! - **NLL**: `-mean_i ln max(p_{i,y_i}, NLL_EPS)` in nats, [`NLL_EPS`] = 1e-15 (the
//!   clip scikit-learn's `log_loss` used up to 1.2).

use serde::Serialize;
use ward_core::stats;

use crate::{Probs, TrustError};

/// The default number of bins (Guo et al. 2017).
pub const DEFAULT_BINS: usize = 15;

/// Probabilities are clipped below at this value before the log in [`nll`].
pub const NLL_EPS: f64 = 1e-15;

/// One bin of a reliability diagram.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReliabilityBin {
    /// Lower edge (exclusive, except 0 for the first bin).
    pub lo: f64,
    /// Upper edge (inclusive).
    pub hi: f64,
    /// Rows whose confidence falls in the bin.
    pub count: usize,
    /// Their mean confidence (`None` for an empty bin).
    pub confidence: Option<f64>,
    /// Their accuracy (`None` for an empty bin).
    pub accuracy: Option<f64>,
}

/// Every metric of this module for one set of predictions (the `ward calibration`
/// output).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalibrationReport {
    /// Rows.
    pub n: usize,
    /// Classes.
    pub classes: usize,
    /// Expected calibration error, equal-width bins.
    pub ece: f64,
    /// Maximum calibration error, equal-width bins.
    pub mce: f64,
    /// ECE with equal-mass bins.
    pub adaptive_ece: f64,
    /// Classwise ECE (Kull et al. 2019).
    pub classwise_ece: f64,
    /// Brier score (sum over classes, mean over rows).
    pub brier: f64,
    /// Negative log-likelihood in nats.
    pub nll: f64,
    /// Top-label accuracy.
    pub accuracy: f64,
    /// The reliability diagram (equal-width bins).
    pub bins: Vec<ReliabilityBin>,
}

fn check(probs: &Probs, labels: &[usize], bins: usize) -> Result<(), TrustError> {
    if bins == 0 {
        return Err(TrustError::param("bins", "must be at least 1"));
    }
    probs.check_labels(labels)
}

/// The edges of `bins` equal-width bins on `[0, 1]`, as numpy's `linspace(0, 1, bins + 1)`.
pub fn bin_edges(bins: usize) -> Vec<f64> {
    let step = 1.0 / bins as f64;
    let mut e: Vec<f64> = (0..=bins).map(|i| i as f64 * step).collect();
    e[bins] = 1.0;
    e
}

/// The equal-width bin of `c` in `[0, 1]`: `b` with `edges[b] < c <= edges[b + 1]`, and 0
/// for `c <= edges[1]` (0 included).
pub fn bin_of(c: f64, edges: &[f64]) -> usize {
    let bins = edges.len() - 1;
    // Interior edges strictly below c.
    edges[1..bins].partition_point(|&e| e < c)
}

/// Top-label confidence and whether the prediction is right, per row.
pub fn confidences(probs: &Probs, labels: &[usize]) -> Vec<(f64, bool)> {
    probs
        .rows()
        .zip(labels)
        .map(|(row, &y)| {
            let (arg, conf) = argmax(row);
            (conf, arg == y)
        })
        .collect()
}

/// The first index of the largest value (numpy's `argmax`) and that value.
pub(crate) fn argmax(row: &[f64]) -> (usize, f64) {
    let mut best = (0, row[0]);
    for (j, &p) in row.iter().enumerate().skip(1) {
        if p > best.1 {
            best = (j, p);
        }
    }
    best
}

/// Equal-width binning of `(score, hit)` pairs: per bin (count, sum of scores, hits).
fn binned(pairs: impl Iterator<Item = (f64, f64)>, bins: usize) -> Vec<(usize, f64, f64)> {
    let edges = bin_edges(bins);
    let mut acc = vec![(0usize, 0.0f64, 0.0f64); bins];
    for (s, hit) in pairs {
        let b = &mut acc[bin_of(s, &edges)];
        b.0 += 1;
        b.1 += s;
        b.2 += hit;
    }
    acc
}

/// `sum_b count_b / n * |hits_b / count_b - score_b / count_b|` over non-empty bins.
fn ece_of(binned: &[(usize, f64, f64)], n: usize) -> f64 {
    binned
        .iter()
        .filter(|b| b.0 > 0)
        .map(|&(c, s, h)| {
            let c = c as f64;
            (h / c - s / c).abs() * c / n as f64
        })
        .sum()
}

/// The reliability diagram: `bins` equal-width bins of the top-label confidence, each
/// with its count, mean confidence and accuracy.
///
/// # Errors
/// [`TrustError`] for `bins = 0` or labels that do not fit `probs`.
pub fn reliability(
    probs: &Probs,
    labels: &[usize],
    bins: usize,
) -> Result<Vec<ReliabilityBin>, TrustError> {
    check(probs, labels, bins)?;
    let edges = bin_edges(bins);
    let b = binned(
        confidences(probs, labels)
            .into_iter()
            .map(|(c, ok)| (c, f64::from(u8::from(ok)))),
        bins,
    );
    Ok(b.iter()
        .enumerate()
        .map(|(i, &(count, s, h))| ReliabilityBin {
            lo: edges[i],
            hi: edges[i + 1],
            count,
            confidence: (count > 0).then(|| s / count as f64),
            accuracy: (count > 0).then(|| h / count as f64),
        })
        .collect())
}

/// Expected calibration error with `bins` equal-width bins (see the module docs).
///
/// # Errors
/// As [`reliability`].
pub fn ece(probs: &Probs, labels: &[usize], bins: usize) -> Result<f64, TrustError> {
    let r = reliability(probs, labels, bins)?;
    Ok(weighted_gap(&r, probs.n()))
}

fn weighted_gap(r: &[ReliabilityBin], n: usize) -> f64 {
    r.iter()
        .filter_map(|b| Some((b.accuracy? - b.confidence?).abs() * b.count as f64 / n as f64))
        .sum()
}

fn max_gap(r: &[ReliabilityBin]) -> f64 {
    r.iter()
        .filter_map(|b| Some((b.accuracy? - b.confidence?).abs()))
        .fold(0.0, f64::max)
}

/// Maximum calibration error: the largest `|accuracy - confidence|` over non-empty
/// equal-width bins.
///
/// # Errors
/// As [`reliability`].
pub fn mce(probs: &Probs, labels: &[usize], bins: usize) -> Result<f64, TrustError> {
    Ok(max_gap(&reliability(probs, labels, bins)?))
}

/// ECE with `bins` equal-mass bins (see the module docs).
///
/// # Errors
/// As [`reliability`].
pub fn adaptive_ece(probs: &Probs, labels: &[usize], bins: usize) -> Result<f64, TrustError> {
    check(probs, labels, bins)?;
    let mut c = confidences(probs, labels);
    c.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let n = c.len();
    let (base, extra) = (n / bins, n % bins);
    let mut start = 0;
    let mut total = 0.0;
    for b in 0..bins {
        let len = base + usize::from(b < extra);
        if len == 0 {
            continue;
        }
        let group = &c[start..start + len];
        start += len;
        let conf: f64 = group.iter().map(|g| g.0).sum::<f64>() / len as f64;
        let acc = group.iter().filter(|g| g.1).count() as f64 / len as f64;
        total += (acc - conf).abs() * len as f64 / n as f64;
    }
    Ok(total)
}

/// Classwise ECE (Kull et al. 2019): the mean over classes of the equal-width ECE of
/// `p_ij` against `1[y_i = j]`.
///
/// # Errors
/// As [`reliability`].
pub fn classwise_ece(probs: &Probs, labels: &[usize], bins: usize) -> Result<f64, TrustError> {
    check(probs, labels, bins)?;
    let k = probs.k();
    let per_class: Vec<f64> = (0..k)
        .map(|j| {
            let b = binned(
                probs
                    .rows()
                    .zip(labels)
                    .map(|(row, &y)| (row[j], f64::from(u8::from(y == j)))),
                bins,
            );
            ece_of(&b, probs.n())
        })
        .collect();
    Ok(stats::mean(&per_class).unwrap_or(0.0))
}

/// Brier score: `mean_i sum_j (p_ij - 1[y_i = j])^2` (not divided by `k`).
///
/// # Errors
/// [`TrustError`] for labels that do not fit `probs`.
pub fn brier(probs: &Probs, labels: &[usize]) -> Result<f64, TrustError> {
    probs.check_labels(labels)?;
    let per_row: Vec<f64> = probs
        .rows()
        .zip(labels)
        .map(|(row, &y)| {
            row.iter()
                .enumerate()
                .map(|(j, &p)| (p - f64::from(u8::from(j == y))).powi(2))
                .sum()
        })
        .collect();
    Ok(stats::mean(&per_row).unwrap_or(0.0))
}

/// Negative log-likelihood in nats: `-mean_i ln max(p_{i,y_i}, NLL_EPS)`.
///
/// # Errors
/// [`TrustError`] for labels that do not fit `probs`.
pub fn nll(probs: &Probs, labels: &[usize]) -> Result<f64, TrustError> {
    probs.check_labels(labels)?;
    let per_row: Vec<f64> = probs
        .rows()
        .zip(labels)
        .map(|(row, &y)| -row[y].max(NLL_EPS).ln())
        .collect();
    Ok(stats::mean(&per_row).unwrap_or(0.0))
}

/// The share of rows whose first most probable class is the label.
///
/// # Errors
/// [`TrustError`] for labels that do not fit `probs`.
pub fn accuracy(probs: &Probs, labels: &[usize]) -> Result<f64, TrustError> {
    probs.check_labels(labels)?;
    let right = confidences(probs, labels).iter().filter(|c| c.1).count();
    Ok(right as f64 / probs.n() as f64)
}

/// Every metric at once, `bins` bins for the binned ones.
///
/// # Errors
/// As [`reliability`].
pub fn report(
    probs: &Probs,
    labels: &[usize],
    bins: usize,
) -> Result<CalibrationReport, TrustError> {
    let r = reliability(probs, labels, bins)?;
    Ok(CalibrationReport {
        n: probs.n(),
        classes: probs.k(),
        ece: weighted_gap(&r, probs.n()),
        mce: max_gap(&r),
        adaptive_ece: adaptive_ece(probs, labels, bins)?,
        classwise_ece: classwise_ece(probs, labels, bins)?,
        brier: brier(probs, labels)?,
        nll: nll(probs, labels)?,
        accuracy: accuracy(probs, labels)?,
        bins: r,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Four rows, three classes, every top-label confidence in its own 15-bin bin:
    /// 0.9 right (bin 13), 0.75 wrong (bin 11), 0.5 right (bin 7), 0.45 wrong (bin 6).
    fn four() -> (Probs, Vec<usize>) {
        let p = Probs::new(
            vec![
                0.9, 0.05, 0.05, //
                0.75, 0.15, 0.10, //
                0.2, 0.5, 0.3, //
                0.35, 0.2, 0.45,
            ],
            3,
        )
        .unwrap();
        (p, vec![0, 1, 1, 0])
    }

    #[test]
    fn ece_mce_accuracy_by_hand() {
        let (p, y) = four();
        // One row per bin: ECE = (|1 - .9| + |0 - .75| + |1 - .5| + |0 - .45|) / 4
        // = 1.8 / 4 = 0.45; MCE = 0.75; two of four right.
        assert!((ece(&p, &y, 15).unwrap() - 0.45).abs() < 1e-12);
        assert!((mce(&p, &y, 15).unwrap() - 0.75).abs() < 1e-12);
        assert_eq!(accuracy(&p, &y).unwrap(), 0.5);
        let r = reliability(&p, &y, 15).unwrap();
        assert_eq!(r.len(), 15);
        assert_eq!(
            r.iter().map(|b| b.count).collect::<Vec<_>>(),
            [0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 1, 0]
        );
        assert_eq!(r[13].confidence, Some(0.9));
        assert_eq!(r[13].accuracy, Some(1.0));
        assert_eq!(r[11].accuracy, Some(0.0));
        assert_eq!(r[0].confidence, None);
        // Two bins of the same four rows: (0, .5] holds .45 (wrong) and .5 (right):
        // |0.5 - 0.475| = 0.025; (.5, 1] holds .75 (wrong) and .9 (right): |0.5 - 0.825|
        // = 0.325; ECE = (0.025 + 0.325) / 2 = 0.175.
        assert!((ece(&p, &y, 2).unwrap() - 0.175).abs() < 1e-12);
    }

    #[test]
    fn adaptive_and_classwise_ece_by_hand() {
        let (p, y) = four();
        // Equal mass, 2 bins: sorted {.45 x, .5 o | .75 x, .9 o}: same groups as the
        // two equal-width bins above: 0.175.
        assert!((adaptive_ece(&p, &y, 2).unwrap() - 0.175).abs() < 1e-12);
        // 3 bins of 4 rows: sizes 2, 1, 1: {.45 x, .5 o} 0.025 * 2/4, {.75 x} 0.75 / 4,
        // {.9 o} 0.1 / 4: 0.0125 + 0.1875 + 0.025 = 0.225.
        assert!((adaptive_ece(&p, &y, 3).unwrap() - 0.225).abs() < 1e-12);
        // Classwise, 2 bins [0, .5], (.5, 1]:
        // class 0: p (.9, .75, .2, .35), y (1, 0, 0, 1): (.5, 1] conf .825 acc .5 ->
        //   .325 * 2/4; [0, .5] conf .275 acc .5 -> .225 * 2/4; total .275.
        // class 1: p (.05, .15, .5, .2) all in [0, .5] (0.5 closes the first bin):
        //   conf .225, acc .5 -> .275.
        // class 2: p (.05, .1, .3, .45), never the label: conf .225, acc 0 -> .225.
        // Mean: (.275 + .275 + .225) / 3 = 0.2583...
        let want = (0.275 + 0.275 + 0.225) / 3.0;
        assert!((classwise_ece(&p, &y, 2).unwrap() - want).abs() < 1e-12);
    }

    #[test]
    fn brier_and_nll_by_hand() {
        let (p, y) = four();
        // Rows: .1² + .05² + .05² = .015; .75² + .85² + .1² = 1.295;
        // .2² + .5² + .3² = .38; .65² + .2² + .45² = .665. Mean 2.355 / 4 = 0.58875.
        assert!((brier(&p, &y).unwrap() - 0.58875).abs() < 1e-12);
        // -(ln .9 + ln .15 + ln .5 + ln .35) / 4 = 3.7454498... / 4 = 0.9363624...
        let want = -(0.9f64.ln() + 0.15f64.ln() + 0.5f64.ln() + 0.35f64.ln()) / 4.0;
        assert!((nll(&p, &y).unwrap() - want).abs() < 1e-12);
        assert!((nll(&p, &y).unwrap() - 0.936_362_4).abs() < 1e-7);
        // A zero probability on the label is clipped at 1e-15: -ln(1e-15) = 34.538...
        let z = Probs::new(vec![1.0, 0.0], 2).unwrap();
        assert!((nll(&z, &[1]).unwrap() - 34.538_776_394_910_684).abs() < 1e-9);
    }

    #[test]
    fn binary_input_is_two_classes_and_brier_is_not_divided_by_k() {
        // (n,) positive-class probabilities 0.8 (label 1) and 0.3 (label 0): rows
        // (.2, .8) and (.7, .3); Brier (.04 + .04 + .09 + .09) / 2 = 0.13, twice
        // sklearn's brier_score_loss ((.2² + .3²) / 2 = 0.065).
        let p = Probs::binary(&[0.8, 0.3]).unwrap();
        assert_eq!(p.k(), 2);
        assert!((brier(&p, &[1, 0]).unwrap() - 0.13).abs() < 1e-12);
        assert_eq!(accuracy(&p, &[1, 0]).unwrap(), 1.0);
    }

    #[test]
    fn bins_are_left_open_right_closed_with_zero_in_the_first() {
        let e = bin_edges(15);
        // numpy: np.linspace(0, 1, 16)[9] == 0.6 (9 * (1/15) rounds to the double 0.6).
        assert_eq!(e[9], 0.6);
        assert_eq!(e[15], 1.0);
        assert_eq!(bin_of(0.0, &e), 0);
        assert_eq!(bin_of(0.6, &e), 8);
        assert_eq!(bin_of(0.600_000_000_001, &e), 9);
        assert_eq!(bin_of(1.0, &e), 14);
        assert_eq!(bin_of(1.0 / 15.0, &e), 0);
    }

    #[test]
    fn bad_inputs_are_named() {
        let (p, _) = four();
        assert!(matches!(
            reliability(&p, &[0, 1, 2], 15),
            Err(TrustError::Shape(_))
        ));
        let e = accuracy(&p, &[0, 1, 3, 0]).unwrap_err().to_string();
        assert!(e.contains("label 3 at row 2"), "{e}");
        assert!(ece(&p, &[0, 0, 0, 0], 0).is_err());
        let e = Probs::new(vec![0.5, 0.6], 2).unwrap_err().to_string();
        assert!(e.contains("row 0 sums to 1.1"), "{e}");
        let e = Probs::new(vec![0.5, 0.5, f64::NAN, 1.0], 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("row 1, column 0"), "{e}");
        assert!(Probs::binary(&[1.5]).is_err());
    }

    /// A perfectly calibrated set: for each top-label confidence c in {.55, .65, .75,
    /// .85, .95} (five different 15-bins), `m` rows of which exactly `c m` are right.
    fn calibrated(k: usize, m: usize) -> (Probs, Vec<usize>) {
        let mut v = Vec::new();
        let mut y = Vec::new();
        for c in [0.55, 0.65, 0.75, 0.85, 0.95] {
            let right = (c * m as f64).round() as usize;
            for i in 0..m {
                let rest = (1.0 - c) / (k - 1) as f64;
                v.push(c);
                v.extend(std::iter::repeat_n(rest, k - 1));
                y.push(if i < right { 0 } else { 1 + i % (k - 1) });
            }
        }
        (Probs::new(v, k).unwrap(), y)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, rng_seed: proptest::test_runner::RngSeed::Fixed(18), ..ProptestConfig::default() })]

        #[test]
        fn perfectly_calibrated_rows_have_zero_ece(k in 2usize..6, t in 1usize..6) {
            let (p, y) = calibrated(k, 20 * t);
            prop_assert!(ece(&p, &y, 15).unwrap() < 1e-12);
            prop_assert!(mce(&p, &y, 15).unwrap() < 1e-12);
            prop_assert!(adaptive_ece(&p, &y, 5).unwrap() < 1e-12);
        }

        #[test]
        fn metrics_do_not_depend_on_row_order(
            raw in proptest::collection::vec((0.01f64..1.0, 0.01f64..1.0, 0.01f64..1.0, 0usize..3), 1..60),
            seed in any::<u64>(),
        ) {
            let v: Vec<f64> = raw.iter().flat_map(|&(a, b, c, _)| {
                let s = a + b + c;
                [a / s, b / s, c / s]
            }).collect();
            let y: Vec<usize> = raw.iter().map(|r| r.3).collect();
            let p = Probs::new(v, 3).unwrap();
            // A permutation from the seed (Fisher-Yates on a simple LCG).
            let mut idx: Vec<usize> = (0..y.len()).collect();
            let mut s = seed;
            for i in (1..idx.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                idx.swap(i, (s >> 33) as usize % (i + 1));
            }
            let q = p.select(&idx);
            let z: Vec<usize> = idx.iter().map(|&i| y[i]).collect();
            let (a, b) = (report(&p, &y, 15).unwrap(), report(&q, &z, 15).unwrap());
            for (x, w) in [(a.ece, b.ece), (a.mce, b.mce), (a.adaptive_ece, b.adaptive_ece),
                (a.classwise_ece, b.classwise_ece), (a.brier, b.brier), (a.nll, b.nll),
                (a.accuracy, b.accuracy)] {
                prop_assert!((x - w).abs() < 1e-12, "{x} vs {w}");
            }
            prop_assert_eq!(
                a.bins.iter().map(|b| b.count).collect::<Vec<_>>(),
                b.bins.iter().map(|b| b.count).collect::<Vec<_>>()
            );
        }
    }
}
