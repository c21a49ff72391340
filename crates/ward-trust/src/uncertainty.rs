//! Predictive uncertainty from class probabilities: entropy, and, over several
//! predictions of the same row (MC-dropout passes, ensemble members), the split of the
//! total into expected entropy (aleatoric) and mutual information (epistemic; Houlsby et
//! al. 2011, "BALD"; Depeweg et al. 2018).

use crate::{Probs, TrustError};

/// Entropy `-sum_k p_k ln p_k` of one probability row, in nats (`0 ln 0 = 0`).
pub fn entropy(row: &[f64]) -> f64 {
    -row.iter()
        .filter(|&&p| p > 0.0)
        .map(|&p| p * p.ln())
        .sum::<f64>()
}

/// Each row's predictive entropy.
pub fn entropies(probs: &Probs) -> Vec<f64> {
    probs.rows().map(entropy).collect()
}

/// The mean of several predictions of the same rows and each row's mutual information
/// `H(mean_s p_s) - mean_s H(p_s)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Decomposed {
    /// The mean prediction.
    pub mean: Probs,
    /// Per row: entropy of the mean prediction (total uncertainty).
    pub total: Vec<f64>,
    /// Per row: mean entropy of the samples (aleatoric).
    pub expected: Vec<f64>,
    /// Per row: `total - expected` (epistemic), clamped at 0 against rounding.
    pub mutual_information: Vec<f64>,
}

/// Averages `samples` (one [`Probs`] per pass or member, all the same shape) and splits
/// the uncertainty.
///
/// # Errors
/// No samples; shapes that differ.
pub fn decompose(samples: &[Probs]) -> Result<Decomposed, TrustError> {
    let first = samples
        .first()
        .ok_or_else(|| TrustError::TooFewRows("no predictions to average".into()))?;
    let (n, k) = (first.n(), first.k());
    if let Some(bad) = samples.iter().position(|s| s.n() != n || s.k() != k) {
        return Err(TrustError::Shape(format!(
            "prediction {bad} is {} x {}, the first is {n} x {k}",
            samples[bad].n(),
            samples[bad].k()
        )));
    }
    let m = samples.len() as f64;
    let mut mean = vec![0.0; n * k];
    let mut expected = vec![0.0; n];
    for s in samples {
        for (i, row) in s.rows().enumerate() {
            for (acc, &p) in mean[i * k..(i + 1) * k].iter_mut().zip(row) {
                *acc += p / m;
            }
            expected[i] += entropy(row) / m;
        }
    }
    let mean = Probs::new(mean, k)?;
    let total = entropies(&mean);
    let mutual_information = total
        .iter()
        .zip(&expected)
        .map(|(t, e)| (t - e).max(0.0))
        .collect();
    Ok(Decomposed {
        mean,
        total,
        expected,
        mutual_information,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_by_hand() {
        assert!((entropy(&[0.25; 4]) - 4f64.ln()).abs() < 1e-15);
        assert_eq!(entropy(&[1.0, 0.0]), 0.0);
        let h = entropy(&[0.5, 0.25, 0.25]);
        assert!((h - 1.5 * 2f64.ln()).abs() < 1e-15);
    }

    /// Two confident passes that disagree: the mean is uniform (total ln 2), each pass
    /// has entropy 0, so all of it is mutual information; two equal passes have none.
    #[test]
    fn mutual_information_by_hand() {
        let a = Probs::new(vec![1.0, 0.0, 0.5, 0.5], 2).unwrap();
        let b = Probs::new(vec![0.0, 1.0, 0.5, 0.5], 2).unwrap();
        let d = decompose(&[a.clone(), b]).unwrap();
        assert!((d.mutual_information[0] - 2f64.ln()).abs() < 1e-15);
        assert!(d.mutual_information[1].abs() < 1e-15);
        assert!((d.expected[1] - 2f64.ln()).abs() < 1e-15);
        let same = decompose(&[a.clone(), a]).unwrap();
        assert!(same.mutual_information.iter().all(|&v| v == 0.0));
        assert!(decompose(&[]).is_err());
    }
}
