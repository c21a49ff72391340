//! `ward bench dp`: DP-SGD step time against the non-private step, same model, same
//! batch, same invocation.
//!
//! Cases: an MLP on the native engine (FLamby heart-disease size, 13-16-16-1 at batch 4,
//! and a wider 784-128-10 at batch 64), and the small CNN with GroupNorm on Burn
//! (1x28x28, batch 32 by default). A non-private step is gather + forward/backward of
//! the batch mean loss + SGD; a DP-SGD step is gather + per-example clipped gradients +
//! Gaussian noise + SGD (fixed-size batch, so both see the same rows). The native engine
//! derives per-sample gradients in one pass (ghost norms). Burn has no per-sample
//! gradients: the CNN runs twice, with Ward's vectorised path (per-layer per-example
//! gradients from one forward and one backward pass, [`ward_models::PerSample::Auto`])
//! and with one backward pass per example (microbatching, the fallback for models the
//! vectorised path does not cover), each against its own non-private step.

use std::time::Instant;

use crate::Result;
use crate::say;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ward_core::config::{Activation, OptimizerKind, TrainSpec};
use ward_data::{ImageShape, Matrix, Split};
use ward_models::dp::{DpSgd, DpSgdConfig, Sampling, dp_gradient};
use ward_models::{
    BurnConv, ConvArch, ConvFamily, DenseArch, DeviceChoice, GradientEngine, Loss, NativeDense,
    Norm, Optimizer, OptimizerConfig, PerSample,
};

use crate::Observer;
use crate::bench::median;
use crate::options::BenchDpArgs;

/// Median milliseconds per step: `(non-private, DP-SGD)`.
fn time_steps(
    engine: &mut dyn GradientEngine,
    mut params: Vec<f32>,
    data: &Split,
    batch: usize,
    warmup: usize,
    steps: usize,
) -> Result<(f64, f64)> {
    let idx: Vec<u32> = (0..batch as u32).collect();
    let opt_config = OptimizerConfig::from_spec(&TrainSpec {
        optimizer: OptimizerKind::Sgd,
        lr: 0.01,
        ..TrainSpec::default()
    });
    let cols = data.x.cols;
    let mut grad = vec![0.0f32; params.len()];
    let (mut xb, mut yb) = (Vec::new(), Vec::new());
    let mut opt = Optimizer::new(opt_config);
    let mut plain = Vec::new();
    for i in 0..warmup + steps {
        let t = Instant::now();
        xb.clear();
        yb.clear();
        for &r in &idx {
            let r = r as usize;
            xb.extend_from_slice(&data.x.data[r * cols..(r + 1) * cols]);
            yb.push(data.y[r]);
        }
        engine.loss_and_grad(&params, &xb, &yb, &mut grad)?;
        opt.step(&mut params, &grad);
        if i >= warmup {
            plain.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let mut dp = DpSgd::new(
        DpSgdConfig {
            clip: 1.0,
            noise_multiplier: 1.0,
            sampling: Sampling::FixedSize,
            batch_size: batch,
            physical_batch: None,
        },
        data.y.len(),
        1,
    )?;
    let mut opt = Optimizer::new(opt_config);
    let mut private = Vec::new();
    for i in 0..warmup + steps {
        let t = Instant::now();
        dp_gradient(engine, &params, data, &idx, &mut dp, &mut grad)?;
        opt.step(&mut params, &grad);
        if i >= warmup {
            private.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok((median(plain), median(private)))
}

fn random_split(rows: usize, cols: usize, classes: u32, seed: u64) -> Split {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Split {
        x: Matrix {
            rows,
            cols,
            data: (0..rows * cols)
                .map(|_| rng.random_range(-1.0f32..1.0))
                .collect(),
        },
        y: (0..rows).map(|_| rng.random_range(0..classes)).collect(),
    }
}

/// Runs the benchmark and prints the table.
pub fn bench_dp(args: BenchDpArgs, obs: &mut dyn Observer) -> Result<()> {
    if cfg!(debug_assertions) {
        tracing::warn!("this is a debug build: timings are meaningless, use --release");
    }
    let mut rows: Vec<(String, String, usize, f64, f64)> = Vec::new();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let want = |m: &str| args.only.is_empty() || args.only.split(',').any(|o| o.trim() == m);
    if want("mlp") {
        for (inputs, hidden, outputs, batch, loss) in [
            (13usize, vec![16usize, 16], 1usize, 4usize, Loss::Bce),
            (784, vec![128], 10, 64, Loss::CrossEntropy),
        ] {
            let arch = DenseArch {
                inputs,
                hidden: hidden.clone(),
                outputs,
                activation: Activation::Relu,
                loss,
                dropout: 0.0,
            };
            let params = arch.init(&mut rng).values().to_vec();
            let data = random_split(batch.max(8), inputs, outputs.max(2) as u32, 1);
            let mut engine = NativeDense::new(arch.clone());
            let (p, d) = time_steps(
                &mut engine,
                params,
                &data,
                batch,
                args.warmup,
                args.steps * 10,
            )?;
            let shape: Vec<String> = std::iter::once(inputs)
                .chain(hidden)
                .chain(std::iter::once(outputs))
                .map(|v| v.to_string())
                .collect();
            rows.push((
                format!("mlp {}", shape.join("-")),
                "cpu:native".into(),
                batch,
                p,
                d,
            ));
        }
    }
    if want("cnn") {
        let arch = ConvArch {
            family: ConvFamily::SmallCnn {
                channels: vec![32, 64],
                hidden: 128,
            },
            norm: Norm::Group { groups: 8 },
            input: ImageShape::d2(1, 28, 28),
            outputs: 9,
            multi_label: false,
            dropout: 0.0,
        };
        let params = arch.init(&mut rng).values().to_vec();
        let data = random_split(args.batch, arch.input.len(), 9, 2);
        for (per_sample, label) in [
            (PerSample::Auto, "vectorised"),
            (PerSample::Microbatch, "microbatching"),
        ] {
            let mut engine =
                BurnConv::new(arch.clone(), DeviceChoice::Cpu)?.with_per_sample(per_sample);
            let name = engine.name();
            let (p, d) = time_steps(
                &mut engine,
                params.clone(),
                &data,
                args.batch,
                args.warmup,
                args.steps,
            )?;
            rows.push((
                format!("cnn 1x28x28 GroupNorm ({label})"),
                name,
                args.batch,
                p,
                d,
            ));
        }
    }
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "model",
        "engine",
        "batch",
        "step ms",
        "DP-SGD step ms",
        "ratio",
    ]);
    for (m, e, b, p, d) in &rows {
        t.add_row(vec![
            m.clone(),
            e.clone(),
            b.to_string(),
            format!("{p:.4}"),
            format!("{d:.4}"),
            format!("{:.2}x", d / p),
        ]);
    }
    say(obs, t);
    say(
        obs,
        "DP-SGD step: per-example gradients clipped to 1, Gaussian noise (sigma 1), SGD; medians over the timed steps; goal: ratio < 3x",
    );
    Ok(())
}
