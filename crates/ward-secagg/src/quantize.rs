//! [`Quantizer`]: `f32` updates to the ring `Z_{2^32}` and the sum back.
//!
//! A value `x` is clipped to `[-c, c]` and mapped to an integer level
//! `q = round((x + c) * L / (2c))` in `0..=L`, with `L = 2^bits - 1`. The step between
//! levels is `delta = 2c / L`. The sum of `m` quantised values is an integer below
//! `m * L`, which must stay below the ring's modulus `2^32`: parameters are refused
//! where `sites * L >= 2^32`, so the masked sum never wraps. The server turns the
//! integer sum `z` back into `z * delta - m * c`.
//!
//! **Error bound.** For inputs within `[-c, c]` each coordinate of the recovered sum of
//! `m` sites differs from the exact sum by at most `m * delta / 2` with
//! [`Rounding::Deterministic`] (round to nearest), and by less than `m * delta` with
//! [`Rounding::Stochastic`] (round up with probability equal to the fraction, so each
//! quantised value is unbiased); [`Quantizer::error_bound`] gives that number. The sum
//! is computed in `f64` and returned as `f32`, which adds at most half an `f32` ulp of
//! the sum. Inputs outside `[-c, c]` are clipped first: that clipping error is not in the
//! bound, so sites should bound their updates (clip their norm) before.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::SecAggError;

/// How a value between two levels is rounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Rounding {
    /// To the nearest level: error at most `delta / 2` per value, biased.
    Deterministic,
    /// Up with probability equal to the fraction: error below `delta` per value,
    /// unbiased (Flower's SecAgg+ rounding).
    #[default]
    Stochastic,
}

/// Maps `f32` updates to the ring `Z_{2^32}` and sums back (see the module docs for
/// the error bound).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Quantizer {
    /// Clipping range `c`: values are clipped to `[-c, c]`.
    pub clip: f32,
    /// Bits per value: `2^bits` levels.
    pub bits: u32,
    /// Rounding between levels.
    pub rounding: Rounding,
}

impl Default for Quantizer {
    /// Flower's SecAgg+ defaults: clip 8, `2^22` levels, stochastic rounding.
    fn default() -> Self {
        Self {
            clip: 8.0,
            bits: 22,
            rounding: Rounding::Stochastic,
        }
    }
}

impl Quantizer {
    /// A quantiser with clipping range `clip`, `2^bits` levels and `rounding`.
    ///
    /// # Errors
    /// [`SecAggError::Parameter`] when `clip` is not positive and finite or `bits` is not
    /// in `1..=31`.
    pub fn new(clip: f32, bits: u32, rounding: Rounding) -> Result<Self, SecAggError> {
        let q = Self {
            clip,
            bits,
            rounding,
        };
        q.validate(1)?;
        Ok(q)
    }

    /// Checks the settings for a sum of up to `sites` values.
    ///
    /// # Errors
    /// [`SecAggError::Parameter`] naming `clip` or `bits`, also when `sites` values of
    /// `2^bits - 1` would overflow the ring `2^32`.
    pub fn validate(&self, sites: u32) -> Result<(), SecAggError> {
        if !(self.clip.is_finite() && self.clip > 0.0) {
            return Err(SecAggError::parameter(
                "clip",
                self.clip,
                "must be positive and finite",
            ));
        }
        if !(1..=31).contains(&self.bits) {
            return Err(SecAggError::parameter(
                "bits",
                self.bits,
                "must be in 1..=31 (values live in the ring 2^32)",
            ));
        }
        let max_sum = u64::from(sites.max(1)) * u64::from(self.levels());
        if max_sum > u64::from(u32::MAX) {
            let most = (1..=31u32)
                .rev()
                .find(|b| u64::from(sites) * ((1u64 << b) - 1) <= u64::from(u32::MAX))
                .unwrap_or(0);
            return Err(SecAggError::parameter(
                "bits",
                self.bits,
                &format!(
                    "{sites} sites x (2^{} - 1) levels overflow the ring 2^32; at most {most} bits for {sites} sites",
                    self.bits
                ),
            ));
        }
        Ok(())
    }

    /// The largest level `L = 2^bits - 1`.
    pub fn levels(&self) -> u32 {
        // bits <= 31 after validation; saturate otherwise.
        1u32.checked_shl(self.bits).map_or(u32::MAX, |v| v - 1)
    }

    /// The step between levels, `delta = 2c / L`.
    pub fn step(&self) -> f64 {
        2.0 * f64::from(self.clip) / f64::from(self.levels())
    }

    /// The bound on each coordinate's error of a recovered sum of `count` values within
    /// `[-c, c]`: `count * delta / 2` (deterministic) or `count * delta` (stochastic,
    /// strict), before the final `f32` rounding.
    pub fn error_bound(&self, count: u32) -> f64 {
        let m = f64::from(count);
        match self.rounding {
            Rounding::Deterministic => m * self.step() / 2.0,
            Rounding::Stochastic => m * self.step(),
        }
    }

    /// Quantises `x` into `out` (same length), drawing stochastic rounding from `rng`.
    ///
    /// # Errors
    /// [`SecAggError::Protocol`] naming the first NaN or infinite coordinate, or a length
    /// mismatch.
    pub fn quantize_into<R: Rng + ?Sized>(
        &self,
        x: &[f32],
        rng: &mut R,
        out: &mut [u32],
    ) -> Result<(), SecAggError> {
        if x.len() != out.len() {
            return Err(SecAggError::protocol(format!(
                "quantize: {} values for a vector of {}",
                x.len(),
                out.len()
            )));
        }
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(SecAggError::protocol(format!(
                "update coordinate {i} is {}: only finite values can be aggregated",
                x[i]
            )));
        }
        let c = f64::from(self.clip);
        let scale = f64::from(self.levels()) / (2.0 * c);
        let top = f64::from(self.levels());
        match self.rounding {
            Rounding::Deterministic => {
                for (o, &v) in out.iter_mut().zip(x) {
                    let t = (f64::from(v).clamp(-c, c) + c) * scale;
                    *o = t.round().clamp(0.0, top) as u32;
                }
            }
            Rounding::Stochastic => {
                const TWO_POW_32: f64 = 4_294_967_296.0;
                for (o, &v) in out.iter_mut().zip(x) {
                    let t = (f64::from(v).clamp(-c, c) + c) * scale;
                    let f = t.floor();
                    let u = f64::from(rng.next_u32()) / TWO_POW_32;
                    let q = if u < t - f { f + 1.0 } else { f };
                    *o = q.clamp(0.0, top) as u32;
                }
            }
        }
        Ok(())
    }

    /// The sum of `count` quantised values back in the reals, in `f64`:
    /// `z * delta - count * c`.
    pub fn dequantize_sum_f64(&self, z: &[u32], count: u32) -> Vec<f64> {
        let step = self.step();
        let offset = f64::from(count) * f64::from(self.clip);
        z.iter().map(|&v| f64::from(v) * step - offset).collect()
    }

    /// [`Quantizer::dequantize_sum_f64`] rounded to `f32`.
    pub fn dequantize_sum(&self, z: &[u32], count: u32) -> Vec<f32> {
        self.dequantize_sum_f64(z, count)
            .into_iter()
            .map(|v| v as f32)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn levels_and_step_by_hand() {
        // bits 2: levels 0..=3 over [-1.5, 1.5], step 1.
        let q = Quantizer::new(1.5, 2, Rounding::Deterministic).unwrap();
        assert_eq!(q.levels(), 3);
        assert_eq!(q.step(), 1.0);
        let mut out = [0u32; 6];
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        q.quantize_into(&[-1.5, -0.6, -0.4, 0.6, 1.5, 9.0], &mut rng, &mut out)
            .unwrap();
        // (x + 1.5) rounded: 0, 0.9 -> 1, 1.1 -> 1, 2.1 -> 2, 3, clipped 3.
        assert_eq!(out, [0, 1, 1, 2, 3, 3]);
        // Sum of two sites' levels 1 + 2 = 3 -> 3 * 1 - 2 * 1.5 = 0.
        assert_eq!(q.dequantize_sum_f64(&[3], 2), vec![0.0]);
    }

    #[test]
    fn deterministic_sum_within_bound() {
        let q = Quantizer::new(2.0, 10, Rounding::Deterministic).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let xs: Vec<Vec<f32>> = (0..7)
            .map(|s| {
                (0..500)
                    .map(|i| ((i * 7 + s * 13) % 400) as f32 / 100.0 - 2.0)
                    .collect()
            })
            .collect();
        let mut z = vec![0u32; 500];
        for x in &xs {
            let mut o = vec![0u32; 500];
            q.quantize_into(x, &mut rng, &mut o).unwrap();
            for (a, b) in z.iter_mut().zip(&o) {
                *a = a.wrapping_add(*b);
            }
        }
        let got = q.dequantize_sum_f64(&z, 7);
        let bound = q.error_bound(7);
        let mut worst = 0f64;
        for i in 0..500 {
            let exact: f64 = xs.iter().map(|x| f64::from(x[i])).sum();
            worst = worst.max((got[i] - exact).abs());
        }
        assert!(worst <= bound * (1.0 + 1e-12), "{worst} > {bound}");
        // The bound is not vacuous: the error is a sizeable part of it.
        assert!(worst > bound / 10.0, "{worst} vs {bound}");
    }

    #[test]
    fn stochastic_rounding_is_unbiased_and_within_bound() {
        // 0.3 of a step above level 1 (bits 3 over [-3.5, 3.5], step 1): x = -2.2.
        let q = Quantizer::new(3.5, 3, Rounding::Stochastic).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let n = 200_000;
        let x = vec![-2.2f32; n];
        let mut o = vec![0u32; n];
        q.quantize_into(&x, &mut rng, &mut o).unwrap();
        assert!(o.iter().all(|&v| v == 1 || v == 2));
        let up = o.iter().filter(|&&v| v == 2).count() as f64 / n as f64;
        // Binomial(200000, 0.3): standard deviation 0.001; 5 sigma.
        let frac = f64::from(-2.2f32) + 3.5 - 1.0;
        assert!((up - frac).abs() < 0.005, "{up} vs {frac}");
    }

    #[test]
    fn refuses_overflowing_bits_and_nan() {
        let q = Quantizer::new(1.0, 25, Rounding::Stochastic).unwrap();
        q.validate(100).unwrap();
        let q = Quantizer::new(1.0, 26, Rounding::Stochastic).unwrap();
        let e = q.validate(100).unwrap_err().to_string();
        assert!(
            e.contains("bits = 26") && e.contains("at most 25 bits"),
            "{e}"
        );
        assert_eq!(
            Quantizer::new(0.0, 8, Rounding::Stochastic)
                .unwrap_err()
                .to_string(),
            "clip = 0: must be positive and finite"
        );
        assert_eq!(
            Quantizer::new(1.0, 32, Rounding::Stochastic)
                .unwrap_err()
                .to_string(),
            "bits = 32: must be in 1..=31 (values live in the ring 2^32)"
        );
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let e = q
            .quantize_into(&[0.0, f32::NAN], &mut rng, &mut [0, 0])
            .unwrap_err()
            .to_string();
        assert!(e.contains("coordinate 1 is NaN"), "{e}");
    }
}
