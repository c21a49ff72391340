//! [`ModelArch`]: any model Ward trains — dense networks for tables, CNNs for images.

use rand::Rng;
use serde::{Deserialize, Serialize};
use ward_core::config::{ModelKind, ModelSpec, NormKind};
use ward_core::{Layout, Params};
use ward_data::ImageShape;

use crate::ModelError;
use crate::arch::{DenseArch, Loss};
use crate::conv::{ConvArch, ConvFamily, Norm};

/// A model architecture: its parameter layout, initialisation and loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ModelArch {
    /// Logistic regression or MLP on feature vectors.
    Dense(DenseArch),
    /// A convolutional network on images.
    Conv(ConvArch),
}

impl From<DenseArch> for ModelArch {
    fn from(a: DenseArch) -> Self {
        Self::Dense(a)
    }
}

impl From<ConvArch> for ModelArch {
    fn from(a: ConvArch) -> Self {
        Self::Conv(a)
    }
}

impl ModelArch {
    /// The CNN of `spec` (`cnn` or `resnet18`) for images of `input` with `outputs`
    /// classes. Defaults: `cnn` channels `[32, 64]`, hidden 128, no norm; `resnet18`
    /// width 64, BatchNorm; GroupNorm with 8 groups or the narrowest layer's width.
    ///
    /// `outputs`: classes, or labels when `multi_label`.
    pub fn conv_from_spec(
        spec: &ModelSpec,
        input: ImageShape,
        outputs: usize,
        multi_label: bool,
    ) -> Result<ConvArch, ModelError> {
        let (family, default_norm) = match spec.kind {
            ModelKind::Cnn => (
                ConvFamily::SmallCnn {
                    channels: if spec.channels.is_empty() {
                        vec![32, 64]
                    } else {
                        spec.channels.clone()
                    },
                    hidden: spec.hidden.first().copied().unwrap_or(128),
                },
                NormKind::None,
            ),
            ModelKind::Resnet18 => (
                ConvFamily::Resnet18 {
                    width: spec.width.unwrap_or(64),
                },
                NormKind::Batch,
            ),
            other => {
                return Err(ModelError::Config(format!(
                    "model.kind = {other:?} is not a convolutional network"
                )));
            }
        };
        let narrowest = match &family {
            ConvFamily::SmallCnn { channels, .. } => channels.iter().copied().min().unwrap_or(1),
            ConvFamily::Resnet18 { width } => *width,
        };
        let norm = match spec.norm.unwrap_or(default_norm) {
            NormKind::None => Norm::None,
            NormKind::Batch => Norm::Batch,
            NormKind::Group => Norm::Group {
                groups: spec.groups.unwrap_or(8.min(narrowest)),
            },
        };
        let arch = ConvArch {
            family,
            norm,
            input,
            outputs,
            multi_label,
            dropout: spec.dropout as f32,
        };
        arch.validate()?;
        Ok(arch)
    }

    /// The parameter layout.
    pub fn layout(&self) -> Layout {
        match self {
            Self::Dense(a) => a.layout(),
            Self::Conv(a) => a.layout(),
        }
    }

    /// Number of values in the layout.
    pub fn num_params(&self) -> usize {
        self.layout().numel()
    }

    /// PyTorch's default initialisation, drawn from `rng`.
    pub fn init(&self, rng: &mut impl Rng) -> Params {
        match self {
            Self::Dense(a) => a.init(rng),
            Self::Conv(a) => a.init(rng),
        }
    }

    /// Checks that `params` has this architecture's layout.
    pub fn check(&self, params: &Params) -> Result<(), ModelError> {
        match self {
            Self::Dense(a) => a.check(params),
            Self::Conv(a) => {
                if params.layout() != &a.layout() {
                    return Err(ModelError::Shape(format!(
                        "parameters ({} values) do not match the model {} ({} values)",
                        params.len(),
                        a.describe(),
                        a.num_params()
                    )));
                }
                Ok(())
            }
        }
    }

    /// The loss the outputs feed (CNNs: softmax cross-entropy).
    pub fn loss(&self) -> Loss {
        match self {
            Self::Dense(a) => a.loss,
            Self::Conv(a) if a.multi_label => Loss::MultiLabel,
            Self::Conv(_) => Loss::CrossEntropy,
        }
    }

    /// Value ranges of normalisation layers (FedBN keeps them local); empty for dense
    /// models.
    pub fn norm_ranges(&self) -> Vec<(usize, usize)> {
        match self {
            Self::Dense(_) => Vec::new(),
            Self::Conv(a) => a.norm_ranges(),
        }
    }

    /// Value ranges of the normalisation layers' affine weights and biases; empty for
    /// dense models.
    pub fn affine_ranges(&self) -> Vec<(usize, usize)> {
        match self {
            Self::Dense(_) => Vec::new(),
            Self::Conv(a) => a.affine_ranges(),
        }
    }

    /// Value ranges of BatchNorm running statistics (buffers); empty for dense models.
    pub fn buffer_ranges(&self) -> Vec<(usize, usize)> {
        match self {
            Self::Dense(_) => Vec::new(),
            Self::Conv(a) => a.buffer_ranges(),
        }
    }

    /// The dropout rate (0: none).
    pub fn dropout(&self) -> f32 {
        match self {
            Self::Dense(a) => a.dropout,
            Self::Conv(a) => a.dropout,
        }
    }

    /// Whether the model has BatchNorm layers.
    pub fn has_batch_norm(&self) -> bool {
        matches!(self, Self::Conv(a) if a.norm == Norm::Batch)
    }

    /// The input image shape of a CNN.
    pub fn image_shape(&self) -> Option<ImageShape> {
        match self {
            Self::Dense(_) => None,
            Self::Conv(a) => Some(a.input),
        }
    }

    /// The last layer's shape `(outputs, features)`: its weight `[outputs, features]`
    /// and bias `[outputs]` are the last `outputs * (features + 1)` values of the flat
    /// parameters, in that order (every layout here ends with its output layer).
    pub fn last_layer(&self) -> (usize, usize) {
        let t = self.layout();
        let tensors = t.tensors();
        let w = &tensors[tensors.len() - 2];
        (w.shape[0], w.shape[1])
    }

    /// One line for logs and reports.
    pub fn describe(&self) -> String {
        match self {
            Self::Dense(a) => a.describe(),
            Self::Conv(a) => a.describe(),
        }
    }
}

/// `W φ + b` with the last layer's weights from the end of `params`: what
/// [`crate::GradientEngine::features`] promises equals the logits.
#[cfg(test)]
pub(crate) fn assert_features_give_logits(
    arch: &ModelArch,
    engine: &mut dyn crate::GradientEngine,
    params: &[f32],
    x: &[f32],
    rows: usize,
) {
    let (k, d) = arch.last_layer();
    let phi = engine.features(params, x, rows).unwrap();
    assert_eq!(phi.len(), rows * d);
    let z = engine.logits(params, x, rows).unwrap();
    let last = &params[params.len() - k * (d + 1)..];
    for r in 0..rows {
        for c in 0..k {
            let mut s = last[k * d + c];
            for i in 0..d {
                s += last[c * d + i] * phi[r * d + i];
            }
            let want = z[r * k + c];
            assert!(
                (s - want).abs() < 1e-4 * (1.0 + want.abs()),
                "{s} vs {want}"
            );
        }
    }
}
