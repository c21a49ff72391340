//! [`Matrix`] and [`Split`]: plain row-major features and integer labels.

use crate::DataError;

/// Row-major `f32` matrix: row `i` is `data[i * cols..(i + 1) * cols]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Matrix {
    /// Number of rows (examples).
    pub rows: usize,
    /// Number of columns (features).
    pub cols: usize,
    /// `rows * cols` values, row after row.
    pub data: Vec<f32>,
}

impl Matrix {
    /// A matrix from its shape and row-major data.
    ///
    /// # Errors
    /// [`DataError::Shape`] when `data.len() != rows * cols`.
    ///
    /// # Shapes
    /// `data`: `[rows * cols]`, read as `[rows, cols]`.
    pub fn new(rows: usize, cols: usize, data: Vec<f32>) -> Result<Self, DataError> {
        match rows.checked_mul(cols) {
            Some(expected) if expected == data.len() => Ok(Self { rows, cols, data }),
            expected => Err(DataError::Shape {
                rows,
                cols,
                expected: expected.unwrap_or(usize::MAX),
                got: data.len(),
            }),
        }
    }

    /// An empty matrix (0 rows) with `cols` columns.
    pub fn empty(cols: usize) -> Self {
        Self {
            rows: 0,
            cols,
            data: Vec::new(),
        }
    }

    /// Row `i` as a slice of `cols` values.
    ///
    /// # Panics
    /// If `i >= rows` (or `data` is shorter than the shape says).
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Iterates over the rows in order.
    pub fn iter_rows(&self) -> impl Iterator<Item = &[f32]> {
        // `max(1)` keeps `chunks_exact` valid for a matrix with no columns.
        let width = self.cols.max(1);
        self.data
            .chunks_exact(width)
            .take(if self.cols == 0 { 0 } else { self.rows })
    }

    /// A new matrix with the rows `idx`, in that order.
    ///
    /// # Panics
    /// If an index is `>= rows`.
    pub fn select_rows(&self, idx: &[usize]) -> Self {
        let mut data = Vec::with_capacity(idx.len() * self.cols);
        for &i in idx {
            data.extend_from_slice(self.row(i));
        }
        Self {
            rows: idx.len(),
            cols: self.cols,
            data,
        }
    }
}

/// Features and integer class labels (`0..num_classes`), one label per row of `x`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Split {
    /// Features, one row per example.
    pub x: Matrix,
    /// Class labels, `y.len() == x.rows`.
    pub y: Vec<u32>,
}

impl Split {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// A new split with the examples `idx`, in that order.
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn select(&self, idx: &[usize]) -> Self {
        Self {
            x: self.x.select_rows(idx),
            y: idx.iter().map(|&i| self.y[i]).collect(),
        }
    }

    /// How many examples carry each label `0..num_classes` (labels beyond are not counted).
    pub fn label_counts(&self, num_classes: usize) -> Vec<usize> {
        let mut counts = vec![0; num_classes];
        for &label in &self.y {
            if let Some(c) = counts.get_mut(label as usize) {
                *c += 1;
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_checks_the_shape() {
        let m = Matrix::new(2, 3, vec![1., 2., 3., 4., 5., 6.]).unwrap();
        assert_eq!(m.row(1), &[4., 5., 6.]);
        assert_eq!(m.iter_rows().count(), 2);
        let err = Matrix::new(2, 2, vec![1.0; 3]).unwrap_err();
        assert!(err.to_string().contains("needs 4 values, got 3"), "{err}");
        // rows * cols overflows: the expected count saturates instead of wrapping.
        let err = Matrix::new(usize::MAX, 2, vec![]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "matrix of {} x 2 needs {} values, got 0",
                usize::MAX,
                usize::MAX
            )
        );
    }

    #[test]
    fn select_keeps_rows_and_labels_together() {
        let s = Split {
            x: Matrix::new(3, 1, vec![10., 11., 12.]).unwrap(),
            y: vec![0, 1, 0],
        };
        let t = s.select(&[2, 1]);
        assert_eq!(t.x.data, vec![12., 11.]);
        assert_eq!(t.y, vec![0, 1]);
        assert_eq!(s.label_counts(2), vec![2, 1]);
        assert_eq!(Matrix::empty(0).iter_rows().count(), 0);
    }
}
