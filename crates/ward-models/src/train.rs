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
    /// Dropout: the seed of this call's mask seeds (one `u64` per step, from a ChaCha8
    /// stream of it, each armed with [`GradientEngine::arm_dropout`]). `None`: no
    /// dropout (models with dropout 0 ignore it either way).
    pub dropout_seed: Option<u64>,
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
    mut augment: Option<&mut ward_data::augment::Augmenter>,
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
    let mut masks = fit
        .dropout_seed
        .map(<rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64);
    for _ in 0..fit.steps {
        gather(data, stream.next_batch(), &mut xb, &mut yb);
        if let Some(a) = augment.as_deref_mut() {
            a.apply(&mut xb, yb.len());
        }
        if let Some(rng) = masks.as_mut() {
            engine.arm_dropout(rand::Rng::next_u64(rng));
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
    /// Share of rows whose predicted class is the label (binary: p > 0.5; multi-label:
    /// share of (row, label) pairs right at p > 0.5).
    pub accuracy: f64,
    /// Mean loss.
    pub loss: f64,
    /// Area under the ROC curve, as MedMNIST's evaluator (`evaluator.getAUC`) reports
    /// it: binary, the AUC of P(class 1); multi-class, the macro one-vs-rest AUC of the
    /// softmax probabilities ([`macro_ovr_auc`]); multi-label, the mean of the labels'
    /// AUCs ([`mean_label_auc`]). Classes or labels without both a positive and a
    /// negative row are left out of the mean; `None` when none has both.
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
    score_logits(&z, &split.y, loss)
}

/// Scores logits `z` (`k` per row, `k = z.len() / y.len()`) against labels `y` (class
/// indices, or label bitmasks for [`crate::Loss::MultiLabel`]): accuracy, mean loss and
/// AUC as [`Evaluation`] states them. Rows scored in pieces (several sites' test rows)
/// and concatenated score as one set.
///
/// # Errors
/// [`ModelError::Shape`] for no rows, or logits that are not a whole number per row.
pub fn score_logits(z: &[f32], y: &[u32], loss: crate::Loss) -> Result<Evaluation, ModelError> {
    let rows = y.len();
    if rows == 0 || z.is_empty() || !z.len().is_multiple_of(rows) {
        return Err(ModelError::Shape(format!(
            "{} logits for {rows} rows: expected a positive whole number per row",
            z.len()
        )));
    }
    let k = z.len() / rows;
    let mean_loss = f64::from(crate::native::loss_from_logits(loss, k, z, y, None));
    if loss == crate::Loss::MultiLabel {
        // Mean per-label accuracy at p > 0.5 (logit > 0).
        let hits = (0..rows * k)
            .filter(|&i| u32::from(z[i] > 0.0) == (y[i / k] >> (i % k)) & 1)
            .count();
        return Ok(Evaluation {
            n: rows,
            accuracy: hits as f64 / (rows * k) as f64,
            loss: mean_loss,
            auc: mean_label_auc(z, k, y),
        });
    }
    let (correct, auc) = if k == 1 {
        let correct = z
            .iter()
            .zip(y)
            .filter(|&(&s, &t)| u32::from(s > 0.0) == t)
            .count();
        (correct, auc(z, y))
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
                best as u32 == y[r]
            })
            .count();
        let auc = if k == 2 {
            // Two softmax outputs: the logit difference ranks like P(class 1).
            let scores: Vec<f32> = z.chunks(2).map(|r| r[1] - r[0]).collect();
            auc(&scores, y)
        } else {
            macro_ovr_auc(&softmax_rows(z, k), k, y)
        };
        (correct, auc)
    };
    Ok(Evaluation {
        n: rows,
        accuracy: correct as f64 / rows as f64,
        loss: mean_loss,
        auc,
    })
}

/// The softmax of each row of `k` logits, in `f64` (the row's maximum subtracted first).
pub fn softmax_rows(z: &[f32], k: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(z.len());
    for row in z.chunks(k.max(1)) {
        let m = row
            .iter()
            .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
        let e: Vec<f64> = row.iter().map(|&v| (f64::from(v) - m).exp()).collect();
        let sum: f64 = e.iter().sum();
        out.extend(e.iter().map(|v| v / sum));
    }
    out
}

/// Macro one-vs-rest ROC AUC of class probabilities `probs` (`k` per row, row-major)
/// against class labels: for each class `c`, the AUC ([`ward_core::stats::auc`]) of
/// column `c` with the rows of class `c` positive and every other row negative; then the
/// mean over classes. This is MedMNIST's `evaluator.getAUC` for multi-class tasks and
/// scikit-learn's `roc_auc_score(y, p, multi_class="ovr", average="macro")`. A class
/// without both a positive and a negative row is left out of the mean (both references
/// raise an error instead); `None` when no class has both.
pub fn macro_ovr_auc(probs: &[f64], k: usize, labels: &[u32]) -> Option<f64> {
    let aucs: Vec<f64> = (0..k)
        .filter_map(|c| {
            let (mut pos, mut neg) = (Vec::new(), Vec::new());
            for (row, &l) in probs.chunks(k).zip(labels) {
                if l as usize == c {
                    pos.push(row[c]);
                } else {
                    neg.push(row[c]);
                }
            }
            ward_core::stats::auc(&pos, &neg)
        })
        .collect();
    ward_core::stats::mean(&aucs)
}

/// Mean per-label ROC AUC of scores `z` (`k` per row: logits or probabilities, one per
/// label) against label bitmasks (bit `j` = label `j`): MedMNIST's `evaluator.getAUC`
/// for multi-label tasks and scikit-learn's `roc_auc_score(Y, P, average="macro")` on
/// the label-indicator matrix. A label without both values present is left out of the
/// mean (both references raise an error instead); `None` when no label has both.
pub fn mean_label_auc(z: &[f32], k: usize, labels: &[u32]) -> Option<f64> {
    let aucs: Vec<f64> = (0..k)
        .filter_map(|j| {
            let scores: Vec<f32> = z.chunks(k).map(|row| row[j]).collect();
            let truth: Vec<u32> = labels.iter().map(|&v| (v >> j) & 1).collect();
            auc(&scores, &truth)
        })
        .collect();
    ward_core::stats::mean(&aucs)
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

    /// Probabilities of 3 classes for 6 rows (rows sum to 1) and their labels.
    const P3: [f64; 18] = [
        0.7, 0.2, 0.1, //
        0.3, 0.4, 0.3, //
        0.2, 0.5, 0.3, //
        0.1, 0.3, 0.6, //
        0.5, 0.1, 0.4, //
        0.2, 0.2, 0.6, //
    ];
    const Y3: [u32; 6] = [0, 0, 1, 2, 1, 2];

    /// Macro one-vs-rest AUC by hand on `P3`, `Y3`. Class 0: positives {0.7, 0.3},
    /// negatives {0.2, 0.1, 0.5, 0.2}: 0.7 beats all 4, 0.3 beats 3 → 7/8. Class 1:
    /// positives {0.5, 0.1}, negatives {0.2, 0.4, 0.3, 0.2}: 0.5 beats 4, 0.1 none → 4/8.
    /// Class 2: positives {0.6, 0.6}, negatives {0.1, 0.3, 0.3, 0.4}: 8/8. Mean:
    /// (0.875 + 0.5 + 1) / 3 = 0.7916666...; scikit-learn 1.9.1's `roc_auc_score(y, P3,
    /// multi_class="ovr", average="macro")` prints 0.7916666666666666.
    #[test]
    fn macro_ovr_auc_by_hand() {
        let a = macro_ovr_auc(&P3, 3, &Y3).unwrap();
        assert!((a - (0.875 + 0.5 + 1.0) / 3.0).abs() < 1e-15, "{a}");
        // A class with no row is left out: classes 0 and 1 of 3, rows of 0 and 1 only.
        let a = macro_ovr_auc(&[0.8, 0.1, 0.1, 0.3, 0.6, 0.1], 3, &[0, 1]).unwrap();
        assert_eq!(a, 1.0);
        assert_eq!(macro_ovr_auc(&[0.5, 0.5], 2, &[1]), None);
    }

    /// Against scikit-learn 1.9.1 (numpy 2.4.6):
    ///
    /// ```python
    /// import numpy as np
    /// from sklearn.metrics import roc_auc_score
    /// z = np.array([[2.0, 0.5, -1.0], [0.1, 0.3, 0.2], [-0.5, 1.5, 0.0], [0.0, 0.2, 2.5],
    ///               [1.0, -0.3, 0.8], [0.3, 0.3, 1.1], [1.2, 1.0, -0.2], [-1.0, 0.4, 0.3]])
    /// y = np.array([0, 1, 1, 2, 0, 2, 1, 0])
    /// p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    /// print(repr(roc_auc_score(y, p, multi_class="ovr", average="macro")))
    /// # 0.8666666666666667
    /// ```
    ///
    /// through [`score_logits`] (softmax of the logits, then macro one-vs-rest), and the
    /// same value from the per-class pair counts (class 0: 11 of 3 x 5 pairs won, class 1:
    /// 13 of 3 x 5, class 2: 12 of 2 x 6; mean (11/15 + 13/15 + 1) / 3 = 39/45).
    #[test]
    fn multi_class_auc_matches_scikit_learn() {
        let z: [f32; 24] = [
            2.0, 0.5, -1.0, 0.1, 0.3, 0.2, -0.5, 1.5, 0.0, 0.0, 0.2, 2.5, 1.0, -0.3, 0.8, 0.3, 0.3,
            1.1, 1.2, 1.0, -0.2, -1.0, 0.4, 0.3,
        ];
        let y = [0, 1, 1, 2, 0, 2, 1, 0];
        let e = score_logits(&z, &y, crate::Loss::CrossEntropy).unwrap();
        let a = e.auc.unwrap();
        assert!((a - 0.8666666666666667).abs() < 1e-12, "{a}");
        assert!((a - 39.0 / 45.0).abs() < 1e-12, "{a}");
        // Argmax hits rows 0 to 5, misses 6 (class 0 for 1) and 7 (class 1 for 0).
        assert_eq!(e.accuracy, 0.75);
    }

    /// Against scikit-learn 1.9.1: mean per-label AUC is `roc_auc_score` with
    /// `average="macro"` on the label-indicator matrix (MedMNIST's multi-label AUC):
    ///
    /// ```python
    /// import numpy as np
    /// from sklearn.metrics import roc_auc_score
    /// Y = np.array([[1, 0], [0, 1], [1, 1], [0, 0], [1, 0]])
    /// S = np.array([[0.9, -0.2], [0.1, 0.8], [0.4, 0.3], [-0.3, 0.5], [0.2, -1.0]])
    /// print(repr(roc_auc_score(Y, S, average="macro")))
    /// # 0.9166666666666667
    /// ```
    ///
    /// By hand: label 0 positives {0.9, 0.4, 0.2} beat negatives {0.1, -0.3} in all 6
    /// pairs → 1; label 1 positives {0.8, 0.3}, negatives {-0.2, 0.5, -1.0}: 0.8 beats 3,
    /// 0.3 beats 2 → 5/6; mean 11/12.
    #[test]
    fn multi_label_auc_matches_scikit_learn() {
        let z: [f32; 10] = [0.9, -0.2, 0.1, 0.8, 0.4, 0.3, -0.3, 0.5, 0.2, -1.0];
        let y = [0b01, 0b10, 0b11, 0b00, 0b01];
        let e = score_logits(&z, &y, crate::Loss::MultiLabel).unwrap();
        let a = e.auc.unwrap();
        assert!((a - 0.9166666666666667).abs() < 1e-12, "{a}");
        assert!((a - 11.0 / 12.0).abs() < 1e-12, "{a}");
    }

    #[test]
    fn score_logits_refuses_ragged_logits() {
        let e = score_logits(&[0.1, 0.2, 0.3], &[0, 1], crate::Loss::CrossEntropy).unwrap_err();
        assert!(e.to_string().contains("3 logits for 2 rows"), "{e}");
        assert!(score_logits(&[], &[], crate::Loss::Bce).is_err());
    }
}
