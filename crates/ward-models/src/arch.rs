//! Dense model architectures (logistic regression, MLP) and their parameter layout.

use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};
use ward_core::config::{Activation, LossKind, ModelKind, ModelSpec};
use ward_core::{Layout, Params, TensorSpec};

use crate::ModelError;

/// The training loss, resolved from the config and the number of classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Loss {
    /// Binary cross-entropy on one logit (sigmoid output).
    Bce,
    /// Softmax cross-entropy on one logit per class.
    CrossEntropy,
    /// Multi-label: binary cross-entropy on each of the outputs (one logit per label),
    /// averaged over labels and rows. The labels of a row travel as one bitmask `u32`
    /// (bit `k` = label `k`; at most 32 labels).
    MultiLabel,
}

/// A dense feed-forward network: `inputs -> hidden... -> outputs`.
///
/// Logistic regression is the case without hidden layers. Layer `i` holds
/// `layers.i.weight` of shape `[out, in]` (PyTorch's `nn.Linear` layout) and
/// `layers.i.bias` of shape `[out]`, in that order, in the flat [`Params`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenseArch {
    /// Number of input features.
    pub inputs: usize,
    /// Hidden layer sizes (empty for logistic regression).
    pub hidden: Vec<usize>,
    /// Number of outputs (1 for BCE, the number of classes for cross-entropy).
    pub outputs: usize,
    /// Hidden activation.
    pub activation: Activation,
    /// The loss the outputs feed.
    pub loss: Loss,
    /// Dropout rate after every hidden layer (training and MC dropout only; 0: none).
    #[serde(default)]
    pub dropout: f32,
}

impl DenseArch {
    /// Resolves an architecture from the model and loss config and the data's shape.
    pub fn from_spec(
        spec: &ModelSpec,
        loss: LossKind,
        inputs: usize,
        num_classes: usize,
    ) -> Result<Self, ModelError> {
        if inputs == 0 {
            return Err(ModelError::Shape("the data has no feature columns".into()));
        }
        if num_classes < 2 {
            return Err(ModelError::Shape(format!(
                "the data has {num_classes} class(es); at least 2 are needed"
            )));
        }
        let loss = match loss {
            LossKind::Auto if num_classes == 2 => Loss::Bce,
            LossKind::Auto | LossKind::CrossEntropy => Loss::CrossEntropy,
            LossKind::Bce if num_classes == 2 => Loss::Bce,
            LossKind::Bce => {
                return Err(ModelError::Config(format!(
                    "train.loss = \"bce\" needs 2 classes, the data has {num_classes}"
                )));
            }
        };
        let outputs = match loss {
            Loss::Bce => 1,
            Loss::CrossEntropy | Loss::MultiLabel => num_classes,
        };
        let hidden = match spec.kind {
            ModelKind::Logistic => Vec::new(),
            ModelKind::Mlp => spec.hidden.clone(),
            ModelKind::Cnn | ModelKind::Resnet18 => {
                return Err(ModelError::Config(
                    "a CNN needs an image dataset (data.dataset = \"medmnist\" or \"synth\")"
                        .into(),
                ));
            }
        };
        let dropout = spec.dropout as f32;
        crate::dropout::check_rate(dropout)?;
        if dropout > 0.0 && hidden.is_empty() {
            return Err(ModelError::Config(
                "model.dropout needs a hidden layer; logistic regression has none".into(),
            ));
        }
        Ok(Self {
            inputs,
            hidden,
            outputs,
            activation: spec.activation,
            loss,
            dropout,
        })
    }

    /// Layer widths from input to output, e.g. `[13, 32, 1]`.
    pub fn widths(&self) -> Vec<usize> {
        let mut w = Vec::with_capacity(self.hidden.len() + 2);
        w.push(self.inputs);
        w.extend(&self.hidden);
        w.push(self.outputs);
        w
    }

    /// The parameter layout.
    pub fn layout(&self) -> Layout {
        let w = self.widths();
        let mut tensors = Vec::new();
        for (i, pair) in w.windows(2).enumerate() {
            tensors.push(TensorSpec {
                name: format!("layers.{i}.weight"),
                shape: vec![pair[1], pair[0]],
            });
            tensors.push(TensorSpec {
                name: format!("layers.{i}.bias"),
                shape: vec![pair[1]],
            });
        }
        Layout::new(tensors)
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.layout().numel()
    }

    /// PyTorch `nn.Linear`'s default initialisation: weights and biases uniform in
    /// `±1/sqrt(fan_in)`, drawn in layout order from `rng`.
    pub fn init(&self, rng: &mut impl Rng) -> Params {
        let layout = self.layout();
        let mut values = Vec::with_capacity(layout.numel());
        for pair in self.widths().windows(2) {
            let bound = 1.0 / (pair[0] as f32).sqrt();
            for _ in 0..pair[1] * pair[0] + pair[1] {
                values.push(rng.random_range(-bound..bound));
            }
        }
        Params::new(layout, values).expect("init fills the layout exactly")
    }

    /// Checks that `params` has this architecture's layout.
    pub fn check(&self, params: &Params) -> Result<(), ModelError> {
        if params.layout() != &self.layout() {
            return Err(ModelError::Shape(format!(
                "parameters ({} values) do not match the model {:?} ({} values)",
                params.len(),
                self.widths(),
                self.num_params()
            )));
        }
        Ok(())
    }

    /// Checks a flat parameter vector and a row-major batch against this model.
    pub fn check_batch(&self, params: &[f32], x: &[f32], rows: usize) -> Result<(), ModelError> {
        if params.len() != self.num_params() {
            return Err(ModelError::Shape(format!(
                "parameter vector has {} values, the model {:?} needs {}",
                params.len(),
                self.widths(),
                self.num_params()
            )));
        }
        if x.len() != rows * self.inputs {
            return Err(ModelError::Shape(format!(
                "input has {} values, expected {rows} rows x {} features",
                x.len(),
                self.inputs
            )));
        }
        Ok(())
    }

    /// Human-readable summary, e.g. `mlp 13-32-1 (relu, bce)`.
    pub fn describe(&self) -> String {
        let widths: Vec<String> = self.widths().iter().map(ToString::to_string).collect();
        let kind = if self.hidden.is_empty() {
            "logistic"
        } else {
            "mlp"
        };
        format!(
            "{kind} {} ({}{})",
            widths.join("-"),
            if self.hidden.is_empty() {
                ""
            } else {
                match self.activation {
                    Activation::Relu => "relu, ",
                    Activation::Tanh => "tanh, ",
                }
            },
            match self.loss {
                Loss::Bce => "bce",
                Loss::CrossEntropy => "cross-entropy",
                Loss::MultiLabel => "multi-label bce",
            }
        ) + &if self.dropout > 0.0 {
            format!(", dropout {}", self.dropout)
        } else {
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn layout_is_torch_linear_order() {
        let spec = ModelSpec {
            kind: ModelKind::Mlp,
            hidden: vec![4],
            activation: Activation::Relu,
            ..ModelSpec::default()
        };
        let a = DenseArch::from_spec(&spec, LossKind::Auto, 3, 2).unwrap();
        let names: Vec<_> = a
            .layout()
            .tensors()
            .iter()
            .map(|t| (t.name.clone(), t.shape.clone()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("layers.0.weight".into(), vec![4, 3]),
                ("layers.0.bias".into(), vec![4]),
                ("layers.1.weight".into(), vec![1, 4]),
                ("layers.1.bias".into(), vec![1]),
            ]
        );
        // 4*3 + 4 + 1*4 + 1
        assert_eq!(a.num_params(), 21);
        let p = a.init(&mut rand_chacha::ChaCha8Rng::seed_from_u64(1));
        let bound = 1.0 / 3f32.sqrt();
        assert!(p.values()[..16].iter().all(|v| v.abs() <= bound));
        assert!(p.values()[16..].iter().all(|v| v.abs() <= 0.5));
    }

    #[test]
    fn loss_resolution() {
        let spec = ModelSpec::default();
        assert_eq!(
            DenseArch::from_spec(&spec, LossKind::Auto, 3, 2)
                .unwrap()
                .outputs,
            1
        );
        assert_eq!(
            DenseArch::from_spec(&spec, LossKind::Auto, 3, 5)
                .unwrap()
                .outputs,
            5
        );
        assert_eq!(
            DenseArch::from_spec(&spec, LossKind::CrossEntropy, 3, 2)
                .unwrap()
                .outputs,
            2
        );
        let e = DenseArch::from_spec(&spec, LossKind::Bce, 3, 3)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "model config: train.loss = \"bce\" needs 2 classes, the data has 3"
        );
    }
}
