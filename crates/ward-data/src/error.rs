//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while loading, partitioning or splitting data.
///
/// Messages name the file, the 1-based line and the column where there is one, or the
/// experiment-file key (e.g. `data.target.rule`) when a setting is at fault.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The data file could not be read (missing, unreadable). The I/O error names the path.
    #[error("cannot read the data file: {source}")]
    Io {
        /// The error from [`fs_err`], which names the path.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no header line.
    #[error("{}: the file is empty (expected a header line with column names)", path.display())]
    EmptyFile {
        /// The file.
        path: PathBuf,
    },
    /// A column named in the experiment file is not in the header.
    #[error(
        "{}: no column {column:?} (from {key}) in the header; the header has: {header}",
        path.display()
    )]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column that was asked for.
        column: String,
        /// The experiment-file key that names it, e.g. `data.numeric`.
        key: String,
        /// The header's column names, quoted and comma-separated.
        header: String,
    },
    /// A row is malformed as a whole (wrong number of fields, bad CSV syntax, bad UTF-8).
    #[error("{}:{line}: {message}", path.display())]
    BadRow {
        /// The file.
        path: PathBuf,
        /// 1-based line number where the row starts.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// One field cannot be read (not a number, unknown category, bad class label).
    #[error("{}:{line}: column {column:?}: {message}", path.display())]
    BadValue {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// The column name.
        column: String,
        /// What is wrong, quoting the value.
        message: String,
    },
    /// An image file (or an array inside one) is corrupt, truncated or not what the
    /// experiment says it holds.
    #[error("{}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the array or entry where there is one.
        message: String,
    },
    /// A data setting is unusable (e.g. a bad `data.target.rule`).
    #[error("{key}: {message}")]
    Spec {
        /// The experiment-file key, e.g. `data.target.rule`.
        key: String,
        /// Why.
        message: String,
    },
    /// After dropping rows, nothing is left to train on.
    #[error("{}: no usable rows ({reason})", path.display())]
    NoRows {
        /// The file.
        path: PathBuf,
        /// Why nothing is left.
        reason: String,
    },
    /// A site has too few rows for a non-empty train and test split.
    #[error(
        "site {site:?}: {rows} rows give {train} training and {test} test rows \
         (data.test-fraction = {test_fraction}); both must be non-empty"
    )]
    SiteTooSmall {
        /// The site.
        site: String,
        /// Its rows.
        rows: usize,
        /// Training rows the split gives.
        train: usize,
        /// Test rows the split gives.
        test: usize,
        /// The test fraction used.
        test_fraction: f64,
    },
    /// Missing values cannot be imputed because the training split has no value to learn from.
    #[error(
        "site {site:?}: column {column:?} has no value in the training split to impute \
         missing values from (data.missing = \"impute\")"
    )]
    NothingToImpute {
        /// The site.
        site: String,
        /// The column.
        column: String,
    },
    /// The partitioner cannot satisfy its settings.
    #[error("{key}: {message}")]
    Partition {
        /// The setting at fault, e.g. `data.partition.min-rows`.
        key: String,
        /// Why.
        message: String,
    },
    /// A matrix's data length does not match its shape.
    #[error("matrix of {rows} x {cols} needs {expected} values, got {got}")]
    Shape {
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
        /// rows * cols (saturating).
        expected: usize,
        /// The data length given.
        got: usize,
    },
}

impl DataError {
    /// A [`DataError::File`] for `path`.
    pub fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::File {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn spec(key: &str, message: impl Into<String>) -> Self {
        Self::Spec {
            key: key.to_owned(),
            message: message.into(),
        }
    }

    pub(crate) fn partition(key: &str, message: impl Into<String>) -> Self {
        Self::Partition {
            key: key.to_owned(),
            message: message.into(),
        }
    }
}
