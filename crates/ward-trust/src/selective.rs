//! Selective prediction and deferral: the model keeps the cases it is most confident
//! about and hands the rest to a clinician.
//!
//! A *risk–coverage curve* (El-Yaniv and Wiener 2010; Geifman and El-Yaniv 2017) keeps
//! the most confident fraction (the coverage) of cases and plots the error on them (the
//! selective risk). Read the other way it is the *deferral curve*: the fraction deferred
//! is `1 - coverage`, the error on the cases kept is the risk. *AURC* (Geifman et al.
//! 2019) is the mean selective risk over the `n` coverages `1/n, 2/n, ..., 1`; lower is
//! better, and *E-AURC* subtracts the AURC of an oracle that ranks every correct case
//! first.
//!
//! Ties: rows of equal confidence are kept or deferred together, so the curve has one
//! point per distinct confidence; AURC takes, inside a tied group, the expected error of
//! a random order of the group (the group's errors spread evenly), so it does not depend
//! on the order of the rows.

use serde::Serialize;

use crate::TrustError;

/// One point of a risk–coverage (deferral) curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CurvePoint {
    /// Rows kept with confidence at or above this.
    pub threshold: f64,
    /// Fraction of rows kept.
    pub coverage: f64,
    /// Error rate on the rows kept.
    pub risk: f64,
}

impl CurvePoint {
    /// The fraction deferred to a clinician, `1 - coverage`.
    pub fn deferred(&self) -> f64 {
        1.0 - self.coverage
    }
}

/// A risk–coverage curve with its AURC.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RiskCoverage {
    /// Rows.
    pub n: usize,
    /// Error rate on all rows (the risk at full coverage).
    pub error: f64,
    /// One point per distinct confidence, from the most confident group (lowest
    /// coverage) to full coverage.
    pub curve: Vec<CurvePoint>,
    /// Area under the risk–coverage curve (mean risk over coverages `i / n`).
    pub aurc: f64,
    /// AURC minus the AURC of the oracle that ranks every correct row first.
    pub e_aurc: f64,
}

/// Checks `confidence` (finite) against `correct` (same length, not empty).
fn check(confidence: &[f64], correct: &[bool]) -> Result<(), TrustError> {
    if confidence.len() != correct.len() {
        return Err(TrustError::Shape(format!(
            "{} confidences but {} outcomes",
            confidence.len(),
            correct.len()
        )));
    }
    if confidence.is_empty() {
        return Err(TrustError::TooFewRows("no rows to rank".into()));
    }
    if let Some(i) = confidence.iter().position(|c| !c.is_finite()) {
        return Err(TrustError::Value(format!("confidence {i} is not finite")));
    }
    Ok(())
}

/// The AURC of the oracle ranking (every correct row first) for `n` rows of which
/// `errors` are wrong: `(1/n) sum_i max(0, i - (n - errors)) / i`.
pub fn oracle_aurc(n: usize, errors: usize) -> f64 {
    let right = n - errors;
    (1..=n)
        .map(|i| i.saturating_sub(right) as f64 / i as f64)
        .sum::<f64>()
        / n as f64
}

/// The risk–coverage curve of rows with `confidence` (higher: more sure; e.g. the top
/// class probability, or minus the predictive entropy) and whether each was `correct`.
///
/// # Errors
/// Lengths that differ, no rows, a non-finite confidence.
pub fn risk_coverage(confidence: &[f64], correct: &[bool]) -> Result<RiskCoverage, TrustError> {
    check(confidence, correct)?;
    let n = confidence.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| confidence[b].total_cmp(&confidence[a]));
    let (mut curve, mut aurc) = (Vec::new(), 0.0);
    let (mut kept, mut errors) = (0usize, 0usize);
    let mut i = 0;
    while i < n {
        let c = confidence[order[i]];
        let mut j = i;
        while j < n && confidence[order[j]] == c {
            j += 1;
        }
        let g = j - i;
        let e = order[i..j].iter().filter(|&&r| !correct[r]).count();
        // Expected errors among the first m rows of the group in a random order: m e / g.
        for m in 1..=g {
            aurc += (errors as f64 + m as f64 * e as f64 / g as f64) / (kept + m) as f64;
        }
        kept += g;
        errors += e;
        curve.push(CurvePoint {
            threshold: c,
            coverage: kept as f64 / n as f64,
            risk: errors as f64 / kept as f64,
        });
        i = j;
    }
    let aurc = aurc / n as f64;
    Ok(RiskCoverage {
        n,
        error: errors as f64 / n as f64,
        e_aurc: aurc - oracle_aurc(n, errors),
        aurc,
        curve,
    })
}

/// The deferral operating point for a target error on the kept cases.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OperatingPoint {
    /// The error aimed for.
    pub target_error: f64,
    /// The curve point with the largest coverage whose risk is at most the target, or
    /// `None` when even the most confident group errs more often (defer everything).
    pub point: Option<CurvePoint>,
}

/// The smallest fraction deferred (largest coverage) at which the error on the kept
/// rows is at most `target_error`, read off `rc`'s curve.
pub fn operating_point(rc: &RiskCoverage, target_error: f64) -> OperatingPoint {
    OperatingPoint {
        target_error,
        point: rc
            .curve
            .iter()
            .rev()
            .find(|p| p.risk <= target_error)
            .copied(),
    }
}

/// The deferral policy "defer unless the conformal set is a single class".
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SetDeferral {
    /// Rows.
    pub n: usize,
    /// Fraction of rows whose set is not a singleton (deferred).
    pub deferred: f64,
    /// Error rate on the kept rows (singleton sets), `None` when none is kept.
    pub kept_error: Option<f64>,
}

/// [`SetDeferral`] of prediction `sets` against `labels`.
///
/// # Errors
/// Lengths that differ, no rows.
pub fn set_deferral(sets: &[Vec<usize>], labels: &[usize]) -> Result<SetDeferral, TrustError> {
    if sets.len() != labels.len() {
        return Err(TrustError::Shape(format!(
            "{} sets but {} labels",
            sets.len(),
            labels.len()
        )));
    }
    if sets.is_empty() {
        return Err(TrustError::TooFewRows("no rows".into()));
    }
    let (mut kept, mut wrong) = (0usize, 0usize);
    for (s, &y) in sets.iter().zip(labels) {
        if s.len() == 1 {
            kept += 1;
            wrong += usize::from(s[0] != y);
        }
    }
    let n = sets.len();
    Ok(SetDeferral {
        n,
        deferred: (n - kept) as f64 / n as f64,
        kept_error: (kept > 0).then(|| wrong as f64 / kept as f64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Confidences .9 .8 .7 .6, right wrong right wrong: prefix risks 0, 1/2, 1/3, 1/2,
    /// AURC = (0 + 1/2 + 1/3 + 1/2) / 4 = 1/3; the oracle (two right first) has risks
    /// 0, 0, 1/3, 1/2: 5/24.
    #[test]
    fn aurc_by_hand() {
        let rc = risk_coverage(&[0.7, 0.9, 0.6, 0.8], &[true, true, false, false]).unwrap();
        assert!((rc.aurc - 1.0 / 3.0).abs() < 1e-15, "{rc:?}");
        assert!((oracle_aurc(4, 2) - 5.0 / 24.0).abs() < 1e-15);
        assert!((rc.e_aurc - (1.0 / 3.0 - 5.0 / 24.0)).abs() < 1e-15);
        assert_eq!(rc.curve.len(), 4);
        assert_eq!(rc.curve[1].coverage, 0.5);
        assert_eq!(rc.curve[1].risk, 0.5);
        assert_eq!(rc.error, 0.5);
        // Target 0.4: coverage 3/4 (risk 1/3) is the largest point with risk <= 0.4
        // (coverage 1/2 has risk 1/2, but keeping one more right case brings it down).
        let op = operating_point(&rc, 0.4).point.unwrap();
        assert_eq!((op.coverage, op.deferred()), (0.75, 0.25));
        assert_eq!(operating_point(&rc, 0.2).point.unwrap().coverage, 0.25);
        assert!(operating_point(&rc, 0.6).point.unwrap().coverage == 1.0);
    }

    /// Two tied rows, one wrong: one curve point (coverage 1, risk 1/2); AURC is the
    /// expectation over both orders: (1/2 + 1/2) / 2 = 1/2 for each prefix.
    #[test]
    fn ties_are_one_point_and_order_free() {
        let a = risk_coverage(&[0.9, 0.9], &[true, false]).unwrap();
        let b = risk_coverage(&[0.9, 0.9], &[false, true]).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.curve.len(), 1);
        assert!((a.aurc - 0.5).abs() < 1e-15);
        // Nothing is kept at risk <= 0.1.
        assert!(operating_point(&a, 0.1).point.is_none());
    }

    #[test]
    fn perfect_ranking_has_zero_excess() {
        let rc = risk_coverage(
            &[0.99, 0.9, 0.5, 0.4, 0.3],
            &[true, true, true, false, false],
        )
        .unwrap();
        assert!(rc.e_aurc.abs() < 1e-15);
        let worst = risk_coverage(
            &[0.3, 0.4, 0.5, 0.9, 0.99],
            &[true, true, true, false, false],
        )
        .unwrap();
        assert!(worst.aurc > rc.aurc + 0.3);
    }

    #[test]
    fn set_deferral_by_hand() {
        let sets = vec![vec![0], vec![0, 1], vec![1], vec![], vec![2]];
        let d = set_deferral(&sets, &[0, 1, 0, 2, 2]).unwrap();
        assert_eq!(d.n, 5);
        assert!((d.deferred - 0.4).abs() < 1e-15);
        assert!((d.kept_error.unwrap() - 1.0 / 3.0).abs() < 1e-15);
        assert!(
            set_deferral(&[vec![0, 1]], &[0])
                .unwrap()
                .kept_error
                .is_none()
        );
        assert!(set_deferral(&sets, &[0]).is_err());
        assert!(risk_coverage(&[f64::NAN], &[true]).is_err());
    }
}
