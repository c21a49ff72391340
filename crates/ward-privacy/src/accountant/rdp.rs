//! Rényi-DP accounting of the subsampled Gaussian mechanism.
//!
//! **Poisson sampling** (add/remove-one adjacency, [`subsampled_gaussian_rdp`]): the
//! RDP of one step at order `alpha` is `log(A_alpha) / (alpha - 1)` with `A_alpha`
//! from Mironov, Talwar & Zhang 2019 ("Rényi Differential Privacy of the Sampled
//! Gaussian Mechanism", Section 3.3): a finite binomial sum for integer orders and two
//! series of erfc terms for fractional ones, both summed in log space so neither
//! overflows nor loses precision. This follows Opacus 1.5.4
//! (`opacus/accountants/analysis/rdp.py`, itself from TF Privacy) term by term.
//!
//! **Sampling without replacement** (substitution adjacency,
//! [`without_replacement_gaussian_rdp`]): Wang, Balle & Kasiviswanathan 2019
//! ("Subsampled Rényi Differential Privacy and Analytical Moments Accountant",
//! Theorem 27) for integer orders, and their Corollary 10 interpolation of the
//! cumulant between the neighbouring integers for fractional ones, ported from Google's
//! dp-accounting 0.6.0 (`_compute_rdp_sample_wor_gaussian`). Replacing one record moves
//! the clipped sum by up to 2C, so the theorem is applied to the Gaussian mechanism with
//! noise multiplier `sigma / 2` relative to that sensitivity. The same order grid is
//! used as for Poisson sampling: for DP-SGD-like settings the best order is small
//! (2 for sigma 1.5, q 0.04, 2250 steps, as over dp-accounting's wider default grid).
//!
//! Compositions add RDP curves order by order; the curve is turned into `(epsilon,
//! delta)` over a grid of orders either by Balle et al. 2020 (Theorem 21 of
//! arXiv:1905.09982, what Opacus's `get_privacy_spent` does) or by Mironov 2017
//! (Proposition 3: `epsilon = rdp + log(1/delta) / (alpha - 1)`), whichever the caller
//! asks for; Balle's is never larger.

use std::f64::consts::{LN_2, PI};

use super::{GaussianEvent, Sampling, check_delta, check_events, mixed_sampling};
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

/// An RDP curve over a grid of orders, built up by composing Gaussian events of one
/// [`Sampling`].
///
/// ```
/// use ward_privacy::accountant::{GaussianEvent, RdpAccountant};
///
/// let mut acc = RdpAccountant::new();
/// acc.compose(&GaussianEvent::poisson(1.5, 0.04, 2250))?;
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
    sampling: Option<Sampling>,
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
        Self {
            orders,
            rdp,
            sampling: None,
        }
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
        Ok(Self {
            orders,
            rdp,
            sampling: None,
        })
    }

    /// A curve given order by order (`rdp[i]` at `orders[i]`, equal lengths, orders
    /// checked by the caller), for conversions of curves computed elsewhere.
    pub(crate) fn from_curve(orders: Vec<f64>, rdp: Vec<f64>) -> Self {
        debug_assert_eq!(orders.len(), rdp.len());
        Self {
            orders,
            rdp,
            sampling: None,
        }
    }

    /// The orders of the grid.
    pub fn orders(&self) -> &[f64] {
        &self.orders
    }

    /// The composed RDP at each order (same length as [`RdpAccountant::orders`]).
    pub fn rdp(&self) -> &[f64] {
        &self.rdp
    }

    /// The sampling of the events composed so far (`None` before the first).
    pub fn sampling(&self) -> Option<Sampling> {
        self.sampling
    }

    /// Adds `event.steps` steps of the subsampled Gaussian mechanism to the curve.
    ///
    /// Errors: bad event parameters, or an event whose `sampling` differs from the
    /// events composed before (add/remove and substitution curves do not add up to one
    /// guarantee); the curve is left unchanged on error.
    pub fn compose(&mut self, event: &GaussianEvent) -> Result<&mut Self, PrivacyError> {
        check_events(std::slice::from_ref(event))?;
        if let Some(held) = self.sampling
            && held != event.sampling
        {
            return Err(mixed_sampling(
                event.sampling,
                "the event",
                held,
                "this accountant's curve",
            ));
        }
        let rdp_at = match event.sampling {
            Sampling::Poisson => subsampled_gaussian_rdp,
            Sampling::WithoutReplacement => without_replacement_gaussian_rdp,
        };
        let step: Vec<f64> = self
            .orders
            .iter()
            .map(|&alpha| rdp_at(event.q, event.sigma, alpha))
            .collect::<Result<_, _>>()?;
        let steps = event.steps as f64;
        for (r, s) in self.rdp.iter_mut().zip(step) {
            *r += steps * s;
        }
        self.sampling = Some(event.sampling);
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
    check_events(&[GaussianEvent::poisson(sigma, q, 1)])?;
    check_order(alpha)?;
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

/// Checks an RDP order is finite and above 1.
fn check_order(alpha: f64) -> Result<(), PrivacyError> {
    if !(alpha.is_finite() && alpha > 1.0) {
        return Err(PrivacyError::parameter(
            "alpha",
            alpha,
            "an RDP order must be finite and greater than 1",
        ));
    }
    Ok(())
}

/// The largest order [`without_replacement_gaussian_rdp`] accepts (its cost grows
/// linearly in the order beyond 256).
pub const MAX_WOR_ORDER: f64 = 1_048_576.0;

/// The order up to which Theorem 27 of Wang, Balle & Kasiviswanathan 2019 is evaluated
/// exactly (`max_alpha` in dp-accounting); above it each term takes the theorem's
/// second branch, `2 exp(cgf(i - 1))`.
const WOR_EXACT_MAX_ORDER: u64 = 256;

/// RDP at order `alpha` of one step of the Gaussian mechanism with noise multiplier
/// `sigma` (noise std / per-record clip C) on a batch of `q * population` records
/// drawn without replacement, for substitution of one record (Wang, Balle &
/// Kasiviswanathan 2019, Theorem 27 at integer orders; Corollary 10's linear
/// interpolation of `(alpha - 1) * rdp` between `floor(alpha)` and `ceil(alpha)` for
/// fractional ones).
///
/// Substitution moves the clipped sum by up to 2C, so this is dp-accounting 0.6.0's
/// `_compute_rdp_sample_wor_gaussian(q, sigma / 2, [alpha])`. For `q = 1` it is the
/// plain Gaussian mechanism at sensitivity 2C, `alpha * 2 / sigma^2`. May be `+inf`
/// when the value overflows (a vanishing `sigma`).
///
/// Errors: `sigma` or `q` as for [`subsampled_gaussian_rdp`], or `alpha` not in
/// `(1, MAX_WOR_ORDER]` ([`MAX_WOR_ORDER`]).
pub fn without_replacement_gaussian_rdp(
    q: f64,
    sigma: f64,
    alpha: f64,
) -> Result<f64, PrivacyError> {
    check_events(&[GaussianEvent::poisson(sigma, q, 1)])?;
    check_order(alpha)?;
    if alpha > MAX_WOR_ORDER {
        return Err(PrivacyError::parameter(
            "alpha",
            alpha,
            &format!(
                "orders above {MAX_WOR_ORDER} are not supported for sampling without \
                 replacement"
            ),
        ));
    }
    // The noise multiplier relative to the substitution sensitivity 2C.
    let s = sigma / 2.0;
    if q == 1.0 {
        return Ok(alpha / (2.0 * s * s));
    }
    // alpha <= MAX_WOR_ORDER, so floor and ceil fit a u64 exactly.
    let lo = alpha.floor();
    let cgf = if alpha == lo {
        wor_cgf_int(q, s, lo as u64)
    } else {
        let t = alpha - lo;
        (1.0 - t) * wor_cgf_int(q, s, lo as u64) + t * wor_cgf_int(q, s, alpha.ceil() as u64)
    };
    // An overflow (NaN from inf - inf) must not let this order drop out of the minimum.
    Ok(if cgf.is_nan() {
        f64::INFINITY
    } else {
        cgf / (alpha - 1.0)
    })
}

/// `(alpha - 1) * rdp(alpha)` at an integer order for sampling without replacement
/// (dp-accounting's `_compute_rdp_sample_wor_gaussian_int`): the logarithm of
/// `1 + sum_{i >= 2} C(alpha, i) q^i b_i` with `b_2 = min(4 (e^{eps(2)} - 1),
/// 2 e^{eps(2)})` and, for `i >= 3`, `b_i = min(4 sqrt(D_lo D_hi), 2 e^{cgf(i - 1)})`
/// over the forward differences `D` of `e^{cgf}` (Theorem 27); `s` is the noise
/// multiplier relative to the substitution sensitivity.
fn wor_cgf_int(q: f64, s: f64, alpha: u64) -> f64 {
    if alpha <= 1 {
        return 0.0;
    }
    let two_s2 = 2.0 * s * s;
    // cgf(x) = x (x + 1) / (2 s^2): (alpha - 1) * rdp at alpha = x + 1 of the Gaussian.
    let cgf = |x: f64| x * (x + 1.0) / two_s2;
    // eps(x) = x / (2 s^2): the Gaussian mechanism's RDP at order x.
    let eps2 = 2.0 / two_s2;
    let log_f2m1 = eps2 + (-(-eps2).exp()).ln_1p();
    let (ln_q, ln_2, ln_4) = (q.ln(), LN_2, 2.0 * LN_2);
    let a = alpha as f64;
    let mut log_a = 0.0;
    // The i = 2 term.
    let s2 = 2.0 * ln_q + log_comb(a, 2.0) + (ln_4 + log_f2m1).min(eps2 + ln_2);
    log_a = log_add(log_a, s2);
    if alpha <= WOR_EXACT_MAX_ORDER {
        let n = alpha as usize;
        let deltas = forward_diffs(cgf, n);
        for i in 3..=n {
            let lo = deltas[2 * (i / 2) - 1];
            let hi = deltas[2 * i.div_ceil(2) - 1];
            let fi = i as f64;
            let term = (ln_4 + 0.5 * (lo + hi)).min(ln_2 + cgf(fi - 1.0));
            log_a = log_add(log_a, term + fi * ln_q + log_comb(a, fi));
        }
    } else {
        for i in 3..=alpha {
            let fi = i as f64;
            log_a = log_add(log_a, ln_2 + cgf(fi - 1.0) + fi * ln_q + log_comb(a, fi));
        }
    }
    log_a
}

/// `log C(n, k)` by log-gamma (dp-accounting's `_log_comb`).
fn log_comb(n: f64, k: f64) -> f64 {
    libm::lgamma(n + 1.0) - libm::lgamma(k + 1.0) - libm::lgamma(n - k + 1.0)
}

/// `(log |exp(x) - exp(y)|, exp(x) >= exp(y))` (dp-accounting's `_log_sub_sign`).
fn log_sub_sign(x: f64, y: f64) -> (bool, f64) {
    if x > y {
        (true, x + (-(y - x).exp()).ln_1p())
    } else if x < y {
        (false, y + (-(x - y).exp()).ln_1p())
    } else {
        (true, f64::NEG_INFINITY)
    }
}

/// Replaces the first `n` entries of the signed log-magnitude vector `(v, sign)` by
/// its forward differences `x[j + 1] - x[j]` (dp-accounting's
/// `_stable_inplace_diff_in_log`).
fn diff_in_log(v: &mut [f64], sign: &mut [bool], n: usize) {
    for j in 0..n {
        if sign[j] == sign[j + 1] {
            let (s, m) = log_sub_sign(v[j + 1], v[j]);
            v[j] = m;
            sign[j] = if sign[j + 1] { s } else { !s };
        } else {
            v[j] = log_add(v[j], v[j + 1]);
            sign[j] = sign[j + 1];
        }
    }
}

/// `log |D_k|` for `k = 0..=n+1`, the forward differences at 0 of the sequence
/// `1, e^{f(0)}, e^{f(1)}, ..., e^{f(n)}` (dp-accounting's `_get_forward_diffs`, whose
/// leading 1 is kept so the indices match Theorem 27's use of them).
fn forward_diffs(f: impl Fn(f64) -> f64, n: usize) -> Vec<f64> {
    let mut v = vec![0.0; n + 3];
    let mut sign = vec![true; n + 3];
    for (i, x) in v.iter_mut().enumerate().skip(1) {
        *x = f((i - 1) as f64);
    }
    (0..n + 2)
        .map(|i| {
            diff_in_log(&mut v, &mut sign, n + 2 - i);
            v[0]
        })
        .collect()
}

/// `log(exp(x) + exp(y))`.
pub(crate) fn log_add(x: f64, y: f64) -> f64 {
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
        sampling: Sampling::Poisson,
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
        acc.compose(&GaussianEvent::poisson(1.0, 1e-5, 10)).unwrap();
        acc.compose(&GaussianEvent::poisson(3.0, 1e-4, 4)).unwrap();
        let e = acc.epsilon(1e-5).unwrap();
        assert!((e.epsilon - 0.336).abs() < 5e-4, "{e:?}");
        assert_eq!(e.order, 23.0);
    }

    #[test]
    fn full_batch_is_the_gaussian_mechanism() {
        // q = 1: RDP of the Gaussian mechanism is alpha / (2 sigma^2) (Mironov 2017,
        // Proposition 7); 3 steps at sigma 2, alpha 4: 3 * 4 / 8 = 1.5.
        let mut acc = RdpAccountant::with_orders(vec![4.0]).unwrap();
        acc.compose(&GaussianEvent::poisson(2.0, 1.0, 3)).unwrap();
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

    /// dp-accounting 0.6.0 per order, Ward's sigma halved (substitution sensitivity 2C),
    /// printed by `/tmp/dpa/bin/python`:
    ///
    /// ```python
    /// from dp_accounting.rdp import rdp_privacy_accountant as R
    /// for q, sigma in [(0.04, 1.5), (0.01, 0.8), (0.3, 4.0), (0.5, 0.5)]:
    ///     orders = [1.5, 2.0, 2.5, 3.0, 7.3, 12.0, 63.0, 255.0, 256.0, 257.0, 300.5, 1024.0]
    ///     print(q, sigma, [repr(float(x)) for x in
    ///                      R._compute_rdp_sample_wor_gaussian(q, sigma / 2, orders)])
    /// ```
    ///
    /// The orders cover the interpolated range below 2, integers, fractional orders,
    /// both sides of the exact/second-branch switch at 256, and 1024.
    #[test]
    #[allow(clippy::excessive_precision)] // dp-accounting's digits, verbatim
    fn without_replacement_matches_dp_accounting_order_by_order() {
        let orders = [
            1.5, 2.0, 2.5, 3.0, 7.3, 12.0, 63.0, 255.0, 256.0, 257.0, 300.5, 1024.0,
        ];
        let table: [((f64, f64), [f64; 12]); 4] = [
            (
                (0.04, 1.5),
                [
                    0.01875641303830797,
                    0.01875641303830797,
                    0.03292664417436146,
                    0.04001175974238821,
                    2.8992281530115953,
                    7.218179234533093,
                    52.74038661635264,
                    223.4378470282382,
                    224.32677491247435,
                    225.21570249205942,
                    263.88454411288035,
                    907.0008774543978,
                ],
            ),
            (
                (0.01, 0.8),
                [
                    0.09857988750985928,
                    0.09857988750985928,
                    1.910306830494548,
                    2.8161703019868924,
                    17.690540448070934,
                    32.53919135897298,
                    192.20673266876304,
                    792.2544281486361,
                    795.379488547324,
                    798.5045484741469,
                    934.4468764817732,
                    3195.3910057446024,
                ],
            ),
            (
                (0.3, 4.0),
                [
                    0.09735277411257512,
                    0.09735277411257512,
                    0.13384434855991265,
                    0.1520901357835814,
                    0.31906370488470875,
                    0.5177376262772153,
                    6.6627887011523335,
                    30.669016071171047,
                    30.794023957933806,
                    30.91903178308123,
                    36.356925941504564,
                    126.79552785488836,
                ],
            ),
            (
                (0.5, 0.5),
                [
                    15.306853044510376,
                    15.306853044510376,
                    20.640186227796857,
                    23.306852819440095,
                    57.97351948610672,
                    95.30685281944005,
                    503.30685281944,
                    2039.3068528194399,
                    2047.30685281944,
                    2055.3068528194403,
                    2403.3135306157674,
                    8191.30685281944,
                ],
            ),
        ];
        for ((q, sigma), want) in table {
            for (&alpha, want) in orders.iter().zip(want) {
                let got = without_replacement_gaussian_rdp(q, sigma, alpha).unwrap();
                assert!(
                    (got - want).abs() <= 1e-9 * want,
                    "q {q} sigma {sigma} alpha {alpha}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn without_replacement_full_batch_is_the_gaussian_at_twice_the_sensitivity() {
        // q = 1: every step sees the whole dataset, and substitution moves the sum by
        // 2C, so the RDP is alpha (2C)^2 / (2 (sigma C)^2) = 2 alpha / sigma^2
        // (Mironov 2017, Proposition 7). Exact in floating point at these values.
        for (sigma, alpha) in [(1.0, 2.0), (2.0, 4.0), (0.5, 7.5), (4.0, 63.0)] {
            let got = without_replacement_gaussian_rdp(1.0, sigma, alpha).unwrap();
            assert_eq!(
                got,
                alpha * 2.0 / (sigma * sigma),
                "sigma {sigma} alpha {alpha}"
            );
        }
    }

    #[test]
    fn without_replacement_order_two_matches_theorem_27_by_hand() {
        // Wang, Balle & Kasiviswanathan 2019, Theorem 27 at alpha = 2 keeps one term:
        // rdp(2) = ln(1 + q^2 C(2, 2) min(4 (e^{eps(2)} - 1), 2 e^{eps(2)})), with
        // eps(2) = 2 / (2 s^2) for s = sigma / 2 (the Gaussian at sensitivity 2C).
        for (q, sigma) in [(0.04f64, 1.5f64), (0.3, 0.7), (0.001, 6.0)] {
            let s = sigma / 2.0;
            let eps2 = 1.0 / (s * s);
            let want = (q * q * (4.0 * eps2.exp_m1()).min(2.0 * eps2.exp())).ln_1p();
            let got = without_replacement_gaussian_rdp(q, sigma, 2.0).unwrap();
            assert!(
                (got - want).abs() <= 1e-14 * want,
                "{q} {sigma}: {got} {want}"
            );
        }
    }

    #[test]
    fn without_replacement_is_at_least_the_poisson_curve() {
        // Substitution at sensitivity 2C is never cheaper than add/remove at C: at each
        // order the WOR bound is above the Poisson one (q 0.04, sigma 1.5).
        for &alpha in &default_orders() {
            let wor = without_replacement_gaussian_rdp(0.04, 1.5, alpha).unwrap();
            let poi = subsampled_gaussian_rdp(0.04, 1.5, alpha).unwrap();
            assert!(wor > poi, "alpha {alpha}: {wor} {poi}");
        }
    }

    #[test]
    fn without_replacement_refuses_bad_orders_and_overflows_to_infinity() {
        let e = without_replacement_gaussian_rdp(0.1, 1.0, 2e6).unwrap_err();
        assert_eq!(
            e.to_string(),
            "alpha = 2000000: orders above 1048576 are not supported for sampling without \
             replacement"
        );
        let e = without_replacement_gaussian_rdp(0.1, 1.0, 1.0).unwrap_err();
        assert!(e.to_string().starts_with("alpha = 1: "), "{e}");
        // A vanishing sigma: never NaN (which the conversion would skip), +inf at worst.
        for alpha in [2.0, 2.5, 40.0, 300.0] {
            let r = without_replacement_gaussian_rdp(0.5, 1e-160, alpha).unwrap();
            assert!(
                r == f64::INFINITY || (r.is_finite() && r > 0.0),
                "{alpha}: {r}"
            );
        }
    }

    #[test]
    fn an_accountant_refuses_a_second_sampling() {
        let mut acc = RdpAccountant::new();
        acc.compose(&OPACUS).unwrap();
        assert_eq!(acc.sampling(), Some(Sampling::Poisson));
        let before = acc.clone();
        let wor = GaussianEvent::without_replacement(1.5, 1000, 25_000, 10).unwrap();
        let e = acc.compose(&wor).unwrap_err();
        assert_eq!(
            e.to_string(),
            "sampling = without-replacement: the event is without-replacement (substitution \
             (replace one)) but this accountant's curve is poisson (add or remove one): \
             add/remove and substitution guarantees do not compose into one statement; \
             account them separately"
        );
        assert_eq!(acc, before);
    }
}
