//! Ward's conformal quantiles and sets against MAPIE 0.8.6 on
//! `tests/fixtures/mapie_fixture.json` (written by `make_mapie_fixture.py` in the same
//! folder: 200 calibration and 50 test rows, 4 classes, alpha 0.1 and 0.2).

use serde_json::Value;
use ward_trust::Probs;
use ward_trust::conformal::{
    Inclusion, QuantileRule, Score, calibration_scores, conformal_quantile, prediction_set,
    quantile_index,
};

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/mapie_fixture.json"
    );
    serde_json::from_str(&fs_err::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|b| f64::from_bits(b.as_u64().unwrap()))
        .collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

/// LAC, APS and RAPS (deterministic sets, MAPIE's `include_last_label=True`; MAPIE's
/// randomised calibration scores reproduced from its uniforms): every quantile within
/// 1e-9 (in fact bit for bit) and every set exactly.
#[test]
fn quantiles_and_sets_match_mapie() {
    let f = fixture();
    assert_eq!(f["mapie_version"], "0.8.6");
    let k = f["k"].as_u64().unwrap() as usize;
    let (n_cal, n_test) = (
        f["n_cal"].as_u64().unwrap() as usize,
        f["n_test"].as_u64().unwrap() as usize,
    );
    let probs = Probs::new(floats(&f["probs_bits"]), k).unwrap();
    let labels = usizes(&f["labels"]);
    let cal_idx: Vec<usize> = (0..n_cal).collect();
    let test = probs.select(&(n_cal..n_cal + n_test).collect::<Vec<_>>());
    let alphas: Vec<f64> = f["alphas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_f64().unwrap())
        .collect();
    let mut checked_sets = 0;
    for method in ["lac", "aps", "raps"] {
        let m = &f["methods"][method];
        let rows = if method == "lac" {
            cal_idx.clone()
        } else {
            usizes(&m["rows"])
        };
        let u = (method != "lac").then(|| floats(&m["u_bits"]));
        let cal = probs.select(&rows);
        let y: Vec<usize> = rows.iter().map(|&i| labels[i]).collect();
        let want_q = floats(&m["qhat_bits"]);
        for (a, &alpha) in alphas.iter().enumerate() {
            let score = match method {
                "lac" => Score::Lac,
                "aps" => Score::Aps,
                _ => Score::Raps {
                    k_reg: m["k_reg"][a].as_u64().unwrap() as usize,
                    lambda: m["lambda"][a].as_f64().unwrap(),
                },
            };
            let s = calibration_scores(&cal, &y, score, u.as_deref()).unwrap();
            let q = conformal_quantile(&s, alpha, QuantileRule::Mapie).unwrap();
            assert!(
                (q - want_q[a]).abs() <= 1e-9,
                "{method} alpha {alpha}: qhat {q} vs MAPIE {}",
                want_q[a]
            );
            assert_eq!(q.to_bits(), want_q[a].to_bits(), "{method} alpha {alpha}");
            // On this fixture the exact rank rule reads the same order statistic.
            assert_eq!(
                quantile_index(s.len(), alpha, QuantileRule::Exact).unwrap(),
                quantile_index(s.len(), alpha, QuantileRule::Mapie).unwrap()
            );
            let want_sets = &m["sets"][a];
            for (i, row) in test.rows().enumerate() {
                let got = prediction_set(row, score, q, Inclusion::IncludeLast);
                assert_eq!(
                    got,
                    usizes(&want_sets[i]),
                    "{method} alpha {alpha} test row {i}"
                );
                checked_sets += 1;
            }
        }
    }
    assert_eq!(checked_sets, 3 * alphas.len() * n_test);
}
