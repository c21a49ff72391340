//! `ward bench cnn`: training-step time of the small CNN and ResNet-18 (the models of
//! `shared/anchors/pytorch_cnn/bench_cnn.py`), beside PyTorch run in the same invocation
//! where the anchor's venv exists, and images read per second for each image reader.
//!
//! One step = forward + cross-entropy + backward + SGD(lr 0.01, momentum 0.9), float32,
//! on one fixed random batch of 32 (as the anchor); the median over the timed steps is
//! reported. Every ratio comes from this invocation, never from stored numbers.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::Result;
use crate::error::Context;
use crate::say;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ward_core::config::{OptimizerKind, TrainSpec};
use ward_data::ImageShape;
use ward_models::{
    BurnConv, ConvArch, ConvFamily, DeviceChoice, GradientEngine, Norm, Optimizer, OptimizerConfig,
};

use crate::Observer;
use crate::bench::{find_anchor, median};
use crate::options::BenchCnnArgs;

/// Classes of the anchor's synthetic task.
const CLASSES: usize = 9;
const BATCH: usize = 32;

/// One case: model name, input side, architecture.
fn cases(only: &[String], sides: &[usize]) -> Vec<(&'static str, usize, ConvArch)> {
    let mut v = Vec::new();
    for &hw in sides {
        v.push((
            "cnn",
            hw,
            ConvArch {
                family: ConvFamily::SmallCnn {
                    channels: vec![32, 64],
                    hidden: 128,
                },
                norm: Norm::None,
                input: ImageShape::d2(1, hw, hw),
                outputs: CLASSES,
                multi_label: false,
                dropout: 0.0,
            },
        ));
    }
    for &hw in sides {
        v.push((
            "resnet18",
            hw,
            ConvArch {
                family: ConvFamily::Resnet18 { width: 64 },
                norm: Norm::Batch,
                input: ImageShape::d2(1, hw, hw),
                outputs: CLASSES,
                multi_label: false,
                dropout: 0.0,
            },
        ));
    }
    v.retain(|(m, _, _)| only.is_empty() || only.iter().any(|o| o == m));
    v
}

/// Median milliseconds per training step of `arch`.
fn ward_step_ms(arch: &ConvArch, device: DeviceChoice, warmup: usize, steps: usize) -> Result<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut params = arch.init(&mut rng).values().to_vec();
    let x: Vec<f32> = (0..BATCH * arch.input.len())
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    let y: Vec<u32> = (0..BATCH)
        .map(|_| rng.random_range(0..CLASSES as u32))
        .collect();
    let mut engine = BurnConv::new(arch.clone(), device)?;
    let mut opt = Optimizer::new(OptimizerConfig::from_spec(&TrainSpec {
        optimizer: OptimizerKind::Sgd,
        lr: 0.01,
        momentum: 0.9,
        ..TrainSpec::default()
    }));
    let mut grad = vec![0.0f32; params.len()];
    let mut times = Vec::with_capacity(steps);
    let mut first = f32::NAN;
    let mut last = f32::NAN;
    for i in 0..warmup + steps {
        let t = Instant::now();
        let loss = engine.loss_and_grad(&params, &x, &y, &mut grad)?;
        opt.step(&mut params, &grad);
        engine.write_buffers(&mut params);
        if i >= warmup {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        if i == 0 {
            first = loss;
        }
        last = loss;
    }
    tracing::info!(
        first,
        last,
        "loss over the benchmark steps (same batch: it must fall)"
    );
    Ok(median(times))
}

/// The anchor's results: `(model, input, ms_per_step, threads)`.
fn anchor(
    py: &Path,
    script: &Path,
    warmup: usize,
    steps: usize,
    only: &str,
) -> Result<Vec<(String, String, f64, u64)>> {
    let dir = tempfile::tempdir()?;
    let json = dir.path().join("torch.json");
    let status = Command::new(py)
        .arg(script)
        .args([
            "--steps",
            &steps.to_string(),
            "--warmup",
            &warmup.to_string(),
        ])
        .args(["--only", only, "--wait-idle", "60"])
        // The same thread count as Ward's rayon pool.
        .args([
            "--threads",
            &rayon::current_num_threads().to_string(),
            "--json",
        ])
        .arg(&json)
        .stdout(std::process::Stdio::null())
        .status()
        .with_context(|| format!("running {}", script.display()))?;
    crate::error::ensure!(status.success(), "{} failed: {status}", script.display());
    let v: Vec<serde_json::Value> = serde_json::from_slice(&fs_err::read(&json)?)?;
    Ok(v.iter()
        .filter_map(|c| {
            Some((
                c.get("model")?.as_str()?.to_string(),
                c.get("input")?.as_str()?.to_string(),
                c.get("ms_per_step")?.as_f64()?,
                c.get("threads")?.as_u64()?,
            ))
        })
        .collect())
}

/// `--device` and `--inputs` as lists.
fn devices_and_sides(args: &BenchCnnArgs) -> Result<(Vec<DeviceChoice>, Vec<usize>)> {
    let devices = args
        .device
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect::<std::result::Result<Vec<DeviceChoice>, _>>()?;
    crate::error::ensure!(!devices.is_empty(), "--device names no device");
    let sides = args
        .inputs
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .ok()
                .filter(|&v| v >= 4)
                .with_context(|| format!("--inputs: {s:?} is not an image side of at least 4"))
        })
        .collect::<Result<Vec<usize>>>()?;
    Ok((devices, sides))
}

/// Runs the benchmark and prints the table.
pub fn bench_cnn(args: BenchCnnArgs, obs: &mut dyn Observer) -> Result<()> {
    if cfg!(debug_assertions) {
        tracing::warn!("this is a debug build: timings are meaningless, use --release");
    }
    let only: Vec<String> = args
        .only
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let (devices, sides) = devices_and_sides(&args)?;
    let anchor_dir = find_anchor(args.anchor.as_deref(), "pytorch_cnn", "bench_cnn.py");
    let py = args.venv.join("bin/python");
    let run_anchor = !args.no_anchor && anchor_dir.is_some() && py.exists();
    if args.no_anchor || anchor_dir.is_none() {
        say(
            obs,
            super::anchor_missing(args.no_anchor, "pytorch_cnn", "bench_cnn.py"),
        );
    } else if !run_anchor {
        say(
            obs,
            format!(
                "anchor: not run: needs the venv {} (SLIM=1 bash shared/anchors/pytorch_cnn/setup.sh makes it; this command never runs it)",
                py.display()
            ),
        );
    }
    // Interleaved: each model's Ward cases, then the anchor on the same model, so both
    // sides of a ratio see the same machine load.
    let mut rows = Vec::new();
    let mut torch: Vec<(String, String, f64, u64)> = Vec::new();
    for model in ["cnn", "resnet18"] {
        let mine: Vec<_> = cases(&only, &sides)
            .into_iter()
            .filter(|c| c.0 == model)
            .collect();
        if mine.is_empty() {
            continue;
        }
        let steps = if model == "resnet18" {
            args.resnet_steps
        } else {
            args.steps
        };
        let warmup = args.warmup.min(steps);
        for (model, hw, arch) in mine {
            for &device in &devices {
                let ms = ward_step_ms(&arch, device, warmup, steps)?;
                say(
                    obs,
                    format!("ward {model} 1x{hw}x{hw} on {device}: {ms:.1} ms/step"),
                );
                rows.push((model, format!("1x{hw}x{hw}"), device, ms, steps));
            }
        }
        if let (true, Some(dir)) = (run_anchor, &anchor_dir) {
            // The anchor times every side; the table keeps those of `--inputs`.
            match anchor(&py, &dir.join("bench_cnn.py"), warmup, steps, model) {
                Ok(t) => {
                    for (m, i, ms, th) in &t {
                        say(
                            obs,
                            format!("pytorch {m} {i}: {ms:.1} ms/step ({th} threads)"),
                        );
                    }
                    torch.extend(t);
                }
                Err(e) => tracing::warn!("PyTorch anchor failed on {model}: {e:#}"),
            }
        }
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "model",
        "input",
        "device",
        "batch",
        "steps",
        "Ward ms/step",
        "Ward threads",
        "PyTorch ms/step",
        "PyTorch threads",
        "Ward / PyTorch",
    ]);
    for (model, input, device, ms, steps) in &rows {
        let t = torch.iter().find(|(m, i, _, _)| m == model && i == input);
        table.add_row(vec![
            model.to_string(),
            input.clone(),
            device.to_string(),
            BATCH.to_string(),
            steps.to_string(),
            format!("{ms:.1}"),
            rayon::current_num_threads().to_string(),
            t.map_or("-".into(), |t| format!("{:.1}", t.2)),
            t.map_or("-".into(), |t| t.3.to_string()),
            t.map_or("-".into(), |t| format!("{:.2}x", ms / t.2)),
        ]);
    }
    if !rows.is_empty() {
        say(
            obs,
            format!(
                "CNN training step (forward + backward + SGD momentum), float32, {} threads available; Ward's threads: the rayon pool burn-flex and burn-ndarray run on (RAYON_NUM_THREADS; burn-ndarray's matmul: MATMUL_NUM_THREADS, default the physical cores), PyTorch's: torch.set_num_threads",
                std::thread::available_parallelism().map_or(0, |n| n.get())
            ),
        );
        say(obs, table.to_string());
    }
    if only.is_empty() || only.iter().any(|o| o == "readers") {
        crate::bench::readers::bench_readers(args.reader_images.max(2), 3, obs)?;
    }
    Ok(())
}
