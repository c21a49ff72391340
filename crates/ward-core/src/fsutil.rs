//! File-system helpers shared by every crate that writes state files.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::Path;

/// Writes `bytes` to `path` so that a crash at any moment leaves either the old file or
/// the new one, never a torn one: the bytes go to `.tmp-<name>-<pid>` in the same
/// directory, that file is synced, renamed over `path`, and the directory is synced (on
/// Unix) so the rename itself is durable.
///
/// One writer per path at a time: two threads of one process writing the same path at
/// once share the temporary name. A temporary file left by a crash is overwritten by the
/// next write from a process with the same id, and is otherwise harmless.
///
/// # Errors
/// The I/O error, its message naming `path` (and the file the operation touched, from
/// `fs_err`), its kind kept. On an error the temporary file is removed.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let p = dir.path().join("state.json");
/// ward_core::fsutil::write_atomic(&p, b"{}")?;
/// assert_eq!(std::fs::read(&p)?, b"{}");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let named = |e: io::Error| io::Error::new(e.kind(), format!("writing {}: {e}", path.display()));
    let Some(name) = path.file_name() else {
        return Err(named(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path names no file",
        )));
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp_name = OsString::from(".tmp-");
    tmp_name.push(name);
    tmp_name.push(format!("-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let written = (|| {
        let mut file = fs_err::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs_err::rename(&tmp, path)
    })();
    if let Err(e) = written {
        // Best effort: the temporary file may not exist (create failed).
        let _ = fs_err::remove_file(&tmp);
        return Err(named(e));
    }
    sync_dir(dir).map_err(named)
}

/// Syncs a directory so that a rename inside it survives a crash.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    fs_err::File::open(dir)?.sync_all()
}

/// Directories cannot be opened as files here; the rename is as durable as the OS makes it.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs_err::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.bin");
        write_atomic(&p, b"hello").unwrap();
        assert_eq!(fs_err::read(&p).unwrap(), b"hello");
    }

    #[test]
    fn overwrites_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.bin");
        write_atomic(&p, b"a longer first version").unwrap();
        write_atomic(&p, b"short").unwrap();
        assert_eq!(fs_err::read(&p).unwrap(), b"short");
    }

    #[test]
    fn leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.bin");
        write_atomic(&p, b"1").unwrap();
        write_atomic(&p, b"2").unwrap();
        assert_eq!(names(dir.path()), vec!["a.bin".to_owned()]);
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing").join("a.bin");
        let e = write_atomic(&p, b"x").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        let msg = e.to_string();
        assert!(msg.contains(&p.display().to_string()), "{msg}");
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn a_path_without_a_file_name_is_an_error() {
        let e = write_atomic(Path::new("/"), b"x").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("writing /"), "{e}");
    }

    #[test]
    fn a_failed_rename_removes_the_temporary_file() {
        // Renaming a file over a non-empty directory fails after the temporary is written.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("taken");
        fs_err::create_dir(&p).unwrap();
        fs_err::write(p.join("inside"), b"").unwrap();
        let e = write_atomic(&p, b"x").unwrap_err();
        assert!(e.to_string().contains(&p.display().to_string()), "{e}");
        assert_eq!(names(dir.path()), vec!["taken".to_owned()]);
    }
}
