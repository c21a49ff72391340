//! Ward's models and local training.
//!
//! - [`DenseArch`]: logistic regression and MLPs, with a [`ward_core::Params`] layout
//!   (`layers.i.weight` `[out, in]`, `layers.i.bias` `[out]`) and PyTorch's default
//!   initialisation.
//! - [`GradientEngine`]: loss and gradient of a model on a mini-batch, on flat
//!   parameters. Two engines: [`BurnDense`] (Burn autodiff on any enabled Burn device)
//!   and [`NativeDense`] (Ward's fused CPU kernels for small dense models; tests check
//!   they give Burn's gradients). [`make_engine`] picks one.
//! - [`Optimizer`] (SGD with momentum and weight decay, Adam), [`BatchStream`] (batch
//!   order that carries on across rounds), [`train_local`] and [`evaluate`].
//!
//! Only this crate sees Burn types; everything above it sees `Params`.
//!
//! Why the native kernels: at FLamby's size (13 features, batch 4) a training step is
//! about 100 flops, while Burn's dispatch and autodiff tape cost about 30 µs a step on
//! `burn-flex`, which would make Ward's rounds slower than a numpy loop. [`NativeDense`]
//! computes the same forward and backward pass in one pass over slices (well under a
//! microsecond a step). `--engine burn` keeps Burn's path, and the CUDA/WGPU devices
//! always use it; `ward bench fl` prints both.
//!
//! ```
//! use rand::SeedableRng;
//! use ward_core::config::{LossKind, ModelSpec};
//! use ward_models::{DenseArch, DeviceChoice, EngineKind, make_engine};
//!
//! let arch = DenseArch::from_spec(&ModelSpec::default(), LossKind::Auto, 3, 2)?;
//! let params = arch.init(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
//! let mut engine = make_engine(&arch.clone().into(), DeviceChoice::Cpu, EngineKind::Auto)?;
//! let mut grad = vec![0.0; params.len()];
//! let loss = engine.loss_and_grad(params.values(), &[0.5, -1.0, 2.0], &[1], &mut grad)?;
//! assert!(loss > 0.0);
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod adapt;
mod arch;
mod batches;
mod burn_engine;
mod conv;
pub mod dp;
mod dropout;
mod model;
mod native;
mod optim;
mod train;

use std::fmt;
use std::str::FromStr;

pub use arch::{DenseArch, Loss};
pub use batches::BatchStream;
pub use burn_engine::BurnDense;
pub use conv::{BurnConv, ConvArch, ConvFamily, Norm, PerSample};
pub use model::ModelArch;
pub use native::NativeDense;
pub use optim::{Optimizer, OptimizerConfig};
pub use train::{
    Evaluation, FitStats, LocalFit, auc, evaluate, macro_ovr_auc, mean_label_auc, score_logits,
    softmax_rows, train_local, train_local_augmented,
};

/// Errors of models and training.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// Tensor or parameter shapes do not fit.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// The model config does not fit the data.
    #[error("model config: {0}")]
    Config(String),
    /// The requested device is not available in this build or on this machine.
    #[error("device: {0}")]
    Device(String),
}

/// Loss and gradient of a model on flat parameters.
pub trait GradientEngine {
    /// Short name recorded in results, e.g. `cpu:native`, `cpu:burn-flex`.
    fn name(&self) -> String;

    /// Mean loss over the batch; writes its gradient w.r.t. `params` into `grad`.
    ///
    /// # Shapes
    /// - `params`, `grad`: `[num_params]`; `x`: `[rows, inputs]` row-major; `y`: `[rows]`.
    fn loss_and_grad(
        &mut self,
        params: &[f32],
        x: &[f32],
        y: &[u32],
        grad: &mut [f32],
    ) -> Result<f32, ModelError>;

    /// The model's outputs (logits).
    ///
    /// # Shapes
    /// - `x`: `[rows, inputs]` → `[rows, outputs]`.
    fn logits(&mut self, params: &[f32], x: &[f32], rows: usize) -> Result<Vec<f32>, ModelError>;

    /// The last layer's input `φ(x)` for each row (`[rows, features]`): the input itself
    /// for logistic regression, the last hidden layer's activations for an MLP, the
    /// hidden dense layer (after its ReLU) for the small CNN, the pooled features for a
    /// ResNet. The last layer's weights and bias are the last values of the flat
    /// parameters ([`ModelArch::last_layer`]), so `logits = W φ + b`. Used by the
    /// last-layer Laplace approximation.
    ///
    /// # Shapes
    /// - `x`: `[rows, inputs]` → `[rows, features]`.
    fn features(&mut self, params: &[f32], x: &[f32], rows: usize) -> Result<Vec<f32>, ModelError> {
        let _ = (params, x, rows);
        Err(ModelError::Config(format!(
            "the engine {} does not compute last-layer features",
            self.name()
        )))
    }

    /// Dropout for the next [`GradientEngine::loss_and_grad`] call only: its masks are
    /// drawn from `seed` (the same units on every engine for the same seed). A call that
    /// was not armed trains without dropout; models with dropout 0 ignore it.
    /// [`train_local`] arms every step when [`LocalFit::dropout_seed`] is set.
    fn arm_dropout(&mut self, seed: u64) {
        let _ = seed;
    }

    /// MC dropout (Gal & Ghahramani 2016): the logits (`[rows, outputs]`) with the
    /// dropout masks of `seed` and every other layer in evaluation mode (BatchNorm with
    /// its running statistics). Averaging the softmax over seeds gives the MC-dropout
    /// predictive distribution. Models without dropout refuse.
    fn dropout_logits(
        &mut self,
        params: &[f32],
        x: &[f32],
        rows: usize,
        seed: u64,
    ) -> Result<Vec<f32>, ModelError> {
        let _ = (params, x, rows, seed);
        Err(ModelError::Config(format!(
            "{} has no dropout (set model.dropout > 0 and train with it)",
            self.name()
        )))
    }

    /// Writes the model's non-trained buffers (BatchNorm running statistics) that the
    /// last [`GradientEngine::loss_and_grad`] computed into `params`. Training loops call
    /// it after the optimiser step, so buffers take the new statistics whatever the
    /// optimiser did to them. Models without buffers do nothing.
    fn write_buffers(&mut self, params: &mut [f32]) {
        let _ = params;
    }

    /// AdaBN (Li et al. 2016): replaces the BatchNorm running statistics in `params`
    /// with the statistics of the images `x` (`rows` of them, unlabelled), leaving every
    /// other value as it is. Models without BatchNorm refuse.
    fn recompute_batch_norm(
        &mut self,
        params: &mut [f32],
        x: &[f32],
        rows: usize,
    ) -> Result<(), ModelError> {
        let _ = (params, x, rows);
        Err(ModelError::Config(format!(
            "{} has no BatchNorm statistics to recompute",
            self.name()
        )))
    }

    /// TENT (Wang et al. 2021): the mean entropy of the model's softmax predictions on
    /// the unlabelled batch `x` with normalisation in training mode (batch statistics),
    /// its gradient w.r.t. `params` in `grad` (0 for buffers), and the logits of that
    /// forward pass (`[rows, outputs]`). Models without it refuse.
    fn entropy_and_grad(
        &mut self,
        params: &[f32],
        x: &[f32],
        rows: usize,
        grad: &mut [f32],
    ) -> Result<(f32, Vec<f32>), ModelError> {
        let _ = (params, x, rows, grad);
        Err(ModelError::Config(format!(
            "{} does not compute TENT's entropy objective",
            self.name()
        )))
    }

    /// DP-SGD's per-sample step: every example's gradient (the gradient of its own loss,
    /// as from a one-example batch) clipped to L2 norm `clip`, summed into `sum`.
    /// Returns the sum of the examples' losses; `norms` receives each example's
    /// unclipped gradient norm. The default runs one backward pass per example
    /// (microbatching); [`NativeDense`] derives per-sample gradients in one pass and
    /// [`BurnConv`] vectorises them for the small CNN without BatchNorm ([`PerSample`]).
    ///
    /// # Shapes
    /// - `params`, `sum`: `[num_params]`; `x`: `[rows, inputs]`; `y`: `[rows]`;
    ///   `norms`: `[rows]`.
    fn clipped_grad_sum(
        &mut self,
        params: &[f32],
        x: &[f32],
        y: &[u32],
        clip: f32,
        sum: &mut [f32],
        norms: &mut Vec<f32>,
    ) -> Result<f32, ModelError> {
        dp::microbatch_clipped_sum(self, params, x, y, clip, sum, norms)
    }
}

/// Where tensors live, chosen by the binary's `--device` (`cpu`, `cuda:N`, `wgpu`,
/// `ndarray`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// CPU: Burn's pure-Rust `burn-flex` backend (or Ward's native kernels).
    #[default]
    Cpu,
    /// A CUDA GPU by index (build feature `cuda`).
    Cuda(usize),
    /// The default WGPU adapter (build feature `wgpu`).
    Wgpu,
    /// CPU with Burn's `burn-ndarray` backend instead of `burn-flex` (build feature
    /// `ndarray`; for benchmarks).
    Ndarray,
}

impl FromStr for DeviceChoice {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, ModelError> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "wgpu" => Ok(Self::Wgpu),
            "ndarray" => Ok(Self::Ndarray),
            "cuda" => Ok(Self::Cuda(0)),
            _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(i)) => Ok(Self::Cuda(i)),
                _ => Err(ModelError::Device(format!(
                    "unknown device {s:?}: expected cpu, cuda, cuda:N, wgpu or ndarray"
                ))),
            },
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(i) => write!(f, "cuda:{i}"),
            Self::Wgpu => f.write_str("wgpu"),
            Self::Ndarray => f.write_str("ndarray"),
        }
    }
}

/// Which engine computes gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineKind {
    /// Native kernels for dense models on the CPU, Burn everywhere else.
    #[default]
    Auto,
    /// Ward's fused CPU kernels (CPU only).
    Native,
    /// Burn autodiff on the chosen device.
    Burn,
}

impl FromStr for EngineKind {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, ModelError> {
        match s {
            "auto" => Ok(Self::Auto),
            "native" => Ok(Self::Native),
            "burn" => Ok(Self::Burn),
            _ => Err(ModelError::Device(format!(
                "unknown engine {s:?}: expected auto, native or burn"
            ))),
        }
    }
}

/// The engine for `arch` on `device`: dense models use the native kernels on the CPU
/// (unless `kind` asks for Burn) and Burn elsewhere; CNNs always use Burn.
pub fn make_engine(
    arch: &ModelArch,
    device: DeviceChoice,
    kind: EngineKind,
) -> Result<Box<dyn GradientEngine>, ModelError> {
    let arch = match arch {
        ModelArch::Dense(a) => a,
        ModelArch::Conv(c) => {
            if kind == EngineKind::Native {
                return Err(ModelError::Device(
                    "the native engine computes dense models only; CNNs run on Burn (--engine burn or auto)".into(),
                ));
            }
            return Ok(Box::new(BurnConv::new(c.clone(), device)?));
        }
    };
    match (kind, device) {
        (EngineKind::Auto | EngineKind::Native, DeviceChoice::Cpu) => {
            Ok(Box::new(NativeDense::new(arch.clone())))
        }
        (EngineKind::Native, other) => Err(ModelError::Device(format!(
            "the native engine runs on the CPU only, not {other}"
        ))),
        (EngineKind::Auto | EngineKind::Burn, d) => Ok(Box::new(BurnDense::new(arch.clone(), d)?)),
    }
}
