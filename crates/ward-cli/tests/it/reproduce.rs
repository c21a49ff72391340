//! `ward reproduce`: FLamby's tables and the scanner-shift table.

use crate::{run_ok, ward};

/// `ward reproduce flamby-heart-dp` on a corner of FLamby's grid: the table has the
/// columns of flamby-heart; every DP row spent at most its target (RDP, over the 1500
/// steps each site really took) and close to it (the calibration is tight); FLamby's
/// calibration for 15 epochs spent more than it claims; the published FLamby means
/// stand beside the rows (no DP 0.712 and (0.1, 1e-4) 0.606: du Terrail et al. 2022,
/// vendored in data/flamby_heart_dp_results.csv); and the strongest privacy costs
/// accuracy against the weakest.
#[test]
fn reproduce_flamby_heart_dp_accounts_over_the_steps_taken() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dp");
    let o = run_ok(
        ward()
            .args([
                "reproduce",
                "flamby-heart-dp",
                "--seeds",
                "2",
                "--epsilons",
                "0.1,50",
                "--deltas",
                "1e-4",
                "--out",
            ])
            .arg(&dir),
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("FLamby"), "{stdout}");
    let csv = fs_err::read_to_string(dir.join("table.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "method,mean,std,flamby,seed0,seed1");
    let methods: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(
        methods,
        [
            "fedavg no-dp",
            "dp-sgd clip-only no-noise",
            "dp-sgd eps=0.1 delta=1e-4",
            "dp-sgd eps=50 delta=1e-4"
        ]
    );
    let flamby: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split(',').nth(3).unwrap())
        .collect();
    assert_eq!(flamby, ["0.712", "", "0.606", "0.702"]);
    let rows: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(dir.join("table.json")).unwrap()).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for r in &rows[2..] {
        let target = r["target_epsilon"].as_f64().unwrap();
        let spent = r["epsilon_rdp"].as_f64().unwrap();
        assert!(spent <= target && spent >= 0.99 * target, "{r}");
        // PRV is the tighter accountant: at most RDP's value for the same noise.
        assert!(r["epsilon_prv"].as_f64().unwrap() <= spent, "{r}");
        let sites = r["sites"].as_array().unwrap();
        assert_eq!(sites.len(), 4);
        for s in sites {
            assert_eq!(s["steps"], 1500, "{s}");
            assert_eq!(s["flamby"]["steps_taken"], 1500, "{s}");
            assert!(s["flamby"]["planned_steps"].as_u64().unwrap() < 1500, "{s}");
        }
        assert!(r["flamby_epsilon_spent"].as_f64().unwrap() > target, "{r}");
    }
    let mean = |i: usize| rows[i]["mean"].as_f64().unwrap();
    assert!(
        mean(2) < mean(3),
        "epsilon 0.1 {} vs 50 {}",
        mean(2),
        mean(3)
    );
    assert!(rows[1]["epsilon_rdp"].is_null());
}

/// The acceptance check of the FLamby reproduction: every FLamby row within 0.03 of the
/// published mean or above it (FLamby's settings, 5 seeds), and the best of Ward's own
/// federated rows (settings chosen by CV inside the training splits) at or above Ward's
/// pooled row minus 0.01. Published means: du Terrail et al. 2022 (FLamby), as listed in
/// data/README.md.
#[test]
fn reproduce_flamby_heart_meets_the_published_table() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repro");
    let o = run_ok(
        ward()
            .args(["reproduce", "flamby-heart", "--out"])
            .arg(&dir),
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("FLamby"), "{stdout}");
    let csv = fs_err::read_to_string(dir.join("table.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "method,mean,std,flamby,seed0,seed1,seed2,seed3,seed4"
    );
    let mut pooled = None;
    let mut best_ward_federated = f64::NEG_INFINITY;
    let mut flamby_rows = 0;
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        assert_eq!(f.len(), 9, "{l}");
        let mean: f64 = f[1].parse().unwrap();
        let seeds: Vec<f64> = f[4..].iter().map(|v| v.parse().unwrap()).collect();
        assert!((seeds.iter().sum::<f64>() / 5.0 - mean).abs() < 1e-5, "{l}");
        if !f[3].is_empty() {
            let published: f64 = f[3].parse().unwrap();
            assert!(
                mean >= published - 0.03,
                "{}: {mean} vs FLamby {published}",
                f[0]
            );
            flamby_rows += 1;
        }
        if f[0] == "pooled" {
            pooled = Some(mean);
        }
        if f[0].starts_with("ward ") {
            best_ward_federated = best_ward_federated.max(mean);
        }
    }
    assert_eq!(flamby_rows, 12);
    let pooled = pooled.unwrap();
    assert!(
        best_ward_federated >= pooled - 0.01,
        "best federated {best_ward_federated} vs pooled {pooled}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(dir.join("table.json")).unwrap()).unwrap();
    let rows = json.as_array().unwrap();
    assert!(
        rows.iter()
            .all(|r| r["config"]["federation"]["strategy"].is_string())
    );
    assert!(
        rows.iter()
            .all(|r| r["per_seed"].as_array().unwrap().len() == 5)
    );
}

#[test]
fn scanner_shift_reproduction_writes_both_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ss");
    run_ok(
        ward()
            .args(["reproduce", "scanner-shift", "--seeds", "1", "--sites", "3"])
            .args([
                "--per-site",
                "60",
                "--rounds",
                "1",
                "--channels",
                "4",
                "--hidden",
                "8",
            ])
            .arg("--out")
            .arg(&out),
    );
    let table = fs_err::read_to_string(out.join("table.csv")).unwrap();
    let methods: Vec<&str> = table
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(
        methods,
        [
            "local site-0",
            "local site-1",
            "local site-2",
            "fedavg",
            "fedprox",
            "fedbn",
            "pooled"
        ]
    );
    assert!(table.starts_with("method,mean,std,flamby,seed0"));
    let cross = fs_err::read_to_string(out.join("cross_site.csv")).unwrap();
    assert_eq!(cross.lines().count(), 1 + 3 * 3);
    assert!(cross.contains("site-1,site-2,"));
}
