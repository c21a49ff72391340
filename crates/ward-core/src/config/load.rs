//! Loading experiment files: TOML text plus `--set KEY=VALUE` overrides → a checked
//! [`ExperimentSpec`], with errors that name the file, the line and the dotted key.
//!
//! Every error of a loaded file is a [`ConfigError`] placed in the file: unknown keys,
//! wrong types, unknown names, missing keys and out-of-range or inconsistent values
//! alike (`x.toml:2: federation.rounds: invalid type: string "three", expected usize`).
//! A value that came from the command line says which `--set` gave it.

use std::path::{Path, PathBuf};

use thiserror::Error;

use super::{CheckedSpec, ExperimentSpec};
use crate::ConfigError;

/// The name [`default_experiment`] gives its source in errors.
pub const DEFAULT_SOURCE: &str = "<default experiment>";

/// A loaded and checked experiment, and where relative paths in it resolve from.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The experiment, checked by [`ExperimentSpec::check`].
    pub spec: CheckedSpec,
    /// The folder of the experiment file (`.` for the default experiment).
    pub base_dir: PathBuf,
}

/// Why an experiment could not be loaded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read (the message names the path).
    #[error(transparent)]
    Read(#[from] std::io::Error),
    /// The text is not TOML.
    #[error("{file}: invalid TOML: {message}")]
    Syntax {
        /// The experiment file.
        file: String,
        /// The TOML parser's message (with line and column).
        message: String,
    },
    /// A `--set` argument is not `KEY=VALUE` or does not fit the document.
    #[error("--set {set:?}: {reason}")]
    Set {
        /// The argument as given.
        set: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A key is unknown, of the wrong type, missing, out of range or inconsistent.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The built-in default experiment could not be written as TOML (a bug).
    #[error("internal: default experiment: {0}")]
    Internal(String),
}

impl LoadError {
    /// The config error, when this is one.
    pub fn as_config(&self) -> Option<&ConfigError> {
        match self {
            Self::Config(e) => Some(e),
            _ => None,
        }
    }
}

/// The built-in default experiment ([`ExperimentSpec::default_heart`]) with `sets`
/// applied; relative paths resolve from `.`.
///
/// ```
/// let l = ward_core::config::default_experiment(&["federation.rounds=3".into()])?;
/// assert_eq!(l.spec.federation.rounds, 3);
/// let e = ward_core::config::default_experiment(&["federation.rounds=0".into()]).unwrap_err();
/// assert_eq!(
///     e.to_string(),
///     "<default experiment>: federation.rounds: must be >= 1 (from --set federation.rounds=0)"
/// );
/// Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn default_experiment(sets: &[String]) -> Result<Loaded, LoadError> {
    let text = toml::to_string(&ExperimentSpec::default_heart())
        .map_err(|e| LoadError::Internal(e.to_string()))?;
    load_str(DEFAULT_SOURCE, &text, sets, PathBuf::from("."))
}

/// Reads and checks the experiment file `path`, applying `sets`; relative paths in it
/// resolve from its folder.
pub fn load_file(path: &Path, sets: &[String]) -> Result<Loaded, LoadError> {
    let text = fs_err::read_to_string(path)?;
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    load_str(&path.display().to_string(), &text, sets, base)
}

/// Parses and checks the experiment `text`, read from `source` (a file name, used in
/// errors; a name in angle brackets such as `<default experiment>` has no lines), with
/// the `--set KEY=VALUE` overrides `sets` applied in order (a later one wins).
///
/// ```
/// use ward_core::config::load_str;
///
/// let text = "[data]\ndataset = \"fed-heart-disease\"\n[federation]\nrounds = \"three\"\n";
/// let e = load_str("x.toml", text, &[], ".".into()).unwrap_err();
/// assert_eq!(
///     e.to_string(),
///     "x.toml:4: federation.rounds: invalid type: string \"three\", expected usize"
/// );
/// let l = load_str("x.toml", text, &["federation.rounds=3".into()], ".".into())?;
/// assert_eq!(l.spec.federation.rounds, 3);
/// Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn load_str(
    source: &str,
    text: &str,
    sets: &[String],
    base_dir: PathBuf,
) -> Result<Loaded, LoadError> {
    let mut doc: toml_edit::DocumentMut =
        text.parse()
            .map_err(|e: toml_edit::TomlError| LoadError::Syntax {
                file: source.to_string(),
                message: e.to_string(),
            })?;
    let mut applied = Vec::with_capacity(sets.len());
    for s in sets {
        applied.push(apply_set(&mut doc, s)?);
    }
    let place = Placer {
        source,
        // Line numbers only mean something in a file the user wrote.
        original: (!source.starts_with('<'))
            .then(|| toml_edit::Document::parse(text.to_string()).ok())
            .flatten(),
        text,
        sets: &applied,
    };
    // `[robust]` and `[attack]` are read tag first (the tag decides which keys the
    // table takes); with the tag first, errors in their keys keep their dotted path.
    for (table, tag) in [("robust", "aggregator"), ("attack", "kind")] {
        if let Some(t) = doc.get_mut(table).and_then(toml_edit::Item::as_table_mut) {
            t.sort_values_by(|a, _, b, _| (a.get() != tag).cmp(&(b.get() != tag)));
        }
    }
    let final_text = doc.to_string();
    let de = toml::Deserializer::parse(&final_text).map_err(|e| LoadError::Syntax {
        file: source.to_string(),
        message: e.to_string(),
    })?;
    let spec: ExperimentSpec =
        serde_path_to_error::deserialize(de).map_err(|e| place.error(serde_error(&e)))?;
    let spec = spec.check().map_err(|e| place.error(e))?;
    Ok(Loaded { spec, base_dir })
}

/// One applied `--set`: its dotted key and the argument as given.
#[derive(Debug)]
struct AppliedSet {
    key: String,
    arg: String,
}

/// Applies one `key.path=value` override to the document.
fn apply_set(doc: &mut toml_edit::DocumentMut, set: &str) -> Result<AppliedSet, LoadError> {
    let bad = |reason: String| LoadError::Set {
        set: set.to_string(),
        reason,
    };
    let (key, raw) = set
        .split_once('=')
        .ok_or_else(|| bad("expected KEY=VALUE, e.g. --set federation.rounds=5".into()))?;
    let key = key.trim();
    let parts: Vec<&str> = key.split('.').map(str::trim).collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(bad(format!("bad key {key:?}")));
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
        table = item
            .as_table_mut()
            .ok_or_else(|| bad(format!("{p:?} is not a table in the experiment")))?;
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
    Ok(AppliedSet {
        key: parts.join("."),
        arg: set.to_string(),
    })
}

/// A serde error as a [`ConfigError`] naming the dotted key: the path of the value
/// that failed, or for an unknown or missing key, that key inside its table.
pub(super) fn serde_error(e: &serde_path_to_error::Error<toml::de::Error>) -> ConfigError {
    let mut key = String::new();
    for seg in e.path().iter() {
        match seg {
            serde_path_to_error::Segment::Map { key: k } => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(k);
            }
            serde_path_to_error::Segment::Seq { index } => key.push_str(&format!("[{index}]")),
            serde_path_to_error::Segment::Enum { .. } => {}
            serde_path_to_error::Segment::Unknown => break,
        }
    }
    let message = e.inner().message().trim_end().to_string();
    let quoted = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
            .map(str::to_string)
    };
    let join = |key: &str, name: &str| {
        if key.is_empty() {
            name.to_string()
        } else if key.rsplit('.').next() == Some(name) {
            key.to_string()
        } else {
            format!("{key}.{name}")
        }
    };
    // "unknown field `x`, expected one of ...", or a rule's own ": is not an option ...".
    if let Some(name) = quoted("unknown field `") {
        let rest = &message["unknown field `".len() + name.len() + 1..];
        let reason = match rest.strip_prefix(": ") {
            Some(why) => why.to_string(),
            None => {
                let expected = rest
                    .split_once(", expected ")
                    .map(|(_, e)| format!(" (expected {e})"))
                    .unwrap_or_default();
                format!("unknown key{expected}")
            }
        };
        return ConfigError::new(join(&key, &name), reason);
    }
    if let Some(name) = quoted("missing field `") {
        let rest = &message["missing field `".len() + name.len() + 1..];
        let reason = rest.strip_prefix(": ").unwrap_or("is required");
        return ConfigError::new(join(&key, &name), reason);
    }
    if key.is_empty() {
        key.push_str("(document)");
    }
    ConfigError::new(key, message)
}

/// Places errors in the experiment file: its line, and the `--set` that gave the value.
struct Placer<'a> {
    source: &'a str,
    original: Option<toml_edit::Document<String>>,
    text: &'a str,
    sets: &'a [AppliedSet],
}

impl Placer<'_> {
    fn error(&self, e: ConfigError) -> LoadError {
        let (line, exact) = self
            .original
            .as_ref()
            .map_or((None, false), |doc| find_line(doc, self.text, &e.key));
        // The last --set of this key (or of a table holding it) gave its value.
        let set = self
            .sets
            .iter()
            .rev()
            .find(|s| {
                e.key == s.key
                    || e.key
                        .strip_prefix(s.key.as_str())
                        .is_some_and(|rest| rest.starts_with(['.', '[']))
            })
            .map(|s| s.arg.clone());
        // A value from the command line has a line only where the file has the key too.
        let line = line.filter(|_| exact || set.is_none());
        LoadError::Config(e.located(self.source, line, set))
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Splits `a.b[2].c` into `[("a", []), ("b", [2]), ("c", [])]`.
fn key_parts(key: &str) -> Vec<(&str, Vec<usize>)> {
    key.split('.')
        .map(|part| {
            let mut pieces = part.split('[');
            let name = pieces.next().unwrap_or_default();
            let idx = pieces
                .filter_map(|p| p.strip_suffix(']')?.parse().ok())
                .collect();
            (name, idx)
        })
        .collect()
}

/// A place in a parsed document.
#[derive(Clone, Copy)]
enum Node<'a> {
    Item(&'a toml_edit::Item),
    Table(&'a toml_edit::Table),
    Value(&'a toml_edit::Value),
}

impl<'a> Node<'a> {
    fn span(self) -> Option<std::ops::Range<usize>> {
        match self {
            Self::Item(i) => i.span(),
            Self::Table(t) => t.span(),
            Self::Value(v) => v.span(),
        }
    }

    fn element(self, i: usize) -> Option<Node<'a>> {
        match self {
            Self::Item(toml_edit::Item::ArrayOfTables(a)) => a.get(i).map(Node::Table),
            Self::Item(toml_edit::Item::Value(toml_edit::Value::Array(a)))
            | Self::Value(toml_edit::Value::Array(a)) => a.get(i).map(Node::Value),
            _ => None,
        }
    }

    fn table(self) -> Option<&'a dyn toml_edit::TableLike> {
        match self {
            Self::Item(i) => i.as_table_like(),
            Self::Table(t) => Some(t),
            Self::Value(v) => v.as_inline_table().map(|t| t as &dyn toml_edit::TableLike),
        }
    }
}

/// The line of a dotted key (kebab-case as in the file, `[i]` for array elements) in
/// `doc`, and whether the key itself is there; when it is not, the line of the deepest
/// table or element that is.
fn find_line(doc: &toml_edit::Document<String>, text: &str, key: &str) -> (Option<usize>, bool) {
    let mut best = None;
    let mut mark = |span: Option<std::ops::Range<usize>>| {
        if let Some(s) = span {
            best = Some(line_of(text, s.start));
        }
    };
    let mut table: &dyn toml_edit::TableLike = doc.as_table();
    let parts = key_parts(key);
    for (n, (name, idx)) in parts.iter().enumerate() {
        let Some((k, item)) = table.get_key_value(name) else {
            return (best, false);
        };
        mark(k.span().or_else(|| item.span()));
        let mut node = Node::Item(item);
        for &i in idx {
            let Some(next) = node.element(i) else {
                return (best, false);
            };
            mark(next.span());
            node = next;
        }
        if n + 1 == parts.len() {
            return (best, true);
        }
        let Some(t) = node.table() else {
            return (best, false);
        };
        table = t;
    }
    (best, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AttackKind, AttackSpec, MedmnistName};

    /// A valid experiment touching every top-level section; the table below edits one
    /// or two of its lines (numbered from 1).
    const BASE: [&str; 28] = [
        "name = \"t\"",
        "seed = 1",
        "",
        "[data]",
        "dataset = \"fed-heart-disease\"",
        "test-fraction = 0.34",
        "",
        "[model]",
        "kind = \"logistic\"",
        "",
        "[train]",
        "lr = 0.01",
        "local-steps = 10",
        "",
        "[federation]",
        "rounds = 3",
        "",
        "[robust]",
        "aggregator = \"krum\"",
        "f = 1",
        "",
        "[attack]",
        "kind = \"sign-flip\"",
        "f = 1",
        "",
        "[privacy.dp-sgd]",
        "clip = 1.0",
        "noise-multiplier = 1.0",
    ];

    fn text_with(edits: &[(usize, &str)]) -> String {
        let mut lines: Vec<&str> = BASE.to_vec();
        for &(n, l) in edits {
            lines[n - 1] = l;
        }
        lines.join("\n") + "\n"
    }

    fn err(edits: &[(usize, &str)], sets: &[&str]) -> String {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        match load_str("x.toml", &text_with(edits), &sets, ".".into()) {
            Ok(l) => panic!("{edits:?} {sets:?}: loaded {:?}", l.spec),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn base_experiment_loads() {
        let l = load_str("x.toml", &text_with(&[]), &[], ".".into()).unwrap();
        assert_eq!(l.spec.federation.rounds, 3);
        assert_eq!(l.base_dir, PathBuf::from("."));
    }

    /// One case of the config error table: line edits to the base experiment, and the
    /// start of the error they must give.
    type ErrorCase = (&'static [(usize, &'static str)], &'static str);

    /// Error cases for the top-level keys and `[data]`.
    fn top_level_and_data_error_cases() -> &'static [ErrorCase] {
        &[
            // top level
            (
                &[(2, "sed = 1")],
                "x.toml:2: sed: unknown key (expected one of",
            ),
            (
                &[(2, "seed = \"one\"")],
                "x.toml:2: seed: invalid type: string \"one\", expected u64",
            ),
            (
                &[(1, "name = \"a b\"")],
                "x.toml:1: name: \"a b\" may only hold ASCII letters, digits, '-', '_' and '.' (it names the run directory)",
            ),
            (&[(3, "[federaton]")], "x.toml:3: federaton: unknown key"),
            // [data]
            (
                &[(6, "test-fractoin = 0.34")],
                "x.toml:6: data.test-fractoin: unknown key (expected one of",
            ),
            (
                &[(6, "test-fraction = \"a third\"")],
                "x.toml:6: data.test-fraction: invalid type: string \"a third\", expected f64",
            ),
            (
                &[(6, "test-fraction = 1.5")],
                "x.toml:6: data.test-fraction: must be in (0, 1), got 1.5",
            ),
            (
                &[(5, "dataset = \"heart\"")],
                "x.toml:5: data.dataset: unknown variant `heart`, expected one of",
            ),
            (&[(5, "")], "x.toml:4: data.dataset: is required"),
        ]
    }

    /// Error cases for `[model]`, `[train]` and `[federation]`.
    fn model_train_federation_error_cases() -> &'static [ErrorCase] {
        &[
            // [model]
            (
                &[(9, "kinds = \"mlp\"")],
                "x.toml:9: model.kinds: unknown key",
            ),
            (
                &[(9, "kind = 3")],
                "x.toml:9: model.kind: wanted string or table",
            ),
            (
                &[(9, "kind = \"mlp\""), (10, "hidden = [0]")],
                "x.toml:10: model.hidden: layer sizes must be >= 1, got [0]",
            ),
            // [train]
            (
                &[(12, "learning-rate = 0.01")],
                "x.toml:12: train.learning-rate: unknown key",
            ),
            (
                &[(12, "lr = \"fast\"")],
                "x.toml:12: train.lr: invalid type: string \"fast\", expected f64",
            ),
            (
                &[(12, "lr = -0.5")],
                "x.toml:12: train.lr: must be a finite number > 0, got -0.5",
            ),
            // [federation]
            (
                &[(16, "round = 3")],
                "x.toml:16: federation.round: unknown key",
            ),
            (
                &[(16, "rounds = \"three\"")],
                "x.toml:16: federation.rounds: invalid type: string \"three\", expected usize",
            ),
            (
                &[(16, "rounds = 0")],
                "x.toml:16: federation.rounds: must be >= 1",
            ),
            (
                &[(16, "strategy = \"fedadam\"")],
                "x.toml:15: federation.server-lr: is required for strategy \"fedadam\"",
            ),
        ]
    }

    /// Error cases for `[robust]`, `[attack]` and `[privacy]`.
    fn robust_attack_privacy_error_cases() -> &'static [ErrorCase] {
        &[
            // [robust]
            (&[(21, "fff = 1")], "x.toml:21: robust.fff: unknown key"),
            (
                &[(20, "f = \"one\"")],
                "x.toml:20: robust.f: invalid type: string \"one\", expected usize",
            ),
            (
                &[(19, "aggregator = \"multi-krum\""), (21, "m = 0")],
                "x.toml:21: robust.m: must be >= 1",
            ),
            // a key of another rule, refused by name
            (
                &[(21, "tau = 1.0")],
                "x.toml:21: robust.tau: is not an option of aggregator \"krum\" (it has none of its own)",
            ),
            // the tag after the options: still typed errors at their keys
            (
                &[(19, "m = \"two\""), (21, "aggregator = \"multi-krum\"")],
                "x.toml:19: robust.m: invalid type: string \"two\", expected usize",
            ),
            (
                &[(19, "lambda = 0.1"), (21, "aggregator = \"krum\"")],
                "x.toml:19: robust.lambda: is not an option of aggregator \"krum\"",
            ),
            (
                &[(19, "aggregator = \"clipped-mean\""), (20, "")],
                "x.toml:18: robust.tau: is required for aggregator \"clipped-mean\"",
            ),
            // [attack]
            (&[(24, "ff = 1")], "x.toml:24: attack.ff: unknown key"),
            (
                &[(24, "f = -1")],
                "x.toml:24: attack.f: invalid value: integer `-1`, expected usize",
            ),
            (&[(24, "f = 0")], "x.toml:24: attack.f: must be >= 1"),
            // a key of another attack, refused by name
            (
                &[(25, "target = 1")],
                "x.toml:25: attack.target: is not an option of attack \"sign-flip\" (its own: scale)",
            ),
            (
                &[(23, "kind = \"gaussian\"")],
                "x.toml:22: attack.scale: is required for attack \"gaussian\"",
            ),
            // [privacy]
            (
                &[(28, "noise = 1.0")],
                "x.toml:28: privacy.dp-sgd.noise: unknown key",
            ),
            (
                &[(27, "clip = \"big\"")],
                "x.toml:27: privacy.dp-sgd.clip: invalid type: string \"big\", expected f64",
            ),
            (
                &[(27, "clip = 0.0")],
                "x.toml:27: privacy.dp-sgd.clip: must be a finite number > 0, got 0",
            ),
            (
                &[(26, "[privacy.dp-sg]")],
                "x.toml:26: privacy.dp-sg: unknown key",
            ),
        ]
    }

    /// For every top-level section and the top-level keys: an unknown key, a wrong type
    /// and an out-of-range value, each naming the file, the exact line and the dotted key.
    #[test]
    fn config_error_table_names_file_line_and_key() {
        let cases = [
            top_level_and_data_error_cases(),
            model_train_federation_error_cases(),
            robust_attack_privacy_error_cases(),
        ]
        .concat();
        for (edits, want) in cases {
            let e = err(edits, &[]);
            assert!(e.starts_with(want), "{edits:?}:\n got: {e}\nwant: {want}");
        }
    }

    /// Resolved `config.toml` files of earlier versions hold `perturbation = "std"` for
    /// every attack: they still load; another perturbation is refused where unused.
    #[test]
    fn legacy_default_perturbation_is_accepted() {
        let l = load_str(
            "x.toml",
            &text_with(&[(25, "perturbation = \"std\"")]),
            &[],
            ".".into(),
        )
        .unwrap();
        assert_eq!(
            l.spec.attack.as_ref().map(AttackSpec::kind),
            Some(AttackKind::SignFlip)
        );
        let e = err(&[(25, "perturbation = \"sign\"")], &[]);
        assert_eq!(
            e,
            "x.toml:25: attack.perturbation: is not an option of attack \"sign-flip\" (its own: scale)"
        );
    }

    /// The image-folder reader resizes bilinearly whatever `resample` says: `nearest`
    /// is refused at its line instead of being ignored.
    #[test]
    fn resample_is_refused_where_the_reader_ignores_it() {
        let text = |resample: &str| {
            format!(
                "[data]\ndataset = \"image-folder\"\npath = \"imgs\"\nimages = {{ classes = 2 }}\n[data.reader]\nheight = 8\nwidth = 8\n{resample}\n[model]\nkind = \"cnn\"\n"
            )
        };
        let e = load_str("x.toml", &text("resample = \"nearest\""), &[], ".".into()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.toml:8: data.reader.resample: is not used by image-folder: PNG/JPEG images are always resized bilinearly (resample is for nifti and dicom)"
        );
        load_str("x.toml", &text(""), &[], ".".into()).unwrap();
        let nifti = text("resample = \"nearest\"\nslices = true")
            .replace("image-folder", "nifti")
            .replace("imgs", "labels.csv");
        load_str("x.toml", &nifti, &[], ".".into()).unwrap();
    }

    /// The NIfTI geometry and intensity keys are refused, at their line, for the readers
    /// that do not use them, and their values are checked.
    #[test]
    fn nifti_geometry_keys_are_checked_and_nifti_only() {
        let text = |dataset: &str, extra: &str| {
            format!(
                "[data]\ndataset = \"{dataset}\"\npath = \"labels.csv\"\nimages = {{ classes = 2 }}\n[data.reader]\nheight = 8\nwidth = 8\n{extra}\n[model]\nkind = \"cnn\"\n"
            )
        };
        let e = |dataset: &str, extra: &str| {
            load_str("x.toml", &text(dataset, extra), &[], ".".into())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e("dicom", "orientation = \"LPS\""),
            "x.toml:8: data.reader.orientation: is only for data.dataset = \"nifti\", or \"dicom\" with series = true"
        );
        assert_eq!(
            e("image-folder", "antialias = false"),
            "x.toml:8: data.reader.antialias: is only for data.dataset = \"nifti\", or \"dicom\" with series = true"
        );
        assert_eq!(
            e("dicom", "intensity = \"z-score\""),
            "x.toml:8: data.reader.intensity: \"percentile\" and \"z-score\" are only for nifti"
        );
        assert_eq!(
            e("nifti", "slices = true\norientation = \"RAR\""),
            "x.toml:9: data.reader.orientation: \"RAR\" is not \"storage\" or three axis letters, one of R/L, one of A/P, one of S/I (e.g. \"RAS\", \"LPS\")"
        );
        assert_eq!(
            e(
                "nifti",
                "slices = true\nintensity = \"percentile\"\npercentiles = [50.0, 50.0]"
            ),
            "x.toml:10: data.reader.percentiles: intensity = \"percentile\" needs percentiles = [low, high] with 0 <= low < high <= 100"
        );
        assert_eq!(
            e("dicom", "slice-axis = \"coronal\""),
            "x.toml:8: data.reader.slice-axis: is only for data.dataset = \"nifti\" with slices = true"
        );
        let ok = "slices = true\nslice-axis = \"sagittal\"\norientation = \"storage\"\nspacing = [1.0, 1.0, 2.5]\nfit = \"crop-or-pad\"\nintensity = \"window\"\nwindow = [40.0, 400.0]";
        load_str("x.toml", &text("nifti", ok), &[], ".".into()).unwrap();
    }

    /// The DICOM keys `window-index` and `spacing-check` load where they apply and are
    /// refused at their line elsewhere.
    #[test]
    fn dicom_window_index_and_spacing_check() {
        let text = |reader: &str| {
            format!(
                "[data]\ndataset = \"dicom\"\npath = \"labels.csv\"\nimages = {{ classes = 2, dims = \"3d\" }}\n[data.reader]\nheight = 8\nwidth = 8\ndepth = 4\nseries = true\n{reader}\n[model]\nkind = \"cnn\"\n"
            )
        };
        let ok = load_str(
            "x.toml",
            &text("intensity = \"file-window\"\nwindow-index = 2\nspacing-check = \"warn\""),
            &[],
            ".".into(),
        )
        .unwrap();
        let r = ok.spec.data.reader.clone().unwrap();
        assert_eq!(
            (r.window_index, r.spacing_check),
            (2, crate::config::SpacingCheckKind::Warn)
        );
        let e = |reader: &str| {
            load_str("x.toml", &text(reader), &[], ".".into())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e("window-index = 1"),
            "x.toml:10: data.reader.window-index: is only for intensity = \"file-window\""
        );
        assert!(
            e("spacing-check = \"maybe\"").starts_with(
                "x.toml:10: data.reader.spacing-check: unknown variant `maybe`, expected `refuse` or `warn`"
            ),
            "{}",
            e("spacing-check = \"maybe\"")
        );
        let series_off = text("spacing-check = \"warn\"")
            .replace("series = true", "series = false")
            .replace("depth = 4\n", "")
            .replace(", dims = \"3d\"", "");
        assert_eq!(
            load_str("x.toml", &series_off, &[], ".".into())
                .unwrap_err()
                .to_string(),
            "x.toml:9: data.reader.spacing-check: is only for data.dataset = \"dicom\" with series = true"
        );
    }

    /// `data.medmnist` names a MedMNIST v2 dataset: alone it is enough; with
    /// `[data.images]`, with another dataset kind, with `data.test-fraction`, or
    /// misspelt it is refused at its line.
    #[test]
    fn medmnist_name_replaces_images_and_refuses_what_does_not_fit() {
        let text = |extra: &str| {
            format!(
                "[data]\ndataset = \"medmnist\"\npath = \"pathmnist.npz\"\n{extra}\n[model]\nkind = \"cnn\"\n"
            )
        };
        let ok = load_str(
            "x.toml",
            &text("medmnist = \"organmnist3d\""),
            &[],
            ".".into(),
        )
        .unwrap();
        assert_eq!(ok.spec.data.medmnist, Some(MedmnistName::Organmnist3d));
        let e = |extra: &str| {
            load_str("x.toml", &text(extra), &[], ".".into())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e("medmnist = \"pathmnist\"\nimages = { classes = 9 }"),
            "x.toml:5: data.images: is not used with data.medmnist = \"pathmnist\": task, classes, channels and dims come from the MedMNIST v2 table; remove [data.images], or remove data.medmnist for a file that is not a MedMNIST release"
        );
        assert!(
            e("").starts_with("x.toml:1: data.images: is required when data.dataset = \"medmnist\" has no data.medmnist"),
            "{}",
            e("")
        );
        assert_eq!(
            e("medmnist = \"pathmnist\"\ntest-fraction = 0.2"),
            "x.toml:5: data.test-fraction: is not used by data.dataset = \"medmnist\" (got 0.2): the file's own test split is the test data; remove data.test-fraction"
        );
        let typo = e("medmnist = \"pathmnst\"");
        assert!(
            typo.starts_with("x.toml:4: data.medmnist: unknown variant `pathmnst`")
                && typo.contains("`pathmnist`"),
            "{typo}"
        );
        let csv = load_str(
            "x.toml",
            "[data]\ndataset = \"breast-cancer\"\nmedmnist = \"pathmnist\"\npartition = { kind = \"iid\", sites = 2 }\n",
            &[],
            ".".into(),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            csv,
            "x.toml:3: data.medmnist: is only for data.dataset = \"medmnist\""
        );
    }

    #[test]
    fn array_elements_are_named_by_index() {
        let e = err(
            &[
                (23, "kind = \"backdoor\""),
                (
                    25,
                    "target = 1\nrate = 0.5\ntrigger = [{ feature = 0, value = 1.0 }, { feature = 1, value = \"x\" }]",
                ),
            ],
            &[],
        );
        assert!(
            e.starts_with(
                "x.toml:27: attack.trigger[1].value: invalid type: string \"x\", expected f64"
            ),
            "{e}"
        );
    }

    #[test]
    fn set_overrides_name_their_set() {
        let cases: &[(&str, &str)] = &[
            (
                "federation.rounds=0",
                "x.toml:16: federation.rounds: must be >= 1 (from --set federation.rounds=0)",
            ),
            (
                "federation.rounds=three",
                "x.toml:16: federation.rounds: invalid type: string \"three\", expected usize (from --set federation.rounds=three)",
            ),
            (
                "train.momentum=2",
                "x.toml: train.momentum: must be in [0, 1), got 2 (from --set train.momentum=2)",
            ),
            (
                "train.learning-rate=1",
                "x.toml: train.learning-rate: unknown key (expected one of",
            ),
        ];
        for (set, want) in cases {
            let e = err(&[], &[set]);
            assert!(e.starts_with(want), "{set}:\n got: {e}\nwant: {want}");
            assert!(e.ends_with(&format!("(from --set {set})")), "{e}");
        }
        let e = err(&[], &["nonsense"]);
        assert_eq!(
            e,
            "--set \"nonsense\": expected KEY=VALUE, e.g. --set federation.rounds=5"
        );
        let e = err(&[], &["seed.x=1"]);
        assert_eq!(
            e,
            "--set \"seed.x=1\": \"seed\" is not a table in the experiment"
        );
    }

    #[test]
    fn set_reaches_into_inline_tables() {
        let text = "name = \"t\"\n[data]\ndataset = \"synth\"\nsynth = { sites = 4, per-site = 600 }\n[model]\nkind = \"cnn\"\n";
        let l = load_str(
            "x.toml",
            text,
            &["data.synth.per-site=50".into()],
            ".".into(),
        )
        .unwrap();
        let s = l.spec.data.synth.unwrap();
        assert_eq!((s.sites, s.per_site), (4, 50));
    }

    #[test]
    fn set_overrides_and_local_steps_exclude_epochs() {
        let text = text_with(&[]);
        let l = load_str("x.toml", &text, &["federation.rounds=5".into()], ".".into()).unwrap();
        assert_eq!(l.spec.federation.rounds, 5);
        let l = load_str(
            "x.toml",
            &text,
            &["train.local-epochs=2".into()],
            ".".into(),
        )
        .unwrap();
        assert_eq!(
            (l.spec.train.local_steps, l.spec.train.local_epochs),
            (None, Some(2))
        );
        let l = load_str(
            "x.toml",
            &text,
            &[
                "federation.strategy=fedprox".into(),
                "federation.mu=0.1".into(),
            ],
            ".".into(),
        )
        .unwrap();
        assert_eq!(l.spec.federation.mu, Some(0.1));
    }

    #[test]
    fn syntax_errors_and_unreadable_files_name_the_file() {
        let e = load_str("x.toml", "[data\n", &[], ".".into()).unwrap_err();
        assert!(e.to_string().starts_with("x.toml: invalid TOML: "), "{e}");
        let e = load_file(Path::new("/nonexistent/x.toml"), &[]).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/x.toml"), "{e}");
    }

    #[test]
    fn default_experiment_has_no_lines() {
        let l = default_experiment(&[]).unwrap();
        assert_eq!(*l.spec, ExperimentSpec::default_heart());
        let e = default_experiment(&["train.lr=0".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "<default experiment>: train.lr: must be a finite number > 0, got 0 (from --set train.lr=0)"
        );
        let c = e.as_config().unwrap();
        assert_eq!((c.key.as_str(), c.line), ("train.lr", None));
    }
}
