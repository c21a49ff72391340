//! The Burn engine: forward and backward of dense networks with Burn autodiff, on any
//! Burn device the build enables.

use burn::prelude::*;
use burn::tensor::activation;
use ward_core::config::Activation;

use crate::arch::{DenseArch, Loss};
use crate::{DeviceChoice, GradientEngine, ModelError};

/// Turns Ward's device choice into a Burn device. Only this crate sees Burn types.
pub(crate) fn burn_device(choice: DeviceChoice) -> Result<Device, ModelError> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::flex()),
        #[cfg(feature = "cuda")]
        DeviceChoice::Cuda(i) => Ok(Device::cuda(i)),
        #[cfg(not(feature = "cuda"))]
        DeviceChoice::Cuda(_) => Err(ModelError::Device(
            "this build has no CUDA backend: rebuild with `--features cuda`".into(),
        )),
        #[cfg(feature = "wgpu")]
        DeviceChoice::Wgpu => Ok(Device::wgpu(Default::default())),
        #[cfg(not(feature = "wgpu"))]
        DeviceChoice::Wgpu => Err(ModelError::Device(
            "this build has no WGPU backend: rebuild with `--features wgpu`".into(),
        )),
        // Deprecated in Burn 0.22 in favour of burn-flex; kept for the benchmark.
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)]
        DeviceChoice::Ndarray => Ok(Device::ndarray()),
        #[cfg(not(feature = "ndarray"))]
        DeviceChoice::Ndarray => Err(ModelError::Device(
            "this build has no burn-ndarray backend: rebuild with `--features ndarray`".into(),
        )),
    }
}

/// A dense network evaluated with Burn tensors; gradients from Burn autodiff.
///
/// Parameters travel as [`ward_core::Params`]: each step uploads them as tensors
/// (`layers.i.weight` `[out, in]`, `layers.i.bias` `[out]`), runs the forward pass on an
/// autodiff device, and reads the gradients back in the same flat layout.
#[derive(Debug, Clone)]
pub struct BurnDense {
    arch: DenseArch,
    choice: DeviceChoice,
    device: Device,
    /// The dropout seed armed for the next training step.
    armed: Option<u64>,
}

impl BurnDense {
    /// The network `arch` on `choice`.
    pub fn new(arch: DenseArch, choice: DeviceChoice) -> Result<Self, ModelError> {
        let device = burn_device(choice)?.autodiff();
        Ok(Self {
            arch,
            choice,
            device,
            armed: None,
        })
    }

    /// The dropout masks of `seed` for `rows` rows, one `[rows, width]` tensor per
    /// hidden layer (the native engine's masks for the same seed).
    fn masks(&self, seed: u64, rows: usize) -> Vec<Tensor<2>> {
        let sizes: Vec<usize> = self.arch.hidden.iter().map(|&h| h * rows).collect();
        crate::dropout::masks(seed, self.arch.dropout, &sizes)
            .into_iter()
            .zip(&self.arch.hidden)
            .map(|(m, &h)| Tensor::<2>::from_data(TensorData::new(m, [rows, h]), &self.device))
            .collect()
    }

    /// Uploads the flat parameters as `(weight, bias)` tensors per layer.
    ///
    /// # Shapes
    /// - weight: `[out, in]`, bias: `[out]`, as in the [`DenseArch`] layout.
    fn upload(&self, params: &[f32], track: bool) -> Vec<(Tensor<2>, Tensor<1>)> {
        let widths = self.arch.widths();
        let mut off = 0;
        let mut layers = Vec::with_capacity(widths.len() - 1);
        for pair in widths.windows(2) {
            let (n_in, n_out) = (pair[0], pair[1]);
            let w = Tensor::<2>::from_data(
                TensorData::new(params[off..off + n_out * n_in].to_vec(), [n_out, n_in]),
                &self.device,
            );
            off += n_out * n_in;
            let b = Tensor::<1>::from_data(
                TensorData::new(params[off..off + n_out].to_vec(), [n_out]),
                &self.device,
            );
            off += n_out;
            if track {
                layers.push((w.require_grad(), b.require_grad()));
            } else {
                layers.push((w, b));
            }
        }
        layers
    }

    /// Forward pass.
    ///
    /// # Shapes
    /// - `x`: `[rows, inputs]` → logits `[rows, outputs]`.
    /// - `masks`: dropout masks, one per hidden layer (empty: none).
    fn forward(
        &self,
        layers: &[(Tensor<2>, Tensor<1>)],
        x: Tensor<2>,
        masks: &[Tensor<2>],
    ) -> Tensor<2> {
        let mut h = x;
        for (l, (w, b)) in layers.iter().enumerate() {
            h = h.matmul(w.clone().transpose()) + b.clone().unsqueeze::<2>();
            if l + 1 < layers.len() {
                h = match self.arch.activation {
                    Activation::Relu => activation::relu(h),
                    Activation::Tanh => activation::tanh(h),
                };
                if let Some(m) = masks.get(l) {
                    h = h * m.clone();
                }
            }
        }
        h
    }
}

fn read(t: Tensor<1>) -> Result<Vec<f32>, ModelError> {
    t.into_data()
        .try_to_vec_as::<f32>()
        .map_err(|e| ModelError::Device(format!("reading a tensor back failed: {e:?}")))
}

impl GradientEngine for BurnDense {
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
        self.arch.check_batch(params, x, rows)?;
        let layers = self.upload(params, true);
        let xt = Tensor::<2>::from_data(
            TensorData::new(x.to_vec(), [rows, self.arch.inputs]),
            &self.device,
        );
        let masks = match self.armed.take() {
            Some(seed) if self.arch.dropout > 0.0 => self.masks(seed, rows),
            _ => Vec::new(),
        };
        let z = self.forward(&layers, xt, &masks);
        let loss = match self.arch.loss {
            Loss::Bce => {
                let yt = Tensor::<2>::from_data(
                    TensorData::new(y.iter().map(|&v| v as f32).collect::<Vec<_>>(), [rows, 1]),
                    &self.device,
                );
                // max(z, 0) - z*y + log(1 + exp(-|z|)): BCE on the logit, stable.
                (z.clone().clamp_min(0.0) - z.clone() * yt + (z.abs().neg().exp() + 1.0).log())
                    .mean()
            }
            Loss::CrossEntropy => {
                let k = self.arch.outputs;
                let mut onehot = vec![0f32; rows * k];
                for (r, &c) in y.iter().enumerate() {
                    onehot[r * k + c as usize] = 1.0;
                }
                let yt = Tensor::<2>::from_data(TensorData::new(onehot, [rows, k]), &self.device);
                (activation::log_softmax(z, 1) * yt).sum_dim(1).neg().mean()
            }
            Loss::MultiLabel => {
                return Err(ModelError::Config(
                    "dense models have no multi-label loss (multi-label tasks are images)".into(),
                ));
            }
        };
        let grads = loss.backward();
        let mut off = 0;
        for (w, b) in &layers {
            for t in [w.grad(&grads).map(|g| g.flatten::<1>(0, 1)), b.grad(&grads)] {
                let g = read(t.ok_or_else(|| {
                    ModelError::Device("Burn autodiff returned no gradient".into())
                })?)?;
                grad[off..off + g.len()].copy_from_slice(&g);
                off += g.len();
            }
        }
        let l = read(loss.reshape([1]))?;
        Ok(l[0])
    }

    fn logits(&mut self, params: &[f32], x: &[f32], rows: usize) -> Result<Vec<f32>, ModelError> {
        self.arch.check_batch(params, x, rows)?;
        let layers = self.upload(params, false);
        let xt = Tensor::<2>::from_data(
            TensorData::new(x.to_vec(), [rows, self.arch.inputs]),
            &self.device,
        );
        read(self.forward(&layers, xt, &[]).flatten::<1>(0, 1))
    }

    fn arm_dropout(&mut self, seed: u64) {
        self.armed = Some(seed);
    }

    fn dropout_logits(
        &mut self,
        params: &[f32],
        x: &[f32],
        rows: usize,
        seed: u64,
    ) -> Result<Vec<f32>, ModelError> {
        self.arch.check_batch(params, x, rows)?;
        if self.arch.dropout <= 0.0 {
            return Err(crate::dropout::no_dropout(&self.arch.describe()));
        }
        let layers = self.upload(params, false);
        let xt = Tensor::<2>::from_data(
            TensorData::new(x.to_vec(), [rows, self.arch.inputs]),
            &self.device,
        );
        let masks = self.masks(seed, rows);
        read(self.forward(&layers, xt, &masks).flatten::<1>(0, 1))
    }

    /// The native kernels' forward pass (a dense model's features are a few dot
    /// products; the tests check both engines agree on the logits).
    fn features(&mut self, params: &[f32], x: &[f32], rows: usize) -> Result<Vec<f32>, ModelError> {
        crate::NativeDense::new(self.arch.clone()).features(params, x, rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::NativeDense;
    use rand::{RngExt, SeedableRng};
    use ward_core::config::{LossKind, ModelKind, ModelSpec};

    /// Both dense engines' features, through the output layer, give the logits
    /// (logistic, MLP, softmax).
    #[test]
    fn features_feed_the_output_layer() {
        for (kind, hidden, classes) in [
            (ModelKind::Logistic, vec![], 2),
            (ModelKind::Mlp, vec![6, 5], 2),
            (ModelKind::Mlp, vec![4], 3),
        ] {
            let spec = ModelSpec {
                kind,
                hidden,
                ..ModelSpec::default()
            };
            let arch = DenseArch::from_spec(&spec, LossKind::Auto, 7, classes).unwrap();
            let params = arch.init(&mut rand_chacha::ChaCha8Rng::seed_from_u64(2));
            let x: Vec<f32> = (0..5 * 7)
                .map(|i| ((i * 13 % 9) as f32 - 4.0) / 3.0)
                .collect();
            let model: crate::ModelArch = arch.clone().into();
            let mut native = NativeDense::new(arch.clone());
            crate::model::assert_features_give_logits(&model, &mut native, params.values(), &x, 5);
            let mut burn = BurnDense::new(arch, DeviceChoice::Cpu).unwrap();
            crate::model::assert_features_give_logits(&model, &mut burn, params.values(), &x, 5);
        }
    }

    /// The fast path must give Burn autodiff's loss and gradients (same f32 maths, so
    /// agreement to rounding).
    fn compare(spec: ModelSpec, classes: usize, rows: usize) {
        let arch = DenseArch::from_spec(&spec, LossKind::Auto, 7, classes).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let params = arch.init(&mut rng);
        let x: Vec<f32> = (0..rows * 7)
            .map(|_| rng.random_range(-2.0f32..2.0))
            .collect();
        let y: Vec<u32> = (0..rows)
            .map(|_| rng.random_range(0..classes as u32))
            .collect();
        let mut native = NativeDense::new(arch.clone());
        let mut burn = BurnDense::new(arch, DeviceChoice::Cpu).unwrap();
        let mut g1 = vec![0.0; params.len()];
        let mut g2 = vec![0.0; params.len()];
        let l1 = native
            .loss_and_grad(params.values(), &x, &y, &mut g1)
            .unwrap();
        let l2 = burn
            .loss_and_grad(params.values(), &x, &y, &mut g2)
            .unwrap();
        assert!((l1 - l2).abs() < 1e-5, "loss native {l1} burn {l2}");
        for (i, (a, b)) in g1.iter().zip(&g2).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 + 1e-4 * b.abs(),
                "grad[{i}] native {a} burn {b}"
            );
        }
        let z1 = native.logits(params.values(), &x, rows).unwrap();
        let z2 = burn.logits(params.values(), &x, rows).unwrap();
        for (a, b) in z1.iter().zip(&z2) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    #[test]
    fn native_matches_burn_autodiff_logistic_bce() {
        compare(ModelSpec::default(), 2, 4);
    }

    #[test]
    fn native_matches_burn_autodiff_softmax() {
        compare(ModelSpec::default(), 4, 9);
    }

    #[test]
    fn native_matches_burn_autodiff_mlp_relu_and_tanh() {
        for activation in [Activation::Relu, Activation::Tanh] {
            let spec = ModelSpec {
                kind: ModelKind::Mlp,
                hidden: vec![16, 8],
                activation,
                ..ModelSpec::default()
            };
            compare(spec.clone(), 2, 5);
            compare(spec, 3, 6);
        }
    }
}
