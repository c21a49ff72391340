//! Dropout masks, shared by every engine so that they drop the same units.
//!
//! Inverted dropout (Srivastava et al. 2014): a unit is kept with probability `1 - p`
//! and then scaled by `1 / (1 - p)`, so a mask's expectation is 1 and evaluation uses
//! the network unchanged. A mask is a deterministic function of a `u64` seed: training
//! draws one seed per step from the site's dropout stream
//! ([`crate::GradientEngine::arm_dropout`]); MC dropout (Gal & Ghahramani 2016) draws
//! one per sampled prediction ([`crate::GradientEngine::dropout_logits`]).

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::ModelError;

/// Checks a dropout rate: in `[0, 1)`.
pub(crate) fn check_rate(p: f32) -> Result<(), ModelError> {
    if (0.0..1.0).contains(&p) {
        Ok(())
    } else {
        Err(ModelError::Config(format!(
            "dropout must be in [0, 1), got {p}"
        )))
    }
}

/// The error of [`crate::GradientEngine::dropout_logits`] on a model without dropout.
pub(crate) fn no_dropout(model: &str) -> ModelError {
    ModelError::Config(format!(
        "MC dropout needs a model trained with dropout; {model} has none"
    ))
}

/// Masks for layers of `sizes` values each (row-major `[rows, width]`), drawn in order
/// from one ChaCha8 stream of `seed`: each value is `0` with probability `p`, else
/// `1 / (1 - p)` (a uniform draw `u` in `[0, 1)` keeps the unit when `u >= p`).
pub(crate) fn masks(seed: u64, p: f32, sizes: &[usize]) -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let keep = 1.0 / (1.0 - p);
    sizes
        .iter()
        .map(|&n| {
            (0..n)
                .map(|_| if rng.random::<f32>() >= p { keep } else { 0.0 })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values are 0 or 1/(1-p); the kept share is within 5 standard errors of 1 - p
    /// (binomial, n = 20 000), so the mean is 1 within the same margin; the same seed
    /// gives the same masks and another seed other masks.
    #[test]
    fn masks_keep_one_minus_p_scaled_to_mean_one() {
        let p = 0.3f32;
        let n = 20_000;
        let m = masks(7, p, &[n, 3]);
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].len(), 3);
        let keep = 1.0 / (1.0 - p);
        assert!(m[0].iter().all(|&v| v == 0.0 || v == keep));
        let kept = m[0].iter().filter(|&&v| v > 0.0).count() as f64 / n as f64;
        let se = (0.3f64 * 0.7 / n as f64).sqrt();
        assert!((kept - 0.7).abs() < 5.0 * se, "kept {kept}");
        assert_eq!(masks(7, p, &[n, 3]), m);
        assert_ne!(masks(8, p, &[n, 3]), m);
        assert!(masks(7, 0.0, &[100]).iter().flatten().all(|&v| v == 1.0));
        assert!(check_rate(1.0).is_err() && check_rate(-0.1).is_err());
        assert!(check_rate(0.0).is_ok());
    }

    use crate::{BurnDense, DenseArch, DeviceChoice, GradientEngine, NativeDense};
    use rand::SeedableRng;
    use ward_core::config::{Activation, LossKind, ModelKind, ModelSpec};

    fn mlp(hidden: Vec<usize>, activation: Activation, dropout: f64, classes: usize) -> DenseArch {
        let spec = ModelSpec {
            kind: ModelKind::Mlp,
            hidden,
            activation,
            dropout,
            ..ModelSpec::default()
        };
        DenseArch::from_spec(&spec, LossKind::Auto, 5, classes).unwrap()
    }

    fn data(rows: usize, classes: usize) -> (Vec<f32>, Vec<u32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        let x = (0..rows * 5)
            .map(|_| rng.random_range(-2.0f32..2.0))
            .collect();
        let y = (0..rows)
            .map(|_| rng.random_range(0..classes as u32))
            .collect();
        (x, y)
    }

    fn armed(
        e: &mut dyn GradientEngine,
        p: &[f32],
        x: &[f32],
        y: &[u32],
        seed: Option<u64>,
    ) -> (f32, Vec<f32>) {
        let mut g = vec![0.0; p.len()];
        if let Some(s) = seed {
            e.arm_dropout(s);
        }
        let l = e.loss_and_grad(p, x, y, &mut g).unwrap();
        (l, g)
    }

    /// With one fixed mask the loss is smooth again: the native kernels' gradient
    /// matches central finite differences (f64 sums of f32 losses; h = 1e-2, tanh and
    /// ReLU, two hidden layers, BCE and softmax), Burn autodiff gives the same loss,
    /// gradient and MC-dropout logits for the same seed (the engines share the masks),
    /// and the mask does change the gradient.
    #[test]
    fn dense_dropout_gradient_is_the_masked_networks_on_both_engines() {
        for (act, classes) in [(Activation::Tanh, 2), (Activation::Relu, 3)] {
            let arch = mlp(vec![6, 4], act, 0.4, classes);
            let params = arch.init(&mut ChaCha8Rng::seed_from_u64(2));
            let p = params.values();
            let (x, y) = data(7, classes);
            let mut native = NativeDense::new(arch.clone());
            let mut burn = BurnDense::new(arch.clone(), DeviceChoice::Cpu).unwrap();
            let (l1, g1) = armed(&mut native, p, &x, &y, Some(3));
            let (l2, g2) = armed(&mut burn, p, &x, &y, Some(3));
            assert!((l1 - l2).abs() < 1e-5, "{l1} vs {l2}");
            for (a, b) in g1.iter().zip(&g2) {
                assert!(
                    (a - b).abs() <= 1e-5 + 1e-4 * b.abs(),
                    "native {a} burn {b}"
                );
            }
            let (_, plain) = armed(&mut native, p, &x, &y, None);
            assert_ne!(plain, g1, "the mask must change the gradient");
            let z1 = native.dropout_logits(p, &x, 7, 4).unwrap();
            let z2 = burn.dropout_logits(p, &x, 7, 4).unwrap();
            for (a, b) in z1.iter().zip(&z2) {
                assert!((a - b).abs() < 1e-5, "{a} vs {b}");
            }
            let h = 1e-2f32;
            let mut worst = 0.0f32;
            for i in 0..p.len() {
                let mut q = p.to_vec();
                q[i] += h;
                let (up, _) = armed(&mut native, &q, &x, &y, Some(3));
                q[i] -= 2.0 * h;
                let (down, _) = armed(&mut native, &q, &x, &y, Some(3));
                let fd = (f64::from(up) - f64::from(down)) / (2.0 * f64::from(h));
                let err = (fd as f32 - g1[i]).abs() / (1e-2 + g1[i].abs());
                worst = worst.max(err);
            }
            // ReLU kinks within h of a point could bend one estimate: allow 2 %.
            assert!(worst < 2e-2, "{act:?}: worst relative error {worst}");
        }
    }

    /// Rate 0, or no armed seed, is the network without dropout, bit for bit; a seed is
    /// used by one call only.
    #[test]
    fn zero_rate_or_no_seed_is_plain_training() {
        let (x, y) = data(6, 2);
        let with = mlp(vec![4], Activation::Relu, 0.5, 2);
        let without = mlp(vec![4], Activation::Relu, 0.0, 2);
        let params = with.init(&mut ChaCha8Rng::seed_from_u64(1));
        let p = params.values();
        let plain = armed(&mut NativeDense::new(without.clone()), p, &x, &y, None);
        assert_eq!(
            armed(&mut NativeDense::new(without.clone()), p, &x, &y, Some(9)),
            plain
        );
        assert_eq!(
            armed(&mut NativeDense::new(with.clone()), p, &x, &y, None),
            plain
        );
        let mut e = NativeDense::new(with);
        assert_ne!(armed(&mut e, p, &x, &y, Some(9)), plain);
        assert_eq!(armed(&mut e, p, &x, &y, None), plain);
        let err = NativeDense::new(without)
            .dropout_logits(p, &x, 6, 1)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("MC dropout needs a model trained with dropout"),
            "{err}"
        );
    }

    /// Inverted dropout keeps the expectation: with one hidden layer the logits are
    /// linear in the masked activations, so the mean of MC-dropout logits over masks
    /// is the evaluation logits (within 5 standard errors over 4000 masks, each logit).
    #[test]
    fn mc_dropout_mean_is_the_evaluation_logits() {
        let arch = mlp(vec![8], Activation::Tanh, 0.3, 3);
        let params = arch.init(&mut ChaCha8Rng::seed_from_u64(4));
        let (x, _) = data(5, 3);
        let mut e = NativeDense::new(arch);
        let eval = e.logits(params.values(), &x, 5).unwrap();
        let t = 4000u32;
        let mut sum = vec![0f64; eval.len()];
        let mut sq = vec![0f64; eval.len()];
        for s in 0..u64::from(t) {
            let z = e.dropout_logits(params.values(), &x, 5, s).unwrap();
            for (i, v) in z.iter().enumerate() {
                sum[i] += f64::from(*v);
                sq[i] += f64::from(*v).powi(2);
            }
        }
        for i in 0..eval.len() {
            let mean = sum[i] / f64::from(t);
            let se = ((sq[i] / f64::from(t) - mean * mean) / f64::from(t)).sqrt();
            assert!(se > 0.0);
            assert!(
                (mean - f64::from(eval[i])).abs() < 5.0 * se + 1e-6,
                "logit {i}: {mean} vs {} (se {se})",
                eval[i]
            );
        }
    }

    /// `train_local` with a dropout seed: the same seed gives the same model, another
    /// seed another one; with rate 0 the seed changes nothing.
    #[test]
    fn train_local_draws_one_mask_per_step_from_its_seed() {
        use crate::{BatchStream, LocalFit, Optimizer, OptimizerConfig, train_local};
        use ward_core::config::OptimizerKind;
        let split = ward_data::Split {
            x: ward_data::Matrix::new(20, 5, data(20, 2).0).unwrap(),
            y: data(20, 2).1,
        };
        let fit = |rate: f64, seed: Option<u64>| {
            let arch = mlp(vec![6], Activation::Relu, rate, 2);
            let mut params = arch
                .init(&mut ChaCha8Rng::seed_from_u64(8))
                .values()
                .to_vec();
            let mut e = NativeDense::new(arch);
            let mut opt = Optimizer::new(OptimizerConfig {
                kind: OptimizerKind::Sgd,
                lr: 0.1,
                momentum: 0.0,
                weight_decay: 0.0,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            });
            let mut stream = BatchStream::new(20, 4, 1);
            let fit = LocalFit {
                steps: 10,
                dropout_seed: seed,
                ..LocalFit::default()
            };
            train_local(&mut e, &mut params, &split, &mut stream, &mut opt, &fit).unwrap();
            params
        };
        assert_eq!(fit(0.0, Some(1)), fit(0.0, None));
        assert_eq!(fit(0.5, Some(1)), fit(0.5, Some(1)));
        assert_ne!(fit(0.5, Some(1)), fit(0.5, Some(2)));
        assert_ne!(fit(0.5, Some(1)), fit(0.5, None));
    }
}
