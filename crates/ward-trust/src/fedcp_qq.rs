//! FedCP-QQ, one-shot federated conformal prediction by a quantile of quantiles
//! (Humbert, Le Bars, Bellet and Arlot 2023, "One-Shot Federated Conformal Prediction",
//! ICML; the "Lu et al. 2023" is a different scheme, FCP, which needs many
//! rounds).
//!
//! Each of `m` sites computes one number from its own calibration scores, its
//! `l_j`-th smallest score, and sends only that; the server's threshold is the `k`-th
//! smallest of the `m` numbers. No score leaves a site.
//!
//! # Guarantee
//! If every calibration score at every site and the test score are i.i.d. (the sites
//! are exchangeable: same distribution) and continuous, then with `U = F(score)`
//! uniform, site `j`'s value is `F^-1(V_j)` with `V_j ~ Beta(l_j, n_j - l_j + 1)`
//! independent, and the coverage is exactly
//!
//! `P(y in C) = E[V_(k)] = integral_0^1 P(#{j : V_j <= v} < k) dv`
//!
//! (a Poisson-binomial count), which [`plan`] computes by Simpson's rule on 4096
//! intervals and keeps at least `1 - alpha`. Humbert et al. use equal site sizes and
//! pick `(l, k)` with the smallest coverage above `1 - alpha`; here sites may differ in
//! size: site `j` uses `l_j = min(n_j, ceil(r (n_j + 1)))` for a common level `r`, and
//! the plan is the `(r, k)` of smallest coverage at least `1 - alpha` over
//! `r = l / (n_min + 1)`, `l = 1..=n_min`. When sites differ in distribution the
//! guarantee does not hold: measure coverage per site (a site unlike the others can
//! fall below target while the pooled coverage looks right).

use serde::Serialize;

use crate::TrustError;

/// Simpson intervals of the coverage integral.
const INTERVALS: usize = 4096;

/// The order statistics FedCP-QQ uses, and the coverage they give.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QqPlan {
    /// The miscoverage level.
    pub alpha: f64,
    /// Calibration rows per site.
    pub sizes: Vec<usize>,
    /// Per site: the 1-based rank of the score it sends.
    pub local_rank: Vec<usize>,
    /// The 1-based rank, among the sites' values, of the threshold.
    pub k: usize,
    /// The coverage under exchangeable sites (at least `1 - alpha`).
    pub coverage: f64,
}

/// `P(#{j : V_j <= v} < k)` for independent events of probabilities `g`.
fn fewer_than(g: &[f64], k: usize) -> f64 {
    // dp[c] = P(count = c), counts above k - 1 dropped.
    let mut dp = vec![0.0; k];
    dp[0] = 1.0;
    for &p in g {
        for c in (0..k).rev() {
            dp[c] = dp[c] * (1.0 - p) + if c > 0 { dp[c - 1] * p } else { 0.0 };
        }
    }
    dp.iter().sum()
}

/// The coverage of local ranks `ranks` (sizes `sizes`) and server rank `k`.
fn coverage(sizes: &[usize], ranks: &[usize], k: usize) -> f64 {
    let h = 1.0 / INTERVALS as f64;
    let f = |v: f64| {
        let g: Vec<f64> = sizes
            .iter()
            .zip(ranks)
            .map(|(&n, &l)| {
                if v <= 0.0 {
                    0.0
                } else if v >= 1.0 {
                    1.0
                } else {
                    statrs::function::beta::beta_reg(l as f64, (n - l + 1) as f64, v)
                }
            })
            .collect();
        fewer_than(&g, k)
    };
    let mut s = f(0.0) + f(1.0);
    for i in 1..INTERVALS {
        let w = if i % 2 == 1 { 4.0 } else { 2.0 };
        s += w * f(i as f64 * h);
    }
    s * h / 3.0
}

fn ranks_at(sizes: &[usize], l: usize, n_min: usize) -> Vec<usize> {
    let r = l as f64 / (n_min + 1) as f64;
    sizes
        .iter()
        .map(|&n| ((r * (n + 1) as f64).ceil() as usize).clamp(1, n))
        .collect()
}

/// The FedCP-QQ plan for sites of `sizes` calibration rows at miscoverage `alpha`.
///
/// # Errors
/// [`TrustError::Parameter`] for `alpha` outside `(0, 1)` or no sites;
/// [`TrustError::TooFewRows`] when even the largest scores cannot reach `1 - alpha`.
pub fn plan(alpha: f64, sizes: &[usize]) -> Result<QqPlan, TrustError> {
    crate::conformal::check_alpha(alpha)?;
    let n_min = sizes.iter().copied().min().unwrap_or(0);
    if n_min == 0 {
        return Err(TrustError::param(
            "sites",
            "FedCP-QQ needs at least one site, each with a calibration row",
        ));
    }
    let m = sizes.len();
    let mut best: Option<QqPlan> = None;
    for k in 1..=m {
        // The smallest l whose coverage reaches 1 - alpha (coverage grows with l).
        if coverage(sizes, &ranks_at(sizes, n_min, n_min), k) < 1.0 - alpha {
            continue;
        }
        let (mut lo, mut hi) = (1usize, n_min);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if coverage(sizes, &ranks_at(sizes, mid, n_min), k) >= 1.0 - alpha {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        let ranks = ranks_at(sizes, lo, n_min);
        let c = coverage(sizes, &ranks, k);
        if best.as_ref().is_none_or(|b| c < b.coverage) {
            best = Some(QqPlan {
                alpha,
                sizes: sizes.to_vec(),
                local_rank: ranks,
                k,
                coverage: c,
            });
        }
    }
    best.ok_or_else(|| {
        TrustError::TooFewRows(format!(
            "FedCP-QQ cannot reach coverage {} with sites of {sizes:?} calibration rows",
            1.0 - alpha
        ))
    })
}

/// What site `site` sends: its `local_rank[site]`-th smallest calibration score.
///
/// # Errors
/// [`TrustError::Shape`] when `scores` is not the size the plan was made for;
/// [`TrustError::Value`] for a NaN score.
pub fn local_quantile(plan: &QqPlan, site: usize, scores: &[f64]) -> Result<f64, TrustError> {
    let (Some(&n), Some(&l)) = (plan.sizes.get(site), plan.local_rank.get(site)) else {
        return Err(TrustError::Shape(format!(
            "site {site} is not in a plan of {} sites",
            plan.sizes.len()
        )));
    };
    if scores.len() != n {
        return Err(TrustError::Shape(format!(
            "site {site} has {} scores, the plan was made for {n}",
            scores.len()
        )));
    }
    if scores.iter().any(|s| s.is_nan()) {
        return Err(TrustError::Value(format!("site {site}: a score is NaN")));
    }
    let mut s = scores.to_vec();
    s.sort_by(f64::total_cmp);
    Ok(s[l - 1])
}

/// The server's threshold: the `k`-th smallest of the sites' values.
///
/// # Errors
/// [`TrustError::Shape`] for a value count other than the plan's sites.
pub fn aggregate(plan: &QqPlan, local: &[f64]) -> Result<f64, TrustError> {
    if local.len() != plan.sizes.len() {
        return Err(TrustError::Shape(format!(
            "{} site values for a plan of {} sites",
            local.len(),
            plan.sizes.len()
        )));
    }
    let mut s = local.to_vec();
    s.sort_by(f64::total_cmp);
    Ok(s[plan.k - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_matches_closed_forms() {
        // One site: V_(1) ~ Beta(l, n - l + 1), mean l / (n + 1).
        assert!((coverage(&[20], &[19], 1) - 19.0 / 21.0).abs() < 1e-9);
        // Every site's maximum, the maximum of those: the largest of m n uniforms,
        // mean m n / (m n + 1); the minimum of minima: 1 / (m n + 1).
        assert!((coverage(&[30, 30, 30], &[30, 30, 30], 3) - 90.0 / 91.0).abs() < 1e-9);
        assert!((coverage(&[30, 30, 30], &[1, 1, 1], 1) - 1.0 / 91.0).abs() < 1e-9);
    }

    #[test]
    fn one_site_is_split_conformal() {
        // n = 20, alpha = 0.1: ceil(21 * 0.9) = 19th smallest, coverage 19 / 21.
        let p = plan(0.1, &[20]).unwrap();
        assert_eq!((p.local_rank.as_slice(), p.k), (&[19][..], 1));
        assert!((p.coverage - 19.0 / 21.0).abs() < 1e-9);
        let s: Vec<f64> = (1..=20).map(f64::from).collect();
        let q = local_quantile(&p, 0, &s).unwrap();
        assert_eq!(q, 19.0);
        assert_eq!(aggregate(&p, &[q]).unwrap(), 19.0);
    }

    #[test]
    fn plans_reach_the_target_and_not_much_more() {
        for (alpha, sizes) in [
            (0.1, vec![50, 50, 50, 50]),
            (0.1, vec![200, 120, 40, 150]),
            (0.2, vec![100; 10]),
        ] {
            let p = plan(alpha, &sizes).unwrap();
            assert!(p.coverage >= 1.0 - alpha, "{p:?}");
            assert!(p.coverage < 1.0 - alpha + 0.03, "{p:?}");
        }
        assert!(plan(0.01, &[5, 5]).is_err());
        assert!(plan(0.1, &[]).is_err());
    }
}
