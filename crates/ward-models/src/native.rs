//! Ward's fused CPU kernels for dense networks.
//!
//! At FLamby's sizes (13 inputs, batch 4) a training step is a few hundred
//! floating-point operations; an engine that dispatches every tensor operation pays far
//! more in overhead than in arithmetic (about 30 µs a step on `burn-flex`, measured by
//! `ward bench fl`). These kernels compute the same forward and backward pass in one
//! sweep over plain slices, with no allocation after the first step. Tests in
//! `crate::burn_engine` check that they give Burn autodiff's gradients.

use ward_core::config::Activation;

use crate::arch::{DenseArch, Loss};
use crate::{GradientEngine, ModelError};

/// Forward/backward for a [`DenseArch`] on plain `f32` slices.
#[derive(Debug, Clone)]
pub struct NativeDense {
    arch: DenseArch,
    widths: Vec<usize>,
    /// `acts[l]`: input of layer `l` (`acts[0]` is the batch), `[rows, widths[l]]`.
    acts: Vec<Vec<f32>>,
    /// Gradient w.r.t. the current layer's output.
    delta: Vec<f32>,
    /// Gradient w.r.t. the current layer's input.
    delta_in: Vec<f32>,
    /// DP-SGD: every layer's per-example output gradients, `[rows, widths[l + 1]]`.
    deltas: Vec<Vec<f32>>,
    /// The dropout seed armed for the next training step.
    armed: Option<u64>,
    /// Dropout masks of the current pass, one per hidden layer, `[rows, widths[l + 1]]`.
    masks: Vec<Vec<f32>>,
}

impl NativeDense {
    /// Kernels for `arch`.
    pub fn new(arch: DenseArch) -> Self {
        let widths = arch.widths();
        Self {
            acts: vec![Vec::new(); widths.len()],
            widths,
            arch,
            delta: Vec::new(),
            delta_in: Vec::new(),
            deltas: Vec::new(),
            armed: None,
            masks: Vec::new(),
        }
    }

    /// Draws the masks of `seed` for a batch of `rows` into `self.masks`.
    fn draw_masks(&mut self, seed: u64, rows: usize) {
        let sizes: Vec<usize> = self.arch.hidden.iter().map(|&h| h * rows).collect();
        self.masks = crate::dropout::masks(seed, self.arch.dropout, &sizes);
    }

    /// Runs the forward pass; the logits end up in `acts[last]`. With `drop`, every
    /// hidden layer's activations are multiplied by `self.masks`.
    fn forward(&mut self, params: &[f32], x: &[f32], rows: usize, drop: bool) {
        let layers = self.widths.len() - 1;
        self.acts[0].clear();
        self.acts[0].extend_from_slice(x);
        let mut off = 0;
        for l in 0..layers {
            let (n_in, n_out) = (self.widths[l], self.widths[l + 1]);
            let w = &params[off..off + n_out * n_in];
            let b = &params[off + n_out * n_in..off + n_out * n_in + n_out];
            off += n_out * n_in + n_out;
            let (head, tail) = self.acts.split_at_mut(l + 1);
            let input = &head[l];
            let out = &mut tail[0];
            out.clear();
            out.resize(rows * n_out, 0.0);
            for r in 0..rows {
                let a = &input[r * n_in..(r + 1) * n_in];
                for o in 0..n_out {
                    let wo = &w[o * n_in..(o + 1) * n_in];
                    let mut s = b[o];
                    for i in 0..n_in {
                        s += wo[i] * a[i];
                    }
                    out[r * n_out + o] = s;
                }
            }
            if l + 1 < layers {
                match self.arch.activation {
                    Activation::Relu => out.iter_mut().for_each(|v| *v = v.max(0.0)),
                    Activation::Tanh => out.iter_mut().for_each(|v| *v = v.tanh()),
                }
                if drop {
                    out.iter_mut()
                        .zip(&self.masks[l])
                        .for_each(|(v, m)| *v *= m);
                }
            }
        }
    }
}

/// `log(1 + exp(z))`, stable for large `|z|`.
fn softplus(z: f32) -> f32 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// Mean loss of `logits` against `y` and, if `dlogits` is given, its gradient
/// w.r.t. the logits.
///
/// # Shapes
/// - `logits`: `[rows, outputs]`, `y`: `[rows]`, `dlogits`: `[rows, outputs]`.
pub(crate) fn loss_from_logits(
    loss: Loss,
    outputs: usize,
    logits: &[f32],
    y: &[u32],
    mut dlogits: Option<&mut Vec<f32>>,
) -> f32 {
    let rows = y.len();
    let scale = 1.0 / rows as f32;
    if let Some(d) = dlogits.as_deref_mut() {
        d.clear();
        d.resize(rows * outputs, 0.0);
    }
    let mut total = 0.0f32;
    match loss {
        Loss::Bce => {
            for r in 0..rows {
                let z = logits[r];
                let t = y[r] as f32;
                total += softplus(z) - z * t;
                if let Some(d) = dlogits.as_deref_mut() {
                    d[r] = (sigmoid(z) - t) * scale;
                }
            }
        }
        Loss::CrossEntropy => {
            for r in 0..rows {
                let z = &logits[r * outputs..(r + 1) * outputs];
                let m = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let sum: f32 = z.iter().map(|v| (v - m).exp()).sum();
                let lse = m + sum.ln();
                let t = y[r] as usize;
                total += lse - z[t];
                if let Some(d) = dlogits.as_deref_mut() {
                    for o in 0..outputs {
                        let p = (z[o] - lse).exp();
                        d[r * outputs + o] = (p - if o == t { 1.0 } else { 0.0 }) * scale;
                    }
                }
            }
        }
        Loss::MultiLabel => {
            // Mean over rows and labels (PyTorch's BCEWithLogitsLoss).
            let per = scale / outputs as f32;
            for r in 0..rows {
                for o in 0..outputs {
                    let z = logits[r * outputs + o];
                    let t = ((y[r] >> o) & 1) as f32;
                    total += (softplus(z) - z * t) / outputs as f32;
                    if let Some(d) = dlogits.as_deref_mut() {
                        d[r * outputs + o] = (sigmoid(z) - t) * per;
                    }
                }
            }
        }
    }
    total * scale
}

impl GradientEngine for NativeDense {
    fn name(&self) -> String {
        "cpu:native".into()
    }

    fn loss_and_grad(
        &mut self,
        params: &[f32],
        x: &[f32],
        y: &[u32],
        grad: &mut [f32],
    ) -> Result<f32, ModelError> {
        let rows = y.len();
        self.arch.check_batch(params, x, rows)?;
        if grad.len() != params.len() {
            return Err(ModelError::Shape(format!(
                "gradient buffer has {} values, expected {}",
                grad.len(),
                params.len()
            )));
        }
        let drop = match self.armed.take() {
            Some(seed) if self.arch.dropout > 0.0 => {
                self.draw_masks(seed, rows);
                true
            }
            _ => false,
        };
        self.forward(params, x, rows, drop);
        let layers = self.widths.len() - 1;
        let mut delta = std::mem::take(&mut self.delta);
        let loss = loss_from_logits(
            self.arch.loss,
            self.arch.outputs,
            &self.acts[layers],
            y,
            Some(&mut delta),
        );
        // Offsets of each layer's weights in the flat vector.
        let mut offs = Vec::with_capacity(layers);
        let mut off = 0;
        for l in 0..layers {
            offs.push(off);
            off += self.widths[l + 1] * self.widths[l] + self.widths[l + 1];
        }
        let mut delta_in = std::mem::take(&mut self.delta_in);
        for l in (0..layers).rev() {
            let (n_in, n_out) = (self.widths[l], self.widths[l + 1]);
            let off = offs[l];
            let input = &self.acts[l];
            {
                let (gw, gb) = grad[off..off + n_out * n_in + n_out].split_at_mut(n_out * n_in);
                gw.iter_mut().for_each(|g| *g = 0.0);
                gb.iter_mut().for_each(|g| *g = 0.0);
                for r in 0..rows {
                    let a = &input[r * n_in..(r + 1) * n_in];
                    for o in 0..n_out {
                        let d = delta[r * n_out + o];
                        gb[o] += d;
                        let g = &mut gw[o * n_in..(o + 1) * n_in];
                        for i in 0..n_in {
                            g[i] += d * a[i];
                        }
                    }
                }
            }
            if l > 0 {
                let w = &params[off..off + n_out * n_in];
                delta_in.clear();
                delta_in.resize(rows * n_in, 0.0);
                for r in 0..rows {
                    let di = &mut delta_in[r * n_in..(r + 1) * n_in];
                    for o in 0..n_out {
                        let d = delta[r * n_out + o];
                        let wo = &w[o * n_in..(o + 1) * n_in];
                        for i in 0..n_in {
                            di[i] += d * wo[i];
                        }
                    }
                }
                // Through the dropout mask and the activation that produced this
                // layer's input (`input` holds the masked activation `a * m`: a kept
                // unit's `a` is `input / m`, a dropped one passes no gradient).
                let mask = drop.then(|| self.masks[l - 1].as_slice());
                match self.arch.activation {
                    Activation::Relu => {
                        for (i, (d, a)) in delta_in.iter_mut().zip(input).enumerate() {
                            if *a <= 0.0 {
                                *d = 0.0;
                            } else if let Some(m) = mask {
                                *d *= m[i];
                            }
                        }
                    }
                    Activation::Tanh => {
                        for (i, (d, a)) in delta_in.iter_mut().zip(input).enumerate() {
                            let m = mask.map_or(1.0, |m| m[i]);
                            if m == 0.0 {
                                *d = 0.0;
                            } else {
                                let t = a / m;
                                *d *= m * (1.0 - t * t);
                            }
                        }
                    }
                }
                std::mem::swap(&mut delta, &mut delta_in);
            }
        }
        self.delta = delta;
        self.delta_in = delta_in;
        Ok(loss)
    }

    fn logits(&mut self, params: &[f32], x: &[f32], rows: usize) -> Result<Vec<f32>, ModelError> {
        self.arch.check_batch(params, x, rows)?;
        self.forward(params, x, rows, false);
        Ok(self.acts[self.widths.len() - 1].clone())
    }

    fn arm_dropout(&mut self, seed: u64) {
        self.armed = Some(seed);
    }

    fn dropout_logits(
        &mut self,
        params: &[f32],
        x: &[f32],
        rows: usize,
        seed: u64,
    ) -> Result<Vec<f32>, ModelError> {
        self.arch.check_batch(params, x, rows)?;
        if self.arch.dropout <= 0.0 {
            return Err(crate::dropout::no_dropout(&self.arch.describe()));
        }
        self.draw_masks(seed, rows);
        self.forward(params, x, rows, true);
        Ok(self.acts[self.widths.len() - 1].clone())
    }

    fn features(&mut self, params: &[f32], x: &[f32], rows: usize) -> Result<Vec<f32>, ModelError> {
        self.arch.check_batch(params, x, rows)?;
        self.forward(params, x, rows, false);
        Ok(self.acts[self.widths.len() - 2].clone())
    }

    /// Exact per-sample gradients in one backward pass. Example `r`'s gradient of layer
    /// `l` is `delta_{l,r} a_{l,r}^T` (weights) and `delta_{l,r}` (bias), where
    /// `delta_{l,r}` is the gradient of example `r`'s own loss w.r.t. the layer's output
    /// (the batch-mean error times `rows`) and `a_{l,r}` the layer's input; its squared
    /// norm is `|delta_{l,r}|^2 (|a_{l,r}|^2 + 1)` (ghost norm), so nothing per-sample is
    /// materialised. The clipped sum is then the backward pass's weight sums with each
    /// example weighted by its clip factor.
    fn clipped_grad_sum(
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
        if sum.len() != params.len() {
            return Err(ModelError::Shape(format!(
                "gradient buffer has {} values, expected {}",
                sum.len(),
                params.len()
            )));
        }
        sum.iter_mut().for_each(|g| *g = 0.0);
        if rows == 0 {
            return Ok(0.0);
        }
        self.arch.check_batch(params, x, rows)?;
        self.forward(params, x, rows, false);
        let layers = self.widths.len() - 1;
        let mut deltas = std::mem::take(&mut self.deltas);
        deltas.resize(layers, Vec::new());
        let mean_loss = loss_from_logits(
            self.arch.loss,
            self.arch.outputs,
            &self.acts[layers],
            y,
            Some(&mut deltas[layers - 1]),
        );
        // The loss is a batch mean: example r's own error is `rows` times its share.
        let per = rows as f32;
        deltas[layers - 1].iter_mut().for_each(|d| *d *= per);
        let mut offs = Vec::with_capacity(layers);
        let mut off = 0;
        for l in 0..layers {
            offs.push(off);
            off += self.widths[l + 1] * self.widths[l] + self.widths[l + 1];
        }
        // Backward: per-example errors of every layer.
        for l in (1..layers).rev() {
            let (n_in, n_out) = (self.widths[l], self.widths[l + 1]);
            let w = &params[offs[l]..offs[l] + n_out * n_in];
            let (lower, upper) = deltas.split_at_mut(l);
            let d_out = &upper[0];
            let d_in = &mut lower[l - 1];
            d_in.clear();
            d_in.resize(rows * n_in, 0.0);
            for r in 0..rows {
                let di = &mut d_in[r * n_in..(r + 1) * n_in];
                for o in 0..n_out {
                    let d = d_out[r * n_out + o];
                    let wo = &w[o * n_in..(o + 1) * n_in];
                    for i in 0..n_in {
                        di[i] += d * wo[i];
                    }
                }
            }
            let input = &self.acts[l];
            match self.arch.activation {
                Activation::Relu => {
                    for (d, a) in d_in.iter_mut().zip(input) {
                        if *a <= 0.0 {
                            *d = 0.0;
                        }
                    }
                }
                Activation::Tanh => {
                    for (d, a) in d_in.iter_mut().zip(input) {
                        *d *= 1.0 - a * a;
                    }
                }
            }
        }
        // Ghost norms, then clip factors.
        norms.resize(rows, 0.0);
        for (l, dl) in deltas.iter().enumerate() {
            let (n_in, n_out) = (self.widths[l], self.widths[l + 1]);
            for (r, n) in norms.iter_mut().enumerate() {
                let a = &self.acts[l][r * n_in..(r + 1) * n_in];
                let d = &dl[r * n_out..(r + 1) * n_out];
                let a2: f32 = a.iter().map(|v| v * v).sum();
                let d2: f32 = d.iter().map(|v| v * v).sum();
                *n += d2 * (a2 + 1.0);
            }
        }
        norms.iter_mut().for_each(|n| *n = n.sqrt());
        // Weighted sums: sum_r c_r delta_{l,r} a_{l,r}^T.
        for l in 0..layers {
            let (n_in, n_out) = (self.widths[l], self.widths[l + 1]);
            let input = &self.acts[l];
            let (gw, gb) = sum[offs[l]..offs[l] + n_out * n_in + n_out].split_at_mut(n_out * n_in);
            for r in 0..rows {
                let c = crate::dp::clip_factor(norms[r], clip);
                let a = &input[r * n_in..(r + 1) * n_in];
                for o in 0..n_out {
                    let d = c * deltas[l][r * n_out + o];
                    gb[o] += d;
                    let g = &mut gw[o * n_in..(o + 1) * n_in];
                    for i in 0..n_in {
                        g[i] += d * a[i];
                    }
                }
            }
        }
        self.deltas = deltas;
        Ok(mean_loss * per)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ward_core::config::{LossKind, ModelSpec};

    /// Logistic regression with w = [1, -2], b = 0.5 on x = [[1, 1], [0, 2]], y = [1, 0].
    /// By hand: z = [-0.5, -3.5]; sigmoid = [0.377541, 0.029312];
    /// loss = mean(softplus(z) - z*y) = mean(softplus(-0.5) + 0.5, softplus(-3.5))
    ///      = mean(0.474077 + 0.5, 0.029750) = 0.501913;
    /// dz = (sigmoid - y)/2 = [-0.311230, 0.014656];
    /// dw = x^T dz = [-0.311230, -0.311230 + 0.029312] = [-0.311230, -0.281918]; db = -0.296574.
    #[test]
    fn logistic_gradient_by_hand() {
        let arch = DenseArch::from_spec(&ModelSpec::default(), LossKind::Auto, 2, 2).unwrap();
        let mut k = NativeDense::new(arch);
        let params = [1.0, -2.0, 0.5];
        let mut g = [0.0; 3];
        let loss = k
            .loss_and_grad(&params, &[1.0, 1.0, 0.0, 2.0], &[1, 0], &mut g)
            .unwrap();
        assert!((loss - 0.501_913).abs() < 1e-5, "{loss}");
        let want = [-0.311_230, -0.281_918, -0.296_574];
        for (a, b) in g.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{g:?}");
        }
    }

    /// DP-SGD's per-sample gradients: for an MLP (tanh and ReLU) and a 3-class softmax
    /// model, the clipped sum of the one-pass per-sample gradients equals the clipped sum
    /// of gradients of one-example batches (computed by `loss_and_grad` one row at a
    /// time), and the reported norms are those gradients' norms. The clip (the median
    /// norm) binds for some examples and not others, so a wrong per-example norm would
    /// show.
    #[test]
    fn per_sample_gradients_equal_single_example_batches() {
        use rand::SeedableRng;
        for (act, classes, hidden) in [
            (Activation::Tanh, 2, vec![6, 4]),
            (Activation::Relu, 3, vec![5]),
            (Activation::Relu, 2, vec![]),
        ] {
            let spec = ModelSpec {
                kind: if hidden.is_empty() {
                    ward_core::config::ModelKind::Logistic
                } else {
                    ward_core::config::ModelKind::Mlp
                },
                hidden,
                activation: act,
                ..ModelSpec::default()
            };
            let arch = DenseArch::from_spec(&spec, LossKind::Auto, 4, classes).unwrap();
            let params = arch.init(&mut rand_chacha::ChaCha8Rng::seed_from_u64(5));
            let mut k = NativeDense::new(arch);
            let rows = 7;
            let x: Vec<f32> = (0..rows * 4)
                .map(|i| ((i * 37 % 11) as f32 - 5.0) / 3.0)
                .collect();
            let y: Vec<u32> = (0..rows).map(|r| (r % classes) as u32).collect();
            let mut grads = Vec::new();
            let mut want_norms = Vec::new();
            let mut g = vec![0.0f32; params.len()];
            let mut want_loss = 0.0;
            for r in 0..rows {
                want_loss += k
                    .loss_and_grad(params.values(), &x[r * 4..(r + 1) * 4], &y[r..=r], &mut g)
                    .unwrap();
                want_norms.push(g.iter().map(|v| v * v).sum::<f32>().sqrt());
                grads.push(g.clone());
            }
            // The clip: the median norm, so it binds for some examples and not others.
            let mut sorted = want_norms.clone();
            sorted.sort_by(f32::total_cmp);
            let clip = sorted[rows / 2];
            let mut want = vec![0.0f32; params.len()];
            for (g, &n) in grads.iter().zip(&want_norms) {
                let c = if n > clip { clip / n } else { 1.0 };
                want.iter_mut().zip(g).for_each(|(w, v)| *w += c * v);
            }
            assert!(
                want_norms.iter().any(|&n| n > clip) && want_norms.iter().any(|&n| n < clip),
                "the clip should bind for some examples only: {want_norms:?}"
            );
            let mut got = vec![0.0f32; params.len()];
            let mut norms = Vec::new();
            let loss = k
                .clipped_grad_sum(params.values(), &x, &y, clip, &mut got, &mut norms)
                .unwrap();
            assert!((loss - want_loss).abs() < 1e-4, "{loss} vs {want_loss}");
            for (a, b) in norms.iter().zip(&want_norms) {
                assert!(
                    (a - b).abs() < 1e-5 * (1.0 + b),
                    "{norms:?} vs {want_norms:?}"
                );
            }
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() < 1e-5, "{got:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn wrong_shapes_are_errors_not_panics() {
        let arch = DenseArch::from_spec(&ModelSpec::default(), LossKind::Auto, 2, 2).unwrap();
        let mut k = NativeDense::new(arch);
        let mut g = [0.0; 3];
        let e = k
            .loss_and_grad(&[0.0; 4], &[0.0; 2], &[1], &mut g)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "shape mismatch: parameter vector has 4 values, the model [2, 1] needs 3"
        );
        let e = k
            .loss_and_grad(&[0.0; 3], &[0.0; 3], &[1], &mut g)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "shape mismatch: input has 3 values, expected 1 rows x 2 features"
        );
        let e = k.logits(&[0.0; 3], &[0.0; 3], 1).unwrap_err().to_string();
        assert_eq!(
            e,
            "shape mismatch: input has 3 values, expected 1 rows x 2 features"
        );
        let e = k
            .loss_and_grad(&[0.0; 3], &[0.0; 2], &[1], &mut [0.0; 2])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "shape mismatch: gradient buffer has 2 values, expected 3"
        );
    }
}
