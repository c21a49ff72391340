//! End-to-end tests of the `ward` binary (one integration-test binary for the crate),
//! one module per command; the helpers every module uses are here.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod aggregate;
mod bench;
mod data;
mod imaging;
mod new_user;
mod privacy;
mod report;
mod reproduce;
mod robust;
mod run;
mod trust;

pub(crate) fn ward() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ward"));
    c.env_remove("WARD_LOG");
    c
}

pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub(crate) fn run_ok(c: &mut Command) -> Output {
    let o = c.output().expect("ward starts");
    assert!(
        o.status.success(),
        "ward failed ({}):\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// `ward run` on the default experiment with `sets` overrides (into `out`) exits with
/// code 2 and a stderr naming every one of `wants`.
pub(crate) fn run_fails_naming(out: &Path, case: usize, sets: &[&str], wants: &[&str]) {
    let mut c = ward();
    c.arg("run").arg("--out").arg(out);
    for s in sets {
        c.args(["--set", s]);
    }
    let o = c.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "case {case}: {err}");
    for w in wants {
        assert!(err.contains(w), "case {case}: {w}: {err}");
    }
}

pub(crate) fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&fs_err::read_to_string(path).unwrap()).unwrap()
}
