//! Model poisoning: what a compromised site sends instead of its honest update.
//!
//! Attacks work in delta space (`update - global`): they take the attacker's own honest
//! delta (and, for omniscient attacks, the round's honest deltas) and return the
//! malicious delta; the site then sends `global + malicious`.

use rand::Rng;
use rand_distr::{Distribution, Normal, Uniform};
use statrs::distribution::{ContinuousCDF, Normal as StdNormal};

use super::{AttackError, setting};

/// The honest deltas of the round, handed only to omniscient attacks: the type makes
/// that knowledge explicit wherever an attack uses it.
#[derive(Debug, Clone, Copy)]
pub struct Omniscience<'a> {
    /// The honest sites' deltas of this round (`update - global`), each of length d.
    pub honest: &'a [Vec<f32>],
}

/// Direction of the perturbation of min-max and min-sum (Shejwalkar & Houmansadr 2021).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Perturbation {
    /// `-std` per coordinate of the honest deltas.
    Std,
    /// `-mean / |mean|` (inverse unit vector).
    UnitVector,
    /// `-sign(mean)`.
    Sign,
}

/// A model-poisoning attack.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelAttack {
    /// Sends `-scale * own` (scale 1: the update's sign flipped).
    SignFlip {
        /// Factor applied after flipping (> 0).
        scale: f32,
    },
    /// Sends `gamma * own`, the attacker's honest delta boosted. `None`: gamma is the
    /// total aggregation weight over the attackers' weight. The update is honest, so this
    /// is not model replacement (see [`ModelAttack::Replacement`]).
    Scale {
        /// Explicit factor, or `None` for total over attackers' weight.
        factor: Option<f32>,
    },
    /// Model replacement (Bagdasaryan et al. 2020, eq. 3): the attacker trains on
    /// backdoored data (the data half of the attack) and sends `gamma * own`, so that its
    /// model replaces the aggregate: `gamma = n / f` under an unweighted rule, total over
    /// the attackers' examples under example-weighted FedAvg.
    Replacement {
        /// Whether the server weights updates by examples (FedAvg).
        weighted: bool,
    },
    /// Sends i.i.d. Gaussian noise instead of an update (the "Gaussian attack" of Fang et
    /// al. 2020 and Cao et al. 2021), relative to the attacker's honest delta: each
    /// coordinate `N(0, (scale ||own|| / sqrt(d))^2)`, so the noise's expected squared
    /// norm is `scale^2 ||own||^2`.
    Gaussian {
        /// Noise norm over the honest delta's norm (> 0).
        scale: f32,
    },
    /// ALIE, "A little is enough" (Baruch et al. 2019), omniscient: sends
    /// `mu - z * sigma` per coordinate of the honest deltas (sigma with ddof 0). The
    /// paper's `z_max` is [`alie_z`]; it is 0 for small federations (n = 4, f = 1), so z
    /// is given explicitly.
    Alie {
        /// z (finite).
        z: f64,
    },
    /// Inner-product manipulation (Xie et al. 2020), omniscient: sends `-epsilon * mu`.
    Ipm {
        /// Scale epsilon (> 0).
        epsilon: f32,
    },
    /// Min-max (Shejwalkar & Houmansadr 2021), omniscient: `mu + gamma * p` with the
    /// largest gamma (searched as in the paper, from gamma = 10) such that the malicious
    /// vector's largest distance to an honest one stays within the honest vectors'
    /// largest pairwise distance.
    MinMax {
        /// Perturbation direction.
        perturbation: Perturbation,
    },
    /// Min-sum (same paper): as min-max, with the sum of squared distances to the
    /// honest vectors bounded by the largest such sum of an honest vector.
    MinSum {
        /// Perturbation direction.
        perturbation: Perturbation,
    },
    /// Fang et al. 2020's attack on trimmed mean and median (`fang-trim`; their Krum
    /// attack is a different construction, so Krum-family rules refuse this one),
    /// omniscient: per coordinate, against the sign `s` of the honest sum, sends a value
    /// beyond the honest extreme on the other side: for `s > 0`, `min/r` if `min > 0`
    /// else `min*r`; mirrored for `s < 0`; `r` uniform in `[1, b]` (b = 2 in the paper).
    FangTrim {
        /// Spread b (> 1).
        b: f32,
    },
    /// Mimic (Karimireddy et al. 2022), omniscient: every attacker sends a copy of one
    /// honest delta, the one farthest from the honest mean (over-representing an honest
    /// outlier; the paper picks the direction of largest variance — this is its simple
    /// deterministic variant).
    Mimic,
}

/// What an attacker knows when crafting its update.
#[derive(Debug, Clone, Copy)]
pub struct AttackInput<'a> {
    /// The attacker's own honest delta.
    pub own: &'a [f32],
    /// The round's honest deltas (omniscient attacks only).
    pub omniscience: Option<Omniscience<'a>>,
    /// Sites taking part in the round (honest + compromised).
    pub n: usize,
    /// Compromised sites in the round.
    pub f: usize,
    /// Total aggregation weight of the round (e.g. examples), for model replacement.
    pub total_weight: f64,
    /// The compromised sites' total weight.
    pub attackers_weight: f64,
}

impl ModelAttack {
    /// Name as written in configs (kebab-case).
    pub fn name(&self) -> &'static str {
        match self {
            Self::SignFlip { .. } => "sign-flip",
            Self::Scale { .. } => "scale",
            Self::Replacement { .. } => "model-replacement",
            Self::Gaussian { .. } => "gaussian",
            Self::Alie { .. } => "alie",
            Self::Ipm { .. } => "ipm",
            Self::MinMax { .. } => "min-max",
            Self::MinSum { .. } => "min-sum",
            Self::FangTrim { .. } => "fang-trim",
            Self::Mimic => "mimic",
        }
    }

    /// Whether the attack reads the round's honest updates.
    pub fn is_omniscient(&self) -> bool {
        matches!(
            self,
            Self::Alie { .. }
                | Self::Ipm { .. }
                | Self::MinMax { .. }
                | Self::MinSum { .. }
                | Self::FangTrim { .. }
                | Self::Mimic
        )
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), AttackError> {
        let pos = |v: f32, s: &str| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(setting(s, format!("must be > 0, got {v}")))
            }
        };
        match self {
            Self::SignFlip { scale } => pos(*scale, "scale"),
            Self::Scale { factor: Some(f) } => pos(*f, "factor"),
            Self::Gaussian { scale } => pos(*scale, "scale"),
            Self::Ipm { epsilon } => pos(*epsilon, "epsilon"),
            Self::FangTrim { b } if !(b.is_finite() && *b > 1.0) => {
                Err(setting("b", format!("must be > 1, got {b}")))
            }
            Self::Alie { z } if !z.is_finite() => {
                Err(setting("z", format!("must be finite, got {z}")))
            }
            _ => Ok(()),
        }
    }

    /// The malicious delta.
    ///
    /// # Shapes
    /// - `input.own` and every honest delta: `[d]` → `[d]`.
    pub fn craft(
        &self,
        input: &AttackInput<'_>,
        rng: &mut impl Rng,
    ) -> Result<Vec<f32>, AttackError> {
        self.validate()?;
        let d = input.own.len();
        let honest = match (self.is_omniscient(), input.omniscience) {
            (true, Some(o)) if !o.honest.is_empty() => {
                for h in o.honest {
                    if h.len() != d {
                        return Err(AttackError::Length(h.len(), d));
                    }
                }
                o.honest
            }
            (true, _) => return Err(AttackError::NeedsHonestUpdates(self.name().into())),
            (false, _) => &[][..],
        };
        Ok(match self {
            Self::SignFlip { scale } => input.own.iter().map(|v| -scale * v).collect(),
            Self::Scale { factor } => {
                let g = match factor {
                    Some(f) => *f,
                    None => {
                        if input.attackers_weight <= 0.0 {
                            return Err(setting(
                                "factor",
                                "model replacement needs the attackers' weight > 0",
                            ));
                        }
                        (input.total_weight / input.attackers_weight) as f32
                    }
                };
                input.own.iter().map(|v| g * v).collect()
            }
            Self::Replacement { weighted } => {
                let g = if *weighted {
                    if input.attackers_weight <= 0.0 {
                        return Err(setting(
                            "model-replacement",
                            "needs the attackers' examples > 0 under FedAvg",
                        ));
                    }
                    input.total_weight / input.attackers_weight
                } else {
                    if input.f == 0 {
                        return Err(setting("model-replacement", "needs f >= 1"));
                    }
                    input.n as f64 / input.f as f64
                };
                input.own.iter().map(|v| g as f32 * v).collect()
            }
            Self::Gaussian { scale } => {
                let own: f64 = input.own.iter().map(|v| f64::from(*v).powi(2)).sum();
                let std = (f64::from(*scale) * own.sqrt() / (d.max(1) as f64).sqrt()) as f32;
                if std == 0.0 {
                    return Ok(vec![0.0; d]);
                }
                let n = Normal::new(0.0f32, std).map_err(|e| setting("scale", e.to_string()))?;
                (0..d).map(|_| n.sample(rng)).collect()
            }
            Self::Alie { z } => {
                let z = *z;
                let (mu, sigma) = mean_std(honest);
                mu.iter()
                    .zip(&sigma)
                    .map(|(m, s)| (m - z * s) as f32)
                    .collect()
            }
            Self::Ipm { epsilon } => {
                let (mu, _) = mean_std(honest);
                mu.iter()
                    .map(|m| (-f64::from(*epsilon) * m) as f32)
                    .collect()
            }
            Self::MinMax { perturbation } | Self::MinSum { perturbation } => {
                let min_max = matches!(self, Self::MinMax { .. });
                min_max_sum(honest, *perturbation, min_max)
            }
            Self::FangTrim { b } => fang_trim(honest, *b, rng)?,
            Self::Mimic => {
                let (mu, _) = mean_std(honest);
                let far = honest
                    .iter()
                    .enumerate()
                    .map(|(i, h)| {
                        let dist: f64 = h
                            .iter()
                            .zip(&mu)
                            .map(|(a, m)| (f64::from(*a) - m).powi(2))
                            .sum();
                        (i, dist)
                    })
                    .fold((0, f64::NEG_INFINITY), |b, x| if x.1 > b.1 { x } else { b })
                    .0;
                honest[far].clone()
            }
        })
    }
}

/// Fang et al. 2020's trimmed-mean attack (see [`ModelAttack::FangTrim`]).
fn fang_trim(honest: &[Vec<f32>], b: f32, rng: &mut impl Rng) -> Result<Vec<f32>, AttackError> {
    let d = honest.first().map_or(0, Vec::len);
    let r = Uniform::new_inclusive(1.0f32, b).map_err(|e| setting("b", e.to_string()))?;
    Ok((0..d)
        .map(|j| {
            let (mut lo, mut hi, mut sum) = (f32::INFINITY, f32::NEG_INFINITY, 0.0f64);
            for h in honest {
                lo = lo.min(h[j]);
                hi = hi.max(h[j]);
                sum += f64::from(h[j]);
            }
            let directed = if sum > 0.0 {
                lo
            } else if sum < 0.0 {
                hi
            } else {
                0.0
            };
            let s = sum.signum() as f32;
            let rv = r.sample(rng);
            if s * directed > 0.0 {
                directed / rv
            } else {
                directed * rv
            }
        })
        .collect())
}

/// ALIE's z from the paper (Baruch et al. 2019, Section 4):
/// `s = floor(n/2 + 1) - f`, `z_max = Phi^-1((n - s) / n)`.
pub fn alie_z(n: usize, f: usize) -> Result<f64, AttackError> {
    if n == 0 || f >= n {
        return Err(setting(
            "f",
            format!("needs 0 <= f < n, got n = {n}, f = {f}"),
        ));
    }
    let s = (n / 2 + 1) as f64 - f as f64;
    let p = (n as f64 - s) / n as f64;
    if !(0.0..1.0).contains(&p) || p <= 0.0 {
        return Err(setting(
            "f",
            format!("ALIE's z is undefined for n = {n}, f = {f} (p = {p})"),
        ));
    }
    let normal = StdNormal::new(0.0, 1.0).map_err(|e| setting("z", e.to_string()))?;
    Ok(normal.inverse_cdf(p))
}

/// Per-coordinate mean and standard deviation (ddof 0), in f64.
fn mean_std(vs: &[Vec<f32>]) -> (Vec<f64>, Vec<f64>) {
    let d = vs.first().map_or(0, Vec::len);
    let n = vs.len() as f64;
    let mut mu = vec![0f64; d];
    for v in vs {
        for (m, x) in mu.iter_mut().zip(v) {
            *m += f64::from(*x);
        }
    }
    mu.iter_mut().for_each(|m| *m /= n);
    let mut var = vec![0f64; d];
    for v in vs {
        for ((s, x), m) in var.iter_mut().zip(v).zip(&mu) {
            *s += (f64::from(*x) - m).powi(2);
        }
    }
    let sigma = var.into_iter().map(|s| (s / n).sqrt()).collect();
    (mu, sigma)
}

fn sq_dist(a: &[f64], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - f64::from(*y)).powi(2))
        .sum()
}

/// Min-max / min-sum (Shejwalkar & Houmansadr 2021, Algorithm 1 and the authors' code):
/// `m = mu - gamma * dev`, gamma from 10 by halving steps until they are below 1e-5.
fn min_max_sum(honest: &[Vec<f32>], p: Perturbation, min_max: bool) -> Vec<f32> {
    let (mu, sigma) = mean_std(honest);
    let dev: Vec<f64> = match p {
        Perturbation::Std => sigma,
        Perturbation::UnitVector => {
            let norm = mu.iter().map(|m| m * m).sum::<f64>().sqrt().max(1e-12);
            mu.iter().map(|m| m / norm).collect()
        }
        Perturbation::Sign => mu.iter().map(|m| m.signum()).collect(),
    };
    let hf: Vec<Vec<f64>> = honest
        .iter()
        .map(|h| h.iter().map(|&x| f64::from(x)).collect())
        .collect();
    // The honest bound: largest pairwise squared distance (min-max) or largest sum of
    // squared distances of one honest vector to the others (min-sum).
    let mut bound = 0f64;
    for a in &hf {
        let mut sum = 0f64;
        for b in honest {
            let d = sq_dist(a, b);
            bound = if min_max { bound.max(d) } else { bound };
            sum += d;
        }
        if !min_max {
            bound = bound.max(sum);
        }
    }
    let ok = |gamma: f64| {
        let m: Vec<f64> = mu.iter().zip(&dev).map(|(u, d)| u - gamma * d).collect();
        let dists = honest.iter().map(|h| sq_dist(&m, h));
        if min_max {
            dists.fold(0f64, f64::max) <= bound
        } else {
            dists.sum::<f64>() <= bound
        }
    };
    let (mut gamma, mut step, mut succ) = (10.0f64, 10.0f64, 0.0f64);
    while (succ - gamma).abs() > 1e-5 {
        if ok(gamma) {
            succ = gamma;
            gamma += step / 2.0;
        } else {
            gamma -= step / 2.0;
        }
        step /= 2.0;
    }
    mu.iter()
        .zip(&dev)
        .map(|(u, d)| (u - succ * d) as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn input<'a>(
        own: &'a [f32],
        honest: Option<&'a [Vec<f32>]>,
        n: usize,
        f: usize,
    ) -> AttackInput<'a> {
        AttackInput {
            own,
            omniscience: honest.map(|h| Omniscience { honest: h }),
            n,
            f,
            total_weight: 100.0,
            attackers_weight: 25.0,
        }
    }

    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(1)
    }

    #[test]
    fn sign_flip_negates_and_scale_replaces() {
        let own = [1.0, -2.0, 0.5];
        let a = ModelAttack::SignFlip { scale: 1.0 }
            .craft(&input(&own, None, 4, 1), &mut rng())
            .unwrap();
        assert_eq!(a, vec![-1.0, 2.0, -0.5]);
        // Default boost: gamma = total weight / attackers' weight = 100 / 25 = 4.
        let s = ModelAttack::Scale { factor: None }
            .craft(&input(&own, None, 4, 1), &mut rng())
            .unwrap();
        assert_eq!(s, vec![4.0, -8.0, 2.0]);
    }

    /// Model replacement's gamma: n / f = 5 / 2 = 2.5 under an unweighted rule; total
    /// over attackers' weight = 100 / 25 = 4 under FedAvg (Bagdasaryan et al. 2020,
    /// eq. 3: gamma = n / eta with the server's learning rate eta = 1, the attackers'
    /// share of the average being f / n, or their share of the examples).
    #[test]
    fn model_replacement_boosts_by_n_over_f_or_by_the_example_share() {
        let own = [1.0, -2.0];
        let u = ModelAttack::Replacement { weighted: false }
            .craft(&input(&own, None, 5, 2), &mut rng())
            .unwrap();
        assert_eq!(u, vec![2.5, -5.0]);
        let w = ModelAttack::Replacement { weighted: true }
            .craft(&input(&own, None, 5, 2), &mut rng())
            .unwrap();
        assert_eq!(w, vec![4.0, -8.0]);
        // Under the unweighted mean of the attackers (f copies of gamma * own) and n - f
        // honest zero deltas, the aggregate is exactly own: the global model replaced.
        let mean: Vec<f32> = u.iter().map(|v| v * 2.0 / 5.0).collect();
        assert_eq!(mean, own.to_vec());
    }

    #[test]
    fn alie_z_from_the_paper() {
        // n = 4, f = 1: s = floor(3) - 1 = 2, Phi^-1(2/4) = 0 (the remark).
        assert_eq!(alie_z(4, 1).unwrap(), 0.0);
        // n = 50, f = 12 (Baruch et al. 2019, Table 1 setting): s = 26 - 12 = 14,
        // Phi^-1(36/50 = 0.72) = 0.5828 (standard normal table).
        assert!((alie_z(50, 12).unwrap() - 0.5828).abs() < 1e-3);
    }

    #[test]
    fn alie_shift_is_z_times_std_per_coordinate() {
        // Honest [0, 2], [2, 2], [4, 8]: mu = [2, 4]; sigma (ddof 0) = [sqrt(8/3), sqrt(8)].
        let honest = vec![vec![0.0, 2.0], vec![2.0, 2.0], vec![4.0, 8.0]];
        let m = ModelAttack::Alie { z: 1.5 }
            .craft(&input(&[0.0, 0.0], Some(&honest), 4, 1), &mut rng())
            .unwrap();
        let want = [2.0 - 1.5 * (8.0f64 / 3.0).sqrt(), 4.0 - 1.5 * 8f64.sqrt()];
        for (a, b) in m.iter().zip(want) {
            assert!((f64::from(*a) - b).abs() < 1e-5, "{m:?}");
        }
    }

    #[test]
    fn ipm_sends_minus_epsilon_mean_and_omniscient_attacks_need_the_round() {
        let honest = vec![vec![1.0, 3.0], vec![3.0, 5.0]];
        let m = ModelAttack::Ipm { epsilon: 0.5 }
            .craft(&input(&[0.0, 0.0], Some(&honest), 3, 1), &mut rng())
            .unwrap();
        assert_eq!(m, vec![-1.0, -2.0]);
        let err = ModelAttack::Ipm { epsilon: 0.5 }
            .craft(&input(&[0.0, 0.0], None, 3, 1), &mut rng())
            .unwrap_err();
        assert_eq!(err, AttackError::NeedsHonestUpdates("ipm".into()));
    }

    #[test]
    fn min_max_stays_within_the_honest_diameter_and_min_sum_within_its_bound() {
        let honest = vec![
            vec![1.0, 0.0],
            vec![0.0, 1.0],
            vec![1.0, 1.0],
            vec![0.5, 0.2],
        ];
        let mm = ModelAttack::MinMax {
            perturbation: Perturbation::Std,
        }
        .craft(&input(&[0.0, 0.0], Some(&honest), 5, 1), &mut rng())
        .unwrap();
        let d = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f32>();
        let diam = honest
            .iter()
            .flat_map(|a| honest.iter().map(move |b| d(a, b)))
            .fold(0.0, f32::max);
        let far = honest.iter().map(|h| d(&mm, h)).fold(0.0, f32::max);
        assert!(far <= diam * 1.0001, "{far} vs {diam}");
        // And it is pushed as far as allowed: within 1% of the bound.
        assert!(far >= diam * 0.99, "{far} vs {diam}");
        let ms = ModelAttack::MinSum {
            perturbation: Perturbation::Sign,
        }
        .craft(&input(&[0.0, 0.0], Some(&honest), 5, 1), &mut rng())
        .unwrap();
        let sum_m: f32 = honest.iter().map(|h| d(&ms, h)).sum();
        let bound = honest
            .iter()
            .map(|a| honest.iter().map(|b| d(a, b)).sum::<f32>())
            .fold(0.0, f32::max);
        assert!(
            sum_m <= bound * 1.0001 && sum_m >= bound * 0.99,
            "{sum_m} vs {bound}"
        );
    }

    #[test]
    fn fang_trim_pushes_beyond_the_honest_extremes_against_their_direction() {
        // Coordinate 0: honest sum > 0, min 1 > 0 → value in [1/2, 1] (below min).
        // Coordinate 1: honest sum < 0, max -1 < 0 → value in [-1, -1/2]... mirrored:
        // s = -1, directed = max = -1, s*directed = 1 > 0 → -1 / r in [-1, -0.5] (above max).
        // Coordinate 2: sum > 0, min -1 < 0 → -1 * r in [-2, -1] (below min).
        let honest = vec![vec![1.0, -1.0, -1.0], vec![2.0, -3.0, 4.0]];
        for _ in 0..5 {
            let m = ModelAttack::FangTrim { b: 2.0 }
                .craft(&input(&[0.0; 3], Some(&honest), 3, 1), &mut rng())
                .unwrap();
            assert!((0.5..=1.0).contains(&m[0]), "{m:?}");
            assert!((-1.0..=-0.5).contains(&m[1]), "{m:?}");
            assert!((-2.0..=-1.0).contains(&m[2]), "{m:?}");
        }
    }

    #[test]
    fn mimic_copies_the_most_outlying_honest_update_and_gaussian_is_seeded() {
        let honest = vec![vec![0.0, 0.0], vec![0.1, 0.0], vec![5.0, 5.0]];
        let m = ModelAttack::Mimic
            .craft(&input(&[9.0, 9.0], Some(&honest), 4, 1), &mut rng())
            .unwrap();
        assert_eq!(m, vec![5.0, 5.0]);
        // Relative noise: own delta of norm sqrt(1000 * 0.25) = 15.81, scale 2: each
        // coordinate N(0, (2 * 15.81 / sqrt(1000))^2) = N(0, 1), noise norm about 31.6.
        let own = [0.5f32; 1000];
        let g1 = ModelAttack::Gaussian { scale: 2.0 }
            .craft(&input(&own, None, 4, 1), &mut rng())
            .unwrap();
        let g2 = ModelAttack::Gaussian { scale: 2.0 }
            .craft(&input(&own, None, 4, 1), &mut rng())
            .unwrap();
        assert_eq!(g1, g2);
        let var = g1.iter().map(|v| v * v).sum::<f32>() / 1000.0;
        assert!((var - 1.0).abs() < 0.15, "{var}");
        // The same noise relative to a 10x larger update is 10x larger.
        let g3 = ModelAttack::Gaussian { scale: 2.0 }
            .craft(&input(&[5.0f32; 1000], None, 4, 1), &mut rng())
            .unwrap();
        for (a, b) in g1.iter().zip(&g3) {
            assert!((10.0 * a - b).abs() < 1e-4 * b.abs().max(1.0), "{a} {b}");
        }
        // A zero update gets zero noise (nothing to be relative to).
        let z = ModelAttack::Gaussian { scale: 2.0 }
            .craft(&input(&[0.0; 8], None, 4, 1), &mut rng())
            .unwrap();
        assert_eq!(z, vec![0.0; 8]);
        assert_eq!(
            ModelAttack::Gaussian { scale: -1.0 }
                .validate()
                .unwrap_err()
                .to_string(),
            "attack setting scale: must be > 0, got -1"
        );
    }
}
