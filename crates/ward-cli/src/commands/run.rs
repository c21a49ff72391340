//! `ward run`.

use std::path::Path;

use anyhow::Result;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use ward_experiment::{Experiment, RunDir, default_run_dir, engine_options};
use ward_report::Summary;

use crate::args::RunArgs;
use crate::commands::{Terminal, out};

/// Runs (or resumes) an experiment with a run directory. Everything that can be
/// checked (the experiment, its data, the federation) is checked before the directory
/// is created.
pub(crate) fn run(args: RunArgs) -> Result<()> {
    let opts = engine_options(&args.engine)?;
    let (dir, loaded) = match &args.resume {
        Some(dir) => {
            let (d, loaded) = RunDir::resume(dir)?;
            (Some(d), loaded)
        }
        None => {
            let loaded = match &args.experiment {
                Some(p) => ward_experiment::load(p, &args.sets)?,
                None => ward_experiment::default_experiment(&args.sets)?,
            };
            (None, loaded)
        }
    };
    let experiment = Experiment::from_loaded(&loaded)?;
    let prepared = experiment.prepare(opts)?;
    let dir = match dir {
        Some(d) => d,
        None => {
            let path = args
                .out
                .clone()
                .unwrap_or_else(|| default_run_dir(&loaded.spec.name));
            RunDir::create(&path, &loaded)?
        }
    };
    let outcome = prepared.run_in(Some(&dir), &mut Terminal::new(!args.quiet))?;
    print_summary(&outcome.summary, dir.path());
    for line in outcome.privacy_lines() {
        out(line);
    }
    // The evidence on the final models (calibration, conformal sets, deferral): written
    // beside the run's other files; a run it cannot score (multi-label) still succeeded.
    match ward_experiment::report::write_evidence(dir.path(), opts) {
        Ok(_) => out(format!(
            "evidence: {} (calibration, conformal sets, deferral, fairness)",
            dir.path().join(ward_report::files::EVIDENCE).display()
        )),
        Err(e) => tracing::warn!("evidence.json not written: {e}"),
    }
    out(format!(
        "report: ward report {}   (one HTML page for clinicians)",
        dir.path().display()
    ));
    Ok(())
}

fn print_summary(s: &Summary, dir: &Path) {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    let personal = s.personalised_per_site.as_ref();
    let mut header = vec!["site", "test accuracy", "test AUC"];
    if personal.is_some() {
        header.push("fine-tuned accuracy");
    }
    t.set_header(header);
    for (site, acc) in &s.per_site {
        let mut row = vec![
            site.clone(),
            format!("{acc:.3}"),
            s.per_site_auc
                .get(site)
                .map_or("-".to_string(), |a| format!("{a:.3}")),
        ];
        if let Some(p) = personal {
            row.push(p.get(site).map_or("-".into(), |a| format!("{a:.3}")));
        }
        t.add_row(row);
    }
    let mut mean = vec![
        "mean".to_string(),
        format!("{:.3}", s.mean_accuracy),
        String::new(),
    ];
    if let Some(m) = s.personalised_mean_accuracy {
        mean.push(format!("{m:.3}"));
    }
    t.add_row(mean);
    if let Some(h) = &s.held_out {
        let mut row = vec![
            "held-out set".to_string(),
            format!("{:.3}", h.accuracy),
            h.auc.map_or("-".to_string(), |a| format!("{a:.3}")),
        ];
        if personal.is_some() {
            row.push(String::new());
        }
        t.add_row(row);
    }
    out(format!(
        "{} · {} · {} rounds · seed {} · {} · {:.2} s",
        s.experiment, s.strategy, s.rounds, s.seed, s.backend, s.wall_time_s
    ));
    out(t);
    if let Some(h) = &s.held_out {
        out(format!("held-out set: {}, every image scored once", h.what));
    }
    if let Some(n) = s.rejected_updates
        && n > 0
    {
        out(format!("rejected updates: {n} (see metrics.jsonl)"));
    }
    out(format!("run directory: {}", dir.display()));
}
