//! The evidence on a finished run's predictions (`evidence.json`): per site and over all
//! test rows, calibration before and after federated recalibration, conformal
//! prediction sets (each site's own split conformal and FedCP-QQ across sites),
//! deferral to a clinician, selective prediction, predictive uncertainty and fairness
//! across sites.
//!
//! Everything fitted here is fitted the federated way: a site answers with sums (the
//! temperature and Platt statistics), bin counts or one order statistic (FedCP-QQ), never
//! a row. The calibration split is `evidence.calibration-fraction` of each site's
//! training rows, set aside before training; the test split only ever scores.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use ward_core::config::EvidenceSpec;
use ward_data::Split;
use ward_models::{GradientEngine, Loss, make_engine};
use ward_trust::calibration::{self, CalibrationReport};
use ward_trust::conformal::{Inclusion, Mondrian, QuantileRule, Score, prediction_set};
use ward_trust::interval::{self, Interval};
use ward_trust::recalibration::{
    BinCounts, HistogramBinning, Platt, TemperatureFit, fit_temperature, platt_sums, platt_targets,
    temperature_stats,
};
use ward_trust::selective::{self, OperatingPoint, RiskCoverage, SetDeferral};
use ward_trust::{Logits, Probs, TrustError, fedcp_qq, uncertainty};

use crate::{EngineOptions, Error, FinishedRun, Result};

/// Points kept of a risk–coverage curve in `evidence.json` (evenly by coverage).
const CURVE_POINTS: usize = 200;

/// `evidence.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    /// The `[evidence]` settings used.
    pub settings: EvidenceSpec,
    /// The model, e.g. `logistic 13 -> 1`.
    pub model: String,
    /// Classes.
    pub classes: usize,
    /// One entry per site with test rows, in site order.
    pub sites: Vec<SiteEvidence>,
    /// Calibration over every site's test rows together (each scored by its own model).
    pub overall: CalibrationReport,
    /// Federated recalibration, fitted on the calibration splits.
    pub recalibration: Option<Recalibration>,
    /// Conformal prediction.
    pub conformal: Option<ConformalEvidence>,
    /// Accuracy across sites.
    pub fairness: SiteSpread,
    /// Rates and gaps by `evidence.group-column` (binary tasks).
    pub groups: Option<GroupEvidence>,
    /// Sections that could not be computed, with the reason.
    pub unavailable: BTreeMap<String, String>,
}

/// One site's evidence on its test split.
#[derive(Debug, Clone, Serialize)]
pub struct SiteEvidence {
    /// The site.
    pub site: String,
    /// The model file that scored it (`model.safetensors`, or the site's own under FedBN).
    pub model_file: String,
    /// Test rows.
    pub n_test: usize,
    /// Calibration rows (0 without a calibration split).
    pub n_calibration: usize,
    /// Accuracy with its 95% Wilson interval.
    pub accuracy: Interval,
    /// Balanced accuracy (mean recall over the classes present).
    pub balanced_accuracy: f64,
    /// The best constant predictor's accuracy on this test split (the floor).
    pub floor: f64,
    /// Calibration of the model as trained.
    pub calibration: CalibrationReport,
    /// After recalibration: `(method, ece, brier, nll)` for each method fitted.
    pub recalibrated: Vec<Recalibrated>,
    /// Predictive entropy.
    pub uncertainty: EntropySummary,
    /// Selective prediction by the top-class probability.
    pub risk_coverage: RiskCoverage,
    /// The smallest fraction deferred that reaches `evidence.target-error`.
    pub operating_point: OperatingPoint,
    /// MC dropout, for models trained with dropout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mc_dropout: Option<McDropout>,
}

/// One recalibration method's effect on a site's test split.
#[derive(Debug, Clone, Serialize)]
pub struct Recalibrated {
    /// `temperature`, `platt` or `histogram`.
    pub method: String,
    /// ECE after.
    pub ece: f64,
    /// Brier score after.
    pub brier: f64,
    /// NLL after (nats).
    pub nll: f64,
}

/// Forward passes with sampled dropout masks per test row behind `evidence.json`'s MC
/// dropout (models trained with `model.dropout > 0`).
pub const MC_DROPOUT_SAMPLES: usize = 30;

/// MC dropout (Gal & Ghahramani 2016) on a site's test split: the softmax averaged over
/// [`MC_DROPOUT_SAMPLES`] forward passes, each with its own dropout mask (the training
/// rate) and every other layer in evaluation mode.
#[derive(Debug, Clone, Serialize)]
pub struct McDropout {
    /// Sampled masks per row.
    pub samples: usize,
    /// Accuracy of the averaged prediction.
    pub accuracy: f64,
    /// NLL of the averaged prediction (nats).
    pub nll: f64,
    /// ECE of the averaged prediction.
    pub ece: f64,
    /// Entropy of the averaged prediction (total uncertainty), by correctness of the
    /// averaged prediction.
    pub entropy: EntropySummary,
    /// Mutual information between the prediction and the mask (the epistemic part,
    /// `H(mean) - mean H(sample)`), by correctness of the averaged prediction.
    pub mutual_information: EntropySummary,
}

/// Mean predictive entropy (nats), overall and on right and wrong predictions.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct EntropySummary {
    /// Over every test row.
    pub mean: f64,
    /// Over correctly classified rows (`None` if none).
    pub correct: Option<f64>,
    /// Over misclassified rows (`None` if none).
    pub wrong: Option<f64>,
}

/// The federated recalibration maps.
#[derive(Debug, Clone, Serialize)]
pub struct Recalibration {
    /// Calibration rows over all sites.
    pub rows: usize,
    /// Temperature scaling (federated Newton on the inverse temperature).
    pub temperature: Option<TemperatureFit>,
    /// Why temperature scaling failed, if it did.
    pub temperature_error: Option<String>,
    /// Platt scaling of the positive-class logit (binary tasks).
    pub platt: Option<Platt>,
    /// Histogram binning of the positive-class probability (binary tasks).
    pub histogram: Option<HistogramBinning>,
}

/// Conformal prediction on every site.
#[derive(Debug, Clone, Serialize)]
pub struct ConformalEvidence {
    /// The score.
    pub score: String,
    /// Miscoverage level.
    pub alpha: f64,
    /// What is guaranteed, in words.
    pub guarantee: String,
    /// FedCP-QQ's plan (order statistics and exact coverage under exchangeable sites).
    pub fedcp_qq: Option<fedcp_qq::QqPlan>,
    /// FedCP-QQ's threshold.
    pub federated_qhat: Option<f64>,
    /// Per site.
    pub sites: Vec<SiteConformal>,
    /// Coverage of the federated sets over every site's test rows together.
    pub marginal: Option<Interval>,
    /// Sites whose federated-set coverage is below `1 - alpha` with 95% confidence
    /// (the Wilson interval's upper end below target).
    pub below_target: Vec<String>,
}

/// Prediction sets on one site's test split.
#[derive(Debug, Clone, Serialize)]
pub struct SiteConformal {
    /// The site.
    pub site: String,
    /// Its calibration rows.
    pub n_calibration: usize,
    /// Its own split-conformal threshold (`None` with too few calibration rows).
    pub local_qhat: Option<f64>,
    /// Sets from its own threshold.
    pub local: Option<SetStats>,
    /// Sets from the FedCP-QQ threshold.
    pub federated: Option<SetStats>,
    /// Class-conditional (Mondrian) coverage per class from its own calibration rows
    /// (`None` for a class absent from the test split).
    pub class_coverage: Vec<Option<f64>>,
    /// Deferral when the federated set is not a single class.
    pub set_deferral: Option<SetDeferral>,
}

/// Coverage and size of prediction sets on a test split.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SetStats {
    /// Fraction of test rows whose set holds the true class, with a 95% Wilson interval.
    pub coverage: Interval,
    /// Mean set size.
    pub mean_size: f64,
    /// Fraction of singleton sets.
    pub singletons: f64,
    /// Fraction of empty sets.
    pub empty: f64,
}

/// Accuracy across sites (each on its own test split).
#[derive(Debug, Clone, Serialize)]
pub struct SiteSpread {
    /// Unweighted mean over sites.
    pub mean: f64,
    /// The worst site and its accuracy.
    pub worst: (String, f64),
    /// The best site and its accuracy.
    pub best: (String, f64),
    /// `best - worst`.
    pub spread: f64,
}

/// Fairness by group within sites: Fairlearn's rates and gaps of the predicted class.
#[derive(Debug, Clone, Serialize)]
pub struct GroupEvidence {
    /// The column.
    pub column: String,
    /// Over every site's test rows together.
    pub overall: ward_trust::fairness::GroupReport,
    /// Per site (sites whose report could be made).
    pub sites: Vec<(String, ward_trust::fairness::GroupReport)>,
}

/// A site's predictions on one split.
struct Scored {
    logits: Logits,
    probs: Probs,
    labels: Vec<usize>,
}

/// Scores `split` with `params`: logits as classes (a binary model's one logit `z` as
/// `[0, z]`, so `softmax` is the sigmoid) and probabilities.
fn score(
    engine: &mut dyn GradientEngine,
    params: &[f32],
    loss: Loss,
    split: &Split,
) -> Result<Scored> {
    let rows = split.len();
    let raw = engine.logits(params, &split.x.data, rows)?;
    let values: Vec<f64> = match loss {
        Loss::Bce => raw.iter().flat_map(|&z| [0.0, f64::from(z)]).collect(),
        Loss::CrossEntropy => raw.iter().map(|&z| f64::from(z)).collect(),
        Loss::MultiLabel => {
            return Err(Error::User(
                "evidence is computed for single-label tasks; this model is multi-label".into(),
            ));
        }
    };
    let k = values.len().checked_div(rows).unwrap_or(2);
    let logits = Logits::new(values, k).map_err(trust)?;
    let probs = Probs::softmax(&logits, 1.0).map_err(trust)?;
    Ok(Scored {
        logits,
        probs,
        labels: split.y.iter().map(|&y| y as usize).collect(),
    })
}

fn trust(e: TrustError) -> Error {
    Error::User(format!("evidence: {e}"))
}

/// The top class of each row and whether it is right.
fn correct(probs: &Probs, labels: &[usize]) -> Vec<bool> {
    probs
        .rows()
        .zip(labels)
        .map(|(r, &y)| argmax(r) == y)
        .collect()
}

fn argmax(row: &[f64]) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv { (i, v) } else { (bi, bv) }
        })
        .0
}

/// Mean recall over the classes present, and the best constant predictor's accuracy.
fn balanced_and_floor(probs: &Probs, labels: &[usize]) -> (f64, f64) {
    let k = probs.k();
    let (mut n, mut hit) = (vec![0usize; k], vec![0usize; k]);
    for (r, &y) in probs.rows().zip(labels) {
        n[y] += 1;
        hit[y] += usize::from(argmax(r) == y);
    }
    let present: Vec<usize> = (0..k).filter(|&c| n[c] > 0).collect();
    let balanced = present
        .iter()
        .map(|&c| hit[c] as f64 / n[c] as f64)
        .sum::<f64>()
        / present.len().max(1) as f64;
    let floor = n.iter().copied().max().unwrap_or(0) as f64 / labels.len().max(1) as f64;
    (balanced, floor)
}

fn entropy_summary(probs: &Probs, right: &[bool]) -> EntropySummary {
    summary_by(&uncertainty::entropies(probs), right)
}

/// Means of per-row values `h`, overall and on right and wrong rows.
fn summary_by(h: &[f64], right: &[bool]) -> EntropySummary {
    let pick = |want: bool| {
        let v: Vec<f64> = h
            .iter()
            .zip(right)
            .filter(|(_, r)| **r == want)
            .map(|(h, _)| *h)
            .collect();
        ward_core::stats::mean(&v)
    };
    EntropySummary {
        mean: ward_core::stats::mean(h).unwrap_or(0.0),
        correct: pick(true),
        wrong: pick(false),
    }
}

/// At most `CURVE_POINTS` points of the curve, evenly by coverage, the last kept.
fn thin(mut rc: RiskCoverage) -> RiskCoverage {
    let len = rc.curve.len();
    if len > CURVE_POINTS {
        let step = len as f64 / CURVE_POINTS as f64;
        let mut keep: Vec<usize> = (0..CURVE_POINTS)
            .map(|i| ((i as f64 + 1.0) * step).ceil() as usize - 1)
            .collect();
        keep.dedup();
        rc.curve = keep.into_iter().map(|i| rc.curve[i.min(len - 1)]).collect();
    }
    rc
}

fn conformal_score(spec: &EvidenceSpec) -> Result<Score> {
    Score::parse(spec.score.as_str(), spec.raps_k_reg, spec.raps_lambda).map_err(trust)
}

/// Coverage and size of `sets` against `labels`.
fn set_stats(sets: &[Vec<usize>], labels: &[usize]) -> Option<SetStats> {
    let n = labels.len();
    let covered = sets
        .iter()
        .zip(labels)
        .filter(|(s, y)| s.contains(y))
        .count();
    Some(SetStats {
        coverage: interval::wilson(covered, n, 0.95)?,
        mean_size: sets.iter().map(Vec::len).sum::<usize>() as f64 / n as f64,
        singletons: sets.iter().filter(|s| s.len() == 1).count() as f64 / n as f64,
        empty: sets.iter().filter(|s| s.is_empty()).count() as f64 / n as f64,
    })
}

/// One site's data and model outputs.
struct SiteRun {
    name: String,
    model_file: String,
    test: Scored,
    cal: Option<Scored>,
    mc_dropout: Option<McDropout>,
    /// Each test row's group (`evidence.group-column`).
    groups: Option<Vec<String>>,
}

/// Computes the evidence of the run in `dir` (its config, data and model files).
///
/// # Errors
/// A directory that is not a finished run; a multi-label model; no site with test rows.
pub fn compute(dir: &Path, opts: EngineOptions) -> Result<Evidence> {
    let run = FinishedRun::open(dir, "ward report", opts)?;
    compute_for(&run, opts)
}

/// [`compute`] on an opened run.
///
/// # Errors
/// As [`compute`].
pub fn compute_for(run: &FinishedRun, opts: EngineOptions) -> Result<Evidence> {
    let spec = run.spec().evidence.clone();
    let arch = run.arch().clone();
    let loss = arch.loss();
    let mut engine = make_engine(&arch, opts.device, opts.engine)?;
    let sim = run.prepared.simulation();
    let groups = match &spec.group_column {
        Some(c) => Some(crate::reproduce::fairness::test_groups(
            run.experiment.data(),
            c,
        )?),
        None => None,
    };
    let mut sites = Vec::new();
    for (i, s) in sim.data.sites.iter().enumerate() {
        if s.test.is_empty() {
            continue;
        }
        let (params, model_file) = run.site_model(&s.name)?;
        let test = score(engine.as_mut(), params.values(), loss, &s.test)?;
        let cal = match sim.calibration.get(i) {
            Some(c) if !c.is_empty() => Some(score(engine.as_mut(), params.values(), loss, c)?),
            _ => None,
        };
        let mc_dropout = if arch.dropout() > 0.0 {
            Some(mc_dropout(
                engine.as_mut(),
                params.values(),
                loss,
                &s.test,
                i as u64,
                spec.bins,
            )?)
        } else {
            None
        };
        sites.push(SiteRun {
            name: s.name.clone(),
            model_file,
            test,
            cal,
            mc_dropout,
            groups: groups.as_ref().and_then(|g| g.get(i).cloned()),
        });
    }
    if sites.is_empty() {
        return Err(Error::User(format!(
            "{}: no site has test rows to score",
            run.dir.display()
        )));
    }
    assemble(&spec, arch.describe(), &sites)
}

fn assemble(spec: &EvidenceSpec, model: String, sites: &[SiteRun]) -> Result<Evidence> {
    let classes = sites[0].test.probs.k();
    let mut unavailable = BTreeMap::new();
    let have_cal = sites.iter().any(|s| s.cal.is_some());
    let recalibration = if have_cal {
        Some(recalibrate(sites, spec.bins)?)
    } else {
        let why = "the run has no calibration split: rerun with \
                   --set evidence.calibration-fraction=0.2"
            .to_string();
        unavailable.insert("recalibration".into(), why.clone());
        unavailable.insert("conformal".into(), why);
        None
    };
    let mut per_site = Vec::new();
    for s in sites {
        per_site.push(site_evidence(spec, s, recalibration.as_ref())?);
    }
    let conformal = if have_cal {
        Some(conformal(spec, sites)?)
    } else {
        None
    };
    let overall = {
        let k = classes;
        let mut values = Vec::new();
        let mut labels = Vec::new();
        for s in sites {
            values.extend(s.test.probs.rows().flatten().copied());
            labels.extend(&s.test.labels);
        }
        calibration::report(&Probs::new(values, k).map_err(trust)?, &labels, spec.bins)
            .map_err(trust)?
    };
    let fairness = spread(&per_site);
    let groups = match &spec.group_column {
        None => {
            unavailable.insert(
                "groups".into(),
                "no evidence.group-column: fairness by group needs a column that names it".into(),
            );
            None
        }
        Some(_) if classes != 2 => {
            unavailable.insert(
                "groups".into(),
                "group rates (TPR, FPR) are defined here for binary tasks only".into(),
            );
            None
        }
        Some(c) => group_evidence(c, sites)?,
    };
    Ok(Evidence {
        settings: spec.clone(),
        model,
        classes,
        sites: per_site,
        overall,
        recalibration,
        conformal,
        fairness,
        groups,
        unavailable,
    })
}

/// Group rates of the predicted class per site and over all sites.
fn group_evidence(column: &str, sites: &[SiteRun]) -> Result<Option<GroupEvidence>> {
    let (mut yt, mut yp, mut gs) = (Vec::new(), Vec::new(), Vec::new());
    let mut per_site = Vec::new();
    for s in sites {
        let Some(g) = &s.groups else { continue };
        let t: Vec<u32> = s.test.labels.iter().map(|&y| y as u32).collect();
        let p: Vec<u32> = s.test.probs.rows().map(|r| argmax(r) as u32).collect();
        per_site.push((
            s.name.clone(),
            ward_trust::fairness::group_report(&t, &p, g).map_err(trust)?,
        ));
        yt.extend(t);
        yp.extend(p);
        gs.extend(g.iter().cloned());
    }
    if yt.is_empty() {
        return Ok(None);
    }
    Ok(Some(GroupEvidence {
        column: column.into(),
        overall: ward_trust::fairness::group_report(&yt, &yp, &gs).map_err(trust)?,
        sites: per_site,
    }))
}

fn spread(sites: &[SiteEvidence]) -> SiteSpread {
    let acc: Vec<(String, f64)> = sites
        .iter()
        .map(|s| (s.site.clone(), s.accuracy.estimate))
        .collect();
    let worst = acc
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .cloned()
        .unwrap_or_default();
    let best = acc
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .cloned()
        .unwrap_or_default();
    SiteSpread {
        mean: acc.iter().map(|a| a.1).sum::<f64>() / acc.len().max(1) as f64,
        spread: best.1 - worst.1,
        worst,
        best,
    }
}

/// The positive-class logit of binary scores (`z_1 - z_0`), for Platt scaling.
fn positive_logit(l: &Logits) -> Vec<f64> {
    l.rows().map(|r| r[1] - r[0]).collect()
}

fn recalibrate(sites: &[SiteRun], bins: usize) -> Result<Recalibration> {
    let cal: Vec<&Scored> = sites.iter().filter_map(|s| s.cal.as_ref()).collect();
    let rows = cal.iter().map(|c| c.labels.len()).sum();
    // Each query is one round: every site answers with its sums at `b`.
    let fit = fit_temperature(|b| {
        cal.iter()
            .map(|c| temperature_stats(&c.logits, &c.labels, b))
            .sum()
    });
    let (temperature, temperature_error) = match fit {
        Ok(t) => (Some(t), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let binary = cal.first().is_some_and(|c| c.probs.k() == 2);
    let (mut platt, mut histogram) = (None, None);
    if binary {
        let scores: Vec<Vec<f64>> = cal.iter().map(|c| positive_logit(&c.logits)).collect();
        let pos: usize = cal
            .iter()
            .map(|c| c.labels.iter().filter(|&&y| y == 1).count())
            .sum();
        let t = platt_targets(pos, rows - pos);
        platt = Platt::fit_federated((pos, rows - pos), |ab| {
            cal.iter()
                .zip(&scores)
                .map(|(c, f)| platt_sums(f, &c.labels, t, ab))
                .sum()
        })
        .ok();
        let mut counts: Option<BinCounts> = None;
        for c in &cal {
            let p: Vec<f64> = c.probs.rows().map(|r| r[1]).collect();
            let site = BinCounts::from_site(&p, &c.labels, bins).map_err(trust)?;
            counts = Some(match counts {
                Some(acc) => acc.merge(&site).map_err(trust)?,
                None => site,
            });
        }
        histogram = counts.as_ref().map(HistogramBinning::fit);
    }
    Ok(Recalibration {
        rows,
        temperature,
        temperature_error,
        platt,
        histogram,
    })
}

/// The test split's metrics after each fitted recalibration map.
fn recalibrated(s: &Scored, r: &Recalibration, bins: usize) -> Result<Vec<Recalibrated>> {
    let mut out = Vec::new();
    let mut push = |method: &str, probs: Probs| -> Result<()> {
        let rep = calibration::report(&probs, &s.labels, bins).map_err(trust)?;
        out.push(Recalibrated {
            method: method.into(),
            ece: rep.ece,
            brier: rep.brier,
            nll: rep.nll,
        });
        Ok(())
    };
    if let Some(t) = &r.temperature {
        push(
            "temperature",
            Probs::softmax(&s.logits, t.temperature).map_err(trust)?,
        )?;
    }
    if let Some(p) = &r.platt {
        let pos: Vec<f64> = positive_logit(&s.logits)
            .into_iter()
            .map(|f| p.predict(f))
            .collect();
        push("platt", Probs::binary(&pos).map_err(trust)?)?;
    }
    if let Some(h) = &r.histogram {
        let pos: Vec<f64> = s.probs.rows().map(|row| h.predict(row[1])).collect();
        push("histogram", Probs::binary(&pos).map_err(trust)?)?;
    }
    Ok(out)
}

fn site_evidence(
    spec: &EvidenceSpec,
    s: &SiteRun,
    recal: Option<&Recalibration>,
) -> Result<SiteEvidence> {
    let t = &s.test;
    let right = correct(&t.probs, &t.labels);
    let n = t.labels.len();
    let accuracy = interval::wilson(right.iter().filter(|&&r| r).count(), n, 0.95)
        .ok_or_else(|| Error::User(format!("site {}: no test rows", s.name)))?;
    let (balanced_accuracy, floor) = balanced_and_floor(&t.probs, &t.labels);
    let confidence: Vec<f64> = t
        .probs
        .rows()
        .map(|r| r.iter().copied().fold(0.0, f64::max))
        .collect();
    let rc = selective::risk_coverage(&confidence, &right).map_err(trust)?;
    let operating_point = selective::operating_point(&rc, spec.target_error);
    Ok(SiteEvidence {
        site: s.name.clone(),
        model_file: s.model_file.clone(),
        n_test: n,
        n_calibration: s.cal.as_ref().map_or(0, |c| c.labels.len()),
        accuracy,
        balanced_accuracy,
        floor,
        calibration: calibration::report(&t.probs, &t.labels, spec.bins).map_err(trust)?,
        recalibrated: match recal {
            Some(r) => recalibrated(t, r, spec.bins)?,
            None => Vec::new(),
        },
        uncertainty: entropy_summary(&t.probs, &right),
        risk_coverage: thin(rc),
        operating_point,
        mc_dropout: s.mc_dropout.clone(),
    })
}

/// MC dropout on `split`: [`MC_DROPOUT_SAMPLES`] passes, mask seeds `site << 32 | t`.
fn mc_dropout(
    engine: &mut dyn GradientEngine,
    params: &[f32],
    loss: Loss,
    split: &Split,
    site: u64,
    bins: usize,
) -> Result<McDropout> {
    let rows = split.len();
    let labels: Vec<usize> = split.y.iter().map(|&y| y as usize).collect();
    let samples = (0..MC_DROPOUT_SAMPLES as u64)
        .map(|t| {
            let raw = engine.dropout_logits(params, &split.x.data, rows, (site << 32) | t)?;
            let values: Vec<f64> = match loss {
                Loss::Bce => raw.iter().flat_map(|&z| [0.0, f64::from(z)]).collect(),
                _ => raw.iter().map(|&z| f64::from(z)).collect(),
            };
            let k = values.len().checked_div(rows).unwrap_or(2);
            Probs::softmax(&Logits::new(values, k).map_err(trust)?, 1.0).map_err(trust)
        })
        .collect::<Result<Vec<_>>>()?;
    let d = uncertainty::decompose(&samples).map_err(trust)?;
    let right = correct(&d.mean, &labels);
    let r = calibration::report(&d.mean, &labels, bins).map_err(trust)?;
    Ok(McDropout {
        samples: MC_DROPOUT_SAMPLES,
        accuracy: r.accuracy,
        nll: r.nll,
        ece: r.ece,
        entropy: summary_by(&d.total, &right),
        mutual_information: summary_by(&d.mutual_information, &right),
    })
}

fn sets_for(probs: &Probs, score: Score, qhat: f64) -> Vec<Vec<usize>> {
    probs
        .rows()
        .map(|r| prediction_set(r, score, qhat, Inclusion::IncludeLast))
        .collect()
}

fn guarantee(spec: &EvidenceSpec, plan: Option<&fedcp_qq::QqPlan>) -> String {
    let target = 1.0 - spec.alpha;
    let mut g = format!(
        "Each site's own sets: if its calibration and test rows are exchangeable, a test \
         case's set holds its true class with probability at least {target:.2} (split \
         conformal, Vovk et al. 2005; averaged over calibration draws, not for every draw)."
    );
    if let Some(p) = plan {
        g.push_str(&format!(
            " Federated sets (FedCP-QQ, Humbert et al. 2023): each site sends one order \
             statistic of its scores (rank l_j of n_j), the server takes the {}-th smallest; \
             if every site's rows come from one distribution, coverage is exactly {:.4} \
             >= {target:.2}. When sites differ it is not guaranteed: read each site's \
             coverage.",
            p.k, p.coverage
        ));
    }
    g
}

fn conformal(spec: &EvidenceSpec, sites: &[SiteRun]) -> Result<ConformalEvidence> {
    let score = conformal_score(spec)?;
    let alpha = spec.alpha;
    let with_cal: Vec<(&SiteRun, &Scored)> = sites
        .iter()
        .filter_map(|s| s.cal.as_ref().map(|c| (s, c)))
        .collect();
    let cal_scores: Vec<Vec<f64>> = with_cal
        .iter()
        .map(|(_, c)| ward_trust::conformal::calibration_scores(&c.probs, &c.labels, score, None))
        .collect::<std::result::Result<_, _>>()
        .map_err(trust)?;
    let sizes: Vec<usize> = cal_scores.iter().map(Vec::len).collect();
    let plan = fedcp_qq::plan(alpha, &sizes).ok();
    let federated_qhat = match &plan {
        Some(p) => {
            let local: Vec<f64> = cal_scores
                .iter()
                .enumerate()
                .map(|(j, s)| fedcp_qq::local_quantile(p, j, s))
                .collect::<std::result::Result<_, _>>()
                .map_err(trust)?;
            Some(fedcp_qq::aggregate(p, &local).map_err(trust)?)
        }
        None => None,
    };
    let (mut per_site, mut covered, mut total) = (Vec::new(), 0usize, 0usize);
    let mut below_target = Vec::new();
    for ((s, c), cs) in with_cal.iter().zip(&cal_scores) {
        let t = &s.test;
        let local_qhat = ward_trust::conformal::conformal_quantile(cs, alpha, QuantileRule::Exact)
            .ok()
            .filter(|q| q.is_finite());
        let local = local_qhat.and_then(|q| set_stats(&sets_for(&t.probs, score, q), &t.labels));
        let fed_sets = federated_qhat.map(|q| sets_for(&t.probs, score, q));
        let federated = fed_sets.as_ref().and_then(|f| set_stats(f, &t.labels));
        if let Some(f) = &fed_sets {
            covered += f
                .iter()
                .zip(&t.labels)
                .filter(|(s, y)| s.contains(y))
                .count();
            total += t.labels.len();
        }
        if federated.is_some_and(|f| f.coverage.hi < 1.0 - alpha) {
            below_target.push(s.name.clone());
        }
        let mondrian = Mondrian::calibrate(&c.probs, &c.labels, score, alpha, QuantileRule::Exact)
            .map_err(trust)?;
        let class_coverage = (0..t.probs.k())
            .map(|k| {
                let rows: Vec<usize> = (0..t.labels.len()).filter(|&i| t.labels[i] == k).collect();
                (!rows.is_empty()).then(|| {
                    rows.iter()
                        .filter(|&&i| mondrian.prediction_set(t.probs.row(i)).contains(&k))
                        .count() as f64
                        / rows.len() as f64
                })
            })
            .collect();
        per_site.push(SiteConformal {
            site: s.name.clone(),
            n_calibration: c.labels.len(),
            local_qhat,
            local,
            federated,
            class_coverage,
            set_deferral: fed_sets
                .as_ref()
                .and_then(|f| selective::set_deferral(f, &t.labels).ok()),
        });
    }
    Ok(ConformalEvidence {
        score: spec.score.as_str().into(),
        alpha,
        guarantee: guarantee(spec, plan.as_ref()),
        fedcp_qq: plan,
        federated_qhat,
        sites: per_site,
        marginal: interval::wilson(covered, total, 0.95),
        below_target,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use ward_trust::recalibration::fit_temperature_pooled;

    /// Binary logits `[0, z]` with `z ~ 3 (2y - 1) + N(0, 2)`-ish noise, labels balanced;
    /// `flip` makes the model confidently wrong.
    fn scored(n: usize, seed: u64, flip: bool) -> Scored {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut values = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n {
            let y = i % 2;
            let sign = if (y == 1) != flip { 1.0 } else { -1.0 };
            let z = sign * 2.0 + (rng.random::<f64>() - 0.5) * 6.0;
            values.extend([0.0, z]);
            labels.push(y);
        }
        let logits = Logits::new(values, 2).unwrap();
        let probs = Probs::softmax(&logits, 1.0).unwrap();
        Scored {
            logits,
            probs,
            labels,
        }
    }

    fn site(name: &str, seed: u64, flip_test: bool) -> SiteRun {
        SiteRun {
            name: name.into(),
            model_file: "model.safetensors".into(),
            test: scored(400, seed, flip_test),
            cal: Some(scored(120 + seed as usize, seed + 100, false)),
            mc_dropout: None,
            groups: Some((0..400).map(|i| format!("g={}", i % 3)).collect()),
        }
    }

    /// The federated temperature (sites send sums) and Platt fit (gradient and Hessian
    /// sums) equal the fits on the pooled calibration rows.
    #[test]
    fn federated_recalibration_equals_pooled() {
        let sites = vec![
            site("a", 1, false),
            site("b", 2, false),
            site("c", 3, false),
        ];
        let r = recalibrate(&sites, 15).unwrap();
        let (mut values, mut labels, mut scores) = (Vec::new(), Vec::new(), Vec::new());
        for s in &sites {
            let c = s.cal.as_ref().unwrap();
            values.extend(c.logits.rows().flatten().copied());
            labels.extend(&c.labels);
            scores.extend(positive_logit(&c.logits));
        }
        let pooled = fit_temperature_pooled(&Logits::new(values, 2).unwrap(), &labels).unwrap();
        let t = r.temperature.unwrap().temperature;
        assert!((t - pooled.temperature).abs() < 1e-9, "{t} vs {pooled:?}");
        let p = Platt::fit(&scores, &labels).unwrap();
        let f = r.platt.unwrap();
        assert!((f.a - p.a).abs() < 1e-9 && (f.b - p.b).abs() < 1e-9);
        assert_eq!(r.rows, labels.len());
    }

    /// A site where the model is confidently wrong is flagged below target, while the
    /// others cover; with no calibration split the sections say why.
    #[test]
    fn a_shifted_site_is_flagged_below_target() {
        // LAC: a confident model's sets are mostly its top class, so where it is
        // confidently wrong its sets miss.
        let spec = EvidenceSpec {
            calibration_fraction: Some(0.2),
            alpha: 0.1,
            score: ward_core::config::ConformalScoreKind::Lac,
            ..EvidenceSpec::default()
        };
        let sites = vec![
            site("a", 1, false),
            site("b", 2, false),
            site("shifted", 3, true),
        ];
        let e = assemble(&spec, "m".into(), &sites).unwrap();
        let c = e.conformal.as_ref().unwrap();
        assert_eq!(c.below_target, vec!["shifted".to_string()]);
        for s in &c.sites[..2] {
            let cov = s.federated.unwrap().coverage;
            assert!(cov.hi >= 0.9, "{} covers: {cov:?}", s.site);
        }
        assert_eq!(e.fairness.worst.0, "shifted");
        assert!(e.groups.is_none(), "no group column asked for");
        let grouped = EvidenceSpec {
            group_column: Some("g".into()),
            ..spec.clone()
        };
        let g = assemble(&grouped, "m".into(), &sites)
            .unwrap()
            .groups
            .unwrap();
        assert_eq!(g.sites.len(), 3);
        assert_eq!(g.overall.groups.len(), 3);
        assert_eq!(g.overall.groups.iter().map(|r| r.n).sum::<usize>(), 1200);
        let none: Vec<SiteRun> = sites
            .into_iter()
            .map(|s| SiteRun { cal: None, ..s })
            .collect();
        let e = assemble(&spec, "m".into(), &none).unwrap();
        assert!(e.conformal.is_none() && e.recalibration.is_none());
        assert!(e.unavailable["conformal"].contains("calibration-fraction"));
    }

    /// Labels 0 0 0 1, predictions 0 0 1 1: recall 2/3 and 1, balanced 5/6; the floor
    /// (always 0) is 3/4.
    #[test]
    fn balanced_accuracy_and_floor_by_hand() {
        let p = Probs::new(vec![0.9, 0.1, 0.8, 0.2, 0.3, 0.7, 0.4, 0.6], 2).unwrap();
        let (b, f) = balanced_and_floor(&p, &[0, 0, 0, 1]);
        assert!((b - 5.0 / 6.0).abs() < 1e-15);
        assert_eq!(f, 0.75);
    }
}
