//! `ward calibration` and `ward conformal` on `.npy` probabilities and labels.

use std::path::Path;

use crate::aggregate::write_npy;
use crate::{run_ok, ward};

fn json_line(args: &[&str]) -> serde_json::Value {
    let o = run_ok(ward().args(args));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line: {stdout}");
    serde_json::from_str(lines[0]).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn close(v: &serde_json::Value, want: f64, tol: f64) {
    let x = v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"));
    assert!((x - want).abs() <= tol, "{x} vs {want}");
}

#[test]
fn calibration_prints_metrics_checked_by_hand() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("p.npy");
    let y = tmp.path().join("y.npy");
    // Four rows, three classes (float64), top-label confidences .9 right, .75 wrong,
    // .5 right, .45 wrong, each alone in its 15-bin: ECE (.1 + .75 + .5 + .45) / 4 =
    // 0.45, MCE 0.75; Brier (.015 + 1.295 + .38 + .665) / 4 = 0.58875; NLL
    // -(ln .9 + ln .15 + ln .5 + ln .35) / 4; accuracy 0.5.
    write_npy::<f64>(
        &p,
        &[4, 3],
        &[
            0.9, 0.05, 0.05, 0.75, 0.15, 0.10, 0.2, 0.5, 0.3, 0.35, 0.2, 0.45,
        ],
        false,
    );
    write_npy::<i64>(&y, &[4], &[0, 1, 1, 0], false);
    let v = json_line(&["calibration", "--probs", s(&p), "--labels", s(&y)]);
    close(&v["ece"], 0.45, 1e-12);
    close(&v["mce"], 0.75, 1e-12);
    close(&v["brier"], 0.58875, 1e-12);
    let nll = -(0.9f64.ln() + 0.15f64.ln() + 0.5f64.ln() + 0.35f64.ln()) / 4.0;
    close(&v["nll"], nll, 1e-12);
    close(&v["accuracy"], 0.5, 0.0);
    let bins = v["bins"].as_array().unwrap();
    assert_eq!(bins.len(), 15);
    assert_eq!(bins[13]["count"], 1);
    close(&bins[13]["confidence"], 0.9, 1e-12);
    close(&bins[13]["accuracy"], 1.0, 0.0);
    assert!(bins[0]["confidence"].is_null());
    // --bins 2: (0, .5] holds .45 x and .5 o, (.5, 1] .75 x and .9 o: ECE
    // (|.5 - .475| + |.5 - .825|) / 2 = 0.175.
    let v = json_line(&[
        "calibration",
        "--probs",
        s(&p),
        "--labels",
        s(&y),
        "--bins",
        "2",
    ]);
    close(&v["ece"], 0.175, 1e-12);
    assert_eq!(v["bins"].as_array().unwrap().len(), 2);

    // Binary as (n,) float32 positive-class probabilities, uint8 labels: rows (.2, .8)
    // label 1 and (.7, .3) label 0: Brier (.04 + .04 + .09 + .09) / 2 = 0.13 (not divided
    // by k); both right.
    let pb = tmp.path().join("pb.npy");
    let yb = tmp.path().join("yb.npy");
    write_npy::<f32>(&pb, &[2], &[0.8, 0.3], false);
    write_npy::<u8>(&yb, &[2], &[1, 0], false);
    let v = json_line(&["calibration", "--probs", s(&pb), "--labels", s(&yb)]);
    close(&v["brier"], 0.13, 1e-6);
    close(&v["accuracy"], 1.0, 0.0);
    assert_eq!(v["classes"], 2);
}

#[test]
fn conformal_prints_qhat_and_sets_checked_by_hand() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("cal.npy");
    let y = tmp.path().join("cal_y.npy");
    let t = tmp.path().join("test.npy");
    // LAC scores 1 - p_y: .1, .3, .4, .8. alpha 0.4: ceil(5 * 0.6) = 3rd smallest: 0.4.
    write_npy::<f64>(
        &p,
        &[4, 2],
        &[0.9, 0.1, 0.7, 0.3, 0.4, 0.6, 0.2, 0.8],
        false,
    );
    write_npy::<i32>(&y, &[4], &[0, 0, 1, 0], false);
    // Test rows keep classes with p >= 1 - 0.4 = 0.6: {0}, {} and {1}.
    write_npy::<f64>(&t, &[3, 2], &[0.65, 0.35, 0.5, 0.5, 0.3, 0.7], false);
    let base = ["conformal", "--probs", s(&p), "--labels", s(&y)];
    let v = json_line(&[&base[..], &["--alpha", "0.4", "--test", s(&t)]].concat());
    assert_eq!(v["score"], "lac");
    close(&v["alpha"], 0.4, 0.0);
    close(&v["qhat"], 0.4, 1e-15);
    assert_eq!(v["sets"], serde_json::json!([[0], [], [1]]));
    // alpha 0.2: ceil(5 * 0.8) = 4th smallest: 0.8; no --test, no "sets".
    let v = json_line(&[&base[..], &["--alpha", "0.2"]].concat());
    close(&v["qhat"], 0.8, 1e-15);
    assert!(v.get("sets").is_none());
    // APS: running sums through the label: .9, .7, .6, 1.0 (row 4's label is second);
    // alpha 0.4 -> 3rd smallest 0.9. Test row (.65, .35): .65 < .9 so class 1 is the
    // last label in (include-last): {0, 1}; by score only ({j : s <= .9}): {0}.
    let v = json_line(
        &[
            &base[..],
            &["--alpha", "0.4", "--score", "aps", "--test", s(&t)],
        ]
        .concat(),
    );
    close(&v["qhat"], 0.9, 1e-15);
    assert_eq!(v["sets"][0], serde_json::json!([0, 1]));
    let v = json_line(
        &[
            &base[..],
            &[
                "--alpha",
                "0.4",
                "--score",
                "aps",
                "--sets",
                "at-most",
                "--test",
                s(&t),
            ],
        ]
        .concat(),
    );
    assert_eq!(v["sets"][0], serde_json::json!([0]));
    // RAPS reports its k_reg and lambda.
    let v = json_line(
        &[
            &base[..],
            &[
                "--alpha", "0.4", "--score", "raps", "--k-reg", "1", "--lambda", "0.5",
            ],
        ]
        .concat(),
    );
    assert_eq!(v["score"], "raps");
    assert_eq!(v["k_reg"], 1);
    // Row 4 (label second): 1.0 + 0.5 * (2 - 1) = 1.5; others .9, .7, .6: 3rd is .9.
    close(&v["qhat"], 0.9, 1e-15);
}

/// Each bad input exits with code 2 and a message naming the file and the problem.
#[test]
fn bad_inputs_are_user_errors_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let f = |n: &str| tmp.path().join(n);
    write_npy::<f64>(&f("ok.npy"), &[2, 2], &[0.9, 0.1, 0.3, 0.7], false);
    write_npy::<i64>(&f("y.npy"), &[2], &[0, 1], false);
    write_npy::<f64>(&f("sum.npy"), &[2, 2], &[0.5, 0.6, 0.3, 0.7], false);
    write_npy::<f64>(&f("nan.npy"), &[2, 2], &[0.9, 0.1, f64::NAN, 0.7], false);
    write_npy::<f64>(&f("3d.npy"), &[1, 2, 2], &[0.9, 0.1, 0.3, 0.7], false);
    write_npy::<i64>(&f("y3.npy"), &[3], &[0, 1, 1], false);
    write_npy::<i64>(&f("yout.npy"), &[2], &[0, 2], false);
    write_npy::<i64>(&f("yneg.npy"), &[2], &[-1, 0], false);
    write_npy::<f64>(&f("yfloat.npy"), &[2], &[0.0, 1.0], false);
    write_npy::<i64>(&f("pint.npy"), &[2, 2], &[1, 0, 0, 1], false);
    write_npy::<f64>(&f("t3.npy"), &[1, 3], &[0.2, 0.3, 0.5], false);
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (
            vec![
                "calibration".into(),
                "--probs".into(),
                s(&f("sum.npy")).into(),
                "--labels".into(),
                s(&f("y.npy")).into(),
            ],
            vec!["sum.npy", "row 0 sums to 1.1"],
        ),
        (
            vec![
                "calibration".into(),
                "--probs".into(),
                s(&f("nan.npy")).into(),
                "--labels".into(),
                s(&f("y.npy")).into(),
            ],
            vec!["nan.npy", "row 1, column 0", "NaN"],
        ),
        (
            vec![
                "calibration".into(),
                "--probs".into(),
                s(&f("3d.npy")).into(),
                "--labels".into(),
                s(&f("y.npy")).into(),
            ],
            vec!["3d.npy", "(1, 2, 2)"],
        ),
        (
            vec![
                "calibration".into(),
                "--probs".into(),
                s(&f("ok.npy")).into(),
                "--labels".into(),
                s(&f("y3.npy")).into(),
            ],
            vec!["y3.npy", "3 labels", "2 rows"],
        ),
        (
            vec![
                "calibration".into(),
                "--probs".into(),
                s(&f("ok.npy")).into(),
                "--labels".into(),
                s(&f("yout.npy")).into(),
            ],
            vec!["yout.npy", "label 2 at row 1", "2 classes"],
        ),
        (
            vec![
                "calibration".into(),
                "--probs".into(),
                s(&f("ok.npy")).into(),
                "--labels".into(),
                s(&f("yneg.npy")).into(),
            ],
            vec!["yneg.npy", "label -1 at row 0"],
        ),
        (
            vec![
                "calibration".into(),
                "--probs".into(),
                s(&f("ok.npy")).into(),
                "--labels".into(),
                s(&f("yfloat.npy")).into(),
            ],
            vec!["yfloat.npy", "labels must be integers"],
        ),
        (
            vec![
                "calibration".into(),
                "--probs".into(),
                s(&f("pint.npy")).into(),
                "--labels".into(),
                s(&f("y.npy")).into(),
            ],
            vec!["pint.npy", "float32 or float64"],
        ),
        (
            vec![
                "calibration".into(),
                "--probs".into(),
                s(&f("missing.npy")).into(),
                "--labels".into(),
                s(&f("y.npy")).into(),
            ],
            vec!["missing.npy"],
        ),
        (
            vec![
                "conformal".into(),
                "--probs".into(),
                s(&f("ok.npy")).into(),
                "--labels".into(),
                s(&f("y.npy")).into(),
                "--alpha".into(),
                "1.5".into(),
            ],
            vec!["--alpha", "1.5", "(0, 1)"],
        ),
        (
            vec![
                "conformal".into(),
                "--probs".into(),
                s(&f("ok.npy")).into(),
                "--labels".into(),
                s(&f("y.npy")).into(),
                "--alpha".into(),
                "0".into(),
            ],
            vec!["--alpha", "(0, 1)"],
        ),
        (
            vec![
                "conformal".into(),
                "--probs".into(),
                s(&f("ok.npy")).into(),
                "--labels".into(),
                s(&f("y.npy")).into(),
                "--alpha".into(),
                "0.1".into(),
            ],
            vec!["ok.npy", "too few"],
        ),
        (
            vec![
                "conformal".into(),
                "--probs".into(),
                s(&f("ok.npy")).into(),
                "--labels".into(),
                s(&f("y.npy")).into(),
                "--alpha".into(),
                "0.5".into(),
                "--test".into(),
                s(&f("t3.npy")).into(),
            ],
            vec!["t3.npy", "3 classes", "have 2"],
        ),
        (
            vec![
                "conformal".into(),
                "--probs".into(),
                s(&f("ok.npy")).into(),
                "--labels".into(),
                s(&f("y.npy")).into(),
                "--alpha".into(),
                "0.5".into(),
                "--score".into(),
                "raps".into(),
                "--lambda=-1".into(),
            ],
            vec!["--lambda", "-1"],
        ),
    ];
    for (i, (args, wants)) in cases.iter().enumerate() {
        let o = ward().args(args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "case {i}: {err}");
        for w in wants {
            assert!(err.contains(w), "case {i}: {w:?} not in {err}");
        }
    }
}
