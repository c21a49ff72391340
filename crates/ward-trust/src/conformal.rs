//! Split conformal prediction for classification: LAC, APS and RAPS scores, the conformal
//! quantile, prediction sets, class-conditional (Mondrian) calibration, and the
//! federated one-shot scheme FedCP-QQ ([`fedcp_qq`](crate::fedcp_qq)).
//!
//! # Conventions (MAPIE 0.8.6, `MapieClassifier(cv="prefit")`)
//! - **LAC** (Sadinle et al. 2019, MAPIE's `"lac"`): the score of label `y` is
//!   `1 - p_y`; the set is `{j : p_j - (1 - qhat) >= -EPS}` with `EPS` = f64 machine
//!   epsilon (MAPIE's `EPSILON`).
//! - **APS** (Romano et al. 2020): classes sorted by decreasing probability (ties: the
//!   lower class index first), `c_j` the running sum (left to right, as `np.cumsum`)
//!   through class `j`. The calibration score is `c_y`, or with per-row uniforms `u`
//!   (MAPIE always draws them at fit) `c_y - u p_y`.
//! - **RAPS** (Angelopoulos et al. 2021): APS plus `lambda * max(0, rank_j - k_reg)`,
//!   `rank_j` the 1-based position of `j` in the sorted order. MAPIE picks `k_reg` and
//!   `lambda` itself on a held-out 20 % of the calibration rows; here both are given.
//! - **Quantile** ([`QuantileRule`]): [`QuantileRule::Exact`] (the default) is the
//!   `ceil((n + 1)(1 - alpha))`-th smallest score, the order statistic of the
//!   finite-sample guarantee `1 - alpha <= P(y in C) < 1 - alpha + 1 / (n + 1)`
//!   (exchangeable rows, continuous scores); [`QuantileRule::Mapie`] is MAPIE 0.8.6's
//!   `np.quantile(scores, (n + 1)(1 - alpha) / n, method="higher")`, the sorted score at
//!   index `ceil((n - 1) q)`: the same order statistic or the next one (never lower, so
//!   the lower bound still holds).
//! - **Sets** ([`Inclusion`]): [`Inclusion::IncludeLast`] is MAPIE's deterministic
//!   `include_last_label=True`: the first class in sorted order whose (regularised)
//!   running sum reaches `qhat - EPS` is the last one in, with every class of at least
//!   its probability (a last class of probability `<= EPS` is replaced by the smallest
//!   probability above it, as MAPIE). Where no class reaches `qhat` every class is in
//!   (MAPIE 0.8.6 would keep class 0's probability as the cut: a corner its own checks
//!   rule out). [`Inclusion::ScoreAtMost`] is `{j : s(x, j) <= qhat}` with the
//!   deterministic score: the set whose coverage the guarantee bounds from above too.
//!   For LAC both give the same set up to `EPS`. [`prediction_set_randomized`] is the
//!   randomised set of the APS and RAPS papers (one uniform per row, continuous scores:
//!   the coverage interval holds with ties and for two classes); MAPIE's
//!   `include_last_label="randomized"` is not implemented.

use serde::Serialize;

use crate::{Probs, TrustError};

/// f64 machine epsilon, MAPIE's `EPSILON` tolerance in set membership.
pub const EPS: f64 = f64::EPSILON;

/// A conformity score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "name", rename_all = "lowercase")]
pub enum Score {
    /// Least ambiguous set-valued classifier: `1 - p_y`.
    Lac,
    /// Adaptive prediction sets: the probability mass down to and including `y`.
    Aps,
    /// Regularised APS.
    Raps {
        /// Ranks up to `k_reg` are not penalised (RAPS's `k_reg`).
        k_reg: usize,
        /// The penalty per rank past `k_reg` (RAPS's `lambda`, >= 0).
        lambda: f64,
    },
}

impl Score {
    /// `lac`, `aps` or `raps` (RAPS with `k_reg` and `lambda`).
    ///
    /// # Errors
    /// [`TrustError::Parameter`] for another name or a negative / non-finite `lambda`.
    pub fn parse(name: &str, k_reg: usize, lambda: f64) -> Result<Self, TrustError> {
        match name {
            "lac" => Ok(Self::Lac),
            "aps" => Ok(Self::Aps),
            "raps" if lambda.is_finite() && lambda >= 0.0 => Ok(Self::Raps { k_reg, lambda }),
            "raps" => Err(TrustError::param(
                "lambda",
                format!("{lambda} is not a finite number >= 0"),
            )),
            other => Err(TrustError::param(
                "score",
                format!("{other:?} is not one of lac, aps, raps"),
            )),
        }
    }

    /// `lac`, `aps` or `raps`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Lac => "lac",
            Self::Aps => "aps",
            Self::Raps { .. } => "raps",
        }
    }

    /// The penalty at 1-based rank `rank` (0 for LAC and APS).
    fn penalty(&self, rank: usize) -> f64 {
        match *self {
            Self::Raps { k_reg, lambda } => lambda * (rank as f64 - k_reg as f64).max(0.0),
            _ => 0.0,
        }
    }
}

/// How the conformal quantile is read off the sorted scores (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QuantileRule {
    /// The `ceil((n + 1)(1 - alpha))`-th smallest score.
    #[default]
    Exact,
    /// MAPIE 0.8.6: `np.quantile(s, (n + 1)(1 - alpha) / n, method="higher")`.
    Mapie,
}

/// Which classes make a prediction set (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Inclusion {
    /// MAPIE's `include_last_label=True`.
    #[default]
    IncludeLast,
    /// `{j : s(x, j) <= qhat}`.
    ScoreAtMost,
}

/// The classes of `row` by decreasing probability (ties: lower index first) and each
/// class's running sum plus RAPS penalty, in that sorted order.
fn sorted_cumsum(row: &[f64], score: Score) -> (Vec<usize>, Vec<f64>) {
    let mut order: Vec<usize> = (0..row.len()).collect();
    order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    let mut acc = 0.0;
    let c = order
        .iter()
        .enumerate()
        .map(|(r, &j)| {
            acc += row[j];
            acc + score.penalty(r + 1)
        })
        .collect();
    (order, c)
}

/// The deterministic score `s(x, y)` of label `y` for probabilities `row`.
pub fn label_score(row: &[f64], y: usize, score: Score) -> f64 {
    match score {
        Score::Lac => 1.0 - row[y],
        Score::Aps | Score::Raps { .. } => {
            let (order, c) = sorted_cumsum(row, score);
            let r = order.iter().position(|&j| j == y).unwrap_or(0);
            c[r]
        }
    }
}

/// The calibration scores `s(x_i, y_i)`. With `u` (one uniform per row, APS and RAPS
/// only) the randomised score `c_y - u p_y + penalty`, as MAPIE's fit.
///
/// # Errors
/// Labels that do not fit `probs`; `u` of the wrong length or outside `[0, 1]`.
pub fn calibration_scores(
    probs: &Probs,
    labels: &[usize],
    score: Score,
    u: Option<&[f64]>,
) -> Result<Vec<f64>, TrustError> {
    probs.check_labels(labels)?;
    if let Some(u) = u {
        if u.len() != probs.n() {
            return Err(TrustError::Shape(format!(
                "{} uniforms for {} rows",
                u.len(),
                probs.n()
            )));
        }
        if u.iter().any(|v| !(0.0..=1.0).contains(v)) {
            return Err(TrustError::Value("a uniform is outside [0, 1]".into()));
        }
    }
    Ok(probs
        .rows()
        .zip(labels)
        .enumerate()
        .map(|(i, (row, &y))| match (score, u) {
            (Score::Lac, _) | (_, None) => label_score(row, y, score),
            (_, Some(u)) => {
                let (order, c) = sorted_cumsum(row, Score::Aps);
                let r = order.iter().position(|&j| j == y).unwrap_or(0);
                // MAPIE: (cumsum - u p_y) + max(lambda (rank - k), 0).
                (c[r] - u[i] * row[y]) + score.penalty(r + 1)
            }
        })
        .collect())
}

/// Checks `alpha` in `(0, 1)`.
///
/// # Errors
/// [`TrustError::Parameter`] otherwise.
pub fn check_alpha(alpha: f64) -> Result<(), TrustError> {
    if alpha > 0.0 && alpha < 1.0 {
        Ok(())
    } else {
        Err(TrustError::param(
            "alpha",
            format!("{alpha} is not in (0, 1)"),
        ))
    }
}

/// The 0-based index into the sorted scores that `rule` reads for `n` scores at
/// miscoverage `alpha`.
///
/// # Errors
/// [`TrustError::TooFewRows`] when `n < 1 / alpha - 1`: the quantile would be past the
/// largest score (the set would have to be every class).
pub fn quantile_index(n: usize, alpha: f64, rule: QuantileRule) -> Result<usize, TrustError> {
    check_alpha(alpha)?;
    let level = (n + 1) as f64 * (1.0 - alpha);
    let rank = level.ceil();
    if n == 0 || rank > n as f64 {
        return Err(TrustError::TooFewRows(format!(
            "{n} calibration scores are too few for alpha = {alpha}: \
             ceil((n + 1)(1 - alpha)) = {rank} > n (need n >= 1 / alpha - 1)"
        )));
    }
    Ok(match rule {
        QuantileRule::Exact => rank as usize - 1,
        QuantileRule::Mapie => {
            let q = level / n as f64;
            (((n - 1) as f64 * q).ceil() as usize).min(n - 1)
        }
    })
}

/// The conformal quantile `qhat` of `scores` at miscoverage `alpha`.
///
/// # Errors
/// As [`quantile_index`]; [`TrustError::Value`] for a NaN score.
pub fn conformal_quantile(
    scores: &[f64],
    alpha: f64,
    rule: QuantileRule,
) -> Result<f64, TrustError> {
    if scores.iter().any(|s| s.is_nan()) {
        return Err(TrustError::Value("a conformity score is NaN".into()));
    }
    let i = quantile_index(scores.len(), alpha, rule)?;
    let mut s = scores.to_vec();
    s.sort_by(f64::total_cmp);
    Ok(s[i])
}

/// The prediction set of one row of probabilities at threshold `qhat`, classes
/// ascending.
pub fn prediction_set(row: &[f64], score: Score, qhat: f64, inclusion: Inclusion) -> Vec<usize> {
    match (score, inclusion) {
        (Score::Lac, Inclusion::IncludeLast) => (0..row.len())
            .filter(|&j| row[j] - (1.0 - qhat) >= -EPS)
            .collect(),
        (_, Inclusion::ScoreAtMost) => (0..row.len())
            .filter(|&j| label_score(row, j, score) <= qhat)
            .collect(),
        (_, Inclusion::IncludeLast) => {
            let (order, c) = sorted_cumsum(row, score);
            // MAPIE: argmin over classes (original order) of c - qhat among c - qhat >= -EPS.
            let mut last: Option<(usize, f64)> = None;
            for (r, &j) in order.iter().enumerate() {
                let d = c[r] - qhat;
                if d >= -EPS && last.is_none_or(|(lj, ld)| d < ld || (d == ld && j < lj)) {
                    last = Some((j, d));
                }
            }
            let Some((l, _)) = last else {
                return (0..row.len()).collect();
            };
            let mut p_last = row[l];
            if p_last <= EPS {
                p_last = row
                    .iter()
                    .copied()
                    .filter(|&p| p >= EPS)
                    .fold(f64::INFINITY, f64::min);
            }
            (0..row.len())
                .filter(|&j| row[j] - p_last >= -EPS)
                .collect()
        }
    }
}

/// The randomised score `c_j - u p_j + penalty` of every class `j` (LAC: `1 - p_j`,
/// `u` unused), in class order.
pub fn randomized_scores(row: &[f64], score: Score, u: f64) -> Vec<f64> {
    if score == Score::Lac {
        return row.iter().map(|p| 1.0 - p).collect();
    }
    let (order, c) = sorted_cumsum(row, Score::Aps);
    let mut out = vec![0.0; row.len()];
    for (r, &j) in order.iter().enumerate() {
        out[j] = (c[r] - u * row[j]) + score.penalty(r + 1);
    }
    out
}

/// The randomised set of Romano et al. 2020 (APS) and Angelopoulos et al. 2021 (RAPS):
/// `{j : c_j - u p_j + penalty_j <= qhat}` with one uniform `u` for the row, against a
/// `qhat` from randomised calibration scores ([`calibration_scores`] with `u`). Its
/// scores are continuous, so the coverage is in `[1 - alpha, 1 - alpha + 1 / (n + 1))`
/// even for two classes, where the deterministic APS score is 1 for the second class.
/// (MAPIE's `include_last_label="randomized"` is a different rule.) May be empty.
pub fn prediction_set_randomized(row: &[f64], score: Score, qhat: f64, u: f64) -> Vec<usize> {
    randomized_scores(row, score, u)
        .iter()
        .enumerate()
        .filter(|(_, s)| **s <= qhat)
        .map(|(j, _)| j)
        .collect()
}

/// A calibrated split-conformal predictor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitConformal {
    /// The score.
    pub score: Score,
    /// The miscoverage level.
    pub alpha: f64,
    /// The threshold.
    pub qhat: f64,
    /// Calibration rows.
    pub n: usize,
    /// The quantile rule.
    pub rule: QuantileRule,
}

impl SplitConformal {
    /// Calibrates on `probs` and `labels` (deterministic scores).
    ///
    /// # Errors
    /// As [`calibration_scores`] and [`conformal_quantile`].
    pub fn calibrate(
        probs: &Probs,
        labels: &[usize],
        score: Score,
        alpha: f64,
        rule: QuantileRule,
    ) -> Result<Self, TrustError> {
        check_alpha(alpha)?;
        let s = calibration_scores(probs, labels, score, None)?;
        Ok(Self {
            score,
            alpha,
            qhat: conformal_quantile(&s, alpha, rule)?,
            n: probs.n(),
            rule,
        })
    }

    /// The prediction set of every row of `probs`.
    pub fn predict(&self, probs: &Probs, inclusion: Inclusion) -> Vec<Vec<usize>> {
        probs
            .rows()
            .map(|r| prediction_set(r, self.score, self.qhat, inclusion))
            .collect()
    }
}

/// Class-conditional (Mondrian) split conformal (Vovk et al. 2005; Sadinle et al. 2019):
/// one quantile per class from the calibration rows of that class, so coverage holds
/// within every class: `P(y in C | y = j) >= 1 - alpha`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mondrian {
    /// The score.
    pub score: Score,
    /// The miscoverage level.
    pub alpha: f64,
    /// Per class: the threshold, or `None` where the class has fewer than
    /// `1 / alpha - 1` calibration rows (then the class is always in the set).
    pub qhat: Vec<Option<f64>>,
}

impl Mondrian {
    /// Calibrates one quantile per class (deterministic scores).
    ///
    /// # Errors
    /// As [`calibration_scores`]; `alpha` outside `(0, 1)`.
    pub fn calibrate(
        probs: &Probs,
        labels: &[usize],
        score: Score,
        alpha: f64,
        rule: QuantileRule,
    ) -> Result<Self, TrustError> {
        check_alpha(alpha)?;
        let s = calibration_scores(probs, labels, score, None)?;
        let qhat = (0..probs.k())
            .map(|j| {
                let sj: Vec<f64> = s
                    .iter()
                    .zip(labels)
                    .filter(|(_, y)| **y == j)
                    .map(|(s, _)| *s)
                    .collect();
                conformal_quantile(&sj, alpha, rule).ok()
            })
            .collect();
        Ok(Self { score, alpha, qhat })
    }

    /// The set of one row: `{j : s(x, j) <= qhat_j}` (every class without a quantile).
    pub fn prediction_set(&self, row: &[f64]) -> Vec<usize> {
        (0..row.len())
            .filter(|&j| self.qhat[j].is_none_or(|q| label_score(row, j, self.score) <= q))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_index_by_hand() {
        // n = 200, alpha = 0.1: ceil(201 * 0.9) = ceil(180.9) = 181st smallest, index
        // 180; MAPIE: ceil(199 * 180.9 / 200) = ceil(179.9955) = 180, the same.
        assert_eq!(quantile_index(200, 0.1, QuantileRule::Exact).unwrap(), 180);
        assert_eq!(quantile_index(200, 0.1, QuantileRule::Mapie).unwrap(), 180);
        // n = 19: ceil(20 * 0.9) = 18th smallest (index 17); MAPIE's np.quantile
        // "higher" at 18 / 19 reads index ceil(18 * 18 / 19) = ceil(17.05) = 18: one
        // order statistic higher.
        assert_eq!(quantile_index(19, 0.1, QuantileRule::Exact).unwrap(), 17);
        assert_eq!(quantile_index(19, 0.1, QuantileRule::Mapie).unwrap(), 18);
        let s: Vec<f64> = (1..=19).map(|i| f64::from(i) / 100.0).collect();
        assert_eq!(
            conformal_quantile(&s, 0.1, QuantileRule::Exact).unwrap(),
            0.18
        );
        assert_eq!(
            conformal_quantile(&s, 0.1, QuantileRule::Mapie).unwrap(),
            0.19
        );
        // n = 8 is too few for alpha = 0.1 (ceil(9 * 0.9) = 9 > 8); n = 9 takes the max.
        assert!(matches!(
            quantile_index(8, 0.1, QuantileRule::Exact),
            Err(TrustError::TooFewRows(_))
        ));
        assert_eq!(quantile_index(9, 0.1, QuantileRule::Exact).unwrap(), 8);
        for a in [0.0, 1.0, -0.1, f64::NAN] {
            assert!(check_alpha(a).is_err(), "{a}");
        }
    }

    #[test]
    fn scores_by_hand() {
        // Sorted: class 1 (.5), class 2 (.3), class 0 (.2); running sums .5, .8, 1.0.
        let row = [0.2, 0.5, 0.3];
        assert_eq!(label_score(&row, 1, Score::Lac), 0.5);
        assert!((label_score(&row, 2, Score::Aps) - 0.8).abs() < 1e-15);
        assert!((label_score(&row, 0, Score::Aps) - 1.0).abs() < 1e-15);
        // RAPS, k_reg = 1, lambda = 0.1: + 0.1 at rank 2, + 0.2 at rank 3.
        let raps = Score::Raps {
            k_reg: 1,
            lambda: 0.1,
        };
        assert!((label_score(&row, 1, raps) - 0.5).abs() < 1e-15);
        assert!((label_score(&row, 2, raps) - 0.9).abs() < 1e-15);
        assert!((label_score(&row, 0, raps) - 1.2).abs() < 1e-15);
        // Randomised APS with u = 0.5 on label 2: 0.8 - 0.5 * 0.3 = 0.65.
        let p = Probs::new(row.to_vec(), 3).unwrap();
        let s = calibration_scores(&p, &[2], Score::Aps, Some(&[0.5])).unwrap();
        assert!((s[0] - 0.65).abs() < 1e-15);
    }

    #[test]
    fn sets_by_hand() {
        let row = [0.2, 0.5, 0.3];
        // LAC at qhat 0.75 keeps p >= 0.25: classes 1 and 2.
        assert_eq!(
            prediction_set(&row, Score::Lac, 0.75, Inclusion::IncludeLast),
            [1, 2]
        );
        assert_eq!(
            prediction_set(&row, Score::Lac, 0.75, Inclusion::ScoreAtMost),
            [1, 2]
        );
        // APS at qhat 0.75: class 2 is the first whose running sum (.8) reaches it, so
        // it is in (include the last label); by score only class 1 (.5 <= .75) is.
        assert_eq!(
            prediction_set(&row, Score::Aps, 0.75, Inclusion::IncludeLast),
            [1, 2]
        );
        assert_eq!(
            prediction_set(&row, Score::Aps, 0.75, Inclusion::ScoreAtMost),
            [1]
        );
        // A threshold beyond every running sum: every class.
        assert_eq!(
            prediction_set(&row, Score::Aps, 1.5, Inclusion::IncludeLast),
            [0, 1, 2]
        );
    }

    #[test]
    fn mondrian_by_hand() {
        // alpha 0.5. Class 0 rows: p0 = .9, .6 -> LAC scores .1, .4; n = 2, the
        // ceil(3 * .5) = 2nd smallest: qhat_0 = .4. Class 1: one row, p1 = .8 -> score
        // .2, ceil(2 * .5) = 1st: qhat_1 = .2 (up to rounding of 1 - .8). Class 2: no
        // rows: always in.
        let p = Probs::new(vec![0.9, 0.05, 0.05, 0.6, 0.2, 0.2, 0.1, 0.8, 0.1], 3).unwrap();
        let m = Mondrian::calibrate(&p, &[0, 0, 1], Score::Lac, 0.5, QuantileRule::Exact).unwrap();
        assert!((m.qhat[0].unwrap() - 0.4).abs() < 1e-15);
        assert!((m.qhat[1].unwrap() - 0.2).abs() < 1e-15);
        assert_eq!(m.qhat[2], None);
        // [.7, .25, .05]: class 0 score .3 <= .4 in; class 1 .75 > .2 out; class 2 in.
        assert_eq!(m.prediction_set(&[0.7, 0.25, 0.05]), [0, 2]);
        assert_eq!(m.prediction_set(&[0.5, 0.45, 0.05]), [2]);
    }
}
