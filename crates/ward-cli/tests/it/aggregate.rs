//! `ward aggregate` on `.npy` updates.

use std::path::{Path, PathBuf};

use crate::{run_ok, ward};

/// Writes a C-order (or Fortran-order) `.npy` array with npyz.
pub(crate) fn write_npy<T: npyz::AutoSerialize + Copy>(
    path: &Path,
    shape: &[u64],
    values: &[T],
    fortran: bool,
) {
    use npyz::WriterBuilder;
    let file = std::io::BufWriter::new(fs_err::File::create(path).unwrap());
    let order = if fortran {
        npyz::Order::Fortran
    } else {
        npyz::Order::C
    };
    let mut w = npyz::WriteOptions::<T>::new()
        .default_dtype()
        .shape(shape)
        .order(order)
        .writer(file)
        .begin_nd()
        .unwrap();
    w.extend(values.iter().copied()).unwrap();
    w.finish().unwrap();
}

pub(crate) fn aggregate_line(args: &[&str], file: &Path) -> serde_json::Value {
    let o = run_ok(ward().arg("aggregate").args(args).arg(file));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line: {stdout}");
    serde_json::from_str(lines[0]).unwrap()
}

#[test]
fn aggregate_prints_median_and_krum_checked_by_hand() {
    let tmp = tempfile::tempdir().unwrap();
    // Median of rows (1, 10), (5, -2), (3, 4): per column {1, 5, 3} -> 3 and
    // {10, -2, 4} -> 4. float32 input.
    let m = tmp.path().join("m.npy");
    write_npy::<f32>(&m, &[3, 2], &[1., 10., 5., -2., 3., 4.], false);
    let v = aggregate_line(&["--rule", "median"], &m);
    assert_eq!(
        v,
        serde_json::json!({"rule": "median", "result": [3.0, 4.0]})
    );
    // Krum, f = 1, rows 0, 1, 2, 3, 10 (d = 1, float64 input cast to float32). Scores
    // over the n - f - 2 = 2 nearest squared distances: 0 -> 1 + 4 = 5, 1 -> 1 + 1 = 2,
    // 2 -> 1 + 1 = 2, 3 -> 1 + 4 = 5, 10 -> 49 + 64 = 113. The tie 1 / 2 goes to the more
    // central (summed distances 1 -> 87, 2 -> 70): row 2.
    let k = tmp.path().join("k.npy");
    write_npy::<f64>(&k, &[5, 1], &[0., 1., 2., 3., 10.], false);
    let v = aggregate_line(&["--rule", "krum", "--f", "1"], &k);
    assert_eq!(
        v,
        serde_json::json!({"rule": "krum", "result": [2.0], "selected": [2]})
    );
    // Multi-Krum with m = 2 averages rows 1 and 2 (the two lowest scores): 1.5.
    let v = aggregate_line(&["--rule", "multi-krum", "--f", "1", "--m", "2"], &k);
    assert_eq!(
        v,
        serde_json::json!({"rule": "multi-krum", "result": [1.5], "selected": [1, 2]})
    );
}

#[test]
fn aggregate_refuses_bad_inputs_with_user_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |name: &str| tmp.path().join(name);
    write_npy::<f32>(&p("one_d.npy"), &[3], &[1., 2., 3.], false);
    write_npy::<f32>(&p("three_d.npy"), &[1, 2, 2], &[1., 2., 3., 4.], false);
    write_npy::<f32>(&p("fortran.npy"), &[2, 3], &[1., 2., 3., 4., 5., 6.], true);
    write_npy::<f32>(&p("nan.npy"), &[2, 2], &[1., 2., f32::NAN, 4.], false);
    write_npy::<f64>(&p("inf.npy"), &[2, 2], &[1., 2., 3., f64::INFINITY], false);
    write_npy::<i64>(&p("int.npy"), &[2, 2], &[1, 2, 3, 4], false);
    fs_err::write(p("text.npy"), "not numpy").unwrap();
    write_npy::<f32>(&p("ok.npy"), &[5, 1], &[0., 1., 2., 3., 10.], false);
    let cases: Vec<(Vec<&str>, PathBuf, &str)> = vec![
        (
            vec!["--rule", "median"],
            p("one_d.npy"),
            "expected a 2-D (n, d) array of updates, got shape (3,)",
        ),
        (
            vec!["--rule", "median"],
            p("three_d.npy"),
            "got shape (1, 2, 2)",
        ),
        (
            vec!["--rule", "median"],
            p("fortran.npy"),
            "Fortran-order arrays are not supported",
        ),
        (
            vec!["--rule", "median"],
            p("nan.npy"),
            "the value at row 1, column 0 is NaN",
        ),
        (
            vec!["--rule", "median"],
            p("inf.npy"),
            "the value at row 1, column 1 is infinite",
        ),
        (
            vec!["--rule", "median"],
            p("int.npy"),
            "dtype '<i8' is not supported: expected float32 or float64",
        ),
        (
            vec!["--rule", "median"],
            p("text.npy"),
            "not a readable .npy file",
        ),
        (vec!["--rule", "median"], p("missing.npy"), "missing.npy"),
        (
            vec!["--rule", "krum", "--f", "2"],
            p("ok.npy"),
            "krum with f = 2 needs n >= 2f+3 = 7 updates, got 5",
        ),
        (
            vec!["--rule", "krum"],
            p("ok.npy"),
            "--f: is required for krum",
        ),
        (
            vec!["--rule", "nope"],
            p("ok.npy"),
            "unknown aggregation rule \"nope\"",
        ),
        (
            vec!["--rule", "centered-clipping", "--tau=-1"],
            p("ok.npy"),
            "tau = -1: must be a number > 0",
        ),
        (
            vec!["--rule", "median", "--pre", "bucketing:0"],
            p("ok.npy"),
            "--pre: \"bucketing:0\": the bucket size must be an integer >= 1",
        ),
        (
            vec!["--rule", "fltrust"],
            p("ok.npy"),
            "needs the server's update",
        ),
    ];
    for (args, file, want) in cases {
        let o = ward()
            .arg("aggregate")
            .args(&args)
            .arg(&file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{args:?} {}: {stderr}",
            file.display()
        );
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert!(o.stdout.is_empty());
    }
}

/// `ward aggregate` with the clustering and filtering rules, on inputs checked by hand
/// in their unit tests (dnc.rs, flame.rs, clipped_clustering.rs).
#[test]
fn aggregate_runs_dnc_flame_signguard_and_clipped_clustering() {
    let tmp = tempfile::tempdir().unwrap();
    // DnC, f = 1: rows (0, 0), (1, 0), (-1, 0), (0, 10); the last scores highest along
    // the top singular direction (0, 1) and is dropped: mean (0, 0).
    let d = tmp.path().join("d.npy");
    write_npy::<f32>(&d, &[4, 2], &[0., 0., 1., 0., -1., 0., 0., 10.], false);
    let v = aggregate_line(&["--rule", "dnc", "--f", "1", "--seed", "3"], &d);
    assert_eq!(
        v,
        serde_json::json!({"rule": "dnc", "result": [0.0, 0.0], "selected": [0, 1, 2]})
    );
    // FLAME without noise: the cluster is {0, 1, 2} (see flame.rs).
    let f = tmp.path().join("f.npy");
    write_npy::<f32>(
        &f,
        &[5, 2],
        &[1., 0., 1., 0.1, 2., 0.1, 1., -0.1, 0., 3.],
        false,
    );
    let v = aggregate_line(&["--rule", "flame", "--lambda", "0", "--seed", "1"], &f);
    assert_eq!(v["selected"], serde_json::json!([0, 1, 2]));
    // With noise the result moves, the selection does not.
    let w = aggregate_line(&["--rule", "flame", "--seed", "1"], &f);
    assert_eq!(w["selected"], serde_json::json!([0, 1, 2]));
    assert_ne!(w["result"], v["result"]);
    // Clipped clustering: {0, 1, 2} against (-8, 0).
    let c = tmp.path().join("c.npy");
    write_npy::<f32>(&c, &[4, 2], &[1., 0.1, 2., 0., 1., -0.1, -8., 0.], false);
    let v = aggregate_line(&["--rule", "clipped-clustering"], &c);
    assert_eq!(v["selected"], serde_json::json!([0, 1, 2]));
    // SignGuard drops the update 20 times longer than the median (d = 1: 1, 1.1, 0.9, 20).
    let s = tmp.path().join("s.npy");
    write_npy::<f32>(&s, &[4, 1], &[1., 1.1, 0.9, 20.], false);
    let v = aggregate_line(&["--rule", "signguard"], &s);
    assert_eq!(v["selected"], serde_json::json!([0, 1, 2]));
    // Options a rule does not take are refused.
    let o = ward()
        .args(["aggregate", "--rule", "signguard", "--lambda", "0.1"])
        .arg(&s)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("--lambda: is not an option of aggregator \"signguard\"")
    );
}
