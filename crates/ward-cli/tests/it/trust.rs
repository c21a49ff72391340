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

/// `ward <args>` exits with code 2 and a stderr naming every one of `wants`.
fn fails(args: &[&str], wants: &[&str]) {
    let o = ward().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    for w in wants {
        assert!(err.contains(w), "{args:?}: {w:?} not in {err}");
    }
}

/// Each bad input exits with code 2 and a message naming the file and the problem.
#[test]
fn bad_inputs_are_user_errors_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let f = |n: &str| tmp.path().join(n).to_str().unwrap().to_string();
    let w = |n: &str| tmp.path().join(n);
    write_npy::<f64>(&w("ok.npy"), &[2, 2], &[0.9, 0.1, 0.3, 0.7], false);
    write_npy::<i64>(&w("y.npy"), &[2], &[0, 1], false);
    write_npy::<f64>(&w("sum.npy"), &[2, 2], &[0.5, 0.6, 0.3, 0.7], false);
    write_npy::<f64>(&w("nan.npy"), &[2, 2], &[0.9, 0.1, f64::NAN, 0.7], false);
    write_npy::<f64>(&w("3d.npy"), &[1, 2, 2], &[0.9, 0.1, 0.3, 0.7], false);
    write_npy::<i64>(&w("y3.npy"), &[3], &[0, 1, 1], false);
    write_npy::<i64>(&w("yout.npy"), &[2], &[0, 2], false);
    write_npy::<i64>(&w("yneg.npy"), &[2], &[-1, 0], false);
    write_npy::<f64>(&w("yfloat.npy"), &[2], &[0.0, 1.0], false);
    write_npy::<i64>(&w("pint.npy"), &[2, 2], &[1, 0, 0, 1], false);
    write_npy::<f64>(&w("t3.npy"), &[1, 3], &[0.2, 0.3, 0.5], false);
    let cal =
        |p: &str, y: &str| ["calibration", "--probs", &f(p), "--labels", &f(y)].map(str::to_string);
    let run = |a: &[String], wants: &[&str]| {
        fails(&a.iter().map(String::as_str).collect::<Vec<_>>(), wants);
    };
    run(&cal("sum.npy", "y.npy"), &["sum.npy", "row 0 sums to 1.1"]);
    run(
        &cal("nan.npy", "y.npy"),
        &["nan.npy", "row 1, column 0", "NaN"],
    );
    run(&cal("3d.npy", "y.npy"), &["3d.npy", "(1, 2, 2)"]);
    run(&cal("ok.npy", "y3.npy"), &["y3.npy", "3 labels", "2 rows"]);
    run(
        &cal("ok.npy", "yout.npy"),
        &["yout.npy", "label 2 at row 1", "2 classes"],
    );
    run(
        &cal("ok.npy", "yneg.npy"),
        &["yneg.npy", "label -1 at row 0"],
    );
    run(
        &cal("ok.npy", "yfloat.npy"),
        &["yfloat.npy", "labels must be integers"],
    );
    run(
        &cal("pint.npy", "y.npy"),
        &["pint.npy", "float32 or float64"],
    );
    run(&cal("missing.npy", "y.npy"), &["missing.npy"]);
    let conf = |extra: &[&str]| {
        let mut a: Vec<String> = [
            "conformal",
            "--probs",
            &f("ok.npy"),
            "--labels",
            &f("y.npy"),
        ]
        .map(str::to_string)
        .to_vec();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    run(&conf(&["--alpha", "1.5"]), &["--alpha", "1.5", "(0, 1)"]);
    run(&conf(&["--alpha", "0"]), &["--alpha", "(0, 1)"]);
    run(&conf(&["--alpha", "0.1"]), &["ok.npy", "too few"]);
    run(
        &conf(&["--alpha", "0.5", "--test", &f("t3.npy")]),
        &["t3.npy", "3 classes", "have 2"],
    );
    run(
        &conf(&["--alpha", "0.5", "--score", "raps", "--lambda=-1"]),
        &["--lambda", "-1"],
    );
}
