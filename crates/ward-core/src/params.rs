//! [`Params`]: a model as one flat `f32` vector plus its [`Layout`].

use serde::{Deserialize, Serialize};

use crate::error::ParamsError;

/// Name and shape of one tensor inside a flat parameter vector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpec {
    /// Tensor name, e.g. `layers.0.weight`.
    pub name: String,
    /// Shape, row-major.
    pub shape: Vec<usize>,
}

impl TensorSpec {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The tensors of a model, in the order their values lie in [`Params::values`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Layout {
    tensors: Vec<TensorSpec>,
}

impl Layout {
    /// A layout from its tensors, in order.
    pub fn new(tensors: Vec<TensorSpec>) -> Self {
        Self { tensors }
    }

    /// A layout holding a single unnamed vector of `len` values (for tests and tools
    /// that see updates as plain vectors).
    pub fn flat(len: usize) -> Self {
        Self::new(vec![TensorSpec {
            name: "flat".into(),
            shape: vec![len],
        }])
    }

    /// The tensors in order.
    pub fn tensors(&self) -> &[TensorSpec] {
        &self.tensors
    }

    /// Total number of scalar values.
    pub fn numel(&self) -> usize {
        self.tensors.iter().map(TensorSpec::numel).sum()
    }

    /// Each tensor with the range its values occupy in the flat vector.
    pub fn ranges(&self) -> impl Iterator<Item = (&TensorSpec, std::ops::Range<usize>)> {
        let mut start = 0;
        self.tensors.iter().map(move |t| {
            let r = start..start + t.numel();
            start = r.end;
            (t, r)
        })
    }
}

/// A model's parameters: one contiguous `f32` vector described by a [`Layout`].
///
/// Everything federated (aggregation, server optimizers, validation, distances) works
/// on `Params`, never on engine tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params {
    layout: Layout,
    values: Vec<f32>,
}

impl Params {
    /// Parameters from a layout and values; the number of values must match the layout.
    pub fn new(layout: Layout, values: Vec<f32>) -> Result<Self, ParamsError> {
        if layout.numel() != values.len() {
            return Err(ParamsError::LengthMismatch {
                expected: layout.numel(),
                found: values.len(),
            });
        }
        Ok(Self { layout, values })
    }

    /// All-zero parameters with the given layout.
    pub fn zeros(layout: Layout) -> Self {
        let n = layout.numel();
        Self {
            layout,
            values: vec![0.0; n],
        }
    }

    /// A plain vector as parameters with a [`Layout::flat`] layout.
    pub fn from_flat(values: Vec<f32>) -> Self {
        Self {
            layout: Layout::flat(values.len()),
            values,
        }
    }

    /// Zeros with the same layout as `self`.
    pub fn zeros_like(&self) -> Self {
        Self::zeros(self.layout.clone())
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The flat values.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// The flat values, mutable (the length cannot change).
    pub fn values_mut(&mut self) -> &mut [f32] {
        &mut self.values
    }

    /// Consumes the parameters and returns the flat values.
    pub fn into_values(self) -> Vec<f32> {
        self.values
    }

    /// Number of scalar values.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Index of the first value that is NaN or infinite, if any.
    pub fn first_non_finite(&self) -> Option<usize> {
        self.values.iter().position(|v| !v.is_finite())
    }

    /// Checks that `other` has the same layout.
    pub fn check_same_layout(&self, other: &Params) -> Result<(), ParamsError> {
        if self.values.len() != other.values.len() {
            return Err(ParamsError::LengthMismatch {
                expected: self.values.len(),
                found: other.values.len(),
            });
        }
        if self.layout != other.layout {
            return Err(ParamsError::LayoutMismatch);
        }
        Ok(())
    }

    /// `self - other`, element-wise (same layout required).
    pub fn sub(&self, other: &Params) -> Result<Params, ParamsError> {
        self.check_same_layout(other)?;
        let values = self
            .values
            .iter()
            .zip(&other.values)
            .map(|(a, b)| a - b)
            .collect();
        Ok(Params {
            layout: self.layout.clone(),
            values,
        })
    }

    /// `self += alpha * other`, element-wise (same layout required).
    pub fn axpy(&mut self, alpha: f32, other: &Params) -> Result<(), ParamsError> {
        self.check_same_layout(other)?;
        for (a, b) in self.values.iter_mut().zip(&other.values) {
            *a += alpha * b;
        }
        Ok(())
    }

    /// Euclidean norm, accumulated in `f64`.
    pub fn l2_norm(&self) -> f64 {
        self.values
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            .sqrt()
    }

    /// Dot product with `other`, accumulated in `f64` (same layout required).
    pub fn dot(&self, other: &Params) -> Result<f64, ParamsError> {
        self.check_same_layout(other)?;
        Ok(self
            .values
            .iter()
            .zip(&other.values)
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout::new(vec![
            TensorSpec {
                name: "w".into(),
                shape: vec![2, 3],
            },
            TensorSpec {
                name: "b".into(),
                shape: vec![2],
            },
        ])
    }

    #[test]
    fn new_rejects_wrong_length() {
        let err = Params::new(layout(), vec![0.0; 7]).unwrap_err();
        assert_eq!(
            err,
            ParamsError::LengthMismatch {
                expected: 8,
                found: 7
            }
        );
    }

    #[test]
    fn ranges_cover_the_vector_in_order() {
        let l = layout();
        let r: Vec<_> = l.ranges().map(|(t, r)| (t.name.clone(), r)).collect();
        assert_eq!(r, vec![("w".to_string(), 0..6), ("b".to_string(), 6..8)]);
    }

    #[test]
    fn arithmetic_by_hand() {
        let a = Params::new(layout(), vec![1., 2., 3., 4., 5., 6., 7., 8.]).unwrap();
        let b = Params::new(layout(), vec![1.; 8]).unwrap();
        let d = a.sub(&b).unwrap();
        assert_eq!(d.values(), &[0., 1., 2., 3., 4., 5., 6., 7.]);
        // 0+1+4+9+16+25+36+49 = 140
        assert!((d.l2_norm() - 140f64.sqrt()).abs() < 1e-12);
        assert_eq!(d.dot(&b).unwrap(), 28.0);
        let mut c = b.clone();
        c.axpy(2.0, &d).unwrap();
        assert_eq!(c.values(), &[1., 3., 5., 7., 9., 11., 13., 15.]);
        let mut bad = a.clone();
        bad.values_mut()[3] = f32::NAN;
        assert_eq!(bad.first_non_finite(), Some(3));
        assert_eq!(
            a.sub(&Params::from_flat(vec![0.0; 3])).unwrap_err(),
            ParamsError::LengthMismatch {
                expected: 8,
                found: 3
            }
        );
        let same_length = Params::from_flat(vec![0.0; 8]);
        assert_eq!(
            a.sub(&same_length).unwrap_err().to_string(),
            "parameter layouts differ (tensor names or shapes)"
        );
    }
}
