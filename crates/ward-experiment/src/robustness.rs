//! `ward robustness <run dir>`: how a trained image model degrades under acquisition
//! shift — every corruption of [`ward_data::corrupt`] at severities 1..=5 on every site's
//! test images, beside the clean accuracy.
//!
//! Each site is scored with the model it uses: the global `model.safetensors`, or its own
//! `model.<site>.safetensors` where the run kept site layers (FedBN). Writes
//! `robustness.csv` (`site,corruption,severity,n,accuracy,auc,clean_accuracy,
//! relative_drop`, `relative_drop = (clean - accuracy) / clean`), `robustness.json`
//! (the rows, and per site the clean accuracy, the mean corruption accuracy and the mean
//! relative drop), `robustness.svg` (mean accuracy over sites against severity, one line
//! per corruption) and `examples/<corruption>_s<k>.png` (clean test images above their
//! corrupted versions, for a clinician to judge realism).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::Context;
use crate::say;
use crate::{Error, Result};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;
use ward_core::Params;
use ward_data::corrupt::{Corruption, SEVERITIES, corrupt_set, write_examples};
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
    auc: Option<f64>,
    clean_accuracy: f64,
    relative_drop: f64,
}

/// Per-site summary in `robustness.json`.
#[derive(Debug, Clone, Serialize)]
struct SiteSummary {
    clean_accuracy: f64,
    clean_auc: Option<f64>,
    /// Mean accuracy over every corruption and severity.
    mean_corruption_accuracy: f64,
    /// Mean of `relative_drop` over every corruption and severity.
    mean_relative_drop: f64,
    /// The model file this site was scored with.
    model: String,
}

#[derive(Debug, Serialize)]
struct Report {
    run: PathBuf,
    seed: u64,
    model: String,
    corruptions: Vec<String>,
    sites: BTreeMap<String, SiteSummary>,
    rows: Vec<RobustnessRow>,
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
    let mut score = |split: &Split| -> Result<Evaluation> {
        Ok(evaluate(engine, params.values(), split, loss)?)
    };
    let clean = score(&site.test)?;
    let images = to_images(&site.test, shape, task);
    let mut rows = Vec::new();
    let mut accs = Vec::new();
    let mut drops = Vec::new();
    for c in Corruption::ALL {
        for s in 1..=SEVERITIES {
            let bad = corrupt_set(&images, c, s, seed)
                .with_context(|| format!("site {}: {c} severity {s}", site.name))?;
            let e = score(&to_split(bad, &site.test.y))?;
            let drop = if clean.accuracy > 0.0 {
                (clean.accuracy - e.accuracy) / clean.accuracy
            } else {
                f64::NAN
            };
            accs.push(e.accuracy);
            drops.push(drop);
            rows.push(RobustnessRow {
                site: site.name.clone(),
                corruption: c.name().to_string(),
                severity: s,
                n: e.n,
                accuracy: e.accuracy,
                auc: e.auc,
                clean_accuracy: clean.accuracy,
                relative_drop: drop,
            });
        }
    }
    let summary = SiteSummary {
        clean_accuracy: clean.accuracy,
        clean_auc: clean.auc,
        mean_corruption_accuracy: accs.iter().sum::<f64>() / accs.len() as f64,
        mean_relative_drop: drops.iter().sum::<f64>() / drops.len() as f64,
        model: String::new(),
    };
    Ok((rows, summary))
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
            "auc",
            "clean_accuracy",
            "relative_drop",
        ],
        rows.iter().map(|r| {
            [
                r.site.clone(),
                r.corruption.to_string(),
                r.severity.to_string(),
                r.n.to_string(),
                format!("{:.6}", r.accuracy),
                r.auc.map_or(String::new(), |a| format!("{a:.6}")),
                format!("{:.6}", r.clean_accuracy),
                format!("{:.6}", r.relative_drop),
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
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "site",
        "clean acc",
        "mean corrupted acc",
        "mean relative drop",
        "model",
    ]);
    for (name, s) in &report.sites {
        t.add_row(vec![
            name.clone(),
            format!("{:.3}", s.clean_accuracy),
            format!("{:.3}", s.mean_corruption_accuracy),
            format!("{:.1}%", 100.0 * s.mean_relative_drop),
            s.model.clone(),
        ]);
    }
    say(
        obs,
        format!(
            "Acquisition-shift robustness of {}: {} corruptions x {SEVERITIES} severities (seed {})",
            report.run.display(),
            Corruption::ALL.len(),
            seed
        ),
    );
    say(obs, t);
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
