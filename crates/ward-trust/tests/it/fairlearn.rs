//! Group rates and gaps against Fairlearn 0.15.0's `MetricFrame` (`true_positive_rate`,
//! `false_positive_rate`, `selection_rate`, accuracy), `true_positive_rate`,
//! `equalized_odds_difference` and `demographic_parity_difference` on
//! `tests/fixtures/fairlearn_fixture.json` (written by `make_fairlearn_fixture.py` in the
//! same folder), to 1e-12.

use serde_json::Value;
use ward_trust::fairness::group_report;

fn fixture() -> Value {
    let text = fs_err::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/fairlearn_fixture.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() <= 1e-12, "{what}: ward {a}, fairlearn {b}");
}

fn u32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| u32::try_from(x.as_u64().unwrap()).unwrap())
        .collect()
}

#[test]
fn group_rates_and_gaps_match_fairlearn() {
    let f = fixture();
    assert_eq!(f["fairlearn"], "0.15.0");
    let cases = f["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for (k, c) in cases.iter().enumerate() {
        let y = u32s(&c["y_true"]);
        let p = u32s(&c["y_pred"]);
        let g: Vec<String> = c["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect();
        let r = group_report(&y, &p, &g).unwrap();
        let by = c["by_group"].as_object().unwrap();
        assert_eq!(r.groups.len(), by.len(), "case {k}");
        for gr in &r.groups {
            let want = &by[&gr.group];
            let at = |m: &str| format!("case {k} group {} {m}", gr.group);
            close(gr.tpr.unwrap(), want["tpr"].as_f64().unwrap(), &at("tpr"));
            close(gr.fpr.unwrap(), want["fpr"].as_f64().unwrap(), &at("fpr"));
            close(
                gr.selection_rate,
                want["selection_rate"].as_f64().unwrap(),
                &at("selection rate"),
            );
            close(
                gr.accuracy,
                want["accuracy"].as_f64().unwrap(),
                &at("accuracy"),
            );
        }
        // Fairlearn's overall true_positive_rate is the TPR of one group holding every row.
        let one = vec!["all"; y.len()];
        let all = group_report(&y, &p, &one).unwrap();
        close(
            all.groups[0].tpr.unwrap(),
            c["true_positive_rate"].as_f64().unwrap(),
            "overall tpr",
        );
        close(
            r.equalized_odds_difference.unwrap(),
            c["equalized_odds_difference"].as_f64().unwrap(),
            &format!("case {k} equalized odds"),
        );
        close(
            r.demographic_parity_difference,
            c["demographic_parity_difference"].as_f64().unwrap(),
            &format!("case {k} demographic parity"),
        );
    }
}
