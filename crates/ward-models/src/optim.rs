//! Local optimizers on flat parameter vectors, with PyTorch's update rules.

use serde::{Deserialize, Serialize};
use ward_core::config::{OptimizerKind, TrainSpec};

/// Optimizer settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    /// SGD or Adam.
    pub kind: OptimizerKind,
    /// Learning rate.
    pub lr: f32,
    /// SGD momentum (0: plain SGD).
    pub momentum: f32,
    /// L2 weight decay, added to the gradient (PyTorch `weight_decay`).
    pub weight_decay: f32,
    /// Adam beta1.
    pub beta1: f32,
    /// Adam beta2.
    pub beta2: f32,
    /// Adam epsilon.
    pub eps: f32,
}

impl OptimizerConfig {
    /// From the `[train]` section.
    pub fn from_spec(t: &TrainSpec) -> Self {
        Self {
            kind: t.optimizer,
            lr: t.lr as f32,
            momentum: t.momentum as f32,
            weight_decay: t.weight_decay as f32,
            beta1: t.beta1 as f32,
            beta2: t.beta2 as f32,
            eps: t.eps as f32,
        }
    }
}

/// An optimizer and its state (momentum buffer, Adam moments and step count). The state
/// is part of a site's checkpointed state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Optimizer {
    config: OptimizerConfig,
    step: u64,
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Optimizer {
    /// A fresh optimizer (no state yet).
    pub fn new(config: OptimizerConfig) -> Self {
        Self {
            config,
            step: 0,
            m: Vec::new(),
            v: Vec::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// Steps taken so far.
    pub fn steps_taken(&self) -> u64 {
        self.step
    }

    /// One update of `params` with gradient `grad` (same length).
    ///
    /// - SGD: `g += wd*p; b = momentum*b + g (b = g at the first step); p -= lr*b`.
    /// - Adam: `g += wd*p; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
    ///   p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)`.
    pub fn step(&mut self, params: &mut [f32], grad: &[f32]) {
        let c = self.config;
        self.step += 1;
        let wd = c.weight_decay;
        match c.kind {
            OptimizerKind::Sgd if c.momentum == 0.0 => {
                for (p, &g) in params.iter_mut().zip(grad) {
                    let g = g + wd * *p;
                    *p -= c.lr * g;
                }
            }
            OptimizerKind::Sgd => {
                let first = self.m.is_empty();
                if first {
                    self.m = vec![0.0; params.len()];
                }
                for ((p, &g), b) in params.iter_mut().zip(grad).zip(&mut self.m) {
                    let g = g + wd * *p;
                    *b = if first { g } else { c.momentum * *b + g };
                    *p -= c.lr * *b;
                }
            }
            OptimizerKind::Adam => {
                if self.m.is_empty() {
                    self.m = vec![0.0; params.len()];
                    self.v = vec![0.0; params.len()];
                }
                let t = self.step as i32;
                let bc1 = 1.0 - c.beta1.powi(t);
                let bc2 = 1.0 - c.beta2.powi(t);
                let step_size = c.lr / bc1;
                let bc2_sqrt = bc2.sqrt();
                for (((p, &g), m), v) in params
                    .iter_mut()
                    .zip(grad)
                    .zip(&mut self.m)
                    .zip(&mut self.v)
                {
                    let g = g + wd * *p;
                    *m = c.beta1 * *m + (1.0 - c.beta1) * g;
                    *v = c.beta2 * *v + (1.0 - c.beta2) * g * g;
                    let denom = v.sqrt() / bc2_sqrt + c.eps;
                    *p -= step_size * *m / denom;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(kind: OptimizerKind) -> OptimizerConfig {
        OptimizerConfig {
            kind,
            lr: 0.1,
            momentum: 0.0,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }

    #[test]
    fn sgd_momentum_by_hand() {
        // PyTorch SGD(momentum=0.5, weight_decay=0.1, lr=0.1) on p=1, grads 1 then 1:
        // step 1: g = 1 + 0.1*1 = 1.1; b = 1.1; p = 1 - 0.11 = 0.89
        // step 2: g = 1 + 0.089 = 1.089; b = 0.55 + 1.089 = 1.639; p = 0.89 - 0.1639 = 0.7261
        let mut o = Optimizer::new(OptimizerConfig {
            momentum: 0.5,
            weight_decay: 0.1,
            ..cfg(OptimizerKind::Sgd)
        });
        let mut p = [1.0f32];
        o.step(&mut p, &[1.0]);
        assert!((p[0] - 0.89).abs() < 1e-6);
        o.step(&mut p, &[1.0]);
        assert!((p[0] - 0.7261).abs() < 1e-6, "{}", p[0]);
    }

    #[test]
    fn adam_first_steps_move_by_lr() {
        // Adam's bias correction makes the first step exactly lr * sign(g) (up to eps):
        // m1 = 0.1 g, v1 = 0.001 g^2, m1/(1-0.9) = g, sqrt(v1/(1-0.999)) = |g|.
        let mut o = Optimizer::new(cfg(OptimizerKind::Adam));
        let mut p = [0.0f32, 0.0];
        o.step(&mut p, &[3.0, -0.5]);
        assert!(
            (p[0] + 0.1).abs() < 1e-6 && (p[1] - 0.1).abs() < 1e-6,
            "{p:?}"
        );
        // Second step with the same gradient: m2/bc1 = g, v2/bc2 = g^2 → again lr.
        o.step(&mut p, &[3.0, -0.5]);
        assert!(
            (p[0] + 0.2).abs() < 1e-5 && (p[1] - 0.2).abs() < 1e-5,
            "{p:?}"
        );
    }
}
