//! Last-layer Laplace approximation (MacKay 1992; Daxberger et al. 2021, "Laplace
//! Redux"), fitted federatedly.
//!
//! The network is kept at its trained (MAP) weights except the last layer, whose weights
//! `θ` (`k` outputs × `d` features, the bias as a constant feature 1) get a Gaussian
//! posterior `N(θ*, H⁻¹)`. `H` is the generalised Gauss–Newton (GGN) Hessian of the
//! summed negative log-likelihood plus the prior precision:
//!
//! `H = Σ_sites Σ_rows (diag(p) − p pᵀ) ⊗ φ φᵀ + λ I`
//!
//! (binary, one logit: `p (1 − p) φ φᵀ`). Each site computes its own sum over its rows
//! with [`ggn_sum`] and sends only that `(kd)²` matrix (a second moment of its
//! features, not a gradient; it is not differentially private); the server adds them and
//! the prior with [`Posterior::new`].
//!
//! Prediction: the logits are Gaussian, `f ~ N(μ, Σ_f)` with `μ` the MAP logits and
//! `Σ_f[c, c'] = φᵀ (H⁻¹)_{c·, c'·} φ` ([`Posterior::logit_cov`]). Binary: the probit
//! approximation `σ(μ / √(1 + π v / 8))` ([`probit`]). Multi-class: seeded Monte Carlo
//! over the logit Gaussian, the mean of the softmax of `samples` draws
//! ([`mc_softmax`]).
//!
//! The prior precision `λ` is chosen by maximising the Laplace approximation of the
//! marginal likelihood over a log grid ([`select_prior_precision`]): the terms that
//! depend on `λ` are `−½ λ |θ*|² + (P/2) log λ − ½ log det(H_data + λ I)`, which the
//! server can evaluate from the summed Hessian and the global weights alone (the data
//! log-likelihood at `θ*` does not depend on `λ`). This is the post-hoc variant of
//! Laplace Redux: `θ*` was trained without that prior, so it is an approximation.
//!
//! Why this approximation: of the Bayesian approximations, last-layer Laplace and MC
//! dropout are the practical ones for federated training on CPUs (Daxberger et al. 2021
//! find last-layer Laplace competitive with full-network variants); a full-network
//! Laplace (a Hessian over every weight) or HMC is out of reach for a CNN on a CPU, and
//! deep ensembles (here: independent federations) are the strong baseline both are
//! measured against (Ovadia et al. 2019). For logistic regression the last layer is the
//! whole model, so this is the full Laplace approximation.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::TrustError;

/// The Hessian's (and the parameters') order: parameter `(c, i)` (output `c`, feature
/// `i`, the last feature being the bias's constant 1) sits at `c * d + i`.
///
/// Adds to `h` (`[(k d)²]`, row-major) the GGN Hessian of the summed NLL over the rows:
/// `Σ_r Λ_r ⊗ φ_r φ_rᵀ`, with `Λ_r = p (1 − p)` for one logit (`k = 1`, sigmoid) and
/// `diag(p) − p pᵀ` (softmax) otherwise.
///
/// # Shapes
/// - `logits`: `[rows, k]`; `phi`: `[rows, d]` (bias column included); `h`: `[(k d)²]`.
///
/// # Errors
/// [`TrustError::Shape`] when the shapes disagree.
pub fn ggn_sum(
    logits: &[f64],
    k: usize,
    phi: &[f64],
    d: usize,
    h: &mut [f64],
) -> Result<(), TrustError> {
    let p = k * d;
    if k == 0 || d == 0 || !logits.len().is_multiple_of(k) {
        return Err(TrustError::Shape(format!(
            "{} logits for {k} outputs: not a whole number of rows",
            logits.len()
        )));
    }
    let rows = logits.len() / k;
    if phi.len() != rows * d || h.len() != p * p {
        return Err(TrustError::Shape(format!(
            "features have {} values for {rows} rows x {d}, Hessian {} for {p}x{p}",
            phi.len(),
            h.len()
        )));
    }
    let mut lam = vec![0.0; k * k];
    for r in 0..rows {
        let z = &logits[r * k..(r + 1) * k];
        let f = &phi[r * d..(r + 1) * d];
        curvature(z, &mut lam);
        for c in 0..k {
            for c2 in 0..k {
                let l = lam[c * k + c2];
                if l == 0.0 {
                    continue;
                }
                for i in 0..d {
                    let li = l * f[i];
                    let row = &mut h[(c * d + i) * p + c2 * d..(c * d + i) * p + c2 * d + d];
                    for (hv, fj) in row.iter_mut().zip(f) {
                        *hv += li * fj;
                    }
                }
            }
        }
    }
    Ok(())
}

/// The NLL's Hessian w.r.t. the logits `z` of one row, written into `lam` (`[k²]`).
fn curvature(z: &[f64], lam: &mut [f64]) {
    let k = z.len();
    if k == 1 {
        let s = sigmoid(z[0]);
        lam[0] = s * (1.0 - s);
        return;
    }
    let p = softmax(z);
    for c in 0..k {
        for c2 in 0..k {
            lam[c * k + c2] = if c == c2 { p[c] } else { 0.0 } - p[c] * p[c2];
        }
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn softmax(z: &[f64]) -> Vec<f64> {
    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

/// The lower Cholesky factor of the symmetric positive definite `a` (`[n²]`,
/// row-major): `a = L Lᵀ`.
///
/// # Errors
/// [`TrustError::Value`] when `a` is not positive definite.
pub fn cholesky(a: &[f64], n: usize) -> Result<Vec<f64>, TrustError> {
    if a.len() != n * n {
        return Err(TrustError::Shape(format!(
            "{} values for a {n}x{n} matrix",
            a.len()
        )));
    }
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut s = a[i * n + j];
            for t in 0..j {
                s -= l[i * n + t] * l[j * n + t];
            }
            if i == j {
                if s <= 0.0 || !s.is_finite() {
                    return Err(TrustError::Value(format!(
                        "matrix is not positive definite (pivot {i} is {s})"
                    )));
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    Ok(l)
}

/// Solves `L v = b` in place (forward substitution) with the lower factor `l`.
fn forward_solve(l: &[f64], n: usize, b: &mut [f64]) {
    for i in 0..n {
        let mut s = b[i];
        for t in 0..i {
            s -= l[i * n + t] * b[t];
        }
        b[i] = s / l[i * n + i];
    }
}

/// The last layer's Gaussian posterior: the Cholesky factor of `H = H_data + λ I`.
#[derive(Debug, Clone)]
pub struct Posterior {
    /// Outputs `k`.
    pub k: usize,
    /// Features `d` (bias included).
    pub d: usize,
    /// The prior precision `λ` added to the data Hessian.
    pub prior_precision: f64,
    chol: Vec<f64>,
}

impl Posterior {
    /// `H = h_data + λ I` and its factor. `h_data` is the sum of the sites' [`ggn_sum`]s.
    ///
    /// # Errors
    /// [`TrustError::Parameter`] for `λ ≤ 0` or not finite; [`TrustError::Value`] when
    /// `H` is not positive definite (a NaN in the sums).
    pub fn new(
        h_data: &[f64],
        k: usize,
        d: usize,
        prior_precision: f64,
    ) -> Result<Self, TrustError> {
        if !(prior_precision > 0.0 && prior_precision.is_finite()) {
            return Err(TrustError::param(
                "prior_precision",
                format!("must be positive and finite, got {prior_precision}"),
            ));
        }
        let p = k * d;
        let mut h = h_data.to_vec();
        if h.len() != p * p {
            return Err(TrustError::Shape(format!(
                "Hessian has {} values, expected {p}x{p}",
                h.len()
            )));
        }
        for i in 0..p {
            h[i * p + i] += prior_precision;
        }
        Ok(Self {
            k,
            d,
            prior_precision,
            chol: cholesky(&h, p)?,
        })
    }

    /// `log det H` from the factor.
    pub fn log_det(&self) -> f64 {
        let p = self.k * self.d;
        (0..p).map(|i| 2.0 * self.chol[i * p + i].ln()).sum()
    }

    /// The logits' covariance `Σ_f` (`[rows, k, k]`) for features `phi` (`[rows, d]`):
    /// `Σ_f[c, c'] = (e_c ⊗ φ)ᵀ H⁻¹ (e_c' ⊗ φ)`, by one triangular solve per output.
    ///
    /// # Errors
    /// [`TrustError::Shape`] when `phi` is not whole rows of `d`.
    pub fn logit_cov(&self, phi: &[f64]) -> Result<Vec<f64>, TrustError> {
        let (k, d) = (self.k, self.d);
        if !phi.len().is_multiple_of(d) {
            return Err(TrustError::Shape(format!(
                "{} feature values are not whole rows of {d}",
                phi.len()
            )));
        }
        let p = k * d;
        let rows = phi.len() / d;
        let mut out = Vec::with_capacity(rows * k * k);
        let mut v = vec![0.0; k * p];
        for f in phi.chunks(d) {
            for c in 0..k {
                let vc = &mut v[c * p..(c + 1) * p];
                vc.iter_mut().for_each(|x| *x = 0.0);
                vc[c * d..(c + 1) * d].copy_from_slice(f);
                forward_solve(&self.chol, p, vc);
            }
            for c in 0..k {
                for c2 in 0..k {
                    let a = &v[c * p..(c + 1) * p];
                    let b = &v[c2 * p..(c2 + 1) * p];
                    out.push(a.iter().zip(b).map(|(x, y)| x * y).sum());
                }
            }
        }
        Ok(out)
    }
}

/// The probit approximation of `E[σ(f)]` for `f ~ N(mu, var)`: `σ(mu / √(1 + π var / 8))`
/// (MacKay 1992).
pub fn probit(mu: f64, var: f64) -> f64 {
    sigmoid(mu / (1.0 + std::f64::consts::PI * var.max(0.0) / 8.0).sqrt())
}

/// Monte Carlo `E[softmax(f)]` for `f ~ N(mu, cov)` (`mu`: `[k]`, `cov`: `[k²]`) from
/// `samples` draws of a ChaCha8 stream seeded with `seed`. The covariance is factored
/// with a relative jitter of `1e-10` on the diagonal (the softmax's shift direction can
/// make it singular).
///
/// # Errors
/// [`TrustError::Shape`] on mismatched sizes; [`TrustError::Value`] for a covariance
/// that is not positive semi-definite.
pub fn mc_softmax(
    mu: &[f64],
    cov: &[f64],
    samples: usize,
    seed: u64,
) -> Result<Vec<f64>, TrustError> {
    let k = mu.len();
    if cov.len() != k * k {
        return Err(TrustError::Shape(format!(
            "covariance has {} values for {k} logits",
            cov.len()
        )));
    }
    let mut c = cov.to_vec();
    let scale = (0..k)
        .map(|i| cov[i * k + i])
        .fold(0.0, f64::max)
        .max(1e-300);
    for i in 0..k {
        c[i * k + i] += 1e-10 * scale;
    }
    let l = cholesky(&c, k)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut acc = vec![0.0; k];
    let mut eps = vec![0.0; k];
    let mut f = vec![0.0; k];
    for _ in 0..samples.max(1) {
        eps.iter_mut().for_each(|e| *e = std_normal(&mut rng));
        for i in 0..k {
            f[i] = mu[i] + (0..=i).map(|t| l[i * k + t] * eps[t]).sum::<f64>();
        }
        if k == 1 {
            acc[0] += sigmoid(f[0]);
        } else {
            acc.iter_mut().zip(softmax(&f)).for_each(|(a, p)| *a += p);
        }
    }
    let n = samples.max(1) as f64;
    Ok(acc.into_iter().map(|a| a / n).collect())
}

/// A standard normal draw (Box–Muller).
fn std_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The prior precisions [`select_prior_precision`] tries: `10^-4 … 10^4`, 4 per decade.
pub fn prior_grid() -> Vec<f64> {
    (-16..=16).map(|e| 10f64.powf(f64::from(e) / 4.0)).collect()
}

/// The `λ` of `grid` with the largest Laplace log marginal likelihood, up to terms free
/// of `λ`: `−½ λ |θ*|² + (P/2) log λ − ½ log det(h_data + λ I)`. Returns `(λ, score)`.
///
/// # Errors
/// As [`Posterior::new`]; [`TrustError::Parameter`] for an empty grid or `theta` whose
/// length is not `k d`.
pub fn select_prior_precision(
    h_data: &[f64],
    theta: &[f64],
    k: usize,
    d: usize,
    grid: &[f64],
) -> Result<(f64, f64), TrustError> {
    if theta.len() != k * d {
        return Err(TrustError::param(
            "theta",
            format!("has {} values, expected {}", theta.len(), k * d),
        ));
    }
    let norm2: f64 = theta.iter().map(|t| t * t).sum();
    let p = (k * d) as f64;
    let mut best: Option<(f64, f64)> = None;
    for &lam in grid {
        let post = Posterior::new(h_data, k, d, lam)?;
        let score = -0.5 * lam * norm2 + 0.5 * p * lam.ln() - 0.5 * post.log_det();
        if best.is_none_or(|(_, s)| score > s) {
            best = Some((lam, score));
        }
    }
    best.ok_or_else(|| TrustError::param("grid", "is empty"))
}

/// The Laplace predictive probabilities (`[rows, k']`, `k' = 2` for one logit, else `k`)
/// of rows with MAP logits `logits` (`[rows, k]`) and features `phi` (`[rows, d]`):
/// probit for one logit, [`mc_softmax`] with `samples` draws (stream `seed`, one
/// sub-seed per row) otherwise.
///
/// # Errors
/// As [`Posterior::logit_cov`] and [`mc_softmax`].
pub fn predict(
    post: &Posterior,
    logits: &[f64],
    phi: &[f64],
    samples: usize,
    seed: u64,
) -> Result<Vec<f64>, TrustError> {
    let k = post.k;
    let cov = post.logit_cov(phi)?;
    let rows = cov.len() / (k * k);
    if logits.len() != rows * k {
        return Err(TrustError::Shape(format!(
            "{} logits for {rows} rows x {k}",
            logits.len()
        )));
    }
    let mut out = Vec::with_capacity(rows * k.max(2));
    for r in 0..rows {
        let mu = &logits[r * k..(r + 1) * k];
        let s = &cov[r * k * k..(r + 1) * k * k];
        if k == 1 {
            let p1 = probit(mu[0], s[0]);
            out.extend([1.0 - p1, p1]);
        } else {
            out.extend(mc_softmax(mu, s, samples, seed.wrapping_add(r as u64))?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows of features (bias 1 last) and logits from fixed weights.
    fn data(rows: usize, d_in: usize, k: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let d = d_in + 1;
        let theta: Vec<f64> = (0..k * d)
            .map(|i| ((i * 7 % 5) as f64 - 2.0) * 0.4)
            .collect();
        let mut phi = Vec::new();
        let mut z = Vec::new();
        for r in 0..rows {
            let f: Vec<f64> = (0..d_in)
                .map(|i| (((r * 13 + i * 29) % 17) as f64 - 8.0) / 6.0)
                .chain([1.0])
                .collect();
            for c in 0..k {
                z.push((0..d).map(|i| theta[c * d + i] * f[i]).sum());
            }
            phi.extend(f);
        }
        (phi, z, theta)
    }

    #[test]
    fn federated_hessian_equals_pooled() {
        for k in [1, 3] {
            let (phi, z, _) = data(30, 4, k);
            let d = 5;
            let p = k * d;
            let mut pooled = vec![0.0; p * p];
            ggn_sum(&z, k, &phi, d, &mut pooled).unwrap();
            let mut fed = vec![0.0; p * p];
            for (a, b) in [(0, 7), (7, 19), (19, 30)] {
                let mut site = vec![0.0; p * p];
                ggn_sum(&z[a * k..b * k], k, &phi[a * d..b * d], d, &mut site).unwrap();
                fed.iter_mut().zip(&site).for_each(|(f, s)| *f += s);
            }
            for (a, b) in fed.iter().zip(&pooled) {
                assert!((a - b).abs() < 1e-12 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
    }

    /// The NLL's gradient w.r.t. θ at logits θφ (mean over rows), for finite differences.
    fn mean_nll_grad(theta: &[f64], phi: &[f64], y: &[usize], k: usize, d: usize) -> Vec<f64> {
        let rows = y.len();
        let mut g = vec![0.0; k * d];
        for r in 0..rows {
            let f = &phi[r * d..(r + 1) * d];
            let z: Vec<f64> = (0..k)
                .map(|c| (0..d).map(|i| theta[c * d + i] * f[i]).sum())
                .collect();
            let err: Vec<f64> = if k == 1 {
                vec![sigmoid(z[0]) - y[r] as f64]
            } else {
                softmax(&z)
                    .iter()
                    .enumerate()
                    .map(|(c, p)| p - f64::from(u8::from(c == y[r])))
                    .collect()
            };
            for c in 0..k {
                for i in 0..d {
                    g[c * d + i] += err[c] * f[i] / rows as f64;
                }
            }
        }
        g
    }

    /// For a linear model the GGN is the exact Hessian: it matches central differences
    /// of the mean NLL's gradient (binary logistic and 3-class softmax).
    #[test]
    fn hessian_matches_finite_differences_of_the_gradient() {
        for k in [1, 3] {
            let (phi, z, theta) = data(25, 3, k);
            let d = 4;
            let p = k * d;
            let y: Vec<usize> = (0..25).map(|r| (r * 5 % 7) % k.max(2)).collect();
            let mut h = vec![0.0; p * p];
            ggn_sum(&z, k, &phi, d, &mut h).unwrap();
            let eps = 1e-5;
            for j in 0..p {
                let mut up = theta.clone();
                up[j] += eps;
                let mut dn = theta.clone();
                dn[j] -= eps;
                let gu = mean_nll_grad(&up, &phi, &y, k, d);
                let gd = mean_nll_grad(&dn, &phi, &y, k, d);
                for i in 0..p {
                    let fd = (gu[i] - gd[i]) / (2.0 * eps);
                    let want = h[i * p + j] / 25.0;
                    assert!((fd - want).abs() < 1e-7, "k {k} ({i},{j}): {fd} vs {want}");
                }
            }
        }
    }

    #[test]
    fn probit_matches_monte_carlo() {
        for (mu, var) in [(0.0, 1.0), (1.5, 0.5), (-2.0, 4.0), (3.0, 9.0), (0.7, 0.01)] {
            let mc = mc_softmax(&[mu], &[var], 200_000, 7).unwrap()[0];
            let pr = probit(mu, var);
            assert!((mc - pr).abs() < 1e-2, "mu {mu} var {var}: {mc} vs {pr}");
        }
    }

    /// λ → ∞: the posterior collapses on θ*, the variance goes to 0 and the predictive
    /// is the MAP's probability (both branches).
    #[test]
    fn huge_prior_gives_back_the_map_probabilities() {
        for k in [1, 3] {
            let (phi, z, _) = data(10, 3, k);
            let d = 4;
            let mut h = vec![0.0; k * d * k * d];
            ggn_sum(&z, k, &phi, d, &mut h).unwrap();
            let post = Posterior::new(&h, k, d, 1e12).unwrap();
            let probs = predict(&post, &z, &phi, 64, 3).unwrap();
            for r in 0..10 {
                let want: Vec<f64> = if k == 1 {
                    let s = sigmoid(z[r]);
                    vec![1.0 - s, s]
                } else {
                    softmax(&z[r * k..(r + 1) * k])
                };
                let kk = want.len();
                for (a, b) in probs[r * kk..(r + 1) * kk].iter().zip(&want) {
                    assert!((a - b).abs() < 1e-5, "{a} vs {b}");
                }
            }
            // And a small prior spreads the predictive towards 1/2 (binary).
            if k == 1 {
                let loose = Posterior::new(&h, k, d, 1e-3).unwrap();
                let p = predict(&loose, &z, &phi, 0, 0).unwrap();
                for r in 0..10 {
                    assert!((p[2 * r + 1] - 0.5).abs() <= (sigmoid(z[r]) - 0.5).abs() + 1e-12);
                }
            }
        }
    }

    /// Σ_f from the triangular solves equals `J H⁻¹ Jᵀ` with `H⁻¹` by brute force (a
    /// diagonal H inverts by hand).
    #[test]
    fn logit_covariance_of_a_diagonal_hessian() {
        // k = 2, d = 2: H = diag(1, 2, 4, 8); φ = [3, 1].
        let h = [0.0; 16];
        let mut hd = h.to_vec();
        for (i, v) in [0.0, 1.0, 3.0, 7.0].iter().enumerate() {
            hd[i * 4 + i] = *v;
        }
        let post = Posterior::new(&hd, 2, 2, 1.0).unwrap();
        let cov = post.logit_cov(&[3.0, 1.0]).unwrap();
        // c = 0: 9/1 + 1/2; c = 1: 9/4 + 1/8; off-diagonal 0.
        let want = [9.5, 0.0, 0.0, 2.375];
        for (a, b) in cov.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{cov:?}");
        }
        assert!((post.log_det() - (2f64 * 4.0 * 8.0).ln()).abs() < 1e-12);
    }

    /// The marginal likelihood's λ: with one parameter, data Hessian `h` and weight `t`,
    /// the score `−½λt² + ½ log λ − ½ log(h + λ)` peaks where its derivative is 0.
    #[test]
    fn prior_precision_maximises_the_evidence() {
        let (h, t) = (10.0, 0.5);
        let grid: Vec<f64> = (1..=4000).map(|i| f64::from(i) * 0.005).collect();
        let (lam, _) = select_prior_precision(&[h], &[t], 1, 1, &grid).unwrap();
        // d/dλ: −t²/2 + 1/(2λ) − 1/(2(h+λ)) = 0 → t² λ² + t² h λ − h = 0.
        let a = t * t;
        let want = (-a * h + (a * a * h * h + 4.0 * a * h).sqrt()) / (2.0 * a);
        assert!((lam - want).abs() < 0.006, "{lam} vs {want}");
        assert!(Posterior::new(&[h], 1, 1, 0.0).is_err());
    }
}
