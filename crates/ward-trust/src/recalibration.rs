//! Recalibration fitted on calibration splits: temperature scaling (federated), Platt
//! scaling (pooled) and histogram binning (federated).
//!
//! # Temperature scaling, federated (Guo et al. 2017)
//! One temperature `T` for all sites minimises the pooled NLL
//! `L(b) = sum_i [logsumexp(b z_i) - b z_{i,y_i}]` at `b = 1 / T`. In `b` it is convex:
//! `L'(b) = sum_i (E_{p_i}[z_i] - z_{i,y_i})`, `L''(b) = sum_i Var_{p_i}(z_i) >= 0`
//! (`p_i = softmax(b z_i)`). Each round the server sends `b`; each site answers with
//! [`TemperatureStats`] (its row count and the sums of the loss and of the two
//! derivatives over its rows: four numbers, never a logit); the server adds them and
//! takes a Newton step, safeguarded by a bracket on the sign of `L'` (bisection when the
//! step leaves it). Because the sums are exactly the pooled sums, the federated fit is
//! the pooled fit, round for round. What a site's four numbers reveal is its calibration
//! loss curve at the points asked: not DP.
//!
//! # Platt scaling (Platt 1999), pooled
//! For a binary task, `P(y = 1 | f) = 1 / (1 + exp(A f + B))` on a score `f` (e.g. the
//! logit of the positive-class probability), fitted by Newton's method with backtracking
//! (Lin, Lin and Weng 2007) on the cross-entropy against Platt's smoothed targets
//! `t+ = (N+ + 1) / (N+ + 2)`, `t- = 1 / (N- + 2)`. Pooled only: the objective is a sum
//! over rows, so it would federate as temperature scaling does (2-vector gradients and
//! 2x2 Hessians after a first round of class counts); not implemented.
//!
//! # Histogram binning (Zadrozny and Elkan 2001), federated
//! The positive-class probability's equal-width bins (the convention of
//! [`calibration`](crate::calibration)); each bin maps to the share of positives among
//! the calibration rows in it (an empty bin to its midpoint). Sites send per-bin counts
//! of rows and positives ([`BinCounts`]); their sum is the pooled histogram, so the
//! federated fit equals the pooled one exactly.

use std::ops::{Add, AddAssign};

use serde::Serialize;

use crate::calibration::{bin_edges, bin_of};
use crate::{Logits, TrustError};

/// A site's answer for one round of federated temperature scaling: sums over its rows
/// at inverse temperature `b`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct TemperatureStats {
    /// Rows.
    pub rows: usize,
    /// `sum_i [logsumexp(b z_i) - b z_{i,y_i}]` (nats).
    pub nll: f64,
    /// `dL/db`.
    pub grad: f64,
    /// `d2L/db2`.
    pub hess: f64,
    /// `lim dL/db` as `b -> 0`: `sum_i (mean_j z_ij - z_{i,y_i})` (independent of `b`).
    /// A minimum at `b > 0` needs it negative.
    pub slope_at_zero: f64,
    /// `lim dL/db` as `b -> infinity`: `sum_i (max_j z_ij - z_{i,y_i})` (independent of
    /// `b`). A minimum at finite `b` needs it positive (some label not the top logit).
    pub slope_at_infinity: f64,
}

impl Add for TemperatureStats {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self {
            rows: self.rows + o.rows,
            nll: self.nll + o.nll,
            grad: self.grad + o.grad,
            hess: self.hess + o.hess,
            slope_at_zero: self.slope_at_zero + o.slope_at_zero,
            slope_at_infinity: self.slope_at_infinity + o.slope_at_infinity,
        }
    }
}

impl AddAssign for TemperatureStats {
    fn add_assign(&mut self, o: Self) {
        *self = *self + o;
    }
}

impl std::iter::Sum for TemperatureStats {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::default(), Add::add)
    }
}

/// A site's [`TemperatureStats`] at inverse temperature `b` (computed at the site).
///
/// # Errors
/// Labels that do not fit `logits`; `b` not finite and positive.
pub fn temperature_stats(
    logits: &Logits,
    labels: &[usize],
    b: f64,
) -> Result<TemperatureStats, TrustError> {
    crate::probs::check_labels(logits.n(), logits.k(), labels)?;
    if !(b.is_finite() && b > 0.0) {
        return Err(TrustError::param(
            "inverse temperature",
            format!("{b} is not a positive number"),
        ));
    }
    let mut s = TemperatureStats {
        rows: logits.n(),
        ..TemperatureStats::default()
    };
    for (z, &y) in logits.rows().zip(labels) {
        let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = z.iter().map(|v| (b * (v - m)).exp()).collect();
        let sum: f64 = e.iter().sum();
        let lse = b * m + sum.ln();
        let mean: f64 = z.iter().zip(&e).map(|(v, w)| v * w).sum::<f64>() / sum;
        let var: f64 = z
            .iter()
            .zip(&e)
            .map(|(v, w)| (v - mean).powi(2) * w)
            .sum::<f64>()
            / sum;
        s.nll += lse - b * z[y];
        s.grad += mean - z[y];
        s.hess += var;
        s.slope_at_zero += z.iter().sum::<f64>() / z.len() as f64 - z[y];
        s.slope_at_infinity += m - z[y];
    }
    Ok(s)
}

/// The fitted temperature.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TemperatureFit {
    /// `T` (divide logits by it).
    pub temperature: f64,
    /// Rounds (queries of the sites).
    pub rounds: usize,
    /// Mean NLL over all rows at `T`.
    pub nll: f64,
}

/// The inverse temperatures past which the search gives up.
const B_MIN: f64 = 1e-6;
const B_MAX: f64 = 1e6;

/// Fits one temperature by asking `query(b)` for the summed [`TemperatureStats`] of all
/// sites at inverse temperature `b` (the server's side of the protocol). Stops when the
/// Newton step is below `1e-12 b` or the gradient below `1e-12` per row (at most 200
/// rounds).
///
/// # Errors
/// What `query` returns; [`TrustError::NoConvergence`] when the NLL has no minimum in
/// `T` in `[1e-6, 1e6]` (e.g. separable calibration rows: it falls as `T -> 0`).
pub fn fit_temperature(
    mut query: impl FnMut(f64) -> Result<TemperatureStats, TrustError>,
) -> Result<TemperatureFit, TrustError> {
    let mut rounds = 0;
    let mut ask = |b: f64| {
        rounds += 1;
        query(b)
    };
    let mut b = 1.0;
    let mut s = ask(b)?;
    if s.rows == 0 {
        return Err(TrustError::TooFewRows("no calibration rows".into()));
    }
    let tol = 1e-12 * s.rows as f64;
    if s.slope_at_infinity <= tol {
        return Err(TrustError::NoConvergence(
            "temperature scaling has no minimum: every calibration label is the top \
             logit, so the NLL falls as T -> 0"
                .into(),
        ));
    }
    if s.slope_at_zero >= -tol {
        return Err(TrustError::NoConvergence(
            "temperature scaling has no minimum: the logits do not favour the labels, so \
             the NLL falls as T -> infinity"
                .into(),
        ));
    }
    let mut converged = false;
    // Bracket [lo, hi] with L'(lo) < 0 < L'(hi).
    let (mut lo, mut hi) = (0.0, f64::INFINITY);
    for _ in 0..200 {
        if s.grad.abs() <= tol {
            converged = true;
            break;
        }
        if s.grad < 0.0 {
            lo = b;
        } else {
            hi = b;
        }
        let newton = b - s.grad / s.hess;
        let newton_ok = s.hess > 0.0 && newton > lo && newton < hi;
        // Until both sides are bracketed, move at least by a factor of 2, so a loss
        // without a minimum (falling as b -> infinity or 0) leaves the range quickly.
        let next = if hi.is_infinite() {
            if newton_ok {
                newton.max(2.0 * b)
            } else {
                2.0 * b
            }
        } else if lo == 0.0 {
            if newton_ok {
                newton.min(0.5 * b)
            } else {
                0.5 * b
            }
        } else if newton_ok {
            newton
        } else {
            0.5 * (lo + hi)
        };
        if !(B_MIN..=B_MAX).contains(&next) {
            return Err(TrustError::NoConvergence(format!(
                "the calibration NLL has no minimum for T in [{B_MIN}, {B_MAX}] \
                 (the rows may be separable)"
            )));
        }
        let step = (next - b).abs();
        b = next;
        s = ask(b)?;
        if step <= 1e-12 * b {
            converged = true;
            break;
        }
    }
    if !(converged || s.grad.abs() <= tol) {
        return Err(TrustError::NoConvergence(format!(
            "temperature scaling did not converge in {rounds} rounds"
        )));
    }
    Ok(TemperatureFit {
        temperature: 1.0 / b,
        rounds,
        nll: s.nll / s.rows as f64,
    })
}

/// Temperature scaling on one set of rows (the pooled fit, or one site alone).
///
/// # Errors
/// As [`fit_temperature`] and [`temperature_stats`].
pub fn fit_temperature_pooled(
    logits: &Logits,
    labels: &[usize],
) -> Result<TemperatureFit, TrustError> {
    fit_temperature(|b| temperature_stats(logits, labels, b))
}

/// A fitted Platt scaling `P(y = 1 | f) = 1 / (1 + exp(a f + b))`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Platt {
    /// The slope `A` (negative when higher scores mean positive).
    pub a: f64,
    /// The intercept `B`.
    pub b: f64,
}

/// What a site sends for one step of federated Platt scaling at `(A, B)`: sums over its
/// calibration rows of the smoothed cross-entropy, its gradient and its Hessian.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct PlattSums {
    /// Cross-entropy against Platt's smoothed targets (nats).
    pub loss: f64,
    /// `dL/dA`.
    pub g1: f64,
    /// `dL/dB`.
    pub g2: f64,
    /// `d2L/dA2`.
    pub h11: f64,
    /// `d2L/dB2`.
    pub h22: f64,
    /// `d2L/dA dB`.
    pub h21: f64,
}

impl Add for PlattSums {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self {
            loss: self.loss + o.loss,
            g1: self.g1 + o.g1,
            g2: self.g2 + o.g2,
            h11: self.h11 + o.h11,
            h22: self.h22 + o.h22,
            h21: self.h21 + o.h21,
        }
    }
}

impl std::iter::Sum for PlattSums {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::default(), Add::add)
    }
}

/// Platt's smoothed targets `((N+ + 1) / (N+ + 2), 1 / (N- + 2))` from the positive and
/// negative counts over all sites (the first thing a federated fit asks for).
pub fn platt_targets(positives: usize, negatives: usize) -> (f64, f64) {
    let (pos, neg) = (positives as f64, negatives as f64);
    ((pos + 1.0) / (pos + 2.0), 1.0 / (neg + 2.0))
}

/// A site's [`PlattSums`] at `(a, b)` with the federation's `targets` ([`platt_targets`]).
///
/// # Errors
/// Lengths that differ, a label other than 0 or 1, a non-finite score.
pub fn platt_sums(
    scores: &[f64],
    labels: &[usize],
    targets: (f64, f64),
    (a, b): (f64, f64),
) -> Result<PlattSums, TrustError> {
    crate::probs::check_labels(scores.len(), 2, labels)?;
    if let Some(i) = scores.iter().position(|f| !f.is_finite()) {
        return Err(TrustError::Value(format!("score {i} is not finite")));
    }
    let mut s = PlattSums::default();
    for (&f, &y) in scores.iter().zip(labels) {
        let ti = if y == 1 { targets.0 } else { targets.1 };
        let x = a * f + b;
        // Cross-entropy of fApB = a f + b, computed stably (Lin et al. 2007);
        // p = P(y = 1) = 1 / (1 + exp(x)), q = 1 - p.
        let (p, q) = if x >= 0.0 {
            s.loss += ti * x + (1.0 + (-x).exp()).ln();
            let e = (-x).exp();
            (e / (1.0 + e), 1.0 / (1.0 + e))
        } else {
            s.loss += (ti - 1.0) * x + (1.0 + x.exp()).ln();
            let e = x.exp();
            (1.0 / (1.0 + e), e / (1.0 + e))
        };
        let d2 = p * q;
        s.h11 += f * f * d2;
        s.h22 += d2;
        s.h21 += f * d2;
        let d1 = ti - p;
        s.g1 += f * d1;
        s.g2 += d1;
    }
    Ok(s)
}

impl Platt {
    /// Fits `A` and `B` on scores `f` and 0/1 labels (pooled): [`Platt::fit_federated`]
    /// with one site.
    ///
    /// # Errors
    /// Lengths that differ, a label other than 0 or 1, a non-finite score, or no
    /// convergence in 100 Newton steps.
    pub fn fit(scores: &[f64], labels: &[usize]) -> Result<Self, TrustError> {
        crate::probs::check_labels(scores.len(), 2, labels)?;
        let pos = labels.iter().filter(|&&y| y == 1).count();
        let t = platt_targets(pos, labels.len() - pos);
        Self::fit_federated((pos, labels.len() - pos), |ab| {
            platt_sums(scores, labels, t, ab)
        })
    }

    /// The server's side of federated Platt scaling: given the positive and negative
    /// counts over all sites, Newton steps with a backtracking line search (Lin, Lin and
    /// Weng 2007), each asking `query((a, b))` for the summed [`PlattSums`] of every
    /// site at [`platt_targets`]. Sites send sums only, never scores or labels.
    ///
    /// # Errors
    /// What `query` returns; no rows; no convergence in 100 Newton steps.
    pub fn fit_federated(
        (positives, negatives): (usize, usize),
        mut query: impl FnMut((f64, f64)) -> Result<PlattSums, TrustError>,
    ) -> Result<Self, TrustError> {
        if positives + negatives == 0 {
            return Err(TrustError::TooFewRows("no calibration rows".into()));
        }
        let (pos, neg) = (positives as f64, negatives as f64);
        let (mut a, mut b) = (0.0, ((neg + 1.0) / (pos + 1.0)).ln());
        let mut s = query((a, b))?;
        let mut fval = s.loss;
        for _ in 0..100 {
            let (g1, g2) = (s.g1, s.g2);
            let (h11, h22, h21) = (s.h11 + 1e-12, s.h22 + 1e-12, s.h21);
            if g1.abs() < 1e-10 && g2.abs() < 1e-10 {
                return Ok(Self { a, b });
            }
            let det = h11 * h22 - h21 * h21;
            let da = -(h22 * g1 - h21 * g2) / det;
            let db = -(-h21 * g1 + h11 * g2) / det;
            let gd = g1 * da + g2 * db;
            let mut step = 1.0;
            loop {
                let (na, nb) = (a + step * da, b + step * db);
                let ns = query((na, nb))?;
                if ns.loss < fval + 1e-4 * step * gd {
                    (a, b, fval, s) = (na, nb, ns.loss, ns);
                    break;
                }
                step /= 2.0;
                if step < 1e-10 {
                    // No decrease left to find in double precision (Lin et al. stop
                    // here too): converged if the gradient is small.
                    if g1.abs().max(g2.abs()) < 1e-6 * (pos + neg) {
                        return Ok(Self { a, b });
                    }
                    return Err(TrustError::NoConvergence(
                        "Platt scaling: the line search failed".into(),
                    ));
                }
            }
        }
        Err(TrustError::NoConvergence(
            "Platt scaling: no convergence in 100 Newton steps".into(),
        ))
    }

    /// The calibrated positive-class probability of score `f`.
    pub fn predict(&self, f: f64) -> f64 {
        let x = self.a * f + self.b;
        if x >= 0.0 {
            let e = (-x).exp();
            e / (1.0 + e)
        } else {
            1.0 / (1.0 + x.exp())
        }
    }
}

/// Per-bin counts of calibration rows and positives: what a site sends for histogram
/// binning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BinCounts {
    /// Rows per bin.
    pub rows: Vec<usize>,
    /// Positives per bin.
    pub positives: Vec<usize>,
}

impl BinCounts {
    /// A site's counts over `bins` equal-width bins of the positive-class probability.
    ///
    /// # Errors
    /// `bins = 0`, lengths that differ, a probability outside `[0, 1]`, a label other
    /// than 0 or 1.
    pub fn from_site(positive: &[f64], labels: &[usize], bins: usize) -> Result<Self, TrustError> {
        if bins == 0 {
            return Err(TrustError::param("bins", "must be at least 1"));
        }
        crate::probs::check_labels(positive.len(), 2, labels)?;
        if let Some(i) = positive.iter().position(|p| !(0.0..=1.0).contains(p)) {
            return Err(TrustError::Value(format!(
                "row {i}: probability {} is not in [0, 1]",
                positive[i]
            )));
        }
        let edges = bin_edges(bins);
        let mut c = Self {
            rows: vec![0; bins],
            positives: vec![0; bins],
        };
        for (&p, &y) in positive.iter().zip(labels) {
            let b = bin_of(p, &edges);
            c.rows[b] += 1;
            c.positives[b] += y;
        }
        Ok(c)
    }

    /// The sum of two sites' counts.
    ///
    /// # Errors
    /// [`TrustError::Shape`] for different bin counts.
    pub fn merge(&self, o: &Self) -> Result<Self, TrustError> {
        if self.rows.len() != o.rows.len() {
            return Err(TrustError::Shape(format!(
                "{} bins against {}",
                self.rows.len(),
                o.rows.len()
            )));
        }
        Ok(Self {
            rows: self.rows.iter().zip(&o.rows).map(|(a, b)| a + b).collect(),
            positives: self
                .positives
                .iter()
                .zip(&o.positives)
                .map(|(a, b)| a + b)
                .collect(),
        })
    }
}

/// A fitted histogram binning.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistogramBinning {
    /// The bin edges.
    pub edges: Vec<f64>,
    /// The calibrated probability of each bin.
    pub values: Vec<f64>,
}

impl HistogramBinning {
    /// The map from (summed) counts.
    pub fn fit(counts: &BinCounts) -> Self {
        let edges = bin_edges(counts.rows.len());
        let values = counts
            .rows
            .iter()
            .zip(&counts.positives)
            .enumerate()
            .map(|(i, (&r, &p))| {
                if r == 0 {
                    0.5 * (edges[i] + edges[i + 1])
                } else {
                    p as f64 / r as f64
                }
            })
            .collect();
        Self { edges, values }
    }

    /// The calibrated probability of positive-class probability `p`.
    pub fn predict(&self, p: f64) -> f64 {
        self.values[bin_of(p.clamp(0.0, 1.0), &self.edges)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temperature_by_hand() {
        // Three rows of logits (0, 1), labels 1, 1, 0: L(b) = 3 ln(1 + e^b) - 2b,
        // L'(b) = 3 sigmoid(b) - 2 = 0 at sigmoid(b) = 2/3, b = ln 2: T = 1 / ln 2.
        let z = Logits::new(vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0], 2).unwrap();
        let fit = fit_temperature_pooled(&z, &[1, 1, 0]).unwrap();
        assert!((fit.temperature - 1.0 / 2f64.ln()).abs() < 1e-10, "{fit:?}");
        // Mean NLL there: (3 ln 3 - 2 ln 2) / 3.
        let want = (3.0 * 3f64.ln() - 2.0 * 2f64.ln()) / 3.0;
        assert!((fit.nll - want).abs() < 1e-12);
        // Split over two sites, the answers summed: the same fit.
        let a = Logits::new(vec![0.0, 1.0], 2).unwrap();
        let b = Logits::new(vec![0.0, 1.0, 0.0, 1.0], 2).unwrap();
        let fed = fit_temperature(|beta| {
            Ok(temperature_stats(&a, &[0], beta)? + temperature_stats(&b, &[1, 1], beta)?)
        })
        .unwrap();
        assert!((fed.temperature - fit.temperature).abs() < 1e-12);
        // Always right: no minimum (T -> 0).
        let one = Logits::new(vec![0.0, 1.0], 2).unwrap();
        assert!(matches!(
            fit_temperature_pooled(&one, &[1]),
            Err(TrustError::NoConvergence(_))
        ));
    }

    #[test]
    fn stats_derivatives_match_finite_differences() {
        let z = Logits::new(vec![0.3, -1.2, 2.0, 1.5, 0.1, -0.4, -2.0, 0.5, 0.7], 3).unwrap();
        let y = [0, 2, 1];
        let at = |b| temperature_stats(&z, &y, b).unwrap();
        let (b, h) = (0.8, 1e-5);
        let g = (at(b + h).nll - at(b - h).nll) / (2.0 * h);
        let hh = (at(b + h).grad - at(b - h).grad) / (2.0 * h);
        assert!((g - at(b).grad).abs() < 1e-7);
        assert!((hh - at(b).hess).abs() < 1e-7);
    }

    #[test]
    fn platt_by_hand() {
        // Scores -1 (label 0) and 1 (label 1): targets 1/3 and 2/3 (one of each), met
        // exactly by B = 0, A = -ln 2 (1 / (1 + e^{-ln 2}) = 2/3).
        let p = Platt::fit(&[-1.0, 1.0], &[0, 1]).unwrap();
        assert!((p.a + 2f64.ln()).abs() < 1e-8, "{p:?}");
        assert!(p.b.abs() < 1e-8);
        assert!((p.predict(1.0) - 2.0 / 3.0).abs() < 1e-8);
    }

    /// Three sites' sums give the pooled fit (to 1e-9), and at the fit the pooled
    /// gradient of the smoothed cross-entropy vanishes.
    #[test]
    fn platt_federated_equals_pooled() {
        let sites: [(&[f64], &[usize]); 3] = [
            (&[-2.0, -0.5, 0.3, 1.7], &[0, 0, 1, 1]),
            (&[0.1, 0.9, -1.1], &[1, 0, 0]),
            (&[2.5, 1.2, -0.2, 0.4, -3.0], &[1, 1, 0, 1, 0]),
        ];
        let scores: Vec<f64> = sites.iter().flat_map(|s| s.0.iter().copied()).collect();
        let labels: Vec<usize> = sites.iter().flat_map(|s| s.1.iter().copied()).collect();
        let pooled = Platt::fit(&scores, &labels).unwrap();
        let pos = labels.iter().filter(|&&y| y == 1).count();
        let neg = labels.len() - pos;
        let t = platt_targets(pos, neg);
        let mut rounds = 0;
        let fed = Platt::fit_federated((pos, neg), |ab| {
            rounds += 1;
            sites.iter().map(|(f, y)| platt_sums(f, y, t, ab)).sum()
        })
        .unwrap();
        assert!((fed.a - pooled.a).abs() < 1e-9 && (fed.b - pooled.b).abs() < 1e-9);
        assert!(rounds > 2);
        let g = platt_sums(&scores, &labels, t, (fed.a, fed.b)).unwrap();
        assert!(g.g1.abs() < 1e-8 && g.g2.abs() < 1e-8, "{g:?}");
        assert!(
            pooled.a < 0.0,
            "higher scores should mean positive: {pooled:?}"
        );
    }

    #[test]
    fn histogram_binning_by_hand_and_federated() {
        // Two bins. Site A: .2 (0), .7 (1); site B: .4 (1), .9 (1), .6 (0).
        // [0, .5]: .2, .4 -> 1/2; (.5, 1]: .7, .9, .6 -> 2/3.
        let a = BinCounts::from_site(&[0.2, 0.7], &[0, 1], 2).unwrap();
        let b = BinCounts::from_site(&[0.4, 0.9, 0.6], &[1, 1, 0], 2).unwrap();
        let pooled = BinCounts::from_site(&[0.2, 0.7, 0.4, 0.9, 0.6], &[0, 1, 1, 1, 0], 2).unwrap();
        assert_eq!(a.merge(&b).unwrap(), pooled);
        let h = HistogramBinning::fit(&pooled);
        assert_eq!(h.predict(0.3), 0.5);
        assert!((h.predict(0.95) - 2.0 / 3.0).abs() < 1e-15);
        // An empty bin maps to its midpoint.
        let e = HistogramBinning::fit(&BinCounts::from_site(&[0.1], &[1], 2).unwrap());
        assert_eq!(e.predict(0.8), 0.75);
    }
}
