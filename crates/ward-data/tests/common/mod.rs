//! Test files shared by the reader tests: the repository's fixtures and pydicom's files.

use std::path::{Path, PathBuf};

/// A file of `tests/fixtures` (written by `make_fixtures.py`).
pub(crate) fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// pydicom's test files, as Debian's python3-pydicom installs them.
pub(crate) fn pydicom_file(name: &str) -> PathBuf {
    let dir = Path::new("/usr/lib/python3/dist-packages/pydicom/data/test_files");
    assert!(
        dir.is_dir(),
        "{} is missing: the DICOM reader tests read pydicom's test files; run \
         `apt-get install python3-pydicom`",
        dir.display()
    );
    dir.join(name)
}
