//! Per-site predictions for the coverage and temperature tests, made deterministically:
//! a fixed logistic model on the built-in cohorts (loaded by `ward_data::load`), and a
//! seeded synthetic 4-class model.

use std::path::Path;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ward_core::config::{DataSpec, DatasetKind, PartitionKind, PartitionSpec};
use ward_data::{FederatedDataset, Standardization};
use ward_trust::{Logits, Probs};

/// One site's predictions on all of its rows.
pub(crate) struct Site {
    pub(crate) name: String,
    pub(crate) logits: Logits,
    pub(crate) probs: Probs,
    pub(crate) labels: Vec<usize>,
}

impl Site {
    fn new(name: String, logits: Vec<f64>, k: usize, labels: Vec<usize>) -> Self {
        let logits = Logits::new(logits, k).unwrap();
        let probs = Probs::softmax(&logits, 1.0).unwrap();
        Self {
            name,
            logits,
            probs,
            labels,
        }
    }
}

/// Logistic regression on the pooled training rows (pooled standardisation), 400 steps
/// of full-batch gradient descent at rate 0.5 with an L2 penalty of 1e-3; each site's
/// rows (train and test) then get logits (0, w.x + b).
fn logistic_sites(d: &FederatedDataset) -> Vec<Site> {
    let d = d.standardized(Standardization::Pooled);
    let train = d.pooled_train();
    let cols = d.num_features();
    let (mut w, mut b) = (vec![0.0f64; cols], 0.0f64);
    let n = train.len() as f64;
    for _ in 0..400 {
        let (mut gw, mut gb) = (vec![0.0f64; cols], 0.0f64);
        for (x, &y) in train.x.iter_rows().zip(&train.y) {
            let z: f64 = x
                .iter()
                .zip(&w)
                .map(|(&a, w)| f64::from(a) * w)
                .sum::<f64>()
                + b;
            let e = 1.0 / (1.0 + (-z).exp()) - f64::from(y);
            for (g, &a) in gw.iter_mut().zip(x) {
                *g += e * f64::from(a);
            }
            gb += e;
        }
        for (w, g) in w.iter_mut().zip(&gw) {
            *w -= 0.5 * (g / n + 1e-3 * *w);
        }
        b -= 0.5 * gb / n;
    }
    d.sites
        .iter()
        .map(|s| {
            let mut logits = Vec::new();
            let mut labels = Vec::new();
            for split in [&s.train, &s.test] {
                for (x, &y) in split.x.iter_rows().zip(&split.y) {
                    let z: f64 = x
                        .iter()
                        .zip(&w)
                        .map(|(&a, w)| f64::from(a) * w)
                        .sum::<f64>()
                        + b;
                    logits.extend([0.0, z]);
                    labels.push(y as usize);
                }
            }
            Site::new(s.name.clone(), logits, 2, labels)
        })
        .collect()
}

/// Fed-Heart-Disease's four hospitals (every row of each).
pub(crate) fn heart() -> Vec<Site> {
    let d = ward_data::load(
        &DataSpec::builtin(DatasetKind::FedHeartDisease),
        Path::new("/nonexistent"),
    )
    .unwrap();
    logistic_sites(&d)
}

/// Breast cancer (Wisconsin) split over three sites with Dirichlet(0.5) label skew
/// (partition seed 18).
pub(crate) fn breast_cancer() -> Vec<Site> {
    let mut spec = DataSpec::builtin(DatasetKind::BreastCancer);
    spec.partition = Some(PartitionSpec {
        kind: PartitionKind::Dirichlet,
        sites: 3,
        alpha: 0.5,
        seed: 18,
        min_rows: 60,
    });
    logistic_sites(&ward_data::load(&spec, Path::new("/nonexistent")).unwrap())
}

/// A standard normal draw (Box-Muller).
pub(crate) fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u: f64 = 1.0 - rng.random::<f64>();
    let v: f64 = rng.random::<f64>();
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// Synthetic 4-class sites: logits `2 N(0, 1) + bias_site` per class, labels drawn
/// from `softmax(logits / temperature_site)`; `(rows, bias on class 0, temperature)`
/// per site.
pub(crate) fn synthetic(seed: u64, sites: &[(usize, f64, f64)]) -> Vec<Site> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    sites
        .iter()
        .enumerate()
        .map(|(s, &(n, bias, t))| {
            let mut logits = Vec::with_capacity(4 * n);
            let mut labels = Vec::with_capacity(n);
            for _ in 0..n {
                let z: Vec<f64> = (0..4)
                    .map(|j| 2.0 * normal(&mut rng) + if j == 0 { bias } else { 0.0 })
                    .collect();
                let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = z.iter().map(|v| ((v - m) / t).exp()).collect();
                let total: f64 = e.iter().sum();
                let mut r = rng.random::<f64>() * total;
                let mut y = 3;
                for (j, w) in e.iter().enumerate() {
                    if r < *w {
                        y = j;
                        break;
                    }
                    r -= w;
                }
                logits.extend(z);
                labels.push(y);
            }
            Site::new(format!("synth-{s}"), logits, 4, labels)
        })
        .collect()
}
