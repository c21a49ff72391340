//! `ward bench` without anchors.

use crate::{json, run_ok, ward};

/// `ward bench fl` runs end to end (the numbers of a debug build mean nothing; this only
/// keeps the command working) and prints its ratio table.
#[test]
fn bench_fl_runs_without_the_anchor() {
    let o = run_ok(ward().args(["bench", "fl", "--repeats", "1", "--no-anchor"]));
    let s = String::from_utf8_lossy(&o.stdout);
    for want in [
        "ward run (whole process)",
        "ward rounds, native kernels",
        "local step, Burn",
        "Burn rounds / native rounds",
    ] {
        assert!(s.contains(want), "missing {want}: {s}");
    }
}

/// `ward bench secagg` runs end to end on tiny sizes (the numbers of a debug build mean
/// nothing; this keeps the command working): both graphs, with and without dropouts,
/// the recovered sums within the quantisation bound.
#[test]
fn bench_secagg_runs_without_the_anchor() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("secagg.json");
    let o = run_ok(
        ward()
            .args([
                "bench",
                "secagg",
                "--n",
                "10",
                "--d",
                "2000",
                "--no-anchor",
                "--json",
            ])
            .arg(&out),
    );
    let s = String::from_utf8_lossy(&o.stdout);
    for want in [
        "9 / 5",
        "2 / 2",
        "Flower/ward",
        "no comparison in this run",
        "1 of 2: no more can drop safely",
    ] {
        assert!(s.contains(want), "missing {want}: {s}");
    }
    let rows = json(&out);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 4, "2 graphs x 2 dropout rates");
    for r in rows {
        let w = &r["ward"];
        assert!(
            w["max_abs_err_sum"].as_f64().unwrap() <= w["err_bound_sum"].as_f64().unwrap(),
            "{r}"
        );
        let dropped = w["dropped"].as_u64().unwrap();
        let dropping = r["case"]["drop"].as_f64().unwrap() > 0.0;
        assert_eq!(w["requested_drops"], if dropping { 2 } else { 0 }, "{r}");
        // The ring (2 neighbours, threshold 2) cannot lose 2 of 10 sites safely: two
        // adjacent dropouts leave each with one live neighbour (secrets lost), two
        // others split the survivors (partial sums exposed). It runs with 1.
        let sparse = r["case"]["graph"] == "sparse";
        let want = match (dropping, sparse) {
            (false, _) => 0,
            (true, true) => 1,
            (true, false) => 2,
        };
        assert_eq!(dropped, want, "{r}");
        // At least the masked vector: 4 bytes a value.
        assert!(w["up_bytes_per_site"].as_f64().unwrap() > 8000.0, "{r}");
    }
}
