//! `ward data describe` and the readers end to end.

use std::path::Path;

use crate::robust::write_experiment;
use crate::{json, repo, run_ok, ward};

#[test]
fn data_describe_prints_every_site() {
    let o = run_ok(ward().args(["data", "describe", "fed-heart-disease"]));
    let s = String::from_utf8_lossy(&o.stdout);
    for want in [
        "Cleveland",
        "304",
        "200",
        "104",
        "Switzerland",
        "46",
        "VA Long Beach",
        "130",
        "chol",
    ] {
        assert!(s.contains(want), "missing {want}: {s}");
    }
    let o = run_ok(
        ward()
            .args(["data", "describe"])
            .arg(repo().join("examples/breast-cancer-dirichlet.toml")),
    );
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("site-4"), "{s}");
    let o = ward()
        .args(["data", "describe", "no-such-dataset"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

/// `ward run` on hospital files: pydicom's DICOM test files (Debian's python3-pydicom)
/// across two simulated sites, a tiny CNN; the truncated file is skipped and named in
/// summary.json's `data_warnings`, and under `on-bad-file = "fail"` it stops the run
/// with a user error naming it.
#[test]
fn run_on_dicom_files_reports_skipped_files() {
    let pydicom = Path::new("/usr/lib/python3/dist-packages/pydicom/data/test_files");
    assert!(
        pydicom.is_dir(),
        "needs Debian's python3-pydicom test files (apt-get install python3-pydicom)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let mut csv = String::from("file,label\n");
    // 24 readable images: 12 CT (label 0) and 12 MR (label 1), plus the truncated file.
    for i in 0..12 {
        fs_err::copy(
            pydicom.join("CT_small.dcm"),
            tmp.path().join(format!("ct{i}.dcm")),
        )
        .unwrap();
        fs_err::copy(
            pydicom.join("MR_small.dcm"),
            tmp.path().join(format!("mr{i}.dcm")),
        )
        .unwrap();
        csv.push_str(&format!("ct{i}.dcm,0\nmr{i}.dcm,1\n"));
    }
    fs_err::copy(pydicom.join("MR_truncated.dcm"), tmp.path().join("bad.dcm")).unwrap();
    csv.push_str("bad.dcm,1\n");
    fs_err::write(tmp.path().join("labels.csv"), csv).unwrap();
    let exp = write_experiment(
        tmp.path(),
        "dicom",
        "name = \"dicom\"\n[data]\ndataset = \"dicom\"\npath = \"labels.csv\"\n\
         partition = { kind = \"iid\", sites = 2 }\n\
         images = { task = \"binary\", on-bad-file = \"skip\" }\n\
         reader = { height = 16, width = 16 }\n\
         [model]\nkind = \"cnn\"\nchannels = [4]\nhidden = [8]\nnorm = \"group\"\ngroups = 2\n\
         [train]\noptimizer = \"adam\"\nlr = 0.01\nbatch-size = 4\nlocal-steps = 5\n\
         [federation]\nrounds = 2\n",
    );
    let run = tmp.path().join("run");
    run_ok(
        ward()
            .args(["run", "--quiet"])
            .arg(&exp)
            .arg("--out")
            .arg(&run),
    );
    let s = json(&run.join("summary.json"));
    assert_eq!(s["per_site"].as_object().unwrap().len(), 2, "{s}");
    let warnings = s["data_warnings"].as_array().expect("data_warnings");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].as_str().unwrap().contains("bad.dcm"),
        "{warnings:?}"
    );

    let strict = fs_err::read_to_string(&exp)
        .unwrap()
        .replace(", on-bad-file = \"skip\"", "");
    let exp = write_experiment(tmp.path(), "strict", &strict);
    let o = ward()
        .args(["run", "--quiet"])
        .arg(&exp)
        .arg("--out")
        .arg(tmp.path().join("run2"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.dcm"), "{err}");
}
