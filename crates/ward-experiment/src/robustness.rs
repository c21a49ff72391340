//! `ward robustness <run dir>`: how a trained image model degrades under acquisition
//! shift — every corruption of [`ward_data::corrupt`] at severities 1..=5 on every site's
//! test images, beside the clean scores.
//!
//! Each site is scored with the model it uses: the global `model.safetensors`, or its own
//! `model.<site>.safetensors` where the run kept site layers (FedBN).
//!
//! Scores, per site, corruption and severity:
//! - `accuracy`: the share of correct predictions, as `ward run` reports it (binary and
//!   multi-label at `p > 0.5`, per label for multi-label);
//! - `balanced_accuracy`: MedMNIST-C's metric (`medmnistc` 0.1.0, `eval.py`,
//!   `Evaluator.get_eval_metric`: scikit-learn's `balanced_accuracy_score`, the mean
//!   recall over the classes present in the labels; for multi-label tasks the mean over
//!   labels of each label's balanced accuracy at `p > 0.5`);
//! - `normalised_error`: the chance-normalised balanced error `(1 - balanced_accuracy) /
//!   (1 - chance)`, where `chance = 1 / K` (`K` classes present; the mean of `1 / K` over
//!   labels for multi-label tasks) is the balanced accuracy of every classifier that
//!   ignores the image. 0 is perfect, 1 is chance, above 1 worse than chance. MedMNIST-C
//!   divides the mean over severities of the balanced error `E = 1 - balanced accuracy` by
//!   an AlexNet's (`BE = mean_s E_s / E_AlexNet`, `populate_summary`); Ward has no AlexNet
//!   of the run's task and uses the chance classifier as the reference instead, so a
//!   number means the same on every task and class count;
//! - `relative_drop`: the share of the clean model's margin over chance that the
//!   corruption takes away, `(clean_bacc - bacc) / (clean_bacc - chance)` on balanced
//!   accuracy (MedMNIST-C's relative error `rBE` subtracts the clean error likewise). A
//!   drop from 0.55 to 0.50 on a balanced binary task is 1.0, total collapse, where the
//!   plain relative drop `(0.55 - 0.50) / 0.55` would say 9 %. Empty where the clean
//!   model is no better than chance.
//!
//! Writes `robustness.csv` (one line per site, corruption and severity:
//! `site,corruption,severity,n,accuracy,balanced_accuracy,auc,normalised_error,
//! clean_accuracy,clean_balanced_accuracy,chance,relative_drop`), `robustness.json` (the
//! rows; per site the clean scores, the means over every corruption and severity and per
//! corruption the means over severities; every corruption's setting per severity),
//! `robustness.svg` (mean accuracy over sites against severity, one line per corruption)
//! and `examples/<corruption>_s<k>.png` (clean test images above their corrupted
//! versions, for a clinician to judge realism).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::Context;
use crate::say;
use crate::{Error, Result};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;
use ward_core::Params;
use ward_data::corrupt::{Corruption, SEVERITIES, Setting, corrupt_set, write_examples};
use ward_data::{ImageSet, ImageShape, ImageTask, Matrix, SiteData, Split};
use ward_models::{Evaluation, GradientEngine, Loss, evaluate, make_engine};
use ward_report::LineChart;

use crate::FinishedRun;
use crate::options::RobustnessArgs;
use crate::{Observer, engine_options};

/// One line of `robustness.csv`.
#[derive(Debug, Clone, Serialize)]
struct RobustnessRow {
    site: String,
    corruption: String,
    severity: u8,
    n: usize,
    accuracy: f64,
    balanced_accuracy: f64,
    auc: Option<f64>,
    normalised_error: Option<f64>,
    clean_accuracy: f64,
    clean_balanced_accuracy: f64,
    chance: f64,
    relative_drop: Option<f64>,
}

/// Means over severities (per corruption) or over every corruption and severity.
#[derive(Debug, Clone, Serialize)]
struct MeanScores {
    accuracy: f64,
    balanced_accuracy: f64,
    /// `(1 - balanced_accuracy) / (1 - chance)`; `None` when chance is 1.
    normalised_error: Option<f64>,
    /// `(clean - balanced_accuracy) / (clean - chance)`; `None` when the clean model is no
    /// better than chance.
    relative_drop: Option<f64>,
}

/// Per-site summary in `robustness.json`.
#[derive(Debug, Clone, Serialize)]
struct SiteSummary {
    clean_accuracy: f64,
    clean_balanced_accuracy: f64,
    clean_normalised_error: Option<f64>,
    clean_auc: Option<f64>,
    /// Balanced accuracy of a classifier that ignores the image: `1 / K` for `K` classes
    /// present in the site's test labels (the mean over labels for multi-label tasks).
    chance: f64,
    /// Means over every corruption and severity.
    mean: MeanScores,
    /// Per corruption, means over its severities.
    corruptions: BTreeMap<String, MeanScores>,
    /// The model file this site was scored with.
    model: String,
}

#[derive(Debug, Serialize)]
struct Report {
    run: PathBuf,
    seed: u64,
    model: String,
    corruptions: Vec<String>,
    /// Every corruption's setting at severities 1..=5.
    settings: BTreeMap<String, Vec<Setting>>,
    sites: BTreeMap<String, SiteSummary>,
    rows: Vec<RobustnessRow>,
}

/// Balanced accuracy and its chance level (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Balanced {
    /// Mean recall over the classes present (multi-label: mean over labels).
    pub accuracy: f64,
    /// `1 / K`, `K` the classes present (multi-label: the mean of `1 / K` over labels).
    pub chance: f64,
}

/// Mean recall over the classes present in `truth`, and `1 / K`; `None` without labels.
fn balanced_of(truth: &[u32], predicted: &[u32]) -> Option<Balanced> {
    let mut hits: BTreeMap<u32, (usize, usize)> = BTreeMap::new();
    for (&t, &p) in truth.iter().zip(predicted) {
        let e = hits.entry(t).or_default();
        e.0 += usize::from(t == p);
        e.1 += 1;
    }
    if hits.is_empty() {
        return None;
    }
    let k = hits.len() as f64;
    let recall = hits
        .values()
        .map(|&(c, n)| c as f64 / n as f64)
        .sum::<f64>()
        / k;
    Some(Balanced {
        accuracy: recall,
        chance: 1.0 / k,
    })
}

/// MedMNIST-C's balanced accuracy of a model's `logits` (`rows x k`, row-major) against
/// the labels `y`, with its chance level. Predictions as `ward run`'s accuracy: one output
/// is binary at `logit > 0`; several outputs take the first largest; `multi_label` reads
/// `y` as bitmasks and each output as one label at `logit > 0`. `None` without rows.
pub fn balanced_accuracy(logits: &[f32], y: &[u32], multi_label: bool) -> Option<Balanced> {
    let rows = y.len();
    if rows == 0 || logits.len() < rows {
        return None;
    }
    let k = logits.len() / rows;
    if multi_label {
        let per_label: Vec<Balanced> = (0..k)
            .filter_map(|o| {
                let truth: Vec<u32> = y.iter().map(|&m| (m >> o) & 1).collect();
                let pred: Vec<u32> = (0..rows)
                    .map(|r| u32::from(logits[r * k + o] > 0.0))
                    .collect();
                balanced_of(&truth, &pred)
            })
            .collect();
        let n = per_label.len() as f64;
        return (n > 0.0).then(|| Balanced {
            accuracy: per_label.iter().map(|b| b.accuracy).sum::<f64>() / n,
            chance: per_label.iter().map(|b| b.chance).sum::<f64>() / n,
        });
    }
    let pred: Vec<u32> = (0..rows)
        .map(|r| {
            let row = &logits[r * k..(r + 1) * k];
            if k == 1 {
                return u32::from(row[0] > 0.0);
            }
            row.iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (i, &v)| if v > b.1 { (i, v) } else { b },
                )
                .0 as u32
        })
        .collect();
    balanced_of(y, &pred)
}

/// The chance-normalised balanced error `(1 - balanced) / (1 - chance)`: 0 perfect, 1
/// chance. `None` when chance is 1 (one class present: every classifier is at chance).
pub fn normalised_error(balanced: f64, chance: f64) -> Option<f64> {
    (chance < 1.0).then(|| (1.0 - balanced) / (1.0 - chance))
}

/// The share of the clean model's margin over chance that a corruption takes away,
/// `(clean - corrupted) / (clean - chance)` on balanced accuracy: 0 nothing lost, 1 down to
/// chance. `None` when the clean model is no better than chance (no margin to lose).
pub fn relative_drop(clean: f64, corrupted: f64, chance: f64) -> Option<f64> {
    (clean > chance).then(|| (clean - corrupted) / (clean - chance))
}

/// A test split as an image set (multi-label bitmasks spread into one 0/1 per label).
fn to_images(split: &Split, shape: ImageShape, task: ImageTask) -> ImageSet {
    let labels = match task {
        ImageTask::MultiLabel { labels } => split
            .y
            .iter()
            .flat_map(|&m| (0..labels).map(move |k| (m >> k) & 1))
            .collect(),
        _ => split.y.clone(),
    };
    ImageSet {
        shape,
        task,
        pixels: split.x.data.clone(),
        labels,
        sources: Vec::new(),
    }
}

/// The corrupted pixels back into a split with the original labels.
fn to_split(set: ImageSet, y: &[u32]) -> Split {
    let cols = set.shape.len();
    Split {
        x: Matrix {
            rows: y.len(),
            cols,
            data: set.pixels,
        },
        y: y.to_vec(),
    }
}

/// `ward run`'s scores and MedMNIST-C's balanced accuracy of one evaluation.
struct Scored {
    eval: Evaluation,
    balanced: Balanced,
}

/// Means of `(accuracy, balanced accuracy)` pairs and the chance-aware scores of the mean
/// (both are linear in the balanced accuracy, so they equal the means of the rows' scores).
fn means(scores: &[(f64, f64)], clean: f64, chance: f64) -> MeanScores {
    let n = scores.len().max(1) as f64;
    let accuracy = scores.iter().map(|s| s.0).sum::<f64>() / n;
    let balanced_accuracy = scores.iter().map(|s| s.1).sum::<f64>() / n;
    MeanScores {
        accuracy,
        balanced_accuracy,
        normalised_error: normalised_error(balanced_accuracy, chance),
        relative_drop: relative_drop(clean, balanced_accuracy, chance),
    }
}

/// One site's rows (every corruption at every severity, scored by `params`) and its
/// summary (its `model` left empty for the caller).
fn score_site(
    engine: &mut dyn GradientEngine,
    params: &Params,
    loss: Loss,
    site: &SiteData,
    (shape, task): (ImageShape, ImageTask),
    seed: u64,
) -> Result<(Vec<RobustnessRow>, SiteSummary)> {
    let multi_label = loss == Loss::MultiLabel;
    let mut score = |split: &Split| -> Result<Scored> {
        let eval = evaluate(engine, params.values(), split, loss)?;
        let logits = engine.logits(params.values(), &split.x.data, split.y.len())?;
        let balanced = balanced_accuracy(&logits, &split.y, multi_label)
            .ok_or_else(|| Error::User(format!("site {}: no test labels to score", site.name)))?;
        Ok(Scored { eval, balanced })
    };
    let clean = score(&site.test)?;
    let (clean_bacc, chance) = (clean.balanced.accuracy, clean.balanced.chance);
    let images = to_images(&site.test, shape, task);
    let mut rows = Vec::new();
    let mut all = Vec::new();
    let mut corruptions = BTreeMap::new();
    for c in Corruption::ALL {
        let mut these = Vec::new();
        for s in 1..=SEVERITIES {
            let bad = corrupt_set(&images, c, s, seed)
                .with_context(|| format!("site {}: {c} severity {s}", site.name))?;
            let Scored { eval: e, balanced } = score(&to_split(bad, &site.test.y))?;
            these.push((e.accuracy, balanced.accuracy));
            rows.push(RobustnessRow {
                site: site.name.clone(),
                corruption: c.name().to_string(),
                severity: s,
                n: e.n,
                accuracy: e.accuracy,
                balanced_accuracy: balanced.accuracy,
                auc: e.auc,
                normalised_error: normalised_error(balanced.accuracy, chance),
                clean_accuracy: clean.eval.accuracy,
                clean_balanced_accuracy: clean_bacc,
                chance,
                relative_drop: relative_drop(clean_bacc, balanced.accuracy, chance),
            });
        }
        corruptions.insert(c.name().to_string(), means(&these, clean_bacc, chance));
        all.extend(these);
    }
    let summary = SiteSummary {
        clean_accuracy: clean.eval.accuracy,
        clean_balanced_accuracy: clean_bacc,
        clean_normalised_error: normalised_error(clean_bacc, chance),
        clean_auc: clean.eval.auc,
        chance,
        mean: means(&all, clean_bacc, chance),
        corruptions,
        model: String::new(),
    };
    Ok((rows, summary))
}

/// A score to six decimals, or an empty cell.
fn cell(v: Option<f64>) -> String {
    v.map_or(String::new(), |a| format!("{a:.6}"))
}

/// `robustness.csv`: one line per site, corruption and severity.
fn write_csv(out_dir: &Path, rows: &[RobustnessRow]) -> Result<()> {
    ward_report::write_csv_atomic(
        &out_dir.join("robustness.csv"),
        &[
            "site",
            "corruption",
            "severity",
            "n",
            "accuracy",
            "balanced_accuracy",
            "auc",
            "normalised_error",
            "clean_accuracy",
            "clean_balanced_accuracy",
            "chance",
            "relative_drop",
        ],
        rows.iter().map(|r| {
            [
                r.site.clone(),
                r.corruption.clone(),
                r.severity.to_string(),
                r.n.to_string(),
                format!("{:.6}", r.accuracy),
                format!("{:.6}", r.balanced_accuracy),
                cell(r.auc),
                cell(r.normalised_error),
                format!("{:.6}", r.clean_accuracy),
                format!("{:.6}", r.clean_balanced_accuracy),
                format!("{:.6}", r.chance),
                cell(r.relative_drop),
            ]
        }),
    )?;
    Ok(())
}

/// `robustness.svg`: mean accuracy over sites per corruption and severity; severity 0 is
/// the clean accuracy.
fn write_chart(out_dir: &Path, report: &Report) -> Result<()> {
    let clean_mean =
        report.sites.values().map(|s| s.clean_accuracy).sum::<f64>() / report.sites.len() as f64;
    let series = Corruption::ALL
        .iter()
        .map(|c| {
            let mut pts = vec![(0.0, clean_mean)];
            for s in 1..=SEVERITIES {
                let v: Vec<f64> = report
                    .rows
                    .iter()
                    .filter(|r| r.corruption == c.name() && r.severity == s)
                    .map(|r| r.accuracy)
                    .collect();
                pts.push((f64::from(s), v.iter().sum::<f64>() / v.len() as f64));
            }
            (c.name().to_string(), pts)
        })
        .collect();
    LineChart {
        title: format!(
            "Accuracy under acquisition shift ({} sites' mean; severity 0 = clean)",
            report.sites.len()
        ),
        x_label: "severity".into(),
        y_label: "test accuracy".into(),
        series,
    }
    .write_svg(&out_dir.join("robustness.svg"))?;
    Ok(())
}

/// Prints the per-site table.
fn print_summary(report: &Report, seed: u64, obs: &mut dyn Observer) {
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |d| format!("{:.1}%", 100.0 * d));
    let num = |v: Option<f64>| v.map_or("-".to_string(), |d| format!("{d:.3}"));
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "site",
        "clean acc",
        "corrupted acc",
        "clean bal. acc",
        "corrupted bal. acc",
        "chance",
        "corrupted norm. error",
        "drop of margin over chance",
        "model",
    ]);
    for (name, s) in &report.sites {
        t.add_row(vec![
            name.clone(),
            format!("{:.3}", s.clean_accuracy),
            format!("{:.3}", s.mean.accuracy),
            format!("{:.3}", s.clean_balanced_accuracy),
            format!("{:.3}", s.mean.balanced_accuracy),
            format!("{:.3}", s.chance),
            num(s.mean.normalised_error),
            pct(s.mean.relative_drop),
            s.model.clone(),
        ]);
    }
    say(
        obs,
        format!(
            "Acquisition-shift robustness of {}: {} corruptions x {SEVERITIES} severities (seed {}); \
             corrupted columns are means over corruptions and severities; normalised error = \
             (1 - balanced acc) / (1 - chance), 1 = chance; drop = (clean - corrupted) / \
             (clean - chance) on balanced accuracy",
            report.run.display(),
            Corruption::ALL.len(),
            seed
        ),
    );
    say(obs, t);
}

/// Every corruption's setting at severities 1..=5, by name.
fn settings() -> Result<BTreeMap<String, Vec<Setting>>> {
    Corruption::ALL
        .iter()
        .map(|&c| {
            let v = (1..=SEVERITIES)
                .map(|s| c.params(s))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Ok((c.name().to_string(), v))
        })
        .collect()
}

/// Runs the suite on the run in `args.run`.
pub fn robustness(args: RobustnessArgs, obs: &mut dyn Observer) -> Result<()> {
    let run = &args.run;
    let opts = engine_options(&args.engine)?;
    let loaded = FinishedRun::open(run, "ward robustness", opts)?;
    let data = loaded.experiment.data();
    let Some((shape, task)) = data.image else {
        return Err(Error::User(format!(
            "{}: the run trained on {}, a table; ward robustness corrupts images",
            run.display(),
            data.name
        )));
    };
    let arch = loaded.arch().clone();
    let mut engine = make_engine(&arch, opts.device, opts.engine)?;
    let loss = arch.loss();
    let out_dir = args.out.clone().unwrap_or_else(|| run.join("robustness"));
    fs_err::create_dir_all(&out_dir)?;

    let mut rows = Vec::new();
    let mut sites = BTreeMap::new();
    for site in data.sites.iter().filter(|s| !s.test.is_empty()) {
        let (params, model_file) = loaded.site_model(&site.name)?;
        let (site_rows, summary) = score_site(
            engine.as_mut(),
            &params,
            loss,
            site,
            (shape, task),
            args.seed,
        )?;
        rows.extend(site_rows);
        sites.insert(
            site.name.clone(),
            SiteSummary {
                model: model_file,
                ..summary
            },
        );
    }
    if sites.is_empty() {
        return Err(Error::User("no site has test images to score".into()));
    }

    write_csv(&out_dir, &rows)?;
    let report = Report {
        run: run.clone(),
        seed: args.seed,
        model: arch.describe(),
        corruptions: Corruption::ALL
            .iter()
            .map(|c| c.name().to_string())
            .collect(),
        settings: settings()?,
        sites,
        rows,
    };
    ward_report::write_json_atomic(&out_dir.join("robustness.json"), &report)?;

    write_chart(&out_dir, &report)?;

    let first = data
        .sites
        .iter()
        .find(|s| !s.test.is_empty())
        .ok_or_else(|| Error::User(format!("{}: no site has test images", run.display())))?;
    write_examples(
        &out_dir.join("examples"),
        &to_images(&first.test, shape, task),
        args.examples,
        args.seed,
    )?;

    print_summary(&report, args.seed, obs);
    say(
        obs,
        format!(
            "written: {} (robustness.csv, robustness.json, robustness.svg, examples/)",
            out_dir.display()
        ),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// Hand-computed, as scikit-learn 1.x `balanced_accuracy_score` (MedMNIST-C's metric)
    /// gives them: the mean recall over the classes present in the labels.
    #[test]
    fn balanced_accuracy_by_hand() {
        // Binary, one logit: labels 0 0 0 1, predictions (logit > 0) 0 0 1 1:
        // recall 2/3 and 1 -> 5/6; chance 1/2.
        let b = balanced_accuracy(&[-1.0, -0.5, 0.3, 2.0], &[0, 0, 0, 1], false).unwrap();
        assert!(
            close(b.accuracy, 5.0 / 6.0) && close(b.chance, 0.5),
            "{b:?}"
        );
        // Three outputs, class 1 never a label: labels 0 0 2 2, argmax 1 0 2 2:
        // recall 1/2 (class 0) and 1 (class 2) -> 3/4; two classes present, chance 1/2.
        let z = [0.0, 1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0, 3.0];
        let b = balanced_accuracy(&z, &[0, 0, 2, 2], false).unwrap();
        assert!(close(b.accuracy, 0.75) && close(b.chance, 0.5), "{b:?}");
        // Ties take the first largest output (as `ward run`'s accuracy): [1, 1] -> class 0.
        let b = balanced_accuracy(&[1.0, 1.0, 0.0, 1.0], &[0, 1], false).unwrap();
        assert!(close(b.accuracy, 1.0), "{b:?}");
        // Multi-label, two labels, bitmasks 0b01 0b11 0b00 0b10:
        // label 0 truth 1 1 0 0, predicted 1 0 0 0 -> recall 1/2 and 1 -> 3/4;
        // label 1 truth 0 1 0 1, predicted 0 1 1 1 -> recall 1/2 and 1 -> 3/4; mean 3/4.
        let z = [1.0, -1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0];
        let b = balanced_accuracy(&z, &[0b01, 0b11, 0b00, 0b10], true).unwrap();
        assert!(close(b.accuracy, 0.75) && close(b.chance, 0.5), "{b:?}");
        // A label with one value present counts with chance 1 (1 / K, K = 1).
        let b = balanced_accuracy(&[1.0, -1.0, 1.0, 1.0], &[0b01, 0b11], true).unwrap();
        // label 0: truth 1 1, predicted 1 1 -> 1, chance 1; label 1: truth 0 1,
        // predicted 0 1 -> 1, chance 1/2.
        assert!(close(b.accuracy, 1.0) && close(b.chance, 0.75), "{b:?}");
        assert_eq!(balanced_accuracy(&[], &[], false), None);
    }

    /// Hand-computed chance-normalised error and drop of the margin over chance.
    #[test]
    fn chance_normalised_error_and_drop_by_hand() {
        // Balanced binary task: 0.55 -> 0.50 is total collapse (1.0), not 9 %.
        assert!(close(relative_drop(0.55, 0.50, 0.5).unwrap(), 1.0));
        assert!(close(normalised_error(0.55, 0.5).unwrap(), 0.9));
        assert!(close(normalised_error(0.50, 0.5).unwrap(), 1.0));
        // Four classes (chance 1/4): 0.85 -> error 0.15 / 0.75 = 0.2; 0.55 -> 0.6;
        // drop (0.85 - 0.55) / (0.85 - 0.25) = 0.5.
        assert!(close(normalised_error(0.85, 0.25).unwrap(), 0.2));
        assert!(close(normalised_error(0.55, 0.25).unwrap(), 0.6));
        assert!(close(relative_drop(0.85, 0.55, 0.25).unwrap(), 0.5));
        // Below chance: error above 1, drop above 1; a gain is a negative drop.
        assert!(close(normalised_error(0.2, 0.5).unwrap(), 1.6));
        assert!(close(relative_drop(0.9, 0.2, 0.5).unwrap(), 1.75));
        assert!(close(relative_drop(0.8, 0.9, 0.5).unwrap(), -1.0 / 3.0));
        // Undefined: one class present; a clean model at or below chance.
        assert_eq!(normalised_error(1.0, 1.0), None);
        assert_eq!(relative_drop(0.5, 0.4, 0.5), None);
        assert_eq!(relative_drop(0.3, 0.4, 0.5), None);
    }

    /// The means over severities are the mean scores' chance-aware values, which equal the
    /// means of the rows' (both are linear in the balanced accuracy).
    #[test]
    fn means_equal_the_mean_of_the_rows() {
        let rows = [(0.9, 0.8), (0.7, 0.6), (0.5, 0.4)];
        let m = means(&rows, 0.9, 0.25);
        assert!(close(m.accuracy, 0.7) && close(m.balanced_accuracy, 0.6));
        let errs: f64 = rows
            .iter()
            .map(|r| normalised_error(r.1, 0.25).unwrap())
            .sum();
        let drops: f64 = rows
            .iter()
            .map(|r| relative_drop(0.9, r.1, 0.25).unwrap())
            .sum();
        assert!((m.normalised_error.unwrap() - errs / 3.0).abs() < 1e-12);
        assert!((m.relative_drop.unwrap() - drops / 3.0).abs() < 1e-12);
    }
}
