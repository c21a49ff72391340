//! Label CSVs: a key column (`file`, or `sop_instance_uid` for DICOM) and `label`.
//!
//! Multi-class and binary labels are one class index; multi-label rows hold one 0/1 per
//! label separated by `;` or spaces (`1;0;1`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::DataError;
use crate::image::ImageTask;

/// One label row.
#[derive(Clone, Debug)]
pub(crate) struct LabelRow {
    /// The key as written (file path relative to the CSV's folder, or a UID).
    pub(crate) key: String,
    /// `task.label_width()` labels.
    pub(crate) labels: Vec<u32>,
    /// 1-based line number.
    pub(crate) line: u64,
}

/// A parsed label CSV.
#[derive(Debug)]
pub(crate) struct LabelTable {
    /// The CSV file.
    pub(crate) path: PathBuf,
    /// The key column found (one of those asked for).
    pub(crate) key_column: String,
    /// Rows in file order.
    pub(crate) rows: Vec<LabelRow>,
}

impl LabelTable {
    /// The folder relative file keys are resolved against.
    pub(crate) fn base_dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// Key -> row index.
    pub(crate) fn index(&self) -> HashMap<&str, usize> {
        self.rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.key.as_str(), i))
            .collect()
    }
}

fn parse_labels(raw: &str, task: ImageTask) -> Result<Vec<u32>, String> {
    let parts: Vec<&str> = raw
        .split(|c: char| c == ';' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .collect();
    let width = task.label_width();
    if parts.len() != width {
        return Err(match task {
            ImageTask::MultiLabel { labels } => format!(
                "{raw:?} has {} values; a multi-label task with {labels} labels needs {labels} 0/1 values separated by ';'",
                parts.len()
            ),
            _ => format!("{raw:?} is not one class index"),
        });
    }
    let bound = task.label_bound();
    parts
        .iter()
        .map(|p| match p.parse::<u32>() {
            Ok(v) if v < bound => Ok(v),
            Ok(v) => Err(format!("label {v} is outside 0..{bound}")),
            Err(_) => Err(format!("{p:?} is not a non-negative integer label")),
        })
        .collect()
}

/// Reads a label CSV with a header holding `label` and one of `key_columns`.
///
/// # Errors
/// [`DataError`] naming the file (and line and column): unreadable file, missing
/// columns, a bad or out-of-range label, an empty or duplicate key.
pub(crate) fn read_labels(
    path: &Path,
    task: ImageTask,
    key_columns: &[&str],
) -> Result<LabelTable, DataError> {
    let file = fs_err::File::open(path).map_err(|source| DataError::Io { source })?;
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(std::io::BufReader::new(file));
    let header = reader
        .headers()
        .map_err(|e| DataError::file(path, format!("cannot read the header: {e}")))?
        .clone();
    if header.is_empty() {
        return Err(DataError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    let names: Vec<String> = header.iter().map(|h| format!("{h:?}")).collect();
    let find = |name: &str| header.iter().position(|h| h == name);
    let Some((key_column, key_at)) = key_columns
        .iter()
        .find_map(|k| find(k).map(|i| ((*k).to_owned(), i)))
    else {
        let wanted: Vec<String> = key_columns.iter().map(|k| format!("{k:?}")).collect();
        return Err(DataError::file(
            path,
            format!(
                "the label CSV needs a {} column and \"label\"; the header has: {}",
                wanted.join(" or "),
                names.join(", ")
            ),
        ));
    };
    let Some(label_at) = find("label") else {
        return Err(DataError::MissingColumn {
            path: path.to_path_buf(),
            column: "label".into(),
            key: "the label CSV".into(),
            header: names.join(", "),
        });
    };
    let mut rows = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, csv::Position::line);
            DataError::BadRow {
                path: path.to_path_buf(),
                line,
                message: e.to_string(),
            }
        })?;
        let line = record.position().map_or(0, csv::Position::line);
        let key = record.get(key_at).unwrap_or("").to_owned();
        if key.is_empty() {
            return Err(DataError::BadValue {
                path: path.to_path_buf(),
                line,
                column: key_column.clone(),
                message: "is empty".into(),
            });
        }
        if let Some(first) = seen.insert(key.clone(), line) {
            return Err(DataError::BadValue {
                path: path.to_path_buf(),
                line,
                column: key_column.clone(),
                message: format!("{key:?} is listed twice (first on line {first})"),
            });
        }
        let labels = parse_labels(record.get(label_at).unwrap_or(""), task).map_err(|message| {
            DataError::BadValue {
                path: path.to_path_buf(),
                line,
                column: "label".into(),
                message,
            }
        })?;
        rows.push(LabelRow { key, labels, line });
    }
    Ok(LabelTable {
        path: path.to_path_buf(),
        key_column,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_by_task() {
        assert_eq!(
            parse_labels("2", ImageTask::MultiClass { classes: 3 }),
            Ok(vec![2])
        );
        assert!(
            parse_labels("3", ImageTask::MultiClass { classes: 3 })
                .unwrap_err()
                .contains("outside 0..3")
        );
        assert_eq!(
            parse_labels("1;0; 1", ImageTask::MultiLabel { labels: 3 }),
            Ok(vec![1, 0, 1])
        );
        assert!(
            parse_labels("1;0", ImageTask::MultiLabel { labels: 3 })
                .unwrap_err()
                .contains("needs 3")
        );
        assert_eq!(
            parse_labels("-1", ImageTask::Binary),
            Err("\"-1\" is not a non-negative integer label".into())
        );
    }

    /// A file name with a comma, quoted as the `csv` crate writes it, is one key.
    #[test]
    fn a_quoted_field_with_a_comma_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.csv");
        let mut w = csv::Writer::from_writer(Vec::new());
        for row in [["file", "label"], ["scan 1, left.nii", "1"], ["b.nii", "0"]] {
            w.write_record(row).unwrap();
        }
        let text = w.into_inner().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&text),
            "file,label\n\"scan 1, left.nii\",1\nb.nii,0\n"
        );
        fs_err::write(&p, &text).unwrap();
        let t = read_labels(&p, ImageTask::Binary, &["file"]).unwrap();
        let keys: Vec<(&str, &[u32], u64)> = t
            .rows
            .iter()
            .map(|r| (r.key.as_str(), r.labels.as_slice(), r.line))
            .collect();
        assert_eq!(
            keys,
            vec![("scan 1, left.nii", &[1][..], 2), ("b.nii", &[0][..], 3)]
        );
    }

    #[test]
    fn csv_errors_name_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.csv");
        fs_err::write(&p, "file,label\na.nii,1\nb.nii,7\n").unwrap();
        let e = read_labels(&p, ImageTask::Binary, &["file"]).unwrap_err();
        assert!(e.to_string().contains("l.csv:3: column \"label\""), "{e}");
        fs_err::write(&p, "file,label\na.nii,1\na.nii,0\n").unwrap();
        let e = read_labels(&p, ImageTask::Binary, &["file"]).unwrap_err();
        assert!(
            e.to_string().contains("listed twice (first on line 2)"),
            "{e}"
        );
        fs_err::write(&p, "name,label\na,1\n").unwrap();
        let e = read_labels(&p, ImageTask::Binary, &["file", "sop_instance_uid"]).unwrap_err();
        assert!(
            e.to_string().contains("\"file\" or \"sop_instance_uid\""),
            "{e}"
        );
    }
}
