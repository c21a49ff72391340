//! Local training and evaluation on a site's data.

use serde::{Deserialize, Serialize};
use ward_data::Split;

use crate::batches::BatchStream;
use crate::optim::Optimizer;
use crate::{GradientEngine, ModelError};

/// What one call of [`train_local`] does besides plain loss minimisation.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalFit<'a> {
    /// Optimizer steps to take.
    pub steps: usize,
    /// FedProx: `(mu, global)` adds `mu * (w - global)` to every gradient
    /// (the gradient of `mu/2 |w - global|^2`).
    pub prox: Option<(f32, &'a [f32])>,
    /// SCAFFOLD: `c - c_i`, added to every gradient.
    pub correction: Option<&'a [f32]>,
}

/// Statistics of one call of [`train_local`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FitStats {
    /// Optimizer steps taken.
    pub steps: usize,
    /// Mean of the mini-batch losses (without the proximal term).
    pub mean_loss: f64,
}

/// Gathers the rows `idx` of `split` into `x` and `y`.
pub(crate) fn gather(split: &Split, idx: &[u32], x: &mut Vec<f32>, y: &mut Vec<u32>) {
    let cols = split.x.cols;
    x.clear();
    y.clear();
    for &i in idx {
        let i = i as usize;
        x.extend_from_slice(&split.x.data[i * cols..(i + 1) * cols]);
        y.push(split.y[i]);
    }
}

/// Runs `fit.steps` mini-batch steps on `data`, updating `params` in place and taking
/// batches from `stream` (which carries on across calls).
pub fn train_local(
    engine: &mut dyn GradientEngine,
    params: &mut [f32],
    data: &Split,
    stream: &mut BatchStream,
    opt: &mut Optimizer,
    fit: &LocalFit<'_>,
) -> Result<FitStats, ModelError> {
    train_local_augmented(engine, params, data, stream, opt, fit, None)
}

/// [`train_local`], with every batch passed through `augment` (images) before the
/// gradient.
pub fn train_local_augmented(
    engine: &mut dyn GradientEngine,
    params: &mut [f32],
    data: &Split,
    stream: &mut BatchStream,
    opt: &mut Optimizer,
    fit: &LocalFit<'_>,
    mut augment: Option<&mut crate::Augmenter>,
) -> Result<FitStats, ModelError> {
    if data.y.is_empty() {
        return Err(ModelError::Shape("the site has no training rows".into()));
    }
    if stream.rows() != data.y.len() {
        return Err(ModelError::Shape(format!(
            "batch stream covers {} rows, the data has {}",
            stream.rows(),
            data.y.len()
        )));
    }
    for (what, v) in [
        ("FedProx global", fit.prox.map(|p| p.1)),
        ("SCAFFOLD correction", fit.correction),
    ] {
        if let Some(v) = v
            && v.len() != params.len()
        {
            return Err(ModelError::Shape(format!(
                "{what} has {} values, the model {}",
                v.len(),
                params.len()
            )));
        }
    }
    let mut grad = vec![0.0f32; params.len()];
    let (mut xb, mut yb) = (Vec::new(), Vec::new());
    let mut total = 0.0f64;
    for _ in 0..fit.steps {
        gather(data, stream.next_batch(), &mut xb, &mut yb);
        if let Some(a) = augment.as_deref_mut() {
            a.apply(&mut xb, yb.len());
        }
        let loss = engine.loss_and_grad(params, &xb, &yb, &mut grad)?;
        total += f64::from(loss);
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
        engine.write_buffers(params);
    }
    Ok(FitStats {
        steps: fit.steps,
        mean_loss: if fit.steps == 0 {
            f64::NAN
        } else {
            total / fit.steps as f64
        },
    })
}

/// Scores of a model on one split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Rows scored.
    pub n: usize,
    /// Share of rows whose predicted class is the label (binary: p > 0.5).
    pub accuracy: f64,
    /// Mean loss.
    pub loss: f64,
    /// Area under the ROC curve (binary only, and only if both classes are present).
    pub auc: Option<f64>,
}

/// Scores `params` on `split`.
pub fn evaluate(
    engine: &mut dyn GradientEngine,
    params: &[f32],
    split: &Split,
    loss: crate::Loss,
) -> Result<Evaluation, ModelError> {
    let rows = split.y.len();
    if rows == 0 {
        return Err(ModelError::Shape(
            "cannot evaluate on an empty split".into(),
        ));
    }
    let z = engine.logits(params, &split.x.data, rows)?;
    let k = z.len() / rows;
    let mean_loss = crate::native::loss_from_logits(loss, k, &z, &split.y, None);
    if loss == crate::Loss::MultiLabel {
        // Mean per-label accuracy at p > 0.5 and mean per-label AUC (MedMNIST's
        // evaluator for multi-label tasks), over labels with both values present.
        let mut hits = 0usize;
        let mut aucs = Vec::new();
        for o in 0..k {
            let scores: Vec<f32> = (0..rows).map(|r| z[r * k + o]).collect();
            let truth: Vec<u32> = split.y.iter().map(|&v| (v >> o) & 1).collect();
            hits += scores
                .iter()
                .zip(&truth)
                .filter(|&(&s, &t)| u32::from(s > 0.0) == t)
                .count();
            if let Some(a) = auc(&scores, &truth) {
                aucs.push(a);
            }
        }
        return Ok(Evaluation {
            n: rows,
            accuracy: hits as f64 / (rows * k) as f64,
            loss: f64::from(mean_loss),
            auc: ward_core::stats::mean(&aucs),
        });
    }
    let (correct, auc) = if k == 1 {
        let correct = z
            .iter()
            .zip(&split.y)
            .filter(|&(&s, &t)| u32::from(s > 0.0) == t)
            .count();
        (correct, auc(&z, &split.y))
    } else {
        let correct = (0..rows)
            .filter(|&r| {
                let row = &z[r * k..(r + 1) * k];
                let best = row
                    .iter()
                    .enumerate()
                    .fold(
                        (0, f32::NEG_INFINITY),
                        |b, (i, &v)| if v > b.1 { (i, v) } else { b },
                    )
                    .0;
                best as u32 == split.y[r]
            })
            .count();
        // Two softmax outputs: the logit difference ranks like P(class 1).
        let auc = (k == 2).then(|| {
            let scores: Vec<f32> = z.chunks(2).map(|r| r[1] - r[0]).collect();
            auc(&scores, &split.y)
        });
        (correct, auc.flatten())
    };
    Ok(Evaluation {
        n: rows,
        accuracy: correct as f64 / rows as f64,
        loss: f64::from(mean_loss),
        auc,
    })
}

/// ROC AUC by the Mann–Whitney statistic (ties count one half; a pair with a NaN
/// score counts as misordered); `None` without both classes. Label 1 is the positive
/// class, every other label negative. A wrapper of [`ward_core::stats::auc`].
pub fn auc(scores: &[f32], labels: &[u32]) -> Option<f64> {
    let (mut pos, mut neg) = (Vec::new(), Vec::new());
    for (&s, &l) in scores.iter().zip(labels) {
        if l == 1 {
            pos.push(f64::from(s));
        } else {
            neg.push(f64::from(s));
        }
    }
    ward_core::stats::auc(&pos, &neg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_by_hand() {
        // Positives 0.9, 0.4; negatives 0.5, 0.1: pairs won 0.9>0.5, 0.9>0.1, 0.4>0.1 → 3/4.
        assert_eq!(auc(&[0.9, 0.4, 0.5, 0.1], &[1, 1, 0, 0]), Some(0.75));
        assert_eq!(auc(&[0.3, 0.3], &[1, 0]), Some(0.5));
        assert_eq!(auc(&[0.3, 0.3], &[1, 1]), None);
        // As the pairwise count before `ward_core::stats`: a NaN score wins no pair, and
        // every label other than 1 is negative. Won: (0.9, 0.1), (0.9, 0.2) of 2 x 2.
        assert_eq!(auc(&[f32::NAN, 0.9, 0.1, 0.2], &[1, 1, 0, 2]), Some(0.5));
    }
}
