//! `[train]`: local training at each site.

use serde::{Deserialize, Serialize};

use super::*;

/// Local optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// SGD with optional momentum and weight decay (PyTorch semantics).
    #[default]
    Sgd,
    /// Adam (Kingma & Ba 2015; PyTorch semantics, L2 weight decay).
    Adam,
}

/// Training loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// Binary cross-entropy for two classes, cross-entropy for more.
    #[default]
    Auto,
    /// Binary cross-entropy on one logit.
    Bce,
    /// Softmax cross-entropy on one logit per class.
    CrossEntropy,
}

/// `[train]`: local training at each site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TrainSpec {
    /// `sgd` or `adam`.
    #[serde(default)]
    pub optimizer: OptimizerKind,
    /// Local learning rate (> 0).
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// SGD momentum in [0, 1).
    #[serde(default)]
    pub momentum: f64,
    /// L2 weight decay (>= 0).
    #[serde(default)]
    pub weight_decay: f64,
    /// Adam beta1 in [0, 1).
    #[serde(default = "default_beta1")]
    pub beta1: f64,
    /// Adam beta2 in [0, 1).
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    /// Adam epsilon (> 0).
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Mini-batch size (>= 1). The last batch of a pass may be smaller (no drop-last).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Local optimizer steps per round (100 when neither this nor `local-epochs` is
    /// given). At most one of `local-steps`, `local-epochs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_steps: Option<usize>,
    /// Local passes over the site's training data per round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_epochs: Option<usize>,
    /// Loss: `auto`, `bce` or `cross-entropy`.
    #[serde(default)]
    pub loss: LossKind,
    /// `[train.augment]`: image augmentation during local training.
    #[serde(default, skip_serializing_if = "AugmentSpec::is_off")]
    pub augment: AugmentSpec,
}

/// `[train.augment]`: random augmentation of every training batch (image datasets;
/// drawn from the site's seeded stream, so runs repeat exactly). Spatial transforms
/// (flips, affine, elastic) come first, in one resampling, then intensity ones (bias
/// field, gamma, blur, noise, brightness, contrast), then values are clamped to `[0, 1]`.
/// Ranges follow TorchIO's `Random*` transforms where one exists.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AugmentSpec {
    /// Axes to flip, each independently with probability 1/2 (TorchIO `RandomFlip`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flip: Vec<ImageAxis>,
    /// Rotation by a uniform angle in `±rotate` degrees: in-plane for 2D images, about
    /// each of the three axes for volumes (TorchIO `RandomAffine(degrees)`).
    #[serde(default)]
    pub rotate: f64,
    /// Scaling by a factor uniform in `1 ± scale`, independently per axis (TorchIO
    /// `RandomAffine(scales)`, not isotropic).
    #[serde(default)]
    pub scale: f64,
    /// Translation by a uniform `±translate` fraction of the size, per axis.
    #[serde(default)]
    pub translate: f64,
    /// Elastic deformation (TorchIO `RandomElasticDeformation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elastic: Option<ElasticSpec>,
    /// Gamma: `v^exp(g)` with `g` uniform in `±gamma` (TorchIO `RandomGamma(log_gamma)`).
    #[serde(default)]
    pub gamma: f64,
    /// Gaussian noise with a standard deviation uniform in `[0, noise]` (TorchIO
    /// `RandomNoise(std)`).
    #[serde(default)]
    pub noise: f64,
    /// Multiplicative bias field `exp(polynomial of order 3)`, coefficients uniform in
    /// `±bias-field` (TorchIO `RandomBiasField(coefficients, order = 3)`).
    #[serde(default)]
    pub bias_field: f64,
    /// Gaussian blur with a standard deviation uniform in `[0, blur]` voxels (TorchIO
    /// `RandomBlur(std)`).
    #[serde(default)]
    pub blur: f64,
    /// Brightness jitter: add a uniform offset in `±brightness`.
    #[serde(default)]
    pub brightness: f64,
    /// Contrast jitter: scale deviations from the image mean by a factor in `1 ± contrast`.
    #[serde(default)]
    pub contrast: f64,
}

/// An axis of an image array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageAxis {
    /// Columns (left-right in a displayed image).
    Width,
    /// Rows (up-down).
    Height,
    /// Slices (volumes only).
    Depth,
}

/// `train.augment.elastic`: a random displacement field, a cubic B-spline over a coarse
/// grid of control points (TorchIO `RandomElasticDeformation`, `locked_borders = 2`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ElasticSpec {
    /// Control points per axis (at least 5: two locked rings each side and one free).
    #[serde(default = "default_control_points")]
    pub control_points: usize,
    /// Largest displacement coefficient, in voxels.
    pub max_displacement: f64,
}

fn default_control_points() -> usize {
    7
}

impl AugmentSpec {
    /// Whether no augmentation is asked for.
    pub fn is_off(&self) -> bool {
        *self == Self::default()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for (key, v, max) in [
            ("train.augment.rotate", self.rotate, 180.0),
            ("train.augment.scale", self.scale, 0.9),
            ("train.augment.translate", self.translate, 0.5),
            ("train.augment.gamma", self.gamma, 2.0),
            ("train.augment.noise", self.noise, 1.0),
            ("train.augment.bias-field", self.bias_field, 2.0),
            ("train.augment.blur", self.blur, 10.0),
            ("train.augment.brightness", self.brightness, 1.0),
            ("train.augment.contrast", self.contrast, 1.0),
        ] {
            check(v.is_finite() && (0.0..=max).contains(&v), key, || {
                format!("must be in [0, {max}], got {v}")
            })?;
        }
        let mut seen = Vec::new();
        for axis in &self.flip {
            check(!seen.contains(axis), "train.augment.flip", || {
                format!("lists {axis:?} twice")
            })?;
            seen.push(*axis);
        }
        if let Some(e) = self.elastic {
            check(
                (5..=64).contains(&e.control_points),
                "train.augment.elastic.control-points",
                || format!("must be in 5..=64, got {}", e.control_points),
            )?;
            check(
                e.max_displacement.is_finite() && e.max_displacement > 0.0,
                "train.augment.elastic.max-displacement",
                || format!("must be > 0 voxels, got {}", e.max_displacement),
            )?;
        }
        Ok(())
    }
}

pub(super) fn default_lr() -> f64 {
    0.001
}
pub(super) fn default_beta1() -> f64 {
    0.9
}
pub(super) fn default_beta2() -> f64 {
    0.999
}
pub(super) fn default_eps() -> f64 {
    1e-8
}
pub(super) fn default_batch() -> usize {
    4
}

impl Default for TrainSpec {
    fn default() -> Self {
        Self {
            optimizer: OptimizerKind::Sgd,
            lr: default_lr(),
            momentum: 0.0,
            weight_decay: 0.0,
            beta1: default_beta1(),
            beta2: default_beta2(),
            eps: default_eps(),
            batch_size: default_batch(),
            local_steps: Some(100),
            local_epochs: None,
            loss: LossKind::Auto,
            augment: AugmentSpec::default(),
        }
    }
}

impl TrainSpec {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        positive(self.lr, "train.lr")?;
        unit_interval(self.momentum, "train.momentum")?;
        check(
            self.weight_decay.is_finite() && self.weight_decay >= 0.0,
            "train.weight-decay",
            || format!("must be >= 0, got {}", self.weight_decay),
        )?;
        unit_interval(self.beta1, "train.beta1")?;
        unit_interval(self.beta2, "train.beta2")?;
        positive(self.eps, "train.eps")?;
        check(self.batch_size >= 1, "train.batch-size", || {
            "must be >= 1".into()
        })?;
        self.augment.validate()?;
        match (self.local_steps, self.local_epochs) {
            (Some(_), Some(_)) => Err(ConfigError::new(
                "train.local-epochs",
                "give either local-steps or local-epochs, not both",
            )),
            (Some(0), None) => Err(ConfigError::new("train.local-steps", "must be >= 1")),
            (None, Some(0)) => Err(ConfigError::new("train.local-epochs", "must be >= 1")),
            _ => Ok(()),
        }
    }
}
