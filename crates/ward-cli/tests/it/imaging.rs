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
        "site,corruption,severity,n,accuracy,balanced_accuracy,auc,normalised_error,\
         clean_accuracy,clean_balanced_accuracy,chance,relative_drop"
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(
        rows.len(),
        3 * 18 * 5,
        "3 sites x 18 corruptions x 5 severities"
    );
    let num = |s: &str| -> Option<f64> { (!s.is_empty()).then(|| s.parse().unwrap()) };
    for r in &rows {
        let f: Vec<&str> = r.split(',').collect();
        let (acc, bacc, clean_bacc, chance) = (
            num(f[4]).unwrap(),
            num(f[5]).unwrap(),
            num(f[9]).unwrap(),
            num(f[10]).unwrap(),
        );
        assert!(
            (0.0..=1.0).contains(&acc) && (0.0..=1.0).contains(&bacc),
            "{r}"
        );
        // Four synthetic classes, every one in each site's test set: chance is 1/4.
        assert!((chance - 0.25).abs() < 1e-9, "{r}");
        let err = num(f[7]).unwrap();
        assert!((err - (1.0 - bacc) / (1.0 - chance)).abs() < 1e-5, "{r}");
        match num(f[11]) {
            Some(drop) => {
                assert!(
                    (drop - (clean_bacc - bacc) / (clean_bacc - chance)).abs() < 1e-5,
                    "{r}"
                );
            }
            None => assert!(clean_bacc <= chance, "{r}"),
        }
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
    assert_eq!(examples, 18 * 5);
    assert!(out.join("examples/motion_s3.png").exists());
    assert!(out.join("examples/gamma-down_s5.png").exists());
    let site = &report["sites"]["site-0"];
    assert_eq!(site["chance"].as_f64(), Some(0.25));
    assert!(
        site["corruptions"]["shot-noise"]["balanced_accuracy"].is_f64(),
        "{site}"
    );
    let motion = &report["settings"]["motion"][4];
    assert_eq!(motion["degrees"].as_f64(), Some(10.0), "{motion}");
    assert_eq!(motion["translation"].as_f64(), Some(5.0), "{motion}");
    assert_eq!(motion["movements"].as_u64(), Some(5), "{motion}");
    assert_eq!(report["settings"]["spike"][0].as_f64(), Some(0.25));

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
