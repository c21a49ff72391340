//! Checked inputs: class probabilities ([`Probs`]) and logits ([`Logits`]), row-major.

use crate::TrustError;

/// How far a row of probabilities may sum from 1 (absolute): float32 softmax outputs and
/// probabilities saved with a few decimals pass, anything else is not a distribution.
pub const ROW_SUM_TOLERANCE: f64 = 1e-3;

/// An `(n, k)` matrix of class probabilities, row-major, checked: every value finite and
/// in `[0, 1]`, every row summing to 1 within [`ROW_SUM_TOLERANCE`], `k >= 2`, `n >= 1`.
///
/// # Shapes
/// `values`: `n * k`, row `i` is the distribution over the `k` classes of example `i`.
#[derive(Debug, Clone, PartialEq)]
pub struct Probs {
    n: usize,
    k: usize,
    values: Vec<f64>,
}

impl Probs {
    /// Checks `values` as `n = values.len() / k` rows of `k` class probabilities.
    ///
    /// # Errors
    /// [`TrustError::Shape`] for `k < 2`, no rows or a length not a multiple of `k`;
    /// [`TrustError::Value`] naming the first bad row (and column) otherwise.
    pub fn new(values: Vec<f64>, k: usize) -> Result<Self, TrustError> {
        if k < 2 {
            return Err(TrustError::Shape(format!(
                "probabilities need at least 2 classes per row, got {k}"
            )));
        }
        if values.is_empty() || !values.len().is_multiple_of(k) {
            return Err(TrustError::Shape(format!(
                "{} values are not a positive number of rows of {k} classes",
                values.len()
            )));
        }
        for (i, row) in values.chunks(k).enumerate() {
            if let Some(j) = row
                .iter()
                .position(|p| !p.is_finite() || !(0.0..=1.0).contains(p))
            {
                return Err(TrustError::Value(format!(
                    "row {i}, column {j}: probability {} is not in [0, 1]",
                    row[j]
                )));
            }
            let sum: f64 = row.iter().sum();
            if (sum - 1.0).abs() > ROW_SUM_TOLERANCE {
                return Err(TrustError::Value(format!(
                    "row {i} sums to {sum}, not 1 (tolerance {ROW_SUM_TOLERANCE}): \
                     pass probabilities (softmax outputs), not logits or scores"
                )));
            }
        }
        Ok(Self {
            n: values.len() / k,
            k,
            values,
        })
    }

    /// A binary task given as the positive-class probability `p` of each row: rows
    /// `(1 - p, p)`, so `k = 2`.
    ///
    /// # Errors
    /// As [`Probs::new`]; a value outside `[0, 1]` or NaN names its row.
    pub fn binary(positive: &[f64]) -> Result<Self, TrustError> {
        if let Some(i) = positive
            .iter()
            .position(|p| !p.is_finite() || !(0.0..=1.0).contains(p))
        {
            return Err(TrustError::Value(format!(
                "row {i}: positive-class probability {} is not in [0, 1]",
                positive[i]
            )));
        }
        Self::new(positive.iter().flat_map(|&p| [1.0 - p, p]).collect(), 2)
    }

    /// The softmax of each row of `logits` (max-shifted, so large logits do not
    /// overflow), at temperature `t` (`softmax(z / t)`).
    ///
    /// # Errors
    /// [`TrustError::Parameter`] for `t` not finite and positive.
    pub fn softmax(logits: &Logits, t: f64) -> Result<Self, TrustError> {
        if !(t.is_finite() && t > 0.0) {
            return Err(TrustError::param(
                "temperature",
                format!("{t} is not a positive number"),
            ));
        }
        let mut values = Vec::with_capacity(logits.values.len());
        for row in logits.rows() {
            let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = row.iter().map(|z| ((z - m) / t).exp()).collect();
            let s: f64 = e.iter().sum();
            values.extend(e.iter().map(|v| v / s));
        }
        Ok(Self {
            n: logits.n,
            k: logits.k,
            values,
        })
    }

    /// Rows (examples).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Columns (classes).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.values[i * self.k..(i + 1) * self.k]
    }

    /// The rows in order.
    pub fn rows(&self) -> impl Iterator<Item = &[f64]> {
        self.values.chunks(self.k)
    }

    /// The rows whose indices are `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Self {
        Self {
            n: idx.len(),
            k: self.k,
            values: idx.iter().flat_map(|&i| self.row(i)).copied().collect(),
        }
    }

    /// Checks that `labels` has one label per row, each below `k`.
    ///
    /// # Errors
    /// [`TrustError::Shape`] for a count mismatch, [`TrustError::Value`] naming the first
    /// label out of range.
    pub fn check_labels(&self, labels: &[usize]) -> Result<(), TrustError> {
        check_labels(self.n, self.k, labels)
    }
}

/// `labels` has `n` entries, each below `k`.
pub(crate) fn check_labels(n: usize, k: usize, labels: &[usize]) -> Result<(), TrustError> {
    if labels.len() != n {
        return Err(TrustError::Shape(format!(
            "{} labels for {n} rows of probabilities",
            labels.len()
        )));
    }
    if let Some(i) = labels.iter().position(|&y| y >= k) {
        return Err(TrustError::Value(format!(
            "label {} at row {i} is out of range for {k} classes (0..={})",
            labels[i],
            k - 1
        )));
    }
    Ok(())
}

/// An `(n, k)` matrix of logits (unnormalised log-probabilities), row-major, all finite,
/// `k >= 2`.
///
/// # Shapes
/// `values`: `n * k`.
#[derive(Debug, Clone, PartialEq)]
pub struct Logits {
    n: usize,
    k: usize,
    values: Vec<f64>,
}

impl Logits {
    /// Checks `values` as rows of `k` finite logits.
    ///
    /// # Errors
    /// [`TrustError::Shape`] or [`TrustError::Value`] (a non-finite logit, by row).
    pub fn new(values: Vec<f64>, k: usize) -> Result<Self, TrustError> {
        if k < 2 || values.is_empty() || !values.len().is_multiple_of(k) {
            return Err(TrustError::Shape(format!(
                "{} logits are not a positive number of rows of k = {k} >= 2 classes",
                values.len()
            )));
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(TrustError::Value(format!(
                "row {}, column {}: logit {} is not finite",
                i / k,
                i % k,
                values[i]
            )));
        }
        Ok(Self {
            n: values.len() / k,
            k,
            values,
        })
    }

    /// Rows (examples).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Columns (classes).
    pub fn k(&self) -> usize {
        self.k
    }

    /// The rows in order.
    pub fn rows(&self) -> impl Iterator<Item = &[f64]> {
        self.values.chunks(self.k)
    }

    /// The rows whose indices are `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Self {
        Self {
            n: idx.len(),
            k: self.k,
            values: idx
                .iter()
                .flat_map(|&i| &self.values[i * self.k..(i + 1) * self.k])
                .copied()
                .collect(),
        }
    }
}
