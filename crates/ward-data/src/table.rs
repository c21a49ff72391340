//! The CSV reader behind every dataset: columns → features, target → labels, rows → sites.
//!
//! [`TableSpec`] is the internal description that both the `csv` dataset (from
//! [`DataSpec`]) and the built-in datasets are turned into, so they share one code path.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ward_core::config::{DataSpec, MissingPolicy, PartitionSpec};

use crate::dataset::{FederatedDataset, SiteData};
use crate::partition::partition;
use crate::split::{site_split_seed, train_test_split};
use crate::{DataError, Matrix, Split};

/// The largest class label accepted by the `"class"` rule (labels size per-class tables).
pub(crate) const MAX_CLASS_LABEL: u32 = 65_535;

/// Where the column names come from.
#[derive(Debug, Clone)]
pub(crate) enum Header {
    /// The first line of the file.
    FirstLine,
    /// These names; the file's first line is skipped (e.g. scikit-learn's shape line).
    Given(Vec<String>),
}

/// One input column and the feature columns it becomes.
#[derive(Debug, Clone)]
pub(crate) enum Feature {
    /// Parsed as `f64`, stored as `f32`.
    Numeric {
        /// Header name.
        column: String,
        /// Experiment-file key for messages.
        key: &'static str,
    },
    /// One-hot without the reference level.
    Categorical {
        /// Header name.
        column: String,
        /// Level without an indicator.
        reference: String,
        /// Indicator levels in order; empty: every level seen in the file but the reference,
        /// sorted.
        levels: Vec<String>,
        /// Name the single indicator after the column alone (`sex`, not `sex=Male`); only
        /// meaningful with exactly one level.
        plain_name: bool,
        /// Experiment-file key for messages.
        key: &'static str,
    },
}

impl Feature {
    fn column(&self) -> &str {
        match self {
            Self::Numeric { column, .. } | Self::Categorical { column, .. } => column,
        }
    }

    fn key(&self) -> &'static str {
        match self {
            Self::Numeric { key, .. } | Self::Categorical { key, .. } => key,
        }
    }
}

/// Ordering comparison of a binary target rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    Gt,
    Ge,
    Lt,
    Le,
}

/// How the target field becomes a label.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Rule {
    /// Integer labels `0..k` as written.
    Class,
    /// Label 1 where `field <op> threshold` holds (numerically), else 0.
    Order { op: Order, threshold: f64 },
    /// Label 1 where the field equals `text` (or differs, with `negate`): numerically when
    /// both parse as numbers, else as strings.
    Equal {
        negate: bool,
        text: String,
        number: Option<f64>,
    },
}

impl Rule {
    /// Parses `"> 0"`, `">= 1"`, `"< 5"`, `"<= 2"`, `"== M"`, `"!= 0"` or `"class"`.
    pub(crate) fn parse(rule: &str) -> Result<Self, DataError> {
        const KEY: &str = "data.target.rule";
        let rule = rule.trim();
        if rule == "class" {
            return Ok(Self::Class);
        }
        // Two-character operators first, so ">=" is not read as ">" then "=1".
        let ops = [">=", "<=", "==", "!=", ">", "<"];
        let Some((sym, rest)) = ops
            .iter()
            .find_map(|&sym| rule.strip_prefix(sym).map(|rest| (sym, rest.trim())))
        else {
            return Err(DataError::spec(
                KEY,
                format!(
                    "{rule:?} is not a rule; use \"class\" or a comparison such as \"> 0\", \
                     \">= 1\", \"< 5\", \"<= 2\", \"== M\", \"!= 0\""
                ),
            ));
        };
        if rest.is_empty() {
            return Err(DataError::spec(
                KEY,
                format!("{rule:?} has no value after {sym:?}"),
            ));
        }
        let number = parse_number(rest);
        let op = match sym {
            "==" | "!=" => {
                return Ok(Self::Equal {
                    negate: sym == "!=",
                    text: rest.to_owned(),
                    number,
                });
            }
            ">=" => Order::Ge,
            "<=" => Order::Le,
            ">" => Order::Gt,
            _ => Order::Lt,
        };
        let threshold = number.ok_or_else(|| {
            DataError::spec(
                KEY,
                format!("{rule:?}: {sym} needs a finite number, got {rest:?}"),
            )
        })?;
        Ok(Self::Order { op, threshold })
    }

    fn num_classes_fixed(&self) -> Option<usize> {
        match self {
            Self::Class => None,
            Self::Order { .. } | Self::Equal { .. } => Some(2),
        }
    }

    /// The label of one (non-missing, trimmed) target field; `Err` holds the message.
    fn label(&self, field: &str) -> Result<u32, String> {
        match self {
            Self::Class => {
                let v = parse_number(field).ok_or_else(|| {
                    format!("{field:?} is not a class label (an integer >= 0; data.target.rule = \"class\")")
                })?;
                if v < 0.0 || v.fract() != 0.0 {
                    return Err(format!(
                        "{field:?} is not a class label (an integer >= 0; data.target.rule = \"class\")"
                    ));
                }
                if v > f64::from(MAX_CLASS_LABEL) {
                    return Err(format!(
                        "class label {field:?} is larger than the largest supported, {MAX_CLASS_LABEL}"
                    ));
                }
                // Integral and in 0..=MAX_CLASS_LABEL: exact.
                Ok(v as u32)
            }
            Self::Order { op, threshold } => {
                let v = parse_number(field).ok_or_else(|| {
                    format!(
                        "{field:?} is not a number (data.target.rule compares it with {threshold})"
                    )
                })?;
                let holds = match op {
                    Order::Gt => v > *threshold,
                    Order::Ge => v >= *threshold,
                    Order::Lt => v < *threshold,
                    Order::Le => v <= *threshold,
                };
                Ok(u32::from(holds))
            }
            Self::Equal {
                negate,
                text,
                number,
            } => {
                let equal = match (parse_number(field), number) {
                    (Some(a), Some(b)) => a == *b,
                    _ => field == text,
                };
                Ok(u32::from(equal != *negate))
            }
        }
    }
}

/// A finite `f64`, or `None`.
fn parse_number(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Where the sites come from.
#[derive(Debug, Clone)]
pub(crate) enum Sites {
    /// A column names each row's site; sites in order of first appearance.
    Column { column: String, key: &'static str },
    /// Rows are spread over `site-0`, `site-1`, ... by [`partition`].
    Partition(PartitionSpec),
}

/// A complete description of a tabular dataset.
#[derive(Debug, Clone)]
pub(crate) struct TableSpec {
    /// Dataset name.
    pub(crate) name: String,
    /// Column names.
    pub(crate) header: Header,
    /// Input columns in feature order.
    pub(crate) features: Vec<Feature>,
    /// Target column.
    pub(crate) target_column: String,
    /// Target rule.
    pub(crate) rule: Rule,
    /// Sites.
    pub(crate) sites: Sites,
    /// Trimmed field values that mean "missing".
    pub(crate) missing_tokens: Vec<String>,
    /// Drop or impute.
    pub(crate) missing: MissingPolicy,
    /// Test share per site.
    pub(crate) test_fraction: f64,
    /// Split seed.
    pub(crate) split_seed: u64,
}

impl TableSpec {
    /// The description of a `dataset = "csv"` spec (path resolved by the caller).
    pub(crate) fn from_csv_spec(spec: &DataSpec, name: String) -> Result<Self, DataError> {
        let target = spec
            .target
            .as_ref()
            .ok_or_else(|| DataError::spec("data.target", "is required for a csv dataset"))?;
        let sites = match (&spec.site_column, &spec.partition) {
            (Some(column), None) => Sites::Column {
                column: column.clone(),
                key: "data.site-column",
            },
            (None, Some(p)) => Sites::Partition(p.clone()),
            (Some(_), Some(_)) => {
                return Err(DataError::spec(
                    "data.partition",
                    "give either data.site-column or [data.partition], not both",
                ));
            }
            (None, None) => {
                return Err(DataError::spec(
                    "data.partition",
                    "a csv dataset without data.site-column needs [data.partition]",
                ));
            }
        };
        let mut features: Vec<Feature> = spec
            .numeric
            .iter()
            .map(|c| Feature::Numeric {
                column: c.clone(),
                key: "data.numeric",
            })
            .collect();
        features.extend(spec.categorical.iter().map(|c| Feature::Categorical {
            column: c.column.clone(),
            reference: c.reference.clone(),
            levels: c.levels.clone(),
            plain_name: false,
            key: "data.categorical",
        }));
        Ok(Self {
            name,
            header: Header::FirstLine,
            features,
            target_column: target.column.clone(),
            rule: Rule::parse(&target.rule)?,
            sites,
            missing_tokens: spec.missing_values.clone(),
            missing: spec.missing,
            test_fraction: spec.test_fraction,
            split_seed: spec.split_seed,
        })
    }

    /// Checks the description itself (before reading any file).
    fn check(&self) -> Result<(), DataError> {
        if self.features.is_empty() {
            return Err(DataError::spec(
                "data.numeric",
                "a dataset needs at least one numeric or categorical column",
            ));
        }
        if !(self.test_fraction > 0.0 && self.test_fraction < 1.0) {
            return Err(DataError::spec(
                "data.test-fraction",
                format!("must be in (0, 1), got {}", self.test_fraction),
            ));
        }
        let mut seen = BTreeSet::new();
        for f in &self.features {
            if !seen.insert(f.column()) {
                return Err(DataError::spec(
                    f.key(),
                    format!("column {:?} is listed more than once", f.column()),
                ));
            }
            if let Feature::Categorical {
                column,
                reference,
                levels,
                ..
            } = f
            {
                if levels.contains(reference) {
                    return Err(DataError::spec(
                        "data.categorical",
                        format!(
                            "column {column:?}: the reference level {reference:?} must not be \
                             among its levels"
                        ),
                    ));
                }
                let distinct: BTreeSet<&String> = levels.iter().collect();
                if distinct.len() != levels.len() {
                    return Err(DataError::spec(
                        "data.categorical",
                        format!("column {column:?}: levels {levels:?} repeat a level"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A parsed cell of one input column.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cell {
    Missing,
    Number(f64),
    /// Index into the column's levels: 0 is the reference, `1..` the indicator levels.
    Level(usize),
}

/// One data row after the first pass.
struct Row {
    line: u64,
    site: Option<usize>,
    label: Option<u32>,
    cells: Vec<Cell>,
    /// Raw categorical values, resolved to [`Cell::Level`] once all levels are known.
    raw: Vec<Option<String>>,
}

/// Resolved categorical column: reference first, then the indicator levels.
struct Levels {
    all: Vec<String>,
    index: BTreeMap<String, usize>,
}

impl Levels {
    fn new(all: Vec<String>) -> Self {
        let mut index = BTreeMap::new();
        for (i, l) in all.iter().enumerate() {
            index.entry(l.clone()).or_insert(i);
        }
        Self { all, index }
    }
}

/// The rows of a file, parsed and checked, before rows are dropped or sites built.
struct Parsed {
    rows: Vec<Row>,
    /// Site names by index, in order of first appearance (site column only).
    site_names: Vec<String>,
    /// The levels of each categorical input column (`None` for numeric ones).
    levels: Vec<Option<Levels>>,
    warnings: Vec<String>,
}

/// Reads `bytes` (named `path` in messages) as described by `spec`.
pub(crate) fn load_table(
    bytes: &[u8],
    path: &Path,
    spec: &TableSpec,
) -> Result<FederatedDataset, DataError> {
    spec.check()?;
    let Parsed {
        mut rows,
        site_names,
        levels,
        mut warnings,
    } = parse_rows(bytes, path, spec)?;
    drop_unusable_rows(&mut rows, path, spec, &mut warnings)?;

    let labels: Vec<u32> = rows.iter().map(|r| r.label.unwrap_or(0)).collect();
    let num_classes = count_classes(&labels, path, spec)?;
    let groups = site_groups(
        &rows,
        &site_names,
        &labels,
        num_classes,
        spec,
        &mut warnings,
    )?;
    let feature_names = feature_names(&spec.features, &levels);
    let sites = split_sites(
        groups,
        &rows,
        &labels,
        &levels,
        feature_names.len(),
        spec,
        &mut warnings,
    )?;

    let mut dataset = FederatedDataset {
        name: spec.name.clone(),
        feature_names,
        num_classes,
        sites,
        warnings,
        image: None,
        held_out: None,
    };
    constant_feature_warnings(&mut dataset);
    tracing::debug!(
        dataset = %dataset.name,
        sites = dataset.sites.len(),
        features = dataset.feature_names.len(),
        rows = dataset.sites.iter().map(|s| s.train.len() + s.test.len()).sum::<usize>(),
        "loaded dataset"
    );
    Ok(dataset)
}

/// Drops rows without a label or site, and (policy drop) rows with a missing feature,
/// with a warning for each kind; an error if no row is left.
fn drop_unusable_rows(
    rows: &mut Vec<Row>,
    path: &Path,
    spec: &TableSpec,
    warnings: &mut Vec<String>,
) -> Result<(), DataError> {
    let total_rows = rows.len();
    let before = rows.len();
    rows.retain(|r| r.label.is_some() && r.site.is_some());
    let no_target = before - rows.len();
    if no_target > 0 {
        warnings.push(format!(
            "{}: dropped {no_target} of {total_rows} rows with a missing target or site",
            path.display()
        ));
    }
    if spec.missing == MissingPolicy::Drop {
        let before = rows.len();
        rows.retain(|r| !r.cells.contains(&Cell::Missing));
        let dropped = before - rows.len();
        if dropped > 0 {
            warnings.push(format!(
                "{}: dropped {dropped} of {total_rows} rows with a missing value in a feature \
                 column (data.missing = \"drop\")",
                path.display()
            ));
        }
    }
    if rows.is_empty() {
        return Err(DataError::NoRows {
            path: path.to_path_buf(),
            reason: if total_rows == 0 {
                "the file has a header but no data rows".into()
            } else {
                format!("all {total_rows} rows have a missing value in a used column")
            },
        });
    }
    Ok(())
}

/// The number of classes (fixed by the rule, or the largest label + 1); an error if the
/// usable rows hold fewer than two classes.
fn count_classes(labels: &[u32], path: &Path, spec: &TableSpec) -> Result<usize, DataError> {
    let num_classes = spec
        .rule
        .num_classes_fixed()
        .unwrap_or_else(|| labels.iter().copied().max().map_or(0, |m| m as usize + 1));
    let distinct: std::collections::BTreeSet<u32> = labels.iter().copied().collect();
    if num_classes < 2 || distinct.len() < 2 {
        let only = distinct.first().copied().unwrap_or(0);
        return Err(DataError::Spec {
            key: "data.target".into(),
            message: format!(
                "{}: every one of the {} usable rows has class {only}, so there is a single class; a classifier needs two or more (check data.target.column and data.target.rule)",
                path.display(),
                labels.len()
            ),
        });
    }
    Ok(num_classes)
}

/// The sites, each with its row positions (into `rows`), in site order: from the site
/// column (sites left without rows are left out, with a warning) or by partition.
fn site_groups(
    rows: &[Row],
    site_names: &[String],
    labels: &[u32],
    num_classes: usize,
    spec: &TableSpec,
    warnings: &mut Vec<String>,
) -> Result<Vec<(String, Vec<usize>)>, DataError> {
    Ok(match &spec.sites {
        Sites::Column { column, .. } => {
            let mut groups: Vec<(String, Vec<usize>)> =
                site_names.iter().map(|n| (n.clone(), Vec::new())).collect();
            for (i, r) in rows.iter().enumerate() {
                if let Some(g) = r.site.and_then(|s| groups.get_mut(s)) {
                    g.1.push(i);
                }
            }
            for (name, g) in &groups {
                if g.is_empty() {
                    warnings.push(format!(
                        "site {name:?} (column {column:?}) has no rows left after dropping \
                         rows with missing values; it is left out"
                    ));
                }
            }
            groups.retain(|(_, g)| !g.is_empty());
            groups
        }
        Sites::Partition(p) => partition(labels, num_classes.max(1), p)?
            .into_iter()
            .enumerate()
            .map(|(s, g)| (format!("site-{s}"), g))
            .collect(),
    })
}

/// Splits each site's rows into train and test, fills missing cells from the training
/// rows, and encodes both as matrices of `cols` feature columns.
fn split_sites(
    groups: Vec<(String, Vec<usize>)>,
    rows: &[Row],
    labels: &[u32],
    levels: &[Option<Levels>],
    cols: usize,
    spec: &TableSpec,
    warnings: &mut Vec<String>,
) -> Result<Vec<SiteData>, DataError> {
    let mut sites = Vec::with_capacity(groups.len());
    for (s, (name, group)) in groups.into_iter().enumerate() {
        let site_labels: Vec<u32> = group.iter().map(|&i| labels[i]).collect();
        let (train, test) = train_test_split(
            &site_labels,
            spec.test_fraction,
            site_split_seed(spec.split_seed, s),
        );
        if train.is_empty() || test.is_empty() {
            return Err(DataError::SiteTooSmall {
                site: name,
                rows: group.len(),
                train: train.len(),
                test: test.len(),
                test_fraction: spec.test_fraction,
            });
        }
        let train_rows: Vec<&Row> = train.iter().map(|&i| &rows[group[i]]).collect();
        let test_rows: Vec<&Row> = test.iter().map(|&i| &rows[group[i]]).collect();
        let fill = fill_values(spec, levels, &name, &train_rows, &test_rows, warnings)?;
        sites.push(SiteData {
            train: encode(&train_rows, &fill, levels, cols)?,
            test: encode(&test_rows, &fill, levels, cols)?,
            name,
        });
    }
    Ok(sites)
}

/// Parses the header and every row: values, labels, site indices and categorical levels.
/// Every value is checked, including those of rows that are dropped later.
fn parse_rows(bytes: &[u8], path: &Path, spec: &TableSpec) -> Result<Parsed, DataError> {
    let path_buf = path.to_path_buf();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let mut records = reader.records();
    let next = |records: &mut csv::StringRecordsIter<'_, &[u8]>| {
        records.next().map(|r| {
            r.map_err(|e| DataError::BadRow {
                path: path_buf.clone(),
                line: e.position().map_or(0, csv::Position::line),
                message: format!("cannot read the row: {e}"),
            })
        })
    };

    // Header.
    let empty = || DataError::EmptyFile {
        path: path_buf.clone(),
    };
    let first = next(&mut records).ok_or_else(empty)??;
    let header = header_names(&first, &spec.header);
    let columns = find_columns(&header, path, spec)?;

    let mut warnings = Vec::new();
    if spec
        .features
        .iter()
        .any(|f| f.column() == spec.target_column)
    {
        warnings.push(format!(
            "the target column {:?} is also a feature: the labels leak into the inputs",
            spec.target_column
        ));
    }

    // First pass: parse every row.
    let mut sites = SiteNames::default();
    let mut seen_levels: Vec<BTreeSet<String>> = vec![BTreeSet::new(); spec.features.len()];
    let mut rows: Vec<Row> = Vec::new();
    while let Some(record) = next(&mut records) {
        let record = record?;
        rows.push(parse_record(
            &record,
            &header,
            &columns,
            path,
            spec,
            &mut sites,
            &mut seen_levels,
        )?);
    }

    // Levels of each categorical column, then resolve the raw values.
    let levels = categorical_levels(spec, &seen_levels);
    resolve_levels(&mut rows, &levels, path, spec)?;
    Ok(Parsed {
        rows,
        site_names: sites.names,
        levels,
        warnings,
    })
}

/// Positions in the header of the columns a [`TableSpec`] uses.
struct Columns {
    /// One per input feature, in feature order.
    features: Vec<usize>,
    /// The target column.
    target: usize,
    /// The site column (`None` when rows are partitioned).
    site: Option<usize>,
}

/// Site names in order of first appearance, and the index of each.
#[derive(Default)]
struct SiteNames {
    names: Vec<String>,
    index: BTreeMap<String, usize>,
}

impl SiteNames {
    /// The index of site `name`, added at the end if it is new.
    fn index_of(&mut self, name: &str) -> usize {
        let Self { names, index } = self;
        *index.entry(name.to_owned()).or_insert_with(|| {
            names.push(name.to_owned());
            names.len() - 1
        })
    }
}

/// The column names: the first record (less a leading byte-order mark) or the given names.
fn header_names(first: &csv::StringRecord, header: &Header) -> Vec<String> {
    match header {
        Header::FirstLine => first
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let h = if i == 0 {
                    h.trim_start_matches('\u{feff}')
                } else {
                    h
                };
                h.to_owned()
            })
            .collect(),
        Header::Given(names) => names.clone(),
    }
}

/// The header as a comma-separated list of quoted names, for messages.
fn header_list(header: &[String]) -> String {
    header
        .iter()
        .map(|h| format!("{h:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Finds every column `spec` uses in `header`; a missing one is an error naming its key.
fn find_columns(header: &[String], path: &Path, spec: &TableSpec) -> Result<Columns, DataError> {
    let find = |column: &str, key: &str| {
        header
            .iter()
            .position(|h| h == column)
            .ok_or_else(|| DataError::MissingColumn {
                path: path.to_path_buf(),
                column: column.to_owned(),
                key: key.to_owned(),
                header: header_list(header),
            })
    };
    let features: Vec<usize> = spec
        .features
        .iter()
        .map(|f| find(f.column(), f.key()))
        .collect::<Result<_, _>>()?;
    let target = find(&spec.target_column, "data.target.column")?;
    let site = match &spec.sites {
        Sites::Column { column, key } => Some(find(column, key)?),
        Sites::Partition(_) => None,
    };
    Ok(Columns {
        features,
        target,
        site,
    })
}

/// Parses one data record: its site (added to `sites` if new), label and cells.
/// Categorical values are kept raw (their levels are added to `seen_levels`) until every
/// level is known.
fn parse_record(
    record: &csv::StringRecord,
    header: &[String],
    columns: &Columns,
    path: &Path,
    spec: &TableSpec,
    sites: &mut SiteNames,
    seen_levels: &mut [BTreeSet<String>],
) -> Result<Row, DataError> {
    let is_missing = |s: &str| spec.missing_tokens.iter().any(|t| t.trim() == s);
    let line = record.position().map_or(0, csv::Position::line);
    if record.len() != header.len() {
        return Err(DataError::BadRow {
            path: path.to_path_buf(),
            line,
            message: format!(
                "the row has {} fields but the header has {} ({})",
                record.len(),
                header.len(),
                header_list(header)
            ),
        });
    }
    let field = |i: usize| record.get(i).unwrap_or_default();
    let bad = |column: &str, message: String| DataError::BadValue {
        path: path.to_path_buf(),
        line,
        column: column.to_owned(),
        message,
    };
    let site = match columns.site {
        Some(i) if is_missing(field(i)) => None,
        Some(i) => Some(sites.index_of(field(i))),
        None => Some(0),
    };
    let target = field(columns.target);
    let label = if is_missing(target) {
        None
    } else {
        Some(
            spec.rule
                .label(target)
                .map_err(|m| bad(&spec.target_column, m))?,
        )
    };
    let mut cells = Vec::with_capacity(spec.features.len());
    let mut raw = Vec::with_capacity(spec.features.len());
    for (k, (f, &i)) in spec.features.iter().zip(&columns.features).enumerate() {
        let value = field(i);
        if is_missing(value) {
            cells.push(Cell::Missing);
            raw.push(None);
            continue;
        }
        match f {
            Feature::Numeric { column, .. } => {
                let v: f64 = value
                    .parse()
                    .map_err(|_| bad(column, format!("{value:?} is not a number")))?;
                if !v.is_finite() || v.abs() > f64::from(f32::MAX) {
                    return Err(bad(
                        column,
                        format!("{value:?} is not a finite number in the range of f32"),
                    ));
                }
                cells.push(Cell::Number(v));
                raw.push(None);
            }
            Feature::Categorical { .. } => {
                seen_levels[k].insert(value.to_owned());
                cells.push(Cell::Missing);
                raw.push(Some(value.to_owned()));
            }
        }
    }
    Ok(Row {
        line,
        site,
        label,
        cells,
        raw,
    })
}

/// The levels of each categorical input column (`None` for numeric ones): the reference,
/// then the levels given, or else every level seen but the reference, sorted.
fn categorical_levels(spec: &TableSpec, seen_levels: &[BTreeSet<String>]) -> Vec<Option<Levels>> {
    spec.features
        .iter()
        .zip(seen_levels)
        .map(|(f, seen)| match f {
            Feature::Numeric { .. } => None,
            Feature::Categorical {
                reference, levels, ..
            } => {
                let mut all = vec![reference.clone()];
                if levels.is_empty() {
                    all.extend(seen.iter().filter(|l| *l != reference).cloned());
                } else {
                    all.extend(levels.iter().cloned());
                }
                Some(Levels::new(all))
            }
        })
        .collect()
}

/// Turns each row's raw categorical values into [`Cell::Level`]s; a value that is not an
/// allowed level is an error naming the file, line and column.
fn resolve_levels(
    rows: &mut [Row],
    levels: &[Option<Levels>],
    path: &Path,
    spec: &TableSpec,
) -> Result<(), DataError> {
    for row in rows {
        for (k, raw) in row.raw.iter().enumerate() {
            let (Some(value), Some(lv)) = (raw, &levels[k]) else {
                continue;
            };
            let level = lv
                .index
                .get(value)
                .copied()
                .ok_or_else(|| DataError::BadValue {
                    path: path.to_path_buf(),
                    line: row.line,
                    column: spec.features[k].column().to_owned(),
                    message: format!(
                        "{value:?} is not an allowed level; allowed: {}",
                        lv.all
                            .iter()
                            .map(|l| format!("{l:?}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })?;
            row.cells[k] = Cell::Level(level);
        }
        row.raw = Vec::new();
    }
    Ok(())
}

/// Feature names: numeric columns as named, categorical ones `column=level` per indicator.
fn feature_names(features: &[Feature], levels: &[Option<Levels>]) -> Vec<String> {
    let mut names = Vec::new();
    for (f, lv) in features.iter().zip(levels) {
        match (f, lv) {
            (
                Feature::Categorical {
                    column, plain_name, ..
                },
                Some(lv),
            ) => {
                let indicators = &lv.all[1..];
                if *plain_name && indicators.len() == 1 {
                    names.push(column.clone());
                } else {
                    names.extend(indicators.iter().map(|l| format!("{column}={l}")));
                }
            }
            (f, _) => names.push(f.column().to_owned()),
        }
    }
    names
}

/// The value that replaces a missing cell of each input column at one site, from its
/// training rows only: the mean for numeric columns, the most frequent level (ties: the
/// first in order, reference first) for categorical ones. `Cell::Missing` where the site
/// has nothing to fill.
fn fill_values(
    spec: &TableSpec,
    levels: &[Option<Levels>],
    site: &str,
    train: &[&Row],
    test: &[&Row],
    warnings: &mut Vec<String>,
) -> Result<Vec<Cell>, DataError> {
    let mut fill = vec![Cell::Missing; spec.features.len()];
    if spec.missing != MissingPolicy::Impute {
        return Ok(fill);
    }
    for (k, f) in spec.features.iter().enumerate() {
        let missing = train
            .iter()
            .chain(test)
            .filter(|r| r.cells[k] == Cell::Missing)
            .count();
        if missing == 0 {
            continue;
        }
        fill[k] = match &levels[k] {
            None => {
                let values: Vec<f64> = train
                    .iter()
                    .filter_map(|r| match r.cells[k] {
                        Cell::Number(v) => Some(v),
                        _ => None,
                    })
                    .collect();
                let Some(mean) = ward_core::stats::mean(&values) else {
                    return Err(DataError::NothingToImpute {
                        site: site.to_owned(),
                        column: f.column().to_owned(),
                    });
                };
                Cell::Number(mean)
            }
            Some(lv) => {
                let mut counts = vec![0usize; lv.all.len()];
                for r in train {
                    if let Cell::Level(l) = r.cells[k] {
                        counts[l] += 1;
                    }
                }
                let best = counts.iter().copied().max().unwrap_or(0);
                if best == 0 {
                    return Err(DataError::NothingToImpute {
                        site: site.to_owned(),
                        column: f.column().to_owned(),
                    });
                }
                Cell::Level(counts.iter().position(|&c| c == best).unwrap_or(0))
            }
        };
        warnings.push(format!(
            "site {site:?}: imputed {missing} missing value(s) of column {:?} from the \
             training split",
            f.column()
        ));
    }
    Ok(fill)
}

/// Encodes rows into a [`Split`], replacing missing cells with `fill`.
fn encode(
    rows: &[&Row],
    fill: &[Cell],
    levels: &[Option<Levels>],
    cols: usize,
) -> Result<Split, DataError> {
    let mut data = Vec::with_capacity(rows.len() * cols);
    for r in rows {
        for (k, &cell) in r.cells.iter().enumerate() {
            let cell = if cell == Cell::Missing { fill[k] } else { cell };
            match (cell, &levels[k]) {
                (Cell::Number(v), _) => data.push(v as f32),
                (Cell::Level(l), Some(lv)) => {
                    data.extend((1..lv.all.len()).map(|j| if j == l { 1.0 } else { 0.0 }));
                }
                // Unreachable by construction (drop removes missing cells, impute fills
                // them); encode as zeros rather than panic.
                (_, Some(lv)) => data.extend(std::iter::repeat_n(0.0, lv.all.len() - 1)),
                (_, None) => data.push(0.0),
            }
        }
    }
    Ok(Split {
        x: Matrix::new(rows.len(), cols, data)?,
        y: rows.iter().map(|r| r.label.unwrap_or(0)).collect(),
    })
}

/// Warns about feature columns that hold one value in every row of the dataset.
fn constant_feature_warnings(dataset: &mut FederatedDataset) {
    for (j, name) in dataset.feature_names.iter().enumerate() {
        let mut values = dataset
            .sites
            .iter()
            .flat_map(|s| [&s.train.x, &s.test.x])
            .flat_map(|m| m.iter_rows().map(move |r| r[j]));
        if let Some(first) = values.next()
            && values.all(|v| v == first)
        {
            dataset
                .warnings
                .push(format!("feature {name:?} is {first} in every row"));
        }
    }
}

/// Reads a data file named by the spec, resolving a relative path against `base_dir`.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    fs_err::read(path).map_err(|source| DataError::Io { source })
}

/// Resolves `data.path` against `base_dir`.
pub(crate) fn resolve(path: &Path, base_dir: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base_dir.join(path)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use proptest::prelude::*;
    use ward_core::config::{CategoricalSpec, DatasetKind, PartitionKind, TargetSpec};

    use super::*;
    use crate::load;

    /// A csv spec over `path` with a site column.
    fn csv_spec(path: &Path, numeric: &[&str], categorical: &[CategoricalSpec]) -> DataSpec {
        let mut spec = DataSpec::builtin(DatasetKind::Csv);
        spec.path = Some(path.to_path_buf());
        spec.numeric = numeric.iter().map(|&s| s.into()).collect();
        spec.categorical = categorical.to_vec();
        spec.target = Some(TargetSpec {
            column: "y".into(),
            rule: "> 0".into(),
        });
        spec.site_column = Some("site".into());
        spec
    }

    fn cat(column: &str, reference: &str, levels: &[&str]) -> CategoricalSpec {
        CategoricalSpec {
            column: column.into(),
            reference: reference.into(),
            levels: levels.iter().map(|&s| s.into()).collect(),
        }
    }

    /// Writes `text` to `<tmp>/<name>` and loads it with `spec` (path relative to the dir).
    fn load_text(
        name: &str,
        text: &str,
        mut spec: DataSpec,
    ) -> Result<FederatedDataset, DataError> {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join(name), text).unwrap();
        spec.path = Some(PathBuf::from(name));
        load(&spec, dir.path())
    }

    /// 8 rows at each of two sites, labels alternating, chol = row number.
    fn good_csv() -> String {
        let mut s = String::from("site,chol,cp,y\n");
        for i in 0..16 {
            let site = if i < 8 { "A" } else { "B" };
            let cp = ["x", "y", "z"][i % 3];
            s += &format!("{site},{i},{cp},{}\n", i % 2);
        }
        s
    }

    fn err_text(r: Result<FederatedDataset, DataError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn a_good_csv_loads_with_indicators_after_numerics() {
        let d = load_text(
            "good.csv",
            &good_csv(),
            csv_spec(Path::new(""), &["chol"], &[cat("cp", "x", &[])]),
        )
        .unwrap();
        assert_eq!(d.name, "good");
        assert_eq!(d.feature_names, vec!["chol", "cp=y", "cp=z"]);
        assert_eq!(d.num_classes, 2);
        let names: Vec<&str> = d.sites.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["A", "B"]);
        // 8 rows: test = ceil(0.34 * 8) = 3.
        assert_eq!((d.sites[0].train.len(), d.sites[0].test.len()), (5, 3));
        // Every row: chol = i, cp one-hot, y = i % 2; check all rows of both sites.
        for s in &d.sites {
            for split in [&s.train, &s.test] {
                for (r, &y) in split.x.iter_rows().zip(&split.y) {
                    let i = r[0] as usize;
                    let onehot = [f32::from(i % 3 == 1), f32::from(i % 3 == 2)];
                    assert_eq!(&r[1..], &onehot);
                    assert_eq!(y as usize, i % 2);
                }
            }
        }
    }

    #[test]
    fn sites_in_order_of_first_appearance_and_explicit_levels() {
        let text =
            "site,v,c,y\nZ,1,b,0\nA,2,a,1\nZ,3,b,0\nA,4,c,1\nZ,5,a,1\nA,6,a,0\nZ,7,c,1\nA,8,b,0\n";
        let d = load_text(
            "o.csv",
            text,
            csv_spec(Path::new(""), &["v"], &[cat("c", "a", &["c", "b"])]),
        )
        .unwrap();
        let names: Vec<&str> = d.sites.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["Z", "A"]);
        assert_eq!(d.feature_names, vec!["v", "c=c", "c=b"]);
    }

    /// Site names and category levels with a comma, written by the `csv` crate (quoted),
    /// come back whole: the loader splits fields by CSV rules, not at every comma.
    #[test]
    fn a_quoted_field_with_a_comma_round_trips() {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(["site", "chol", "cp", "y"]).unwrap();
        for i in 0..16 {
            let site = if i < 8 { "Cleveland, OH" } else { "Zurich" };
            let cp = ["typical, angina", "none"][i % 2];
            w.write_record([site, &i.to_string(), cp, &(i % 2).to_string()])
                .unwrap();
        }
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert!(
            text.contains("\"Cleveland, OH\",0,\"typical, angina\",0\n"),
            "{text}"
        );
        let d = load_text(
            "q.csv",
            &text,
            csv_spec(Path::new(""), &["chol"], &[cat("cp", "none", &[])]),
        )
        .unwrap();
        let names: Vec<&str> = d.sites.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["Cleveland, OH", "Zurich"]);
        assert_eq!(d.feature_names, vec!["chol", "cp=typical, angina"]);
        // Every row: the indicator is 1 exactly for even chol (cp = "typical, angina").
        for s in &d.sites {
            for r in s.train.x.iter_rows().chain(s.test.x.iter_rows()) {
                assert_eq!(r[1], f32::from((r[0] as usize).is_multiple_of(2)));
            }
        }
    }

    #[test]
    fn a_sites_split_does_not_depend_on_other_sites() {
        // Site A's rows alone, and A followed by B: A (site index 0 in both) is split the
        // same way; only data.split-seed changes it.
        let text = good_csv();
        let only_a: String = text
            .lines()
            .filter(|l| !l.starts_with('B'))
            .map(|l| format!("{l}\n"))
            .collect();
        let spec = csv_spec(Path::new(""), &["chol"], &[]);
        let both = load_text("x.csv", &text, spec.clone()).unwrap();
        let alone = load_text("x.csv", &only_a, spec.clone()).unwrap();
        assert_eq!(both.sites[0], alone.sites[0]);
        let mut other_seed = spec;
        other_seed.split_seed = 7;
        let moved = load_text("x.csv", &text, other_seed).unwrap();
        assert_ne!(both.sites[0], moved.sites[0]);
    }

    #[test]
    fn target_rules() {
        let parse = |r: &str| Rule::parse(r).unwrap();
        assert_eq!(parse("> 0").label("0.5"), Ok(1));
        assert_eq!(parse("> 0").label("0"), Ok(0));
        assert_eq!(parse(">= 1").label("1"), Ok(1));
        assert_eq!(parse("<5").label("5"), Ok(0));
        assert_eq!(parse("<= 2").label("2.0"), Ok(1));
        assert_eq!(parse("== M").label("M"), Ok(1));
        assert_eq!(parse("== M").label("B"), Ok(0));
        assert_eq!(parse("== 1").label("1.0"), Ok(1)); // numeric when both are numbers
        assert_eq!(parse("!= 0").label("0.0"), Ok(0));
        assert_eq!(parse("!= M").label("B"), Ok(1));
        assert_eq!(parse("class").label("3"), Ok(3));
        for not_a_class in ["-1", "1.5"] {
            assert_eq!(
                parse("class").label(not_a_class),
                Err(format!(
                    "{not_a_class:?} is not a class label (an integer >= 0; data.target.rule = \"class\")"
                ))
            );
        }
        assert_eq!(
            parse("class").label("1e9"),
            Err("class label \"1e9\" is larger than the largest supported, 65535".into())
        );
        assert!(
            parse("> 0")
                .label("abc")
                .unwrap_err()
                .contains("\"abc\" is not a number")
        );
        for bad in ["", "=> 1", "> abc", ">", "maybe", "== "] {
            let err = Rule::parse(bad).unwrap_err().to_string();
            assert!(err.starts_with("data.target.rule:"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn bad_rule_in_a_spec_names_the_key() {
        let mut spec = csv_spec(Path::new(""), &["chol"], &[]);
        spec.target = Some(TargetSpec {
            column: "y".into(),
            rule: "bigger than 0".into(),
        });
        let err = err_text(load_text("r.csv", &good_csv(), spec));
        assert!(err.contains("data.target.rule"), "{err}");
    }

    #[test]
    fn a_target_rule_that_is_never_true_is_refused() {
        // `y > 100` holds for no row: every label is 0.
        let mut spec = csv_spec(Path::new(""), &["v"], &[]);
        spec.target = Some(TargetSpec {
            column: "y".into(),
            rule: "> 100".into(),
        });
        let mut text = String::from("site,v,y\n");
        for i in 0..12 {
            text += &format!("A,{i},{}\n", i % 3);
        }
        let err = err_text(load_text("never.csv", &text, spec.clone()));
        assert!(
            err.contains("data.target") && err.contains("single class") && err.contains("class 0"),
            "{err}"
        );
        // The same file with a rule that is sometimes true loads.
        spec.target = Some(TargetSpec {
            column: "y".into(),
            rule: "> 1".into(),
        });
        assert_eq!(
            load_text("sometimes.csv", &text, spec).unwrap().num_classes,
            2
        );
    }

    #[test]
    fn class_rule_gives_max_plus_one_classes_and_rejects_bad_labels() {
        let mut spec = csv_spec(Path::new(""), &["v"], &[]);
        spec.target = Some(TargetSpec {
            column: "y".into(),
            rule: "class".into(),
        });
        let mut text = String::from("site,v,y\n");
        for i in 0..12 {
            text += &format!("A,{i},{}\n", i % 3);
        }
        let d = load_text("c.csv", &text, spec.clone()).unwrap();
        assert_eq!(d.num_classes, 3);
        text += "A,1,-1\n";
        let err = err_text(load_text("c.csv", &text, spec));
        assert!(
            err.contains("c.csv:14: column \"y\": \"-1\" is not a class label"),
            "{err}"
        );
    }

    #[test]
    fn corrupt_number_names_file_line_and_column() {
        let text = good_csv().replacen("A,2,z,0", "A,abc,z,0", 1);
        let err = err_text(load_text(
            "heart.csv",
            &text,
            csv_spec(Path::new(""), &["chol"], &[]),
        ));
        // Header is line 1, row i is line i + 2: "A,2,..." is line 4.
        assert!(
            err.contains("heart.csv:4: column \"chol\": \"abc\" is not a number"),
            "{err}"
        );
        let text = good_csv().replacen("A,2,z,0", "A,inf,z,0", 1);
        let err = err_text(load_text(
            "heart.csv",
            &text,
            csv_spec(Path::new(""), &["chol"], &[]),
        ));
        assert!(err.contains("heart.csv:4: column \"chol\""), "{err}");
    }

    #[test]
    fn unknown_category_names_file_line_column_and_allowed_levels() {
        let text = good_csv().replacen("A,3,x,1", "A,3,w,1", 1);
        let spec = csv_spec(Path::new(""), &["chol"], &[cat("cp", "x", &["y", "z"])]);
        let err = err_text(load_text("cats.csv", &text, spec));
        assert!(err.contains("cats.csv:5: column \"cp\": \"w\""), "{err}");
        assert!(err.contains("\"x\", \"y\", \"z\""), "{err}");
    }

    #[test]
    fn missing_column_names_it_and_lists_the_header() {
        let err = err_text(load_text(
            "m.csv",
            &good_csv(),
            csv_spec(Path::new(""), &["trestbps"], &[]),
        ));
        assert!(err.contains("m.csv"), "{err}");
        assert!(
            err.contains("\"trestbps\"") && err.contains("data.numeric"),
            "{err}"
        );
        assert!(err.contains("\"site\", \"chol\", \"cp\", \"y\""), "{err}");
        let mut spec = csv_spec(Path::new(""), &["chol"], &[]);
        spec.site_column = Some("hospital".into());
        let err = err_text(load_text("m.csv", &good_csv(), spec));
        assert!(
            err.contains("\"hospital\"") && err.contains("data.site-column"),
            "{err}"
        );
    }

    #[test]
    fn ragged_row_names_file_and_line() {
        let text = good_csv().replacen("A,3,x,1", "A,3,x", 1);
        let err = err_text(load_text(
            "rag.csv",
            &text,
            csv_spec(Path::new(""), &["chol"], &[]),
        ));
        assert!(
            err.contains("rag.csv:5:") && err.contains("3 fields") && err.contains("header has 4"),
            "{err}"
        );
    }

    #[test]
    fn missing_and_empty_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = csv_spec(Path::new(""), &["chol"], &[]);
        spec.path = Some("nowhere.csv".into());
        let err = load(&spec, dir.path()).unwrap_err().to_string();
        assert!(err.contains("nowhere.csv"), "{err}");
        let err = err_text(load_text(
            "empty.csv",
            "",
            csv_spec(Path::new(""), &["chol"], &[]),
        ));
        assert!(err.contains("empty.csv") && err.contains("empty"), "{err}");
        let err = err_text(load_text(
            "hdr.csv",
            "site,chol,y\n",
            csv_spec(Path::new(""), &["chol"], &[]),
        ));
        assert!(
            err.contains("hdr.csv") && err.contains("no data rows"),
            "{err}"
        );
    }

    #[test]
    fn bad_utf8_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = fs_err::File::create(dir.path().join("bin.csv")).unwrap();
        f.write_all(b"site,chol,y\nA,1,0\nA,\xff\xfe,1\n").unwrap();
        let mut spec = csv_spec(Path::new(""), &["chol"], &[]);
        spec.path = Some("bin.csv".into());
        let err = load(&spec, dir.path()).unwrap_err().to_string();
        assert!(err.contains("bin.csv:3:"), "{err}");
    }

    #[test]
    fn drop_counts_rows_in_warnings() {
        let text = good_csv()
            .replacen("A,2,z,0", "A,NA,z,0", 1)
            .replacen("B,9,x,1", "B,9,x,", 1);
        let d = load_text("d.csv", &text, csv_spec(Path::new(""), &["chol"], &[])).unwrap();
        let rows: usize = d.sites.iter().map(|s| s.train.len() + s.test.len()).sum();
        assert_eq!(rows, 14);
        let w = d.warnings.join("\n");
        assert!(
            w.contains("dropped 1 of 16 rows with a missing target"),
            "{w}"
        );
        assert!(
            w.contains("dropped 1 of 16 rows with a missing value in a feature"),
            "{w}"
        );
    }

    #[test]
    fn impute_uses_training_statistics_only() {
        // One site of 12 rows: id (never missing), v = 2^id except row 5, which is missing;
        // c categorical with level counts chosen per row. Which rows are test is known from
        // train_test_split with the site seed, so the expected fill is computed here.
        let mut text = String::from("site,id,v,c,y\n");
        let c_of = |i: usize| if i.is_multiple_of(3) { "p" } else { "q" };
        for i in 0..12 {
            let v = if i == 5 {
                "?".to_string()
            } else {
                (1u32 << i).to_string()
            };
            let c = if i == 7 { "" } else { c_of(i) };
            text += &format!("S,{i},{v},{c},{}\n", i % 2);
        }
        let mut spec = csv_spec(Path::new(""), &["id", "v"], &[cat("c", "p", &["q"])]);
        spec.missing = MissingPolicy::Impute;
        let d = load_text("imp.csv", &text, spec.clone()).unwrap();
        let labels: Vec<u32> = (0..12).map(|i| i % 2).collect();
        let (train, test) = train_test_split(
            &labels,
            spec.test_fraction,
            site_split_seed(spec.split_seed, 0),
        );
        let train_v: Vec<f64> = train
            .iter()
            .filter(|&&i| i != 5)
            .map(|&i| f64::from(1u32 << i))
            .collect();
        let expected = train_v.iter().sum::<f64>() / train_v.len() as f64;
        let all_v: Vec<f64> = (0..12)
            .filter(|&i| i != 5)
            .map(|i| f64::from(1u32 << i))
            .collect();
        let overall = all_v.iter().sum::<f64>() / all_v.len() as f64;
        assert_ne!(
            expected as f32, overall as f32,
            "the test must tell train from all rows"
        );
        let s = &d.sites[0];
        let find = |id: f32| {
            s.train
                .x
                .iter_rows()
                .chain(s.test.x.iter_rows())
                .find(|r| r[0] == id)
                .unwrap()
                .to_vec()
        };
        assert_eq!(find(5.0)[1], expected as f32);
        // c: mode of the training rows' levels (p = reference, q = indicator 1).
        let q = train.iter().filter(|&&i| i != 7 && c_of(i) == "q").count();
        let p = train.iter().filter(|&&i| i != 7 && c_of(i) == "p").count();
        let want = if q > p { 1.0 } else { 0.0 };
        assert_eq!(find(7.0)[2], want);
        assert!(!test.is_empty());
        assert!(
            d.warnings
                .iter()
                .any(|w| w.contains("imputed 1 missing value(s) of column \"v\""))
        );
    }

    #[test]
    fn impute_mode_ties_go_to_the_reference_level() {
        // Tiny: 2 training rows p and q, 1 missing value; check the tie rule directly.
        let spec = TableSpec {
            name: "t".into(),
            header: Header::FirstLine,
            features: vec![Feature::Categorical {
                column: "c".into(),
                reference: "p".into(),
                levels: vec!["q".into()],
                plain_name: false,
                key: "data.categorical",
            }],
            target_column: "y".into(),
            rule: Rule::Class,
            sites: Sites::Column {
                column: "s".into(),
                key: "data.site-column",
            },
            missing_tokens: vec![String::new()],
            missing: MissingPolicy::Impute,
            test_fraction: 0.34,
            split_seed: 43,
        };
        let row = |c: Cell| Row {
            line: 0,
            site: Some(0),
            label: Some(0),
            cells: vec![c],
            raw: vec![],
        };
        let train = [row(Cell::Level(1)), row(Cell::Level(0)), row(Cell::Missing)];
        let train: Vec<&Row> = train.iter().collect();
        let levels = vec![Some(Levels::new(vec!["p".into(), "q".into()]))];
        let fill = fill_values(&spec, &levels, "s", &train, &[], &mut Vec::new()).unwrap();
        assert_eq!(fill, vec![Cell::Level(0)]);
    }

    #[test]
    fn partition_names_sites_and_too_small_sites_are_errors() {
        let mut spec = csv_spec(Path::new(""), &["chol"], &[]);
        spec.site_column = None;
        spec.partition = Some(PartitionSpec {
            kind: PartitionKind::Iid,
            sites: 3,
            alpha: 0.5,
            seed: 1,
            min_rows: 2,
        });
        let d = load_text("p.csv", &good_csv(), spec.clone()).unwrap();
        let names: Vec<&str> = d.sites.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["site-0", "site-1", "site-2"]);
        spec.partition.as_mut().unwrap().sites = 16;
        spec.partition.as_mut().unwrap().min_rows = 1;
        let err = err_text(load_text("p.csv", &good_csv(), spec));
        assert!(err.contains("site \"site-0\": 1 rows"), "{err}");
    }

    fn random_spec() -> DataSpec {
        let mut spec = DataSpec::builtin(DatasetKind::Csv);
        spec.path = Some("r.csv".into());
        spec.numeric = vec!["a".into()];
        spec.categorical = vec![cat("b", "x", &[])];
        spec.target = Some(TargetSpec {
            column: "y".into(),
            rule: "class".into(),
        });
        spec.partition = Some(PartitionSpec {
            kind: PartitionKind::Dirichlet,
            sites: 2,
            alpha: 0.5,
            seed: 0,
            min_rows: 1,
        });
        spec
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, rng_seed: proptest::test_runner::RngSeed::Fixed(3), ..ProptestConfig::default() })]
        /// `load` on arbitrary bytes returns, never panics; an error names the file (and
        /// the line, where one row is at fault).
        #[test]
        fn load_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("r.csv");
            fs_err::write(&path, &bytes).unwrap();
            let mut spec = random_spec();
            for missing in [MissingPolicy::Drop, MissingPolicy::Impute] {
                spec.missing = missing;
                if let Err(e) = load(&spec, dir.path()) {
                    let msg = e.to_string();
                    prop_assert!(msg.contains(&path.display().to_string()), "{msg}");
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, rng_seed: proptest::test_runner::RngSeed::Fixed(5), ..ProptestConfig::default() })]
        /// CSV-shaped text (right header, mostly valid fields, some garbage) goes deeper
        /// into the loader: splits, imputation, partitions, standardisation.
        #[test]
        fn load_table_never_panics_on_csv_like_text(
            body in proptest::collection::vec(prop_oneof![
                8 => (
                    prop_oneof![4 => "-?[0-9]{1,3}(\\.[0-9])?", 1 => Just(String::new()), 1 => Just("?".to_string()), 1 => "[a-z.e0-9-]{0,6}"],
                    prop_oneof![4 => "[xyz]", 1 => Just(String::new()), 1 => "[a-z ]{0,3}"],
                    prop_oneof![6 => "[0-2]", 1 => Just(String::new()), 1 => "[0-9.-]{0,4}"],
                ).prop_map(|(a, b, y)| format!("{a},{b},{y}")),
                1 => "[ab xy0-9.,\"?-]{0,12}",
            ], 0..40),
            impute in any::<bool>(),
            kind in prop_oneof![Just(PartitionKind::Iid), Just(PartitionKind::Dirichlet), Just(PartitionKind::Quantity)],
        ) {
            let text = format!("a,b,y\n{}", body.join("\n"));
            let mut spec = random_spec();
            if impute {
                spec.missing = MissingPolicy::Impute;
            }
            if let Some(p) = spec.partition.as_mut() {
                p.kind = kind;
            }
            let table = TableSpec::from_csv_spec(&spec, "r".into()).unwrap();
            match load_table(text.as_bytes(), Path::new("r.csv"), &table) {
                Ok(d) => {
                    for s in &d.sites {
                        prop_assert!(!s.train.is_empty() && !s.test.is_empty());
                        prop_assert_eq!(s.train.x.cols, d.feature_names.len());
                        prop_assert!(s.train.y.iter().all(|&l| (l as usize) < d.num_classes));
                    }
                    let _ = d.standardized(crate::Standardization::PerSite);
                    let _ = d.describe();
                }
                Err(e) => {
                    // An error about the file or a row names the file; one about a site
                    // or the partition names the site or the setting instead.
                    let msg = e.to_string();
                    prop_assert!(
                        msg.contains("r.csv")
                            || matches!(
                                e,
                                DataError::SiteTooSmall { .. }
                                    | DataError::NothingToImpute { .. }
                                    | DataError::Partition { .. }
                            ),
                        "{msg}"
                    );
                }
            }
        }
    }
}
