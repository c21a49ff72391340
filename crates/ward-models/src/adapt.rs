//! Test-time adaptation of a trained model at a new site, on flat parameters.
//!
//! - [`adabn`]: AdaBN (Li et al. 2016, "Revisiting Batch Normalization For Practical
//!   Domain Adaptation"): every BatchNorm layer's running mean and variance replaced by
//!   the statistics of the new site's unlabelled images; nothing else changes.
//! - [`tent`]: TENT (Wang et al. 2021, ICLR, "Tent: Fully Test-Time Adaptation by
//!   Entropy Minimization"): online over unlabelled test batches, each batch is predicted
//!   with BatchNorm in training mode (the batch's own statistics), and one optimiser step
//!   on the mean entropy of those predictions updates only the BatchNorm affine weights
//!   and biases; running statistics and every other value stay as they are.
//!
//! Their tests (AdaBN against statistics computed by hand, TENT lowering the entropy and
//! moving only BatchNorm affine values) live in `ward-experiment` (`reproduce::loso`).

use crate::{GradientEngine, ModelArch, ModelError, Optimizer, OptimizerConfig};

/// AdaBN: replaces the BatchNorm running statistics of `params` by those of the `rows`
/// images `x` (one training-mode pass of all of them as one batch; unbiased variance,
/// as PyTorch stores it). Models without BatchNorm refuse.
pub fn adabn(
    engine: &mut dyn GradientEngine,
    arch: &ModelArch,
    params: &mut [f32],
    x: &[f32],
    rows: usize,
) -> Result<(), ModelError> {
    if !arch.has_batch_norm() {
        return Err(ModelError::Config(format!(
            "AdaBN needs BatchNorm layers; {} has none",
            arch.describe()
        )));
    }
    engine.recompute_batch_norm(params, x, rows)
}

/// What one [`tent`] pass gives back.
#[derive(Debug, Clone, PartialEq)]
pub struct TentPass {
    /// The logits of every row, `[rows, outputs]`, each from its batch's forward pass
    /// before that batch's update (TENT's online predictions).
    pub logits: Vec<f32>,
    /// The mean prediction entropy (nats) of each batch, before its update.
    pub entropies: Vec<f32>,
}

/// TENT, online: `x` (`rows` unlabelled images) in batches of `batch` in the given
/// order; each batch is predicted with batch statistics, then one `opt` step on the mean
/// entropy of those predictions updates the BatchNorm affine parameters only (a fresh
/// optimiser over just those values, so nothing else can move). Models without
/// BatchNorm refuse.
pub fn tent(
    engine: &mut dyn GradientEngine,
    arch: &ModelArch,
    params: &mut [f32],
    x: &[f32],
    rows: usize,
    batch: usize,
    opt: OptimizerConfig,
) -> Result<TentPass, ModelError> {
    if !arch.has_batch_norm() {
        return Err(ModelError::Config(format!(
            "TENT adapts BatchNorm layers; {} has none",
            arch.describe()
        )));
    }
    if batch == 0 || rows == 0 || !x.len().is_multiple_of(rows) {
        return Err(ModelError::Shape(format!(
            "TENT needs a positive batch and whole images ({} values for {rows} rows, batch {batch})",
            x.len()
        )));
    }
    let per = x.len() / rows;
    let ranges = arch.affine_ranges();
    let mut affine: Vec<f32> = ranges
        .iter()
        .flat_map(|&(a, b)| params[a..b].iter().copied())
        .collect();
    let mut optimizer = Optimizer::new(opt);
    let mut grad = vec![0.0f32; params.len()];
    let mut g = vec![0.0f32; affine.len()];
    let mut out = TentPass {
        logits: Vec::new(),
        entropies: Vec::new(),
    };
    let mut start = 0;
    while start < rows {
        let end = (start + batch).min(rows);
        let (h, z) =
            engine.entropy_and_grad(params, &x[start * per..end * per], end - start, &mut grad)?;
        out.logits.extend(z);
        out.entropies.push(h);
        let mut at = 0;
        for &(a, b) in &ranges {
            g[at..at + (b - a)].copy_from_slice(&grad[a..b]);
            at += b - a;
        }
        optimizer.step(&mut affine, &g);
        let mut at = 0;
        for &(a, b) in &ranges {
            params[a..b].copy_from_slice(&affine[at..at + (b - a)]);
            at += b - a;
        }
        start = end;
    }
    Ok(out)
}
