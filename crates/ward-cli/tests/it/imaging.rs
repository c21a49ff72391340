//! Imaging end to end: synthetic scanner shift, FedBN, `ward robustness`.

use crate::{json, repo, run_ok, ward};

/// `ward data synth` writes one MedMNIST-layout file and contact sheet per site; a
/// reduced FedBN run on the same generator keeps each site's BatchNorm layers in
/// `model.<site>.safetensors`; `ward robustness` scores every corruption and severity on
/// every site with that site's model and writes the tables, plot and example sheets.
#[test]
fn synth_fedbn_run_and_robustness_report() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("synth");
    run_ok(
        ward()
            .args(["data", "synth", "--sites", "3", "--per-site", "60", "--out"])
            .arg(&data),
    );
    for i in 0..3 {
        assert!(data.join(format!("site-{i}.npz")).exists());
        assert!(data.join(format!("contact_site-{i}.png")).exists());
    }
    let meta = json(&data.join("synth.json"));
    assert!(meta.to_string().contains("site-2"), "{meta}");

    let run = tmp.path().join("run");
    run_ok(
        ward()
            .args(["run", "--quiet"])
            .arg(repo().join("examples/scanner-shift-fedbn.toml"))
            .args([
                "--set",
                "data.synth.per-site=80",
                "--set",
                "data.synth.sites=3",
                "--set",
                "federation.rounds=1",
                "--set",
                "model.channels=[4]",
                "--set",
                "model.hidden=[8]",
                "--out",
            ])
            .arg(&run),
    );
    for i in 0..3 {
        assert!(run.join(format!("model.site-{i}.safetensors")).exists());
    }
    let out = tmp.path().join("rob");
    run_ok(ward().arg("robustness").arg(&run).arg("--out").arg(&out));
    let csv = fs_err::read_to_string(out.join("robustness.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "site,corruption,severity,n,accuracy,auc,clean_accuracy,relative_drop"
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(
        rows.len(),
        3 * 12 * 5,
        "3 sites x 12 corruptions x 5 severities"
    );
    for r in &rows {
        let f: Vec<&str> = r.split(',').collect();
        let (acc, clean, drop): (f64, f64, f64) = (
            f[4].parse().unwrap(),
            f[6].parse().unwrap(),
            f[7].parse().unwrap(),
        );
        assert!((0.0..=1.0).contains(&acc));
        assert!((drop - (clean - acc) / clean).abs() < 1e-5, "{r}");
    }
    let report = json(&out.join("robustness.json"));
    assert_eq!(
        report["sites"]["site-1"]["model"].as_str(),
        Some("model.site-1.safetensors")
    );
    assert!(
        fs_err::read_to_string(out.join("robustness.svg"))
            .unwrap()
            .contains("ghosting")
    );
    let examples = fs_err::read_dir(out.join("examples")).unwrap().count();
    assert_eq!(examples, 12 * 5);
    assert!(out.join("examples/motion_s3.png").exists());

    // A table run is refused with a clear error.
    let heart = tmp.path().join("heart");
    run_ok(
        ward()
            .args(["run", "--quiet", "--set", "federation.rounds=1", "--out"])
            .arg(&heart),
    );
    let o = ward().arg("robustness").arg(&heart).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("corrupts images"));
}

/// The MedMNIST example partitions only its file's training split (350 images of the
/// bundled synthetic file, `data/README.md`) and keeps its test split (100 images) as the
/// test data: `summary.json`'s `held_out` scores all 100 once, with the macro
/// one-vs-rest AUC of a 4-class task, and `ward run`'s table prints the held-out row.
#[test]
fn medmnist_example_keeps_and_scores_its_test_split() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let o = run_ok(
        ward()
            .arg("run")
            .arg(repo().join("examples/medmnist-dirichlet.toml"))
            .args(["--set", "federation.rounds=2", "--out"])
            .arg(&run),
    );
    let s = json(&run.join("summary.json"));
    assert_eq!(s["held_out"]["n"], 100, "{s}");
    assert_eq!(
        s["held_out"]["what"],
        "the test split of synth-lesions-28.npz (100 images)"
    );
    let auc = s["held_out"]["auc"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&auc), "{s}");
    assert_eq!(s["per_site_auc"].as_object().unwrap().len(), 6, "{s}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("held-out set")
            && stdout.contains("the test split of synth-lesions-28.npz (100 images)"),
        "{stdout}"
    );
}
