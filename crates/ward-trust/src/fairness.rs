//! Fairness across sites and across groups of patients, as pure functions on
//! predictions (every result is `serde`-serialisable for reports).
//!
//! - [`site_summary`]: accuracy across sites: mean, worst and best site, spread
//!   (best − worst) and the standard deviation across sites.
//! - [`group_report`]: a binary task split by a group label per row: per group n,
//!   positives, accuracy, true-positive rate, false-positive rate and selection rate,
//!   and the gaps (max − min across groups) with Fairlearn's definitions
//!   (`true_positive_rate`, `false_positive_rate`, `selection_rate`,
//!   `equalized_odds_difference`, `demographic_parity_difference`, method
//!   `between_groups`; checked against Fairlearn 0.15.0 on a committed fixture, where every group
//!   holds both classes; Fairlearn returns 0 for an undefined rate).
//!   A rate with an empty denominator (a group without positives has no TPR) is
//!   `None`, never NaN, and a gap is taken over the groups where the rate is defined.
//! - [`t_interval`]: a mean with its Student-t confidence interval (over seeds).
//! - [`constant_floor`]: the accuracy of the best constant predictor.
//!
//! ```
//! use ward_trust::fairness::group_report;
//!
//! // Group a: one positive found, one negative flagged; group b: all right.
//! let y_true = [1, 0, 1, 0];
//! let y_pred = [1, 1, 1, 0];
//! let r = group_report(&y_true, &y_pred, &["a", "a", "b", "b"])?;
//! assert_eq!(r.groups[0].fpr, Some(1.0));
//! assert_eq!(r.groups[1].fpr, Some(0.0));
//! assert_eq!(r.tpr_difference, Some(0.0));
//! assert_eq!(r.equalized_odds_difference, Some(1.0));
//! assert_eq!(r.demographic_parity_difference, 0.5);
//! # Ok::<(), ward_trust::TrustError>(())
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::TrustError;

/// Accuracy across sites.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteSummary {
    /// Number of sites.
    pub sites: usize,
    /// Unweighted mean of the sites' accuracies.
    pub mean: f64,
    /// The site with the lowest accuracy (the first such in input order).
    pub worst_site: String,
    /// Its accuracy.
    pub worst: f64,
    /// The site with the highest accuracy (the first such in input order).
    pub best_site: String,
    /// Its accuracy.
    pub best: f64,
    /// `best - worst`.
    pub spread: f64,
    /// Standard deviation across sites (population, ddof 0: the sites are all there is).
    pub std: f64,
}

/// Accuracy across sites from `(site, accuracy)` pairs.
///
/// # Errors
/// [`TrustError::Shape`] for no sites, [`TrustError::Value`] for an accuracy outside
/// [0, 1] or NaN.
pub fn site_summary<S: AsRef<str>>(per_site: &[(S, f64)]) -> Result<SiteSummary, TrustError> {
    let Some((first_name, first)) = per_site.first() else {
        return Err(TrustError::Shape(
            "site_summary needs at least one site".into(),
        ));
    };
    let (mut worst, mut best) = ((first_name.as_ref(), *first), (first_name.as_ref(), *first));
    for (name, a) in per_site {
        if !(0.0..=1.0).contains(a) {
            return Err(TrustError::Value(format!(
                "site {}: accuracy {a} is not in [0, 1]",
                name.as_ref()
            )));
        }
        if *a < worst.1 {
            worst = (name.as_ref(), *a);
        }
        if *a > best.1 {
            best = (name.as_ref(), *a);
        }
    }
    let n = per_site.len() as f64;
    let mean = per_site.iter().map(|(_, a)| a).sum::<f64>() / n;
    let var = per_site
        .iter()
        .map(|(_, a)| (a - mean).powi(2))
        .sum::<f64>()
        / n;
    Ok(SiteSummary {
        sites: per_site.len(),
        mean,
        worst_site: worst.0.to_string(),
        worst: worst.1,
        best_site: best.0.to_string(),
        best: best.1,
        spread: best.1 - worst.1,
        std: var.sqrt(),
    })
}

/// One group's rates on a binary task (label 1 is the positive class).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRates {
    /// The group's label.
    pub group: String,
    /// Rows in the group.
    pub n: usize,
    /// Rows with true label 1.
    pub positives: usize,
    /// Share of rows predicted right.
    pub accuracy: f64,
    /// True-positive rate `TP / (TP + FN)`; `None` without positives.
    pub tpr: Option<f64>,
    /// False-positive rate `FP / (FP + TN)`; `None` without negatives.
    pub fpr: Option<f64>,
    /// Share of rows predicted 1.
    pub selection_rate: f64,
}

/// Every group's rates and the gaps between groups (max − min over groups).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupReport {
    /// One entry per group, ordered by label.
    pub groups: Vec<GroupRates>,
    /// Equal-opportunity difference: max − min TPR over the groups that have positives
    /// (`None` when fewer than one group has a TPR).
    pub tpr_difference: Option<f64>,
    /// max − min FPR over the groups that have negatives.
    pub fpr_difference: Option<f64>,
    /// Equalized-odds difference: the larger of the TPR and FPR differences (`None`
    /// unless both are defined).
    pub equalized_odds_difference: Option<f64>,
    /// Demographic-parity difference: max − min selection rate.
    pub demographic_parity_difference: f64,
    /// max − min accuracy.
    pub accuracy_difference: f64,
}

#[derive(Default)]
struct Counts {
    tp: usize,
    fp: usize,
    tn: usize,
    fn_: usize,
}

fn ratio(num: usize, den: usize) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

fn gap(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let v: Vec<f64> = values.flatten().collect();
    let max = v.iter().copied().reduce(f64::max)?;
    let min = v.iter().copied().reduce(f64::min)?;
    Some(max - min)
}

/// Group rates and gaps of binary predictions `y_pred` against `y_true` (both 0 or 1),
/// one group label per row.
///
/// # Errors
/// [`TrustError::Shape`] for lengths that differ or no rows, [`TrustError::Value`] for a
/// label other than 0 or 1.
pub fn group_report<G: AsRef<str>>(
    y_true: &[u32],
    y_pred: &[u32],
    groups: &[G],
) -> Result<GroupReport, TrustError> {
    if y_true.len() != y_pred.len() || y_true.len() != groups.len() {
        return Err(TrustError::Shape(format!(
            "group_report: {} labels, {} predictions, {} group labels (one each per row)",
            y_true.len(),
            y_pred.len(),
            groups.len()
        )));
    }
    if y_true.is_empty() {
        return Err(TrustError::Shape(
            "group_report needs at least one row".into(),
        ));
    }
    let mut by: BTreeMap<&str, Counts> = BTreeMap::new();
    for (i, ((&t, &p), g)) in y_true.iter().zip(y_pred).zip(groups).enumerate() {
        if t > 1 || p > 1 {
            return Err(TrustError::Value(format!(
                "row {i}: label {t}, prediction {p}; a binary task takes 0 or 1"
            )));
        }
        let c = by.entry(g.as_ref()).or_default();
        match (t, p) {
            (1, 1) => c.tp += 1,
            (1, _) => c.fn_ += 1,
            (_, 1) => c.fp += 1,
            _ => c.tn += 1,
        }
    }
    let groups: Vec<GroupRates> = by
        .into_iter()
        .map(|(g, c)| {
            let n = c.tp + c.fp + c.tn + c.fn_;
            GroupRates {
                group: g.to_string(),
                n,
                positives: c.tp + c.fn_,
                accuracy: (c.tp + c.tn) as f64 / n as f64,
                tpr: ratio(c.tp, c.tp + c.fn_),
                fpr: ratio(c.fp, c.fp + c.tn),
                selection_rate: (c.tp + c.fp) as f64 / n as f64,
            }
        })
        .collect();
    let tpr_difference = gap(groups.iter().map(|g| g.tpr));
    let fpr_difference = gap(groups.iter().map(|g| g.fpr));
    let equalized_odds_difference = tpr_difference.zip(fpr_difference).map(|(a, b)| a.max(b));
    let demographic_parity_difference =
        gap(groups.iter().map(|g| Some(g.selection_rate))).unwrap_or(0.0);
    let accuracy_difference = gap(groups.iter().map(|g| Some(g.accuracy))).unwrap_or(0.0);
    Ok(GroupReport {
        groups,
        tpr_difference,
        fpr_difference,
        equalized_odds_difference,
        demographic_parity_difference,
        accuracy_difference,
    })
}

/// A mean with a two-sided Student-t confidence interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeanInterval {
    /// Values behind it.
    pub n: usize,
    /// Their mean.
    pub mean: f64,
    /// Lower end (`None` for fewer than 2 values).
    pub lo: Option<f64>,
    /// Upper end (`None` for fewer than 2 values).
    pub hi: Option<f64>,
}

/// `mean ± t_{n-1, (1+level)/2} s / sqrt(n)` over `values` (s: sample standard deviation,
/// ddof 1); `None` for no values or a level outside (0, 1). One value gives the mean
/// without an interval.
pub fn t_interval(values: &[f64], level: f64) -> Option<MeanInterval> {
    if values.is_empty() || !(level > 0.0 && level < 1.0) {
        return None;
    }
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return Some(MeanInterval {
            n,
            mean,
            lo: None,
            hi: None,
        });
    }
    let (mean, lo, hi) = ward_core::stats::t_interval(values, level)?;
    Some(MeanInterval {
        n,
        mean,
        lo: Some(lo),
        hi: Some(hi),
    })
}

/// Accuracy of the best constant predictor on `labels` (the largest class share); `None`
/// for no labels.
pub fn constant_floor(labels: &[u32]) -> Option<f64> {
    let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
    for &y in labels {
        *counts.entry(y).or_default() += 1;
    }
    let max = counts.values().max()?;
    Some(*max as f64 / labels.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_summary_by_hand() {
        let s = site_summary(&[("a", 0.8), ("b", 0.6), ("c", 0.7)]).unwrap();
        assert_eq!((s.worst_site.as_str(), s.worst), ("b", 0.6));
        assert_eq!((s.best_site.as_str(), s.best), ("a", 0.8));
        assert!((s.mean - 0.7).abs() < 1e-15);
        assert!((s.spread - 0.2).abs() < 1e-15);
        // Population std: sqrt((0.01 + 0.01 + 0) / 3).
        assert!((s.std - (0.02f64 / 3.0).sqrt()).abs() < 1e-15);
        assert!(site_summary::<&str>(&[]).is_err());
        assert!(site_summary(&[("a", 1.5)]).is_err());
    }

    #[test]
    fn undefined_rates_are_none_not_nan() {
        // Group "x" has no positives: no TPR; group "y" has no negatives: no FPR.
        let r = group_report(&[0, 0, 1, 1], &[1, 0, 1, 0], &["x", "x", "y", "y"]).unwrap();
        assert_eq!(r.groups[0].tpr, None);
        assert_eq!(r.groups[0].fpr, Some(0.5));
        assert_eq!(r.groups[1].tpr, Some(0.5));
        assert_eq!(r.groups[1].fpr, None);
        // One group per rate: gaps of 0 over the defined ones.
        assert_eq!(r.tpr_difference, Some(0.0));
        assert_eq!(r.fpr_difference, Some(0.0));
        let one = group_report(&[0, 0], &[1, 0], &["x", "x"]).unwrap();
        assert_eq!(one.tpr_difference, None);
        assert_eq!(one.equalized_odds_difference, None);
        let json = serde_json::to_string(&one).unwrap();
        assert!(!json.contains("NaN"), "{json}");
    }

    #[test]
    fn group_report_refuses_bad_input() {
        assert!(group_report(&[0, 1], &[0], &["a", "a"]).is_err());
        assert!(group_report(&[2], &[0], &["a"]).is_err());
        assert!(group_report::<&str>(&[], &[], &[]).is_err());
    }

    /// n = 3, values 1, 2, 3: mean 2, s = 1, t_{2, 0.975} = 4.302652729911275,
    /// half-width 4.302652729911275 / sqrt(3) = 2.484138...
    #[test]
    fn t_interval_by_hand() {
        let m = t_interval(&[1.0, 2.0, 3.0], 0.95).unwrap();
        let half = 4.302_652_729_911_275 / 3f64.sqrt();
        assert!((m.lo.unwrap() - (2.0 - half)).abs() < 1e-9, "{m:?}");
        assert!((m.hi.unwrap() - (2.0 + half)).abs() < 1e-9);
        let one = t_interval(&[0.5], 0.95).unwrap();
        assert_eq!((one.mean, one.lo), (0.5, None));
        assert!(t_interval(&[], 0.95).is_none());
    }

    #[test]
    fn constant_floor_is_the_majority_share() {
        assert_eq!(constant_floor(&[0, 1, 1, 1]), Some(0.75));
        assert_eq!(constant_floor(&[]), None);
    }
}
