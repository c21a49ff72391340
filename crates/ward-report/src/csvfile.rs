//! CSV tables written and read with the `csv` crate (RFC 4180 quoting: a field holding a
//! comma, a quote or a line break is quoted), so a method or site name with a comma
//! stays one field.

use std::path::Path;

use crate::ReportError;

/// A CSV file read whole: its header and its rows (every row as long as the header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvTable {
    /// Column names.
    pub header: Vec<String>,
    /// Data rows, fields in header order.
    pub rows: Vec<Vec<String>>,
}

impl CsvTable {
    /// The index of column `name`, if the header has it.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }
}

fn message(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} fields, but the header has {expected_len}"),
        _ => e.to_string(),
    }
}

fn csv_err(path: &Path, e: &csv::Error) -> ReportError {
    ReportError::Csv {
        path: path.to_path_buf(),
        line: e.position().map(csv::Position::line),
        message: message(e),
    }
}

/// The bytes of a CSV file: `header`, then `rows`, each field quoted where it needs it,
/// lines ending in `\n`. `path` only names the file in errors.
///
/// # Errors
/// [`ReportError::Csv`] when a row's length differs from the header's.
pub fn csv_bytes<R, F>(
    path: &Path,
    header: &[&str],
    rows: impl IntoIterator<Item = R>,
) -> Result<Vec<u8>, ReportError>
where
    R: IntoIterator<Item = F>,
    F: AsRef<[u8]>,
{
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    w.write_record(header).map_err(|e| csv_err(path, &e))?;
    for (i, row) in rows.into_iter().enumerate() {
        w.write_record(row).map_err(|e| ReportError::Csv {
            path: path.to_path_buf(),
            line: None,
            message: format!("row {}: {}", i + 1, message(&e)),
        })?;
    }
    w.into_inner().map_err(|e| ReportError::Csv {
        path: path.to_path_buf(),
        line: None,
        message: e.to_string(),
    })
}

/// Writes a CSV file (see [`csv_bytes`]) atomically with
/// [`ward_core::fsutil::write_atomic`].
///
/// # Errors
/// [`ReportError::Csv`] for a row of the wrong length, [`ReportError::Io`] naming the path.
pub fn write_csv_atomic<R, F>(
    path: &Path,
    header: &[&str],
    rows: impl IntoIterator<Item = R>,
) -> Result<(), ReportError>
where
    R: IntoIterator<Item = F>,
    F: AsRef<[u8]>,
{
    let bytes = csv_bytes(path, header, rows)?;
    ward_core::fsutil::write_atomic(path, &bytes)?;
    Ok(())
}

/// Parses CSV text with a header line; `path` only names the file in errors.
///
/// # Errors
/// [`ReportError::Csv`] naming `path:line`: no header, a row whose length differs from
/// the header's, text that is not UTF-8.
pub fn parse_csv(path: &Path, text: &[u8]) -> Result<CsvTable, ReportError> {
    let mut r = csv::ReaderBuilder::new().from_reader(text);
    let header: Vec<String> = r
        .headers()
        .map_err(|e| csv_err(path, &e))?
        .iter()
        .map(str::to_owned)
        .collect();
    if header.is_empty() {
        return Err(ReportError::Csv {
            path: path.to_path_buf(),
            line: None,
            message: "the file is empty (expected a header line)".into(),
        });
    }
    let mut rows = Vec::new();
    for record in r.records() {
        let record = record.map_err(|e| csv_err(path, &e))?;
        rows.push(record.iter().map(str::to_owned).collect());
    }
    Ok(CsvTable { header, rows })
}

/// Reads a CSV file with a header line (see [`parse_csv`]).
///
/// # Errors
/// [`ReportError::Io`] naming the path, or [`parse_csv`]'s errors.
pub fn read_csv(path: &Path) -> Result<CsvTable, ReportError> {
    let bytes = fs_err::read(path)?;
    parse_csv(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quoted_field_with_a_comma_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        let rows = vec![
            vec!["fedavg, tuned".to_owned(), "0.5".to_owned()],
            vec!["say \"hi\"".to_owned(), String::new()],
            vec!["two\nlines".to_owned(), "1".to_owned()],
        ];
        write_csv_atomic(&p, &["method", "mean"], &rows).unwrap();
        let text = fs_err::read_to_string(&p).unwrap();
        // RFC 4180 quoting, by hand.
        assert_eq!(
            text,
            "method,mean\n\"fedavg, tuned\",0.5\n\"say \"\"hi\"\"\",\n\"two\nlines\",1\n"
        );
        let back = read_csv(&p).unwrap();
        assert_eq!(back.header, vec!["method", "mean"]);
        assert_eq!(back.rows, rows);
        assert_eq!(back.column("mean"), Some(1));
        assert_eq!(back.column("std"), None);
    }

    #[test]
    fn a_row_of_the_wrong_length_is_an_error() {
        let p = Path::new("out/t.csv");
        let e = csv_bytes(p, &["a", "b"], [vec!["1"]])
            .unwrap_err()
            .to_string();
        assert!(e.contains("out/t.csv") && e.contains("row 1"), "{e}");
        let e = parse_csv(p, b"a,b\n1,2\n3\n").unwrap_err().to_string();
        assert!(
            e.contains("out/t.csv:3") && e.contains("1 fields, but the header has 2"),
            "{e}"
        );
        let e = parse_csv(p, b"").unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
    }

    #[test]
    fn a_missing_file_names_the_path() {
        let e = read_csv(Path::new("/nonexistent/x.csv"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/x.csv"), "{e}");
    }
}
