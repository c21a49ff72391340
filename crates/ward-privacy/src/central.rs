//! Site-level (user-level) central DP for federated averaging (McMahan et al. 2018,
//! "Learning differentially private recurrent language models"), with fixed clipping or
//! adaptive clipping (Andrew et al. 2021, "Differentially private learning with
//! adaptive clipping").
//!
//! Each round the server clips every site's update delta `Δ_k` to L2 norm `C`, sums
//! them, adds Gaussian noise of std `z_Δ C` to every coordinate, and divides by the
//! number of updates `m` (fixed-size site sampling makes it public). The new global
//! model is `global + mean`.
//!
//! Adaptive clipping: `C` tracks the `γ`-quantile of the update norms. With `b_k = 1`
//! when `|Δ_k| <= C` (the update was *not* clipped), the server releases the noised
//! fraction `b̄ = (Σ b_k + N(0, σ_b²)) / m` and steps
//! `C <- C exp(-η_C (b̄ - γ))`. If fewer than `γ` of the updates fit under `C`
//! (`b̄ < γ`) the clip grows, so with every norm at 10 and `C = 0.1` the clip rises
//! towards 10. (Flower's wrappers count the *clipped* updates but keep this sign,
//! which drives the clip the wrong way.) The count costs privacy too: the paper splits
//! the noise so that the pair (sum, count) is one Gaussian mechanism with noise
//! multiplier `z`: `z_Δ = (z^-2 - (2 σ_b)^-2)^(-1/2)` on the sum (sensitivity `C`) and
//! `σ_b` on the count (sensitivity 1/2 after centring the bits), which needs
//! `σ_b > z / 2`.
//!
//! Accounting: `rounds` compositions of the subsampled Gaussian with noise multiplier
//! `z` and site sampling rate `q = m / sites` (see `crate::accountant`).
//!
//! ```
//! use ward_privacy::central::{CentralDp, CentralDpConfig, Clipping};
//!
//! let cfg = CentralDpConfig { clipping: Clipping::Fixed { clip: 1.0 }, noise_multiplier: 0.0 };
//! let mut dp = CentralDp::new(cfg, 0)?;
//! let out = dp.privatise(&[&[3.0, 4.0], &[0.3, 0.4]])?;
//! // [3, 4] is clipped to [0.6, 0.8]; the mean with [0.3, 0.4] is [0.45, 0.6].
//! assert!((out.mean[0] - 0.45).abs() < 1e-6 && (out.mean[1] - 0.6).abs() < 1e-6);
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::PrivacyError;

/// How the server's clip norm is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Clipping {
    /// A fixed clip norm.
    Fixed {
        /// The clip norm `C` (> 0).
        clip: f64,
    },
    /// Adaptive clipping (Andrew et al. 2021).
    Adaptive {
        /// The first round's clip norm `C_0` (> 0).
        initial: f64,
        /// Target quantile `γ` in (0, 1): the fraction of updates left unclipped.
        target_quantile: f64,
        /// Learning rate `η_C` of the geometric update (> 0; the paper uses 0.2).
        lr: f64,
        /// Std `σ_b` of the noise on the count of unclipped updates (the paper:
        /// expected sites per round / 20). Must exceed `z / 2`.
        count_noise: f64,
    },
}

/// The settings of central DP.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CentralDpConfig {
    /// Fixed or adaptive clipping.
    pub clipping: Clipping,
    /// The noise multiplier `z` of the whole mechanism (>= 0). With adaptive clipping
    /// it is split between the sum and the count.
    pub noise_multiplier: f64,
}

impl CentralDpConfig {
    /// Checks the ranges; errors name the parameter.
    pub fn check(&self) -> Result<(), PrivacyError> {
        let z = self.noise_multiplier;
        if !(z.is_finite() && z >= 0.0) {
            return Err(PrivacyError::parameter(
                "noise-multiplier",
                z,
                "must be a finite number >= 0",
            ));
        }
        match self.clipping {
            Clipping::Fixed { clip } => {
                if !(clip.is_finite() && clip > 0.0) {
                    return Err(PrivacyError::parameter(
                        "clip",
                        clip,
                        "must be a finite number > 0",
                    ));
                }
            }
            Clipping::Adaptive {
                initial,
                target_quantile,
                lr,
                count_noise,
            } => {
                if !(initial.is_finite() && initial > 0.0) {
                    return Err(PrivacyError::parameter(
                        "clip",
                        initial,
                        "the initial clip norm must be a finite number > 0",
                    ));
                }
                if !(target_quantile > 0.0 && target_quantile < 1.0) {
                    return Err(PrivacyError::parameter(
                        "target-quantile",
                        target_quantile,
                        "must be in (0, 1)",
                    ));
                }
                if !(lr.is_finite() && lr > 0.0) {
                    return Err(PrivacyError::parameter(
                        "clip-lr",
                        lr,
                        "must be a finite number > 0",
                    ));
                }
                if !(count_noise.is_finite() && count_noise >= 0.0) {
                    return Err(PrivacyError::parameter(
                        "count-noise",
                        count_noise,
                        "must be a finite number >= 0",
                    ));
                }
                if z > 0.0 && 2.0 * count_noise <= z {
                    return Err(PrivacyError::parameter(
                        "count-noise",
                        count_noise,
                        &format!(
                            "must exceed noise-multiplier / 2 = {} (Andrew et al. 2021 split z between the count and the sum: z_sum = (z^-2 - (2 count-noise)^-2)^(-1/2))",
                            z / 2.0
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The noise multiplier on the sum, `z_Δ`: `z` with fixed clipping,
    /// `(z^-2 - (2 σ_b)^-2)^(-1/2)` with adaptive clipping.
    pub fn sum_noise_multiplier(&self) -> f64 {
        let z = self.noise_multiplier;
        match self.clipping {
            Clipping::Fixed { .. } => z,
            Clipping::Adaptive { count_noise, .. } => {
                if z == 0.0 {
                    0.0
                } else {
                    (z.powi(-2) - (2.0 * count_noise).powi(-2)).powf(-0.5)
                }
            }
        }
    }

    fn initial_clip(&self) -> f64 {
        match self.clipping {
            Clipping::Fixed { clip } => clip,
            Clipping::Adaptive { initial, .. } => initial,
        }
    }
}

/// What one round of [`CentralDp::privatise`] gives.
#[derive(Debug, Clone, PartialEq)]
pub struct Privatised {
    /// The noised mean of the clipped deltas (add it to the global model).
    pub mean: Vec<f32>,
    /// The clip norm used this round.
    pub clip: f64,
    /// Adaptive clipping: the released, noised fraction of unclipped updates `b̄`.
    pub unclipped_fraction: Option<f64>,
}

/// The server's central-DP state: settings, current clip norm, its noise stream and the
/// rounds released (serialisable: it is checkpointed with the server).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CentralDp {
    config: CentralDpConfig,
    clip: f64,
    rng: ChaCha8Rng,
    rounds: u64,
    /// The clip norm used in each round so far.
    clips: Vec<f64>,
}

impl CentralDp {
    /// Central DP drawing its noise from `seed`.
    pub fn new(config: CentralDpConfig, seed: u64) -> Result<Self, PrivacyError> {
        config.check()?;
        Ok(Self {
            clip: config.initial_clip(),
            config,
            rng: ChaCha8Rng::seed_from_u64(seed),
            rounds: 0,
            clips: Vec::new(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &CentralDpConfig {
        &self.config
    }

    /// The clip norm the next round will use.
    pub fn clip(&self) -> f64 {
        self.clip
    }

    /// The clip norms used so far, one per round.
    pub fn clip_history(&self) -> &[f64] {
        &self.clips
    }

    /// Rounds released so far (the accountant's step count).
    pub fn rounds(&self) -> u64 {
        self.rounds
    }

    fn gauss(&mut self) -> f64 {
        StandardNormal.sample(&mut self.rng)
    }

    /// One round: clips each delta (every site's `local - global`, all of one length)
    /// to the current clip norm, adds the noise, divides by the number of deltas, and
    /// (adaptive clipping) updates the clip norm for the next round.
    pub fn privatise(&mut self, deltas: &[&[f32]]) -> Result<Privatised, PrivacyError> {
        let Some(first) = deltas.first() else {
            return Err(PrivacyError::parameter(
                "updates",
                0,
                "central DP needs at least one update",
            ));
        };
        let d = first.len();
        if let Some(bad) = deltas.iter().find(|u| u.len() != d) {
            return Err(PrivacyError::parameter(
                "updates",
                bad.len(),
                &format!("values in one update, {d} in another"),
            ));
        }
        let m = deltas.len() as f64;
        let c = self.clip;
        let mut sum = vec![0f64; d];
        let mut unclipped = 0usize;
        for u in deltas {
            let norm = u
                .iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum::<f64>()
                .sqrt();
            if norm <= c {
                unclipped += 1;
            }
            let f = if norm > c { c / norm } else { 1.0 };
            for (s, &v) in sum.iter_mut().zip(u.iter()) {
                *s += f * f64::from(v);
            }
        }
        let std = self.config.sum_noise_multiplier() * c;
        let mut mean = Vec::with_capacity(d);
        for s in sum {
            let z = self.gauss();
            mean.push(((s + std * z) / m) as f32);
        }
        let unclipped_fraction = match self.config.clipping {
            Clipping::Fixed { .. } => None,
            Clipping::Adaptive {
                target_quantile,
                lr,
                count_noise,
                ..
            } => {
                let b = (unclipped as f64 + count_noise * self.gauss()) / m;
                self.clip = c * (-lr * (b - target_quantile)).exp();
                Some(b)
            }
        };
        self.rounds += 1;
        self.clips.push(c);
        Ok(Privatised {
            mean,
            clip: c,
            unclipped_fraction,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adaptive(initial: f64, q: f64, z: f64, count_noise: f64) -> CentralDpConfig {
        CentralDpConfig {
            clipping: Clipping::Adaptive {
                initial,
                target_quantile: q,
                lr: 0.2,
                count_noise,
            },
            noise_multiplier: z,
        }
    }

    /// The issue's direction test: every update norm 10, initial clip 0.1, target
    /// quantile 0.5, eta 0.2, no noise. No update fits under the clip (b = 0), so each
    /// round multiplies C by exp(0.2 * 0.5) = e^0.1: after 10 rounds C = 0.1 e^1 =
    /// 0.27183 exactly, and it rises every round until it passes 10 (ln(100) / 0.1 =
    /// 46.05 rounds), then stays within a factor e^0.1 of 10.
    #[test]
    fn adaptive_clip_rises_towards_the_norms() {
        let mut dp = CentralDp::new(adaptive(0.1, 0.5, 0.0, 0.0), 1).unwrap();
        let u = [6.0f32, 8.0]; // norm 10
        let mut last = dp.clip();
        for r in 0..80 {
            dp.privatise(&[&u, &u, &u, &u]).unwrap();
            if r < 46 {
                assert!(dp.clip() > last, "round {r}: {} <= {last}", dp.clip());
            }
            if r == 9 {
                assert!(
                    (dp.clip() - 0.1 * 1f64.exp()).abs() < 1e-12,
                    "{}",
                    dp.clip()
                );
            }
            last = dp.clip();
        }
        let c = dp.clip();
        assert!(
            c > 10.0 * (-0.1f64).exp() - 1e-9 && c < 10.0 * 0.1f64.exp() + 1e-9,
            "{c}"
        );
    }

    /// The same with the paper's noise (z = 1, sigma_b = m/20 is too small for 4 sites,
    /// so sigma_b = 1): the clip still rises from 0.1 to the neighbourhood of 10.
    #[test]
    fn adaptive_clip_rises_with_noise() {
        let mut dp = CentralDp::new(adaptive(0.1, 0.5, 1.0, 1.0), 2).unwrap();
        let u = [6.0f32, 8.0];
        for _ in 0..150 {
            dp.privatise(&[&u, &u, &u, &u]).unwrap();
        }
        let late = &dp.clip_history()[100..];
        let mean = late.iter().map(|c| c.ln()).sum::<f64>() / late.len() as f64;
        assert!((mean.exp() / 10.0 - 1.0).abs() < 0.5, "{}", mean.exp());
        assert!(dp.clip_history()[40] > 1.0);
    }

    /// On a spread of norms (100 sites with norms 1, 2, ..., 100), target quantile 0.3
    /// and the paper's count noise m/20 = 5: the clip settles where about 30 % of the
    /// updates fit under it. Over the last 100 of 400 rounds the mean unclipped share
    /// (without noise) is within 0.05 of 0.3 and the mean clip within [25, 35].
    #[test]
    fn adaptive_clip_settles_at_the_target_quantile() {
        let updates: Vec<Vec<f32>> = (1..=100).map(|n| vec![n as f32, 0.0]).collect();
        let refs: Vec<&[f32]> = updates.iter().map(Vec::as_slice).collect();
        let mut dp = CentralDp::new(adaptive(1.0, 0.3, 0.0, 5.0), 3).unwrap();
        let (mut share, mut clip, mut k) = (0.0, 0.0, 0.0);
        for r in 0..400 {
            let c = dp.clip();
            dp.privatise(&refs).unwrap();
            if r >= 300 {
                share += (1..=100).filter(|&n| f64::from(n) <= c).count() as f64 / 100.0;
                clip += c;
                k += 1.0;
            }
        }
        let (share, clip) = (share / k, clip / k);
        assert!((share - 0.3).abs() < 0.05, "{share}");
        assert!((25.0..35.0).contains(&clip), "{clip}");
    }

    /// Fixed clipping by hand (no noise): [3, 4] (norm 5) clipped to 1 is [0.6, 0.8];
    /// [0.3, 0.4] (norm 0.5) is kept; the mean is [0.45, 0.6].
    #[test]
    fn fixed_clipping_by_hand() {
        let cfg = CentralDpConfig {
            clipping: Clipping::Fixed { clip: 1.0 },
            noise_multiplier: 0.0,
        };
        let mut dp = CentralDp::new(cfg, 0).unwrap();
        let out = dp.privatise(&[&[3.0, 4.0], &[0.3, 0.4]]).unwrap();
        assert!((out.mean[0] - 0.45).abs() < 1e-7 && (out.mean[1] - 0.6).abs() < 1e-7);
        assert_eq!((out.clip, dp.rounds()), (1.0, 1));
    }

    /// Noise std: zero deltas from 2 sites, z = 2, C = 0.5: the mean is noise of std
    /// z C / m = 0.5. Over 20000 coordinates the sample std's relative standard error is
    /// 0.5 %; allowed 3 %.
    #[test]
    fn noise_has_the_stated_std() {
        let cfg = CentralDpConfig {
            clipping: Clipping::Fixed { clip: 0.5 },
            noise_multiplier: 2.0,
        };
        let mut dp = CentralDp::new(cfg, 5).unwrap();
        let z = vec![0.0f32; 20_000];
        let out = dp.privatise(&[&z, &z]).unwrap();
        let n = out.mean.len() as f64;
        let mean = out.mean.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let sd = (out
            .mean
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / (n - 1.0))
            .sqrt();
        assert!((sd / 0.5 - 1.0).abs() < 0.03, "{sd}");
    }

    /// Andrew et al. 2021's split by hand: z = 1, sigma_b = 1:
    /// z_sum = (1 - 1/4)^(-1/2) = 1.1547005.
    #[test]
    fn noise_split_by_hand() {
        let c = adaptive(1.0, 0.5, 1.0, 1.0);
        assert!((c.sum_noise_multiplier() - 1.154_700_5).abs() < 1e-7);
        let err = CentralDp::new(adaptive(1.0, 0.5, 1.0, 0.5), 0).unwrap_err();
        assert!(err.to_string().contains("count-noise"), "{err}");
        let err = CentralDp::new(adaptive(1.0, 1.5, 1.0, 1.0), 0).unwrap_err();
        assert!(err.to_string().contains("target-quantile"), "{err}");
    }

    #[test]
    fn state_round_trips_and_repeats() {
        let mut a = CentralDp::new(adaptive(1.0, 0.5, 1.0, 1.0), 9).unwrap();
        let u = [1.0f32, 2.0];
        a.privatise(&[&u]).unwrap();
        let mut b: CentralDp = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(a.privatise(&[&u]).unwrap(), b.privatise(&[&u]).unwrap());
    }
}
