//! DP-SGD's vectorised per-sample path on [`BurnConv`] (the small CNN, GroupNorm or no
//! normalisation, 2D or 3D).
//!
//! Burn has no per-sample gradients, but every trained layer of the small CNN is a map
//! whose per-example weight gradient follows from its input and the gradient of the loss
//! with respect to its output (Goodfellow 2015; Li et al. 2022, "Large language models
//! can be strong differentially private learners"; Bu et al. 2023, "Differentially
//! private optimization on large model at small cost", the book-keeping trick):
//!
//! 1. One forward pass on the autodiff device with the weights *untracked* and a zero
//!    probe (a tracked leaf) added to each trained layer's output; each layer's input
//!    (and GroupNorm's `x_hat`) is kept.
//! 2. One backward pass of the *sum* of the examples' losses (`rows x` the batch mean,
//!    so each example's loss is what a one-example batch would give). Examples do not
//!    interact (no BatchNorm), so row `i` of a probe's gradient is example `i`'s output
//!    gradient `B_i`. No weight gradient is computed here.
//! 3. Per layer and example (`A_i` the layer input):
//!    - linear `[out, in]`: gradient `b_i^T a_i`, squared norm `|b_i|^2 |a_i|^2` (never
//!      materialised); bias `b_i`;
//!    - convolution (3x3, padding 1, stride 1) on the unfolded input `A_i`
//!      `[c_in k^d, positions]` and `B_i` `[c_out, positions]`: gradient `B_i A_i^T`,
//!      materialised by one batched matmul, or, when that would be too big, the ghost
//!      norm `sum(A_i^T A_i ⊙ B_i^T B_i)` (positions x positions); bias `sum_t B_i[:, t]`;
//!    - GroupNorm: `gamma` gets `sum_s x_hat ⊙ B_i`, `beta` `sum_s B_i`, per channel.
//! 4. Each example's norm is the root of its squared norms summed over layers; its clip
//!    factor `c_i = min(1, clip / norm_i)` ([`clip_factor`]); the clipped sum of a layer
//!    is `sum_i c_i g_i`: `c^T G` for materialised gradients, `(c ⊙ B)^T A` otherwise.
//!
//! The cost is one forward and one input-gradient backward pass plus per-layer matmuls
//! about the size of a weight gradient: roughly one non-private step.

use burn::prelude::*;
use burn::tensor::activation;
use burn::tensor::ops::PadMode;

use super::{Act, BurnConv, ConvFamily, ConvNorms, Norm, Weights, group_affine, group_hat, read};
use crate::ModelError;
use crate::dp::clip_factor;

/// Values (`rows x c_out x c_in k^d`) above which [`ConvNorms::Auto`] stops materialising
/// a convolution's per-example weight gradients (64 Mi f32 values, 256 MiB) and uses the
/// ghost norm, if that is smaller.
pub(super) const MATERIALISE_LIMIT: usize = 1 << 26;

/// A trained layer's record from the taped forward pass: which layout entries it
/// owns, what it saw (on the inference device) and the probe on its output.
enum Tape {
    /// Convolution: `input` is the layer's input activation.
    Conv {
        weight: usize,
        bias: usize,
        input: Act,
        probe: Act,
    },
    /// GroupNorm's affine map: `x_hat` is the normalised activation it scales.
    Group {
        gamma: usize,
        beta: usize,
        x_hat: Act,
        probe: Act,
    },
    /// Linear layer: `input` `[rows, in]`, probe `[rows, out]`.
    Dense {
        weight: usize,
        bias: usize,
        input: Tensor<2>,
        probe: Tensor<2>,
    },
}

/// One layout entry's per-example gradients, in a form that gives both their norms and
/// their clip-weighted sum. (A dozen live per step, so the variants' sizes don't matter.)
#[allow(clippy::large_enum_variant)]
enum PerExample {
    /// Materialised: `[rows, numel]`.
    Full(Tensor<2>),
    /// Example `i`'s gradient is `b_i^T a_i` (`b`: `[rows, r, p]`, `a`: `[rows, r, q]`,
    /// gradient `[p, q]` row-major).
    Outer { b: Tensor<3>, a: Tensor<3> },
}

impl PerExample {
    /// Squared norm of each example's gradient: `[rows]`.
    fn sq_norms(&self) -> Tensor<1> {
        match self {
            Self::Full(g) => {
                let rows = g.dims()[0];
                g.clone().square().sum_dim(1).reshape([rows])
            }
            Self::Outer { b, a } => {
                let [rows, r, _] = b.dims();
                if r == 1 {
                    let bb = b.clone().square().sum_dim(2).reshape([rows]);
                    let aa = a.clone().square().sum_dim(2).reshape([rows]);
                    bb * aa
                } else {
                    // |b_i^T a_i|_F^2 = sum(a_i a_i^T ⊙ b_i b_i^T), both [r, r].
                    let aa = a.clone().matmul(a.clone().swap_dims(1, 2));
                    let bb = b.clone().matmul(b.clone().swap_dims(1, 2));
                    (aa * bb).sum_dim(2).sum_dim(1).reshape([rows])
                }
            }
        }
    }

    /// `sum_i c_i g_i`, flat in the entry's layout (`c`: `[rows]`).
    fn weighted_sum(self, c: &Tensor<1>) -> Tensor<1> {
        match self {
            Self::Full(g) => {
                let [rows, n] = g.dims();
                c.clone().reshape([1, rows]).matmul(g).reshape([n])
            }
            Self::Outer { b, a } => {
                let [rows, r, p] = b.dims();
                let q = a.dims()[2];
                let cb = b * c.clone().reshape([rows, 1, 1]);
                cb.reshape([rows * r, p])
                    .transpose()
                    .matmul(a.reshape([rows * r, q]))
                    .reshape([p * q])
            }
        }
    }
}

impl Act {
    /// The same values without autodiff (on the inner device).
    fn inner(self) -> Self {
        match self {
            Self::D2(t) => Self::D2(t.inner()),
            Self::D3(t) => Self::D3(t.inner()),
        }
    }

    /// `[rows, channels, positions]`.
    fn positions(self) -> Tensor<3> {
        match self {
            Self::D2(t) => {
                let [n, c, _, _] = t.dims();
                t.reshape([n as i64, c as i64, -1])
            }
            Self::D3(t) => {
                let [n, c, _, _, _] = t.dims();
                t.reshape([n as i64, c as i64, -1])
            }
        }
    }

    /// The activation plus a zero probe that requires its gradient; returns both.
    fn probed(self) -> (Self, Self) {
        match self {
            Self::D2(t) => {
                let p = t.zeros_like().require_grad();
                (Self::D2(t + p.clone()), Self::D2(p))
            }
            Self::D3(t) => {
                let p = t.zeros_like().require_grad();
                (Self::D3(t + p.clone()), Self::D3(p))
            }
        }
    }

    /// The probe's gradient as `[rows, channels, positions]`.
    fn probe_grad(&self, grads: &burn::tensor::Gradients) -> Option<Tensor<3>> {
        match self {
            Self::D2(p) => p.grad(grads).map(|g| Self::D2(g).positions()),
            Self::D3(p) => p.grad(grads).map(|g| Self::D3(g).positions()),
        }
    }

    /// Unfolds a 3x3(x3) convolution's input (padding 1, stride 1): `[rows, c k^d,
    /// positions]`, the row index `c k^d + offset` in the weight's `[c_out, c_in, k, k(, k)]`
    /// order.
    fn unfold3(self) -> Tensor<3> {
        match self {
            Self::D2(t) => {
                let [n, c, h, w] = t.dims();
                let p = t.pad([(1, 1), (1, 1)], PadMode::Constant(0.0));
                let mut cols = Vec::with_capacity(9);
                for i in 0..3 {
                    for j in 0..3 {
                        cols.push(p.clone().slice([0..n, 0..c, i..i + h, j..j + w]));
                    }
                }
                Tensor::stack::<5>(cols, 2).reshape([n, c * 9, h * w])
            }
            Self::D3(t) => {
                let [n, c, d, h, w] = t.dims();
                let p = t.pad([(1, 1), (1, 1), (1, 1)], PadMode::Constant(0.0));
                let mut cols = Vec::with_capacity(27);
                for k in 0..3 {
                    for i in 0..3 {
                        for j in 0..3 {
                            cols.push(p.clone().slice([0..n, 0..c, k..k + d, i..i + h, j..j + w]));
                        }
                    }
                }
                Tensor::stack::<6>(cols, 2).reshape([n, c * 27, d * h * w])
            }
        }
    }
}

fn no_grad(what: &str) -> ModelError {
    ModelError::Device(format!(
        "Burn autodiff returned no gradient for the probe on {what}"
    ))
}

impl BurnConv {
    /// The small CNN's training forward pass (as [`BurnConv::forward`]) with a zero probe
    /// on every trained layer's output, recording each layer in `tape`.
    fn taped_forward(&self, w: &Weights, x: Act, tape: &mut Vec<Tape>) -> Tensor<2> {
        let ConvFamily::SmallCnn { channels, .. } = &self.arch.family else {
            unreachable!("the vectorised path covers the small CNN only")
        };
        let mut h = x;
        for i in 1..=channels.len() {
            let (wt, s) = w.get(&format!("conv{i}.weight"));
            let (b, _) = w.get(&format!("conv{i}.bias"));
            let input = h.clone().inner();
            let (z, probe) = h.conv(wt, Some(b), s, 1).probed();
            tape.push(Tape::Conv {
                weight: w.index[&format!("conv{i}.weight")],
                bias: w.index[&format!("conv{i}.bias")],
                input,
                probe,
            });
            h = z;
            if let Norm::Group { groups } = self.arch.norm {
                let (gname, bname) = (format!("gn{i}.weight"), format!("gn{i}.bias"));
                let x_hat = group_hat(h, groups);
                let (z, probe) =
                    group_affine(x_hat.clone(), w.get(&gname).0, w.get(&bname).0).probed();
                tape.push(Tape::Group {
                    gamma: w.index[&gname],
                    beta: w.index[&bname],
                    x_hat: x_hat.inner(),
                    probe,
                });
                h = z;
            }
            h = h.relu().max_pool2();
        }
        let mut dense = |h: Tensor<2>, name: &str| {
            let (wname, bname) = (format!("{name}.weight"), format!("{name}.bias"));
            let (wt, s) = w.get(&wname);
            let (b, _) = w.get(&bname);
            let z = h
                .clone()
                .matmul(wt.clone().reshape([s[0], s[1]]).transpose())
                + b.clone().unsqueeze::<2>();
            let probe = z.zeros_like().require_grad();
            tape.push(Tape::Dense {
                weight: w.index[&wname],
                bias: w.index[&bname],
                input: h.inner(),
                probe: probe.clone(),
            });
            z + probe
        };
        let h = activation::relu(dense(h.flatten(), "fc1"));
        dense(h, "fc2")
    }

    /// Whether a convolution's per-example weight gradients (`rows x c_out x k_cols`) are
    /// materialised rather than ghost-normed (`rows x positions^2`).
    fn materialise(&self, rows: usize, c_out: usize, k_cols: usize, positions: usize) -> bool {
        match self.conv_norms {
            ConvNorms::Materialise => true,
            ConvNorms::Ghost => false,
            ConvNorms::Auto => {
                rows * c_out * k_cols <= MATERIALISE_LIMIT
                    || positions * positions >= c_out * k_cols
            }
        }
    }

    /// The vectorised [`crate::GradientEngine::clipped_grad_sum`] (see the module docs).
    pub(super) fn ghost_clipped_sum(
        &mut self,
        params: &[f32],
        x: &[f32],
        y: &[u32],
        clip: f32,
        sum: &mut [f32],
        norms: &mut Vec<f32>,
    ) -> Result<f32, ModelError> {
        let rows = y.len();
        norms.clear();
        sum.fill(0.0);
        if rows == 0 {
            return Ok(0.0);
        }
        self.check(params, x, rows)?;
        self.check_labels(y)?;
        if sum.len() != params.len() {
            return Err(ModelError::Shape(format!(
                "the clipped sum has {} values, the parameters {}",
                sum.len(),
                params.len()
            )));
        }
        let device = self.device.clone();
        let w = self.upload(params, &device, false);
        let xt = self.input(x, rows, &device);
        let mut tape = Vec::new();
        let z = self.taped_forward(&w, xt, &mut tape);
        // Sum of the examples' losses: each example's loss is that of a one-example batch.
        let loss = self.loss(z, y, &device).mul_scalar(rows as f32);
        let grads = loss.backward();
        let total = read(loss.reshape([1]))?[0];

        let mut parts: Vec<(usize, PerExample)> = Vec::with_capacity(2 * tape.len());
        for t in tape {
            self.per_example(t, &grads, rows, &mut parts)?;
        }
        let covered: usize = parts.iter().map(|(i, _)| self.entries[*i].0.numel()).sum();
        if covered != params.len() {
            return Err(ModelError::Shape(format!(
                "the vectorised per-sample path covers {covered} of {} parameters",
                params.len()
            )));
        }
        self.clip_and_sum(parts, &w, rows, clip, sum, norms)?;
        Ok(total)
    }

    /// The per-example gradients of one taped layer's entries (bias first, then weight;
    /// gamma, then beta), pushed onto `parts` with their layout indices.
    fn per_example(
        &self,
        t: Tape,
        grads: &burn::tensor::Gradients,
        rows: usize,
        parts: &mut Vec<(usize, PerExample)>,
    ) -> Result<(), ModelError> {
        match t {
            Tape::Conv {
                weight,
                bias,
                input,
                probe,
            } => {
                let b = probe
                    .probe_grad(grads)
                    .ok_or_else(|| no_grad(&self.entries[weight].0.name))?;
                let [_, c_out, positions] = b.dims();
                let a = input.unfold3();
                let k_cols = a.dims()[1];
                parts.push((
                    bias,
                    PerExample::Full(b.clone().sum_dim(2).reshape([rows, c_out])),
                ));
                let g = if self.materialise(rows, c_out, k_cols, positions) {
                    PerExample::Full(b.matmul(a.swap_dims(1, 2)).reshape([rows, c_out * k_cols]))
                } else {
                    PerExample::Outer {
                        b: b.swap_dims(1, 2),
                        a: a.swap_dims(1, 2),
                    }
                };
                parts.push((weight, g));
            }
            Tape::Group {
                gamma,
                beta,
                x_hat,
                probe,
            } => {
                let b = probe
                    .probe_grad(grads)
                    .ok_or_else(|| no_grad(&self.entries[gamma].0.name))?;
                let c = b.dims()[1];
                let g = (x_hat.positions() * b.clone())
                    .sum_dim(2)
                    .reshape([rows, c]);
                parts.push((gamma, PerExample::Full(g)));
                parts.push((beta, PerExample::Full(b.sum_dim(2).reshape([rows, c]))));
            }
            Tape::Dense {
                weight,
                bias,
                input,
                probe,
            } => {
                let b = probe
                    .grad(grads)
                    .ok_or_else(|| no_grad(&self.entries[weight].0.name))?;
                let [_, out] = b.dims();
                let inputs = input.dims()[1];
                parts.push((bias, PerExample::Full(b.clone())));
                parts.push((
                    weight,
                    PerExample::Outer {
                        b: b.reshape([rows, 1, out]),
                        a: input.reshape([rows, 1, inputs]),
                    },
                ));
            }
        }
        Ok(())
    }

    /// Each example's gradient norm (into `norms`) and clip factor, then each entry's
    /// clip-weighted sum of per-example gradients, written at its offset in `sum`.
    fn clip_and_sum(
        &self,
        parts: Vec<(usize, PerExample)>,
        w: &Weights,
        rows: usize,
        clip: f32,
        sum: &mut [f32],
        norms: &mut Vec<f32>,
    ) -> Result<(), ModelError> {
        let sq = parts
            .iter()
            .map(|(_, p)| p.sq_norms())
            .reduce(|a, b| a + b)
            .expect("a small CNN has trained layers");
        norms.extend(read(sq)?.into_iter().map(|s| s.max(0.0).sqrt()));
        let factors: Vec<f32> = norms.iter().map(|&n| clip_factor(n, clip)).collect();
        let c = Tensor::<1>::from_data(TensorData::new(factors, [rows]), &self.infer);
        let (order, flats): (Vec<usize>, Vec<Tensor<1>>) = parts
            .into_iter()
            .map(|(i, p)| (i, p.weighted_sum(&c)))
            .unzip();
        let values = read(Tensor::cat(flats, 0))?;
        let mut at = 0;
        for i in order {
            let (n, off) = (self.entries[i].0.numel(), w.offsets[i]);
            sum[off..off + n].copy_from_slice(&values[at..at + n]);
            at += n;
        }
        Ok(())
    }
}
