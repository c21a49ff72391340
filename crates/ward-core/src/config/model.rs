//! `[model]`: the model family and its layers.

use serde::{Deserialize, Serialize};

use super::*;

/// Model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Logistic (binary) or softmax (multi-class) regression.
    #[default]
    Logistic,
    /// Multi-layer perceptron with `hidden` layers.
    Mlp,
    /// Small CNN: conv blocks of `channels` (3x3 conv, norm, ReLU, max-pool 2), a hidden
    /// dense layer of `hidden[0]` units, the output layer (image datasets).
    Cnn,
    /// ResNet-18 (BasicBlock, widths `width`, 2, 4, 8 x `width`), small-image stem.
    Resnet18,
}

/// Normalisation layers of a CNN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NormKind {
    /// None.
    None,
    /// BatchNorm (running statistics are buffers in the model; FedBN keeps them local).
    Batch,
    /// GroupNorm with `model.groups` groups (per-sample; DP-SGD compatible).
    Group,
}

/// Hidden-layer activation of an MLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    /// max(0, x).
    #[default]
    Relu,
    /// tanh(x).
    Tanh,
}

/// `[model]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ModelSpec {
    /// `logistic` or `mlp`.
    #[serde(default)]
    pub kind: ModelKind,
    /// Hidden layer sizes (`mlp` only), e.g. `[32, 16]`.
    #[serde(default)]
    pub hidden: Vec<usize>,
    /// Hidden activation (`mlp` only).
    #[serde(default)]
    pub activation: Activation,
    /// Conv block widths (`cnn`; default `[32, 64]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<usize>,
    /// Base width (`resnet18`; default 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<usize>,
    /// `none`, `batch` or `group` (default: `none` for `cnn`, `batch` for `resnet18`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub norm: Option<NormKind>,
    /// GroupNorm groups (default 8, or fewer where a layer is narrower).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<usize>,
    /// Dropout rate in `[0, 1)` on the output layer's input (`mlp`: after every hidden
    /// layer; `cnn`: after the hidden dense layer; `resnet18`: on the pooled features).
    /// Active while training, and in MC dropout's sampled predictions; 0 (the default)
    /// turns it off.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropout: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

impl ModelSpec {
    /// Whether this is a convolutional network (for image datasets).
    pub fn is_conv(&self) -> bool {
        matches!(self.kind, ModelKind::Cnn | ModelKind::Resnet18)
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !self.is_conv() {
            for (key, set) in [
                ("model.channels", !self.channels.is_empty()),
                ("model.norm", self.norm.is_some()),
                ("model.groups", self.groups.is_some()),
            ] {
                check(!set, key, || {
                    "is only for kind = \"cnn\" or \"resnet18\"".into()
                })?;
            }
        }
        check((0.0..1.0).contains(&self.dropout), "model.dropout", || {
            format!("must be in [0, 1), got {}", self.dropout)
        })?;
        check(
            self.dropout == 0.0 || self.kind != ModelKind::Logistic,
            "model.dropout",
            || "needs a hidden layer: kind = \"mlp\", \"cnn\" or \"resnet18\"".into(),
        )?;
        check(self.groups.is_none_or(|g| g > 0), "model.groups", || {
            "must be >= 1".into()
        })?;
        match self.kind {
            ModelKind::Logistic => check(self.hidden.is_empty(), "model.hidden", || {
                "is only for kind = \"mlp\" or \"cnn\"".into()
            }),
            ModelKind::Cnn => {
                check(self.hidden.len() <= 1, "model.hidden", || {
                    "a cnn has one hidden dense layer: hidden = [128]".into()
                })?;
                check(
                    self.channels.iter().all(|&c| c > 0) && self.hidden.iter().all(|&h| h > 0),
                    "model.channels",
                    || "widths must be >= 1".into(),
                )?;
                check(self.width.is_none(), "model.width", || {
                    "is only for kind = \"resnet18\"".into()
                })
            }
            ModelKind::Resnet18 => {
                check(
                    self.hidden.is_empty() && self.channels.is_empty(),
                    "model.channels",
                    || "resnet18 takes model.width, not channels or hidden".into(),
                )?;
                check(self.width.is_none_or(|w| w > 0), "model.width", || {
                    "must be >= 1".into()
                })
            }
            ModelKind::Mlp => {
                check(!self.hidden.is_empty(), "model.hidden", || {
                    "an mlp needs at least one hidden layer, e.g. hidden = [32]".into()
                })?;
                check(self.hidden.iter().all(|&h| h > 0), "model.hidden", || {
                    format!("layer sizes must be >= 1, got {:?}", self.hidden)
                })
            }
        }
    }
}
