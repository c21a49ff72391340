//! Convolutional networks for images (2D) and volumes (3D) on Burn: a small CNN and a
//! ResNet-18, with BatchNorm, GroupNorm or no normalisation.
//!
//! Parameters are flat [`Params`] in PyTorch's naming and memory layout, so a model
//! exported to safetensors loads into the same PyTorch module:
//!
//! - small CNN: `conv{i}.weight [c_out, c_in, 3, 3]`, `conv{i}.bias`, optional
//!   `bn{i}.*`/`gn{i}.*`, then `fc1.weight [hidden, flat]`, `fc1.bias`, `fc2.weight
//!   [outputs, hidden]`, `fc2.bias`. Each conv block is conv 3x3 (padding 1) → norm →
//!   ReLU → max-pool 2.
//! - ResNet-18 (BasicBlock, `[2, 2, 2, 2]`, widths `w, 2w, 4w, 8w`): stem `conv1.weight`
//!   (3x3, stride 1, no bias — the small-image stem of the PyTorch anchor, no max-pool)
//!   and `bn1`, then `layer{l}.{b}.conv1/bn1/conv2/bn2` and, where the shape changes,
//!   `layer{l}.0.shortcut.0.weight` (1x1 conv) and `layer{l}.0.shortcut.1` (norm);
//!   global average pooling; `fc.weight [outputs, 8w]`, `fc.bias`.
//! - BatchNorm layers hold `weight`, `bias` (trained) and the buffers `running_mean`,
//!   `running_var` (momentum 0.1, unbiased variance, eps 1e-5: PyTorch's defaults).
//!   Buffers get no gradient; the engine writes their new values after each optimiser
//!   step ([`GradientEngine::write_buffers`]). GroupNorm layers (`gn*`) hold `weight` and
//!   `bias`.
//!
//! Initialisation is PyTorch's default for `nn.Conv2d`/`nn.Linear` (uniform in
//! `±1/sqrt(fan_in)` for weights and biases), norms start at weight 1, bias 0.

use std::collections::HashMap;

use burn::prelude::*;
use burn::tensor::activation;
use burn::tensor::module;
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};
use ward_core::{Layout, Params, TensorSpec};
use ward_data::ImageShape;

use crate::burn_engine::burn_device;
use crate::{DeviceChoice, GradientEngine, ModelError};

/// BatchNorm's epsilon and momentum (PyTorch's defaults).
const BN_EPS: f64 = 1e-5;
const BN_MOMENTUM: f32 = 0.1;
/// GroupNorm's epsilon (PyTorch's default).
const GN_EPS: f64 = 1e-5;
/// Rows per forward pass when scoring.
const EVAL_CHUNK: usize = 256;

/// Normalisation after each convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Norm {
    /// No normalisation (the small CNN of the PyTorch anchor).
    None,
    /// BatchNorm with running statistics (buffers in `Params`).
    Batch,
    /// GroupNorm with this many groups (per-sample: safe for DP-SGD and FedBN-free
    /// federations).
    Group {
        /// Number of groups; must divide every layer's channels.
        groups: usize,
    },
}

/// Which convolutional network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum ConvFamily {
    /// Conv blocks (3x3 conv, norm, ReLU, max-pool 2) of the given widths, then a hidden
    /// dense layer and the output layer.
    SmallCnn {
        /// Output channels of each conv block, e.g. `[32, 64]`.
        channels: Vec<usize>,
        /// Width of the hidden dense layer.
        hidden: usize,
    },
    /// BasicBlock ResNet-18 with base width `width` (64 in the paper).
    Resnet18 {
        /// Channels of the first stage; later stages double it.
        width: usize,
    },
}

/// A convolutional network for images of one shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConvArch {
    /// The network.
    pub family: ConvFamily,
    /// Normalisation layers.
    pub norm: Norm,
    /// Input image shape (`depth > 1`: 3D convolutions).
    pub input: ImageShape,
    /// Number of outputs: classes (softmax cross-entropy), or labels when
    /// `multi_label`.
    pub outputs: usize,
    /// Multi-label task: one sigmoid output per label, binary cross-entropy on each;
    /// labels travel as one bitmask per image (bit `k` = label `k`, at most 32).
    #[serde(default)]
    pub multi_label: bool,
    /// Dropout rate on the output layer's input (the small CNN's hidden dense layer
    /// after its ReLU, ResNet-18's pooled features); training and MC dropout only.
    #[serde(default)]
    pub dropout: f32,
}

/// What one layout entry is, for the forward pass and for FedBN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Weight,
    NormAffine,
    NormBuffer,
}

impl ConvArch {
    /// Checks the architecture against its input: positive sizes, pooling that leaves at
    /// least one pixel, groups that divide the channels.
    pub fn validate(&self) -> Result<(), ModelError> {
        crate::dropout::check_rate(self.dropout)?;
        let s = self.input;
        if s.is_empty() {
            return Err(ModelError::Shape(format!("image shape {s} has no pixels")));
        }
        if self.outputs < if self.multi_label { 1 } else { 2 } {
            return Err(ModelError::Config(format!(
                "a CNN needs at least 2 classes (or 1 label), got {}",
                self.outputs
            )));
        }
        if self.multi_label && self.outputs > 32 {
            return Err(ModelError::Config(format!(
                "multi-label tasks support at most 32 labels, got {}",
                self.outputs
            )));
        }
        let mut widths = Vec::new();
        match &self.family {
            ConvFamily::SmallCnn { channels, hidden } => {
                if channels.is_empty() || channels.contains(&0) || *hidden == 0 {
                    return Err(ModelError::Config(
                        "model.channels must list positive widths and model.hidden must be positive"
                            .into(),
                    ));
                }
                let pools = channels.len() as u32;
                let min = s
                    .height
                    .min(s.width)
                    .min(if s.is_3d() { s.depth } else { usize::MAX });
                if min >> pools == 0 {
                    return Err(ModelError::Config(format!(
                        "{} max-pool layers need images of at least {} pixels a side, got {s}",
                        pools,
                        1usize << pools
                    )));
                }
                widths.extend(channels);
            }
            ConvFamily::Resnet18 { width } => {
                if *width == 0 {
                    return Err(ModelError::Config("model.width must be positive".into()));
                }
                widths.extend([*width, 2 * width, 4 * width, 8 * width]);
            }
        }
        if let Norm::Group { groups } = self.norm
            && (groups == 0 || widths.iter().any(|w| w % groups != 0))
        {
            return Err(ModelError::Config(format!(
                "GroupNorm with {groups} groups: every layer's channels ({widths:?}) must be a \
                 multiple of the number of groups"
            )));
        }
        Ok(())
    }

    fn spatial(&self) -> Vec<usize> {
        let s = self.input;
        if s.is_3d() {
            vec![s.depth, s.height, s.width]
        } else {
            vec![s.height, s.width]
        }
    }

    fn kernel(&self, c_out: usize, c_in: usize, k: usize) -> Vec<usize> {
        let mut v = vec![c_out, c_in, k, k];
        if self.input.is_3d() {
            v.push(k);
        }
        v
    }

    /// Layout entries with their roles, in order.
    fn entries(&self) -> Vec<(TensorSpec, Role)> {
        let mut out = Vec::new();
        let mut push = |name: String, shape: Vec<usize>, role: Role| {
            out.push((TensorSpec { name, shape }, role));
        };
        let norm = |push: &mut dyn FnMut(String, Vec<usize>, Role), prefix: &str, c: usize| {
            match self.norm {
                Norm::None => {}
                Norm::Batch => {
                    push(format!("{prefix}.weight"), vec![c], Role::NormAffine);
                    push(format!("{prefix}.bias"), vec![c], Role::NormAffine);
                    push(format!("{prefix}.running_mean"), vec![c], Role::NormBuffer);
                    push(format!("{prefix}.running_var"), vec![c], Role::NormBuffer);
                }
                Norm::Group { .. } => {
                    push(format!("{prefix}.weight"), vec![c], Role::NormAffine);
                    push(format!("{prefix}.bias"), vec![c], Role::NormAffine);
                }
            }
        };
        let tag = if matches!(self.norm, Norm::Group { .. }) {
            "gn"
        } else {
            "bn"
        };
        match &self.family {
            ConvFamily::SmallCnn { channels, hidden } => {
                let mut c_in = self.input.channels;
                for (i, &c) in channels.iter().enumerate() {
                    let i = i + 1;
                    push(
                        format!("conv{i}.weight"),
                        self.kernel(c, c_in, 3),
                        Role::Weight,
                    );
                    push(format!("conv{i}.bias"), vec![c], Role::Weight);
                    norm(&mut push, &format!("{tag}{i}"), c);
                    c_in = c;
                }
                let pooled: usize = self
                    .spatial()
                    .iter()
                    .map(|&d| d >> channels.len())
                    .product();
                push(
                    "fc1.weight".into(),
                    vec![*hidden, c_in * pooled],
                    Role::Weight,
                );
                push("fc1.bias".into(), vec![*hidden], Role::Weight);
                push(
                    "fc2.weight".into(),
                    vec![self.outputs, *hidden],
                    Role::Weight,
                );
                push("fc2.bias".into(), vec![self.outputs], Role::Weight);
            }
            ConvFamily::Resnet18 { width } => {
                let w = *width;
                push(
                    "conv1.weight".into(),
                    self.kernel(w, self.input.channels, 3),
                    Role::Weight,
                );
                norm(&mut push, &format!("{tag}1"), w);
                let mut c_in = w;
                for (l, (planes, stride)) in [(w, 1), (2 * w, 2), (4 * w, 2), (8 * w, 2)]
                    .into_iter()
                    .enumerate()
                {
                    for b in 0..2 {
                        let p = format!("layer{}.{b}", l + 1);
                        let s = if b == 0 { stride } else { 1 };
                        push(
                            format!("{p}.conv1.weight"),
                            self.kernel(planes, c_in, 3),
                            Role::Weight,
                        );
                        norm(&mut push, &format!("{p}.{tag}1"), planes);
                        push(
                            format!("{p}.conv2.weight"),
                            self.kernel(planes, planes, 3),
                            Role::Weight,
                        );
                        norm(&mut push, &format!("{p}.{tag}2"), planes);
                        if s != 1 || c_in != planes {
                            push(
                                format!("{p}.shortcut.0.weight"),
                                self.kernel(planes, c_in, 1),
                                Role::Weight,
                            );
                            norm(&mut push, &format!("{p}.shortcut.1"), planes);
                        }
                        c_in = planes;
                    }
                }
                push("fc.weight".into(), vec![self.outputs, c_in], Role::Weight);
                push("fc.bias".into(), vec![self.outputs], Role::Weight);
            }
        }
        out
    }

    /// The parameter layout (trained tensors and BatchNorm buffers).
    pub fn layout(&self) -> Layout {
        Layout::new(self.entries().into_iter().map(|(t, _)| t).collect())
    }

    /// Number of values in the layout.
    pub fn num_params(&self) -> usize {
        self.layout().numel()
    }

    /// Ranges (start, end) of the values that normalisation layers own: affine weights
    /// and biases and BatchNorm buffers. FedBN keeps these at each site.
    pub fn norm_ranges(&self) -> Vec<(usize, usize)> {
        let mut off = 0;
        let mut out = Vec::new();
        for (t, role) in self.entries() {
            let n = t.numel();
            if role != Role::Weight {
                out.push((off, off + n));
            }
            off += n;
        }
        out
    }

    /// Ranges of the normalisation layers' affine weights and biases (trained; TENT
    /// adapts only these).
    pub fn affine_ranges(&self) -> Vec<(usize, usize)> {
        let mut off = 0;
        let mut out = Vec::new();
        for (t, role) in self.entries() {
            let n = t.numel();
            if role == Role::NormAffine {
                out.push((off, off + n));
            }
            off += n;
        }
        out
    }

    /// Ranges of BatchNorm running-statistics buffers (no gradient).
    pub fn buffer_ranges(&self) -> Vec<(usize, usize)> {
        let mut off = 0;
        let mut out = Vec::new();
        for (t, role) in self.entries() {
            let n = t.numel();
            if role == Role::NormBuffer {
                out.push((off, off + n));
            }
            off += n;
        }
        out
    }

    /// PyTorch's default initialisation, drawn in layout order from `rng`.
    pub fn init(&self, rng: &mut impl Rng) -> Params {
        let entries = self.entries();
        let mut values = Vec::with_capacity(entries.iter().map(|(t, _)| t.numel()).sum());
        // A bias shares its fan-in with the weight before it.
        let mut fan_in = 1usize;
        for (t, role) in &entries {
            let n = t.numel();
            let last = t.name.rsplit('.').next().unwrap_or("");
            match (role, last) {
                (Role::Weight, "weight") => {
                    fan_in = t.shape[1..].iter().product();
                    let bound = 1.0 / (fan_in as f32).sqrt();
                    values.extend((0..n).map(|_| rng.random_range(-bound..bound)));
                }
                (Role::Weight, _) => {
                    let bound = 1.0 / (fan_in as f32).sqrt();
                    values.extend((0..n).map(|_| rng.random_range(-bound..bound)));
                }
                (Role::NormAffine, "weight") | (Role::NormBuffer, "running_var") => {
                    values.extend(std::iter::repeat_n(1.0, n));
                }
                _ => values.extend(std::iter::repeat_n(0.0, n)),
            }
        }
        Params::new(self.layout(), values).expect("init fills the layout exactly")
    }

    /// One line for logs and reports, e.g. `resnet18(w64, batch-norm) 1x28x28 -> 9`.
    pub fn describe(&self) -> String {
        let norm = match self.norm {
            Norm::None => "no norm".to_string(),
            Norm::Batch => "batch-norm".to_string(),
            Norm::Group { groups } => format!("group-norm {groups}"),
        };
        let fam = match &self.family {
            ConvFamily::SmallCnn { channels, hidden } => format!("cnn{channels:?}+{hidden}"),
            ConvFamily::Resnet18 { width } => format!("resnet18(w{width})"),
        };
        let head = if self.multi_label { " labels" } else { "" };
        let drop = if self.dropout > 0.0 {
            format!(", dropout {}", self.dropout)
        } else {
            String::new()
        };
        format!(
            "{fam}, {norm}{drop}, {} -> {}{head}",
            self.input, self.outputs
        )
    }
}

/// A 2D or 3D activation.
#[derive(Clone)]
enum Act {
    D2(Tensor<4>),
    D3(Tensor<5>),
}

impl Act {
    fn relu(self) -> Self {
        match self {
            Self::D2(t) => Self::D2(activation::relu(t)),
            Self::D3(t) => Self::D3(activation::relu(t)),
        }
    }

    fn add(self, other: Self) -> Self {
        match (self, other) {
            (Self::D2(a), Self::D2(b)) => Self::D2(a + b),
            (Self::D3(a), Self::D3(b)) => Self::D3(a + b),
            _ => unreachable!("activations of one network share their rank"),
        }
    }

    fn channels(&self) -> usize {
        match self {
            Self::D2(t) => t.dims()[1],
            Self::D3(t) => t.dims()[1],
        }
    }

    /// `k x k (x k)` convolution with `padding = k / 2`.
    fn conv(self, w: &Tensor<1>, b: Option<&Tensor<1>>, shape: &[usize], stride: usize) -> Self {
        let pad = shape[2] / 2;
        match self {
            Self::D2(x) => {
                let w = w.clone().reshape([shape[0], shape[1], shape[2], shape[3]]);
                Self::D2(module::conv2d(
                    x,
                    w,
                    b.cloned(),
                    ConvOptions::new([stride; 2], [pad; 2], [1; 2], 1),
                ))
            }
            Self::D3(x) => {
                let w = w
                    .clone()
                    .reshape([shape[0], shape[1], shape[2], shape[3], shape[4]]);
                Self::D3(module::conv3d(
                    x,
                    w,
                    b.cloned(),
                    ConvOptions::new([stride; 3], [pad; 3], [1; 3], 1),
                ))
            }
        }
    }

    /// Max-pool 2 (floor), over every spatial dimension.
    fn max_pool2(self) -> Self {
        match self {
            Self::D2(x) => Self::D2(module::max_pool2d(x, MaxPoolOptions::new([2, 2]))),
            Self::D3(x) => {
                // Burn has no 3D max-pool: pool (H, W) as 2D over depth-stacked channels,
                // then take the max of depth pairs.
                let [n, c, d, h, w] = x.dims();
                let x = x.slice([0..n, 0..c, 0..(d / 2) * 2, 0..h, 0..w]);
                let d2 = d / 2;
                let p = module::max_pool2d(
                    x.reshape([n, c * d2 * 2, h, w]),
                    MaxPoolOptions::new([2, 2]),
                );
                let (h2, w2) = (h / 2, w / 2);
                let p = p.reshape([n * c * d2, 2, h2 * w2]).max_dim(1);
                Self::D3(p.reshape([n, c, d2, h2, w2]))
            }
        }
    }

    /// Mean over every spatial position: `[N, C]`.
    fn global_avg(self) -> Tensor<2> {
        match self {
            Self::D2(x) => {
                let [n, c, _, _] = x.dims();
                x.reshape([n as i64, c as i64, -1])
                    .mean_dim(2)
                    .reshape([n, c])
            }
            Self::D3(x) => {
                let [n, c, _, _, _] = x.dims();
                x.reshape([n as i64, c as i64, -1])
                    .mean_dim(2)
                    .reshape([n, c])
            }
        }
    }

    fn flatten(self) -> Tensor<2> {
        match self {
            Self::D2(x) => x.flatten(1, 3),
            Self::D3(x) => x.flatten(1, 4),
        }
    }
}

/// GroupNorm's normalised activation `x_hat` (before the affine map): each example's
/// channels split into `groups` groups, each standardised over its channels and
/// positions (biased variance, eps [`GN_EPS`]).
fn group_hat(x: Act, groups: usize) -> Act {
    fn hat<const D: usize>(t: Tensor<D>, groups: usize) -> Tensor<D> {
        let dims = t.dims();
        let g = t.reshape([dims[0] as i64, groups as i64, -1]);
        let mean = g.clone().mean_dim(2);
        let centred = g - mean;
        let var = centred.clone().square().mean_dim(2);
        (centred / (var + GN_EPS).sqrt()).reshape(dims)
    }
    match x {
        Act::D2(t) => Act::D2(hat(t, groups)),
        Act::D3(t) => Act::D3(hat(t, groups)),
    }
}

/// GroupNorm's affine map `x_hat * gamma + beta`, per channel.
fn group_affine(x_hat: Act, gamma: &Tensor<1>, beta: &Tensor<1>) -> Act {
    let c = x_hat.channels();
    match x_hat {
        Act::D2(g) => {
            Act::D2(g * gamma.clone().reshape([1, c, 1, 1]) + beta.clone().reshape([1, c, 1, 1]))
        }
        Act::D3(g) => Act::D3(
            g * gamma.clone().reshape([1, c, 1, 1, 1]) + beta.clone().reshape([1, c, 1, 1, 1]),
        ),
    }
}

/// Batch statistics produced by a training forward pass, for the running buffers.
struct BnStats {
    /// Offsets of `running_mean` and `running_var` in the flat parameters.
    mean_at: usize,
    var_at: usize,
    mean: Tensor<1>,
    var: Tensor<1>,
    /// Values per channel in the batch (for the unbiased variance).
    count: usize,
}

/// The uploaded tensors of one forward pass.
struct Weights {
    tensors: Vec<Tensor<1>>,
    shapes: Vec<Vec<usize>>,
    offsets: Vec<usize>,
    index: HashMap<String, usize>,
}

impl Weights {
    fn get(&self, name: &str) -> (&Tensor<1>, &[usize]) {
        let i = self.index[name];
        (&self.tensors[i], &self.shapes[i])
    }

    fn offset(&self, name: &str) -> usize {
        self.offsets[self.index[name]]
    }
}

/// How [`BurnConv`] computes DP-SGD's per-example clipped gradients
/// ([`GradientEngine::clipped_grad_sum`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PerSample {
    /// Vectorised where the model allows it: the small CNN, 2D or 3D, with GroupNorm or
    /// no normalisation gets every example's gradient from one forward and one backward
    /// pass (per-layer per-sample gradients from each layer's input and output gradient,
    /// see [`BurnConv`]); anything else (ResNet-18, BatchNorm) falls back to
    /// microbatching.
    #[default]
    Auto,
    /// One backward pass per example, whatever the model
    /// ([`crate::dp::microbatch_clipped_sum`]).
    Microbatch,
}

/// How the vectorised path gets a convolution's per-example weight-gradient norms.
/// Only tests force `Materialise` or `Ghost`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(not(test), allow(dead_code))]
enum ConvNorms {
    /// By size: materialise unless the per-example gradients would take more memory
    /// than [`ghost::MATERIALISE_LIMIT`] values and the ghost form takes less.
    #[default]
    Auto,
    /// Materialise each example's `[c_out, c_in k^d]` gradient (batched matmul).
    Materialise,
    /// Ghost norm `sum(A A^T ⊙ B B^T)`, nothing per-example of the weight's size.
    Ghost,
}

/// Forward and backward of a [`ConvArch`] with Burn autodiff, on flat parameters.
///
/// DP-SGD's per-example clipped gradients ([`GradientEngine::clipped_grad_sum`]) are
/// vectorised on the small CNN with GroupNorm or no normalisation ([`PerSample`]): one
/// forward pass with a zero "probe" added to every trained layer's output, one backward
/// pass of the summed loss (so the probes' gradients are each example's output
/// gradients), then each layer's per-example gradients from its saved input `A` and
/// output gradient `B` — linear: `B_i^T A_i` (norm `|b_i|^2 |a_i|^2`, never
/// materialised); convolution: `B_i A_i^T` on the unfolded input (materialised by a
/// batched matmul, or the ghost norm `sum(A_i A_i^T ⊙ B_i B_i^T)` when that is too
/// big); GroupNorm: `sum_s x_hat ⊙ B` and `sum_s B` per channel. The clipped sum is the
/// clip-weighted sum of those per-layer gradients, so there is no second backward pass.
/// ResNet-18 and BatchNorm fall back to microbatching.
#[derive(Debug)]
pub struct BurnConv {
    arch: ConvArch,
    choice: DeviceChoice,
    device: Device,
    infer: Device,
    entries: Vec<(TensorSpec, Role)>,
    /// New running statistics from the last training step: (offset, values).
    pending: Vec<(usize, Vec<f32>)>,
    per_sample: PerSample,
    conv_norms: ConvNorms,
    /// The dropout seed armed for the next training step.
    armed: Option<u64>,
}

impl BurnConv {
    /// The network `arch` on `choice`.
    pub fn new(arch: ConvArch, choice: DeviceChoice) -> Result<Self, ModelError> {
        arch.validate()?;
        let infer = burn_device(choice)?;
        let device = infer.clone().autodiff();
        let entries = arch.entries();
        Ok(Self {
            arch,
            choice,
            device,
            infer,
            entries,
            pending: Vec::new(),
            per_sample: PerSample::Auto,
            conv_norms: ConvNorms::Auto,
            armed: None,
        })
    }

    /// The dropout mask of `seed` for `rows` images (`[rows * features]`, row-major),
    /// or `None` without dropout.
    fn mask_values(&self, seed: u64, rows: usize) -> Option<(Vec<f32>, usize)> {
        if self.arch.dropout <= 0.0 {
            return None;
        }
        let layout = self.arch.layout();
        let tensors = layout.tensors();
        let features = tensors[tensors.len() - 2].shape[1];
        let m = crate::dropout::masks(seed, self.arch.dropout, &[rows * features]);
        m.into_iter().next().map(|m| (m, features))
    }

    /// An evaluation-mode pass over `rows` images in chunks of `EVAL_CHUNK` on the
    /// inference device: `pass(weights, chunk, (start, end))` gives each chunk's
    /// `[chunk rows, width]` output; the outputs are concatenated row-major.
    fn eval_chunks(
        &self,
        params: &[f32],
        x: &[f32],
        rows: usize,
        pass: impl Fn(&Weights, Act, (usize, usize)) -> Tensor<2>,
    ) -> Result<Vec<f32>, ModelError> {
        let w = self.upload(params, &self.infer, false);
        let per = self.arch.input.len();
        let mut out = Vec::new();
        let mut start = 0;
        while start < rows {
            let end = (start + EVAL_CHUNK).min(rows);
            let xt = self.input(&x[start * per..end * per], end - start, &self.infer);
            out.extend(read(pass(&w, xt, (start, end)).flatten::<1>(0, 1))?);
            start = end;
        }
        Ok(out)
    }

    /// The same engine computing DP-SGD's per-example gradients as `per_sample` says.
    pub fn with_per_sample(mut self, per_sample: PerSample) -> Self {
        self.per_sample = per_sample;
        self
    }

    /// Whether [`GradientEngine::clipped_grad_sum`] takes the vectorised path (else it
    /// microbatches): [`PerSample::Auto`] on a small CNN without BatchNorm.
    pub fn vectorised_per_sample(&self) -> bool {
        self.per_sample == PerSample::Auto
            && matches!(self.arch.family, ConvFamily::SmallCnn { .. })
            && self.arch.norm != Norm::Batch
    }

    /// The architecture.
    pub fn arch(&self) -> &ConvArch {
        &self.arch
    }

    /// Writes the gradient of every trained tensor of `w` from `grads` into `grad` (flat,
    /// by the layout's offsets); buffers get 0.
    fn write_grads(
        &self,
        w: &Weights,
        grads: &burn::tensor::Gradients,
        grad: &mut [f32],
    ) -> Result<(), ModelError> {
        grad.fill(0.0);
        for (i, (t, role)) in self.entries.iter().enumerate() {
            if *role == Role::NormBuffer {
                continue;
            }
            let g = w.tensors[i].grad(grads).ok_or_else(|| {
                ModelError::Device(format!("Burn autodiff returned no gradient for {}", t.name))
            })?;
            let g = read(g)?;
            let off = w.offsets[i];
            grad[off..off + g.len()].copy_from_slice(&g);
        }
        Ok(())
    }

    fn upload(&self, params: &[f32], device: &Device, track: bool) -> Weights {
        let mut w = Weights {
            tensors: Vec::with_capacity(self.entries.len()),
            shapes: Vec::with_capacity(self.entries.len()),
            offsets: Vec::with_capacity(self.entries.len()),
            index: HashMap::with_capacity(self.entries.len()),
        };
        let mut off = 0;
        for (i, (t, role)) in self.entries.iter().enumerate() {
            let n = t.numel();
            let mut x =
                Tensor::<1>::from_data(TensorData::new(params[off..off + n].to_vec(), [n]), device);
            if track && *role != Role::NormBuffer {
                x = x.require_grad();
            }
            w.tensors.push(x);
            w.shapes.push(t.shape.clone());
            w.offsets.push(off);
            w.index.insert(t.name.clone(), i);
            off += n;
        }
        w
    }

    fn check(&self, params: &[f32], x: &[f32], rows: usize) -> Result<(), ModelError> {
        let n = self.arch.num_params();
        if params.len() != n {
            return Err(ModelError::Shape(format!(
                "parameters have {} values, the model {} {n}",
                params.len(),
                self.arch.describe()
            )));
        }
        if x.len() != rows * self.arch.input.len() {
            return Err(ModelError::Shape(format!(
                "a batch of {rows} images of shape {} needs {} values, got {}",
                self.arch.input,
                rows * self.arch.input.len(),
                x.len()
            )));
        }
        Ok(())
    }

    fn check_labels(&self, y: &[u32]) -> Result<(), ModelError> {
        if self.arch.multi_label {
            if let Some(&bad) = y
                .iter()
                .find(|&&m| self.arch.outputs < 32 && m >> self.arch.outputs != 0)
            {
                return Err(ModelError::Shape(format!(
                    "label bitmask {bad:#b} sets a bit beyond the {} labels",
                    self.arch.outputs
                )));
            }
        } else if let Some(&bad) = y.iter().find(|&&c| c as usize >= self.arch.outputs) {
            return Err(ModelError::Shape(format!(
                "label {bad} is out of range for {} classes",
                self.arch.outputs
            )));
        }
        Ok(())
    }

    /// The task's loss of logits `z` against `y`, mean over the batch.
    fn loss(&self, z: Tensor<2>, y: &[u32], device: &Device) -> Tensor<1> {
        if self.arch.multi_label {
            multi_label_bce(z, y, device)
        } else {
            cross_entropy(z, y, device)
        }
    }

    fn input(&self, x: &[f32], rows: usize, device: &Device) -> Act {
        let s = self.arch.input;
        if s.is_3d() {
            Act::D3(Tensor::<5>::from_data(
                TensorData::new(x.to_vec(), [rows, s.channels, s.depth, s.height, s.width]),
                device,
            ))
        } else {
            Act::D2(Tensor::<4>::from_data(
                TensorData::new(x.to_vec(), [rows, s.channels, s.height, s.width]),
                device,
            ))
        }
    }

    /// Normalisation layer `prefix` (if any), in training mode (batch statistics) or
    /// inference mode (running statistics).
    fn norm(
        &self,
        x: Act,
        w: &Weights,
        prefix: &str,
        train: bool,
        stats: &mut Vec<BnStats>,
    ) -> Act {
        match self.arch.norm {
            Norm::None => x,
            Norm::Batch => {
                let (gamma, _) = w.get(&format!("{prefix}.weight"));
                let (beta, _) = w.get(&format!("{prefix}.bias"));
                let mean_name = format!("{prefix}.running_mean");
                let var_name = format!("{prefix}.running_var");
                if train {
                    let (out, mean, var, count) = match x {
                        Act::D2(t) => {
                            let [n, _, h, ww] = t.dims();
                            let o =
                                module::batch_norm_train(t, gamma.clone(), beta.clone(), BN_EPS);
                            (Act::D2(o.output), o.mean, o.variance, n * h * ww)
                        }
                        Act::D3(t) => {
                            let [n, _, d, h, ww] = t.dims();
                            let o =
                                module::batch_norm_train(t, gamma.clone(), beta.clone(), BN_EPS);
                            (Act::D3(o.output), o.mean, o.variance, n * d * h * ww)
                        }
                    };
                    stats.push(BnStats {
                        mean_at: w.offset(&mean_name),
                        var_at: w.offset(&var_name),
                        mean,
                        var,
                        count,
                    });
                    out
                } else {
                    let (rm, _) = w.get(&mean_name);
                    let (rv, _) = w.get(&var_name);
                    match x {
                        Act::D2(t) => Act::D2(module::batch_norm(
                            t,
                            gamma.clone(),
                            beta.clone(),
                            rm.clone(),
                            rv.clone(),
                            BN_EPS,
                        )),
                        Act::D3(t) => Act::D3(module::batch_norm(
                            t,
                            gamma.clone(),
                            beta.clone(),
                            rm.clone(),
                            rv.clone(),
                            BN_EPS,
                        )),
                    }
                }
            }
            Norm::Group { groups } => {
                let (gamma, _) = w.get(&format!("{prefix}.weight"));
                let (beta, _) = w.get(&format!("{prefix}.bias"));
                group_affine(group_hat(x, groups), gamma, beta)
            }
        }
    }

    /// Logits `[rows, outputs]`.
    fn forward(&self, w: &Weights, x: Act, train: bool, stats: &mut Vec<BnStats>) -> Tensor<2> {
        self.forward_masked(w, x, train, stats, None)
    }

    /// Logits `[rows, outputs]`, with the output layer's input multiplied by the dropout
    /// `mask` (`[rows, features]`) when there is one.
    fn forward_masked(
        &self,
        w: &Weights,
        x: Act,
        train: bool,
        stats: &mut Vec<BnStats>,
        mask: Option<Tensor<2>>,
    ) -> Tensor<2> {
        let last = match &self.arch.family {
            ConvFamily::SmallCnn { .. } => "fc2",
            ConvFamily::Resnet18 { .. } => "fc",
        };
        let mut h = self.body(w, x, train, stats);
        if let Some(m) = mask {
            h = h * m;
        }
        let (wt, s) = w.get(&format!("{last}.weight"));
        let (b, _) = w.get(&format!("{last}.bias"));
        h.matmul(wt.clone().reshape([s[0], s[1]]).transpose()) + b.clone().unsqueeze::<2>()
    }

    /// Everything before the output layer: its input `φ(x)`, `[rows, features]`.
    fn body(&self, w: &Weights, x: Act, train: bool, stats: &mut Vec<BnStats>) -> Tensor<2> {
        let tag = if matches!(self.arch.norm, Norm::Group { .. }) {
            "gn"
        } else {
            "bn"
        };
        let dense = |h: Tensor<2>, name: &str| {
            let (wt, s) = w.get(&format!("{name}.weight"));
            let (b, _) = w.get(&format!("{name}.bias"));
            h.matmul(wt.clone().reshape([s[0], s[1]]).transpose()) + b.clone().unsqueeze::<2>()
        };
        match &self.arch.family {
            ConvFamily::SmallCnn { channels, .. } => {
                let mut h = x;
                for i in 1..=channels.len() {
                    let (wt, s) = w.get(&format!("conv{i}.weight"));
                    let (b, _) = w.get(&format!("conv{i}.bias"));
                    h = h.conv(wt, Some(b), s, 1);
                    h = self.norm(h, w, &format!("{tag}{i}"), train, stats);
                    h = h.relu().max_pool2();
                }
                activation::relu(dense(h.flatten(), "fc1"))
            }
            ConvFamily::Resnet18 { .. } => {
                let (wt, s) = w.get("conv1.weight");
                let mut h = x.conv(wt, None, s, 1);
                h = self.norm(h, w, &format!("{tag}1"), train, stats).relu();
                for l in 1..=4 {
                    for b in 0..2 {
                        let p = format!("layer{l}.{b}");
                        let stride = if b == 0 && l > 1 { 2 } else { 1 };
                        let (w1, s1) = w.get(&format!("{p}.conv1.weight"));
                        let mut o = h.clone().conv(w1, None, s1, stride);
                        o = self.norm(o, w, &format!("{p}.{tag}1"), train, stats).relu();
                        let (w2, s2) = w.get(&format!("{p}.conv2.weight"));
                        o = o.conv(w2, None, s2, 1);
                        o = self.norm(o, w, &format!("{p}.{tag}2"), train, stats);
                        let short = format!("{p}.shortcut.0.weight");
                        let skip = if w.index.contains_key(&short) {
                            let (ws, ss) = w.get(&short);
                            let sc = h.conv(ws, None, ss, stride);
                            self.norm(sc, w, &format!("{p}.shortcut.1"), train, stats)
                        } else {
                            h
                        };
                        h = o.add(skip).relu();
                    }
                }
                h.global_avg()
            }
        }
    }
}

fn read<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, ModelError> {
    t.into_data()
        .try_to_vec_as::<f32>()
        .map_err(|e| ModelError::Device(format!("reading a tensor back failed: {e:?}")))
}

/// Softmax cross-entropy, mean over the batch.
fn cross_entropy(z: Tensor<2>, y: &[u32], device: &Device) -> Tensor<1> {
    let [rows, k] = z.dims();
    let mut onehot = vec![0f32; rows * k];
    for (r, &c) in y.iter().enumerate() {
        onehot[r * k + c as usize] = 1.0;
    }
    let yt = Tensor::<2>::from_data(TensorData::new(onehot, [rows, k]), device);
    (activation::log_softmax(z, 1) * yt).sum_dim(1).neg().mean()
}

/// Binary cross-entropy on each logit against the label bits, mean over all elements.
fn multi_label_bce(z: Tensor<2>, y: &[u32], device: &Device) -> Tensor<1> {
    let [rows, k] = z.dims();
    let mut t = vec![0f32; rows * k];
    for (r, &m) in y.iter().enumerate() {
        for o in 0..k {
            t[r * k + o] = ((m >> o) & 1) as f32;
        }
    }
    let yt = Tensor::<2>::from_data(TensorData::new(t, [rows, k]), device);
    // max(z, 0) - z*t + log(1 + exp(-|z|)): stable BCE on the logit.
    (z.clone().clamp_min(0.0) - z.clone() * yt + (z.abs().neg().exp() + 1.0).log()).mean()
}

impl GradientEngine for BurnConv {
    fn name(&self) -> String {
        match self.choice {
            DeviceChoice::Cpu => "cpu:burn-flex".into(),
            DeviceChoice::Cuda(i) => format!("cuda:{i}:burn-cuda"),
            DeviceChoice::Wgpu => "wgpu:burn-wgpu".into(),
            DeviceChoice::Ndarray => "cpu:burn-ndarray".into(),
        }
    }

    fn loss_and_grad(
        &mut self,
        params: &[f32],
        x: &[f32],
        y: &[u32],
        grad: &mut [f32],
    ) -> Result<f32, ModelError> {
        let rows = y.len();
        self.check(params, x, rows)?;
        self.check_labels(y)?;
        let device = self.device.clone();
        let w = self.upload(params, &device, true);
        let xt = self.input(x, rows, &device);
        let mut stats = Vec::new();
        let mask = self
            .armed
            .take()
            .and_then(|seed| self.mask_values(seed, rows))
            .map(|(m, d)| Tensor::<2>::from_data(TensorData::new(m, [rows, d]), &device));
        let z = self.forward_masked(&w, xt, true, &mut stats, mask);
        let loss = self.loss(z, y, &device);
        let grads = loss.backward();
        self.write_grads(&w, &grads, grad)?;
        self.pending.clear();
        for s in stats {
            let mean = read(s.mean)?;
            let var = read(s.var)?;
            let unbias = if s.count > 1 {
                s.count as f32 / (s.count - 1) as f32
            } else {
                1.0
            };
            let rm: Vec<f32> = params[s.mean_at..s.mean_at + mean.len()]
                .iter()
                .zip(&mean)
                .map(|(&r, &m)| (1.0 - BN_MOMENTUM) * r + BN_MOMENTUM * m)
                .collect();
            let rv: Vec<f32> = params[s.var_at..s.var_at + var.len()]
                .iter()
                .zip(&var)
                .map(|(&r, &v)| (1.0 - BN_MOMENTUM) * r + BN_MOMENTUM * v * unbias)
                .collect();
            self.pending.push((s.mean_at, rm));
            self.pending.push((s.var_at, rv));
        }
        let l = read(loss.reshape([1]))?;
        Ok(l[0])
    }

    /// The vectorised path ([`PerSample::Auto`] on a small CNN without BatchNorm) or
    /// microbatching (anything else).
    fn clipped_grad_sum(
        &mut self,
        params: &[f32],
        x: &[f32],
        y: &[u32],
        clip: f32,
        sum: &mut [f32],
        norms: &mut Vec<f32>,
    ) -> Result<f32, ModelError> {
        if self.vectorised_per_sample() {
            self.ghost_clipped_sum(params, x, y, clip, sum, norms)
        } else {
            crate::dp::microbatch_clipped_sum(self, params, x, y, clip, sum, norms)
        }
    }

    /// AdaBN: one training-mode forward pass of all `rows` images as one batch, each
    /// BatchNorm layer's running mean and unbiased variance replaced (momentum 1) by the
    /// statistics of its input over those images.
    fn recompute_batch_norm(
        &mut self,
        params: &mut [f32],
        x: &[f32],
        rows: usize,
    ) -> Result<(), ModelError> {
        self.check(params, x, rows)?;
        if self.arch.norm != Norm::Batch || rows == 0 {
            return Err(ModelError::Config(format!(
                "AdaBN needs a model with BatchNorm and at least one image; {} on {rows}",
                self.arch.describe()
            )));
        }
        let device = self.infer.clone();
        let w = self.upload(params, &device, false);
        let xt = self.input(x, rows, &device);
        let mut stats = Vec::new();
        let _ = self.forward(&w, xt, true, &mut stats);
        for s in stats {
            let mean = read(s.mean)?;
            let var = read(s.var)?;
            let unbias = if s.count > 1 {
                s.count as f32 / (s.count - 1) as f32
            } else {
                1.0
            };
            params[s.mean_at..s.mean_at + mean.len()].copy_from_slice(&mean);
            for (r, v) in params[s.var_at..s.var_at + var.len()].iter_mut().zip(&var) {
                *r = v * unbias;
            }
        }
        Ok(())
    }

    /// TENT's objective: the mean Shannon entropy (nats) of the softmax predictions of a
    /// training-mode forward pass (BatchNorm with the batch's statistics), its gradient
    /// for every trained tensor, and the logits of that pass.
    fn entropy_and_grad(
        &mut self,
        params: &[f32],
        x: &[f32],
        rows: usize,
        grad: &mut [f32],
    ) -> Result<(f32, Vec<f32>), ModelError> {
        self.check(params, x, rows)?;
        if self.arch.multi_label || rows == 0 {
            return Err(ModelError::Config(
                "TENT's entropy needs a softmax (single-label) model and at least one image".into(),
            ));
        }
        let device = self.device.clone();
        let w = self.upload(params, &device, true);
        let xt = self.input(x, rows, &device);
        let z = self.forward(&w, xt, true, &mut Vec::new());
        let logits = read(z.clone().flatten::<1>(0, 1))?;
        let p = activation::softmax(z.clone(), 1);
        let entropy = (p * activation::log_softmax(z, 1)).sum_dim(1).neg().mean();
        let grads = entropy.backward();
        self.write_grads(&w, &grads, grad)?;
        let h = read(entropy.reshape([1]))?;
        Ok((h[0], logits))
    }

    fn write_buffers(&mut self, params: &mut [f32]) {
        for (off, v) in self.pending.drain(..) {
            params[off..off + v.len()].copy_from_slice(&v);
        }
    }

    fn logits(&mut self, params: &[f32], x: &[f32], rows: usize) -> Result<Vec<f32>, ModelError> {
        self.check(params, x, rows)?;
        self.eval_chunks(params, x, rows, |w, xt, _| {
            self.forward(w, xt, false, &mut Vec::new())
        })
    }

    fn arm_dropout(&mut self, seed: u64) {
        self.armed = Some(seed);
    }

    /// Evaluation mode (BatchNorm with running statistics) with the dropout mask of
    /// `seed` on the output layer's input; the mask is drawn for all `rows` at once, so
    /// it does not depend on the evaluation chunk.
    fn dropout_logits(
        &mut self,
        params: &[f32],
        x: &[f32],
        rows: usize,
        seed: u64,
    ) -> Result<Vec<f32>, ModelError> {
        self.check(params, x, rows)?;
        let Some((mask, d)) = self.mask_values(seed, rows) else {
            return Err(crate::dropout::no_dropout(&self.arch.describe()));
        };
        self.eval_chunks(params, x, rows, |w, xt, (start, end)| {
            let m = Tensor::<2>::from_data(
                TensorData::new(mask[start * d..end * d].to_vec(), [end - start, d]),
                &self.infer,
            );
            self.forward_masked(w, xt, false, &mut Vec::new(), Some(m))
        })
    }

    fn features(&mut self, params: &[f32], x: &[f32], rows: usize) -> Result<Vec<f32>, ModelError> {
        self.check(params, x, rows)?;
        self.eval_chunks(params, x, rows, |w, xt, _| {
            self.body(w, xt, false, &mut Vec::new())
        })
    }
}

mod ghost;
#[cfg(test)]
mod tests;
