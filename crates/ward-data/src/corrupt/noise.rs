//! MedMNIST-C's noises (Di Salvo et al. 2024, package `medmnistc` 0.1.0,
//! `corruptions/noise.py`) on one plane of values in `[0, 1]`, before the caller clips.
//!
//! Every function draws the same number of random values whatever its parameter, so one
//! image's draws are shared by all severities (common random numbers).

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

pub(crate) fn normal(rng: &mut ChaCha8Rng) -> f32 {
    StandardNormal.sample(rng)
}

/// `SpeckleNoise`: `x + x * n`, `n ~ N(0, sigma^2)`.
pub(crate) fn speckle(x: &mut [f32], sigma: f32, rng: &mut ChaCha8Rng) {
    for v in x {
        let n = sigma * normal(rng);
        *v += *v * n;
    }
}

/// `ImpulseNoise` (scikit-image's `random_noise(mode='s&p', amount)`, salt vs pepper 0.5):
/// each pixel is replaced with probability `amount`, by 1 or 0 with equal chance.
pub(crate) fn impulse(x: &mut [f32], amount: f32, rng: &mut ChaCha8Rng) {
    for v in x {
        let flip: f32 = rng.random();
        let salt = rng.random_bool(0.5);
        if flip < amount {
            *v = if salt { 1.0 } else { 0.0 };
        }
    }
}

/// `ShotNoise`: `Poisson(x * photons) / photons`, so the noise variance is `x / photons`.
/// `x` is read clipped to `[0, 1]` (NaN as 0), so the Poisson mean is at most `photons`.
pub(crate) fn shot(x: &mut [f32], photons: f32, rng: &mut ChaCha8Rng) {
    let photons = f64::from(photons.max(f32::MIN_POSITIVE));
    for v in x {
        let u: f64 = rng.random();
        let mean = if v.is_nan() {
            0.0
        } else {
            f64::from(v.clamp(0.0, 1.0)) * photons
        };
        *v = (f64::from(poisson_quantile(mean, u)) / photons) as f32;
    }
}

/// The `u`-quantile of a Poisson distribution of mean `lambda`: the smallest `k` with
/// `P(K <= k) >= u`. Inversion keeps one uniform draw per pixel whatever the mean.
/// Accurate while `exp(-lambda)` is a normal `f64` (`lambda` below about 700; the
/// corruption's means are at most 60); the search stops at `lambda + 40 sqrt(lambda) + 40`.
pub(crate) fn poisson_quantile(lambda: f64, u: f64) -> u32 {
    if lambda <= 0.0 || lambda.is_nan() {
        return 0;
    }
    let cap = (lambda + 40.0 * lambda.sqrt() + 40.0) as u32;
    let mut p = (-lambda).exp();
    let mut cdf = p;
    let mut k = 0u32;
    while cdf < u && k < cap {
        k += 1;
        p *= lambda / f64::from(k);
        cdf += p;
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(11)
    }

    fn mean_var(v: &[f64]) -> (f64, f64) {
        let n = v.len() as f64;
        let m = v.iter().sum::<f64>() / n;
        (
            m,
            v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0),
        )
    }

    /// Poisson CDF by hand, `e^-l sum_{j <= k} l^j / j!`, at `l = 2.5`: 0.082085 (k = 0),
    /// 0.287297 (k = 1), 0.543813 (k = 2).
    #[test]
    fn poisson_quantile_by_hand() {
        assert_eq!(poisson_quantile(2.5, 0.0), 0);
        assert_eq!(poisson_quantile(2.5, 0.08), 0);
        assert_eq!(poisson_quantile(2.5, 0.09), 1);
        assert_eq!(poisson_quantile(2.5, 0.287), 1);
        assert_eq!(poisson_quantile(2.5, 0.288), 2);
        assert_eq!(poisson_quantile(2.5, 0.5), 2);
        assert_eq!(poisson_quantile(2.5, 0.544), 3);
        assert_eq!(poisson_quantile(0.0, 0.9), 0);
        assert_eq!(poisson_quantile(f64::NAN, 0.9), 0);
        // The search stops: u = 1 at a large mean returns the cap, not a hang.
        assert!(poisson_quantile(60.0, 1.0) <= 60 + 40 * 8 + 40);
    }

    /// MedMNIST-C's `ShotNoise` is `Poisson(x * photons) / photons`: mean `x`, variance
    /// `x / photons`. Each is checked within 3 standard errors (the variance's SE is
    /// `var * sqrt((2 + 1 / lambda) / n)`, Poisson's excess kurtosis being `1 / lambda`).
    #[test]
    fn shot_noise_has_variance_mean_over_photons() {
        let n = 40_000;
        for (x, photons) in [(0.5f32, 60.0f32), (0.3, 18.0), (0.8, 5.0)] {
            let mut v = vec![x; n];
            shot(&mut v, photons, &mut rng());
            let (m, var) = mean_var(&v.iter().map(|&a| f64::from(a)).collect::<Vec<_>>());
            let lambda = f64::from(x * photons);
            let want = f64::from(x) / f64::from(photons);
            let se_mean = (want / n as f64).sqrt();
            let se_var = want * ((2.0 + 1.0 / lambda) / n as f64).sqrt();
            assert!(
                (m - f64::from(x)).abs() < 3.0 * se_mean,
                "x {x}, photons {photons}: mean {m}"
            );
            assert!(
                (var - want).abs() < 3.0 * se_var,
                "x {x}, photons {photons}: variance {var}, want {want}"
            );
        }
    }

    /// MedMNIST-C's `SpeckleNoise` is `x + x n`, `n ~ N(0, sigma^2)`: the relative change
    /// has standard deviation `sigma` (SE `sigma / sqrt(2 n)`).
    #[test]
    fn speckle_noise_is_relative() {
        let n = 20_000;
        for sigma in [0.05f32, 0.45] {
            let x: Vec<f32> = (0..n).map(|i| 0.1 + 0.8 * (i % 97) as f32 / 96.0).collect();
            let mut y = x.clone();
            speckle(&mut y, sigma, &mut rng());
            let rel: Vec<f64> = x
                .iter()
                .zip(&y)
                .map(|(a, b)| f64::from((b - a) / a))
                .collect();
            let (m, var) = mean_var(&rel);
            let se = f64::from(sigma) / (2.0 * n as f64).sqrt();
            assert!(
                (var.sqrt() - f64::from(sigma)).abs() < 3.0 * se,
                "sigma {sigma}: sd {}",
                var.sqrt()
            );
            assert!(
                m.abs() < 3.0 * f64::from(sigma) / (n as f64).sqrt(),
                "sigma {sigma}: mean {m}"
            );
        }
    }

    /// scikit-image's `random_noise(mode='s&p', amount)`: a share `amount` of pixels is
    /// replaced (within 3 standard errors `sqrt(a (1 - a) / n)`), half by 1 and half by 0.
    #[test]
    fn impulse_noise_flips_the_stated_share() {
        let n = 40_000;
        for amount in [0.01f32, 0.06, 0.17] {
            let mut v = vec![0.5f32; n];
            impulse(&mut v, amount, &mut rng());
            let salt = v.iter().filter(|&&a| a == 1.0).count();
            let pepper = v.iter().filter(|&&a| a == 0.0).count();
            assert_eq!(salt + pepper + v.iter().filter(|&&a| a == 0.5).count(), n);
            let a = f64::from(amount);
            let share = (salt + pepper) as f64 / n as f64;
            assert!(
                (share - a).abs() < 3.0 * (a * (1.0 - a) / n as f64).sqrt(),
                "amount {amount}: share {share}"
            );
            let flipped = (salt + pepper) as f64;
            let salt_share = salt as f64 / flipped;
            assert!(
                (salt_share - 0.5).abs() < 3.0 * (0.25 / flipped).sqrt(),
                "amount {amount}: salt {salt_share}"
            );
        }
    }
}
