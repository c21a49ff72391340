//! `ward data describe`.

use std::path::Path;

use crate::say;
use crate::{Error, Result};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use ward_core::ExperimentSpec;
use ward_core::config::{DataSpec, DatasetKind, PartitionKind, PartitionSpec};

use crate::Observer;

/// The data spec for a built-in name, or the `[data]` of an experiment file.
fn resolve(what: &str, sets: &[String]) -> Result<(DataSpec, std::path::PathBuf, String)> {
    let builtin = match what {
        "fed-heart-disease" => Some(DataSpec::builtin(DatasetKind::FedHeartDisease)),
        "breast-cancer" => {
            let mut d = DataSpec::builtin(DatasetKind::BreastCancer);
            d.partition = Some(PartitionSpec {
                kind: PartitionKind::Iid,
                sites: 4,
                alpha: 0.5,
                seed: 43,
                min_rows: 10,
            });
            Some(d)
        }
        _ => None,
    };
    if let Some(d) = builtin {
        let note = if what == "breast-cancer" {
            " (no natural sites: shown IID over 4 simulated sites; use an experiment file for another partition)"
        } else {
            ""
        };
        return Ok((d, ".".into(), format!("{what}{note}")));
    }
    let p = Path::new(what);
    if !p.exists() {
        return Err(Error::User(format!(
            "{what:?} is neither a built-in dataset (fed-heart-disease, breast-cancer) nor an existing experiment file"
        )));
    }
    let l = crate::load(p, sets)?;
    Ok((l.spec.data.clone(), l.base_dir, what.to_string()))
}

/// Prints the per-site tables.
pub fn describe(what: &str, sets: &[String], obs: &mut dyn Observer) -> Result<()> {
    let (data, base, title) = resolve(what, sets)?;
    let mut spec = ExperimentSpec::default_heart();
    spec.data = data;
    let ds = crate::load_data(&spec, &base)?;
    let summaries = ds.describe();
    say(
        obs,
        format!(
            "{title}: {} sites, {} features, {} classes",
            ds.sites.len(),
            ds.feature_names.len(),
            ds.num_classes
        ),
    );
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    let mut header = vec![
        "site".to_string(),
        "rows".into(),
        "train".into(),
        "test".into(),
    ];
    for c in 0..ds.num_classes {
        header.push(format!("train class {c}"));
        header.push(format!("test class {c}"));
    }
    t.set_header(header);
    for s in &summaries {
        let mut row = vec![
            s.name.clone(),
            s.rows.to_string(),
            s.train_rows.to_string(),
            s.test_rows.to_string(),
        ];
        for c in 0..ds.num_classes {
            for (counts, n) in [
                (&s.train_label_counts, s.train_rows),
                (&s.test_label_counts, s.test_rows),
            ] {
                let k = counts.get(c).copied().unwrap_or(0);
                row.push(format!("{k} ({:.0}%)", 100.0 * k as f64 / n.max(1) as f64));
            }
        }
        t.add_row(row);
    }
    say(obs, t);
    say(obs, "feature means (raw values, train and test rows):");
    let mut f = Table::new();
    f.load_preset(UTF8_FULL_CONDENSED);
    let mut header = vec!["feature".to_string()];
    header.extend(summaries.iter().map(|s| s.name.clone()));
    f.set_header(header);
    for (j, name) in ds.feature_names.iter().enumerate() {
        let mut row = vec![name.clone()];
        row.extend(
            summaries
                .iter()
                .map(|s| format!("{:.3}", s.feature_means[j])),
        );
        f.add_row(row);
    }
    say(obs, f);
    for w in &ds.warnings {
        say(obs, format!("warning: {w}"));
    }
    Ok(())
}

/// `ward data synth`: writes the synthetic scanner-shift task.
pub fn synth(args: crate::options::SynthArgs, obs: &mut dyn Observer) -> Result<()> {
    use ward_data::synth::{SynthSpec, generate, write};
    let spec = SynthSpec {
        sites: args.sites,
        per_site: args.per_site,
        size: args.size,
        classes: args.classes,
        seed: args.seed,
        ..SynthSpec::default()
    };
    let synth = generate(&spec).map_err(|e| Error::User(e.to_string()))?;
    if args.out.exists() && !args.out.is_dir() {
        return Err(Error::User(format!(
            "--out {}: is a file, not a directory",
            args.out.display()
        )));
    }
    let earlier = args.out.join("synth.json").exists();
    let paths = write(&args.out, &synth).map_err(|e| Error::User(e.to_string()))?;
    if earlier {
        let removed = remove_stale_sites(&args.out, &paths)?;
        if removed > 0 {
            say(
                obs,
                format!(
                    "removed {removed} files of sites an earlier ward data synth wrote here (a run reads every site file in the folder)"
                ),
            );
        }
    }
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "site",
        "profile",
        "train",
        "val",
        "test",
        "classes (train)",
    ]);
    for (site, p) in synth.sites.iter().zip(&synth.profiles) {
        t.add_row(vec![
            site.name.clone(),
            p.preset.clone(),
            site.train.len().to_string(),
            site.val.len().to_string(),
            site.test.len().to_string(),
            format!("{:?}", site.train.label_counts()),
        ]);
    }
    say(obs, t);
    say(
        obs,
        format!("written: {} files in {}", paths.len(), args.out.display()),
    );
    Ok(())
}

/// Removes the site files (`site-<k>.npz`, `contact_site-<k>.png`) of an earlier synth
/// in `dir` that this one did not write; returns how many.
fn remove_stale_sites(dir: &std::path::Path, written: &[std::path::PathBuf]) -> Result<usize> {
    let mut removed = 0;
    for e in fs_err::read_dir(dir)? {
        let path = e?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let stem = name.strip_suffix(".npz").or_else(|| {
            name.strip_prefix("contact_")
                .and_then(|n| n.strip_suffix(".png"))
        });
        let is_site = stem
            .and_then(|s| s.strip_prefix("site-"))
            .is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()));
        if is_site && !written.contains(&path) {
            fs_err::remove_file(&path)?;
            removed += 1;
        }
    }
    Ok(removed)
}
