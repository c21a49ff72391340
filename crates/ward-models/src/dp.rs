//! Record-level DP-SGD (Abadi et al. 2016, "Deep learning with differential privacy").
//!
//! One step: sample a batch (Poisson: every example independently with rate
//! `q = batch / rows`; or a clearly labelled fixed-size batch drawn without
//! replacement), compute every example's gradient, clip each to L2 norm `clip`, sum,
//! add Gaussian noise of std `noise_multiplier * clip` to every coordinate, and divide by
//! the *expected* batch size `batch` (never the realised one, which would leak it). The
//! optimiser then steps on that noisy gradient (any optimiser: it is post-processing).
//!
//! Per-sample gradients come from [`GradientEngine::clipped_grad_sum`]: exact and
//! vectorised in [`crate::NativeDense`] (the per-sample gradient of a linear layer is
//! the outer product of the back-propagated error and the layer input, so its squared
//! norm is `|delta|^2 (|a|^2 + 1)` without materialising it — the "ghost norm" — and
//! the clipped sum is one weighted backward pass); vectorised in [`crate::BurnConv`]
//! for the small CNN with GroupNorm or no normalisation (one forward and one backward
//! pass give every layer's per-example output gradients, from which its per-example
//! gradients, their norms and their clip-weighted sum follow; see
//! [`crate::PerSample`]); one example per backward pass (microbatching,
//! [`microbatch_clipped_sum`]) for the other Burn models.
//!
//! Virtual batches: a logical batch larger than memory allows is computed in physical
//! chunks of at most `physical_batch` rows whose clipped sums are added before the
//! noise, so the step is the same as with one chunk.
//!
//! Accounting (in `ward-privacy`): Poisson sampling is the subsampled Gaussian mechanism
//! with rate `q`, `steps` compositions. Fixed-size sampling is accounted the way Opacus
//! does, as if it were Poisson with `q = batch / rows`; that is an approximation, not a
//! proven bound under add/remove neighbours, and the report labels it.

use rand::seq::index;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use ward_data::Split;

use crate::optim::Optimizer;
use crate::train::{FitStats, LocalFit};
use crate::{GradientEngine, ModelError};

/// How DP-SGD draws its batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sampling {
    /// Each example joins each batch independently with rate `q = batch / rows`
    /// (what the subsampled-Gaussian accountants assume).
    #[default]
    Poisson,
    /// Exactly `batch` examples, drawn without replacement each step. Accounted as
    /// Poisson with the same `q` (Opacus's practice): an approximation, labelled so.
    FixedSize,
}

impl Sampling {
    /// The name as written in configs and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Poisson => "poisson",
            Self::FixedSize => "fixed-size",
        }
    }
}

/// The settings of DP-SGD at one site.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DpSgdConfig {
    /// Per-example clip norm `C` (> 0).
    pub clip: f32,
    /// Noise multiplier `sigma`: the noise std is `sigma * C` (>= 0).
    pub noise_multiplier: f64,
    /// How batches are drawn.
    pub sampling: Sampling,
    /// Expected (Poisson) or exact (fixed-size) logical batch size (>= 1).
    pub batch_size: usize,
    /// Virtual batches: at most this many rows per backward pass (None: the whole
    /// logical batch at once).
    pub physical_batch: Option<usize>,
}

impl DpSgdConfig {
    /// Checks the ranges; the error names the setting.
    pub fn check(&self, rows: usize) -> Result<(), ModelError> {
        if !(self.clip.is_finite() && self.clip > 0.0) {
            return Err(ModelError::Config(format!(
                "DP-SGD clip = {}: must be a finite number > 0",
                self.clip
            )));
        }
        if !(self.noise_multiplier.is_finite() && self.noise_multiplier >= 0.0) {
            return Err(ModelError::Config(format!(
                "DP-SGD noise multiplier = {}: must be a finite number >= 0",
                self.noise_multiplier
            )));
        }
        if self.batch_size == 0 || self.batch_size > rows {
            return Err(ModelError::Config(format!(
                "DP-SGD batch size = {}: must be in 1..={rows} (the site's training rows)",
                self.batch_size
            )));
        }
        if self.physical_batch == Some(0) {
            return Err(ModelError::Config(
                "DP-SGD physical batch = 0: must be >= 1".into(),
            ));
        }
        Ok(())
    }

    /// The sampling rate `q = batch / rows` the accountant uses.
    pub fn sample_rate(&self, rows: usize) -> f64 {
        self.batch_size as f64 / rows.max(1) as f64
    }
}

/// DP-SGD's state at a site: its settings, the random stream that draws batches and
/// noise, and the steps taken (checkpointed, so a resume continues bit for bit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DpSgd {
    config: DpSgdConfig,
    rows: usize,
    rng: ChaCha8Rng,
    steps: u64,
}

impl DpSgd {
    /// DP-SGD over `rows` training rows, drawing from `seed`.
    pub fn new(config: DpSgdConfig, rows: usize, seed: u64) -> Result<Self, ModelError> {
        config.check(rows)?;
        Ok(Self {
            config,
            rows,
            rng: ChaCha8Rng::seed_from_u64(seed),
            steps: 0,
        })
    }

    /// The settings.
    pub fn config(&self) -> &DpSgdConfig {
        &self.config
    }

    /// Training rows covered.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Steps taken so far (over every round).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The sampling rate `q`.
    pub fn sample_rate(&self) -> f64 {
        self.config.sample_rate(self.rows)
    }

    /// Steps in one pass over the data (`ceil(rows / batch)`), for `local-epochs`.
    pub fn steps_per_pass(&self) -> usize {
        self.rows.div_ceil(self.config.batch_size)
    }

    /// Draws the next batch of row indices into `out` (may be empty under Poisson).
    pub fn sample_batch(&mut self, out: &mut Vec<u32>) {
        out.clear();
        match self.config.sampling {
            Sampling::Poisson => {
                let q = self.sample_rate();
                for i in 0..self.rows {
                    if self.rng.random_bool(q) {
                        out.push(i as u32);
                    }
                }
            }
            Sampling::FixedSize => {
                let mut idx: Vec<u32> =
                    index::sample(&mut self.rng, self.rows, self.config.batch_size)
                        .into_iter()
                        .map(|i| i as u32)
                        .collect();
                idx.sort_unstable();
                out.extend(idx);
            }
        }
    }

    /// Turns a sum of clipped per-example gradients into the private gradient:
    /// `(sum + N(0, (sigma C)^2 I)) / batch`.
    pub fn privatise(&mut self, sum: &mut [f32]) {
        let std = self.config.noise_multiplier * f64::from(self.config.clip);
        let scale = 1.0 / self.config.batch_size as f64;
        for g in sum.iter_mut() {
            let z: f64 = StandardNormal.sample(&mut self.rng);
            *g = ((f64::from(*g) + std * z) * scale) as f32;
        }
    }
}

/// `min(1, clip / norm)`: the factor that clips a vector of L2 norm `norm` to `clip`
/// (1 for a zero vector).
pub fn clip_factor(norm: f32, clip: f32) -> f32 {
    if norm > clip { clip / norm } else { 1.0 }
}

/// The default per-sample path: one backward pass per example (microbatching), each
/// gradient clipped to `clip` and added to `sum`. Returns the sum of the examples'
/// losses; `norms` receives each example's unclipped gradient norm.
///
/// # Shapes
/// - `params`, `sum`: `[num_params]`; `x`: `[rows, inputs]`; `y`: `[rows]`; `norms`: `[rows]`.
pub fn microbatch_clipped_sum<E: GradientEngine + ?Sized>(
    engine: &mut E,
    params: &[f32],
    x: &[f32],
    y: &[u32],
    clip: f32,
    sum: &mut [f32],
    norms: &mut Vec<f32>,
) -> Result<f32, ModelError> {
    let rows = y.len();
    norms.clear();
    sum.iter_mut().for_each(|s| *s = 0.0);
    if rows == 0 {
        return Ok(0.0);
    }
    if !x.len().is_multiple_of(rows) {
        return Err(ModelError::Shape(format!(
            "{} input values for {rows} rows",
            x.len()
        )));
    }
    let cols = x.len() / rows;
    let mut g = vec![0.0f32; params.len()];
    let mut total = 0.0f32;
    for r in 0..rows {
        total += engine.loss_and_grad(params, &x[r * cols..(r + 1) * cols], &y[r..=r], &mut g)?;
        let norm = g.iter().map(|v| v * v).sum::<f32>().sqrt();
        norms.push(norm);
        let c = clip_factor(norm, clip);
        for (s, v) in sum.iter_mut().zip(&g) {
            *s += c * v;
        }
    }
    Ok(total)
}

/// The private gradient of one DP-SGD step at `params` on the batch `idx` of `data`
/// (clipped sum over physical chunks, then noise and division by the expected batch).
/// Returns the sum of the batch's losses.
pub fn dp_gradient(
    engine: &mut dyn GradientEngine,
    params: &[f32],
    data: &Split,
    idx: &[u32],
    dp: &mut DpSgd,
    grad: &mut [f32],
) -> Result<f32, ModelError> {
    let chunk = dp.config.physical_batch.unwrap_or(usize::MAX).max(1);
    let (mut xb, mut yb) = (Vec::new(), Vec::new());
    let mut part = vec![0.0f32; grad.len()];
    let mut norms = Vec::new();
    grad.iter_mut().for_each(|g| *g = 0.0);
    let mut total = 0.0f32;
    for ids in idx.chunks(chunk) {
        crate::train::gather(data, ids, &mut xb, &mut yb);
        total +=
            engine.clipped_grad_sum(params, &xb, &yb, dp.config.clip, &mut part, &mut norms)?;
        for (g, p) in grad.iter_mut().zip(&part) {
            *g += p;
        }
    }
    dp.privatise(grad);
    Ok(total)
}

/// [`crate::train_local`] with DP-SGD: `fit.steps` private steps, batches drawn by `dp`
/// (not by a batch stream). FedProx's and SCAFFOLD's terms are added to the private
/// gradient (they depend on the data only through earlier private steps).
pub fn train_local_dp(
    engine: &mut dyn GradientEngine,
    params: &mut [f32],
    data: &Split,
    dp: &mut DpSgd,
    opt: &mut Optimizer,
    fit: &LocalFit<'_>,
) -> Result<FitStats, ModelError> {
    if data.y.len() != dp.rows {
        return Err(ModelError::Shape(format!(
            "DP-SGD covers {} rows, the data has {}",
            dp.rows,
            data.y.len()
        )));
    }
    let mut grad = vec![0.0f32; params.len()];
    let mut idx = Vec::new();
    let (mut total, mut seen) = (0.0f64, 0usize);
    for _ in 0..fit.steps {
        dp.sample_batch(&mut idx);
        total += f64::from(dp_gradient(engine, params, data, &idx, dp, &mut grad)?);
        seen += idx.len();
        if let Some((mu, global)) = fit.prox {
            for ((g, &w), &w0) in grad.iter_mut().zip(params.iter()).zip(global) {
                *g += mu * (w - w0);
            }
        }
        if let Some(c) = fit.correction {
            for (g, &ci) in grad.iter_mut().zip(c) {
                *g += ci;
            }
        }
        opt.step(params, &grad);
        dp.steps += 1;
    }
    Ok(FitStats {
        steps: fit.steps,
        mean_loss: if seen == 0 {
            f64::NAN
        } else {
            total / seen as f64
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DenseArch, NativeDense};
    use ward_core::config::{LossKind, ModelSpec};

    fn cfg(sampling: Sampling, sigma: f64) -> DpSgdConfig {
        DpSgdConfig {
            clip: 1.0,
            noise_multiplier: sigma,
            sampling,
            batch_size: 10,
            physical_batch: None,
        }
    }

    /// Poisson batches: the mean size over many steps is `q * rows` (= 10 of 100);
    /// its std over 2000 steps is sqrt(100 * 0.1 * 0.9 / 2000) = 0.067, so 0.3 is 4.5
    /// standard errors. Fixed-size batches have exactly 10 distinct rows.
    #[test]
    fn batch_sizes_follow_the_sampling() {
        let mut dp = DpSgd::new(cfg(Sampling::Poisson, 1.0), 100, 1).unwrap();
        let mut b = Vec::new();
        let mut total = 0usize;
        for _ in 0..2000 {
            dp.sample_batch(&mut b);
            total += b.len();
        }
        let mean = total as f64 / 2000.0;
        assert!((mean - 10.0).abs() < 0.3, "{mean}");
        let mut dp = DpSgd::new(cfg(Sampling::FixedSize, 1.0), 100, 1).unwrap();
        dp.sample_batch(&mut b);
        let mut d = b.clone();
        d.dedup();
        assert_eq!((b.len(), d.len()), (10, 10));
    }

    /// With a zero sum, the private gradient is pure noise of std sigma * C / batch
    /// = 2 * 0.5 / 10 = 0.1 per coordinate. Over 20000 coordinates the sample std has
    /// relative standard error 1/sqrt(2 * 20000) = 0.5 %; the test allows 3 % (6 s.e.),
    /// and the mean within 6 s.e. (6 * 0.1 / sqrt(20000) = 0.0042).
    #[test]
    fn noise_has_the_stated_std() {
        let mut c = cfg(Sampling::Poisson, 2.0);
        c.clip = 0.5;
        let mut dp = DpSgd::new(c, 100, 7).unwrap();
        let mut g = vec![0.0f32; 20_000];
        dp.privatise(&mut g);
        let n = g.len() as f64;
        let mean = g.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = g
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / (n - 1.0);
        assert!(mean.abs() < 0.0042, "{mean}");
        assert!((var.sqrt() / 0.1 - 1.0).abs() < 0.03, "{}", var.sqrt());
    }

    /// Clipping bounds each example's contribution: with sigma = 0, changing one
    /// example of the batch (to any values, here huge ones) moves the clipped sum by at
    /// most 2 C (removing it: at most C).
    #[test]
    fn one_example_moves_the_sum_by_at_most_the_clip() {
        let arch = DenseArch::from_spec(
            &ModelSpec {
                kind: ward_core::config::ModelKind::Mlp,
                hidden: vec![5],
                ..ModelSpec::default()
            },
            LossKind::Auto,
            3,
            2,
        )
        .unwrap();
        let params = arch.init(&mut ChaCha8Rng::seed_from_u64(3));
        let mut e = NativeDense::new(arch);
        let x = [0.5, -1.0, 2.0, 1.0, 0.0, -0.5, 3.0, 1.0, 1.0];
        let y = [1, 0, 1];
        let clip = 0.1;
        let mut a = vec![0.0; params.len()];
        let mut norms = Vec::new();
        e.clipped_grad_sum(params.values(), &x, &y, clip, &mut a, &mut norms)
            .unwrap();
        assert!(norms.iter().all(|&n| n > clip), "clip must bind: {norms:?}");
        let mut x2 = x;
        x2[6..9].copy_from_slice(&[100.0, -50.0, 30.0]);
        let mut b = vec![0.0; params.len()];
        e.clipped_grad_sum(params.values(), &x2, &[1, 0, 0], clip, &mut b, &mut norms)
            .unwrap();
        let diff = a
            .iter()
            .zip(&b)
            .map(|(p, q)| (p - q).powi(2))
            .sum::<f32>()
            .sqrt();
        assert!(diff <= 2.0 * clip + 1e-6, "{diff}");
        assert!(diff > 0.0);
        let mut c = vec![0.0; params.len()];
        e.clipped_grad_sum(params.values(), &x[..6], &y[..2], clip, &mut c, &mut norms)
            .unwrap();
        let diff = a
            .iter()
            .zip(&c)
            .map(|(p, q)| (p - q).powi(2))
            .sum::<f32>()
            .sqrt();
        assert!(
            (diff - clip).abs() < 1e-5,
            "removing a clipped example moves the sum by C: {diff}"
        );
    }

    /// Virtual batches: computing the logical batch in chunks of 2 gives the step of one
    /// chunk (same noise draw, float rounding aside).
    #[test]
    fn physical_chunks_give_the_same_step() {
        let arch = DenseArch::from_spec(&ModelSpec::default(), LossKind::Auto, 2, 2).unwrap();
        let params = [0.3f32, -0.2, 0.1];
        let data = Split {
            x: ward_data::Matrix {
                rows: 5,
                cols: 2,
                data: vec![1.0, 2.0, -1.0, 0.5, 0.0, 1.0, 2.0, -2.0, 0.3, 0.3],
            },
            y: vec![1, 0, 1, 0, 1],
        };
        let mut out = Vec::new();
        for physical in [None, Some(2)] {
            let mut c = cfg(Sampling::FixedSize, 1.0);
            c.batch_size = 5;
            c.clip = 0.5;
            c.physical_batch = physical;
            let mut dp = DpSgd::new(c, 5, 9).unwrap();
            let mut e = NativeDense::new(arch.clone());
            let mut g = vec![0.0; 3];
            dp_gradient(&mut e, &params, &data, &[0, 1, 2, 3, 4], &mut dp, &mut g).unwrap();
            out.push(g);
        }
        for (a, b) in out[0].iter().zip(&out[1]) {
            assert!((a - b).abs() < 1e-6, "{out:?}");
        }
    }

    #[test]
    fn bad_settings_are_errors() {
        let mut c = cfg(Sampling::Poisson, 1.0);
        c.batch_size = 101;
        assert!(
            DpSgd::new(c, 100, 0)
                .unwrap_err()
                .to_string()
                .contains("batch size")
        );
        c.batch_size = 10;
        c.clip = 0.0;
        assert!(
            DpSgd::new(c, 100, 0)
                .unwrap_err()
                .to_string()
                .contains("clip")
        );
    }
}
