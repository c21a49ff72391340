//! Confidence intervals for the numbers a report states: a proportion on one test set
//! (Wilson score interval) and a mean over seeds (Student's t).

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal};

/// A two-sided interval around an estimate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    /// The estimate (the proportion, or the mean).
    pub estimate: f64,
    /// Lower end.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
    /// Observations behind it (rows, or seeds).
    pub n: usize,
    /// Confidence level, e.g. 0.95.
    pub level: f64,
}

/// The Wilson score interval (Wilson 1927) of `successes` out of `n` at `level`
/// (e.g. 0.95); `None` for `n = 0`, `successes > n` or a level outside (0, 1).
pub fn wilson(successes: usize, n: usize, level: f64) -> Option<Interval> {
    if n == 0 || successes > n || !(level > 0.0 && level < 1.0) {
        return None;
    }
    let z = Normal::standard().inverse_cdf(0.5 + level / 2.0);
    let (nf, p) = (n as f64, successes as f64 / n as f64);
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * nf)) / (1.0 + z2 / nf);
    let half = z / (1.0 + z2 / nf) * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt();
    // At 0 (or n) successes the end is exactly 0 (or 1); rounding would leave 1e-17.
    Some(Interval {
        estimate: p,
        lo: if successes == 0 {
            0.0
        } else {
            (centre - half).max(0.0)
        },
        hi: if successes == n {
            1.0
        } else {
            (centre + half).min(1.0)
        },
        n,
        level,
    })
}

/// The Student-t interval of the mean of `values` (e.g. one score per seed) at `level`;
/// `None` for fewer than two values, a non-finite value or a level outside (0, 1).
pub fn mean_t(values: &[f64], level: f64) -> Option<Interval> {
    if values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let (estimate, lo, hi) = ward_core::stats::t_interval(values, level)?;
    Some(Interval {
        estimate,
        lo,
        hi,
        n: values.len(),
        level,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// statsmodels 0.15.0 `proportion_confint(8, 10, alpha=0.05, method="wilson")` =
    /// (0.4901625, 0.9433178); 0 of 5 gives (0, 0.4344825).
    #[test]
    fn wilson_matches_statsmodels() {
        let w = wilson(8, 10, 0.95).unwrap();
        assert!((w.lo - 0.490_162_5).abs() < 1e-6 && (w.hi - 0.943_317_8).abs() < 1e-6);
        let z = wilson(0, 5, 0.95).unwrap();
        assert_eq!(z.lo, 0.0);
        assert!((z.hi - 0.434_482_5).abs() < 1e-6, "{z:?}");
        assert!(wilson(3, 0, 0.95).is_none() && wilson(4, 3, 0.95).is_none());
    }

    /// 1..=5: mean 3, sd sqrt(2.5), t(0.975, 4) = 2.7764451 (scipy.stats.t.ppf):
    /// half-width 2.7764451 * sqrt(2.5) / sqrt(5) = 1.9632432.
    #[test]
    fn t_interval_by_hand() {
        let i = mean_t(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.95).unwrap();
        assert_eq!(i.estimate, 3.0);
        assert!((i.hi - 3.0 - 1.963_243_2).abs() < 1e-6, "{i:?}");
        assert!(mean_t(&[1.0], 0.95).is_none());
        assert!(mean_t(&[1.0, f64::NAN], 0.95).is_none());
    }
}
