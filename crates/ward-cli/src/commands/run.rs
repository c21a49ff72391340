//! `ward run`.

use std::path::Path;

use anyhow::{Context, Result};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use ward_report::{Summary, files};

use crate::args::RunArgs;
use crate::commands::{engine_options, out};
use crate::experiment::{self, UserError};
use crate::runner::{self, Persist};

/// Runs (or resumes) an experiment with a run directory.
pub(crate) fn run(args: RunArgs) -> Result<()> {
    let opts = engine_options(&args.engine)?;
    let (loaded, dir, resume) = match &args.resume {
        Some(dir) => {
            let cfg = dir.join(files::CONFIG);
            if !cfg.exists() {
                return Err(UserError(format!(
                    "--resume {}: no {} there; is it a run directory?",
                    dir.display(),
                    files::CONFIG
                ))
                .into());
            }
            (experiment::load(&cfg, &[])?, dir.clone(), true)
        }
        None => {
            let mut loaded = match &args.experiment {
                Some(p) => experiment::load(p, &args.sets)?,
                None => experiment::default_experiment(&args.sets)?,
            };
            let dir = args
                .out
                .clone()
                .unwrap_or_else(|| runner::default_run_dir(&loaded.spec.name));
            if dir.join(files::CONFIG).exists() {
                return Err(UserError(format!(
                    "{} already holds a run: use `ward run --resume {}` or another --out",
                    dir.display(),
                    dir.display()
                ))
                .into());
            }
            fs_err::create_dir_all(&dir)?;
            // The resolved config stands alone: make a relative data path absolute.
            if let Some(p) = &loaded.spec.data.path
                && p.is_relative()
            {
                let abs = loaded.base_dir.join(p);
                let abs =
                    fs_err::canonicalize(&abs).map_err(|e| UserError(format!("data.path: {e}")))?;
                loaded.spec.data.path = Some(abs);
            }
            let text = toml::to_string(&loaded.spec).context("writing the resolved config")?;
            let header = "# Resolved experiment written by `ward run`: every default filled in.\n";
            ward_fl::checkpoint::write_atomic(
                &dir.join(files::CONFIG),
                format!("{header}{text}").as_bytes(),
            )?;
            (loaded, dir, false)
        }
    };
    let data = runner::load_data(&loaded.spec, &loaded.base_dir)?;
    let outcome = runner::execute(
        &loaded.spec,
        &data,
        opts,
        Some(Persist { dir: &dir, resume }),
        !args.quiet,
    )?;
    print_summary(&outcome.summary, &dir);
    for line in &outcome.privacy_lines {
        out(line);
    }
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
    out(format!(
        "{} · {} · {} rounds · seed {} · {} · {:.2} s",
        s.experiment, s.strategy, s.rounds, s.seed, s.backend, s.wall_time_s
    ));
    out(t);
    if s.rejected_updates > 0 {
        out(format!(
            "rejected updates: {} (see metrics.jsonl)",
            s.rejected_updates
        ));
    }
    out(format!("run directory: {}", dir.display()));
}
