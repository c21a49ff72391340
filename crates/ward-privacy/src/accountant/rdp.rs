//! Rényi-DP accounting of the Poisson-subsampled Gaussian mechanism.
//!
//! The RDP of one step at order `alpha` is `log(A_alpha) / (alpha - 1)` with `A_alpha`
//! from Mironov, Talwar & Zhang 2019 ("Rényi Differential Privacy of the Sampled
//! Gaussian Mechanism", Section 3.3): a finite binomial sum for integer orders and two
//! series of erfc terms for fractional ones, both summed in log space so neither
//! overflows nor loses precision. This follows Opacus 1.5.4
//! (`opacus/accountants/analysis/rdp.py`, itself from TF Privacy) term by term.
//!
//! Compositions add RDP curves order by order; the curve is turned into `(epsilon,
//! delta)` over a grid of orders either by Balle et al. 2020 (Theorem 21 of
//! arXiv:1905.09982, what Opacus's `get_privacy_spent` does) or by Mironov 2017
//! (Proposition 3: `epsilon = rdp + log(1/delta) / (alpha - 1)`), whichever the caller
//! asks for; Balle's is never larger.

use std::f64::consts::{LN_2, PI};

use super::{GaussianEvent, check_delta, check_events};
use crate::PrivacyError;

/// Opacus's default orders (`RDPAccountant.DEFAULT_ALPHAS`): 1.1, 1.2, ..., 10.9, then
/// the integers 12, 13, ..., 63 (150 orders).
pub fn default_orders() -> Vec<f64> {
    (1..100)
        .map(|x| 1.0 + f64::from(x) / 10.0)
        .chain((12..64).map(f64::from))
        .collect()
}

/// An epsilon and the RDP order at which the conversion attained it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RdpEpsilon {
    /// The epsilon (never negative: a negative conversion result is reported as 0).
    pub epsilon: f64,
    /// The order `alpha` of the grid that gave the smallest epsilon.
    pub order: f64,
    /// Whether that order is the smallest or largest of the grid: the bound would
    /// probably be tighter with a wider grid.
    pub at_grid_edge: bool,
}

/// An RDP curve over a grid of orders, built up by composing Gaussian events.
///
/// ```
/// use ward_privacy::accountant::{GaussianEvent, RdpAccountant};
///
/// let mut acc = RdpAccountant::new();
/// acc.compose(&GaussianEvent { sigma: 1.5, q: 0.04, steps: 2250 })?;
/// let eps = acc.epsilon(1e-5)?;
/// // Opacus 1.5.4's test_rdp_accountant: 7.32911117143.
/// assert!((eps.epsilon - 7.3291).abs() < 1e-3);
/// assert_eq!(eps.order, 3.9);
/// # Ok::<(), ward_privacy::PrivacyError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RdpAccountant {
    orders: Vec<f64>,
    rdp: Vec<f64>,
}

impl Default for RdpAccountant {
    fn default() -> Self {
        Self::new()
    }
}

impl RdpAccountant {
    /// An empty composition over [`default_orders`].
    pub fn new() -> Self {
        let orders = default_orders();
        let rdp = vec![0.0; orders.len()];
        Self { orders, rdp }
    }

    /// An empty composition over the given orders (each finite and above 1).
    pub fn with_orders(orders: Vec<f64>) -> Result<Self, PrivacyError> {
        if orders.is_empty() {
            return Err(PrivacyError::parameter(
                "orders",
                "[]",
                "at least one RDP order is needed",
            ));
        }
        if let Some(&a) = orders.iter().find(|a| !(a.is_finite() && **a > 1.0)) {
            return Err(PrivacyError::parameter(
                "orders",
                a,
                "every RDP order must be finite and greater than 1",
            ));
        }
        let rdp = vec![0.0; orders.len()];
        Ok(Self { orders, rdp })
    }

    /// The orders of the grid.
    pub fn orders(&self) -> &[f64] {
        &self.orders
    }

    /// The composed RDP at each order (same length as [`RdpAccountant::orders`]).
    pub fn rdp(&self) -> &[f64] {
        &self.rdp
    }

    /// Adds `event.steps` steps of the subsampled Gaussian mechanism to the curve.
    pub fn compose(&mut self, event: &GaussianEvent) -> Result<&mut Self, PrivacyError> {
        check_events(std::slice::from_ref(event))?;
        let steps = event.steps as f64;
        for (r, &alpha) in self.rdp.iter_mut().zip(&self.orders) {
            *r += steps * subsampled_gaussian_rdp(event.q, event.sigma, alpha)?;
        }
        Ok(self)
    }

    /// Epsilon at `delta` by Balle et al. 2020 (Theorem 21 of arXiv:1905.09982):
    /// `min over alpha of rdp - (log(delta) + log(alpha)) / (alpha - 1) + log((alpha - 1) / alpha)`,
    /// as Opacus's `get_privacy_spent`.
    pub fn epsilon(&self, delta: f64) -> Result<RdpEpsilon, PrivacyError> {
        check_delta(delta)?;
        let ld = delta.ln();
        self.best(|r, a| r - (ld + a.ln()) / (a - 1.0) + ((a - 1.0) / a).ln())
    }

    /// Epsilon at `delta` by Mironov 2017 (Proposition 3):
    /// `min over alpha of rdp + log(1/delta) / (alpha - 1)`. Looser than
    /// [`RdpAccountant::epsilon`]; given for comparison with older reports.
    pub fn epsilon_mironov(&self, delta: f64) -> Result<RdpEpsilon, PrivacyError> {
        check_delta(delta)?;
        let l = (1.0 / delta).ln();
        self.best(|r, a| r + l / (a - 1.0))
    }

    /// The smallest conversion over the grid, NaNs ignored; infinite if every order is.
    fn best(&self, conv: impl Fn(f64, f64) -> f64) -> Result<RdpEpsilon, PrivacyError> {
        let mut best: Option<(usize, f64)> = None;
        for (i, (&r, &a)) in self.rdp.iter().zip(&self.orders).enumerate() {
            let e = conv(r, a);
            if e.is_nan() {
                continue;
            }
            if best.is_none_or(|(_, b)| e < b) {
                best = Some((i, e));
            }
        }
        let Some((i, e)) = best else {
            return Ok(RdpEpsilon {
                epsilon: f64::INFINITY,
                order: f64::NAN,
                at_grid_edge: false,
            });
        };
        Ok(RdpEpsilon {
            epsilon: e.max(0.0),
            order: self.orders[i],
            at_grid_edge: self.orders.len() > 1 && (i == 0 || i == self.orders.len() - 1),
        })
    }
}

/// RDP at order `alpha` of one step of the Gaussian mechanism with noise multiplier
/// `sigma` on a Poisson sample at rate `q` (Mironov, Talwar & Zhang 2019). For `q = 1`
/// it is the plain Gaussian mechanism's `alpha / (2 sigma^2)`. May be `+inf` when the
/// value overflows (a vanishing `sigma`).
pub fn subsampled_gaussian_rdp(q: f64, sigma: f64, alpha: f64) -> Result<f64, PrivacyError> {
    check_events(&[GaussianEvent { sigma, q, steps: 1 }])?;
    if !(alpha.is_finite() && alpha > 1.0) {
        return Err(PrivacyError::parameter(
            "alpha",
            alpha,
            "an RDP order must be finite and greater than 1",
        ));
    }
    if q == 1.0 {
        return Ok(alpha / (2.0 * sigma * sigma));
    }
    let log_a = if alpha.fract() == 0.0 && alpha <= f64::from(u32::MAX) {
        log_a_int(q, sigma, alpha as u32)
    } else {
        log_a_frac(q, sigma, alpha)?
    };
    Ok(log_a / (alpha - 1.0))
}

/// `log(exp(x) + exp(y))`.
fn log_add(x: f64, y: f64) -> f64 {
    let (lo, hi) = if x < y { (x, y) } else { (y, x) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    (lo - hi).exp().ln_1p() + hi
}

/// `log(exp(x) - exp(y))` for `x >= y`; `None` if `x < y`.
fn log_sub(x: f64, y: f64) -> Option<f64> {
    if x < y {
        return None;
    }
    if y == f64::NEG_INFINITY {
        return Some(x);
    }
    if x == y {
        return Some(f64::NEG_INFINITY);
    }
    // exp(x) - exp(y) = exp(x) (1 - exp(y - x)); never overflows.
    Some(x + (-(y - x).exp_m1()).ln())
}

/// `log(erfc(x))`, accurate far into the upper tail where `erfc` underflows.
pub(crate) fn log_erfc(x: f64) -> f64 {
    if x < 25.0 {
        return libm::erfc(x).ln();
    }
    // Asymptotic series erfc(x) = exp(-x^2) / (x sqrt(pi)) * sum_k (-1)^k (2k-1)!! / (2x^2)^k;
    // at x >= 25 the 10th term is below 1e-25 of the first.
    let w = 1.0 / (2.0 * x * x);
    let (mut term, mut sum) = (1.0, 1.0);
    for k in 1..=10 {
        term *= -f64::from(2 * k - 1) * w;
        sum += term;
    }
    -x * x - x.ln() - 0.5 * PI.ln() + sum.ln()
}

/// `log(A_alpha)` for an integer order: `sum_i C(alpha, i) q^i (1-q)^(alpha-i)
/// exp((i^2 - i) / (2 sigma^2))`.
fn log_a_int(q: f64, sigma: f64, alpha: u32) -> f64 {
    let (lq, l1q) = (q.ln(), (-q).ln_1p());
    let s2 = 2.0 * sigma * sigma;
    let a = f64::from(alpha);
    let mut log_a = f64::NEG_INFINITY;
    let mut log_coef = 0.0; // log C(alpha, 0)
    for i in 0..=alpha {
        let fi = f64::from(i);
        if i > 0 {
            log_coef += ((a - fi + 1.0) / fi).ln();
        }
        let s = log_coef + fi * lq + (a - fi) * l1q + (fi * fi - fi) / s2;
        log_a = log_add(log_a, s);
    }
    log_a
}

/// `log(A_alpha)` for a fractional order: the integrals over `(-inf, z0]` and
/// `[z0, inf)` as two alternating series of erfc terms, summed until both terms are
/// below `exp(-30)`.
fn log_a_frac(q: f64, sigma: f64, alpha: f64) -> Result<f64, PrivacyError> {
    let (lq, l1q) = (q.ln(), (-q).ln_1p());
    let s2 = 2.0 * sigma * sigma;
    let z0 = sigma * sigma * (1.0 / q - 1.0).ln() + 0.5;
    let denom = std::f64::consts::SQRT_2 * sigma;
    let (mut log_a0, mut log_a1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    // |C(alpha, i)| and its sign, by the recurrence C(a, i) = C(a, i-1) (a - i + 1) / i.
    let (mut log_coef, mut positive) = (0.0, true);
    let fail = || PrivacyError::Accountant {
        accountant: "rdp",
        reason: format!(
            "the fractional-order series for q = {q}, sigma = {sigma}, alpha = {alpha} \
             did not converge"
        ),
    };
    for i in 0..100_000u32 {
        let fi = f64::from(i);
        if i > 0 {
            let f = (alpha - fi + 1.0) / fi;
            log_coef += f.abs().ln();
            if f < 0.0 {
                positive = !positive;
            }
        }
        let j = alpha - fi;
        let log_t0 = log_coef + fi * lq + j * l1q;
        let log_t1 = log_coef + j * lq + fi * l1q;
        let log_e0 = -LN_2 + log_erfc((fi - z0) / denom);
        let log_e1 = -LN_2 + log_erfc((z0 - j) / denom);
        let log_s0 = log_t0 + (fi * fi - fi) / s2 + log_e0;
        let log_s1 = log_t1 + (j * j - j) / s2 + log_e1;
        if positive {
            log_a0 = log_add(log_a0, log_s0);
            log_a1 = log_add(log_a1, log_s1);
        } else {
            log_a0 = log_sub(log_a0, log_s0).ok_or_else(fail)?;
            log_a1 = log_sub(log_a1, log_s1).ok_or_else(fail)?;
        }
        if log_s0.max(log_s1) < -30.0 {
            return Ok(log_add(log_a0, log_a1));
        }
    }
    Err(fail())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(events: &[GaussianEvent]) -> RdpAccountant {
        let mut acc = RdpAccountant::new();
        for e in events {
            acc.compose(e).unwrap();
        }
        acc
    }

    const OPACUS: GaussianEvent = GaussianEvent {
        sigma: 1.5,
        q: 0.04,
        steps: 2250,
    };

    #[test]
    fn default_grid_is_opacus_default_alphas() {
        let o = default_orders();
        // [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))
        assert_eq!(o.len(), 99 + 52);
        assert_eq!(o[0], 1.1);
        assert_eq!(o[98], 10.9);
        assert_eq!(o[99], 12.0);
        assert_eq!(*o.last().unwrap(), 63.0);
    }

    #[test]
    fn opacus_reference_balle_and_mironov() {
        let acc = curve(&[OPACUS]);
        // Opacus 1.5.4 opacus/tests/accountants_test.py::test_rdp_accountant:
        // sigma 1.5, q 0.04, int(90 / 0.04) = 2250 steps, delta 1e-5 -> 7.32911117143.
        let b = acc.epsilon(1e-5).unwrap();
        assert!((b.epsilon - 7.32911117143).abs() < 1e-6, "{b:?}");
        // Opacus 1.5.4's analysis code run with numpy 2.4.6 / scipy 1.17.1: order 3.9.
        assert_eq!(b.order, 3.9);
        assert!(!b.at_grid_edge);
        // Mironov's conversion over the same grid (issue 6: 8.074; Opacus 1.5.4's
        // compute_rdp + log(1/delta)/(alpha-1): 8.073848277153212 at order 4.1).
        let m = acc.epsilon_mironov(1e-5).unwrap();
        assert!((m.epsilon - 8.073848277153212).abs() < 1e-6, "{m:?}");
        assert_eq!(m.order, 4.1);
    }

    #[test]
    fn opacus_module_docstring_example() {
        // Opacus 1.5.4 analysis/rdp.py module docstring: events (q 1e-5, sigma 1.0,
        // 10 steps) and (q 1e-4, sigma 3.0, 4 steps), orders 2..=32, delta 1e-5 ->
        // (0.336, 23) (doctest +NUMBER, i.e. to the digits shown).
        let mut acc = RdpAccountant::with_orders((2..=32).map(f64::from).collect()).unwrap();
        acc.compose(&GaussianEvent {
            sigma: 1.0,
            q: 1e-5,
            steps: 10,
        })
        .unwrap();
        acc.compose(&GaussianEvent {
            sigma: 3.0,
            q: 1e-4,
            steps: 4,
        })
        .unwrap();
        let e = acc.epsilon(1e-5).unwrap();
        assert!((e.epsilon - 0.336).abs() < 5e-4, "{e:?}");
        assert_eq!(e.order, 23.0);
    }

    #[test]
    fn full_batch_is_the_gaussian_mechanism() {
        // q = 1: RDP of the Gaussian mechanism is alpha / (2 sigma^2) (Mironov 2017,
        // Proposition 7); 3 steps at sigma 2, alpha 4: 3 * 4 / 8 = 1.5.
        let mut acc = RdpAccountant::with_orders(vec![4.0]).unwrap();
        acc.compose(&GaussianEvent {
            sigma: 2.0,
            q: 1.0,
            steps: 3,
        })
        .unwrap();
        assert_eq!(acc.rdp(), &[1.5]);
        // Mironov: 1.5 + ln(1e5) / 3; by hand ln(1e5) = 11.512925464970229.
        let m = acc.epsilon_mironov(1e-5).unwrap().epsilon;
        assert!((m - (1.5 + 11.512925464970229 / 3.0)).abs() < 1e-12);
        // Balle: 1.5 - (ln 1e-5 + ln 4) / 3 + ln(3/4).
        let b = acc.epsilon(1e-5).unwrap().epsilon;
        let want = 1.5 - ((1e-5f64).ln() + 4f64.ln()) / 3.0 + 0.75f64.ln();
        assert!((b - want).abs() < 1e-12);
    }

    #[test]
    fn integer_order_two_matches_closed_form() {
        // A_2 = (1-q)^2 + 2q(1-q) + q^2 e^{1/sigma^2} = 1 + q^2 (e^{1/sigma^2} - 1)
        // (Mironov et al. 2019, Section 3.3, alpha = 2), so RDP = ln(A_2).
        for (q, sigma) in [(0.01f64, 1.0f64), (0.3, 0.7), (0.9, 4.0)] {
            let want = (q * q * (1.0 / (sigma * sigma)).exp_m1()).ln_1p();
            let got = subsampled_gaussian_rdp(q, sigma, 2.0).unwrap();
            assert!((got - want).abs() < 1e-14 * want.max(1.0), "{q} {sigma}");
        }
    }

    #[test]
    fn fractional_orders_are_continuous_with_integer_orders() {
        // The two formulas meet: RDP at alpha = 3 +- 1e-7 brackets the integer value.
        for (q, sigma) in [(0.04, 1.5), (0.2, 0.8), (0.001, 3.0)] {
            let at = |a| subsampled_gaussian_rdp(q, sigma, a).unwrap();
            let (lo, mid, hi) = (at(3.0 - 1e-7), at(3.0), at(3.0 + 1e-7));
            assert!(
                lo <= mid * (1.0 + 1e-9) && mid <= hi * (1.0 + 1e-9),
                "{lo} {mid} {hi}"
            );
            assert!((hi - lo).abs() < 1e-5 * mid, "{lo} {mid} {hi}");
        }
    }

    #[test]
    fn log_erfc_matches_scipy_and_is_continuous() {
        // scipy 1.17.1: log(2) + special.log_ndtr(-x * sqrt(2)).
        for (x, want) in [
            (30.0, -903.9741171106442),
            (100.0, -10005.177585122668),
            (20.0, -403.5693433341044),
            (5.0, -27.200889545537446),
            (-3.0, 0.6931361352504468),
        ] {
            let got = log_erfc(x);
            assert!(
                (got - want).abs() < 1e-10 * want.abs().max(1.0),
                "{x}: {got}"
            );
        }
        let (a, b) = (log_erfc(25.0 - 1e-12), log_erfc(25.0));
        assert!((a - b).abs() < 1e-9, "{a} {b}");
    }

    #[test]
    fn log_space_helpers() {
        assert!((log_add(2f64.ln(), 3f64.ln()) - 5f64.ln()).abs() < 1e-15);
        assert!((log_sub(5f64.ln(), 3f64.ln()).unwrap() - 2f64.ln()).abs() < 1e-15);
        assert_eq!(log_sub(1.0, 1.0), Some(f64::NEG_INFINITY));
        assert_eq!(log_sub(1.0, 2.0), None);
        // No overflow far apart.
        assert_eq!(log_add(1000.0, 0.0), 1000.0);
        assert_eq!(log_sub(1000.0, 0.0), Some(1000.0));
    }

    #[test]
    fn rejects_bad_orders() {
        let err = |orders: Vec<f64>| RdpAccountant::with_orders(orders).unwrap_err().to_string();
        assert_eq!(err(vec![]), "orders = []: at least one RDP order is needed");
        assert_eq!(
            err(vec![2.0, 1.0]),
            "orders = 1: every RDP order must be finite and greater than 1"
        );
        assert_eq!(
            err(vec![f64::INFINITY]),
            "orders = inf: every RDP order must be finite and greater than 1"
        );
        assert_eq!(
            subsampled_gaussian_rdp(0.1, 1.0, 0.5)
                .unwrap_err()
                .to_string(),
            "alpha = 0.5: an RDP order must be finite and greater than 1"
        );
    }

    #[test]
    fn small_sigma_does_not_overflow_to_nan() {
        let r = subsampled_gaussian_rdp(0.5, 0.05, 10.5).unwrap();
        assert!(r.is_finite() && r > 0.0, "{r}");
        let r = subsampled_gaussian_rdp(0.5, 0.05, 63.0).unwrap();
        assert!(r.is_finite() && r > 0.0, "{r}");
    }
}
