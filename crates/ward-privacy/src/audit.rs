//! Empirical privacy audit: membership-inference attacks and the privacy they prove.
//!
//! The library part works on numbers only (no models, no files): per-example scores
//! from a model's outputs ([`example_scores`]), the ROC of an attack's scores against
//! membership labels ([`roc`], [`Roc::auc`], [`Roc::tpr_at_fpr`]), and the lower bound
//! on epsilon that an attack's error rates imply ([`epsilon_lower_bound`]).
//!
//! Two attacks:
//! - **loss threshold** (Yeom et al. 2018): score an example by `-loss`; members have
//!   lower loss when the model overfits.
//! - **LiRA** (Carlini et al. 2022, "Membership inference attacks from first
//!   principles"): shadow models trained the same way on random halves of the data;
//!   per example, Gaussians fitted to the logit-scaled confidence of the shadows that
//!   trained on it (in) and those that did not (out); the score is the likelihood
//!   ratio of the target's confidence ([`lira_scores`]; online and offline variants).
//!
//! The epsilon bound is the hypothesis-testing one (Kairouz et al. 2015; used for
//! auditing by Jagielski et al. 2020 and Nasr et al. 2021): a test against an
//! `(epsilon, delta)`-DP mechanism with false-positive rate FPR and false-negative
//! rate FNR has `FPR + e^eps FNR >= 1 - delta` and `FNR + e^eps FPR >= 1 - delta`, so
//! `eps >= max(ln((TPR - delta) / FPR), ln((TNR - delta) / FNR))`. With Clopper-Pearson
//! intervals on the rates at confidence `c` (the lower end of TPR/TNR, the upper end of
//! FPR/FNR, as in Jagielski et al.'s code with `proportion_confint(method="beta")`; each
//! end errs with probability `(1 - c) / 2`, so both hold together with probability at
//! least `c`), the bound holds with confidence `c` at one threshold fixed in advance.
//!
//! Those papers take the best of many thresholds on the same scores; the maximum of
//! many bounds, each at confidence `c`, is optimistic (it does not hold at `c`).
//! [`epsilon_lower_bound`] instead splits the scored examples at random into two halves
//! ([`held_out_split`]: seeded, and stratified so each half keeps half the members and
//! half the non-members), picks the threshold with the best bound on the selection half
//! ([`best_threshold_bound`]) and reports the Clopper-Pearson bound at that one threshold
//! on the evaluation half ([`bound_at_threshold`]); [`EpsilonLowerBound`] names the
//! method ([`HELD_OUT_METHOD`]), the split and the threshold. Half the rows give wider
//! intervals, so the held-out bound is usually lower than the same-rows maximum, which
//! is still reported, as a diagnostic labelled optimistic (`optimistic_same_data`).
//!
//! Caveat, not handled here: Clopper-Pearson treats the evaluation rows as independent
//! trials. The rows of one training run are not independent in general (whether one
//! row is a member changes the model, and so the scores of all the others), and members
//! taken from a fixed train/test split are not drawn at random. Steinke, Nasr &
//! Jagielski 2023 ("Privacy auditing with one (1) training run") give the analysis that
//! makes a one-run audit sound when each candidate is included by an independent coin
//! flip; Ward's audit does not implement it, so its bound is the conventional one-run
//! estimate under the independence assumption, not a proof.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use statrs::distribution::{Beta, ContinuousCDF};

use ward_core::stats::median;

use crate::PrivacyError;

/// How a model's outputs map to probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputKind {
    /// One logit per row, `p(y = 1) = sigmoid(z)`; labels 0 or 1.
    Sigmoid,
    /// One logit per class, softmax; labels `0..outputs`.
    Softmax,
    /// One logit per label, each a sigmoid; a row's labels as a bitmask (bit `k` =
    /// label `k`).
    MultiLabel,
}

/// One example's scores under a model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ExampleScore {
    /// The training loss on the example (cross-entropy, in nats).
    pub loss: f64,
    /// The logit-scaled confidence in the true label, `ln(p / (1 - p))` (Carlini et
    /// al. 2022), computed stably from logits: sigmoid `z` (label 1) or `-z` (label 0);
    /// softmax `z_y - logsumexp_{j != y} z_j`; multi-label the mean over labels of the
    /// sigmoid case.
    pub confidence: f64,
}

fn softplus(x: f64) -> f64 {
    // ln(1 + e^x) without overflow.
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

/// Per-example loss and logit-scaled confidence from `logits` (`rows x outputs`,
/// row-major) and `labels` (one per row).
pub fn example_scores(
    kind: OutputKind,
    outputs: usize,
    logits: &[f32],
    labels: &[u32],
) -> Result<Vec<ExampleScore>, PrivacyError> {
    let rows = labels.len();
    if outputs == 0 || logits.len() != rows * outputs {
        return Err(PrivacyError::parameter(
            "logits",
            logits.len(),
            &format!("expected {rows} rows x {outputs} outputs"),
        ));
    }
    if kind == OutputKind::Sigmoid && outputs != 1 {
        return Err(PrivacyError::parameter(
            "outputs",
            outputs,
            "a sigmoid model has one output",
        ));
    }
    let mut out = Vec::with_capacity(rows);
    for (r, &y) in labels.iter().enumerate() {
        let z: Vec<f64> = logits[r * outputs..(r + 1) * outputs]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        if z.iter().any(|v| !v.is_finite()) {
            return Err(PrivacyError::parameter(
                "logits",
                format!("row {r}"),
                "not finite (NaN or infinite)",
            ));
        }
        let s = match kind {
            OutputKind::Sigmoid => {
                if y > 1 {
                    return Err(PrivacyError::parameter(
                        "label",
                        format!("{y} (row {r})"),
                        "a sigmoid model takes labels 0 or 1",
                    ));
                }
                let phi = if y == 1 { z[0] } else { -z[0] };
                ExampleScore {
                    loss: softplus(-phi),
                    confidence: phi,
                }
            }
            OutputKind::Softmax => {
                let t = y as usize;
                if t >= outputs {
                    return Err(PrivacyError::parameter(
                        "label",
                        format!("{y} (row {r})"),
                        &format!("a softmax model with {outputs} outputs takes 0..{outputs}"),
                    ));
                }
                let lse = |it: &mut dyn Iterator<Item = f64>| -> f64 {
                    let v: Vec<f64> = it.collect();
                    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    if m == f64::NEG_INFINITY {
                        return m;
                    }
                    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
                };
                let all = lse(&mut z.iter().copied());
                let others = lse(&mut z
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != t)
                    .map(|(_, v)| *v));
                ExampleScore {
                    loss: all - z[t],
                    confidence: z[t] - others,
                }
            }
            OutputKind::MultiLabel => {
                if outputs < 32 && (y >> outputs) != 0 {
                    return Err(PrivacyError::parameter(
                        "label",
                        format!("{y:#b} (row {r})"),
                        &format!("sets bits beyond the model's {outputs} labels"),
                    ));
                }
                let (mut loss, mut conf) = (0.0, 0.0);
                for (o, &zo) in z.iter().enumerate() {
                    let phi = if (y >> o) & 1 == 1 { zo } else { -zo };
                    loss += softplus(-phi);
                    conf += phi;
                }
                ExampleScore {
                    loss: loss / outputs as f64,
                    confidence: conf / outputs as f64,
                }
            }
        };
        out.push(s);
    }
    Ok(out)
}

/// One operating point of a ROC curve: predicting "member" for every score `>=
/// threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RocPoint {
    /// The score threshold (`+inf` for the point that predicts nothing).
    pub threshold: f64,
    /// Members at or above the threshold (true positives).
    pub tp: usize,
    /// Non-members at or above the threshold (false positives).
    pub fp: usize,
}

/// The ROC curve of an attack's scores against membership: every distinct threshold,
/// from the one that flags nobody (`tp = fp = 0`) to the one that flags everybody.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Roc {
    /// Members scored.
    pub positives: usize,
    /// Non-members scored.
    pub negatives: usize,
    /// Operating points, thresholds descending (tp and fp non-decreasing).
    pub points: Vec<RocPoint>,
}

/// `(members, non-members)` of `member`, after checking that `scores` has one finite
/// score per label and that there are both members and non-members.
fn check_scores(scores: &[f64], member: &[bool]) -> Result<(usize, usize), PrivacyError> {
    if scores.len() != member.len() {
        return Err(PrivacyError::parameter(
            "scores",
            scores.len(),
            &format!("must be one per membership label ({})", member.len()),
        ));
    }
    if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
        return Err(PrivacyError::parameter(
            "scores",
            format!("{} (example {i})", scores[i]),
            "every attack score must be finite",
        ));
    }
    let positives = member.iter().filter(|m| **m).count();
    let negatives = member.len() - positives;
    if positives == 0 || negatives == 0 {
        return Err(PrivacyError::parameter(
            "membership",
            format!("{positives} members, {negatives} non-members"),
            "an attack needs both members and non-members to score",
        ));
    }
    Ok((positives, negatives))
}

/// The ROC curve of `scores` (higher = more likely a member) against `member`.
///
/// Needs at least one member and one non-member and finite scores. Tied scores form
/// one operating point.
pub fn roc(scores: &[f64], member: &[bool]) -> Result<Roc, PrivacyError> {
    let (positives, negatives) = check_scores(scores, member)?;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut points = vec![RocPoint {
        threshold: f64::INFINITY,
        tp: 0,
        fp: 0,
    }];
    let (mut tp, mut fp) = (0, 0);
    let mut i = 0;
    while i < order.len() {
        let t = scores[order[i]];
        while i < order.len() && scores[order[i]] == t {
            if member[order[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        points.push(RocPoint {
            threshold: t,
            tp,
            fp,
        });
    }
    Ok(Roc {
        positives,
        negatives,
        points,
    })
}

/// The true-positive rate an attack reaches at a false-positive rate of at most
/// `target_fpr`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TprAtFpr {
    /// The FPR asked for.
    pub target_fpr: f64,
    /// The best TPR among thresholds with FPR `<= target_fpr`.
    pub tpr: f64,
    /// The FPR of that threshold.
    pub fpr: f64,
    /// The threshold.
    pub threshold: f64,
    /// Non-members behind the rate: `floor(target_fpr x non-members)` false positives
    /// are allowed; 0 means the TPR is the one at zero false positives.
    pub false_positives_allowed: usize,
    /// Non-members scored.
    pub negatives: usize,
}

impl Roc {
    /// Area under the curve (trapezoids; equals the Mann-Whitney statistic with ties
    /// counting one half).
    pub fn auc(&self) -> f64 {
        let (p, n) = (self.positives as f64, self.negatives as f64);
        let mut area = 0.0;
        for w in self.points.windows(2) {
            let dx = (w[1].fp - w[0].fp) as f64 / n;
            area += dx * (w[0].tp + w[1].tp) as f64 / (2.0 * p);
        }
        area
    }

    /// The best TPR at FPR `<= target_fpr` (the point at zero false positives always
    /// qualifies).
    pub fn tpr_at_fpr(&self, target_fpr: f64) -> TprAtFpr {
        let n = self.negatives as f64;
        let allowed = (target_fpr * n + 1e-9).floor().max(0.0) as usize;
        let best = self
            .points
            .iter()
            .filter(|p| p.fp <= allowed)
            .max_by_key(|p| p.tp)
            .copied()
            .unwrap_or(self.points[0]);
        TprAtFpr {
            target_fpr,
            tpr: best.tp as f64 / self.positives as f64,
            fpr: best.fp as f64 / n,
            threshold: best.threshold,
            false_positives_allowed: allowed,
            negatives: self.negatives,
        }
    }
}

/// The two-sided Clopper-Pearson ("exact") interval for a binomial proportion with `k`
/// successes in `n` trials at `confidence` (e.g. 0.95): the `(1 - c)/2` quantile of
/// Beta(k, n - k + 1) and the `(1 + c)/2` quantile of Beta(k + 1, n - k), with 0 and 1
/// at the ends (`k = 0`, `k = n`).
pub fn clopper_pearson(k: usize, n: usize, confidence: f64) -> Result<(f64, f64), PrivacyError> {
    if n == 0 || k > n {
        return Err(PrivacyError::parameter(
            "trials",
            format!("{k} of {n}"),
            "needs n >= 1 and k <= n",
        ));
    }
    if !(confidence > 0.0 && confidence < 1.0) {
        return Err(PrivacyError::parameter(
            "confidence",
            confidence,
            "must be in (0, 1)",
        ));
    }
    let a = (1.0 - confidence) / 2.0;
    let (kf, nf) = (k as f64, n as f64);
    let beta = |x: f64, y: f64| {
        Beta::new(x, y)
            .map_err(|e| PrivacyError::parameter("beta", format!("({x}, {y})"), &e.to_string()))
    };
    let lo = if k == 0 {
        0.0
    } else {
        beta(kf, nf - kf + 1.0)?.inverse_cdf(a)
    };
    let hi = if k == n {
        1.0
    } else {
        beta(kf + 1.0, nf - kf)?.inverse_cdf(1.0 - a)
    };
    Ok((lo, hi))
}

/// `max(ln((tpr - delta) / fpr), ln((tnr - delta) / fnr))`, `-inf` where both
/// numerators are not positive, `+inf` where a positive numerator meets a zero rate.
fn eps_from_rates(tpr: f64, fpr: f64, tnr: f64, fnr: f64, delta: f64) -> f64 {
    let one = |num: f64, den: f64| {
        if num <= 0.0 {
            f64::NEG_INFINITY
        } else if den <= 0.0 {
            f64::INFINITY
        } else {
            (num / den).ln()
        }
    };
    one(tpr - delta, fpr).max(one(tnr - delta, fnr))
}

/// How [`epsilon_lower_bound`] makes its bound: the `method` of [`EpsilonLowerBound`].
pub const HELD_OUT_METHOD: &str = "threshold chosen on a held-out half (seeded, stratified split), Clopper-Pearson bound on the other half";

/// The fewest members, and the fewest non-members, that [`held_out_split`] (and so
/// [`epsilon_lower_bound`]) needs: one of each in either half.
pub const MIN_PER_CLASS: usize = 2;

/// The bound an attack proves at one threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ThresholdBound {
    /// The score threshold: "member" for every score `>= threshold` (`+inf` flags
    /// nobody).
    pub threshold: f64,
    /// The bound from the Clopper-Pearson ends (lower TPR/TNR, upper FPR/FNR) at this
    /// threshold, floored at 0.
    pub ci: f64,
    /// Observed TPR at the threshold.
    pub tpr: f64,
    /// Observed FPR at the threshold.
    pub fpr: f64,
}

/// `delta` in `[0, 1)`.
fn check_delta(delta: f64) -> Result<(), PrivacyError> {
    if (0.0..1.0).contains(&delta) {
        Ok(())
    } else {
        Err(PrivacyError::parameter("delta", delta, "must be in [0, 1)"))
    }
}

/// The bound when `tp` of `positives` members and `fp` of `negatives` non-members are
/// flagged, floored at 0.
fn bound_from_counts(
    (tp, positives): (usize, usize),
    (fp, negatives): (usize, usize),
    delta: f64,
    confidence: f64,
) -> Result<f64, PrivacyError> {
    let (tpr_lo, _) = clopper_pearson(tp, positives, confidence)?;
    let (_, fpr_hi) = clopper_pearson(fp, negatives, confidence)?;
    // TNR's lower end is 1 - FPR's upper end; FNR's upper end is 1 - TPR's lower.
    Ok(eps_from_rates(tpr_lo, fpr_hi, 1.0 - fpr_hi, 1.0 - tpr_lo, delta).max(0.0))
}

/// The best bound over every threshold of `roc`, at `delta` in `[0, 1)` with
/// Clopper-Pearson intervals at `confidence`.
///
/// Optimistic when it is reported for the rows the ROC was made from: the guarantee
/// of each threshold's bound holds at `confidence` for that threshold alone, and the
/// maximum over many is larger than any one fixed in advance would be.
/// [`epsilon_lower_bound`] uses this on a selection half only, to pick the threshold.
/// Ties go to the first (highest) threshold; `+inf` with bound 0 when no threshold
/// proves anything.
pub fn best_threshold_bound(
    roc: &Roc,
    delta: f64,
    confidence: f64,
) -> Result<ThresholdBound, PrivacyError> {
    check_delta(delta)?;
    let (p, n) = (roc.positives, roc.negatives);
    let mut best = ThresholdBound {
        threshold: f64::INFINITY,
        ci: 0.0,
        tpr: 0.0,
        fpr: 0.0,
    };
    for q in &roc.points {
        let ci = bound_from_counts((q.tp, p), (q.fp, n), delta, confidence)?;
        if ci > best.ci {
            best = ThresholdBound {
                threshold: q.threshold,
                ci,
                tpr: q.tp as f64 / p as f64,
                fpr: q.fp as f64 / n as f64,
            };
        }
    }
    Ok(best)
}

/// The bound at one `threshold` fixed in advance (not chosen on these rows): flag every
/// score `>= threshold`, count the flagged members and non-members, and take the
/// Clopper-Pearson ends at `confidence`. Needs at least one member and one non-member,
/// finite scores and a threshold that is not NaN.
pub fn bound_at_threshold(
    scores: &[f64],
    member: &[bool],
    threshold: f64,
    delta: f64,
    confidence: f64,
) -> Result<ThresholdBound, PrivacyError> {
    check_delta(delta)?;
    if threshold.is_nan() {
        return Err(PrivacyError::parameter(
            "threshold",
            threshold,
            "must be a number (+inf flags nobody)",
        ));
    }
    let (p, n) = check_scores(scores, member)?;
    let flagged = |want: bool| {
        scores
            .iter()
            .zip(member)
            .filter(|(s, m)| **m == want && **s >= threshold)
            .count()
    };
    let (tp, fp) = (flagged(true), flagged(false));
    Ok(ThresholdBound {
        threshold,
        ci: bound_from_counts((tp, p), (fp, n), delta, confidence)?,
        tpr: tp as f64 / p as f64,
        fpr: fp as f64 / n as f64,
    })
}

/// A random split of scored examples into two halves, stratified by membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldOutSplit {
    /// Indices (ascending) of the half that picks the threshold: `floor(m / 2)` of the
    /// `m` members and `floor(n / 2)` of the `n` non-members.
    pub selection: Vec<usize>,
    /// The other indices (ascending): the half the bound is reported on (it keeps the
    /// odd member and the odd non-member).
    pub evaluation: Vec<usize>,
}

/// Splits the examples of `member` into a selection and an evaluation half, seeded by
/// `seed` (the same seed and labels give the same split) and stratified: each half
/// gets half the members and half the non-members, drawn uniformly at random
/// (ChaCha8). Needs at least [`MIN_PER_CLASS`] members and as many non-members.
pub fn held_out_split(member: &[bool], seed: u64) -> Result<HeldOutSplit, PrivacyError> {
    let members: Vec<usize> = (0..member.len()).filter(|&i| member[i]).collect();
    let non_members: Vec<usize> = (0..member.len()).filter(|&i| !member[i]).collect();
    if members.len() < MIN_PER_CLASS || non_members.len() < MIN_PER_CLASS {
        return Err(PrivacyError::parameter(
            "membership",
            format!(
                "{} members, {} non-members",
                members.len(),
                non_members.len()
            ),
            &format!(
                "a held-out threshold needs at least {MIN_PER_CLASS} members and {MIN_PER_CLASS} non-members (one of each in the half that picks the threshold and in the half that is scored)"
            ),
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut in_selection = vec![false; member.len()];
    for class in [&members, &non_members] {
        for k in rand::seq::index::sample(&mut rng, class.len(), class.len() / 2) {
            in_selection[class[k]] = true;
        }
    }
    let (selection, evaluation) = (0..member.len()).partition(|&i| in_selection[i]);
    Ok(HeldOutSplit {
        selection,
        evaluation,
    })
}

/// The epsilon an attack proves, at `delta`: the threshold is chosen on a held-out
/// half and the bound reported on the other ([`HELD_OUT_METHOD`]; see the module docs,
/// and their caveat on the independence of one run's rows).
///
/// There is no point estimate from the raw rates: the highest-scored member alone
/// gives `FPR = 0` and so an infinite ratio; only the interval bound means something.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpsilonLowerBound {
    /// The delta the bound is for.
    pub delta: f64,
    /// Confidence of the Clopper-Pearson intervals.
    pub confidence: f64,
    /// How the bound was made ([`HELD_OUT_METHOD`]).
    pub method: String,
    /// The seed of the selection/evaluation split ([`held_out_split`]).
    pub split_seed: u64,
    /// Members in the selection half.
    pub selection_members: usize,
    /// Non-members in the selection half.
    pub selection_non_members: usize,
    /// Members in the evaluation half.
    pub evaluation_members: usize,
    /// Non-members in the evaluation half.
    pub evaluation_non_members: usize,
    /// The bound from the Clopper-Pearson ends (lower TPR/TNR, upper FPR/FNR) on the
    /// evaluation half at `threshold`, floored at 0: what the audit proves at
    /// `confidence`, if the evaluation rows are independent trials (see the module
    /// docs).
    pub ci: f64,
    /// The threshold, chosen on the selection half as the one with the best bound
    /// there (`+inf`, flagging nobody, when none proves anything there).
    pub threshold: f64,
    /// Observed TPR on the evaluation half at `threshold`.
    pub tpr: f64,
    /// Observed FPR on the evaluation half at `threshold`.
    pub fpr: f64,
    /// Diagnostic only, not a guarantee: the best bound over every threshold on all
    /// the rows, thresholds chosen on the rows they are scored on ([`best_threshold_bound`];
    /// the number earlier versions reported as `ci`). Optimistic: it does not hold at
    /// `confidence`.
    pub optimistic_same_data: f64,
}

/// The held-out bound, with `full` the ROC of all the rows (for the diagnostic).
fn held_out_bound(
    scores: &[f64],
    member: &[bool],
    full: &Roc,
    (delta, confidence): (f64, f64),
    seed: u64,
) -> Result<EpsilonLowerBound, PrivacyError> {
    let split = held_out_split(member, seed)?;
    let pick = |idx: &[usize]| -> (Vec<f64>, Vec<bool>) {
        idx.iter().map(|&i| (scores[i], member[i])).unzip()
    };
    let (s_sel, m_sel) = pick(&split.selection);
    let (s_eval, m_eval) = pick(&split.evaluation);
    let chosen = best_threshold_bound(&roc(&s_sel, &m_sel)?, delta, confidence)?;
    let at = bound_at_threshold(&s_eval, &m_eval, chosen.threshold, delta, confidence)?;
    let count = |m: &[bool], want: bool| m.iter().filter(|&&x| x == want).count();
    Ok(EpsilonLowerBound {
        delta,
        confidence,
        method: HELD_OUT_METHOD.to_string(),
        split_seed: seed,
        selection_members: count(&m_sel, true),
        selection_non_members: count(&m_sel, false),
        evaluation_members: count(&m_eval, true),
        evaluation_non_members: count(&m_eval, false),
        ci: at.ci,
        threshold: at.threshold,
        tpr: at.tpr,
        fpr: at.fpr,
        optimistic_same_data: best_threshold_bound(full, delta, confidence)?.ci,
    })
}

/// The hypothesis-testing lower bound on epsilon that an attack's `scores` (higher =
/// member) against `member` prove (see the module docs), at `delta` in `[0, 1)`, with
/// Clopper-Pearson intervals at `confidence`: the threshold is the best one on the
/// selection half of [`held_out_split`]`(member, seed)`, and the bound is the one at
/// that threshold on the evaluation half.
///
/// Needs finite scores, one per label, and at least [`MIN_PER_CLASS`] members and as
/// many non-members.
pub fn epsilon_lower_bound(
    scores: &[f64],
    member: &[bool],
    delta: f64,
    confidence: f64,
    seed: u64,
) -> Result<EpsilonLowerBound, PrivacyError> {
    check_delta(delta)?;
    let full = roc(scores, member)?;
    held_out_bound(scores, member, &full, (delta, confidence), seed)
}

/// An attack's result: AUC, TPR at low FPRs, and the epsilon it proves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttackSummary {
    /// Members scored.
    pub members: usize,
    /// Non-members scored.
    pub non_members: usize,
    /// ROC AUC (0.5: no better than guessing).
    pub auc: f64,
    /// TPR at each FPR asked for.
    pub tpr_at_fpr: Vec<TprAtFpr>,
    /// The epsilon lower bound ([`epsilon_lower_bound`]).
    pub epsilon: EpsilonLowerBound,
}

/// Scores an attack: `scores` (higher = member) against `member`, TPR at each of
/// `fprs`, and the epsilon bound at `delta` with `confidence` intervals, its threshold
/// chosen on the held-out half that `split_seed` draws ([`epsilon_lower_bound`]).
pub fn summarize_attack(
    scores: &[f64],
    member: &[bool],
    fprs: &[f64],
    delta: f64,
    confidence: f64,
    split_seed: u64,
) -> Result<AttackSummary, PrivacyError> {
    if let Some(f) = fprs.iter().find(|f| !(**f > 0.0 && **f < 1.0)) {
        return Err(PrivacyError::parameter("fpr", f, "must be in (0, 1)"));
    }
    check_delta(delta)?;
    let r = roc(scores, member)?;
    Ok(AttackSummary {
        members: r.positives,
        non_members: r.negatives,
        auc: r.auc(),
        tpr_at_fpr: fprs.iter().map(|&f| r.tpr_at_fpr(f)).collect(),
        epsilon: held_out_bound(scores, member, &r, (delta, confidence), split_seed)?,
    })
}

/// Which shadow models train on which example: `inclusion[k][j]` is true when shadow
/// `k` trains on example `j`. Every example is in exactly `shadows / 2` shadows, chosen
/// at random (Carlini et al. 2022's balanced split: a random order of the shadows per
/// example), so each example has as many in as out observations.
pub fn balanced_inclusion(
    examples: usize,
    shadows: usize,
    seed: u64,
) -> Result<Vec<Vec<bool>>, PrivacyError> {
    if shadows < 4 || !shadows.is_multiple_of(2) {
        return Err(PrivacyError::parameter(
            "shadows",
            shadows,
            "LiRA needs an even number of at least 4 shadow models (each example in half)",
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut inc = vec![vec![false; examples]; shadows];
    let picks: Vec<_> = (0..examples)
        .map(|_| rand::seq::index::sample(&mut rng, shadows, shadows / 2))
        .collect();
    for (j, p) in picks.into_iter().enumerate() {
        for k in p {
            inc[k][j] = true;
        }
    }
    Ok(inc)
}

/// How LiRA estimates the spread of the shadows' confidences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LiraVariance {
    /// One variance for all examples (in and out separately), pooled from each
    /// example's deviations around its own mean: Carlini et al.'s advice for few
    /// shadow models (fewer than 64).
    Global,
    /// Each example's own sample variance (needs at least 2 in and 2 out).
    PerExample,
}

/// LiRA scores of the target model's examples (higher = member).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiraScores {
    /// Online: `ln N(x; mu_in, s_in^2) - ln N(x; mu_out, s_out^2)` of the target's
    /// confidence `x`.
    pub online: Vec<f64>,
    /// Offline (out shadows only), Carlini et al.'s one-sided test `Phi((x - mu_out) /
    /// s_out)`, given as its argument `(x - mu_out) / s_out` (same order).
    pub offline: Vec<f64>,
}

/// The smallest spread LiRA divides by (all shadows agreeing exactly).
const MIN_STD: f64 = 1e-9;

/// LiRA (Carlini et al. 2022): `target[j]` is the target model's logit-scaled
/// confidence on example `j`, `shadow[k][j]` shadow `k`'s, and `inclusion[k][j]`
/// whether shadow `k` trained on example `j`. The Gaussians' means are the medians of
/// the in and out confidences (as in the authors' code); their spread follows
/// `variance`.
pub fn lira_scores(
    target: &[f64],
    shadow: &[Vec<f64>],
    inclusion: &[Vec<bool>],
    variance: LiraVariance,
) -> Result<LiraScores, PrivacyError> {
    let n = target.len();
    if shadow.len() != inclusion.len() || shadow.is_empty() {
        return Err(PrivacyError::parameter(
            "shadows",
            shadow.len(),
            &format!(
                "need at least one, with one inclusion row each ({})",
                inclusion.len()
            ),
        ));
    }
    for (k, (s, i)) in shadow.iter().zip(inclusion).enumerate() {
        if s.len() != n || i.len() != n {
            return Err(PrivacyError::parameter(
                "shadow",
                k,
                &format!(
                    "has {} scores and {} inclusion flags for {n} examples",
                    s.len(),
                    i.len()
                ),
            ));
        }
        if let Some(j) = s.iter().position(|v| !v.is_finite()) {
            return Err(PrivacyError::parameter(
                "shadow",
                k,
                &format!("score of example {j} is not finite"),
            ));
        }
    }
    let mut ins = Vec::with_capacity(n);
    let mut outs = Vec::with_capacity(n);
    for j in 0..n {
        let mut a = Vec::new();
        let mut b = Vec::new();
        for (s, i) in shadow.iter().zip(inclusion) {
            if i[j] { a.push(s[j]) } else { b.push(s[j]) }
        }
        let need = if variance == LiraVariance::PerExample {
            2
        } else {
            1
        };
        if a.len() < need || b.len() < need {
            return Err(PrivacyError::parameter(
                "inclusion",
                format!("example {j}: {} in, {} out", a.len(), b.len()),
                &format!("LiRA needs at least {need} in and {need} out shadow models per example"),
            ));
        }
        ins.push(a);
        outs.push(b);
    }
    // Spread: pooled deviations around each example's mean, or each example's own.
    let spread = |groups: &[Vec<f64>]| -> Result<Vec<f64>, PrivacyError> {
        let dev = |g: &[f64]| {
            let m = g.iter().sum::<f64>() / g.len() as f64;
            g.iter().map(|v| (v - m).powi(2)).sum::<f64>()
        };
        match variance {
            LiraVariance::PerExample => Ok(groups
                .iter()
                .map(|g| (dev(g) / (g.len() - 1) as f64).sqrt().max(MIN_STD))
                .collect()),
            LiraVariance::Global => {
                let ss: f64 = groups.iter().map(|g| dev(g)).sum();
                let dof: usize = groups.iter().map(|g| g.len() - 1).sum();
                if dof == 0 {
                    return Err(PrivacyError::parameter(
                        "shadows",
                        shadow.len(),
                        "one in and one out model per example leave no spread to estimate: train at least 4 shadows",
                    ));
                }
                Ok(vec![(ss / dof as f64).sqrt().max(MIN_STD); groups.len()])
            }
        }
    };
    let s_in = spread(&ins)?;
    let s_out = spread(&outs)?;
    let log_pdf = |x: f64, m: f64, s: f64| -s.ln() - 0.5 * ((x - m) / s).powi(2);
    let mut online = Vec::with_capacity(n);
    let mut offline = Vec::with_capacity(n);
    for j in 0..n {
        let x = target[j];
        if !x.is_finite() {
            return Err(PrivacyError::parameter(
                "target",
                format!("example {j}"),
                "its confidence is not finite",
            ));
        }
        // Both groups hold at least one (finite) score, checked above.
        let mi = median(&ins[j]).expect("at least one in score");
        let mo = median(&outs[j]).expect("at least one out score");
        online.push(log_pdf(x, mi, s_in[j]) - log_pdf(x, mo, s_out[j]));
        offline.push((x - mo) / s_out[j]);
    }
    Ok(LiraScores { online, offline })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;
    use rand_distr::{Distribution, Normal};

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol, "{a} vs {b} (tol {tol})");
    }

    #[test]
    fn tiny_roc_by_hand() {
        // Members 0.9, 0.8, 0.4; non-members 0.7, 0.3. By hand: the pairs (member >
        // non-member) are 0.9>0.7, 0.9>0.3, 0.8>0.7, 0.8>0.3, 0.4>0.3 = 5 of 6, so
        // AUC = 5/6. Thresholds: inf (0,0), 0.9 (1,0), 0.8 (2,0), 0.7 (2,1), 0.4 (3,1),
        // 0.3 (3,2).
        let s = [0.9, 0.7, 0.8, 0.3, 0.4];
        let m = [true, false, true, false, true];
        let r = roc(&s, &m).unwrap();
        let pts: Vec<(usize, usize)> = r.points.iter().map(|p| (p.tp, p.fp)).collect();
        assert_eq!(pts, vec![(0, 0), (1, 0), (2, 0), (2, 1), (3, 1), (3, 2)]);
        close(r.auc(), 5.0 / 6.0, 1e-12);
        // At FPR <= 0.1 (0 of 2 false positives allowed): TPR 2/3 at threshold 0.8.
        let t = r.tpr_at_fpr(0.1);
        close(t.tpr, 2.0 / 3.0, 1e-12);
        assert_eq!((t.false_positives_allowed, t.threshold), (0, 0.8));
        // At FPR <= 0.5 (1 allowed): TPR 1 at threshold 0.4, FPR 1/2.
        let t = r.tpr_at_fpr(0.5);
        close(t.tpr, 1.0, 1e-12);
        close(t.fpr, 0.5, 1e-12);
        // Epsilon, delta 0, by hand at the best threshold 0.8 (tp 2 of 3, fp 0 of 2):
        // TPR lower end = Beta(2, 2) quantile at 0.025 = 0.094299 (the root of
        // 3x^2 - 2x^3 = 0.025), FPR upper end = 1 - 0.025^(1/2) = 0.841886: ln(0.094299
        // / 0.841886) < 0; the symmetric side ln((1 - 0.841886) / (1 - 0.094299)) < 0
        // too: nothing proven, so 0 (the other thresholds are worse).
        let e = best_threshold_bound(&r, 0.0, 0.95).unwrap();
        assert_eq!(e.ci, 0.0);
        let (lo, _) = clopper_pearson(2, 3, 0.95).unwrap();
        close(3.0 * lo * lo - 2.0 * lo.powi(3), 0.025, 1e-9);
    }

    #[test]
    fn ties_count_one_half() {
        // One member and one non-member with the same score: AUC 1/2 by Mann-Whitney.
        let r = roc(&[1.0, 1.0, 0.0], &[true, false, false]).unwrap();
        // Pairs: (1.0 vs 1.0) = 1/2, (1.0 vs 0.0) = 1: AUC = 1.5 / 2 = 0.75.
        close(r.auc(), 0.75, 1e-12);
        assert_eq!(r.points.len(), 3);
    }

    #[test]
    fn perfect_separation_same_data_best_matches_the_closed_form() {
        // 100 members above 100 non-members: AUC 1, TPR 1 at any FPR. Clopper-Pearson
        // at k = n: lower end (a/2)^(1/n); at k = 0: upper end 1 - (a/2)^(1/n) (the
        // Beta(n,1) and Beta(1,n) quantiles in closed form), a = 0.05. Both bounds of
        // the symmetric pair are ln(L / (1 - L)) with L = 0.025^(1/100) = 0.963789...
        let n = 100;
        let s: Vec<f64> = (0..2 * n).map(|i| i as f64).collect();
        let m: Vec<bool> = (0..2 * n).map(|i| i >= n).collect();
        let a = summarize_attack(&s, &m, &[0.001, 0.01], 0.0, 0.95, 0).unwrap();
        close(a.auc, 1.0, 1e-12);
        for (t, allowed) in a.tpr_at_fpr.iter().zip([0, 1]) {
            close(t.tpr, 1.0, 1e-12);
            // floor(0.001 x 100) = 0 and floor(0.01 x 100) = 1 false positives.
            assert_eq!(t.false_positives_allowed, allowed);
        }
        let l = 0.025f64.powf(1.0 / n as f64);
        close(a.epsilon.optimistic_same_data, (l / (1.0 - l)).ln(), 1e-6);
        close(a.epsilon.optimistic_same_data, 3.2813, 1e-3);
        let r = roc(&s, &m).unwrap();
        let best = best_threshold_bound(&r, 0.0, 0.95).unwrap();
        assert_eq!(best.ci, a.epsilon.optimistic_same_data);
        assert_eq!(best.threshold, n as f64);
        // With delta = 0.5: ln((L - 0.5) / (1 - L)).
        let e = best_threshold_bound(&r, 0.5, 0.95).unwrap();
        close(e.ci, ((l - 0.5) / (1.0 - l)).ln(), 1e-6);
    }

    #[test]
    fn clopper_pearson_matches_published_values() {
        // R 4.x binom.test(5, 10)$conf.int = 0.1870860 0.8129140;
        // binom.test(1, 10): 0.002528579 0.445016117; binom.test(0, 10): 0 0.3084971
        // (closed form 1 - 0.025^(1/10)).
        let (lo, hi) = clopper_pearson(5, 10, 0.95).unwrap();
        close(lo, 0.187_086_0, 1e-6);
        close(hi, 0.812_914_0, 1e-6);
        let (lo, hi) = clopper_pearson(1, 10, 0.95).unwrap();
        close(lo, 0.002_528_579, 1e-8);
        close(hi, 0.445_016_117, 1e-6);
        let (lo, hi) = clopper_pearson(0, 10, 0.95).unwrap();
        assert_eq!(lo, 0.0);
        close(hi, 1.0 - 0.025f64.powf(0.1), 1e-9);
        close(hi, 0.308_497_1, 1e-6);
        let err = |k, n, c| clopper_pearson(k, n, c).unwrap_err().to_string();
        assert_eq!(err(3, 2, 0.95), "trials = 3 of 2: needs n >= 1 and k <= n");
        assert_eq!(err(0, 0, 0.95), "trials = 0 of 0: needs n >= 1 and k <= n");
        assert_eq!(err(1, 2, 1.0), "confidence = 1: must be in (0, 1)");
    }

    #[test]
    fn identical_distributions_give_auc_half_and_no_epsilon() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let d = Normal::new(0.0, 1.0).unwrap();
        let n = 4000;
        let s: Vec<f64> = (0..n).map(|_| d.sample(&mut rng)).collect();
        let m: Vec<bool> = (0..n).map(|_| rng.random_bool(0.5)).collect();
        let a = summarize_attack(&s, &m, &[0.01], 1e-5, 0.95, 3).unwrap();
        // AUC's standard error here is about sqrt((n+1)/(12 n_pos n_neg)) ~ 0.009.
        close(a.auc, 0.5, 0.03);
        // The interval bound proves (almost) nothing, even maximised over thousands of
        // thresholds on the same rows.
        assert!(a.epsilon.ci < 0.05, "{:?}", a.epsilon);
        assert!(a.epsilon.optimistic_same_data < 0.05, "{:?}", a.epsilon);
    }

    #[test]
    fn separated_gaussians_give_a_positive_bound() {
        // Members N(2, 1), non-members N(0, 1): AUC = Phi(2 / sqrt 2) = 0.9214.
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let d = Normal::new(0.0, 1.0).unwrap();
        let n = 4000;
        let m: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
        let s: Vec<f64> = m
            .iter()
            .map(|&x| d.sample(&mut rng) + if x { 2.0 } else { 0.0 })
            .collect();
        let a = summarize_attack(&s, &m, &[0.01], 0.0, 0.95, 5).unwrap();
        close(a.auc, 0.9214, 0.01);
        assert!(a.epsilon.ci > 1.0, "{:?}", a.epsilon);
        assert_eq!(a.epsilon.method, HELD_OUT_METHOD);
        // Wider intervals prove less (at the same threshold, and at the best one).
        let r = roc(&s, &m).unwrap();
        let same = best_threshold_bound(&r, 0.0, 0.95).unwrap();
        let e99 = best_threshold_bound(&r, 0.0, 0.99).unwrap();
        assert!(e99.ci < same.ci);
        let at = |c| {
            bound_at_threshold(&s, &m, same.threshold, 0.0, c)
                .unwrap()
                .ci
        };
        assert!(at(0.99) < at(0.95));
        // A larger delta proves less.
        let ed = best_threshold_bound(&r, 0.1, 0.95).unwrap();
        assert!(ed.ci < same.ci);
    }

    /// Members `N(1, 1)`, non-members `N(0, 1)`, 400 each (seed 21): an attack that
    /// leaks enough for a positive bound on either half.
    fn leaky_scores() -> (Vec<f64>, Vec<bool>) {
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        let d = Normal::new(0.0, 1.0).unwrap();
        let m: Vec<bool> = (0..800).map(|i| i % 2 == 0).collect();
        let s = m
            .iter()
            .map(|&x| d.sample(&mut rng) + if x { 1.0 } else { 0.0 })
            .collect();
        (s, m)
    }

    #[test]
    fn held_out_bound_is_not_above_the_same_data_best() {
        let (s, m) = leaky_scores();
        let e = epsilon_lower_bound(&s, &m, 0.0, 0.95, 0).unwrap();
        // The bound is positive here, so the comparison is not 0 <= anything.
        assert!(e.ci > 0.1, "{e:?}");
        assert!(e.ci <= e.optimistic_same_data, "{e:?}");
        let best = best_threshold_bound(&roc(&s, &m).unwrap(), 0.0, 0.95).unwrap();
        assert_eq!(e.optimistic_same_data, best.ci);
        for seed in 0..20 {
            let e = epsilon_lower_bound(&s, &m, 0.0, 0.95, seed).unwrap();
            assert!(e.ci <= e.optimistic_same_data, "seed {seed}: {e:?}");
            // Always, by construction: the evaluation half's own best threshold is at
            // least as good as the one the selection half chose for it (flagging the
            // scores >= t is one of its ROC points).
            let split = held_out_split(&m, seed).unwrap();
            let (es, em): (Vec<f64>, Vec<bool>) =
                split.evaluation.iter().map(|&i| (s[i], m[i])).unzip();
            let eval_best = best_threshold_bound(&roc(&es, &em).unwrap(), 0.0, 0.95).unwrap();
            assert!(e.ci <= eval_best.ci, "seed {seed}: {e:?} vs {eval_best:?}");
            // The reported threshold's bound is the one bound_at_threshold gives there.
            let at = bound_at_threshold(&es, &em, e.threshold, 0.0, 0.95).unwrap();
            assert_eq!((at.ci, at.tpr, at.fpr), (e.ci, e.tpr, e.fpr));
        }
    }

    #[test]
    fn perfect_separation_gives_the_closed_form_on_the_evaluation_half() {
        // 101 members scored 1, 99 non-members scored 0. The split leaves 51 members and
        // 50 non-members for evaluation (the odd ones stay there); the selection half's
        // best threshold is 1, which on the evaluation half flags 51 of 51 members and 0
        // of 50 non-members. Clopper-Pearson at k = n and k = 0 in closed form (the
        // Beta(n, 1) quantile at a is a^(1/n); Clopper & Pearson 1934): TPR's lower end
        // Lm = 0.025^(1/51), FPR's upper end 1 - Ln with Ln = 0.025^(1/50). Delta 0:
        // max(ln(Lm / (1 - Ln)), ln(Ln / (1 - Lm))) = ln(Ln / (1 - Lm)) = 2.588673
        // (Python: math.log(0.025**(1/50) / (1 - 0.025**(1/51)))).
        let m: Vec<bool> = (0..200).map(|i| i % 2 == 0 || i == 199).collect();
        assert_eq!(m.iter().filter(|&&x| x).count(), 101);
        let s: Vec<f64> = m.iter().map(|&x| f64::from(u8::from(x))).collect();
        let e = epsilon_lower_bound(&s, &m, 0.0, 0.95, 9).unwrap();
        assert_eq!(
            (e.evaluation_members, e.evaluation_non_members),
            (51, 50),
            "{e:?}"
        );
        assert_eq!((e.selection_members, e.selection_non_members), (50, 49));
        assert_eq!((e.threshold, e.tpr, e.fpr), (1.0, 1.0, 0.0));
        let (lm, ln) = (0.025f64.powf(1.0 / 51.0), 0.025f64.powf(1.0 / 50.0));
        let hand = (lm / (1.0 - ln)).ln().max((ln / (1.0 - lm)).ln());
        close(e.ci, hand, 1e-9);
        close(e.ci, 2.588_673, 1e-6);
        // The same from the statrs Beta quantiles behind clopper_pearson.
        let (tpr_lo, _) = clopper_pearson(51, 51, 0.95).unwrap();
        let (_, fpr_hi) = clopper_pearson(0, 50, 0.95).unwrap();
        close(e.ci, ((1.0 - fpr_hi) / (1.0 - tpr_lo)).ln(), 1e-9);
        // All 200 rows on the same data: ln(L / (1 - L))-like, larger (3.28 at 100/100).
        assert!(e.optimistic_same_data > e.ci + 0.5, "{e:?}");
        assert_eq!(e.method, HELD_OUT_METHOD);
        assert_eq!(e.split_seed, 9);
    }

    #[test]
    fn the_split_is_stratified_and_seeded() {
        // 7 members, 10 non-members, interleaved.
        let m: Vec<bool> = (0..17).map(|i| i % 2 == 1 && i < 14).collect();
        assert_eq!(m.iter().filter(|&&x| x).count(), 7);
        let a = held_out_split(&m, 42).unwrap();
        let count = |idx: &[usize], want: bool| idx.iter().filter(|&&i| m[i] == want).count();
        // floor(7 / 2) = 3 members and floor(10 / 2) = 5 non-members select; the other
        // 4 and 5 evaluate.
        assert_eq!(
            (count(&a.selection, true), count(&a.selection, false)),
            (3, 5)
        );
        assert_eq!(
            (count(&a.evaluation, true), count(&a.evaluation, false)),
            (4, 5)
        );
        // The halves are disjoint, ascending, and cover every example.
        let mut all: Vec<usize> = a.selection.iter().chain(&a.evaluation).copied().collect();
        assert!(a.selection.is_sorted() && a.evaluation.is_sorted());
        all.sort_unstable();
        assert_eq!(all, (0..17).collect::<Vec<_>>());
        // Same seed, same split; the seeds differ in at least one of 10 others.
        assert_eq!(a, held_out_split(&m, 42).unwrap());
        assert!((0..10).any(|seed| held_out_split(&m, seed).unwrap() != a));
        // The bound reports the seed and the halves it used.
        let s: Vec<f64> = (0..17).map(f64::from).collect();
        let e = epsilon_lower_bound(&s, &m, 0.0, 0.95, 42).unwrap();
        assert_eq!(e.split_seed, 42);
        assert_eq!((e.selection_members, e.selection_non_members), (3, 5));
        assert_eq!(e, epsilon_lower_bound(&s, &m, 0.0, 0.95, 42).unwrap());
    }

    #[test]
    fn too_few_rows_for_a_split_is_a_named_error() {
        let msg = |m: usize, n: usize| {
            format!(
                "membership = {m} members, {n} non-members: a held-out threshold needs at least 2 members and 2 non-members (one of each in the half that picks the threshold and in the half that is scored)"
            )
        };
        let err = |e: PrivacyError| e.to_string();
        // One member: scorable (an ROC exists) but not splittable.
        let (s, m) = ([3.0, 2.0, 1.0], [true, false, false]);
        assert_eq!(err(held_out_split(&m, 0).unwrap_err()), msg(1, 2));
        assert_eq!(
            err(epsilon_lower_bound(&s, &m, 0.0, 0.95, 0).unwrap_err()),
            msg(1, 2)
        );
        assert_eq!(
            err(summarize_attack(&s, &m, &[0.01], 0.0, 0.95, 0).unwrap_err()),
            msg(1, 2)
        );
        // One non-member; and nothing at all.
        assert_eq!(
            err(held_out_split(&[true, true, false], 0).unwrap_err()),
            msg(2, 1)
        );
        assert_eq!(err(held_out_split(&[], 0).unwrap_err()), msg(0, 0));
        // Two of each is enough: one of each per half.
        let h = held_out_split(&[true, false, true, false], 0).unwrap();
        assert_eq!((h.selection.len(), h.evaluation.len()), (2, 2));
    }

    #[test]
    fn bad_inputs_are_refused_with_named_parameters() {
        let err = |e: PrivacyError| e.to_string();
        assert_eq!(
            err(roc(&[1.0], &[true]).unwrap_err()),
            "membership = 1 members, 0 non-members: an attack needs both members and non-members to score"
        );
        assert_eq!(
            err(roc(&[1.0, f64::NAN], &[true, false]).unwrap_err()),
            "scores = NaN (example 1): every attack score must be finite"
        );
        assert_eq!(
            err(roc(&[1.0], &[true, false]).unwrap_err()),
            "scores = 1: must be one per membership label (2)"
        );
        let e = summarize_attack(&[1.0, 0.0], &[true, false], &[0.0], 0.0, 0.95, 0).unwrap_err();
        assert!(e.to_string().contains("fpr"), "{e}");
        let r = roc(&[1.0, 0.0], &[true, false]).unwrap();
        assert_eq!(
            err(best_threshold_bound(&r, 1.0, 0.95).unwrap_err()),
            "delta = 1: must be in [0, 1)"
        );
        let (s4, m4) = ([3.0, 2.0, 1.0, 0.0], [true, true, false, false]);
        assert_eq!(
            err(epsilon_lower_bound(&s4, &m4, 1.0, 0.95, 0).unwrap_err()),
            "delta = 1: must be in [0, 1)"
        );
        assert_eq!(
            err(epsilon_lower_bound(&s4, &m4, 0.0, 1.5, 0).unwrap_err()),
            "confidence = 1.5: must be in (0, 1)"
        );
        assert_eq!(
            err(bound_at_threshold(&s4, &m4, f64::NAN, 0.0, 0.95).unwrap_err()),
            "threshold = NaN: must be a number (+inf flags nobody)"
        );
        assert_eq!(
            err(bound_at_threshold(&s4[..3], &m4, 1.0, 0.0, 0.95).unwrap_err()),
            "scores = 3: must be one per membership label (4)"
        );
        assert_eq!(
            err(balanced_inclusion(10, 3, 0).unwrap_err()),
            "shadows = 3: LiRA needs an even number of at least 4 shadow models (each example in half)"
        );
        assert_eq!(
            err(example_scores(OutputKind::Sigmoid, 1, &[0.0], &[2]).unwrap_err()),
            "label = 2 (row 0): a sigmoid model takes labels 0 or 1"
        );
        assert_eq!(
            err(example_scores(OutputKind::Softmax, 2, &[0.0, 1.0], &[2]).unwrap_err()),
            "label = 2 (row 0): a softmax model with 2 outputs takes 0..2"
        );
        assert_eq!(
            err(example_scores(OutputKind::Sigmoid, 1, &[0.0, 1.0], &[0]).unwrap_err()),
            "logits = 2: expected 1 rows x 1 outputs"
        );
    }

    #[test]
    fn example_scores_by_hand() {
        // Sigmoid z = 2, label 1: loss ln(1 + e^-2) = 0.126928, confidence 2; label 0:
        // loss ln(1 + e^2) = 2.126928, confidence -2.
        let s = example_scores(OutputKind::Sigmoid, 1, &[2.0, 2.0], &[1, 0]).unwrap();
        close(s[0].loss, 0.126_928_011, 1e-8);
        close(s[0].confidence, 2.0, 1e-12);
        close(s[1].loss, 2.126_928_011, 1e-8);
        close(s[1].confidence, -2.0, 1e-12);
        // Softmax [1, 2, 3], label 2: p = e^3 / (e + e^2 + e^3) = 0.665241; loss
        // -ln p = 0.407606; confidence ln(p / (1 - p)) = 3 - ln(e + e^2) = 0.686738.
        let s = example_scores(OutputKind::Softmax, 3, &[1.0, 2.0, 3.0], &[2]).unwrap();
        close(s[0].loss, 0.407_605_964, 1e-7);
        let p = 0.665_240_955_8_f64;
        close(s[0].confidence, (p / (1.0 - p)).ln(), 1e-6);
        // Multi-label logits [2, -1], labels bits 0b01: per label (2, 1) confidences,
        // mean 1.5; losses ln(1+e^-2) and ln(1+e^-1) = 0.126928 and 0.313262, mean
        // 0.220095.
        let s = example_scores(OutputKind::MultiLabel, 2, &[2.0, -1.0], &[0b01]).unwrap();
        close(s[0].confidence, 1.5, 1e-12);
        close(s[0].loss, (0.126_928_011 + 0.313_261_687) / 2.0, 1e-8);
    }

    #[test]
    fn balanced_inclusion_puts_every_example_in_half_the_shadows() {
        let inc = balanced_inclusion(200, 8, 3).unwrap();
        for j in 0..200 {
            assert_eq!(inc.iter().filter(|r| r[j]).count(), 4);
        }
        // Not the same half for every example.
        assert!((0..200).any(|j| inc[0][j] != inc[0][0]));
        assert_eq!(inc, balanced_inclusion(200, 8, 3).unwrap());
    }

    #[test]
    fn lira_by_hand_and_it_separates_a_leaky_model() {
        // One example, 4 shadows: in {2, 4}, out {0, 2}; global spread pooled around
        // each group's mean: in deviations (-1, 1), out (-1, 1): s = sqrt(2 / 1) =
        // sqrt 2 for both. Medians 3 and 1. Target x = 3: online = -(0)^2/4 + (2)^2/4 =
        // 1; offline = (3 - 1) / sqrt 2.
        let shadow = vec![vec![2.0], vec![4.0], vec![0.0], vec![2.0]];
        let inc = vec![vec![true], vec![true], vec![false], vec![false]];
        let l = lira_scores(&[3.0], &shadow, &inc, LiraVariance::Global).unwrap();
        close(l.online[0], 1.0, 1e-12);
        close(l.offline[0], 2.0 / 2f64.sqrt(), 1e-12);
        let pe = lira_scores(&[3.0], &shadow, &inc, LiraVariance::PerExample).unwrap();
        close(pe.online[0], 1.0, 1e-12);

        // A simulated leak: each example has its own difficulty b_j; a model that
        // trains on it adds 1 to its confidence. The target trains on the first half.
        // LiRA, which knows each b_j from the shadows, should beat the global threshold
        // on confidence alone (the loss attack), which the b_j's spread drowns.
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let n = 600;
        let k = 16;
        let noise = Normal::new(0.0, 0.3).unwrap();
        let b: Vec<f64> = (0..n).map(|_| rng.random_range(-4.0..4.0)).collect();
        let inc = balanced_inclusion(n, k, 5).unwrap();
        let shadow: Vec<Vec<f64>> = inc
            .iter()
            .map(|row| {
                (0..n)
                    .map(|j| b[j] + f64::from(u8::from(row[j])) + noise.sample(&mut rng))
                    .collect()
            })
            .collect();
        let member: Vec<bool> = (0..n).map(|j| j < n / 2).collect();
        let target: Vec<f64> = (0..n)
            .map(|j| b[j] + f64::from(u8::from(member[j])) + noise.sample(&mut rng))
            .collect();
        let l = lira_scores(&target, &shadow, &inc, LiraVariance::Global).unwrap();
        let loss_auc = roc(&target, &member).unwrap().auc();
        let on = roc(&l.online, &member).unwrap().auc();
        let off = roc(&l.offline, &member).unwrap().auc();
        assert!(on > 0.9 && off > 0.9, "online {on}, offline {off}");
        assert!(loss_auc < 0.7, "{loss_auc}");
    }

    #[test]
    fn lira_refuses_too_few_shadows() {
        let shadow = vec![vec![1.0], vec![2.0]];
        let inc = vec![vec![true], vec![false]];
        let e = lira_scores(&[1.0], &shadow, &inc, LiraVariance::Global).unwrap_err();
        assert_eq!(
            e.to_string(),
            "shadows = 2: one in and one out model per example leave no spread to estimate: train at least 4 shadows"
        );
        let inc = vec![vec![true], vec![true]];
        let e = lira_scores(&[1.0], &shadow, &inc, LiraVariance::Global).unwrap_err();
        assert_eq!(
            e.to_string(),
            "inclusion = example 0: 2 in, 0 out: LiRA needs at least 1 in and 1 out shadow models per example"
        );
    }
}
