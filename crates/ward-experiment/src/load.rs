//! Loading experiment files: TOML text + `--set` overrides → a checked `ExperimentSpec`,
//! with errors that name the file, the line and the key.

use std::path::{Path, PathBuf};

use ward_core::ExperimentSpec;

use crate::{Error, Result};

/// A loaded experiment and where relative paths in it resolve from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The checked experiment.
    pub spec: ExperimentSpec,
    /// Where relative paths in it resolve from.
    pub base_dir: PathBuf,
}

/// The built-in default experiment with `sets` applied.
pub fn default_experiment(sets: &[String]) -> Result<Loaded> {
    let text = toml::to_string(&ExperimentSpec::default_heart())
        .map_err(|e| Error::User(format!("internal: default experiment: {e}")))?;
    parse("<default experiment>", &text, sets, PathBuf::from("."))
}

/// Reads and checks an experiment file, applying `sets`.
pub fn load(path: &Path, sets: &[String]) -> Result<Loaded> {
    let text = fs_err::read_to_string(path).map_err(|e| Error::User(e.to_string()))?;
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    parse(&path.display().to_string(), &text, sets, base)
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Applies one `key.path=value` override to the document.
fn apply_set(doc: &mut toml_edit::DocumentMut, set: &str) -> Result<()> {
    let (key, raw) = set.split_once('=').ok_or_else(|| {
        Error::User(format!(
            "--set {set:?}: expected KEY=VALUE, e.g. --set federation.rounds=5"
        ))
    })?;
    let key = key.trim();
    let parts: Vec<&str> = key.split('.').map(str::trim).collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(Error::User(format!("--set {set:?}: bad key {key:?}")));
    }
    let value: toml_edit::Value = raw
        .trim()
        .parse()
        .unwrap_or_else(|_| toml_edit::Value::from(raw.trim()));
    let mut table = doc.as_table_mut();
    for p in &parts[..parts.len() - 1] {
        let item = table
            .entry(p)
            .or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()));
        // `synth = { sites = 4 }` is as much a table as `[data.synth]`.
        if let Some(inline) = item.as_inline_table() {
            *item = toml_edit::Item::Table(inline.clone().into_table());
        }
        table = item.as_table_mut().ok_or_else(|| {
            Error::User(format!(
                "--set {set:?}: {p:?} is not a table in the experiment"
            ))
        })?;
    }
    let last = parts[parts.len() - 1];
    // `local-steps` and `local-epochs` exclude each other: setting one drops the other,
    // so `--set train.local-epochs=2` works on an experiment that gives local steps.
    if parts.len() == 2 && parts[0] == "train" {
        match last {
            "local-steps" => drop(table.remove("local-epochs")),
            "local-epochs" => drop(table.remove("local-steps")),
            _ => {}
        }
    }
    table.insert(last, toml_edit::Item::Value(value));
    Ok(())
}

/// Finds the line of a dotted key (kebab-case as in the file) in `text`; falls back to
/// the line of the deepest table that exists.
fn find_line(text: &str, key: &str) -> Option<usize> {
    let doc = toml_edit::Document::parse(text).ok()?;
    let mut table = doc.as_table();
    let mut best = None;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, p) in parts.iter().enumerate() {
        let Some((k, item)) = table.get_key_value(p) else {
            return best;
        };
        let span = k.span().or_else(|| item.span());
        if let Some(s) = span {
            best = Some(line_of(text, s.start));
        }
        if i + 1 < parts.len() {
            match item.as_table() {
                Some(t) => table = t,
                None => return best,
            }
        }
    }
    best
}

fn parse(source: &str, text: &str, sets: &[String], base_dir: PathBuf) -> Result<Loaded> {
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| Error::User(format!("{source}: invalid TOML: {e}")))?;
    for s in sets {
        apply_set(&mut doc, s)?;
    }
    let final_text = doc.to_string();
    // Line numbers only mean something in a file the user wrote.
    let in_file = !source.starts_with('<');
    let set_note = |key: &str| {
        sets.iter()
            .find(|s| s.split_once('=').map(|(k, _)| k.trim()) == Some(key))
            .map(|s| format!(" (from --set {s})"))
            .unwrap_or_default()
    };
    let spec: ExperimentSpec = toml::from_str(&final_text).map_err(|e| {
        let line = e
            .span()
            .filter(|_| in_file)
            .map(|s| line_of(&final_text, s.start));
        let msg = e.message().trim_end().to_string();
        match line {
            Some(l) => Error::User(format!("{source}:{l}: {msg}")),
            None => Error::User(format!("{source}: {msg}")),
        }
    })?;
    spec.validate().map_err(|e| {
        let line = if in_file {
            find_line(&final_text, &e.key)
        } else {
            None
        };
        let loc = match line {
            Some(l) => format!("{source}:{l}"),
            None => source.to_string(),
        };
        Error::User(format!(
            "{loc}: {}: {}{}",
            e.key,
            e.reason,
            set_note(&e.key)
        ))
    })?;
    Ok(Loaded { spec, base_dir })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "name = \"t\"\n\n[data]\ndataset = \"fed-heart-disease\"\n\n[train]\nlr = 0.01\nlocal-steps = 10\n";

    #[test]
    fn set_reaches_into_inline_tables() {
        let text = "name = \"t\"\n[data]\ndataset = \"synth\"\nsynth = { sites = 4, per-site = 600 }\n[model]\nkind = \"cnn\"\n";
        let l = parse(
            "x.toml",
            text,
            &["data.synth.per-site=50".into()],
            PathBuf::from("."),
        )
        .unwrap();
        let s = l.spec.data.synth.unwrap();
        assert_eq!((s.sites, s.per_site), (4, 50));
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text = format!("{GOOD}learning-rate = 3\n");
        let e = parse("x.toml", &text, &[], ".".into())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.toml:9:"), "{e}");
        assert!(e.contains("learning-rate"), "{e}");
    }

    #[test]
    fn wrong_type_names_line_and_key() {
        let text = GOOD.replace("lr = 0.01", "lr = \"fast\"");
        let e = parse("x.toml", &text, &[], ".".into())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.toml:7:"), "{e}");
        assert!(e.contains("invalid type"), "{e}");
    }

    #[test]
    fn out_of_range_names_line_and_key() {
        let text = GOOD.replace("lr = 0.01", "lr = -0.5");
        let e = parse("x.toml", &text, &[], ".".into())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "x.toml:7: train.lr: must be a finite number > 0, got -0.5"
        );
    }

    #[test]
    fn set_overrides_and_names_itself_in_errors() {
        let l = parse("x.toml", GOOD, &["federation.rounds=3".into()], ".".into()).unwrap();
        assert_eq!(l.spec.federation.rounds, 3);
        assert_eq!(l.spec.train.lr, 0.01);
        let e = parse("x.toml", GOOD, &["train.lr=0".into()], ".".into())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("train.lr") && e.contains("(from --set train.lr=0)"),
            "{e}"
        );
        let e = parse("x.toml", GOOD, &["nonsense".into()], ".".into())
            .unwrap_err()
            .to_string();
        assert!(e.contains("KEY=VALUE"), "{e}");
        let l = parse(
            "x.toml",
            GOOD,
            &[
                "federation.strategy=fedprox".into(),
                "federation.mu=0.1".into(),
            ],
            ".".into(),
        )
        .unwrap();
        assert_eq!(l.spec.federation.mu, Some(0.1));
        let l = parse("x.toml", GOOD, &["train.local-epochs=2".into()], ".".into()).unwrap();
        assert_eq!(
            (l.spec.train.local_steps, l.spec.train.local_epochs),
            (None, Some(2))
        );
    }

    #[test]
    fn default_experiment_parses() {
        let l = default_experiment(&[]).unwrap();
        assert_eq!(l.spec, ExperimentSpec::default_heart());
    }
}
