//! Federated temperature scaling against pooled fits: a golden-section search on the
//! pooled NLL (computed here independently) and, when Debian's python3 has scipy,
//! scipy's L-BFGS-B on log T.

use ward_trust::recalibration::{fit_temperature, temperature_stats};

use crate::sites::{self, Site};

/// The pooled mean NLL of `softmax(z / t)`, straight from the definition.
fn pooled_nll(sites: &[Site], t: f64) -> f64 {
    let (mut total, mut n) = (0.0, 0usize);
    for s in sites {
        for (z, &y) in s.logits.rows().zip(&s.labels) {
            let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = m / t + z.iter().map(|v| ((v - m) / t).exp()).sum::<f64>().ln();
            total += lse - z[y] / t;
            n += 1;
        }
    }
    total / n as f64
}

/// Golden-section search of `pooled_nll` over `T` in [0.05, 20] to 1e-10.
fn golden(sites: &[Site]) -> f64 {
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let (mut a, mut b) = (0.05f64, 20.0f64);
    while b - a > 1e-10 {
        let c = b - g * (b - a);
        let d = a + g * (b - a);
        if pooled_nll(sites, c) < pooled_nll(sites, d) {
            b = d;
        } else {
            a = c;
        }
    }
    0.5 * (a + b)
}

/// scipy's fit on the pooled rows, or `None` without python3 + scipy.
fn scipy_fit(sites: &[Site]) -> Option<f64> {
    let mut logits: Vec<Vec<f64>> = Vec::new();
    let mut labels: Vec<usize> = Vec::new();
    for s in sites {
        logits.extend(s.logits.rows().map(<[f64]>::to_vec));
        labels.extend(&s.labels);
    }
    let input = serde_json::json!({"z": logits, "y": labels}).to_string();
    let script = "import json, sys\n\
        import numpy as np\n\
        from scipy.optimize import minimize\n\
        from scipy.special import logsumexp\n\
        d = json.load(sys.stdin)\n\
        z = np.array(d['z'], dtype=float); y = np.array(d['y'])\n\
        f = lambda lt: np.mean(logsumexp(z / np.exp(lt[0]), axis=1) - z[np.arange(len(y)), y] / np.exp(lt[0]))\n\
        r = minimize(f, x0=[0.0], method='L-BFGS-B', options={'ftol': 1e-15, 'gtol': 1e-10})\n\
        print(repr(float(np.exp(r.x[0]))))\n";
    let mut child = std::process::Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    std::io::Write::write_all(&mut child.stdin.take()?, input.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The server's fit from the sites' summed answers (no logit leaves a site).
fn federated(sites: &[Site]) -> f64 {
    fit_temperature(|b| {
        sites
            .iter()
            .map(|s| temperature_stats(&s.logits, &s.labels, b))
            .sum()
    })
    .unwrap()
    .temperature
}

#[allow(clippy::print_stderr)]
fn check(name: &str, sites: &[Site]) {
    let fed = federated(sites);
    let gs = golden(sites);
    assert!(
        (fed - gs).abs() < 1e-6,
        "{name}: federated {fed} vs golden {gs}"
    );
    let sp = scipy_fit(sites);
    if let Some(sp) = sp {
        assert!(
            (fed - sp).abs() < 1e-3,
            "{name}: federated {fed} vs scipy {sp}"
        );
    }
    eprintln!(
        "temperature {name}: federated {fed:.8}, pooled golden-section {gs:.8}, scipy L-BFGS-B {sp:?}"
    );
}

/// "Federated temperature scaling gives the same temperature as fitting on the pooled
/// calibration splits (to 1e-3), without pooling": three synthetic 4-class sites of
/// different sizes and shifts (labels drawn at temperature 1.6), and the four heart
/// hospitals (binary logits of the fixed logistic model).
#[test]
fn federated_temperature_equals_the_pooled_fit() {
    let synth = sites::synthetic(3, &[(120, 0.0, 1.6), (300, 1.0, 1.6), (57, -0.5, 1.6)]);
    check("synthetic", &synth);
    check("heart", &sites::heart());
    // One site alone differs from the pooled fit: the sites matter.
    let alone = fit_temperature(|b| temperature_stats(&synth[2].logits, &synth[2].labels, b))
        .unwrap()
        .temperature;
    assert!((alone - federated(&synth)).abs() > 1e-3);
}
